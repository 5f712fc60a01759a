"""Fine-tune a model on your own images, measure that it helped, and use it everywhere.

>>> from remaster.finetune import Config, finetune
>>> result = finetune("scans/", "realesr-animevideov3", "my-model.pth", Config(steps=500, preset="scan"))
>>> print(result.verdict)

``python -m remaster.finetune DATA --base MODEL -o my-model.pth`` does the same from the command
line. The run keeps its state in one folder beside the result, ``my-model-finetune/``:
``checkpoint.pt`` (to ``--resume``) and the report (``report.md``, ``curves.png``, ``crops.png``,
``scores.csv``). The result is ``my-model.pth`` (official layout), ``my-model.safetensors`` and
the card ``my-model.json``: put them in ``REMASTER_MODELS_DIR``, or pass one by path, and the
model is in the page, the command line, the API, videos and archive jobs.

The modules: :mod:`.data` (the images and the held-out part), :mod:`.degradation` (Real-ESRGAN's
degradation and its presets), :mod:`.base` (the model to start from), :mod:`.trainer` (the loop,
checkpoints), :mod:`.result` (the model files and card), :mod:`.report` (the proof), :mod:`.cli`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError
from ..locks import LOCK, lock_folder
from ..settings import Settings
from ..version import __version__
from .data import find_data
from .degradation import PRESETS
from .trainer import CHECKPOINT, RECIPES, Config, mean_scores

if TYPE_CHECKING:
    import torch

__all__ = ["PRESETS", "RECIPES", "Config", "FinetuneResult", "finetune", "run_folder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tuning made, and how the tuned model compares with the base on the held-out images."""

    model: Path
    """The ``.pth`` (official layout)."""
    safetensors: Path
    card: Path
    report: Path
    """The report's folder (``report.md`` in it)."""
    base_psnr: float
    tuned_psnr: float
    verdict: str
    """The report's closing line."""

    @property
    def gain_db(self) -> float:
        """Held-out PSNR of the tuned model minus the base's."""
        return self.tuned_psnr - self.base_psnr


def run_folder(output: Path) -> Path:
    """The folder a run for ``output`` keeps its checkpoint and report in: ``NAME-finetune/`` beside it."""
    from .result import model_paths

    pth = model_paths(output)[0]
    return pth.with_name(f"{pth.stem}-finetune")


def finetune(
    data: str | Path,
    base: str,
    output: str | Path,
    config: Config | None = None,
    *,
    val: float | Path = 0.2,
    device: str | None = None,
    resume: bool = False,
    settings: Settings | None = None,
    stop: threading.Event | None = None,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``base`` on the images in ``data`` and write the model and its report.

    Args:
        data: a folder of high-resolution images, or one with ``lq/`` and ``gt/`` (see :mod:`.data`).
        base: any model remaster can load: an official name, a file's stem in ``REMASTER_MODELS_DIR``, a model file.
        output: the result, ``NAME.pth`` (``NAME.safetensors`` and ``NAME.json`` are written beside it).
        config: steps, batch, crops, learning rate, preset, recipe, seed… (default :class:`Config`).
        val: the share of images held out, or a folder of held-out images (``DATA/val/`` is used if it exists).
        device: ``cuda``, ``mps``, ``cpu``… (default: the settings' device).
        resume: continue from the run folder's checkpoint.
        settings: where weights come from (default: from the environment).
        stop: when set, the run saves a checkpoint after the current step and stops.
        progress: show a progress bar on standard error.

    Raises:
        InvalidDataError: the data cannot be used (the message counts and names the files left out).
        InvalidOptionError: a setting out of range, a device not here, a checkpoint in the way or of another run.
        UnknownModelError, InvalidModelError, WeightsUnavailableError: the base model cannot be loaded.
        StoppedError: ``stop`` was set; the checkpoint was written.
        JobBusyError: another run is making the same model now.
    """
    from .base import load_base
    from .report import write_report
    from .result import model_paths, write_model
    from .trainer import Trainer

    config = config or Config()
    settings = settings or Settings.from_env()
    output = Path(output)
    where = _device(device or settings.device)
    model = load_base(base, settings)
    config.check(model.scale)
    training = find_data(Path(data), model.scale, config.crop_size, val, config.seed)
    folder = run_folder(output)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder, output.name):
        if (folder / CHECKPOINT).is_file() and not resume:
            raise InvalidOptionError(
                f"A run for {output.name} has a checkpoint at {folder / CHECKPOINT}: pass --resume to continue it, or "
                "remove that folder to start afresh"
            )
        trainer = Trainer(model, training, config, where, folder, progress)
        if resume:
            trainer.resume()
        history = trainer.train(stop)

        base_scores, base_images = trainer.held_out.run(trainer.original, where, "base")
        tuned_scores, tuned_images = trainer.held_out.run(trainer.ema, where, "tuned")
        metrics = {"base": mean_scores(base_scores), "tuned": mean_scores(tuned_scores)}
        name = model_paths(output)[0].stem
        card = {
            "name": name,
            "base": {"name": model.name, "sha256": model.sha256},
            "license": model.license,
            "scale": model.scale,
            "data": {"fingerprint": training.fingerprint, "layout": training.layout, "summary": training.summary()},
            **asdict(config),
            "held_out": trainer.held_out.names,
            "metrics": metrics,
            "made_by": f"remaster {__version__} (python -m remaster.finetune)",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        pth, safetensors, card_path = write_model(trainer.ema.state_dict(), output, card)
        crops = trainer.held_out.crops({"base": base_images, "tuned": tuned_images})
        scores = [*base_scores, *tuned_scores]
        closing = write_report(folder, card, history.points, scores, crops, trainer.held_out.names)
        log.info("%s Model: %s (and %s, %s); report: %s", closing, pth, safetensors.name, card_path.name, folder)
        base_psnr, tuned_psnr = float(metrics["base"]["psnr"]), float(metrics["tuned"]["psnr"])
        return FinetuneResult(pth, safetensors, card_path, folder, base_psnr, tuned_psnr, closing)


@contextlib.contextmanager
def _locked(folder: Path, result: str) -> Iterator[None]:
    """Hold ``folder``'s lock (see :func:`remaster.locks.lock_folder`) while the block runs; its file goes at the end.

    Raises:
        JobBusyError: another run holds it.
    """
    handle = lock_folder(folder, result)
    try:
        yield
    finally:
        if handle is not None:
            (folder / LOCK).unlink(missing_ok=True)  # while still held: the next run makes a fresh one
            handle.close()


def _device(name: str) -> torch.device:
    """``name`` as a torch device, checked to be on this machine.

    Raises:
        InvalidOptionError: no such device here.
    """
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidOptionError(f"{name!r} is not a device; use cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError("No CUDA GPU is available here; use --device cpu (or mps on an Apple machine)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError("Apple's MPS is not available here; use --device cpu")
    return device
