"""Stopping a long job the same way whatever asks it to stop: Ctrl-C (SIGINT), SIGTERM or SIGHUP.

Kubernetes, Slurm, systemd, ``docker stop`` and Ray's job stop send SIGTERM, then SIGKILL after a
grace period; a closed terminal sends SIGHUP. Inside :class:`Stopping` each is handled as Ctrl-C
is: the first asks the job to stop (its ``stop`` event is set, and the work ends at its next safe
point keeping what finished; a job without such points gets :class:`Interrupted` at once), and a
second raises :class:`Interrupted` at once, so the work unwinds and whatever it was writing is
removed under its temporary name. The command then exits with 128 plus the first signal's
number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.

The handlers are installed whatever the process inherited: a program started in the background by
a script has SIGINT ignored (POSIX does that for background jobs), and its Ctrl-C path would never
run. Only an ignored SIGHUP stays ignored, since that is what ``nohup`` asks for.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

__all__ = ["Interrupted", "Stopping", "describe", "exit_status"]

STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals that stop a job (SIGHUP where the system has it)."""


def describe(signum: int) -> str:
    """How a signal is named in messages: ``Ctrl-C`` for SIGINT, else its name (``SIGTERM``)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_status(signum: int) -> int:
    """The exit status of a command stopped by ``signum``, as a shell reports a process it ended: 128 + its number."""
    return 128 + signum


class Interrupted(KeyboardInterrupt):
    """A stopping signal, raised in the main thread: for every stopping signal what KeyboardInterrupt is for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(describe(signum))
        self.signum = signum
        """The signal's number."""


class Stopping:
    """Within a ``with`` block, the stopping signals stop the job as described above; the handlers that were there
    before come back at its end.

    Args:
        stop: set by the first signal, for work that checks it and stops at its next safe point; without it the
            first signal raises :class:`Interrupted`.
        on_first: called with the signal's name (:func:`describe`) when the first signal has set ``stop``, to say
            that the job is stopping.
    """

    def __init__(self, stop: threading.Event | None = None, on_first: Callable[[str], None] | None = None) -> None:
        self.stop = stop
        self.on_first = on_first
        self.signum: int | None = None
        """The first signal received, None while there was none."""
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str:
        """The first signal's name in messages (``Ctrl-C`` while there was none: a KeyboardInterrupt is Ctrl-C)."""
        return describe(self.signum or signal.SIGINT)

    @property
    def exit_status(self) -> int:
        """The command's exit status for the first signal (130, Ctrl-C's, while there was none)."""
        return exit_status(self.signum or signal.SIGINT)

    def __enter__(self) -> Stopping:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may handle signals; a job run from another thread is stopped its own way
        for signum in STOPPING_SIGNALS:
            previous = signal.getsignal(signum)
            if signum not in (signal.SIGINT, signal.SIGTERM) and previous == signal.SIG_IGN:
                continue  # nohup's SIGHUP
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            # None: a handler installed outside Python, which cannot be put back.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            if self.stop is not None:
                self.stop.set()
                if self.on_first is not None:
                    self.on_first(describe(signum))
                return
        raise Interrupted(signum)
