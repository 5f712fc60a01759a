"""Networks, precision and tiling: turns pixels into upscaled pixels.

The engine builds the official architectures from the registry, loads verified weights
into them (``weights_only=True``, ``strict=True``), keeps one instance per model, device
and precision, and runs images through them whole or in overlapping tiles whose
borders are cropped away, so tiled output matches whole-image output.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _compat  # noqa: F401 - must run before basicsr is imported
from .compiled import BackgroundCompiled
from .errors import InvalidOptionError, OutOfMemoryError, WeightsUnavailableError, brief, is_out_of_memory
from .registry import ModelSpec, WeightFile
from .settings import Settings
from .tiling import MIN_AUTO_TILE, Tile, available_memory, choose_tiles, plan_windows, run_windows
from .weights import WeightStore

__all__ = [
    "PRECISIONS",
    "Engine",
    "Network",
    "Precision",
    "build_network",
    "canonical_state_dict",
    "count_macs",
    "cpu_flags",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def build_network(spec: ModelSpec, device: torch.device | None = None) -> nn.Module:
    """A freshly initialised network of ``spec``'s official architecture, on the CPU.

    ``device`` matters only to RetinaFace, which keeps its device (and a constant on it)
    in attributes that ``Module.to`` does not move, so it must be built where it will run.
    """
    kwargs = dict(spec.arch_kwargs)
    if spec.architecture == "RRDBNet":
        from basicsr.archs.rrdbnet_arch import RRDBNet

        return RRDBNet(**kwargs)
    if spec.architecture == "SRVGGNetCompact":
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact

        return SRVGGNetCompact(**kwargs)
    if spec.architecture == "GFPGANv1Clean":
        from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

        return GFPGANv1Clean(**kwargs)
    if spec.architecture == "RestoreFormer":
        from gfpgan.archs.restoreformer_arch import RestoreFormer

        with contextlib.redirect_stdout(io.StringIO()):  # it prints its latent shape
            return RestoreFormer(**kwargs)
    if spec.architecture == "RetinaFace":
        from facexlib.detection.retinaface import RetinaFace

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's notice about the `pretrained` argument
            return RetinaFace(half=False, device=device or torch.device("cpu"), **kwargs)
    if spec.architecture == "ParseNet":
        from facexlib.parsing.parsenet import ParseNet

        return ParseNet(**kwargs)
    raise ValueError(f"No builder for architecture {spec.architecture!r}")


def canonical_state_dict(checkpoint: object, key: str) -> dict[str, torch.Tensor]:
    """The bare float32 state dict inside a checkpoint.

    Unwraps ``key`` (or ``params_ema`` / ``params`` when ``key`` is absent) and strips a
    ``module.`` prefix left by DataParallel.

    Raises:
        ValueError: the checkpoint holds no state dict.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"Expected a state dict, but the file holds a {type(checkpoint).__name__}")
    state = checkpoint
    for name in (key, "params_ema", "params"):
        if isinstance(checkpoint.get(name), Mapping):
            state = checkpoint[name]
            break
    return {
        (k[len("module.") :] if k.startswith("module.") else k): v.float()
        for k, v in state.items()
        if isinstance(v, torch.Tensor)
    }


def load_checkpoint(path: Path, key: str) -> dict[str, torch.Tensor]:
    """Load a weight file safely (tensors only, no pickled code) and unwrap it."""
    return canonical_state_dict(torch.load(path, map_location="cpu", weights_only=True), key)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def resolve_dtype(precision: str, device: torch.device, flags: frozenset[str] | None = None) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    ``auto`` means fp16 on CUDA, bf16 on a CPU with native bf16 instructions
    (AVX512-BF16 or AMX), and fp32 elsewhere.

    Raises:
        InvalidOptionError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        if {"avx512_bf16", "amx_bf16"} & flags:
            return torch.bfloat16
    return torch.float32


