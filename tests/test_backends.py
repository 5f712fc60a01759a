"""Inference backends: OpenVINO gives torch's pixels, a network it cannot take stays on torch, choices are kept."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import remaster
from remaster import Options
from remaster.architectures import ARCHITECTURES, SRVGGNetCompact, register_architecture
from remaster.faces import Face
from remaster.kept import KeptTable
from remaster.registry import DETECTOR, PARSER
from remaster.runtimes import choose, get_runtime
from remaster.runtimes.measured import Accelerated

from .images import gradient, to_uint8
from .test_faces import LANDMARKS

pytestmark = pytest.mark.skipif(
    not get_runtime("openvino").available(), reason="OpenVINO is a requirement; this runs where it is"
)


def backend_enhancer(enhancer, tmp_path, backend: str) -> remaster.Enhancer:
    return enhancer.with_settings(backend=backend, cache_dir=tmp_path / "cache")


def settle(engine, spec, precision: str) -> Accelerated:
    accelerated = engine.network(spec, precision).accelerated
    assert isinstance(accelerated, Accelerated)
    assert accelerated.wait(timeout=300)
    return accelerated


@pytest.mark.integration
@pytest.mark.parametrize("name", ["tiny-rrdb-x4", "tiny-rrdb-x2", "tiny-srvgg"])
def test_openvino_gives_torchs_result_whole_and_tiled(enhancer, tmp_path, name):
    forced = backend_enhancer(enhancer, tmp_path, "openvino")
    spec = remaster.get_model(name)
    scale = spec.scale
    first = gradient(20, 24, seed=1)
    forced.run(first, Options(model=name, outscale=scale, precision="fp32"))  # on torch, while OpenVINO builds
    accelerated = settle(forced.engine, spec, "fp32")
    assert accelerated.state == "chosen", "forced: used without measuring"
    for height, width, tile in ((33, 45, 0), (70, 50, 32), (1, 40, 0)):
        image = gradient(height, width, seed=height)
        options = Options(model=name, outscale=scale, precision="fp32", tile=tile)
        ours, report = forced.run(image, options)
        torch_result = enhancer.run(image, options)[0]
        assert np.abs(ours - torch_result).max() < 1e-4, "fp32 is exact on every backend"
    assert accelerated.calls["backend"] >= 3
    image = to_uint8(gradient(28, 30, seed=4))
    forced.run(image, Options(model=name, outscale=scale, precision="bf16"))
    bf16 = settle(forced.engine, spec, "bf16")
    reduced = forced.run(image, Options(model=name, outscale=scale, precision="bf16"))[0]
    exact = enhancer.run(image, Options(model=name, outscale=scale, precision="fp32"))[0]
    assert bf16.calls["backend"] >= 1 and np.abs(reduced.astype(int) - exact).max() <= 8


class _Unconvertible(nn.Module):
    """A network that runs in Python but refuses to be traced or exported (and cannot be scripted: *rest)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch: torch.Tensor, *rest: object) -> torch.Tensor:
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            raise RuntimeError("this network cannot be converted")
        return self.inner(batch)


class _Untraceable(SRVGGNetCompact):
    name = "SRVGGNetCompact, untraceable (tests)"

    def load(self, kwargs, state, device=None):
        return _Unconvertible(super().load(kwargs, state, device))


@pytest.mark.integration
def test_a_network_openvino_cannot_take_stays_on_torch_and_the_request_succeeds(
    enhancer, tiny_models, tmp_path, caplog
):
    if _Untraceable.name not in ARCHITECTURES:
        register_architecture(_Untraceable())
    spec = replace(tiny_models["tiny-srvgg"].spec, name="tiny-untraceable", architecture=_Untraceable.name)
    forced = backend_enhancer(enhancer, tmp_path, "openvino")
    with remaster.MODELS.extended(spec):
        image = gradient(16, 20)
        first = forced.run(image, Options(model=spec.name, precision="fp32"))[0]
        accelerated = forced.engine.network(spec, "fp32").accelerated
        assert accelerated.wait(timeout=300)
        again = forced.run(image, Options(model=spec.name, precision="fp32"))[0]
    assert accelerated.state == "failed" and "runs on torch: openvino could not take it" in caplog.text
    assert logging.getLogger().isEnabledFor(logging.WARNING), "OpenVINO's failed conversion left the log as it was"
    assert np.array_equal(first, again) and accelerated.calls == {"backend": 0, "torch": 2}


