"""Opening a video and checking it, and the limits, before any work.

:func:`probe` reads the header and then every packet of the video stream (no decoding:
it is fast), so the frame count is known even where the container does not say it (many
MKV and WebM files), and a file that is truncated or corrupt is refused before a single
frame goes through the network.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .. import pixels
from ..errors import ImageTooLargeError, InvalidVideoError, brief
from ..options import Options
from ..registry import NO_MODEL, get_model
from ..settings import Settings
from . import VideoOptions

__all__ = ["VideoInfo", "header_size", "open_input", "probe"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, as far as the work needs to know before it starts."""

    path: Path
    suffix: str
    """The input's extension, lower case (``.mp4``)."""
    format_name: str
    """FFmpeg's name of the container (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``…)."""
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    rate: Fraction | None
    """The average frame rate, where the container knows it."""
    frames: int
    """Frames in the video stream, counted from its packets."""
    duration: float
    """Seconds, from the first frame's start to the last frame's end."""
    start: float
    """The first frame's presentation time, in seconds."""

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def stream_of(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        """This video's stream in ``container`` (the same file, opened again)."""
        return next(stream for stream in container.streams if stream.index == self.stream_index)

    def output_frames(self, video: VideoOptions) -> int:
        """How many frames the result has: every frame (``interpolate`` times), or the duration at ``fps``."""
        return self.frames * video.interpolate if video.fps is None else max(1, round(self.duration * video.fps))


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` with PyAV.

    Raises:
        InvalidVideoError: there is no such file, it is empty, or FFmpeg cannot read it as a media file.
    """
    if not path.is_file():
        raise InvalidVideoError(f"No video file at {path}")
    if path.stat().st_size == 0:
        raise InvalidVideoError("Expected a video, but the file is empty")
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        container = _container_by_signature(path)
        if container is not None:
            raise InvalidVideoError(
                f"The file is truncated, or not a video: it starts as {container} does, but FFmpeg cannot read it "
                f"({brief(error, 120)}); re-export or re-download it"
            ) from None
        raise InvalidVideoError(
            f"Expected a video, but this file is not one FFmpeg can read ({brief(error, 120)}); "
            "use MP4, MKV, WebM, MOV or AVI"
        ) from None


def _container_by_signature(path: Path) -> str | None:
    """The video container whose signature the file starts with (a damaged file keeps its start), if any."""
    with path.open("rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":
        return "an MP4 or MOV file"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "a Matroska or WebM file"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "an AVI file"
    return None


def probe(
    path: str | Path, settings: Settings, options: Options, video: VideoOptions, *, check_length: bool = True
) -> VideoInfo:
    """Open and check ``path``: a video stream FFmpeg can decode, readable to its end, within the limits.

    ``check_length=False`` leaves out the length and frame-count limits (for a one-frame preview).

    Raises:
        InvalidVideoError: not a video, no video stream, an unsupported codec, no frames, truncated or corrupt.
        ImageTooLargeError: longer, with more frames, or with larger frames than the settings allow.
    """
    path = Path(path)
    with open_input(path) as container:
        stream = _video_stream(container)
        codec = stream.codec_context
        if codec.width <= 0 or codec.height <= 0:
            raise InvalidVideoError("The video stream declares no frame size; the file is damaged")
        _check_frame_size(codec.width, codec.height, settings, options)
        promised, slack, whole = _promised_end(container, stream)
        declared = stream.frames
        described = {
            "format_name": container.format.name,
            "stream_index": stream.index,
            "codec": codec.name,
            "width": codec.width,
            "height": codec.height,
            "pix_fmt": codec.pix_fmt or "yuv420p",
            "time_base": stream.time_base,
            "rate": stream.average_rate or stream.guessed_rate,
        }
        frames, first, end, last = _count_packets(container, stream)
    if frames == 0:
        raise InvalidVideoError("The video has no frames")
    # MP4 and MOV count their samples exactly; AVI counts empty "repeat the last frame" chunks too.
    if declared and frames < declared and described["format_name"].startswith("mov,mp4"):
        raise InvalidVideoError(
            f"The video is truncated: its header promises {declared} frames, but only {frames} can be read; "
            "re-export or re-download it"
        )
    if promised is not None and (last if whole else end) < promised - slack:
        raise InvalidVideoError(
            f"The video is truncated or corrupt: only {frames} frames, up to {end:.2f} s of its {promised:.2f} s, "
            "can be read; re-export or re-download it"
        )
    info = VideoInfo(
        path=path,
        suffix=path.suffix.lower(),
        frames=frames,
        duration=max(end - first, 0.0),
        start=first,
        **described,
    )
    if check_length:
        _check_length(info, settings, video)
    return info


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        kinds = sorted({s.type for s in container.streams})
        if not kinds:
            raise InvalidVideoError("The file holds no streams: it is truncated, or not a video")
        raise InvalidVideoError(f"The file has no video stream (it holds only {', '.join(kinds)})")
    stream = streams[0]
    if stream.codec_context is None or not stream.codec_context.is_decoder:
        raise InvalidVideoError(
            "The video's codec is not one this FFmpeg can decode; convert it to H.264, VP9 or FFV1 first"
        )
    return stream


def _count_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[int, float, float, float]:
    """The video packets with data, the first one's time, the last one's end, and the end of the last
    packet of any stream, in seconds. Every stream is read (the bytes are read either way): a file
    whose sound goes on after its pictures is not taken for a truncated one."""
    count, first, end, last = 0, None, 0.0, 0.0
    step = 1 / stream.average_rate if stream.average_rate else 0
    try:
        for packet in container.demux():
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                if packet.size and packet.stream.index == stream.index:
                    count += 1
                continue
            start = float(packet.pts * packet.time_base)
            stop = start + float((packet.duration or 0) * packet.time_base)
            last = max(last, stop)
            if packet.stream.index != stream.index:
                continue
            count += 1
            first = start if first is None else min(first, start)
            end = max(end, stop if packet.duration else start + float(step))
    except av.error.FFmpegError as error:
        raise InvalidVideoError(
            f"The video is corrupt after {count} readable frames ({brief(error, 120)}); re-export or re-download it"
        ) from None
    return count, first or 0.0, end, max(last, end)


def _promised_end(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[float | None, float, bool]:
    """When the header says the video ends, in seconds; how far short of it a complete file may end;
    and whether that is the whole file's end (the container's duration) rather than the video stream's."""
    frame = float(1 / stream.average_rate) if stream.average_rate else 0.1
    if stream.duration:
        return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base), 2 * frame, False
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag and tag.count(":") == 2:
        hours, minutes, seconds = tag.split(":")
        try:
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds), 2 * frame, False
        except ValueError:
            pass
    if container.duration:
        total = container.duration / 1e6
        return total, max(1.0, 0.05 * total), True
    return None, 0.0, False


def _check_frame_size(width: int, height: int, settings: Settings, options: Options) -> None:
    if width * height > settings.max_input_pixels:
        raise ImageTooLargeError(
            f"The video's frames are {width}×{height}, more than the limit of "
            f"{settings.max_input_pixels / 1e6:.1f} MP a frame; resize it first, or raise REMASTER_MAX_INPUT_PIXELS"
        )
    out_w, out_h = pixels.output_size(width, height, options.outscale)
    scale = 1 if options.model == NO_MODEL else get_model(options.model, "upscaler").scale
    limit = settings.max_video_frame_pixels
    if max(out_w * out_h, width * height * scale**2) > limit:
        raise ImageTooLargeError(
            f"Each frame of the result would be {out_w}×{out_h}, more than the limit of {limit / 1e6:.1f} MP a "
            "frame; choose a smaller output scale, or raise REMASTER_MAX_VIDEO_FRAME_PIXELS"
        )


def _check_length(info: VideoInfo, settings: Settings, video: VideoOptions) -> None:
    if info.duration > settings.max_video_seconds:
        raise ImageTooLargeError(
            f"The video is {info.duration:.1f} s long, more than the limit of {settings.max_video_seconds} s; "
            "cut it shorter, or raise REMASTER_MAX_VIDEO_SECONDS"
        )
    frames = info.output_frames(video)
    if frames > settings.max_video_frames:
        raise ImageTooLargeError(
            f"The result would have {frames} frames, more than the limit of {settings.max_video_frames}; "
            "cut the video shorter or choose a lower --fps or --interpolate, or raise REMASTER_MAX_VIDEO_FRAMES"
        )


def header_size(path: str | Path) -> tuple[int, int, int] | None:
    """(frames, width, height) as the header says, read in milliseconds (no packets); None when unreadable."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = stream.frames
            if not frames and container.duration and stream.guessed_rate:
                frames = math.ceil(container.duration / 1e6 * stream.guessed_rate)
            return frames or 1, stream.codec_context.width, stream.codec_context.height
    except (av.error.FFmpegError, IndexError, OSError):
        return None
