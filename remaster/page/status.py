"""What the page says about the app's state: which models can run, which are coming, and the limits."""

from __future__ import annotations

from ..pipeline import Enhancer
from ..registry import MODELS, Kind, ModelSpec, model_names
from ..settings import Settings

__all__ = ["limits_text", "model_choices", "starting_model", "weights_status"]


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


def limits_text(settings: Settings) -> str:
    """The limits a visitor runs into, in one sentence."""
    text = (
        f"Limits: files up to {settings.max_upload_mb} MB and {settings.max_input_pixels / 1e6:.1f} megapixels, "
        f"results up to {settings.max_output_pixels / 1e6:.0f} megapixels"
    )
    if settings.time_limit is not None:
        text += f", {settings.time_limit:g} s of work per image"
    return text + f"; {settings.queue_size} requests may wait in line."
