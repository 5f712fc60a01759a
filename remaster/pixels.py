"""Pixel arithmetic shared by everything that touches images: dtype conversions, output sizes, resizing.

Pixels are ``(H, W, C)`` numpy arrays, C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA), of dtype
uint8, uint16 or float32 in 0–1.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = [
    "MODE_BY_CHANNELS",
    "eight_bit_image",
    "from_float",
    "output_size",
    "resize",
    "resize_alpha",
    "to_eight_bit",
    "to_float",
    "to_float_scale",
]

MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def output_size(width: int, height: int, outscale: float) -> tuple[int, int]:
    """The result's size: each side times ``outscale``, rounded down, at least 1 pixel.

    This is the official script's ``int(side * outscale)``, except that a product a hair
    below a whole number from floating-point error (``10 * 2.3``) counts as that number.
    """
    return (
        max(1, math.floor(width * outscale + 1e-6)),
        max(1, math.floor(height * outscale + 1e-6)),
    )


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float ``(H, W, C)`` pixels to ``size`` (width, height) with Lanczos, clipped to 0–1.

    Enlarging uses OpenCV's Lanczos-4, as the official script does; shrinking uses PIL's
    Lanczos, which widens its kernel with the ratio and so does not alias.
    """
    import cv2

    height, width = pixels.shape[:2]
    if (width, height) == size:
        return pixels
    if size[0] >= width and size[1] >= height:
        out = cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4)
        out = out.reshape(size[1], size[0], pixels.shape[2])
    else:
        out = np.stack(
            [
                np.asarray(
                    Image.fromarray(np.ascontiguousarray(pixels[:, :, c])).resize(size, Image.Resampling.LANCZOS)
                )
                for c in range(pixels.shape[2])
            ],
            axis=2,
        )
    return np.clip(out, 0.0, 1.0, out=out)


def to_float_scale(dtype: np.dtype) -> float:
    """The number that maps ``dtype``'s full range to 1.0."""
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float pixels as float32 in 0–1."""
    return pixels.astype(np.float32) / np.float32(to_float_scale(pixels.dtype))


def to_eight_bit(pixels: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float (0–1) pixels as uint8, rounded."""
    return pixels if pixels.dtype == np.uint8 else from_float(to_float(pixels), np.uint8)


def eight_bit_image(pixels: np.ndarray) -> Image.Image:
    """An 8-bit PIL image (L, LA, RGB or RGBA) of ``(H, W, C)`` pixels of any dtype remaster reads."""
    eight_bit = to_eight_bit(pixels)
    channels = eight_bit.shape[2]
    return Image.fromarray(eight_bit[:, :, 0] if channels == 1 else eight_bit, MODE_BY_CHANNELS[channels])


def from_float(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Quantise 0–1 float pixels to ``dtype`` (rounded, as the official script does)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return pixels.astype(dtype, copy=False)
    scaled = pixels * to_float_scale(dtype)
    return np.rint(scaled, out=scaled).astype(dtype)


def resize_alpha(alpha: np.ndarray, size: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """An ``(H, W, 1)`` alpha channel resized to ``size`` (width, height) as the official script's
    ``--alpha_upsampler bicubic`` does it (OpenCV's linear interpolation), in ``dtype``."""
    import cv2

    out = cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR).reshape(size[1], size[0], 1)
    return out if out.dtype == np.dtype(dtype) else from_float(to_float(out), dtype)
