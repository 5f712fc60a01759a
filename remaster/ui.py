"""The Gradio page and its API endpoint ``/remaster``. The only module besides app.py that imports Gradio."""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder
from PIL import Image

from . import __version__, imageio
from .batch import BatchResult, run_batch
from .errors import RemasterError
from .faces import DEFAULT_FACE_MODEL, DETECTOR, PARSER
from .fetch import fetch_image
from .files import remaster_file
from .pipeline import DEFAULT_FACE_STRENGTH, MAX_OUTSCALE, MAX_TILE, MIN_OUTSCALE, MIN_TILE, Enhancer
from .registry import MODELS, get_model, model_names
from .settings import Settings
from .zerogpu import estimate_seconds, gpu_task

__all__ = [
    "EXAMPLES_DIR",
    "build_demo",
    "detail_view",
    "launch_options",
    "limits_text",
    "make_batch_handler",
    "make_comparison",
    "make_handler",
    "make_url_tool",
    "parse_tile",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
PREVIEW_MAX_SIDE = 4096
"""The before/after preview is scaled to fit this; the download is always full resolution."""
DETAIL_SIDE = 384
"""The detail view shows this many output pixels square, at 100%."""

OUTPUT_CHOICES = [
    ("PNG (lossless, 16-bit kept)", "png", ("png", None)),
    ("WebP (lossless)", "webp", ("webp", None)),
    ("WebP (smaller, quality 90)", "webp-90", ("webp", 90)),
    ("JPEG (quality 95)", "jpg", ("jpg", 95)),
]
OUTPUT_CHOICES_BY_VALUE = {value: fmt for _, value, fmt in OUTPUT_CHOICES}
"""The download's format for still images; animations keep their own."""

TILE_CHOICES = [("Automatic", "auto"), ("Off — whole image at once", "off"), "128", "256", "512", "1024"]

_EXAMPLES = [
    ("photo_astronaut.jpg", "RealESRGAN_x4plus"),
    ("photo_coffee.jpg", "realesr-general-x4v3"),
    ("drawing_lighthouse.png", "RealESRGAN_x4plus_anime_6B"),
    ("scan_text.png", "realesr-general-x4v3"),
    ("anime_frame.png", "realesr-animevideov3"),
]


class _ImageUpload(gr.Image):
    """``gr.Image`` that turns a file Gradio itself cannot open into remaster's own clear message."""

    is_template = True

    def preprocess(self, payload):  # noqa: ANN001, ANN201 - Gradio's own signature
        try:
            return super().preprocess(payload)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            # Gradio opens the upload with PIL first; let remaster's decoder say what is wrong.
            try:
                imageio.decode(payload.path, max_pixels=1 << 62)
            except RemasterError as precise:
                raise gr.Error(str(precise)) from None
            raise gr.Error(f"The uploaded file could not be read as an image ({error})") from None


def _choices(kind: str) -> list[tuple[str, str]]:
    """(label, name) of every registered model of ``kind``, for a dropdown or checkbox group."""
    return [(MODELS[name].label, name) for name in model_names(kind)]


def parse_tile(tile: str | int | float | None) -> int | None:
    """The UI's and API's tile choice as :func:`remaster.enhance` takes it.

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
        raise gr.Error(f'tile must be "auto", "off" or a whole number of pixels ({MIN_TILE}–{MAX_TILE}), not {tile!r}')
    return int(value)


def _float_pixels(image: Image.Image | np.ndarray | str) -> np.ndarray:
    picture = imageio.decode(image, max_pixels=1 << 62)
    return imageio.to_float(picture.pixels)


def _preview(image: Image.Image | np.ndarray, size: tuple[int, int]) -> Image.Image:
    """An 8-bit copy of ``image`` at ``size``, shrunk to fit :data:`PREVIEW_MAX_SIDE`."""
    ratio = min(1.0, PREVIEW_MAX_SIDE / max(size))
    target = (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))
    return imageio.eight_bit_image(imageio.resize(_float_pixels(image), target))


def detail_view(
    source: str | None, result: str | Image.Image | np.ndarray | None
) -> tuple[Image.Image, Image.Image] | None:
    """The centre of the result at 100%, beside the same region of the input enlarged to match."""
    if not source or result is None or (isinstance(result, str) and not result):
        return None
    after, before = _float_pixels(result), _float_pixels(source)
    (height, width), (in_height, in_width) = after.shape[:2], before.shape[:2]
    crop_w, crop_h = min(DETAIL_SIDE, width), min(DETAIL_SIDE, height)
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    scale_x, scale_y = width / in_width, height / in_height
    # Enlarge only the part of the input under the crop (results can be 16384 pixels wide).
    x0, y0 = int(left / scale_x), int(top / scale_y)
    x1 = min(in_width, int(np.ceil((left + crop_w) / scale_x)) + 1)
    y1 = min(in_height, int(np.ceil((top + crop_h) / scale_y)) + 1)
    region = imageio.resize(before[y0:y1, x0:x1], (round((x1 - x0) * scale_x), round((y1 - y0) * scale_y)))
    dx, dy = left - round(x0 * scale_x), top - round(y0 * scale_y)
    before_crop = imageio.resize(region[dy : dy + crop_h, dx : dx + crop_w], (crop_w, crop_h))
    if before_crop.shape[2] != after.shape[2]:  # a colour result of a gray input, or the reverse
        before_crop = np.repeat(before_crop[:, :, :1], after.shape[2], axis=2)
    return imageio.eight_bit_image(before_crop), imageio.eight_bit_image(
        after[top : top + crop_h, left : left + crop_w]
    )


def _output_target(source: str, model: str, outscale: float) -> Path:
    """Where a result goes, without its extension: a fresh folder in Gradio's cache, named after the input."""
    folder = Path(get_upload_folder()) / "remaster" / uuid.uuid4().hex
    return folder / f"{Path(source).stem}_{model}_x{outscale:g}"


def _weights_status(enhancer: Enhancer) -> tuple[str, bool]:
    """Markdown on the models that cannot run yet, and whether downloads are still under way."""
    unavailable, waiting, pending = [], [], False
    for spec in MODELS.values():
        states = [enhancer.store.status(weight) for weight in spec.weight_files]
        failed = [s.detail for s in states if s.state == "failed"]
        if failed:
            unavailable.append((spec.name, failed[0]))
        elif any(s.state in ("downloading", "queued") for s in states):
            pending = True
            waiting.append(spec.name)
    lines = []
    if waiting:
        lines.append(f"Downloading model weights: {', '.join(waiting)}…")
    if unavailable:
        fix = "put their `.pth` files in a folder and set `REMASTER_WEIGHTS_DIR` to it"
        fix += ", or unset `HF_HUB_OFFLINE`" if enhancer.settings.offline else ", or check the internet connection"
        details = "\n".join(f"- **{name}**: {reason}" for name, reason in unavailable)
        lines.append(
            f"**Not available:** {', '.join(name for name, _ in unavailable)}. To use them, {fix}.\n\n"
            f"<details><summary>Why, file by file</summary>\n\n{details}\n\n</details>"
        )
    return "\n\n".join(lines), pending


def _gpu_seconds(enhancer: Enhancer, source: str, *_: object, **options: object) -> float:
    return estimate_seconds(source, str(options["model"]), bool(options["face_enhance"]))


# On ZeroGPU the GPU is lent to this function per call, for about as long as the image needs.
_remaster_file_on_device = gpu_task(remaster_file, _gpu_seconds)


def _remaster(
    enhancer: Enhancer,
    image: str | None,
    model: str,
    outscale: float,
    tile: str | int | None,
    face_enhance: bool,
    denoise_strength: float,
    face_model: str,
    face_strength: float,
    output_format: str,
    progress: Callable[..., object],
    cancel: threading.Event,
) -> tuple[str, tuple[Image.Image, Image.Image], str]:
    if image is None:
        raise gr.Error("Upload an image first")
    if output_format not in OUTPUT_CHOICES_BY_VALUE:
        raise gr.Error(f"output_format must be one of {', '.join(OUTPUT_CHOICES_BY_VALUE)}, not {output_format!r}")
    still_format, quality = OUTPUT_CHOICES_BY_VALUE[output_format]
    options = {
        "model": model,
        "outscale": outscale,
        "tile": parse_tile(tile),
        "face_enhance": bool(face_enhance),
        "denoise_strength": denoise_strength,
        "face_model": face_model,
        "face_strength": face_strength,
    }
    try:
        done = _remaster_file_on_device(
            enhancer,
            image,
            _output_target(image, model, outscale),
            still_format,
            "auto",
            quality,
            progress,
            cancel,
            **options,
        )
        before = _preview(done.first_input, done.report.output_size)
        after = _preview(done.first_output, done.report.output_size)
    except RemasterError as error:
        raise gr.Error(str(error)) from None
    except MemoryError:
        raise gr.Error("Ran out of memory: choose a smaller tile, a smaller output scale or a smaller image") from None
    except OSError as error:
        log.exception("Could not write the result")
        raise gr.Error(f"The result could not be saved ({error.strerror or error}); try again later") from None
    return str(done.path), (before, after), done.report.summary()


def make_handler(enhancer: Enhancer) -> Callable[..., Awaitable[tuple[str, tuple[Image.Image, Image.Image], str]]]:
    """The function behind the Remaster button and the ``/remaster`` endpoint (cancellable)."""

    async def remaster_image(
        image: str | None,
        model: str,
        outscale: float,
        tile: str | int | None,
        face_enhance: bool,
        denoise_strength: float,
        face_model: str = DEFAULT_FACE_MODEL,
        face_strength: float = DEFAULT_FACE_STRENGTH,
        output_format: str = "png",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, tuple[Image.Image, Image.Image], str]:
        """Upscale and clean up an uploaded image with a Real-ESRGAN model, optionally restoring faces.

        Args:
            image: the image file (PNG, JPEG, WebP, TIFF, BMP or GIF; 16-bit and transparency are kept).
            model: RealESRGAN_x4plus, RealESRNet_x4plus, RealESRGAN_x4plus_anime_6B, RealESRGAN_x2plus,
                realesr-animevideov3 or realesr-general-x4v3.
            outscale: how many times larger the result is, from 1 to 8.
            tile: "auto", "off", or a tile size in pixels such as "256".
            face_enhance: also restore faces with GFPGAN.
            denoise_strength: realesr-general-x4v3 only: 0 removes the most noise, 1 none.
            face_model: GFPGANv1.4, GFPGANv1.3 or RestoreFormer.
            face_strength: 0 (the plain upscale) to 1 (the restored faces in full).
            output_format: "png" (lossless), "webp" (lossless), "webp-90" or "jpg"; animations keep their own.

        Returns:
            The full-resolution result file, a before/after preview pair, and a line saying what was done.
        """
        return await _cancellable(
            functools.partial(
                _remaster,
                enhancer,
                image,
                model,
                outscale,
                tile,
                face_enhance,
                denoise_strength,
                face_model,
                face_strength,
                output_format,
                progress,
            )
        )

    return remaster_image


async def _cancellable(work: Callable[[threading.Event], T]) -> T:
    """Run ``work(cancel)`` in a worker thread; if Gradio cancels the request (the Stop button,
    a client that went away), set ``cancel`` so the work stops at its next tile instead of
    running on unseen."""
    cancel = threading.Event()
    try:
        return await anyio.to_thread.run_sync(functools.partial(work, cancel), abandon_on_cancel=True)
    except BaseException:
        cancel.set()
        raise


def limits_text(settings: Settings) -> str:
    """The limits a visitor runs into, in one sentence."""
    text = (
        f"Limits: files up to {settings.max_upload_mb} MB and {settings.max_input_pixels / 1e6:.1f} megapixels, "
        f"results up to {settings.max_output_pixels / 1e6:.0f} megapixels"
    )
    if settings.time_limit is not None:
        text += f", {settings.time_limit:g} s of work per image"
    return text + f"; {settings.queue_size} requests may wait in line."


def launch_options(settings: Settings) -> dict[str, object]:
    """Keyword arguments for ``Blocks.launch`` that enforce the settings the queue cannot."""
    return {"max_file_size": f"{settings.max_upload_mb}mb", "mcp_server": settings.mcp}


def make_url_tool(enhancer: Enhancer) -> Callable[..., Awaitable[tuple[str, str]]]:
    """The ``/remaster_url`` endpoint: the tool LLM agents use through MCP."""

    async def remaster_url(
        image_url: str, model: str, outscale: float = 4.0, face_enhance: bool = False
    ) -> tuple[str, str]:
        """Upscale and clean up an image from the web with a Real-ESRGAN model, returning a lossless PNG.

        Use it to make a photo, scan, drawing or anime frame larger and sharper. Photos: RealESRGAN_x4plus
        (best) or realesr-general-x4v3 (fast); drawings and anime: RealESRGAN_x4plus_anime_6B or
        realesr-animevideov3. Only public http(s) URLs are fetched, up to the app's upload size limit.

        Args:
            image_url: a public http or https URL of a PNG, JPEG, WebP, TIFF, BMP or GIF image.
            model: the Real-ESRGAN model: RealESRGAN_x4plus, RealESRNet_x4plus, RealESRGAN_x4plus_anime_6B,
                RealESRGAN_x2plus, realesr-animevideov3 or realesr-general-x4v3.
            outscale: how many times larger the result is, from 1 to 8.
            face_enhance: also restore faces with GFPGAN.

        Returns:
            The remastered image (PNG, or the animation's own format) and a line saying what was done.
        """
        folder = _output_target("url", "input", 1).parent
        try:
            source = await anyio.to_thread.run_sync(
                fetch_image, image_url.strip(), folder, enhancer.settings.max_upload_mb * 2**20
            )
        except RemasterError as error:
            raise gr.Error(str(error)) from None
        return await _cancellable(
            functools.partial(_remaster_summary, enhancer, str(source), model, outscale, face_enhance)
        )

    return remaster_url


def _remaster_summary(
    enhancer: Enhancer, source: str, model: str, outscale: float, face_enhance: bool, cancel: threading.Event
) -> tuple[str, str]:
    path, _, summary = _remaster(
        enhancer,
        source,
        model,
        outscale,
        "auto",
        face_enhance,
        0.5,
        DEFAULT_FACE_MODEL,
        DEFAULT_FACE_STRENGTH,
        "png",
        None,
        cancel,
    )
    return path, summary


def make_batch_handler(enhancer: Enhancer) -> Callable[..., Awaitable[tuple[str, str]]]:
    """The function behind the Batch tab and the ``/remaster_batch`` endpoint."""

    async def remaster_batch(
        files: list[str] | None,
        model: str,
        outscale: float,
        face_enhance: bool,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[str, str]:
        """Remaster several images (or zips of images) into one zip; returns it and a report of each file."""
        if not files:
            raise gr.Error("Add some images, or a zip of them, first")
        archive = _output_target("batch", model, outscale).with_name(f"remastered_{model}_x{outscale:g}.zip")

        def work(cancel: threading.Event) -> BatchResult:
            return run_batch(
                enhancer,
                [Path(f) for f in files],
                archive,
                progress,
                cancel,
                model=model,
                outscale=outscale,
                face_enhance=bool(face_enhance),
            )

        try:
            result = await _cancellable(work)
        except RemasterError as error:
            raise gr.Error(str(error)) from None
        if not result.done:
            raise gr.Error("None of the files could be remastered. " + " ".join(f"{n}: {r}" for n, r in result.failed))
        return str(result.archive), result.summary()

    return remaster_batch


def make_comparison(enhancer: Enhancer) -> Callable[..., tuple[list[tuple[Image.Image, str]], str]]:
    """The function behind the "Compare models" view and the ``/compare`` endpoint."""

    def compare(
        image: str | None,
        models: list[str],
        outscale: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress injection
    ) -> tuple[list[tuple[Image.Image, str]], str]:
        """Remaster one image with each of ``models``; the same centre crop of each, captioned with its time."""
        if image is None:
            raise gr.Error("Upload an image first")
        if not models:
            raise gr.Error("Choose at least one model")
        gallery: list[tuple[Image.Image, str]] = []
        notes = []
        for index, model in enumerate(models):

            def model_progress(
                fraction: float, desc: str | None = None, index: int = index, model: str = model
            ) -> None:
                progress((index + fraction) / len(models), desc=f"{model}: {desc or ''}")

            try:
                result, report = enhancer.run(image, model=model, outscale=outscale, progress=model_progress)
            except RemasterError as error:
                notes.append(f"- **{model}** did not run: {error}")
                continue
            before, after = detail_view(image, result)
            if not gallery:
                gallery.append((before, "the input, enlarged (Lanczos)"))
            gallery.append((after, f"{model} · {report.seconds:.1f} s"))
            notes.append(f"- **{model}**: {report.summary()}")
        if len(gallery) < 2:
            raise gr.Error("None of the models could run. " + " ".join(notes))
        return gallery, "\n".join(notes)

    return compare


def build_demo(enhancer: Enhancer | None = None, *, prefetch: bool = True) -> gr.Blocks:
    """The remaster page, wired to ``enhancer`` (a default one when omitted).

    Args:
        enhancer: does the work; its settings give the default model and queue size.
        prefetch: start downloading every model's weights in the background, the
            default model first.
    """
    enhancer = enhancer if enhancer is not None else Enhancer()
    settings = enhancer.settings
    upscalers = model_names("upscaler")
    default_model = settings.default_model if settings.default_model in upscalers else upscalers[0]
    if prefetch:
        # Every upscaler, the default first, then what the default face restoration needs; the
        # other face models (a few hundred MB each) only when someone asks for them.
        first = [default_model, *(name for name in upscalers if name != default_model)]
        enhancer.store.prefetch([MODELS[name] for name in (*first, DEFAULT_FACE_MODEL, DETECTOR, PARSER)])

    remaster_image = make_handler(enhancer)

    def model_changed(model: str) -> tuple[dict, dict]:
        spec = get_model(model)
        return gr.update(visible=spec.supports_denoise), gr.update(value=float(spec.scale))

    def refresh_status() -> tuple[str, gr.Timer]:
        text, pending = _weights_status(enhancer)
        return text, gr.Timer(active=pending)

    with gr.Blocks(title="remaster", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"# remaster\nSharper, larger, cleaner images with the official Real-ESRGAN models. "
            f"Running on **{enhancer.engine.device}** · remaster {__version__}. "
            "Uploads are processed and deleted, not kept."
        )
        gr.Markdown(limits_text(settings))
        status = gr.Markdown()
        with gr.Tab("Remaster"):
            with gr.Row():
                with gr.Column():
                    image = _ImageUpload(
                        type="filepath",
                        image_mode=None,
                        label="Image",
                        sources=["upload", "clipboard"],
                    )
                    model = gr.Dropdown(
                        choices=_choices("upscaler"),
                        value=default_model,
                        label="Model",
                        info="Each model is named with what it is for.",
                    )
                    outscale = gr.Slider(
                        MIN_OUTSCALE,
                        MAX_OUTSCALE,
                        value=float(MODELS[default_model].scale),
                        step=0.5,
                        label="Output scale",
                        info="The result's size relative to the input. The model runs at its own scale; "
                        "the rest is Lanczos resizing.",
                    )
                    tile = gr.Dropdown(
                        choices=TILE_CHOICES,
                        value="auto",
                        allow_custom_value=True,
                        label="Tiling",
                        info="Large images are processed in overlapping tiles to bound memory. Tiles are "
                        "seamless; smaller tiles use less memory and take longer.",
                    )
                    denoise = gr.Slider(
                        0.0,
                        1.0,
                        value=0.5,
                        step=0.05,
                        label="Denoise strength",
                        info="0 removes the most noise, 1 keeps the original grain.",
                        visible=MODELS[default_model].supports_denoise,
                    )
                    face_enhance = gr.Checkbox(
                        value=False,
                        label="Restore faces",
                        info="Repair faces with GFPGAN; the rest of the picture is upscaled as usual.",
                    )
                    with gr.Group(visible=False) as face_options:
                        face_model = gr.Dropdown(
                            choices=_choices("face_restorer"),
                            value=DEFAULT_FACE_MODEL,
                            label="Face model",
                        )
                        face_strength = gr.Slider(
                            0.0,
                            1.0,
                            value=DEFAULT_FACE_STRENGTH,
                            step=0.05,
                            label="Face strength",
                            info="How much of the restored face to use: lower keeps more of the person's own look.",
                        )
                    output_format = gr.Dropdown(
                        choices=[(label, value) for label, value, _ in OUTPUT_CHOICES],
                        value="png",
                        label="Download format",
                        info="For still images; an animated GIF, WebP or PNG stays animated in its own format.",
                    )
                    with gr.Row():
                        run = gr.Button("Remaster", variant="primary", scale=3)
                        stop = gr.Button("Stop", variant="stop", scale=1)
                with gr.Column():
                    slider = gr.ImageSlider(
                        label="Before / after (the first frame of an animation)",
                        type="pil",
                        format="webp",
                        interactive=False,
                    )
                    detail = gr.ImageSlider(
                        label=f"Detail at 100% ({DETAIL_SIDE}×{DETAIL_SIDE} from the centre)",
                        type="pil",
                        format="png",
                        interactive=False,
                    )
                    download = gr.File(
                        label="Download (full resolution: PNG, or the animation's own format)", interactive=False
                    )
                    info = gr.Markdown()

            inputs = [image, model, outscale, tile, face_enhance, denoise, face_model, face_strength, output_format]
            outputs = [download, slider, info]

            async def remaster_example(image: str, model: str, outscale: float, progress: gr.Progress = gr.Progress()):  # noqa: B008
                return await remaster_image(
                    image,
                    model,
                    outscale,
                    "auto",
                    False,
                    0.5,
                    DEFAULT_FACE_MODEL,
                    DEFAULT_FACE_STRENGTH,
                    "png",
                    progress,
                )

            gr.Examples(
                examples=[
                    [str(EXAMPLES_DIR / name), name_model, float(MODELS[name_model].scale)]
                    for name, name_model in _EXAMPLES
                    if (EXAMPLES_DIR / name).is_file() and name_model in MODELS
                ],
                inputs=[image, model, outscale],
                outputs=outputs,
                fn=remaster_example,
                cache_examples=True,
                cache_mode="lazy",
                label="Examples: a photo, an old compressed photo, a drawing, a scan, an anime frame",
            )

        with gr.Tab("Batch"):
            gr.Markdown(
                f"Several images, or zips of them (up to {settings.max_batch_files} images, "
                f"{settings.max_batch_mb} MB uncompressed), remastered with one setting. You get one zip back; "
                "a file that fails is listed with the reason and the rest carry on."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    batch_files = gr.File(file_count="multiple", file_types=["image", ".zip"], label="Images or zips")
                    batch_model = gr.Dropdown(
                        choices=_choices("upscaler"),
                        value=default_model,
                        label="Model",
                        info="One model for every image; each is named with what it is for.",
                    )
                    batch_scale = gr.Slider(
                        MIN_OUTSCALE,
                        MAX_OUTSCALE,
                        value=4.0,
                        step=0.5,
                        label="Output scale",
                        info="The results' size relative to each input.",
                    )
                    batch_faces = gr.Checkbox(
                        value=False, label="Restore faces (GFPGANv1.4)", info="Slower; only where faces are found."
                    )
                    batch_run = gr.Button("Remaster all", variant="primary")
                with gr.Column(scale=1):
                    batch_zip = gr.File(label="Results (zip)", interactive=False)
                    batch_report = gr.Markdown()

        with gr.Tab("Compare models"):
            gr.Markdown(
                "Run one image through several models and see the same detail side by side, at 100%, "
                "with the time each took. (RealESRGAN_x4plus takes about a minute per megapixel on a CPU.)"
            )
            with gr.Row():
                with gr.Column(scale=1):
                    compare_image = _ImageUpload(
                        type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"]
                    )
                    compare_models = gr.CheckboxGroup(
                        choices=_choices("upscaler"),
                        value=[default_model],
                        label="Models",
                        info="Each runs in turn; the slow RRDB models take longest.",
                    )
                    compare_scale = gr.Slider(
                        MIN_OUTSCALE,
                        MAX_OUTSCALE,
                        value=4.0,
                        step=0.5,
                        label="Output scale",
                        info="The same for every model, so the crops match.",
                    )
                    compare_run = gr.Button("Compare", variant="primary")
                with gr.Column(scale=2):
                    compare_gallery = gr.Gallery(
                        label=f"The centre {DETAIL_SIDE}×{DETAIL_SIDE} of each result", columns=3, height="auto"
                    )
                    compare_notes = gr.Markdown()

        job = run.click(remaster_image, inputs=inputs, outputs=outputs, api_name="remaster")
        # After any result (the button or an example), show its centre at 100%.
        download.change(
            detail_view, inputs=[image, download], outputs=detail, api_visibility="private", show_progress="hidden"
        )
        stop.click(None, cancels=[job], api_visibility="private")
        # For agents (MCP) and scripts: the same work from an image URL, fetched safely.
        with gr.Row(visible=False):
            url_box = gr.Textbox(label="Image URL")
            url_run = gr.Button("Remaster the URL")
            url_file = gr.File(label="Result")
            url_info = gr.Markdown()
        url_run.click(
            make_url_tool(enhancer),
            inputs=[url_box, model, outscale, face_enhance],
            outputs=[url_file, url_info],
            api_name="remaster_url",
        )
        batch_run.click(
            make_batch_handler(enhancer),
            inputs=[batch_files, batch_model, batch_scale, batch_faces],
            outputs=[batch_zip, batch_report],
            api_name="remaster_batch",
        )
        compare_run.click(
            make_comparison(enhancer),
            inputs=[compare_image, compare_models, compare_scale],
            outputs=[compare_gallery, compare_notes],
            api_name="compare",
        )
        model.change(model_changed, inputs=model, outputs=[denoise, outscale], api_visibility="private", queue=False)
        face_enhance.change(
            lambda on: gr.update(visible=on),
            inputs=face_enhance,
            outputs=face_options,
            api_visibility="private",
            queue=False,
        )
        timer = gr.Timer(2.0)
        timer.tick(
            refresh_status, outputs=[status, timer], api_visibility="private", queue=False, show_progress="hidden"
        )
        demo.load(
            refresh_status, outputs=[status, timer], api_visibility="private", queue=False, show_progress="hidden"
        )

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo
