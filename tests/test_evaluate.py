"""python -m remaster.evaluate: metrics checked against an independent computation, report files parsed."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

import remaster
from remaster import evaluate
from remaster.engine import build_network

from .fixtures import run_module

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "examples" / "eval"


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma as MATLAB's rgb2ycbcr gives it, for 0–255 input."""
    r, g, b = (rgb[:, :, i].astype(np.float64) for i in range(3))
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def test_bicubic_scores_match_an_independent_computation():
    hr = evaluate.load_hr(EVAL_SET / "coffee.png", 4)
    sr = evaluate.bicubic(evaluate.degrade(hr, 4, "bicubic", None, 0), 4)
    psnr, ssim, niqe = evaluate.score(sr, hr, 4)
    a, b = y_channel(sr)[4:-4, 4:-4], y_channel(hr)[4:-4, 4:-4]
    expected_psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    expected_ssim = structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert psnr == pytest.approx(expected_psnr, abs=1e-6)
    assert ssim == pytest.approx(expected_ssim, abs=5e-3)
    assert niqe is not None and 0 < niqe < 30
    assert evaluate.score(sr[:64, :64], hr[:64, :64], 4)[2] is None, "NIQE cannot run on a small image"


def test_degradations_are_deterministic_under_the_seed_and_differ_from_each_other():
    hr = evaluate.load_hr(EVAL_SET / "astronaut.png", 4)
    made = {kind: evaluate.degrade(hr, 4, kind, None, 0) for kind in evaluate.DEGRADATIONS}
    assert all(lr.shape == (64, 64, 3) and lr.dtype == np.uint8 for lr in made.values())
    assert np.array_equal(made["noise"], evaluate.degrade(hr, 4, "noise", None, 0))
    assert not np.array_equal(made["noise"], evaluate.degrade(hr, 4, "noise", None, 1))
    kinds = list(made)
    for i, first in enumerate(kinds):
        for second in kinds[i + 1 :]:
            assert not np.array_equal(made[first], made[second]), (first, second)
    stronger = evaluate.degrade(hr, 4, "noise", 40, 0).astype(int)
    assert np.abs(stronger - made["bicubic"]).mean() > np.abs(made["noise"].astype(int) - made["bicubic"]).mean()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval-weights")
    for name in ("realesr-animevideov3", "RealESRGAN_x4plus_anime_6B"):
        spec = remaster.get_model(name)
        torch.manual_seed(0)
        torch.save({spec.state_dict_key: build_network(spec).state_dict()}, folder / spec.weights.filename)
    return folder


def run_evaluate(*args: str, weights_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    return run_module("remaster.evaluate", *args, weights_dir=weights_dir, cwd=cwd)


@pytest.mark.integration
def test_the_report_has_every_image_and_model_and_parses(weights_dir, tmp_path):
    models = ["realesr-animevideov3", "RealESRGAN_x4plus_anime_6B"]
    done = run_evaluate(
        str(EVAL_SET),
        "--models",
        *models,
        "--degradation",
        "jpeg",
        "--out",
        "report",
        "-q",
        weights_dir=weights_dir,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = tmp_path / "report"
    with (report / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    names = sorted(p.name for p in EVAL_SET.iterdir())
    assert sorted({row["image"] for row in rows}) == names
    assert {row["method"] for row in rows} == {"bicubic", *models}
    assert all(np.isfinite(float(row["psnr"])) and -1 <= float(row["ssim"]) <= 1 for row in rows)
    bicubic_psnr = [float(row["psnr"]) for row in rows if row["method"] == "bicubic"]
    assert all(20 < value < 40 for value in bicubic_psnr), "real numbers for the real baseline"
    markdown = (report / "results.md").read_text()
    for heading in ("## PSNR", "## SSIM", "## NIQE", "degradation: jpeg (strength 30)"):
        assert heading in markdown
    psnr_table = markdown.split("## PSNR")[1].split("## SSIM")[0]
    assert "| image | bicubic | realesr-animevideov3 | RealESRGAN_x4plus_anime_6B |" in psnr_table
    assert all(f"| {name} |" in psnr_table for name in names) and "| **mean** |" in psnr_table
    with Image.open(report / "crops.png") as figure:
        assert figure.format == "PNG" and figure.width > figure.height


@pytest.mark.integration
def test_unreadable_files_and_unavailable_models_are_named_and_the_rest_is_evaluated(weights_dir, tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    shutil.copy(EVAL_SET / "chelsea.png", folder)
    (folder / "broken.png").write_text("not an image")
    done = run_evaluate(
        str(folder),
        "--models",
        "realesr-animevideov3",
        "RealESRGAN_x2plus",
        "--scale",
        "2",
        "-q",
        weights_dir=weights_dir,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "not evaluated: broken.png" in done.stderr and "not evaluated: RealESRGAN_x2plus" in done.stderr
    with (tmp_path / "report" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(row["image"], row["method"]) for row in rows} == {
        ("chelsea.png", "bicubic"),
        ("chelsea.png", "realesr-animevideov3"),
    }
    report = (tmp_path / "report" / "results.md").read_text()
    skipped = report.split("## Not evaluated", 1)[1]
    assert "- **RealESRGAN_x2plus**: RealESRGAN_x2plus.pth is not available" in skipped
    assert "- **broken.png**: Expected an image" in skipped


@pytest.mark.integration
def test_an_empty_folder_is_a_clear_error(weights_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_evaluate("empty", weights_dir=weights_dir, cwd=tmp_path)
    assert done.returncode == 2 and "holds no images" in done.stderr
    missing = run_evaluate("nowhere", weights_dir=weights_dir, cwd=tmp_path)
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
