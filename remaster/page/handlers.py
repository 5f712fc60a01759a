"""The functions behind the page's buttons and the API endpoints: a request's values in, results out.

Each turns the page's values into one :class:`~remaster.options.Options` (a bad value is a
clear message on the page), runs the work in a worker thread that the Stop button and a
client that goes away can cancel, on ZeroGPU inside a GPU slot sized to the work, and turns
remaster's errors into messages the page shows (and the log, in one line each).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from .. import image_io
from ..animation import read_animation
from ..atomic import sha256_of
from ..batch import BatchResult, run_batch
from ..errors import RemasterError, StoppedError, UnknownModelError
from ..fetch import fetch_url, is_public_address
from ..files import output_stem, remaster_file
from ..model_files import ModelFiles
from ..options import DEFAULT_FACE_STRENGTH, MAX_TILE, MIN_TILE, Options
from ..pipeline import Enhancer
from ..registry import DEFAULT_FACE_MODEL, DEFAULT_MODEL, MODELS, NO_MODEL, get_model, model_names
from ..video import VideoOptions, preview_frame, remaster_video
from ..video.probe import header_size
from ..video.segments import fingerprint
from ..zerogpu import estimate_frames_seconds, estimate_many, estimate_seconds, gpu_task
from .previews import DetailViews, Pair, detail_view, preview_pair, result_views
from .progress import PageProgress, from_an_agent
from .stopping import Stops, cancellable, session_of_request

__all__ = [
    "CODEC_CHOICES",
    "OUTPUT_CHOICES",
    "TILE_CHOICES",
    "Handlers",
    "described",
    "page_options",
    "parse_tile",
    "refused",
    "video_options",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

OUTPUT_CHOICES = [
    ("PNG (lossless, 16-bit kept)", "png", ("png", None)),
    ("WebP (lossless)", "webp", ("webp", None)),
    ("WebP (smaller, quality 90)", "webp-90", ("webp", 90)),
    ("JPEG (quality 95)", "jpg", ("jpg", 95)),
]
"""The download's format for still images (label, value, (format, quality)); animations keep their own."""
_OUTPUT_FORMATS = {value: fmt for _, value, fmt in OUTPUT_CHOICES}

TILE_CHOICES = [("Automatic", "auto"), ("Off — whole image at once", "off"), "128", "256", "512", "1024"]

CODEC_CHOICES = [
    ("H.264 (plays everywhere)", "h264"),
    ("H.265 (smaller files)", "h265"),
    ("VP9", "vp9"),
    ("AV1 (smallest files)", "av1"),
    ("FFV1 (lossless, large)", "ffv1"),
]


def refused(message: str) -> gr.Error:
    """The page's message for a request it will not do (a visitor's error): shown on the page, and logged as one
    line, not as a traceback."""
    log.info("Refused: %s", message)
    return gr.Error(message, print_exception=False)


def parse_tile(tile: str | int | float | None) -> int | None:
    """The page's and API's tile choice as :class:`Options` takes it.

    ``"auto"`` (or empty) → ``None``, ``"off"`` → 0, a number → that tile edge.

    Raises:
        gr.Error: anything else.
    """
    if tile is None or (isinstance(tile, str) and tile.strip().lower() in ("", "auto", "automatic")):
        return None
    if isinstance(tile, str) and tile.strip().lower() in ("off", "none", "0"):
        return 0
    try:
        value = float(tile)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer():
        raise refused(f'tile must be "auto", "off" or a whole number of pixels ({MIN_TILE}–{MAX_TILE}), not {tile!r}')
    return int(value)


INTERPOLATE_CHOICES = [("Off", 1), ("×2 (twice the frames)", 2), ("×3", 3), ("×4", 4)]
"""The Video tab's in-between choices (label, output frames per input frame)."""


