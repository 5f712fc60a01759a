"""Runtimes: what runs a network under the tile scheduler, each declared once as an object the engine asks.

A :class:`Runtime` is one way of running networks (torch as it is, ``torch.compile``, OpenVINO on
CPUs, TensorRT on NVIDIA GPUs). It says how ``REMASTER_BACKEND`` spells it, whether it can run
here, which devices and precisions it suits, whether it serves the helper networks (face
restorers, parser, detector), whether a network on it keeps its stop points, and how it builds
a runner for a network. :func:`choose` picks one per network: the one ``REMASTER_BACKEND``
forces, else the most preferred that suits; torch as it is is the fallback. Nothing outside
this package asks which runtime a network has, and a runtime from elsewhere is one object
given to :func:`register_runtime`.

OpenVINO and TensorRT are measured (:mod:`.measured`): built in the background from a
network's first real input, timed against torch, used only where clearly faster, the decision
kept in ``backends.json`` by network and processor, and measured again where requests later run
at another speed. A runtime that quantizes (int8: :mod:`.int8`) runs where the int8 precision is
asked for, and competes in ``auto`` beside the runtime chosen, only where its pictures stay
within the quality gate of fp32. A compiled graph measures itself against eager (:mod:`.compiled`).
Tiling, overlaps, the precision's meaning and the out-of-memory retry are the tile
scheduler's, the same on every runtime.

Nothing here imports torch or a runtime's library: the settings read the names at start-up.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import RegistrationError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..kept import KeptTable
    from ..network import Processor
    from ..settings import Settings

__all__ = [
    "AUTO",
    "RUNTIMES",
    "Candidate",
    "Compiled",
    "Int8",
    "MeasuredRuntime",
    "OpenVINO",
    "Placement",
    "Runner",
    "Runtime",
    "TensorRT",
    "Torch",
    "backend_names",
    "choose",
    "compiling",
    "get_runtime",
    "quantizers",
    "register_runtime",
]

log = logging.getLogger(__name__)

Runner = Callable[["torch.Tensor"], "torch.Tensor"]
"""Runs a network on one ``(N, C, H, W)`` batch."""

AUTO = "auto"
"""How ``REMASTER_BACKEND`` asks for a runtime chosen per network (and measured where that pays)."""


@dataclass(frozen=True)
class Placement:
    """One network put on a runtime: what its runner is built for, and where the runtime keeps what it decides."""

    label: str
    """Names the network in log messages."""
    dtype: torch.dtype
    cache: Path
    """``REMASTER_CACHE_DIR``: a runtime keeps what it builds in a folder of its name there."""
    choices: KeptTable | None = None
    """The decisions kept for later processes (``backends.json``), by :attr:`key`."""
    key: str = ""
    measure: bool = True
    """Time the runner against torch before using it; off where ``REMASTER_BACKEND`` forces the runtime."""
    fixed_shape: bool = False
    """The network takes inputs of one shape (the 512² faces), and its runner is built for that shape alone."""
    processor: Processor | None = None
    """What it runs on: part of :attr:`key`, and what a quantizing runtime's recipe and quality are kept for."""
    gated: tuple[Runtime, ...] = ()
    """Quantizing runtimes measured after the one chosen (``auto`` precision), each used only where its pictures
    stay within the quality gate and it measured faster (:func:`quantizers`)."""


@dataclass(frozen=True)
class Candidate:
    """One way a measured runtime may run a network: built in the background, used where it measured faster."""

    name: str
    """How ``backends.json`` keeps the decision for it: its runtime's name."""
    build: Callable[[nn.Module, torch.Tensor], Runner]
    """Makes the runner from the module and an example input (slow: it runs in a thread); raises
    :class:`~remaster.runtimes.measured.NotUsed` where the runner is not to be used (its quality misses the
    gate), anything else where it could not be built."""
    display_name: str = ""


