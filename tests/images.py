"""Real image files of every mode, made by the tests themselves."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms


def gradient(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth colour ramps plus a little noise: an image with structure and no saturation."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [
        0.5 + 0.4 * np.sin(x / max(width, 1) * 6 + c) * np.cos(y / max(height, 1) * 4 - c) for c in range(channels)
    ]
    pixels = np.stack(planes, axis=2) + rng.normal(0, 0.03, (height, width, channels)).astype(np.float32)
    return np.clip(pixels, 0, 1)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels * 255).astype(np.uint8)


def to_uint16(pixels: np.ndarray) -> np.ndarray:
    return np.rint(pixels * 65535).astype(np.uint16)


def rgb(height: int = 20, width: int = 24, seed: int = 0) -> Image.Image:
    return Image.fromarray(to_uint8(gradient(height, width, 3, seed)), "RGB")


def rgba(height: int = 20, width: int = 24) -> Image.Image:
    pixels = to_uint8(gradient(height, width, 4))
    pixels[:, : width // 2, 3] = 0  # left half fully transparent
    pixels[:, width // 2 :, 3] = 255
    return Image.fromarray(pixels, "RGBA")


def gray(height: int = 20, width: int = 24) -> Image.Image:
    return Image.fromarray(to_uint8(gradient(height, width, 1))[:, :, 0], "L")


def gray_alpha(height: int = 20, width: int = 24) -> Image.Image:
    return Image.merge("LA", (gray(height, width), rgba(height, width).getchannel("A")))


def palette(height: int = 20, width: int = 24, transparent: bool = False) -> Image.Image:
    im = rgb(height, width).quantize(16)
    if transparent:
        im.info["transparency"] = 0
    return im


def cmyk(height: int = 20, width: int = 24) -> Image.Image:
    return rgb(height, width).convert("CMYK")


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile; made once, since its header records the second it was made."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def save(image: Image.Image, path: Path, **options: object) -> Path:
    image.save(path, **options)
    return path


def png16(path: Path, channels: int, height: int = 20, width: int = 24) -> np.ndarray:
    """Write a 16-bit PNG (1, 3 or 4 channels) with OpenCV and return its pixels in RGB order."""
    pixels = to_uint16(gradient(height, width, channels))
    if channels == 4:
        pixels[:, : width // 2, 3] = 0
    bgr = pixels if channels == 1 else pixels[:, :, [2, 1, 0] + ([3] if channels == 4 else [])]
    cv2.imwrite(str(path), bgr[:, :, 0] if channels == 1 else bgr)
    return pixels


def exif_rotated_jpeg(path: Path, height: int = 20, width: int = 32) -> Path:
    """A landscape JPEG whose EXIF orientation (6) says: rotate 90° clockwise to view."""
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb(height, width).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    return path


def truncated(path: Path, image: Image.Image, fmt: str) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return path


def decompression_bomb_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A valid PNG header declaring enormous dimensions, in a few hundred bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
