"""Files of the kinds image libraries keep to test themselves, made here byte by byte: bombs, unsupported
variants, float and packed pixels, huge EXIF, animations with odd timing. One maker per class of file."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from . import images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def gif_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small GIF whose logical screen declares enormous dimensions."""
    buffer = io.BytesIO()
    frames = [Image.new("P", (4, 4), index) for index in range(2)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", width, height)
    path.write_bytes(bytes(data))
    return path


def gif_with_a_huge_later_frame(path: Path) -> Path:
    """A 4×4 animated GIF whose second frame's descriptor declares 30000×30000 pixels."""
    buffer = io.BytesIO()
    frames = [Image.fromarray(np.full((4, 4), index * 60, np.uint8)).convert("P") for index in range(3)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    data = bytearray(buffer.getvalue())
    descriptors = [
        index
        for index in range(len(data) - 10)
        if data[index] == 0x2C and data[index + 5 : index + 9] == b"\x04\x00\x04\x00"
    ]
    second = descriptors[1]
    data[second + 5 : second + 9] = struct.pack("<HH", 30000, 30000)
    path.write_bytes(bytes(data))
    return path


def bmp_bomb(path: Path) -> Path:
    """A BMP header declaring 100000×100000 pixels over a few bytes of data."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="BMP")
    data = bytearray(buffer.getvalue())
    data[18:26] = struct.pack("<ii", 100000, 100000)
    path.write_bytes(bytes(data))
    return path


def ico_bomb(path: Path) -> Path:
    """An icon whose only image is a PNG declaring 30000×30000 pixels."""
    png = images.decompression_bomb_png(path.with_suffix(".inner.png"), 30000, 30000).read_bytes()
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 6 + 16)
    path.write_bytes(struct.pack("<HHH", 0, 1, 1) + entry + png)
    path.with_suffix(".inner.png").unlink()
    return path


def dds_unsupported(path: Path) -> Path:
    """A DDS texture of a pixel format (FourCC ``ZZZZ``) Pillow recognises as DDS but does not implement."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I", 32, 0x4) + b"ZZZZ" + b"\0" * 20
    path.write_bytes(b"DDS " + header + pixel_format + struct.pack("<I", 0x1000) + b"\0" * 16 + b"\0" * 64)
    return path


def eps(path: Path) -> Path:
    """A valid EPS drawing, which Pillow needs Ghostscript to rasterise."""
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\nshowpage\n")
    return path


def wmf(path: Path) -> Path:
    """A placeable Windows metafile, which Pillow identifies but can render only on Windows."""
    header = struct.pack("<IHhhhhHI", 0x9AC6CDD7, 0, 0, 0, 100, 100, 1440, 0)
    checksum = 0
    for word in struct.unpack("<10H", header):
        checksum ^= word
    metafile = struct.pack("<HHHIHIH", 1, 9, 0x300, 12, 1, 3, 0) + struct.pack("<IH", 3, 0)
    path.write_bytes(header + struct.pack("<H", checksum) + metafile)
    return path


def tiff_with_unsupported_compression(path: Path) -> Path:
    """A TIFF marked as WebP-compressed (50001), a codec this machine's libtiff lacks."""
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path, format="TIFF")
    data = bytearray(path.read_bytes())
    (offset,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[offset : offset + 2])
    for entry in range(count):
        at = offset + 2 + 12 * entry
        if struct.unpack("<H", data[at : at + 2])[0] == 259:  # Compression
            data[at + 8 : at + 10] = struct.pack("<H", 50001)
    path.write_bytes(bytes(data))
    return path


