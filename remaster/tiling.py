"""The tile scheduler: how an image is cut into windows, sized to the memory free, and put back.

Each window is a core region the network must produce plus the context around it that
the network needs to produce it exactly as it would inside the whole image; the context
is cropped away afterwards. Cores are balanced (equal sizes, no thin sliver at the edge)
and aligned to the network's input multiple, so a pixel-unshuffling model sees the same
2×2 grid it would see in the whole image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .imageio import to_float_scale

__all__ = [
    "MIN_AUTO_TILE",
    "Tile",
    "Window",
    "available_memory",
    "choose_tiles",
    "plan_windows",
    "run_windows",
]

MIN_AUTO_TILE = 64
"""Automatic tiling and out-of-memory retries never go below this core size."""

_CUDA_MEMORY_SHARE = 0.8
_CPU_MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Window:
    """One piece of the work: the core it produces and the input region the network sees."""

    core_rows: slice
    core_cols: slice
    rows: slice
    cols: slice


def _axis_spans(length: int, tile: int, overlap: int, multiple: int, uniform: bool) -> list[tuple[int, int, int, int]]:
    """(core start, core stop, window start, window stop) along one axis."""
    if tile <= 0 or length <= tile:
        return [(0, length, 0, length)]
    count = math.ceil(length / tile)
    core = math.ceil(math.ceil(length / count) / multiple) * multiple
    overlap = math.ceil(overlap / multiple) * multiple
    size = min(core + 2 * overlap, length)
    spans = []
    for start in range(0, length, core):
        stop = min(start + core, length)
        if uniform:
            low = min(max(start - overlap, 0), length - size)
            spans.append((start, stop, low, low + size))
        else:
            spans.append((start, stop, max(start - overlap, 0), min(stop + overlap, length)))
    return spans


Tile = int | tuple[int, int]
"""A core tile edge, or (rows, columns) for a rectangular core; 0 means the whole image."""


def plan_windows(
    height: int, width: int, tile: Tile, overlap: int, multiple: int = 1, uniform: bool = False
) -> list[Window]:
    """The windows that cover a ``height`` × ``width`` image, row by row.

    Args:
        height, width: the image's size; multiples of ``multiple``.
        tile: the largest core edge, or (rows, columns); 0 (or a tile as large as the
            image) gives one window.
        overlap: context each core needs on every side where the image goes on.
        multiple: cores and windows start and end on multiples of this.
        uniform: make every window the same size (shifting edge windows inward), so
            windows can be batched and one compiled graph serves them all.
    """
    tile_rows, tile_cols = (tile, tile) if isinstance(tile, int) else tile
    rows = _axis_spans(height, tile_rows, overlap, multiple, uniform)
    cols = _axis_spans(width, tile_cols, overlap, multiple, uniform)
    return [
        Window(slice(r0, r1), slice(c0, c1), slice(wr0, wr1), slice(wc0, wc1))
        for r0, r1, wr0, wr1 in rows
        for c0, c1, wc0, wc1 in cols
    ]


def choose_tiles(
    height: int, width: int, overlap: int, multiple: int, max_window_pixels: float, uniform: bool = False
) -> tuple[int, int]:
    """The core size (rows, columns) that computes the least area with no window over the limit.

    The overlap is paid once per cut, so fewer cuts win: a wide image becomes strips
    rather than squares when strips fit. Returns (0, 0) when the whole image fits, and
    the smallest tiles when nothing does.
    """
    if height * width <= max_window_pixels:
        return (0, 0)
    best: tuple[int, int, int, int, int] | None = None
    for rows_count in range(1, max(height // MIN_AUTO_TILE, 1) + 1):
        tile_rows = _balanced(height, rows_count, multiple)
        row_spans = _axis_spans(height, tile_rows, overlap, multiple, uniform)
        row_sizes = [stop - start for _, _, start, stop in row_spans]
        for cols_count in range(1, max(width // MIN_AUTO_TILE, 1) + 1):
            tile_cols = _balanced(width, cols_count, multiple)
            col_sizes = [
                stop - start for _, _, start, stop in _axis_spans(width, tile_cols, overlap, multiple, uniform)
            ]
            if max(row_sizes) * max(col_sizes) > max_window_pixels:
                continue
            area = sum(row_sizes) * sum(col_sizes)
            # Equal areas: fewer windows, then full-width strips (whole rows are contiguous in memory).
            candidate = (area, len(row_sizes) * len(col_sizes), len(col_sizes), tile_rows, tile_cols)
            best = candidate if best is None or candidate < best else best
            break  # more columns only add overlap
    if best is None:
        return (MIN_AUTO_TILE, MIN_AUTO_TILE)
    return best[3], best[4]


def _balanced(length: int, count: int, multiple: int) -> int:
    core = math.ceil(math.ceil(length / count) / multiple) * multiple
    return 0 if count == 1 else core


def available_memory(device: torch.device) -> int:
    """Bytes that work on ``device`` may use now: a share of what is free."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * _CUDA_MEMORY_SHARE)
    if device.type == "mps":
        free = torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
        return int(max(free, 0) * _CUDA_MEMORY_SHARE)
    return int(_free_ram() * _CPU_MEMORY_SHARE)


