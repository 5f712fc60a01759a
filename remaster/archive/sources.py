"""Where an archive's files are: SOURCE and DEST as file systems, the images SOURCE names, their output names.

SOURCE and DEST are local paths or URIs (``s3://``, ``gs://``, ``hdfs://``, ``abfs://`` through
pyarrow's file systems; any other scheme through fsspec). Credentials are read as those
libraries read them (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``…).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from ..atomic import atomic_file
from ..errors import SourceError
from ..video import MEDIA_SUFFIXES

__all__ = ["LIST_SUFFIXES", "Listing", "Location", "SourceError", "clashing", "list_sources", "locate", "output_stem"]

LIST_SUFFIXES = (".parquet", ".csv")
"""A SOURCE file with one of these suffixes is a list of paths, not an image."""
_LIST_COLUMNS = ("path", "source", "uri", "url")
_GLOB_CHARACTERS = "*?["
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Location:
    """A path on a file system, and the URI scheme it was named with (empty for a local path)."""

    filesystem: pafs.FileSystem
    path: str
    scheme: str = ""

    def uri(self, path: str) -> str:
        """``path`` (on this file system) as the user would write it: with the scheme, if there was one."""
        return f"{self.scheme}://{path}" if self.scheme else path

    def join(self, relative: str) -> str:
        """The path of ``relative`` (a ``/``-separated path) under this location."""
        return posixpath.join(self.path, relative) if self.path else relative

    @property
    def is_local(self) -> bool:
        """Whether this is the local disk, where a file is renamed into place rather than put."""
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` whole or not at all: on a local disk a temporary name beside it, then a
        rename; on an object store one upload, which the store shows only once it is complete.

        Raises:
            OSError: it could not be written.
        """
        if self.is_local:
            with atomic_file(Path(path)) as partial:
                Path(partial).write_bytes(data)
            return
        stream = self.filesystem.open_output_stream(path)
        stream.write(data)
        stream.close()

    def move_in(self, path: str, local: Path) -> None:
        """Move the local file ``local`` to ``path``, whole or not at all: a rename where both are on one disk,
        else a copy under a temporary name and a rename; to an object store, one streamed upload (removed again
        if it fails part-way). ``local`` is gone afterwards.

        Raises:
            OSError: it could not be written.
        """
        if self.is_local:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                os.replace(local, path)
                return
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
            with atomic_file(Path(path)) as partial:
                shutil.copyfile(local, partial)
        else:
            try:
                with open(local, "rb") as source, self.filesystem.open_output_stream(path) as stream:
                    shutil.copyfileobj(source, stream, _CHUNK)
            except BaseException:
                # An object store shows an upload once its stream is closed, complete or not.
                with contextlib.suppress(OSError):
                    self.filesystem.delete_file(path)
                raise
        local.unlink()

    def local_copy(self, path: str, folder: Path) -> Path:
        """The file at ``path`` as a local file: itself on a local disk, else a copy in ``folder`` (kept there,
        so that a second call finds it; made whole or not at all).

        Raises:
            OSError: it could not be read.
        """
        if self.is_local:
            return Path(path)
        info = self.filesystem.get_file_info(path)
        copy = folder / f"source{posixpath.splitext(path)[1]}"
        if copy.is_file() and (copy.stat().st_size, copy.stat().st_mtime_ns) == (info.size, info.mtime_ns):
            return copy
        with atomic_file(copy) as partial:
            with self.filesystem.open_input_stream(path) as stream, open(partial, "wb") as f:
                shutil.copyfileobj(stream, f, _CHUNK)
            if info.mtime_ns is not None:
                os.utime(partial, ns=(info.mtime_ns, info.mtime_ns))
        return copy


@dataclass(frozen=True)
class Listing:
    """The images SOURCE names: their paths (on ``location``'s file system), each with its path relative to ``base``."""

    location: Location
    base: str
    paths: list[str]
    missing: list[str]
    """Entries of a list file that name no file; they are reported as failed, not sent to workers."""
    sizes: dict[str, int] = field(default_factory=dict)
    """Each path's size in bytes, as the listing found it."""

    def relative(self, path: str) -> str:
        """``path`` relative to the base folder, ``/``-separated: the output's path under DEST."""
        return posixpath.relpath(path, self.base) if self.base else path.lstrip("/")


