"""Network architectures, each declared once as an object that model entries point at.

An :class:`Architecture` builds its network and says what the rest of remaster needs to know
about it: the multiple its input sides must be (pixel-unshuffling models see 2×2 or 4×4
blocks), its working memory per input pixel, the precisions it gives right results in, and
how to tell a state dict of its own. The engine, the tile scheduler and the Space's GPU
estimate ask these objects; nothing else asks which architecture a model has. An
architecture from a library registers itself the same way, with :func:`register_architecture`.

Nothing here imports torch or an architecture's library until a network is built.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._compat import import_basicsr
from .errors import RegistrationError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "GFPGANv1Clean",
    "IFNet",
    "ParseNet",
    "RRDBNet",
    "RestoreFormer",
    "RetinaFace",
    "SRVGGNetCompact",
    "get_architecture",
    "recognise",
    "register_architecture",
]

ALL_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")


class Architecture:
    """What remaster knows about one kind of network. Subclasses override what differs."""

    name: str = ""
    precisions: tuple[str, ...] = ALL_PRECISIONS
    """Compute precisions the network gives right results in; any other runs in fp32."""
    signature: tuple[str, ...] = ()
    """State-dict keys that this architecture's networks have and others do not."""

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        """A freshly initialised network, on the CPU unless the architecture must be built on ``device``."""
        raise NotImplementedError

    def load(
        self, kwargs: Mapping[str, Any], state: Mapping[str, Any], device: torch.device | None = None
    ) -> nn.Module:
        """A network holding the weights ``state``.

        Raises:
            RuntimeError: the weights do not fit the network (missing, unexpected or misshapen tensors).
        """
        network = self.build(kwargs, device)
        network.load_state_dict(state, strict=True)
        return network

    def trainable(self, kwargs: Mapping[str, Any], state: Mapping[str, Any]) -> nn.Module:
        """The network holding ``state`` as a module to train: its own layers, without a wrapper around them."""
        return self.load(kwargs, state)

    def supported_precisions(self, kwargs: Mapping[str, Any]) -> tuple[str, ...]:
        """The precisions a network of these settings gives right results in."""
        return self.precisions

    def tiling(self, kwargs: Mapping[str, Any]) -> str:
        """``supported``, or ``discouraged`` (the whole image at once where memory allows) or ``internal``
        (the network tiles itself: never cut it)."""
        return "supported"

    def minimum_size(self, kwargs: Mapping[str, Any]) -> int:
        """The smallest input side the network takes (the network pads smaller inputs itself)."""
        return 0

    def input_multiple(self, kwargs: Mapping[str, Any], scale: int) -> int:
        """Input sides must be a multiple of this; the network pads them to it."""
        return 1

    def in_channels(self, kwargs: Mapping[str, Any]) -> int:
        """Colour channels the network takes: 3 (RGB) or 1 (gray)."""
        return int(kwargs.get("num_in_ch", 3))

    def feature_bytes_per_pixel(self, kwargs: Mapping[str, Any], scale: int, itemsize: int) -> float:
        """Working memory of the feature maps per input pixel of a window, estimated generously."""
        return 3 * 64 * scale * scale * itemsize

    def recognises(self, keys: Collection[str]) -> bool:
        """Whether a state dict with these keys holds weights of this architecture."""
        return bool(self.signature) and all(key in keys for key in self.signature)

    def __repr__(self) -> str:
        return f"<architecture {self.name}>"


class RRDBNet(Architecture):
    """ESRGAN's residual-in-residual dense blocks (basicsr), as in RealESRGAN_x4plus and x2plus."""

    name = "RRDBNet"
    signature = ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_up1.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        return import_basicsr("basicsr.archs.rrdbnet_arch").RRDBNet(**kwargs)

    def input_multiple(self, kwargs: Mapping[str, Any], scale: int) -> int:
        # x2 and x1 models pixel-unshuffle their input by 2 and 4 before the body.
        return {2: 2, 1: 4}.get(scale, 1)

    def feature_bytes_per_pixel(self, kwargs: Mapping[str, Any], scale: int, itemsize: int) -> float:
        # The peak is at the output resolution: a few maps of num_feat channels at scale² pixels
        # each, plus the dense block's growing maps at the input's. Measured peaks on a CPU are
        # 0.4–0.8 of this (RealESRGAN_x4plus in bf16: 5.2 KB per pixel, this 6.9 KB).
        features, grow = kwargs["num_feat"], kwargs["num_grow_ch"]
        return (3 * features * scale * scale + 4 * (features + 4 * grow)) * itemsize