@dataclass(frozen=True)
class Network:
    """A loaded network and its contract: input multiple, scale, device and dtype."""

    module: nn.Module
    scale: int
    multiple: int
    """Input sides must be a multiple of this (pixel-unshuffling models); padding makes them so."""
    device: torch.device
    dtype: torch.dtype
    overlap: int
    """Input pixels each tile borrows from its neighbours on every side and crops away."""
    macs_per_pixel: float
    """Multiply-adds per input pixel."""
    bytes_per_pixel: float
    """Working memory per input pixel of a window, estimated generously."""
    compiled: BackgroundCompiled | None = None
    """Runs ``module``, compiled in the background where settings ask for it."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Upscale an ``(N, 3, H, W)`` batch in 0–1, any size; returns ``(N, 3, H·s, W·s)`` float32 in 0–1."""
        height, width = batch.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        with torch.inference_mode():
            if pad_h or pad_w:
                mode = "reflect" if pad_h < height and pad_w < width else "replicate"
                batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
            forward = self.compiled or self.module
            out = forward(batch.to(self.dtype).contiguous(memory_format=torch.channels_last))
            out = out[..., : height * self.scale, : width * self.scale]
            return out.float().clamp_(0.0, 1.0)


class Engine:
    """Loads networks on demand, keeps them, and runs pixels through them.

    Safe to use from several threads at once: loading is serialised per engine, and
    inference on a loaded network needs no lock.
    """

    def __init__(self, settings: Settings, store: WeightStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else WeightStore(settings)
        self.device = torch.device(settings.device)
        if self.device.type == "cuda":
            # Windows share one size per image, so cuDNN's per-shape algorithm search pays off.
            torch.backends.cudnn.benchmark = True
        self._lock = threading.Lock()
        self._networks: OrderedDict[tuple[str, torch.dtype, float], Network] = OrderedDict()
        """By model, dtype and denoise strength; least recently used first."""
        self._modules: dict[str, nn.Module] = {}
        self._state_dicts: dict[WeightFile, dict[str, torch.Tensor]] = {}

    def module(self, spec: ModelSpec, on_wait: Callable[[str], None] | None = None) -> nn.Module:
        """The loaded fp32 module for a helper model (face restorer, detector, parser), kept once loaded.

        Raises:
            WeightsUnavailableError: the weights could not be found, downloaded or loaded.
        """
        with self._lock:
            cached = self._modules.get(spec.name)
        if cached is not None:
            return cached
        state = self._load(spec.weights, spec.state_dict_key, on_wait)
        module = build_network(spec, self.device)
        _load_strict(module, state, spec)
        module = module.eval().requires_grad_(False).to(self.device)
        with self._lock:
            module = self._modules.setdefault(spec.name, module)
        log.info("Loaded %s on %s", spec.name, self.device)
        return module

    def network(
        self,
        spec: ModelSpec,
        precision: str = "auto",
        denoise_strength: float = 1.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> Network:
        """The network for ``spec`` at ``precision``, loading its weights if needed.

        For a model with a denoise control, ``denoise_strength`` below 1 blends its
        weights with the denoising ones (``strength·main + (1 − strength)·denoise``),
        as the official script does; the last few blends are kept.

        Raises:
            WeightsUnavailableError: the weights could not be found or downloaded.
        """
        dtype = resolve_dtype(precision, self.device)
        strength = float(denoise_strength) if spec.supports_denoise else 1.0
        key = (spec.name, dtype, strength)
        with self._lock:
            cached = self._networks.get(key)
            if cached is not None:
                self._networks.move_to_end(key)
                return cached
        if spec.supports_denoise:
            assert spec.denoise_weights is not None
            state = self._state_dict(spec.weights, spec.state_dict_key, on_wait)
            if strength < 1.0:
                denoise = self._state_dict(spec.denoise_weights, spec.state_dict_key, on_wait)
                state = {k: strength * v + (1.0 - strength) * denoise[k] for k, v in state.items()}
        else:
            state = self._load(spec.weights, spec.state_dict_key, on_wait)
        with self._lock:
            if key not in self._networks:
                self._networks[key] = self._make_network(spec, state, dtype, self.settings.compile)
                log.info("Loaded %s on %s in %s", spec.name, self.device, dtype)
                blends = [k for k in self._networks if k[2] != 1.0]
                for old in blends[: max(len(blends) - MAX_BLENDS, 0)]:
                    del self._networks[old]
            self._networks.move_to_end(key)
            return self._networks[key]

    def _state_dict(
        self, weight: WeightFile, key: str, on_wait: Callable[[str], None] | None
    ) -> dict[str, torch.Tensor]:
        with self._lock:
            cached = self._state_dicts.get(weight)
        if cached is None:
            cached = self._load(weight, key, on_wait)
            with self._lock:
                cached = self._state_dicts.setdefault(weight, cached)
        return cached

    def _load(self, weight: WeightFile, key: str, on_wait: Callable[[str], None] | None) -> dict[str, torch.Tensor]:
        path = self.store.path(weight, on_wait)
        try:
            return load_checkpoint(path, key)
        except Exception as error:  # noqa: BLE001 - torch.load raises many kinds for a bad file
            raise WeightsUnavailableError(
                f"{path} could not be loaded ({brief(error)}); replace it with the official {weight.filename}"
            ) from error

    def _make_network(
        self, spec: ModelSpec, state: dict[str, torch.Tensor], dtype: torch.dtype, compile_in_background: bool
    ) -> Network:
        module = build_network(spec)
        unshuffle = {2: 2, 1: 4}.get(spec.scale, 1) if spec.architecture == "RRDBNet" else 1
        macs = count_macs(module, unshuffle)
        _load_strict(module, state, spec)
        module.eval().requires_grad_(False)
        module = module.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        return Network(
            module=module,
            scale=spec.scale,
            multiple=unshuffle,
            device=self.device,
            dtype=dtype,
            overlap=spec.tile_overlap,
            macs_per_pixel=macs,
            bytes_per_pixel=_activation_bytes_per_pixel(spec, dtype),
            compiled=BackgroundCompiled(module, f"{spec.name} ({dtype})") if compile_in_background else None,
        )

    def upscale(
        self,
        network: Network,
        pixels: np.ndarray,
        tile: int | None,
        progress: Callable[[float], None] | None = None,
        check: Callable[[], None] | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Upscale ``(H, W, C)`` pixels, C = 1 (gray) or 3 (RGB), of any dtype remaster reads.

        Gray input runs through the network as three equal channels and comes back as
        their luminance, as the official script does. If memory runs out, the tile is
        made smaller and the image run again; a partial result is never returned.

        Args:
            network: from :meth:`network`.
            pixels: uint8, uint16 or float32 (0–1).
            tile: core tile edge in input pixels; 0 runs the whole image at once; None
                picks the largest size the free memory allows.
            progress: told the fraction of tiles done after each tile.
            check: called between tiles; raises to stop the work (cancellation, time limit).
            out: where to write the result: ``(H·s, W·s, C)``, uint8, uint16 or float32
                (0–1); a new float32 array when omitted.

        Returns:
            ``out``.

        Raises:
            OutOfMemoryError: even the smallest tile did not fit.
        """
        height, width, channels = pixels.shape
        if out is None:
            out = self.result_array((height * network.scale, width * network.scale, channels), np.float32)
        padded = _pad_to_multiple(pixels, network.multiple)
        tiles: Tile = self.auto_tile(network, *padded.shape[:2], reserved=out.nbytes) if tile is None else tile
        uniform = self.device.type == "cuda"
        batch = self._batch_size(network, padded.shape[:2], tiles) if uniform else 1
        while True:
            windows = plan_windows(*padded.shape[:2], tiles, network.overlap, network.multiple, uniform)
            try:
                with torch.inference_mode():
                    run_windows(
                        network,
                        padded,
                        windows,
                        out,
                        scale=network.scale,
                        device=self.device,
                        batch=batch,
                        progress=progress,
                        check=check,
                    )
                return out
            except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
                if not is_out_of_memory(error):
                    raise
                tiles, batch = self._after_out_of_memory(error, tiles, batch, padded.shape[:2])

    def result_array(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised array for a result, page-locked on CUDA when it is not too big, so the
        finished pixels come back from the GPU at full speed and straight into it."""
        dtype = np.dtype(dtype)
        if (
            self.device.type == "cuda"
            and dtype in (np.uint8, np.float32)
            and math.prod(shape) * dtype.itemsize <= MAX_PINNED_RESULT_BYTES
        ):
            return torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype)).dtype, pin_memory=True).numpy()
        return np.empty(shape, dtype)

    def auto_tile(self, network: Network, height: int, width: int, reserved: int = 0) -> tuple[int, int]:
        """The core tile size (rows, columns) for an image: (0, 0) when it fits whole.

        Windows are bounded by the memory free now and, on a CPU, by work, so that
        progress, cancellation and the time limit are checked every half minute or so.
        Among the tilings within those bounds, the one that computes the least is chosen.
        """
        budget = available_memory(self.device) - (reserved if self.device.type == "cpu" else 0)
        window_pixels = max(budget, 0) / network.bytes_per_pixel
        if self.device.type == "cpu":
            window_pixels = min(window_pixels, CPU_WINDOW_MACS / network.macs_per_pixel)
        uniform = self.device.type == "cuda"
        return choose_tiles(height, width, network.overlap, network.multiple, window_pixels, uniform)

    def _batch_size(self, network: Network, size: tuple[int, int], tiles: Tile) -> int:
        windows = plan_windows(*size, tiles, network.overlap, network.multiple, uniform=True)
        if len(windows) == 1:
            return 1
        window_pixels = (windows[0].rows.stop - windows[0].rows.start) * (windows[0].cols.stop - windows[0].cols.start)
        return max(1, min(MAX_BATCH, int(available_memory(self.device) / (window_pixels * network.bytes_per_pixel))))

    def _after_out_of_memory(
        self, error: BaseException, tile: int, batch: int, size: tuple[int, int]
    ) -> tuple[int, int]:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch > 1:
            log.warning("Out of memory with %d tiles at once; retrying with %d", batch, batch // 2)
            return tile, batch // 2
        current = tile if tile > 0 else max(size)
        smaller = current // 2
        if smaller < MIN_AUTO_TILE:
            raise OutOfMemoryError(
                f"Not enough memory even for {current}-pixel tiles on {self.device}; "
                "choose a smaller image or output scale, or close other programs"
            ) from error
        log.warning(
            "Out of memory with %s; retrying with %d-pixel tiles",
            f"tile {tile}" if tile else "the whole image",
            smaller,
        )
        return smaller, 1


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], spec: ModelSpec) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsUnavailableError(
            f"The weights for {spec.name} could not be loaded: they do not fit its architecture "
            f"({brief(error)}); replace {spec.weights.filename} with the official file"
        ) from error


