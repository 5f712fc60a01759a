"""RIFE's IFNet: the flow network that makes an in-between frame of two frames, at any time between them.

Written from the public definition of RIFE v4.0 (Huang et al., "Real-Time Intermediate Flow
Estimation for Video Frame Interpolation", ECCV 2022; hzwer's Practical-RIFE ``IFNet_HDv3.py``,
MIT), with the same module and parameter names, so the official ``flownet.pkl`` loads into it
(less its refinement network, which v4.0 does not use). No library that users install keeps a
definition of it without VapourSynth or a GUI around it.

Four blocks estimate the flow from the in-between frame to each of the two frames, coarse to
fine (at 1/8, 1/4, 1/2 and full size), and a mask blends the two frames warped along it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MULTIPLE", "IFBlock", "IFNet", "warp"]

MULTIPLE = 32
"""Input sides must be a multiple of this over the flow scale (the coarsest block works at 1/8 size and halves it
twice): 32 at scale 1, 128 at scale 1/4."""
_SCALES = (8.0, 4.0, 2.0, 1.0)
WIDTHS = (192, 128, 96, 64)
"""RIFE v4.0's blocks' widths, coarse to fine."""
Runner = Callable[[torch.Tensor], torch.Tensor]
"""A block's convolutions as one tensor in, one out: its own, or a runtime's build of them."""
_LARGE_MOTION = 32.0
"""Pixels of flow (at the second block's scale) beyond which the coarse blocks are run again at half the size."""


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=True), nn.PReLU(out_channels))


def _resized(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1:
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


class IFBlock(nn.Module):
    """One level of the flow pyramid: from the frames (and the flow so far) at ``1/scale`` size, a flow update
    for both directions and a mask update, at full size."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_channels, width // 2, 2), _conv(width // 2, width, 2))
        self.convblock = nn.Sequential(*(_conv(width, width) for _ in range(8)))
        self.lastconv = nn.ConvTranspose2d(width, 5, 4, 2, 1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The block's convolutions: all of its work but the resizing around them."""
        features = self.conv0(x)
        return self.lastconv(self.convblock(features) + features)

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float, body: Runner | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _resized(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resized(flow, 1.0 / scale) / scale), 1)
        out = _resized((body or self.body)(x), scale * 2)
        return out[:, :4] * scale * 2, out[:, 4:5]


class BlockBody(nn.Module):
    """A block's convolutions as a network of one tensor in and one out: what a runtime converts."""

    def __init__(self, block: IFBlock) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.body(x)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` sampled along ``flow`` (pixels, x then y), bilinear, the border repeated beyond the edges."""
    batch, _, height, width = flow.shape
    xs = torch.linspace(-1.0, 1.0, width, device=flow.device, dtype=flow.dtype).view(1, 1, 1, width)
    ys = torch.linspace(-1.0, 1.0, height, device=flow.device, dtype=flow.dtype).view(1, 1, height, 1)
    grid = torch.cat((xs.expand(batch, 1, height, width), ys.expand(batch, 1, height, width)), 1)
    normalised = torch.cat((flow[:, 0:1] / ((width - 1.0) / 2.0), flow[:, 1:2] / ((height - 1.0) / 2.0)), 1)
    sampled = (grid + normalised).permute(0, 2, 3, 1)
    return F.grid_sample(image, sampled, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """RIFE v4's flow network: two frames and a time in (0, 1) in, the frame at that time out.

    Inputs are ``(N, 3, H, W)`` in 0–1 with H and W multiples of :data:`MULTIPLE` over ``scale``; the time is
    a ``(N, 1, 1, 1)`` tensor (one time per pair) or a number. ``scale`` below 1 estimates the flow on smaller
    frames (1/4 for frames a ×4 upscaler made: the flow of the frames they were made from); ``bodies`` run the
    four blocks' convolutions (a runtime's builds of :class:`BlockBody`; the blocks' own where None).
    """

    def __init__(self, widths: Sequence[int] = WIDTHS) -> None:
        super().__init__()
        self.block0 = IFBlock(7, widths[0])
        self.block1 = IFBlock(8 + 4, widths[1])
        self.block2 = IFBlock(8 + 4, widths[2])
        self.block3 = IFBlock(8 + 4, widths[3])

    @property
    def blocks(self) -> tuple[IFBlock, IFBlock, IFBlock, IFBlock]:
        """The four levels, coarse to fine."""
        return self.block0, self.block1, self.block2, self.block3

    def forward(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        time: torch.Tensor | float = 0.5,
        scale: float = 1.0,
        bodies: Sequence[Runner | None] | None = None,
    ) -> torch.Tensor:
        if not torch.is_tensor(time):
            time = torch.full((first.shape[0], 1, 1, 1), float(time), device=first.device, dtype=first.dtype)
        time = time.to(first.dtype).expand(first.shape[0], 1, first.shape[2], first.shape[3])
        scales = [level / scale for level in _SCALES]
        blocks = self.blocks
        bodies = list(bodies) if bodies is not None else [None] * len(blocks)
        flow, mask = blocks[0](torch.cat((first, second, time), 1), None, scales[0], bodies[0])
        warped_first, warped_second = warp(first, flow[:, :2]), warp(second, flow[:, 2:4])
        for level in (1, 2, 3):
            inputs = torch.cat((warped_first, warped_second, time, mask), 1)
            flow_step, mask_step = blocks[level](inputs, flow, scales[level], bodies[level])
            if level == 1 and _large_motion(flow_step):
                # Motion too large for the coarsest level: the definition starts again with every level at half size.
                scales = [each * 2 for each in scales]
                flow, mask = blocks[0](torch.cat((first, second, time), 1), None, scales[0], bodies[0])
                warped_first, warped_second = warp(first, flow[:, :2]), warp(second, flow[:, 2:4])
                inputs = torch.cat((warped_first, warped_second, time, mask), 1)
                flow_step, mask_step = blocks[level](inputs, flow, scales[level], bodies[level])
            flow, mask = flow + flow_step, mask + mask_step
            warped_first, warped_second = warp(first, flow[:, :2]), warp(second, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped_first * weight + warped_second * (1 - weight)


def _large_motion(flow_step: torch.Tensor) -> bool:
    """Whether both directions of the second level's flow update move more than :data:`_LARGE_MOTION` pixels
    somewhere (data-dependent: a traced graph keeps the answer of its example)."""
    return bool(flow_step[:, :2].abs().max() > _LARGE_MOTION and flow_step[:, 2:4].abs().max() > _LARGE_MOTION)
