"""Background compilation: callers never wait for it, never compile, and get eager's results."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from realesrgan.archs.srvgg_arch import SRVGGNetCompact
from torch._dynamo.utils import counters
from torch._inductor.compile_fx import compile_fx

import remaster
from remaster.engine import build_network
from remaster.runtimes.compiled import BackgroundCompiled

from .images import gradient, to_uint8


@pytest.fixture(scope="module")
def tiny_network(tiny_models) -> torch.nn.Module:
    spec = remaster.get_model("tiny-srvgg")
    torch.manual_seed(0)
    return build_network(spec).eval().requires_grad_(False).to(memory_format=torch.channels_last)


class CountingInductor:
    """The inductor backend, counting how often its compiled graphs run; ``broken`` makes them fail."""

    def __init__(self) -> None:
        self.runs = 0
        self.broken = False

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list) -> object:
        compiled = compile_fx(graph, example_inputs)

        def run(*args: object) -> object:
            if self.broken:
                raise RuntimeError("this graph broke")
            self.runs += 1
            return compiled(*args)

        return run


@pytest.fixture(scope="module")
def backend() -> CountingInductor:
    return CountingInductor()


@pytest.fixture(scope="module")
def compiled(tiny_network, backend) -> BackgroundCompiled:
    """Compiled from a first 1×3×20×28 call, used whatever its measured speed."""
    forward = BackgroundCompiled(tiny_network, "tiny-srvgg", backend=backend, min_speedup=0.0)
    usual_switch_interval = sys.getswitchinterval()
    first = batch(1, 20, 28)
    result = forward(first)
    assert forward.state == "compiling", "the first call ran eagerly while the compilation went on"
    assert sys.getswitchinterval() <= 1e-4, "requests get the GIL back quickly while compiling holds it"
    assert torch.equal(result, tiny_network(first))
    assert forward.wait(timeout=300)
    assert sys.getswitchinterval() == usual_switch_interval
    assert forward.state == "compiled" and forward.speedup > 0 and len(forward.compile_seconds) == 1
    return forward


def batch(count: int, height: int, width: int) -> torch.Tensor:
    with torch.inference_mode():  # as Network.__call__ calls it
        return torch.rand(count, 3, height, width).contiguous(memory_format=torch.channels_last)


def accepts(compiled: BackgroundCompiled, inputs: torch.Tensor) -> bool:
    with torch.inference_mode():  # grad mode is one of the guards
        return compiled.accepts(inputs)


def frames_compiled() -> int:
    return counters["frames"]["ok"]


@pytest.mark.integration
@pytest.mark.parametrize("size", [(20, 28), (31, 17), (40, 40), (2, 90)])
def test_one_graph_serves_other_sizes_without_compiling_again(compiled, tiny_network, backend, size):
    before, runs = frames_compiled(), backend.runs
    inputs = batch(1, *size)
    with torch.inference_mode():
        result = compiled(inputs)
        expected = tiny_network(inputs)
    assert backend.runs == runs + 1, "ran the compiled graph"
    assert frames_compiled() == before, "no compilation"
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-4)


def test_an_input_no_graph_accepts_runs_eagerly_now_and_is_compiled_for_next_time(compiled, tiny_network):
    inputs = batch(3, 24, 30)  # several windows at once: the first graph is for one
    assert not accepts(compiled, inputs)
    before, compiles = frames_compiled(), len(compiled.compile_seconds)
    with torch.inference_mode():
        result = compiled(inputs)
        assert frames_compiled() == before, "the caller did not compile"
        assert torch.equal(result, tiny_network(inputs))
    assert compiled.wait(timeout=300)
    assert len(compiled.compile_seconds) == compiles + 1 and accepts(compiled, inputs)
    assert accepts(compiled, batch(5, 36, 30)), "one graph for every batch of several"
    with torch.inference_mode():
        torch.testing.assert_close(compiled(inputs), tiny_network(inputs), atol=1e-5, rtol=1e-4)


def test_a_compiled_graph_that_fails_leaves_the_request_to_eager(tiny_network, backend, caplog):
    forward = BackgroundCompiled(tiny_network, "tiny-srvgg", backend=backend, min_speedup=0.0)
    inputs = batch(1, 22, 26)
    forward(inputs)
    assert forward.wait(timeout=300) and forward.state == "compiled"
    backend.broken = True
    try:
        with torch.inference_mode():
            assert torch.equal(forward(inputs), tiny_network(inputs))
            assert forward.state == "failed" and "compiled graph failed" in caplog.text
            forward(inputs)
    finally:
        backend.broken = False
    assert forward.calls["compiled"] == 0, "neither call got its result from the broken graph"


def test_running_out_of_memory_while_compiling_is_tried_again_later(caplog):
    attempts = []

    def short_of_memory_once(graph, example_inputs):
        attempts.append(1)
        if len(attempts) == 1:
            raise torch.OutOfMemoryError("out of memory (the first time)")
        return compile_fx(graph, example_inputs)

    network = SRVGGNetCompact(num_feat=4, num_conv=3).eval().requires_grad_(False)  # a graph of its own
    forward = BackgroundCompiled(network, "tiny-srvgg", backend=short_of_memory_once, min_speedup=0.0)
    inputs = batch(1, 20, 28)
    forward(inputs)
    assert forward.wait(timeout=300) and forward.state == "waiting"
    assert "Out of memory compiling tiny-srvgg" in caplog.text
    forward(inputs)
    assert forward.wait(timeout=300) and forward.state == "compiled" and len(attempts) == 2


def test_a_side_of_one_pixel_runs_eagerly_and_is_not_compiled_for(compiled, tiny_network):
    inputs = batch(1, 1, 30)
    calls, compiles = dict(compiled.calls), len(compiled.compile_seconds)
    with torch.inference_mode():
        assert torch.equal(compiled(inputs), tiny_network(inputs))
    assert compiled.wait(timeout=60) and len(compiled.compile_seconds) == compiles
    assert compiled.calls["eager"] == calls["eager"] + 1


def test_compiled_code_slower_than_eager_is_not_used(tiny_network):
    forward = BackgroundCompiled(tiny_network, "tiny-srvgg", min_speedup=1e9)
    forward(batch(1, 20, 28))
    assert forward.wait(timeout=300) and forward.state == "slower"
    forward(batch(1, 20, 28))
    assert forward.calls == {"compiled": 0, "eager": 2}


def test_a_compiler_that_fails_leaves_the_network_running_eagerly(caplog):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler here")

    # Graphs live in dynamo's cache on forward's code, shared by every network of one
    # architecture: a layer count no other test uses keeps theirs from serving this one.
    network = SRVGGNetCompact(num_feat=4, num_conv=1).eval().requires_grad_(False)
    forward = BackgroundCompiled(network, "tiny-srvgg", backend=broken_backend, min_speedup=0.0)
    inputs = batch(1, 20, 28)
    with torch.inference_mode():
        expected = network(inputs)
    assert torch.equal(forward(inputs), expected)
    assert forward.wait(timeout=300) and forward.state == "failed"
    assert "Compiling tiny-srvgg for (1, 3, 20, 28) inputs failed (backend='broken_backend' raised" in caplog.text
    assert torch.equal(forward(inputs), expected)
    assert forward.calls["compiled"] == 0


def test_a_torch_without_the_run_only_mode_runs_uncompiled(tiny_network, enhancer, monkeypatch, caplog):
    monkeypatch.delattr(torch._dynamo.eval_frame, "_debug_get_cache_entry_list")

    def no_compiling(*args, **kwargs):
        raise AssertionError("torch.compile was called")

    monkeypatch.setattr(torch, "compile", no_compiling)
    forward = BackgroundCompiled(tiny_network, "tiny-srvgg", min_speedup=0.0)
    inputs = batch(1, 20, 28)
    with torch.inference_mode():
        assert torch.equal(forward(inputs), tiny_network(inputs))
        assert torch.equal(forward(inputs), tiny_network(inputs))
    assert forward.state == "failed" and forward.wait(timeout=1) and forward.compile_seconds == []
    assert forward.calls == {"compiled": 0, "eager": 2} and not forward.accepts(inputs)
    assert "needs torch 2.6 or later" in caplog.text
    engine = enhancer.with_settings(compile=True, backend="auto").engine
    assert not engine.compile and "Networks run uncompiled" in caplog.text
    assert engine.network(remaster.get_model("tiny-srvgg"), "fp32").accelerated is None


def test_the_engine_compiles_kept_networks_when_settings_ask(enhancer):
    compiling = remaster.Enhancer(replace(enhancer.settings, compile=True, backend="auto"), enhancer.store)
    image = to_uint8(gradient(26, 34, seed=5))
    expected = enhancer.enhance(image, model="tiny-srvgg", precision="fp32")
    result = compiling.enhance(image, model="tiny-srvgg", precision="fp32")
    network = compiling.engine.network(remaster.get_model("tiny-srvgg"), "fp32")
    assert isinstance(network.accelerated, BackgroundCompiled) and network.accelerated.calls["eager"] == 1
    assert enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32").accelerated is None, "off on a CPU"
    assert network.accelerated.wait(timeout=300) and network.accelerated.state in ("compiled", "slower")
    network.accelerated.min_speedup = 0.0  # whatever this machine measured, run it compiled from here on
    network.accelerated.state = "compiled"
    again = compiling.enhance(image, model="tiny-srvgg", precision="fp32")
    assert network.accelerated.calls["compiled"] >= 1
    assert np.abs(again.astype(int) - expected).max() <= 1 and np.array_equal(result, expected)
