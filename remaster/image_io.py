"""Reading, validating and writing image files and arrays, in every mode people bring.

Inside remaster an image is a :class:`Picture`: an ``(H, W, C)`` array whose channels
are L, LA, RGB or RGBA (``C`` = 1, 2, 3, 4), of dtype uint8, uint16 or float32 (0–1),
plus what is needed to hand the result back in the form it came in.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from .errors import ImageTooLargeError, InvalidImageError
from .pixels import MODE_BY_CHANNELS, eight_bit_image, to_eight_bit
from .version import __version__

__all__ = [
    "ANIMATION_FORMATS",
    "IMAGE_SUFFIXES",
    "OUTPUT_FORMATS",
    "Animation",
    "ImageInput",
    "OutputFormat",
    "Picture",
    "animation_format",
    "atomic_file",
    "decode",
    "encode",
    "read_animation",
    "save",
    "save_animation",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
"""File extensions taken as images when a folder is given."""

ImageInput = Image.Image | np.ndarray | str | os.PathLike
"""What :func:`decode` accepts."""

_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_GRAY = {"I;16", "I;16B", "I;16L", "I;16N"}
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)


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
    to sRGB through its ICC profile when it has one; 16-bit files stay 16-bit.

    Raises:
        InvalidImageError: the input is not a readable image.
        ImageTooLargeError: it has more than ``max_pixels`` pixels (checked before decoding).
    """
    if isinstance(image, np.ndarray):
        return _decode_array(image, max_pixels)
    if isinstance(image, Image.Image):
        return _decode_pil(image, max_pixels, kind="pil")
    if isinstance(image, (str, os.PathLike)):
        return _decode_path(Path(image), max_pixels)
    raise InvalidImageError(
        f"Expected an image as a PIL image, a numpy array or a file path, but got {type(image).__name__}"
    )


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
                if _is_sixteen_bit_colour(im):
                    return _decode_sixteen_bit_colour(path, im)
                return _decode_pil(im, max_pixels, kind="path")
    except UnidentifiedImageError:
        raise InvalidImageError(
            "Expected an image, but this file is not one remaster can read (use PNG, JPEG, WebP, TIFF, BMP or GIF)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            "The image declares enormous dimensions (a possible decompression bomb) and was refused"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidImageError(
            f"The image file is truncated or corrupt ({error}); re-export it and try again"
        ) from None


def _is_sixteen_bit_colour(im: Image.Image) -> bool:
    """PIL opens 48/64-bit colour PNG and TIFF files as 8-bit RGB(A), losing the low bits."""
    if im.mode not in ("RGB", "RGBA", "LA") or not im.tile:
        return False
    args = im.tile[0][3]
    rawmode = args if isinstance(args, str) else next((a for a in args or () if isinstance(a, str)), "")
    return ";16" in rawmode