class SRVGGNetCompact(Architecture):
    """Real-ESRGAN's compact VGG-style network (realesrgan), as in realesr-animevideov3 and general-x4v3."""

    name = "SRVGGNetCompact"
    signature = ("body.0.weight", "body.1.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        return import_basicsr("realesrgan.archs.srvgg_arch").SRVGGNetCompact(**kwargs)

    def feature_bytes_per_pixel(self, kwargs: Mapping[str, Any], scale: int, itemsize: int) -> float:
        return (3 * kwargs["num_feat"] + 3 * kwargs["num_out_ch"] * scale * scale) * itemsize

    def recognises(self, keys: Collection[str]) -> bool:
        return super().recognises(keys) and "conv_first.weight" not in keys


class GFPGANv1Clean(Architecture):
    """GFPGAN v1.3/v1.4's face restorer. Its StyleGAN decoder is not made for half precision."""

    name = "GFPGANv1Clean"
    precisions = ("fp32",)
    signature = ("conv_body_first.weight", "stylegan_decoder.style_conv1.modulated_conv.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        return import_basicsr("gfpgan.archs.gfpganv1_clean_arch").GFPGANv1Clean(**kwargs)


class RestoreFormer(Architecture):
    """RestoreFormer's face restorer (gfpgan)."""

    name = "RestoreFormer"
    precisions = ("fp32",)
    signature = ("encoder.conv_in.weight", "quantize.embedding.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        network = import_basicsr("gfpgan.archs.restoreformer_arch").RestoreFormer
        with contextlib.redirect_stdout(io.StringIO()):  # it prints its latent shape
            return network(**kwargs)


class RetinaFace(Architecture):
    """facexlib's RetinaFace face detector.

    It keeps its device (and a constant on it) in attributes that ``Module.to`` does not
    move, so it is built on the device it will run on.
    """

    name = "RetinaFace"
    precisions = ("fp32",)
    signature = ("ClassHead.0.conv1x1.weight", "LandmarkHead.0.conv1x1.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        import torch

        network = import_basicsr("facexlib.detection.retinaface").RetinaFace
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's notice about the `pretrained` argument
            return network(half=False, device=device or torch.device("cpu"), **kwargs)


class ParseNet(Architecture):
    """facexlib's ParseNet face parser, for the paste-back mask."""

    name = "ParseNet"
    precisions = ("fp32",)
    signature = ("out_mask_conv.conv2d.weight", "out_img_conv.conv2d.weight")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        return import_basicsr("facexlib.parsing.parsenet").ParseNet(**kwargs)


class IFNet(Architecture):
    """RIFE v4's frame-interpolation flow network (:mod:`remaster.ifnet`, written from the public definition).

    The official ``flownet.pkl`` also holds the refinement networks of RIFE's training (a teacher block, a
    context network and a U-Net) that v4's inference does not use: only the four flow blocks are loaded.
    """

    name = "IFNet"
    precisions = ("fp32",)
    signature = ("block0.conv0.0.0.weight", "block3.lastconv.weight")
    _BLOCKS = ("block0.", "block1.", "block2.", "block3.")

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        from .ifnet import IFNet as Network

        return Network(**kwargs)

    def load(
        self, kwargs: Mapping[str, Any], state: Mapping[str, Any], device: torch.device | None = None
    ) -> nn.Module:
        flow_blocks = {key: value for key, value in state.items() if key.startswith(self._BLOCKS)}
        return super().load(kwargs, flow_blocks, device)

    def input_multiple(self, kwargs: Mapping[str, Any], scale: int) -> int:
        from .ifnet import MULTIPLE

        return MULTIPLE


_architectures: dict[str, Architecture] = {}

ARCHITECTURES: Mapping[str, Architecture] = MappingProxyType(_architectures)
"""Every registered architecture by name (read-only view)."""


def register_architecture(architecture: Architecture) -> Architecture:
    """Add an architecture, so model entries can point at it.

    Raises:
        RegistrationError: it has no name, or an architecture of that name is registered already.
    """
    if not architecture.name:
        raise RegistrationError("An architecture needs a name")
    if architecture.name in _architectures:
        raise RegistrationError(f"An architecture named {architecture.name!r} is already registered")
    _architectures[architecture.name] = architecture
    return architecture


def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``.

    Raises:
        KeyError: none is; the message lists those that are.
    """
    try:
        return _architectures[name]
    except KeyError:
        raise KeyError(f"No architecture {name!r}; registered: {', '.join(_architectures)}") from None


def recognise(keys: Collection[str]) -> Architecture | None:
    """The registered architecture whose weights have these state-dict keys, if one does."""
    return next((arch for arch in _architectures.values() if arch.recognises(keys)), None)


for _architecture in (
    RRDBNet(),
    SRVGGNetCompact(),
    GFPGANv1Clean(),
    RestoreFormer(),
    RetinaFace(),
    ParseNet(),
    IFNet(),
):
    register_architecture(_architecture)
