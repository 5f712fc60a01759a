"""Fine-tuning: tiny random-weight networks on tiny images the tests make."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import remaster
from remaster._compat import import_basicsr
from remaster.errors import InvalidDataError, InvalidOptionError, JobBusyError, StoppedError
from remaster.evaluate import Score
from remaster.finetune import PRESETS, Config, finetune, run_folder
from remaster.finetune.base import load_base
from remaster.finetune.data import find_data
from remaster.finetune.degradation import Degrader, seed_everything
from remaster.finetune.report import REPORT_FILES, write_report
from remaster.finetune.trainer import Trainer
from remaster.locks import LOCK, lock_folder
from remaster.model_files import ModelFiles
from remaster.options import Options

from . import images
from .commands import Forked, run_forked

SRVGGNetCompact = import_basicsr("realesrgan.archs.srvgg_arch").SRVGGNetCompact
ROOT = Path(__file__).resolve().parent.parent
TINY = Config(steps=6, batch_size=2, crop_size=32, lr=1e-3, preset="jpeg", eval_every=3, checkpoint_every=100)


def make_images(folder: Path, count: int = 4, size: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        images.save(images.rgb(size, size, seed=index), folder / f"image{index}.png")
    return folder


def make_base(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    network = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": network.state_dict()}, path)
    return path


@pytest.fixture
def unregistering():
    """Model files registered by the test are unregistered afterwards."""
    before = set(remaster.MODELS)
    yield
    for name in set(remaster.MODELS) - before:
        remaster.unregister(name)


def trainer_for(tmp_path: Path, settings, config: Config = TINY, folder: str = "run") -> Trainer:
    base = load_base(str(tmp_path / "base.pth"), settings)
    data = find_data(tmp_path / "data", base.scale, config.crop_size, 0.25, config.seed)
    return Trainer(base, data, config, torch.device("cpu"), tmp_path / folder, progress=False)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_gives_inputs_of_the_right_size_and_range(preset):
    gt = torch.from_numpy(images.gradient(44, 40).transpose(2, 0, 1))[None].repeat(2, 1, 1, 1)
    for scale, strength in ((4, 1.0), (2, 2.0), (4, 0.5)):
        degrader = Degrader(PRESETS[preset].scaled(strength), scale)
        seed_everything(5)
        lq = degrader(gt)
        assert lq.shape == (2, 3, 44 // scale, 40 // scale)
        assert lq.min() >= 0 and lq.max() <= 1 and torch.equal(lq, torch.round(lq * 255) / 255), "8-bit values"
        seed_everything(5)
        assert torch.equal(degrader(gt), lq), "the same seed gives the same inputs"


@pytest.mark.integration
def test_a_few_steps_lower_the_training_loss_and_raise_the_held_out_psnr(tmp_path, settings, unregistering):
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    trainer = trainer_for(tmp_path, settings, replace(TINY, steps=24, eval_every=8))
    history = trainer.train()
    losses = [point["loss"] for point in history.points[1:]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert history.points[-1]["psnr"] > history.base["psnr"]


def test_a_stopped_run_resumed_gives_bit_identical_weights(tmp_path, settings, unregistering):
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    whole = trainer_for(tmp_path, settings, folder="whole")
    whole.train()

    stop = threading.Event()
    first = trainer_for(tmp_path, settings, folder="parts")
    with pytest.raises(StoppedError, match="--resume"):
        first.train(stop, on_point=lambda point: stop.set())
    assert first.step == 3 and first.checkpoint_path.is_file()
    second = trainer_for(tmp_path, settings, folder="parts")
    second.resume()
    assert second.step == 3
    second.train()
    for name in ("generator", "ema"):
        ours, theirs = getattr(second, name).state_dict(), getattr(whole, name).state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs), f"{name} differs"
    assert second.history.points == whole.history.points

    other = trainer_for(tmp_path, settings, replace(TINY, lr=5e-4), folder="parts")
    with pytest.raises(InvalidOptionError, match="different run"):
        other.resume()


@pytest.mark.integration
def test_sigterm_saves_a_checkpoint_and_exits_and_resume_finishes(tmp_path):
    """As Kubernetes or Slurm stop a run started in the background by a script (SIGINT ignored): the checkpoint of
    the step in hand, the exit status and a line that says so; nothing half-written; --resume then finishes."""
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    command = [
        "data", "--base", "base.pth", "-o", "out/mine.pth",
        "--crop-size", "32", "--batch-size", "1", "--eval-every", "100000", "-q",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "REMASTER_CACHE_DIR": str(tmp_path / "c")}
    process = Forked("remaster.finetune", [*command, "--steps", "100000"], cwd=tmp_path, env=env, sigint_ignored=True)
    deadline = time.monotonic() + 120
    while "Held-out before training" not in process.stderr() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 143, rest
    assert "Stopping after this step and saving a checkpoint (SIGTERM again to stop at once)" in rest
    assert "stopped (SIGTERM): Stopped at step" in rest and "--resume" in rest and "Traceback" not in rest
    folder = tmp_path / "out" / "mine-finetune"
    step = torch.load(folder / "checkpoint.pt", weights_only=True)["step"]
    assert step >= 1 and not (tmp_path / "out" / "mine.pth").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"], "no lock, nothing half-written"

    resumed = run_forked("remaster.finetune", [*command, "--steps", str(step + 2), "--resume"], cwd=tmp_path,
                         env=env, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed at step {step} of {step + 2}" in resumed.stderr and "dB" in resumed.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(["checkpoint.pt", *REPORT_FILES])


def test_the_crops_show_the_ground_truth_then_base_then_tuned_as_the_report_says(tmp_path):
    red, green, blue = (np.full((24, 24, 3), colour, np.uint8) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    scores = [Score("a.png", method, 20.0, 0.5, None, 0.1) for method in ("base", "tuned")]
    metrics = {"psnr": 20.0, "ssim": 0.5, "niqe": None}
    card = {
        "name": "mine", "base": {"name": "tiny"}, "steps": 1, "recipe": "fidelity", "preset": "jpeg", "strength": 1.0,
        "batch_size": 1, "crop_size": 32, "lr": 1e-3, "seed": 0, "scale": 4,
        "data": {"summary": "1 image", "fingerprint": "0" * 64}, "metrics": {"base": metrics, "tuned": metrics},
    }  # fmt: skip
    crops = {("a.png", "HR"): red, ("a.png", "base"): green, ("a.png", "tuned"): blue}
    write_report(tmp_path, card, [{"step": 0.0, "loss": None, **metrics}], scores, crops, ["a.png"])
    picture = np.asarray(Image.open(tmp_path / "crops.png").convert("RGB")).astype(int)
    columns = []
    for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
        _, xs = np.nonzero(np.abs(picture - colour).sum(axis=2) < 30)
        columns.append(xs.mean())
    assert columns == sorted(columns), "HR, base, tuned from left to right"
    assert "![HR (the ground truth) | base | tuned](crops.png)" in (tmp_path / "report.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "written whole, then moved in"


def test_the_result_is_a_model_everything_loads(tmp_path, settings, enhancer, unregistering):
    make_images(tmp_path / "data")
    result = finetune(tmp_path / "data", "tiny-srvgg", tmp_path / "models" / "mine.pth", TINY, settings=settings)
    assert result.model.is_file() and result.safetensors.is_file() and result.card.is_file()
    card = json.loads(result.card.read_text())
    assert card["base"]["name"] == "tiny-srvgg" and card["steps"] == 6 and card["preset"] == "jpeg"
    assert len(card["data"]["fingerprint"]) == 64 and card["metrics"]["tuned"]["psnr"] == pytest.approx(
        result.tuned_psnr
    )
    report = (result.report / "report.md").read_text()
    assert report.rstrip().endswith(result.verdict) and "dB" in result.verdict
    assert all((result.report / name).is_file() for name in ("curves.png", "crops.png", "scores.csv"))
    assert run_folder(tmp_path / "models" / "mine.pth") == result.report
    assert not (result.report / LOCK).exists(), "the run's lock goes with it"
    modes = {path.suffix: path.stat().st_mode & 0o777 for path in (result.model, result.safetensors, result.card)}
    assert len(set(modes.values())) == 1 and modes[".pth"] != 0o600, modes

    official = torch.load(result.model, weights_only=True)
    assert set(official) == {"params_ema"}
    upsampler = import_basicsr("realesrgan").RealESRGANer(
        scale=4, model_path=str(result.model), model=SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4), tile=0,
        half=False, device=torch.device("cpu"),
    )  # fmt: skip
    output, _ = upsampler.enhance(images.to_uint8(images.gradient(24, 20))[:, :, ::-1], outscale=4)
    assert output.shape == (96, 80, 3)

    folder_settings = replace(settings, models_dir=tmp_path / "models")
    loaded, failed = ModelFiles(folder_settings).load_folder()
    assert [spec.name for spec in loaded] == ["mine"] and not failed, "the .pth and .safetensors are one model"
    assert loaded[0].weights.filename == "mine.safetensors" and loaded[0].license == card["license"]
    by_name = enhancer.run(images.gradient(12, 10), Options(model="mine", precision="fp32"))[0]
    by_path = ModelFiles(settings).load(str(result.model))
    by_file = enhancer.run(images.gradient(12, 10), Options(model=by_path.name, precision="fp32"))[0]
    assert by_name.shape == (48, 40, 3) and np.abs(by_name.astype(int) - by_file.astype(int)).max() <= 1


def test_the_paired_layout_reports_a_missing_partner(tmp_path):
    data = tmp_path / "pairs"
    (data / "gt").mkdir(parents=True)
    (data / "lq").mkdir()
    for index in range(4):
        gt = images.rgb(48, 48, seed=index)
        images.save(gt, data / "gt" / f"p{index}.png")
        if index != 3:
            images.save(gt.resize((12, 12)), data / "lq" / f"p{index}.png")
    images.save(images.rgb(12, 12), data / "lq" / "alone.png")
    found = find_data(data, 4, 32, 0.25, seed=0)
    assert found.layout == "paired" and len(found.train) + len(found.held_out) == 3
    assert any("p3.png" in p and "missing partner" in p for p in found.problems)
    assert any("alone.png" in p and "missing partner" in p for p in found.problems)
    gt, lq = found.train[0].load(4)
    assert gt.shape == (48, 48, 3) and lq.shape == (12, 12, 3)


def test_bad_data_is_reported_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidDataError, match="no images"):
        find_data(tmp_path / "empty", 4, 32)
    with pytest.raises(InvalidDataError, match="not a folder"):
        find_data(tmp_path / "nowhere", 4, 32)
    small = make_images(tmp_path / "small", count=3, size=20)
    with pytest.raises(InvalidDataError, match=r"(?s)2 left out.*too small"):
        find_data(small, 4, 32)
    mixed = make_images(tmp_path / "mixed", count=3)
    (mixed / "broken.png").write_bytes(b"not an image at all")
    images.save(images.rgb(20, 20), mixed / "tiny.png")
    found = find_data(mixed, 4, 32, make_images(tmp_path / "held", count=1))
    assert len(found.problems) == 2 and len(found.train) == 3 and len(found.held_out) == 1
    assert any("broken.png: unreadable" in p for p in found.problems)
    assert any("tiny.png: too small" in p for p in found.problems)
    with pytest.raises(InvalidDataError, match="Nothing is left to hold out"):
        find_data(make_images(tmp_path / "one", count=1), 4, 32)


def test_without_vgg19_weights_the_perceptual_recipe_says_so_and_trains(
    tmp_path, settings, monkeypatch, caplog, unregistering
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    with caplog.at_level(logging.WARNING, logger="remaster.finetune.trainer"):
        trainer = trainer_for(tmp_path, settings, replace(TINY, steps=2, recipe="perceptual"))
    assert "VGG19" in caplog.text and "training without it" in caplog.text
    assert trainer.perceptual is None and trainer.discriminator is not None
    history = trainer.train()
    assert history.points[-1]["step"] == 2


def test_a_checkpoint_in_the_way_needs_resume(tmp_path, settings, unregistering):
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    (tmp_path / "mine-finetune").mkdir()
    (tmp_path / "mine-finetune" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(InvalidOptionError, match="--resume"):
        finetune(tmp_path / "data", str(tmp_path / "base.pth"), tmp_path / "mine.pth", TINY, settings=settings)


def test_a_second_run_on_the_same_model_is_refused_while_the_first_works(tmp_path, settings, unregistering):
    make_images(tmp_path / "data")
    make_base(tmp_path / "base.pth")
    folder = run_folder(tmp_path / "mine.pth")
    folder.mkdir()
    busy = pytest.raises(JobBusyError, match="mine.pth is being made by another run")
    with lock_folder(folder, "mine.pth"), busy:  # the lock as the first run holds it
        finetune(tmp_path / "data", str(tmp_path / "base.pth"), tmp_path / "mine.pth", TINY, settings=settings)
    assert not (tmp_path / "mine.pth").exists() and not (folder / "checkpoint.pt").exists()
