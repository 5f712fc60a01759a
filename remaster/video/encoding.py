"""What the output is: its container, codec and encoder settings, pixel format, colour and size.

Every decision is made once per job from the input's properties and the
:class:`~remaster.video.VideoOptions`, recorded in an :class:`OutputPlan`, and the same
plan is used for every segment, so that segments made on different runs join into one
stream.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction

import av

from ..errors import InvalidOptionError
from . import VideoOptions

__all__ = ["ColourPlan", "OutputPlan", "choose_container", "plan_output"]

log = logging.getLogger(__name__)

ENCODERS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1", "ffv1": "ffv1"}
NVENC = {"h264": "h264_nvenc", "h265": "hevc_nvenc", "av1": "av1_nvenc"}
CODEC_IDS = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "av1", "ffv1": "ffv1"}
"""FFmpeg's name of each codec, as containers list what they hold."""

KEPT_CONTAINERS = {
    ".mp4": ("mp4", ".mp4"),
    ".m4v": ("mp4", ".m4v"),
    ".mov": ("mov", ".mov"),
    ".mkv": ("matroska", ".mkv"),
    ".webm": ("webm", ".webm"),
}
"""Containers a result is written in when the input came in one (others become MKV): each keeps
presentation times exactly, variable frame rates included."""
FALLBACK = ("matroska", ".mkv")

_SOFTWARE_OPTIONS = {
    "libx264": {"preset": "medium"},
    "libx265": {"preset": "medium", "x265-params": "log-level=error"},
    "libvpx-vp9": {"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"},
    "libsvtav1": {"preset": "8"},
    "ffv1": {"level": "3", "slicecrc": "1"},
}
_ALPHA_PIX_FMTS = {"libvpx-vp9": "yuva420p", "ffv1": "bgra"}


@dataclass(frozen=True)
class ColourPlan:
    """The colour description of the input, as the output is tagged and converted (FFmpeg's enum values)."""

    primaries: int
    trc: int
    space: int
    range: int
    guessed: bool = False
    """The input was untagged: the matrix players assume for its size was chosen, and written down."""


@dataclass(frozen=True)
class OutputPlan:
    """Everything about the output that must be the same in every segment of a job."""

    container: str
    """FFmpeg's muxer name: mp4, mov, matroska or webm."""
    suffix: str
    encoder: str
    codec: str
    options: dict[str, str]
    pix_fmt: str
    array_format: str
    """What frames become for the network: rgb24, rgb48le, rgba or rgba64le."""
    width: int
    height: int
    """The encoded size: the result's, made even where the pixel format needs it."""
    time_base: Fraction
    rate: Fraction | None
    sample_aspect_ratio: Fraction | None
    source: ColourPlan
    """How the input's frames are converted to RGB."""
    colour: ColourPlan
    """How the results are converted from RGB and tagged."""
    notes: tuple[str, ...] = ()
    """What the user should know about the choices: a changed container, a dropped alpha channel."""

    def describe(self) -> dict[str, object]:
        """The plan as plain values, for the job's manifest (a changed plan means a new job)."""
        return {
            "container": self.container,
            "encoder": self.encoder,
            "options": self.options,
            "pix_fmt": self.pix_fmt,
            "size": [self.width, self.height],
            "time_base": str(self.time_base),
            "colour": [self.colour.primaries, self.colour.trc, self.colour.space, self.colour.range],
            "source_colour": [self.source.space, self.source.range],
        }


def choose_container(suffix: str, codec: str) -> tuple[str, str, str | None]:
    """(muxer, extension, note): the input's container where it can hold ``codec``, else MKV."""
    kept = KEPT_CONTAINERS.get(suffix)
    if kept is not None and CODEC_IDS[codec] in _supported(kept[0]):
        return kept[0], kept[1], None
    what = suffix.lstrip(".").upper() or "the input's container"
    if kept is None:
        note = f"{what} is not kept for results (it cannot hold exact frame times): written as MKV"
    else:
        note = f"{what} cannot hold {codec.upper()}: written as MKV"
    return FALLBACK[0], FALLBACK[1], note


