"""Where log messages go when remaster runs as a program (the app, the command lines): standard error, once each.

:func:`once` gives a warning about the same thing (a weights file that differs from the official one,
say) once per process, and at debug level after that; a job that starts other processes (the archive's
workers) hands them what it has said (:func:`said`, :func:`already_said`), so that it is said once per job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

__all__ = ["already_said", "configure", "once", "said"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_said: set[str] = set()
"""What :func:`once` has logged in this process, by key: the process's own, as the logging module's state is."""
_said_lock = threading.Lock()


def configure(level: int = logging.INFO, fmt: str = FORMAT) -> None:
    """Log to standard error through the root logger, and only through it.

    huggingface_hub gives its loggers a handler of their own at import and lets them
    propagate too, so under any root handler each of its messages would print twice:
    its handler is removed, and its messages come through ours.
    """
    logging.basicConfig(level=level, format=fmt)
    from huggingface_hub.utils import logging as hub_logging

    hub = hub_logging.get_logger()
    for handler in list(hub.handlers):
        if type(handler) is logging.StreamHandler:
            hub.removeHandler(handler)


def once(logger: logging.Logger, key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message % args`` at ``level`` the first time ``key`` comes up in this process (or was handed over by
    :func:`already_said`), and at debug level after that."""
    with _said_lock:
        first = key not in _said
        _said.add(key)
    logger.log(level if first else logging.DEBUG, message, *args)


def said() -> frozenset[str]:
    """The keys :func:`once` has logged in this process, to hand to the processes a job starts."""
    with _said_lock:
        return frozenset(_said)


def already_said(keys: Iterable[str]) -> None:
    """Count ``keys`` as logged in this process already: a job's worker is told what its driver said."""
    with _said_lock:
        _said.update(keys)
