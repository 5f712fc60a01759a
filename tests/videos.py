"""Real video files made by the tests with PyAV: known frames, times, audio, subtitles and chapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import images

MS = Fraction(1, 1000)


@dataclass
class Clip:
    """What a made clip holds, to compare a result against."""

    path: Path
    pts: list[int]
    time_base: Fraction
    audio_packets: list[bytes] = field(default_factory=list)

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def frame_pixels(index: int, width: int, height: int) -> np.ndarray:
    """A smooth picture moving a sixteenth of its width a frame: what video compresses well, the tiny networks keep
    apart, and no two frames of which show the same picture (new noise alone would: that is a repeated frame)."""
    step = max(2, width // 16)
    return images.to_uint8(np.roll(images.gradient(height, width, 3, seed=index), step * index, axis=1))


def make_clip(
    path: Path,
    *,
    frames: int = 6,
    size: tuple[int, int] = (32, 24),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction = Fraction(1, 25),
    rate: int = 25,
    audio: bool = False,
    audio_codec: str = "aac",
    subtitles: bool = False,
    chapters: bool = False,
    attachment: bool = False,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    colour: tuple[int, int, int, int] | None = None,
    container_options: dict[str, str] | None = None,
    pictures: list[np.ndarray] | None = None,
) -> Clip:
    """Write a clip of ``frames`` frames (``pictures``, RGB, or :func:`frame_pixels`) at ``pts`` (default 0, 1,
    2…) in ``time_base``; MKV, MP4… by suffix."""
    frames = len(pictures) if pictures is not None else frames
    pts = list(range(frames)) if pts is None else pts
    clip = Clip(path, pts, time_base)
    with av.open(str(path), "w", container_options=container_options or {}) as out:
        out.metadata["title"] = "A test clip"
        video = out.add_stream(codec, rate=rate, options=options or {})
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        video.codec_context.time_base = time_base
        video.time_base = time_base
        if colour is not None:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = colour
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio_codec, rate=_RATES.get(audio_codec, 8000), layout="mono") if audio else None
        text = out.add_mux_stream("subrip" if path.suffix != ".mp4" else "mov_text") if subtitles else None
        if text is not None:
            text.time_base = MS
            text.metadata["language"] = "fra"
        if attachment:
            out.add_attachment("font.ttf", "font/ttf", b"not really a font")
        if chapters:
            end = int(pts[-1] * time_base * 1000) + 40
            out.set_chapters(
                [
                    {"id": 1, "start": 0, "end": end // 2, "time_base": MS, "metadata": {"title": "First"}},
                    {"id": 2, "start": end // 2, "end": end, "time_base": MS, "metadata": {"title": "Second"}},
                ]
            )
        for index, stamp in enumerate(pts):
            picture = pictures[index] if pictures is not None else frame_pixels(index, *size)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame = frame.reformat(format=pix_fmt) if pix_fmt != "rgb24" else frame
            frame.pts, frame.time_base = stamp, time_base
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            clip.audio_packets = _write_tone(out, sound, float((pts[-1] + 1) * time_base))
        if text is not None:
            packet = av.Packet(b"Bonjour")
            packet.stream, packet.time_base = text, MS
            packet.pts = packet.dts = 40
            packet.duration = 80
            out.mux(packet)
    return clip


_RATES = {"libopus": 48000}


def _write_tone(out: av.container.OutputContainer, sound: av.audio.stream.AudioStream, seconds: float) -> list[bytes]:
    """A 440 Hz tone lasting ``seconds``; the bytes of each packet, in order."""
    rate = sound.codec_context.sample_rate
    fmt = sound.codec_context.codec.audio_formats[0].name
    samples, at, written = int(rate * seconds), 0, []
    tone = np.sin(np.arange(samples) / rate * 2 * np.pi * 440).astype(np.float32)[None]
    if not fmt.startswith("flt"):
        tone = (tone * 20000).astype(np.int16)
        fmt = "s16p" if fmt.endswith("p") else "s16"
    while at < samples:
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, at : at + 960]), format=fmt, layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = rate, at, Fraction(1, rate)
        at += 960
        for packet in sound.encode(chunk):
            written.append(bytes(packet))
            out.mux(packet)
    for packet in sound.encode():
        written.append(bytes(packet))
        out.mux(packet)
    return written


@dataclass
class Decoded:
    """A video file read back: its frames' times and pixels, its streams and chapters."""

    pts: list[int]
    time_base: Fraction
    frames: list[np.ndarray]
    streams: list[str]
    chapters: list[dict]
    metadata: dict[str, str]
    audio_packets: list[bytes]
    subtitles: list[bytes]
    rotation: int
    format: str
    pix_fmt: str
    size: tuple[int, int]

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def read_video(path: Path, array_format: str = "rgb24") -> Decoded:
    with av.open(str(path)) as container:
        streams = [s.type for s in container.streams]
        video = container.streams.video[0]
        audio, subtitles = [], []
        for packet in container.demux():
            if packet.size and packet.stream.type == "audio":
                audio.append(bytes(packet))
            elif packet.size and packet.stream.type == "subtitle":
                subtitles.append(bytes(packet))
        container.seek(0)
        frames, pts, rotation = [], [], 0
        for frame in container.decode(video):
            pts.append(frame.pts)
            rotation = frame.rotation
            frames.append(frame.to_ndarray(format=array_format))
        return Decoded(
            pts=pts,
            time_base=video.time_base,
            frames=frames,
            streams=streams,
            chapters=container.chapters(),
            metadata=dict(container.metadata),
            audio_packets=audio,
            subtitles=subtitles,
            rotation=rotation,
            format=container.format.name,
            pix_fmt=video.codec_context.pix_fmt,
            size=(video.codec_context.width, video.codec_context.height),
        )
