"""The final file: the finished segments and the input's other streams, joined by stream copy.

The video packets come from the segments with the times their encoders gave them; audio,
subtitle and attachment streams, chapters and metadata come from the input, packet for
packet, never re-encoded. A stream the output container cannot hold is left out and the
result says so. The file is written under a temporary name in the job's state folder (whose
next run clears what a killed one left) and renamed onto the target only when complete.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..atomic import atomic_file
from ..errors import InvalidVideoError
from .encoding import OutputPlan
from .probe import VideoInfo, open_input
from .segments import Segment

__all__ = ["join"]

log = logging.getLogger(__name__)

_ATTACHMENT_CONTAINERS = {"matroska"}
_DROPPED_METADATA = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration"}
_DROPPED_STREAM_METADATA = {"encoder", "duration", "handler_name", "vendor_id"}


def join(info: VideoInfo, plan: OutputPlan, segments: list[Segment], target: Path, workdir: Path) -> list[str]:
    """Write ``target`` from ``segments`` (the whole video, in order) and the input's other streams.

    Returns:
        Notes on anything that could not be copied.

    Raises:
        InvalidVideoError: the segments do not cover the video (a bug, or a state folder tampered with).
        OSError: the file could not be written; nothing is left at ``target``.
    """
    if not segments:
        raise InvalidVideoError("No frames were remastered")
    notes: list[str] = []
    with atomic_file(target, workdir) as partial, open_input(info.path) as source, contextlib.ExitStack() as stack:
        parts = [stack.enter_context(av.open(str(segment.path))) for segment in segments]
        out = stack.enter_context(av.open(str(partial), "w", format=plan.container))
        out.flags |= av.container.Flags.bitexact.value  # the same job gives the same bytes, resumed or not
        video = _video_stream(out, parts[0].streams.video[0], info.stream_of(source), plan)
        copied = _other_streams(out, source, info, notes)
        out.metadata.update({k: v for k, v in source.metadata.items() if k.lower() not in _DROPPED_METADATA})
        chapters = source.chapters()
        if chapters:
            out.set_chapters(chapters)
        durations = _durations(segments, info, plan.time_base)
        packets = heapq.merge(
            _timed(_segment_packets(parts, segments, video, plan.time_base, durations)),
            _timed(_source_packets(source, copied)),
            key=lambda entry: entry[0],
        )
        for _, _, packet in packets:
            out.mux(packet)
    return notes


def _video_stream(
    out: av.container.OutputContainer,
    template: av.video.stream.VideoStream,
    source: av.video.stream.VideoStream,
    plan: OutputPlan,
) -> av.video.stream.VideoStream:
    stream = out.add_stream_from_template(template, opaque=True)  # the decoder is enough: nothing is encoded here
    stream.time_base = plan.time_base
    if plan.codec == "h265" and plan.container in ("mp4", "mov"):
        stream.codec_tag = "hvc1"  # what Apple's players need to play H.265
    with open_input(Path(source.container.name)) as again:
        matrix = display_matrix(next(s for s in again.streams if s.index == source.index))
    if matrix is not None:
        stream.set_display_matrix(matrix)
    stream.metadata.update({k: v for k, v in source.metadata.items() if k.lower() not in _DROPPED_STREAM_METADATA})
    stream.disposition = source.disposition
    return stream


def display_matrix(stream: av.video.stream.VideoStream) -> list[int] | None:
    """The input's display matrix (rotation, flips), read from its first frame; None when it has none."""
    try:
        for frame in stream.container.decode(stream):
            data = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
            return [int(v) for v in np.frombuffer(bytes(data), dtype="<i4")] if data is not None else None
    except av.error.FFmpegError:
        return None
    return None


def _other_streams(
    out: av.container.OutputContainer, source: av.container.InputContainer, info: VideoInfo, notes: list[str]
) -> dict[int, av.stream.Stream]:
    """The output stream for each input stream copied (audio, subtitles, attachments, further video)."""
    copied = {}
    for stream in source.streams:
        if stream.index == info.stream_index:
            continue
        what = f"{stream.type} stream {stream.index}"
        name = stream.codec_context.name if stream.codec_context is not None else stream.type
        if stream.type == "attachment":
            if out.format.name not in _ATTACHMENT_CONTAINERS:
                notes.append(f"{out.format.name.upper()} cannot hold attachments: {stream.name or what} left out")
                continue
            out.add_attachment(stream.name or f"attachment{stream.index}", stream.mimetype or "", bytes(stream.data))
            continue
        if stream.type not in ("audio", "subtitle", "video"):
            notes.append(f"the {what} ({stream.type}) is not copied")
            continue
        try:
            copy = out.add_stream_from_template(stream, opaque=True)
        except ValueError:
            notes.append(f"{out.format.name.upper()} cannot hold the {what} ({name}): left out")
            continue
        copy.time_base = stream.time_base
        copy.metadata.update({k: v for k, v in stream.metadata.items() if k.lower() not in _DROPPED_STREAM_METADATA})
        copy.disposition = stream.disposition
        copied[stream.index] = copy
    for note in notes:
        log.warning("%s", note)
    return copied


def _durations(segments: list[Segment], info: VideoInfo, time_base: Fraction) -> dict[int, int]:
    """How long each frame shows, by presentation time: until the next one, the last until the input's end.

    Set on every packet, since not every encoder gives them and MP4 ends its last frame by its duration.
    """
    times = sorted(pts for segment in segments for pts, _, _ in segment.packets)
    end = max(round(Fraction(info.start + info.duration) / time_base), times[-1] + 1)
    return {pts: after - pts for pts, after in zip(times, [*times[1:], end], strict=True)}


def _segment_packets(
    parts: list[av.container.InputContainer],
    segments: list[Segment],
    stream: av.stream.Stream,
    time_base: Fraction,
    durations: dict[int, int],
) -> Iterator[av.Packet]:
    """The segments' packets with their encoders' times; a segment's first decoding times, which its
    encoder had to invent, are moved just past the previous segment's if they would not follow them."""
    last_dts: int | None = None
    for part, segment in zip(parts, segments, strict=True):
        packets = [packet for packet in part.demux(part.streams.video[0]) if packet.size]
        if len(packets) != len(segment.packets):
            raise InvalidVideoError(
                f"Segment {segment.index} holds {len(packets)} packets, not {len(segment.packets)}; "
                f"delete {segment.path.parent} and run again"
            )
        for packet, (pts, dts, _) in zip(packets, segment.packets, strict=True):
            if dts is None:
                dts = pts
            if last_dts is not None and dts <= last_dts:
                dts = last_dts + 1
            last_dts = dts
            packet.pts, packet.dts, packet.duration = pts, dts, durations[pts]
            packet.time_base = time_base
            packet.stream = stream
            yield packet


def _source_packets(source: av.container.InputContainer, copied: dict[int, av.stream.Stream]) -> Iterator[av.Packet]:
    if not copied:
        return
    streams = [s for s in source.streams if s.index in copied]
    for packet in source.demux(streams):
        if packet.size == 0 or (packet.pts is None and packet.dts is None):
            continue
        packet.stream = copied[packet.stream.index]
        yield packet


_order = itertools.count()


def _timed(packets: Iterator[av.Packet]) -> Iterator[tuple[float, int, av.Packet]]:
    """Each packet with its decoding time in seconds (to interleave the streams) and a tie-breaker."""
    last = float("-inf")
    for packet in packets:
        stamp = packet.dts if packet.dts is not None else packet.pts
        last = max(last, float(stamp * packet.time_base)) if stamp is not None else last
        yield last, next(_order), packet
