"""Model files of any architecture spandrel knows, from a path, a folder, the Hub or a URL, run by remaster's engine."""

from __future__ import annotations

import io
import json
import os
import pickle
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import remaster
from remaster import Options
from remaster._compat import import_basicsr
from remaster.model_files import ModelFiles
from remaster.references import parse_reference

from . import images
from .fixtures import TEST_REPO

RRDBNet = import_basicsr("basicsr.archs.rrdbnet_arch").RRDBNet
SRVGGNetCompact = import_basicsr("realesrgan.archs.srvgg_arch").SRVGGNetCompact


def _span():
    from spandrel.architectures.SPAN import SPAN

    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)


def _swinir():
    from spandrel.architectures.SwinIR import SwinIR

    return SwinIR(
        img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[1], upscale=2, mlp_ratio=2,
        upsampler="pixelshuffle",
    )  # fmt: skip


def _realcugan():
    from spandrel.architectures.RealCUGAN import UpCunet2x

    return UpCunet2x(in_channels=3, out_channels=3)


def _old_esrgan():
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)


# name: (make the network, architecture spandrel names, scale, input channels)
ARCHITECTURES = {
    "esrgan-new-keys": (lambda: RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=32, scale=4), "ESRGAN", 4, 3),
    "esrgan-old-keys": (_old_esrgan, "ESRGAN", 4, 3),
    "compact": (lambda: SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4), "Compact", 4, 3),
    "span": (_span, "SPAN", 2, 3),
    "swinir-window-4": (_swinir, "SwinIR", 2, 3),
    "realcugan": (_realcugan, "RealCUGAN", 2, 3),
    "restoration-1x": (lambda: RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=32, scale=1), "ESRGAN", 1, 3),
    "gray-compact": (lambda: SRVGGNetCompact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2), "Compact", 4, 1),
}


def random_state(make, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    network = make()
    with torch.no_grad():  # random weights of a trained network's size: small, so activations stay in range
        for parameter in network.parameters():
            parameter.mul_(0.5)
    return {key: value.contiguous() for key, value in network.state_dict().items()}


def save_model(folder: Path, name: str, state: dict[str, torch.Tensor], suffix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"params_ema": state} if suffix == ".pth" else state, path)
    return path


@pytest.fixture
def files(settings):
    """ModelFiles on a fresh cache; every model it registers is unregistered afterwards."""
    before = set(remaster.MODELS)
    yield ModelFiles(settings)
    for name in set(remaster.MODELS) - before:
        remaster.unregister(name)


@pytest.fixture
def runner(enhancer, settings):
    """An enhancer whose engine keeps its measured overlaps in this test's own cache."""
    return enhancer.with_settings(cache_dir=settings.cache_dir, hub_cache_dir=settings.hub_cache_dir)


def spandrel_whole(path: Path, image: np.ndarray) -> np.ndarray:
    """spandrel's own call on the whole image, fp32: the reference result."""
    from spandrel import ModelLoader

    descriptor = ModelLoader().load_from_file(path).eval()
    batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    with torch.inference_mode():
        return descriptor(batch)[0].numpy().transpose(1, 2, 0)


@pytest.mark.integration
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_model_files_of_every_architecture_load_and_run_tiled_like_whole(files, runner, tmp_path, name, suffix):
    make, architecture, scale, channels = ARCHITECTURES[name]
    path = save_model(tmp_path / "models", name, random_state(make), suffix)
    spec = files.load(str(path))
    assert spec.name == name and spec.scale == scale and spec.architecture.arch_id == architecture
    assert spec.architecture.in_channels(spec.arch_kwargs) == channels and spec.kind == "upscaler"
    assert spec.weights.sha256[:12] in spec.description, "its SHA-256 is shown"
    image = images.gradient(40, 36, channels, seed=3)
    whole, report = runner.run(image, Options(model=spec.name, outscale=scale, tile=0, precision="fp32"))
    assert whole.shape == (40 * scale, 36 * scale, channels) and report.model == name
    reference = spandrel_whole(path, image)
    assert np.abs(whole.reshape(reference.shape) - reference).max() < 1e-4, "the network spandrel built, as it runs it"
    tiled = runner.run(image, Options(model=spec.name, outscale=scale, tile=32, precision="fp32"))[0]
    assert np.abs(tiled - whole).max() <= 2 / 255, "tiles with the measured overlap cannot be seen"


