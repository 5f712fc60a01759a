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
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
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
    "Metadata",
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


_XMP_ORIENTATION = (r'tiff:Orientation="([0-9])"', r"<tiff:Orientation>([0-9])</tiff:Orientation>")
"""Where XMP repeats the EXIF orientation; removed with it once applied (as Pillow's ``exif_transpose`` does)."""


@dataclass(frozen=True)
class Metadata:
    """What an image file says beyond its pixels, carried from the input to the result at every bit depth."""

    icc_profile: bytes | None = None
    """The colour profile."""
    exif: bytes | None = None
    """The EXIF block, its orientation already applied and removed."""
    dpi: tuple[float, float] | None = None
    """The physical resolution (PNG's pHYs, JPEG's and TIFF's DPI), kept as it was: the result prints larger."""
    xmp: bytes | None = None
    """The XMP packet, its orientation removed with EXIF's."""

    @classmethod
    def of(cls, image: Image.Image, orientation: int = 1) -> Metadata:
        """The metadata in ``image.info``; ``orientation`` (EXIF's, 1–8) is the one applied to the pixels."""
        info = image.info
        dpi = info.get("dpi")
        try:
            dpi = (float(dpi[0]), float(dpi[1])) if dpi is not None and min(dpi[0], dpi[1]) > 0 else None
        except (TypeError, ValueError, IndexError):
            dpi = None
        if dpi is not None and orientation in (5, 6, 7, 8):  # turned a quarter: the sides swap
            dpi = (dpi[1], dpi[0])
        xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if isinstance(xmp, bytes) and orientation != 1:
            for pattern in _XMP_ORIENTATION:
                xmp = re.sub(pattern.encode(), b"", xmp)
        return cls(
            icc_profile=info.get("icc_profile") or None,
            exif=info.get("exif") or None,
            dpi=dpi,
            xmp=xmp if isinstance(xmp, bytes) else None,
        )


@dataclass
class Picture:
    """Decoded pixels and how to give a result back in the same form."""

    pixels: np.ndarray
    """``(H, W, C)``, C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA); uint8, uint16 or float32 in 0–1."""
    kind: Literal["pil", "numpy", "path"]
    metadata: Metadata = Metadata()
    """The input's colour profile, EXIF, physical resolution and XMP, for the result."""
    numpy_2d: bool = False
    """The numpy input was ``(H, W)`` rather than ``(H, W, 1)``."""
    numpy_dtype: np.dtype | None = None
    """The numpy input's dtype (a float input comes back as the same float type)."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """A float image's values, mapped to 0–1 for the network and back for the result."""

    @property
    def icc_profile(self) -> bytes | None:
        """The input's ICC profile, where it still applies to :attr:`pixels`."""
        return self.metadata.icc_profile

    @property
    def exif(self) -> bytes | None:
        """The input's EXIF block, its orientation already applied and removed."""
        return self.metadata.exif

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
            f"{where} {_declared(error)}, a possible decompression bomb, and was refused; resize it first "
            "(REMASTER_MAX_INPUT_PIXELS sets the largest image remaster takes)"
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
            # remaster's own limit decides, just below, in its own words; Pillow's warning (over 89 MP) would
            # refuse an image a raised REMASTER_MAX_INPUT_PIXELS allows. Pillow's error (over 179 MP) still stops
            # a decompression bomb before its header's size is believed any further.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_within(path, max_pixels) as im:
                _check_pixels(im.width, im.height, max_pixels)
                try:
                    deep = _decode_sixteen_bit_colour(path, im) if _is_sixteen_bit_colour(im) else None
                    return deep or _decode_pil(im, max_pixels, kind="path")
                except Exception as error:  # noqa: BLE001 - turned into a clear message below
                    raise _unsupported_tiff(im) or error from None
    except Exception as error:  # noqa: BLE001 - Pillow's plugins raise many kinds; each becomes a clear message
        raise unreadable(error, path) from None


_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def _declared(error: BaseException) -> str:
    """What a decompression bomb declared, from Pillow's message, without Pillow's own limit."""
    declared = _BOMB_SIZE.search(str(error))
    return f"declares {int(declared.group(1)) / 1e6:,.0f} MP" if declared else "declares enormous dimensions"