@pytest.fixture(scope="module")
def face_cache(tmp_path_factory) -> Path:
    """One cache folder for both restorers: the parser, the same network for both, is converted once."""
    return tmp_path_factory.mktemp("face-backends")


@pytest.mark.integration
@pytest.mark.xdist_group("face-backends")  # one process, so that both use face_cache
@pytest.mark.parametrize("face_model", ["tiny-gfpgan", "tiny-restoreformer"])
def test_face_restorer_and_parser_run_on_openvino_with_torchs_result(
    enhancer, tiny_faces, face_cache, monkeypatch, face_model
):
    forced = backend_enhancer(enhancer, face_cache, "openvino")
    for app in (forced, enhancer):  # random detectors find no faces: give both the same one
        monkeypatch.setattr(app.faces, "detect", lambda source, on_wait=None: [Face(LANDMARKS)])
    image = to_uint8(gradient(96, 128, seed=2))
    options = Options(model="tiny-srvgg", precision="fp32", face_enhance=True, face_model=face_model)
    forced.run(image, options)  # on torch, while OpenVINO builds them
    helpers = [
        forced.engine.helper(remaster.get_model(name, kind), lambda module: module)
        for name, kind in ((face_model, "face_restorer"), (PARSER, "face_parser"))
    ]
    assert all(isinstance(helper, Accelerated) and helper.wait(timeout=300) for helper in helpers)
    assert [helper.state for helper in helpers] == ["chosen", "chosen"], "forced: used without measuring"
    ours, report = forced.run(image, options)
    on_torch, _ = enhancer.run(image, options)
    assert report.faces_restored == 1 and all(helper.calls["backend"] == 1 for helper in helpers)
    assert np.abs(ours.astype(int) - on_torch).max() <= 1, "fp32 is exact on every backend"
    assert np.abs(ours.astype(int) - forced.enhance(image, model="tiny-srvgg", precision="fp32")).max() > 8


@pytest.mark.integration
def test_the_face_detector_runs_on_openvino_and_finds_torchs_faces(finding, tmp_path):
    forced = backend_enhancer(finding, tmp_path, "openvino")
    image = gradient(256, 384, seed=5)
    first = forced.faces.detect(image)  # on torch, while OpenVINO builds it
    detector = forced.engine.helper(remaster.get_model(DETECTOR, "face_detector"), lambda module: module)
    assert isinstance(detector, Accelerated) and detector.wait(timeout=300) and detector.state == "chosen"
    for source in (image, gradient(300, 200, seed=6)):
        ours, on_torch = forced.faces.detect(source), finding.faces.detect(source)
        assert len(ours) == len(on_torch) > 2
        for face, reference in zip(ours, on_torch, strict=True):
            assert np.abs(face.landmarks - reference.landmarks).max() < 0.05
    assert detector.calls == {"backend": 2, "torch": 1} and len(first) == len(finding.faces.detect(image))


