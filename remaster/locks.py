"""One run at a time in a long job's folder: an exclusive lock, held by an open file until it is closed."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from .errors import JobBusyError

__all__ = ["LOCK", "lock_folder"]

LOCK = "lock"
"""The lock's file in the job's folder."""


def lock_folder(folder: Path, result: str) -> IO[bytes] | None:
    """Lock ``folder`` (which must exist) for this run; close the returned file to let another run in.
    None where the system has no ``flock``.

    Raises:
        JobBusyError: another run holds the lock; ``result`` names what it is making.
    """
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(folder / LOCK, "wb")  # noqa: SIM115 - held open as the lock itself
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise JobBusyError(
            f"{result} is being made by another run right now; wait for it to finish, or stop it first"
        ) from None
    return handle
