"""The model table: the six official models, declared once, and registration rules."""

from __future__ import annotations

from dataclasses import replace

import pytest

import remaster
from remaster.architectures import ARCHITECTURES, Architecture, get_architecture, recognise, register_architecture
from remaster.engine import build_network
from remaster.registry import MODELS, get_model, model_names, register

OFFICIAL = {
    "RealESRGAN_x4plus": ("RRDBNet", 4, "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", 67040989),
    "RealESRNet_x4plus": ("RRDBNet", 4, "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df", None),
    "RealESRGAN_x4plus_anime_6B": (
        "RRDBNet",
        4,
        "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        17938799,
    ),
    "RealESRGAN_x2plus": ("RRDBNet", 2, "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", 67061725),
    "realesr-animevideov3": (
        "SRVGGNetCompact",
        4,
        "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
        2504012,
    ),
    "realesr-general-x4v3": (
        "SRVGGNetCompact",
        4,
        "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        4885111,
    ),
}


def test_the_six_official_models_are_registered_with_their_checksums():
    for name, (architecture, scale, sha256, size) in OFFICIAL.items():
        spec = MODELS[name]
        assert (spec.architecture.name, spec.scale, spec.weights.sha256, spec.weights.size) == (
            architecture,
            scale,
            sha256,
            size,
        )
        assert spec.weights.filename == f"{name}.pth"
        assert spec.weights.hub_repo == "leonelhs/realesrgan"
        assert spec.weights.url.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert spec.weights.url.endswith(f"/{name}.pth")
        assert spec.license == "BSD-3-Clause" and spec.description


def test_general_x4v3_blends_with_its_denoising_twin():
    spec = MODELS["realesr-general-x4v3"]
    assert spec.supports_denoise
    assert spec.denoise_weights.filename == "realesr-general-wdn-x4v3.pth"
    assert spec.denoise_weights.sha256 == "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca"
    assert not any(MODELS[name].supports_denoise for name in OFFICIAL if name != "realesr-general-x4v3")


@pytest.mark.parametrize(
    ("name", "first_conv_in", "blocks", "convs"),
    [
        ("RealESRGAN_x4plus", 3, 23, None),
        ("RealESRGAN_x4plus_anime_6B", 3, 6, None),
        ("RealESRGAN_x2plus", 12, 23, None),
        ("realesr-animevideov3", 3, None, 16),
        ("realesr-general-x4v3", 3, None, 32),
    ],
)
def test_entries_build_the_official_architectures(name, first_conv_in, blocks, convs):
    network = build_network(get_model(name))
    state = network.state_dict()
    if blocks is not None:
        assert state["conv_first.weight"].shape[1] == first_conv_in
        assert len(network.body) == blocks
    else:
        assert network.num_conv == convs
        assert state["body.0.weight"].shape[1] == first_conv_in


def test_unknown_model_names_the_known_ones():
    with pytest.raises(remaster.UnknownModelError, match="Choose one of: RealESRGAN_x4plus"):
        get_model("RealESRGAN_x16")


def test_registering_a_duplicate_name_is_an_error():
    with pytest.raises(ValueError, match="already registered"):
        register(MODELS["RealESRGAN_x4plus"])


def test_entries_are_frozen_data():
    spec = MODELS["RealESRGAN_x4plus"]
    with pytest.raises(AttributeError):
        spec.scale = 2
    with pytest.raises(TypeError):
        spec.arch_kwargs["num_block"] = 1
    assert list(model_names())[:6] == list(OFFICIAL)


def test_face_models_are_entries_of_the_same_table_with_their_checksums():
    expected = {
        "GFPGANv1.4": (
            "face_restorer",
            "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            "leonelhs/gfpgan",
        ),
        "GFPGANv1.3": (
            "face_restorer",
            "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
            "leonelhs/gfpgan",
        ),
        "detection_Resnet50_Final": (
            "face_detector",
            "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            "gmk123/GFPGAN",
        ),
        "parsing_parsenet": (
            "face_parser",
            "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            "gmk123/GFPGAN",
        ),
    }
    for name, (kind, sha256, repo) in expected.items():
        spec = MODELS[name]
        assert (spec.kind, spec.weights.sha256, spec.weights.hub_repo) == (kind, sha256, repo)
    assert MODELS["parsing_parsenet"].weights.hub_mirrors == ("camenduru/facexlib",)
    assert MODELS["RestoreFormer"].architecture.name == "RestoreFormer" and MODELS["RestoreFormer"].weights.md5
    assert model_names("face_restorer") == ("GFPGANv1.4", "GFPGANv1.3", "RestoreFormer")
    assert not set(model_names("upscaler")) & set(model_names("face_restorer"))


def test_a_weight_file_without_any_checksum_is_refused():
    from remaster.registry import WeightFile

    with pytest.raises(ValueError, match="needs a SHA-256 or MD5"):
        WeightFile(filename="x.pth", sha256=None, size=None, hub_repo="a/b", url="https://example.com/x.pth")


def test_the_table_can_be_extended_for_a_while_and_comes_back_as_it_was():
    before = list(MODELS.items())
    extra = replace(MODELS["realesr-animevideov3"], name="my-anime-model")
    swapped = replace(MODELS["RealESRGAN_x4plus"], description="a stand-in")
    with MODELS.extended(extra):
        assert get_model("my-anime-model") is extra and model_names("upscaler")[-1] == "my-anime-model"
        with pytest.raises(ValueError, match="already registered"), MODELS.extended(swapped):
            pass
        with MODELS.extended(swapped, replace=True):
            assert get_model("RealESRGAN_x4plus").description == "a stand-in"
        assert get_model("RealESRGAN_x4plus").description != "a stand-in"
    assert list(MODELS.items()) == before
    with pytest.raises(remaster.UnknownModelError):
        get_model("my-anime-model")


def test_entries_point_at_architecture_objects_that_know_their_networks():
    x2, x4, compact = (MODELS[n] for n in ("RealESRGAN_x2plus", "RealESRGAN_x4plus", "realesr-animevideov3"))
    assert x2.architecture is x4.architecture is get_architecture("RRDBNet") is ARCHITECTURES["RRDBNet"]
    assert x2.architecture.input_multiple(x2.arch_kwargs, x2.scale) == 2
    assert x4.architecture.input_multiple(x4.arch_kwargs, x4.scale) == 1
    assert compact.architecture.input_multiple(compact.arch_kwargs, compact.scale) == 1
    assert x4.architecture.feature_bytes_per_pixel(x4.arch_kwargs, 4, 2) > compact.architecture.feature_bytes_per_pixel(
        compact.arch_kwargs, 4, 2
    )
    assert MODELS["GFPGANv1.4"].architecture.precisions == ("fp32",) and "bf16" in x4.architecture.precisions


@pytest.mark.integration
@pytest.mark.parametrize(
    "name", ["RealESRGAN_x4plus", "realesr-animevideov3", "GFPGANv1.4", "RestoreFormer", "parsing_parsenet"]
)
def test_a_state_dict_is_recognised_as_its_own_architecture(name):
    spec = MODELS[name]
    assert recognise(build_network(spec).state_dict().keys()) is spec.architecture
    assert recognise({"some.other.weight"}) is None


def test_architectures_register_once_by_name():
    with pytest.raises(ValueError, match="already registered"):
        register_architecture(get_architecture("RRDBNet"))
    with pytest.raises(ValueError, match="needs a name"):
        register_architecture(Architecture())
    with pytest.raises(KeyError, match="No architecture 'Nope'"):
        get_architecture("Nope")
