"""The tests' fixtures and helpers: a Hub-like server on 127.0.0.1 serving tiny random-weight models.

The official models' checksums can never match random weights, so the tests register
their own registry entries (with their own checksums) instead of switching checks off.
Loaded by ``conftest.py`` as a plugin wherever tests run (not in pytest-xdist's controller, which runs none).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

import remaster
from remaster._compat import import_basicsr
from remaster.architectures import ARCHITECTURES, RRDBNet, SRVGGNetCompact, register_architecture
from remaster.engine import build_network
from remaster.faces import FACE_TEMPLATE
from remaster.registry import DETECTOR, MODELS, ModelSpec, WeightFile
from remaster.settings import Settings

from . import hubserver
from .conftest import SANDBOX

TEST_REPO = "remaster-tests/tiny-models"


@dataclass(frozen=True)
class TinyModel:
    """A registered test model and the bytes of its weight files."""

    spec: ModelSpec
    files: dict[str, bytes]


def _tiny_specs() -> list[tuple[ModelSpec, dict[str, int]]]:
    """Entries shaped like the official ones, with tiny layer counts; weights filled in later."""
    rrdb = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
    srvgg = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "prelu"}
    placeholder = WeightFile(filename="", sha256="0", size=None, hub_repo=TEST_REPO, url="")
    common = {"weights": placeholder, "description": "a tiny random-weight test model"}
    return [
        (
            ModelSpec(
                name="tiny-rrdb-x4",
                architecture="RRDBNet",
                arch_kwargs={**rrdb, "scale": 4},
                scale=4,
                state_dict_key="params_ema",
                tile_overlap=24,
                **common,
            ),
            {"seed": 1},
        ),
        (
            ModelSpec(
                name="tiny-rrdb-x2",
                architecture="RRDBNet",
                arch_kwargs={**rrdb, "scale": 2},
                scale=2,
                state_dict_key="params_ema",
                tile_overlap=48,
                **common,
            ),
            {"seed": 2},
        ),
        (
            ModelSpec(
                name="tiny-srvgg",
                architecture="SRVGGNetCompact",
                arch_kwargs=srvgg,
                scale=4,
                state_dict_key="params",
                tile_overlap=8,
                **common,
            ),
            {"seed": 3},
        ),
        (
            ModelSpec(
                name="tiny-general",
                architecture="SRVGGNetCompact",
                arch_kwargs=srvgg,
                scale=4,
                state_dict_key="params",
                tile_overlap=8,
                denoise_weights=placeholder,
                **common,
            ),
            {"seed": 4},
        ),
        (
            ModelSpec(
                name="tiny-rife",
                architecture="IFNet",
                arch_kwargs={"widths": (16, 12, 8, 8)},
                scale=1,
                state_dict_key="",
                tile_overlap=0,
                kind="interpolator",
                **common,
            ),
            {"seed": 5},
        ),
    ]


def make_weights(spec: ModelSpec, seed: int) -> bytes:
    """A checkpoint of ``spec``'s architecture with random weights, as the official files are laid out."""
    torch.manual_seed(seed)
    network = build_network(spec)
    buffer = io.BytesIO()
    torch.save({spec.state_dict_key: network.state_dict()}, buffer)
    return buffer.getvalue()


def weight_file(server: hubserver.HubServer, filename: str, data: bytes) -> WeightFile:
    """Serve ``data`` on the Hub path and the fallback URL and describe it as a registry entry would."""
    server.add(server.hub_path(TEST_REPO, filename), data)
    url = server.add(f"/releases/{filename}", data)
    return WeightFile(
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        hub_repo=TEST_REPO,
        url=url,
    )


@pytest.fixture(scope="session")
def hub() -> Iterator[hubserver.HubServer]:
    """The Hub-like server, running for the whole session."""
    state, server = hubserver.start()
    yield state
    server.shutdown()


@pytest.fixture(autouse=True)
def _reset_hub(request: pytest.FixtureRequest) -> None:
    if "hub" in request.fixturenames:
        request.getfixturevalue("hub").reset()


