"""What each worker does next: batches of images and parts of videos, interleaved, so that every worker is busy
and no image waits for a film.

A video is first laid out by one worker (its frames decoded once, no network: see
:mod:`remaster.video.parts`); then its output frames are handed out as parts, any worker taking the next
range, as many frames as about ``segment_seconds`` of that worker's measured work (a first part is small,
to measure by); when every part is in, the driver joins them. Parts finished before (a run stopped, a
worker that died) are kept in the video's work folder and not made again.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..video.encoding import OutputPlan
    from ..video.probe import VideoInfo

__all__ = ["FIRST_PART_FRAMES", "Laid", "PartDone", "Scheduler", "Task"]

log = logging.getLogger(__name__)

FIRST_PART_FRAMES = 8
"""The frames of a video's first part on a worker that has not measured its speed on it yet."""


@dataclass(frozen=True)
class Task:
    """One piece of work for a worker: a batch of images, laying out a video, or a part of one."""

    kind: Literal["images", "layout", "part"]
    paths: tuple[str, ...] = ()
    """The images of a batch; the video, alone, of the others."""
    index: int = 0
    """A part's number (it names the part's files)."""
    first: int = 0
    """A part's first output frame."""
    count: int = 0
    """A part's output frames."""

    @property
    def video(self) -> str:
        return self.paths[0]


@dataclass(frozen=True)
class Laid:
    """What a worker found laying a video out: its output frames, the parts finished before, and what the driver
    joins the parts by (the video, its output)."""

    total: int
    done: tuple[tuple[int, int], ...]
    """Parts kept from an earlier attempt: (first frame, frames), with their numbers in ``indices``."""
    indices: tuple[int, ...]
    info: VideoInfo
    plan: OutputPlan
    repeats: int
    cuts: int
    worker: str
    """The worker (``host:pid``) that laid it out; with its Ray actor, its process and what it replaced, as an
    image's row says them."""
    actor: str = ""
    returned_by: str = ""
    replaced: str = ""


@dataclass(frozen=True)
class PartDone:
    """A part a worker finished: its frames and how long they took; who made it (as :class:`Laid` says)."""

    frames: int
    seconds: float
    worker: str
    actor: str = ""
    returned_by: str = ""
    replaced: str = ""