def page_options(values: Mapping[str, object], *, video: bool = False) -> Options:
    """An :class:`Options` from a handler's values (its ``locals()``): those named like :class:`Options` fields.

    ``tile`` is in the page's spelling (:func:`parse_tile`), ``output_format`` is a value of
    :data:`OUTPUT_CHOICES` ("png" when absent); other names (the image, the progress) are left out. For a
    ``video``, the model may also be ``none`` (its frames as they are).

    Raises:
        gr.Error: a value is out of range or unknown, or the model is not a registered upscaler;
            the message says which.
    """
    choices = {name: values[name] for name in Options.names() if name in values}
    output_format = choices.pop("output_format", "png")
    if output_format not in _OUTPUT_FORMATS:
        raise refused(f"output_format must be one of {', '.join(_OUTPUT_FORMATS)}, not {output_format!r}")
    fmt, quality = _OUTPUT_FORMATS[output_format]
    choices["tile"] = parse_tile(choices.get("tile"))
    if not (video and choices.get("model") == NO_MODEL):
        _check_registered(choices)
    with user_errors():
        # A visitor waits for the download: zlib's level 1 writes a PNG three times faster than 6, a tenth larger.
        return Options(**{**choices, "output_format": fmt, "quality": quality, "png_compression": 1})


def _check_registered(choices: Mapping[str, object]) -> None:
    """Refuse models that are not registered, whatever :class:`Options` itself would take.

    The model dropdown takes typed values: a path or URL there would have the server read or fetch
    it. A visitor's own model file comes in through :meth:`Handlers.load_model`, public addresses only.
    """
    try:
        get_model(choices.get("model", DEFAULT_MODEL), "upscaler")
        if choices.get("face_enhance"):
            get_model(choices.get("face_model", DEFAULT_FACE_MODEL), "face_restorer")
    except UnknownModelError as error:
        raise refused(f"{error} Bring a model file of your own with Load the model (/load_model) first.") from None


def video_options(
    codec: str = "h264", crf: float | None = None, interpolate: int = 1, skip_duplicates: bool = True
) -> VideoOptions:
    """The :class:`VideoOptions` from the Video tab's codec, quality, in-betweens and repeats; FFV1 is lossless and
    ignores ``crf``.

    Raises:
        gr.Error: an unknown codec, or a quality, or a number of frames, out of range.
    """
    with user_errors():
        return VideoOptions(
            codec=codec,
            crf=None if crf is None or codec == "ffv1" else crf,
            interpolate=interpolate,
            skip_duplicates=skip_duplicates,
        )


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def _model_lists() -> dict[str, str]:
    """What the endpoints' docstrings say of the registered models, by the placeholder each holds."""
    upscalers = model_names("upscaler")
    return {
        "{upscalers}": "; ".join(MODELS[name].label for name in upscalers),
        "{upscaler_names}": _one_of(upscalers),
        "{face_models}": _one_of(model_names("face_restorer")),
    }


def described(endpoint: Callable[..., T]) -> Callable[..., T]:
    """``endpoint`` with the models registered now (model files loaded at start included) in its docstring.

    Gradio reads the docstring for the API page and the MCP tools' descriptions. The wrapper keeps
    the signature (``inspect.signature`` follows ``__wrapped__``, so ``gr.Progress`` is still
    injected) and is a coroutine function where ``endpoint`` is one.
    """
    if inspect.iscoroutinefunction(endpoint):

        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await endpoint(*args, **kwargs)

    else:

        @functools.wraps(endpoint)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return endpoint(*args, **kwargs)

    doc = endpoint.__doc__ or ""
    for placeholder, text in _model_lists().items():
        doc = doc.replace(placeholder, text)
    wrapper.__doc__ = doc
    return wrapper


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn remaster's errors, and running out of memory or disk, into messages the page shows."""
    try:
        yield
    except RemasterError as error:
        raise refused(str(error)) from None
    except MemoryError:
        raise refused("Ran out of memory: choose a smaller tile, a smaller output scale or a smaller image") from None
    except OSError as error:
        log.exception("Could not write the result")  # the server's fault, not the visitor's: with its traceback
        message = f"The result could not be saved ({error.strerror or error}); try again later"
        raise gr.Error(message, print_exception=False) from None


