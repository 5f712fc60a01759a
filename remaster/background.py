"""The threads that build a faster way to run a network while requests run, and the wait for them at exit.

A build (OpenVINO converting a network, ``torch.compile`` compiling one) runs native code in
a daemon thread. If the interpreter shut down under it, that code would be torn down while
running and the process would abort ("terminate called without an active exception", exit
134) after its work was done. So a process waits, at exit, for the builds it started: their
results are kept on disk (``backends.json``, the compiled-model caches), so the wait makes the
next run start on the faster network. Ctrl-C during the wait ends the process at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["running", "start", "wait_for_all"]

log = logging.getLogger(__name__)

_threads: set[threading.Thread] = set()
_lock = threading.Lock()


def start(target: Callable[..., None], *args: object, name: str) -> None:
    """Run ``target(*args)`` in a daemon thread that the process waits for at exit.

    Raises:
        RuntimeError: no thread could be started.
    """

    def run() -> None:
        try:
            target(*args)
        finally:
            with _lock:
                _threads.discard(thread)

    thread = threading.Thread(target=run, name=name, daemon=True)
    with _lock:
        _threads.add(thread)
    try:
        thread.start()
    except RuntimeError:
        with _lock:
            _threads.discard(thread)
        raise


def running() -> list[str]:
    """The names of the builds still running."""
    with _lock:
        return sorted(thread.name for thread in _threads if thread.is_alive())


def wait_for_all(timeout: float | None = None) -> bool:
    """Block until every build has finished; False if ``timeout`` seconds passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _lock:
            alive = [thread for thread in _threads if thread.is_alive()]
        if not alive:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        alive[0].join(left)


@atexit.register
def _finish_at_exit() -> None:
    names = running()
    if not names:
        return
    # OpenVINO's converter holds the root logger at ERROR while it runs; this message must still show.
    log.setLevel(min(log.getEffectiveLevel(), logging.WARNING))
    log.warning("Finishing %s before exiting, so that later runs start with it (Ctrl-C to stop now)", ", ".join(names))
    try:
        wait_for_all()
    except KeyboardInterrupt:
        # Shutting down with the build's native code still running would abort the process.
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(130)
