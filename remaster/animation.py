"""Animated GIF, WebP and PNG: every frame read whole with its own timing, and written back exactly.

Pillow reads the frames (8-bit) and encodes each one; this module assembles the containers
itself, because Pillow's and libwebp's animation writers merge identical consecutive frames
(changing the frame count) and PyAV's muxers refuse frames of no duration. Every frame and
its duration in milliseconds go out as they came in. A 16-bit APNG, which Pillow reads at
8 bits, is read and written at full depth here, with OpenCV encoding each frame.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_file
from .errors import ImageTooLargeError, InvalidOptionError
from .image_io import unreadable, webp_quality
from .pixels import eight_bit_image
from .version import __version__

__all__ = ["ANIMATION_FORMATS", "Animation", "Frame", "animation_format", "read_animation", "save_animation"]

ANIMATION_FORMATS: tuple[str, ...] = ("gif", "webp", "png")
_EXTENSIONS = {"GIF": "gif", "WEBP": "webp", "PNG": "png"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type → channels (gray, RGB, gray+alpha, RGBA)

Frame = Image.Image | np.ndarray
"""An 8-bit PIL image (RGB or RGBA), or a uint16 ``(H, W, C)`` array for a 16-bit APNG's frames."""


@dataclass
class Animation:
    """The frames of an animated GIF, WebP or PNG, with their timing."""

    frames: list[Frame]
    """Whole frames (the format's disposal and blending already applied)."""
    durations: list[int]
    """Milliseconds each frame shows; 0 where the file says 0 (or nothing)."""
    loop: int | None
    """How many times the animation plays; 0 for ever; None where the file does not say (a GIF: once)."""
    format: str
    """``GIF``, ``WEBP`` or ``PNG``."""

    @property
    def size(self) -> tuple[int, int]:
        first = self.frames[0]
        return first.size if isinstance(first, Image.Image) else (first.shape[1], first.shape[0])


def animation_format(animation: Animation) -> str:
    """The output format that keeps ``animation`` as it came: gif, webp or png (APNG)."""
    return _EXTENSIONS[animation.format]


def read_animation(path: str | os.PathLike, max_pixels: int) -> Animation | None:
    """Every frame of an animated image file, or None for a still image (or a file that is no image).

    ``max_pixels`` counts every frame: 100 frames of 400×400 are 16 MP.

    Raises:
        InvalidImageError: a frame is corrupt or of a kind that cannot be read; the message says which.
        ImageTooLargeError: all the frames together have more than ``max_pixels`` pixels, or a frame
            declares enormous dimensions.
    """
    path = Path(path)
    try:
        im = Image.open(path)
    except Exception:  # noqa: BLE001 - not an image at all, or damaged: decoding it as a still says which
        return None
    with im:
        try:
            count = getattr(im, "n_frames", 1)
            animated = count > 1 and getattr(im, "is_animated", False) and im.format in _EXTENSIONS
        except Exception as error:  # noqa: BLE001 - counting frames reads the whole file
            raise unreadable(error, path) from None
        if not animated:
            return None
        total = im.width * im.height * count
        if total > max_pixels:
            raise ImageTooLargeError(
                f"The animation has {count} frames of {im.width}×{im.height}, {total / 1e6:.1f} MP in all, more "
                f"than the limit of {max_pixels / 1e6:.1f} MP; shorten or shrink it, or raise REMASTER_MAX_INPUT_PIXELS"
            )
        if im.format == "PNG" and _png_bit_depth(path) == 16:
            return _read_deep_apng(path)
        return _read_frames(im, count, path)


def _read_frames(im: Image.Image, count: int, path: Path) -> Animation:
    frames, durations = [], []
    for index in range(count):
        try:
            im.seek(index)
            im.load()
        except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many kinds; each becomes a clear message
            raise unreadable(error, path, frame=index) from None
        durations.append(round(float(im.info.get("duration") or 0)))
        transparent = im.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info
        frames.append(im.convert("RGBA" if transparent else "RGB"))
    loop = im.info.get("loop")
    return Animation(frames, durations, None if loop is None else int(loop), im.format)


def save_animation(
    frames: list[Frame],
    path: Path,
    fmt: str,
    durations: list[int],
    loop: int | None,
    quality: int | None = None,
    description: str | None = None,
) -> Path:
    """Write an animation atomically as GIF, WebP (lossless, or lossy at ``quality``) or APNG, every frame kept.

    16-bit frames stay 16-bit in APNG and become 8-bit in GIF and WebP.

    Raises:
        InvalidOptionError: ``fmt`` cannot hold an animation.
        OSError: the file could not be written; nothing is left behind.
    """
    if fmt not in ANIMATION_FORMATS:
        raise InvalidOptionError(f"{fmt.upper()} cannot hold an animation; use one of {', '.join(ANIMATION_FORMATS)}")
    writers = {"gif": _gif, "webp": _webp, "png": _apng}
    data = writers[fmt](frames, durations, loop, quality, description)
    with atomic_file(path) as partial, open(partial, "wb") as out:
        out.write(data)
    return path


