"""Files written whole or not at all, and files' digests: what every writer in remaster goes through.

A result, a kept table, a downloaded weight file, a converted network or a video segment is
written under a temporary name beside its final path (:func:`partial_path`) and renamed onto
it only when complete, so a reader never sees half a file and a crash leaves only a temporary
name behind, which :data:`PARTIAL_NAME` recognises. The temporary name is a fresh one, not
``mkstemp``'s: its 0600 mode would stay on the result, where a fresh file gets the usual umask.

Nothing here imports more than the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["PARTIAL_NAME", "Partial", "atomic_file", "atomic_files", "file_digest", "partial_path", "sha256_of"]

PARTIAL_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.part")
"""The names :func:`partial_path` gives (a leading dot: hidden from folder listings)."""

_CHUNK = 1 << 20


def partial_path(path: Path, folder: Path | None = None) -> Path:
    """A fresh temporary name (``.NAME.HEX.part``) to write ``path`` under: beside it, or in ``folder`` (on the
    same file system), where a run that is killed leaves it for its own clean-up."""
    return (path.parent if folder is None else folder) / f".{path.name}.{uuid.uuid4().hex}.part"


class Partial:
    """One file being written under a temporary name: :meth:`commit` renames it onto ``path``, :meth:`abort`
    removes it. For writers that stay open across calls (a video segment); others use :func:`atomic_file`."""

    def __init__(self, path: Path, folder: Path | None = None) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path, folder)

    def commit(self) -> None:
        """Rename the finished file onto its final path."""
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        """Remove what was written; the final path is left as it was."""
        self.partial.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: Path, folder: Path | None = None) -> Iterator[str]:
    """A temporary name beside ``path`` (or in ``folder``) to write to; renamed to ``path`` if the block succeeds,
    removed if not.

    Folders made for ``path`` are removed again when the block fails and leaves them empty.
    """
    with atomic_files([Path(path)], folder) as (partial,):
        yield str(partial)


@contextlib.contextmanager
def atomic_files(paths: Sequence[Path], folder: Path | None = None) -> Iterator[list[Path]]:
    """Temporary names for several files that belong together (a converted network's ``.bin`` and ``.xml``);
    renamed onto ``paths`` in the order given if the block succeeds, so the last one says the set is whole;
    all removed if not."""
    paths = [Path(path) for path in paths]
    missing = sorted(
        {folder for path in paths for folder in (path.parent, *path.parent.parents) if not folder.exists()},
        key=lambda folder: len(folder.parts),
        reverse=True,
    )
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    partials = [Partial(path, folder) for path in paths]
    succeeded = False
    try:
        yield [partial.partial for partial in partials]
        for partial in partials:
            partial.commit()
        succeeded = True
    finally:
        for partial in partials:
            partial.abort()
        if not succeeded:
            for folder in missing:  # deepest first; one that holds something now stays
                with contextlib.suppress(OSError):
                    folder.rmdir()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path`` (any algorithm :mod:`hashlib` knows), read in chunks."""
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The file's SHA-256."""
    return file_digest(path, "sha256")