def _shown(progress: Callable[..., object] | None) -> PageProgress:
    """The request's progress as the page shows it; counted in steps for an agent, whose MCP server passes on only
    those words."""
    return PageProgress(progress, steps=from_an_agent())


def _keep_upload(upload: Path, cache: Path) -> Path:
    """An uploaded model file copied where it stays (Gradio deletes uploads after an hour), by its contents."""
    import shutil

    digest = sha256_of(upload)[:16]
    kept = cache / "uploaded-models" / digest / upload.name
    if not kept.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(upload, kept)
    return kept


def _output_folder() -> Path:
    """A fresh folder in Gradio's cache, which deletes it after an hour."""
    return Path(get_upload_folder()) / "remaster" / uuid.uuid4().hex


def _file_seconds(enhancer: Enhancer, source: str, target: Path, options: Options, **_: object) -> float:
    return estimate_seconds(source, options.model, options.face_enhance)


def _batch_seconds(enhancer: Enhancer, paths: list[Path], archive: Path, options: Options, **_: object) -> float:
    return estimate_many(paths, [options.model], options.face_enhance)


def _compare_seconds(enhancer: Enhancer, image: str, options: list[Options], *_: object) -> float:
    return estimate_many([image], [o.model for o in options])


def _compare_models(
    enhancer: Enhancer, image: str, options: list[Options], progress: Callable[..., object], cancel: threading.Event
) -> tuple[list[tuple[Image.Image, str]], list[str]]:
    """One image through each model: the detail view of each, captioned with its time, and a note on each."""
    picture = image_io.decode(image, enhancer.settings.max_input_pixels)
    gallery: list[tuple[Image.Image, str]] = []
    notes = []
    for index, choice in enumerate(options):

        def model_progress(fraction: float, desc: str | None = None, index: int = index, model: str = choice.model):
            progress((index + fraction) / len(options), desc=f"{model}: {desc or ''}")

        try:
            result, report = enhancer.run(picture, choice, progress=model_progress, cancel=cancel)
        except StoppedError:
            raise  # stopped: the other models too
        except RemasterError as error:
            notes.append(f"- **{choice.model}** did not run: {error}")
            continue
        before, after = detail_view(picture.pixels, image_io.decode(result, max_pixels=1 << 62).pixels)
        if not gallery:
            gallery.append((before, "the input, enlarged (Lanczos)"))
        gallery.append((after, f"{choice.model} · {report.seconds:.1f} s"))
        notes.append(f"- **{choice.model}**: {report.summary()}")
    return gallery, notes


def _video_seconds(source: str, target: Path, options: Options, video: VideoOptions, **_: object) -> float:
    frames, width, height = header_size(source) or (3600, 1920, 1080)
    if video.fps is not None:
        frames = max(1, round(frames * video.fps / 25))
    seconds = estimate_frames_seconds(frames, width * height, options.model, options.face_enhance)
    if video.interpolates:  # an in-between costs about what the flow network does on the input's frames
        seconds += estimate_frames_seconds(frames * video.interpolate, width * height, video.interpolation_model)
    return seconds


def _preview_seconds(source: str, seconds: float, options: Options, **_: object) -> float:
    _, width, height = header_size(source) or (1, 1920, 1080)
    return estimate_frames_seconds(1, width * height, options.model, options.face_enhance)


# On ZeroGPU the GPU is lent to each of these per call, for about as long as the work needs.
_remaster_file = gpu_task(remaster_file, _file_seconds)
_run_batch = gpu_task(run_batch, _batch_seconds)
_compare = gpu_task(_compare_models, _compare_seconds)
_remaster_video = gpu_task(remaster_video, _video_seconds)
_preview_frame = gpu_task(preview_frame, _preview_seconds)


_PLAYABLE = (".mp4", ".m4v", ".webm")
"""Containers browsers play (with H.264, VP9 or AV1 in them); others are for download only, so that Gradio
does not re-encode them for its player."""


