"""Writing results: PNG, JPEG and WebP, 16-bit kept, metadata carried over and recorded."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import remaster
from remaster import Options, image_io
from remaster.files import remaster_file

from . import images


def exif_of(**tags: object) -> bytes:
    exif = Image.Exif()
    for key, value in tags.items():
        exif[{"make": 0x010F, "orientation": 0x0112, "artist": 0x013B}[key]] = value
    return exif.tobytes()


@pytest.fixture
def result(enhancer, tmp_path):
    """A remastered JPEG that had a camera make, an artist, an ICC profile and an orientation."""
    path = tmp_path / "holiday.jpg"
    images.rgb(20, 32).save(
        path,
        exif=exif_of(make="Pentax", artist="A. Photographer", orientation=6),
        icc_profile=images.srgb_profile(),
        quality=95,
    )
    return enhancer.run(path, Options("tiny-srvgg"))


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_metadata_is_carried_over_and_records_what_was_done(result, tmp_path, fmt):
    image, report = result
    saved = image_io.save(image, tmp_path / f"out.{fmt}", fmt, description=report.description())
    with Image.open(saved) as out:
        exif = out.getexif()
        assert exif.get(0x010F) == "Pentax" and exif.get(0x013B) == "A. Photographer"
        assert 0x0112 not in exif, "the orientation was applied, so it is not recorded again"
        assert exif.get(0x0131) == f"remaster {remaster.__version__}"
        assert exif.get(0x010E) == "Remastered 20x32 -> 80x128 with tiny-srvgg"
        assert out.info.get("icc_profile") == images.srgb_profile()
        assert out.size == (80, 128)
        if fmt == "png":
            assert out.info["Software"] == f"remaster {remaster.__version__}"
            assert "tiny-srvgg" in out.info["Description"]


def test_png_and_lossless_webp_keep_every_pixel_and_jpeg_quality_matters(tmp_path):
    image = images.rgba(40, 40)
    for fmt in ("png", "webp"):
        saved = image_io.save(image, tmp_path / f"exact.{fmt}", fmt)
        assert np.array_equal(np.asarray(Image.open(saved)), np.asarray(image))
    rough = image_io.save(images.rgb(64, 64), tmp_path / "rough.jpg", "jpg", quality=10)
    fine = image_io.save(images.rgb(64, 64), tmp_path / "fine.jpg", "jpg", quality=98)
    assert rough.stat().st_size < fine.stat().st_size
    lossy = image_io.save(images.rgb(64, 64), tmp_path / "lossy.webp", "webp", quality=20)
    assert lossy.stat().st_size < (tmp_path / "exact.webp").stat().st_size


def test_jpeg_flattens_transparency_onto_white(tmp_path):
    saved = image_io.save(images.rgba(20, 24), tmp_path / "flat.jpg", "jpg")
    with Image.open(saved) as out:
        assert out.mode == "RGB"
        assert np.asarray(out)[:, :8].min() > 240, "the transparent half became white"


def test_sixteen_bit_stays_sixteen_bit_in_png_and_becomes_eight_bit_elsewhere(tmp_path):
    import cv2

    colour = images.to_uint16(images.gradient(10, 12))
    png = image_io.save(colour, tmp_path / "deep.png", "png")
    assert np.array_equal(cv2.imread(str(png), cv2.IMREAD_UNCHANGED)[:, :, ::-1], colour)
    jpg = image_io.save(colour, tmp_path / "deep.jpg", "jpg", quality=100)
    assert np.abs(np.asarray(Image.open(jpg)).astype(int) - (colour >> 8)).max() < 8
    gray = Image.fromarray(colour[:, :, 0])
    webp = image_io.save(gray, tmp_path / "gray.webp", "webp")
    assert np.abs(np.asarray(Image.open(webp).convert("L")).astype(int) - (colour[:, :, 0] >> 8)).max() <= 1


def test_unsupported_formats_and_qualities_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Output format must be one of png, jpg, webp"):
        image_io.save(images.rgb(), tmp_path / "x.tga", "tga")
    with pytest.raises(ValueError, match="Quality must be from 1 to 100"):
        image_io.save(images.rgb(), tmp_path / "x.jpg", "jpg", quality=0)
    assert list(tmp_path.iterdir()) == []


def _zlib_level(path) -> int:
    """The compression level class zlib wrote into a PNG's first image data (0 fastest … 3 smallest)."""
    data = path.read_bytes()
    at = data.index(b"IDAT") + 4
    return data[at + 1] >> 6


def test_png_compression_is_a_choice_of_speed_or_size(tmp_path):
    image = images.rgb(96, 128, seed=4)
    fast = image_io.save(image, tmp_path / "fast.png", "png", png_compression=1)
    small = image_io.save(image, tmp_path / "small.png", "png", png_compression=9)
    assert _zlib_level(fast) < _zlib_level(small) == 3 and fast.stat().st_size > small.stat().st_size
    assert np.array_equal(np.asarray(Image.open(fast)), np.asarray(Image.open(small)))
    with pytest.raises(remaster.InvalidOptionError, match="png_compression must be from 0 to 9"):
        Options("tiny-srvgg", png_compression=12)


