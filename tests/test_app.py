"""The real Gradio server, launched in-process and called through gradio_client."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import anyio
import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import remaster
from remaster import image_io
from remaster.page import build_demo
from remaster.page.handlers import Handlers, page_options, parse_tile, video_options
from remaster.page.previews import DETAIL_SIDE, DetailViews, detail_view
from remaster.page.status import weights_status

from . import images
from .fixtures import running_app, slow_convolutions, slow_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(enhancer, tiny_faces):
    demo = build_demo(enhancer, prefetch=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    yield demo, Client(url, verbose=False)
    demo.close()


@pytest.fixture
def client(app):
    return app[1]


def call(client: Client, path: Path, model: str = "tiny-srvgg", outscale: float = 4, tile: str = "auto", **extra):
    return client.predict(
        handle_file(str(path)),
        model,
        outscale,
        tile,
        extra.get("face_enhance", False),
        extra.get("denoise_strength", 0.5),
        extra.get("face_model", "GFPGANv1.4"),
        extra.get("face_strength", 0.7),
        extra.get("output_format", "png"),
        api_name="/remaster",
    )


def test_the_api_endpoint_takes_the_documented_parameters_in_order(client):
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/remaster"]
    names = [parameter["parameter_name"] for parameter in endpoint["parameters"]]
    assert names == [
        "image",
        "model",
        "outscale",
        "tile",
        "face_enhance",
        "denoise_strength",
        "face_model",
        "face_strength",
        "output_format",
        "precision",
    ]
    returns = [item["component"] for item in endpoint["returns"]]
    assert returns[0] == "File" and "Imageslider" in returns[1].replace("S", "s").title()


def test_remaster_returns_the_full_resolution_png_first(client, tmp_path):
    source = images.save(images.rgb(30, 40), tmp_path / "holiday.jpg", quality=95)
    download, slider, info = call(client, source, outscale=2)
    assert Path(download).name == "holiday_tiny-srvgg_x2.png"
    with Image.open(download) as result:
        assert result.format == "PNG" and result.size == (80, 60) and result.mode == "RGB"
    before, after = slider
    with Image.open(before) as b, Image.open(after) as a:
        assert b.size == a.size == (80, 60)
    assert "40×30 → 80×60" in info and "tiny-srvgg" in info and "cpu" in info


@pytest.mark.parametrize(
    ("make", "mode", "dtype"),
    [
        (lambda tmp: images.save(images.rgba(), tmp / "sticker.png"), "RGBA", np.uint8),
        (lambda tmp: images.save(images.gray(), tmp / "scan.png"), "L", np.uint8),
        (lambda tmp: images.png16(tmp / "raw16.png", 1) is not None and tmp / "raw16.png", "I;16", np.uint16),
        (lambda tmp: images.png16(tmp / "raw48.png", 3) is not None and tmp / "raw48.png", "RGB16", np.uint16),
    ],
    ids=["RGBA", "L", "16-bit gray", "48-bit colour"],
)
def test_uploads_reach_the_engine_unchanged_and_the_download_keeps_the_mode(client, tmp_path, make, mode, dtype):
    import cv2

    download, _, info = call(client, make(tmp_path))
    pixels = cv2.imread(download, cv2.IMREAD_UNCHANGED)
    assert pixels.dtype == dtype and pixels.shape[:2] == (80, 96)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    assert channels == {"RGBA": 4, "L": 1, "I;16": 1, "RGB16": 3}[mode]
    if dtype == np.uint16:
        assert "16-bit" in info


def test_the_tile_choice_is_passed_through(client, tmp_path):
    source = images.save(images.rgb(40, 40), tmp_path / "tiles.png")
    whole, _, _ = call(client, source, tile="off")
    tiled, _, _ = call(client, source, tile="32")
    assert np.abs(np.asarray(Image.open(whole), int) - np.asarray(Image.open(tiled), int)).max() <= 1
    with pytest.raises(AppError, match='tile must be "auto", "off" or a whole number'):
        call(client, source, tile="big")


def test_parse_tile_understands_the_ui_and_api_spellings():
    assert parse_tile("auto") is None and parse_tile(None) is None
    assert parse_tile("off") == 0 and parse_tile(0) == 0
    assert parse_tile("256") == 256 and parse_tile(512.0) == 512


def test_page_options_take_a_handlers_values_by_name_in_the_pages_spelling():
    values = {"image": "in.png", "model": "tiny-srvgg", "tile": "off", "output_format": "webp-90", "progress": None}
    options = page_options(values)
    assert (options.model, options.tile, options.output_format, options.quality) == ("tiny-srvgg", 0, "webp", 90)
    assert options.png_compression == 1 and page_options({"model": "tiny-srvgg"}).output_format == "png"
    assert video_options("ffv1", 20).crf is None and video_options("vp9", 40).crf == 40
    with pytest.raises(gr.Error, match="crf for h264 must be from 0 to 51"):
        video_options("h264", 60)


@pytest.mark.parametrize("model", ["/etc/passwd", "hf://someone/repo/4x-Model.pth", "https://example.com/x.pth"])
def test_the_page_takes_only_registered_upscalers_never_a_path_or_url(client, tmp_path, model):
    with pytest.raises(gr.Error, match="Unknown model.*Load the model"):
        page_options({"model": model})
    with pytest.raises(AppError, match="Unknown model"):
        call(client, images.save(images.rgb(), tmp_path / "in.png"), model=model)
    with pytest.raises(gr.Error, match="Unknown model 'GFPGANv1.4'"):
        page_options({"model": "GFPGANv1.4"})


@pytest.mark.parametrize(
    ("make", "options", "message"),
    [
        (lambda tmp: (tmp / "notes.png").write_text("hello") and tmp / "notes.png", {}, "not one remaster can read"),
        (lambda tmp: images.truncated(tmp / "cut.png", images.rgb(64, 64), "PNG"), {}, "truncated or corrupt"),
        (lambda tmp: (tmp / "empty.png").write_bytes(b"") or tmp / "empty.png", {}, "empty"),
        (lambda tmp: images.decompression_bomb_png(tmp / "big.png", 5000, 5000), {}, "more than the limit"),
        (lambda tmp: images.save(images.rgb(), tmp / "ok.png"), {"outscale": 12}, "greater than maximum value 8"),
        (lambda tmp: images.save(images.rgb(), tmp / "ok.png"), {"model": "RealESRGAN_x16"}, "RealESRGAN_x16"),
        (lambda tmp: images.save(images.rgb(), tmp / "ok.png"), {"face_model": "GFPGANv9"}, "Value: GFPGANv9"),
        (lambda tmp: images.save(images.rgb(), tmp / "ok.png"), {"tile": "8"}, "tile must be 0"),
    ],
    ids=["text", "truncated", "empty", "too-big", "outscale", "model", "face-model", "tile"],
)
def test_user_errors_become_clear_messages_and_the_server_keeps_serving(client, tmp_path, make, options, message):
    with pytest.raises(AppError, match=message):
        call(client, make(tmp_path), **options)
    download, _, _ = call(client, images.save(images.rgb(), tmp_path / "after.png"))
    assert Image.open(download).size == (96, 80)


def test_the_app_starts_within_seconds_offline_and_says_what_is_missing(enhancer, tmp_path):
    offline = remaster.Enhancer(
        replace(enhancer.settings, offline=True, hub_cache_dir=tmp_path / "empty-hub", cache_dir=tmp_path / "empty")
    )
    started = time.monotonic()
    demo = build_demo(offline, prefetch=True)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        assert time.monotonic() - started < 15
        deadline = time.monotonic() + 15
        while (status := weights_status(offline))[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        text, pending = status
        assert not pending
        assert "**Not available:** RealESRGAN_x4plus, RealESRNet_x4plus" in text and "REMASTER_WEIGHTS_DIR" in text
        assert "unset `HF_HUB_OFFLINE`" in text and "- **RealESRGAN_x4plus**: RealESRGAN_x4plus.pth is not" in text
        with pytest.raises(AppError, match="RealESRGAN_x4plus.pth is not available.*HF_HUB_OFFLINE"):
            call(Client(url, verbose=False), images.save(images.rgb(), tmp_path / "x.png"), model="RealESRGAN_x4plus")
    finally:
        demo.close()


def test_cancelling_a_request_stops_the_work_at_the_next_tile(enhancer, tiny_models, tmp_path):
    handler = Handlers(enhancer).remaster_image
    source = images.save(images.rgb(200, 200), tmp_path / "big.png")
    tiles: list[float] = []

    async def main(slow: str):
        with anyio.move_on_after(0.6):
            await handler(str(source), slow, 4, "32", False, 0.5, progress=lambda f, desc=None: tiles.append(f))
        await anyio.sleep(0.5)

    with slow_model(tiny_models, delay=0.1) as slow:
        anyio.run(main, slow)
    done_at_cancel = len(tiles)
    time.sleep(0.5)
    assert 0 < done_at_cancel < 20 and len(tiles) == done_at_cancel, "no tiles ran after the cancel"


def test_face_restoration_through_the_api_reports_what_it_found(client, tiny_faces, tmp_path):
    source = images.save(images.rgb(40, 48), tmp_path / "group.png")
    download, _, info = call(client, source, face_enhance=True, face_model="tiny-gfpgan", face_strength=0.5)
    assert Image.open(download).size == (192, 160)
    assert "no face found" in info


def test_a_client_that_cancels_mid_request_stops_the_work_on_the_server(enhancer, tiny_models, tmp_path):
    with slow_model(tiny_models, delay=0.2) as slow:
        demo = build_demo(enhancer, prefetch=False)
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        tiles = enhancer.engine.network(remaster.get_model(slow)).module.calls
        try:
            _cancel_and_count(url, slow, tiles, images.save(images.rgb(200, 200), tmp_path / "long.png"))
        finally:
            demo.close()


def _cancel_and_count(url: str, model: str, tiles: list[float], source: Path) -> None:
    job = Client(url, verbose=False).submit(handle_file(str(source)), model, 4, "32", False, 0.5, api_name="/remaster")
    deadline = time.monotonic() + 20
    while len(tiles) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.cancel()
    time.sleep(1.0)
    settled = len(tiles)
    time.sleep(1.0)
    assert 3 <= settled < 15 and len(tiles) == settled, "the server stopped within a tile of the cancel"


def test_the_detail_view_shows_the_centre_at_full_resolution(tmp_path):
    source = images.rgb(300, 400)
    big = np.asarray(source.resize((1600, 1200), Image.Resampling.NEAREST))
    before, after = detail_view(np.asarray(source), big)
    assert before.size == after.size == (DETAIL_SIDE, DETAIL_SIDE)
    centre = big[600 - DETAIL_SIDE // 2 : 600 + DETAIL_SIDE // 2, 800 - DETAIL_SIDE // 2 : 800 + DETAIL_SIDE // 2]
    assert np.array_equal(np.asarray(after), centre), "the result's own pixels, uncropped by any resizing"
    difference = np.abs(np.asarray(before).astype(int) - centre.astype(int)).mean()
    assert difference < 12, "the input enlarged over the same region"
    small_before, small_after = detail_view(np.asarray(source), np.asarray(source))
    assert small_after.size == (DETAIL_SIDE, 300)
    assert DetailViews().get(None, str(tmp_path / "result.png")) is None


def test_a_fresh_results_previews_come_from_memory_not_from_its_file(enhancer, tmp_path, monkeypatch):
    source = images.save(images.rgb(40, 48), tmp_path / "fresh.png")
    handlers = Handlers(enhancer)
    decoded = []
    real = image_io.decode

    def counting(image, max_pixels):
        if isinstance(image, (str, Path)):
            decoded.append(Path(image))
        return real(image, max_pixels)

    monkeypatch.setattr(image_io, "decode", counting)
    path, (before, after), _ = anyio.run(handlers.remaster_image, str(source), "tiny-srvgg", 4, "auto", False, 0.5)
    assert decoded == [source], "the input was decoded once; the previews came from the pixels in memory"
    detail_before, detail_after = handlers.detail(str(source), path)
    assert decoded == [source], "so did the detail view"
    assert before.size == after.size == (192, 160) and detail_after.size == (192, 160)
    assert DetailViews().get(str(source), path) is not None and decoded[1:] == [source, Path(path)], "else: files"


def test_the_image_handler_runs_with_its_own_defaults_as_the_examples_call_it(enhancer, tmp_path):
    source = images.save(images.rgb(20, 24), tmp_path / "example.png")
    example = functools.partial(Handlers(enhancer).remaster_image, image=str(source), model="tiny-srvgg", outscale=2)
    download, _, info = anyio.run(example)
    assert Image.open(download).size == (48, 40) and Path(download).suffix == ".png" and "tiny-srvgg" in info


def test_an_animated_gif_comes_back_animated_with_its_timing(client, tmp_path):
    from .test_animation import animated, frames_of

    source = animated(tmp_path / "wave.gif", "GIF", frames=3)
    download, (before, after), info = call(client, source)
    assert Path(download).name == "wave_tiny-srvgg_x4.gif"
    frames, durations, _ = frames_of(Path(download))
    assert [frame.size for frame in frames] == [(80, 64)] * 3 and durations == [100, 150, 200]
    assert "3 frames" in info and Image.open(after).size == (80, 64)


def test_the_comparison_view_returns_one_result_per_model(client, tmp_path):
    source = images.save(images.rgb(30, 40), tmp_path / "compare.png")
    gallery, notes = client.predict(
        handle_file(str(source)), ["tiny-srvgg", "tiny-rrdb-x4", "tiny-rrdb-x2"], 2, api_name="/compare"
    )
    captions = [item["caption"] for item in gallery]
    assert captions[0].startswith("the input") and len(gallery) == 4
    for model, caption in zip(["tiny-srvgg", "tiny-rrdb-x4", "tiny-rrdb-x2"], captions[1:], strict=True):
        assert caption.startswith(f"{model} · ") and caption.endswith(" s")
    sizes = {Image.open(item["image"]).size for item in gallery}
    assert sizes == {(80, 60)}, "the same crop of each (the whole 80×60 result here)"
    assert notes.count("40×30 → 80×60") == 3
    with pytest.raises(AppError, match="Choose at least one model"):
        client.predict(handle_file(str(source)), [], 2, api_name="/compare")


@pytest.mark.parametrize(("choice", "fmt"), [("png", "PNG"), ("webp", "WEBP"), ("webp-90", "WEBP"), ("jpg", "JPEG")])
def test_the_download_format_can_be_chosen(client, tmp_path, choice, fmt):
    source = images.save(images.rgb(20, 24), tmp_path / "pick.png")
    download, _, _ = call(client, source, output_format=choice)
    with Image.open(download) as result:
        assert result.format == fmt and result.size == (96, 80)
    assert Path(download).suffix == {"PNG": ".png", "WEBP": ".webp", "JPEG": ".jpg"}[fmt]


def test_old_clients_that_send_only_the_first_parameters_still_work(client, tmp_path):
    source = images.save(images.rgb(20, 24), tmp_path / "old.png")
    download, _, _ = client.predict(handle_file(str(source)), "tiny-srvgg", 2, "auto", False, 0.5, api_name="/remaster")
    assert Image.open(download).size == (48, 40)


def test_the_page_starts_on_a_model_whose_weights_are_on_disk_and_marks_the_others(enhancer, tiny_models, tmp_path):
    folder = tmp_path / "some-weights"
    folder.mkdir()
    (folder / "tiny-srvgg.pth").write_bytes(tiny_models["tiny-srvgg"].files["tiny-srvgg.pth"])
    partial = remaster.Enhancer(
        replace(
            enhancer.settings,
            offline=True,
            weights_dir=folder,
            default_model="tiny-rrdb-x4",
            hub_cache_dir=tmp_path / "empty-hub",
            cache_dir=tmp_path / "empty",
        )
    )
    demo = build_demo(partial, prefetch=False)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        components = demo.config["components"]
        lists = [c["props"] for c in components if c["props"].get("label") in ("Model", "Models")]
        assert len(lists) == 4, "Remaster, Batch, Compare models, Video"
        for props in lists:
            assert props["value"] in ("tiny-srvgg", ["tiny-srvgg"])
            labels = {value: label for label, value in props["choices"]}
            assert labels["tiny-rrdb-x4"].endswith("(not downloaded yet)") and "(not" not in labels["tiny-srvgg"]
        samples = [c["props"]["samples"] for c in components if c["type"] == "dataset"][0]
        assert samples and all(sample[1] == "tiny-srvgg" for sample in samples), "examples use a model that runs"
        client = Client(url, verbose=False)
        endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/remaster"]
        default = endpoint["parameters"][1]["parameter_default"]
        assert default == "tiny-srvgg"
        download, _, _ = call(client, images.save(images.rgb(), tmp_path / "first.png"), model=default)
        assert Image.open(download).size == (96, 80), "the first click works"
    finally:
        demo.close()


def test_api_clients_see_the_progress_move_within_one_tile(client, tiny_models, tmp_path):
    source = images.save(images.rgb(48, 64), tmp_path / "one-tile.png")
    seen = []
    with slow_convolutions(tiny_models, delay=0.1) as slow:
        job = client.submit(handle_file(str(source)), slow, 4, "off", False, 0.5, api_name="/remaster")
        while not job.done():
            units = job.status().progress_data or []
            seen += [(unit.progress, unit.desc) for unit in units]
            time.sleep(0.05)
        _, _, info = job.result()
    assert "64×48 → 256×192" in info
    moving = sorted({fraction for fraction, desc in seen if desc.startswith("Upscaling the image") and fraction})
    assert len([fraction for fraction in moving if fraction < 0.95]) >= 3, seen


def test_user_errors_are_one_line_in_the_log_not_a_traceback(client, tmp_path, capfd, caplog):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    with caplog.at_level("INFO", logger="remaster.page"), pytest.raises(AppError, match="not one remaster can read"):
        call(client, notes)
    assert "Traceback" not in capfd.readouterr().err
    refusals = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Refused:")]
    assert len(refusals) == 1 and "not one remaster can read" in refusals[0]


_CLIENT = """
import sys
from gradio_client import Client, handle_file

