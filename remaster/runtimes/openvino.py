"""OpenVINO on a CPU: a network converted once (kept on disk by its weights and input shape), run in fp32
(exact: OpenVINO's f32 hint) or bf16, stopped between short waits like torch's stop points.

Imported when a network is first placed on OpenVINO; OpenVINO itself is imported when one is built.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..atomic import atomic_files
from ..errors import brief
from ..network import current_check, waited
from . import Runner
from .measured import weights_key

if TYPE_CHECKING:
    import openvino as ov

__all__ = ["compiled_runner", "converted_model", "openvino_runner", "read_kept", "save_atomically"]

log = logging.getLogger(__name__)

_PACKAGE = __name__.partition(".")[0]
"""remaster's top logger, whose level OpenVINO's converter must leave as it was."""
_WAIT_STEP_MS = 100
_CONVERTING = threading.Lock()
"""One conversion at a time: OpenVINO converts through torch's tracer, and two traces at once (two networks'
builds, such as a face restorer's and its parser's) see each other's graphs and both fail its sanity check."""


def openvino_runner(
    module: nn.Module,
    example: torch.Tensor,
    dtype: torch.dtype,
    threads: int,
    cache: Path,
    fixed_shape: bool = False,
) -> Runner:
    """``module`` converted by OpenVINO for the CPU, with any batch, height and width, in ``dtype``'s precision.

    ``fixed_shape`` converts it for ``example``'s shape alone: networks of one input size whose weights
    depend on it (GFPGAN's modulated convolutions) convert only so.

    bf16 gets OpenVINO's bf16 hint, fp32 its f32 one (exact). A run waits for its result in short
    steps, so Stop (or Ctrl-C) ends it between them (OpenVINO cancels the work), as the stop points do
    in torch, and the request's progress is told the time waited; a shape whose last run took less than
    one step is run without the steps.

    Raises:
        ValueError: a precision OpenVINO does not take here (fp16 on a CPU).
    """
    hints = {torch.float32: "f32", torch.bfloat16: "bf16"}
    if dtype not in hints:
        raise ValueError(f"OpenVINO on a CPU takes fp32 or bf16, not {dtype}")
    core, converted, _ = converted_model(module, example, cache, fixed_shape)
    config = {"INFERENCE_PRECISION_HINT": hints[dtype], "INFERENCE_NUM_THREADS": threads, "CACHE_DIR": str(cache)}
    return compiled_runner(core.compile_model(converted, "CPU", config))


def converted_model(
    module: nn.Module, example: torch.Tensor, cache: Path, fixed_shape: bool = False
) -> tuple[ov.Core, ov.Model, Path]:
    """``module`` converted by OpenVINO in fp32, for any batch, height and width (``fixed_shape``: for
    ``example``'s shape alone), with the core that read it and where it is kept (or would have been)."""
    import openvino as ov

    _quiet_tracing()
    plain = copy.deepcopy(module).float().to(memory_format=torch.contiguous_format)
    shape = list(example.shape) if fixed_shape else [-1, example.shape[1], -1, -1]
    cache.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    converted, path = _converted(core, plain, example, shape, cache)
    return core, converted, path


def compiled_runner(compiled: ov.CompiledModel) -> Runner:
    """What runs batches through ``compiled``: a request per thread, its result copied out in the caller's layout;
    a long run waits in short steps, so that Stop (or Ctrl-C) ends it between them (OpenVINO cancels the work),
    and the request's progress is told the time waited; a shape whose last run took less than one step is run
    without the steps."""
    requests = threading.local()
    quick: dict[tuple[int, ...], bool] = {}

    def run(batch: torch.Tensor) -> torch.Tensor:
        request = getattr(requests, "request", None)
        if request is None:
            request = requests.request = compiled.create_infer_request()
        inputs = {0: batch.float().contiguous().cpu().numpy()}
        shape = tuple(batch.shape)
        started = time.perf_counter()
        if quick.get(shape):
            # Waiting in this thread lets it work too: 14 ms instead of 21 for realesr-animevideov3 at 128² on
            # two cores. Only for shapes whose last run took less than a stop check's step, so Stop still ends
            # a run within that step.
            request.infer(inputs)
        else:
            request.start_async(inputs)
            check = current_check()
            while not request.wait_for(_WAIT_STEP_MS):
                if check is not None:
                    try:
                        check()
                    except BaseException:
                        request.cancel()
                        raise
                waited(time.perf_counter() - started)
        quick[shape] = time.perf_counter() - started < _WAIT_STEP_MS / 1000
        # One copy out of OpenVINO's buffer (the next run reuses it), straight into the layout the caller wants.
        output = torch.from_numpy(request.get_output_tensor(0).data)
        layout = torch.channels_last if output.dim() == 4 else torch.contiguous_format
        return output.to(batch.device, memory_format=layout, copy=True)

    return run


