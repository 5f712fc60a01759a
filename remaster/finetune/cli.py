"""The command line: ``python -m remaster.finetune DATA --base MODEL -o my-model.pth``.

Exit codes: 0 done (the closing line says whether the tuned model beats the base); 1 the base
model's weights could not be had, or another problem remaster names; 2 bad usage or data that
cannot be used; 130 stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (see :mod:`remaster.signals`),
with a checkpoint saved after the step in hand (run the same command with ``--resume`` to
continue); a second signal stops at once, keeping the last checkpoint written.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import logs, signals
from ..errors import InvalidDataError, InvalidOptionError, RemasterError, StoppedError
from ..registry import model_names
from ..settings import Settings
from .degradation import PRESETS
from .trainer import RECIPES, Config

if TYPE_CHECKING:
    from . import FinetuneResult

__all__ = ["main", "parse_args"]

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (exits with status 2 on bad usage)."""
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="python -m remaster.finetune",
        description="Fine-tune a model on your own images, and measure on held-out images that it helped.",
    )
    parser.add_argument("data", type=Path, help="a folder of high-resolution images, or one with lq/ and gt/ folders")
    parser.add_argument(
        "--base",
        required=True,
        metavar="MODEL",
        help=f"the model to start from: one of {', '.join(model_names('upscaler'))}, a model file's stem in "
        "REMASTER_MODELS_DIR, or a model file (a path, hf://owner/repo/file.pth or a URL)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the result, e.g. my-model.pth")
    parser.add_argument("--steps", type=int, default=defaults.steps, help=f"(default: {defaults.steps})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"(default: {defaults.batch_size})")
    parser.add_argument(
        "--crop-size", type=int, default=defaults.crop_size, help="ground-truth crop side (default: %(default)s)"
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"learning rate (default: {defaults.lr:g})")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=defaults.preset,
        help="how the low-resolution inputs are made from HR images: "
        + "; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items()),
    )
    parser.add_argument(
        "--strength", type=float, default=defaults.strength, help="how hard the degradation is, 1 as the preset"
    )
    parser.add_argument(
        "--recipe",
        choices=list(RECIPES),
        default=defaults.recipe,
        help="; ".join(f"{name}: {recipe.description}" for name, recipe in RECIPES.items()),
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default: 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    parser.add_argument(
        "--val",
        default="0.2",
        help="the share of images held out (default: 0.2), or a folder of held-out images (DATA/val/ if it exists)",
    )
    parser.add_argument("--eval-every", type=int, default=0, help="score the held-out images every N steps")
    parser.add_argument(
        "--checkpoint-every", type=int, default=defaults.checkpoint_every, help="(default: %(default)s)"
    )
    parser.add_argument(
        "--accumulate", type=int, default=1, help="batches summed per optimiser step, for small memory (default: 1)"
    )
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the fastest here)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of .pth files (REMASTER_WEIGHTS_DIR)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fine-tuning command line; returns the exit status."""
    stop = threading.Event()
    with signals.Stopping(stop, on_first=_stopping) as stopping:
        args = parse_args(argv)
        logs.configure(logging.INFO)
        try:
            result = _finetune(args, stop)
        except StoppedError as error:
            print(f"stopped ({stopping.name}): {error}", file=sys.stderr)
            return stopping.exit_status
        except KeyboardInterrupt:
            print(f"stopped at once ({stopping.name}): {_kept(args.output)}", file=sys.stderr)
            return stopping.exit_status
        except (InvalidDataError, InvalidOptionError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except RemasterError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    print(result.verdict)
    print(f"model: {result.model} and {result.safetensors.name} (card {result.card.name}); report: {result.report}/")
    return 0


def _finetune(args: argparse.Namespace, stop: threading.Event) -> FinetuneResult:
    """The run the parsed ``args`` ask for, stopping after the step in hand once ``stop`` is set.

    Raises:
        StoppedError: ``stop`` was set; the checkpoint is written.
        InvalidDataError, InvalidOptionError, RemasterError: as :func:`remaster.finetune.finetune` raises them.
    """
    from . import finetune

    try:
        val: float | Path = float(args.val)
    except ValueError:
        val = Path(args.val)
    config = Config(
        steps=args.steps,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        lr=args.lr,
        preset=args.preset,
        strength=args.strength,
        recipe=args.recipe,
        seed=args.seed,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        accumulate=args.accumulate,
    )
    overrides = {"weights_dir": args.weights_dir} if args.weights_dir else {}
    return finetune(
        args.data,
        args.base,
        args.output,
        config,
        val=val,
        device=args.device,
        resume=args.resume,
        settings=Settings.from_env(**overrides),
        stop=stop,
        progress=not args.quiet,
    )


def _stopping(signal_name: str) -> None:
    """Say that the first signal stops the run after the step in hand, with a checkpoint."""
    log.warning("Stopping after this step and saving a checkpoint (%s again to stop at once)", signal_name)


def _kept(output: Path) -> str:
    """What a run stopped at once keeps, and how to go on."""
    from . import run_folder
    from .trainer import CHECKPOINT

    checkpoint = run_folder(output) / CHECKPOINT
    if checkpoint.is_file():
        return f"the last checkpoint written is kept in {checkpoint}; run the same command with --resume to continue"
    return "no checkpoint had been written yet; run the same command to start again"