def _open_within(path: Path, max_pixels: int) -> Image.Image:
    """``Image.open(path)``; an image Pillow itself refuses as a decompression bomb is refused with remaster's limit.

    Raises:
        ImageTooLargeError: Pillow refused the image's declared size.
    """
    try:
        return Image.open(path)
    except Image.DecompressionBombError as error:
        size = _declared(error)
        fix = "Resize it first, or raise REMASTER_MAX_INPUT_PIXELS"
        if max_pixels >= Image.MAX_IMAGE_PIXELS * 2:
            fix = f"Pillow refuses more than {Image.MAX_IMAGE_PIXELS * 2 / 1e6:.0f} MP whatever the limit; resize it"
        raise ImageTooLargeError(
            f"The image {size}, a possible decompression bomb, more than the limit of {max_pixels / 1e6:.1f} MP. {fix}."
        ) from None


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
    metadata = replace(Metadata.of(im, orientation), exif=_exif_bytes(im))
    return Picture(pixels=np.ascontiguousarray(_orient(array, orientation)), kind="path", metadata=metadata)


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
    orientation = _orientation(im)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        log.warning("Ignoring the image's EXIF orientation, which could not be read: %s", error)
        orientation = 1
    exif = _exif_bytes(im)
    # exif_transpose already took the orientation out of the XMP.
    described = Metadata.of(im)
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
    dpi = described.dpi if orientation not in (5, 6, 7, 8) or described.dpi is None else described.dpi[::-1]
    metadata = Metadata(icc_profile=icc, exif=exif, dpi=dpi, xmp=described.xmp)
    return Picture(pixels=np.ascontiguousarray(array), kind=kind, metadata=metadata, value_range=value_range)


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
    gets a PIL image (a float image back in its own range, mode ``F``) carrying the input's
    :class:`Metadata` in its ``info``, except where PIL cannot hold the result (16-bit colour,
    16-bit with alpha): then a numpy uint16 ``(H, W, C)`` array, whose metadata
    :func:`save` takes from ``picture.metadata``.
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
    metadata = picture.metadata
    for key, value in (("icc_profile", metadata.icc_profile), ("exif", metadata.exif), ("dpi", metadata.dpi)):
        if value:
            im.info[key] = value
    if metadata.xmp:
        im.info["xmp"] = metadata.xmp
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
    metadata: Metadata | None = None,
) -> Path:
    """Write ``image`` to ``path`` atomically: a temporary file, renamed when complete.

    Args:
        image: a PIL image from :func:`encode`, or a numpy uint16 array (16-bit colour).
        fmt: ``png`` (lossless; 16-bit stays 16-bit, float becomes 16-bit gray, clipped to 0–1),
            ``tiff`` (lossless; 16-bit and float stay as they are), ``jpg`` (``quality``, default 95;
            8-bit, no transparency) or ``webp`` (8-bit; lossless, or lossy at ``quality``).
        description: what was done, recorded with remaster's name and version in the file's
            metadata (PNG text, EXIF ImageDescription and Software, TIFF's own tags).
        notes: told, in a sentence each, what the format could not keep (EXIF over JPEG's 64 KB).
        png_compression: zlib's level for PNG, 0–9.
        metadata: the input's, carried over at every bit depth where the format holds it: the ICC
            profile, EXIF (less its orientation, already applied; not in 16-bit TIFF), the physical
            resolution (not in WebP, which has none but EXIF's) and XMP. A PIL image's own
            ``info`` when omitted.

    Raises:
        InvalidOptionError: ``fmt`` or ``quality`` is not supported.
        OSError: the file could not be written (disk full, no permission); nothing is left behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise InvalidOptionError(f"Output format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise InvalidOptionError(f"Quality must be from 1 to 100, not {quality}")
    if metadata is None:
        metadata = Metadata.of(image) if isinstance(image, Image.Image) else Metadata()
    with atomic_file(path) as partial:
        if isinstance(image, np.ndarray) and fmt == "png":
            _write_sixteen_bit_png(image, partial, metadata, description, png_compression)
        elif isinstance(image, np.ndarray) and fmt == "tiff":
            _write_sixteen_bit_tiff(image, partial, metadata, description)
        else:
            image = _to_pil_for(image, fmt)
            _write_pil(image, partial, fmt, quality, _fitting(metadata, image), description, notes, png_compression)
    return path


def _to_pil_for(image: Image.Image | np.ndarray, fmt: str) -> Image.Image:
    """An image ``fmt`` can hold: 8-bit for JPEG and WebP, 16-bit for a float PNG, no alpha for JPEG."""
    if isinstance(image, np.ndarray):  # 16-bit colour, kept only by PNG and TIFF
        image = eight_bit_image(image)
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
    return image


def _fitting(metadata: Metadata, image: Image.Image | np.ndarray) -> Metadata:
    """``metadata`` without an ICC profile whose colour space the written pixels do not have: a gray profile on
    16-bit gray with transparency, which is written as RGBA (its channels equal)."""
    icc = metadata.icc_profile
    if icc is None or len(icc) < 20:
        return metadata
    # A numpy image is 16-bit colour, or gray with transparency (written as colour), or gray.
    array = isinstance(image, np.ndarray)
    colour = image.ndim == 3 and image.shape[2] >= 2 if array else image.mode in ("RGB", "RGBA")
    space = icc[16:20]
    if (space == b"GRAY" and colour) or (space == b"RGB " and not colour):
        return replace(metadata, icc_profile=None)
    return metadata


def _exif_for(exif_bytes: bytes | None, description: str | None) -> Image.Exif:
    exif = Image.Exif()
    if exif_bytes:
        try:
            exif.load(exif_bytes)
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


_JPEG_MAX_XMP = 65502
"""The most bytes of XMP a JPEG's APP1 segment holds (after its namespace)."""
_XMP_KEY = "XML:com.adobe.xmp"
"""The PNG iTXt keyword XMP is stored under."""
_TIFF_XMP = 700


