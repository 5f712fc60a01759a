"""What the forkserver of :mod:`tests.commands` imports once for all the commands it forks: the heavy libraries
every command imports (torch, torchvision with ``torch._dynamo``, basicsr with SciPy, OpenCV), and not remaster,
which each command imports anew."""

import sys

from remaster._compat import install_torchvision_alias

install_torchvision_alias()

import basicsr  # noqa: E402, F401
import cv2  # noqa: E402, F401
import realesrgan  # noqa: E402, F401
import torch  # noqa: E402, F401
import torchvision  # noqa: E402, F401

for name in [name for name in sys.modules if name == "remaster" or name.startswith("remaster.")]:
    del sys.modules[name]
