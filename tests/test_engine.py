"""The engine against the official RealESRGANer, tiled against whole, and precision choice."""

from __future__ import annotations

import argparse
import threading
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from realesrgan import RealESRGANer

import remaster
from remaster import Options
from remaster.architectures import ARCHITECTURES, SRVGGNetCompact, register_architecture
from remaster.engine import MAX_BLENDS, build_network, canonical_state_dict
from remaster.network import Processor, cpu_model, resolve_dtype
from remaster.tiling import plan_windows

from .images import gradient, to_uint8, to_uint16


def official(
    enhancer: remaster.Enhancer,
    name: str,
    image: np.ndarray,
    dni: float | None = None,
    pre_pad: int = 0,
    alpha_upsampler: str = "realesrgan",
) -> np.ndarray:
    """The official pipeline: RealESRGANer, whole image, fp32, BGR in and out."""
    spec = remaster.get_model(name)
    model_path = str(enhancer.store.path(spec.weights))
    dni_weight = None
    if dni is not None:
        model_path = [model_path, str(enhancer.store.path(spec.denoise_weights))]
        dni_weight = [dni, 1 - dni]
    upsampler = RealESRGANer(
        scale=spec.scale,
        model_path=model_path,
        dni_weight=dni_weight,
        model=build_network(spec),
        tile=0,
        pre_pad=pre_pad,
        half=False,
        device=torch.device("cpu"),
    )
    if image.ndim == 3:
        order = [2, 1, 0, 3][: image.shape[2]]
        output, _ = upsampler.enhance(np.ascontiguousarray(image[:, :, order]), alpha_upsampler=alpha_upsampler)
        return output[:, :, order] if output.ndim == 3 else output
    output, _ = upsampler.enhance(image)
    return output


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("tiny-rrdb-x4", to_uint8(gradient(23, 31))),
        ("tiny-rrdb-x4", to_uint8(gradient(17, 20, 4))),
        ("tiny-rrdb-x4", to_uint8(gradient(19, 22, 1))[:, :, 0]),
        ("tiny-rrdb-x2", to_uint8(gradient(21, 27))),
        ("tiny-srvgg", to_uint8(gradient(24, 18))),
    ],
    ids=["rrdb-x4-rgb", "rrdb-x4-rgba", "rrdb-x4-gray", "rrdb-x2-odd-size", "srvgg-rgb"],
)
def test_fp32_whole_image_matches_the_official_realesrganer(enhancer, name, image):
    ours = enhancer.enhance(image, model=name, outscale=remaster.get_model(name).scale, tile=0, precision="fp32")
    assert max_diff(ours, official(enhancer, name, image)) <= 1


def test_fp32_sixteen_bit_matches_the_official_realesrganer(enhancer):
    image = to_uint16(gradient(18, 21))
    ours = enhancer.enhance(image, model="tiny-rrdb-x4", outscale=4, tile=0, precision="fp32")
    assert ours.dtype == np.uint16
    assert max_diff(ours, official(enhancer, "tiny-rrdb-x4", image)) <= 257  # 1/255 of the 16-bit range


@pytest.mark.parametrize("strength", [0.0, 0.3, 1.0])
def test_denoise_strength_blends_weights_as_the_official_script_does(enhancer, strength):
    image = to_uint8(gradient(16, 20))
    ours = enhancer.enhance(image, model="tiny-general", tile=0, precision="fp32", denoise_strength=strength)
    assert max_diff(ours, official(enhancer, "tiny-general", image, dni=strength)) <= 1


def test_denoise_strength_changes_the_result(enhancer):
    image = to_uint8(gradient(16, 20))
    low = enhancer.enhance(image, model="tiny-general", precision="fp32", denoise_strength=0.0)
    high = enhancer.enhance(image, model="tiny-general", precision="fp32", denoise_strength=1.0)
    assert max_diff(low, high) > 2


@pytest.mark.parametrize("name", ["tiny-rrdb-x4", "tiny-rrdb-x2", "tiny-srvgg"])
@pytest.mark.parametrize(
    ("height", "width", "tile"), [(70, 50, 32), (65, 33, 32), (1, 77, 32), (45, 1, 32), (90, 90, 64)]
)
def test_tiled_output_matches_whole_image_output(enhancer, name, height, width, tile):
    image = gradient(height, width, seed=height + width)
    whole = enhancer.enhance(image, model=name, tile=0, precision="fp32", outscale=remaster.get_model(name).scale)
    tiled = enhancer.enhance(image, model=name, tile=tile, precision="fp32", outscale=remaster.get_model(name).scale)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-4


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_stays_close_to_fp32(enhancer, precision):
    image = gradient(24, 24)
    exact, exact_report = enhancer.run(image, Options(model="tiny-rrdb-x4", tile=0, precision="fp32"))
    reduced, report = enhancer.run(image, Options(model="tiny-rrdb-x4", tile=0, precision=precision))
    assert exact_report.precision == "float32"
    assert report.precision == {"bf16": "bfloat16", "fp16": "float16"}[precision]
    difference = np.abs(reduced - exact).max()
    assert 0 < difference < 0.03