CPU_WINDOW_MACS = 12e12
"""On a CPU, the most multiply-adds one window may take (about 30 s), so work stays interruptible."""
MAX_BATCH = 16
MAX_BLENDS = 8
"""Networks of blended denoise weights kept (the page's slider makes a new one per value)."""
MAX_PINNED_RESULT_BYTES = 512 << 20


def _pad_to_multiple(pixels: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the bottom and right edges by reflection, as the official script does, to a multiple."""
    height, width = pixels.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return pixels
    mode = "reflect" if pad_h < height and pad_w < width else "edge"
    return np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def _activation_bytes_per_pixel(spec: ModelSpec, dtype: torch.dtype) -> float:
    """Working memory per input pixel, from the layer widths.

    The peak is at the output resolution: a few feature maps of ``num_feat`` channels at
    scale² pixels each, plus the float32 result and its quantised core. Measured peaks
    on a CPU are 0.4–0.8 of this (RealESRGAN_x4plus in bf16: 5.2 KB per pixel, this 6.9 KB).
    """
    itemsize = torch.finfo(dtype).bits // 8
    kwargs = spec.arch_kwargs
    pixels_out = spec.scale**2
    if spec.architecture == "RRDBNet":
        features = 3 * kwargs["num_feat"] * pixels_out + 4 * (kwargs["num_feat"] + 4 * kwargs["num_grow_ch"])
    else:
        features = 3 * kwargs["num_feat"] + 3 * kwargs["num_out_ch"] * pixels_out
    return features * itemsize + 3 * pixels_out * (4 + 4)


def count_macs(module: nn.Module, multiple: int = 1) -> float:
    """Multiply-adds per input pixel of ``module``, counted over its convolutions on a small input."""
    side = 8 * multiple
    total = 0

    def hook(layer: nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        kernel = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
        total += output.numel() * kernel

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, 3, side, side))
    finally:
        for handle in handles:
            handle.remove()
    return total / (side * side)
