"""The one inference function that the UI, the API and the CLI all call."""

from __future__ import annotations

import functools
import logging
import math
import numbers
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from . import imageio
from .engine import Engine, resolve_dtype
from .errors import ImageTooLargeError, InvalidOptionError, StoppedError
from .faces import DEFAULT_FACE_MODEL, FaceRestorer
from .imageio import ImageInput
from .registry import get_model
from .settings import Settings
from .weights import WeightStore

__all__ = [
    "DEFAULT_FACE_STRENGTH",
    "MAX_OUTSCALE",
    "MAX_TILE",
    "MIN_OUTSCALE",
    "MIN_TILE",
    "Enhancer",
    "Report",
    "enhance",
]

log = logging.getLogger(__name__)

MIN_OUTSCALE, MAX_OUTSCALE = 1.0, 8.0
MIN_TILE, MAX_TILE = 32, 4096
DEFAULT_FACE_STRENGTH = 0.7
"""How much of the restored face to use by default: enough to repair it, not so much it looks like someone else."""

ProgressCallback = Callable[..., object]
"""Called as ``progress(fraction, desc)``: a fraction from 0 to 1 and a short message."""


@dataclass(frozen=True)
class Report:
    """What one :meth:`Enhancer.run` did, for the result line the UI shows."""

    input_size: tuple[int, int]
    output_size: tuple[int, int]
    mode: str
    model: str
    device: str
    precision: str
    seconds: float
    faces_found: int | None = None
    """Faces detected, when face restoration was asked for."""
    faces_restored: int = 0
    frames: int = 1
    """Frames of an animation, each remastered."""

    def summary(self) -> str:
        """One line: sizes, mode, model, device, faces and time."""
        (w, h), (ow, oh) = self.input_size, self.output_size
        frames = f" · {self.frames} frames" if self.frames > 1 else ""
        return (
            f"{w}×{h} → {ow}×{oh} ({self.mode}){frames} · {self.model} · {self.device}, {self.precision}"
            f"{self._faces()} · {self.seconds:.1f} s"
        )

    def description(self) -> str:
        """What was done, in ASCII (EXIF holds no other text), for the output file's metadata."""
        (w, h), (ow, oh) = self.input_size, self.output_size
        faces = f"; {self._faces().removeprefix(' · ')}" if self.faces_found is not None else ""
        frames = f", {self.frames} frames" if self.frames > 1 else ""
        return f"Remastered {w}x{h} -> {ow}x{oh}{frames} with {self.model}{faces}"

    def _faces(self) -> str:
        if self.faces_found is None:
            return ""
        if self.faces_found == 0:
            return " · no face found"
        restored = f"{self.faces_restored} face{'s' if self.faces_restored != 1 else ''} restored"
        if self.faces_restored < self.faces_found:
            return f" · {restored} of {self.faces_found} found (the largest; REMASTER_MAX_FACES sets the limit)"
        return f" · {restored}"


