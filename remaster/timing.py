"""Timing one way of running a network against another, on a device shared with requests and other programs.

:func:`compare` alternates the two, as many times as it takes for the gain to be clear (or for a most), and
measures how busy the processor was with other work meanwhile: a decision taken while it was busy says so, so
that it can be taken again later.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["HEAVY_LOAD", "Comparison", "busy_share", "compare", "speedup", "synchronize"]

HEAVY_LOAD = 0.4
"""A comparison taken while other work kept this share of the processor busy is not trusted for long: on two cores,
one other busy thread is 0.5, and it moved a measured gain of 1.20× to 1.03×."""
_SETTLE = 0.05
"""Seconds a runtime's worker threads may spin on after a run (torch's took 3% of the next tenth of a second on
two cores, none after this): not counted as other work."""
_IDLE_GAP = 0.1
"""Seconds between two pairs of runs in which the processor's use by other work is sampled."""


@dataclass(frozen=True)
class Comparison:
    """Two ways of running a network timed against each other on one input."""

    reference: float
    """The reference's median seconds a run."""
    candidate: float
    """The candidate's median seconds a run."""
    speedup: float
    """The median over alternating pairs of the reference's time over the candidate's."""
    low: float
    """The pairs' ratio that a quarter of them fell below (all of them, for up to four pairs): the gain is clear
    where this is above the gain asked for."""
    high: float
    """The pairs' ratio that a quarter of them rose above: the loss is clear where this is below the gain asked."""
    pairs: int
    load: float | None
    """The share of the processor that other work (other programs, this one's other threads) kept busy between the
    runs, 0–1; None where it cannot be read (no ``/proc/stat``)."""

    def faster(self, gain: float) -> bool | None:
        """True where the candidate is clearly at least ``gain`` times faster, False where it clearly is not, None
        where the runs disagree."""
        if self.low >= gain:
            return True
        if self.high < gain:
            return False
        return None

    @property
    def loaded(self) -> bool:
        """Whether other work kept the processor busy enough (:data:`HEAVY_LOAD`) to distrust the comparison."""
        return self.load is not None and self.load >= HEAVY_LOAD


def compare(
    reference: Callable[[torch.Tensor], object],
    candidate: Callable[[torch.Tensor], object],
    example: torch.Tensor,
    gain: float,
    pairs: tuple[int, int] = (3, 9),
) -> Comparison:
    """Time ``candidate`` against ``reference`` on ``example``: one warm-up of each, then pairs of runs in
    alternating order (reference first, then candidate first, …), at least ``pairs[0]`` and at most ``pairs[1]``,
    stopping once the pairs agree on whether the candidate is ``gain`` times faster. Between pairs, the processor's
    use by other work is sampled for a tenth of a second, after the runtimes' threads have settled."""
    least, most = pairs
    times: tuple[list[float], list[float]] = ([], [])
    loads: list[float] = []
    runs = (reference, candidate)
    with torch.inference_mode():
        for run in runs:
            _timed(run, example)
        for index in range(most):
            order = (0, 1) if index % 2 == 0 else (1, 0)
            for which in order:
                times[which].append(_timed(runs[which], example))
            time.sleep(_SETTLE)
            load = busy_share(_IDLE_GAP)
            if load is not None:
                loads.append(load)
            if index + 1 >= least and _summary(times, loads).faster(gain) is not None:
                break
    return _summary(times, loads)


def _summary(times: tuple[list[float], list[float]], loads: list[float]) -> Comparison:
    ratios = sorted(ours / theirs for ours, theirs in zip(*times, strict=True))
    quarter = len(ratios) // 4 if len(ratios) > 4 else 0
    return Comparison(
        reference=statistics.median(times[0]),
        candidate=statistics.median(times[1]),
        speedup=statistics.median(ratios),
        low=ratios[quarter],
        high=ratios[-1 - quarter],
        pairs=len(ratios),
        load=statistics.median(loads) if loads else None,
    )


def _timed(run: Callable[[torch.Tensor], object], example: torch.Tensor) -> float:
    synchronize(example.device)
    started = time.perf_counter()
    run(example)
    synchronize(example.device)
    return time.perf_counter() - started


def busy_share(seconds: float) -> float | None:
    """The share of all the processor's cores busy (or taken by the hypervisor) over the next ``seconds``, as
    ``/proc/stat`` counts it, 0–1; None where there is no ``/proc/stat``. Called while this thread's own work is
    paused, it is what everything else asks of the processor."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_times()
    if after is None:
        return None
    total, idle = (b - a for a, b in zip(before, after, strict=True))
    return min(max(1.0 - idle / total, 0.0), 1.0) if total > 0 else None


def _cpu_times() -> tuple[int, int] | None:
    """All cores' time so far in clock ticks: the total, and the idle part (idle and waiting for I/O)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(value) for value in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is counted in user already.
    return sum(fields[:8]), sum(fields[3:5])


def speedup(
    reference: Callable[[torch.Tensor], object],
    candidate: Callable[[torch.Tensor], object],
    example: torch.Tensor,
    runs: int,
) -> float:
    """The reference's seconds over the candidate's on ``example``: the fastest of ``runs``
    alternating runs of each after one warm-up of each, as requests may share the device meanwhile."""
    times: tuple[list[float], list[float]] = ([], [])
    with torch.inference_mode():
        for repeat in range(runs + 1):
            for kept, run in zip(times, (reference, candidate), strict=True):
                seconds = _timed(run, example)
                if repeat:
                    kept.append(seconds)
    return min(times[0]) / min(times[1])


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a time measured covers it (CPUs have none)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