def _write_pil(
    image: Image.Image,
    path: str,
    fmt: str,
    quality: int | None,
    metadata: Metadata,
    description: str | None,
    notes: list[str] | None,
    png_compression: int,
) -> None:
    exif = _exif_for(metadata.exif, description)
    if fmt == "jpg":
        dropped = _fit_exif(exif, _JPEG_MAX_EXIF)
        if dropped and notes is not None:
            notes.append(f"EXIF tags that do not fit in a JPEG's 64 KB were left out: {', '.join(dropped)}")
    options: dict[str, object] = {"exif": exif.tobytes()}
    if metadata.icc_profile:
        options["icc_profile"] = metadata.icc_profile
    if metadata.dpi and fmt != "webp":
        options["dpi"] = metadata.dpi
    if fmt == "png" and _in_parallel(image):
        _write_png_in_parallel(image, path, metadata, description, png_compression)
    elif fmt == "png":
        text = png_text(description)
        if metadata.xmp:
            text.add_itxt(_XMP_KEY, metadata.xmp.decode("utf-8", "replace"))
        image.save(path, format="PNG", pnginfo=text, compress_level=png_compression, **options)
    elif fmt == "jpg":
        # Full-resolution colour (4:4:4): halving the chroma would undo part of the upscale.
        xmp = _jpeg_xmp(metadata.xmp, notes)
        image.save(path, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY, subsampling=0, xmp=xmp, **options)
    elif fmt == "tiff":
        tags = {_TIFF_XMP: metadata.xmp} if metadata.xmp else {}
        image.save(path, format="TIFF", compression="tiff_adobe_deflate", tiffinfo=tags, **options)
    else:
        image.save(path, format="WEBP", **webp_quality(quality), xmp=metadata.xmp or b"", **options)


def _jpeg_xmp(xmp: bytes | None, notes: list[str] | None) -> bytes | None:
    """``xmp`` where a JPEG's one XMP segment holds it; else None, and a note says so."""
    if xmp and len(xmp) > _JPEG_MAX_XMP:
        if notes is not None:
            notes.append("the XMP metadata, over the 64 KB a JPEG holds, was left out")
        return None
    return xmp


