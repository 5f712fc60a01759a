"""Frames in and out of the network: decoded in order with their times, and converted.

:func:`decoded_frames` yields each frame of the input with the output frames it becomes
(:class:`Schedule`); :func:`to_array` and :func:`to_encoder` convert between PyAV frames and
the RGB arrays the :class:`~remaster.pipeline.Enhancer` takes, with the plan's colour matrix and range.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from ..errors import InvalidVideoError, brief
from .encoding import OutputPlan, sws_matrix, sws_range
from .probe import VideoInfo, open_input

__all__ = ["Schedule", "decoded_frames", "to_array", "to_encoder"]


def decoded_frames(
    info: VideoInfo, plan: OutputPlan, fps: float | None, total: int, stop: threading.Event
) -> Iterator[tuple[Callable[[], np.ndarray], list[int], int]]:
    """Each decoded frame, in order: a function that converts it to the plan's RGB array, the output
    times it becomes, and the output index of the first of them."""
    matrix, colour_range = sws_matrix(plan.source), sws_range(plan.source)

    def converter(frame: av.VideoFrame) -> Callable[[], np.ndarray]:
        return lambda: to_array(frame, plan.array_format, matrix, colour_range)

    with open_input(info.path) as container:
        stream = info.stream_of(container)
        stream.thread_type = "AUTO"
        schedule = Schedule(info, fps, total)
        try:
            for frame in container.decode(stream):
                if stop.is_set():
                    return
                for held, outputs, first in schedule.place(frame):
                    yield converter(held), outputs, first
            for held, outputs, first in schedule.finish():
                yield converter(held), outputs, first
        except av.error.FFmpegError as error:
            raise InvalidVideoError(
                f"The video is corrupt after {schedule.decoded} readable frames ({brief(error, 120)}); "
                "re-export or re-download it"
            ) from None


def to_array(frame: av.VideoFrame, array_format: str, matrix: str | None, colour_range: str) -> np.ndarray:
    if matrix is None:
        return frame.to_ndarray(format=array_format)
    return frame.to_ndarray(format=array_format, src_colorspace=matrix, src_color_range=colour_range)


def to_encoder(picture: av.VideoFrame, plan: OutputPlan) -> av.VideoFrame:
    matrix = sws_matrix(plan.colour)
    if matrix is None:
        return picture.reformat(format=plan.pix_fmt)
    return picture.reformat(format=plan.pix_fmt, dst_colorspace=matrix, dst_color_range=sws_range(plan.colour))


class Schedule:
    """Which output frames each input frame becomes.

    Without a frame rate, each frame becomes one output frame at its own presentation time
    (a missing or repeated time becomes the next tick, so the encoder always gets increasing
    times). With one, output frame ``k`` is shown at ``start + k / fps`` and is the last input
    frame that starts at or before then (times rounded to the nearest output frame, as FFmpeg's
    ``fps`` filter does). Whether a frame is dropped or repeated is known only when the next one's
    time is, so there each frame is held back until the next arrives.
    """

    def __init__(self, info: VideoInfo, fps: float | None, total: int) -> None:
        self.info, self.total = info, total
        self.rate = Fraction(fps).limit_denominator(1001) if fps else None
        self.decoded = 0
        self.last_pts: int | None = None
        self.next_slot = 0
        self.held: av.VideoFrame | None = None
        self.start_slot = round(info.start * self.rate) if self.rate else 0

    def place(self, frame: av.VideoFrame) -> list[tuple[av.VideoFrame, list[int], int]]:
        """The frames now placed, with their output times and first output index."""
        pts = self._pts(frame)
        self.decoded += 1
        if self.rate is None:
            if self.decoded > self.total:
                raise InvalidVideoError(
                    f"The video decodes to more frames than its {self.total} packets; remux it (or give --fps)"
                )
            return [(frame, [pts], self.decoded - 1)]
        slot = round((pts * self.info.time_base - Fraction(self.info.start)) * self.rate)
        placed = self._release(slot) if self.held is not None else []
        self.held = frame
        return placed

    def finish(self) -> list[tuple[av.VideoFrame, list[int], int]]:
        """The frame held back, filling the output to its end."""
        return self._release(self.total) if self.held is not None else []

    def _release(self, until: int) -> list[tuple[av.VideoFrame, list[int], int]]:
        first = self.next_slot
        slots = list(range(first, max(min(until, self.total), first)))
        self.next_slot = first + len(slots)
        return [(self.held, [self.start_slot + k for k in slots], first)]

    def _pts(self, frame: av.VideoFrame) -> int:
        pts = frame.pts
        if pts is None and self.last_pts is not None:
            step = 1 / self.info.rate if self.info.rate else self.info.time_base
            pts = self.last_pts + max(1, round(step / self.info.time_base))
        if pts is None:
            pts = 0
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        return pts