class Runtime:
    """One way of running networks. Subclasses override what differs."""

    name: str = ""
    """How ``REMASTER_BACKEND`` spells it."""
    display_name: str = ""
    """How messages spell it."""
    library: str | None = None
    """The module it needs installed, if any (found without importing it)."""
    preference: int = 0
    """``auto`` tries the runtimes that suit a network from the highest preference down."""
    serves_helpers: bool = False
    """Whether it runs the helper networks too (face restorers, the parser, the detector; always fp32)."""
    keeps_stop_points: bool = True
    """Whether a network on it keeps its stop points between layers (a compiled graph cannot trace their hooks)."""
    quantizes: bool = False
    """Whether it runs networks in int8: chosen where the int8 precision is asked for, and in ``auto`` measured
    after the runtime chosen, under the quality gate; never otherwise."""

    def available(self) -> bool:
        """Whether it can run here at all: its library is installed (compiled: this torch compiles in background)."""
        return self.library is None or importlib.util.find_spec(self.library) is not None

    def unusable(self, settings: Settings) -> str | None:
        """Why it cannot run networks under ``settings``, completing "REMASTER_BACKEND asks for NAME, …"; None
        where it can."""
        return None if self.available() else "which is not installed"

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether ``auto`` may choose it for a network on ``device`` in ``dtype`` under ``settings``; of those that
        suit, the one of highest :attr:`preference` is chosen, and where that one cannot run here (compiling asked
        for, on a torch too old), the network runs on torch."""
        return False

    def runner(self, module: nn.Module, placement: Placement) -> Runner | None:
        """What runs ``module`` (on its device and dtype, in eval mode) on this runtime; None: ``module`` itself."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<runtime {self.name}>"


class MeasuredRuntime(Runtime):
    """A runtime whose runner is built in the background from a network's first real input and used only where
    it measured faster than torch (:class:`~remaster.runtimes.measured.Accelerated`); the decision is kept."""

    def builder(self, placement: Placement, gated: bool = False) -> Callable[[nn.Module, torch.Tensor], Runner]:
        """What builds a module's runner from an example input: made in the caller's thread, run in a background
        one (slow). It raises whatever keeps the network on torch; ``gated``: a quantizing runtime's runner is
        built for ``auto``, and raises :class:`~remaster.runtimes.measured.NotUsed` where its quality misses
        the gate."""
        raise NotImplementedError

    def runner(self, module: nn.Module, placement: Placement) -> Runner | None:
        from .measured import Accelerated

        first, *more = [
            Candidate(self.name, self.builder(placement), self.display_name),
            *(
                Candidate(runtime.name, runtime.builder(placement, gated=True), runtime.display_name)
                for runtime in placement.gated
                if isinstance(runtime, MeasuredRuntime) and runtime is not self
            ),
        ]
        return Accelerated(
            module,
            placement.label,
            first.name,
            first.build,
            placement.choices,
            placement.key,
            measure=placement.measure,
            whole_example=placement.fixed_shape,
            display_name=self.display_name,
            more=more,
        )


class Torch(Runtime):
    """Torch as it is: the module runs itself. Suits every network, and is the fallback."""

    name, display_name = "torch", "torch"
    serves_helpers = True

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        return True

    def runner(self, module: nn.Module, placement: Placement) -> Runner | None:
        return None


class Compiled(Runtime):
    """``torch.compile`` in the background (:class:`~remaster.runtimes.compiled.BackgroundCompiled`), where
    ``REMASTER_COMPILE`` asks for it (on by default with CUDA); the graph is used where it measured faster."""

    name, display_name = "compiled", "torch.compile"
    preference = 20
    keeps_stop_points = False

    def available(self) -> bool:
        from .compiled import can_compile_in_background

        return can_compile_in_background()

    def unusable(self, settings: Settings) -> str | None:
        if not settings.compile:
            return "but REMASTER_COMPILE is off: set REMASTER_COMPILE=1"
        return None if self.available() else "but compiling in the background needs torch 2.6 or later"

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        return settings.compile

    def runner(self, module: nn.Module, placement: Placement) -> Runner | None:
        from .compiled import BackgroundCompiled

        return BackgroundCompiled(module, placement.label)


