"""Reading, validating and writing still images, in every mode and format people bring.

Inside remaster an image is a :class:`Picture`: an ``(H, W, C)`` array whose channels
are L, LA, RGB or RGBA (``C`` = 1, 2, 3, 4), of dtype uint8, uint16 or float32 (0–1),
plus what is needed to hand the result back in the form it came in. Whatever goes wrong
while reading a file is told in one wording, from :func:`unreadable`: too large, a kind of
file that cannot be read here (and why), or damaged. Animations live in :mod:`remaster.animation`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .atomic import atomic_file
from .errors import ImageTooLargeError, InvalidImageError, InvalidOptionError, RemasterError
from .pixels import MODE_BY_CHANNELS, eight_bit_image, from_float, to_eight_bit
from .version import __version__

__all__ = [
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "ImageInput",
    "OutputFormat",
    "Picture",
    "decode",
    "encode",
    "page_count",
    "png_text",
    "save",
    "unreadable",
    "webp_quality",
]

log = logging.getLogger(__name__)

Image.init()
IMAGE_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        extension
        for extension, fmt in Image.registered_extensions().items()
        if fmt in Image.OPEN and extension not in (".mpg", ".mpeg")  # videos, which Pillow only identifies
    )
)
"""File extensions taken as images when a folder is given: every format Pillow can open."""

ImageInput = Image.Image | np.ndarray | str | os.PathLike
"""What :func:`decode` accepts."""

_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_GRAY = {"I;16", "I;16B", "I;16L", "I;16N"}
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"DDS ", "DDS"),
    (b"8BPS", "PSD"),
    (b"qoif", "QOI"),
)
# Pillow's words for a file it recognises but cannot decode here: a codec or helper program it lacks, a variant it
# does not implement. Anything else that goes wrong while decoding means the file is damaged.
_UNSUPPORTED = re.compile(
    r"not available|ghostscript|cannot find loader|unsupported|not supported|unknown|unimplemented|"
    r"not implemented|cannot handle|no decoder",
    re.IGNORECASE,
)


@dataclass
class Picture:
    """Decoded pixels and how to give a result back in the same form."""

    pixels: np.ndarray
    """``(H, W, C)``, C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA); uint8, uint16 or float32 in 0–1."""
    kind: Literal["pil", "numpy", "path"]
    icc_profile: bytes | None = None
    exif: bytes | None = None
    """The input's EXIF block, its orientation already applied and removed."""
    numpy_2d: bool = False
    """The numpy input was ``(H, W)`` rather than ``(H, W, 1)``."""
    numpy_dtype: np.dtype | None = None
    """The numpy input's dtype (a float input comes back as the same float type)."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """A float image's values, mapped to 0–1 for the network and back for the result."""

    @property
    def has_alpha(self) -> bool:
        """Whether the last channel is transparency."""
        return self.pixels.shape[2] in (2, 4)

    @property
    def color_channels(self) -> int:
        """1 for grayscale, 3 for colour."""
        return 1 if self.pixels.shape[2] <= 2 else 3

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def mode(self) -> str:
        """A short name for the pixel format, such as ``RGBA`` or ``L 16-bit``."""
        mode = MODE_BY_CHANNELS[self.pixels.shape[2]]
        return {np.dtype(np.uint8): mode, np.dtype(np.uint16): f"{mode} 16-bit"}.get(self.pixels.dtype, f"{mode} float")


def decode(image: object, max_pixels: int) -> Picture:
    """Read ``image`` (a PIL image, a numpy array or a path) into a :class:`Picture`.

    EXIF orientation is applied; palette images become RGB or RGBA; CMYK is converted
    to sRGB through its ICC profile when it has one; 16-bit files stay 16-bit, float
    files (32-bit TIFF, PFM, FITS…) stay float.

    Raises:
        InvalidImageError: the input is not a readable image (the message says why).
        ImageTooLargeError: it has more than ``max_pixels`` pixels (checked before decoding).
    """
    if isinstance(image, np.ndarray):
        return _decode_array(image, max_pixels)
    if isinstance(image, Image.Image):
        try:
            return _decode_pil(image, max_pixels, kind="pil")
        except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many kinds; each becomes a clear message
            raise unreadable(error) from None
    if isinstance(image, (str, os.PathLike)):
        return _decode_path(Path(image), max_pixels)
    raise InvalidImageError(
        f"Expected an image as a PIL image, a numpy array or a file path, but got {type(image).__name__}"
    )


