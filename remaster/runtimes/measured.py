"""The measured choice: a runtime's runner built in the background from a network's first real input, timed
against torch, and used only where clearly faster; the decision kept in ``backends.json`` and checked again.

A network starts on torch while its runners are built; whatever fails (a network that does not
convert, a run that raises) leaves it on torch, and the log says so. Several candidates (OpenVINO
in the network's precision, then int8 under its quality gate) are each timed against the best
before them, alternating, as many times as it takes for the gain to be clear (:func:`~remaster.timing.compare`).
The decision is kept with what was measured, by network and processor: a kept ``torch`` means
nothing is built again, a kept runtime's name that it is built and used without measuring. A
decision taken while other work kept the processor busy says so and is measured again later; and
where requests later run at another speed than was measured, the decision is measured again in
the background.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from .. import background
from ..errors import StoppedError, brief, is_out_of_memory
from ..kept import KeptTable
from ..timing import Comparison, compare
from . import Candidate, Runner

__all__ = ["Accelerated", "AcceleratedState", "Decision", "NotUsed", "weights_key"]

log = logging.getLogger(__name__)

AcceleratedState = Literal["waiting", "building", "chosen", "torch", "failed"]

TORCH = "torch"
_MEASURE_SIDE = 128
"""Runtimes are timed on a window of the first real input of at most this side, so that a minute-long tile is not."""
_PAIRS = (3, 9)
"""At least and at most this many alternating pairs of runs time a candidate against the best before it."""
_MIN_GAIN = 1.05
"""A runtime is used only if it measured clearly at least this much faster than torch: a smaller gain is within the
timing's noise, and on a CPU a second runtime's thread pool also costs the work around the network (measured on
a 2-core AMD EPYC: realesr-animevideov3 timed at 1.03× on OpenVINO, and whole requests ran at 0.92–1.00×)."""
_OBSERVED = 5
_STRAY = 1.5
"""Where the median of the last :data:`_OBSERVED` requests' speed (per pixel, inputs at least the measured window)
is this many times slower or faster than measured, or a runtime ran slower than torch was measured, the decision
is measured again."""
_RECHECK_EVERY = 600.0
"""Seconds between two measurements of one network that requests' speed asks for, at least."""
_RETRY_LOADED = 600.0
"""Seconds after which a decision taken under heavy load is measured again (on the next request)."""


class NotUsed(Exception):
    """A build's runner is made but not to be used (an int8 network short of the quality gate): logged as
    information, with ``quality`` what it measured, not as a failure."""

    def __init__(self, message: str, quality: object = None) -> None:
        super().__init__(message)
        self.quality = quality


@dataclass(frozen=True)
class Decision:
    """What ``backends.json`` keeps for a network on a processor: the runtime chosen and what was measured."""

    runtime: str
    """The candidate's name, or ``torch``."""
    speedup: float | None = None
    """The runtime's measured gain over torch (of the best candidate, where torch was kept)."""
    seconds_per_pixel: dict[str, float] = field(default_factory=dict)
    """Each way measured (``torch`` and candidates), in seconds per input pixel on the window it was timed on."""
    load: float | None = None
    """The largest share of the processor that other work kept busy while it was measured."""
    pairs: int = 0
    """Alternating pairs of runs timed, over all the candidates."""

    @property
    def loaded(self) -> bool:
        """Whether it was measured while other work kept the processor too busy to trust it for long."""
        from ..timing import HEAVY_LOAD

        return self.load is not None and self.load >= HEAVY_LOAD

    @classmethod
    def read(cls, kept: Any) -> Decision | None:
        """The decision in what ``backends.json`` holds for a key (a runtime's bare name, as kept before)."""
        if isinstance(kept, str):
            return cls(kept)
        if not isinstance(kept, dict) or not isinstance(kept.get("runtime"), str):
            return None
        try:
            return cls(**{name: kept[name] for name in cls.__dataclass_fields__ if name in kept})
        except TypeError:
            return None


