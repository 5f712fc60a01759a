"""Low-resolution inputs made from high-resolution images: Real-ESRGAN's second-order degradation.

The pipeline is the one of ``realesrgan/models/realesrgan_model.py`` (``feed_data``) and its
dataset (``realesrgan_dataset.py``: the blur and sinc kernels), built from basicsr's own pieces:
``random_mixed_kernels`` and ``circular_lowpass_kernel`` for the kernels, ``filter2D`` to blur,
``random_add_gaussian_noise_pt`` and ``random_add_poisson_noise_pt`` for noise, ``DiffJPEG`` for
compression. A :class:`Preset` holds the official option names; :data:`PRESETS` has the official
settings (``realesrgan``) and narrower ones for one kind of damage (``jpeg``, ``scan``, ``blur``).
A strength scales how hard each step bites (1 is the preset as written).

Everything random draws from Python's, NumPy's and torch's global generators, as the official
code does; :func:`seed_everything` sets all three, so the same seed gives the same images.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .._compat import import_basicsr

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "Degrader", "Preset", "seed_everything"]

_KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_KERNEL_PROB = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
_KERNEL_SIZES = tuple(2 * v + 1 for v in range(3, 11))  # 7 to 21, as the official dataset
_PAD_TO = 21
_WORKING_SIDE = 400
"""Images are degraded at least this large (reflected at the bottom and right), as the official dataset pads its
crops to 400 before degrading: blur kernels and resizes need room. The result is cropped back."""
_SMALLEST = 16
"""No intermediate image is resized below this, so a 21-pixel kernel always fits."""


@dataclass(frozen=True)
class Stage:
    """One order of the degradation: blur, resize, noise, JPEG. A probability of 0 leaves a step out."""

    blur_prob: float = 1.0
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    sinc_prob: float = 0.1
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Up, down, keep."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    noise_prob: float = 1.0
    gaussian_noise_prob: float = 0.5
    """Of the noise added, the share that is Gaussian (the rest is Poisson)."""
    noise_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] | None = (30.0, 95.0)
    """JPEG quality range; None for no JPEG."""

    def scaled(self, strength: float) -> Stage:
        """This stage with blur, resize, noise and JPEG ``strength`` times as hard."""
        low, high = self.resize_range
        jpeg = None if self.jpeg_range is None else tuple(_harder_quality(q, strength) for q in self.jpeg_range)
        return replace(
            self,
            blur_sigma=(self.blur_sigma[0] * strength, self.blur_sigma[1] * strength),
            resize_range=(max(0.05, 1 - (1 - low) * strength), 1 + (high - 1) * strength),
            noise_range=(self.noise_range[0] * strength, self.noise_range[1] * strength),
            poisson_scale_range=(self.poisson_scale_range[0] * strength, self.poisson_scale_range[1] * strength),
            jpeg_range=jpeg,
        )


@dataclass(frozen=True)
class Preset:
    """A whole degradation: the first stage, the second (None for a single-order one), the final sinc filter.

    A single-order preset shrinks to the low resolution in its stage, then adds its noise and JPEG there.
    """

    name: str
    description: str
    first: Stage
    second: Stage | None = None
    final_sinc_prob: float = 0.8

    def scaled(self, strength: float) -> Preset:
        """The preset with every stage ``strength`` times as hard (1: as written)."""
        second = self.second.scaled(strength) if self.second is not None else None
        return replace(self, first=self.first.scaled(strength), second=second)


def _harder_quality(quality: float, strength: float) -> float:
    return float(min(100.0, max(1.0, 100 - (100 - quality) * strength)))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "realesrgan",
            "the official Real-ESRGAN settings: two orders of blur, resize, noise and JPEG, and a sinc filter",
            first=Stage(),
            second=Stage(
                blur_prob=0.8,
                blur_sigma=(0.2, 1.5),
                resize_prob=(0.3, 0.4, 0.3),
                resize_range=(0.3, 1.2),
                noise_range=(1.0, 25.0),
                poisson_scale_range=(0.05, 2.5),
            ),
        ),
        Preset(
            "jpeg",
            "JPEG compression only, after a plain shrink: web images, messaging apps",
            first=Stage(blur_prob=0, resize_prob=(0, 0, 1), noise_prob=0, jpeg_range=(30.0, 90.0)),
            final_sinc_prob=0,
        ),
        Preset(
            "scan",
            "a scanned print: mild blur, gray and colour grain, a light JPEG",
            first=Stage(
                blur_sigma=(0.4, 1.5),
                sinc_prob=0,
                resize_prob=(0, 0.5, 0.5),
                resize_range=(0.6, 1.0),
                gaussian_noise_prob=0.8,
                noise_range=(2.0, 12.0),
                poisson_scale_range=(0.05, 1.0),
                gray_noise_prob=0.7,
                jpeg_range=(70.0, 95.0),
            ),
            final_sinc_prob=0,
        ),
        Preset(
            "blur",
            "blur only (Gaussian, generalised and plateau kernels) before the shrink: soft focus, motion, lenses",
            first=Stage(sinc_prob=0, resize_prob=(0, 0, 1), noise_prob=0, jpeg_range=None),
            final_sinc_prob=0,
        ),
    )
}
"""Every degradation preset by name."""


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (every device's), which the degradation draws from."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Degrader:
    """Makes low-resolution inputs from ``(batch, 3, H, W)`` RGB tensors in [0, 1], on their device.

    Args:
        preset: the degradation.
        scale: the shrink factor; the result is ``H // scale`` by ``W // scale``.
    """

    def __init__(self, preset: Preset, scale: int) -> None:
        self.preset = preset
        self.scale = scale
        utils = import_basicsr("basicsr.utils")
        self._jpeg = utils.DiffJPEG(differentiable=False)
        self._filter2d = import_basicsr("basicsr.utils.img_process_util").filter2D
        self._degradations = import_basicsr("basicsr.data.degradations")

    def __call__(self, gt: torch.Tensor) -> torch.Tensor:
        """The degraded, shrunk, 8-bit-rounded batch (values in [0, 1]).

        Raises:
            ValueError: the images are smaller than the scale.
        """
        import torch
        from torch.nn import functional as F  # noqa: N812 - torch's own spelling

        height, width = gt.shape[2:4]
        if height < self.scale or width < self.scale:
            raise ValueError(f"an image of {width}×{height} cannot be shrunk by {self.scale}")
        self._jpeg = self._jpeg.to(gt.device)
        first, second = self.preset.first, self.preset.second
        gt = _reflected_to(gt, _WORKING_SIDE - _WORKING_SIDE % self.scale)
        target = (gt.shape[2] // self.scale, gt.shape[3] // self.scale)
        # The official first order resizes at the HR size; a single-order preset shrinks there, so its
        # noise and JPEG happen at the low resolution, as the damage of a small image does.
        out = self._stage(gt, first, size=None if second is not None else target)
        if second is not None:
            out = self._stage(out, second, size=target)
        sinc = self._final_sinc(gt.shape[0]).to(gt.device)
        # As the official code: [resize back + sinc] then JPEG, or JPEG then [resize back + sinc], half each.
        jpeg = second.jpeg_range if second is not None else None
        if np.random.uniform() < 0.5:
            out = self._filter2d(F.interpolate(out, size=target, mode=_mode()).contiguous(), sinc)
            out = self._compress(out, jpeg)
        else:
            out = self._compress(out, jpeg)
            out = self._filter2d(F.interpolate(out, size=target, mode=_mode()).contiguous(), sinc)
        out = out[:, :, : height // self.scale, : width // self.scale]
        return (torch.clamp((out * 255.0).round(), 0, 255) / 255.0).contiguous()

    def _stage(self, image: torch.Tensor, stage: Stage, size: tuple[int, int] | None) -> torch.Tensor:
        from torch.nn import functional as F  # noqa: N812 - torch's own spelling

        d = self._degradations
        out = image
        if stage.blur_prob > 0 and np.random.uniform() < stage.blur_prob:
            out = self._filter2d(out.contiguous(), self._kernels(image.shape[0], stage).to(image.device))
        updown = random.choices(["up", "down", "keep"], stage.resize_prob)[0]
        factor = {
            "up": lambda: np.random.uniform(1, stage.resize_range[1]),
            "down": lambda: np.random.uniform(stage.resize_range[0], 1),
            "keep": lambda: 1.0,
        }[updown]()
        size = size or (image.shape[2], image.shape[3])
        out = F.interpolate(out, size=tuple(max(_SMALLEST, int(side * factor)) for side in size), mode=_mode())
        if stage.noise_prob > 0 and np.random.uniform() < stage.noise_prob:
            if np.random.uniform() < stage.gaussian_noise_prob:
                out = d.random_add_gaussian_noise_pt(
                    out, sigma_range=stage.noise_range, clip=True, rounds=False, gray_prob=stage.gray_noise_prob
                )
            else:
                out = d.random_add_poisson_noise_pt(
                    out, scale_range=stage.poisson_scale_range, gray_prob=stage.gray_noise_prob, clip=True, rounds=False
                )
        return self._compress(out, stage.jpeg_range)

    def _compress(self, image: torch.Tensor, quality: tuple[float, float] | None) -> torch.Tensor:
        import torch

        image = torch.clamp(image, 0, 1)  # as the official code: JPEG of values outside [0, 1] makes artefacts
        if quality is None:
            return image
        return self._jpeg(image, quality=image.new_zeros(image.size(0)).uniform_(*quality))

    def _kernels(self, count: int, stage: Stage) -> torch.Tensor:
        import torch

        return torch.stack([torch.from_numpy(self._kernel(stage)).float() for _ in range(count)])

    def _kernel(self, stage: Stage) -> np.ndarray:
        d = self._degradations
        size = random.choice(_KERNEL_SIZES)
        if np.random.uniform() < stage.sinc_prob:
            omega_c = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            kernel = d.circular_lowpass_kernel(omega_c, size, pad_to=False)
        else:
            kernel = d.random_mixed_kernels(
                list(_KERNELS),
                list(_KERNEL_PROB),
                size,
                stage.blur_sigma,
                stage.blur_sigma,
                [-math.pi, math.pi],
                stage.betag_range,
                stage.betap_range,
                noise_range=None,
            )
        pad = (_PAD_TO - size) // 2
        return np.pad(kernel, ((pad, pad), (pad, pad)))

    def _final_sinc(self, count: int) -> torch.Tensor:
        import torch

        kernels = []
        for _ in range(count):
            if self.preset.final_sinc_prob > 0 and np.random.uniform() < self.preset.final_sinc_prob:
                size = random.choice(_KERNEL_SIZES)
                omega_c = np.random.uniform(np.pi / 3, np.pi)
                kernel = torch.from_numpy(self._degradations.circular_lowpass_kernel(omega_c, size, pad_to=_PAD_TO))
            else:
                kernel = torch.zeros(_PAD_TO, _PAD_TO)  # a pulse: no filtering
                kernel[_PAD_TO // 2, _PAD_TO // 2] = 1
            kernels.append(kernel.float())
        return torch.stack(kernels)


def _reflected_to(image: torch.Tensor, side: int) -> torch.Tensor:
    """``image`` reflected at its bottom and right edges until both sides are at least ``side``."""
    from torch.nn import functional as F  # noqa: N812 - torch's own spelling

    while image.shape[2] < side or image.shape[3] < side:
        down = min(max(0, side - image.shape[2]), image.shape[2] - 1)
        right = min(max(0, side - image.shape[3]), image.shape[3] - 1)
        image = F.pad(image, (0, right, 0, down), mode="reflect")
    return image


def _mode() -> str:
    return random.choice(["area", "bilinear", "bicubic"])
