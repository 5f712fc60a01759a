"""Compatibility shims that must run before basicsr is imported. Import this module first.

basicsr 1.4.2 (its last release) imports ``torchvision.transforms.functional_tensor``,
which torchvision 0.17 renamed to ``_functional_tensor``. Registering the new module
under the old name lets basicsr import unchanged.
"""

from __future__ import annotations

import importlib
import sys

_OLD_NAME = "torchvision.transforms.functional_tensor"


def install_torchvision_alias() -> None:
    """Make ``torchvision.transforms.functional_tensor`` importable on any torchvision."""
    if _OLD_NAME in sys.modules:
        return
    try:
        importlib.import_module(_OLD_NAME)
    except ModuleNotFoundError:
        sys.modules[_OLD_NAME] = importlib.import_module("torchvision.transforms._functional_tensor")


install_torchvision_alias()
