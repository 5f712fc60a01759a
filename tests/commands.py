"""``python -m module args`` as a user runs it, in a process forked from one that has imported torch already.

Each command would otherwise spend about 6 CPU-seconds importing torch, torchvision (which imports
``torch._dynamo``), basicsr and OpenCV before it does anything: on the 2-core machines this suite runs on,
a third of the suite's CPU went to those imports. multiprocessing's forkserver imports them once, in a
process that runs no threads, and forks each command from it: a fresh process with its own working folder,
environment, standard streams, signal handlers, logging and exit status, that then runs the module as
``python -m`` does (:func:`runpy.run_module`) and the interpreter's exit functions at the end. remaster itself
is imported anew in every command. Tests of what only a real start can show (the signal dispositions a shell
gives, ``--help`` importing no torch, the installed script) start ``sys.executable`` themselves.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

__all__ = ["Forked", "run_forked"]

_PRELOAD = "tests.heavy_imports"
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload([_PRELOAD])


def _command(module: str, args: list[str], cwd: str, env: dict[str, str], streams: str, sigint_ignored: bool) -> None:
    """In the forked process: become ``python -m module args`` in ``cwd`` with ``env``, writing to the files
    ``stdout`` and ``stderr`` in the folder ``streams``; with SIGINT ignored, as a shell starts a background job."""
    for fd, name in ((1, "stdout"), (2, "stderr")):
        opened = os.open(os.path.join(streams, name), os.O_WRONLY)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, cwd)  # as ``python -m`` puts the working folder first
    sys.argv = [module, *args]
    signal.signal(signal.SIGINT, signal.SIG_IGN if sigint_ignored else signal.default_int_handler)
    status, interrupted = 0, False
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as leaving:
        if leaving.code is None or isinstance(leaving.code, int):
            status = leaving.code or 0
        else:
            print(leaving.code, file=sys.stderr)
            status = 1
    except BaseException as error:  # what the interpreter prints of an exception nobody caught
        traceback.print_exc()
        status, interrupted = 1, isinstance(error, KeyboardInterrupt)
    atexit._run_exitfuncs()  # as the interpreter does on its way out (a forked child leaves by os._exit)
    sys.stdout.flush()
    sys.stderr.flush()
    if interrupted:  # as the interpreter ends on a KeyboardInterrupt nobody caught: by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)


class Forked:
    """``python -m module args`` started in ``cwd`` with ``env`` (the whole environment), as
    :class:`subprocess.Popen` starts it and with its ways: ``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``,
    ``communicate`` and ``returncode`` (negative: the signal that ended it)."""

    def __init__(self, module: str, args: list[str], *, cwd: Path, env: dict[str, str], sigint_ignored: bool = False):
        self.args = [module, *args]
        self._streams = tempfile.TemporaryDirectory()
        for name in ("stdout", "stderr"):
            Path(self._streams.name, name).touch()
        self._process = _context.Process(
            target=_command, args=(module, list(args), str(cwd), dict(env), self._streams.name, sigint_ignored)
        )
        self._process.start()
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self._process.exitcode

    def poll(self) -> int | None:
        """Its exit status, or None while it runs."""
        return self.returncode

    def send_signal(self, signum: int) -> None:
        """Send it ``signum``, if it still runs."""
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL it, if it still runs."""
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to end; its exit status.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def stderr(self) -> str:
        """What it has written to its standard error so far."""
        return Path(self._streams.name, "stderr").read_text(errors="replace")

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for it to end; its standard output and error.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        self.wait(timeout)
        try:
            return Path(self._streams.name, "stdout").read_text(errors="replace"), self.stderr()
        finally:
            self._streams.cleanup()


def run_forked(
    module: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with ``env`` (the whole environment); its status and output.

    Raises:
        subprocess.TimeoutExpired: it ran over ``timeout`` seconds (it is killed).
    """
    command = Forked(module, args, cwd=cwd, env=env)
    try:
        out, err = command.communicate(timeout)
    except subprocess.TimeoutExpired:
        command.kill()
        command.communicate()
        raise
    return subprocess.CompletedProcess(command.args, command.returncode, out, err)
