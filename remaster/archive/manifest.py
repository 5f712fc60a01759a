"""The manifest: one Parquet row per source, kept in ``DEST/_remaster_manifest/``.

Each worker writes a file's row as a part of its own (``part-TIME-WORKER.parquet``) as soon as it has
moved the output into DEST, so that whatever stops the job, no output is in DEST without its row but
those whose rows were being written at that moment (one a worker at most, done again). The driver
gathers the rows as they come back into parts of its own every few seconds and then removes the workers'
parts those hold; at the end (and every hundred parts) all parts are merged into ``manifest.parquet`` and
removed. The folder is one Parquet dataset at every moment: read it whole, and where a source has several
rows the last one written (parts after ``manifest.parquet``, in name order) is its current state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..options import Options
from ..video import VideoOptions
from .sources import Location

__all__ = [
    "FOLDER",
    "MERGED",
    "SCHEMA",
    "SEGMENTS",
    "SEGMENTS_MERGED",
    "SEGMENTS_SCHEMA",
    "Manifest",
    "merge_segments",
    "read_segments",
    "options_key",
    "rows_written_by",
    "write_part",
    "write_segment",
]

log = logging.getLogger(__name__)

FOLDER = "_remaster_manifest"
"""The manifest's folder inside DEST."""
MERGED = "manifest.parquet"
SEGMENTS_MERGED = "segments.parquet"
SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("output", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("input_bytes", pa.int64()),
        ("output_bytes", pa.int64()),
        ("input_width", pa.int32()),
        ("input_height", pa.int32()),
        ("output_width", pa.int32()),
        ("output_height", pa.int32()),
        ("frames", pa.int32()),
        ("resumed_frames", pa.int32()),
        ("model", pa.string()),
        ("options", pa.string()),
        ("seconds", pa.float64()),
        ("output_sha256", pa.string()),
        ("worker", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)
"""One row per remastered (or failed) source. ``status`` is ``done`` or ``failed``; ``error`` says why it failed;
``options`` is the whole :class:`~remaster.Options` as JSON (a video's with its ``video`` options); ``frames`` are
a video's or animation's frames, ``resumed_frames`` those of a video that an earlier attempt had finished (its
worker died, or the job was stopped); ``worker`` is ``host:pid`` of the worker."""
SEGMENTS = f"{FOLDER}/_segments"
"""Where in DEST the segments table is kept: one row per part of a video (a name Parquet readers of the manifest
folder pass over)."""
SEGMENTS_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("segment", pa.int32()),
        ("first_frame", pa.int64()),
        ("frames", pa.int32()),
        ("worker", pa.string()),
        ("seconds", pa.float64()),
        ("status", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)
"""One row per part of a video an archive job made (``status`` ``done``) or could not make (``failed``): which video
(its source URI), the part's number, its first output frame and frames, the worker (``host:pid``) and its seconds.
Read it with ``pandas.read_parquet("DEST/_remaster_manifest/_segments")``."""
_FLUSH_ROWS = 1000
_FLUSH_SECONDS = 10.0
_MERGE_PARTS = 100
_DELETING_THREADS = 8
"""Workers' parts removed at once (an object store's deletes are one request each)."""


def options_key(options: Options, video: VideoOptions | None = None) -> str:
    """The options as the manifest records them: JSON, keys sorted, so equal options give equal text. A video's
    add how it is encoded (``video``), so that a change there redoes the videos and not the images."""
    value = asdict(options) if video is None else {**asdict(options), "video": video.describe()}
    return json.dumps(value, sort_keys=True)


def write_part(dest: Location, rows: list[dict], writer: str) -> str:
    """Write ``rows`` (with the columns of :data:`SCHEMA`; ``finished_at`` as a datetime or as seconds since the
    epoch) into DEST's manifest as a new part, whole or not at all, named by the time and ``writer``; its path.

    Raises:
        OSError: it could not be written.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = posixpath.join(dest.join(FOLDER), f"part-{stamp}-{writer}.parquet")
    _put_table(dest, path, pa.Table.from_pylist([_with_timestamp(row) for row in rows], schema=SCHEMA))
    return path


def rows_written_by(dest: Location, writer: str) -> dict[str, tuple[dict, str]]:
    """The rows in those of DEST's manifest parts that ``writer`` wrote and are still there (the driver removes
    them once it holds their rows), by source, each with its part."""
    rows = {}
    for part in _parts(dest, writer):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: its rows are the driver's
            for row in pq.read_table(part, filesystem=dest.filesystem, schema=SCHEMA).to_pylist():
                rows[row["source"]] = (row, part)
    return rows


def _parts(dest: Location, writer: str = "") -> list[str]:
    """The paths of DEST's manifest parts (those ``writer`` wrote, if given), in name order."""
    selector = pafs.FileSelector(dest.join(FOLDER), allow_not_found=True)
    ending = f"-{writer}.parquet" if writer else ".parquet"
    return sorted(
        info.path
        for info in dest.filesystem.get_file_info(selector)
        if info.is_file and info.base_name.startswith("part-") and info.base_name.endswith(ending)
    )


def _put_table(dest: Location, path: str, table: pa.Table) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    dest.put(path, sink.getvalue().to_pybytes())


def _with_timestamp(row: dict) -> dict:
    finished = row.get("finished_at")
    if isinstance(finished, (int, float)):
        return {**row, "finished_at": datetime.fromtimestamp(finished, timezone.utc)}
    return row


