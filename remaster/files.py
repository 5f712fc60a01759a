"""Remastering files: a still image or every frame of an animation in, a written file out.

The command line, the page and batches all come through :func:`remaster_file`, so a
file is read, limited, remastered, named and written the same way wherever it comes from.
Results are named ``NAME_MODEL_xSCALE.EXT`` (:func:`output_stem`); the command line's
``--suffix`` (the official script's option) makes it ``NAME_SUFFIX.EXT`` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import animation, image_io
from .errors import InvalidOptionError
from .image_io import Picture
from .options import Options
from .pipeline import Enhancer, Report

__all__ = ["FileResult", "output_stem", "remaster_file", "unique_name"]

_KEEPS = {".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


@dataclass(frozen=True)
class FileResult:
    """A written result, what was done, and the (first) frame in and out, in memory, for previews."""

    path: Path
    report: Report
    first_input: Picture
    first_output: Image.Image | np.ndarray
    notes: tuple[str, ...] = ()
    """What the output could not keep as asked, a sentence each (a format changed, EXIF left out)."""

    def summary(self) -> str:
        """The report's line, followed by the notes on the file."""
        return "".join([self.report.summary(), *(f" Note: {note}." for note in self.notes)])


def output_stem(stem: str, options: Options, suffix: str | None = None) -> str:
    """The result's name without its extension, from the input's: ``NAME_MODEL_xSCALE``, or ``NAME_SUFFIX``
    when a suffix is given."""
    if suffix is not None:
        return f"{stem}_{suffix}" if suffix else stem
    return f"{stem}_{options.model}_x{options.outscale:g}"


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
        InvalidOptionError: the format cannot hold the result (a JPEG animation).
        OSError: the file could not be written; nothing is left behind.
    """
    options = options if options is not None else Options()
    source = Path(source)
    frames = animation.read_animation(source, enhancer.settings.max_input_pixels)
    if frames is not None:
        return _remaster_animation(enhancer, frames, target, options, progress, cancel)
    picture = image_io.decode(source, enhancer.settings.max_input_pixels)
    result, report = enhancer.run(picture, options, progress=_before_saving(progress), cancel=cancel)
    notes: list[str] = []
    pages = image_io.page_count(source)
    if pages > 1:
        notes.append(f"the file holds {pages} images (pages or layers); the first was remastered")
    fmt = _still_format(options.output_format, source, result, notes)
    if progress is not None:
        progress(_SAVING, f"Saving the {fmt.upper()}")
    path = image_io.save(
        result,
        _with_suffix(target, fmt),
        fmt,
        quality=options.quality,
        description=report.description(),
        notes=notes,
        png_compression=options.png_compression,
        metadata=picture.metadata,
    )
    if progress is not None:
        progress(1.0, "Done")
    return FileResult(path, report, picture, result, tuple(notes))


_SAVING = 0.97
"""Where saving starts on a still's progress: encoding a large PNG takes seconds."""


def _before_saving(progress: Callable[..., object] | None) -> Callable[..., object] | None:
    """``progress`` with the remastering's fractions scaled to end where saving starts."""
    if progress is None:
        return None
    return lambda fraction, desc=None: progress(fraction * _SAVING, desc)


def _remaster_animation(
    enhancer: Enhancer,
    frames: animation.Animation,
    target: Path,
    options: Options,
    progress: Callable[..., object] | None,
    cancel: threading.Event | None,
) -> FileResult:
    requested = options.animation_format
    fmt = animation.animation_format(frames) if requested == "auto" else requested
    if fmt not in animation.ANIMATION_FORMATS:
        raise InvalidOptionError(f"{fmt.upper()} cannot hold an animation; use gif, webp or png")
    results, report = enhancer.run_animation(frames, options, progress=progress, cancel=cancel)
    path = animation.save_animation(
        results, _with_suffix(target, fmt), fmt, frames.durations, frames.loop, options.quality, report.description()
    )
    first = image_io.decode(frames.frames[0], max_pixels=enhancer.settings.max_input_pixels)
    notes = ("16-bit frames were written at 8 bits, which GIF and WebP hold",) if _deep(first) and fmt != "png" else ()
    return FileResult(path, report, first, results[0], notes)


def _deep(picture: Picture) -> bool:
    return picture.pixels.dtype != np.uint8


def unique_name(stem: str, taken: Collection[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``… : the first that is not in ``taken``."""
    candidate, number = stem, 2
    while candidate in taken:
        candidate, number = f"{stem}_{number}", number + 1
    return candidate


def _still_format(requested: str, source: Path, result: Image.Image | np.ndarray, notes: list[str]) -> str:
    """The format to write: the one asked for, unless it cannot hold the result (then PNG, or TIFF for float)."""
    deep = isinstance(result, np.ndarray) or result.mode in ("I;16", "F")
    transparent = (isinstance(result, np.ndarray) and result.shape[2] in (2, 4)) or (
        isinstance(result, Image.Image) and result.mode in ("RGBA", "LA")
    )
    floating = isinstance(result, Image.Image) and result.mode == "F"
    if requested == "auto":
        fmt = _KEEPS.get(source.suffix.lower(), "png")
        if floating:
            return "tiff"
        return "png" if fmt == "jpg" and (deep or transparent) else fmt
    if requested == "jpg" and transparent:
        notes.append("JPEG cannot hold transparency, so the result was written as PNG")
        return "png"
    if requested in ("jpg", "webp") and deep:
        notes.append(f"{requested.upper()} holds 8 bits per channel, so the 16-bit or float result was reduced to 8")
    return requested


def _with_suffix(target: Path, fmt: str) -> Path:
    return target.with_name(f"{target.name}.{fmt}")
