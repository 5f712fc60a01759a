"""A video remastered in parts that can each be made anywhere: a worker's share of a film on a cluster.

:func:`analyse` decodes the whole video once (no network) and works out every output frame exactly
as a run on one machine does (which frames repeat the picture before them, where the scene cuts
are, which output frames are in-betweens of which two frames): a :class:`Layout`, kept beside the
parts. :func:`make_part` then makes output frames ``first`` to ``first + count - 1`` from it alone,
decoding only from the keyframe before the first input frame they need (a seek, not a read from the
start) and only as far as the last, and encodes them as one segment that starts with a keyframe.
A part is the same frames wherever and whenever it is made, so parts of any sizes joined in order
(:func:`~remaster.video.join.join`) are the one-machine result, frame for frame.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from ..atomic import atomic_file
from ..errors import InvalidVideoError
from . import VideoOptions
from .encoding import OutputPlan
from .frames import converter, decoded_frames, to_encoder
from .probe import VideoInfo, open_input
from .segments import Segment, SegmentWriter
from .timeline import Slot

if TYPE_CHECKING:
    from ..pipeline import Enhancer, Prepared

__all__ = ["Layout", "PartsFolder", "analyse", "make_part"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """Every input frame's time and every output frame of one video, as one machine's run would make them."""

    frame_pts: np.ndarray
    """Each input frame's presentation time as decoded, in decoding order (int64; -1 where it had none)."""
    pts: np.ndarray
    """Each output frame's presentation time, in the plan's time base."""
    left: np.ndarray
    """The input frame each output frame is the result of, or the one before it for an in-between."""
    right: np.ndarray
    """The input frame after it for an in-between, else -1."""
    at: np.ndarray
    """Where between them an in-between is."""
    repeats: int
    """Input frames that repeat the picture before them."""
    cuts: int

    @property
    def total(self) -> int:
        """Output frames."""
        return len(self.pts)

    def slots(self, first: int, count: int) -> list[Slot]:
        """Output frames ``first`` to ``first + count - 1``."""
        slots = []
        for k in range(first, min(first + count, self.total)):
            right = int(self.right[k])
            slots.append(Slot(k, int(self.pts[k]), int(self.left[k]), None if right < 0 else right, float(self.at[k])))
        return slots

    def save(self, path: Path) -> None:
        """Keep the layout at ``path`` (written whole or not at all)."""
        buffer = io.BytesIO()
        counts = np.array([self.repeats, self.cuts], np.int64)
        arrays = {"frame_pts": self.frame_pts, "pts": self.pts, "left": self.left, "right": self.right, "at": self.at}
        np.savez(buffer, counts=counts, **arrays)
        with atomic_file(path) as partial:
            Path(partial).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Layout | None:
        """The layout kept at ``path``, or None where there is none (or only a damaged one)."""
        try:
            with np.load(path) as kept:
                repeats, cuts = (int(value) for value in kept["counts"])
                return cls(kept["frame_pts"], kept["pts"], kept["left"], kept["right"], kept["at"], repeats, cuts)
        except (OSError, ValueError, KeyError):
            return None


def analyse(
    info: VideoInfo, plan: OutputPlan, video: VideoOptions, total: int, stop: Callable[[], None] | None = None
) -> Layout:
    """Decode every frame of the video (no network) and lay out its output frames as one machine's run does.

    Raises:
        InvalidVideoError: the video decodes to fewer or more frames than its packets.
    """
    import threading

    from .job import judge_of, timeline_of

    timeline, judge, convert = timeline_of(info, video, total), judge_of(info, video), converter(plan)
    frame_pts: list[int] = []
    slots: list[Slot] = []
    with contextlib.closing(decoded_frames(info, threading.Event())) as frames:
        for frame in frames:
            if stop is not None:
                stop()
            if video.fps is None and len(frame_pts) >= info.frames:
                raise InvalidVideoError(
                    f"The video decodes to more frames than its {info.frames} packets; remux it (or give --fps)"
                )
            repeats, cut = judge.judge(convert(frame) if judge.looks else None)
            frame_pts.append(frame.pts if frame.pts is not None else -1)
            slots.extend(timeline.add(frame.pts, repeats, cut))
    if len(frame_pts) < info.frames:
        raise InvalidVideoError(
            f"Only {len(frame_pts)} of the video's {info.frames} frames could be decoded: it is truncated or "
            "corrupt; re-export or re-download it"
        )
    slots.extend(timeline.finish())
    return Layout(
        frame_pts=np.array(frame_pts, np.int64),
        pts=np.array([slot.pts for slot in slots], np.int64),
        left=np.array([slot.left for slot in slots], np.int64),
        right=np.array([-1 if slot.right is None else slot.right for slot in slots], np.int64),
        at=np.array([slot.at for slot in slots], np.float64),
        repeats=judge.repeats,
        cuts=judge.cuts_found,
    )


