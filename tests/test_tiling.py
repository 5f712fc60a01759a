"""The tile scheduler: window plans, memory-sized tiles, out-of-memory retries, stopping."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import remaster
from remaster import Options, tiling
from remaster.tiling import choose_tiles, plan_windows, upscale

from .fixtures import slow_model
from .images import gradient, to_uint8


@pytest.mark.parametrize("uniform", [False, True])
@pytest.mark.parametrize(("height", "width", "tile", "multiple"), [(70, 45, 32, 1), (100, 64, 30, 2), (9, 300, 64, 1)])
def test_windows_cover_every_pixel_once_with_context_all_round(height, width, tile, multiple, uniform):
    overlap = 10
    covered = np.zeros((height, width), dtype=int)
    windows = plan_windows(height, width, tile, overlap, multiple, uniform)
    for w in windows:
        covered[w.core_rows, w.core_cols] += 1
        assert w.rows.start <= w.core_rows.start and w.core_rows.stop <= w.rows.stop
        assert w.core_rows.start - w.rows.start >= min(overlap, w.core_rows.start)
        assert w.rows.stop - w.core_rows.stop >= min(overlap, height - w.core_rows.stop)
        assert w.cols.start - w.core_cols.start <= 0 and w.core_cols.stop <= w.cols.stop
        assert w.core_cols.start - w.cols.start >= min(overlap, w.core_cols.start)
        assert w.cols.stop - w.core_cols.stop >= min(overlap, width - w.core_cols.stop)
        for edge in (w.rows.start, w.cols.start, w.core_rows.start, w.core_cols.start):
            assert edge % multiple == 0
        assert w.core_rows.stop - w.core_rows.start <= tile + multiple
    assert (covered == 1).all()
    if uniform:
        assert len({(w.rows.stop - w.rows.start, w.cols.stop - w.cols.start) for w in windows}) == 1


def test_cores_are_balanced_rather_than_leaving_a_sliver():
    windows = plan_windows(1030, 1030, 512, 64)
    sizes = {w.core_rows.stop - w.core_rows.start for w in windows}
    assert sizes == {344, 342}, "three even cores, not 512 + 512 + 6"
    assert plan_windows(500, 400, 0, 64) == plan_windows(500, 400, 600, 64)
    assert len(plan_windows(500, 400, 0, 64)) == 1


MAX_BATCH = 64


class OutOfMemoryAbove(nn.Module):
    """Stands in for a network on a device with little memory: large windows raise as CUDA's allocator does."""

    def __init__(
        self,
        inner: nn.Module,
        max_side: int,
        error: type[BaseException] = torch.OutOfMemoryError,
        max_batch: int = MAX_BATCH,
    ):
        super().__init__()
        self.inner, self.max_side, self.error, self.max_batch = inner, max_side, error, max_batch
        self.sides, self.batches = [], []

    def forward(self, x):
        self.sides.append(max(x.shape[-2:]))
        self.batches.append(x.shape[0])
        if max(x.shape[-2:]) > self.max_side or x.shape[0] > self.max_batch:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def wrapped_out_of_memory(message: str) -> RuntimeError:
    """Out of memory inside another error, as torch.compile's backends report it."""
    error = RuntimeError("the compiled graph failed")
    error.__cause__ = torch.OutOfMemoryError(message)
    return error


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError, wrapped_out_of_memory])
def test_out_of_memory_shrinks_the_tile_and_returns_the_full_correct_image(enhancer, error):
    spec = remaster.get_model("tiny-rrdb-x4")
    network = enhancer.engine.network(spec, "fp32")
    image = gradient(160, 150, seed=5)
    expected = upscale(network, image, tile=0)
    limited = replace(network, module=OutOfMemoryAbove(network.module, max_side=120, error=error))
    result = upscale(limited, image, tile=0)
    assert limited.module.sides[0] == 160, "tried the whole image first"
    assert max(limited.module.sides[1:]) <= 120, "then only windows that fit"
    assert np.abs(result - expected).max() < 1e-4