def locate(uri: str, filesystem: pafs.FileSystem | None = None) -> Location:
    """The file system and path that ``uri`` names.

    Args:
        filesystem: use this file system (a configured ``pyarrow.fs.S3FileSystem``, say) instead of
            the one the URI's scheme would give; the scheme is then only kept for display.

    Raises:
        SourceError: the scheme is known to neither pyarrow nor fsspec, or its library is missing.
    """
    scheme, _, rest = uri.partition("://") if "://" in uri else ("", "", uri)
    if filesystem is not None:
        return Location(filesystem, rest.rstrip("/") if scheme else _local_path(rest), scheme)
    if not scheme or scheme == "file":
        return Location(pafs.LocalFileSystem(), _local_path(rest), "")
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except ValueError:  # pyarrow.ArrowInvalid: a scheme pyarrow does not know
        fs, path = _fsspec(uri)
    except OSError as error:
        raise SourceError(f"Could not open {uri}: {error}") from None
    return Location(fs, path.rstrip("/"), scheme)


def _local_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _fsspec(uri: str) -> tuple[pafs.FileSystem, str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as error:
        raise SourceError(f"No file system for {uri}: {error}") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def list_sources(source: Location, dest: Location) -> Listing:
    """The images that SOURCE names: a folder's (recursively), a glob's matches, a Parquet/CSV list's entries,
    or one file. Hidden files and folders, and DEST when it lies inside SOURCE, are left out.

    Raises:
        SourceError: SOURCE names nothing, names no image, or is DEST itself.
    """
    fs = source.filesystem
    if _same_place(source, dest, source.path):
        raise SourceError("DEST is SOURCE itself: the results would overwrite the originals; choose another DEST")
    info = fs.get_file_info(source.path)
    if info.type == pafs.FileType.Directory:
        return _folder(source, dest, source.path, None)
    if info.type == pafs.FileType.File and source.path.lower().endswith(LIST_SUFFIXES):
        return _list_file(source)
    if info.type == pafs.FileType.File:
        return Listing(source, posixpath.dirname(source.path), [source.path], [], {source.path: info.size})
    if any(c in source.path for c in _GLOB_CHARACTERS):
        return _glob(source, dest)
    raise SourceError(f"No file, folder or match at {source.uri(source.path)}")


def _same_place(source: Location, dest: Location, path: str) -> bool:
    return type(source.filesystem) is type(dest.filesystem) and posixpath.normpath(path) == posixpath.normpath(
        dest.path
    )


def _folder(source: Location, dest: Location, base: str, pattern: str | None) -> Listing:
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    inside = type(source.filesystem) is type(dest.filesystem)
    sizes = {}
    for info in source.filesystem.get_file_info(selector):
        relative = posixpath.relpath(info.path, base) if base else info.path
        if not info.is_file or any(part.startswith(".") for part in relative.split("/")):
            continue
        if inside and (info.path + "/").startswith(dest.path.rstrip("/") + "/"):
            continue
        if posixpath.splitext(relative)[1].lower() not in MEDIA_SUFFIXES:
            continue
        if pattern is None or _matches(relative, pattern):
            sizes[info.path] = info.size
    if not sizes:
        what = f"matching {pattern}" if pattern else ""
        raise SourceError(
            f"No images or videos {what} in {source.uri(base)} (looked for {', '.join(MEDIA_SUFFIXES)})".replace(
                "  ", " "
            )
        )
    return Listing(source, base, sorted(sizes), [], sizes)


def _glob(source: Location, dest: Location) -> Listing:
    parts = source.path.split("/")
    fixed = next(i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARACTERS))
    base = "/".join(parts[:fixed]) or ("/" if source.path.startswith("/") else "")
    return _folder(source, dest, base, "/".join(parts[fixed:]))


