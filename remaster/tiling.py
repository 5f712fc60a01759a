"""The tile scheduler: how an image is cut into windows, sized to the memory free, run, and put back.

Each window is a core region the network must produce plus the context around it that
the network needs to produce it exactly as it would inside the whole image; the context
is cropped away afterwards. Cores are balanced (equal sizes, no thin sliver at the edge)
and aligned to the network's input multiple, so a pixel-unshuffling model sees the same
2×2 grid it would see in the whole image. :func:`upscale` sizes the windows to the memory
free (and, on a CPU, to about half a minute of work each), batches equal windows on CUDA,
and when memory still runs out, runs the image again with fewer windows at once or smaller
ones; it never returns a partial image.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .errors import OutOfMemoryError, is_out_of_memory
from .network import Network
from .pixels import to_float_scale

__all__ = [
    "CPU_WINDOW_MACS",
    "MAX_BATCH",
    "MIN_AUTO_TILE",
    "Tile",
    "Window",
    "auto_tile",
    "available_memory",
    "batch_size",
    "choose_tiles",
    "frames_at_once",
    "measure_overlap",
    "plan_windows",
    "result_array",
    "run_windows",
    "upscale",
    "upscale_frames",
]

log = logging.getLogger(__name__)

MIN_AUTO_TILE = 64
"""Automatic tiling and out-of-memory retries never go below this core size."""
CPU_WINDOW_MACS = 12e12
"""On a CPU, the most multiply-adds one window may take (about 30 s), so work stays interruptible."""
MAX_BATCH = 16
MAX_PINNED_RESULT_BYTES = 512 << 20

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
    """(core start, core stop, window start, window stop) along one axis.

    Planned over the length padded to ``multiple`` (so every start is aligned), then cut to the
    real length: the network pads a window that ends at the image's edge itself.
    """
    padded = math.ceil(length / multiple) * multiple
    if tile <= 0 or padded <= tile:
        return [(0, length, 0, length)]
    count = math.ceil(padded / tile)
    core = math.ceil(math.ceil(padded / count) / multiple) * multiple
    overlap = math.ceil(overlap / multiple) * multiple
    size = min(core + 2 * overlap, padded)
    spans = []
    for start in range(0, padded, core):
        stop = min(start + core, padded)
        low, high = (max(start - overlap, 0), min(stop + overlap, padded))
        if uniform:
            low = min(low, padded - size)
            high = low + size
        spans.append((start, min(stop, length), low, min(high, length)))
    return spans


Tile = int | tuple[int, int]
"""A core tile edge, or (rows, columns) for a rectangular core; 0 means the whole image."""


def plan_windows(
    height: int, width: int, tile: Tile, overlap: int, multiple: int = 1, uniform: bool = False
) -> list[Window]:
    """The windows that cover a ``height`` × ``width`` image, row by row.

    Args:
        height, width: the image's size.
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
        with contextlib.suppress(ValueError, OSError):
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(candidates) if candidates else 4 << 30