class OpenVINO(MeasuredRuntime):
    """OpenVINO on a CPU (:func:`~remaster.runtimes.openvino.openvino_runner`): fp32, exact through its f32
    hint, or bf16; the helper networks too."""

    name, display_name, library = "openvino", "OpenVINO", "openvino"
    preference = 10
    serves_helpers = True

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        import torch

        return device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and self.available()

    def builder(self, placement: Placement, gated: bool = False) -> Callable[[nn.Module, torch.Tensor], Runner]:
        import torch

        from .openvino import openvino_runner

        return functools.partial(
            openvino_runner,
            dtype=placement.dtype,
            threads=torch.get_num_threads(),
            cache=placement.cache / self.name,
            fixed_shape=placement.fixed_shape,
        )


class Int8(MeasuredRuntime):
    """OpenVINO in int8 on a CPU, quantized by NNCF (:func:`~remaster.runtimes.int8.int8_runner`): where the int8
    precision is asked for, and in ``auto`` only where, on probe images of several kinds, its pictures stay within
    the quality gate of fp32 on this processor and it measured faster."""

    name, display_name, library = "int8", "OpenVINO int8", "nncf"
    preference = 5
    quantizes = True

    def available(self) -> bool:
        return all(importlib.util.find_spec(library) is not None for library in ("openvino", "nncf"))

    def unusable(self, settings: Settings) -> str | None:
        return None if self.available() else "which needs OpenVINO and NNCF installed: pip install nncf"

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        import torch

        return device.type == "cpu" and dtype in (torch.float32, torch.bfloat16) and self.available()

    def builder(self, placement: Placement, gated: bool = False) -> Callable[[nn.Module, torch.Tensor], Runner]:
        import torch

        from .int8 import int8_runner

        return functools.partial(
            int8_runner,
            label=placement.label,
            threads=torch.get_num_threads(),
            cache=placement.cache / OpenVINO.name,
            processor=placement.processor,
            fixed_shape=placement.fixed_shape,
            gated=gated,
        )


class TensorRT(MeasuredRuntime):
    """TensorRT on an NVIDIA GPU, in fp16 (:func:`~remaster.runtimes.tensorrt.tensorrt_runner`), where
    torch-tensorrt is installed."""

    name, display_name, library = "tensorrt", "TensorRT", "torch_tensorrt"
    preference = 30

    def suits(self, settings: Settings, device: torch.device, dtype: torch.dtype) -> bool:
        import torch

        return device.type == "cuda" and dtype == torch.float16 and self.available()

    def builder(self, placement: Placement, gated: bool = False) -> Callable[[nn.Module, torch.Tensor], Runner]:
        from .tensorrt import tensorrt_runner

        return functools.partial(tensorrt_runner, cache=placement.cache / self.name)


_runtimes: dict[str, Runtime] = {}

RUNTIMES: Mapping[str, Runtime] = MappingProxyType(_runtimes)
"""Every registered runtime by name, in the order registered (read-only view); ``auto`` goes by preference."""

_FALLBACK = Torch()
_COMPILED = Compiled()


def register_runtime(runtime: Runtime) -> Runtime:
    """Add a runtime, so ``REMASTER_BACKEND`` can name it and ``auto`` can choose it where it suits.

    Raises:
        RegistrationError: it has no name, is named ``auto``, or a runtime of that name is registered already.
    """
    if not runtime.name or runtime.name == AUTO:
        raise RegistrationError(f"A runtime needs a name other than {AUTO!r}")
    if runtime.name in _runtimes:
        raise RegistrationError(f"A runtime named {runtime.name!r} is already registered")
    _runtimes[runtime.name] = runtime
    return runtime


def get_runtime(name: str) -> Runtime:
    """The runtime registered as ``name``.

    Raises:
        KeyError: none is; the message lists those that are.
    """
    try:
        return _runtimes[name]
    except KeyError:
        raise KeyError(f"No runtime {name!r}; registered: {', '.join(_runtimes)}") from None


