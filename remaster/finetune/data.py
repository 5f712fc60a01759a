"""Training data: a folder of high-resolution images, or ``lq/`` and ``gt/`` pairs, and the part held out.

Two layouts are read:

* **high-resolution images** in ``DATA/`` itself: their low-resolution inputs are made on the fly
  by a degradation preset (see :mod:`remaster.finetune.degradation`);
* **pairs**: ``DATA/lq/`` and ``DATA/gt/`` holding files of the same names (any image suffix), the
  ground truth ``scale`` times the low-resolution image's size.

The held-out images are ``DATA/val/`` when it exists (in the same layout), otherwise a share of the
images chosen by the seed. They are never trained on. Every image is read once before training
starts, so unreadable files, images too small for a crop, pairs without a partner and empty
folders are all reported, counted, before any time is spent.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import image_io
from ..errors import InvalidDataError, RemasterError
from ..evaluate import load_hr

__all__ = ["HELD_OUT_SIDE", "Pair", "TrainingData", "find_data"]

log = logging.getLogger(__name__)

HELD_OUT_SIDE = 512
"""Held-out images are scored on their middle part, at most this many HR pixels each way, to keep scoring quick."""


@dataclass(frozen=True)
class Pair:
    """One image: its ground truth, and its low-resolution partner in the paired layout (None: made on the fly)."""

    name: str
    gt: Path
    lq: Path | None = None

    def load(self, scale: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The ground truth (RGB uint8, sides multiples of ``scale``) and the partner (None in the HR layout).

        Raises:
            RemasterError: a file is not a readable image.
        """
        gt = load_hr(self.gt, scale)
        if self.lq is None:
            return gt, None
        lq = load_hr(self.lq, 1)
        return gt[: lq.shape[0] * scale, : lq.shape[1] * scale], lq


@dataclass
class TrainingData:
    """The images to train on and those held out, with what was left out and why."""

    layout: str
    """``hr`` (low-resolution inputs made on the fly) or ``paired``."""
    train: list[Pair]
    held_out: list[Pair]
    problems: list[str] = field(default_factory=list)
    """One line per file left out, saying why."""
    fingerprint: str = ""
    """SHA-256 of every used file's name, size and contents: the same data gives the same fingerprint."""

    def summary(self) -> str:
        """One line: how many images, in which layout, and how many were left out."""
        left = f"; {len(self.problems)} left out" if self.problems else ""
        layout = "pairs" if self.layout == "paired" else "high-resolution images"
        return f"{len(self.train)} {layout} to train on, {len(self.held_out)} held out{left}"


def find_data(folder: Path, scale: int, crop_size: int, val: float | Path = 0.2, seed: int = 0) -> TrainingData:
    """Read the training data in ``folder`` and decide which part is held out.

    Args:
        folder: ``DATA``: high-resolution images, or ``lq/`` and ``gt/`` folders.
        scale: the model's scale; a pair's ground truth must be this many times its input's size.
        crop_size: the side of the ground-truth crops trained on; smaller training images are left out.
        val: the share of images held out (chosen by ``seed``), or a folder of held-out images in the
            same layout. ``DATA/val/`` is used when it exists and ``val`` is a share.
        seed: chooses the held-out share.

    Raises:
        InvalidDataError: no such folder, no images, none large enough, or nothing left to hold out.
    """
    if not folder.is_dir():
        raise InvalidDataError(f"{folder} is not a folder; give a folder of images, or one with lq/ and gt/ inside")
    layout = "paired" if (folder / "lq").is_dir() or (folder / "gt").is_dir() else "hr"
    problems: list[str] = []
    pairs = _pairs(folder, layout, problems)
    held_folder = val if isinstance(val, Path) else (folder / "val" if (folder / "val").is_dir() else None)
    if held_folder is not None:
        held = _pairs(held_folder, layout, problems, where="held-out ")
        train = pairs
    else:
        if not 0 < val < 1:
            raise InvalidDataError(f"The held-out share must be between 0 and 1, not {val}")
        order = np.random.default_rng(seed).permutation(len(pairs))
        count = max(1, round(len(pairs) * val)) if len(pairs) > 1 else 0
        held = [pairs[i] for i in sorted(order[:count])]
        train = [pairs[i] for i in sorted(order[count:])]
    reasons: Counter[str] = Counter()
    train = _usable(train, scale, crop_size, problems, reasons)
    held = _usable(held, scale, 0, problems, reasons, where="held-out ")
    if not train:
        raise InvalidDataError(_nothing_usable(folder, layout, crop_size, problems))
    if not held:
        raise InvalidDataError(
            f"Nothing is left to hold out: {folder} has {len(train)} usable image(s). Add images, or a val/ folder of "
            "held-out images, so the tuned model can be measured on images it was not trained on"
        )
    if problems:
        counts = ", ".join(f"{count} {reason}" for reason, count in reasons.items())
        log.warning("%d file(s) left out (%s):\n  %s", len(problems), counts, "\n  ".join(problems))
    data = TrainingData(layout, train, held, problems, _fingerprint([*train, *held]))
    log.info("Training data: %s", data.summary())
    return data


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in image_io.IMAGE_SUFFIXES)


