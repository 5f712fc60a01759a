"""The command line, run as users run it: ``python -m remaster`` in a process of its own (see tests/commands.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import remaster
from remaster.cli import collect_inputs
from remaster.engine import build_network

from . import images
from .commands import Forked, run_forked
from .fixtures import command_env, run_module

pytestmark = pytest.mark.integration


def weights_for_cli(folder: Path) -> Path:
    """Random weights for realesr-animevideov3 under its official name, in ``folder``/weights: small, fast, offline."""
    folder = folder / "weights"
    folder.mkdir(exist_ok=True)
    spec = remaster.get_model("realesr-animevideov3")
    torch.manual_seed(0)
    torch.save({"params": build_network(spec).state_dict()}, folder / spec.weights.filename)
    return folder


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return weights_for_cli(tmp_path_factory.mktemp("cli"))


def run_cli(*args: str, weights_dir: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_module("remaster", *args, weights_dir=weights_dir, cwd=cwd, timeout=300, env=env)


def test_a_folder_with_a_good_a_corrupt_and_a_16_bit_file(weights_dir, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    images.save(images.rgb(20, 24), folder / "good.jpg", quality=95)
    images.truncated(folder / "corrupt.png", images.rgb(64, 64), "PNG")
    deep = images.png16(folder / "deep.png", 3)
    (folder / "notes.txt").write_text("not an image, and not named like one: skipped")
    done = run_cli(str(folder), "-o", "out", "-n", "realesr-animevideov3", "-q", weights_dir=weights_dir, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "corrupt.png" in done.stderr and "truncated or corrupt" in done.stderr
    assert "2 remastered, 1 failed" in done.stderr
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["deep_realesr-animevideov3_x4.png", "good_realesr-animevideov3_x4.jpg"], "the page's names"
    with Image.open(tmp_path / "out" / "good_realesr-animevideov3_x4.jpg") as good:
        assert good.size == (96, 80) and good.format == "JPEG"
    upscaled = cv2.imread(str(tmp_path / "out" / "deep_realesr-animevideov3_x4.png"), cv2.IMREAD_UNCHANGED)
    assert upscaled.dtype == np.uint16 and upscaled.shape == (deep.shape[0] * 4, deep.shape[1] * 4, 3)
    assert oct((tmp_path / "out" / "good_realesr-animevideov3_x4.jpg").stat().st_mode & 0o777) != oct(0o600)


def test_all_good_is_exit_status_zero_with_the_official_option_names(weights_dir, tmp_path):
    images.save(images.rgba(16, 20), tmp_path / "sticker.png")
    images.save(images.rgb(16, 20), tmp_path / "photo.webp", quality=90)
    done = run_cli(
        "-i",
        "sticker.png",
        "-i",
        "*.webp",
        "--model_name",
        "realesr-animevideov3",
        "-s",
        "2",
        "--suffix",
        "x2",
        "--ext",
        "auto",
        "--fp32",
        "-o",
        "results",
        weights_dir=weights_dir,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = tmp_path / "results"
    with Image.open(results / "sticker_x2.png") as sticker, Image.open(results / "photo_x2.webp") as photo:
        assert sticker.mode == "RGBA" and sticker.size == (40, 32)
        assert photo.format == "WEBP" and photo.size == (40, 32)
        assert "realesr-animevideov3" in sticker.info["Description"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "RealESRGAN_x16", "a.png"], "invalid choice"),
        (["--quality", "0", "a.png", "--ext", "jpg"], "--quality must be from 1 to 100"),
        ([], "give at least one INPUT"),
        (["nothing-here/*.png"], "no input images found"),
        (["--no-such-option", "a.png"], "unrecognized arguments"),
    ],
)
def test_bad_usage_is_exit_status_two(weights_dir, tmp_path, args, message):
    done = run_cli(*args, weights_dir=weights_dir, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr


def test_sigterm_during_a_video_says_in_one_line_what_was_kept_and_the_same_command_finishes(weights_dir, tmp_path):
    """As a script's background job is stopped (SIGINT ignored, as POSIX starts those; then SIGTERM): exit 143, one
    line (what was kept, how to go on) and no traceback, nothing half-written; the same command again finishes."""
    from .videos import make_clip, read_video

    images.save(images.rgb(16, 20), tmp_path / "a.png")
    make_clip(tmp_path / "clip.mkv", frames=48, size=(32, 24))
    command = ["a.png", "clip.mkv", "-o", "out", "-n", "realesr-animevideov3", "-q"]
    env = command_env(weights_dir, tmp_path)
    out, state = tmp_path / "out", tmp_path / "out" / ".clip_realesr-animevideov3_x4.mkv.remaster-video"
    process = Forked("remaster", command, cwd=tmp_path, env=env, sigint_ignored=True)
    deadline = time.monotonic() + 120
    while not (state / "job.json").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM): 1 of 2 files remastered and kept in out; clip.mkv: "), stderr
    assert last.endswith("of 48 frames are finished and kept; run the same again to continue from there"), stderr
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    left = [p.name for p in out.rglob("*") if p.is_file() and state not in p.parents]
    assert left == ["a_realesr-animevideov3_x4.png"], "the finished image kept; no result half-written"

    again = run_forked("remaster", command, cwd=tmp_path, env=env, timeout=300)
    assert again.returncode == 0 and "2 remastered, 0 failed" in again.stderr, again.stderr
    assert len(read_video(out / "clip_realesr-animevideov3_x4.mkv").frames) == 48 and not state.exists()


def test_inputs_are_files_folders_and_globs_without_repeats(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/1.png", "a/2.JPG", "a/readme.md", "3.webp"):
        (tmp_path / name).write_bytes(b"x")
    found, missing = collect_inputs([str(tmp_path / "a"), str(tmp_path / "*.webp"), str(tmp_path / "a/1.png"), "nope"])
    assert [p.name for p in found] == ["1.png", "2.JPG", "3.webp"]
    assert missing == ["nope"]


def test_animations_stay_animated_and_cannot_become_jpeg(weights_dir, tmp_path):
    from .test_animation import animated, frames_of

    animated(tmp_path / "loop.webp", "WEBP", frames=3)
    done = run_cli("loop.webp", "-n", "realesr-animevideov3", "-q", weights_dir=weights_dir, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    frames, durations, _ = frames_of(tmp_path / "results" / "loop_realesr-animevideov3_x4.webp")
    assert len(frames) == 3 and frames[0].size == (80, 64) and durations == [100, 150, 200]
    refused = run_cli(
        "loop.webp", "--ext", "jpg", "-n", "realesr-animevideov3", "-q", weights_dir=weights_dir, cwd=tmp_path
    )
    assert refused.returncode == 1 and "JPG cannot hold an animation" in refused.stderr


def test_parsing_and_bad_usage_never_import_torch_numpy_or_pillow(tmp_path):
    """A ``torch``, ``numpy`` and ``PIL`` that cannot be imported: the help, bad usage and the model table still
    answer (the help took 60-65% of its time importing numpy and Pillow before)."""
    blocker = tmp_path / "blocked"
    for module in ("torch", "numpy", "PIL"):
        (blocker / module).mkdir(parents=True)
        (blocker / module / "__init__.py").write_text(f"raise ImportError('{module} was imported')\n")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{root}"}

    def python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True)

    helped = python("-m", "remaster", "--help")
    assert helped.returncode == 0 and "--model" in helped.stdout, helped.stderr
    bad = python("-m", "remaster", "--model", "RealESRGAN_x16", "a.png")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    out_of_range = python("-m", "remaster", "-s", "9", "a.png")
    assert out_of_range.returncode == 2 and "outscale must be from 1 to 8" in out_of_range.stderr
    nothing = python("-m", "remaster", "nothing-here/*.png")
    assert nothing.returncode == 2 and "no input images found" in nothing.stderr
    table = python("-c", "import remaster, remaster.registry, remaster.settings; print(len(remaster.MODELS))")
    assert table.returncode == 0 and int(table.stdout) >= 6, table.stderr


def test_the_official_scripts_other_options_work_and_errors_are_told_once(weights_dir, tmp_path):
    images.save(images.rgba(16, 20), tmp_path / "sticker.png")
    images.truncated(tmp_path / "cut.png", images.rgb(64, 64), "PNG")
    done = run_cli(
        "sticker.png",
        "cut.png",
        "--alpha_upsampler",
        "bicubic",
        "--tile_pad",
        "10",
        "--pre_pad",
        "4",
        "-t",
        "32",
        "-g",
        "0",
        "--ext",
        "jpg",
        "-n",
        "realesr-animevideov3",
        weights_dir=weights_dir,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "unrecognized" not in done.stderr, done.stderr
    assert "note: there is no CUDA GPU 0 here" in done.stderr
    result = tmp_path / "results" / "sticker_realesr-animevideov3_x4.png"
    assert Image.open(result).mode == "RGBA", "transparency asked to become JPEG stays PNG"
    assert "JPEG cannot hold transparency" in done.stderr and "tile_pad 10 was raised to 24" in done.stderr
    assert done.stderr.count("truncated or corrupt") == 1, "each failure is told once"
    assert "1 remastered, 1 failed" in done.stderr
    refused = run_cli("sticker.png", "--model_path", "weights/mine.pth", weights_dir=weights_dir, cwd=tmp_path)
    assert refused.returncode == 2 and "error: No model file at weights/mine.pth" in refused.stderr


def test_the_package_installs_with_a_remaster_command_that_works_from_any_folder(tmp_path):
    """What the README's install command does (``pip install -e .``), as a wheel built offline."""
    import shutil
    import zipfile

    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    shutil.copytree(root / "remaster", source / "remaster", ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(root / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(tmp_path.glob("remaster-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "remaster = remaster.cli:main" in entry_points
    assert "remaster/page/layout.py" in names and "remaster/animation.py" in names
    assert "Requires-Dist: gradio[mcp]" in metadata and f"Version: {remaster.__version__}" in metadata
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = subprocess.run(
        [sys.executable, "-c", "import sys; from remaster.cli import main; sys.exit(main(['--help']))"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(wheel)},
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "Remaster images" in helped.stdout, helped.stderr


def test_the_automatic_backend_finishes_its_build_before_exit_and_keeps_the_tracer_quiet(weights_dir, tmp_path):
    images.save(images.rgb(40, 48), tmp_path / "a.png")
    done = run_cli(
        "a.png", "-o", "out", "-n", "realesr-animevideov3", "-q",
        weights_dir=weights_dir, cwd=tmp_path, env={"REMASTER_BACKEND": "auto"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # 134, "terminate called without an active exception", before
    assert "terminate" not in done.stderr and "Tracer" not in done.stderr and "jit" not in done.stderr
    kept = json.loads((tmp_path / ".remaster-cache" / "backends.json").read_text())
    decided = [decision["runtime"] for decision in kept.values()]
    assert decided in (["openvino"], ["int8"], ["torch"]), "the build and its measurement ended before exit"


def test_a_process_waits_at_exit_for_a_build_it_started(tmp_path):
    script = (
        "import pathlib, time\n"
        "from remaster import background\n"
        "def build():\n"
        "    time.sleep(1.5)\n"
        "    pathlib.Path('built').write_text('yes')\n"
        "background.start(build, name='the test build')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "built").read_text() == "yes"
    assert "Finishing the test build before exiting" in done.stderr
