"""The proof that fine-tuning helped: ``report.md``, ``curves.png``, ``crops.png`` and ``scores.csv``.

The Markdown says what was trained on what, gives the held-out PSNR, SSIM and NIQE of the base
and the tuned model per image (the tables of :mod:`remaster.evaluate`), the curve points, and
closes with one line: by how many dB the tuned model beats, or does not beat, the base.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate import Score, cell, metric_tables, write_crops, write_csv

__all__ = ["REPORT_FILES", "verdict", "write_report"]

REPORT_FILES = ("report.md", "curves.png", "crops.png", "scores.csv")
"""The report's files, in its folder."""


def verdict(base: Mapping[str, float | None], tuned: Mapping[str, float | None], images: int) -> str:
    """The closing line: the held-out PSNR gain in dB (and SSIM) of ``tuned`` over ``base``."""
    gain = float(tuned["psnr"]) - float(base["psnr"])
    how = f"beats the base by {gain:.2f} dB" if gain > 0 else f"does not beat the base ({gain:+.2f} dB)"
    return (
        f"On {images} held-out image(s) the tuned model {how} PSNR ({base['psnr']:.2f} → {tuned['psnr']:.2f} dB; "
        f"SSIM {base['ssim']:.4f} → {tuned['ssim']:.4f})."
    )


def write_report(
    folder: Path,
    card: Mapping[str, Any],
    points: Sequence[Mapping[str, float | None]],
    scores: Sequence[Score],
    crops: dict[tuple[str, str], np.ndarray],
    image_names: list[str],
) -> str:
    """Write the report into ``folder``; returns the closing line.

    Args:
        folder: where the files go (made if needed).
        card: the result's card (base, data, steps, preset, recipe, metrics).
        points: the curve: step, training loss, mean held-out PSNR/SSIM/NIQE of the tuned model (step 0: the base).
        scores: each held-out image's scores as methods ``base`` and ``tuned``.
        crops: the crops image's pieces (see :meth:`remaster.finetune.trainer.HeldOut.crops`): a row per held-out
            image of the ground truth (HR), the base's result and the tuned model's, in that order.
        image_names: the held-out images, in order.
    """
    closing = verdict(card["metrics"]["base"], card["metrics"]["tuned"], len(image_names))
    lines = [
        f"# Fine-tuning {card['base']['name']} into {card['name']}",
        "",
        f"{card['steps']} steps, recipe **{card['recipe']}**, degradation **{card['preset']}** (strength "
        f"{card['strength']:g}), batch {card['batch_size']}, crops of {card['crop_size']} pixels, learning rate "
        f"{card['lr']:g}, seed {card['seed']}. Data: {card['data']['summary']} (fingerprint "
        f"`{card['data']['fingerprint'][:16]}`).",
        "",
        "Held-out images are never trained on, and are degraded once, the same way as the training inputs. PSNR and "
        f"SSIM on the Y channel with {card['scale']} border pixels cropped (higher is better); NIQE without a "
        "reference (lower is better; n/a on images under about 200×200).",
        "",
        "![curves](curves.png)",
        "",
        "![HR (the ground truth) | base | tuned](crops.png)",
    ]
    lines += metric_tables(scores, image_names, ["base", "tuned"])
    lines += ["", "## Curve", "", "| step | training loss | PSNR | SSIM | NIQE |", "| --- | --- | --- | --- | --- |"]
    for point in points:
        cells = [cell(point.get(key), digits) for key, digits in (("loss", 4), ("psnr", 2), ("ssim", 4), ("niqe", 3))]
        lines.append(f"| {int(point['step'])} | " + " | ".join(cells) + " |")
    lines += ["", closing]
    folder.mkdir(parents=True, exist_ok=True)
    # Written beside the report, then moved in: a run stopped meanwhile leaves no file half-written.
    with tempfile.TemporaryDirectory(prefix=".report-", dir=folder) as scratch:
        written = Path(scratch)
        write_csv(list(scores), written / "scores.csv")
        write_crops(crops, image_names, ["base", "tuned"], written / "crops.png")
        _write_curves(points, written / "curves.png")
        (written / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for name in REPORT_FILES:
            os.replace(written / name, folder / name)
    return closing


def _write_curves(points: Sequence[Mapping[str, float | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [point["step"] for point in points]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for axis, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        axis.plot(steps, [point[key] for point in points], marker="o", label="tuned")
        axis.axhline(points[0][key], color="gray", linestyle="--", label="base")
        axis.set_xlabel("step")
        axis.set_ylabel(f"held-out {label}")
        axis.legend(fontsize=8)
    trained = [point for point in points if point.get("loss") is not None]
    axes[2].plot([point["step"] for point in trained], [point["loss"] for point in trained], marker="o")
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("training loss")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