def run_windows(
    network: Network,
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

    Args:
        network: maps an ``(N, C, h, w)`` float batch in 0–1 to ``(N, C, h·s, w·s)``; given ``check``
            to call between its layers.
        pixels: ``(H, W, C)``, C = 1 or 3.
        windows: from :func:`plan_windows`; those of one size run ``batch`` at a time.
        out: ``(H·s, W·s, C)`` uint8, uint16 or float32 (0–1).
        progress: told the share of the windows' area done: after each batch, and within one as the
            network tells it (every quarter second or so, where a pass takes that long).
        check: called before each batch and inside the network between its layers; raises to stop the work.
    """
    value_scale = 1.0 / to_float_scale(pixels.dtype)
    pinned = device.type == "cuda"
    total = sum(_area(window) for window in windows)
    done = 0
    for group in _batches(windows, batch):
        if check is not None:
            check()
        host = torch.from_numpy(np.stack([pixels[w.rows, w.cols] for w in group]))
        if pinned:
            host = host.pin_memory()
        inputs = host.to(device, non_blocking=pinned).permute(0, 3, 1, 2).to(torch.float32).mul_(value_scale)
        area = sum(_area(window) for window in group)
        results = network(inputs, check, None if progress is None else _within(progress, done, area, total))
        for index, window in enumerate(group):
            _write_core(results[index], window, out, scale)
        done += area
        if progress is not None:
            progress(done / total)


def _area(window: Window) -> int:
    return (window.rows.stop - window.rows.start) * (window.cols.stop - window.cols.start)


def _within(progress: Callable[[float], None], done: int, area: int, total: int) -> Callable[[float], None]:
    """``progress`` told a share of one batch of ``area`` pixels as a share of all ``total``, ``done`` before it."""
    return lambda fraction: progress((done + fraction * area) / total)


def _batches(windows: list[Window], batch: int) -> list[list[Window]]:
    """``windows`` in groups of at most ``batch`` that share one size (only those can run together)."""
    by_size: dict[tuple[int, int], list[Window]] = {}
    for window in windows:
        by_size.setdefault((window.rows.stop - window.rows.start, window.cols.stop - window.cols.start), []).append(
            window
        )
    return [group[i : i + batch] for group in by_size.values() for i in range(0, len(group), batch)]


def _write_core(result: torch.Tensor, window: Window, out: np.ndarray, scale: int) -> None:
    top = (window.core_rows.start - window.rows.start) * scale
    left = (window.core_cols.start - window.cols.start) * scale
    height = (window.core_rows.stop - window.core_rows.start) * scale
    width = (window.core_cols.stop - window.core_cols.start) * scale
    core = result[:, top : top + height, left : left + width].permute(1, 2, 0)
    if out.dtype != np.float32:
        core = core.mul_(to_float_scale(out.dtype)).round_()  # in place: the window's result is ours alone
        if core.device.type != "cpu" or out.dtype == np.uint16:  # only integers travel back from a GPU
            core = core.to(torch.int32 if out.dtype == np.uint16 else torch.uint8)
    row, col = window.core_rows.start * scale, window.core_cols.start * scale
    region = out[row : row + height, col : col + width]
    if out.dtype == np.uint16:  # torch has few uint16 kernels
        region[...] = core.cpu().numpy()
    else:
        torch.from_numpy(region).copy_(core)  # straight from the device into the result


def result_array(device: torch.device, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array for a result, page-locked on CUDA when it is not too big, so the
    finished pixels come back from the GPU at full speed and straight into it."""
    dtype = np.dtype(dtype)
    if (
        device.type == "cuda"
        and dtype in (np.uint8, np.float32)
        and math.prod(shape) * dtype.itemsize <= MAX_PINNED_RESULT_BYTES
    ):
        return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=True).numpy()
    return np.empty(shape, dtype)


def auto_tile(network: Network, height: int, width: int, reserved: int = 0) -> tuple[int, int]:
    """The core tile size (rows, columns) for an image: (0, 0) when it fits whole.

    Windows are bounded by the memory free now (less ``reserved`` bytes on a CPU, where the
    result shares the memory) and, on a CPU, by work, so that progress, cancellation and the
    time limit are checked every half minute or so. Among the tilings within those bounds,
    the one that computes the least is chosen.
    """
    device = network.device
    budget = available_memory(device) - (reserved if device.type == "cpu" else 0)
    window_pixels = max(budget, 0) / network.bytes_per_pixel
    if device.type == "cpu":
        window_pixels = min(window_pixels, CPU_WINDOW_MACS / network.macs_per_pixel)
    return choose_tiles(height, width, network.overlap, network.multiple, window_pixels, device.type == "cuda")