@pytest.mark.integration
def test_the_choice_is_measured_once_kept_and_reused(enhancer, tmp_path):
    spec = remaster.get_model("tiny-srvgg")
    measuring = backend_enhancer(enhancer, tmp_path, "auto")
    measuring.run(gradient(24, 24), Options(model=spec.name, precision="fp32"))
    first = settle(measuring.engine, spec, "fp32")
    assert first.speedup is not None and first.state in ("chosen", "torch")
    kept = json.loads((tmp_path / "cache" / "backends.json").read_text())
    processor = measuring.engine.processor.key
    key = next(key for key in kept if key.startswith("tiny-srvgg|") and key.endswith(f"|cpu|float32|{processor}"))
    assert kept[key]["runtime"] == ("openvino" if first.state == "chosen" else "torch")
    assert kept[key]["pairs"] >= 3 and set(kept[key]["seconds_per_pixel"]) == {"torch", "openvino"}
    if kept[key]["load"] is not None and kept[key]["load"] >= 0.4:
        return  # measured under heavy load: measured again by the next process (test_a_decision_under_heavy_load…)
    later = backend_enhancer(enhancer, tmp_path, "auto")  # another process, the same cache
    reused = later.engine.network(spec, "fp32").accelerated
    if kept[key]["runtime"] == "torch":
        assert reused.state == "torch", "nothing built again"
    else:
        later.run(gradient(24, 24), Options(model=spec.name, precision="fp32"))
        assert reused.wait(timeout=300) and reused.state == "chosen" and reused.speedup is None, "not measured again"


@pytest.mark.integration
def test_a_converted_network_is_kept_on_disk_and_a_later_process_reads_it(enhancer, tmp_path, monkeypatch):
    import openvino

    spec = remaster.get_model("tiny-srvgg")
    options = Options(model=spec.name, precision="fp32")
    first = backend_enhancer(enhancer, tmp_path, "openvino")
    first.run(gradient(24, 24), options)
    assert settle(first.engine, spec, "fp32").state == "chosen"
    kept = list((tmp_path / "cache" / "openvino").glob("*.xml"))
    assert len(kept) == 1 and kept[0].name.endswith("-anyx3xanyxany.xml") and kept[0].with_suffix(".bin").is_file()
    assert not [path for path in kept[0].parent.iterdir() if path.name.startswith(".")], "nothing half-written left"

    def converted_again(*args, **kwargs):
        raise RuntimeError("converted again")

    monkeypatch.setattr(openvino, "convert_model", converted_again)
    later = backend_enhancer(enhancer, tmp_path, "openvino")  # another process, the same cache
    image = gradient(30, 20, seed=3)
    later.run(image, options)
    accelerated = settle(later.engine, spec, "fp32")
    assert accelerated.state == "chosen", "read from disk, not converted"
    ours = later.run(image, options)[0]
    assert accelerated.calls["backend"] == 1 and np.abs(ours - enhancer.run(image, options)[0]).max() < 1e-4


@pytest.mark.integration
def test_what_remaster_logs_while_openvino_converts_is_not_lost(enhancer, tmp_path, monkeypatch, caplog):
    import openvino
    from openvino.tools.ovc.logger import init_logger

    convert = openvino.convert_model

    def converting(*args, **kwargs):
        init_logger("ERROR", verbose=False, python_api_used=True)  # what the converter does first
        logging.getLogger("remaster.pipeline").info("another request's result")
        return convert(*args, **kwargs)

    monkeypatch.setattr(openvino, "convert_model", converting)
    caplog.set_level(logging.INFO)
    spec = remaster.get_model("tiny-srvgg")
    forced = backend_enhancer(enhancer, tmp_path, "openvino")
    forced.run(gradient(20, 20), Options(model=spec.name, precision="fp32"))
    assert settle(forced.engine, spec, "fp32").state == "chosen"
    assert "another request's result" in caplog.text and "built on openvino" in caplog.text
    assert logging.getLogger().level == logging.INFO and logging.getLogger("remaster").level == logging.NOTSET


def test_remaster_backend_torch_is_todays_path(enhancer, tmp_path):
    plain = backend_enhancer(enhancer, tmp_path, "torch")
    assert plain.engine.network(remaster.get_model("tiny-srvgg"), "bf16").accelerated is None
    with pytest.raises(ValueError, match="REMASTER_BACKEND must be one of auto, torch, compiled, openvino"):
        remaster.Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_BACKEND": "cuda-magic"})


@pytest.mark.integration
def test_a_stop_ends_an_openvino_run(enhancer, tmp_path):
    forced = backend_enhancer(enhancer, tmp_path, "openvino")
    spec = remaster.get_model("tiny-rrdb-x4")
    forced.run(gradient(16, 16), Options(model=spec.name, precision="fp32"))
    settle(forced.engine, spec, "fp32")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(remaster.StoppedError):
        forced.run(gradient(64, 64), Options(model=spec.name, precision="fp32", tile=0), cancel=cancel)