@dataclass
class _Video:
    """One video's state: laid out or not, the frames handed out, the parts finished, each worker's speed."""

    path: str
    total: int | None = None
    handed: int = 0
    """Output frames from 0 to here are finished or in hand (gaps of earlier attempts aside)."""
    gaps: deque[tuple[int, int]] = field(default_factory=deque)
    """(first, frames) ranges before ``handed`` that no kept part covers: handed out first."""
    finished: int = 0
    resumed: int = 0
    next_index: int = 0
    in_hand: int = 0
    speeds: dict[str, float] = field(default_factory=dict)
    """Seconds per output frame, by worker."""
    laid_out: bool = False
    failed: bool = False

    @property
    def left(self) -> int:
        """Output frames not yet handed out."""
        assert self.total is not None
        return self.total - self.handed + sum(frames for _, frames in self.gaps)

    def next_range(self, worker: str, seconds: float, fixed: int | None, workers: int = 1) -> tuple[int, int] | None:
        """The next (first frame, frames) for ``worker``: a gap left by an earlier attempt, else the frames after
        what was handed out; about ``seconds`` of that worker's work (``fixed`` frames where given), and, with
        several ``workers``, no more than its share of what is left, so that they all finish together."""
        assert self.total is not None
        if fixed is not None:
            count = fixed
        elif worker in self.speeds:
            count = round(seconds / max(self.speeds[worker], 1e-6))
        elif self.speeds:
            count = round(seconds / max(statistics.median(self.speeds.values()), 1e-6))
        else:
            count = FIRST_PART_FRAMES
        if fixed is None:
            # Guided self-scheduling: shares shrink as the video runs out, but not below a first part's size.
            count = min(count, max(-(-self.left // max(1, workers)), FIRST_PART_FRAMES))
        count = max(1, count)
        if self.gaps:
            first, frames = self.gaps.popleft()
            if frames > count:
                self.gaps.appendleft((first + count, frames - count))
            return first, min(count, frames)
        if self.handed >= self.total:
            return None
        first = self.handed
        self.handed = min(self.total, first + count)
        return first, self.handed - first

    @property
    def complete(self) -> bool:
        return self.total is not None and self.finished >= self.total


class Scheduler:
    """The work of one run, handed to workers as they come free.

    Args:
        images: the image paths to do, in order; given in batches of ``batch_size``.
        videos: the video paths to do.
        segment_seconds: about how much work a part holds.
        part_frames: a fixed number of frames a part (None: sized by the measured speed).
        workers: how many workers share the work: a part is at most one worker's share of a video's frames left.
    """

    def __init__(
        self,
        images: Iterable[str],
        videos: Iterable[str],
        batch_size: int,
        segment_seconds: float,
        part_frames: int | None = None,
        workers: int = 1,
    ) -> None:
        images = list(images)
        self.batches = deque(tuple(images[k : k + batch_size]) for k in range(0, len(images), batch_size))
        self.videos = {path: _Video(path) for path in videos}
        self.to_lay_out = deque(self.videos)
        self.segment_seconds = segment_seconds
        self.part_frames = part_frames
        self.workers = workers
        self._images_next = True

    @property
    def waiting(self) -> bool:
        """Whether any work is left to hand out or to finish."""
        return bool(self.batches or self.to_lay_out) or any(
            not video.failed and not video.complete for video in self.videos.values()
        )

    def next_for(self, worker: str) -> Task | None:
        """The next task for ``worker``, images and videos taking turns; None where nothing can be handed out now
        (a video still being laid out, say)."""
        video_task = self._video_task(worker, peek=True)
        if self.batches and (self._images_next or video_task is None):
            self._images_next = False
            return Task("images", self.batches.popleft())
        self._images_next = True
        return self._video_task(worker, peek=False)

    def _video_task(self, worker: str, peek: bool) -> Task | None:
        if self.to_lay_out:
            return Task("layout", (self.to_lay_out[0],)) if peek else Task("layout", (self.to_lay_out.popleft(),))
        for video in self.videos.values():
            if not video.laid_out or video.failed or video.total is None:
                continue
            if peek:
                if video.gaps or video.handed < video.total:
                    return Task("part", (video.path,))
                continue
            span = video.next_range(worker, self.segment_seconds, self.part_frames, self.workers)
            if span is not None:
                video.in_hand += 1
                index, video.next_index = video.next_index, video.next_index + 1
                return Task("part", (video.path,), index, *span)
        return None

    def laid_out(self, path: str, laid: Laid) -> None:
        """The video at ``path`` is laid out: what is left of it is handed out from now on."""
        video = self.videos[path]
        video.total, video.laid_out = laid.total, True
        video.next_index = max(laid.indices, default=-1) + 1
        cursor = 0
        for first, frames in sorted(laid.done):
            if first > cursor:
                video.gaps.append((cursor, first - cursor))
            cursor = max(cursor, first + frames)
            video.finished += frames
        video.resumed = video.finished
        video.handed = cursor

    def part_done(self, task: Task, done: PartDone) -> bool:
        """A part is finished; whether its video is now complete (every frame in a finished part)."""
        video = self.videos[task.video]
        video.in_hand -= 1
        video.finished += done.frames
        video.speeds[done.worker] = done.seconds / max(done.frames, 1)
        return video.complete

    def part_lost(self, task: Task) -> None:
        """A part could not be made (its worker gave up): it is handed out again."""
        video = self.videos[task.video]
        video.in_hand -= 1
        video.gaps.appendleft((task.first, task.count))

    def failed(self, path: str) -> None:
        """The video at ``path`` cannot be remastered: none of it is handed out any more."""
        video = self.videos[path]
        video.failed = True
        video.gaps.clear()

    def video(self, path: str) -> _Video:
        """The state of the video at ``path``."""
        return self.videos[path]
