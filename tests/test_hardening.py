"""A public Space gets every kind of file and many people at once: limits, faults, odd files, fuzzing."""

from __future__ import annotations

import errno
import io
import struct
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import remaster
from remaster import image_io
from remaster.page import build_demo, launch_options
from remaster.page.handlers import Handlers
from remaster.page.status import limits_text

from . import images
from .fixtures import slow_model


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_broken_icc(path: Path) -> Path:
    """A valid RGB PNG whose iCCP chunk holds a compressed profile that is not a profile at all."""
    buffer = io.BytesIO()
    images.rgb(12, 10).save(buffer, format="PNG")
    data = buffer.getvalue()
    iccp = _png_chunk(b"iCCP", b"broken\0\0" + zlib.compress(b"this is not an ICC profile"))
    path.write_bytes(data[:33] + iccp + data[33:])  # right after IHDR
    return path


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 10000), (10000, 1)])
def test_extreme_shapes_come_back_right(enhancer, height, width):
    result = enhancer.enhance(images.to_uint8(images.gradient(height, width)), model="tiny-srvgg")
    assert result.shape == (height * 4, width * 4, 3)


def test_a_png_with_a_broken_icc_profile_is_upscaled_and_keeps_its_bytes(enhancer, tmp_path):
    path = png_with_broken_icc(tmp_path / "broken-icc.png")
    result = enhancer.enhance(path, model="tiny-srvgg")
    assert result.size == (40, 48) and result.mode == "RGB"
    saved = image_io.save(result, tmp_path / "out.png")
    assert Image.open(saved).size == (40, 48)


def test_cmyk_with_a_broken_icc_profile_falls_back_to_a_plain_conversion(enhancer, tmp_path):
    path = tmp_path / "cmyk.jpg"
    images.cmyk(12, 10).save(path, icc_profile=b"not a profile at all, but long enough" * 4)
    assert enhancer.enhance(path, model="tiny-srvgg").mode == "RGB"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_either_decode_or_raise_a_clear_error(tmp_path, data):
    """Valid files of every format, cut and flipped at random: decoding never fails any other way."""
    fmt = data.draw(st.sampled_from(["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"]))
    buffer = io.BytesIO()
    images.rgb(9, 7, seed=1).save(buffer, format=fmt)
    raw = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(0, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path / f"fuzz.{fmt.lower()}"
    path.write_bytes(bytes(raw))
    try:
        picture = image_io.decode(path, max_pixels=4096 * 4096)
    except remaster.RemasterError:
        return
    assert picture.pixels.ndim == 3 and picture.pixels.shape[2] in (1, 2, 3, 4)


def test_a_full_disk_leaves_no_half_written_file(tmp_path, monkeypatch):
    def full(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError, match="No space left"):
        image_io.save(images.rgb(), tmp_path / "result.png")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_a_clear_message_in_the_app(enhancer, tmp_path, monkeypatch):
    import anyio
    import gradio as gr

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_io, "save", full)
    source = images.save(images.rgb(), tmp_path / "in.png")
    handler = Handlers(enhancer).remaster_image
    with pytest.raises(gr.Error, match="could not be saved \\(No space left on device\\)"):
        anyio.run(lambda: handler(str(source), "tiny-srvgg", 4, "auto", False, 0.5))


@pytest.fixture(scope="module")
def strict_app(enhancer, tiny_models):
    """The app with small limits: 1 MB uploads, one request at a time and one waiting; and a slow model."""
    strict = enhancer.with_settings(max_upload_mb=1, queue_size=1, time_limit=30)
    with slow_model(tiny_models, delay=1.0) as slow:
        demo = build_demo(strict, prefetch=False)
        _, url, _ = demo.launch(
            prevent_thread_lock=True, server_name="127.0.0.1", quiet=True, **launch_options(strict.settings)
        )
        yield url, strict.settings, slow
        demo.close()


@pytest.mark.integration
def test_the_limits_are_stated_on_the_page(strict_app):
    url, settings, _ = strict_app
    page = httpx.get(url + "config").text
    assert limits_text(settings) in page
    assert "files up to 1 MB and 16.8 megapixels" in limits_text(settings) and "30 s of work" in limits_text(settings)


def test_an_upload_over_the_size_limit_is_refused_by_the_server(strict_app):
    url, _, _ = strict_app
    big = io.BytesIO(np.random.default_rng(0).bytes(2_000_000))
    response = httpx.post(url + "gradio_api/upload", files={"files": ("big.png", big, "image/png")})
    assert response.status_code == 413


def test_the_server_serves_no_file_but_its_own(strict_app):
    url, _, _ = strict_app
    for path in ("/etc/passwd", str(Path(__file__).resolve())):
        assert httpx.get(f"{url}gradio_api/file={path}").status_code in (403, 404)


@pytest.mark.integration
def test_a_full_queue_turns_requests_away_cleanly(strict_app, tmp_path):
    url, _, slow = strict_app
    source = images.save(images.rgb(40, 40), tmp_path / "busy.png")
    clients = [Client(url, verbose=False) for _ in range(4)]
    jobs = [c.submit(handle_file(str(source)), slow, 4, "32", False, 0.5, api_name="/remaster") for c in clients]
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(("done", job.result(timeout=60)))
        except AppError as error:
            outcomes.append(("rejected", str(error)))
        except Exception as error:  # noqa: BLE001 - the client reports a full queue in more than one way
            outcomes.append(("rejected", str(error)))
    done = [o for o in outcomes if o[0] == "done"]
    rejected = [o for o in outcomes if o[0] == "rejected"]
    assert done, "the first requests are served"
    assert rejected and all("queue" in message.lower() for _, message in rejected), outcomes
    assert Image.open(done[0][1][0]).size == (160, 160)


@pytest.mark.integration
def test_generated_files_are_deleted_after_an_hour(enhancer):
    demo = build_demo(enhancer, prefetch=False)
    assert demo.delete_cache == (3600, 3600)
