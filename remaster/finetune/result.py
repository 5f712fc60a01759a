"""The result of a fine-tuning as model files: ``NAME.pth`` (official layout), ``NAME.safetensors`` and a card.

``NAME.pth`` holds ``{"params_ema": state_dict}``, as the official Real-ESRGAN releases do, so the
official ``RealESRGANer`` loads it too; ``NAME.safetensors`` holds the same tensors, safe to load
anywhere, with the card in its metadata. ``NAME.json`` is the card: the base model, a fingerprint of
the data, the steps, preset, recipe and the held-out metrics of base and tuned. Put the files in
``REMASTER_MODELS_DIR`` (the pair is one model, named ``NAME``) or pass either by path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import atomic_file

if TYPE_CHECKING:
    import torch

__all__ = ["model_paths", "write_model"]


def model_paths(output: Path) -> tuple[Path, Path, Path]:
    """The ``.pth``, ``.safetensors`` and ``.json`` card written for ``output`` (whichever of the suffixes it has)."""
    stem = output.with_suffix("") if output.suffix.lower() in (".pth", ".safetensors") else output
    return (
        stem.with_name(stem.name + ".pth"),
        stem.with_name(stem.name + ".safetensors"),
        stem.with_name(stem.name + ".json"),
    )


def write_model(state: dict[str, torch.Tensor], output: Path, card: dict[str, Any]) -> tuple[Path, Path, Path]:
    """Write the three files for ``output``, each atomically; returns their paths."""
    import torch
    from safetensors.torch import save

    pth, safetensors, card_path = model_paths(output)
    tensors = {key: value.detach().float().cpu().contiguous() for key, value in state.items()}
    with atomic_file(pth) as partial:
        torch.save({"params_ema": tensors}, partial)
    metadata = {"remaster.finetune": json.dumps(card, sort_keys=True)}
    if card.get("license"):
        metadata["license"] = str(card["license"])
    with atomic_file(safetensors) as partial:
        # safetensors' own save_file creates its file with mode 0600; written here, it gets the usual mode.
        Path(partial).write_bytes(save(tensors, metadata=metadata))
    with atomic_file(card_path) as partial:
        Path(partial).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return pth, safetensors, card_path