class Accelerated:
    """Runs ``module`` on torch until another runtime's runner, built in the background, has measured clearly
    faster; then on that, as long as requests run at about the speed measured.

    Args:
        module: the network on its device and dtype, in eval mode.
        label: names it in log messages.
        backend: the runtime's name (as ``REMASTER_BACKEND`` spells it), for messages and the kept decision.
        build: makes the runtime's runner from ``module`` and an example input (slow: it runs in a thread).
        choices: where decisions are kept, with ``key`` naming this network's (:class:`Decision`); a kept
            ``torch`` means nothing is built, a kept runtime's name that it is built and used without measuring
            again (unless it was measured under heavy load).
        measure: time the runners against torch before using them; off when the runtime is forced (the first
            runner built is used).
        whole_example: build and time the runner on the first input whole, for networks of one input
            size; else on a window of it, so that a minute-long tile is not timed.
        display_name: how the runtime's name is written in the build thread's name; ``backend`` where not given.
        more: further candidates, each built after the one before and used only where it measured clearly
            faster than the best before it (int8 after OpenVINO).
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
        more: Sequence[Candidate] = (),
    ) -> None:
        self.module = module
        self.label = label
        self.backend = backend
        """The runtime in use; before one is, the first one tried (or the best measured, where torch stays)."""
        self.display_name = display_name or backend
        self.speedup: float | None = None
        """How much faster than torch :attr:`backend` measured; None where it was not measured in this process."""
        self.calls = {"backend": 0, "torch": 0}
        self.comparisons: dict[str, Comparison] = {}
        """Each candidate's latest timing against the best before it, by name."""
        self.qualities: dict[str, object] = {}
        """What each candidate that measures its quality (int8) measured, by name."""
        self.measurements = 0
        """How many times the decision was measured in this process (more than one: measured again)."""
        self._candidates = [Candidate(backend, build, self.display_name), *more]
        self._choices = choices
        self._key = key
        self._whole_example = whole_example
        self._measure = measure
        self._runner: Runner | None = None
        self._built: dict[str, Runner] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._expected: dict[str, float] = {}
        self._observed: deque[float] = deque(maxlen=_OBSERVED)
        self._recheck_at: float | None = None
        self._checked = -float("inf")
        self._only: str | None = None
        kept = Decision.read(choices.get(key)) if measure and choices is not None and key else None
        if kept is not None and kept.loaded:
            log.info("%s: the runtime kept for it was measured under heavy load; measuring again", label)
            kept = None
        known = {candidate.name for candidate in self._candidates}
        if kept is not None and kept.runtime != TORCH and kept.runtime not in known:
            kept = None
        self.state: AcceleratedState = "torch" if kept is not None and kept.runtime == TORCH else "waiting"
        if kept is not None:
            self._expected = dict(kept.seconds_per_pixel)
            self._only = kept.runtime if kept.runtime != TORCH else None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        runner = self._runner
        if runner is not None:
            started = time.perf_counter()
            try:
                result = runner(batch)
            except Exception as error:  # noqa: BLE001 - a broken backend must not break requests
                if is_out_of_memory(error) or isinstance(error, StoppedError):
                    raise  # the tile scheduler retries with smaller tiles; a stop is a stop
                log.warning(
                    "%s on %s failed; it runs on torch from now on (%s)", self.label, self.backend, brief(error)
                )
                with self._lock:
                    self._runner = None
                    self._built.pop(self.backend, None)
                    self.state = "failed"
            else:
                self.calls["backend"] += 1
                self._observe(batch, time.perf_counter() - started, self.backend)
                return result
        if self.state == "waiting":
            self._start(batch)
        started = time.perf_counter()
        result = self.module(batch)
        self.calls["torch"] += 1
        if self.state == "torch":
            self._observe(batch, time.perf_counter() - started, TORCH)
        return result

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no build or measurement is running; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self.state != "building", timeout)

    def _start(self, batch: torch.Tensor, again: bool = False) -> None:
        with self._lock:
            if self.state == "building" or (self.state != "waiting" and not again):
                return
            before = self.state if again else "failed"
            self.state = "building"
            self._recheck_at = None
            self._checked = time.monotonic()
        window = batch[:1]
        if not self._whole_example:
            height, width = (min(extent, _MEASURE_SIDE) for extent in batch.shape[-2:])
            window = window[:, :, :height, :width]
        example = window.detach().clone()
        try:
            what = "measurement" if again else f"{self.display_name} build"
            background.start(self._work, example, name=f"the {what} of {self.label}")
        except RuntimeError as error:  # no thread to be had: stay as it is
            log.warning("%s runs on torch: no thread to build %s in (%s)", self.label, self.backend, brief(error))
            with self._idle:
                self.state = before
                self._idle.notify_all()

    def _work(self, example: torch.Tensor) -> None:
        only, self._only = self._only, None
        measure = self._measure and only is None
        pixels = example.shape[0] * example.shape[-2] * example.shape[-1]
        best, best_run = TORCH, self.module
        loads: list[float] = []
        pairs = 0
        built_any = False
        try:
            for candidate in self._candidates:
                if only is not None and candidate.name != only:
                    continue
                runner = self._built.get(candidate.name) or self._build(candidate, example)
                if runner is None:
                    continue
                built_any = True
                self._built[candidate.name] = runner
                if not measure:
                    best, best_run = candidate.name, runner
                    self._use(candidate.name, runner)
                    break
                comparison = compare(best_run, runner, example, _MIN_GAIN, _PAIRS)
                self.comparisons[candidate.name] = comparison
                pairs += comparison.pairs
                if comparison.load is not None:
                    loads.append(comparison.load)
                self._expected[best] = comparison.reference / pixels
                self._expected[candidate.name] = comparison.candidate / pixels
                faster = comparison.faster(_MIN_GAIN)
                verdict = f"using {candidate.name}" if faster else f"staying on {best}"
                busy = "" if comparison.load is None else f", {comparison.load:.0%} of the processor busy elsewhere"
                log.info(
                    "%s on %s runs %.2f× %s's speed (%d alternating pairs, %.2f–%.2f%s): %s%s",
                    self.label,
                    candidate.name,
                    comparison.speedup,
                    best,
                    comparison.pairs,
                    comparison.low,
                    comparison.high,
                    busy,
                    verdict,
                    "" if faster is not None else " (the gain is not clear)",
                )
                if faster:
                    best, best_run = candidate.name, runner
                    self._use(candidate.name, runner)
            if measure and best == TORCH:
                with self._lock:
                    self._runner = None
        finally:
            self._finish(best, built_any, measure, loads, pairs)

    def _build(self, candidate: Candidate, example: torch.Tensor) -> Runner | None:
        try:
            started = time.perf_counter()
            runner = candidate.build(self.module, example)
            log.info("%s: built on %s in %.0f s", self.label, candidate.name, time.perf_counter() - started)
        except NotUsed as reason:
            self.qualities[candidate.name] = reason.quality
            log.info("%s stays off %s: %s", self.label, candidate.name, reason)
            return None
        except Exception as error:  # noqa: BLE001 - any failure to build means: stay as it is
            log.warning("%s runs on torch: %s could not take it (%s)", self.label, candidate.name, brief(error))
            return None
        quality = getattr(runner, "quality", None)
        if quality is not None:
            self.qualities[candidate.name] = quality
        return runner

    def _use(self, name: str, runner: Runner) -> None:
        with self._lock:
            self._runner = runner
            self.backend = name

    def _finish(self, best: str, built_any: bool, measured: bool, loads: list[float], pairs: int) -> None:
        load = max(loads, default=None)
        if measured:
            self.measurements += 1
            first = best if best != TORCH else next(iter(self.comparisons), None)
            if first is not None and first in self._expected and TORCH in self._expected:
                self.speedup = self._expected[TORCH] / self._expected[first]
                if best == TORCH:
                    self.backend = first
            decision = Decision(best, self.speedup, dict(self._expected), load, pairs)
            if decision.loaded:
                log.warning(
                    "%s: measured while other work kept %.0f%% of the processor busy; %s is used for now and measured "
                    "again in %.0f minutes",
                    self.label,
                    100 * (load or 0.0),
                    best,
                    _RETRY_LOADED / 60,
                )
                self._recheck_at = time.monotonic() + _RETRY_LOADED
        else:
            decision = Decision(best, seconds_per_pixel=dict(self._expected))
        # A forced runtime's is kept as before; one read from the kept decisions is not written again.
        if self._choices is not None and self._key and built_any and (measured or not self._measure):
            self._choices.put(self._key, _plain(decision))
        with self._idle:
            self._observed.clear()
            self.state = "chosen" if best != TORCH else "torch" if built_any else "failed"
            self._idle.notify_all()

    def _observe(self, batch: torch.Tensor, seconds: float, name: str) -> None:
        """Note a request's speed on the way in use; where it strays from what was measured, measure again."""
        expected = self._expected.get(name)
        pixels = batch.shape[0] * batch.shape[-2] * batch.shape[-1]
        if self._recheck_at is None and expected and _MEASURE_SIDE**2 <= pixels <= 64 * _MEASURE_SIDE**2:
            self._observed.append(seconds / pixels)
            if len(self._observed) == _OBSERVED:
                observed = statistics.median(self._observed)
                ratio = observed / expected
                slower_than_torch = name != TORCH and observed > self._expected.get(TORCH, float("inf"))
                if ratio >= _STRAY or ratio <= 1 / _STRAY or slower_than_torch:
                    self._observed.clear()
                    if time.monotonic() - self._checked >= _RECHECK_EVERY:
                        log.info(
                            "%s on %s ran at %.2f× the speed measured for it over the last %d requests%s: measuring "
                            "again",
                            self.label,
                            name,
                            1 / ratio,
                            _OBSERVED,
                            ", slower than torch was measured" if slower_than_torch else "",
                        )
                        self._recheck_at = time.monotonic()
        if self._recheck_at is not None and time.monotonic() >= self._recheck_at and self.state in ("chosen", "torch"):
            self._start(batch, again=True)


def _plain(decision: Decision) -> dict[str, Any]:
    """``decision`` as JSON keeps it, rounded to what matters."""
    kept = asdict(decision)
    kept["seconds_per_pixel"] = {name: float(f"{value:.4g}") for name, value in decision.seconds_per_pixel.items()}
    for name in ("speedup", "load"):
        if kept[name] is not None:
            kept[name] = round(kept[name], 3)
    return kept


def weights_key(module: nn.Module) -> str:
    """Names ``module``'s class and weights: what a converted or built network kept on disk is found by."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]
