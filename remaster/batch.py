"""Batches: several files, or zips of them, in; one zip of results and a list of what failed, out.

Images, animations and videos alike: a video is remastered by :mod:`remaster.video` with the
default video options (H.264, every frame at its own time).

A zip is bounded before anything is extracted (member count, total uncompressed size),
members are read with their declared size as a hard limit, and their names are never
used as paths: each is written under a generated name, and results are named after a
sanitised copy of the member's base name. One bad file never sinks the batch.
"""

from __future__ import annotations

import re
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_file
from .errors import RemasterError, StoppedError
from .files import FileResult, output_stem, remaster_file, unique_name
from .options import Options
from .pipeline import Enhancer
from .video import MEDIA_SUFFIXES, is_video

if TYPE_CHECKING:
    from .video import VideoOptions, VideoResult

__all__ = ["BatchResult", "expand_inputs", "remaster_any", "run_batch", "safe_stem"]


@dataclass
class BatchResult:
    """The zip of results, what went into it, and what failed (name, reason)."""

    archive: Path
    done: list[tuple[str, str]] = field(default_factory=list)
    """(input name, result name inside the zip)."""
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """Markdown: counts, then each failure with its reason."""
        lines = [f"**{len(self.done)} remastered, {len(self.failed)} failed.**"]
        lines += [f"- {name} → {result}" for name, result in self.done]
        lines += [f"- ❌ **{name}**: {reason}" for name, reason in self.failed]
        return "\n".join(lines)


def safe_stem(name: str) -> str:
    """A file-name stem from any name a user or a zip supplied: its base name, letters, digits, ._- only."""
    base = re.split(r"[\\/]", name)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return cleaned[:80] or "image"


def expand_inputs(
    paths: Sequence[Path], workdir: Path, max_files: int, max_bytes: int
) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """The images to do: files as given, and zips' image members extracted under generated names.

    Returns (display name, path) for each image and (name, reason) for each thing skipped.
    """
    items: list[tuple[str, Path]] = []
    failed: list[tuple[str, str]] = []
    for path in paths:
        display = Path(path).name
        if zipfile.is_zipfile(path):
            _expand_zip(Path(path), display, workdir, max_files, max_bytes, items, failed)
        elif len(items) >= max_files:
            failed.append((display, f"more than {max_files} files in one batch; this one was skipped"))
        else:
            items.append((display, Path(path)))
    return items, failed


def _expand_zip(
    path: Path,
    display: str,
    workdir: Path,
    max_files: int,
    max_bytes: int,
    items: list[tuple[str, Path]],
    failed: list[tuple[str, str]],
) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) > 10 * max_files:
                failed.append((display, f"holds {len(members)} entries; a batch takes at most {max_files} images"))
                return
            images = [m for m in members if _is_image_member(m.filename)]
            failed.extend(
                (f"{display}: {m.filename}", "not an image file; skipped")
                for m in members
                if m not in images and not _is_hidden(m.filename)
            )
            total = sum(m.file_size for m in images)
            if total > max_bytes:
                failed.append(
                    (
                        display,
                        f"holds {total / 2**20:.0f} MB of images uncompressed, more than the "
                        f"{max_bytes / 2**20:.0f} MB a batch may hold; split it",
                    )
                )
                return
            for member in images:
                name = f"{display}: {member.filename}"
                if len(items) >= max_files:
                    failed.append((name, f"more than {max_files} files in one batch; skipped"))
                    continue
                with archive.open(member) as stream:
                    data = stream.read(member.file_size + 1)
                if len(data) > member.file_size:
                    failed.append((name, "larger than its zip entry declares; skipped"))
                    continue
                extracted = workdir / f"{uuid.uuid4().hex}{Path(member.filename).suffix.lower()}"
                extracted.write_bytes(data)
                items.append((member.filename, extracted))
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as error:
        failed.append((display, f"the zip could not be read ({error})"))


def _is_hidden(name: str) -> bool:
    parts = [part for part in re.split(r"[\\/]", name) if part not in ("", ".", "..")]
    return name.startswith("__MACOSX/") or any(part.startswith(".") for part in parts)


def _is_image_member(name: str) -> bool:
    return not _is_hidden(name) and Path(name).suffix.lower() in MEDIA_SUFFIXES


def run_batch(
    enhancer: Enhancer,
    paths: Sequence[Path],
    archive: Path,
    options: Options | None = None,
    *,
    video: VideoOptions | None = None,
    progress: Callable[..., object] | None = None,
    cancel: threading.Event | None = None,
) -> BatchResult:
    """Remaster every image in ``paths`` (files or zips) as ``options`` say, into the zip ``archive``; videos as
    ``video`` says (the default video options when None).

    A file that fails is listed with its reason and the rest go on; cancellation stops the
    whole batch.

    Raises:
        StoppedError: the batch was cancelled.
        OSError: the zip of results could not be written; nothing is left behind.
    """
    options = options if options is not None else Options()
    settings = enhancer.settings
    result = BatchResult(archive=archive)
    with tempfile.TemporaryDirectory(prefix="remaster-batch-") as work:
        workdir = Path(work)
        items, result.failed = expand_inputs(paths, workdir, settings.max_batch_files, settings.max_batch_mb * 2**20)
        written: list[Path] = []
        used: set[str] = set()
        for index, (display, path) in enumerate(items):
            stem = unique_name(output_stem(safe_stem(display), options), used)
            used.add(stem)

            def file_progress(fraction: float, desc: str | None = None, index: int = index, display: str = display):
                if progress is not None:
                    progress((index + fraction) / len(items), f"{index + 1} of {len(items)}: {display}")

            try:
                done = remaster_any(
                    enhancer, path, workdir / "out" / stem, options, video=video, progress=file_progress, cancel=cancel
                )
            except StoppedError as error:
                if cancel is not None and cancel.is_set():
                    raise
                result.failed.append((display, str(error)))
                continue
            except (RemasterError, ValueError, OSError) as error:
                result.failed.append((display, str(error)))
                continue
            written.append(done.path)
            result.done.append((display, done.path.name))
        _write_zip(archive, written, result)
    return result


def remaster_any(
    enhancer: Enhancer,
    path: Path,
    target: Path,
    options: Options,
    *,
    video: VideoOptions | None = None,
    progress: Callable[..., object] | None = None,
    cancel: threading.Event | None = None,
) -> FileResult | VideoResult:
    """A still or animation through :func:`remaster_file`, a video through :func:`remaster.video.remaster_video`
    (encoded as ``video`` says; the default video options when None)."""
    if is_video(path):
        from .video import remaster_video

        return remaster_video(path, target, options, video, enhancer=enhancer, progress=progress, cancel=cancel)
    return remaster_file(enhancer, path, target, options, progress=progress, cancel=cancel)


def _write_zip(archive: Path, files: list[Path], result: BatchResult) -> None:
    with atomic_file(archive) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as out:
        for path in files:
            out.write(path, arcname=path.name)
        if result.failed:
            out.writestr("errors.txt", "".join(f"{name}: {reason}\n" for name, reason in result.failed))
