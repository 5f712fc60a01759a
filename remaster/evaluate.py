"""Measure what each model does on your own images: ``python -m remaster.evaluate HR_FOLDER``.

Each high-resolution (HR) image is shrunk by ``--scale`` with MATLAB-style bicubic
(basicsr's ``imresize``), degraded as chosen (deterministically under ``--seed``), then
restored by each model at ``outscale = scale`` and by plain bicubic as the baseline. PSNR
and SSIM are computed the standard super-resolution way (the Y channel, ``scale`` pixels of
border cropped) with basicsr's own metrics, and NIQE where basicsr's can run (it needs two
96-pixel blocks each way after the crop, about 200×200; smaller images report n/a).

The report folder gets ``results.md`` (a table per metric: each image and the mean),
``results.csv`` (one row per image and method) and ``crops.png`` (the same crop of the HR
image, bicubic and each model, side by side).

Exit codes: 0 done; 1 done, but some images or models could not be evaluated (named on
stderr); 2 bad usage, an empty folder, or nothing readable.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from tqdm import tqdm

from . import image_io, logs, pixels
from ._compat import import_basicsr
from .errors import RemasterError
from .options import Options
from .registry import model_names
from .settings import Settings

if TYPE_CHECKING:
    from .pipeline import Enhancer

__all__ = [
    "BICUBIC",
    "DEGRADATIONS",
    "Score",
    "bicubic",
    "cell",
    "crop_box",
    "degrade",
    "evaluate",
    "load_hr",
    "main",
    "metric_tables",
    "score",
    "write_crops",
    "write_csv",
]

BICUBIC = "bicubic"
DEGRADATIONS = {"bicubic": None, "jpeg": 30.0, "noise": 10.0, "blur": 1.5}
"""Each degradation and its default strength: JPEG quality, noise sigma (of 255), blur sigma (HR pixels)."""
_CROP = 96


@dataclass(frozen=True)
class Score:
    """One method's result on one image."""

    image: str
    method: str
    psnr: float
    ssim: float
    niqe: float | None
    seconds: float


def load_hr(path: Path, scale: int) -> np.ndarray:
    """An HR image as RGB uint8, cropped so both sides are multiples of ``scale``.

    Raises:
        RemasterError: not a readable image.
    """
    picture = image_io.decode(path, max_pixels=1 << 62)
    hr = pixels.to_eight_bit(picture.pixels[:, :, : picture.color_channels])
    if hr.shape[2] == 1:
        hr = np.repeat(hr, 3, axis=2)
    height, width = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    if not height or not width:
        raise RemasterError(f"{path.name} is smaller than the scale ({scale})")
    return np.ascontiguousarray(hr[:height, :width])


def degrade(hr: np.ndarray, scale: int, kind: str, strength: float | None, seed: int) -> np.ndarray:
    """The low-resolution input made from ``hr`` (RGB uint8): blur, bicubic shrink, noise or JPEG."""
    import cv2

    imresize = import_basicsr("basicsr.utils.matlab_functions").imresize
    strength = DEGRADATIONS[kind] if strength is None else strength
    image = hr.astype(np.float64) / 255
    if kind == "blur":
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=strength, borderType=cv2.BORDER_REFLECT)
    lr = imresize(image, 1 / scale)
    if kind == "noise":
        lr = lr + np.random.default_rng(seed).normal(0, strength / 255, lr.shape)
    lr = np.clip(np.rint(lr * 255), 0, 255).astype(np.uint8)
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(lr).save(buffer, format="JPEG", quality=int(strength))
        lr = np.asarray(Image.open(buffer).convert("RGB"))
    return lr


def bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """Plain MATLAB-style bicubic enlargement, the baseline every model should beat."""
    imresize = import_basicsr("basicsr.utils.matlab_functions").imresize

    return np.clip(np.rint(imresize(lr.astype(np.float64) / 255, scale) * 255), 0, 255).astype(np.uint8)


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float, float | None]:
    """PSNR, SSIM (Y channel, ``scale`` border pixels cropped) and NIQE (None where it cannot run)."""
    calculate_niqe = import_basicsr("basicsr.metrics.niqe").calculate_niqe
    metrics = import_basicsr("basicsr.metrics.psnr_ssim")
    calculate_psnr, calculate_ssim = metrics.calculate_psnr, metrics.calculate_ssim

    sr_bgr, hr_bgr = sr[:, :, ::-1].astype(np.float64), hr[:, :, ::-1].astype(np.float64)
    psnr = float(calculate_psnr(sr_bgr, hr_bgr, crop_border=scale, test_y_channel=True))
    ssim = float(calculate_ssim(sr_bgr, hr_bgr, crop_border=scale, test_y_channel=True))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # its statistics on too few blocks
            niqe = float(calculate_niqe(sr_bgr, crop_border=scale, convert_to="y"))
    except Exception:  # noqa: BLE001 - basicsr's NIQE fails on small images; report n/a
        niqe = None
    return psnr, ssim, (niqe if niqe is not None and math.isfinite(niqe) else None)