def _supported(muxer: str) -> set[str]:
    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        return set(probe.supported_codecs)


def plan_output(
    stream: av.video.stream.VideoStream,
    suffix: str,
    size: tuple[int, int],
    video: VideoOptions,
    device_type: str,
) -> OutputPlan:
    """The output for the input ``stream`` upscaled to ``size``; transparency is kept where the codec can hold it.

    Raises:
        InvalidOptionError: NVENC was asked for without a CUDA device, or the encoder is missing.
    """
    encoder = _encoder(video, device_type)
    container, out_suffix, note = choose_container(suffix, video.codec)
    notes = [note] if note else []
    decoded = av.VideoFormat(stream.codec_context.pix_fmt or "yuv420p")
    depth = max(component.bits for component in decoded.components)
    alpha = any(component.is_alpha for component in decoded.components)
    pix_fmt = _pixel_format(encoder, decoded, depth, alpha)
    if alpha and not any(c.is_alpha for c in av.VideoFormat(pix_fmt).components):
        notes.append(f"{video.codec.upper()} cannot hold transparency: the alpha channel was dropped")
        alpha = False
    deep = max(component.bits for component in av.VideoFormat(pix_fmt).components) > 8
    if depth > 8 and not deep:
        notes.append(f"this {encoder} encodes 8 bits a sample: the {depth}-bit input was written as 8-bit")
    array_format = ("rgba64le" if deep else "rgba") if alpha else ("rgb48le" if deep else "rgb24")
    fmt = av.VideoFormat(pix_fmt, *size)
    width, height = _even(size, fmt)
    if (width, height) != size:
        notes.append(f"{pix_fmt} needs even sides: the last row or column of {size[0]}×{size[1]} was cropped")
    options = dict(_SOFTWARE_OPTIONS.get(encoder, {}))
    options.update(_quality(encoder, video.quality))
    source = source_colour(stream.codec_context)
    if video.fps:
        time_base = Fraction(1, 1) / Fraction(video.fps).limit_denominator(1001)
        rate = Fraction(video.fps).limit_denominator(1001)
    else:  # in-betweens at equal steps between two frames' times: the time base divided as the gaps are
        time_base = stream.time_base / video.interpolate
        rate = stream.average_rate or stream.guessed_rate
        rate = rate * video.interpolate if rate else rate
    log.info("Output: %s in %s, %s, %dx%d", encoder, container, pix_fmt, width, height)
    return OutputPlan(
        container=container,
        suffix=out_suffix,
        encoder=encoder,
        codec=video.codec,
        options=options,
        pix_fmt=pix_fmt,
        array_format=array_format,
        width=width,
        height=height,
        time_base=time_base,
        rate=rate,
        sample_aspect_ratio=stream.codec_context.sample_aspect_ratio or None,
        source=source,
        colour=output_colour(source, pix_fmt, height),
        notes=tuple(notes),
    )


def _encoder(video: VideoOptions, device_type: str) -> str:
    if video.nvenc and device_type != "cuda":
        raise InvalidOptionError("NVENC needs an NVIDIA GPU, and remaster is running on the CPU; leave --nvenc out")
    name = NVENC[video.codec] if video.nvenc else ENCODERS[video.codec]
    try:
        av.codec.Codec(name, "w")
    except av.codec.codec.UnknownCodecError:
        raise InvalidOptionError(f"This FFmpeg has no {name} encoder; choose another codec") from None
    return name