@pytest.mark.parametrize(("slowdown", "used"), [(0, True), (2, False)])
def test_a_backend_is_used_only_if_it_measured_faster_than_torch(slowdown, used, tmp_path):
    """A backend that answers at once is taken; one that does the work twice over (half torch's speed) is not."""
    module = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 3, 3, padding=1)).eval()

    def build(module: nn.Module, example: torch.Tensor):
        with torch.inference_mode():
            answer = module(example)

        def run(batch: torch.Tensor) -> torch.Tensor:
            for _ in range(slowdown):
                module(batch)
            return answer

        return run

    choices = KeptTable(tmp_path / "backends.json", "backend choices")
    accelerated = Accelerated(module, "the test network", "fake", build, choices, key="net")
    batch = torch.rand(1, 3, 96, 96)
    with torch.inference_mode():
        accelerated(batch)
        assert accelerated.wait(timeout=60)
        assert accelerated.state == ("chosen" if used else "torch")
        assert choices.get("net")["runtime"] == ("fake" if used else "torch")
        accelerated(batch)
    assert accelerated.calls == ({"backend": 1, "torch": 1} if used else {"backend": 0, "torch": 2})


def test_a_runtime_is_chosen_by_what_the_settings_force_and_what_suits(caplog):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    settings = remaster.Settings.from_env(env={"REMASTER_DEVICE": "cpu"})
    assert choose(settings, cpu, torch.float32).name == "openvino"
    assert choose(settings, cpu, torch.float16).name == "torch", "OpenVINO takes fp32 and bf16 on a CPU"
    on_cuda = "tensorrt" if get_runtime("tensorrt").available() else "torch"
    assert choose(settings, cuda, torch.float16).name == on_cuda
    compiling = replace(settings, compile=True)
    assert choose(compiling, cpu, torch.float32).name == "compiled"
    assert choose(compiling, cpu, torch.float32, helper=True).name == "openvino", "helpers are never compiled"
    assert not choose(compiling, cpu, torch.float32).keeps_stop_points
    forced = replace(settings, backend="compiled")
    assert choose(forced, cpu, torch.float32, label="net").name == "torch"
    assert "net runs on torch: REMASTER_BACKEND asks for compiled, but REMASTER_COMPILE is off" in caplog.text
    assert choose(replace(forced, compile=True), cpu, torch.float32, helper=True).name == "torch"
    assert choose(replace(settings, backend="openvino"), cuda, torch.float16).name == "openvino", "forced is forced"


def test_adding_a_runtime_is_adding_one_object(monkeypatch):
    from remaster import runtimes

    class Always(runtimes.Runtime):
        name, display_name, preference = "always", "Always", 99

        def suits(self, settings, device, dtype):
            return dtype == torch.float32

        def runner(self, module, placement):
            return module

    monkeypatch.setattr(runtimes, "_runtimes", dict(runtimes._runtimes))
    always = runtimes.register_runtime(Always())
    settings = remaster.Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_BACKEND": "always"})
    assert runtimes.choose(settings, torch.device("cpu"), torch.bfloat16) is always, "forced"
    automatic = replace(settings, backend="auto")
    assert runtimes.choose(automatic, torch.device("cpu"), torch.float32) is always, "the most preferred that suits"
    assert runtimes.choose(automatic, torch.device("cpu"), torch.bfloat16).name == "openvino"
    with pytest.raises(ValueError, match="already registered"):
        runtimes.register_runtime(Always())


