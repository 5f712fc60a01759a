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

from . import image_io
from .image_io import Picture
from .options import Options
from .pipeline import Enhancer, Report

__all__ = ["FileResult", "remaster_file", "unique_name"]

_KEEPS = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


@dataclass(frozen=True)
class FileResult:
    """A written result, what was done, and the (first) frame in and out, in memory, for previews."""

    path: Path
    report: Report
    first_input: Picture
    first_output: Image.Image | np.ndarray


def remaster_file(
    enhancer: Enhancer,
    source: str | Path,
    target: Path,
    options: Options | None = None,
    *,
    progress: Callable[..., object] | None = None,
    cancel: threading.Event | None = None,
) -> FileResult:
    """Remaster ``source`` and write it to ``target`` with the right extension added.

    Args:
        source: an image file; animated GIF, WebP and PNG files are done frame by frame.
        target: the output path without its extension.
        options: the request's choices. Stills are written as ``options.output_format``
            (``auto``: JPEG and WebP inputs keep their format, others, and anything with
            transparency or 16 bits, become PNG); animations as ``options.animation_format``
            (``auto``: the input's own).

    Raises:
        RemasterError: the image could not be remastered (the message says why).
        ValueError: the format cannot hold the result (a JPEG animation).
        OSError: the file could not be written; nothing is left behind.
    """
    options = options if options is not None else Options()
    source = Path(source)
    animation = image_io.read_animation(source, enhancer.settings.max_input_pixels)
    if animation is not None:
        requested = options.animation_format
        fmt = image_io.animation_format(animation) if requested == "auto" else requested
        if fmt not in image_io.ANIMATION_FORMATS:
            raise ValueError(f"{fmt.upper()} cannot hold an animation; use gif, webp or png")
        frames, report = enhancer.run_animation(animation, options, progress=progress, cancel=cancel)
        path = image_io.save_animation(
            frames,
            _with_suffix(target, fmt),
            fmt,
            animation.durations,
            animation.loop,
            options.quality,
            report.description(),
        )
        first = image_io.decode(animation.frames[0], max_pixels=enhancer.settings.max_input_pixels)
        return FileResult(path, report, first, frames[0])
    picture = image_io.decode(source, enhancer.settings.max_input_pixels)
    result, report = enhancer.run(picture, options, progress=progress, cancel=cancel)
    fmt = _still_format(options.output_format, source, result)
    path = image_io.save(
        result, _with_suffix(target, fmt), fmt, quality=options.quality, description=report.description()
    )
    return FileResult(path, report, picture, result)


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