def _pairs(folder: Path, layout: str, problems: list[str], where: str = "") -> list[Pair]:
    if not folder.is_dir():
        raise InvalidDataError(f"The {where}folder {folder} does not exist")
    if layout == "hr":
        return [Pair(path.name, path) for path in _images(folder)]
    for part in ("lq", "gt"):
        if not (folder / part).is_dir():
            raise InvalidDataError(f"{folder} has no {part}/ folder; the paired layout needs both lq/ and gt/")
    lq = {path.stem: path for path in _images(folder / "lq")}
    gt = {path.stem: path for path in _images(folder / "gt")}
    for stem in sorted(lq.keys() - gt.keys()):
        problems.append(f"{where}{lq[stem].relative_to(folder)}: no partner in gt/ (missing partner)")
    for stem in sorted(gt.keys() - lq.keys()):
        problems.append(f"{where}{gt[stem].relative_to(folder)}: no partner in lq/ (missing partner)")
    return [Pair(gt[stem].name, gt[stem], lq[stem]) for stem in sorted(lq.keys() & gt.keys())]


def _usable(
    pairs: list[Pair], scale: int, crop_size: int, problems: list[str], reasons: Counter[str], where: str = ""
) -> list[Pair]:
    """The pairs whose images can be read and are large enough; each other one is a line in ``problems``."""
    usable = []
    for pair in pairs:
        try:
            gt, lq = pair.load(scale)
        except RemasterError as error:
            problems.append(f"{where}{pair.name}: unreadable ({error})")
            reasons["unreadable"] += 1
            continue
        if lq is not None and (gt.shape[0] != lq.shape[0] * scale or gt.shape[1] != lq.shape[1] * scale):
            problems.append(
                f"{where}{pair.name}: the ground truth is {gt.shape[1]}×{gt.shape[0]}, not ×{scale} its input's "
                f"{lq.shape[1]}×{lq.shape[0]}"
            )
            reasons["of mismatched sizes"] += 1
            continue
        side = max(crop_size, 2 * scale)
        if min(gt.shape[:2]) < side:
            problems.append(
                f"{where}{pair.name}: too small ({gt.shape[1]}×{gt.shape[0]}; crops are {side}×{side} pixels)"
            )
            reasons["too small"] += 1
            continue
        usable.append(pair)
    missing = sum("missing partner" in problem for problem in problems)
    if missing:
        reasons["without a partner"] = missing
    return usable


def _nothing_usable(folder: Path, layout: str, crop_size: int, problems: list[str]) -> str:
    if not problems:
        where = f"{folder}/lq and {folder}/gt hold" if layout == "paired" else f"{folder} holds"
        return f"{where} no images to train on (PNG, JPEG, WebP, TIFF, BMP)"
    listed = "\n  ".join(problems[:20]) + ("\n  …" if len(problems) > 20 else "")
    return (
        f"None of the images in {folder} can be trained on ({len(problems)} left out; crops are {crop_size} "
        f"pixels, so use larger images or a smaller --crop-size):\n  {listed}"
    )


def _fingerprint(pairs: list[Pair]) -> str:
    digest = hashlib.sha256()
    for path in sorted({p for pair in pairs for p in (pair.gt, pair.lq) if p is not None}):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
