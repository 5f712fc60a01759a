"""The one compatibility shim: basicsr 1.4.2 on a current torchvision.

basicsr 1.4.2 (its last release) imports ``torchvision.transforms.functional_tensor``,
which torchvision 0.17 renamed to ``_functional_tensor``. Registering the new module
under the old name lets basicsr import unchanged. Import basicsr, and the packages built
on it (realesrgan, gfpgan), through :func:`import_basicsr`, or call
:func:`install_torchvision_alias` before importing them yourself. Importing this module
does nothing by itself, so modules that must stay free of torch can import it.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_basicsr", "install_torchvision_alias"]

_OLD_NAME = "torchvision.transforms.functional_tensor"


def install_torchvision_alias() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable on any torchvision."""
    if _OLD_NAME in sys.modules:
        return
    try:
        importlib.import_module(_OLD_NAME)
    except ModuleNotFoundError:
        sys.modules[_OLD_NAME] = importlib.import_module("torchvision.transforms._functional_tensor")


def import_basicsr(name: str) -> ModuleType:
    """The module ``name`` of basicsr, realesrgan, gfpgan or facexlib, imported with the alias in place."""
    install_torchvision_alias()
    return importlib.import_module(name)