def page_count(path: Path) -> int:
    """How many images a still file holds (the pages of a TIFF, the layers of a PSD, an MPO's views); 1 if unknown."""
    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except Exception:  # noqa: BLE001 - a file that cannot be opened says so when it is decoded
        return 1


def unreadable(error: BaseException, path: Path | None = None, frame: int | None = None) -> RemasterError:
    """The one message for an image that could not be read: too large, not readable here (and why), or damaged.

    Args:
        error: what reading raised.
        path: the file, when there is one: its first bytes tell a damaged file of a known
            format from something that is no image at all.
        frame: the animation frame (from 0) being read, if it was one.
    """
    if isinstance(error, RemasterError):
        return error
    where = f"Frame {frame + 1} of the animation" if frame is not None else "The image"
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageTooLargeError(
            f"{where} declares enormous dimensions, a possible decompression bomb, and was refused ({detail})"
        )
    if isinstance(error, UnidentifiedImageError):
        fmt = _sniff(path)
        if fmt is not None:
            return InvalidImageError(
                f"The file starts like a {fmt} image but is damaged beyond reading; re-export it from the original"
            )
        return InvalidImageError(
            "Expected an image, but this file is not one remaster can read (PNG, JPEG, WebP, TIFF, BMP, GIF "
            "and the other formats Pillow reads)"
        )
    if isinstance(error, NotImplementedError) or _UNSUPPORTED.search(detail):
        kind = f"a {_sniff(path) or 'file'}" if frame is None else "an animation"
        return InvalidImageError(
            f"{where} is {kind} of a kind that cannot be read here ({detail}); convert it to PNG or TIFF first"
        )
    return InvalidImageError(f"{where} is truncated or corrupt ({detail}); re-export it and try again")


def _sniff(path: Path | None) -> str | None:
    """The format a file's first bytes announce, if they announce one remaster knows."""
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for signature, fmt in _SIGNATURES if head.startswith(signature)), None)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError("The image is empty (it has no pixels)")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"The image is {width}×{height} ({width * height / 1e6:.1f} MP), more than the limit of "
            f"{max_pixels / 1e6:.1f} MP. Resize it first, or raise REMASTER_MAX_INPUT_PIXELS."
        )