def test_a_colour_image_runs_through_a_gray_model_colour_by_colour(files, runner, tmp_path):
    make = ARCHITECTURES["gray-compact"][0]
    spec = files.load(str(save_model(tmp_path, "gray", random_state(make), ".pth")))
    rgba = images.to_uint8(images.gradient(20, 24, 4, seed=5))
    result = runner.run(rgba, Options(model=spec.name, precision="fp32"))[0]
    assert result.shape == (80, 96, 4)
    each = [runner.run(rgba[:, :, c], Options(model=spec.name, precision="fp32"))[0] for c in range(3)]
    assert np.abs(result[:, :, :3].astype(int) - np.stack(each, axis=2).astype(int)).max() <= 1


def test_precisions_follow_what_the_model_supports(files, runner, tmp_path):
    spec = files.load(str(save_model(tmp_path, "swin", random_state(_swinir), ".pth")))
    assert spec.architecture.supported_precisions(spec.arch_kwargs) == ("fp32", "bf16"), "SwinIR: no fp16"
    report = runner.run(images.gradient(20, 20), Options(model=spec.name, precision="fp16", tile=0))[1]
    assert report.precision == "float32"


def test_a_models_folder_registers_each_file_by_its_stem(settings, files, tmp_path):
    folder = tmp_path / "my-models"
    save_model(folder, "4x-Mine", random_state(ARCHITECTURES["compact"][0]), ".safetensors")
    save_model(folder, "2x-Span", random_state(_span), ".pth")
    (folder / "notes.txt").write_text("not a model")
    (folder / "broken.pth").write_bytes(b"not a checkpoint")
    loaded, failed = ModelFiles(replace(settings, models_dir=folder)).load_folder()
    assert [spec.name for spec in loaded] == ["2x-Span", "4x-Mine"]
    assert [name for name, _ in failed] == ["broken.pth"] and "not a model file" in failed[0][1]
    assert remaster.get_model("4x-Mine").scale == 4 and ModelFiles(replace(settings, models_dir=folder)).find("2x-Span")


def test_the_library_takes_a_model_file_a_hub_reference_and_a_folder_stem_as_the_command_line_does(
    hub, files, runner, settings, tmp_path, monkeypatch
):
    path = save_model(tmp_path / "loose", "4x-Loose", random_state(ARCHITECTURES["compact"][0]), ".pth")
    image = images.to_uint8(images.gradient(16, 12))
    by_path, report = runner.run(image, Options(model=str(path), outscale=4, precision="fp32"))
    assert by_path.shape == (64, 48, 3) and report.model == "4x-Loose", "the file, loaded and registered"
    assert np.array_equal(by_path, runner.enhance(image, model="4x-Loose", precision="fp32")), "then by its name"
    buffer = io.BytesIO()
    torch.save(random_state(_span, seed=4), buffer)
    hub.add(hub.hub_path(TEST_REPO, "community/lib-span.pth"), buffer.getvalue())
    assert runner.enhance(image, model=f"hf://{TEST_REPO}/community/lib-span.pth", outscale=2).shape == (32, 24, 3)
    pinned = json.loads(ModelFiles(runner.settings).ledger.path.read_text())
    assert pinned[f"hf://{TEST_REPO}/community/lib-span.pth@main"]["sha256"], "pinned like -n's downloads"
    folder = tmp_path / "my-models"
    save_model(folder, "my-model", random_state(ARCHITECTURES["compact"][0], seed=6), ".safetensors")
    monkeypatch.setenv("REMASTER_MODELS_DIR", str(folder))
    with_folder = runner.with_settings(models_dir=folder)
    assert with_folder.enhance(image, model="my-model").shape == (64, 48, 3), "a fine-tuned model in the folder"
    with pytest.raises(remaster.UnknownModelError, match="'not-there'.*stem in"):
        with_folder.enhance(image, model="not-there")
    with pytest.raises(remaster.InvalidModelError, match="No model file at"):
        runner.enhance(image, model=str(tmp_path / "missing.pth"))


