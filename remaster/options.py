"""One request's choices, validated once where the request enters: page, API, command line, library.

An :class:`Options` is what every layer below the entry points passes on whole: the
pipeline, files, batches and faces. Building one checks every value, so nothing below
needs to check again. Nothing here imports torch.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Literal

from .errors import InvalidOptionError
from .references import is_reference
from .registry import DEFAULT_FACE_MODEL, DEFAULT_MODEL, MODELS, NO_MODEL, get_model
from .settings import models_dir_from_env

__all__ = [
    "ALPHA_UPSAMPLERS",
    "ANIMATION_CHOICES",
    "DEFAULT_FACE_STRENGTH",
    "MAX_OUTSCALE",
    "MAX_TILE",
    "MIN_OUTSCALE",
    "MIN_TILE",
    "PRECISIONS",
    "STILL_FORMATS",
    "Options",
    "Precision",
    "checked_flag",
    "checked_number",
]

MIN_OUTSCALE, MAX_OUTSCALE = 1.0, 8.0
MIN_TILE, MAX_TILE = 32, 4096
DEFAULT_FACE_STRENGTH = 0.7
"""How much of the restored face to use by default: enough to repair it, not so much it looks like someone else."""

Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16", "int8")
"""``int8``: quantized (OpenVINO with NNCF, on a CPU), whatever its measured quality; ``auto`` uses int8 only where
it stays within the quality gate of fp32 on this processor."""
STILL_FORMATS: tuple[str, ...] = ("png", "jpg", "webp", "tiff")
ANIMATION_CHOICES: tuple[str, ...] = ("gif", "webp", "png")
ALPHA_UPSAMPLERS: tuple[str, ...] = ("realesrgan", "bicubic")
MAX_PAD = 1024


@dataclass(frozen=True)
class Options:
    """Everything one request may choose. Every field is checked when the value is made.

    Raises:
        UnknownModelError: ``model`` (or, with ``face_enhance``, ``face_model``) is not registered.
        InvalidOptionError: any other value is out of range or of the wrong kind; the message says
            which and what is allowed.
    """

    model: str = DEFAULT_MODEL
    """An upscaler from :data:`remaster.MODELS`, or a model file as the command line's ``-n`` takes it (a path, an
    ``hf://`` reference, a URL, or a file's stem in ``REMASTER_MODELS_DIR``), which the
    :class:`~remaster.pipeline.Enhancer` loads and registers before the work (:meth:`Enhancer.resolve`); or
    ``none`` for a video whose frames keep their size (in-betweens or skipped repeats alone; ``outscale`` is 1)."""
    outscale: float = 4.0
    """The result's size relative to the input, from 1 to 8."""
    tile: int | None = None
    """None tiles automatically, 0 runs the whole image at once, else the core tile edge (32–4096)."""
    face_enhance: bool = False
    denoise_strength: float = 0.5
    """For models with a denoise control: 0 removes the most noise, 1 none."""
    precision: Precision = "auto"
    face_model: str = DEFAULT_FACE_MODEL
    face_strength: float = DEFAULT_FACE_STRENGTH
    """0 gives the plain upscale exactly, 1 the restored faces in full."""
    output_format: str = "auto"
    """For stills: png, jpg, webp, tiff, or auto (JPEG and WebP inputs keep theirs, float ones become a float TIFF,
    others PNG)."""
    animation_format: str = "auto"
    """For animations: gif, webp, png (APNG), or auto (the input's own); a still format is refused per file."""
    quality: int | None = None
    """For JPEG and lossy WebP, 1–100; None for lossless WebP and JPEG's default."""
    png_compression: int = 6
    """zlib's level for PNG results, 0–9: 6 (Pillow's default) makes them smallest in fair time, 1 three times
    faster for about a tenth more bytes (the page's choice: it waits for them)."""
    alpha_upsampler: str = "realesrgan"
    """How transparency is enlarged: by the model (``realesrgan``) or resized (``bicubic``, the official script's
    spelling for OpenCV's linear resize)."""
    tile_pad: int | None = None
    """The official script's overlap between tiles; None (or less than the model needs) uses the model's own."""
    pre_pad: int = 0
    """Pixels of reflected border the network sees beyond the bottom and right edges, cropped away again."""

    def __post_init__(self) -> None:
        if self.model == NO_MODEL:
            self._set("outscale", 1.0)  # the frames keep their size
        elif not _model_file(self.model):
            get_model(self.model, "upscaler")
        self._set("outscale", checked_number("outscale", self.outscale, MIN_OUTSCALE, MAX_OUTSCALE))
        self._set("tile", _tile(self.tile))
        self._set("face_enhance", checked_flag("face_enhance", self.face_enhance))
        self._set("denoise_strength", checked_number("denoise_strength", self.denoise_strength, 0.0, 1.0))
        _choice("precision", self.precision, PRECISIONS)
        if self.face_enhance:
            get_model(self.face_model, "face_restorer")
        self._set("face_strength", checked_number("face_strength", self.face_strength, 0.0, 1.0))
        _choice("output_format", self.output_format, ("auto", *STILL_FORMATS))
        _choice("animation_format", self.animation_format, ("auto", *ANIMATION_CHOICES, *STILL_FORMATS))
        if self.quality is not None:
            self._set("quality", int(checked_number("quality", self.quality, 1, 100, whole=True)))
        self._set("png_compression", int(checked_number("png_compression", self.png_compression, 0, 9, whole=True)))
        _choice("alpha_upsampler", self.alpha_upsampler, ALPHA_UPSAMPLERS)
        if self.tile_pad is not None:
            self._set("tile_pad", int(checked_number("tile_pad", self.tile_pad, 0, MAX_PAD, whole=True)))
        self._set("pre_pad", int(checked_number("pre_pad", self.pre_pad, 0, MAX_PAD, whole=True)))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The fields, in order."""
        return tuple(field.name for field in fields(cls))

    def describe(self) -> dict[str, Any]:
        """The choices as plain values, for a manifest or a log line."""
        return {name: getattr(self, name) for name in self.names()}


def _model_file(model: object) -> bool:
    """Whether ``model`` may name a model file (resolved where the work starts) rather than a registered model."""
    if not isinstance(model, str) or (model in MODELS and MODELS[model].kind == "upscaler"):
        return False
    return is_reference(model) or (models_dir_from_env() is not None and "/" not in model)


def checked_number(name: str, value: object, low: float, high: float, whole: bool = False) -> float:
    """``value`` as a float, if it is a (``whole``) number from ``low`` to ``high``.

    Raises:
        InvalidOptionError: it is not; the message names ``name`` and the range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    if whole and not float(value).is_integer():
        raise InvalidOptionError(f"{name} must be a whole number from {low:g} to {high:g}, not {value!r}")
    if not low <= value <= high:
        raise InvalidOptionError(f"{name} must be from {low:g} to {high:g}, not {value:g}")
    return float(value)


def _tile(tile: object) -> int | None:
    if tile is None:
        return None
    if isinstance(tile, bool) or not (
        isinstance(tile, numbers.Integral) or (isinstance(tile, float) and tile.is_integer())
    ):
        raise InvalidOptionError(f"tile must be a whole number (0 for no tiling), not {tile!r}")
    tile = int(tile)
    if tile != 0 and not MIN_TILE <= tile <= MAX_TILE:
        raise InvalidOptionError(f"tile must be 0 (no tiling) or between {MIN_TILE} and {MAX_TILE} pixels, not {tile}")
    return tile


def checked_flag(name: str, value: object) -> bool:
    """``value`` as a bool, if it is true or false (or 1 or 0).

    Raises:
        InvalidOptionError: it is not.
    """
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise InvalidOptionError(f"{name} must be true or false, not {value!r}")
    return bool(value)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidOptionError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