def test_auto_precision_follows_the_device_and_the_cpu_flags():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_dtype("auto", cpu, flags=frozenset({"avx512f", "avx2"})) == torch.float32
    assert resolve_dtype("auto", cpu, flags=frozenset({"avx512f", "avx512_bf16"})) == torch.bfloat16
    assert resolve_dtype("auto", cpu, flags=frozenset({"amx_bf16", "amx_tile"})) == torch.bfloat16
    assert resolve_dtype("auto", cuda) == torch.float16
    assert resolve_dtype("fp32", cpu, flags=frozenset({"avx512_bf16"})) == torch.float32
    assert resolve_dtype("int8", cpu, flags=frozenset({"avx512_bf16"})) == torch.float32, "int8's runtime quantizes"
    with pytest.raises(remaster.InvalidOptionError, match="precision must be one of"):
        resolve_dtype("fp8", cpu)


def test_the_processor_is_named_with_the_flags_that_decide_what_runs_fastest():
    cpu = torch.device("cpu")
    laptop = Processor.of(cpu, frozenset({"sse2", "avx2", "fma", "f16c"}))
    server = Processor.of(cpu, frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}))
    assert laptop.key.endswith("(avx2)") and not laptop.vnni
    assert server.key.endswith("(avx2 avx512f avx512_bf16 amx_bf16 amx_int8 avx512_vnni)") and server.vnni
    assert Processor.of(cpu, server.flags, bf16=False).key.endswith("(avx2 avx512f amx_int8 avx512_vnni)")
    assert laptop.name == server.name == cpu_model(), "the model name is the CPU's own"


class FullPrecisionOnly(SRVGGNetCompact):
    name = "SRVGGNetCompact, fp32 only (tests)"
    precisions = ("fp32",)


def test_a_precision_the_architecture_does_not_support_runs_in_fp32(enhancer, tiny_models):
    cpu = torch.device("cpu")
    assert resolve_dtype("bf16", cpu, supported=("fp32",)) == torch.float32
    assert resolve_dtype("auto", cpu, flags=frozenset({"avx512_bf16"}), supported=("fp32",)) == torch.float32
    if FullPrecisionOnly.name not in ARCHITECTURES:
        register_architecture(FullPrecisionOnly())
    spec = replace(tiny_models["tiny-srvgg"].spec, name="tiny-srvgg-fp32-only", architecture=FullPrecisionOnly.name)
    with remaster.MODELS.extended(spec):
        assert enhancer.engine.network(spec, "bf16").dtype == torch.float32
        _, report = enhancer.run(to_uint8(gradient(8, 8)), Options(model=spec.name, precision="fp16"))
    assert report.precision == "float32"
    assert remaster.get_model("GFPGANv1.4").architecture.precisions == ("fp32",)


def test_networks_are_loaded_once_and_reused(enhancer):
    spec = remaster.get_model("tiny-srvgg")
    first = enhancer.engine.network(spec, "fp32")
    assert enhancer.engine.network(spec, "fp32") is first
    assert enhancer.engine.network(spec, "bf16") is not first
    assert next(first.module.parameters()).is_contiguous(memory_format=torch.channels_last)


def test_blended_denoise_networks_are_kept_for_the_last_few_strengths(enhancer):
    spec = remaster.get_model("tiny-general")
    engine = remaster.Enhancer(enhancer.settings, enhancer.store).engine
    first = engine.network(spec, "fp32", 0.25)
    assert engine.network(spec, "fp32", 0.25) is first and engine.network(spec, "fp32", 0.5) is not first
    for index in range(MAX_BLENDS):
        engine.network(spec, "fp32", index / 100)
    assert engine.network(spec, "fp32", 0.25) is not first, "the oldest blend was let go"
    assert sum(1 for kept in engine.cached() if kept.denoise_strength != 1.0) == MAX_BLENDS
    unblended = engine.network(spec, "fp32", 1.0)
    for index in range(MAX_BLENDS + 2):
        engine.network(spec, "fp32", index / 50)
    assert engine.network(spec, "fp32", 1.0) is unblended, "the model's own weights are never let go"


def test_concurrent_tiled_calls_give_the_same_results_as_sequential_whole_ones(enhancer):
    images = [to_uint8(gradient(70 + i, 50, seed=i)) for i in range(4)]
    overlap = remaster.get_model("tiny-rrdb-x4").tile_overlap
    assert all(len(plan_windows(*image.shape[:2], 32, overlap)) >= 4 for image in images), "each runs in tiles"
    expected = [enhancer.enhance(image, model="tiny-rrdb-x4", precision="fp32", tile=0) for image in images]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = enhancer.enhance(images[index], model="tiny-rrdb-x4", precision="fp32", tile=32)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, image in enumerate(expected):
        assert max_diff(results[index], image) <= 1