def batch_size(network: Network, height: int, width: int, tile: Tile) -> int:
    """How many equal windows of ``tile`` to run at once: as many as the free memory holds, up to 16."""
    windows = plan_windows(height, width, tile, network.overlap, network.multiple, uniform=True)
    if len(windows) == 1:
        return 1
    window_pixels = (windows[0].rows.stop - windows[0].rows.start) * (windows[0].cols.stop - windows[0].cols.start)
    free = available_memory(network.device)
    return max(1, min(MAX_BATCH, int(free / (window_pixels * network.bytes_per_pixel))))


def frames_at_once(network: Network, height: int, width: int) -> int:
    """How many whole ``height`` × ``width`` frames to run through ``network`` in one batch: on CUDA, where a
    batch pays, as many as the free memory holds (up to 16); elsewhere one."""
    if network.device.type != "cuda":
        return 1
    fits = available_memory(network.device) / (height * width * network.bytes_per_pixel)
    return max(1, min(MAX_BATCH, int(fits)))


def upscale_frames(network: Network, frames: np.ndarray, check: Callable[[], None] | None = None) -> np.ndarray:
    """Upscale ``(N, H, W, C)`` frames in one batch, each as a whole window (exactly as a still that fits whole
    is done); ``(N, H·s, W·s, C)`` of the same dtype.

    Raises:
        torch.OutOfMemoryError, MemoryError: the batch did not fit; the caller runs fewer frames at once.
    """
    count, height, width, channels = frames.shape
    scale = network.scale
    windows = [
        Window(
            slice(k * height, (k + 1) * height), slice(0, width), slice(k * height, (k + 1) * height), slice(0, width)
        )
        for k in range(count)
    ]
    out = result_array(network.device, (count * height * scale, width * scale, channels), frames.dtype)
    with torch.inference_mode():
        run_windows(
            network,
            frames.reshape(count * height, width, channels),
            windows,
            out,
            scale=scale,
            device=network.device,
            batch=count,
            check=check,
        )
    return out.reshape(count, height * scale, width * scale, channels)


def upscale(
    network: Network,
    pixels: np.ndarray,
    tile: Tile | None,
    progress: Callable[[float], None] | None = None,
    check: Callable[[], None] | None = None,
    out: np.ndarray | None = None,
    *,
    uniform: bool | None = None,
    batch: int | None = None,
    overlap: int | None = None,
) -> np.ndarray:
    """Upscale ``(H, W, C)`` pixels, C = 1 (gray) or 3 (RGB), of any dtype remaster reads.

    If memory runs out, fewer windows run at once, then smaller ones, and the image runs
    again; a partial result is never returned.

    Args:
        network: a loaded network.
        pixels: uint8, uint16 or float32 (0–1).
        tile: core tile edge in input pixels, or (rows, columns); 0 runs the whole image at
            once; None picks the cheapest tiling the free memory allows.
        progress: told the share of the work done: after each batch of windows, and within one as
            :meth:`Network.__call__` tells it.
        check: called between batches; raises to stop the work (cancellation, time limit).
        out: where to write the result: ``(H·s, W·s, C)``, uint8, uint16 or float32 (0–1);
            a new float32 array when omitted.
        uniform: make every window the same size so equal ones can run together
            (default: on CUDA, where batches pay).
        batch: most windows at once (default: on CUDA, as many as the free memory holds).
        overlap: context each window borrows on every side (default: the network's own, which
            keeps tiles invisible; less than that shows seams).

    Returns:
        ``out``.

    Raises:
        OutOfMemoryError: even the smallest tile did not fit.
    """
    height, width, channels = pixels.shape
    if out is None:
        out = result_array(network.device, (height * network.scale, width * network.scale, channels), np.float32)
    if overlap is not None and overlap != network.overlap:
        network = replace(network, overlap=overlap)
    if network.overlap is None:
        raise ValueError("The network's overlap is not known yet: get it from Engine.with_overlap first")
    uniform = network.device.type == "cuda" if uniform is None else uniform
    tiles: Tile = auto_tile(network, height, width, reserved=out.nbytes) if tile is None else tile
    if batch is None:
        batch = batch_size(network, height, width, tiles) if uniform else 1
    while True:
        windows = plan_windows(height, width, tiles, network.overlap, network.multiple, uniform)
        try:
            with torch.inference_mode():
                run_windows(
                    network,
                    pixels,
                    windows,
                    out,
                    scale=network.scale,
                    device=network.device,
                    batch=batch,
                    progress=progress,
                    check=check,
                )
            return out
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            tiles, batch = _after_out_of_memory(error, network.device, tiles, batch, (height, width))