def _converted(
    core: ov.Core, plain: nn.Module, example: torch.Tensor, shape: list[int], cache: Path
) -> tuple[ov.Model, Path]:
    """OpenVINO's model of ``plain`` for inputs of ``shape`` (−1: any), and where it is kept: read from ``cache``
    where a network of the same weights was converted before, else converted and kept there. Converting traces
    the network (GFPGAN: 18 s on two cores); reading the kept model takes a second."""
    import openvino as ov

    dims = "x".join("any" if extent < 0 else str(extent) for extent in shape)
    path = cache / f"{weights_key(plain)}-{dims}.xml"
    kept = read_kept(core, path)
    if kept is not None:
        return kept, path
    with _CONVERTING, torch.inference_mode(False), torch.no_grad(), _root_logger_kept():
        converted = ov.convert_model(plain, example_input=example.float(), input=[ov.PartialShape(shape)])
    if not save_atomically(converted, path, "the converted network"):
        return converted, path
    # The model as later processes will read it, so that OpenVINO's compiled-model cache keeps one copy for all.
    return core.read_model(path), path


def read_kept(core: ov.Core, path: Path) -> ov.Model | None:
    """The model kept at ``path``; None where there is none, or it cannot be read (it is made again)."""
    if not path.is_file():
        return None
    try:
        return core.read_model(path)
    except Exception as error:  # noqa: BLE001 - a damaged kept model is made again
        log.info("%s could not be read (%s); making it again", path, brief(error))
        return None


def save_atomically(model: ov.Model, path: Path, what: str) -> bool:
    """Keep ``model`` at ``path`` (an ``.xml`` with its ``.bin``) as it is (fp32 stays fp32), whole or not at all;
    False, logged, where it cannot be written."""
    import openvino as ov

    try:
        # Saving would halve fp32 weights by default. OpenVINO saves only to a name ending in .xml, with its .bin
        # beside it: so into a folder of its own, then both onto their temporary names; the .xml, renamed last,
        # says the pair is whole.
        with (
            atomic_files([path.with_suffix(".bin"), path]) as (weights, graph),
            tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as folder,
        ):
            saved = Path(folder) / "model.xml"
            ov.save_model(model, saved, compress_to_fp16=False)
            os.replace(saved.with_suffix(".bin"), weights)
            os.replace(saved, graph)
    except (OSError, RuntimeError) as error:
        log.info("%s could not be kept in %s (%s)", what, path.parent, brief(error))
        return False
    return True


def _quiet_tracing() -> None:
    """Keep the tracer's notes off standard error: OpenVINO converts through ``torch.jit.trace``, which
    torch calls deprecated, and networks whose shapes depend on their input make the tracer warn that the
    traced graph may not generalise (the dynamic height and width given to the converter cover that)."""
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """OpenVINO's converter sets the root logger to ERROR while it converts and, when a conversion fails,
    leaves it so: remaster's own loggers keep their level meanwhile, so that what other threads log (a
    request's result, another network's backend) is not lost, and the root logger is put back after."""
    root, ours = logging.getLogger(), logging.getLogger(_PACKAGE)
    level, filters, handlers, own = root.level, list(root.filters), list(root.handlers), ours.level
    ours.setLevel(ours.getEffectiveLevel())
    try:
        yield
    finally:
        root.setLevel(level)
        root.filters, root.handlers = filters, handlers
        ours.setLevel(own)