def _write_sixteen_bit_png(
    image: np.ndarray, path: str, metadata: Metadata, description: str | None, png_compression: int
) -> None:
    """16-bit colour as PNG (PIL cannot write it; OpenCV writes no metadata), with the metadata's chunks added.

    OpenCV has no 16-bit gray+alpha, so that is stored as RGBA with equal colour channels.
    """
    import cv2

    array = image if image.ndim == 2 or image.shape[2] == 1 else image[:, :, _BGR_ORDER[image.shape[2]]]
    flags = [cv2.IMWRITE_PNG_COMPRESSION, png_compression]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(array), flags)
    if not ok:
        raise OSError(f"Could not encode a {image.shape} {image.dtype} image as PNG")
    encoded = data.tobytes()
    header = 8 + 8 + 13 + 4  # the signature and the IHDR chunk, which comes first
    with open(path, "wb") as f:
        f.write(encoded[:header] + _png_chunks(_fitting(metadata, image), description) + encoded[header:])


_PNG_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_PARALLEL_PNG_BYTES = 2**20
"""8-bit images of at least this many bytes are filtered and compressed on every core: zlib's level 6 takes 1.8 s
for a 2560×1920 result on one core of an AMD EPYC, most of a small model's file request there."""
_DEFLATE_WINDOW = 32768


def _in_parallel(image: Image.Image) -> bool:
    """Whether ``image`` is written by :func:`_write_png_in_parallel`: 8-bit, large, and there are cores to share."""
    channels = len(image.getbands())
    return (
        image.mode in _PNG_COLOUR_TYPES
        and image.width * image.height * channels >= _PARALLEL_PNG_BYTES
        and (os.cpu_count() or 1) > 1
    )


def _write_png_in_parallel(
    image: Image.Image, path: str, metadata: Metadata, description: str | None, png_compression: int
) -> None:
    """An 8-bit PNG whose rows are filtered and compressed in as many pieces as there are cores, at once (zlib and
    numpy let go of the GIL), into one zlib stream as pigz makes it: each piece primed with the 32 KB of rows
    before it and ended on a byte boundary. It decodes to the same pixels as Pillow's, with the same chunks."""
    from concurrent.futures import ThreadPoolExecutor

    pixels = np.asarray(image)
    rows = pixels.reshape(pixels.shape[0], -1)
    depth = 1 if pixels.ndim == 2 else pixels.shape[2]
    pieces = min(os.cpu_count() or 1, max(1, rows.shape[0] // 64))
    bounds = np.linspace(0, rows.shape[0], pieces + 1).astype(int)

    def filtered(index: int) -> bytes:
        start, stop = bounds[index], bounds[index + 1]
        above = rows[start - 1] if start else np.zeros(rows.shape[1], np.uint8)
        return _png_filtered(rows[start:stop], above, depth).tobytes()

    with ThreadPoolExecutor(pieces) as pool:
        raw = list(pool.map(filtered, range(pieces)))

        def deflated(index: int) -> bytes:
            primed = {"zdict": raw[index - 1][-_DEFLATE_WINDOW:]} if index else {}
            compressor = zlib.compressobj(png_compression, zlib.DEFLATED, -15, **primed)
            last = index == pieces - 1
            return compressor.compress(raw[index]) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

        body = list(pool.map(deflated, range(pieces)))
    checksum = 1
    for piece in raw:
        checksum = zlib.adler32(piece, checksum)
    stream = zlib.compress(b"", png_compression)[:2] + b"".join(body) + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, _PNG_COLOUR_TYPES[image.mode], 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _png_chunks(metadata, description))
        f.write(_chunk(b"IDAT", stream) + _chunk(b"IEND", b""))


def _png_filtered(rows: np.ndarray, above: np.ndarray, depth: int) -> np.ndarray:
    """PNG's filtered scanlines of ``rows`` (uint8, one row of samples each, ``above`` the row before them, ``depth``
    bytes a pixel), each row led by its filter: the one of least absolute sum (libpng's and Pillow's choice)."""
    before = np.empty_like(rows)
    before[0], before[1:] = above, rows[:-1]
    left = np.zeros_like(rows)
    left[:, depth:] = rows[:, :-depth]
    corner = np.zeros_like(rows)
    corner[:, depth:] = before[:, :-depth]
    a, b, c = (plane.astype(np.int16) for plane in (left, before, corner))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, before, corner))
    average = (left >> 1) + (before >> 1) + (left & before & 1)
    options = (rows, rows - left, rows - before, rows - average, rows - paeth)  # None, Sub, Up, Average, Paeth
    sums = [np.abs(option.view(np.int8)).view(np.uint8).sum(axis=1, dtype=np.uint32) for option in options]
    choice = np.argmin(np.stack(sums), axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    for kind, option in enumerate(options):
        chosen = choice == kind
        out[chosen, 1:] = option[chosen]
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_chunks(metadata: Metadata, description: str | None) -> bytes:
    """The PNG chunks that carry ``metadata`` and what was done, as Pillow writes them for 8-bit images."""
    chunks = []
    if metadata.icc_profile:
        chunks.append(_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(metadata.icc_profile)))
    if metadata.dpi:
        per_metre = [int(value / 0.0254 + 0.5) for value in metadata.dpi]
        chunks.append(_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1)))
    exif = _exif_for(metadata.exif, description).tobytes()
    chunks.append(_chunk(b"eXIf", exif.removeprefix(b"Exif\0\0")))
    texts = {"Software": f"remaster {__version__}", **({"Description": description} if description else {})}
    chunks += [_chunk(b"tEXt", f"{key}\0{value}".encode("latin-1", "replace")) for key, value in texts.items()]
    if metadata.xmp:
        chunks.append(_chunk(b"iTXt", _XMP_KEY.encode() + b"\0\0\0\0\0" + metadata.xmp))
    return b"".join(chunks)