def test_the_page_writes_its_downloads_fast(enhancer, tmp_path):
    import anyio

    from remaster.page.handlers import Handlers

    source = images.save(images.rgb(20, 24), tmp_path / "in.png")
    download, _, _ = anyio.run(Handlers(enhancer).remaster_image, str(source), "tiny-srvgg", 4, "auto", False, 0.5)
    assert _zlib_level(Path(download)) <= 1


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="A. Photographer"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
DPI = 300
PER_METRE = round(DPI / 0.0254)


def png_chunks(path: Path) -> dict[bytes, list[bytes]]:
    """Every chunk of a PNG file by its type, read byte by byte (not through remaster or Pillow)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, list[bytes]] = {}
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        chunks.setdefault(kind, []).append(data[at + 8 : at + 8 + length])
        at += 12 + length
    return chunks


def tagged_png16(path: Path) -> Path:
    """A 64-bit RGBA PNG with an ICC profile (iCCP), 300 DPI (pHYs) and XMP (iTXt), as a camera raw converter
    writes them: OpenCV's pixels, the chunks added byte by byte after IHDR."""
    images.png16(path, 4)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    added = (
        chunk(b"iCCP", b"Adobe RGB\0\0" + zlib.compress(images.srgb_profile()))
        + chunk(b"pHYs", struct.pack(">IIB", PER_METRE, PER_METRE, 1))
        + chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP)
    )
    data = path.read_bytes()
    path.write_bytes(data[:33] + added + data[33:])
    return path


def assert_metadata_kept(result: Path) -> None:
    """``result`` is a 16-bit PNG that kept the ICC profile, the 300 DPI and the XMP of :func:`tagged_png16`."""
    chunks = png_chunks(result)
    assert chunks[b"IHDR"][0][8] == 16, "still 16 bits per channel"
    name, _, profile = chunks[b"iCCP"][0].partition(b"\0")
    assert zlib.decompress(profile[1:]) == images.srgb_profile()
    assert chunks[b"pHYs"] == [struct.pack(">IIB", PER_METRE, PER_METRE, 1)]
    assert [text for text in chunks[b"iTXt"] if text.startswith(b"XML:com.adobe.xmp\0")][0].endswith(XMP)
    order = list(chunks)
    assert order.index(b"iCCP") < order.index(b"IDAT") and order.index(b"pHYs") < order.index(b"IDAT")


def test_a_16_bit_png_keeps_its_icc_profile_resolution_and_xmp(enhancer, tmp_path):
    source = tagged_png16(tmp_path / "tree_alpha_16bit.png")
    done = remaster_file(enhancer, source, tmp_path / "out" / "tree", Options("tiny-srvgg"))
    assert_metadata_kept(done.path)
    with Image.open(done.path) as out:
        assert out.info["Software"] == f"remaster {remaster.__version__}" and "tiny-srvgg" in out.info["Description"]
        assert out.getexif().get(0x0131) == f"remaster {remaster.__version__}"


@pytest.mark.parametrize("fmt", ["tiff", "webp", "jpg", "png"])
def test_every_format_keeps_what_it_can_hold_of_a_16_bit_images_metadata(tmp_path, fmt):
    picture = image_io.decode(tagged_png16(tmp_path / "deep.png"), 10**7)
    result = image_io.encode(picture.pixels, picture)
    saved = image_io.save(result, tmp_path / f"out.{fmt}", fmt, metadata=picture.metadata)
    with Image.open(saved) as out:
        assert out.info.get("icc_profile") == images.srgb_profile()
        assert out.info.get("xmp") == XMP
        if fmt != "webp":  # WebP has no resolution of its own
            assert out.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
    if fmt in ("png", "tiff"):
        assert image_io.decode(saved, 10**7).pixels.dtype == np.uint16


def test_an_8_bit_result_keeps_its_resolution_and_xmp_too(enhancer, tmp_path):
    source = tmp_path / "scan.jpg"
    images.rgb(20, 24).save(source, dpi=(DPI, DPI), xmp=XMP, icc_profile=images.srgb_profile(), quality=95)
    for fmt in ("png", "jpg", "tiff"):
        done = remaster_file(enhancer, source, tmp_path / fmt / "scan", Options("tiny-srvgg", output_format=fmt))
        with Image.open(done.path) as out:
            assert out.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
            assert out.info.get("xmp") == XMP and out.info.get("icc_profile") == images.srgb_profile()


@pytest.mark.integration
def test_the_page_and_the_command_line_keep_a_16_bit_pngs_metadata(enhancer, tmp_path):
    from gradio_client import Client, handle_file

    from .fixtures import run_module, running_app
    from .test_cli import weights_for_cli

    source = tagged_png16(tmp_path / "tree_alpha_16bit.png")
    with running_app(enhancer) as url:
        download, _, _ = Client(url, verbose=False).predict(
            handle_file(str(source)), "tiny-srvgg", 4, "auto", False, 0.5, api_name="/remaster"
        )
    assert_metadata_kept(Path(download))

    done = run_module(
        "remaster",
        str(source),
        "-o",
        "out",
        "-n",
        "realesr-animevideov3",
        "-q",
        weights_dir=weights_for_cli(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert_metadata_kept(tmp_path / "out" / "tree_alpha_16bit_realesr-animevideov3_x4.png")
