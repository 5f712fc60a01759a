"""A loaded network and its contract: the only place that pads, casts and crops what a network sees.

:class:`Network` takes a batch of float pixels in 0–1 of any size and channel count the
image has (gray or colour), pads it to the input multiple the architecture needs, casts it
to the compute dtype and memory layout, runs it, and gives back exactly the upscaled size
in float32, clamped to 0–1, with the channels it came in with.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .errors import InvalidOptionError
from .options import PRECISIONS

__all__ = [
    "DTYPES",
    "KEY_FLAGS",
    "REPORT_EVERY",
    "Costs",
    "Network",
    "Processor",
    "add_stop_points",
    "count_macs",
    "cpu_flags",
    "cpu_model",
    "current_check",
    "resolve_dtype",
    "waited",
]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
KEY_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni")
"""The CPU flags that decide which runtime and precision run a network fastest: what a kept decision is keyed by."""
_LUMA = (0.299, 0.587, 0.114)  # OpenCV's RGB→gray weights, as the official script uses
REPORT_EVERY = 0.25
"""Seconds between two reports of progress within one pass of a network."""


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


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class Processor:
    """What networks run on, as far as which runtime and precision are fastest depends on it."""

    name: str
    """The CPU's model name, or the GPU's."""
    flags: frozenset[str] | None = None
    """A CPU's flags as remaster sees them (``REMASTER_CPU_FLAGS`` may pretend others); None for a GPU."""

    @classmethod
    def of(cls, device: torch.device, flags: frozenset[str] | None = None, bf16: bool = True) -> Processor:
        """The processor behind ``device``: for a CPU, with ``flags`` in place of its own where given, and without
        its bf16 flags where ``bf16`` is off (``REMASTER_CPU_BF16=0``)."""
        if device.type == "cuda":
            return cls(torch.cuda.get_device_name(device))
        if device.type != "cpu":
            return cls(device.type)
        seen = cpu_flags() if flags is None else flags
        return cls(cpu_model(), seen if bf16 else seen - _BF16_FLAGS)

    @property
    def key(self) -> str:
        """Its name and, for a CPU, the flags of :data:`KEY_FLAGS` it has: what decisions measured on it are kept
        by, so that another processor (or the same one pretending other flags) measures again."""
        if self.flags is None:
            return self.name
        shown = " ".join(flag for flag in KEY_FLAGS if flag in self.flags)
        return f"{self.name} ({shown or 'no ' + KEY_FLAGS[0]})"

    @property
    def vnni(self) -> bool:
        """Whether it sums int8 products in 32 bits (VNNI, AMX); without, AVX2 sums pairs of them in 16 bits,
        which saturate unless a layer's weights keep to 7 bits."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & (self.flags or frozenset()))


def resolve_dtype(
    precision: str,
    device: torch.device,
    flags: frozenset[str] | None = None,
    supported: tuple[str, ...] = ("fp32", "fp16", "bf16"),
) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``, among the precisions a network ``supported``.

    ``auto`` means fp16 on CUDA, bf16 on a CPU with native bf16 instructions
    (AVX512-BF16 or AMX), and fp32 elsewhere. ``int8`` is fp32 here: the network stays in fp32 for torch, and a
    runtime that quantizes it (:mod:`remaster.runtimes.int8`) runs its int8 copy. A precision the network does
    not support runs in fp32.

    Raises:
        InvalidOptionError: ``precision`` is not one of :data:`remaster.options.PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise InvalidOptionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        precision = _automatic(device, cpu_flags() if flags is None else flags)
    return DTYPES.get(precision if precision in supported else "fp32", torch.float32)


def _automatic(device: torch.device, flags: frozenset[str]) -> str:
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and _BF16_FLAGS & flags:
        return "bf16"
    return "fp32"


@dataclass
class Costs:
    """What this process measured of a network, for its progress within one pass: shared by its copies."""

    conv_macs_per_pixel: float | None = None
    """Multiply-adds of its convolutions per input pixel, as its stop points counted them (the layers they see)."""
    macs_per_second: float | None = None
    """How fast its last whole pass ran, on whatever runtime ran it."""


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
    costs: Costs = field(default_factory=Costs, compare=False, repr=False)
    """Measured as it runs: what its progress within a pass is estimated from."""

    def __call__(
        self,
        batch: torch.Tensor,
        check: Callable[[], None] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> torch.Tensor:
        """Upscale an ``(N, C, H, W)`` batch in 0–1 on :attr:`device`, C = 1 or 3, any size.

        Returns ``(N, C, H·s, W·s)`` float32 in 0–1. Gray runs through a colour network as three
        equal channels and comes back as their luminance, as the official script does.

        Args:
            check: called between the network's layers, where it has stop points; raises to stop.
            progress: told the fraction of this pass done, at most every :data:`REPORT_EVERY` seconds: the
                multiply-adds of the convolutions passed, where the network has stop points; else, on a runtime
                that waits (OpenVINO), the time waited against the last pass's speed.
        """
        meter = _Meter(self, batch, progress) if progress is not None else None
        if meter is None and (check is None or not self.stoppable):
            return self._run(batch)
        _stopping.check = check if self.stoppable else None
        _stopping.meter = meter
        try:
            result = self._run(batch)
        finally:
            _stopping.check = _stopping.meter = None
        if meter is not None:
            meter.finish()
        return result

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


def _stop_point(layer: nn.Conv2d, inputs: tuple[torch.Tensor, ...]) -> None:
    check = getattr(_stopping, "check", None)
    if check is not None:
        check()
    meter = getattr(_stopping, "meter", None)
    if meter is not None:
        meter.convolving(layer, inputs[0])


def waited(seconds: float) -> None:
    """Tell the progress of the request this thread runs that a runtime without stop points (OpenVINO, which
    waits for its result in short steps) has now worked ``seconds`` on the current pass."""
    meter = getattr(_stopping, "meter", None)
    if meter is not None:
        meter.waited(seconds)


class _Meter:
    """One pass's progress, told at most every :data:`REPORT_EVERY` seconds, and what it measured once done."""

    def __init__(self, network: Network, batch: torch.Tensor, progress: Callable[[float], None]) -> None:
        count, channels, height, width = batch.shape
        if channels == 3 and network.in_channels == 1:  # each colour runs on its own
            count *= 3
        multiple = network.multiple
        self.pixels = count * math.ceil(height / multiple) * multiple * math.ceil(width / multiple) * multiple
        self.costs = network.costs
        self.work = network.macs_per_pixel * self.pixels
        self.convolutions = (self.costs.conv_macs_per_pixel or network.macs_per_pixel) * self.pixels
        self.counted = 0.0
        # A GPU runs the layers long after they are asked for: only on a CPU do counts and clocks say how far the
        # work is.
        self.synchronous = batch.device.type == "cpu"
        self.progress = progress
        self.started = self.told = time.perf_counter()

    def convolving(self, layer: nn.Conv2d, features: torch.Tensor) -> None:
        """Before ``layer`` runs on ``features``: tell what the convolutions before it did, and count its own."""
        if not self.synchronous:
            return
        self._tell(self.counted / max(self.convolutions, 1.0))
        kernel = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
        positions = features.shape[0] * features.shape[-2] * features.shape[-1] / (layer.stride[0] * layer.stride[1])
        self.counted += positions * layer.out_channels * kernel

    def waited(self, seconds: float) -> None:
        """A runtime has worked ``seconds`` on this pass: told as a share of the time the last pass's speed gives."""
        speed = self.costs.macs_per_second
        if speed:
            self._tell(min(seconds * speed / max(self.work, 1.0), 0.95))

    def finish(self) -> None:
        """Keep what this pass measured: its convolutions' cost per pixel and its speed."""
        seconds = time.perf_counter() - self.started
        if self.counted:
            self.costs.conv_macs_per_pixel = self.counted / self.pixels
        if seconds > 0.05 and self.synchronous:  # shorter passes time the overheads, not the network
            self.costs.macs_per_second = self.work / seconds

    def _tell(self, fraction: float) -> None:
        now = time.perf_counter()
        if now - self.told >= REPORT_EVERY:
            self.told = now
            self.progress(min(fraction, 0.99))


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
