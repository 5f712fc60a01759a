"""Inference backends under a network: torch as it is, ``torch.compile``, OpenVINO on CPUs, TensorRT on NVIDIA GPUs.

Which one runs is decided per model, device and precision by measuring, the way
compilation is: a network starts on torch, another backend is built in a background
thread from the first real input, timed against torch on a window of it, and used only
if it is at least 5% faster; the decision is kept in ``backends.json`` in ``REMASTER_CACHE_DIR`` and
reused by later processes. ``REMASTER_BACKEND`` forces one. Whatever fails (the library
missing, a network that does not convert, a run that raises) falls back to torch for that
network, and the log says so. Tiling, overlaps, the precision's meaning (``fp32`` is exact:
OpenVINO gets an f32 hint) and the out-of-memory retry are the tile scheduler's, the same
for every backend.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from . import background
from .errors import StoppedError, brief, is_out_of_memory
from .kept import KeptTable
from .network import current_check
from .settings import BACKENDS
from .timing import speedup

if TYPE_CHECKING:
    import openvino as ov

    from .settings import Settings

__all__ = ["BACKENDS", "Accelerated", "available", "choose", "openvino_runner", "tensorrt_runner"]

log = logging.getLogger(__name__)


Runner = Callable[[torch.Tensor], torch.Tensor]
AcceleratedState = Literal["waiting", "building", "chosen", "torch", "failed"]

_MEASURE_SIDE = 128
"""Backends are timed on a window of the first real input of at most this side, so that a minute-long tile is not."""
_TIMING_RUNS = 3
_MIN_GAIN = 1.05
"""A backend is used only if it measured at least this much faster than torch: a smaller gain is within the
timing's noise, and on a CPU a second runtime's thread pool also costs the work around the network (measured on
a 2-core AMD EPYC: realesr-animevideov3 timed at 1.03× on OpenVINO, and whole requests ran at 0.92–1.00×)."""
_WAIT_STEP_MS = 100
_DISPLAY_NAMES = {"openvino": "OpenVINO", "tensorrt": "TensorRT"}
_CONVERTING = threading.Lock()
"""One conversion at a time: OpenVINO converts through torch's tracer, and two traces at once (two networks'
builds, such as a face restorer's and its parser's) see each other's graphs and both fail its sanity check."""


def available(name: str) -> bool:
    """Whether the library a backend needs is installed here (``torch`` and ``compiled`` always are)."""
    module = {"openvino": "openvino", "tensorrt": "torch_tensorrt"}.get(name)
    return module is None or importlib.util.find_spec(module) is not None


