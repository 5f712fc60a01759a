"""A loaded network and its contract: the only place that pads, casts and crops what a network sees.

:class:`Network` takes a batch of float pixels in 0–1 of any size and channel count the
image has (gray or colour), pads it to the input multiple the architecture needs, casts it
to the compute dtype and memory layout, runs it, and gives back exactly the upscaled size
in float32, clamped to 0–1, with the channels it came in with.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .errors import InvalidOptionError
from .options import PRECISIONS

__all__ = ["DTYPES", "Network", "add_stop_points", "count_macs", "cpu_flags", "current_check", "resolve_dtype"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_LUMA = (0.299, 0.587, 0.114)  # OpenCV's RGB→gray weights, as the official script uses


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


def resolve_dtype(
    precision: str,
    device: torch.device,
    flags: frozenset[str] | None = None,
    supported: tuple[str, ...] = ("fp32", "fp16", "bf16"),
) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``, among the precisions a network ``supported``.

    ``auto`` means fp16 on CUDA, bf16 on a CPU with native bf16 instructions
    (AVX512-BF16 or AMX), and fp32 elsewhere. A precision the network does not support
    runs in fp32.

    Raises:
        InvalidOptionError: ``precision`` is not one of :data:`remaster.options.PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        precision = _automatic(device, cpu_flags() if flags is None else flags)
    return DTYPES[precision if precision in supported else "fp32"]


def _automatic(device: torch.device, flags: frozenset[str]) -> str:
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and {"avx512_bf16", "amx_bf16"} & flags:
        return "bf16"
    return "fp32"


@dataclass(frozen=True)
class Network:
    """A loaded network: its module, scale, input contract, device, dtype and costs."""

    module: nn.Module
    scale: int
    multiple: int
    """Input sides must be a multiple of this (pixel-unshuffling models); :meth:`__call__` pads them so."""
    device: torch.device
    dtype: torch.dtype
    overlap: int | None
    """Input pixels each tile borrows from its neighbours on every side and crops away; None until measured
    (see :meth:`remaster.engine.Engine.with_overlap`)."""
    macs_per_pixel: float
    """Multiply-adds per input pixel."""
    bytes_per_pixel: float
    """Working memory per input pixel of a window, estimated generously."""
    in_channels: int = 3
    accelerated: Callable[[torch.Tensor], torch.Tensor] | None = None
    """Runs ``module`` on another backend (``torch.compile``, OpenVINO, TensorRT) where one was chosen for it."""
    stoppable: bool = False
    """Whether ``module`` has stop points (:func:`add_stop_points`) between its layers."""
    tiling: str = "supported"
    """The architecture's advice: ``supported``, ``discouraged`` (whole images unless asked) or ``internal``
    (the network tiles itself: never cut)."""

    def __call__(self, batch: torch.Tensor, check: Callable[[], None] | None = None) -> torch.Tensor:
        """Upscale an ``(N, C, H, W)`` batch in 0–1 on :attr:`device`, C = 1 or 3, any size.

        Returns ``(N, C, H·s, W·s)`` float32 in 0–1. Gray runs through a colour network as three
        equal channels and comes back as their luminance, as the official script does.

        Args:
            check: called between the network's layers, where it has stop points; raises to stop.
        """
        if check is None or not self.stoppable:
            return self._run(batch)
        _stopping.check = check
        try:
            return self._run(batch)
        finally:
            _stopping.check = None

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        height, width = batch.shape[-2:]
        channels = batch.shape[1]
        pad_h, pad_w = -height % self.multiple, -width % self.multiple
        with torch.inference_mode():
            if channels == 3 and self.in_channels == 1:  # a gray network: each colour on its own
                count = batch.shape[0]
                return self._run(batch.reshape(count * 3, 1, height, width)).reshape(count, 3, *_scaled(self, batch))
            if channels != self.in_channels:
                batch = _to_channels(batch, self.in_channels)
            if pad_h or pad_w:
                mode = "reflect" if pad_h < height and pad_w < width else "replicate"
                batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
            forward = self.accelerated or self.module
            out = forward(batch.to(self.dtype).contiguous(memory_format=torch.channels_last))
            out = out[..., : height * self.scale, : width * self.scale]
            # float32 and channels-last in one pass: the cores are then copied out pixel by pixel, not plane by plane.
            out = out.to(torch.float32, memory_format=torch.channels_last).clamp_(0.0, 1.0)
            return _to_channels(out, channels) if out.shape[1] != channels else out


def _scaled(network: Network, batch: torch.Tensor) -> tuple[int, int]:
    return batch.shape[-2] * network.scale, batch.shape[-1] * network.scale


_stopping = threading.local()
"""The stop check of the request this thread runs, read by the stop points."""


def current_check() -> Callable[[], None] | None:
    """The stop check of the request this thread runs inside a network, if any (for backends that wait)."""
    return getattr(_stopping, "check", None)


def _stop_point(layer: nn.Module, inputs: object) -> None:
    check = getattr(_stopping, "check", None)
    if check is not None:
        check()


def add_stop_points(module: nn.Module) -> None:
    """Let a request stop ``module`` between any two of its convolutions, not only between tiles.

    One tile of RealESRGAN_x4plus is half a minute of work on a CPU; its layers take
    milliseconds each. Each convolution first calls the check of the request running in
    its thread (set by :meth:`Network.__call__`), if any: a flag and a clock, no more. Not
    for compiled networks, whose graphs would have to trace the hooks.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            layer.register_forward_pre_hook(_stop_point)


def _to_channels(batch: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 3:
        return batch.expand(-1, 3, -1, -1)
    luma = torch.tensor(_LUMA, device=batch.device, dtype=batch.dtype).view(1, 3, 1, 1)
    return (batch * luma).sum(dim=1, keepdim=True)


def count_macs(module: nn.Module, multiple: int = 1, channels: int = 3, minimum: int = 0) -> float:
    """Multiply-adds per input pixel of ``module``, counted over its convolutions and linear layers on a small input."""
    side = max(8 * multiple, -(-minimum // multiple) * multiple)
    total = 0

    def hook(layer: nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        kernel = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
        total += output.numel() * kernel

    def linear(layer: nn.Linear, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * layer.in_features

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, channels, side, side))
    finally:
        for handle in handles:
            handle.remove()
    return total / (side * side)