def _decode_sixteen_bit_colour(path: Path, im: Image.Image) -> Picture:
    import cv2

    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None or array.shape[:2] != (im.height, im.width) or array.dtype != np.uint16:
        raise InvalidImageError("The 16-bit image file is truncated or corrupt; re-export it and try again")
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
    try:
        with warnings.catch_warnings():
            # The TIFF reader only warns when the file ends early, and fills the rest with black.
            warnings.filterwarnings("error", message="Truncated File Read")
            im.load()
    except (OSError, SyntaxError, ValueError, UserWarning) as error:
        raise InvalidImageError(
            f"The image file is truncated or corrupt ({error}); re-export it and try again"
        ) from None
    icc = im.info.get("icc_profile") or None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block only loses the orientation
        log.warning("Ignoring the image's EXIF orientation, which could not be read: %s", error)
    exif = _exif_bytes(im)
    im, icc = _to_supported_mode(im, icc)
    array = np.asarray(im)
    if im.mode in _SIXTEEN_BIT_GRAY:
        array = array.astype(np.uint16)
    elif im.mode == "I":
        array = np.clip(array, 0, 65535).astype(np.uint16)
    elif im.mode == "F":
        array = np.clip(array, 0.0, 1.0).astype(np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return Picture(pixels=np.ascontiguousarray(array), kind=kind, icc_profile=icc, exif=exif)


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
    if mode == "1":
        return im.convert("L"), icc
    if mode == "La":
        return im.convert("LA"), icc
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or im.palette.mode == "RGBA"
        return im.convert("RGBA" if has_alpha else "RGB"), None
    if mode == "CMYK":
        return _cmyk_to_srgb(im, icc), None
    if mode == "RGBa":
        return im.convert("RGBA"), icc
    if mode == "RGBX":
        return im.convert("RGB"), icc
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
    gets a PIL image, except where PIL cannot hold the result (16-bit colour, 16-bit
    with alpha): then a numpy uint16 ``(H, W, C)`` array.
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
        im = Image.fromarray(pixels[:, :, 0].astype(np.float32), "F")
    else:
        return pixels
    if picture.icc_profile:
        im.info["icc_profile"] = picture.icc_profile
    if picture.exif:
        im.info["exif"] = picture.exif
    return im


@dataclass
class Animation:
    """The frames of an animated GIF, WebP or PNG, with their timing."""

    frames: list[Image.Image]
    """Whole frames (the format's disposal already applied), RGB or RGBA."""
    durations: list[int]
    """Milliseconds each frame shows."""
    loop: int
    """How many times the animation repeats; 0 for ever."""
    format: str
    """``GIF``, ``WEBP`` or ``PNG``."""

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size


ANIMATION_FORMATS: tuple[str, ...] = ("gif", "webp", "png")
_ANIMATION_EXTENSIONS = {"GIF": "gif", "WEBP": "webp", "PNG": "png"}


def read_animation(path: str | os.PathLike, max_pixels: int) -> Animation | None:
    """Every frame of an animated image file, or None for a still image.

    ``max_pixels`` counts every frame: 100 frames of 400×400 are 16 MP.

    Raises:
        InvalidImageError: the file is not a readable image, or a frame is corrupt.
        ImageTooLargeError: all the frames together have more than ``max_pixels`` pixels.
    """
    try:
        with Image.open(path) as im:
            count = getattr(im, "n_frames", 1)
            if count <= 1 or not getattr(im, "is_animated", False) or im.format not in _ANIMATION_EXTENSIONS:
                return None
            total = im.width * im.height * count
            if total > max_pixels:
                raise ImageTooLargeError(
                    f"The animation has {count} frames of {im.width}×{im.height}, {total / 1e6:.1f} MP in all, more "
                    f"than the limit of {max_pixels / 1e6:.1f} MP; shorten or shrink it, or raise "
                    "REMASTER_MAX_INPUT_PIXELS"
                )
            frames, durations = [], []
            for index in range(count):
                im.seek(index)
                im.load()
                durations.append(int(im.info.get("duration") or 100))
                transparent = im.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in im.info
                frames.append(im.convert("RGBA" if transparent else "RGB"))
            return Animation(frames, durations, int(im.info.get("loop", 0) or 0), im.format)
    except (UnidentifiedImageError, FileNotFoundError, IsADirectoryError):
        return None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"A frame of the animation is truncated or corrupt ({error})") from None


def animation_format(animation: Animation) -> str:
    """The output format that keeps ``animation`` as it came: gif, webp or png (APNG)."""
    return _ANIMATION_EXTENSIONS[animation.format]


def save_animation(
    frames: list[Image.Image],
    path: Path,
    fmt: str,
    durations: list[int],
    loop: int,
    quality: int | None = None,
    description: str | None = None,
) -> Path:
    """Write an animation atomically as GIF, WebP (lossless, or lossy at ``quality``) or APNG.

    Raises:
        ValueError: ``fmt`` cannot hold an animation.
        OSError: the file could not be written; nothing is left behind.
    """
    if fmt not in ANIMATION_FORMATS:
        raise ValueError(f"{fmt.upper()} cannot hold an animation; use one of {', '.join(ANIMATION_FORMATS)}")
    note = f"remaster {__version__}" + (f": {description}" if description else "")
    options: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": durations, "loop": loop}
    with atomic_file(path) as partial:
        if fmt == "gif":
            frames[0].save(partial, format="GIF", disposal=2, comment=note, **options)
        elif fmt == "webp":
            frames[0].save(partial, format="WEBP", **_webp_quality(quality), **options)
        else:
            frames[0].save(partial, format="PNG", pnginfo=_png_text(description), **options)
    return path


@contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` if the block succeeds, removed if not.

    Not mkstemp: its 0600 mode would stay on the result; a fresh name gets the usual umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = str(path.parent / f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def _png_text(description: str | None) -> PngInfo:
    text = PngInfo()
    text.add_text("Software", f"remaster {__version__}")
    if description:
        text.add_text("Description", description)
    return text


OutputFormat = Literal["png", "jpg", "webp"]
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpg", "webp")
DEFAULT_JPEG_QUALITY = 95


def save(
    image: Image.Image | np.ndarray,
    path: Path,
    fmt: OutputFormat = "png",
    quality: int | None = None,
    description: str | None = None,
) -> Path:
    """Write ``image`` to ``path`` atomically: a temporary file, renamed when complete.

    Args:
        image: a PIL image from :func:`encode`, or a numpy uint16 array (16-bit colour).
        fmt: ``png`` (lossless; 16-bit stays 16-bit), ``jpg`` (``quality``, default 95;
            transparency is flattened onto white) or ``webp`` (lossless, or lossy at ``quality``).
        description: what was done, recorded with remaster's name and version in the file's
            metadata (PNG text, EXIF ImageDescription and Software). The input's EXIF (less its
            orientation, already applied) and ICC profile are carried over.

    Raises:
        ValueError: ``fmt`` or ``quality`` is not supported.
        OSError: the file could not be written (disk full, no permission); nothing is left behind.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"Output format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"Quality must be from 1 to 100, not {quality}")
    with atomic_file(path) as partial:
        if isinstance(image, np.ndarray) and fmt == "png":
            _write_sixteen_bit_png(image, partial)
        else:
            _write_pil(_to_pil_for(image, fmt), partial, fmt, quality, description)
    return path


def _to_pil_for(image: Image.Image | np.ndarray, fmt: str) -> Image.Image:
    """An image ``fmt`` can hold: 8-bit for JPEG and WebP, no alpha for JPEG."""
    if isinstance(image, np.ndarray):  # 16-bit colour, kept only by PNG
        image = eight_bit_image(image)
    info = dict(image.info)
    if image.mode in ("I;16", "I", "F") and fmt != "png":
        pixels = np.asarray(image)
        image = Image.fromarray(to_eight_bit(pixels if image.mode != "I" else pixels.clip(0, 65535).astype(np.uint16)))
    if fmt == "jpg" and image.mode in ("LA", "RGBA"):
        background = Image.new("RGB" if image.mode == "RGBA" else "L", image.size, "white")
        background.paste(image.convert(background.mode), mask=image.getchannel("A"))
        image = background
    image.info.update({key: value for key, value in info.items() if key in ("icc_profile", "exif")})
    return image


def _write_pil(image: Image.Image, path: str, fmt: str, quality: int | None, description: str | None) -> None:
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
    options: dict[str, object] = {"exif": exif.tobytes()}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if fmt == "png":
        image.save(path, format="PNG", pnginfo=_png_text(description), **options)
    elif fmt == "jpg":
        # Full-resolution colour (4:4:4): halving the chroma would undo part of the upscale.
        image.save(path, format="JPEG", quality=quality or DEFAULT_JPEG_QUALITY, subsampling=0, **options)
    else:
        image.save(path, format="WEBP", **_webp_quality(quality), **options)


def _webp_quality(quality: int | None) -> dict[str, object]:
    # Lossless keeps even the colour under fully transparent pixels (exact).
    return {"quality": quality} if quality is not None else {"lossless": True, "exact": True}


def _write_sixteen_bit_png(image: np.ndarray, path: str) -> None:
    import cv2

    # OpenCV writes 16-bit colour (PIL cannot); it has no 16-bit gray+alpha, so that is
    # stored as RGBA with equal colour channels. It writes no metadata.
    array = image if image.ndim == 2 or image.shape[2] == 1 else image[:, :, _BGR_ORDER[image.shape[2]]]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"Could not encode a {image.shape} {image.dtype} image as PNG")
    with open(path, "wb") as f:
        f.write(data.tobytes())


_BGR_ORDER = {2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}