url, image, model = sys.argv[1:]
Client(url, verbose=False).predict(handle_file(image), model, 4, "32", False, 0.5, api_name="/remaster")
"""


def _cpu_seconds(over: float) -> float:
    """This process's CPU time (the in-process server's threads) during the next ``over`` seconds."""
    before = time.process_time()
    time.sleep(over)
    return time.process_time() - before


def test_a_killed_api_client_stops_using_the_servers_cpu_within_5_s(enhancer, tiny_models, tmp_path):
    source = images.save(images.rgb(48, 64), tmp_path / "abandoned.png")
    with slow_convolutions(tiny_models, delay=0.2, busy=True) as busy, running_app(enhancer) as url:
        calls = enhancer.engine.network(remaster.get_model(busy)).module.calls
        idle = _cpu_seconds(2.0)  # the server waiting: its queue's loops
        client = subprocess.Popen([sys.executable, "-c", _CLIENT, url, str(source), busy])
        try:
            deadline = time.monotonic() + 60
            while len(calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert calls, "the request started"
            working = _cpu_seconds(2.0)
        finally:
            client.kill()
            client.wait()
        killed = time.monotonic()
        time.sleep(5)
        after = _cpu_seconds(2.0)
    assert working - idle > 0.3, f"the server worked for the client: {working:.2f} s of CPU in 2 s, idle {idle:.2f}"
    assert after - idle < 0.1, f"{after:.2f} s of CPU in 2 s, 5 s after the client was killed; idle {idle:.2f}"
    assert not [t for t in calls if t > killed + 5], "no convolution ran 5 s after the kill"


def test_face_options_are_offered_only_where_the_face_weights_are(enhancer, tiny_faces, tmp_path):
    offline = remaster.Enhancer(
        replace(enhancer.settings, offline=True, hub_cache_dir=tmp_path / "empty-hub", cache_dir=tmp_path / "empty")
    )
    needed = [remaster.get_model(name) for name in ("detection_Resnet50_Final", "parsing_parsenet", "GFPGANv1.4")]
    offline.store.prefetch(needed).join(30)
    for app, offered in ((offline, False), (enhancer, True)):
        demo = build_demo(app, prefetch=False)
        switches = [c["props"] for c in demo.config["components"] if c["props"].get("label", "").startswith("Restore")]
        assert len(switches) == 3, "Remaster, Batch, Video"
        for props in switches:
            assert props["interactive"] is offered
            assert props["info"].startswith("Not available: ") != offered, props["info"]
