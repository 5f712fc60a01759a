"""What the page says about the app's state: which models can run, which are coming, whether faces can be
restored, what runs in the background, and the limits."""

from __future__ import annotations

from .. import background
from ..pipeline import Enhancer
from ..registry import DEFAULT_FACE_MODEL, DETECTOR, MODELS, NO_MODEL, PARSER, Kind, ModelSpec, model_names
from ..settings import Settings

__all__ = [
    "video_model_choices",
    "background_status",
    "faces_unavailable",
    "limits_text",
    "model_choices",
    "starting_model",
    "weights_status",
]


def _ready(enhancer: Enhancer, spec: ModelSpec) -> bool:
    return all(enhancer.store.on_disk(weight) for weight in spec.weight_files)


def starting_model(enhancer: Enhancer) -> str:
    """The model the page and the API start on: the configured default if its weights are on
    disk, else the first upscaler whose weights are; the default when none are yet."""
    upscalers = model_names("upscaler")
    default = enhancer.settings.default_model if enhancer.settings.default_model in upscalers else upscalers[0]
    candidates = [default, *(name for name in upscalers if name != default)]
    return next((name for name in candidates if _ready(enhancer, MODELS[name])), default)


def model_choices(enhancer: Enhancer, kind: Kind) -> list[tuple[str, str]]:
    """(label, name) of every registered model of ``kind``; those that cannot run at once say why."""
    choices = []
    for name in model_names(kind):
        spec = MODELS[name]
        if _ready(enhancer, spec):
            note = ""
        elif any(enhancer.store.status(weight).state == "failed" for weight in spec.weight_files):
            note = " (not available)"
        else:
            note = " (not downloaded yet)"
        choices.append((spec.label + note, name))
    return choices


def video_model_choices(enhancer: Enhancer) -> list[tuple[str, str]]:
    """The upscalers (see :func:`model_choices`), and ``none``: a video's frames as they are."""
    return [
        *model_choices(enhancer, "upscaler"),
        (f"{NO_MODEL} — the frames keep their size (in-betweens alone)", NO_MODEL),
    ]


def weights_status(enhancer: Enhancer) -> tuple[str, bool]:
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


def faces_unavailable(enhancer: Enhancer) -> str | None:
    """Why faces cannot be restored now, in a sentence (the face networks' weights missing, or still downloading);
    None when they can. The detector, the parser and a face model are needed."""
    store = enhancer.store

    def failure(spec: ModelSpec) -> str | None:
        states = [store.status(weight) for weight in spec.weight_files if not store.on_disk(weight)]
        return next((state.detail for state in states if state.state == "failed"), None)

    restorers = [MODELS[name] for name in model_names("face_restorer")]
    failures = [failure(MODELS[name]) for name in (DETECTOR, PARSER)]
    if not restorers or all(failure(spec) for spec in restorers):
        failures.append(failure(MODELS[DEFAULT_FACE_MODEL]) if DEFAULT_FACE_MODEL in MODELS else "no face model")
    why = next((reason for reason in failures if reason), None)
    if why is not None:
        return f"Not available: {why}"
    first = [
        weight
        for name in (DETECTOR, PARSER, DEFAULT_FACE_MODEL)
        if name in MODELS
        for weight in MODELS[name].weight_files
    ]
    if any(store.status(weight).state in ("queued", "downloading") for weight in first):
        return "Available once the face networks' weights have downloaded."
    return None


def background_status() -> str:
    """Markdown on the builds running in the background (a backend being built or measured), which slow requests
    until they end; empty when none is."""
    builds = background.running()
    if not builds:
        return ""
    return (
        f"**In the background:** {' and '.join(builds)}, so that later requests run faster. "
        "Requests are slower until it ends."
    )


def limits_text(settings: Settings) -> str:
    """The limits a visitor runs into, in one sentence."""
    text = (
        f"Limits: files up to {settings.max_upload_mb} MB and {settings.max_input_pixels / 1e6:.1f} megapixels, "
        f"results up to {settings.max_output_pixels / 1e6:.0f} megapixels"
    )
    if settings.time_limit is not None:
        text += f", {settings.time_limit:g} s of work per image"
    return text + f"; {settings.queue_size} requests may wait in line."
