"""The pictures a quantized network is calibrated on and judged by, declared once.

Real photographs (scikit-image's, which comes with basicsr: a portrait, a cat, a cup of coffee, a
rocket, a micrograph, a gray photo, a night sky, a retina) and drawings of flat colour with dark
outlines like anime cels, each made small as the inputs of an upscaler are. The calibration crops
and the probe crops are different pieces, so that the quality gate judges pictures the quantizer
did not see.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["CALIBRATION_SIDE", "PROBE_SIDE", "Picture", "calibration", "probes"]

CALIBRATION_SIDE = 64
"""Calibration crops are this side: RealESRGAN_x4plus collects its statistics on twelve in about half a minute
on two cores."""
PROBE_SIDE = 96
"""Probe crops are this side: large enough for the tiles' borders not to dominate, small enough that judging
RealESRGAN_x4plus in fp32 and int8 on all of them takes about half a minute."""


@dataclass(frozen=True)
class Picture:
    """One source picture, and which of its pieces calibrate and which judge."""

    name: str
    """A scikit-image photograph's function, or ``cel N`` for a drawing made from seed N."""
    probe: bool = False
    """Whether a piece of it is also among the probes."""


PICTURES = (
    Picture("astronaut", probe=True),
    Picture("chelsea"),
    Picture("coffee", probe=True),
    Picture("rocket"),
    Picture("immunohistochemistry"),
    Picture("camera", probe=True),
    Picture("hubble_deep_field"),
    Picture("retina"),
    Picture("cel 1"),
    Picture("cel 2", probe=True),
    Picture("cel 3", probe=True),
)
"""Every source, once: scikit-image's photographs by the name of their function, and drawn cels by seed."""


def calibration() -> list[np.ndarray]:
    """One crop of every picture, :data:`CALIBRATION_SIDE` square, RGB uint8."""
    return [_crop(picture, CALIBRATION_SIDE, piece=0) for picture in PICTURES]


def probes() -> list[tuple[str, np.ndarray]]:
    """Another crop of the pictures marked as probes, :data:`PROBE_SIDE` square, RGB uint8, with their names."""
    return [(picture.name, _crop(picture, PROBE_SIDE, piece=1)) for picture in PICTURES if picture.probe]


def _crop(picture: Picture, side: int, piece: int) -> np.ndarray:
    """A piece of ``picture`` twice ``side`` across, halved (as an upscaler's input is small), from the left half
    of the picture for piece 0 and the right half for piece 1."""
    from PIL import Image

    source = _source(picture.name)
    height, width = source.shape[:2]
    span = min(2 * side, height, width // 2)
    rng = np.random.default_rng(sum(map(ord, picture.name)) + piece)
    top = int(rng.integers(0, height - span + 1))
    left = int(rng.integers(0, width // 2 - span + 1)) + piece * (width - width // 2)
    crop = Image.fromarray(np.ascontiguousarray(source[top : top + span, left : left + span]))
    return np.asarray(crop.resize((side, side), Image.Resampling.BICUBIC))


@functools.cache
def _source(name: str) -> np.ndarray:
    if name.startswith("cel "):
        return _cel(int(name.split()[1]))
    from skimage import data

    picture = getattr(data, name)()
    if picture.ndim == 2:
        picture = np.stack([picture] * 3, axis=-1)
    return np.ascontiguousarray(picture[..., :3])


def _cel(seed: int, side: int = 512) -> np.ndarray:
    """A flat-coloured drawing with dark outlines and a soft edge, like an anime cel, RGB uint8."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)

    def colour(low: int = 20) -> tuple[int, int, int]:
        red, green, blue = (int(value) for value in rng.integers(low, 256, size=3))
        return red, green, blue

    picture = Image.new("RGB", (side, side), colour(60))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, side * 2 // 3, side, side), fill=colour(40))
    outline = (30, 20, 40)
    for _ in range(40):
        x, y = (int(value) for value in rng.integers(0, side, size=2))
        w, h = (int(value) for value in rng.integers(side // 16, side // 3, size=2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=colour(), outline=outline, width=2)
    for _ in range(8):
        points = [(int(x), int(y)) for x, y in rng.integers(0, side, size=(3, 2))]
        draw.line(points, fill=outline, width=2)
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(0.7)))
