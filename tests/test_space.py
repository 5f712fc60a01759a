"""Ready for Hugging Face Spaces: the README's Space configuration, ZeroGPU, CPU Space defaults."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import gradio
import pytest
import yaml

from remaster import registry, zerogpu
from remaster.registry import DEFAULT_FACE_MODEL, DEFAULT_INTERPOLATOR, DETECTOR, PARSER
from remaster.settings import Settings

from . import images
from .fixtures import TEST_REPO

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the README starts with the Space's YAML front matter"
    return yaml.safe_load(match.group(1))


def test_the_space_configuration_matches_what_the_tests_ran_on():
    config = front_matter()
    assert config["sdk"] == "gradio" and config["app_file"] == "app.py" and (ROOT / config["app_file"]).is_file()
    assert str(config["sdk_version"]) == gradio.__version__
    assert str(config["python_version"]) == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert config["title"] and config["emoji"] and config["license"] and config["suggested_hardware"]


def test_preloaded_weights_are_exactly_what_the_app_downloads_at_start():
    config = front_matter()
    preloaded = {}
    for line in config["preload_from_hub"]:
        repo, files = line.split(" ", 1)
        preloaded[repo] = set(files.split(","))
    startup = [*registry.model_names("upscaler"), DEFAULT_FACE_MODEL, DETECTOR, PARSER, DEFAULT_INTERPOLATOR]
    expected: dict[str, set[str]] = {}
    for name in startup:
        for weight in registry.get_model(name).weight_files:
            # The tests' own entries, when other tests registered them; and files no Hub repo holds (RIFE's wheel).
            if weight.hub_repo not in (TEST_REPO, ""):
                expected.setdefault(weight.hub_repo, set()).add(weight.filename)
    assert preloaded == expected
    assert set(config["models"]) >= set(expected)


OPTIONAL_IMPORTS = {"spaces", "torch_tensorrt"}
"""Imported only where present: Hugging Face's ``spaces`` exists on Spaces alone, torch-tensorrt is an optional
install for NVIDIA GPUs (README)."""


def _requirement_names(path: Path) -> set[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0].lower().replace("_", "-") for line in lines if line}


def test_requirements_are_ranges_and_name_every_package_the_code_imports():
    import ast
    from importlib.metadata import packages_distributions

    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert not [line for line in lines if "==" in line], "ranges, not this machine's pins"
    imported = set()
    for path in (ROOT / "remaster").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"remaster"} - OPTIONAL_IMPORTS
    distributions = packages_distributions()
    required = _requirement_names(ROOT / "requirements.txt")
    missing = {
        module: distributions.get(module)
        for module in third_party
        if not {name.lower().replace("_", "-") for name in distributions.get(module, [module])} & required
    }
    assert not missing, f"imported but not in requirements.txt: {missing}"


@pytest.fixture
def fake_spaces(monkeypatch):
    """A stand-in for Hugging Face's ``spaces`` package: reports ZeroGPU as told, records what it marks."""
    module = types.ModuleType("spaces")
    module.config = types.SimpleNamespace(Config=types.SimpleNamespace(zero_gpu=True))
    module.marked = []

    def gpu(duration=None):
        def mark(function):
            module.marked.append((function, duration))
            return lambda *args, **kwargs: ("on the GPU", function(*args, **kwargs))

        return mark

    module.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", module)
    return module


def test_the_gpu_marking_is_applied_on_zero_gpu(fake_spaces):
    def work(x):
        return x * 2

    marked = zerogpu.gpu_task(work, duration=lambda x: 30)
    assert marked(4) == ("on the GPU", 8)
    assert fake_spaces.marked[0][0] is work and fake_spaces.marked[0][1](4) == 30


def test_the_gpu_marking_is_a_no_op_elsewhere(fake_spaces, monkeypatch):
    def work(x):
        return x

    fake_spaces.config.Config.zero_gpu = False
    assert zerogpu.gpu_task(work, duration=lambda x: 30) is work
    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed
    assert zerogpu.gpu_task(work, duration=lambda x: 30) is work
    assert fake_spaces.marked == []


def test_every_path_of_the_page_that_runs_a_network_borrows_the_gpu(fake_spaces):
    import importlib

    from remaster.page import handlers

    before = len(fake_spaces.marked)  # a first import of handlers, with the fake spaces in place, marks them too
    try:
        importlib.reload(handlers)
        marked = {function.__name__ for function, _ in fake_spaces.marked[before:]}
        assert marked == {"remaster_file", "run_batch", "_compare_models", "remaster_video", "preview_frame"}
    finally:
        fake_spaces.config.Config.zero_gpu = False
        importlib.reload(handlers)
    assert len(fake_spaces.marked) == before + 5, "elsewhere the functions run as they are"


def test_gpu_time_is_estimated_from_the_image_and_the_model(tmp_path):
    small = images.save(images.rgb(64, 64), tmp_path / "small.png")
    big = images.decompression_bomb_png(tmp_path / "big.png", 2048, 2048)
    quick = zerogpu.estimate_seconds(small, "realesr-animevideov3")
    slow = zerogpu.estimate_seconds(big, "RealESRGAN_x4plus")
    assert quick == 15 and quick < slow <= 120
    assert zerogpu.estimate_seconds(big, "RealESRGAN_x4plus", face_enhance=True) >= slow
    (tmp_path / "junk.png").write_text("no image")
    assert zerogpu.estimate_seconds(tmp_path / "junk.png", "RealESRGAN_x4plus") == 120
    both = zerogpu.estimate_many([small, big], ["realesr-animevideov3", "RealESRGAN_x4plus"])
    assert both == min(2 * quick + slow + zerogpu.estimate_seconds(big, "realesr-animevideov3"), 600) > slow
    assert zerogpu.estimate_many([big] * 40, ["RealESRGAN_x4plus"]) == 600, "at most ten minutes"


def test_a_cpu_space_gets_smaller_inputs_and_a_time_limit():
    space = Settings.from_env(env={"REMASTER_DEVICE": "cpu", "SPACE_ID": "someone/remaster"})
    assert space.max_input_pixels == 2048 * 2048 and space.time_limit == 300
    assert space.default_model == "realesr-general-x4v3"
    local = Settings.from_env(env={"REMASTER_DEVICE": "cpu"})
    assert local.max_input_pixels == 4096 * 4096 and local.time_limit is None
    gpu_space = Settings.from_env(env={"REMASTER_DEVICE": "cuda", "SPACE_ID": "someone/remaster"})
    assert gpu_space.time_limit is None