class Accelerated:
    """Runs ``module`` on torch until another backend, built in the background, has measured faster; then on that.

    Args:
        module: the network on its device and dtype, in eval mode.
        label: names it in log messages.
        backend: the backend's name, for messages and the kept decision.
        build: makes the backend's runner from ``module`` and an example input (slow: it runs in a thread).
        choices: where decisions are kept, with ``key`` naming this network's; a kept ``torch`` means
            nothing is built, a kept ``backend`` means it is built and used without measuring again.
        measure: time the backend against torch before using it; off when the backend is forced.
        whole_example: build and time the backend on the first input whole, for networks of one input
            size; else on a window of it, so that a minute-long tile is not timed.
    """

    def __init__(
        self,
        module: nn.Module,
        label: str,
        backend: str,
        build: Callable[[nn.Module, torch.Tensor], Runner],
        choices: KeptTable | None = None,
        key: str = "",
        measure: bool = True,
        whole_example: bool = False,
    ) -> None:
        self.module = module
        self.label = label
        self.backend = backend
        self.speedup: float | None = None
        self.calls = {"backend": 0, "torch": 0}
        self._build = build
        self._choices = choices
        self._key = key
        self._whole_example = whole_example
        self._runner: Runner | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        kept = choices.get(key) if choices is not None and key else None
        self._measure = measure and kept != backend
        self.state: AcceleratedState = "torch" if measure and kept == "torch" else "waiting"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.state == "chosen" and self._runner is not None:
            try:
                result = self._runner(batch)
            except Exception as error:  # noqa: BLE001 - a broken backend must not break requests
                if is_out_of_memory(error) or isinstance(error, StoppedError):
                    raise  # the tile scheduler retries with smaller tiles; a stop is a stop
                log.warning(
                    "%s on %s failed; it runs on torch from now on (%s)", self.label, self.backend, brief(error)
                )
                self.state = "failed"
            else:
                self.calls["backend"] += 1
                return result
        if self.state == "waiting":
            self._start(batch)
        self.calls["torch"] += 1
        return self.module(batch)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build is running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self.state != "building", timeout)

    def _start(self, batch: torch.Tensor) -> None:
        with self._lock:
            if self.state != "waiting":
                return
            self.state = "building"
        window = batch[:1]
        if not self._whole_example:
            height, width = (min(extent, _MEASURE_SIDE) for extent in batch.shape[-2:])
            window = window[:, :, :height, :width]
        example = window.detach().clone()
        try:
            name = f"the {_DISPLAY_NAMES.get(self.backend, self.backend)} build of {self.label}"
            background.start(self._work, example, name=name)
        except RuntimeError as error:  # no thread to be had: stay on torch
            log.warning("%s runs on torch: no thread to build %s in (%s)", self.label, self.backend, brief(error))
            with self._idle:
                self.state = "failed"
                self._idle.notify_all()

    def _work(self, example: torch.Tensor) -> None:
        state: AcceleratedState = "failed"
        try:
            started = time.perf_counter()
            runner = self._build(self.module, example)
            log.info("%s: built on %s in %.0f s", self.label, self.backend, time.perf_counter() - started)
            state = "chosen"
            if self._measure:
                self.speedup = speedup(self.module, runner, example, _TIMING_RUNS)
                state = "chosen" if self.speedup >= _MIN_GAIN else "torch"
                log.info(
                    "%s on %s runs %.2f× torch's speed: %s",
                    self.label,
                    self.backend,
                    self.speedup,
                    f"using {self.backend}" if state == "chosen" else "staying on torch",
                )
            self._runner = runner
            if self._choices is not None and self._key:
                self._choices.put(self._key, self.backend if state == "chosen" else "torch")
        except Exception as error:  # noqa: BLE001 - any failure to build means: stay on torch
            log.warning("%s runs on torch: %s could not take it (%s)", self.label, self.backend, brief(error))
        finally:
            with self._idle:
                self.state = state
                self._idle.notify_all()


def openvino_runner(
    module: nn.Module,
    example: torch.Tensor,
    dtype: torch.dtype,
    threads: int,
    cache: Path,
    fixed_shape: bool = False,
) -> Runner:
    """``module`` converted by OpenVINO for the CPU, with any batch, height and width, in ``dtype``'s precision.

    ``fixed_shape`` converts it for ``example``'s shape alone: networks of one input size whose weights
    depend on it (GFPGAN's modulated convolutions) convert only so.

    bf16 gets OpenVINO's bf16 hint, fp32 its f32 one (exact). A run waits for its result in short
    steps, so Stop (or Ctrl-C) ends it between them (OpenVINO cancels the work), as the stop points do
    in torch; a shape whose last run took less than one step is run without the steps.

    Raises:
        ValueError: a precision OpenVINO does not take here (fp16 on a CPU).
    """
    import openvino as ov

    hints = {torch.float32: "f32", torch.bfloat16: "bf16"}
    if dtype not in hints:
        raise ValueError(f"OpenVINO on a CPU takes fp32 or bf16, not {dtype}")
    _quiet_tracing()
    plain = copy.deepcopy(module).float().to(memory_format=torch.contiguous_format)
    shape = list(example.shape) if fixed_shape else [-1, example.shape[1], -1, -1]
    cache.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    converted = _converted(core, plain, example, shape, cache)
    config = {"INFERENCE_PRECISION_HINT": hints[dtype], "INFERENCE_NUM_THREADS": threads, "CACHE_DIR": str(cache)}
    compiled = core.compile_model(converted, "CPU", config)
    requests = threading.local()
    quick: dict[tuple[int, ...], bool] = {}

    def run(batch: torch.Tensor) -> torch.Tensor:
        request = getattr(requests, "request", None)
        if request is None:
            request = requests.request = compiled.create_infer_request()
        inputs = {0: batch.float().contiguous().cpu().numpy()}
        shape = tuple(batch.shape)
        started = time.perf_counter()
        if quick.get(shape):
            # Waiting in this thread lets it work too: 14 ms instead of 21 for realesr-animevideov3 at 128² on
            # two cores. Only for shapes whose last run took less than a stop check's step, so Stop still ends
            # a run within that step.
            request.infer(inputs)
        else:
            request.start_async(inputs)
            check = current_check()
            while not request.wait_for(_WAIT_STEP_MS):
                if check is not None:
                    try:
                        check()
                    except BaseException:
                        request.cancel()
                        raise
        quick[shape] = time.perf_counter() - started < _WAIT_STEP_MS / 1000
        # One copy out of OpenVINO's buffer (the next run reuses it), straight into the layout the caller wants.
        output = torch.from_numpy(request.get_output_tensor(0).data)
        layout = torch.channels_last if output.dim() == 4 else torch.contiguous_format
        return output.to(batch.device, memory_format=layout, copy=True)

    return run