def test_out_of_memory_at_the_smallest_tile_is_a_clear_error_not_a_partial_image(enhancer):
    network = enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32")
    starved = replace(network, module=OutOfMemoryAbove(network.module, max_side=10))
    with pytest.raises(remaster.OutOfMemoryError, match="Not enough memory"):
        upscale(starved, gradient(300, 300), tile=0)


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(enhancer):
    network = enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32")
    broken = replace(network, module=OutOfMemoryAbove(network.module, max_side=0, error=RuntimeError))
    broken.module.error = lambda message: RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        upscale(broken, gradient(40, 40), tile=0)


def test_automatic_tiles_follow_the_free_memory(enhancer, monkeypatch):
    network = enhancer.engine.network(remaster.get_model("tiny-rrdb-x4"), "fp32")
    monkeypatch.setattr(tiling, "available_memory", lambda device: 10**12)
    assert tiling.auto_tile(network, 200, 200) == (0, 0), "plenty of memory: the whole image at once"
    budget = int(network.bytes_per_pixel * 150 * 150)
    monkeypatch.setattr(tiling, "available_memory", lambda device: budget)
    tiles = tiling.auto_tile(network, 400, 400)
    windows = plan_windows(400, 400, tiles, network.overlap)
    assert len(windows) > 1
    assert max((w.rows.stop - w.rows.start) * (w.cols.stop - w.cols.start) for w in windows) <= 150 * 150
    monkeypatch.setattr(tiling, "available_memory", lambda device: 1000)
    assert tiling.auto_tile(network, 400, 400) == (64, 64), "never below the smallest tile"


@pytest.mark.parametrize(("name", "height", "width"), [("tiny-rrdb-x2", 97, 131), ("tiny-srvgg", 100, 90)])
def test_batches_of_equal_windows_give_the_whole_image(enhancer, name, height, width):
    """The path CUDA takes (uniform windows, several at once), run on the CPU."""
    network = enhancer.engine.network(remaster.get_model(name), "fp32")
    image = gradient(height, width, seed=3)
    whole = upscale(network, image, tile=0)
    counted = replace(network, module=OutOfMemoryAbove(network.module, max_side=10**6))
    batched = upscale(counted, image, tile=32, uniform=True, batch=4)
    assert max(counted.module.batches) == 4 and len(counted.module.batches) < len(plan_windows(height, width, 32, 0))
    assert np.abs(batched - whole).max() < 1e-4


def test_out_of_memory_with_several_windows_at_once_halves_the_batch_first(enhancer):
    network = enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32")
    image = gradient(120, 120, seed=4)
    expected = upscale(network, image, tile=0)
    limited = replace(network, module=OutOfMemoryAbove(network.module, max_side=10**6, max_batch=2))
    result = upscale(limited, image, tile=32, uniform=True, batch=8)
    assert limited.module.batches[:2] == [8, 4] and max(limited.module.batches[2:]) == 2
    assert np.abs(result - expected).max() < 1e-4


def test_an_automatic_rectangular_tiling_that_runs_out_of_memory_is_retried_smaller(enhancer, monkeypatch):
    network = enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32")
    image = gradient(300, 200, seed=6)
    budget = int(network.bytes_per_pixel * 200 * 160)
    monkeypatch.setattr(tiling, "available_memory", lambda device: budget)
    assert tiling.auto_tile(network, 300, 200) != (0, 0), "strips, not the whole image"
    expected = upscale(network, image, tile=0)
    limited = replace(network, module=OutOfMemoryAbove(network.module, max_side=100))
    assert np.abs(upscale(limited, image, tile=None) - expected).max() < 1e-4


def test_the_cheapest_tiling_is_chosen_strips_when_they_fit():
    assert choose_tiles(1024, 1024, 64, 1, 600_000) == (512, 0), "two full-width strips: one cut, not two"
    assert choose_tiles(1024, 1024, 64, 1, 2_000_000) == (0, 0)
    rows, cols = choose_tiles(4000, 3000, 64, 1, 700_000)
    windows = plan_windows(4000, 3000, (rows, cols), 64)
    assert max((w.rows.stop - w.rows.start) * (w.cols.stop - w.cols.start) for w in windows) <= 700_000
    area = sum((w.rows.stop - w.rows.start) * (w.cols.stop - w.cols.start) for w in windows)
    square = plan_windows(4000, 3000, 700, 64)
    assert area <= sum((w.rows.stop - w.rows.start) * (w.cols.stop - w.cols.start) for w in square)
    assert choose_tiles(1000, 1000, 64, 1, 10) == (64, 64)


