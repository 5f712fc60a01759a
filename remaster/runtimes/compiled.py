"""``torch.compile`` that keeps nobody waiting.

A network wrapped in :class:`BackgroundCompiled` runs eagerly from its first call while a
worker thread compiles it (85 s for RealESRGAN_x4plus on an H100 or H200). The graph is
compiled with dynamic height and width, so one graph serves a wide range of image sizes
(its guards bound the range where a convolution backend's choice changes); once it is
ready and has measured faster than eager, every input it accepts runs compiled.

Nothing ever compiles in a caller's thread: callers run the compiled code in dynamo's
run-only mode, and an input no compiled graph accepts (a batch of several windows, a
size past one of the graph's guards) runs eagerly now and is compiled in the background
for next time.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .. import background
from ..errors import brief, is_out_of_memory
from ..timing import speedup, synchronize

__all__ = ["BackgroundCompiled", "CompileState", "can_compile_in_background"]

log = logging.getLogger(__name__)

CompileState = Literal["waiting", "compiling", "compiled", "slower", "failed"]
"""``waiting`` for an input to compile a first graph for (again, after running out of memory);
``compiling`` it; ``compiled`` and faster: used; ``slower`` than eager: not used; ``failed``
to compile or to run: not used."""

MAX_GRAPHS = 6
"""Most graphs compiled per network; past this, inputs that no graph accepts run eagerly."""

_TIMING_RUNS = 5


class BackgroundCompiled:
    """Runs ``module`` eagerly until its compiled graph is ready, then whichever is faster.

    Args:
        module: a network in eval mode, on its device and dtype, called inside
            ``torch.inference_mode()`` with one ``(N, C, H, W)`` tensor.
        label: names the network in log messages.
        backend: the ``torch.compile`` backend.
        min_speedup: compiled code is used only if eager time over compiled time, measured
            once on the first input compiled for, reaches this.
    """

    def __init__(
        self,
        module: nn.Module,
        label: str,
        *,
        backend: str | Callable[..., object] = "inductor",
        min_speedup: float = 1.0,
    ) -> None:
        self.module = module
        self.label = label
        self.min_speedup = min_speedup
        self.state: CompileState = "waiting"
        self.speedup: float | None = None
        """Eager seconds over compiled seconds on the first input compiled for."""
        self.compile_seconds: list[float] = []
        self.calls = {"compiled": 0, "eager": 0}
        self._lock = threading.Lock()
        self._requested: set[tuple[torch.Size, torch.dtype]] = set()
        self._busy = False
        self._idle = threading.Condition(self._lock)
        self._code = None
        if not can_compile_in_background():
            # Without guard checks and run-only mode, callers could not avoid compiling themselves.
            log.warning("%s runs uncompiled: compiling in the background needs torch 2.6 or later", label)
            self.state = "failed"
            return
        _allow_graphs(8 * MAX_GRAPHS)
        self._compiled = torch.compile(module, dynamic=True, backend=backend)
        self._run_only = torch._dynamo.run(self._compiled)
        forward = type(module).forward
        self._code = forward.__code__
        self._argument_names = list(inspect.signature(forward).parameters)[:2]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if self.state == "compiled" and self.accepts(batch):
            try:
                result = self._run_only(batch)
            except torch.OutOfMemoryError:
                raise  # the engine retries with smaller tiles
            except Exception as error:  # noqa: BLE001 - a broken graph must not break requests
                log.warning("%s's compiled graph failed; it runs uncompiled from now on (%s)", self.label, brief(error))
                self.state = "failed"
            else:
                self.calls["compiled"] += 1
                return result
        if self.state in ("waiting", "compiling", "compiled"):
            self._request(batch)
        self.calls["eager"] += 1
        return self.module(batch)

    def accepts(self, batch: torch.Tensor) -> bool:
        """Whether a compiled graph exists that runs ``batch`` as it is, without compiling."""
        if self._code is None:  # this torch cannot compile in the background
            return False
        locals_ = dict(zip(self._argument_names, (self.module, batch), strict=True))
        try:
            entries = torch._dynamo.eval_frame._debug_get_cache_entry_list(self._code)
            return any(entry.guard_manager.check(locals_) for entry in entries)
        except Exception:  # noqa: BLE001 - a private API of torch; without it, nothing is accepted
            return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no compilation is running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._busy, timeout)

    def _request(self, batch: torch.Tensor) -> None:
        """Compile for ``batch``'s shape in a worker thread, unless one is busy (then a later call asks again)."""
        if min(batch.shape[-2:]) < 2:
            return  # a side of 1 would only get a graph of its own
        key = (batch.shape, batch.dtype)
        with self._lock:
            if self._busy or key in self._requested or len(self.compile_seconds) >= MAX_GRAPHS:
                return
            if len(self._requested) > 1000:
                self._requested.clear()
            self._requested.add(key)
            self._busy = True
            if self.state == "waiting":
                self.state = "compiling"
            _compilation_started()
        try:
            background.start(self._work, *key, name=f"the compilation of {self.label}")
        except RuntimeError as error:  # no thread to be had: stay eager
            log.warning("Could not compile %s in the background (%s)", self.label, brief(error))
            self._finish(failed=True)

    def _work(self, shape: torch.Size, dtype: torch.dtype) -> None:
        failed = False
        try:
            self._compile_for(shape, dtype)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: stay eager
            if is_out_of_memory(error):
                log.warning("Out of memory compiling %s for %s; a later request tries again", self.label, tuple(shape))
                with self._lock:
                    self._requested.discard((shape, dtype))
                    if self.state == "compiling":
                        self.state = "waiting"
                with contextlib.suppress(Exception):
                    torch.cuda.empty_cache()
            else:
                log.warning("Compiling %s for %s inputs failed (%s)", self.label, tuple(shape), brief(error))
                failed = True
        finally:
            self._finish(failed)

    def _finish(self, failed: bool) -> None:
        """The worker is done: a failure before any graph served leaves the network uncompiled for good."""
        with self._lock:
            if failed and self.speedup is None:
                self.state = "failed"
            self._busy = False
            _compilation_finished()
            self._idle.notify_all()

    def _compile_for(self, shape: torch.Size, dtype: torch.dtype) -> None:
        # Callers run inside inference mode, and dynamo's guards tell its tensors apart.
        with torch.inference_mode():
            example = _example(shape, dtype, next(self.module.parameters()).device)
            if not self.accepts(example):
                started = time.perf_counter()
                self._compiled(example)
                synchronize(example.device)
                seconds = time.perf_counter() - started
                self.compile_seconds.append(seconds)
                log.info("Compiled %s for %s inputs in %.0f s", self.label, tuple(example.shape), seconds)
            if self.speedup is None:
                self.speedup = speedup(self.module, self._run_only, example, _TIMING_RUNS)
                faster = self.speedup >= self.min_speedup
                log.info(
                    "%s compiled runs %.2f× eager speed: %s",
                    self.label,
                    self.speedup,
                    "using it" if faster else "staying eager",
                )
                with self._lock:
                    self.state = "compiled" if faster else "slower"


