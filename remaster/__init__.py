"""remaster: sharper, larger, cleaner images with the official Real-ESRGAN models.

>>> import remaster
>>> result = remaster.enhance("photo.jpg", model="RealESRGAN_x4plus", outscale=2)
>>> result.save("photo_x2.png")

Importing the package is quick: torch and the networks load when :func:`enhance` or an
:class:`Enhancer` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidModelError,
    InvalidOptionError,
    InvalidVideoError,
    OutOfMemoryError,
    RemasterError,
    StoppedError,
    UnknownModelError,
    WeightsUnavailableError,
    WeightsUnreachableError,
)
from .options import Options
from .registry import MODELS, ModelSpec, WeightFile, get_model, register, unregister
from .settings import Settings
from .version import __version__

if TYPE_CHECKING:
    from .pipeline import Enhancer, Report, enhance
    from .video import remaster_video

__all__ = [
    "MODELS",
    "Enhancer",
    "ImageTooLargeError",
    "InvalidImageError",
    "InvalidModelError",
    "InvalidOptionError",
    "InvalidVideoError",
    "ModelSpec",
    "Options",
    "OutOfMemoryError",
    "RemasterError",
    "Report",
    "Settings",
    "StoppedError",
    "UnknownModelError",
    "WeightFile",
    "WeightsUnavailableError",
    "WeightsUnreachableError",
    "__version__",
    "enhance",
    "get_model",
    "register",
    "remaster_video",
    "unregister",
]

_FROM_PIPELINE = ("Enhancer", "Report", "enhance")


def __getattr__(name: str) -> object:
    # The inference path imports torch and basicsr (seconds): only when it is first asked for.
    if name in _FROM_PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    if name == "remaster_video":  # PyAV and torch, when a video is first remastered
        from .video import job

        return job.remaster_video
    raise AttributeError(f"module 'remaster' has no attribute {name!r}")
