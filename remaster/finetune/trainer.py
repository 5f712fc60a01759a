"""The training loop: the official recipe's losses, an EMA of the generator, checkpoints that resume exactly.

Each step draws its batch (which images, where to crop, flips) and its degradation from random
state made from the seed and the step number alone (:func:`step_seed`), so a checkpoint's step is
all the random state there is: a resumed run draws what the uninterrupted run would have drawn,
and on the same device gives bit-identical weights. A checkpoint holds everything else needed to
continue: the generator, its EMA, the discriminator, the optimisers and schedulers (and the
gradient scaler, on a GPU in fp16), the step and the curves so far. It is written atomically
(a temporary name, then renamed), every ``checkpoint_every`` steps, at the end, and when the run
is stopped (Ctrl-C).

Mixed precision is used where the device has it: autocast in bfloat16 on CUDA GPUs that support
it (float16 with a gradient scaler on those that do not); Apple MPS and CPUs train in float32.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._compat import import_basicsr
from ..atomic import atomic_file
from ..errors import InvalidOptionError, StoppedError
from ..evaluate import Score, crop_box, score
from .base import BaseModel
from .data import HELD_OUT_SIDE, TrainingData
from .degradation import PRESETS, Degrader, seed_everything

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["RECIPES", "Config", "HeldOut", "Recipe", "Trainer", "step_seed", "vgg19_weights"]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
_VGG19_FILE = "vgg19-dcbb9e9d.pth"


@dataclass(frozen=True)
class Recipe:
    """The losses and their weights; ``sharpened_target``: L1 and perceptual losses against the USM-sharpened
    ground truth, as the official recipe does."""

    name: str
    l1: float
    perceptual: float
    gan: float
    sharpened_target: bool
    description: str


RECIPES: dict[str, Recipe] = {
    "fidelity": Recipe("fidelity", 1.0, 0.0, 0.0, False, "L1 only: the highest PSNR, the look of the base model"),
    "perceptual": Recipe(
        "perceptual",
        1.0,
        1.0,
        0.1,
        True,
        "the official Real-ESRGAN recipe: L1, VGG19 perceptual and GAN losses (U-Net discriminator), sharpened "
        "targets: the GAN look, lower PSNR",
    ),
}
"""Every training recipe by name."""


@dataclass(frozen=True)
class Config:
    """How to fine-tune. Everything but ``steps``, ``eval_every`` and ``checkpoint_every`` must stay the same
    for ``--resume``."""

    steps: int = 1000
    batch_size: int = 4
    crop_size: int = 256
    """Side of the ground-truth crops; the inputs are ``crop_size / scale``."""
    lr: float = 1e-4
    preset: str = "realesrgan"
    strength: float = 1.0
    recipe: str = "fidelity"
    seed: int = 0
    eval_every: int = 0
    """Score the held-out images every this many steps; 0: ten times in a run."""
    checkpoint_every: int = 500
    accumulate: int = 1
    """Batches whose gradients are summed before each optimiser step, for small memory."""
    ema_decay: float = 0.999

    def check(self, scale: int) -> None:
        """Raises InvalidOptionError: a value out of range, a preset or recipe not known."""
        if self.preset not in PRESETS:
            raise InvalidOptionError(f"Unknown degradation preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.recipe not in RECIPES:
            raise InvalidOptionError(f"Unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        for name in ("steps", "batch_size", "crop_size", "checkpoint_every", "accumulate"):
            if getattr(self, name) < 1:
                raise InvalidOptionError(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.crop_size % scale or self.crop_size < 4 * scale:
            raise InvalidOptionError(
                f"The crop size must be a multiple of the scale ({scale}) and at least {4 * scale}, "
                f"not {self.crop_size}"
            )
        if not (self.lr > 0 and self.strength > 0 and 0 <= self.ema_decay < 1 and self.eval_every >= 0):
            raise InvalidOptionError("The learning rate and strength must be positive, the EMA decay in [0, 1)")

    @property
    def every(self) -> int:
        """Steps between held-out scores."""
        return self.eval_every or max(1, self.steps // 10)

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues."""
        kept = asdict(self)
        for name in ("steps", "eval_every", "checkpoint_every"):
            kept.pop(name)
        return kept