def _matches(relative: str, pattern: str) -> bool:
    return re.fullmatch(_glob_regex(pattern), relative) is not None


def _glob_regex(pattern: str) -> str:
    """``pattern`` as a regular expression with glob's meaning: ``*`` and ``?`` stay within a folder, ``**/``
    is any number of folders (none too), ``[...]`` a set of characters (``[!...]`` its complement)."""
    parts, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
            continue
        char = pattern[index]
        end = pattern.find("]", index + 2) if char == "[" else -1
        if pattern.startswith("**", index):
            parts.append(".*")
            index += 1
        elif char in "*?":
            parts.append("[^/]*" if char == "*" else "[^/]")
        elif end > 0:
            inside = pattern[index + 1 : end]
            parts.append("[" + ("^" + inside[1:] if inside.startswith("!") else inside).replace("\\", "\\\\") + "]")
            index = end
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts)


def _list_file(source: Location) -> Listing:
    table = _read_list(source)
    names = [name.lower() for name in table.column_names]
    column = next((table.column_names[names.index(c)] for c in _LIST_COLUMNS if c in names), table.column_names[0])
    entries = [str(value) for value in table.column(column).to_pylist() if value not in (None, "")]
    if not entries:
        raise SourceError(f"The list {source.uri(source.path)} has no paths in its column {column!r}")
    folder = posixpath.dirname(source.path)
    located = _entries_location(source, entries)
    if located is None:
        paths = [_entry_path(folder, entry) for entry in entries]
    else:
        paths = [locate(entry, located.filesystem).path for entry in entries]
        source = Location(located.filesystem, "", located.scheme)
    paths = list(dict.fromkeys(paths))
    infos = source.filesystem.get_file_info(paths)
    found = {info.path: info.size for info in infos if info.is_file}
    missing = [source.uri(info.path) for info in infos if not info.is_file]
    base = posixpath.commonpath([posixpath.dirname(p) for p in found]) if found else ""
    if base == "/" and not paths[0].startswith("/"):
        base = ""
    return Listing(source, base, list(found), missing, found)


def _read_list(source: Location):
    import pyarrow.csv
    import pyarrow.parquet as pq

    try:
        if source.path.lower().endswith(".parquet"):
            return pq.read_table(source.path, filesystem=source.filesystem)
        with source.filesystem.open_input_stream(source.path) as stream:
            return pyarrow.csv.read_csv(stream)
    except (OSError, pafs.ArrowInvalid) as error:
        raise SourceError(f"Could not read the list {source.uri(source.path)}: {error}") from None


def _entries_location(source: Location, entries: list[str]) -> Location | None:
    """The file system the entries name with their own URI scheme, or None when they are paths on the list's own."""
    schemes = {entry.partition("://")[0] if "://" in entry else "" for entry in entries}
    if schemes == {""}:
        return None
    if len(schemes) > 1:
        raise SourceError(f"The list's paths are on several file systems ({', '.join(sorted(schemes))}); use one")
    scheme = schemes.pop()
    if scheme == source.scheme:
        return Location(source.filesystem, "", scheme)
    return locate(entries[0])


def _entry_path(folder: str, entry: str) -> str:
    return posixpath.normpath(entry if entry.startswith("/") else posixpath.join(folder, entry))


def clashing(relatives: Iterable[str]) -> set[str]:
    """The sources whose outputs could take one name: those sharing a folder and a stem (``a.png``, ``a.tif``)."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for relative in relatives:
        folder, name = posixpath.split(relative)
        groups[folder, posixpath.splitext(name)[0].lower()].append(relative)
    return {relative for group in groups.values() if len(group) > 1 for relative in group}


def output_stem(relative: str, clashes: set[str] | frozenset[str]) -> str:
    """The output's path under DEST without its extension: the source's own, or for a clashing
    name its whole name (``scan.tif`` → ``scan.tif.png`` beside ``scan.png`` → ``scan.png.png``)."""
    return relative if relative in clashes else posixpath.splitext(relative)[0]