def evaluate(
    hr_paths: Sequence[Path],
    models: Sequence[str],
    scale: int,
    degradation: str,
    strength: float | None,
    seed: int,
    out: Path,
    enhancer: Enhancer,
    progress: bool = True,
) -> tuple[list[Score], list[str]]:
    """Evaluate ``models`` (and bicubic) on ``hr_paths``; write the report into ``out``.

    Returns the scores and the problems met (unreadable images, unavailable models).
    """
    problems: list[str] = []
    skipped: dict[str, str] = {}
    images: dict[str, np.ndarray] = {}
    for path in hr_paths:
        try:
            images[path.name] = load_hr(path, scale)
        except RemasterError as error:
            problems.append(f"{path.name}: {error}")
            skipped[path.name] = str(error)
    methods = [BICUBIC, *models]
    scores: list[Score] = []
    crops: dict[tuple[str, str], np.ndarray] = {}
    unavailable: set[str] = set()
    steps = tqdm(total=len(images) * len(methods), unit="run", disable=not progress, file=sys.stderr)
    for image_index, (name, hr) in enumerate(images.items()):
        lr = degrade(hr, scale, degradation, strength, seed + image_index)
        box = crop_box(hr.shape)
        crops[(name, "HR")] = hr[box]
        for method in methods:
            steps.set_postfix_str(f"{name}: {method}")
            if method in unavailable:
                steps.update()
                continue
            started = time.perf_counter()
            try:
                sr = (
                    bicubic(lr, scale)
                    if method == BICUBIC
                    else enhancer.run(lr, Options(model=method, outscale=scale))[0]
                )
            except RemasterError as error:
                unavailable.add(method)
                problems.append(f"{method}: {error}")
                skipped[method] = str(error)
                steps.update()
                continue
            seconds = time.perf_counter() - started
            psnr, ssim, niqe = score(sr, hr, scale)
            scores.append(Score(name, method, psnr, ssim, niqe, seconds))
            crops[(name, method)] = sr[box]
            steps.update()
    steps.close()
    out.mkdir(parents=True, exist_ok=True)
    ran = [method for method in methods if method not in unavailable]
    write_csv(scores, out / "results.csv")
    _write_markdown(scores, list(images), ran, scale, degradation, strength, out / "results.md", skipped)
    if images:
        write_crops(crops, list(images), ran, out / "crops.png")
    return scores, problems


