"""Remastering files: a still image or every frame of an animation in, a written file out.

The command line, the page and batches all come through :func:`remaster_file`, so a
file is read, limited, remastered and written the same way wherever it comes from.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import imageio
from .pipeline import Enhancer, Report

__all__ = ["FileResult", "remaster_file", "unique_name"]

_KEEPS = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


@dataclass(frozen=True)
class FileResult:
    """A written result, what was done, and the first frame in and out (for previews)."""

    path: Path
    report: Report
    first_input: Image.Image | str | Path
    first_output: Image.Image | np.ndarray


def remaster_file(
    enhancer: Enhancer,
    source: str | Path,
    target: Path,
    still_format: str = "auto",
    animation_format: str = "auto",
    quality: int | None = None,
    progress: Callable[..., object] | None = None,
    cancel: threading.Event | None = None,
    **options: object,
) -> FileResult:
    """Remaster ``source`` and write it to ``target`` with the right extension added.

    Args:
        source: an image file; animated GIF, WebP and PNG files are done frame by frame.
        target: the output path without its extension.
        still_format: ``png``, ``jpg``, ``webp``, or ``auto``: JPEG and WebP inputs keep their
            format, others (and anything with transparency or 16 bits) become PNG.
        animation_format: ``gif``, ``webp``, ``png`` (APNG), or ``auto``: the input's own.
        quality: for JPEG and lossy WebP.
        options: :meth:`Enhancer.run`'s options (model, outscale, tile, face_enhance, …).

    Raises:
        RemasterError: the image could not be remastered (the message says why).
        ValueError: the format cannot hold the result (a JPEG animation, a GIF still).
        OSError: the file could not be written; nothing is left behind.
    """
    source = Path(source)
    animation = imageio.read_animation(source, enhancer.settings.max_input_pixels)
    if animation is not None:
        fmt = imageio.animation_format(animation) if animation_format == "auto" else animation_format
        if fmt not in imageio.ANIMATION_FORMATS:
            raise ValueError(f"{fmt.upper()} cannot hold an animation; use gif, webp or png")
        frames, report = enhancer.run_animation(animation, **options, progress=progress, cancel=cancel)
        path = imageio.save_animation(
            frames, _with_suffix(target, fmt), fmt, animation.durations, animation.loop, quality, report.description()
        )
        return FileResult(path, report, animation.frames[0], frames[0])
    if still_format not in ("auto", *imageio.OUTPUT_FORMATS):
        raise ValueError(f"{still_format.upper()} output is for animations; use png, jpg or webp for a still image")
    result, report = enhancer.run(source, **options, progress=progress, cancel=cancel)
    fmt = _still_format(still_format, source, result)
    path = imageio.save(result, _with_suffix(target, fmt), fmt, quality=quality, description=report.description())
    return FileResult(path, report, source, result)


def unique_name(stem: str, taken: Collection[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``… : the first that is not in ``taken``."""
    candidate, number = stem, 2
    while candidate in taken:
        candidate, number = f"{stem}_{number}", number + 1
    return candidate


def _still_format(requested: str, source: Path, result: Image.Image | np.ndarray) -> str:
    if requested != "auto":
        return requested
    fmt = _KEEPS.get(source.suffix.lower(), "png")
    lossless_only = isinstance(result, np.ndarray) or result.mode in ("RGBA", "LA", "I;16")
    return "png" if fmt == "jpg" and lossless_only else fmt


def _with_suffix(target: Path, fmt: str) -> Path:
    return target.with_name(f"{target.name}.{fmt}")
