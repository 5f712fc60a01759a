"""What names a model file rather than a registered model: a path, a Hub reference or a URL.

Read where the command line is parsed, so nothing here imports more than the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidModelError

__all__ = ["MODEL_SUFFIXES", "Reference", "is_reference", "parse_reference"]

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
"""The file types of a model; of files of one stem in a models folder (a fine-tuned model's .pth and .safetensors),
the first in this order is the model: safetensors first, as it holds tensors only."""
_HUB = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<file>[^@\s]+?)(?:@(?P<revision>[^@\s]+))?$")


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