def _write_sixteen_bit_tiff(image: np.ndarray, path: str, metadata: Metadata, description: str | None) -> None:
    """16-bit colour as TIFF (PIL cannot write it; OpenCV writes no metadata), with its ICC profile, resolution,
    XMP and what was done added to OpenCV's tags. Gray with transparency is written as RGBA, as in PNG."""
    import cv2

    metadata = _fitting(metadata, image)
    array = image if image.ndim == 2 or image.shape[2] == 1 else image[:, :, _BGR_ORDER[image.shape[2]]]
    ok, data = cv2.imencode(".tiff", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"Could not encode a {image.shape} {image.dtype} image as TIFF")
    text = {270: description, 305: f"remaster {__version__}"}
    tags = {tag: (2, value.encode("ascii", "replace") + b"\0") for tag, value in text.items() if value}
    if array.ndim == 3 and array.shape[2] == 4:
        tags[338] = (3, struct.pack("<H", 2))  # ExtraSamples: the fourth is unassociated alpha
    if metadata.dpi:
        for tag, value in zip((282, 283), metadata.dpi, strict=True):  # X and Y resolution, per inch
            tags[tag] = (5, struct.pack("<II", round(value * 10000), 10000))
        tags[296] = (3, struct.pack("<H", 2))
    if metadata.xmp:
        tags[_TIFF_XMP] = (1, metadata.xmp)
    if metadata.icc_profile:
        tags[34675] = (7, metadata.icc_profile)
    with open(path, "wb") as f:
        f.write(_tiff_with_tags(data.tobytes(), tags))


_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
"""Bytes per value of the TIFF field types used here: BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED."""


def _tiff_with_tags(data: bytes, tags: dict[int, tuple[int, bytes]]) -> bytes:
    """``data``, a one-image little-endian TIFF (as OpenCV writes it), with ``tags`` (tag: (type, value)) added or
    replaced: a new directory written at the end holds every tag, and the header points to it."""
    if data[:4] != b"II*\0":
        raise OSError("Could not add the metadata to a TIFF that is not little-endian")
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    entries = {}
    for index in range(count):
        tag, kind, number, value = struct.unpack_from("<HHI4s", data, first + 2 + 12 * index)
        entries[tag] = (kind, number, value)
    out = bytearray(data)
    for tag, (kind, payload) in tags.items():
        if len(payload) <= 4:
            value = payload.ljust(4, b"\0")
        else:
            out += b"\0" * (len(out) % 2)  # values start on a word boundary
            value = struct.pack("<I", len(out))
            out += payload
        entries[tag] = (kind, len(payload) // _TIFF_SIZES[kind], value)
    out += b"\0" * (len(out) % 2)
    directory = len(out)
    out += struct.pack("<H", len(entries))
    for tag in sorted(entries):
        out += struct.pack("<HHI4s", tag, *entries[tag])
    out += struct.pack("<I", 0)
    out[4:8] = struct.pack("<I", directory)
    return bytes(out)


_BGR_ORDER = {2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}