def _video_folder(source: str, options: Options, video: VideoOptions) -> Path:
    """The same folder for the same video and choices, so that Remaster after Stop continues the job."""
    key = json.dumps([fingerprint(Path(source)), options.describe(), video.describe()], sort_keys=True)
    return Path(get_upload_folder()) / "remaster" / f"video-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class Handlers:
    """The page's and the API's functions, sharing one enhancer and the detail views of recent results.

    Their parameters that are a request's choices are named like :class:`Options` fields, so that
    ``page_options(locals())`` makes each one's :class:`Options` without spelling them again.
    """

    def __init__(self, enhancer: Enhancer) -> None:
        self.enhancer = enhancer
        self.details = DetailViews()
        self.stops = Stops()
        # Anyone may type a URL on a public page: only public addresses are fetched for it.
        self.model_files = ModelFiles(enhancer.settings, allowed=is_public_address)

    def load_model(self, reference: str | None, upload: str | None = None) -> tuple[str, str]:
        """Load a model file of any architecture spandrel knows, so that every view and endpoint can use it.

        Args:
            reference: a Hub reference (hf://owner/repo/path/file.pth, optionally @revision) or an http(s) URL.
            upload: a model file (.pth, .pt, .ckpt or .safetensors) uploaded instead, where the app allows it.

        Returns:
            The name the model is registered as, and a line on it: architecture, scale, licence, source.
        """
        settings = self.enhancer.settings
        if upload:
            if not settings.allow_model_upload:
                raise refused("This app does not take uploaded model files; give a Hub reference or a URL")
            size = Path(upload).stat().st_size
            if size > settings.max_model_mb * 2**20:
                raise refused(
                    f"The model file is {size / 2**20:.0f} MB, more than the limit of {settings.max_model_mb} MB"
                )
            reference = str(_keep_upload(Path(upload), settings.cache_dir))
        elif not reference or not reference.strip():
            raise refused("Give a Hub reference (hf://owner/repo/file.pth) or a URL of a model file")
        elif not reference.strip().startswith(("hf://", "http://", "https://")):
            raise refused(
                "Give a Hub reference (hf://owner/repo/file.pth) or an http(s) URL; paths are for the command line"
            )
        with user_errors():
            spec = self.model_files.load(reference.strip())
        return spec.name, f"**{spec.name}** — {spec.description}. Licence: {spec.license}."

    async def remaster_image(
        self,
        image: str | None,
        model: str,
        outscale: float,
        tile: str | int | None = "auto",
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        output_format: str = "png",
        precision: str = "auto",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, Pair, str]:
        """Upscale and clean up an uploaded image with a Real-ESRGAN model, optionally restoring faces.

        The models, each with what it is for: {upscalers}.

        Args:
            image: the image file (PNG, JPEG, WebP, TIFF, BMP or GIF; 16-bit and transparency are kept).
            model: {upscaler_names}.
            outscale: how many times larger the result is, from 1 to 8.
            tile: "auto", "off", or a tile size in pixels such as "256".
            face_enhance: also restore faces with GFPGAN.
            denoise_strength: realesr-general-x4v3 only: 0 removes the most noise, 1 none.
            face_model: {face_models}.
            face_strength: 0 (the plain upscale) to 1 (the restored faces in full).
            output_format: "png" (lossless), "webp" (lossless), "webp-90" or "jpg"; animations keep their own.
            precision: "auto" (faithful: fp32, or bf16/fp16 where the device has it), or "int8" (fastest on a
                CPU: quantized, the result's line says how far it is from fp32), "fp32", "bf16", "fp16".

        Returns:
            The full-resolution result file, a before/after preview pair, and a line saying what was done.
        """
        if image is None:
            raise refused("Upload an image first")
        self._check_size(image)
        options = page_options(locals())
        work = functools.partial(self._remaster, image, options, _shown(progress))
        return await cancellable(work, self.stops, "remaster")

    def _remaster(
        self, image: str, options: Options, progress: Callable[..., object] | None, cancel: threading.Event
    ) -> tuple[str, Pair, str]:
        target = _output_folder() / output_stem(Path(image).stem, options)
        with user_errors():
            done = _remaster_file(self.enhancer, image, target, options, progress=progress, cancel=cancel)
            pair, detail = result_views(done)
        self.details.add(str(done.path), detail)
        return str(done.path), pair, done.summary()

    def stop(self, tab: str) -> None:
        """Stop this visitor's work on ``tab`` (``remaster``, ``batch``, ``compare``, ``video``): running, or still
        waiting in the queue. The work's own answer then says what was kept."""
        session = session_of_request()
        if session is not None:
            self.stops.press(session, tab)

    def check_image(self, image: str | None) -> None:
        """Refuse an image as it arrives, before any click: a file that is no image remaster reads, or one over
        the limits (megabytes, pixels; an animation's frames together)."""
        if image is None:
            return
        self._check_size(image)
        limit = self.enhancer.settings.max_input_pixels
        with user_errors():
            if read_animation(image, limit) is None:
                image_io.decode(image, limit)

    def _check_size(self, *files: str) -> None:
        """Images are held to their own size limit where model uploads raise the page's."""
        limit = self.enhancer.settings.max_upload_mb
        for file in files:
            if Path(file).stat().st_size > limit * 2**20:
                raise refused(f"{Path(file).name} is larger than {limit} MB, the limit (REMASTER_MAX_UPLOAD_MB)")

    def detail(self, image: str | None, download: str | None) -> Pair | None:
        """The centre of the latest result at 100%, beside the same region of the input."""
        with user_errors():
            return self.details.get(image, download)

    async def remaster_url(
        self,
        image_url: str,
        model: str,
        outscale: float = 4.0,
        face_enhance: bool = False,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, str]:
        """Upscale and clean up an image from the web with a Real-ESRGAN model, returning a lossless PNG.

        Use it to make a photo, scan, drawing or anime frame larger and sharper, with the model made for
        that kind of picture: {upscalers}. Only public http(s) URLs are fetched, up to the app's upload
        size limit.

        Args:
            image_url: a public http or https URL of a PNG, JPEG, WebP, TIFF, BMP or GIF image.
            model: the model's name: {upscaler_names}.
            outscale: how many times larger the result is, from 1 to 8.
            face_enhance: also restore faces with GFPGAN.

        Returns:
            The remastered image (PNG, or the animation's own format) and a line saying what was done.
        """
        options = page_options(locals())
        limit = self.enhancer.settings.max_upload_mb * 2**20
        with user_errors():
            source = await anyio.to_thread.run_sync(fetch_url, image_url.strip(), _output_folder(), limit)
        work = functools.partial(self._remaster, str(source), options, _shown(progress))
        path, _, summary = await cancellable(work)
        return path, summary

    async def remaster_batch(
        self,
        files: list[str] | None,
        model: str,
        outscale: float,
        face_enhance: bool,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, str]:
        """Remaster several images (or zips of images) into one zip; returns it and a report of each file."""
        if not files:
            raise refused("Add some images, or a zip of them, first")
        self._check_size(*files)
        options = page_options(locals())
        archive = _output_folder() / f"remastered_{options.model}_x{options.outscale:g}.zip"
        shown = _shown(progress)

        def work(cancel: threading.Event) -> BatchResult:
            with user_errors():
                paths = [Path(f) for f in files]
                return _run_batch(self.enhancer, paths, archive, options, progress=shown, cancel=cancel)

        result = await cancellable(work, self.stops, "batch")
        if not result.done:
            raise refused("None of the files could be remastered. " + " ".join(f"{n}: {r}" for n, r in result.failed))
        return str(result.archive), result.summary()

    async def compare(
        self,
        image: str | None,
        models: list[str],
        outscale: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[list[tuple[Image.Image, str]], str]:
        """Remaster one image with each of ``models``; the same centre crop of each, captioned with its time."""
        if image is None:
            raise refused("Upload an image first")
        if not models:
            raise refused("Choose at least one model")
        self._check_size(image)
        options = [page_options({"model": name, "outscale": outscale}) for name in models]
        shown = _shown(progress)

        def work(cancel: threading.Event) -> tuple[list[tuple[Image.Image, str]], list[str]]:
            with user_errors():
                return _compare(self.enhancer, image, options, shown, cancel)

        gallery, notes = await cancellable(work, self.stops, "compare")
        if len(gallery) < 2:
            raise refused("None of the models could run. " + " ".join(notes))
        return gallery, "\n".join(notes)

    async def remaster_video(
        self,
        video: str | None,
        model: str,
        outscale: float,
        tile: str | int | None = "auto",
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        codec: str = "h264",
        crf: float | None = None,
        interpolate: int = 1,
        skip_duplicates: bool = True,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, str | None, str]:
        """Upscale and clean up every frame of a video with a Real-ESRGAN model, keeping sound, subtitles and timing;
        optionally with in-between frames made by RIFE (more frames a second, never blended across a scene cut).

        A stopped job continues where it was when it is asked for again with the same video and choices.
        The models, each with what it is for: {upscalers}.

        Args:
            video: the video file (MP4, MKV, WebM, MOV, AVI…).
            model: {upscaler_names}; or "none" to keep the frames' size (in-betweens alone).
            outscale: how many times larger the frames become, from 1 to 8.
            tile: "auto", "off", or a tile size in pixels such as "256".
            face_enhance: also restore faces with GFPGAN.
            denoise_strength: realesr-general-x4v3 only: 0 removes the most noise, 1 none.
            face_model: {face_models}.
            face_strength: 0 (the plain upscale) to 1 (the restored faces in full).
            codec: "h264" (plays everywhere), "h265", "vp9", "av1" or "ffv1" (lossless).
            crf: quality, lower is better and larger (H.264/H.265 0–51, VP9/AV1 0–63); empty for the codec's default.
            interpolate: output frames per input frame, 1 to 16: 2 doubles the frame rate with RIFE's in-betweens;
                1 makes none.
            skip_duplicates: a frame that repeats the picture before it reuses its result (anime drawn on twos or
                threes runs the network once per drawing).

        Returns:
            The remastered video file; the same for the page's player when browsers can play it (MP4 or WebM
            in H.264, VP9 or AV1), else nothing; and a line saying what was done.
        """
        if video is None:
            raise refused("Upload a video first")
        options = page_options(locals(), video=True)
        choices = video_options(codec, crf, interpolate, skip_duplicates)
        target = _video_folder(video, options, choices) / output_stem(Path(video).stem, options)
        shown = _shown(progress)

        def work(cancel: threading.Event) -> tuple[str, str | None, str]:
            with user_errors():
                done = _remaster_video(
                    video, target, options, choices, enhancer=self.enhancer, progress=shown, cancel=cancel
                )
            playable = done.path.suffix in _PLAYABLE and choices.codec in ("h264", "vp9", "av1")
            note = "" if playable else " · Browsers cannot play this file: download it and use a video player."
            return str(done.path), str(done.path) if playable else None, done.summary() + note

        return await cancellable(work, self.stops, "video")

    async def preview_video(
        self,
        video: str | None,
        seconds: float,
        model: str,
        outscale: float,
        tile: str | int | None = "auto",
        face_enhance: bool = False,
        denoise_strength: float = 0.5,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        interpolate: int = 1,
    ) -> tuple[Pair, str]:
        """One frame of a video, at ``seconds``, before and after: the choices judged in seconds, not the whole clip;
        with ``interpolate`` above 1, the frame and the in-between made halfway to the next one."""
        if video is None:
            raise refused("Upload a video first")
        options = page_options(locals(), video=True)
        choices = video_options(interpolate=interpolate)

        def work(cancel: threading.Event) -> tuple[Pair, str]:
            with user_errors():
                before, after, when = _preview_frame(
                    video, float(seconds or 0.0), options, choices, enhancer=self.enhancer, cancel=cancel
                )
                pair = preview_pair(before, after)
            (height, width), (out_height, out_width) = before.shape[:2], after.shape[:2]
            what = "The in-between frame made" if choices.interpolates else "The frame"
            return pair, f"{what} at {when:.2f} s: {width}×{height} → {out_width}×{out_height}"

        return await cancellable(work, self.stops, "video")