def measure_overlap(network: Network, limit: float = 1 / 255, seed: int = 0, largest: int = 512) -> int:
    """How many pixels of context a tile of ``network`` needs so that it cannot be told from the whole image.

    A textured probe image (ripples at many frequencies, an edge, noise) is upscaled whole, and
    its central half alone, as a tile would be: the alone result differs from the whole one
    near its edges, where the network saw its zero padding instead of the picture. The overlap
    is the distance from the edge beyond which no output pixel differs by more than ``limit``.
    The probe grows (up to ``largest`` pixels) until that distance fits well inside it.
    Measure in fp32: reduced precision's own rounding would hide the answer.
    """
    step = 4 * network.multiple
    side = math.ceil(128 / step) * step
    while True:
        probe = _probe_image(side, network.in_channels, seed)
        start, stop = side // 4, side - side // 4
        with torch.inference_mode():
            whole = upscale(network, probe, tile=0, uniform=False)
            alone = upscale(network, np.ascontiguousarray(probe[start:stop, start:stop]), tile=0, uniform=False)
        scale = network.scale
        region = whole[start * scale : stop * scale, start * scale : stop * scale]
        differs = np.abs(alone - region).max(axis=2) > limit
        needed = _margin(differs, scale)
        if needed < (stop - start) // 2 - network.multiple or side >= largest:
            if needed >= (stop - start) // 2 - network.multiple:
                log.warning("Tiles of this network need more than %d pixels of context; prefer whole images", needed)
            return math.ceil(max(needed, 1) / network.multiple) * network.multiple
        side *= 2


def _margin(differs: np.ndarray, scale: int) -> int:
    """The largest distance, in input pixels, from the edge of ``differs`` to a pixel that differs, plus one."""
    if not differs.any():
        return 0
    rows, cols = np.nonzero(differs)
    height, width = differs.shape
    distance = np.minimum.reduce([rows, cols, height - 1 - rows, width - 1 - cols])
    return int(distance.max()) // scale + 1


def _probe_image(side: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    planes = []
    for _ in range(channels):
        plane = np.zeros((side, side), np.float32)
        for frequency in (2, 5, 11, 23, 47):
            angle = rng.uniform(0, np.pi)
            plane += np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 6))
        plane = 0.5 + 0.08 * plane + 0.05 * rng.standard_normal((side, side)).astype(np.float32)
        plane[side // 3 : side // 2, side // 4 : 3 * side // 4] += 0.3  # an edge
        planes.append(plane)
    return np.clip(np.stack(planes, axis=2), 0.0, 1.0)


def _after_out_of_memory(
    error: BaseException, device: torch.device, tile: Tile, batch: int, size: tuple[int, int]
) -> tuple[int, int]:
    """The next (tile, batch) to try: half the windows at once, else windows half the size."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if batch > 1:
        log.warning("Out of memory with %d tiles at once; retrying with %d", batch, batch // 2)
        return tile, batch // 2
    edge = max(tile) if isinstance(tile, tuple) else tile
    current = edge if edge > 0 else max(size)
    smaller = current // 2
    if smaller < MIN_AUTO_TILE:
        raise OutOfMemoryError(
            f"Not enough memory even for {current}-pixel tiles on {device}; "
            "choose a smaller image or output scale, or close other programs"
        ) from error
    log.warning(
        "Out of memory with %s; retrying with %d-pixel tiles",
        f"tile {tile}" if edge else "the whole image",
        smaller,
    )
    return smaller, 1
