"""Loading networks: weights verified, built by their architecture, kept once loaded.

The engine asks the weight store for a verified file, loads it safely
(``weights_only=True``, tensors only) into a network its architecture builds
(``strict=True``), and keeps one :class:`~remaster.network.Network` per model, dtype and
denoise strength, ready for the tile scheduler. Helper networks (face restorers, the face
detector and parser) are kept as plain fp32 modules.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

import torch
from torch import nn

from .architectures import recognise
from .errors import WeightsUnavailableError, brief
from .kept import KeptTable
from .network import Network, Processor, add_stop_points, count_macs, resolve_dtype
from .registry import ModelSpec, WeightFile
from .runtimes import AUTO, Placement, Runtime, choose, compiling, quantizers
from .settings import Settings
from .tiling import measure_overlap
from .weights import WeightStore

__all__ = ["MAX_BLENDS", "CachedNetwork", "Engine", "build_network", "canonical_state_dict", "load_checkpoint"]

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

MAX_BLENDS = 8
"""Networks of blended denoise weights kept (the page's slider makes a new one per value)."""

Int8 = Literal["never", "gated", "forced"]
"""Whether a network runs in int8: never (an exact precision asked for), where its quality passes the gate
(``auto``), or as asked (``int8``)."""


def build_network(spec: ModelSpec, device: torch.device | None = None) -> nn.Module:
    """A freshly initialised network of ``spec``'s architecture (on the CPU, unless it must be built on ``device``)."""
    return spec.architecture.build(spec.arch_kwargs, device)


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
    """Load a weight file safely and unwrap it: ``.safetensors`` as they are, anything else as a pickle
    that may hold tensors and plain data only (``weights_only``: no code is ever run)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        return canonical_state_dict(load_file(str(path)), key)
    return canonical_state_dict(torch.load(path, map_location="cpu", weights_only=True), key)


@dataclass(frozen=True)
class CachedNetwork:
    """One network the engine keeps: which model, in which dtype, at which denoise strength."""

    model: str
    dtype: torch.dtype
    denoise_strength: float
    int8: Int8 = "never"


class Engine:
    """Loads networks on demand and keeps them, on one device.

    Safe to use from several threads at once: loading is serialised per engine, and a
    loaded network needs no lock to run.
    """

    def __init__(self, settings: Settings, store: WeightStore | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else WeightStore(settings)
        self.device = torch.device(settings.device)
        if self.device.type == "cuda":
            # Windows share one size per image, so cuDNN's per-shape algorithm search pays off.
            torch.backends.cudnn.benchmark = True
        self.compile = compiling(settings)
        """Whether networks are compiled in the background: the settings ask for it and this torch can."""
        self.backends = KeptTable(settings.cache_dir / "backends.json", "backend chosen")
        """The runtimes measured faster (or not) for each network before, kept for later processes."""
        self._lock = threading.Lock()
        self._networks: OrderedDict[CachedNetwork, Network] = OrderedDict()
        """Least recently used first."""
        self._modules: dict[str, nn.Module] = {}
        self._helpers: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self._state_dicts: dict[WeightFile, dict[str, torch.Tensor]] = {}
        self.overlaps = KeptTable(settings.cache_dir / "overlaps.json", "measured overlap")
        """Overlaps measured for models without one of their own, by weight-file SHA-256: the official models'
        were measured by hand with their real weights, so only model files of someone's own are measured."""

    @functools.cached_property
    def processor(self) -> Processor:
        """What the networks run on, as far as which runtime and precision are fastest depends on it: the kept
        decisions are keyed by it (``REMASTER_CPU_FLAGS`` and ``REMASTER_CPU_BF16`` change a CPU's flags)."""
        return Processor.of(self.device, self.settings.cpu_flags, self.settings.cpu_bf16)

    def cached(self) -> list[CachedNetwork]:
        """The networks kept now, least recently used first (helper modules not included)."""
        with self._lock:
            return list(self._networks)

    def clear(self) -> None:
        """Let go of every kept network, helper module and state dict; the next request loads afresh."""
        with self._lock:
            self._networks.clear()
            self._modules.clear()
            self._helpers.clear()
            self._state_dicts.clear()

    def forget(self, model: str) -> None:
        """Let go of the kept networks of ``model`` (its entry changed, or it was unregistered)."""
        with self._lock:
            for key in [key for key in self._networks if key.model == model]:
                del self._networks[key]
            self._modules.pop(model, None)
            for key in [key for key in self._helpers if key == model or key.startswith(f"{model}/")]:
                del self._helpers[key]

    def module(self, spec: ModelSpec, on_wait: Callable[[str], None] | None = None) -> nn.Module:
        """The loaded fp32 module for a helper model (face restorer, detector, parser), kept once loaded.

        Raises:
            WeightsUnavailableError: the weights could not be found, downloaded or loaded.
        """

        def load() -> nn.Module:
            state = self._load(spec.weights, spec.state_dict_key, on_wait)
            module = _load_strict(spec, state, self.device).eval().requires_grad_(False).to(self.device)
            log.info("Loaded %s on %s", spec.name, self.device)
            return module

        return self._kept(self._modules, spec.name, load)

    def helper(
        self,
        spec: ModelSpec,
        plain: Callable[[nn.Module], nn.Module],
        on_wait: Callable[[str], None] | None = None,
        fixed_shape: bool = True,
        part: str = "",
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """A helper model's network (a face restorer, parser or detector, or a part of a frame interpolator) as
        one tensor in, one out, in fp32, on the runtime measured faster for it among those that serve helpers
        (OpenVINO on a CPU), else torch.

        Args:
            plain: makes the loaded module a network of one tensor in and one out (the arguments its
                caller always gives it fixed), which is what a runtime converts.
            fixed_shape: the network takes one input shape (the 512² faces); else any height and width.
            part: names the part of the model that ``plain`` makes, where a model is several such networks
                (each is kept, built and measured on its own).

        Raises:
            WeightsUnavailableError: the weights could not be found, downloaded or loaded.
        """

        def make() -> Callable[[torch.Tensor], torch.Tensor]:
            module = plain(self.module(spec, on_wait)).eval()
            placement = self._placement(spec, torch.float32, fixed_shape, part)
            runtime = choose(self.settings, self.device, torch.float32, helper=True, label=placement.label)
            runner = runtime.runner(module, placement)
            return module if runner is None else runner

        return self._kept(self._helpers, f"{spec.name}/{part}" if part else spec.name, make)

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
            InvalidOptionError: ``precision`` is not one remaster knows.
            WeightsUnavailableError: the weights could not be found or downloaded.
        """
        flags = self.processor.flags if self.device.type == "cpu" else None
        supported = spec.architecture.supported_precisions(spec.arch_kwargs)
        dtype = resolve_dtype(precision, self.device, flags=flags, supported=supported)
        int8: Int8 = "never"
        if precision == "int8":
            int8 = "forced"
        elif precision == "auto" and quantizers(self.settings, self.device, dtype):
            int8 = "gated"
        key = CachedNetwork(spec.name, dtype, float(denoise_strength) if spec.supports_denoise else 1.0, int8)
        with self._lock:
            cached = self._networks.get(key)
            if cached is not None:
                self._networks.move_to_end(key)
                return cached
        state = self._weights_for(spec, key.denoise_strength, on_wait)
        with self._lock:
            if key not in self._networks:
                self._networks[key] = self._make_network(spec, state, dtype, int8)
                log.info("Loaded %s on %s in %s", spec.name, self.device, dtype)
                blends = [k for k in self._networks if k.denoise_strength != 1.0]
                for old in blends[: max(len(blends) - MAX_BLENDS, 0)]:
                    del self._networks[old]
            self._networks.move_to_end(key)
            return self._networks[key]

    def _weights_for(
        self, spec: ModelSpec, strength: float, on_wait: Callable[[str], None] | None
    ) -> dict[str, torch.Tensor]:
        if spec.denoise_weights is None:
            return self._load(spec.weights, spec.state_dict_key, on_wait)
        # Kept: every new strength blends the same two files again.
        state = self._state_dict(spec.weights, spec.state_dict_key, on_wait)
        if strength >= 1.0:
            return state
        denoise = self._state_dict(spec.denoise_weights, spec.state_dict_key, on_wait)
        return {k: strength * v + (1.0 - strength) * denoise[k] for k, v in state.items()}

    def _state_dict(
        self, weight: WeightFile, key: str, on_wait: Callable[[str], None] | None
    ) -> dict[str, torch.Tensor]:
        return self._kept(self._state_dicts, weight, lambda: self._load(weight, key, on_wait))

    def _kept(self, table: dict[K, V], key: K, make: Callable[[], V]) -> V:
        """``table[key]``, made (outside the lock: loading is slow) and kept there if it is not there yet."""
        with self._lock:
            kept = table.get(key)
        if kept is not None:
            return kept
        made = make()
        with self._lock:
            return table.setdefault(key, made)

    def _load(self, weight: WeightFile, key: str, on_wait: Callable[[str], None] | None) -> dict[str, torch.Tensor]:
        path = self.store.path(weight, on_wait)
        try:
            return load_checkpoint(path, key)
        except Exception as error:  # noqa: BLE001 - torch.load raises many kinds for a bad file
            raise WeightsUnavailableError(
                f"{path} could not be loaded ({brief(error)}); replace it with the official {weight.filename}"
            ) from error

    def _make_network(
        self, spec: ModelSpec, state: dict[str, torch.Tensor], dtype: torch.dtype, int8: Int8 = "never"
    ) -> Network:
        architecture, kwargs = spec.architecture, spec.arch_kwargs
        module = _load_strict(spec, state)
        multiple = architecture.input_multiple(kwargs, spec.scale)
        in_channels = architecture.in_channels(kwargs)
        macs = count_macs(module.eval(), multiple, in_channels, architecture.minimum_size(kwargs))
        module.eval().requires_grad_(False)
        module = module.to(device=self.device, dtype=dtype, memory_format=torch.channels_last)
        runtime = choose(self.settings, self.device, dtype, label=spec.name, int8=int8 == "forced")
        placement = self._placement(spec, dtype, int8=int8, runtime=runtime)
        if runtime.keeps_stop_points:
            add_stop_points(module)
        itemsize = torch.finfo(dtype).bits // 8
        # Beside the features: the float32 result and its quantised core, per output pixel.
        result_bytes = 3 * spec.scale**2 * (4 + 4)
        network = Network(
            module=module,
            scale=spec.scale,
            multiple=multiple,
            device=self.device,
            dtype=dtype,
            overlap=spec.tile_overlap,
            macs_per_pixel=macs,
            bytes_per_pixel=architecture.feature_bytes_per_pixel(kwargs, spec.scale, itemsize) + result_bytes,
            in_channels=in_channels,
            accelerated=runtime.runner(module, placement),
            stoppable=runtime.keeps_stop_points,
            tiling=architecture.tiling(kwargs),
        )
        return network

    def _placement(
        self,
        spec: ModelSpec,
        dtype: torch.dtype,
        fixed_shape: bool = False,
        part: str = "",
        int8: Int8 = "never",
        runtime: Runtime | None = None,
    ) -> Placement:
        """``spec``'s network (or its ``part``) in ``dtype`` as ``runtime`` is given it: its label, the cache, the
        kept decisions (by network, precision and processor), and, for ``auto``, the runtimes that quantize."""
        weights = spec.weights.sha256 or spec.weights.md5
        name = f"{spec.name} {part}" if part else spec.name
        precision = str(dtype).removeprefix("torch.")
        forced = int8 == "forced" and runtime is not None and runtime.quantizes
        gated = quantizers(self.settings, self.device, dtype) if int8 == "gated" else ()
        if forced:
            precision = "int8"
        elif gated:
            precision += "+int8"
        return Placement(
            label=f"{name} ({'int8' if forced else dtype})",
            dtype=dtype,
            cache=self.settings.cache_dir,
            choices=self.backends,
            key=f"{name}|{weights}|{self.device}|{precision}|{self.processor.key}",
            measure=self.settings.backend == AUTO and not forced,
            fixed_shape=fixed_shape,
            processor=self.processor,
            gated=gated,
        )

    def with_overlap(self, spec: ModelSpec, network: Network) -> Network:
        """``network`` with its tiles' overlap: its own, or, for a model that brought none, measured in fp32 the
        first time its weights are tiled, then kept by their SHA-256 (and by the network kept here)."""
        if network.overlap is not None:
            return network
        key = spec.weights.sha256 or spec.weights.md5 or spec.name
        overlap = self.overlaps.get(key)
        if not isinstance(overlap, int):
            exact = network
            if network.dtype != torch.float32 or network.accelerated is not None:
                exact = replace(
                    network, module=copy.deepcopy(network.module).float(), dtype=torch.float32, accelerated=None
                )
            started = time.perf_counter()
            overlap = measure_overlap(replace(exact, overlap=0))
            seconds = time.perf_counter() - started
            log.info("%s: tiles need %d pixels of overlap (measured in %.1f s)", spec.name, overlap, seconds)
            self.overlaps.put(key, overlap)
        measured = replace(network, overlap=overlap)
        with self._lock:
            for cached, kept in self._networks.items():
                if kept is network:
                    self._networks[cached] = measured
        return measured


def _load_strict(spec: ModelSpec, state: dict[str, torch.Tensor], device: torch.device | None = None) -> nn.Module:
    """``spec``'s network holding ``state``, or the reason the weights do not fit it."""
    try:
        return spec.architecture.load(spec.arch_kwargs, state, device)
    except RuntimeError as error:
        found = recognise(state.keys())
        kind = (
            f"they are weights for a {found.name} network, not {spec.architecture.name}"
            if found is not None and found is not spec.architecture
            else "they do not fit its architecture"
        )
        raise WeightsUnavailableError(
            f"The weights for {spec.name} could not be loaded: {kind} ({brief(error)}); "
            f"replace {spec.weights.filename} with the official file"
        ) from error
