"""Settings from the environment, device defaults, and the basicsr compatibility alias."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from remaster import _compat
from remaster.settings import Settings, device_defaults


def test_environment_variables_are_read_once_into_plain_values(tmp_path):
    settings = Settings.from_env(
        env={
            "REMASTER_DEVICE": "cpu",
            "REMASTER_WEIGHTS_DIR": str(tmp_path),
            "REMASTER_MAX_INPUT_PIXELS": "1_000_000",
            "REMASTER_TILE": "384",
            "REMASTER_TIME_LIMIT": "90",
            "REMASTER_HUB_REPO": "me/mirror",
            "REMASTER_HUB_REVISION": "v1",
            "HF_ENDPOINT": "http://127.0.0.1:1234",
            "HF_TOKEN": "hf_secret",
            "HF_HOME": "/data/hf",
            "HF_HUB_OFFLINE": "1",
            "XDG_CACHE_HOME": "/data/cache",
        }
    )
    assert settings.device == "cpu" and settings.weights_dir == tmp_path
    assert settings.max_input_pixels == 1_000_000 and settings.tile == 384 and settings.time_limit == 90
    assert (settings.hub_repo, settings.hub_revision) == ("me/mirror", "v1")
    assert settings.hub_endpoint == "http://127.0.0.1:1234" and settings.hub_token == "hf_secret"
    assert settings.hub_cache_dir == Path("/data/hf/hub") and settings.offline
    assert settings.cache_dir == Path("/data/cache/remaster")
    assert Settings.from_env(env={"HF_HUB_CACHE": "/x", "HF_HOME": "/y"}).hub_cache_dir == Path("/x")


def test_defaults_follow_the_device():
    cpu = Settings.from_env(env={"REMASTER_DEVICE": "cpu"})
    assert cpu.default_model == "realesr-general-x4v3" and cpu.concurrency == 1
    assert cpu.max_input_pixels == 4096 * 4096 and not cpu.offline and cpu.weights_dir is None
    gpu = Settings.from_env(env={"REMASTER_DEVICE": "cuda:1"})
    assert gpu.default_model == "RealESRGAN_x4plus" and gpu.concurrency == device_defaults("cuda").concurrency == 2
    assert gpu.tile is None and gpu.time_limit is None, "tiles sized to the free memory, no time limit"
    assert Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_DEFAULT_MODEL": "x"}).default_model == "x"


@pytest.mark.parametrize("value", ["many", "-5", "0", "1.5"])
def test_a_bad_number_names_the_variable(value):
    with pytest.raises(
        ValueError, match=f"REMASTER_MAX_INPUT_PIXELS must be a positive whole number, but it is '{value}'"
    ):
        Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_MAX_INPUT_PIXELS": value})


def test_background_compilation_is_on_for_cuda_only_unless_set():
    assert not Settings.from_env(env={"REMASTER_DEVICE": "cpu"}).compile, "no gain measured on CPUs"
    assert Settings.from_env(env={"REMASTER_DEVICE": "cuda:1"}).compile
    assert not Settings.from_env(env={"REMASTER_DEVICE": "cuda", "SPACES_ZERO_GPU": "true"}).compile, "ZeroGPU"
    assert Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_COMPILE": "1"}).compile
    assert not Settings.from_env(env={"REMASTER_DEVICE": "cuda", "REMASTER_COMPILE": "off"}).compile
    assert Settings.from_env(env={}, device="cuda").compile, "a device override decides the defaults too"
    with pytest.raises(ValueError, match="REMASTER_COMPILE must be 1 or 0, but it is 'maybe'"):
        Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_COMPILE": "maybe"})


def test_overrides_replace_single_fields():
    settings = Settings.from_env(env={"REMASTER_DEVICE": "cpu"}, tile=64, offline=True)
    assert settings.tile == 64 and settings.offline


def test_basicsr_imports_through_the_torchvision_alias(monkeypatch):
    monkeypatch.delitem(sys.modules, "torchvision.transforms.functional_tensor", raising=False)
    _compat.install_torchvision_alias()
    alias = sys.modules["torchvision.transforms.functional_tensor"]
    assert hasattr(alias, "rgb_to_grayscale")
    degradations = importlib.reload(importlib.import_module("basicsr.data.degradations"))
    assert degradations.rgb_to_grayscale is alias.rgb_to_grayscale


def test_a_programs_log_prints_each_of_the_hubs_messages_once():
    import subprocess

    script = (
        "from remaster import logs; logs.configure(); import logging, huggingface_hub.file_download; "
        "logging.getLogger('huggingface_hub.file_download').warning('the Hub says hello')"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert done.stderr.count("the Hub says hello") == 1, done.stderr
    assert "WARNING huggingface_hub.file_download: the Hub says hello" in done.stderr


def test_a_cpu_without_bf16_can_be_played_for_automatic_precision(enhancer):
    import torch

    import remaster

    played = enhancer.with_settings(cpu_bf16=False)
    assert played.engine.network(remaster.get_model("tiny-srvgg"), "auto").dtype == torch.float32
    assert Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_CPU_BF16": "0"}).cpu_bf16 is False


def test_another_cpu_can_be_played_by_naming_its_flags():
    assert Settings.from_env(env={"REMASTER_DEVICE": "cpu"}).cpu_flags is None, "its own"
    played = Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_CPU_FLAGS": "avx2,AVX512F avx512_bf16"})
    assert played.cpu_flags == frozenset({"avx2", "avx512f", "avx512_bf16"})
