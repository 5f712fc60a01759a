"""TensorRT on an NVIDIA GPU through torch-tensorrt: a network built in fp16 for a range of shapes, the engine
kept on disk by its weights and that range. torch-tensorrt is imported when one is built."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import Runner
from .measured import weights_key

__all__ = ["tensorrt_runner"]


def tensorrt_runner(module: nn.Module, example: torch.Tensor, cache: Path, largest: int = 1024) -> Runner:
    """``module`` built by TensorRT (torch-tensorrt) in fp16 for inputs from 16 to ``largest`` pixels a side,
    batches of up to 16; the engine is kept on disk by the module's weights and the shape range."""
    import torch_tensorrt

    channels = example.shape[1]
    minimum, optimum = (1, channels, 16, 16), (1, channels, 512, 512)
    maximum = (16, channels, largest, largest)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{weights_key(module)}-{largest}.ep"
    if path.is_file():
        return torch.export.load(str(path)).module()
    inputs = [torch_tensorrt.Input(min_shape=minimum, opt_shape=optimum, max_shape=maximum, dtype=torch.half)]
    built = torch_tensorrt.compile(module.half(), ir="dynamo", inputs=inputs, enabled_precisions={torch.half})
    torch_tensorrt.save(built, str(path), inputs=[example.half()])
    return built