def test_state_dicts_are_unwrapped_from_any_of_the_official_layouts():
    weight = torch.ones(2)
    for checkpoint in ({"params_ema": {"a": weight}}, {"params": {"a": weight}}, {"a": weight}, {"module.a": weight}):
        assert list(canonical_state_dict(checkpoint, "params_ema")) == ["a"]
    with pytest.raises(ValueError, match="Expected a state dict"):
        canonical_state_dict([weight], "params")


def test_weights_load_safely_and_strictly(tiny_models, settings, tmp_path):
    spec = tiny_models["tiny-srvgg"].spec
    state = build_network(spec).state_dict()
    del state["body.0.weight"]
    folder = tmp_path / "mine"
    folder.mkdir()
    torch.save({"params": state}, folder / "tiny-srvgg.pth")
    engine = remaster.Enhancer(replace(settings, weights_dir=folder)).engine
    with pytest.raises(remaster.WeightsUnavailableError, match="could not be loaded.*Missing key"):
        engine.network(spec)
    # Pickled objects other than tensors are refused, never executed.
    torch.save({"params": argparse.Namespace(payload=1)}, folder / "tiny-srvgg.pth")
    with pytest.raises(remaster.WeightsUnavailableError, match="could not be loaded.*[Ww]eights only load failed"):
        engine.network(spec)


def test_weights_of_another_architecture_are_named_as_such(tiny_models, settings, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    rrdb = tiny_models["tiny-rrdb-x4"].spec
    torch.save({"params": build_network(rrdb).state_dict()}, folder / "tiny-srvgg.pth")
    engine = remaster.Enhancer(replace(settings, weights_dir=folder)).engine
    with pytest.raises(remaster.WeightsUnavailableError, match="weights for a RRDBNet network, not SRVGGNetCompact"):
        engine.network(tiny_models["tiny-srvgg"].spec)


def test_gray_output_uses_the_official_luminance_weights(enhancer):
    image = to_uint8(gradient(16, 16, 1))[:, :, 0]
    gray = enhancer.enhance(image, model="tiny-srvgg", precision="fp32", tile=0)
    colour = enhancer.enhance(np.repeat(image[:, :, None], 3, axis=2), model="tiny-srvgg", precision="fp32", tile=0)
    assert gray.ndim == 2
    assert max_diff(gray, cv2.cvtColor(colour, cv2.COLOR_RGB2GRAY)) <= 1


@pytest.mark.parametrize(("name", "pre_pad"), [("tiny-rrdb-x4", 10), ("tiny-rrdb-x2", 7), ("tiny-srvgg", 3)])
def test_pre_pad_has_the_official_meaning(enhancer, name, pre_pad):
    image = to_uint8(gradient(19, 26, seed=pre_pad))
    scale = remaster.get_model(name).scale
    padded = enhancer.run(image, Options(model=name, outscale=scale, tile=0, precision="fp32", pre_pad=pre_pad))[0]
    assert max_diff(padded, official(enhancer, name, image, pre_pad=pre_pad)) <= 1
    plain = enhancer.run(image, Options(model=name, outscale=scale, tile=0, precision="fp32"))[0]
    assert max_diff(padded, plain) > 1, "the border the network saw changed the edge"


def test_the_bicubic_alpha_upsampler_has_the_official_meaning(enhancer):
    image = to_uint8(gradient(17, 21, 4, seed=2))
    options = Options(model="tiny-srvgg", tile=0, precision="fp32", alpha_upsampler="bicubic")
    ours = enhancer.run(image, options)[0]
    assert max_diff(ours, official(enhancer, "tiny-srvgg", image, alpha_upsampler="bicubic")) <= 1
    by_model = enhancer.run(image, Options(model="tiny-srvgg", tile=0, precision="fp32"))[0]
    assert max_diff(ours[:, :, :3], by_model[:, :, :3]) == 0 and max_diff(ours[:, :, 3], by_model[:, :, 3]) > 1


def test_a_tile_pad_smaller_than_the_model_needs_is_raised_and_said(enhancer):
    image = gradient(90, 70, seed=8)
    whole = enhancer.run(image, Options(model="tiny-rrdb-x4", tile=0, precision="fp32"))[0]
    raised, report = enhancer.run(image, Options(model="tiny-rrdb-x4", tile=32, precision="fp32", tile_pad=2))
    assert np.abs(raised - whole).max() < 1e-4 and "tile_pad 2 was raised to 24" in report.summary()
    wider, report = enhancer.run(image, Options(model="tiny-rrdb-x4", tile=32, precision="fp32", tile_pad=40))
    assert np.abs(wider - whole).max() < 1e-4 and "Note" not in report.summary()
