"""The page: each tab's components, then the events, as Gradio's own demos are laid out.

Each tab is one function that lays out its components and returns them as a small object;
``build_demo`` calls them in order and wires the events at the bottom. A component that fills
an endpoint's parameter is listed once, under that parameter's name, and the endpoints' inputs
follow the handlers' own signatures.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..options import DEFAULT_FACE_STRENGTH, MAX_OUTSCALE, MIN_OUTSCALE
from ..pipeline import Enhancer
from ..registry import (
    DEFAULT_FACE_MODEL,
    DEFAULT_INTERPOLATOR,
    DEFAULT_MODEL,
    DETECTOR,
    MODELS,
    NO_MODEL,
    PARSER,
    get_model,
    model_names,
)
from ..settings import Settings
from ..version import __version__
from ..video import CRF_RANGE, DEFAULT_CRF
from .components import ImageUpload
from .handlers import CODEC_CHOICES, INTERPOLATE_CHOICES, OUTPUT_CHOICES, TILE_CHOICES, Handlers, described
from .previews import DETAIL_SIDE
from .session import SESSION_RESULTS, recall, remember
from .status import (
    background_status,
    faces_unavailable,
    limits_text,
    model_choices,
    starting_model,
    video_model_choices,
    weights_status,
)
from .stopping import Stopped, stoppable

__all__ = [
    "EXAMPLES",
    "EXAMPLES_DIR",
    "VIDEO_MODEL",
    "BatchTab",
    "CompareTab",
    "FaceOptions",
    "FaceSwitch",
    "ModelFileLoader",
    "RemasterTab",
    "UrlTool",
    "VideoTab",
    "batch_tab",
    "build_demo",
    "compare_tab",
    "face_options",
    "launch_options",
    "remaster_tab",
    "video_tab",
]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
EXAMPLES = [
    ("photo_astronaut.jpg", "RealESRGAN_x4plus", "A photo"),
    ("photo_coffee.jpg", "realesr-general-x4v3", "An old compressed photo"),
    ("drawing_lighthouse.png", "RealESRGAN_x4plus_anime_6B", "A drawing"),
    ("scan_text.png", "realesr-general-x4v3", "A scan"),
    ("anime_frame.png", "realesr-animevideov3", "An anime frame"),
]
"""Each example, the model it shows best (used when that model's weights are on disk), and its label."""
VIDEO_MODEL = "realesr-animevideov3"
"""The Video tab's starting model when its weights are on disk: made for video, and the fastest."""

Inputs = Mapping[str, gr.components.Component]
"""Components by the name of the handler parameter each fills."""


SPEED_CHOICES = [("Faithful", "auto"), ("Fastest (int8)", "int8")]
"""The Remaster tab's speed, as the precision each means: automatic (fp32 here, unless int8 passes its quality gate
on this processor), or int8 whatever its quality."""


def launch_options(settings: Settings) -> dict[str, object]:
    """Keyword arguments for ``Blocks.launch`` that enforce the settings the queue cannot.

    Uploads may be as large as a model file where model uploads are allowed; images are then
    held to their own limit by the handlers.
    """
    largest = max(settings.max_upload_mb, settings.max_model_mb if settings.allow_model_upload else 0)
    return {"max_file_size": f"{largest}mb", "mcp_server": settings.mcp}


def _prefetch(enhancer: Enhancer, first: str) -> None:
    """Every upscaler, ``first`` first, then what the default face restoration and in-betweens need; the other
    face models (a few hundred MB each) only when someone asks for them."""
    upscalers = [first, *(name for name in model_names("upscaler") if name != first)]
    helpers = (DEFAULT_FACE_MODEL, DETECTOR, PARSER, DEFAULT_INTERPOLATOR)
    enhancer.store.prefetch([MODELS[name] for name in (*upscalers, *helpers)])


def _examples(enhancer: Enhancer, fallback: str) -> tuple[list[list[object]], list[str]]:
    """The example rows (image, model, scale) and their labels, which fit a phone's width where a table would not."""
    rows, labels = [], []
    for name, preferred, label in EXAMPLES:
        if not (EXAMPLES_DIR / name).is_file():
            continue
        ready = preferred in MODELS and all(enhancer.store.on_disk(w) for w in MODELS[preferred].weight_files)
        model = preferred if ready else fallback
        rows.append([str(EXAMPLES_DIR / name), model, float(MODELS[model].scale)])
        labels.append(f"{label} · {model} ×{MODELS[model].scale}")
    return rows, labels


def _video_model(enhancer: Enhancer, fallback: str) -> str:
    """The Video tab's starting model: :data:`VIDEO_MODEL` when its weights are on disk, else ``fallback``."""
    spec = MODELS.get(VIDEO_MODEL)
    ready = spec is not None and all(enhancer.store.on_disk(weight) for weight in spec.weight_files)
    return spec.name if ready else fallback


def _inputs(handler: Callable[..., object], components: Inputs) -> list[gr.components.Component]:
    """The components for ``handler``'s parameters, in its order; Gradio fills its ``gr.Progress`` itself.

    Raises:
        KeyError: a parameter has no component of its name.
    """
    parameters = inspect.signature(handler).parameters.values()
    return [components[p.name] for p in parameters if not isinstance(p.default, gr.Progress)]


def _shown(on: bool) -> dict:
    return gr.update(visible=on)


def _model_changed(model: str) -> tuple[dict, dict]:
    """The denoise control where the model has one, and the output scale set to the model's own."""
    spec = get_model(model)
    return gr.update(visible=spec.supports_denoise), gr.update(value=float(spec.scale))


def _denoise_shown(model: str) -> dict:
    return gr.update(visible=model != NO_MODEL and get_model(model).supports_denoise)


def _crf_for(codec: str) -> dict:
    """The quality slider in the codec's range at its default; FFV1 is lossless and has none."""
    low, high = CRF_RANGE.get(codec, (0, 51))
    return gr.update(visible=codec in CRF_RANGE, minimum=low, maximum=high, value=DEFAULT_CRF.get(codec, 20))


@dataclass(frozen=True)
class FaceSwitch:
    """A "Restore faces" checkbox: it can be ticked only while faces can be restored; otherwise it says why."""

    checkbox: gr.Checkbox
    info: str
    """What it says while faces can be restored."""

    def update(self, why: str | None) -> dict:
        """Its state when faces cannot be restored for the reason ``why``, or can (None)."""
        if why is None:
            return gr.update(interactive=True, info=self.info)
        return gr.update(interactive=False, info=why, value=False)


def _face_switch(enhancer: Enhancer, label: str, info: str) -> FaceSwitch:
    why = faces_unavailable(enhancer)
    checkbox = gr.Checkbox(value=False, label=label, info=why or info, interactive=why is None)
    return FaceSwitch(checkbox, info)


@dataclass(frozen=True)
class FaceOptions:
    """The "Restore faces" checkbox and the face model and strength it shows."""

    switch: FaceSwitch
    group: gr.Group
    model: gr.Dropdown
    strength: gr.Slider

    @property
    def enhance(self) -> gr.Checkbox:
        """The "Restore faces" checkbox."""
        return self.switch.checkbox

    @property
    def inputs(self) -> dict[str, gr.components.Component]:
        """The components by the handler parameter each fills."""
        return {"face_enhance": self.enhance, "face_model": self.model, "face_strength": self.strength}


def face_options(enhancer: Enhancer, info: str, strength_info: str | None = None) -> FaceOptions:
    """The face-restoration choices, the model and strength hidden until the checkbox is ticked; the checkbox
    says why where faces cannot be restored."""
    switch = _face_switch(enhancer, "Restore faces", info)
    with gr.Group(visible=False) as group:
        model = gr.Dropdown(
            choices=model_choices(enhancer, "face_restorer"), value=DEFAULT_FACE_MODEL, label="Face model"
        )
        strength = gr.Slider(
            0.0, 1.0, value=DEFAULT_FACE_STRENGTH, step=0.05, label="Face strength", info=strength_info
        )
    return FaceOptions(switch, group, model, strength)


@dataclass(frozen=True)
class ModelFileLoader:
    """The "Your own model file" box: a Hub reference, URL or upload, and the name it is loaded as."""

    reference: gr.Textbox
    upload: gr.File
    load: gr.Button
    name: gr.Textbox
    info: gr.Markdown


def _model_file_loader(settings: Settings) -> ModelFileLoader:
    with gr.Accordion("Your own model file", open=False):
        reference = gr.Textbox(
            label="Hub reference or URL",
            placeholder="hf://owner/repo/4x-Model.pth or https://…/4x-Model.safetensors",
            info="Any architecture spandrel knows (ESRGAN, Compact, SPAN, SwinIR, HAT, DAT, "
            "Real-CUGAN…); it joins the model lists.",
        )
        upload = gr.File(
            label=f"…or upload one (up to {settings.max_model_mb} MB)",
            file_types=[".pth", ".pt", ".ckpt", ".safetensors"],
            visible=settings.allow_model_upload,
        )
        load = gr.Button("Load the model")
        name = gr.Textbox(label="Loaded as", visible=False)
        info = gr.Markdown()
    return ModelFileLoader(reference, upload, load, name, info)


@dataclass(frozen=True)
class RemasterTab:
    """The Remaster tab: one image, every choice, the before/after and the download."""

    image: ImageUpload
    model: gr.Dropdown
    model_file: ModelFileLoader
    outscale: gr.Slider
    tile: gr.Dropdown
    denoise: gr.Slider
    faces: FaceOptions
    output_format: gr.Dropdown
    speed: gr.Radio
    run: gr.Button
    stop: gr.Button
    slider: gr.ImageSlider
    detail: gr.ImageSlider
    download: gr.File
    info: gr.Markdown
    results: gr.Gallery
    """This session's results, to download again."""
    history: gr.BrowserState
    """The same, kept in the visitor's browser."""

    @property
    def inputs(self) -> dict[str, gr.components.Component]:
        """The components by the handler parameter each fills."""
        return {
            "image": self.image,
            "model": self.model,
            "outscale": self.outscale,
            "tile": self.tile,
            "denoise_strength": self.denoise,
            **self.faces.inputs,
            "output_format": self.output_format,
            "precision": self.speed,
        }

    @property
    def outputs(self) -> list[gr.components.Component]:
        """What an image's result fills: the download, the before/after and the line on it."""
        return [self.download, self.slider, self.info]


def _remaster_examples(enhancer: Enhancer, handlers: Handlers, first: str, tab: RemasterTab) -> None:
    """The examples, each remastered with the handler's own defaults when first clicked, then cached."""

    async def remaster_example(image: str, model: str, outscale: float, progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio's progress injection
        return await handlers.remaster_image(image=image, model=model, outscale=outscale, progress=progress)

    examples, labels = _examples(enhancer, first)
    gr.Examples(
        examples=examples,
        example_labels=labels,
        inputs=[tab.image, tab.model, tab.outscale],
        outputs=tab.outputs,
        fn=remaster_example,
        cache_examples=True,
        cache_mode="lazy",
        label="Examples: a photo, an old compressed photo, a drawing, a scan, an anime frame",
    )


def _image_upload(settings: Settings) -> ImageUpload:
    """An image input whose refusals name remaster's own limits."""
    image = ImageUpload(type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"])
    image.max_pixels = settings.max_input_pixels
    return image


def remaster_tab(enhancer: Enhancer, handlers: Handlers, first: str) -> RemasterTab:
    """The Remaster tab, starting on the model ``first``, with its examples."""
    with gr.Tab("Remaster"):
        with gr.Row():
            with gr.Column():
                image = _image_upload(enhancer.settings)
                model = gr.Dropdown(
                    choices=model_choices(enhancer, "upscaler"),
                    value=first,
                    allow_custom_value=True,  # models loaded later are checked by the handlers, not the list
                    label="Model",
                    info="Each model is named with what it is for.",
                )
                model_file = _model_file_loader(enhancer.settings)
                outscale = gr.Slider(
                    MIN_OUTSCALE,
                    MAX_OUTSCALE,
                    value=float(MODELS[first].scale),
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
                    visible=MODELS[first].supports_denoise,
                )
                faces = face_options(
                    enhancer,
                    info="Repair faces with GFPGAN; the rest of the picture is upscaled as usual.",
                    strength_info="How much of the restored face to use: lower keeps more of the person's own look.",
                )
                output_format = gr.Dropdown(
                    choices=[(label, value) for label, value, _ in OUTPUT_CHOICES],
                    value="png",
                    label="Download format",
                    info="For still images; an animated GIF, WebP or PNG stays animated in its own format.",
                )
                speed = gr.Radio(
                    choices=SPEED_CHOICES,
                    value="auto",
                    label="Speed",
                    info="Fastest runs the network in int8 on this CPU (about twice as fast, a little less "
                    "faithful: the result's line says how far from full precision). It is quantized once, "
                    "the first time, which takes a while.",
                    visible=enhancer.settings.device.split(":", 1)[0] == "cpu",
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
                results = gr.Gallery(
                    label=f"Your results in this session (the latest {SESSION_RESULTS}, while the server keeps them: "
                    "an hour)",
                    columns=4,
                    height="auto",
                    buttons=["download", "fullscreen"],
                    interactive=False,
                )
                history = gr.BrowserState([], storage_key="remaster-results")
        tab = RemasterTab(
            image=image,
            model=model,
            model_file=model_file,
            outscale=outscale,
            tile=tile,
            denoise=denoise,
            faces=faces,
            output_format=output_format,
            speed=speed,
            run=run,
            stop=stop,
            slider=slider,
            detail=detail,
            download=download,
            info=info,
            results=results,
            history=history,
        )
        _remaster_examples(enhancer, handlers, first, tab)
    return tab


@dataclass(frozen=True)
class BatchTab:
    """The Batch tab: many files, one setting, one zip back."""

    files: gr.File
    model: gr.Dropdown
    outscale: gr.Slider
    faces: FaceSwitch
    run: gr.Button
    stop: gr.Button
    archive: gr.File
    report: gr.Markdown

    @property
    def inputs(self) -> dict[str, gr.components.Component]:
        """The components by the handler parameter each fills."""
        return {
            "files": self.files,
            "model": self.model,
            "outscale": self.outscale,
            "face_enhance": self.faces.checkbox,
        }


def batch_tab(enhancer: Enhancer, first: str) -> BatchTab:
    """The Batch tab, starting on the model ``first``."""
    settings = enhancer.settings
    with gr.Tab("Batch"):
        gr.Markdown(
            f"Several images, or zips of them (up to {settings.max_batch_files} images, "
            f"{settings.max_batch_mb} MB uncompressed), remastered with one setting. You get one zip back; "
            "a file that fails is listed with the reason and the rest carry on."
        )
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    file_count="multiple", file_types=["image", "video", ".zip"], label="Images, videos or zips"
                )
                model = gr.Dropdown(
                    choices=model_choices(enhancer, "upscaler"),
                    value=first,
                    allow_custom_value=True,
                    label="Model",
                    info="One model for every image; each is named with what it is for.",
                )
                outscale = gr.Slider(
                    MIN_OUTSCALE,
                    MAX_OUTSCALE,
                    value=4.0,
                    step=0.5,
                    label="Output scale",
                    info="The results' size relative to each input.",
                )
                faces = _face_switch(
                    enhancer, f"Restore faces ({DEFAULT_FACE_MODEL})", "Slower; only where faces are found."
                )
                with gr.Row():
                    run = gr.Button("Remaster all", variant="primary", scale=3)
                    stop = gr.Button("Stop", variant="stop", scale=1)
            with gr.Column(scale=1):
                archive = gr.File(label="Results (zip)", interactive=False)
                report = gr.Markdown()
    return BatchTab(files, model, outscale, faces, run, stop, archive, report)


@dataclass(frozen=True)
class CompareTab:
    """The Compare models tab: one image through several models, the same detail of each."""

    image: ImageUpload
    models: gr.Dropdown
    outscale: gr.Slider
    run: gr.Button
    stop: gr.Button
    gallery: gr.Gallery
    notes: gr.Markdown

    @property
    def inputs(self) -> dict[str, gr.components.Component]:
        """The components by the handler parameter each fills."""
        return {"image": self.image, "models": self.models, "outscale": self.outscale}


def compare_tab(enhancer: Enhancer, first: str) -> CompareTab:
    """The Compare models tab, starting with the model ``first`` chosen."""
    with gr.Tab("Compare models"):
        gr.Markdown(
            "Run one image through several models and see the same detail side by side, at 100%, "
            f"with the time each took. ({DEFAULT_MODEL} takes about a minute per megapixel on a CPU.)"
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = _image_upload(enhancer.settings)
                models = gr.Dropdown(
                    choices=model_choices(enhancer, "upscaler"),
                    value=[first],
                    multiselect=True,
                    allow_custom_value=True,
                    label="Models",
                    info="Each runs in turn; the slow RRDB models take longest.",
                )
                outscale = gr.Slider(
                    MIN_OUTSCALE,
                    MAX_OUTSCALE,
                    value=4.0,
                    step=0.5,
                    label="Output scale",
                    info="The same for every model, so the crops match.",
                )
                with gr.Row():
                    run = gr.Button("Compare", variant="primary", scale=3)
                    stop = gr.Button("Stop", variant="stop", scale=1)
            with gr.Column(scale=2):
                gallery = gr.Gallery(
                    label=f"The centre {DETAIL_SIDE}×{DETAIL_SIDE} of each result", columns=3, height="auto"
                )
                notes = gr.Markdown()
    return CompareTab(image, models, outscale, run, stop, gallery, notes)


@dataclass(frozen=True)
class VideoTab:
    """The Video tab: a video, the choices for its frames and its encoding, a one-frame preview and the result."""

    video: gr.Video
    model: gr.Dropdown
    outscale: gr.Slider
    tile: gr.Dropdown
    denoise: gr.Slider
    faces: FaceOptions
    codec: gr.Dropdown
    crf: gr.Slider
    interpolate: gr.Dropdown
    skip_duplicates: gr.Checkbox
    preview_at: gr.Number
    preview_run: gr.Button
    run: gr.Button
    stop: gr.Button
    preview: gr.ImageSlider
    preview_info: gr.Markdown
    result: gr.Video
    file: gr.File
    info: gr.Markdown

    @property
    def inputs(self) -> dict[str, gr.components.Component]:
        """The components by the handler parameter each fills."""
        return {
            "video": self.video,
            "seconds": self.preview_at,
            "model": self.model,
            "outscale": self.outscale,
            "tile": self.tile,
            "denoise_strength": self.denoise,
            **self.faces.inputs,
            "codec": self.codec,
            "crf": self.crf,
            "interpolate": self.interpolate,
            "skip_duplicates": self.skip_duplicates,
        }


def video_tab(enhancer: Enhancer, first: str) -> VideoTab:
    """The Video tab, starting on :data:`VIDEO_MODEL` when it can run, else on ``first``."""
    settings = enhancer.settings
    with gr.Tab("Video"):
        gr.Markdown(
            "Every frame of a video, in order, with its sound, subtitles, chapters and timing kept. "
            f"Videos up to {settings.max_video_seconds:,} s and {settings.max_video_frames:,} frames, results "
            f"up to {settings.max_video_frame_pixels / 1e6:.1f} megapixels a frame. Preview one frame first: "
            "it takes seconds. A stopped video continues where it was when you press Remaster again with the "
            "same video and settings."
        )
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], include_audio=True, format=None)
                model = gr.Dropdown(
                    choices=video_model_choices(enhancer),
                    value=_video_model(enhancer, first),
                    allow_custom_value=True,
                    label="Model",
                    info=f"{VIDEO_MODEL} is made for video and is the fastest; {NO_MODEL} keeps the frames' size.",
                )
                outscale = gr.Slider(MIN_OUTSCALE, MAX_OUTSCALE, value=2.0, step=0.5, label="Output scale")
                tile = gr.Dropdown(choices=TILE_CHOICES, value="auto", allow_custom_value=True, label="Tiling")
                denoise = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Denoise strength", visible=False)
                faces = face_options(enhancer, info="Much slower.")
                with gr.Row():
                    codec = gr.Dropdown(choices=CODEC_CHOICES, value="h264", label="Codec")
                    crf = gr.Slider(
                        *CRF_RANGE["h264"],
                        value=DEFAULT_CRF["h264"],
                        step=1,
                        label="Quality (CRF)",
                        info="Lower is better and larger.",
                    )
                with gr.Row():
                    interpolate = gr.Dropdown(
                        choices=INTERPOLATE_CHOICES,
                        value=1,
                        label="In-between frames (RIFE)",
                        info="More frames a second, made between the video's own; never across a scene cut.",
                    )
                    skip_duplicates = gr.Checkbox(
                        value=True,
                        label="Skip repeated frames",
                        info="A frame that repeats the one before reuses its result (anime on twos or threes).",
                    )
                with gr.Row():
                    preview_at = gr.Number(value=0.0, minimum=0.0, label="Preview the frame at (seconds)")
                    preview_run = gr.Button("Preview this frame")
                with gr.Row():
                    run = gr.Button("Remaster the video", variant="primary", scale=3)
                    stop = gr.Button("Stop", variant="stop", scale=1)
            with gr.Column():
                preview = gr.ImageSlider(
                    label="Before / after of the chosen frame", type="pil", format="webp", interactive=False
                )
                preview_info = gr.Markdown()
                result = gr.Video(label="Result", interactive=False)
                file = gr.File(label="Download (full resolution)", interactive=False)
                info = gr.Markdown()
    return VideoTab(
        video=video,
        model=model,
        outscale=outscale,
        tile=tile,
        denoise=denoise,
        faces=faces,
        codec=codec,
        crf=crf,
        interpolate=interpolate,
        skip_duplicates=skip_duplicates,
        preview_at=preview_at,
        preview_run=preview_run,
        run=run,
        stop=stop,
        preview=preview,
        preview_info=preview_info,
        result=result,
        file=file,
        info=info,
    )


@dataclass(frozen=True)
class UrlTool:
    """For agents (MCP) and scripts: the Remaster tab's work on an image URL, fetched safely; hidden on the page."""

    url: gr.Textbox
    run: gr.Button
    file: gr.File
    info: gr.Markdown


def _url_tool() -> UrlTool:
    with gr.Row(visible=False):
        url = gr.Textbox(label="Image URL")
        run = gr.Button("Remaster the URL")
        file = gr.File(label="Result")
        info = gr.Markdown()
    return UrlTool(url, run, file, info)


def _header(enhancer: Enhancer) -> gr.Markdown:
    """The title, the device and the limits; returns the line on the models' weights, filled in by the events."""
    gr.Markdown(
        f"# remaster\nSharper, larger, cleaner images with the official Real-ESRGAN models. "
        f"Running on **{enhancer.engine.device}** · remaster {__version__}. "
        "Uploads are processed and deleted, not kept."
    )
    gr.Markdown(limits_text(enhancer.settings))
    return gr.Markdown()


def _show_face_options(faces: FaceOptions) -> None:
    """Show the face model and strength while "Restore faces" is ticked."""
    faces.enhance.change(_shown, inputs=faces.enhance, outputs=faces.group, api_visibility="private", queue=False)


def _stop(handlers: Handlers, button: gr.Button, tab: str) -> None:
    """``button`` stops the visitor's work on ``tab`` (within a fraction of a second); that work's answer says so."""
    button.click(lambda: handlers.stop(tab), api_visibility="private", queue=False, show_progress="hidden")


def _says(*cleared: None) -> Callable[[Stopped], tuple[object, ...]]:
    """The outputs of a stopped work: ``cleared`` (nothing was made), then the line saying what was kept."""
    return lambda stop: (*cleared, stop.message)


def _check_uploads(handlers: Handlers, image: ImageUpload) -> None:
    """An image is checked as it arrives: one that cannot be remastered is refused, and taken off, at once.

    Queued (the page shows a queued event's error), but in a line of its own: it never waits for a remastering.
    """
    image.upload(
        handlers.check_image,
        inputs=image,
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=4,
        concurrency_id="check_uploads",
    ).failure(lambda: None, outputs=image, api_visibility="private", queue=False, show_progress="hidden")


def _remaster_events(handlers: Handlers, tab: RemasterTab, url: UrlTool) -> gr.events.Dependency:
    """The Remaster tab's buttons and choices, the session's results, and the URL endpoint that shares its
    choices; returns the remastering."""
    remaster_image = described(handlers.remaster_image)
    job = tab.run.click(
        stoppable(remaster_image, _says(None, None)),
        inputs=_inputs(remaster_image, tab.inputs),
        outputs=tab.outputs,
        api_name="remaster",
    )
    # After any result (the button or an example), show its centre at 100%, and keep it in the session's gallery.
    tab.download.change(
        handlers.detail,
        inputs=[tab.image, tab.download],
        outputs=tab.detail,
        api_visibility="private",
        show_progress="hidden",
    )
    tab.download.change(
        remember,
        inputs=[tab.history, tab.download, tab.info],
        outputs=[tab.history, tab.results],
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    _stop(handlers, tab.stop, "remaster")
    _check_uploads(handlers, tab.image)
    remaster_url = described(handlers.remaster_url)
    url.run.click(
        remaster_url,
        inputs=_inputs(remaster_url, {**tab.inputs, "image_url": url.url}),
        outputs=[url.file, url.info],
        api_name="remaster_url",
    )
    tab.model.change(
        _model_changed, inputs=tab.model, outputs=[tab.denoise, tab.outscale], api_visibility="private", queue=False
    )
    _show_face_options(tab.faces)
    return job


def _batch_events(handlers: Handlers, tab: BatchTab) -> gr.events.Dependency:
    """The Batch tab's buttons; returns the batch's run."""
    remaster_batch = described(handlers.remaster_batch)
    job = tab.run.click(
        stoppable(remaster_batch, _says(None)),
        inputs=_inputs(remaster_batch, tab.inputs),
        outputs=[tab.archive, tab.report],
        api_name="remaster_batch",
    )
    _stop(handlers, tab.stop, "batch")
    return job


def _compare_events(handlers: Handlers, tab: CompareTab) -> gr.events.Dependency:
    """The Compare models tab's buttons; returns the comparison."""
    compare_models = described(handlers.compare)
    job = tab.run.click(
        stoppable(compare_models, _says(None)),
        inputs=_inputs(compare_models, tab.inputs),
        outputs=[tab.gallery, tab.notes],
        api_name="compare",
    )
    _stop(handlers, tab.stop, "compare")
    _check_uploads(handlers, tab.image)
    return job


def _video_events(handlers: Handlers, tab: VideoTab) -> list[gr.events.Dependency]:
    """The Video tab's buttons, and the choices that show or hide others; returns the remastering and the preview."""
    remaster_video = described(handlers.remaster_video)
    job = tab.run.click(
        stoppable(remaster_video, _says(None, None)),
        inputs=_inputs(remaster_video, tab.inputs),
        outputs=[tab.file, tab.result, tab.info],
        api_name="remaster_video",
    )
    preview_video = described(handlers.preview_video)
    preview = tab.preview_run.click(
        stoppable(preview_video, _says(None)),
        inputs=_inputs(preview_video, tab.inputs),
        outputs=[tab.preview, tab.preview_info],
        api_name="preview_video",
    )
    _stop(handlers, tab.stop, "video")
    _show_face_options(tab.faces)
    tab.model.change(_denoise_shown, inputs=tab.model, outputs=tab.denoise, api_visibility="private", queue=False)
    tab.codec.change(_crf_for, inputs=tab.codec, outputs=tab.crf, api_visibility="private", queue=False)
    return [job, preview]


@dataclass(frozen=True)
class _Status:
    """What the page keeps up to date while downloads or builds run: the line on them, the model lists (the
    Remaster tab's first), the face model lists and the "Restore faces" switches."""

    line: gr.Markdown
    lists: list[gr.Dropdown]
    video_lists: list[gr.Dropdown]
    """Model lists that also offer ``none`` (a video's frames as they are)."""
    face_lists: list[gr.Dropdown]
    switches: list[FaceSwitch]

    @property
    def outputs(self) -> list[gr.components.Component]:
        """The components a refresh fills, in :func:`_status_events`' order (the timer last)."""
        return [
            self.line,
            *self.lists,
            *self.video_lists,
            *self.face_lists,
            *(switch.checkbox for switch in self.switches),
        ]


def _status_events(
    enhancer: Enhancer,
    handlers: Handlers,
    demo: gr.Blocks,
    status: _Status,
    loader: ModelFileLoader,
    jobs: list[gr.events.Dependency],
) -> None:
    """Loading a model file; and the weights and background-work line, the model lists and the face switches kept up
    to date while downloads or builds run, also after each of ``jobs`` (whose first request may start a build)."""

    def select_loaded(name: str) -> tuple[dict, ...]:
        choices, video_choices = model_choices(enhancer, "upscaler"), video_model_choices(enhancer)
        return (
            gr.update(choices=choices, value=name),
            *(gr.update(choices=choices) for _ in status.lists[1:]),
            *(gr.update(choices=video_choices) for _ in status.video_lists),
        )

    def refresh_status() -> tuple[object, ...]:
        text, downloading = weights_status(enhancer)
        building = background_status()
        choices, video_choices = model_choices(enhancer, "upscaler"), video_model_choices(enhancer)
        face_choices = model_choices(enhancer, "face_restorer")
        why = faces_unavailable(enhancer)
        return (
            "\n\n".join(part for part in (text, building) if part),
            *(gr.update(choices=choices) for _ in status.lists),
            *(gr.update(choices=video_choices) for _ in status.video_lists),
            *(gr.update(choices=face_choices) for _ in status.face_lists),
            *(switch.update(why) for switch in status.switches),
            gr.Timer(active=downloading or bool(building)),
        )

    loader.load.click(
        described(handlers.load_model),
        inputs=[loader.reference, loader.upload],
        outputs=[loader.name, loader.info],
        api_name="load_model",
    ).success(
        select_loaded,
        inputs=loader.name,
        outputs=[*status.lists, *status.video_lists],
        queue=False,
        api_visibility="private",
    )
    timer = gr.Timer(2.0)
    triggers = [timer.tick, demo.load, *(job.then for job in jobs)]
    for trigger in triggers:
        trigger(
            refresh_status,
            outputs=[*status.outputs, timer],
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )


def build_demo(enhancer: Enhancer | None = None, *, prefetch: bool = True) -> gr.Blocks:
    """The remaster page, wired to ``enhancer`` (a default one when omitted).

    Args:
        enhancer: does the work; its settings give the default model and queue size.
        prefetch: start downloading every model's weights in the background, the page's
            starting model first.
    """
    enhancer = enhancer if enhancer is not None else Enhancer()
    settings = enhancer.settings
    handlers = Handlers(enhancer)
    # REMASTER_MODELS_DIR's files, each a model named by its stem: before the lists and the API's descriptions.
    handlers.model_files.load_folder()
    first = starting_model(enhancer)
    if prefetch:
        _prefetch(enhancer, first)

    with gr.Blocks(title="remaster", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        line = _header(enhancer)
        remaster = remaster_tab(enhancer, handlers, first)
        batch = batch_tab(enhancer, first)
        compare = compare_tab(enhancer, first)
        video = video_tab(enhancer, first)
        url = _url_tool()

        jobs = [
            _remaster_events(handlers, remaster, url),
            _batch_events(handlers, batch),
            _compare_events(handlers, compare),
            *_video_events(handlers, video),
        ]
        demo.load(recall, inputs=remaster.history, outputs=remaster.results, api_visibility="private", queue=False)
        status = _Status(
            line=line,
            lists=[remaster.model, batch.model, compare.models],
            video_lists=[video.model],
            face_lists=[remaster.faces.model, video.faces.model],
            switches=[remaster.faces.switch, batch.faces, video.faces.switch],
        )
        _status_events(enhancer, handlers, demo, status, remaster.model_file, jobs)

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo
