"""A large 8-bit PNG is filtered and compressed on every core at once: the same pixels and metadata as Pillow's."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from remaster import image_io
from remaster.image_io import Metadata

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("mode", "width", "height"), [("RGB", 97, 200), ("RGBA", 64, 193), ("L", 33, 200), ("LA", 5, 130)]
)
def test_the_parallel_png_decodes_to_the_same_pixels_and_metadata_as_pillows(
    mode, width, height, tmp_path, monkeypatch
):
    rng = np.random.default_rng(width)
    channels = len(Image.new(mode, (1, 1)).getbands())
    ramp = np.linspace(0, 255, width * height * channels).reshape(height, width, channels)
    noisy = (ramp + rng.normal(0, 20, ramp.shape)).clip(0, 255).astype(np.uint8)  # every filter gets chosen
    image = Image.fromarray(noisy[..., 0] if channels == 1 else noisy, mode)
    metadata = Metadata(
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
        dpi=(300.0, 150.0),
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>",
    )
    pillows = image_io.save(image, tmp_path / "pillow.png", description="upscaled ×4", metadata=metadata)
    monkeypatch.setattr(image_io, "_PARALLEL_PNG_BYTES", 0)
    monkeypatch.setattr(image_io.os, "cpu_count", lambda: 3)  # three pieces, however many cores run the test
    assert image_io._in_parallel(image)
    ours = image_io.save(image, tmp_path / "ours.png", description="upscaled ×4", metadata=metadata)
    with Image.open(pillows) as expected, Image.open(ours) as written:
        assert written.mode == expected.mode and np.array_equal(np.asarray(written), np.asarray(expected))
        assert ("icc_profile" in written.info) == (channels >= 3), "a colour profile, where the image has colour"
        assert written.info["dpi"] == pytest.approx(expected.info["dpi"], abs=0.01)
        assert written.info.keys() == expected.info.keys()
        for key in written.info.keys() - {"dpi"}:
            assert written.info[key] == expected.info[key], key
    decoded = cv2.imread(str(ours), cv2.IMREAD_UNCHANGED)  # a second decoder, libpng's
    assert decoded is not None and decoded.shape[:2] == (height, width)


def test_small_and_other_images_are_written_by_pillow():
    assert not image_io._in_parallel(Image.new("RGB", (64, 64)))
    assert not image_io._in_parallel(Image.new("I;16", (4096, 4096)))
    assert not image_io._in_parallel(Image.new("P", (4096, 4096)))
    assert image_io._in_parallel(Image.new("RGB", (2560, 1920))) == ((image_io.os.cpu_count() or 1) > 1)