def backend_names() -> tuple[str, ...]:
    """What ``REMASTER_BACKEND`` takes: ``auto``, then every registered runtime's name."""
    return (AUTO, *_runtimes)


def choose(
    settings: Settings,
    device: torch.device,
    dtype: torch.dtype,
    helper: bool = False,
    *,
    label: str = "A network",
    int8: bool = False,
) -> Runtime:
    """The runtime a network on ``device`` in ``dtype`` runs on: the one ``REMASTER_BACKEND`` forces, else the most
    preferred that suits it; torch as it is where the one chosen cannot run here (the log says why of a forced one).
    Runtimes that quantize are chosen only for ``int8``.

    Args:
        helper: for a helper network (a face restorer, the parser, the detector): only runtimes that serve them.
        label: names the network in the log.
        int8: the int8 precision is asked for: the most preferred runtime that quantizes and suits, unless
            ``REMASTER_BACKEND`` forces another; where none can, the log says why and the network runs in ``dtype``
            as without it.

    Raises:
        KeyError: ``settings.backend`` names no registered runtime.
    """
    if int8:
        able = quantizers(settings, device, dtype, helper)
        if able:
            return able[0]
        log.warning("%s runs in %s: %s", label, str(dtype).removeprefix("torch."), _no_int8(settings, device))
    if settings.backend != AUTO:
        forced = get_runtime(settings.backend)
        if helper and not forced.serves_helpers:
            return _FALLBACK
        reason = forced.unusable(settings)
        if reason is not None:
            log.warning("%s runs on torch: REMASTER_BACKEND asks for %s, %s", label, forced.name, reason)
            return _FALLBACK
        return forced
    suiting = [
        runtime
        for runtime in _runtimes.values()
        if (runtime.serves_helpers or not helper) and not runtime.quantizes and runtime.suits(settings, device, dtype)
    ]
    chosen = max(suiting, key=lambda runtime: runtime.preference, default=_FALLBACK)
    return _FALLBACK if chosen.unusable(settings) else chosen


def quantizers(
    settings: Settings, device: torch.device, dtype: torch.dtype, helper: bool = False
) -> tuple[Runtime, ...]:
    """The runtimes that quantize, suit a network on ``device`` whose float precision is ``dtype`` and can run here,
    most preferred first: what the int8 precision runs on, and what ``auto`` measures after the runtime
    :func:`choose` gives, under the quality gate (only a forced one where ``REMASTER_BACKEND`` forces a runtime)."""
    if settings.backend != AUTO:
        forced = get_runtime(settings.backend)
        candidates = [forced] if forced.quantizes else []
    else:
        candidates = [runtime for runtime in _runtimes.values() if runtime.quantizes]
    found = [
        runtime
        for runtime in candidates
        if (runtime.serves_helpers or not helper)
        and runtime.suits(settings, device, dtype)
        and runtime.unusable(settings) is None
    ]
    return tuple(sorted(found, key=lambda runtime: -runtime.preference))


def _no_int8(settings: Settings, device: torch.device) -> str:
    """Why no runtime runs a network in int8 here, completing "… runs in fp32: "."""
    if settings.backend != AUTO and not get_runtime(settings.backend).quantizes:
        return f"REMASTER_BACKEND asks for {settings.backend}, which does not run int8"
    reasons = [
        f"{runtime.display_name} {runtime.unusable(settings)}"
        for runtime in _runtimes.values()
        if runtime.quantizes and runtime.unusable(settings) is not None
    ]
    if reasons:
        return "; ".join(reasons)
    return f"int8 runs on a CPU (through OpenVINO and NNCF), not on {device.type}"


def compiling(settings: Settings) -> bool:
    """Whether networks are compiled in the background: ``REMASTER_COMPILE`` asks for it and this torch can (where
    it cannot, the log says so)."""
    if not settings.compile:
        return False
    if _COMPILED.available():
        return True
    log.warning("Networks run uncompiled: compiling in the background needs torch 2.6 or later")
    return False


for _runtime in (_FALLBACK, _COMPILED, OpenVINO(), TensorRT(), Int8()):
    register_runtime(_runtime)