def _free_ram() -> int:
    """Free RAM, honouring a container's memory limit (cgroup v2 or v1), as Spaces have."""
    candidates = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
        except OSError:
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            candidates.append(max(int(limit) - int(usage), 0))
    if not candidates and hasattr(os, "sysconf"):
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(candidates) if candidates else 4 << 30


def run_windows(
    network: Callable[[torch.Tensor], torch.Tensor],
    pixels: np.ndarray,
    windows: list[Window],
    out: np.ndarray,
    *,
    scale: int,
    device: torch.device,
    batch: int = 1,
    progress: Callable[[float], None] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """Run ``windows`` of ``pixels`` through ``network`` and write their cores into ``out``.

    Conversion to and from the image's integer range happens on ``device``: only the
    window's raw pixels travel there, and only the finished, quantised core comes back.
    Writes that fall outside ``out`` (padding added for the network) are dropped.

    Args:
        network: maps an ``(N, 3, h, w)`` float batch in 0–1 to ``(N, 3, h·s, w·s)``.
        pixels: ``(H, W, C)``, C = 1 (run as three equal channels, returned as luminance) or 3.
        windows: from :func:`plan_windows`; batched ``batch`` at a time when their sizes match.
        out: ``(H·s, W·s, C)`` uint8, uint16 or float32 (0–1), at least partly covering the image.
        progress: told the fraction of windows done after each batch.
        check: called before each batch; raises to stop the work.
    """
    value_scale = 1.0 / to_float_scale(pixels.dtype)
    pinned = device.type == "cuda"
    for start in range(0, len(windows), batch):
        if check is not None:
            check()
        group = windows[start : start + batch]
        if len({(w.rows.stop - w.rows.start, w.cols.stop - w.cols.start) for w in group}) > 1:
            group = group[:1]  # sizes differ: run one at a time
        host = torch.from_numpy(np.stack([pixels[w.rows, w.cols] for w in group]))
        if pinned:
            host = host.pin_memory()
        inputs = host.to(device, non_blocking=pinned).permute(0, 3, 1, 2).to(torch.float32).mul_(value_scale)
        if inputs.shape[1] == 1:
            inputs = inputs.expand(-1, 3, -1, -1)
        results = network(inputs)
        for index, window in enumerate(group):
            _write_core(results[index], window, out, scale)
        if progress is not None:
            progress(min(start + len(group), len(windows)) / len(windows))


_LUMA = (0.299, 0.587, 0.114)  # OpenCV's RGB→gray weights, as the official script uses


def _write_core(result: torch.Tensor, window: Window, out: np.ndarray, scale: int) -> None:
    top = (window.core_rows.start - window.rows.start) * scale
    left = (window.core_cols.start - window.cols.start) * scale
    height = min(window.core_rows.stop * scale, out.shape[0]) - window.core_rows.start * scale
    width = min(window.core_cols.stop * scale, out.shape[1]) - window.core_cols.start * scale
    if height <= 0 or width <= 0:
        return
    core = result[:, top : top + height, left : left + width]
    if out.shape[2] == 1:
        luma = torch.tensor(_LUMA, device=core.device, dtype=core.dtype).view(3, 1, 1)
        core = (core * luma).sum(dim=0, keepdim=True)
    core = core.permute(1, 2, 0)
    if out.dtype != np.float32:
        core = core.mul(to_float_scale(out.dtype)).round_().to(torch.int32 if out.dtype == np.uint16 else torch.uint8)
    row, col = window.core_rows.start * scale, window.core_cols.start * scale
    region = out[row : row + height, col : col + width]
    if out.dtype == np.uint16:  # torch has few uint16 kernels
        region[...] = core.cpu().numpy()
    else:
        torch.from_numpy(region).copy_(core)  # straight from the device into the result
