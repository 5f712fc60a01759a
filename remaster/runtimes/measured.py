"""The measured choice: a runtime's runner built in the background from a network's first real input, timed
against torch, and used only where at least 5% faster; the decision kept in ``backends.json``.

A network starts on torch while its runner is built; whatever fails (a network that does not
convert, a run that raises) leaves it on torch, and the log says so. A kept ``torch`` means
nothing is built again; a kept runtime's name, that it is built and used without measuring.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from .. import background
from ..errors import StoppedError, brief, is_out_of_memory
from ..kept import KeptTable
from ..timing import speedup
from . import Runner

__all__ = ["Accelerated", "AcceleratedState", "weights_key"]

log = logging.getLogger(__name__)

AcceleratedState = Literal["waiting", "building", "chosen", "torch", "failed"]

_MEASURE_SIDE = 128
"""Runtimes are timed on a window of the first real input of at most this side, so that a minute-long tile is not."""
_TIMING_RUNS = 3
_MIN_GAIN = 1.05
"""A runtime is used only if it measured at least this much faster than torch: a smaller gain is within the
timing's noise, and on a CPU a second runtime's thread pool also costs the work around the network (measured on
a 2-core AMD EPYC: realesr-animevideov3 timed at 1.03× on OpenVINO, and whole requests ran at 0.92–1.00×)."""


class Accelerated:
    """Runs ``module`` on torch until another runtime's runner, built in the background, has measured faster; then
    on that.

    Args:
        module: the network on its device and dtype, in eval mode.
        label: names it in log messages.
        backend: the runtime's name (as ``REMASTER_BACKEND`` spells it), for messages and the kept decision.
        build: makes the runtime's runner from ``module`` and an example input (slow: it runs in a thread).
        choices: where decisions are kept, with ``key`` naming this network's; a kept ``torch`` means
            nothing is built, a kept ``backend`` means it is built and used without measuring again.
        measure: time the runner against torch before using it; off when the runtime is forced.
        whole_example: build and time the runner on the first input whole, for networks of one input
            size; else on a window of it, so that a minute-long tile is not timed.
        display_name: how the runtime's name is written in the build thread's name; ``backend`` where not given.
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
        display_name: str = "",
    ) -> None:
        self.module = module
        self.label = label
        self.backend = backend
        self.display_name = display_name or backend
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
            name = f"the {self.display_name} build of {self.label}"
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


def weights_key(module: nn.Module) -> str:
    """Names ``module``'s class and weights: what a converted or built network kept on disk is found by."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
