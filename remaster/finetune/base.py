"""The model a fine-tuning starts from, as a trainable network: any model remaster can load.

An official model's weights come through :class:`~remaster.weights.WeightStore` (the documented
order: ``REMASTER_WEIGHTS_DIR``, the Hub, the release URL) into the official architecture; a model
file (a path, an ``hf://`` reference, a URL, or a file's stem in ``REMASTER_MODELS_DIR``) comes
through :class:`~remaster.model_files.ModelFiles` and is built by spandrel, as it is for remastering.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..atomic import sha256_of
from ..model_files import ModelFiles
from ..registry import ModelSpec
from ..settings import Settings

if TYPE_CHECKING:
    from torch import nn

__all__ = ["BaseModel", "load_base"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModel:
    """A model to start from: its trainable network (fp32, on the CPU) and what the result's card says of it."""

    name: str
    network: nn.Module
    scale: int
    sha256: str
    license: str


def load_base(model: str, settings: Settings) -> BaseModel:
    """The network of ``model``: a registered model's name, a file's stem in ``REMASTER_MODELS_DIR``, or a model file.

    Raises:
        UnknownModelError: no model has that name.
        InvalidModelError: the model file cannot be used.
        WeightsUnavailableError: an official model's weights could not be found or downloaded.
    """
    return _trainable(ModelFiles(settings).resolve(model), settings)


def _trainable(spec: ModelSpec, settings: Settings) -> BaseModel:
    from ..engine import load_checkpoint
    from ..weights import WeightStore

    path = spec.weights.path or WeightStore(settings).path(spec.weights)
    network = spec.architecture.trainable(spec.arch_kwargs, load_checkpoint(path, spec.state_dict_key))
    network = network.float().cpu().train().requires_grad_(True)
    log.info("Fine-tuning %s (×%d, %s)", spec.name, spec.scale, path.name)
    return BaseModel(spec.name, network, spec.scale, sha256_of(path), spec.license)
