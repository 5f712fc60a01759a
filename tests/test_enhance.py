"""remaster.enhance end to end: every image mode, every scale, every kind of bad input."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageCms

import remaster
from remaster import Options, image_io, pixels

from . import images
from .fixtures import slow_convolutions
from .hubserver import Fault


@pytest.fixture
def run(enhancer):
    def call(image, **options):
        options = {"model": "tiny-srvgg", "precision": "fp32", **options}
        return enhancer.enhance(image, **options)

    return call


@pytest.mark.parametrize(
    ("make", "mode"),
    [
        (images.rgb, "RGB"),
        (images.rgba, "RGBA"),
        (images.gray, "L"),
        (images.gray_alpha, "LA"),
        (images.palette, "RGB"),
        (lambda: images.palette(transparent=True), "RGBA"),
        (images.cmyk, "RGB"),
        (lambda: images.rgb().convert("1"), "L"),
    ],
    ids=["RGB", "RGBA", "L", "LA", "P", "P-transparent", "CMYK", "1-bit"],
)
def test_pil_images_of_every_mode_come_back_right(run, make, mode):
    source = make()
    result = run(source)
    assert isinstance(result, Image.Image)
    assert result.mode == mode
    assert result.size == (source.width * 4, source.height * 4)


def test_alpha_is_upscaled_and_kept(run):
    result = run(images.rgba(20, 24))
    alpha = np.asarray(result.getchannel("A")).astype(float)
    # Random test weights add noise; the halves must still be told apart at once.
    assert alpha[:, 56:].mean() - alpha[:, :40].mean() > 150


def test_sixteen_bit_gray_stays_sixteen_bit(run, tmp_path):
    pixels = images.png16(tmp_path / "gray16.png", 1)
    result = run(tmp_path / "gray16.png")
    assert isinstance(result, Image.Image) and result.mode == "I;16"
    assert result.size == (96, 80)
    values = np.asarray(result)
    assert values.dtype == np.uint16 and len(np.unique(values)) > 256, "more levels than 8 bits can hold"
    assert abs(values.mean() / 65535 - pixels.mean() / 65535) < 0.05


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_files_come_back_as_uint16_arrays(run, tmp_path, channels):
    path = tmp_path / f"colour{channels}.png"
    pixels = images.png16(path, channels)
    result = run(path)
    assert isinstance(result, np.ndarray)
    assert result.dtype == np.uint16 and result.shape == (80, 96, channels)
    assert len(np.unique(result[:, :, 0])) > 256
    # Read at full depth and in RGB order: the same as giving the RGB pixels directly.
    assert np.array_equal(result, run(pixels))


def test_sixteen_bit_tiff_is_read_at_full_depth(run, tmp_path):
    import cv2

    pixels = images.to_uint16(images.gradient(12, 14))
    cv2.imwrite(str(tmp_path / "scan.tif"), pixels[:, :, ::-1])
    result = run(tmp_path / "scan.tif")
    assert result.dtype == np.uint16 and result.shape == (48, 56, 3)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [
        ((20, 24), np.uint8),
        ((20, 24, 1), np.uint8),
        ((20, 24, 2), np.uint8),
        ((20, 24, 3), np.uint16),
        ((20, 24, 4), np.uint8),
        ((20, 24, 3), np.float32),
        ((20, 24), np.float64),
    ],
)
def test_numpy_arrays_come_back_in_the_same_layout_and_dtype(run, shape, dtype):
    channels = shape[2] if len(shape) == 3 else 1
    pixels = images.gradient(20, 24, channels)
    array = {np.uint8: images.to_uint8, np.uint16: images.to_uint16}.get(dtype, lambda p: p.astype(dtype))(pixels)
    array = array.reshape(shape)
    result = run(array)
    assert isinstance(result, np.ndarray)
    assert result.dtype == dtype and result.shape == (80, 96) + shape[2:]


def test_a_path_gives_a_pil_image_with_its_icc_profile(run, tmp_path):
    profile = images.srgb_profile()
    path = images.save(images.rgb(), tmp_path / "tagged.png", icc_profile=profile)
    result = run(str(path))
    assert isinstance(result, Image.Image) and result.mode == "RGB"
    assert result.info.get("icc_profile") == profile


def test_exif_orientation_is_applied(run, tmp_path):
    path = images.exif_rotated_jpeg(tmp_path / "rotated.jpg", height=20, width=32)
    result = run(path)
    assert result.size == (20 * 4, 32 * 4), "portrait after applying orientation 6"


def test_cmyk_is_converted_through_its_icc_profile(run, tmp_path):
    rgb = images.rgb()
    # A CMYK image whose embedded profile is sRGB-based: ImageCms must be used (plain convert ignores it).
    profile = images.srgb_profile()
    cmyk = rgb.convert("CMYK")
    path = images.save(cmyk, tmp_path / "cmyk.jpg", icc_profile=profile, quality=95)
    decoded = image_io.decode(path, max_pixels=10**6)
    assert decoded.pixels.shape[2] == 3 and decoded.icc_profile is None
    plain = np.asarray(Image.open(path).convert("RGB"))
    try:
        managed = np.asarray(
            ImageCms.profileToProfile(
                Image.open(path),
                ImageCms.ImageCmsProfile(images.io.BytesIO(profile)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
        )
    except ImageCms.PyCMSError:
        managed = plain
    assert np.array_equal(decoded.pixels, managed)
    assert run(path).mode == "RGB"


@pytest.mark.parametrize(
    ("outscale", "expected"),
    [(1, (24, 20)), (2.5, (60, 50)), (3, (72, 60)), (4, (96, 80)), (8, (192, 160)), (1.1, (26, 22))],
)
def test_outscale_sets_the_output_size(run, outscale, expected):
    assert run(images.rgb(20, 24), outscale=outscale).size == expected


def test_output_size_rounds_down_and_absorbs_float_error():
    assert pixels.output_size(10, 3, 2.3) == (23, 6)
    assert pixels.output_size(1, 1, 1.5) == (1, 1)
    assert pixels.output_size(7, 9, 1.0) == (7, 9)


def test_shrinking_below_the_native_scale_does_not_alias():
    stripes = np.zeros((64, 64, 1), np.float32)
    stripes[:, ::2] = 1.0  # one-pixel stripes: any aliasing shows as a visible pattern
    shrunk = pixels.resize(stripes, (16, 16))
    assert np.abs(shrunk - 0.5).max() < 0.05
    enlarged = pixels.resize(stripes[:8, :8], (32, 32))
    assert enlarged.shape == (32, 32, 1) and enlarged.min() >= 0 and enlarged.max() <= 1


def test_progress_is_reported_from_zero_to_one(run):
    seen = []
    run(images.rgba(40, 40), tile=32, progress=lambda fraction, desc: seen.append((fraction, desc)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("alpha" in desc for _, desc in seen)
    assert len([1 for _, desc in seen if desc.startswith("Upscaling")]) >= 8, "one report per tile"


def test_progress_moves_within_one_tile_and_names_each_stage(enhancer, tiny_models):
    seen = []
    with slow_convolutions(tiny_models, delay=0.05) as slow:
        result, _ = enhancer.run(
            images.rgb(40, 40), Options(slow, tile=0), progress=lambda fraction, desc: seen.append((fraction, desc))
        )
    assert result.size == (160, 160)
    within = [fraction for fraction, desc in seen if desc == "Upscaling the image" and 0 < fraction < 0.95]
    assert len(within) >= 3 and within == sorted(within), "the one tile's convolutions, a quarter second apart"
    stages = [desc for _, desc in seen]
    assert stages[0].startswith("Loading") and stages[-1] == "Done" and "Upscaling the image" in stages


def test_a_runtime_that_waits_tells_its_progress_from_the_speed_measured(enhancer):
    import time

    import torch

    from remaster.network import REPORT_EVERY, Costs, waited

    network = enhancer.engine.network(remaster.get_model("tiny-srvgg"), "fp32")

    def waiting(batch):  # as OpenVINO's runner waits for its result, in steps
        for step in range(1, 5):
            time.sleep(REPORT_EVERY + 0.05)
            waited(step * (REPORT_EVERY + 0.05))
        return network.module(batch)

    pass_seconds = 4 * (REPORT_EVERY + 0.05)
    costs = Costs(macs_per_second=network.macs_per_pixel * 32 * 32 / pass_seconds)
    seen = []
    replace(network, accelerated=waiting, costs=costs)(torch.zeros(1, 3, 32, 32), progress=seen.append)
    assert seen == pytest.approx([0.25, 0.5, 0.75, 0.95]), "the time waited, as a share of the last pass's"
    assert costs.macs_per_second == pytest.approx(network.macs_per_pixel * 32 * 32 / pass_seconds, rel=0.2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"outscale": 0.5}, "outscale must be from 1 to 8"),
        ({"outscale": 9}, "outscale must be from 1 to 8"),
        ({"outscale": math.nan}, "outscale must be a number"),
        ({"outscale": "4"}, "outscale must be a number"),
        ({"tile": -1}, "tile must be 0"),
        ({"tile": 8}, "tile must be 0"),
        ({"tile": 100000}, "tile must be 0"),
        ({"tile": 64.5}, "tile must be a whole number"),
        ({"denoise_strength": 1.5}, "denoise_strength must be from 0 to 1"),
        ({"precision": "fp8"}, "precision must be one of"),
    ],
)
def test_out_of_range_options_are_refused_with_the_range(run, options, message):
    with pytest.raises(remaster.InvalidOptionError, match=message):
        run(images.rgb(), **options)


def test_unknown_model_lists_the_choices(run):
    with pytest.raises(remaster.UnknownModelError, match="Unknown model 'x'. Choose one of"):
        run(images.rgb(), model="x")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: (tmp / "empty.png").write_bytes(b"") or tmp / "empty.png", "the file is empty"),
        (
            lambda tmp: (tmp / "notes.png").write_text("not a picture") and tmp / "notes.png",
            "not one remaster can read",
        ),
        (lambda tmp: images.truncated(tmp / "cut.png", images.rgb(64, 64), "PNG"), "truncated or corrupt"),
        (lambda tmp: images.truncated(tmp / "cut.jpg", images.rgb(64, 64), "JPEG"), "truncated or corrupt"),
        (lambda tmp: images.truncated(tmp / "cut.webp", images.rgb(64, 64), "WEBP"), "truncated or corrupt|not one"),
        (lambda tmp: images.truncated(tmp / "cut.tif", images.rgb(64, 64), "TIFF"), "truncated or corrupt"),
        (
            lambda tmp: images.decompression_bomb_png(tmp / "bomb.png"),
            r"declares 3,600 MP, a possible decompression bomb, more than the limit of 16\.8 MP\. .*"
            "REMASTER_MAX_INPUT_PIXELS",
        ),
        (lambda tmp: images.decompression_bomb_png(tmp / "big.png", 5000, 5000), "more than the limit of 16.8 MP"),
        (
            lambda tmp: images.decompression_bomb_png(tmp / "huge.png", 10000, 10000),
            r"10000×10000 \(100\.0 MP\), more than the limit of 16\.8 MP\. .*REMASTER_MAX_INPUT_PIXELS",
        ),
        (lambda tmp: tmp / "missing.png", "No image file"),
    ],
    ids=[
        "empty",
        "text",
        "truncated-png",
        "truncated-jpeg",
        "truncated-webp",
        "truncated-tiff",
        "bomb",
        "too-big",
        "over-pillows-warning",
        "missing",
    ],
)
def test_bad_files_give_clear_messages(run, tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises((remaster.InvalidImageError, remaster.ImageTooLargeError), match=message):
        run(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 5), np.uint8), "C = 1, 2, 3 or 4"),
        (np.zeros((4, 4, 3), np.int32), "uint8, uint16 or float"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (None, "got NoneType"),
        (b"\x89PNG", "got bytes"),
    ],
)
def test_bad_arrays_and_objects_give_clear_messages(run, value, message):
    with pytest.raises(remaster.InvalidImageError, match=message):
        run(value)


def test_input_and_output_pixel_limits_are_enforced_before_any_work(enhancer, tiny_models):
    small = remaster.Enhancer(replace(enhancer.settings, max_input_pixels=400, max_output_pixels=20000), enhancer.store)
    with pytest.raises(remaster.ImageTooLargeError, match="more than the limit of 0.0 MP"):
        small.enhance(images.rgb(21, 20), model="tiny-srvgg")
    with pytest.raises(remaster.ImageTooLargeError, match="result would be 160×160"):
        small.enhance(images.rgb(20, 20), model="tiny-srvgg", outscale=8)
    assert small.engine.cached() == [], "refused before loading any network"
    assert small.enhance(images.rgb(20, 20), model="tiny-srvgg", outscale=4).size == (80, 80)


def test_weights_that_cannot_be_found_name_the_file_and_the_fix(settings, tiny_models, hub):
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-srvgg.pth")] = Fault(status=404)
    hub.faults["/releases/tiny-srvgg.pth"] = Fault(status=404)
    with pytest.raises(remaster.WeightsUnavailableError) as error:
        remaster.Enhancer(settings).enhance(images.rgb(), model="tiny-srvgg")
    assert "tiny-srvgg.pth is not available" in str(error.value)
    assert "set REMASTER_WEIGHTS_DIR" in str(error.value)


def test_with_settings_changes_limits_and_shares_the_loaded_networks(enhancer):
    strict = enhancer.with_settings(max_input_pixels=100)
    assert strict.engine is enhancer.engine and strict.store is enhancer.store
    assert strict.settings.max_input_pixels == 100 and enhancer.settings.max_input_pixels != 100
    with pytest.raises(remaster.ImageTooLargeError):
        strict.enhance(images.rgb(), model="tiny-srvgg")
    assert enhancer.enhance(images.rgb(), model="tiny-srvgg").size == (96, 80)


def test_with_settings_really_applies_changes_to_the_device_compilation_and_weight_sources(enhancer, tmp_path):
    elsewhere = enhancer.with_settings(weights_dir=tmp_path)
    assert elsewhere.store is not enhancer.store and elsewhere.store.settings.weights_dir == tmp_path
    assert elsewhere.engine is not enhancer.engine and elsewhere.engine.store is elsewhere.store
    compiling = enhancer.with_settings(compile=True)
    assert compiling.store is enhancer.store and compiling.engine is not enhancer.engine and compiling.engine.compile
    meta = enhancer.with_settings(device="meta")
    assert str(meta.engine.device) == "meta" and str(enhancer.engine.device) == "cpu"
    same = enhancer.with_settings(device="cpu", max_faces=3)
    assert same.engine is enhancer.engine, "an unchanged value changes nothing"


def test_the_public_function_takes_options_whole_or_by_name(enhancer):
    import inspect

    assert list(inspect.signature(remaster.enhance).parameters) == ["image", "options", "progress", "choices"]
    assert list(inspect.signature(remaster.Enhancer.enhance).parameters)[1:] == list(
        inspect.signature(remaster.enhance).parameters
    )
    image = images.rgb(20, 16)
    whole = enhancer.enhance(image, Options(model="tiny-srvgg", outscale=2, precision="fp32"))
    flat = enhancer.enhance(image, model="tiny-srvgg", outscale=2, precision="fp32")
    on_top = enhancer.enhance(image, Options(model="tiny-srvgg", outscale=3), outscale=2, precision="fp32")
    assert whole.size == (32, 40) and np.array_equal(np.asarray(whole), np.asarray(flat))
    assert np.array_equal(np.asarray(whole), np.asarray(on_top)), "choices by name go on top of a whole Options"
    with pytest.raises(TypeError, match="model='tiny-srvgg'"):
        enhancer.enhance(image, "tiny-srvgg")
    with pytest.raises(TypeError, match="sharpness"):
        enhancer.enhance(image, sharpness=2)
