"""The manifest: one Parquet row per source, kept in ``DEST/_remaster_manifest/``.

While a job runs, rows are written there as parts (``part-TIME-RUN.parquet``) every few seconds;
at the end (and every hundred parts) the parts are merged into ``manifest.parquet`` and removed.
The folder is one Parquet dataset at every moment: read it whole, and where a source has several
rows the last one written (parts after ``manifest.parquet``, in name order) is its current state.
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..options import Options
from ..video import VideoOptions
from .sources import Location

__all__ = ["FOLDER", "MERGED", "SCHEMA", "Manifest", "options_key"]

log = logging.getLogger(__name__)

FOLDER = "_remaster_manifest"
"""The manifest's folder inside DEST."""
MERGED = "manifest.parquet"
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
_FLUSH_ROWS = 1000
_FLUSH_SECONDS = 10.0
_MERGE_PARTS = 100


def options_key(options: Options, video: VideoOptions | None = None) -> str:
    """The options as the manifest records them: JSON, keys sorted, so equal options give equal text. A video's
    add how it is encoded (``video``), so that a change there redoes the videos and not the images."""
    value = asdict(options) if video is None else {**asdict(options), "video": video.describe()}
    return json.dumps(value, sort_keys=True)


class Manifest:
    """The manifest of one DEST: reading what is there, adding this run's rows, merging."""

    def __init__(self, dest: Location) -> None:
        self.dest = dest
        self.folder = dest.join(FOLDER)
        self._run = uuid.uuid4().hex[:8]
        self._pending: list[dict] = []
        self._flushed_at = time.monotonic()
        self._parts_written = 0

    def latest(self) -> dict[str, dict]:
        """Each source's current row (the last written), by source."""
        return {row["source"]: row for row in self._read(self._files()).to_pylist()}

    def add(self, row: dict) -> None:
        """Keep ``row`` (with the columns of :data:`SCHEMA`; ``finished_at`` as seconds since the epoch); it is
        written with the next part, within a few seconds or a thousand rows."""
        finished = row.get("finished_at")
        if isinstance(finished, (int, float)):
            row = {**row, "finished_at": datetime.fromtimestamp(finished, timezone.utc)}
        self._pending.append(row)
        if len(self._pending) >= _FLUSH_ROWS or time.monotonic() - self._flushed_at >= _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the rows kept so far as a new part; every hundred parts, merge."""
        self._flushed_at = time.monotonic()
        if not self._pending:
            return
        table = pa.Table.from_pylist(self._pending, schema=SCHEMA)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self._write(posixpath.join(self.folder, f"part-{stamp}-{self._run}.parquet"), table)
        self._pending = []
        self._parts_written += 1
        if self._parts_written % _MERGE_PARTS == 0:
            self.merge()

    def merge(self) -> str:
        """Write every source's current row into ``manifest.parquet`` and remove the parts; returns its URI."""
        self.flush()
        files = self._files()
        merged = posixpath.join(self.folder, MERGED)
        if files and files != [merged]:
            self._write(merged, self._read(files))
            parts = [path for path in files if path != merged]
            for path in parts:
                self.dest.filesystem.delete_file(path)
            log.info("merged %d manifest parts into %s", len(parts), merged)
        return self.dest.uri(merged)

    def _files(self) -> list[str]:
        selector = pafs.FileSelector(self.folder, allow_not_found=True)
        names = sorted(
            info.path
            for info in self.dest.filesystem.get_file_info(selector)
            if info.is_file and info.base_name.startswith("part-") and info.base_name.endswith(".parquet")
        )
        merged = posixpath.join(self.folder, MERGED)
        has_merged = self.dest.filesystem.get_file_info(merged).is_file
        return ([merged] if has_merged else []) + names

    def _read(self, files: list[str]) -> pa.Table:
        """The current row of each source in ``files`` (read in order; a later row replaces an earlier one)."""
        latest: dict[str, dict] = {}
        for path in files:
            for row in pq.read_table(path, filesystem=self.dest.filesystem, schema=SCHEMA).to_pylist():
                latest.pop(row["source"], None)
                latest[row["source"]] = row
        return pa.Table.from_pylist(list(latest.values()), schema=SCHEMA)

    def _write(self, path: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.dest.put(path, sink.getvalue().to_pybytes())