class Enhancer:
    """Remasters images with the models in the registry, on one device.

    One instance keeps its loaded networks between calls and is safe to call from
    several threads at once.
    """

    def __init__(self, settings: Settings | None = None, store: WeightStore | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.store = store if store is not None else WeightStore(self.settings)
        self.engine = Engine(self.settings, self.store)
        self.faces = FaceRestorer(self.engine)

    def with_settings(self, **changes: object) -> Enhancer:
        """A copy with some settings changed (limits, defaults) that shares this one's loaded networks."""
        copy = Enhancer.__new__(Enhancer)
        copy.settings = replace(self.settings, **changes)
        copy.store, copy.engine, copy.faces = self.store, self.engine, self.faces
        return copy

    def enhance(
        self,
        image: ImageInput,
        model: str = "RealESRGAN_x4plus",
        outscale: float = 4.0,
        tile: int | None = None,
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        precision: str = "auto",
        progress: ProgressCallback | None = None,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
    ) -> Image.Image | np.ndarray:
        """Remaster ``image``; see :func:`remaster.enhance`."""
        return self.run(
            image, model, outscale, tile, face_enhance, denoise_strength, precision, progress, face_model, face_strength
        )[0]

    def run(
        self,
        image: ImageInput,
        model: str = "RealESRGAN_x4plus",
        outscale: float = 4.0,
        tile: int | None = None,
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        precision: str = "auto",
        progress: ProgressCallback | None = None,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        *,
        cancel: threading.Event | None = None,
    ) -> tuple[Image.Image | np.ndarray, Report]:
        """Like :meth:`enhance`, and also return a :class:`Report` of what was done.

        Args:
            cancel: when set, the work stops at the next tile with :class:`StoppedError`.

        Raises:
            StoppedError: cancelled, or over ``settings.time_limit``.
        """
        started = time.perf_counter()
        check = self._stop_check(started, cancel)
        spec = get_model(model, "upscaler")
        outscale = _check_number("outscale", outscale, MIN_OUTSCALE, MAX_OUTSCALE)
        denoise_strength = _check_number("denoise_strength", denoise_strength, 0.0, 1.0)
        tile = self._check_tile(tile)
        resolve_dtype(precision, self.engine.device)
        if face_enhance:
            get_model(face_model, "face_restorer")
            face_strength = _check_number("face_strength", face_strength, 0.0, 1.0)
        report = _progress_reporter(progress)

        picture = imageio.decode(image, self.settings.max_input_pixels)
        size = imageio.output_size(picture.width, picture.height, outscale)
        limit = self.settings.max_output_pixels
        if max(size[0] * size[1], picture.width * picture.height * spec.scale**2) > limit:
            raise ImageTooLargeError(
                f"The result would be {size[0]}×{size[1]}, more than the limit of {limit / 1e6:.0f} MP; "
                "choose a smaller output scale or a smaller image, or raise REMASTER_MAX_OUTPUT_PIXELS"
            )

        report(0.0, f"Loading {spec.name}…")

        def waiting(message: str) -> None:
            report(0.0, message)

        network = self.engine.network(spec, precision, denoise_strength if spec.supports_denoise else 1.0, waiting)
        if face_enhance:
            self.faces.prepare(face_model, waiting)

        channels = picture.color_channels
        native = (picture.height * spec.scale, picture.width * spec.scale, picture.pixels.shape[2])
        direct = size == (native[1], native[0]) and not face_enhance
        upscaled = self.engine.result_array(native, picture.pixels.dtype if direct else np.float32)
        passes = [("image", slice(0, channels))] + ([("alpha", slice(channels, None))] if picture.has_alpha else [])
        upscale_share = 0.8 if face_enhance else 0.95
        for index, (what, part) in enumerate(passes):

            def tile_done(fraction: float, index: int = index, what: str = what) -> None:
                report(upscale_share * (index + fraction) / len(passes), f"Upscaling the {what}")

            self.engine.upscale(network, picture.pixels[:, :, part], tile, tile_done, check, out=upscaled[:, :, part])
        faces_found, faces_restored = None, 0
        if direct:
            output = imageio.encode(upscaled, picture)
        else:
            report(upscale_share, "Resizing")
            final = imageio.resize(upscaled, size)
            del upscaled
            if face_enhance:
                faces_found, faces_restored = self._restore_faces(
                    picture, final[:, :, :channels], face_model, face_strength, report, check
                )
            output = imageio.encode(imageio.from_float(final, picture.pixels.dtype), picture)
        report(1.0, "Done")
        summary = Report(
            input_size=(picture.width, picture.height),
            output_size=size,
            mode=picture.mode,
            model=spec.name,
            device=str(network.device),
            precision=str(network.dtype).removeprefix("torch."),
            seconds=time.perf_counter() - started,
            faces_found=faces_found,
            faces_restored=faces_restored,
        )
        log.info("%s", summary.summary())
        return output, summary

    def run_animation(
        self,
        animation: imageio.Animation,
        model: str = "RealESRGAN_x4plus",
        outscale: float = 4.0,
        tile: int | None = None,
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        precision: str = "auto",
        progress: ProgressCallback | None = None,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        *,
        cancel: threading.Event | None = None,
    ) -> tuple[list[Image.Image], Report]:
        """Remaster every frame of an animation (from :func:`remaster.imageio.read_animation`).

        Returns the frames, in order, and one :class:`Report` for them all. The output
        pixel limit counts every frame, and is checked before any work.

        Raises:
            The same as :meth:`run`.
        """
        started = time.perf_counter()
        count = len(animation.frames)
        width, height = imageio.output_size(
            *animation.size, _check_number("outscale", outscale, MIN_OUTSCALE, MAX_OUTSCALE)
        )
        limit = self.settings.max_output_pixels
        if width * height * count > limit:
            raise ImageTooLargeError(
                f"The result would be {count} frames of {width}×{height}, more than the limit of {limit / 1e6:.0f} MP "
                "in all; choose a smaller output scale, or shorten the animation"
            )
        report = _progress_reporter(progress)
        frames, reports = [], []
        for index, frame in enumerate(animation.frames):

            def frame_done(fraction: float, desc: str = "", index: int = index) -> None:
                report((index + fraction) / count, f"Frame {index + 1} of {count}: {desc}")

            result, frame_report = self.run(
                frame,
                model,
                outscale,
                tile,
                face_enhance,
                denoise_strength,
                precision,
                frame_done,
                face_model,
                face_strength,
                cancel=cancel,
            )
            frames.append(result)
            reports.append(frame_report)
        found = [r.faces_found for r in reports if r.faces_found is not None]
        summary = replace(
            reports[0],
            seconds=time.perf_counter() - started,
            frames=count,
            faces_found=sum(found) if found else None,
            faces_restored=sum(r.faces_restored for r in reports),
        )
        return frames, summary

    def _restore_faces(
        self,
        picture: imageio.Picture,
        target: np.ndarray,
        model: str,
        strength: float,
        report: Callable[[float, str], None],
        check: Callable[[], None],
    ) -> tuple[int, int]:
        """Find faces in the input and blend restored ones into ``target``; (found, restored)."""
        check()
        report(0.85, "Finding faces")
        color = picture.pixels[:, :, : picture.color_channels]
        source = imageio.to_float(color)
        if source.shape[2] == 1:
            source = np.repeat(source, 3, axis=2)
        faces = self.faces.detect(source)
        chosen = faces[: self.settings.max_faces]

        def face_done(fraction: float) -> None:
            check()
            report(0.85 + 0.1 * fraction, "Restoring faces")

        restored = self.faces.restore(source, target, chosen, model, strength, face_done)
        return len(faces), restored

    def _stop_check(self, started: float, cancel: threading.Event | None) -> Callable[[], None]:
        limit = self.settings.time_limit

        def check() -> None:
            if cancel is not None and cancel.is_set():
                raise StoppedError("Stopped: the request was cancelled")
            if limit is not None and time.perf_counter() - started > limit:
                raise StoppedError(
                    f"Stopped after the time limit of {limit:g} s; choose a smaller image, a lower output scale "
                    "or a faster model (realesr-general-x4v3 or realesr-animevideov3)"
                )

        return check

    def _check_tile(self, tile: int | None) -> int | None:
        if tile is None:
            return self.settings.tile
        if (
            isinstance(tile, bool)
            or not isinstance(tile, numbers.Integral)
            and not (isinstance(tile, float) and tile.is_integer())
        ):
            raise InvalidOptionError(f"tile must be a whole number (0 for no tiling), not {tile!r}")
        tile = int(tile)
        if tile != 0 and not MIN_TILE <= tile <= MAX_TILE:
            raise InvalidOptionError(
                f"tile must be 0 (no tiling) or between {MIN_TILE} and {MAX_TILE} pixels, not {tile}"
            )
        return tile


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidOptionError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
    if not low <= value <= high:
        raise InvalidOptionError(f"{name} must be from {low:g} to {high:g}, not {value:g}")
    return float(value)


def _progress_reporter(progress: ProgressCallback | None) -> Callable[[float, str], None]:
    if progress is None:
        return lambda fraction, message: None
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), message)


