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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_file, sha256_of
from .errors import InvalidModelError, RemasterError, UnknownModelError, brief
from .hub import hub_download
from .kept import KeptTable
from .references import MODEL_SUFFIXES, Reference, is_reference, parse_reference
from .registry import MODELS, ModelSpec, WeightFile, model_names
from .settings import Settings
from .spandrel_architecture import closest_architecture, describe, load_descriptor

if TYPE_CHECKING:
    import torch

__all__ = ["ModelFiles"]

log = logging.getLogger(__name__)


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

    def resolve(self, model: str) -> ModelSpec:
        """The upscaler that ``model`` names, as ``-n`` takes it: a registered model's name, a model file (a path,
        an ``hf://`` reference or a URL, loaded and registered now), or a file's stem in ``REMASTER_MODELS_DIR``.

        Raises:
            UnknownModelError: no model has that name; the message lists what ``model`` may be.
            InvalidModelError: the model file cannot be used; the message says why.
            WeightsUnavailableError: a Hub file could not be downloaded.
        """
        if model in MODELS and MODELS[model].kind == "upscaler":
            return MODELS[model]
        spec = self.load(model) if is_reference(model) else self.find(model)
        if spec is None:
            folder = self.settings.models_dir or "REMASTER_MODELS_DIR"
            raise UnknownModelError(
                f"Unknown model {model!r}. Choose one of: {', '.join(model_names('upscaler'))}; a model file's stem in "
                f"{folder}; or a model file (a path, hf://owner/repo/file.pth or a URL)"
            )
        return spec

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
        pinned = (self.ledger.get(str(where)) or {}).get("revision", where.revision)
        try:
            downloaded = hub_download(self.settings, where.location, where.filename, pinned)
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
        described = describe(self._descriptor(path))
        purpose = described.purpose
        if purpose not in ("SR", "Restoration"):
            what = {"FaceSR": "a face restoration model", "Inpainting": "an inpainting model (it needs a mask)"}
            raise InvalidModelError(
                f"{path.name} is {what.get(purpose, purpose)} ({described.summary}), not an upscaler or "
                "restoration model for whole images"
            )
        licence = _licence(path)
        source = {"path": "a file on disk", "hub": f"the Hub ({where.location})", "url": "a URL"}[where.kind]
        return ModelSpec(
            name=_free_name(where.name),
            architecture=described.architecture,
            arch_kwargs=described.arch_kwargs,
            scale=described.scale,
            state_dict_key="",
            weights=WeightFile(
                filename=path.name, sha256=sha256, size=path.stat().st_size, hub_repo="", url="", path=path
            ),
            description=f"{described.summary}, from {source} · SHA-256 {sha256[:12]}",
            tile_overlap=None,
            license=licence,
        )

    def _descriptor(self, path: Path) -> Any:
        from spandrel import UnsupportedModelError

        from .engine import load_checkpoint

        not_torch = _not_saved_by_torch(path)
        if not_torch is not None:
            raise InvalidModelError(not_torch)
        try:
            state = load_checkpoint(path, "")
        except Exception as error:  # noqa: BLE001 - a pickle with code in it, a damaged file, a file of something else
            raise InvalidModelError(_unreadable(path, error)) from None
        if not state:
            raise InvalidModelError(f"{path.name} holds no weights (no tensors); it is not a model file")
        self._check_memory(path, state)
        try:
            return load_descriptor(state)
        except UnsupportedModelError:
            closest = closest_architecture(state.keys())
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


def _free_name(stem: str) -> str:
    """``stem``, or ``stem_2``…, whichever no registered model has."""
    name, number = stem, 2
    while name in MODELS:
        name, number = f"{stem}_{number}", number + 1
    return name


def _too_large(size: int, limit_mb: int) -> str:
    return f"The model file is {size / 2**20:.0f} MB, more than the limit of {limit_mb} MB (REMASTER_MAX_MODEL_MB)"


_TORCH_ZIP = b"PK\x03\x04"
"""How a file ``torch.save`` wrote starts (a zip archive), and ``.ckpt`` files and TorchScript too."""
_TORCH_LEGACY = b"\x8a\x0a" + 0x1950A86A20F9469CFC6C.to_bytes(10, "little")
"""The number a file of ``torch.save``'s older format starts with, as a pickle writes it (``LONG1``)."""


def _not_saved_by_torch(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a model, told by its first bytes, or None where it may be one.

    Only a file ``torch.save`` wrote (or safetensors) holds tensors torch reads; any other pickle, a NumPy array's
    say, would only get torch's internal text ("Unsupported operand 149") and a warning about its protocol.
    """
    if path.suffix.lower() == ".safetensors":
        return None
    with path.open("rb") as file:
        head = file.read(32)
    if head.startswith(_TORCH_ZIP) or _TORCH_LEGACY in head:
        return None
    what = "neither a file torch.save wrote nor a safetensors file"
    if head[:1] == b"\x80":  # a pickle's first opcode, PROTO
        what = "a Python pickle, but not one torch.save wrote, so it holds no weights"
    return (
        f"{path.name} is not a model file: it is {what}. Use a .safetensors file, or one saved with "
        "torch.save(model.state_dict(), path)"
    )


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