def _converted(core: ov.Core, plain: nn.Module, example: torch.Tensor, shape: list[int], cache: Path) -> ov.Model:
    """OpenVINO's model of ``plain`` for inputs of ``shape`` (−1: any): read from ``cache`` where a network of
    the same weights was converted before, else converted and kept there. Converting traces the network (GFPGAN:
    18 s on two cores); reading the kept model takes a second."""
    import openvino as ov

    dims = "x".join("any" if extent < 0 else str(extent) for extent in shape)
    path = cache / f"{_weights_key(plain)}-{dims}.xml"
    if path.is_file():
        try:
            return core.read_model(path)
        except Exception as error:  # noqa: BLE001 - a damaged kept model is converted again
            log.info("%s could not be read (%s); converting the network again", path, brief(error))
    with _CONVERTING, torch.inference_mode(False), torch.no_grad(), _root_logger_kept():
        converted = ov.convert_model(plain, example_input=example.float(), input=[ov.PartialShape(shape)])
    partial = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.xml")
    try:
        # fp32 as converted (saving would halve the weights by default), the .bin first: the .xml says it is whole.
        ov.save_model(converted, partial, compress_to_fp16=False)
        os.replace(partial.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:
        log.info("the converted network could not be kept in %s (%s)", cache, brief(error))
        for leftover in (partial, partial.with_suffix(".bin")):
            leftover.unlink(missing_ok=True)
        return converted
    # The model as later processes will read it, so that OpenVINO's compiled-model cache keeps one copy for all.
    return core.read_model(path)


def _quiet_tracing() -> None:
    """Keep the tracer's notes off standard error: OpenVINO converts through ``torch.jit.trace``, which
    torch calls deprecated, and networks whose shapes depend on their input make the tracer warn that the
    traced graph may not generalise (the dynamic height and width given to the converter cover that)."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """OpenVINO's converter sets the root logger to ERROR while it converts and, when a conversion fails,
    leaves it so: remaster's own loggers keep their level meanwhile, so that what other threads log (a
    request's result, another network's backend) is not lost, and the root logger is put back after."""
    root, ours = logging.getLogger(), logging.getLogger(__package__)
    level, filters, handlers, own = root.level, list(root.filters), list(root.handlers), ours.level
    ours.setLevel(ours.getEffectiveLevel())
    try:
        yield
    finally:
        root.setLevel(level)
        root.filters, root.handlers = filters, handlers
        ours.setLevel(own)


def tensorrt_runner(module: nn.Module, example: torch.Tensor, cache: Path, largest: int = 1024) -> Runner:
    """``module`` built by TensorRT (torch-tensorrt) in fp16 for inputs from 16 to ``largest`` pixels a side,
    batches of up to 16; the engine is kept on disk by the module's weights and the shape range."""
    import torch_tensorrt

    channels = example.shape[1]
    minimum, optimum = (1, channels, 16, 16), (1, channels, 512, 512)
    maximum = (16, channels, largest, largest)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{_weights_key(module)}-{largest}.ep"
    if path.is_file():
        return torch.export.load(str(path)).module()
    inputs = [torch_tensorrt.Input(min_shape=minimum, opt_shape=optimum, max_shape=maximum, dtype=torch.half)]
    built = torch_tensorrt.compile(module.half(), ir="dynamo", inputs=inputs, enabled_precisions={torch.half})
    torch_tensorrt.save(built, str(path), inputs=[example.half()])
    return built


def _weights_key(module: nn.Module) -> str:
    """Names ``module``'s class and weights: what a converted or built network kept on disk is found by."""
    import hashlib

    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def choose(settings: Settings, device: torch.device, dtype: torch.dtype) -> str:
    """The backend a network on ``device`` in ``dtype`` gets: the forced one, else by device and what is installed."""
    forced = settings.backend
    if forced != "auto":
        return forced
    if device.type == "cuda" and available("tensorrt") and dtype == torch.float16:
        return "tensorrt"
    if settings.compile:  # on by default with CUDA; REMASTER_COMPILE=1 asks for it elsewhere
        return "compiled"
    if device.type == "cpu" and available("openvino") and dtype in (torch.float32, torch.bfloat16):
        return "openvino"
    return "torch"