def test_a_hub_reference_is_downloaded_and_pinned_to_its_revision(hub, files, runner):
    import json
    import shutil

    from .hubserver import COMMIT

    buffer = io.BytesIO()
    torch.save(random_state(_span), buffer)
    for revision in ("main", COMMIT):
        hub.add(hub.hub_path(TEST_REPO, "community/span-x2.pth", revision), buffer.getvalue())
    reference = f"hf://{TEST_REPO}/community/span-x2.pth"
    spec = files.load(reference)
    assert spec.name == "span-x2" and "the Hub" in spec.description
    pinned = json.loads(files.ledger.path.read_text())[f"{reference}@main"]
    assert pinned["revision"] == COMMIT and pinned["sha256"] == spec.weights.sha256
    assert runner.run(images.gradient(16, 16), Options(model=spec.name, outscale=2))[0].shape == (32, 32, 3)
    for revision in ("main", COMMIT):
        hub.add(hub.hub_path(TEST_REPO, "community/span-x2.pth", revision), b"X" * 100)
    shutil.rmtree(files.settings.hub_cache_dir)
    with pytest.raises(remaster.InvalidModelError, match="has changed since it was first loaded"):
        files.load(reference)
    assert hub.hits[hub.hub_path(TEST_REPO, "community/span-x2.pth", COMMIT)] >= 1, "pinned to the revision"


def test_a_url_is_downloaded_size_limited_and_a_changed_file_refused(hub, files, settings):
    buffer = io.BytesIO()
    torch.save(random_state(ARCHITECTURES["compact"][0]), buffer)
    url = hub.add("/models/compact-x4.pth", buffer.getvalue())
    spec = files.load(url)
    assert spec.name == "compact-x4" and spec.weights.path.is_file()
    assert hub.hits["/models/compact-x4.pth"] == 1 and files.load(url) is spec, "downloaded once"
    small = ModelFiles(replace(settings, max_model_mb=0, cache_dir=settings.cache_dir / "other"))
    with pytest.raises(remaster.InvalidModelError, match="larger than 0 MB"):
        small.load(url)
    torch.save(random_state(ARCHITECTURES["compact"][0], seed=9), buffer := io.BytesIO())
    hub.add("/models/compact-x4.pth", buffer.getvalue())
    spec.weights.path.unlink()
    with pytest.raises(remaster.InvalidModelError, match="has changed since it was first loaded"):
        files.load(url)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['REMASTER_TEST_MARKER']}",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(files, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("REMASTER_TEST_MARKER", str(marker))
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"conv.weight": _Payload()}}, path)  # as a checkpoint with a trap would be saved
    with pytest.raises(remaster.InvalidModelError, match="refused without running anything"):
        files.load(str(path))
    assert not marker.exists()


