"""Any model people use: model files from disk, a models folder, the Hub or a URL, loaded through spandrel.

A reference is a file path (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``), a Hub reference
``hf://owner/repo/path/file.pth[@revision]`` or an ``http(s)`` URL. :meth:`ModelFiles.load`
reads the file safely (tensors only: ``weights_only``, or safetensors), lets spandrel tell the
architecture and its settings, and registers a model entry like the official ones, so the page,
the command line, the API, batches, videos, archives and evaluations all offer it. Its network
runs through remaster's own engine: tiles of an overlap measured for it, the precisions it
supports, every image mode.

A download is pinned: the first time a reference is seen, its file's SHA-256 (and the Hub
revision it resolved to) is kept in ``model-files.json`` in ``REMASTER_CACHE_DIR``; a different
file behind the same reference later is refused. A file on disk is the user's own: its SHA-256
is shown, and a changed file is simply a new model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .architectures import ARCHITECTURES, Architecture, register_architecture
from .errors import InvalidModelError, RemasterError, brief
from .image_io import atomic_file
from .kept import KeptTable
from .registry import MODELS, ModelSpec, WeightFile
from .settings import Settings

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "MODEL_SUFFIXES",
    "ModelFiles",
    "Reference",
    "SpandrelArchitecture",
    "is_reference",
    "parse_reference",
    "sha256_of",
]

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
"""The file types of a model; of files of one stem in a models folder (a fine-tuned model's .pth and .safetensors),
the first in this order is the model: safetensors first, as it holds tensors only."""
_HUB = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<file>[^@\s]+?)(?:@(?P<revision>[^@\s]+))?$")
_TILING = {1: "supported", 2: "discouraged", 3: "internal"}


@dataclass(frozen=True)
class Reference:
    """Where a model file is: a path, a Hub file (repo, filename, revision) or a URL."""

    kind: str
    """``path``, ``hub`` or ``url``."""
    location: str
    """The path, the Hub repo, or the URL."""
    filename: str = ""
    """The file's path inside the Hub repo."""
    revision: str = "main"

    @property
    def name(self) -> str:
        """The model's name: the file's stem."""
        tail = self.filename or self.location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return Path(tail).stem or "model"

    def __str__(self) -> str:
        if self.kind == "hub":
            return f"hf://{self.location}/{self.filename}@{self.revision}"
        return self.location


def parse_reference(text: str) -> Reference:
    """A :class:`Reference` from what a user wrote.

    Raises:
        InvalidModelError: an ``hf://`` reference without a repo and a file.
    """
    text = text.strip()
    if text.startswith("hf://"):
        match = _HUB.match(text)
        if match is None:
            raise InvalidModelError(f"{text!r} is not a Hub reference; write hf://owner/repo/path/file.pth[@revision]")
        return Reference("hub", match["repo"], match["file"], match["revision"] or "main")
    if re.match(r"^https?://", text):
        return Reference("url", text)
    return Reference("path", str(Path(text).expanduser()))


def is_reference(text: str) -> bool:
    """Whether ``text`` names a model file rather than a registered model: a URL, a Hub reference or a path."""
    return text.startswith(("hf://", "http://", "https://")) or Path(text).suffix.lower() in MODEL_SUFFIXES


class SpandrelArchitecture(Architecture):
    """An architecture spandrel knows (ESRGAN, Compact, SPAN, SwinIR, HAT, Real-CUGAN…), one per spandrel id.

    A network is made from its weights, which tell spandrel its settings; what remaster needs
    (input multiple, channels, precisions, tiling advice) is kept in the model entry's
    ``arch_kwargs`` when the file is first read.
    """

    def __init__(self, arch_id: str) -> None:
        self.arch_id = arch_id
        self.name = f"{arch_id} (spandrel)"

    def build(self, kwargs: Mapping[str, Any], device: torch.device | None = None) -> nn.Module:
        raise NotImplementedError(f"A {self.arch_id} network is made from its weights")

    def load(
        self, kwargs: Mapping[str, Any], state: Mapping[str, Any], device: torch.device | None = None
    ) -> nn.Module:
        descriptor = _spandrel_load(dict(state))
        if descriptor.architecture.id != self.arch_id:
            raise RuntimeError(f"these weights are for a {descriptor.architecture.id} network, not {self.arch_id}")
        return _DescriptorModule.of(descriptor)

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


def _spandrel_load(state: dict[str, Any]) -> Any:
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


class ModelFiles:
    """Brings model files into the registry for one :class:`Settings`.

    Args:
        settings: where downloads go (``cache_dir``, the Hub's cache) and their size limit.
        allowed: which network addresses a URL may resolve to (default: any; the page passes
            public ones only).
    """

    def __init__(self, settings: Settings, allowed: Callable[[str], bool] | None = None) -> None:
        self.settings = settings
        self.allowed = allowed
        self.ledger = KeptTable(settings.cache_dir / "model-files.json", "pinned SHA-256 and revision")

    def load(self, reference: str) -> ModelSpec:
        """The registry entry for the model at ``reference``, registered now if it was not.

        Raises:
            InvalidModelError: the reference or its file cannot be used; the message says why and what to do.
            WeightsUnavailableError: a Hub file could not be downloaded.
        """
        where = parse_reference(reference)
        path = self._file(where)
        sha256 = sha256_of(path)
        self._pin(where, sha256)
        existing = next((s for s in MODELS.values() if s.weights.sha256 == sha256 and s.kind == "upscaler"), None)
        if existing is not None:
            return existing
        spec = self._spec(where, path, sha256)
        MODELS.register(spec)
        log.info("Registered %s: %s", spec.name, spec.description)
        return spec

    def load_folder(self) -> tuple[list[ModelSpec], list[tuple[str, str]]]:
        """Every model file in ``REMASTER_MODELS_DIR`` registered (named by its stem), and (file, reason) for those
        that could not be."""
        folder = self.settings.models_dir
        if folder is None or not folder.is_dir():
            return [], []
        loaded, failed = [], []
        for path in _one_per_stem(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES):
            try:
                loaded.append(self.load(str(path)))
            except RemasterError as error:
                log.warning("%s was not registered: %s", path.name, error)
                failed.append((path.name, str(error)))
        return loaded, failed

    def find(self, name: str) -> ModelSpec | None:
        """The model file named ``name`` (a stem) in ``REMASTER_MODELS_DIR``, registered, if there is one."""
        folder = self.settings.models_dir
        if folder is None:
            return None
        match = next(
            (folder / f"{name}{suffix}" for suffix in MODEL_SUFFIXES if (folder / f"{name}{suffix}").is_file()), None
        )
        return self.load(str(match)) if match is not None else None

    def _file(self, where: Reference) -> Path:
        if where.kind == "path":
            path = Path(where.location)
            if not path.is_file():
                raise InvalidModelError(f"No model file at {path}")
            if path.suffix.lower() not in MODEL_SUFFIXES:
                raise InvalidModelError(f"{path.name} is not a model file; use {', '.join(MODEL_SUFFIXES)}")
            return path
        if where.kind == "hub":
            return self._from_hub(where)
        return self._from_url(where)

    def _from_hub(self, where: Reference) -> Path:
        from huggingface_hub import hf_hub_download

        pinned = (self.ledger.get(str(where)) or {}).get("revision", where.revision)
        try:
            downloaded = Path(
                hf_hub_download(
                    repo_id=where.location,
                    filename=where.filename,
                    revision=pinned,
                    cache_dir=self.settings.hub_cache_dir,
                    endpoint=self.settings.hub_endpoint,
                    token=self.settings.hub_token,
                    local_files_only=self.settings.offline,
                    etag_timeout=self.settings.download_timeout,
                )
            )
        except Exception as error:  # noqa: BLE001 - huggingface_hub raises many kinds; each becomes one message
            raise InvalidModelError(f"{where} could not be downloaded from the Hub ({brief(error)})") from None
        if downloaded.stat().st_size > self.settings.max_model_mb * 2**20:
            raise InvalidModelError(_too_large(downloaded.stat().st_size, self.settings.max_model_mb))
        parts = downloaded.parts  # …/snapshots/<commit>/<filename>
        revision = parts[parts.index("snapshots") + 1] if "snapshots" in parts else pinned
        self.ledger.change(str(where), lambda entry: {**(entry or {}), "revision": revision})
        return downloaded

    def _from_url(self, where: Reference) -> Path:
        from .fetch import fetch_url

        key = hashlib.sha256(where.location.encode()).hexdigest()[:16]
        target = self.settings.cache_dir / "models" / key / f"{where.name}{Path(where.location.split('?')[0]).suffix}"
        if target.is_file():
            return target
        if target.suffix.lower() not in MODEL_SUFFIXES:
            raise InvalidModelError(f"{where.location} does not name a model file ({', '.join(MODEL_SUFFIXES)})")
        limit = self.settings.max_model_mb * 2**20
        with tempfile.TemporaryDirectory(dir=_made(self.settings.cache_dir)) as scratch:
            fetched = fetch_url(
                where.location,
                Path(scratch),
                limit,
                allowed=self.allowed or (lambda address: True),
                what="model file",
                error=InvalidModelError,
            )
            with atomic_file(target) as partial:
                shutil.move(fetched, partial)
        return target

    def _pin(self, where: Reference, sha256: str) -> None:
        """Record the SHA-256 of a downloaded file when first seen; refuse a different one later."""
        if where.kind == "path":
            return

        def pinned(entry: dict[str, str] | None) -> dict[str, str]:
            known = (entry or {}).get("sha256")
            if known is not None and known != sha256:
                raise InvalidModelError(
                    f"The file behind {where} has changed since it was first loaded (SHA-256 {known[:12]}…, now "
                    f"{sha256[:12]}…), so it was refused. If you trust the new file, remove its entry from "
                    f"{self.ledger.path}"
                )
            return {**(entry or {}), "sha256": sha256}

        self.ledger.change(str(where), pinned)

    def _spec(self, where: Reference, path: Path, sha256: str) -> ModelSpec:
        descriptor = self._descriptor(path)
        purpose = descriptor.purpose
        if purpose not in ("SR", "Restoration"):
            what = {"FaceSR": "a face restoration model", "Inpainting": "an inpainting model (it needs a mask)"}
            raise InvalidModelError(
                f"{path.name} is {what.get(purpose, purpose)} ({descriptor.architecture.name}), not an upscaler or "
                "restoration model for whole images"
            )
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
        licence = _licence(path)
        kind = "restoration, ×1" if descriptor.scale == 1 else f"×{descriptor.scale}"
        source = {"path": "a file on disk", "hub": f"the Hub ({where.location})", "url": "a URL"}[where.kind]
        return ModelSpec(
            name=_free_name(where.name),
            architecture=_architecture_for(descriptor.architecture.id),
            arch_kwargs=kwargs,
            scale=descriptor.scale,
            state_dict_key="",
            weights=WeightFile(
                filename=path.name, sha256=sha256, size=path.stat().st_size, hub_repo="", url="", path=path
            ),
            description=(
                f"{descriptor.architecture.name} {kind}, {descriptor.input_channels}→{descriptor.output_channels} "
                f"channels, from {source} · SHA-256 {sha256[:12]}"
            ),
            tile_overlap=None,
            license=licence,
        )

    def _descriptor(self, path: Path) -> Any:
        from spandrel import UnsupportedModelError

        from .engine import load_checkpoint

        try:
            state = load_checkpoint(path, "")
        except Exception as error:  # noqa: BLE001 - a pickle with code in it, a damaged file, a file of something else
            raise InvalidModelError(_unreadable(path, error)) from None
        if not state:
            raise InvalidModelError(f"{path.name} holds no weights (no tensors); it is not a model file")
        self._check_memory(path, state)
        try:
            return _spandrel_load(state)
        except UnsupportedModelError:
            closest = _closest_architecture(state.keys())
            hint = f"; the closest it knows is {closest}" if closest else ""
            raise InvalidModelError(
                f"{path.name} holds weights of a network that spandrel does not know{hint}. Supported are ESRGAN, "
                "Compact, SPAN, SwinIR, HAT, DAT, Real-CUGAN, OmniSR, PLKSR and the rest of spandrel's architectures"
            ) from None
        except Exception as error:  # noqa: BLE001 - spandrel found the architecture but the weights do not fit it
            raise InvalidModelError(f"{path.name} could not be loaded as a model ({brief(error)})") from None

    def _check_memory(self, path: Path, state: Mapping[str, torch.Tensor]) -> None:
        """Refuse weights that alone would fill the memory free on the device (in fp32, as they are loaded)."""
        import torch

        from .tiling import available_memory

        needed = sum(tensor.numel() * 4 for tensor in state.values())
        free = available_memory(torch.device(self.settings.device))
        if needed > free:
            raise InvalidModelError(
                f"{path.name} needs {needed / 2**30:.1f} GB for its weights alone, and {free / 2**30:.1f} GB is free "
                f"on {self.settings.device}; close other programs or use a machine with more memory"
            )


def _one_per_stem(paths: Iterable[Path]) -> list[Path]:
    """Of model files sharing a stem, the preferred one (see ``MODEL_SUFFIXES``), so a pair is one model; sorted."""
    chosen: dict[str, Path] = {}
    for path in sorted(paths, key=lambda p: (p.stem, MODEL_SUFFIXES.index(p.suffix.lower()))):
        if path.stem in chosen:
            log.info("%s is not registered: %s has the same name and is the model", path.name, chosen[path.stem].name)
            continue
        chosen[path.stem] = path
    return sorted(chosen.values())


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _free_name(stem: str) -> str:
    """``stem``, or ``stem_2``…, whichever no registered model has."""
    name, number = stem, 2
    while name in MODELS:
        name, number = f"{stem}_{number}", number + 1
    return name


def _too_large(size: int, limit_mb: int) -> str:
    return f"The model file is {size / 2**20:.0f} MB, more than the limit of {limit_mb} MB (REMASTER_MAX_MODEL_MB)"


def _unreadable(path: Path, error: BaseException) -> str:
    text = str(error)
    if re.search(r"unsupported global", text, re.IGNORECASE):  # a pickle that imports and calls: code, not weights
        return (
            f"{path.name} holds more than weights (pickled code or objects), and remaster loads tensors only; it was "
            "refused without running anything. Use a .safetensors file, or one saved as a plain state dict"
        )
    if "Weights only load failed" in text:
        reason = text.split("from a trusted source.", 1)[-1].split("Check the documentation")[0]
        return f"{path.name} is not a model file remaster can read ({brief(reason.strip() or error, 160)})"
    return f"{path.name} is not a model file remaster can read ({brief(error, 160)})"


def _licence(path: Path) -> str:
    """The licence a file declares: in its safetensors metadata, or an OpenModelDB-style JSON beside it."""
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
            licence = metadata.get("license") or metadata.get("modelspec.license")
            if licence:
                return licence
        except Exception:  # noqa: BLE001 - unreadable metadata only loses the licence
            pass
    sidecar = path.with_suffix(".json")
    try:
        licence = json.loads(sidecar.read_text(encoding="utf-8")).get("license")
    except (OSError, ValueError, AttributeError):
        licence = None
    return str(licence) if licence else "unknown: see where the file came from"


def _closest_architecture(keys: Collection[str]) -> str | None:
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