@pytest.fixture(scope="session")
def tiny_models(hub: hubserver.HubServer) -> Iterator[dict[str, TinyModel]]:
    """Tiny random-weight models registered under their own names and served by ``hub``."""
    models = {}
    for spec, options in _tiny_specs():
        main = make_weights(spec, options["seed"])
        files = {f"{spec.name}.pth": main}
        spec = replace(spec, weights=weight_file(hub, f"{spec.name}.pth", main))
        if spec.denoise_weights is not None:
            denoise = make_weights(spec, options["seed"] + 100)
            files[f"{spec.name}-wdn.pth"] = denoise
            spec = replace(spec, denoise_weights=weight_file(hub, f"{spec.name}-wdn.pth", denoise))
        models[spec.name] = TinyModel(spec=spec, files=files)
    with MODELS.extended(*(model.spec for model in models.values())):
        yield models


_SRVGG = import_basicsr("realesrgan.archs.srvgg_arch").SRVGGNetCompact


class _Sleepy(_SRVGG):
    """SRVGGNetCompact that sleeps ``delay`` seconds in each forward pass and records when each ended."""

    def __init__(self, delay: float, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.delay = delay
        self.calls: list[float] = []

    def forward(self, x):
        time.sleep(self.delay)
        self.calls.append(time.monotonic())
        return super().forward(x)


class SlowSRVGGNetCompact(SRVGGNetCompact):
    """A registered architecture for networks slow enough to be stopped mid-image."""

    name = "SlowSRVGGNetCompact"

    def build(self, kwargs, device=None):
        return _Sleepy(**kwargs)


@contextmanager
def slow_model(tiny_models: dict[str, TinyModel], delay: float) -> Iterator[str]:
    """A registered model with tiny-srvgg's weights whose forward passes take ``delay`` seconds; yields its name."""
    if SlowSRVGGNetCompact.name not in ARCHITECTURES:
        register_architecture(SlowSRVGGNetCompact())
    tiny = tiny_models["tiny-srvgg"].spec
    spec = replace(
        tiny,
        name=f"tiny-slow-{delay:g}s",
        architecture=SlowSRVGGNetCompact.name,
        arch_kwargs={**tiny.arch_kwargs, "delay": delay},
    )
    with MODELS.extended(spec):
        yield spec.name


def _slow_convolution(delay: float, busy: bool, calls: list[float]):
    """A forward pre-hook that makes a convolution ``delay`` seconds slower: sleeping, or burning the CPU (``busy``);
    ``calls`` gets the time of each. Not on the tiny probe the engine counts multiply-adds on when it loads."""

    def hook(layer: torch.nn.Conv2d, inputs: tuple[torch.Tensor, ...]) -> None:
        if max(inputs[0].shape[-2:]) <= 32:  # the probe: 8² in, 32² out
            return
        calls.append(time.monotonic())
        if not busy:
            time.sleep(delay)
            return
        until = time.perf_counter() + delay
        while time.perf_counter() < until:
            pass

    return hook


class SlowConvolutionsRRDBNet(RRDBNet):
    """RRDBNet (RealESRGAN_x4plus's architecture) whose every convolution takes ``delay`` seconds longer, sleeping
    or burning the CPU: one pass is long enough to watch its progress, or its CPU after a stop."""

    name = "SlowConvolutionsRRDBNet"

    def build(self, kwargs, device=None):
        kwargs = dict(kwargs)
        calls: list[float] = []
        hook = _slow_convolution(kwargs.pop("delay"), kwargs.pop("busy"), calls)
        module = super().build(kwargs, device)
        module.calls = calls  # when each convolution ran
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.register_forward_pre_hook(hook)
        return module


@contextmanager
def slow_convolutions(tiny_models: dict[str, TinyModel], delay: float, busy: bool = False) -> Iterator[str]:
    """A registered model with tiny-rrdb-x4's weights (21 convolutions) whose every convolution takes ``delay``
    seconds longer (burning the CPU where ``busy``); yields its name."""
    if SlowConvolutionsRRDBNet.name not in ARCHITECTURES:
        register_architecture(SlowConvolutionsRRDBNet())
    tiny = tiny_models["tiny-rrdb-x4"].spec
    spec = replace(
        tiny,
        name=f"tiny-rrdb-x4-slow-{delay:g}s{'-busy' if busy else ''}",
        architecture=SlowConvolutionsRRDBNet.name,
        arch_kwargs={**tiny.arch_kwargs, "delay": delay, "busy": busy},
    )
    with MODELS.extended(spec):
        yield spec.name


@pytest.fixture
def settings(hub: hubserver.HubServer, tmp_path: Path) -> Settings:
    """Settings for a fresh, empty cache that downloads from ``hub``, on the CPU."""
    return Settings.from_env(
        env={},
        device="cpu",
        default_model="tiny-rrdb-x4",
        hub_endpoint=hub.url,
        hub_cache_dir=tmp_path / "hub-cache",
        cache_dir=tmp_path / "url-cache",
        download_timeout=5.0,
        backend="torch",  # the backends get tests of their own (test_backends.py)
    )


@pytest.fixture(scope="session")
def enhancer(hub: hubserver.HubServer, tiny_models: dict[str, TinyModel]) -> remaster.Enhancer:
    """One :class:`remaster.Enhancer` with the tiny models, shared so networks load once."""
    cache = SANDBOX / "shared-cache"
    return remaster.Enhancer(
        Settings.from_env(
            env={},
            device="cpu",
            default_model="tiny-rrdb-x4",
            hub_endpoint=hub.url,
            hub_cache_dir=cache / "hub",
            cache_dir=cache / "url",
            download_timeout=5.0,
            backend="torch",  # the backends get tests of their own (test_backends.py)
        )
    )


def _tiny_face_specs() -> list[ModelSpec]:
    """Face networks of the official architectures, tiny; the detector and parser take the official names."""
    placeholder = WeightFile(filename="", sha256="0", size=None, hub_repo=TEST_REPO, url="")
    common = {
        "weights": placeholder,
        "description": "a tiny random-weight test face model",
        "scale": 1,
        "tile_overlap": 0,
    }
    gfpgan = {
        "out_size": 512,
        "num_style_feat": 32,
        "channel_multiplier": 1,
        "decoder_load_path": None,
        "fix_decoder": False,
        "num_mlp": 2,
        "input_is_latent": True,
        "different_w": True,
        "narrow": 1 / 16,
        "sft_half": True,
    }
    restoreformer = {
        "n_embed": 16,
        "embed_dim": 32,
        "ch": 32,
        "ch_mult": (1, 1, 1, 1, 1, 1),
        "num_res_blocks": 1,
        "z_channels": 32,
        "head_size": 1,
    }
    return [
        ModelSpec(
            name="tiny-gfpgan",
            architecture="GFPGANv1Clean",
            arch_kwargs=gfpgan,
            state_dict_key="params_ema",
            kind="face_restorer",
            **common,
        ),
        ModelSpec(
            name="tiny-restoreformer",
            architecture="RestoreFormer",
            arch_kwargs=restoreformer,
            state_dict_key="params_ema",
            kind="face_restorer",
            **common,
        ),
        ModelSpec(
            name="detection_Resnet50_Final",
            architecture="RetinaFace",
            arch_kwargs={"network_name": "mobile0.25"},
            state_dict_key="",
            kind="face_detector",
            **common,
        ),
        ModelSpec(
            name="parsing_parsenet",
            architecture="ParseNet",
            arch_kwargs={
                "in_size": 512,
                "out_size": 512,
                "parsing_ch": 19,
                "base_ch": 8,
                "ch_range": [8, 16],
                "res_depth": 1,
            },
            state_dict_key="",
            kind="face_parser",
            **common,
        ),
    ]


@pytest.fixture(scope="session")
def _tiny_face_models(hub: hubserver.HubServer) -> dict[str, TinyModel]:
    """The tiny face networks' files, made once and served by ``hub`` for the whole session."""
    models = {}
    for seed, spec in enumerate(_tiny_face_specs(), start=10):
        torch.manual_seed(seed)
        network = build_network(spec)
        buffer = io.BytesIO()
        state = network.state_dict()
        if spec.kind == "face_parser":
            # Random weights would label everything at random; make "skin" win so the paste-back mask is not empty.
            state["out_mask_conv.conv2d.bias"][1] = 100.0
        torch.save({spec.state_dict_key: state} if spec.state_dict_key else state, buffer)
        data = buffer.getvalue()
        filename = f"{spec.name}.pth"
        models[spec.name] = TinyModel(
            spec=replace(spec, weights=weight_file(hub, filename, data)), files={filename: data}
        )
    return models


@pytest.fixture(scope="module")
def tiny_faces(_tiny_face_models: dict[str, TinyModel]) -> Iterator[dict[str, TinyModel]]:
    """Tiny random-weight face networks in the registry; the official detector and parser entries are
    swapped for tiny ones under the same names for the test module and put back afterwards."""
    with MODELS.extended(*(model.spec for model in _tiny_face_models.values()), replace=True):
        yield _tiny_face_models


def finding_detector_weights(spec: ModelSpec) -> bytes:
    """RetinaFace weights whose heads ignore the image: every anchor of the coarsest level (256- and
    512-pixel anchors, every 32 pixels) holds a face shaped like the alignment template, filling its
    anchor. NMS then keeps a few of them. The real detector code runs on real detections."""
    torch.manual_seed(0)
    state = build_network(spec).state_dict()
    offsets = torch.from_numpy((FACE_TEMPLATE - 256) / 512 / 0.1).float().flatten()  # decode_landm's variance
    for level in range(3):
        for head in ("ClassHead", "BboxHead", "LandmarkHead"):
            state[f"{head}.{level}.conv1x1.weight"].zero_()
            state[f"{head}.{level}.conv1x1.bias"].zero_()
        face = level == 2
        state[f"ClassHead.{level}.conv1x1.bias"][:] = torch.tensor([-10.0, 10.0] * 2 if face else [10.0, -10.0] * 2)
        state[f"LandmarkHead.{level}.conv1x1.bias"][:] = offsets.repeat(2)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.fixture
def finding(
    enhancer: remaster.Enhancer, tiny_faces: dict[str, TinyModel], hub: hubserver.HubServer
) -> Iterator[remaster.Enhancer]:
    """An enhancer whose face detector finds the same faces in every image of a size."""
    tiny = tiny_faces[DETECTOR].spec
    data = finding_detector_weights(tiny)
    detector = replace(tiny, weights=weight_file(hub, "finding-detector.pth", data))
    with remaster.MODELS.extended(detector, replace=True):
        yield remaster.Enhancer(enhancer.settings, enhancer.store)


@contextmanager
def running_app(enhancer: remaster.Enhancer, **changes: object) -> Iterator[str]:
    """The real app on 127.0.0.1 with ``enhancer``'s networks and some settings changed; yields its URL."""
    from remaster.page import build_demo, launch_options

    app = enhancer.with_settings(**changes)
    demo = build_demo(app, prefetch=False)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(app.settings)
    )
    try:
        yield url
    finally:
        demo.close()


def command_env(weights_dir: Path, cwd: Path, **changes: str) -> dict[str, str]:
    """The environment a test's command runs in: this one, offline, with ``weights_dir`` as REMASTER_WEIGHTS_DIR,
    its cache in ``cwd``, on torch; ``changes`` on top."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "REMASTER_WEIGHTS_DIR": str(weights_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "REMASTER_CACHE_DIR": str(cwd / ".remaster-cache"),
        "REMASTER_BACKEND": "torch",
        **changes,
    }


def run_module(
    module: str, *args: str, weights_dir: Path, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
):
    """``python -m module args`` as a user runs it (forked with the heavy imports done: :mod:`tests.commands`),
    in :func:`command_env` with ``env`` on top."""
    from .commands import run_forked

    return run_forked(module, list(args), cwd=cwd, env=command_env(weights_dir, cwd, **(env or {})), timeout=timeout)