def step_seed(seed: int, step: int) -> int:
    """The seed of the random state of step ``step`` (counting from 0) of a run seeded ``seed``."""
    return (seed * 1_000_003 + step * 7_919 + 1) % 2**63


def vgg19_weights() -> Path | None:
    """Where VGG19's ImageNet weights lie on this machine, where basicsr or torchvision would look, or None."""
    import torch

    vgg_arch = import_basicsr("basicsr.archs.vgg_arch")
    for candidate in (Path(vgg_arch.VGG_PRETRAIN_PATH), Path(torch.hub.get_dir()) / "checkpoints" / _VGG19_FILE):
        if candidate.is_file():
            return candidate
    return None


@dataclass
class HeldOut:
    """The held-out images, degraded once (the same way as the training inputs), and their scores."""

    names: list[str]
    inputs: list[np.ndarray]
    truths: list[np.ndarray]
    scale: int

    @classmethod
    def make(cls, data: TrainingData, degrader: Degrader, seed: int) -> HeldOut:
        """Each held-out image's middle part (at most :data:`HELD_OUT_SIDE`) and its input, made under ``seed``."""
        scale = degrader.scale
        names, inputs, truths = [], [], []
        for index, pair in enumerate(data.held_out):
            gt, lq = pair.load(scale)
            box = _middle(gt.shape, HELD_OUT_SIDE, scale)
            gt = np.ascontiguousarray(gt[box])
            if lq is None:
                seed_everything(step_seed(seed, -1 - index))
                lq = _to_uint8(degrader(_to_tensor(gt)[None])[0])
            else:
                lq = lq[box[0].start // scale : box[0].stop // scale, box[1].start // scale : box[1].stop // scale]
            names.append(pair.name)
            inputs.append(np.ascontiguousarray(lq))
            truths.append(gt)
        return cls(names, inputs, truths, scale)

    def run(self, network: nn.Module, device: torch.device, label: str) -> tuple[list[Score], list[np.ndarray]]:
        """The scores of ``network`` on every held-out image (as method ``label``) and its outputs."""
        import torch

        scores, outputs = [], []
        was_training = network.training
        network.eval()
        with torch.no_grad():
            for name, lq, hr in zip(self.names, self.inputs, self.truths, strict=True):
                started = time.perf_counter()
                batch = _to_tensor(lq)[None].to(device)
                sr = _to_uint8(network(batch)[0].float().clamp(0, 1))[: hr.shape[0], : hr.shape[1]]
                psnr, ssim, niqe = score(sr, hr, self.scale)
                scores.append(Score(name, label, psnr, ssim, niqe, time.perf_counter() - started))
                outputs.append(sr)
        network.train(was_training)
        return scores, outputs

    def crops(self, outputs: dict[str, list[np.ndarray]]) -> dict[tuple[str, str], np.ndarray]:
        """The crops image's pieces: the same middle crop of the ground truth and of each method's outputs."""
        crops = {}
        for index, (name, hr) in enumerate(zip(self.names, self.truths, strict=True)):
            box = crop_box(hr.shape)
            crops[(name, "HR")] = hr[box]
            for method, images in outputs.items():
                crops[(name, method)] = images[index][box]
        return crops


@dataclass
class History:
    """The curves: one point per held-out scoring (step 0 is the base model), and the training loss."""

    points: list[dict[str, float | None]] = field(default_factory=list)
    base: dict[str, float | None] = field(default_factory=dict)

    def add(self, step: int, loss: float | None, scores: list[Score]) -> dict[str, float | None]:
        """Record the means of ``scores`` at ``step``; returns the point."""
        point = {"step": float(step), "loss": loss, **mean_scores(scores)}
        self.points.append(point)
        return point


def mean_scores(scores: list[Score]) -> dict[str, float | None]:
    """Mean PSNR, SSIM and NIQE (None where no image had one)."""
    niqes = [s.niqe for s in scores if s.niqe is not None]
    return {
        "psnr": float(np.mean([s.psnr for s in scores])),
        "ssim": float(np.mean([s.ssim for s in scores])),
        "niqe": float(np.mean(niqes)) if niqes else None,
    }


class Trainer:
    """Fine-tunes ``base`` on ``data``, keeping its state in ``folder`` (``checkpoint.pt``).

    Args:
        base: the network to start from (it is trained in place).
        data: the images to train on and the held-out ones.
        config: the run.
        device: where to train.
        folder: the run's own folder (checkpoint, report).
        progress: show a progress bar on standard error.
    """

    def __init__(
        self,
        base: BaseModel,
        data: TrainingData,
        config: Config,
        device: torch.device,
        folder: Path,
        progress: bool = True,
    ) -> None:
        import torch

        config.check(base.scale)
        self.base, self.data, self.config, self.device, self.folder = base, data, config, device, folder
        self.progress = progress
        self.recipe = RECIPES[config.recipe]
        self.scale = base.scale
        self.generator = base.network.to(device).train()
        self.original = copy.deepcopy(self.generator).eval().requires_grad_(False)
        """The base model as it was, to score beside the tuned one."""
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.degrader = Degrader(PRESETS[config.preset].scaled(config.strength), base.scale)
        losses = import_basicsr("basicsr.losses.basic_loss")
        self.l1 = losses.L1Loss(loss_weight=self.recipe.l1).to(device)
        self.perceptual = self._perceptual_loss() if self.recipe.perceptual else None
        self.discriminator = None
        self.gan = None
        if self.recipe.gan:
            discriminator = import_basicsr("basicsr.archs.discriminator_arch").UNetDiscriminatorSN
            self.discriminator = discriminator(num_in_ch=3, num_feat=64, skip_connection=True).to(device).train()
            gan_loss = import_basicsr("basicsr.losses.gan_loss").GANLoss
            self.gan = gan_loss("vanilla", real_label_val=1.0, fake_label_val=0.0, loss_weight=self.recipe.gan)
            self.gan = self.gan.to(device)
        self.sharpen = import_basicsr("basicsr.utils").USMSharp().to(device) if self.recipe.sharpened_target else None
        self.optimizers = {"generator": _adam(self.generator, config.lr)}
        if self.discriminator is not None:
            self.optimizers["discriminator"] = _adam(self.discriminator, config.lr)
        milestone = max(1, int(config.steps * 0.8))  # halve the rate for the last fifth of the run
        self.schedulers = {
            name: torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[milestone], gamma=0.5)
            for name, optimizer in self.optimizers.items()
        }
        self.amp_dtype = _amp_dtype(device)
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.amp_dtype is not None and self.amp_dtype == torch.float16 else None
        )
        self.step = 0
        self.history = History()
        self.held_out = HeldOut.make(data, self.degrader, config.seed)

    @property
    def checkpoint_path(self) -> Path:
        """Where the checkpoint is kept."""
        return self.folder / CHECKPOINT

    def _perceptual_loss(self) -> nn.Module | None:
        found = vgg19_weights()
        if found is None:
            import torch

            log.warning(
                "The perceptual loss needs VGG19's ImageNet weights (%s), which are not on this machine (looked in "
                "%s and %s); training without it. Put the file there to use it.",
                _VGG19_FILE,
                import_basicsr("basicsr.archs.vgg_arch").VGG_PRETRAIN_PATH,
                Path(torch.hub.get_dir()) / "checkpoints",
            )
            return None
        log.info("Perceptual loss: VGG19 weights from %s", found)
        perceptual = import_basicsr("basicsr.losses.basic_loss").PerceptualLoss
        layers = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}
        return perceptual(
            layers, vgg_type="vgg19", use_input_norm=True, perceptual_weight=self.recipe.perceptual, style_weight=0
        ).to(self.device)

    def resume(self) -> None:
        """Continue from the checkpoint in the run's folder.

        Raises:
            InvalidOptionError: there is none, or it is of a different run (settings, data or base model).
        """
        import torch

        if not self.checkpoint_path.is_file():
            raise InvalidOptionError(f"There is no checkpoint to resume at {self.checkpoint_path}")
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        expected = {"config": self.config.identity(), "data": self.data.fingerprint, "base": self.base.sha256}
        differs = [key for key, value in expected.items() if state["run"][key] != value]
        if differs:
            raise InvalidOptionError(
                f"The checkpoint at {self.checkpoint_path} is of a different run (its {', '.join(differs)} "
                "differ); run it with the same settings, data and base model, or remove the folder to start afresh"
            )
        self.generator.load_state_dict(state["generator"])
        self.ema.load_state_dict(state["ema"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
            self.schedulers[name].load_state_dict(state["schedulers"][name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.history = History(list(state["history"]["points"]), dict(state["history"]["base"]))
        log.info("Resumed at step %d of %d from %s", self.step, self.config.steps, self.checkpoint_path)

    def save(self) -> Path:
        """Write the checkpoint (atomically); returns its path."""
        import torch

        state = {
            "run": {"config": self.config.identity(), "data": self.data.fingerprint, "base": self.base.sha256},
            "step": self.step,
            "generator": self.generator.state_dict(),
            "ema": self.ema.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": {"points": self.history.points, "base": self.history.base},
        }
        with atomic_file(self.checkpoint_path) as partial:
            torch.save(state, partial)
        log.info("Checkpoint at step %d written to %s", self.step, self.checkpoint_path)
        return self.checkpoint_path

    def train(self, stop: threading.Event | None = None, on_point: Callable[[dict], None] | None = None) -> History:
        """Train up to ``config.steps``, scoring the held-out images as configured; returns the curves.

        Raises:
            StoppedError: ``stop`` was set; the checkpoint was written first.
        """
        from tqdm import tqdm

        config = self.config
        if not self.history.points:
            scores, _ = self.held_out.run(self.original, self.device, "base")
            self.history.base = self.history.add(0, None, scores)
            log.info("Held-out before training: %s", _describe(self.history.base))
        bar = tqdm(total=config.steps, initial=self.step, unit="step", disable=not self.progress, file=sys.stderr)
        losses: list[float] = []
        started, first = time.perf_counter(), self.step
        try:
            while self.step < config.steps:
                losses.append(self._train_step())
                self.step += 1
                bar.update()
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                if self.step % config.every == 0 or self.step == config.steps:
                    scores, _ = self.held_out.run(self.ema, self.device, "tuned")
                    point = self.history.add(self.step, float(np.mean(losses)), scores)
                    losses = []
                    left = (time.perf_counter() - started) / (self.step - first) * (config.steps - self.step)
                    log.info(
                        "Step %d of %d: loss %.4f, held-out %s (base %.2f dB); %s left",
                        self.step, config.steps, point["loss"], _describe(point), self.history.base["psnr"],
                        _duration(left),
                    )  # fmt: skip
                    if on_point is not None:
                        on_point(point)
                if self.step % config.checkpoint_every == 0 or self.step == config.steps:
                    self.save()
                if stop is not None and stop.is_set():
                    self.save()
                    raise StoppedError(
                        f"Stopped at step {self.step} of {config.steps}; the checkpoint is in {self.checkpoint_path}. "
                        "Run the same command with --resume to continue"
                    )
        finally:
            bar.close()
        return self.history

    def _train_step(self) -> float:
        """One optimiser step (``accumulate`` batches); returns the generator's mean loss."""
        seed_everything(step_seed(self.config.seed, self.step))
        generator_optimizer = self.optimizers["generator"]
        generator_optimizer.zero_grad(set_to_none=True)
        outputs, total = [], 0.0
        if self.discriminator is not None:
            self.discriminator.requires_grad_(False)
        for part in range(self.config.accumulate):
            lq, gt = self._batch(part)
            with self._autocast():
                sr = self.generator(lq)
                loss = self._generator_loss(sr, gt)
            self._backward(loss / self.config.accumulate)
            total += float(loss.detach()) / self.config.accumulate
            if self.discriminator is not None:
                outputs.append((sr.detach(), gt))
        self._optimizer_step(generator_optimizer)
        if self.discriminator is not None:
            self._discriminator_step(outputs)
        self._update_ema()
        for scheduler in self.schedulers.values():
            scheduler.step()
        if self.scaler is not None:
            self.scaler.update()
        if not math.isfinite(total):
            log.warning("Step %d: the loss is %s; try a lower --lr", self.step + 1, total)
        return total

    def _generator_loss(self, sr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        target = self.sharpen(gt) if self.sharpen is not None else gt
        loss = self.l1(sr, target)
        if self.perceptual is not None:
            loss = loss + self.perceptual(sr, target)[0]
        if self.discriminator is not None:
            loss = loss + self.gan(self.discriminator(sr), True, is_disc=False)  # the official: plain gt for GAN
        return loss

    def _discriminator_step(self, outputs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        optimizer = self.optimizers["discriminator"]
        self.discriminator.requires_grad_(True)
        optimizer.zero_grad(set_to_none=True)
        for sr, gt in outputs:
            with self._autocast():
                real = self.gan(self.discriminator(gt), True, is_disc=True)
            self._backward(real / len(outputs))
            with self._autocast():
                fake = self.gan(self.discriminator(sr), False, is_disc=True)
            self._backward(fake / len(outputs))
        self._optimizer_step(optimizer)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def _autocast(self) -> contextlib.AbstractContextManager:
        import torch

        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _update_ema(self) -> None:
        import torch

        # Warmed up as in timm and TensorFlow: a short fine-tune's EMA is not stuck near the base model.
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for kept, current in zip(self.ema.parameters(), self.generator.parameters(), strict=True):
                kept.mul_(decay).add_(current.detach(), alpha=1 - decay)
            for kept, current in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
                kept.copy_(current)

    def _batch(self, part: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and ground truths: random crops (and horizontal flips) of random training images, drawn from
        the step's own random state, degraded on the fly in the HR layout."""
        import torch

        rng = np.random.default_rng([self.config.seed, self.step, part])
        crop, scale = self.config.crop_size, self.scale
        gts, lqs = [], []
        for _ in range(self.config.batch_size):
            gt, lq = self.data.train[int(rng.integers(len(self.data.train)))].load(scale)
            top = int(rng.integers((gt.shape[0] - crop) // scale + 1)) * scale
            left = int(rng.integers((gt.shape[1] - crop) // scale + 1)) * scale
            gt = gt[top : top + crop, left : left + crop]
            if lq is not None:
                lq = lq[top // scale : (top + crop) // scale, left // scale : (left + crop) // scale]
            if rng.random() < 0.5:
                gt, lq = gt[:, ::-1], (lq[:, ::-1] if lq is not None else None)
            gts.append(_to_tensor(gt))
            if lq is not None:
                lqs.append(_to_tensor(lq))
        gt_batch = torch.stack(gts).to(self.device)
        lq_batch = torch.stack(lqs).to(self.device) if lqs else self.degrader(gt_batch)
        return lq_batch.contiguous(), gt_batch


def _adam(network: nn.Module, lr: float) -> torch.optim.Optimizer:
    import torch

    return torch.optim.Adam(network.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255


def _to_uint8(tensor: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint(tensor.detach().cpu().numpy().transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)


def _middle(shape: tuple[int, ...], side: int, scale: int) -> tuple[slice, slice]:
    height, width = (min(side, shape[0]) // scale) * scale, (min(side, shape[1]) // scale) * scale
    top, left = ((shape[0] - height) // 2 // scale) * scale, ((shape[1] - width) // 2 // scale) * scale
    return slice(top, top + height), slice(left, left + width)


def _describe(point: dict[str, float | None]) -> str:
    niqe = f", NIQE {point['niqe']:.3f}" if point.get("niqe") is not None else ""
    return f"PSNR {point['psnr']:.2f} dB, SSIM {point['ssim']:.4f}{niqe}"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
