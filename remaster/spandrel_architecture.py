"""Every architecture spandrel knows (ESRGAN, Compact, SPAN, SwinIR, HAT, DAT, Real-CUGAN…), as remaster's
architecture objects: one per spandrel id, registered the first time a model file of it is read.

spandrel (MIT) tells a network's architecture and settings from its weights alone; what remaster
needs to know of it (input multiple, channels, precisions, tiling advice) is read from spandrel's
descriptor once, when the file is first read (:func:`describe`), and kept in the model entry.
spandrel is imported when a model file is first read.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .architectures import ARCHITECTURES, Architecture, register_architecture

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Described", "SpandrelArchitecture", "closest_architecture", "describe", "load_descriptor"]

_TILING = {1: "supported", 2: "discouraged", 3: "internal"}


class SpandrelArchitecture(Architecture):
    """An architecture spandrel knows, one per spandrel id.

    A network is made from its weights, which tell spandrel its settings; what remaster needs
    is in the model entry's ``arch_kwargs`` (see :func:`describe`).
    """

    def __init__(self, arch_id: str) -> None:
        self.arch_id = arch_id
        self.name = f"{arch_id} (spandrel)"

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        raise NotImplementedError(f"A {self.arch_id} network is made from its weights")

    def load(
        self, kwargs: Mapping[str, Any], state: Mapping[str, Any], device: torch.device | None = None
    ) -> nn.Module:
        return _DescriptorModule.of(self._descriptor(state))

    def trainable(self, kwargs: Mapping[str, Any], state: Mapping[str, Any]) -> nn.Module:
        return self._descriptor(state).model

    def _descriptor(self, state: Mapping[str, Any]) -> Any:
        descriptor = load_descriptor(dict(state))
        if descriptor.architecture.id != self.arch_id:
            raise RuntimeError(f"these weights are for a {descriptor.architecture.id} network, not {self.arch_id}")
        return descriptor

    def input_multiple(self, kwargs: Mapping[str, Any], scale: int) -> int:
        return int(kwargs["multiple"])

    def in_channels(self, kwargs: Mapping[str, Any]) -> int:
        return int(kwargs["in_channels"])

    def supported_precisions(self, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(kwargs["precisions"])

    def tiling(self, kwargs: Mapping[str, Any]) -> str:
        return str(kwargs["tiling"])

    def minimum_size(self, kwargs: Mapping[str, Any]) -> int:
        return int(kwargs["minimum"])

    def feature_bytes_per_pixel(self, kwargs: Mapping[str, Any], scale: int, itemsize: int) -> float:
        # Unknown widths (and attention, for transformers): generously, a dozen 64-channel maps at the output's size.
        return 12 * 64 * scale * scale * itemsize

    def recognises(self, keys: Collection[str]) -> bool:
        return False


@dataclass(frozen=True)
class Described:
    """What spandrel says of a model file's network, as a model entry needs it."""

    architecture: SpandrelArchitecture
    arch_kwargs: dict[str, Any]
    scale: int
    purpose: str
    """spandrel's: ``SR``, ``Restoration``, ``FaceSR``, ``Inpainting``…"""
    summary: str
    """The architecture's name, its scale and channels, for the model's description."""


def describe(descriptor: Any) -> Described:
    """What remaster keeps of a spandrel descriptor: the architecture object (registered now if it was not) and
    the settings the engine and the tile scheduler ask it for."""
    precisions = (
        ("fp32",)
        + (("fp16",) if descriptor.supports_half else ())
        + (("bf16",) if descriptor.supports_bfloat16 else ())
    )
    requirements = descriptor.size_requirements
    kwargs = {
        "multiple": requirements.multiple_of,
        "minimum": requirements.minimum,
        "square": requirements.square,
        "in_channels": descriptor.input_channels,
        "out_channels": descriptor.output_channels,
        "precisions": precisions,
        "tiling": _TILING.get(getattr(descriptor.tiling, "value", 1), "supported"),
    }
    kind = "restoration, ×1" if descriptor.scale == 1 else f"×{descriptor.scale}"
    summary = (
        f"{descriptor.architecture.name} {kind}, {descriptor.input_channels}→{descriptor.output_channels} channels"
    )
    return Described(
        _architecture_for(descriptor.architecture.id), kwargs, descriptor.scale, descriptor.purpose, summary
    )


def load_descriptor(state: dict[str, Any]) -> Any:
    """spandrel's descriptor of the network these weights are for.

    Raises:
        spandrel.UnsupportedModelError: spandrel knows no architecture with these keys.
    """
    from spandrel import MAIN_REGISTRY

    return MAIN_REGISTRY.load(state)


class _DescriptorModule:
    """A spandrel model as a plain module whose forward is spandrel's own call (padding, clamping, custom calls)."""

    @staticmethod
    def of(descriptor: Any) -> nn.Module:
        from torch import nn

        class DescriptorModule(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = descriptor.model
                self._descriptor = descriptor

            def forward(self, batch: torch.Tensor) -> torch.Tensor:
                return self._descriptor(batch)

        return DescriptorModule()


def _architecture_for(arch_id: str) -> SpandrelArchitecture:
    name = f"{arch_id} (spandrel)"
    if name not in ARCHITECTURES:
        register_architecture(SpandrelArchitecture(arch_id))
    return ARCHITECTURES[name]


def closest_architecture(keys: Collection[str]) -> str | None:
    """The spandrel architecture whose marker keys these weights come nearest to, with how near."""
    from spandrel import MAIN_REGISTRY

    best: tuple[tuple[float, int], str] | None = None
    for support in MAIN_REGISTRY:
        condition = getattr(support.architecture, "_detect", None)
        score = _match(condition, set(keys)) if condition is not None else (0.0, 0)
        if score[0] > 0 and (best is None or score > best[0]):
            best = (score, support.architecture.name)
    return f"{best[1]} ({best[0][0]:.0%} of its marker keys)" if best else None


def _match(condition: Any, keys: set[str]) -> tuple[float, int]:
    """The share and number of a spandrel key condition's keys present (of its best branch, for 'any')."""
    parts = getattr(condition, "_keys", None)
    if not parts:
        return 0.0, 0
    scores = [
        _match(part, keys) if not isinstance(part, str) else (float(part in keys), int(part in keys)) for part in parts
    ]
    if getattr(condition, "_kind", "all") == "any":
        return max(scores)
    return sum(share for share, _ in scores) / len(scores), sum(count for _, count in scores)
