"""The one inference path, and the one door into the networks, that the page, the API, the command line,
batches, videos and archives all take: :class:`Enhancer`."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from . import image_io, pixels
from .animation import Animation
from .engine import Engine
from .errors import ImageTooLargeError, InvalidOptionError, StoppedError, is_out_of_memory
from .faces import FaceRestorer
from .image_io import ImageInput, Picture
from .interpolation import Interpolator
from .model_files import ModelFiles
from .network import Network
from .options import Options
from .registry import MODELS, NO_MODEL, ModelSpec, get_model
from .settings import Settings
from .tiling import auto_tile, frames_at_once, result_array, upscale, upscale_frames
from .weights import WeightStore

__all__ = ["Enhancer", "Prepared", "Report", "enhance", "with_choices"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[..., object]
"""Called as ``progress(fraction, desc)``: a fraction from 0 to 1 and a short message."""

_STORE_SETTINGS = frozenset(
    {
        "weights_dir",
        "cache_dir",
        "hub_cache_dir",
        "hub_endpoint",
        "hub_token",
        "hub_repo",
        "hub_revision",
        "offline",
        "download_timeout",
    }
)
"""The settings a :class:`WeightStore` reads."""
_ENGINE_SETTINGS = frozenset({"device", "compile", "backend", "cache_dir", "cpu_bf16"})
"""The settings an :class:`Engine` reads (besides its store's)."""


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
    notes: tuple[str, ...] = ()
    """Where an option was changed to give a right result, a sentence each."""

    def summary(self) -> str:
        """One line: sizes, mode, model, device, faces and time."""
        (w, h), (ow, oh) = self.input_size, self.output_size
        frames = f" · {self.frames} frames" if self.frames > 1 else ""
        notes = "".join(f" Note: {note}." for note in self.notes)
        return (
            f"{w}×{h} → {ow}×{oh} ({self.mode}){frames} · {self.model} · {self.device}, {self.precision}"
            f"{self._faces()} · {self.seconds:.1f} s{notes}"
        )

    def description(self) -> str:
        """What was done, in ASCII (EXIF holds no other text), for the output file's metadata."""
        (w, h), (ow, oh) = self.input_size, self.output_size
        faces = f"; {self._faces().removeprefix(' · ')}" if self.faces_found is not None else ""
        frames = f", {self.frames} frames" if self.frames > 1 else ""
        return f"Remastered {w}x{h} -> {ow}x{oh}{frames} with {self.model}{faces}"

    def totalled(self, reports: Sequence[Report], **changes: object) -> Report:
        """This report with its faces counted over ``reports`` (the frames of one animation or video, or none of
        them), and ``changes`` made."""
        found = [report.faces_found for report in reports if report.faces_found is not None]
        return replace(
            self,
            faces_found=sum(found) if found else self.faces_found if not reports else None,
            faces_restored=sum(report.faces_restored for report in reports),
            **changes,
        )

    def _faces(self) -> str:
        if self.faces_found is None:
            return ""
        if self.faces_found == 0:
            return " · no face found"
        restored = f"{self.faces_restored} face{'s' if self.faces_restored != 1 else ''} restored"
        if self.faces_restored < self.faces_found:
            return f" · {restored} of {self.faces_found} found (the largest; REMASTER_MAX_FACES sets the limit)"
        return f" · {restored}"


@dataclass
class Prepared:
    """A model made ready ahead of a run of many frames (a video): its network loaded (none for the model
    ``none``, whose frames stay as they are), the face networks and the interpolator too where they are asked
    for, and how many frames go through the network at once."""

    spec: ModelSpec | None
    network: Network | None
    options: Options
    device_type: str
    interpolator: str | None = None
    """The interpolation model the frames' in-betweens are made with, if any."""
    frames_at_once: int = 1
    """Frames that go through the network together; halved when memory runs out."""

    @property
    def device(self) -> str:
        """The kind of device the work runs on: ``cpu``, ``cuda`` or ``mps``."""
        return self.device_type

    @property
    def macs_per_pixel(self) -> float:
        """The network's multiply-adds per input pixel (what a frame costs; 0 for the model ``none``)."""
        return self.network.macs_per_pixel if self.network is not None else 0.0

    def report(self, input_size: tuple[int, int], output_size: tuple[int, int], mode: str, seconds: float) -> Report:
        """A report of work done with this model (its faces counted with :meth:`Report.totalled`)."""
        network = self.network
        return Report(
            input_size=input_size,
            output_size=output_size,
            mode=mode,
            model=self.spec.name if self.spec is not None else NO_MODEL,
            device=str(network.device) if network is not None else self.device_type,
            precision=_precision(network) if network is not None else "as decoded",
            seconds=seconds,
            faces_found=0 if self.options.face_enhance else None,
        )


def _precision(network: Network) -> str:
    """What the network runs in: its dtype, or int8 with how far its pictures measured from fp32's."""
    runtime = network.accelerated
    if getattr(runtime, "backend", None) == "int8" and getattr(runtime, "state", None) == "chosen":
        quality = runtime.qualities.get("int8")
        return f"int8 ({quality} from fp32)" if quality is not None else "int8"
    return str(network.dtype).removeprefix("torch.")


class Enhancer:
    """Remasters images with the models in the registry, on one device: the one door into the networks.

    One instance keeps its loaded networks between calls and is safe to call from
    several threads at once.
    """

    def __init__(
        self, settings: Settings | None = None, store: WeightStore | None = None, *, engine: Engine | None = None
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.store = store if store is not None else WeightStore(self.settings)
        self.engine = engine if engine is not None else Engine(self.settings, self.store)
        self.faces = FaceRestorer(self.engine)
        self.interpolator = Interpolator(self.engine)
        self._model_files: ModelFiles | None = None
        self._resolved: dict[tuple[object, ...], str] = {}

    def with_settings(self, **changes: object) -> Enhancer:
        """A copy with some settings changed. It shares this one's loaded networks and downloads
        unless a change concerns them (the device, compilation, where weights come from)."""
        settings = replace(self.settings, **changes)
        changed = {name for name in changes if getattr(settings, name) != getattr(self.settings, name)}
        store = WeightStore(settings) if changed & _STORE_SETTINGS else self.store
        shared = store is self.store and not changed & _ENGINE_SETTINGS
        return Enhancer(settings, store, engine=self.engine if shared else None)

    def enhance(
        self,
        image: ImageInput,
        options: Options | None = None,
        *,
        progress: ProgressCallback | None = None,
        **choices: object,
    ) -> Image.Image | np.ndarray:
        """Remaster ``image``; see :func:`remaster.enhance`."""
        return self.run(image, with_choices(options, choices), progress=progress)[0]

    def resolve(self, options: Options) -> Options:
        """``options`` with its model named as registered: a model file (a path, an ``hf://`` reference or a URL)
        or a file's stem in ``REMASTER_MODELS_DIR`` is loaded and registered first, as ``-n`` does it.

        Raises:
            UnknownModelError: no model has that name.
            InvalidModelError: the model file cannot be used.
        """
        model = options.model
        spec = MODELS.get(model)
        if (spec is not None and spec.kind == "upscaler") or model == NO_MODEL:
            return options
        path = Path(model)
        key: tuple[object, ...] = (model,)
        if path.is_file():  # a file changed on disk is a new model
            stat = path.stat()
            key = (model, stat.st_mtime_ns, stat.st_size)
        name = self._resolved.get(key)
        if name is None or name not in MODELS:
            if self._model_files is None:
                self._model_files = ModelFiles(self.settings)
            name = self._resolved[key] = self._model_files.resolve(model).name
        return replace(options, model=name)

    def run(
        self,
        image: ImageInput | Picture,
        options: Options | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[Image.Image | np.ndarray, Report]:
        """Remaster ``image`` as ``options`` say and return the result and a :class:`Report` of what was done.

        Args:
            image: as :func:`remaster.enhance` takes it, or a :class:`~remaster.image_io.Picture`
                decoded already.
            options: the request's choices (the defaults when omitted); its model may be a model file, as
                :meth:`resolve` takes it.
            progress: called as ``progress(fraction, desc)``.
            cancel: when set, the work stops at the next tile with :class:`StoppedError`.

        Raises:
            The errors :func:`remaster.enhance` raises; StoppedError also when cancelled.
        """
        options = self.resolve(options if options is not None else Options())
        if options.model == NO_MODEL:
            raise InvalidOptionError(
                f"The model {NO_MODEL!r} keeps a video's frames as they are (to make in-betweens or skip repeats "
                "alone); choose a model to remaster an image"
            )
        started = time.perf_counter()
        check = self._stop_check(started, cancel)
        report = _progress_reporter(progress)
        spec = get_model(options.model, "upscaler")
        picture = image if isinstance(image, Picture) else image_io.decode(image, self.settings.max_input_pixels)
        size = pixels.output_size(picture.width, picture.height, options.outscale)
        self._check_output(spec, picture, size)

        report(0.0, f"Loading {spec.name}…")
        prepared = self.prepare(options, lambda message: report(0.0, message))
        output, faces, notes = self._remaster(spec, prepared.network, picture, size, options, report, check)
        report(1.0, "Done")
        summary = replace(
            prepared.report((picture.width, picture.height), size, picture.mode, time.perf_counter() - started),
            faces_found=faces[0],
            faces_restored=faces[1],
            notes=tuple(notes),
        )
        log.info("%s", summary.summary())
        return output, summary

    def prepare(
        self, options: Options, on_wait: Callable[[str], None] | None = None, *, interpolator: str | None = None
    ) -> Prepared:
        """Load what ``options`` need (the network, the face networks where faces are restored, and the
        ``interpolator`` where in-betweens are to be made) ahead of a run of many frames; ``on_wait`` is told
        what is being waited for (a download under way).

        Raises:
            UnknownModelError, InvalidModelError: as :meth:`resolve`.
            WeightsUnavailableError: the weights could not be found or downloaded.
        """
        options = self.resolve(options)
        device = self.engine.device.type
        if interpolator is not None:
            self.interpolator.prepare(interpolator, on_wait)
        if options.model == NO_MODEL:
            return Prepared(None, None, options, device, interpolator)
        spec = get_model(options.model, "upscaler")
        network = self.engine.network(spec, options.precision, options.denoise_strength, on_wait)
        if options.face_enhance:
            self.faces.prepare(options.face_model, on_wait)
        return Prepared(spec, network, options, device, interpolator)

    def batch_frames(self, prepared: Prepared, width: int, height: int, channels: int, requested: int | None) -> int:
        """How many ``width`` × ``height`` frames of ``channels`` (3: colour, 4: with alpha) go through the network
        at once (and sets ``prepared.frames_at_once``): whole frames at the network's own scale with nothing else
        to do to them (faces, transparency, resizing, padding), as many as the free memory holds (on CUDA only,
        where a batch pays), or ``requested``; else one."""
        if not _whole_at_native_scale(prepared, width, height, channels):
            count = 1
        elif requested is not None:
            count = max(1, requested)
        else:
            count = frames_at_once(prepared.network, height, width)
        prepared.frames_at_once = count
        return count

    def run_frames(
        self,
        prepared: Prepared,
        frames: Sequence[np.ndarray],
        *,
        cancel: threading.Event | None = None,
        check: Callable[[], None] | None = None,
    ) -> list[tuple[np.ndarray, Report]]:
        """Remaster video frames (RGB arrays, from :meth:`prepare`'s model): the same results and reports as
        :meth:`run` gives each, in one batch where :meth:`batch_frames` allowed it, else one by one.

        Args:
            check: called between the network's layers in a batch; raises to stop the work.
            cancel: as for :meth:`run`.

        Raises:
            The errors :meth:`run` raises.
        """
        if prepared.network is None:
            return [self._as_they_are(prepared, frame) for frame in frames]
        if len(frames) > 1 and prepared.frames_at_once > 1:
            try:
                return self._batch(prepared, frames, check)
            except (MemoryError, RuntimeError) as error:
                if not is_out_of_memory(error):
                    raise
                prepared.frames_at_once = max(1, len(frames) // 2)
                log.warning(
                    "Out of memory with %d frames at once; now %d at a time", len(frames), prepared.frames_at_once
                )
        return [self.run(frame, prepared.options, cancel=cancel) for frame in frames]

    def in_between(
        self,
        prepared: Prepared,
        first: np.ndarray,
        second: np.ndarray,
        times: Sequence[float],
        *,
        flow_scale: float = 1.0,
        check: Callable[[], None] | None = None,
    ) -> list[np.ndarray]:
        """Frames between two results of :meth:`run_frames`, at ``times`` in (0, 1), made by the interpolator
        ``prepared`` holds, with their motion estimated at ``flow_scale`` of their size (the input's size over
        the result's: the motion of the frames they were made from)."""
        if prepared.interpolator is None:
            raise ValueError("prepare() was not given an interpolator")
        return self.interpolator.between(
            prepared.interpolator, first, second, times, flow_scale=flow_scale, check=check
        )

    def _as_they_are(self, prepared: Prepared, frame: np.ndarray) -> tuple[np.ndarray, Report]:
        picture = image_io.decode(frame, self.settings.max_input_pixels)
        size = (picture.width, picture.height)
        return frame, prepared.report(size, size, picture.mode, 0.0)

    def _batch(
        self, prepared: Prepared, frames: Sequence[np.ndarray], check: Callable[[], None] | None
    ) -> list[tuple[np.ndarray, Report]]:
        started = time.perf_counter()
        pictures = [image_io.decode(frame, self.settings.max_input_pixels) for frame in frames]
        results = upscale_frames(prepared.network, np.stack([picture.pixels for picture in pictures]), check)
        seconds = (time.perf_counter() - started) / len(frames)
        done = []
        for picture, result in zip(pictures, results, strict=True):
            size = (result.shape[1], result.shape[0])
            report = prepared.report((picture.width, picture.height), size, picture.mode, seconds)
            done.append((image_io.encode(result, picture), report))
        return done

    def _check_output(self, spec: ModelSpec, picture: Picture, size: tuple[int, int]) -> None:
        """Refuse, before any work, a result over the output limit (also at the network's own scale)."""
        limit = self.settings.max_output_pixels
        if max(size[0] * size[1], picture.width * picture.height * spec.scale**2) > limit:
            raise ImageTooLargeError(
                f"The result would be {size[0]}×{size[1]}, more than the limit of {limit / 1e6:.0f} MP; "
                "choose a smaller output scale or a smaller image, or raise REMASTER_MAX_OUTPUT_PIXELS"
            )

    def _remaster(
        self,
        spec: ModelSpec,
        network: Network,
        picture: Picture,
        size: tuple[int, int],
        options: Options,
        report: Callable[[float, str], None],
        check: Callable[[], None],
    ) -> tuple[Image.Image | np.ndarray, tuple[int | None, int], list[str]]:
        """Upscale, resize, restore faces: the result, (faces found, restored) and notes on what was changed."""
        channels = picture.color_channels
        direct = size == (picture.width * network.scale, picture.height * network.scale) and not options.face_enhance
        share = 0.8 if options.face_enhance else 0.95
        notes: list[str] = []
        dtype = picture.pixels.dtype if direct else np.dtype(np.float32)
        upscaled = self._upscale(spec, network, picture, dtype, options, notes, check, report)
        if direct:
            return image_io.encode(upscaled, picture), (None, 0), notes
        report(share, "Resizing")
        final = pixels.resize(upscaled, size)
        del upscaled
        faces: tuple[int | None, int] = (None, 0)
        if options.face_enhance:

            def face_progress(fraction: float, message: str) -> None:
                report(0.85 + 0.1 * fraction, message)

            color = picture.pixels[:, :, :channels]
            faces = self.faces.enhance(
                color, final[:, :, :channels], options, self.settings.max_faces, face_progress, check
            )
        return image_io.encode(pixels.from_float(final, picture.pixels.dtype), picture), faces, notes

    def _upscale(
        self,
        spec: ModelSpec,
        network: Network,
        picture: Picture,
        dtype: np.dtype,
        options: Options,
        notes: list[str],
        check: Callable[[], None],
        report: Callable[[float, str], None] | None = None,
    ) -> np.ndarray:
        """The colour, and the alpha (by the network, or resized), at the network's scale, ``options.pre_pad``
        pixels of reflected border added for the network and cropped away again, as the official script does."""
        scale, pad = network.scale, options.pre_pad
        source = picture.pixels
        if pad:
            mode = "reflect" if pad < min(picture.height, picture.width) else "edge"
            source = np.pad(source, ((0, pad), (0, pad), (0, 0)), mode=mode)
        height, width = source.shape[:2]
        full = result_array(network.device, (height * scale, width * scale, source.shape[2]), dtype)
        tile = options.tile if options.tile is not None else self.settings.tile
        if network.tiling == "internal" or (network.tiling == "discouraged" and options.tile is None):
            tile = 0  # the network's own advice: it tiles itself, or tiles would show
        if network.overlap is None:  # a model that brought none: measured, if this image is to be tiled
            planned = tile if tile is not None else auto_tile(replace(network, overlap=0), height, width)
            whole = planned in (0, (0, 0))
            network = replace(network, overlap=0) if whole else self.engine.with_overlap(spec, network)
        overlap = network.overlap
        if options.tile_pad is not None:
            if options.tile_pad < network.overlap:
                notes.append(
                    f"tile_pad {options.tile_pad} was raised to {network.overlap}, the overlap this model's tiles "
                    "need to stay invisible"
                )
            overlap = max(options.tile_pad, network.overlap)
        channels = picture.color_channels
        passes = [("image", slice(0, channels))] + ([("alpha", slice(channels, None))] if picture.has_alpha else [])
        share = 0.8 if options.face_enhance else 0.95
        for index, (what, part) in enumerate(passes):

            def tile_done(fraction: float, index: int = index, what: str = what) -> None:
                if report is not None:
                    report(share * (index + fraction) / len(passes), f"Upscaling the {what}")

            if what == "alpha" and options.alpha_upsampler == "bicubic":
                full[:, :, part] = pixels.resize_alpha(source[:, :, part], (width * scale, height * scale), dtype)
            else:
                upscale(network, source[:, :, part], tile, tile_done, check, out=full[:, :, part], overlap=overlap)
        return np.ascontiguousarray(full[: picture.height * scale, : picture.width * scale]) if pad else full

    def run_animation(
        self,
        animation: Animation,
        options: Options | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> tuple[list[Image.Image | np.ndarray], Report]:
        """Remaster every frame of an animation (from :func:`remaster.animation.read_animation`).

        Returns the frames, in order, and one :class:`Report` for them all. The output
        pixel limit counts every frame, and is checked before any work.

        Raises:
            The same as :meth:`run`.
        """
        options = options if options is not None else Options()
        started = time.perf_counter()
        count = len(animation.frames)
        width, height = pixels.output_size(*animation.size, options.outscale)
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

            result, frame_report = self.run(frame, options, progress=frame_done, cancel=cancel)
            frames.append(result)
            reports.append(frame_report)
        return frames, reports[0].totalled(reports, seconds=time.perf_counter() - started, frames=count)

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


def _whole_at_native_scale(prepared: Prepared, width: int, height: int, channels: int) -> bool:
    """Whether frames of this size go through the network whole, at its own scale, with nothing else done to them
    (faces, transparency, resizing, padding): only those can share a batch."""
    options, network = prepared.options, prepared.network
    if network is None or options.face_enhance or channels != 3 or options.pre_pad:
        return False
    if pixels.output_size(width, height, options.outscale) != (width * network.scale, height * network.scale):
        return False
    if options.tile is None:
        return auto_tile(replace(network, overlap=0), height, width) == (0, 0)
    return options.tile == 0 or options.tile >= max(width, height)


def _progress_reporter(progress: ProgressCallback | None) -> Callable[[float, str], None]:
    if progress is None:
        return lambda fraction, message: None
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), message)


@functools.cache
def default_enhancer() -> Enhancer:
    """The process-wide :class:`Enhancer` behind :func:`enhance`, made on first use."""
    return Enhancer()


def with_choices(options: Options | None, choices: dict[str, object]) -> Options:
    """``options`` (the defaults when None) with ``choices`` (``Options`` fields by name) changed.

    Raises:
        TypeError: ``options`` is not an :class:`Options` (a model's name goes in ``model=``), or a choice is not
            one of its fields.
        InvalidOptionError, UnknownModelError: a choice is out of range, or no model has that name.
    """
    if options is None:
        return Options(**choices)
    if not isinstance(options, Options):
        raise TypeError(
            f"options must be an Options, not {type(options).__name__}; give single choices by name, "
            f"such as model={options!r}"
        )
    return replace(options, **choices) if choices else options


def enhance(
    image: ImageInput,
    options: Options | None = None,
    *,
    progress: ProgressCallback | None = None,
    **choices: object,
) -> Image.Image | np.ndarray:
    """Remaster an image: upscale it with a Real-ESRGAN model and return it in the same form.

    ``enhance(image, model="realesr-general-x4v3", outscale=2)`` and
    ``enhance(image, Options(model="realesr-general-x4v3", outscale=2))`` are the same request: the choices are
    :class:`~remaster.options.Options`' fields, given whole or by name (by name on top of a whole one, too).

    Args:
        image: a PIL image, a numpy array (``(H, W)`` or ``(H, W, C)``, C = 1–4, RGB order,
            uint8, uint16 or float 0–1) or a path to an image file.
        options: the request's choices; the defaults when omitted.
        progress: called as ``progress(fraction, desc)`` as work proceeds.
        **choices: any field of :class:`~remaster.options.Options`, among them:

            - ``model``: a registered model's name (:data:`remaster.MODELS`), a model file of any architecture
              spandrel knows (a path, ``hf://owner/repo/file.pth[@revision]`` or a URL), or a file's stem in
              ``REMASTER_MODELS_DIR``.
            - ``outscale``: the output's size relative to the input, from 1 to 8. The network runs at its native
              scale and the result is resized with Lanczos. Each side of the output is ``floor(side × outscale)``
              pixels, at least 1.
            - ``tile``: ``None`` picks the tiling automatically, ``0`` runs the whole image at once, a positive
              number is the tile's core edge in input pixels (32–4096, without the overlap each tile borrows from
              its neighbours).
            - ``face_enhance``: also restore faces with ``face_model`` (``"GFPGANv1.4"``, ``"GFPGANv1.3"`` or
              ``"RestoreFormer"``), blended in by ``face_strength`` (0: the plain upscale, exactly; 1: the
              restored faces in full; lower values keep more of the person's own features).
            - ``denoise_strength``: for realesr-general-x4v3 only, from 0 (strongest denoising) to 1 (none).
            - ``precision``: ``"auto"`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), ``"fp32"``
              (exact), ``"fp16"`` or ``"bf16"``.

    Returns:
        For a PIL image or a path, a PIL image (L, LA, RGB, RGBA or 16-bit ``I;16``),
        carrying the input's ICC profile. PIL cannot hold 16-bit colour, so a 16-bit
        colour file given by path (48-bit RGB, 64-bit RGBA, 16-bit gray with alpha)
        comes back as a numpy uint16 ``(H, W, C)`` array, RGB order. For a numpy array,
        an array of the same layout and dtype.

    Raises:
        InvalidImageError: not an image, empty, truncated or of an unsupported kind.
        ImageTooLargeError: more input or output pixels than the configured limits.
        UnknownModelError: no model has the name ``model``.
        InvalidModelError: ``model`` is a model file that cannot be used (the message says why).
        InvalidOptionError: an option is out of range.
        WeightsUnavailableError: the model's weights could not be found or downloaded.
        StoppedError: over the time limit (``REMASTER_TIME_LIMIT``).
        TypeError: ``options`` is not an :class:`Options`, or a choice is not one of its fields.
    """
    return default_enhancer().enhance(image, options, progress=progress, **choices)