def test_files_that_are_no_model_of_a_known_kind_say_what_they_are(files, tmp_path):
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(remaster.InvalidModelError, match="not a model file: it is neither a file torch.save wrote"):
        files.load(str(tmp_path / "text.pth"))
    # Pickles torch.save did not write: torch would only say "Unsupported operand 149", and warn of the protocol.
    (tmp_path / "array.pth").write_bytes(pickle.dumps(np.zeros(3), protocol=5))
    (tmp_path / "dict.pt").write_bytes(pickle.dumps({"conv.weight": [0.0, 1.0]}, protocol=2))
    for name in ("array.pth", "dict.pt"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(remaster.InvalidModelError) as refused:
                files.load(str(tmp_path / name))
        assert str(refused.value) == (
            f"{name} is not a model file: it is a Python pickle, but not one torch.save wrote, so it holds no weights. "
            "Use a .safetensors file, or one saved with torch.save(model.state_dict(), path)"
        )
    partial = {"conv_first.weight": torch.zeros(8, 3, 3, 3), "body.0.rdb1.conv1.weight": torch.zeros(32, 8, 3, 3)}
    torch.save(partial, tmp_path / "odd.pth")
    with pytest.raises(remaster.InvalidModelError, match="spandrel does not know; the closest it knows is ESRGAN"):
        files.load(str(tmp_path / "odd.pth"))
    with pytest.raises(remaster.InvalidModelError, match="No model file at"):
        files.load(str(tmp_path / "missing.pth"))
    with pytest.raises(remaster.InvalidModelError, match="is not a Hub reference"):
        parse_reference("hf://only-a-repo")


@pytest.mark.integration
def test_the_command_line_takes_a_model_file(tmp_path):
    from .test_cli import run_cli, weights_for_cli

    model = save_model(tmp_path / "models", "my-compact", random_state(ARCHITECTURES["compact"][0]), ".safetensors")
    images.save(images.rgb(16, 20), tmp_path / "in.png")
    weights = weights_for_cli(tmp_path)
    for flag in ("-n", "--model_path"):
        done = run_cli("in.png", flag, str(model), "-o", "out", weights_dir=weights, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "in_my-compact_x4.png").is_file()
    folder = run_cli(
        "in.png", "-n", "my-compact", "-o", "folder", weights_dir=weights, cwd=tmp_path,
        env={"REMASTER_MODELS_DIR": str(model.parent)},
    )  # fmt: skip
    assert folder.returncode == 0 and (tmp_path / "folder" / "in_my-compact_x4.png").is_file(), folder.stderr


@pytest.fixture
def page(enhancer, hub, tiny_models, tmp_path):
    """The app, with a models folder, model uploads allowed and a tiny 1 MB limit on images."""
    from .fixtures import running_app

    folder = tmp_path / "page-models"
    save_model(folder, "folder-compact", random_state(ARCHITECTURES["compact"][0]), ".pth")
    before = set(remaster.MODELS)
    with running_app(enhancer, models_dir=folder, allow_model_upload=True, max_upload_mb=1) as url:
        yield url
    for name in set(remaster.MODELS) - before:
        remaster.unregister(name)


@pytest.mark.integration
def test_the_page_loads_model_files_and_offers_them_everywhere(page, hub, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(page, verbose=False)
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/remaster"]
    assert "folder-compact" in str(endpoint["parameters"][1]), "REMASTER_MODELS_DIR's files are models at start"
    buffer = io.BytesIO()
    torch.save(random_state(_span), buffer)
    url = hub.add("/models/span-page.pth", buffer.getvalue())
    with pytest.raises(Exception, match="not a public internet address"):
        client.predict(url, None, api_name="/load_model")  # a visitor's URL may not reach the server's own network
    upload = save_model(tmp_path / "up", "uploaded-span", random_state(_span), ".safetensors")
    name, info = client.predict("", handle_file(str(upload)), api_name="/load_model")
    assert name == "uploaded-span" and "SPAN ×2" in info and "Licence: unknown" in info
    source = images.save(images.rgb(20, 24), tmp_path / "in.png")
    download, _, summary = client.predict(
        handle_file(str(source)), name, 2, "auto", False, 0.5, api_name="/remaster"
    )  # fmt: skip
    assert "uploaded-span" in summary and Path(download).name == "in_uploaded-span_x2.png"
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    big = images.save(Image.fromarray(noise), tmp_path / "big.png")  # ~1.9 MB: over the images' limit
    with pytest.raises(Exception, match="larger than 1 MB"):
        client.predict(handle_file(str(big)), name, 2, "auto", False, 0.5, api_name="/remaster")


@pytest.mark.integration
def test_evaluate_takes_model_files_like_the_official_models(tmp_path):
    import csv
    import shutil

    from .fixtures import run_module
    from .test_cli import weights_for_cli

    model = save_model(tmp_path / "models", "eval-compact", random_state(ARCHITECTURES["compact"][0]), ".pth")
    hr = tmp_path / "hr"
    hr.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "examples" / "eval" / "chelsea.png", hr)
    done = run_module(
        "remaster.evaluate", str(hr), "--models", str(model), "-q", weights_dir=weights_for_cli(tmp_path), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    with (tmp_path / "report" / "results.csv").open() as f:
        assert {row["method"] for row in csv.DictReader(f)} == {"bicubic", "eval-compact"}


def test_a_model_too_large_for_the_memory_free_is_refused(files, tmp_path, monkeypatch):
    from remaster import tiling

    path = save_model(tmp_path, "big", random_state(ARCHITECTURES["compact"][0]), ".pth")
    monkeypatch.setattr(tiling, "available_memory", lambda device: 1000)
    with pytest.raises(remaster.InvalidModelError, match="needs 0.0 GB for its weights alone"):
        files.load(str(path))