def _decode_path(path: Path, max_pixels: int) -> Picture:
    if not path.is_file():
        raise InvalidImageError(f"No image file at {path}")
    if path.stat().st_size == 0:
        raise InvalidImageError("Expected an image, but the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixels(im.width, im.height, max_pixels)
                try:
                    deep = _decode_sixteen_bit_colour(path, im) if _is_sixteen_bit_colour(im) else None
                    return deep or _decode_pil(im, max_pixels, kind="path")
                except Exception as error:  # noqa: BLE001 - turned into a clear message below
                    raise _unsupported_tiff(im) or error from None
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many kinds; each becomes a clear message
        raise unreadable(error, path) from None


_COMMON_TIFF_CODECS = {"raw", "packbits", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "jpeg", "tiff_jpeg"}
_COMMON_TIFF_CODECS |= {"tiff_ccitt", "group3", "group4", "tiff_raw_16"}


def _unsupported_tiff(im: Image.Image) -> InvalidImageError | None:
    """Why a TIFF that did not decode could not: a compression this machine's libtiff lacks, if it uses one."""
    codec = im.info.get("compression") if im.format == "TIFF" else None
    if codec is None or codec in _COMMON_TIFF_CODECS:
        return None
    return InvalidImageError(
        f"The image is a TIFF compressed with {codec}, which cannot be decoded here; save it uncompressed or with "
        "LZW or Deflate compression, or as PNG"
    )


def _is_sixteen_bit_colour(im: Image.Image) -> bool:
    """PIL opens 48/64-bit colour PNG and TIFF files as 8-bit RGB(A), losing the low bits.

    Only 16 bits per channel count: a packed 16-bit pixel (5-6-5 BMP) is 8-bit colour to PIL, as it should be.
    """
    if im.format not in ("PNG", "TIFF") or im.mode not in ("RGB", "RGBA", "LA") or not im.tile:
        return False
    args = im.tile[0][3]
    rawmode = args if isinstance(args, str) else next((a for a in args or () if isinstance(a, str)), "")
    return re.search(r";16[BLN]?$", rawmode) is not None


def _decode_sixteen_bit_colour(path: Path, im: Image.Image) -> Picture | None:
    """The file at full depth through OpenCV, or None where OpenCV cannot read it (PIL then reads it at 8 bits)."""
    import cv2

    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.shape[:2] != (im.height, im.width) or array.dtype != np.uint16:
        log.warning("%s: its 16 bits per channel could not be read; reading it at 8 bits", path.name)
        return None
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA)
        if im.mode == "LA":
            array = array[:, :, [0, 3]]
    orientation = _orientation(im)
    return Picture(
        pixels=np.ascontiguousarray(_orient(array, orientation)),
        kind="path",
        icc_profile=im.info.get("icc_profile"),
    )


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        return 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an ``(H, W, C)`` array, as ``ImageOps.exif_transpose`` does."""
    transpose = (1, 0, 2)
    return {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(transpose),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(transpose),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation, lambda a: a)(array)


def _decode_pil(im: Image.Image, max_pixels: int, kind: Literal["pil", "path"]) -> Picture:
    _check_pixels(im.width, im.height, max_pixels)
    with warnings.catch_warnings():
        # The TIFF reader only warns when the file ends early, and fills the rest with black.
        warnings.filterwarnings("error", message="Truncated File Read")
        im.load()
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        log.warning("Ignoring the image's EXIF orientation, which could not be read: %s", error)
    exif = _exif_bytes(im)
    im, icc = _to_supported_mode(im, icc)
    array = np.asarray(im)
    value_range = (0.0, 1.0)
    if im.mode in _SIXTEEN_BIT_GRAY:
        array = array.astype(np.uint16)
    elif im.mode == "I":
        array = np.clip(array, 0, 65535).astype(np.uint16)
    elif im.mode == "F":
        array, value_range = _unit_float(array)
    if array.ndim == 2:
        array = array[:, :, None]
    return Picture(pixels=np.ascontiguousarray(array), kind=kind, icc_profile=icc, exif=exif, value_range=value_range)


def _unit_float(array: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Float pixels mapped to 0–1 (values already in 0–1 stay as they are), and the range they came from."""
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidImageError("The float image holds NaN or infinite values; replace them and try again")
    low, high = min(float(array.min()), 0.0), max(float(array.max()), 1.0)
    return (array - low) / (high - low), (low, high)


def _exif_bytes(im: Image.Image) -> bytes | None:
    try:
        exif = im.getexif()
        exif.pop(_EXIF_ORIENTATION, None)
        return exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 - a broken EXIF block is dropped, not fatal
        return None


def _to_supported_mode(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert to L, LA, RGB, RGBA, 16-bit L or float L, keeping the ICC profile that still applies."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA", "I", "F") or mode in _SIXTEEN_BIT_GRAY:
        return im, icc
    conversions = {"1": "L", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}
    if mode in conversions:
        return im.convert(conversions[mode]), icc
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        return im.convert("RGBA" if has_alpha else "RGB"), None
    if mode == "CMYK":
        return _cmyk_to_srgb(im, icc), None
    return im.convert("RGB"), None


def _cmyk_to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError) as error:
            log.warning("The CMYK image's ICC profile could not be used (%s); converting without it", error)
    return im.convert("RGB")


def _decode_array(array: np.ndarray, max_pixels: int) -> Picture:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 2, 3, 4)):
        raise InvalidImageError(
            f"Expected an array of shape (H, W) or (H, W, C) with C = 1, 2, 3 or 4, but got {array.shape}"
        )
    if array.dtype not in (np.uint8, np.uint16) and array.dtype not in _FLOAT_DTYPES:
        raise InvalidImageError(f"Expected a uint8, uint16 or float array (0–1), but got {array.dtype}")
    _check_pixels(array.shape[1], array.shape[0], max_pixels)
    pixels = array[:, :, None] if array.ndim == 2 else array
    if array.dtype in _FLOAT_DTYPES:
        if not np.isfinite(pixels).all():
            raise InvalidImageError("The float image holds NaN or infinite values")
        pixels = np.clip(pixels, 0.0, 1.0).astype(np.float32)
    return Picture(
        pixels=np.ascontiguousarray(pixels),
        kind="numpy",
        numpy_2d=array.ndim == 2,
        numpy_dtype=array.dtype,
    )


def encode(pixels: np.ndarray, picture: Picture) -> Image.Image | np.ndarray:
    """Give ``pixels`` (same channels and dtype as ``picture.pixels``) back in the input's form.

    A numpy input gets a numpy array of its own layout and dtype. A PIL image or a path
    gets a PIL image (a float image back in its own range, mode ``F``), except where PIL
    cannot hold the result (16-bit colour, 16-bit with alpha): then a numpy uint16
    ``(H, W, C)`` array.
    """
    if picture.kind == "numpy":
        out = pixels[:, :, 0] if picture.numpy_2d else pixels
        return out.astype(picture.numpy_dtype, copy=False)
    channels = pixels.shape[2]
    if pixels.dtype == np.uint8:
        im = eight_bit_image(pixels)
    elif channels == 1 and pixels.dtype == np.uint16:
        im = Image.fromarray(pixels[:, :, 0])
    elif channels == 1:
        low, high = picture.value_range
        im = Image.fromarray((pixels[:, :, 0].astype(np.float32) * (high - low) + low).astype(np.float32), "F")
    else:
        return pixels
    if picture.icc_profile:
        im.info["icc_profile"] = picture.icc_profile
    if picture.exif:
        im.info["exif"] = picture.exif
    return im


def png_text(description: str | None) -> PngInfo:
    """PNG text chunks naming remaster (and what was done)."""
    text = PngInfo()
    text.add_text("Software", f"remaster {__version__}")
    if description:
        text.add_text("Description", description)
    return text


def webp_quality(quality: int | None) -> dict[str, object]:
    """Pillow's WebP options: lossy at ``quality``, or lossless when None."""
    # Lossless keeps even the colour under fully transparent pixels (exact).
    return {"quality": quality} if quality is not None else {"lossless": True, "exact": True}


OutputFormat = Literal["png", "jpg", "webp", "tiff"]
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpg", "webp", "tiff")
DEFAULT_JPEG_QUALITY = 95
_JPEG_MAX_EXIF = 65533
"""The most bytes of EXIF a JPEG's APP1 segment holds."""


def save(
    image: Image.Image | np.ndarray,
    path: Path,
    fmt: OutputFormat = "png",
    quality: int | None = None,
    description: str | None = None,
    notes: list[str] | None = None,
    png_compression: int = 6,
) -> Path:
    """Write ``image`` to ``path`` atomically: a temporary file, renamed when complete.

    Args:
        image: a PIL image from :func:`encode`, or a numpy uint16 array (16-bit colour).
        fmt: ``png`` (lossless; 16-bit stays 16-bit, float becomes 16-bit gray, clipped to 0–1),
            ``tiff`` (lossless; 16-bit and float stay as they are), ``jpg`` (``quality``, default 95;
            8-bit, no transparency) or ``webp`` (8-bit; lossless, or lossy at ``quality``).
        description: what was done, recorded with remaster's name and version in the file's
            metadata (PNG text, EXIF ImageDescription and Software). The input's EXIF (less its
            orientation, already applied) and ICC profile are carried over.
        notes: told, in a sentence each, what the format could not keep (EXIF over JPEG's 64 KB).
        png_compression: zlib's level for PNG, 0–9.

    Raises:
        InvalidOptionError: ``fmt`` or ``quality`` is not supported.
        OSError: the file could not be written (disk full, no permission); nothing is left behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise InvalidOptionError(f"Output format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise InvalidOptionError(f"Quality must be from 1 to 100, not {quality}")
    with atomic_file(path) as partial:
        if isinstance(image, np.ndarray) and fmt in ("png", "tiff"):
            _write_sixteen_bit_colour(image, partial, fmt, png_compression)
        else:
            _write_pil(_to_pil_for(image, fmt), partial, fmt, quality, description, notes, png_compression)
    return path


def _to_pil_for(image: Image.Image | np.ndarray, fmt: str) -> Image.Image:
    """An image ``fmt`` can hold: 8-bit for JPEG and WebP, 16-bit for a float PNG, no alpha for JPEG."""
    if isinstance(image, np.ndarray):  # 16-bit colour, kept only by PNG and TIFF
        image = eight_bit_image(image)
    info = dict(image.info)
    if image.mode == "F" and fmt == "png":
        image = Image.fromarray(from_float(np.clip(np.asarray(image), 0.0, 1.0), np.uint16))
    elif image.mode in ("I;16", "I", "F") and fmt in ("jpg", "webp"):
        pixels = np.asarray(image)
        if image.mode == "I":
            pixels = pixels.clip(0, 65535).astype(np.uint16)
        image = Image.fromarray(to_eight_bit(np.clip(pixels, 0.0, 1.0) if image.mode == "F" else pixels))
    if fmt == "jpg" and image.mode in ("LA", "RGBA"):
        background = Image.new("RGB" if image.mode == "RGBA" else "L", image.size, "white")
        background.paste(image.convert(background.mode), mask=image.getchannel("A"))
        image = background
    image.info.update({key: value for key, value in info.items() if key in ("icc_profile", "exif")})
    return image


def _exif_for(image: Image.Image, description: str | None) -> Image.Exif:
    exif = Image.Exif()
    if image.info.get("exif"):
        try:
            exif.load(image.info["exif"])
        except Exception:  # noqa: BLE001 - an unreadable EXIF block is dropped, not fatal
            exif = Image.Exif()
    exif.pop(_EXIF_ORIENTATION, None)
    exif[0x0131] = f"remaster {__version__}"  # Software
    if description:
        exif[0x010E] = description  # ImageDescription
    return exif


def _fit_exif(exif: Image.Exif, limit: int) -> list[str]:
    """Drop the largest tags (of the main, Exif and GPS directories) until the block fits in ``limit`` bytes.

    Returns the names of the tags dropped.
    """
    dropped = []
    directories = [exif, exif.get_ifd(ExifTags.IFD.Exif), exif.get_ifd(ExifTags.IFD.GPSInfo)]
    while len(exif.tobytes()) > limit:
        sizes = [
            (len(str(value)) if not isinstance(value, bytes) else len(value), tag, directory)
            for directory in directories
            for tag, value in directory.items()
            if tag not in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo, 0x0131, 0x010E)
        ]
        if not sizes:
            break
        _, tag, directory = max(sizes, key=lambda item: item[0])
        del directory[tag]
        dropped.append(ExifTags.TAGS.get(tag, f"tag 0x{tag:04X}"))
    return dropped


def _write_pil(
    image: Image.Image,
    path: str,
    fmt: str,
    quality: int | None,
    description: str | None,
    notes: list[str] | None,
    png_compression: int,
) -> None:
    exif = _exif_for(image, description)
    if fmt == "jpg":
        dropped = _fit_exif(exif, _JPEG_MAX_EXIF)
        if dropped and notes is not None:
            notes.append(f"EXIF tags that do not fit in a JPEG's 64 KB were left out: {', '.join(dropped)}")
    options: dict[str, object] = {"exif": exif.tobytes()}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if fmt == "png":
        image.save(path, format="PNG", pnginfo=png_text(description), compress_level=png_compression, **options)
    elif fmt == "jpg":
        # Full-resolution colour (4:4:4): halving the chroma would undo part of the upscale.
        image.save(path, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY, subsampling=0, **options)
    elif fmt == "tiff":
        image.save(path, format="TIFF", compression="tiff_adobe_deflate", **options)
    else:
        image.save(path, format="WEBP", **webp_quality(quality), **options)


def _write_sixteen_bit_colour(image: np.ndarray, path: str, fmt: str, png_compression: int = 6) -> None:
    import cv2

    # OpenCV writes 16-bit colour (PIL cannot); it has no 16-bit gray+alpha, so that is
    # stored as RGBA with equal colour channels. It writes no metadata.
    array = image if image.ndim == 2 or image.shape[2] == 1 else image[:, :, _BGR_ORDER[image.shape[2]]]
    flags = [] if fmt == "tiff" else [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    ok, data = cv2.imencode(f".{'tiff' if fmt == 'tiff' else 'png'}", np.ascontiguousarray(array), flags)
    if not ok:
        raise OSError(f"Could not encode a {image.shape} {image.dtype} image as {fmt.upper()}")
    with open(path, "wb") as f:
        f.write(data.tobytes())


_BGR_ORDER = {2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}