def _eight_bit(frames: list[Frame]) -> list[Image.Image]:
    """The frames as 8-bit images of one mode: RGBA if any has transparency, else RGB."""
    images = [frame if isinstance(frame, Image.Image) else eight_bit_image(frame) for frame in frames]
    mode = "RGBA" if any(im.mode in ("RGBA", "LA", "PA") for im in images) else "RGB"
    return [im if im.mode == mode else im.convert(mode) for im in images]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(33)
    return head[24] if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR" else 8


def _frame_png(frame: Frame) -> bytes:
    """One frame as a standalone PNG: 16-bit arrays through OpenCV, 8-bit images through Pillow."""
    if isinstance(frame, Image.Image):
        buffer = io.BytesIO()
        frame.save(buffer, format="PNG")
        return buffer.getvalue()
    import cv2

    order = {1: [0], 2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[frame.shape[2]]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, order]))
    if not ok:
        raise OSError(f"Could not encode a {frame.shape} frame as PNG")
    return data.tobytes()


def _apng(
    frames: list[Frame], durations: list[int], loop: int | None, quality: int | None, description: str | None
) -> bytes:
    """Every frame whole (no delta frames), each showing exactly its duration."""
    if all(isinstance(frame, Image.Image) for frame in frames):
        frames = _eight_bit(frames)
    out = [_PNG_SIGNATURE]
    sequence = 0
    for index, (frame, duration) in enumerate(zip(frames, durations, strict=True)):
        chunks = _png_chunks(_frame_png(frame))
        header = next(data for kind, data in chunks if kind == b"IHDR")
        if index == 0:
            out.append(_chunk(b"IHDR", header))
            out.append(_chunk(b"acTL", struct.pack(">II", len(frames), loop or 0)))
            out.extend(_chunk(b"tEXt", text) for text in _texts(description))
        width, height = struct.unpack(">II", header[:8])
        numerator, denominator = _png_delay(duration)
        control = struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, numerator, denominator, 0, 0)
        out.append(_chunk(b"fcTL", control))
        sequence += 1
        for kind, data in chunks:
            if kind != b"IDAT":
                continue
            if index == 0:
                out.append(_chunk(b"IDAT", data))
            else:
                out.append(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
                sequence += 1
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _texts(description: str | None) -> list[bytes]:
    """tEXt chunks' contents naming remaster and what was done, as :func:`~remaster.image_io.png_text` does."""
    texts = {"Software": f"remaster {__version__}", **({"Description": description} if description else {})}
    return [f"{key}\0{value}".encode("latin-1", "replace") for key, value in texts.items()]


def _png_delay(milliseconds: int) -> tuple[int, int]:
    """APNG's delay as a 16-bit fraction of a second: milliseconds, or hundredths for long frames."""
    if milliseconds <= 0xFFFF:
        return milliseconds, 1000
    return min(round(milliseconds / 10), 0xFFFF), 100


def _gif(
    frames: list[Frame], durations: list[int], loop: int | None, quality: int | None, description: str | None
) -> bytes:
    """Each frame quantised by Pillow on its own, spliced into one GIF with its own colour table and delay."""
    parts = [_gif_parts(frame) for frame in _eight_bit(frames)]
    screen, _, _ = parts[0]
    out = [b"GIF89a", screen[:4] + bytes([screen[4] & 0x70]) + screen[5:7]]  # no global colour table
    if loop is not None:
        out.append(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00")
    if description:
        out.append(b"!\xfe" + _sub_blocks(description.encode("ascii", "replace")) + b"\x00")
    for (_, palette, (transparency, image)), duration in zip(parts, durations, strict=True):
        flags = 2 << 2 | (1 if transparency is not None else 0)  # disposal 2: restore to background
        delay = min(round(duration / 10), 0xFFFF)  # GIF counts hundredths of a second
        out.append(b"!\xf9\x04" + bytes([flags]) + struct.pack("<H", delay) + bytes([transparency or 0, 0]))
        size_bits = max((len(palette) // 3).bit_length() - 2, 0)
        descriptor = image[:8] + bytes([0x80 | size_bits])  # a local colour table of the frame's own palette
        out.append(b"," + descriptor + palette + image[10:])
    out.append(b";")
    return b"".join(out)


def _sub_blocks(data: bytes) -> bytes:
    return b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))


def _gif_parts(frame: Image.Image) -> tuple[bytes, bytes, tuple[int | None, bytes]]:
    """Of a one-frame GIF Pillow writes: the logical screen, the colour table, and the frame's
    transparent index and image block (descriptor, compressed data, terminator)."""
    buffer = io.BytesIO()
    frame.save(buffer, format="GIF", optimize=False)
    data = buffer.getvalue()
    screen = data[6:13]
    table_size = 3 * 2 ** ((screen[4] & 0x07) + 1) if screen[4] & 0x80 else 0
    palette = data[13 : 13 + table_size]
    offset, transparency = 13 + table_size, None
    while data[offset] == 0x21:  # extensions: keep the graphic control's transparent index
        if data[offset + 1] == 0xF9 and data[offset + 3] & 1:
            transparency = data[offset + 6]
        offset += 2
        while data[offset]:
            offset += data[offset] + 1
        offset += 1
    start = offset + 1  # after ','
    local = data[start + 8]
    if local & 0x80:  # Pillow wrote the palette locally
        table = 3 * 2 ** ((local & 0x07) + 1)
        palette = data[start + 9 : start + 9 + table]
        body = data[start + 9 + table :]
    else:
        body = data[start + 9 :]
    image = data[start : start + 9] + b"\x00" + body[:-1]  # less the trailer ';'

    if not palette:
        palette = bytes(768)
    return screen, palette, (transparency, image)


def _webp(
    frames: list[Frame], durations: list[int], loop: int | None, quality: int | None, description: str | None
) -> bytes:
    """Each frame encoded by Pillow as a still WebP, framed whole in an animated WebP container."""
    images = _eight_bit(frames)
    width, height = images[0].size
    alpha = any(im.mode in ("RGBA", "LA") for im in images)
    body = [
        _riff_chunk(b"VP8X", bytes([0x02 | (0x10 if alpha else 0), 0, 0, 0]) + _u24(width - 1) + _u24(height - 1)),
        _riff_chunk(b"ANIM", b"\x00\x00\x00\x00" + struct.pack("<H", loop or 0)),
    ]
    for im, duration in zip(images, durations, strict=True):
        buffer = io.BytesIO()
        im.save(buffer, format="WEBP", **webp_quality(quality))
        bitstream = b"".join(
            _riff_chunk(kind, data)
            for kind, data in _riff_chunks(buffer.getvalue())
            if kind in (b"ALPH", b"VP8 ", b"VP8L")
        )
        header = _u24(0) + _u24(0) + _u24(im.width - 1) + _u24(im.height - 1) + _u24(min(duration, 0xFFFFFF))
        body.append(_riff_chunk(b"ANMF", header + bytes([0x02]) + bitstream))  # do not blend, do not dispose
    payload = b"WEBP" + b"".join(body)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, offset = [], 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length + (length % 2)
    return chunks


def _read_deep_apng(path: Path) -> Animation:
    """A 16-bit APNG at full depth: each frame decoded by OpenCV and composed as the format says."""
    chunks = _png_chunks(path.read_bytes())
    header = next(data for kind, data in chunks if kind == b"IHDR")
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    channels = _CHANNELS.get(colour)
    if channels is None:
        raise unreadable(ValueError(f"unknown PNG colour type {colour}"), path)
    loop = next((struct.unpack(">II", data)[1] for kind, data in chunks if kind == b"acTL"), 0)
    canvas = np.zeros((height, width, channels), np.uint16)
    frames, durations = [], []
    for index, (control, data) in enumerate(_apng_frames(chunks)):
        _, fw, fh, fx, fy, numerator, denominator, dispose, blend = struct.unpack(">IIIIIHHBB", control)
        try:
            pixels = _decode_frame(header, fw, fh, data, channels)
        except Exception as error:  # noqa: BLE001 - a frame OpenCV cannot decode is a damaged frame
            raise unreadable(error, path, frame=index) from None
        region = (slice(fy, fy + fh), slice(fx, fx + fw))
        before = canvas[region].copy()
        canvas[region] = pixels if blend == 0 or channels not in (2, 4) else _over(pixels, canvas[region])
        frames.append(canvas.copy())
        durations.append(round(numerator * 1000 / (denominator or 100)))
        if dispose == 1:
            canvas[region] = 0
        elif dispose == 2:
            canvas[region] = before
    return Animation(frames, durations, loop, "PNG")


def _apng_frames(chunks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(frame control, compressed data) of each animation frame, in order."""
    frames: list[tuple[bytes, bytes]] = []
    for kind, data in chunks:
        if kind == b"fcTL":
            frames.append((data, b""))
        elif kind in (b"IDAT", b"fdAT") and frames:
            payload = data if kind == b"IDAT" else data[4:]
            frames[-1] = (frames[-1][0], frames[-1][1] + payload)
    return frames


def _decode_frame(header: bytes, width: int, height: int, data: bytes, channels: int) -> np.ndarray:
    import cv2

    own = struct.pack(">II", width, height) + header[8:]
    png = _PNG_SIGNATURE + _chunk(b"IHDR", own) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    array = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.shape[:2] != (height, width):
        raise ValueError("the frame's image data is incomplete")
    array = array.reshape(height, width, -1)
    order = {1: [0], 2: [0, 3], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[channels]
    return array[:, :, order] if array.shape[2] >= len(order) else array


def _over(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` drawn over ``target`` by its alpha (the last channel), 16-bit."""
    alpha = source[:, :, -1:].astype(np.float64) / 65535
    under = target[:, :, -1:].astype(np.float64) / 65535
    out_alpha = alpha + under * (1 - alpha)
    colour = source[:, :, :-1] * alpha + target[:, :, :-1] * under * (1 - alpha)
    colour = np.divide(colour, out_alpha, out=np.zeros_like(colour), where=out_alpha > 0)
    return np.rint(np.concatenate([colour, out_alpha * 65535], axis=2)).astype(np.uint16)