class PartsFolder:
    """Where a video's finished parts are kept (each a segment file and its record, the record written last),
    by any number of processes at once, each its own parts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def segment_path(self, index: int) -> Path:
        """Where part ``index`` is kept."""
        return self.folder / f"{index:06d}.nut"

    def commit(self, index: int, first: int, frames: int, packets: list[list[int | None]]) -> None:
        """Record part ``index`` (already renamed to :meth:`segment_path`), output frames ``first`` on, as done."""
        record = {"first": first, "frames": frames, "packets": packets}
        with atomic_file(self.segment_path(index).with_suffix(".json")) as partial:
            Path(partial).write_text(json.dumps(record), encoding="utf-8")

    def parts(self, segments: bool = True) -> list[Segment]:
        """The finished parts, by their first frame: those whose record is here, and (``segments``) their segment
        file too."""
        found = []
        for record_path in self.folder.glob("[0-9]*.json"):
            path = record_path.with_suffix(".nut")
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if path.is_file() or not segments:
                found.append(Segment(int(path.stem), record["first"], record["frames"], record["packets"], path))
        return sorted(found, key=lambda part: part.first)

    def covering(self, total: int) -> list[Segment] | None:
        """Finished parts that cover output frames 0 to ``total - 1`` once each, in order; None while any is
        missing."""
        chosen, next_frame = [], 0
        for part in self.parts():
            if part.first == next_frame:
                chosen.append(part)
                next_frame += part.frames
        return chosen if next_frame == total else None


def make_part(
    enhancer: Enhancer,
    prepared: Prepared,
    info: VideoInfo,
    plan: OutputPlan,
    layout: Layout,
    folder: PartsFolder,
    index: int,
    first: int,
    count: int,
    *,
    check: Callable[[], None] | None = None,
) -> Segment:
    """Make output frames ``first`` to ``first + count - 1`` of the video and keep them as part ``index``.

    Raises:
        InvalidVideoError: the video cannot be decoded where the part needs it.
        StoppedError: ``check`` raised it; nothing of the part is kept.
    """
    slots = layout.slots(first, count)
    needed = sorted({slot.left for slot in slots} | {slot.right for slot in slots if slot.right is not None})
    frames = _frames(info, plan, layout, needed)
    results: dict[int, np.ndarray] = {}
    flow_scale = info.width / plan.width

    def result(frame: int) -> np.ndarray:
        # The slots need their frames in ascending order: each is the next one decoded.
        if frame not in results:
            number, array = next(frames)
            assert number == frame, f"decoded frame {number} where frame {frame} was needed"
            made, _ = enhancer.run_frames(prepared, [array], check=check)[0]
            results[frame] = np.ascontiguousarray(made[: plan.height, : plan.width])
        return results[frame]

    writer = SegmentWriter(folder, plan, index, first)
    try:
        for slot in slots:
            picture = result(slot.left)
            if slot.right is not None:
                second = result(slot.right)
                picture = enhancer.in_between(prepared, picture, second, [slot.at], flow_scale=flow_scale, check=check)[
                    0
                ]
            for frame in [frame for frame in results if frame < slot.left]:
                del results[frame]
            encoded = to_encoder(av.VideoFrame.from_ndarray(picture, format=plan.array_format), plan)
            encoded.pts = slot.pts
            writer.encode(encoded)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return Segment(index, first, writer.frames, writer.packets, writer.path)


def _frames(info: VideoInfo, plan: OutputPlan, layout: Layout, needed: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The ``needed`` input frames (by decoding number, ascending), converted, decoded from the keyframe before the
    first of them; from the start where the video's frame times cannot be sought by (missing or out of order)."""
    convert = converter(plan)
    times = layout.frame_pts
    sought = bool(len(times)) and times.min() >= 0 and bool(np.all(np.diff(times) > 0))
    wanted = iter(needed)
    target = next(wanted, None)
    with open_input(info.path) as container:
        stream = info.stream_of(container)
        stream.thread_type = "AUTO"
        if sought and target is not None:
            container.seek(int(times[target]), stream=stream, backward=True, any_frame=False)
        number = -1
        for frame in container.decode(stream):
            if target is None:
                return
            if sought:
                found = int(np.searchsorted(times, frame.pts)) if frame.pts is not None else -1
                number = found if 0 <= found < len(times) and times[found] == frame.pts else -1
            else:
                number += 1
            if number == target:
                yield number, convert(frame)
                target = next(wanted, None)
            elif number > target:
                break
    if target is not None:
        raise InvalidVideoError(f"Frame {target} of the video could not be decoded where a part of it needs it")