def test_the_kept_decision_is_keyed_by_the_processor_as_remaster_cpu_flags_pretends_it(enhancer, tmp_path):
    spec = remaster.get_model("tiny-srvgg")
    avx2, avx512 = frozenset({"avx2", "fma"}), frozenset({"avx2", "avx512f", "avx512_bf16"})

    def engine(flags: frozenset[str]):
        return enhancer.with_settings(backend="auto", cache_dir=tmp_path / "cache", cpu_flags=flags).engine

    first = engine(avx2)
    assert first.processor.key.endswith("(avx2)")
    assert engine(avx512).processor.key.endswith("(avx2 avx512f avx512_bf16)")
    decided = first.network(spec, "fp32").accelerated
    assert decided.state == "waiting"
    first.backends.put(decided._key, {"runtime": "torch", "seconds_per_pixel": {"torch": 1e-6}, "load": 0.0})
    assert engine(avx2).network(spec, "fp32").accelerated.state == "torch", "the same CPU: kept"
    other = engine(avx512)
    assert other.network(spec, "fp32").accelerated.state == "waiting", "another CPU: measured anew"
    assert other.network(spec, "auto").dtype == torch.bfloat16, "and it has bf16"
    pretending = remaster.Settings.from_env(env={"REMASTER_DEVICE": "cpu", "REMASTER_CPU_FLAGS": "AVX2, fma"})
    assert pretending.cpu_flags == avx2


def fake_runtime(slow: threading.Event, times: int = 3):
    """A runtime that answers at once, or, once ``slow`` is set, does the network's work ``times`` over."""

    def build(module: nn.Module, example: torch.Tensor):
        def run(batch: torch.Tensor) -> torch.Tensor:
            if slow.is_set():
                for _ in range(times):
                    module(batch)
            return batch

        return run

    return build


def test_a_kept_decision_is_measured_again_when_requests_run_at_another_speed(tmp_path, monkeypatch, caplog):
    from remaster.runtimes import measured

    monkeypatch.setattr(measured, "_RECHECK_EVERY", 0.0)
    caplog.set_level(logging.INFO)
    module = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 3, 3, padding=1)).eval()
    batch = torch.rand(1, 3, 128, 128)
    with torch.inference_mode():
        module(batch)
        started = time.perf_counter()
        module(batch)
        per_pixel = (time.perf_counter() - started) / batch[0, 0].numel()
    choices = KeptTable(tmp_path / "backends.json", "backend choices")
    # As an earlier process measured it: three times torch's speed, on a quiet machine.
    kept = {"runtime": "fake", "speedup": 3.0, "seconds_per_pixel": {"torch": per_pixel, "fake": per_pixel / 3}}
    choices.put("net", {**kept, "load": 0.0, "pairs": 3})
    slow = threading.Event()
    accelerated = Accelerated(module, "the test network", "fake", fake_runtime(slow), choices, key="net")
    with torch.inference_mode():
        accelerated(batch)
        assert accelerated.wait(timeout=60) and accelerated.state == "chosen" and accelerated.measurements == 0
        slow.set()  # the runtime now does the work three times over: nine times slower than it measured
        for _ in range(5):
            accelerated(batch)
        assert accelerated.wait(timeout=120)
    assert "ran at 0." in caplog.text and "measuring again" in caplog.text
    assert accelerated.measurements == 1 and accelerated.state == "torch" and choices.get("net")["runtime"] == "torch"


def test_a_decision_under_heavy_load_says_so_and_is_measured_again(tmp_path, monkeypatch, caplog):
    from remaster import timing

    monkeypatch.setattr(timing, "busy_share", lambda seconds: 0.9)
    caplog.set_level(logging.INFO)
    module = nn.Conv2d(3, 3, 3, padding=1).eval()
    choices = KeptTable(tmp_path / "backends.json", "backend choices")
    accelerated = Accelerated(module, "the test network", "fake", fake_runtime(threading.Event()), choices, key="net")
    with torch.inference_mode():
        accelerated(torch.rand(1, 3, 32, 32))
        assert accelerated.wait(timeout=60) and accelerated.state == "chosen"
    assert "measured while other work kept 90% of the processor busy" in caplog.text
    assert choices.get("net")["load"] == 0.9
    later = Accelerated(module, "the test network", "fake", fake_runtime(threading.Event()), choices, key="net")
    assert later.state == "waiting" and "measured under heavy load; measuring again" in caplog.text
