"""Running on Hugging Face ZeroGPU: the GPU is lent per call to functions marked with ``spaces.GPU``.

Elsewhere (no ``spaces`` package, or a Space without ZeroGPU) the marking is a no-op and
the function runs as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from PIL import Image

from .registry import NO_MODEL, get_model

__all__ = ["estimate_frames_seconds", "estimate_many", "estimate_seconds", "gpu_task", "on_zero_gpu"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., object])

_HEAVY_MACS_PER_PIXEL = 18e6
"""RealESRGAN_x4plus's multiply-adds per input pixel, assumed for networks not built until their weights load."""
_ASSUMED_TFLOPS = 40.0  # what a ZeroGPU slice sustains on these networks, conservatively
_MIN_SECONDS, _MAX_SECONDS = 15, 120
_MAX_MANY_SECONDS = 600


def on_zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space (the ``spaces`` package says so)."""
    try:
        import spaces
    except ImportError:
        return False
    return bool(getattr(getattr(spaces, "config", None), "Config", None) and spaces.config.Config.zero_gpu)


def gpu_task(function: F, duration: Callable[..., float]) -> F:
    """``function`` marked with ``spaces.GPU(duration=duration)`` on ZeroGPU, unchanged elsewhere.

    ``duration`` is called with the same arguments as ``function`` and returns the seconds
    to reserve the GPU for.
    """
    if not on_zero_gpu():
        return function
    import spaces

    log.info("ZeroGPU: %s borrows the GPU for each call", function.__name__)
    return spaces.GPU(duration=duration)(function)


@functools.cache
def _macs_per_pixel(model: str) -> float:
    from .network import count_macs

    if model == NO_MODEL:
        return 0.0
    spec = get_model(model)
    architecture, kwargs = spec.architecture, spec.arch_kwargs
    try:
        module = architecture.build(kwargs)
    except NotImplementedError:  # a network made from its weights (a model file): assume a heavy one
        return _HEAVY_MACS_PER_PIXEL
    return count_macs(module, architecture.input_multiple(kwargs, spec.scale), architecture.in_channels(kwargs))


def estimate_seconds(image: object, model: str, face_enhance: bool = False) -> float:
    """A generous estimate of the GPU time one request needs, from the input's size and the model."""
    try:
        with Image.open(image) as im:  # reads the header only
            frames = getattr(im, "n_frames", 1)
            pixels = im.width * im.height * frames * (2 if "A" in im.getbands() else 1)
        work = 2 * _macs_per_pixel(model) * pixels / (_ASSUMED_TFLOPS * 1e12)
    except Exception:  # noqa: BLE001 - an unreadable file fails fast later; reserve the most
        return _MAX_SECONDS
    seconds = 10 + 3 * work + (10 if face_enhance else 0)
    return float(min(max(seconds, _MIN_SECONDS), _MAX_SECONDS))


def estimate_many(images: Iterable[object], models: Iterable[str], face_enhance: bool = False) -> float:
    """The GPU time for every image through every model (a batch, a comparison): the single
    estimates added up, at most ten minutes."""
    models = list(models)
    total = sum(estimate_seconds(image, model, face_enhance) for image in images for model in models)
    return float(min(max(total, _MIN_SECONDS), _MAX_MANY_SECONDS))


def estimate_frames_seconds(frames: int, pixels: int, model: str, face_enhance: bool = False) -> float:
    """The GPU time for ``frames`` frames of ``pixels`` pixels each (a video), generously: the network's
    work, a few milliseconds a frame for decoding and encoding, at most ten minutes."""
    work = 2 * _macs_per_pixel(model) * pixels * frames / (_ASSUMED_TFLOPS * 1e12)
    seconds = 10 + 3 * work + frames * (0.01 + (0.2 if face_enhance else 0.0))
    return float(min(max(seconds, _MIN_SECONDS), _MAX_MANY_SECONDS))
