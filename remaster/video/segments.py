"""The state of a video job on disk, so that a job stopped or killed continues where it was.

A job owns one folder beside its result, ``.NAME.EXT.remaster-video/`` (the result's own
name, hidden), holding:

- ``lock``: held by the run working on the job, so that a second run on the same result is
  refused rather than writing the same segments at once.
- ``job.json``: what the job is (the input's fingerprint, every option, the output plan,
  remaster's version). A run that finds a different job there starts afresh.
- ``000000.nut``, ``000001.nut``…: finished segments, each some output frames (a fixed number,
  or as many as about :data:`SEGMENT_SECONDS` of work made) encoded with the job's codec,
  starting on a keyframe (each has its own encoder), written under a temporary name and renamed
  when complete.
- ``000000.json``…: each segment's packet times as the encoder gave them (no container
  keeps them all exactly: MKV rounds them to milliseconds, NUT drops negative decoding
  times, MP4 shifts a segment that does not start at zero). Written last: a segment counts
  as finished only when its ``.json`` is there.

The folder is deleted when the result is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import av

from ..atomic import Partial, atomic_file
from ..locks import LOCK, lock_folder

if TYPE_CHECKING:
    from .encoding import OutputPlan

__all__ = ["JobState", "Segment", "SegmentStore", "SegmentWriter", "fingerprint", "state_folder"]

log = logging.getLogger(__name__)

_SAMPLE = 1 << 20


def state_folder(target: Path) -> Path:
    """Where the job that writes ``target`` keeps its state."""
    return target.parent / f".{target.name}.remaster-video"


def fingerprint(path: Path) -> str:
    """The file's size and a hash of its first and last megabyte: the same file, wherever it was copied."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_SAMPLE))
        if size > 2 * _SAMPLE:
            f.seek(size - _SAMPLE)
            digest.update(f.read(_SAMPLE))
    return f"{size}:{digest.hexdigest()}"


@dataclass(frozen=True)
class Segment:
    """A finished segment: output frames ``first`` to ``first + frames - 1``, and its packets' times."""

    index: int
    first: int
    frames: int
    packets: list[list[int | None]]
    """[pts, dts, duration] of each packet, in the order written, in the plan's time base."""
    path: Path


class JobState:
    """The folder of one job: its manifest and its finished segments, locked while a run works in it.

    ``segment_frames`` fixes the output frames of every segment; None sizes each by the time its work takes.
    """

    def __init__(self, folder: Path, segment_frames: int | None, lock: IO[bytes] | None = None) -> None:
        self.folder = folder
        self.segment_frames = segment_frames
        self._lock = lock

    @classmethod
    def open(cls, target: Path, identity: dict[str, object], segment_frames: int | None) -> JobState:
        """The state of the job described by ``identity``: the one on disk if it is that job, else a fresh one (a
        job resumed keeps the segment size it started with).

        Raises:
            JobBusyError: another run is working on the same result now.
        """
        folder = state_folder(target)
        folder.mkdir(parents=True, exist_ok=True)
        lock = lock_folder(folder, target.name)
        manifest = folder / "job.json"
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = None
        for stray in folder.glob("*.part*"):
            stray.unlink(missing_ok=True)
        if isinstance(found, dict) and found.get("identity") == identity:
            kept = found.get("segment_frames")
            state = cls(folder, int(kept) if kept else None, lock)
            log.info("Resuming %s: %d frames done", target.name, state.done_frames())
            return state
        if found is not None:
            log.info("Starting %s afresh: the state in %s is of another job", target.name, folder)
        for old in folder.iterdir():
            if old.name != LOCK:
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
        _write_json(manifest, {"identity": identity, "segment_frames": segment_frames})
        return cls(folder, segment_frames, lock)

    def __enter__(self) -> JobState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let another run work on this job (the folder stays)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def segments(self) -> list[Segment]:
        """The finished segments, in order, up to the first one missing."""
        found: list[Segment] = []
        first = 0
        while True:
            index = len(found)
            path = self.segment_path(index)
            try:
                record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return found
            if not path.is_file() or record.get("first") != first:
                return found
            found.append(Segment(index, record["first"], record["frames"], record["packets"], path))
            first += record["frames"]

    def done_frames(self) -> int:
        """Output frames in finished segments."""
        return sum(segment.frames for segment in self.segments())

    def segment_path(self, index: int) -> Path:
        """Where segment ``index`` is kept."""
        return self.folder / f"{index:06d}.nut"

    def commit(self, index: int, first: int, frames: int, packets: list[list[int | None]]) -> None:
        """Record segment ``index`` (already renamed to :meth:`segment_path`), output frames ``first`` on, as
        finished."""
        record = {"first": first, "frames": frames, "packets": packets}
        _write_json(self.segment_path(index).with_suffix(".json"), record)

    def remove(self) -> None:
        """Delete the folder: the job is done, or can never be finished."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.close()


class SegmentStore(Protocol):
    """Where finished segments are kept: a job's state folder, or a folder of a video's parts."""

    def segment_path(self, index: int) -> Path: ...

    def commit(self, index: int, first: int, frames: int, packets: list[list[int | None]]) -> None: ...


class SegmentWriter:
    """One segment being encoded: its own encoder and NUT file, renamed and committed when finished."""

    def __init__(self, state: SegmentStore, plan: OutputPlan, index: int, first: int) -> None:
        """Open segment ``index``'s encoder and file (its first frame is output frame ``first``), as ``plan`` says."""
        self.state, self.index, self.first = state, index, first
        self.opened = time.monotonic()
        self.path = state.segment_path(index)
        self.partial = Partial(self.path)
        self.container = av.open(
            str(self.partial.partial), "w", format="nut", container_options={"avoid_negative_ts": "disabled"}
        )
        stream = self.container.add_stream(plan.encoder, rate=plan.rate, options=dict(plan.options))
        stream.width, stream.height, stream.pix_fmt = plan.width, plan.height, plan.pix_fmt
        codec = stream.codec_context
        codec.time_base = plan.time_base
        stream.time_base = plan.time_base
        colour = plan.colour
        codec.color_primaries, codec.color_trc = colour.primaries, colour.trc
        codec.colorspace, codec.color_range = colour.space, colour.range
        if plan.sample_aspect_ratio:
            codec.sample_aspect_ratio = plan.sample_aspect_ratio
        self.stream = stream
        self.frames = 0
        self.packets: list[list[int | None]] = []

    def encode(self, frame: av.VideoFrame | None) -> None:
        """Encode ``frame`` (None flushes the encoder), recording each packet's times."""
        for packet in self.stream.encode(frame):
            self.packets.append([packet.pts, packet.dts, packet.duration])
            self.container.mux(packet)
        if frame is not None:
            self.frames += 1

    def finish(self) -> None:
        """Flush, close, rename the file into place and commit the segment."""
        self.encode(None)
        self.container.close()
        self.partial.commit()
        self.state.commit(self.index, self.first, self.frames, self.packets)

    def abort(self) -> None:
        """Close and delete the unfinished file: the segment is done again on the next run."""
        with contextlib.suppress(av.error.FFmpegError):
            self.container.close()
        self.partial.abort()


def _write_json(path: Path, value: object) -> None:
    with atomic_file(path) as partial, open(partial, "w", encoding="utf-8") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
