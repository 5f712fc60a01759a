"""Timing one way of running a network against another, on a device shared with requests."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["speedup", "synchronize"]


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
                synchronize(example.device)
                started = time.perf_counter()
                run(example)
                synchronize(example.device)
                if repeat:
                    kept.append(time.perf_counter() - started)
    return min(times[0]) / min(times[1])


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a time measured covers it (CPUs have none)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