def _pixel_format(encoder: str, source: av.VideoFormat, depth: int, alpha: bool) -> str:
    """The input's pixel format where the encoder takes it, else the nearest it does (same depth first)."""
    supported = [f.name for f in av.codec.Codec(encoder, "w").video_formats or ()]
    if encoder == "ffv1":  # lossless: keep the network's RGB exactly
        wanted = ["bgra"] if alpha else (["gbrp16le", "gbrp12le", "gbrp10le"] if depth > 8 else ["bgr0"])
        return next((name for name in wanted if name in supported), "bgr0")
    if alpha and encoder in _ALPHA_PIX_FMTS:
        return _ALPHA_PIX_FMTS[encoder]
    name = source.name
    if name in supported and not source.is_rgb and "yuvj" not in name and not alpha:
        return name
    if depth > 8:
        for deep in ("yuv420p10le", "p010le"):
            if deep in supported:
                return deep
    return "yuv420p"


def _even(size: tuple[int, int], fmt: av.VideoFormat) -> tuple[int, int]:
    """``size`` less the last column or row where the chroma is subsampled and the side is odd (4:2:0
    needs even sides): cropping one line keeps the picture undistorted, as resizing would not."""
    width, height = size
    if width % 2 and width > 1 and _subsampled(fmt, "w"):
        width -= 1
    if height % 2 and height > 1 and _subsampled(fmt, "h"):
        height -= 1
    return width, height


def _subsampled(fmt: av.VideoFormat, axis: str) -> bool:
    probe = 64
    return (fmt.chroma_width(probe) if axis == "w" else fmt.chroma_height(probe)) < probe


def _quality(encoder: str, crf: int | None) -> dict[str, str]:
    if crf is None:
        return {}
    if encoder.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(crf), "b": "0", "preset": "p5"}
    return {"crf": str(crf)}


_UNSPECIFIED = 2
_BT709, _BT470BG, _SMPTE170M = 1, 5, 6
_RGB = 0
_LIMITED, _FULL = 1, 2
_SWS_MATRIX = {1: "itu709", 4: "fcc", 5: "itu601", 6: "itu601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
"""FFmpeg's colour matrices (AVColorSpace) as swscale names them."""


def source_colour(codec: av.video.codeccontext.VideoCodecContext) -> ColourPlan:
    """The input's colour description. An untagged input gets the matrix players assume for its size
    (BT.601 up to 576 lines, BT.709 above), and it is written down, because the larger result would
    otherwise be taken for BT.709 and its colours would shift."""
    space, primaries, trc, colour_range = codec.colorspace, codec.color_primaries, codec.color_trc, codec.color_range
    rgb = av.VideoFormat(codec.pix_fmt or "yuv420p").is_rgb
    guessed = not rgb and space not in _SWS_MATRIX
    if rgb:
        space, colour_range = _RGB, _FULL
    hd = codec.height > 576 or codec.width > 1024
    if guessed:
        space = _BT709 if hd else _SMPTE170M
    if primaries == _UNSPECIFIED:
        primaries = _BT709 if hd else (_BT470BG if codec.height == 576 else _SMPTE170M)
    if trc == _UNSPECIFIED:
        trc = _BT709 if hd else _SMPTE170M
    if colour_range not in (_LIMITED, _FULL):
        colour_range = _FULL if (codec.pix_fmt or "").startswith("yuvj") else _LIMITED
    return ColourPlan(primaries, trc, space, colour_range, guessed)


def output_colour(source: ColourPlan, pix_fmt: str, height: int) -> ColourPlan:
    """The result's colour tags: the input's, with an RGB output tagged RGB and an RGB input given
    the matrix of its new size when it becomes YUV."""
    if av.VideoFormat(pix_fmt).is_rgb:
        return ColourPlan(source.primaries, source.trc, _RGB, _FULL)
    if source.space == _RGB:
        return ColourPlan(source.primaries, source.trc, _BT709 if height > 576 else _SMPTE170M, _LIMITED, True)
    return source


def sws_matrix(colour: ColourPlan) -> str | None:
    """The swscale name of ``colour``'s matrix (None for RGB)."""
    return _SWS_MATRIX.get(colour.space, "itu601") if colour.space != _RGB else None


def sws_range(colour: ColourPlan) -> str:
    """The swscale name of ``colour``'s range."""
    return "JPEG" if colour.range == _FULL else "MPEG"