class Manifest:
    """The manifest of one DEST: reading what is there, adding this run's rows, merging."""

    def __init__(self, dest: Location) -> None:
        self.dest = dest
        self.folder = dest.join(FOLDER)
        self._run = uuid.uuid4().hex[:8]
        self._pending: list[dict] = []
        self._covered: list[str] = []
        """Workers' parts whose rows are pending here: removed once those are written."""
        self._flushed_at = time.monotonic()
        self._parts_written = 0

    def latest(self) -> dict[str, dict]:
        """Each source's current row (the last written), by source."""
        return {row["source"]: row for row in self._read(self._files()).to_pylist()}

    def add(self, row: dict, written_in: str | None = None) -> None:
        """Keep ``row`` (with the columns of :data:`SCHEMA`; ``finished_at`` as seconds since the epoch); it is
        written with the next part, within a few seconds or a thousand rows. ``written_in`` is the part a worker
        wrote it in already, removed once this one is written."""
        self._pending.append(_with_timestamp(row))
        if written_in is not None:
            self._covered.append(written_in)
        if len(self._pending) >= _FLUSH_ROWS or time.monotonic() - self._flushed_at >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the rows kept so far as a new part and remove the workers' parts it holds; every hundred parts,
        merge."""
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        write_part(self.dest, self._pending, self._run)
        self._pending = []
        covered, self._covered = self._covered, []
        self._delete(covered)
        self._parts_written += 1
        if self._parts_written % _MERGE_PARTS == 0:
            self.merge()

    def merge(self) -> str:
        """Write every source's current row into ``manifest.parquet`` and remove the parts; returns its URI."""
        self.flush()
        files = self._files()
        merged = posixpath.join(self.folder, MERGED)
        if files and files != [merged]:
            _put_table(self.dest, merged, self._read(files))
            parts = [path for path in files if path != merged]
            self._delete(parts)
            log.info("merged %d manifest parts into %s", len(parts), merged)
        return self.dest.uri(merged)

    def _delete(self, parts: list[str]) -> None:
        """Remove ``parts``; one that is gone already (merged) is passed over."""
        if len(parts) <= 1 or self.dest.is_local:
            for path in parts:
                self._delete_one(path)
            return
        with ThreadPoolExecutor(_DELETING_THREADS) as pool:
            list(pool.map(self._delete_one, parts))

    def _delete_one(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.dest.filesystem.delete_file(path)

    def _files(self) -> list[str]:
        merged = posixpath.join(self.folder, MERGED)
        has_merged = self.dest.filesystem.get_file_info(merged).is_file
        return ([merged] if has_merged else []) + _parts(self.dest)

    def _read(self, files: list[str]) -> pa.Table:
        """The current row of each source in ``files`` (read in order; a later row replaces an earlier one)."""
        latest: dict[str, dict] = {}
        for path in files:
            for row in pq.read_table(path, filesystem=self.dest.filesystem, schema=SCHEMA).to_pylist():
                latest.pop(row["source"], None)
                latest[row["source"]] = row
        return pa.Table.from_pylist(list(latest.values()), schema=SCHEMA)


def write_segment(
    dest: Location, video: str, segment: int, first: int, frames: int, worker: str, seconds: float, status: str
) -> None:
    """Write one part's row into DEST's segments table, as a part of its own.

    Raises:
        OSError: it could not be written.
    """
    row = {
        "video": video,
        "segment": segment,
        "first_frame": first,
        "frames": frames,
        "worker": worker,
        "seconds": seconds,
        "status": status,
        "finished_at": datetime.now(timezone.utc),
    }
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    path = posixpath.join(dest.join(SEGMENTS), f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet")
    _put_table(dest, path, pa.Table.from_pylist([row], schema=SEGMENTS_SCHEMA))


def _segment_files(dest: Location) -> list[str]:
    """The files of DEST's segments table: the merged one (the earlier runs' rows) first, then the parts."""
    selector = pafs.FileSelector(dest.join(SEGMENTS), allow_not_found=True)
    merged = _merged_segments(dest)
    return sorted(
        (
            info.path
            for info in dest.filesystem.get_file_info(selector)
            if info.is_file and info.path.endswith(".parquet")
        ),
        key=lambda path: (path != merged, path),
    )


def _merged_segments(dest: Location) -> str:
    return posixpath.join(dest.join(SEGMENTS), SEGMENTS_MERGED)


def _read_segments(dest: Location, files: list[str]) -> pa.Table:
    """The rows of these files of the segments table, in their order."""
    if not files:
        return SEGMENTS_SCHEMA.empty_table()
    return pa.concat_tables([pq.read_table(path, filesystem=dest.filesystem, schema=SEGMENTS_SCHEMA) for path in files])


def read_segments(dest: Location) -> list[dict]:
    """Every row of DEST's segments table, merged or not yet (see :data:`SEGMENTS_SCHEMA`).

    Raises:
        OSError: the table could not be read.
    """
    return _read_segments(dest, _segment_files(dest)).to_pylist()


def merge_segments(dest: Location) -> None:
    """Gather the segments table's parts into one file (``segments.parquet``), every row kept: the table is a
    record of the work, a part made twice (its worker died) in it twice."""
    files = _segment_files(dest)
    merged = _merged_segments(dest)
    if not files or files == [merged]:
        return
    _put_table(dest, merged, _read_segments(dest, files))
    for path in files:
        if path != merged:
            with contextlib.suppress(FileNotFoundError):
                dest.filesystem.delete_file(path)