def damaged_png(path: Path) -> Path:
    """A file that starts with PNG's signature and goes on with nothing PNG can make sense of."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x13\x37" * 40)
    return path


def float_tiff(path: Path, scale: float = 3.0) -> np.ndarray:
    """A 32-bit float TIFF with values from 0 to ``scale``; returns its pixels."""
    pixels = (images.gradient(12, 10, 1)[:, :, 0] * scale).astype(np.float32)
    Image.fromarray(pixels, "F").save(path)
    return pixels


def rgb565_bmp(path: Path, width: int = 6, height: int = 4) -> Path:
    """A 16-bit-per-pixel (5-6-5) BMP, a packed 8-bit colour image."""
    row = (width * 2 + 3) // 4 * 4
    pixel = struct.pack("<H", (31 << 11) | (20 << 5) | 10)
    data = b"".join(pixel * width + b"\0" * (row - width * 2) for _ in range(height))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 3, len(data), 2835, 2835, 0, 0)
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    offset = 14 + 40 + 12
    path.write_bytes(b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + masks + data)
    return path


def sgi16(path: Path, width: int = 8, height: int = 6) -> np.ndarray:
    """A 16-bit-per-channel RGB SGI image (Pillow reads it at 8 bits); returns its pixels."""
    pixels = images.to_uint16(images.gradient(height, width))
    header = struct.pack(">hbbHHHHii4x80sii", 474, 0, 2, 3, width, height, 3, 0, 65535, b"sgi16".ljust(80, b"\0"), 0, 0)
    planes = b"".join(pixels[::-1, :, channel].astype(">u2").tobytes() for channel in range(3))
    path.write_bytes(header.ljust(512, b"\0") + planes)
    return pixels


def jpeg_with_exif_near_the_limit(path: Path) -> Path:
    """A JPEG whose EXIF (a camera make, an artist and a 65,420-byte maker note) nearly fills its 64 KB segment."""
    exif = Image.Exif()
    exif[0x010F] = "Pentax"
    exif[0x013B] = "A. Photographer"
    exif.get_ifd(0x8769)[0x927C] = b"M" * 65420
    images.rgb(20, 24).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def png_with_large_exif(path: Path) -> Path:
    """A PNG carrying 100 KB of EXIF, more than a JPEG can hold."""
    exif = Image.Exif()
    exif[0x010F] = "Pentax"
    exif.get_ifd(0x8769)[0x927C] = b"M" * 100_000
    images.rgb(20, 24).save(path, format="PNG", exif=exif.tobytes())
    return path


def apng16(path: Path, frames: list[np.ndarray], durations: list[int], partial: np.ndarray | None = None) -> Path:
    """A 16-bit APNG of whole ``frames``; with ``partial``, one more frame drawing it at (1, 1) over the last."""
    import cv2

    def idat(pixels: np.ndarray) -> tuple[bytes, bytes]:
        order = [2, 1, 0, 3][: pixels.shape[2]]
        data = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, order]))[1].tobytes()
        chunks, offset = [], 8
        while offset < len(data):
            (length,) = struct.unpack(">I", data[offset : offset + 4])
            chunks.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]))
            offset += 12 + length
        return next(d for k, d in chunks if k == b"IHDR"), b"".join(d for k, d in chunks if k == b"IDAT")

    height, width = frames[0].shape[:2]
    header, _ = idat(frames[0])
    count = len(frames) + (partial is not None)
    out = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header), _png_chunk(b"acTL", struct.pack(">II", count, 0))]
    sequence = 0
    placed = [(frame, 0, 0, duration) for frame, duration in zip(frames, durations, strict=True)]
    if partial is not None:
        placed.append((partial, 1, 1, 40))
    for index, (frame, x, y, duration) in enumerate(placed):
        control = struct.pack(">IIIIIHHBB", sequence, frame.shape[1], frame.shape[0], x, y, duration, 1000, 0, 0)
        out.append(_png_chunk(b"fcTL", control))
        sequence += 1
        data = idat(frame)[1]
        if index == 0:
            out.append(_png_chunk(b"IDAT", data))
        else:
            out.append(_png_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    out.append(_png_chunk(b"IEND", b""))
    path.write_bytes(b"".join(out))
    assert (height, width) == frames[0].shape[:2]
    return path
