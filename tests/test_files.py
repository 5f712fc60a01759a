"""remaster_file: one path for every file, still or animated, whatever asks for it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import remaster
from remaster import Options
from remaster.files import remaster_file

from . import images
from .test_animation import animated, frames_of


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("photo.jpg", lambda p: images.save(images.rgb(), p, quality=95), "photo_x.jpg"),
        ("shot.webp", lambda p: images.save(images.rgb(), p), "shot_x.webp"),
        ("scan.tif", lambda p: images.save(images.gray(), p), "scan_x.png"),
        ("logo.png", lambda p: images.save(images.rgba(), p), "logo_x.png"),
        ("deep.png", lambda p: images.png16(p, 3), "deep_x.png"),
    ],
)
def test_automatic_formats_keep_jpeg_and_webp_and_use_png_otherwise(enhancer, tmp_path, name, make, expected):
    make(tmp_path / name)
    done = remaster_file(enhancer, tmp_path / name, tmp_path / "out" / f"{name.split('.')[0]}_x", Options("tiny-srvgg"))
    assert done.path.name == expected and done.path.exists()
    assert done.report.output_size == (96, 80)


def test_transparency_never_goes_to_jpeg_by_itself(enhancer, tmp_path):
    images.save(images.rgba(), tmp_path / "see-through.webp")
    done = remaster_file(enhancer, tmp_path / "see-through.webp", tmp_path / "a", Options("tiny-srvgg"))
    assert done.path.suffix == ".webp" and Image.open(done.path).mode == "RGBA"


def test_animations_keep_their_format_or_take_an_animated_one(enhancer, tmp_path):
    source = animated(tmp_path / "a.gif", "GIF")
    kept = remaster_file(enhancer, source, tmp_path / "kept", Options("tiny-srvgg"))
    converted = remaster_file(enhancer, source, tmp_path / "converted", Options("tiny-srvgg", animation_format="webp"))
    assert kept.path.suffix == ".gif" and converted.path.suffix == ".webp"
    assert len(frames_of(converted.path)[0]) == 3 and kept.report.frames == 3
    assert np.asarray(kept.first_output).shape == (64, 80, 3)
    with pytest.raises(ValueError, match="JPG cannot hold an animation"):
        remaster_file(enhancer, source, tmp_path / "x", Options("tiny-srvgg", animation_format="jpg"))
    with pytest.raises(remaster.InvalidOptionError, match="output_format must be one of auto, png, jpg, webp"):
        Options("tiny-srvgg", output_format="gif")


def test_names_already_taken_get_a_number():
    from remaster.files import unique_name

    assert unique_name("photo_out", set()) == "photo_out"
    assert unique_name("photo_out", {"photo_out", "photo_out_2"}) == "photo_out_3"