def test_a_cancelled_request_stops_between_tiles(enhancer):
    cancel = threading.Event()
    tiles = []

    def progress(fraction, desc):
        tiles.append(fraction)
        if len(tiles) == 3:
            cancel.set()

    with pytest.raises(remaster.StoppedError, match="cancelled"):
        enhancer.run(gradient(200, 200), Options(model="tiny-srvgg", tile=32), progress=progress, cancel=cancel)
    upscaling = [f for f in tiles if 0 < f < 0.95]
    assert 2 <= len(upscaling) <= 4, "stopped at the next tile, not at the end"


@pytest.mark.integration
def test_a_request_over_the_time_limit_is_stopped(enhancer, tiny_models):
    limited = enhancer.with_settings(time_limit=1)
    with slow_model(tiny_models, delay=0.3) as name:
        with pytest.raises(remaster.StoppedError, match="time limit of 1 s"):
            limited.enhance(to_uint8(gradient(200, 200)), model=name, tile=32, precision="fp32")
        calls = limited.engine.network(remaster.get_model(name), "fp32").module.calls
    assert 3 <= len(calls) <= 6, "stopped at the first tile past the limit"


@pytest.fixture(scope="module")
def full_size(tmp_path_factory, enhancer):
    """The official architectures at full size with random weights, from a local weights folder."""
    from remaster.engine import build_network

    folder = tmp_path_factory.mktemp("full-size-weights")
    specs = {}
    for official in ("RealESRGAN_x4plus", "RealESRGAN_x2plus", "realesr-general-x4v3"):
        spec = remaster.get_model(official)
        torch.manual_seed(7)
        filename = f"random-{official}.pth"
        torch.save({spec.state_dict_key: build_network(spec).state_dict()}, folder / filename)
        specs[official] = replace(
            spec, name=f"random-{official}", weights=replace(spec.weights, filename=filename), denoise_weights=None
        )
    with remaster.MODELS.extended(*specs.values()):
        yield enhancer.with_settings(weights_dir=folder), {official: spec.name for official, spec in specs.items()}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("official", "height", "width", "tile"),
    [
        ("RealESRGAN_x4plus", 45, 38, 32),
        ("RealESRGAN_x4plus", 1, 150, 64),
        ("RealESRGAN_x2plus", 53, 150, 64),
        ("realesr-general-x4v3", 120, 97, 64),
        ("realesr-general-x4v3", 150, 1, 64),
    ],
)
def test_full_size_architectures_tile_without_seams(full_size, official, height, width, tile):
    """Random weights reach less far than trained ones (bench/benchmark.py checks those), so compare exactly."""
    enhancer, names = full_size
    image = gradient(height, width, seed=height)
    name = names[official]
    scale = remaster.get_model(name).scale
    whole = enhancer.enhance(image, model=name, precision="fp32", tile=0, outscale=scale)
    tiled = enhancer.enhance(image, model=name, precision="fp32", tile=tile, outscale=scale)
    assert tiled.shape == whole.shape == (height * scale, width * scale, 3)
    assert np.abs(tiled - whole).max() < 1e-4


def test_a_stop_ends_the_work_inside_a_tile_between_the_networks_layers(enhancer):
    network = enhancer.engine.network(remaster.get_model("tiny-rrdb-x4"), "fp32")
    convolutions = [layer for layer in network.module.modules() if isinstance(layer, nn.Conv2d)]
    cancel, ran = threading.Event(), []
    hooks = [layer.register_forward_hook(lambda layer, inputs, output: ran.append(layer)) for layer in convolutions]
    hooks.append(convolutions[3].register_forward_hook(lambda *args: cancel.set()))
    try:
        with pytest.raises(remaster.StoppedError, match="cancelled"):
            enhancer.run(gradient(40, 40), Options(model="tiny-rrdb-x4", tile=0, precision="fp32"), cancel=cancel)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(ran) == 4 < len(convolutions), "stopped at the next layer of the one window, not at its end"
    assert enhancer.enhance(gradient(8, 8), model="tiny-rrdb-x4").shape == (32, 32, 3), "and runs again after"