_GIL_SWITCH_SECONDS = 1e-4
_switch_lock = threading.Lock()
_compilations = 0
_usual_switch_interval = sys.getswitchinterval()


def _compilation_started() -> None:
    """Let the GIL change hands every 0.1 ms instead of every 5 ms while a compilation runs.

    Compiling is Python that holds the GIL for a minute or more. A request gives the GIL
    up at every torch call and must wait to get it back: at the usual 5 ms, requests for
    RealESRGAN_x4plus at 512² took 3–4 s instead of 0.07 s on an H200 while it compiled.
    """
    global _compilations, _usual_switch_interval
    with _switch_lock:
        if _compilations == 0:
            _usual_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_usual_switch_interval, _GIL_SWITCH_SECONDS))
        _compilations += 1


def _compilation_finished() -> None:
    global _compilations
    with _switch_lock:
        _compilations -= 1
        if _compilations == 0:
            sys.setswitchinterval(_usual_switch_interval)


def _example(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A random input like the one asked for, with no two sizes equal.

    Dynamo gives equal sizes one symbol: from a square example the graph would accept
    square inputs only, and from a batch of 3 (the channel count), batches of 3 only.
    A batch of 2 stands for every batch of several.
    """
    batch, channels, height, width = shape
    if height == width:
        width += 4  # keeps any input multiple (1, 2 or 4)
    if batch > 1:
        batch = 2
    return (
        torch.rand(batch, channels, height, width, device=device)
        .to(dtype)
        .contiguous(memory_format=torch.channels_last)
    )


def can_compile_in_background() -> bool:
    """Whether this torch lets callers check compiled graphs' guards and run them without compiling."""
    return (
        torch.torch_version.TorchVersion(torch.__version__) >= "2.6"  # guard managers with check()
        and hasattr(torch._dynamo, "run")
        and hasattr(torch._dynamo.eval_frame, "_debug_get_cache_entry_list")
    )


def _allow_graphs(count: int) -> None:
    """Let dynamo keep ``count`` graphs per function (graphs of every network of one
    architecture share forward's cache)."""
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, name, max(getattr(config, name), count))
