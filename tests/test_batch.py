"""Batches: files and zips in, one zip out; bounded zips; member names never used as paths."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from gradio_client import handle_file
from PIL import Image

import remaster
from remaster import Options
from remaster.batch import expand_inputs, run_batch, safe_stem

from . import images
from .fixtures import running_app
from .test_animation import animated, frames_of


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_member_names_are_never_used_as_paths(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = make_zip(
        tmp_path / "sneaky.zip",
        {
            "../../escaped.png": png_bytes(images.rgb()),
            "/etc/absolute.png": png_bytes(images.rgb()),
            "holiday/beach.png": png_bytes(images.rgb()),
            "__MACOSX/._beach.png": b"resource fork",
            ".hidden.png": png_bytes(images.rgb()),
            "notes.txt": b"hello",
        },
    )
    items, failed = expand_inputs([archive], work, max_files=10, max_bytes=10**7)
    assert [name for name, _ in items] == ["../../escaped.png", "/etc/absolute.png", "holiday/beach.png"]
    assert all(path.parent == work for _, path in items), "extracted under generated names, in the work folder"
    assert not (tmp_path / "escaped.png").exists() and not Path("/etc/absolute.png").exists()
    assert failed == [("sneaky.zip: notes.txt", "not an image file; skipped")]
    assert safe_stem("../../escaped.png") == "escaped" and safe_stem("C:\\x\\ëvil name!.jpg") == "vil_name"
    assert safe_stem("...") == "image" and safe_stem("a" * 200) == "a" * 80


def test_zips_are_bounded_before_anything_is_extracted(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    many = make_zip(tmp_path / "many.zip", {f"{i}.png": png_bytes(images.rgb(4, 4)) for i in range(5)})
    items, failed = expand_inputs([many], work, max_files=3, max_bytes=10**7)
    assert len(items) == 3 and len(failed) == 2 and "more than 3 files" in failed[0][1]
    big = make_zip(tmp_path / "big.zip", {"huge.png": b"\0" * 3_000_000})
    items, failed = expand_inputs([big], work, max_files=10, max_bytes=2_000_000)
    assert items == [] and "more than the 2 MB a batch may hold" in failed[0][1]
    crowded = make_zip(tmp_path / "crowded.zip", {f"{i}.txt": b"" for i in range(40)})
    items, failed = expand_inputs([crowded], work, max_files=3, max_bytes=10**7)
    assert items == [] and "holds 40 entries" in failed[0][1]
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    items, failed = expand_inputs([tmp_path / "broken.zip"], work, max_files=3, max_bytes=10**7)
    assert items == [(("broken.zip", tmp_path / "broken.zip"))], "not a zip: treated as a file, which then fails"


def test_a_batch_survives_bad_files_and_zips_the_results(enhancer, tmp_path):
    corrupt = images.truncated(tmp_path / "corrupt.png", images.rgb(64, 64), "PNG")
    deep = tmp_path / "deep.png"
    images.png16(deep, 3)
    gif = animated(tmp_path / "wave.gif", "GIF")
    bundle = make_zip(
        tmp_path / "album.zip",
        {"album/one.png": png_bytes(images.rgb()), "album/one (copy).png": png_bytes(images.rgb())},
    )
    progress = []
    result = run_batch(
        enhancer,
        [corrupt, deep, gif, bundle],
        tmp_path / "out" / "results.zip",
        Options("tiny-srvgg", output_format="png"),
        progress=lambda fraction, desc: progress.append(desc),
    )
    assert [name for name, _ in result.failed] == ["corrupt.png"] and "truncated" in result.failed[0][1]
    with zipfile.ZipFile(result.archive) as archive:
        names = sorted(archive.namelist())
        assert names == [
            "deep_tiny-srvgg_x4.png",
            "errors.txt",
            "one_copy_tiny-srvgg_x4.png",
            "one_tiny-srvgg_x4.png",
            "wave_tiny-srvgg_x4.gif",
        ]
        assert "corrupt.png" in archive.read("errors.txt").decode()
        archive.extract("wave_tiny-srvgg_x4.gif", tmp_path)
    assert len(frames_of(tmp_path / "wave_tiny-srvgg_x4.gif")[0]) == 3
    assert any(desc.startswith("3 of 5: wave.gif") for desc in progress)
    assert "4 remastered, 1 failed" in result.summary()
    assert list((tmp_path / "out").iterdir()) == [result.archive], "nothing half-written beside it"


def test_a_cancelled_batch_stops(enhancer, tmp_path):
    import threading

    cancel = threading.Event()
    cancel.set()
    files = [images.save(images.rgb(), tmp_path / f"{i}.png") for i in range(3)]
    with pytest.raises(remaster.StoppedError):
        run_batch(enhancer, files, tmp_path / "r.zip", Options("tiny-srvgg"), cancel=cancel)
    assert not (tmp_path / "r.zip").exists()


@pytest.mark.integration
def test_the_batch_endpoint(client, tmp_path):
    first = images.save(images.rgb(), tmp_path / "first.png")
    second = images.save(images.rgba(), tmp_path / "second.png")
    archive, report = client.predict(
        [handle_file(str(first)), handle_file(str(second))], "tiny-srvgg", 2, False, api_name="/remaster_batch"
    )
    with zipfile.ZipFile(archive) as results:
        assert sorted(results.namelist()) == ["first_tiny-srvgg_x2.png", "second_tiny-srvgg_x2.png"]
        assert Image.open(results.open("second_tiny-srvgg_x2.png")).size == (48, 40)
    assert "2 remastered, 0 failed" in report


@pytest.fixture(scope="module")
def client(enhancer, tiny_faces):
    from gradio_client import Client

    with running_app(enhancer) as url:
        yield Client(url, verbose=False)
