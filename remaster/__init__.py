"""remaster: sharper, larger, cleaner images with the official Real-ESRGAN models.

>>> import remaster
>>> result = remaster.enhance("photo.jpg", model="RealESRGAN_x4plus", outscale=2)
>>> result.save("photo_x2.png")
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidOptionError,
    OutOfMemoryError,
    RemasterError,
    StoppedError,
    UnknownModelError,
    WeightsUnavailableError,
    WeightsUnreachableError,
)
from .pipeline import Enhancer, Report, enhance
from .registry import MODELS, ModelSpec, WeightFile, get_model, register, unregister
from .settings import Settings

__all__ = [
    "MODELS",
    "Enhancer",
    "ImageTooLargeError",
    "InvalidImageError",
    "InvalidOptionError",
    "ModelSpec",
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
    "unregister",
]
