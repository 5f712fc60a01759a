"""What the page shows of a result: the before/after pair and the centre at 100%, made from pixels in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from .. import image_io, pixels
from ..files import FileResult

__all__ = ["DETAIL_SIDE", "PREVIEW_MAX_SIDE", "DetailViews", "detail_view", "preview_pair", "result_views"]

PREVIEW_MAX_SIDE = 4096
"""The before/after preview is scaled to fit this; the download is always full resolution."""
DETAIL_SIDE = 384
"""The detail view shows this many output pixels square, at 100%."""

Pair = tuple[Image.Image, Image.Image]


def _float_pixels(image: Image.Image | np.ndarray | str) -> np.ndarray:
    return pixels.to_float(image_io.decode(image, max_pixels=1 << 62).pixels)


def result_views(done: FileResult) -> tuple[Pair, Pair]:
    """The before/after pair and the detail view of a result just made, from its pixels in memory."""
    before = done.first_input.pixels
    after = image_io.decode(done.first_output, max_pixels=1 << 62).pixels
    return preview_pair(before, after), detail_view(before, after)


def preview_pair(before: np.ndarray, after: np.ndarray) -> Pair:
    """The input and the result, 8-bit, both at the result's size shrunk to fit the page."""
    height, width = after.shape[:2]
    ratio = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
    target = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    resized = (pixels.resize(pixels.to_float(side), target) for side in (before, after))
    return tuple(pixels.eight_bit_image(side) for side in resized)


def detail_view(before: np.ndarray, after: np.ndarray) -> Pair:
    """The centre of ``after`` at 100%, beside the same region of ``before`` enlarged to match.

    Both are ``(H, W, C)`` pixels of any dtype remaster reads; ``after`` is the larger.
    """
    before, after = pixels.to_float(before), pixels.to_float(after)
    (height, width), (in_height, in_width) = after.shape[:2], before.shape[:2]
    crop_w, crop_h = min(DETAIL_SIDE, width), min(DETAIL_SIDE, height)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    scale_x, scale_y = width / in_width, height / in_height
    # Enlarge only the part of the input under the crop (results can be 16384 pixels wide).
    x0, y0 = int(left / scale_x), int(top / scale_y)
    x1 = min(in_width, int(np.ceil((left + crop_w) / scale_x)) + 1)
    y1 = min(in_height, int(np.ceil((top + crop_h) / scale_y)) + 1)
    region = pixels.resize(before[y0:y1, x0:x1], (round((x1 - x0) * scale_x), round((y1 - y0) * scale_y)))
    dx, dy = left - round(x0 * scale_x), top - round(y0 * scale_y)
    before_crop = pixels.resize(region[dy : dy + crop_h, dx : dx + crop_w], (crop_w, crop_h))
    if before_crop.shape[2] != after.shape[2]:  # a colour result of a gray input, or the reverse
        before_crop = np.repeat(before_crop[:, :, :1], after.shape[2], axis=2)
    return pixels.eight_bit_image(before_crop), pixels.eight_bit_image(after[top : top + crop_h, left : left + crop_w])


class DetailViews:
    """The detail views of the page's latest results, by result path, made while the pixels were in memory.

    The page shows a result's detail when its download changes; a path seen here is answered
    at once, any other (a result cached by an earlier run) is read back from its files.
    """

    def __init__(self, keep: int = 32) -> None:
        self.keep = keep
        self._views: OrderedDict[str, Pair] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, result: str, view: Pair) -> None:
        """Keep the detail view of the result written at ``result``."""
        with self._lock:
            self._views[result] = view
            while len(self._views) > self.keep:
                self._views.popitem(last=False)

    def get(self, source: str | None, result: str | None) -> Pair | None:
        """The detail view of the result at ``result`` made from ``source``; None when either is missing."""
        if not source or not result:
            return None
        with self._lock:
            view = self._views.get(str(result))
        if view is not None:
            return view
        return detail_view(_float_pixels(source), _float_pixels(result))
