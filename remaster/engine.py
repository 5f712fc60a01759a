"""Networks, precision and tiling: turns pixels into upscaled pixels.

The engine builds the official architectures from the registry, loads verified weights
into them (``weights_only=True``, ``strict=True``), keeps one instance per model, device
and precision, and runs images through them whole or in overlapping tiles whose
borders are cropped away, so tiled output matches whole-image output.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import _compat  # noqa: F401 - must run before basicsr is imported
from .errors import InvalidOptionError, WeightsUnavailableError, brief
from .imageio import to_float_scale
from .registry import ModelSpec, WeightFile
from .settings import Settings
from .weights import WeightStore

__all__ = [
    "PRECISIONS",
    "Engine",
    "Network",
    "Precision",
    "build_network",
    "canonical_state_dict",
    "cpu_flags",
    "plan_tiles",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LUMA = (0.299, 0.587, 0.114)  # OpenCV's RGB→gray weights, as the official script uses


def build_network(spec: ModelSpec) -> nn.Module:
    """A freshly initialised network of ``spec``'s official architecture."""
    if spec.architecture == "RRDBNet":
        from basicsr.archs.rrdbnet_arch import RRDBNet

        return RRDBNet(**spec.arch_kwargs)
    if spec.architecture == "SRVGGNetCompact":
        from realesrgan.archs.srvgg_arch import SRVGGNetCompact

        return SRVGGNetCompact(**spec.arch_kwargs)
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


def plan_tiles(height: int, width: int, tile: int) -> Iterator[tuple[slice, slice]]:
    """The core regions (rows, columns) that cover the image, ``tile`` pixels square.

    ``tile`` 0 gives the whole image as one region.
    """
    step_y = height if tile <= 0 else tile
    step_x = width if tile <= 0 else tile
    for y in range(0, height, step_y):
        for x in range(0, width, step_x):
            yield slice(y, min(y + step_y, height)), slice(x, min(x + step_x, width))


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

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Upscale an ``(N, 3, H, W)`` batch in 0–1, any size; returns ``(N, 3, H·s, W·s)`` float32 in 0–1."""
        height, width = batch.shape[-2:]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        with torch.inference_mode():
            if pad_h or pad_w:
                mode = "reflect" if pad_h < height and pad_w < width else "replicate"
                batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
            out = self.module(batch.to(self.dtype).contiguous(memory_format=torch.channels_last))
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
        self._lock = threading.Lock()
        self._networks: dict[tuple[str, torch.dtype], Network] = {}
        self._state_dicts: dict[WeightFile, dict[str, torch.Tensor]] = {}

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
        as the official script does; that network is built for the request, not kept.

        Raises:
            WeightsUnavailableError: the weights could not be found or downloaded.
        """
        dtype = resolve_dtype(precision, self.device)
        if spec.supports_denoise and denoise_strength < 1.0:
            assert spec.denoise_weights is not None
            main = self._state_dict(spec.weights, spec.state_dict_key, on_wait)
            denoise = self._state_dict(spec.denoise_weights, spec.state_dict_key, on_wait)
            blended = {k: denoise_strength * v + (1.0 - denoise_strength) * denoise[k] for k, v in main.items()}
            return self._make_network(spec, blended, dtype)
        key = (spec.name, dtype)
        with self._lock:
            cached = self._networks.get(key)
        if cached is not None:
            return cached
        if spec.supports_denoise:
            state = self._state_dict(spec.weights, spec.state_dict_key, on_wait)
        else:
            state = self._load(spec.weights, spec.state_dict_key, on_wait)
        with self._lock:
            if key not in self._networks:
                self._networks[key] = self._make_network(spec, state, dtype)
                log.info("Loaded %s on %s in %s", spec.name, self.device, dtype)
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

    def _make_network(self, spec: ModelSpec, state: dict[str, torch.Tensor], dtype: torch.dtype) -> Network:
        module = build_network(spec)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise WeightsUnavailableError(
                f"The weights for {spec.name} could not be loaded: they do not fit its architecture "
                f"({brief(error)}); replace {spec.weights.filename} with the official file"
            ) from error
        module.eval().requires_grad_(False)
        module = module.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        unshuffle = {2: 2, 1: 4}.get(spec.scale, 1) if spec.architecture == "RRDBNet" else 1
        return Network(
            module=module,
            scale=spec.scale,
            multiple=unshuffle,
            device=self.device,
            dtype=dtype,
            overlap=spec.tile_overlap,
        )

    def upscale(
        self,
        network: Network,
        pixels: np.ndarray,
        tile: int,
        progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """Upscale ``(H, W, C)`` pixels, C = 1 (gray) or 3 (RGB), of any dtype remaster reads.

        Gray input runs through the network as three equal channels and comes back as
        their luminance, as the official script does.

        Args:
            network: from :meth:`network`.
            pixels: uint8, uint16 or float32 (0–1).
            tile: core tile edge in input pixels; 0 runs the whole image at once.
            progress: told the fraction of tiles done after each tile.

        Returns:
            float32 ``(H·s, W·s, C)`` pixels in 0–1.
        """
        height, width, channels = pixels.shape
        scale = network.scale
        out = np.empty((height * scale, width * scale, channels), dtype=np.float32)
        regions = list(plan_tiles(height, width, tile))
        overlap = network.overlap if tile > 0 else 0
        value_scale = 1.0 / to_float_scale(pixels.dtype)
        with torch.inference_mode():
            for done, (rows, cols) in enumerate(regions, start=1):
                self._upscale_tile(network, pixels, rows, cols, overlap, value_scale, out)
                if progress is not None:
                    progress(done / len(regions))
        return out

    def _upscale_tile(
        self,
        network: Network,
        pixels: np.ndarray,
        rows: slice,
        cols: slice,
        overlap: int,
        value_scale: float,
        out: np.ndarray,
    ) -> None:
        height, width, channels = pixels.shape
        scale = network.scale
        top, left = max(rows.start - overlap, 0), max(cols.start - overlap, 0)
        bottom, right = min(rows.stop + overlap, height), min(cols.stop + overlap, width)
        batch = torch.tensor(pixels[top:bottom, left:right]).permute(2, 0, 1).unsqueeze(0)
        batch = batch.to(self.device).to(torch.float32).mul_(value_scale)
        if channels == 1:
            batch = batch.expand(-1, 3, -1, -1)
        result = network(batch)
        result = result[
            :,
            :,
            (rows.start - top) * scale : (rows.stop - top) * scale,
            (cols.start - left) * scale : (cols.stop - left) * scale,
        ]
        if channels == 1:
            luma = torch.tensor(_LUMA, device=result.device).view(1, 3, 1, 1)
            result = (result * luma).sum(dim=1, keepdim=True)
        out[rows.start * scale : rows.stop * scale, cols.start * scale : cols.stop * scale] = (
            result[0].permute(1, 2, 0).cpu().numpy()
        )
