"""In-between frames: RIFE (or any registered interpolator) made of two frames, at times between them.

The network's four flow blocks each run on the runtime measured faster for them (OpenVINO on a
CPU, where it converts), as the face networks do; the warps and the blend between them stay in
torch, and so does the data-dependent restart the definition makes for very large motion. Frames
are padded (the border repeated) to the multiple the network needs and cropped back, so any size
works. Frames that an upscaler made ``k`` times larger have their flow estimated at ``1/k`` of
their size (``flow_scale``): the flow of the frames they were made from, at the cost of those,
applied to the sharp large frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .engine import Engine
from .pixels import to_float_scale
from .registry import get_model

__all__ = ["Interpolator"]

log = logging.getLogger(__name__)

_BLOCKS = 4


class Interpolator:
    """Makes in-between frames with an interpolation model of the registry, on the engine's device."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prepare(self, model: str, on_wait: Callable[[str], None] | None = None) -> None:
        """Load ``model`` (and start building its runtimes) ahead of the first frames.

        Raises:
            UnknownModelError: no interpolation model has that name.
            WeightsUnavailableError: its weights could not be found or downloaded.
        """
        self._parts(model, on_wait)

    def between(
        self,
        model: str,
        first: np.ndarray,
        second: np.ndarray,
        times: Sequence[float],
        *,
        flow_scale: float = 1.0,
        check: Callable[[], None] | None = None,
    ) -> list[np.ndarray]:
        """The frames at ``times`` (each in (0, 1): 0 is ``first``, 1 is ``second``) between two frames.

        Args:
            first, second: ``(H, W, 3)`` RGB frames of one size and dtype (uint8, uint16 or float32 in 0–1).
            flow_scale: the size, relative to the frames, at which the motion between them is estimated.
            check: called before each batch of frames; raises to stop the work.

        Returns:
            One frame per time, of the frames' shape and dtype.
        """
        if not times:
            return []
        if first.shape != second.shape or first.dtype != second.dtype:
            raise ValueError(f"the frames differ: {first.shape} {first.dtype} and {second.shape} {second.dtype}")
        network, bodies = self._parts(model, None)
        device = self.engine.device
        height, width = first.shape[:2]
        multiple = math.ceil(get_model(model, "interpolator").architecture.input_multiple({}, 1) / flow_scale)
        pad = (0, -width % multiple, 0, -height % multiple)
        pair = [_padded(frame, device, pad) for frame in (first, second)]
        # On CUDA every time of a pair goes in one batch; on a CPU a batch gains nothing and one at a time stops sooner.
        groups = [list(times)] if device.type == "cuda" else [[at] for at in times]
        results = []
        with torch.inference_mode():
            for group in groups:
                if check is not None:
                    check()
                at = torch.tensor(group, device=device, dtype=torch.float32).view(-1, 1, 1, 1)
                batch = [frame.expand(len(group), -1, -1, -1) for frame in pair]
                made = network(*batch, at, scale=flow_scale, bodies=bodies)
                results.extend(_to_array(frame[:, :height, :width], first.dtype) for frame in made)
        return results

    def _parts(self, model: str, on_wait: Callable[[str], None] | None) -> tuple[torch.nn.Module, list]:
        """The loaded network and its blocks' runners (kept by the engine once made)."""
        spec = get_model(model, "interpolator")
        network = self.engine.module(spec, on_wait)
        bodies = [
            self.engine.helper(spec, _body(level), on_wait, fixed_shape=False, part=f"block{level}")
            for level in range(_BLOCKS)
        ]
        return network, bodies


def _body(level: int) -> Callable[[torch.nn.Module], torch.nn.Module]:
    def make(network: torch.nn.Module) -> torch.nn.Module:
        from .ifnet import BlockBody

        return BlockBody(network.blocks[level])

    return make


def _padded(frame: np.ndarray, device: torch.device, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """An ``(H, W, 3)`` frame as a ``(1, 3, H', W')`` float tensor in 0–1 on ``device``, the border repeated."""
    tensor = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1)[None].float()
    return F.pad(tensor.mul_(1.0 / to_float_scale(frame.dtype)), pad, mode="replicate")


def _to_array(frame: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """A ``(3, H, W)`` frame in 0–1 as an ``(H, W, 3)`` array of ``dtype`` (rounded for integers)."""
    frame = frame.clamp(0.0, 1.0).permute(1, 2, 0)
    if np.dtype(dtype) == np.float32:
        return frame.cpu().numpy().copy()
    scaled = frame.mul(to_float_scale(dtype)).round_()
    return scaled.to(torch.int32).cpu().numpy().astype(dtype)
