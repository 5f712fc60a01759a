"""The page: its components, then its events, as Gradio's own demos are laid out."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..options import DEFAULT_FACE_STRENGTH, MAX_OUTSCALE, MIN_OUTSCALE
from ..pipeline import Enhancer
from ..registry import DEFAULT_FACE_MODEL, DETECTOR, MODELS, PARSER, get_model, model_names
from ..settings import Settings
from ..version import __version__
from ..video import CRF_RANGE, DEFAULT_CRF
from .components import ImageUpload
from .handlers import CODEC_CHOICES, OUTPUT_CHOICES, TILE_CHOICES, Handlers
from .previews import DETAIL_SIDE
from .status import limits_text, model_choices, starting_model, weights_status

__all__ = ["EXAMPLES", "EXAMPLES_DIR", "build_demo", "launch_options"]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
EXAMPLES = [
    ("photo_astronaut.jpg", "RealESRGAN_x4plus", "A photo"),
    ("photo_coffee.jpg", "realesr-general-x4v3", "An old compressed photo"),
    ("drawing_lighthouse.png", "RealESRGAN_x4plus_anime_6B", "A drawing"),
    ("scan_text.png", "realesr-general-x4v3", "A scan"),
    ("anime_frame.png", "realesr-animevideov3", "An anime frame"),
]
"""Each example, the model it shows best (used when that model's weights are on disk), and its label."""


def launch_options(settings: Settings) -> dict[str, object]:
    """Keyword arguments for ``Blocks.launch`` that enforce the settings the queue cannot.

    Uploads may be as large as a model file where model uploads are allowed; images are then
    held to their own limit by the handlers.
    """
    largest = max(settings.max_upload_mb, settings.max_model_mb if settings.allow_model_upload else 0)
    return {"max_file_size": f"{largest}mb", "mcp_server": settings.mcp}


def _prefetch(enhancer: Enhancer, first: str) -> None:
    """Every upscaler, ``first`` first, then what the default face restoration needs; the other
    face models (a few hundred MB each) only when someone asks for them."""
    upscalers = [first, *(name for name in model_names("upscaler") if name != first)]
    enhancer.store.prefetch([MODELS[name] for name in (*upscalers, DEFAULT_FACE_MODEL, DETECTOR, PARSER)])


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
    """The Video tab's starting model: the one made for video when its weights are on disk, else ``fallback``."""
    spec = MODELS.get("realesr-animevideov3")
    ready = spec is not None and all(enhancer.store.on_disk(weight) for weight in spec.weight_files)
    return spec.name if ready else fallback


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
    handlers.model_files.load_folder()  # REMASTER_MODELS_DIR's files, each a model named by its stem
    first = starting_model(enhancer)
    if prefetch:
        _prefetch(enhancer, first)

    def model_changed(model: str) -> tuple[dict, dict]:
        spec = get_model(model)
        return gr.update(visible=spec.supports_denoise), gr.update(value=float(spec.scale))

    def refresh_status() -> tuple[object, ...]:
        text, pending = weights_status(enhancer)
        choices = model_choices(enhancer, "upscaler")
        lists = [gr.update(choices=choices) for _ in range(4)]
        return text, *lists, gr.Timer(active=pending)

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
                    image = ImageUpload(
                        type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"]
                    )
                    model = gr.Dropdown(
                        choices=model_choices(enhancer, "upscaler"),
                        value=first,
                        allow_custom_value=True,  # models loaded later are checked by the handlers, not the list
                        label="Model",
                        info="Each model is named with what it is for.",
                    )
                    with gr.Accordion("Your own model file", open=False):
                        model_reference = gr.Textbox(
                            label="Hub reference or URL",
                            placeholder="hf://owner/repo/4x-Model.pth or https://…/4x-Model.safetensors",
                            info="Any architecture spandrel knows (ESRGAN, Compact, SPAN, SwinIR, HAT, DAT, "
                            "Real-CUGAN…); it joins the model lists.",
                        )
                        model_upload = gr.File(
                            label=f"…or upload one (up to {settings.max_model_mb} MB)",
                            file_types=[".pth", ".pt", ".ckpt", ".safetensors"],
                            visible=settings.allow_model_upload,
                        )
                        load_button = gr.Button("Load the model")
                        loaded_name = gr.Textbox(label="Loaded as", visible=False)
                        model_info = gr.Markdown()
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
                    face_enhance = gr.Checkbox(
                        value=False,
                        label="Restore faces",
                        info="Repair faces with GFPGAN; the rest of the picture is upscaled as usual.",
                    )
                    with gr.Group(visible=False) as face_options:
                        face_model = gr.Dropdown(
                            choices=model_choices(enhancer, "face_restorer"),
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
                return await handlers.remaster_image(image, model, outscale, "auto", False, 0.5, progress=progress)

            examples, labels = _examples(enhancer, first)
            gr.Examples(
                examples=examples,
                example_labels=labels,
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
                    batch_files = gr.File(
                        file_count="multiple", file_types=["image", "video", ".zip"], label="Images, videos or zips"
                    )
                    batch_model = gr.Dropdown(
                        choices=model_choices(enhancer, "upscaler"),
                        value=first,
                        allow_custom_value=True,
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
                    compare_image = ImageUpload(
                        type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"]
                    )
                    compare_models = gr.Dropdown(
                        choices=model_choices(enhancer, "upscaler"),
                        value=[first],
                        multiselect=True,
                        allow_custom_value=True,
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
                    video_in = gr.Video(label="Video", sources=["upload"], include_audio=True, format=None)
                    video_model = gr.Dropdown(
                        choices=model_choices(enhancer, "upscaler"),
                        value=_video_model(enhancer, first),
                        allow_custom_value=True,
                        label="Model",
                        info="realesr-animevideov3 is made for video and is the fastest.",
                    )
                    video_scale = gr.Slider(MIN_OUTSCALE, MAX_OUTSCALE, value=2.0, step=0.5, label="Output scale")
                    video_tile = gr.Dropdown(
                        choices=TILE_CHOICES, value="auto", allow_custom_value=True, label="Tiling"
                    )
                    video_denoise = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Denoise strength", visible=False)
                    video_faces = gr.Checkbox(value=False, label="Restore faces", info="Much slower.")
                    with gr.Group(visible=False) as video_face_options:
                        video_face_model = gr.Dropdown(
                            choices=model_choices(enhancer, "face_restorer"),
                            value=DEFAULT_FACE_MODEL,
                            label="Face model",
                        )
                        video_face_strength = gr.Slider(
                            0.0, 1.0, value=DEFAULT_FACE_STRENGTH, step=0.05, label="Face strength"
                        )
                    with gr.Row():
                        video_codec = gr.Dropdown(choices=CODEC_CHOICES, value="h264", label="Codec")
                        video_crf = gr.Slider(
                            *CRF_RANGE["h264"],
                            value=DEFAULT_CRF["h264"],
                            step=1,
                            label="Quality (CRF)",
                            info="Lower is better and larger.",
                        )
                    with gr.Row():
                        preview_at = gr.Number(value=0.0, minimum=0.0, label="Preview the frame at (seconds)")
                        preview_run = gr.Button("Preview this frame")
                    with gr.Row():
                        video_run = gr.Button("Remaster the video", variant="primary", scale=3)
                        video_stop = gr.Button("Stop", variant="stop", scale=1)
                with gr.Column():
                    video_preview = gr.ImageSlider(
                        label="Before / after of the chosen frame", type="pil", format="webp", interactive=False
                    )
                    video_preview_info = gr.Markdown()
                    video_out = gr.Video(label="Result", interactive=False)
                    video_file = gr.File(label="Download (full resolution)", interactive=False)
                    video_info = gr.Markdown()

        # For agents (MCP) and scripts: the same work from an image URL, fetched safely.
        with gr.Row(visible=False):
            url_box = gr.Textbox(label="Image URL")
            url_run = gr.Button("Remaster the URL")
            url_file = gr.File(label="Result")
            url_info = gr.Markdown()

        job = run.click(handlers.remaster_image, inputs=inputs, outputs=outputs, api_name="remaster")
        # After any result (the button or an example), show its centre at 100%.
        download.change(
            handlers.detail, inputs=[image, download], outputs=detail, api_visibility="private", show_progress="hidden"
        )
        stop.click(None, cancels=[job], api_visibility="private")
        url_run.click(
            handlers.remaster_url,
            inputs=[url_box, model, outscale, face_enhance],
            outputs=[url_file, url_info],
            api_name="remaster_url",
        )
        batch_run.click(
            handlers.remaster_batch,
            inputs=[batch_files, batch_model, batch_scale, batch_faces],
            outputs=[batch_zip, batch_report],
            api_name="remaster_batch",
        )
        compare_run.click(
            handlers.compare,
            inputs=[compare_image, compare_models, compare_scale],
            outputs=[compare_gallery, compare_notes],
            api_name="compare",
        )
        model.change(model_changed, inputs=model, outputs=[denoise, outscale], api_visibility="private", queue=False)

        def select_loaded(name: str) -> tuple[dict, ...]:
            choices = model_choices(enhancer, "upscaler")
            return gr.update(choices=choices, value=name), *(gr.update(choices=choices) for _ in range(3))

        load_button.click(
            handlers.load_model,
            inputs=[model_reference, model_upload],
            outputs=[loaded_name, model_info],
            api_name="load_model",
        ).success(
            select_loaded, inputs=loaded_name, outputs=[model, batch_model, compare_models, video_model], queue=False
        )
        video_choices = [
            video_model,
            video_scale,
            video_tile,
            video_faces,
            video_denoise,
            video_face_model,
            video_face_strength,
        ]
        video_job = video_run.click(
            handlers.remaster_video,
            inputs=[video_in, *video_choices, video_codec, video_crf],
            outputs=[video_file, video_out, video_info],
            api_name="remaster_video",
        )
        video_stop.click(None, cancels=[video_job], api_visibility="private")
        preview_run.click(
            handlers.preview_video,
            inputs=[video_in, preview_at, *video_choices],
            outputs=[video_preview, video_preview_info],
            api_name="preview_video",
        )
        video_faces.change(
            lambda on: gr.update(visible=on),
            inputs=video_faces,
            outputs=video_face_options,
            api_visibility="private",
            queue=False,
        )
        video_model.change(
            lambda name: gr.update(visible=get_model(name).supports_denoise),
            inputs=video_model,
            outputs=video_denoise,
            api_visibility="private",
            queue=False,
        )
        video_codec.change(
            lambda codec: gr.update(
                visible=codec in CRF_RANGE,
                minimum=CRF_RANGE.get(codec, (0, 51))[0],
                maximum=CRF_RANGE.get(codec, (0, 51))[1],
                value=DEFAULT_CRF.get(codec, 20),
            ),
            inputs=video_codec,
            outputs=video_crf,
            api_visibility="private",
            queue=False,
        )
        face_enhance.change(
            lambda on: gr.update(visible=on),
            inputs=face_enhance,
            outputs=face_options,
            api_visibility="private",
            queue=False,
        )
        timer = gr.Timer(2.0)
        lists = [model, batch_model, compare_models, video_model]
        for trigger in (timer.tick, demo.load):
            trigger(
                refresh_status,
                outputs=[status, *lists, timer],
                api_visibility="private",
                queue=False,
                show_progress="hidden",
            )

    demo.queue(default_concurrency_limit=settings.concurrency, max_size=settings.queue_size)
    return demo
