"""Whole videos: every frame through the same engine as stills, with the sound, subtitles and timing kept.

>>> from remaster import Options
>>> from remaster.video import VideoOptions, remaster_video
>>> options = Options("realesr-animevideov3", outscale=2)
>>> result = remaster_video("clip.mkv", "out/clip_out", options, VideoOptions(crf=18))
>>> result.path  # out/clip_out.mkv; run it again after a stop or a crash and it continues

The work is done by PyAV (FFmpeg in-process: no ffmpeg binary). Importing this package is
quick and imports neither PyAV nor torch; they load when a video is first remastered.

=============== ==================================================================
module          owns
=============== ==================================================================
``probe``       opening a video, checking it and the limits before any work
``encoding``    codecs, containers, pixel formats and colour: what the output is
``segments``    the job's state folder: segments encoded and kept on disk, for resume
``frames``      frames decoded in order with their times, and converted
``timeline``    which output frames the input frames become: times, in-betweens, repeats, scene cuts
``job``         the bounded decode → network → encode pipeline, and the one-frame preview
``join``        the final file: segments and the input's other streams joined by stream copy
=============== ==================================================================
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..options import checked_flag, checked_number
from ..registry import DEFAULT_INTERPOLATOR, get_model

if TYPE_CHECKING:
    from .job import VideoResult, preview_frame, remaster_video

__all__ = [
    "CODECS",
    "DEFAULT_CRF",
    "MEDIA_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoOptions",
    "VideoResult",
    "add_video_options",
    "is_video",
    "preview_frame",
    "remaster_video",
    "video_options_from",
]

VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".wmv",
    ".flv",
    ".ts",
    ".m2ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".ogv",
    ".3gp",
    ".nut",
    ".y4m",
)
"""File extensions taken as videos (animated GIF, WebP and PNG are animations, done by ``files``)."""

CODECS: tuple[str, ...] = ("h264", "h265", "vp9", "av1", "ffv1")
"""Output codecs: H.264 plays everywhere; FFV1 is lossless."""
DEFAULT_CRF = {"h264": 20, "h265": 24, "vp9": 32, "av1": 32}
"""The quality each codec gets when none is chosen: visually close to the network's output."""
CRF_RANGE = {"h264": (0, 51), "h265": (0, 51), "vp9": (0, 63), "av1": (0, 63)}
NVENC_CODECS = ("h264", "h265", "av1")
MIN_FPS, MAX_FPS = 1.0, 240.0
MAX_INTERPOLATE = 16
DEFAULT_SEGMENT_SECONDS = 60.0
DEFAULT_DUPLICATE_THRESHOLD = 10.0
"""The largest mean difference of a 16×16 block, in 0–255 steps, between frames that show one drawing: between
frames of one drawing it is 2–7 (compression noise), where only a mouth moves about 40."""


@dataclass(frozen=True)
class VideoOptions:
    """How a video's result is encoded. Checked when made.

    Raises:
        InvalidOptionError: a value is out of range or of the wrong kind.
    """

    codec: str = "h264"
    """One of :data:`CODECS`."""
    crf: int | None = None
    """Quality: lower is better and larger; None for :data:`DEFAULT_CRF`. FFV1 is lossless and takes none."""
    fps: float | None = None
    """None keeps every frame and its own time (variable frame rate stays variable); a number gives a
    constant-rate result of the same duration, frames repeated or dropped as needed."""
    nvenc: bool = False
    """Encode on an NVIDIA GPU (H.264, H.265, AV1)."""
    interpolate: int = 1
    """Output frames per input frame, the ones between made by ``interpolation_model`` (1: none made); with
    ``fps``, any value from 2 makes the frames between input frames in-betweens instead of repeats."""
    interpolation_model: str = DEFAULT_INTERPOLATOR
    skip_duplicates: bool = True
    """A frame that shows the same picture as the last distinct one reuses its result instead of running the
    network again (and, when interpolating, the drawings are interpolated at the times they appear)."""
    duplicate_threshold: float = DEFAULT_DUPLICATE_THRESHOLD
    """Below this largest 16×16 block difference (0–255 steps) a frame repeats the one before."""
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS
    """About how much work a resumable segment holds, measured as the job goes: what a stop may cost. Not part of
    what the result is (:meth:`describe` leaves it out), so changing it does not start a job afresh."""

    def __post_init__(self) -> None:
        self._check_encoding()
        self._check_frames()

    def _check_encoding(self) -> None:
        if self.codec not in CODECS:
            raise InvalidOptionError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if self.crf is not None:
            if self.codec == "ffv1":
                raise InvalidOptionError("FFV1 is lossless and takes no crf; leave it out")
            low, high = CRF_RANGE[self.codec]
            if isinstance(self.crf, bool) or not isinstance(self.crf, numbers.Real) or float(self.crf) % 1:
                raise InvalidOptionError(f"crf must be a whole number from {low} to {high}, not {self.crf!r}")
            if not low <= self.crf <= high:
                raise InvalidOptionError(f"crf for {self.codec} must be from {low} to {high}, not {self.crf:g}")
            object.__setattr__(self, "crf", int(self.crf))
        if self.fps is not None:
            if isinstance(self.fps, bool) or not isinstance(self.fps, numbers.Real) or not math.isfinite(self.fps):
                raise InvalidOptionError(f"fps must be a number from {MIN_FPS:g} to {MAX_FPS:g}, not {self.fps!r}")
            if not MIN_FPS <= self.fps <= MAX_FPS:
                raise InvalidOptionError(f"fps must be from {MIN_FPS:g} to {MAX_FPS:g}, not {self.fps:g}")
            object.__setattr__(self, "fps", float(self.fps))
        if self.nvenc and self.codec not in NVENC_CODECS:
            raise InvalidOptionError(f"NVENC encodes {', '.join(NVENC_CODECS)}, not {self.codec}")

    def _check_frames(self) -> None:
        interpolate = checked_number("interpolate", self.interpolate, 1, MAX_INTERPOLATE, whole=True)
        object.__setattr__(self, "interpolate", int(interpolate))
        if self.interpolates:
            get_model(self.interpolation_model, "interpolator")
        object.__setattr__(self, "skip_duplicates", checked_flag("skip_duplicates", self.skip_duplicates))
        threshold = checked_number("duplicate_threshold", self.duplicate_threshold, 0.5, 255)
        object.__setattr__(self, "duplicate_threshold", threshold)
        seconds = checked_number("segment_seconds", self.segment_seconds, 1, 24 * 3600)
        object.__setattr__(self, "segment_seconds", seconds)

    @property
    def interpolates(self) -> bool:
        """Whether in-between frames are made."""
        return self.interpolate > 1

    @property
    def quality(self) -> int | None:
        """The CRF the encoder gets (None for lossless FFV1)."""
        return None if self.codec == "ffv1" else (self.crf if self.crf is not None else DEFAULT_CRF[self.codec])

    def describe(self) -> dict[str, Any]:
        """The choices of what the result is, as plain values, for the job's manifest."""
        return {field.name: getattr(self, field.name) for field in fields(self) if field.name != "segment_seconds"}


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is named like a video file."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def add_video_options(parser: argparse.ArgumentParser) -> None:
    """Add the video options (codec, quality, frame rate, NVENC) to a command line ``parser``."""
    group = parser.add_argument_group("videos")
    group.add_argument("--codec", choices=CODECS, default="h264", help="video codec (default: h264; ffv1 is lossless)")
    group.add_argument(
        "--crf",
        type=int,
        default=None,
        help="video quality, lower is better: "
        + ", ".join(f"{codec} {DEFAULT_CRF[codec]}" for codec in DEFAULT_CRF)
        + " by default",
    )
    group.add_argument(
        "--fps",
        type=float,
        default=None,
        help="a constant output frame rate, same duration (default: every frame at its own time)",
    )
    group.add_argument("--nvenc", action="store_true", help="encode on an NVIDIA GPU (h264, h265, av1)")
    group.add_argument(
        "--interpolate",
        type=int,
        nargs="?",
        const=2,
        default=1,
        metavar="N",
        help="N times the frames, the ones between made by RIFE (2, 3, 4...); with --fps, in-betweens at the "
        "target rate's times instead of repeated frames (N may be left out) (default: none made)",
    )
    group.add_argument(
        "--interpolation-model",
        default=DEFAULT_INTERPOLATOR,
        metavar="MODEL",
        help=f"the network that makes in-between frames (default: {DEFAULT_INTERPOLATOR})",
    )
    group.add_argument(
        "--no-skip-duplicates",
        dest="skip_duplicates",
        action="store_false",
        help="run every frame through the network, also those that repeat the picture before them",
    )
    group.add_argument(
        "--duplicate-threshold",
        type=float,
        default=DEFAULT_DUPLICATE_THRESHOLD,
        metavar="STEPS",
        help="the largest 16x16 block difference (0-255) below which a frame repeats the one before "
        f"(default: {DEFAULT_DUPLICATE_THRESHOLD:g})",
    )
    group.add_argument(
        "--segment-seconds",
        type=float,
        default=DEFAULT_SEGMENT_SECONDS,
        metavar="SECONDS",
        help="about how much work each resumable part of a video holds, measured as it goes: what a stop may "
        f"cost (default: {DEFAULT_SEGMENT_SECONDS:g})",
    )


def video_options_from(args: argparse.Namespace) -> VideoOptions:
    """The :class:`VideoOptions` from parsed arguments.

    Raises:
        InvalidOptionError: a value is out of range.
    """
    return VideoOptions(
        codec=args.codec,
        crf=args.crf,
        fps=args.fps,
        nvenc=args.nvenc,
        interpolate=args.interpolate,
        interpolation_model=args.interpolation_model,
        skip_duplicates=args.skip_duplicates,
        duplicate_threshold=args.duplicate_threshold,
        segment_seconds=args.segment_seconds,
    )


_FROM_JOB = ("VideoResult", "preview_frame", "remaster_video")


def __getattr__(name: str) -> object:
    if name == "MEDIA_SUFFIXES":
        # Every file extension remaster takes from a folder: images (animations among them) and videos. The images'
        # are Pillow's, which loads with numpy: when a folder is first listed, not when the command line is parsed.
        from ..image_io import IMAGE_SUFFIXES

        return (*IMAGE_SUFFIXES, *VIDEO_SUFFIXES)
    # The pipeline imports PyAV and torch: only when it is first asked for.
    if name in _FROM_JOB:
        from . import job

        return getattr(job, name)
    raise AttributeError(f"module 'remaster.video' has no attribute {name!r}")
