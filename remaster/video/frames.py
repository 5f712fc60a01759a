"""Frames in and out of the network: decoded in order, and converted.

:func:`decoded_frames` yields each frame of the input; :func:`converter` (through :func:`to_array`) and
:func:`to_encoder` convert between PyAV frames and the RGB arrays the :class:`~remaster.pipeline.Enhancer`
takes, with the plan's colour matrix and range. Which output frames each becomes is
:mod:`~remaster.video.timeline`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import av
import numpy as np

from ..errors import InvalidVideoError, brief
from .encoding import OutputPlan, sws_matrix, sws_range
from .probe import VideoInfo, open_input

__all__ = ["converter", "decoded_frames", "to_array", "to_encoder"]


def decoded_frames(info: VideoInfo, stop: threading.Event) -> Iterator[av.VideoFrame]:
    """Each frame of the video, in order, until ``stop`` is set.

    Raises:
        InvalidVideoError: the video is corrupt after some frames (the message says how many).
    """
    with open_input(info.path) as container:
        stream = info.stream_of(container)
        stream.thread_type = "AUTO"
        decoded = 0
        try:
            for frame in container.decode(stream):
                if stop.is_set():
                    return
                decoded += 1
                yield frame
        except av.error.FFmpegError as error:
            raise InvalidVideoError(
                f"The video is corrupt after {decoded} readable frames ({brief(error, 120)}); "
                "re-export or re-download it"
            ) from None


def converter(plan: OutputPlan) -> Callable[[av.VideoFrame], np.ndarray]:
    """What turns a decoded frame into the RGB array the :class:`~remaster.pipeline.Enhancer` takes, with the
    input's colour matrix and range."""
    matrix, colour_range = sws_matrix(plan.source), sws_range(plan.source)
    return lambda frame: to_array(frame, plan.array_format, matrix, colour_range)


def to_array(frame: av.VideoFrame, array_format: str, matrix: str | None, colour_range: str) -> np.ndarray:
    if matrix is None:
        return frame.to_ndarray(format=array_format)
    return frame.to_ndarray(format=array_format, src_colorspace=matrix, src_color_range=colour_range)


def to_encoder(picture: av.VideoFrame, plan: OutputPlan) -> av.VideoFrame:
    matrix = sws_matrix(plan.colour)
    if matrix is None:
        return picture.reformat(format=plan.pix_fmt)
    return picture.reformat(format=plan.pix_fmt, dst_colorspace=matrix, dst_color_range=sws_range(plan.colour))
