"""The errors remaster raises. Every message says what happened and what to do."""

from __future__ import annotations

import sys

__all__ = [
    "brief",
    "is_out_of_memory",
    "ChecksumMismatch",
    "ImageTooLargeError",
    "InvalidDataError",
    "InvalidImageError",
    "InvalidModelError",
    "InvalidOptionError",
    "InvalidVideoError",
    "JobBusyError",
    "OutOfMemoryError",
    "RegistrationError",
    "RemasterError",
    "SettingsError",
    "SourceError",
    "StoppedError",
    "Unreachable",
    "UnknownModelError",
    "WeightsUnavailableError",
    "WeightsUnreachableError",
]


class RemasterError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""


class InvalidImageError(RemasterError):
    """The input is not an image remaster can read (empty, truncated, unknown format)."""


class InvalidVideoError(InvalidImageError):
    """The input is not a video remaster can read: no video stream, no frames, truncated, corrupt, unsupported."""


class ImageTooLargeError(RemasterError):
    """The input (or the output it would make) has more pixels than the configured limit."""


class InvalidOptionError(RemasterError, ValueError):
    """An option is out of range or of the wrong kind."""


class UnknownModelError(InvalidOptionError):
    """No model in the registry has the requested name."""


class WeightsUnavailableError(RemasterError):
    """A model's weights could not be found locally or downloaded."""


class WeightsUnreachableError(WeightsUnavailableError):
    """A model's weights are not on disk and the network could not be reached to download them."""


class InvalidModelError(InvalidOptionError):
    """A model file or reference cannot be used: not a model, an architecture not known, unsafe, changed, too large."""


class InvalidDataError(RemasterError):
    """Training data that cannot be used: no folder, no images, no image large enough, nothing held out."""


class OutOfMemoryError(RemasterError):
    """Even the smallest tile did not fit in the memory free."""


class StoppedError(RemasterError):
    """The work was stopped before it finished: cancelled, or over the time limit."""


class SettingsError(RemasterError, ValueError):
    """An environment variable holds a value remaster cannot use; the message names it and what it may be."""


class RegistrationError(RemasterError, ValueError):
    """A model, architecture or runtime cannot be registered: its name is missing or taken, or it cannot be
    verified."""


class JobBusyError(RemasterError):
    """Another run is making the same result now (a video, a fine-tuned model)."""


class SourceError(RemasterError, ValueError):
    """An archive's SOURCE or DEST names nothing usable; the message says what and how to fix it."""


class ChecksumMismatch(RemasterError):
    """A weight file's size or digest differs from the one declared for it."""


class Unreachable(RemasterError, ConnectionError):
    """A download source could not be reached at all: no network, a failed lookup, a timeout, a server down."""


_OUT_OF_MEMORY_PHRASES = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error`` says memory ran out: torch's or Python's error, or an allocator's
    message, also inside an error wrapping it (``torch.compile`` wraps its backends' errors)."""
    torch = sys.modules.get("torch")  # no torch loaded: only Python's own MemoryError can be the cause
    kinds = (MemoryError, torch.OutOfMemoryError) if torch is not None else (MemoryError,)
    for _ in range(8):  # a wrapped error is a few levels deep at most
        if error is None:
            return False
        if isinstance(error, kinds):
            return True
        if any(phrase in str(error).lower() for phrase in _OUT_OF_MEMORY_PHRASES):
            return True
        error = getattr(error, "inner_exception", None) or error.__cause__
    return False


def brief(error: BaseException, limit: int = 300) -> str:
    """``error``'s message on one line, cut to ``limit`` characters, for embedding in another message."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