@functools.cache
def default_enhancer() -> Enhancer:
    """The process-wide :class:`Enhancer` behind :func:`enhance`, made on first use."""
    return Enhancer()


def enhance(
    image: ImageInput,
    model: str = "RealESRGAN_x4plus",
    outscale: float = 4.0,
    tile: int | None = None,
    face_enhance: bool = False,
    denoise_strength: float = 0.5,
    precision: str = "auto",
    progress: ProgressCallback | None = None,
    face_model: str = DEFAULT_FACE_MODEL,
    face_strength: float = DEFAULT_FACE_STRENGTH,
) -> Image.Image | np.ndarray:
    """Remaster an image: upscale it with a Real-ESRGAN model and return it in the same form.

    Args:
        image: a PIL image, a numpy array (``(H, W)`` or ``(H, W, C)``, C = 1–4, RGB order,
            uint8, uint16 or float 0–1) or a path to an image file.
        model: a name from :data:`remaster.MODELS`.
        outscale: the output's size relative to the input, from 1 to 8. The network runs
            at its native scale and the result is resized with Lanczos. Each side of the
            output is ``floor(side × outscale)`` pixels, at least 1.
        tile: ``None`` picks the tiling automatically, ``0`` runs the whole image at once,
            a positive number is the tile's core edge in input pixels (32–4096, without
            the overlap each tile borrows from its neighbours).
        face_enhance: also restore faces with ``face_model``; the rest of the picture is
            upscaled with ``model`` as usual.
        denoise_strength: for realesr-general-x4v3 only, from 0 (strongest denoising) to
            1 (none); other models ignore it.
        precision: ``"auto"`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32),
            ``"fp32"`` (exact), ``"fp16"`` or ``"bf16"``.
        progress: called as ``progress(fraction, desc)`` as work proceeds.
        face_model: ``"GFPGANv1.4"`` (default), ``"GFPGANv1.3"`` or ``"RestoreFormer"``.
        face_strength: from 0 (the plain upscale, exactly) to 1 (the restored faces in full);
            lower values keep more of the person's own features.

    Returns:
        For a PIL image or a path, a PIL image (L, LA, RGB, RGBA or 16-bit ``I;16``),
        carrying the input's ICC profile. PIL cannot hold 16-bit colour, so a 16-bit
        colour file given by path (48-bit RGB, 64-bit RGBA, 16-bit gray with alpha)
        comes back as a numpy uint16 ``(H, W, C)`` array, RGB order. For a numpy array,
        an array of the same layout and dtype.

    Raises:
        InvalidImageError: not an image, empty, truncated or of an unsupported kind.
        ImageTooLargeError: more input or output pixels than the configured limits.
        UnknownModelError: ``model`` is not in the registry.
        InvalidOptionError: an option is out of range.
        WeightsUnavailableError: the model's weights could not be found or downloaded.
        StoppedError: over the time limit (``REMASTER_TIME_LIMIT``).
    """
    return default_enhancer().enhance(
        image, model, outscale, tile, face_enhance, denoise_strength, precision, progress, face_model, face_strength
    )