def crop_box(shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The middle 96×96 (or less, on a smaller image) of an image of ``shape``: the region the crops image shows."""
    height, width = shape[:2]
    side_h, side_w = min(_CROP, height), min(_CROP, width)
    top, left = (height - side_h) // 2, (width - side_w) // 2
    return slice(top, top + side_h), slice(left, left + side_w)


def write_csv(scores: list[Score], path: Path) -> None:
    """One row per image and method: PSNR, SSIM, NIQE (empty where n/a) and seconds."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "method", "psnr", "ssim", "niqe", "seconds"])
        for s in scores:
            niqe = "" if s.niqe is None else f"{s.niqe:.4f}"
            writer.writerow([s.image, s.method, f"{s.psnr:.4f}", f"{s.ssim:.4f}", niqe, f"{s.seconds:.3f}"])


def _write_markdown(
    scores: list[Score],
    image_names: list[str],
    methods: list[str],
    scale: int,
    degradation: str,
    strength: float | None,
    path: Path,
    skipped: dict[str, str],
) -> None:
    strength = DEGRADATIONS[degradation] if strength is None else strength
    how = f"{degradation}" + (f" (strength {strength:g})" if strength is not None else "")
    lines = [
        "# remaster evaluation",
        "",
        f"×{scale}, degradation: {how}. PSNR and SSIM on the Y channel with {scale} border pixels cropped "
        "(higher is better); NIQE without a reference (lower is better; n/a on images under about 200×200).",
    ]
    lines += metric_tables(scores, image_names, methods)
    if skipped:
        lines += ["", "## Not evaluated", ""] + [f"- **{name}**: {reason}" for name, reason in skipped.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def metric_tables(scores: Sequence[Score], image_names: Sequence[str], methods: Sequence[str]) -> list[str]:
    """Markdown lines: a table per metric (PSNR, SSIM, NIQE), a row per image and one of means, a column per method."""
    lines: list[str] = []
    by_key = {(s.image, s.method): s for s in scores}
    for metric, digits in (("psnr", 2), ("ssim", 4), ("niqe", 3)):
        lines += ["", f"## {metric.upper()}", "", "| image | " + " | ".join(methods) + " |"]
        lines.append("| --- |" + " --- |" * len(methods))
        for name in image_names:
            cells = [cell(getattr(by_key.get((name, m)), metric, None), digits) for m in methods]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        means = []
        for method in methods:
            values = [getattr(s, metric) for s in scores if s.method == method and getattr(s, metric) is not None]
            means.append(cell(float(np.mean(values)) if values else None, digits))
        lines.append("| **mean** | " + " | ".join(means) + " |")
    return lines


def cell(value: float | None, digits: int) -> str:
    """A table cell: ``value`` to ``digits`` decimals, or n/a."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_crops(
    crops: dict[tuple[str, str], np.ndarray], image_names: list[str], methods: list[str], path: Path
) -> None:
    """A PNG of crops side by side: a row per image, the HR crop (key ``(image, "HR")``) then each method's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["HR", *methods]
    figure, axes = plt.subplots(
        len(image_names), len(columns), figsize=(2.2 * len(columns), 2.4 * len(image_names)), squeeze=False
    )
    for row, name in enumerate(image_names):
        for column, method in enumerate(columns):
            axis = axes[row][column]
            axis.axis("off")
            if (name, method) in crops:
                axis.imshow(crops[(name, method)], interpolation="nearest")
            if row == 0:
                axis.set_title(method, fontsize=8)
        axes[row][0].text(
            -0.05, 0.5, name, transform=axes[row][0].transAxes, rotation=90, ha="right", va="center", fontsize=8
        )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m remaster.evaluate",
        description="PSNR, SSIM and NIQE of each model against bicubic, on your own high-resolution images.",
    )
    parser.add_argument("hr_folder", type=Path, help="a folder of high-resolution images")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="MODEL",
        help=f"models to evaluate: of {', '.join(model_names('upscaler'))}, stems of REMASTER_MODELS_DIR's files, "
        "or model files (paths, hf:// references, URLs) (default: all)",
    )
    parser.add_argument("--scale", type=int, default=4, choices=(2, 3, 4), help="down- and up-scaling factor")
    parser.add_argument("--degradation", choices=list(DEGRADATIONS), default="bicubic")
    parser.add_argument(
        "--strength",
        type=float,
        default=None,
        help="JPEG quality (default 30), noise sigma of 255 (default 10) or blur sigma (default 1.5)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the noise (default 0)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="report folder (default: report)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of .pth files (REMASTER_WEIGHTS_DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logs.configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")

    if not args.hr_folder.is_dir():
        print(f"error: {args.hr_folder} is not a folder", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.hr_folder.iterdir() if p.is_file() and p.suffix.lower() in image_io.IMAGE_SUFFIXES)
    if not paths:
        print(f"error: {args.hr_folder} holds no images (PNG, JPEG, WebP, TIFF, BMP)", file=sys.stderr)
        return 2
    from .pipeline import Enhancer

    overrides = {"weights_dir": args.weights_dir} if args.weights_dir else {}
    enhancer = Enhancer(Settings.from_env(**overrides))
    try:
        models = _models(args.models, enhancer.settings)
    except RemasterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scores, problems = evaluate(
        paths, models, args.scale, args.degradation, args.strength, args.seed, args.out, enhancer, not args.quiet
    )
    for problem in problems:
        print(f"not evaluated: {problem}", file=sys.stderr)
    if not scores:
        print("error: nothing could be evaluated", file=sys.stderr)
        return 2
    print(f"report written to {args.out}/ (results.md, results.csv, crops.png)", file=sys.stderr)
    return 1 if problems else 0


def _models(asked: list[str] | None, settings: Settings) -> list[str]:
    """The models to evaluate: every registered one (with REMASTER_MODELS_DIR's) by default; a model file
    among ``asked`` is loaded and registered.

    Raises:
        RemasterError: a name no model has, or a model file that cannot be used.
    """
    from .model_files import ModelFiles

    files = ModelFiles(settings)
    files.load_folder()
    if asked is None:
        return list(model_names("upscaler"))
    return [files.resolve(name).name for name in asked]


if __name__ == "__main__":
    raise SystemExit(main())
