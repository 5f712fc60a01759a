"""Every file people have: bombs, unsupported variants, float and packed pixels, huge EXIF, odd animations.

Each class of file gets one clear, true message, from one place, wherever it comes in (the
library, the command line, the page), and one bad file never ends a run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

import remaster
from remaster import Options, image_io
from remaster.animation import read_animation, save_animation
from remaster.atomic import atomic_file
from remaster.files import remaster_file

from . import images, odd_files
from .fixtures import running_app

BOMBS = {
    "bomb.gif": odd_files.gif_bomb,
    "later-frame.gif": odd_files.gif_with_a_huge_later_frame,
    "bomb.bmp": odd_files.bmp_bomb,
    "bomb.ico": odd_files.ico_bomb,
    "bomb.png": lambda path: images.decompression_bomb_png(path, 30000, 30000),
}
UNSUPPORTED = {
    "texture.dds": (odd_files.dds_unsupported, "Unimplemented pixel format"),
    "drawing.eps": (odd_files.eps, "Ghostscript"),
    "clipart.wmf": (odd_files.wmf, "cannot find loader"),
    "webp.tif": (odd_files.tiff_with_unsupported_compression, "compressed with webp"),
}


def remaster_to(enhancer, source: Path, folder: Path, **options) -> remaster.files.FileResult:
    return remaster_file(enhancer, source, folder / source.stem, Options("tiny-srvgg", **options))


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_in_every_form_are_refused_clearly(enhancer, tmp_path, name):
    path = BOMBS[name](tmp_path / name)
    refused = "declares [0-9,]+ MP, a possible decompression bomb|more than the limit"
    with pytest.raises(remaster.ImageTooLargeError, match=refused) as error:
        remaster_to(enhancer, path, tmp_path / "out")
    assert "178956970" not in str(error.value) and "REMASTER_MAX_INPUT_PIXELS" in str(error.value)
    assert not (tmp_path / "out").exists(), "nothing half-written"


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_valid_files_that_cannot_be_read_here_say_so_and_why(enhancer, tmp_path, name):
    make, why = UNSUPPORTED[name]
    path = make(tmp_path / name)
    with pytest.raises(remaster.InvalidImageError) as error:
        remaster_to(enhancer, path, tmp_path / "out")
    message = str(error.value)
    assert "cannot be read here" in message or "cannot be decoded here" in message
    assert why in message and "corrupt" not in message and "re-export" not in message


def test_damaged_files_are_called_damaged_in_one_wording(enhancer, tmp_path):
    png = odd_files.damaged_png(tmp_path / "broken.png")
    with pytest.raises(remaster.InvalidImageError, match="starts like a PNG image but is damaged") as error:
        remaster_to(enhancer, png, tmp_path)
    assert "use PNG" not in str(error.value)
    cut = images.truncated(tmp_path / "cut.png", images.rgb(64, 64), "PNG")
    messages = set()
    for attempt in (lambda: remaster_to(enhancer, cut, tmp_path), lambda: image_io.decode(cut, 10**6)):
        with pytest.raises(remaster.InvalidImageError) as error:
            attempt()
        messages.add(str(error.value))
    assert len(messages) == 1 and messages.pop().startswith("The image is truncated or corrupt")


def test_a_damaged_frame_of_an_animation_is_named(tmp_path):
    from .test_animation import animated

    path = animated(tmp_path / "cut.gif", "GIF", frames=4, size=(40, 40))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(remaster.InvalidImageError, match=r"^(Frame \d of the animation|The image) is truncated"):
        read_animation(path, max_pixels=10**6)


@pytest.mark.integration
def test_a_run_goes_on_past_every_kind_of_bad_file_and_counts_them(tmp_path):
    from .test_cli import run_cli, weights_for_cli

    folder = tmp_path / "mixed"
    folder.mkdir()
    images.save(images.rgb(20, 24), folder / "a-good.png")
    for name, make in BOMBS.items():
        make(folder / name)
    for name, (make, _) in UNSUPPORTED.items():
        make(folder / name)
    images.save(images.rgb(16, 20), folder / "z-good.jpg", quality=95)
    done = run_cli(
        str(folder),
        "-o",
        "out",
        "-n",
        "realesr-animevideov3",
        "-q",
        weights_dir=weights_for_cli(tmp_path),
        cwd=tmp_path,
    )
    bad = len(BOMBS) + len(UNSUPPORTED)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"2 remastered, {bad} failed" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a-good_realesr-animevideov3_x4.png",
        "z-good_realesr-animevideov3_x4.jpg",
    ]
    for name in [*BOMBS, *UNSUPPORTED]:
        lines = [line for line in done.stderr.splitlines() if f"{name}:" in line]
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, lines)


def test_float_images_are_remastered_and_kept_float(enhancer, tmp_path):
    source = tmp_path / "depth.tif"
    pixels = odd_files.float_tiff(source, scale=3.0)
    kept = remaster_to(enhancer, source, tmp_path / "out")
    assert kept.path.suffix == ".tiff"
    with Image.open(kept.path) as result:
        values = np.asarray(result)
        assert result.mode == "F" and values.shape == (48, 40)
        assert values.max() > 1.5 and abs(values.mean() - pixels.mean()) < 0.3, "its own range, not clipped to 0–1"
    png = remaster_to(enhancer, source, tmp_path / "png", output_format="png")
    with Image.open(png.path) as result:
        assert result.mode.startswith("I;16") and result.size == (40, 48)
    for fmt in ("PPM", "SPIDER"):  # PFM (PPM plugin, mode F) and SPIDER
        other = tmp_path / f"float.{'pfm' if fmt == 'PPM' else 'spi'}"
        Image.fromarray(pixels / 3, "F").save(other, format=fmt)
        assert Image.open(remaster_to(enhancer, other, tmp_path / fmt.lower()).path).mode == "F"


def test_packed_sixteen_bit_pixels_are_read_as_the_colour_they_are(enhancer, tmp_path):
    packed = odd_files.rgb565_bmp(tmp_path / "565.bmp")
    assert image_io.decode(packed, 10**6).pixels.dtype == np.uint8
    assert remaster_to(enhancer, packed, tmp_path / "out").report.output_size == (24, 16)
    expected = odd_files.sgi16(tmp_path / "deep.sgi")
    decoded = image_io.decode(tmp_path / "deep.sgi", 10**6).pixels
    assert decoded.shape == (6, 8, 3) and np.abs(decoded.astype(int) - (expected >> 8)).max() <= 1


@pytest.mark.parametrize("make", [odd_files.jpeg_with_exif_near_the_limit, odd_files.png_with_large_exif])
def test_exif_that_does_not_fit_a_jpeg_is_left_out_and_the_rest_kept(enhancer, tmp_path, make):
    source = make(tmp_path / f"camera{'.jpg' if 'jpeg' in make.__name__ else '.png'}")
    done = remaster_to(enhancer, source, tmp_path / "out", output_format="jpg")
    with Image.open(done.path) as result:
        exif = result.getexif()
        assert result.format == "JPEG" and exif.get(0x010F) == "Pentax"
        assert 0x927C not in exif.get_ifd(0x8769) and exif.get(0x0131, "").startswith("remaster")
    assert any("MakerNote" in note for note in done.notes) and "MakerNote" in done.summary()


def test_transparency_asked_to_become_jpeg_is_written_as_png_and_said(enhancer, tmp_path):
    source = images.save(images.rgba(), tmp_path / "logo.png")
    done = remaster_to(enhancer, source, tmp_path / "out", output_format="jpg")
    assert done.path.suffix == ".png" and Image.open(done.path).mode == "RGBA"
    assert "JPEG cannot hold transparency" in done.summary()


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_animations_keep_every_frame_and_duration_exactly(tmp_path, fmt):
    red, blue = images.rgb(16, 20, seed=1), images.rgb(16, 20, seed=2)
    frames = [red, red.copy(), blue, blue.copy(), red]
    durations = [0, 120, 0, 70, 1000]
    path = save_animation(frames, tmp_path / f"odd.{fmt}", fmt, durations, loop=None if fmt == "gif" else 2)
    read = read_animation(path, max_pixels=10**6)
    assert len(read.frames) == 5 and read.durations == durations
    assert read.loop == (None if fmt == "gif" else 2)
    if fmt != "gif":  # GIF holds 256 colours a frame
        assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(read.frames, frames, strict=True))


def test_sixteen_bit_apng_stays_sixteen_bit(enhancer, tmp_path):
    deep = [images.to_uint16(images.gradient(10, 12, 4, seed=seed)) for seed in range(2)]
    patch = np.full((2, 3, 4), 40000, np.uint16)
    source = odd_files.apng16(tmp_path / "deep.png", deep, [50, 0], partial=patch)
    read = read_animation(source, max_pixels=10**6)
    assert [f.dtype for f in read.frames] == [np.uint16] * 3 and read.durations == [50, 0, 40]
    assert np.array_equal(read.frames[0], deep[0]) and np.array_equal(read.frames[1], deep[1])
    composed = deep[1].copy()
    composed[1:3, 1:4] = patch
    assert np.array_equal(read.frames[2], composed), "the partial frame drawn over the one before"
    done = remaster_to(enhancer, source, tmp_path / "out")
    again = read_animation(done.path, max_pixels=10**6)
    assert done.path.suffix == ".png" and len(again.frames) == 3 and again.durations == [50, 0, 40]
    assert again.frames[0].dtype == np.uint16 and again.frames[0].shape == (40, 48, 4)
    assert len(np.unique(again.frames[0][:, :, 0])) > 256


def test_a_failed_write_leaves_no_empty_folder_behind(tmp_path):
    target = tmp_path / "made" / "for" / "it" / "result.png"
    with pytest.raises(OSError, match="disk full"), atomic_file(target):
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError), atomic_file(tmp_path / "kept" / "x.png"):
        raise OSError("disk full")
    assert (tmp_path / "kept").is_dir(), "a folder that was there stays"


@pytest.fixture(scope="module")
def page(enhancer):
    with running_app(enhancer, default_model="tiny-srvgg") as url:
        yield Client(url, verbose=False)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("later-frame.gif", odd_files.gif_with_a_huge_later_frame, "Frame 2 of the animation declares 900 MP"),
        ("texture.dds", odd_files.dds_unsupported, "cannot be read here"),
        ("broken.png", odd_files.damaged_png, "starts like a PNG image but is damaged"),
    ],
)
def test_the_page_gives_the_same_message_as_the_command_line(page, tmp_path, name, make, message):
    path = make(tmp_path / name)
    with pytest.raises(AppError, match=message) as error:
        page.predict(handle_file(str(path)), "tiny-srvgg", 4, "auto", False, 0.5, api_name="/remaster")
    assert "upstream" not in str(error.value)


@pytest.mark.integration
def test_the_page_remasters_a_float_image(page, tmp_path):
    source = tmp_path / "depth.tif"
    odd_files.float_tiff(source, scale=1.0)
    download, _, info = page.predict(
        handle_file(str(source)), "tiny-srvgg", 4, "auto", False, 0.5, api_name="/remaster"
    )
    with Image.open(download) as result:
        assert result.size == (40, 48) and result.mode.startswith("I;16"), "the page's PNG: 16-bit gray"
    assert "float" in info


def test_a_file_of_several_pages_says_that_its_first_was_remastered(enhancer, tmp_path):
    source = tmp_path / "pages.tif"
    pages = [images.rgb(12, 10, seed=seed) for seed in range(3)]
    pages[0].save(source, save_all=True, append_images=pages[1:])
    done = remaster_to(enhancer, source, tmp_path / "out")
    assert done.report.output_size == (40, 48) and "holds 3 images" in done.summary()
