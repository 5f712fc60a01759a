"""What Ray prints that is not the user's business, kept out of a job's output.

Every run prints, in the driver's process, that Ray's token authentication is on (a Python warning
while Ray starts), and, where a worker's constructor arguments are large enough for the object store
(a job's long list of clashing names, say), the core worker's error-level line that an actor with
restarts has them there (their restarts work, as the tests that kill workers show). When a worker dies, the
raylet's lines say so at length and that its task will be retried, where the driver names the
worker itself, once. All read as alarms and ask nothing of the user. The warning is logged at
debug level instead. The other lines come from C++ or from Ray's log monitor, where no logging
setting reaches them without hiding real errors too, so while the job runs the process's standard
output and error pass through a filter that leaves out exactly the lines of :data:`NOISE` (Ray's
own log files, in the session's ``logs`` folder, keep them). Everything else passes as it came,
partial lines (a progress bar) at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import threading
from types import TracebackType

__all__ = ["NOISE", "RayNoise", "is_noise"]

log = logging.getLogger(__name__)

NOISE = (
    re.compile(r"Token authentication is enabled for this Ray cluster"),
    re.compile(r"core_worker\.cc:\d+: Actor .* has constructor arguments in the object store and max_restarts > 0"),
    re.compile(r"\(raylet\).* A worker died or was killed while executing a task by an unexpected system error"),
    re.compile(r"\(raylet\).* Task .* failed\. There are .* retries remaining, so the task will be retried"),
)
"""Ray's messages that are noise to a user of remaster, wherever they appear in a line."""
_RAY_LOGGERS = ("ray._private.authentication.authentication_token_setup",)
"""Ray's Python loggers that log any of :data:`NOISE`."""
_IDLE = 0.2
"""Seconds a partial line is held, while nothing more comes, before it is passed on."""


def is_noise(line: str) -> bool:
    """Whether ``line`` is one of Ray's messages in :data:`NOISE`."""
    return any(pattern.search(line) for pattern in NOISE)


class _Demote(logging.Filter):
    """Logs a record of :data:`NOISE` at debug level, under remaster's name, instead of as Ray logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not is_noise(message):
            return True
        log.debug("Ray: %s", message)
        return False


class RayNoise:
    """Within a ``with`` block Ray's Python loggers leave out :data:`NOISE`; after :meth:`filter_output` (once Ray's
    own processes are started, so that they do not inherit the filter) standard output and error leave it out too."""

    def __init__(self) -> None:
        self._demote = _Demote()
        self._filters: list[tuple[int, int, threading.Thread]] = []
        """(file descriptor, its saved original, the thread that copies the pipe in its place to the original)."""

    def __enter__(self) -> RayNoise:
        for name in _RAY_LOGGERS:
            logging.getLogger(name).addFilter(self._demote)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._restore()
        for name in _RAY_LOGGERS:
            logging.getLogger(name).removeFilter(self._demote)

    def filter_output(self) -> None:
        """Pass this process's standard output and error (file descriptors 1 and 2, which C++ writes to as well)
        through the filter until the block ends."""
        if self._filters:
            return
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            if stream is not None:
                stream.flush()
            try:
                saved = os.dup(fd)
            except OSError:  # no such output (closed): nothing to filter
                continue
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            pump = threading.Thread(target=_pump, args=(read, saved), name=f"remaster-ray-output-{fd}", daemon=True)
            pump.start()
            self._filters.append((fd, saved, pump))

    def _restore(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        for fd, saved, _ in self._filters:
            os.dup2(saved, fd)  # the pipe's last writer in this process is gone: its pump drains it and ends
        for _, saved, pump in self._filters:
            pump.join(timeout=5)
            if not pump.is_alive():  # else a process started meanwhile holds the pipe: the pump still writes there
                os.close(saved)
        self._filters = []


def _pump(read: int, out: int) -> None:
    """Copy what comes through ``read`` to ``out``, line by line, leaving out :data:`NOISE`. A partial line is held
    until its end comes, or until nothing has come for a moment; a progress bar's redraws (``\\r``) pass at once."""
    pending = b""
    try:
        while True:
            if select.select([read], [], [], _IDLE if pending else None)[0]:
                chunk = os.read(read, 1 << 16)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                _write(out, b"".join(line + b"\n" for line in lines if not is_noise(line.decode(errors="replace"))))
                redrawn = pending.rfind(b"\r")
                if redrawn > 0:
                    _write(out, pending[:redrawn])
                    pending = pending[redrawn:]
            elif pending:
                _write(out, pending)
                pending = b""
    except OSError:
        pass  # the real output is gone: nothing can be shown anyway
    finally:
        with contextlib.suppress(OSError):
            _write(out, pending)
        os.close(read)


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
