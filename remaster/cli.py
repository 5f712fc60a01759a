"""The command line: ``python -m remaster INPUT... -o OUTDIR``.

A drop-in for the official ``inference_realesrgan.py``: its option names work too
(``-n/--model_name``, ``-s/--outscale``, ``-dn/--denoise_strength``, ``--face_enhance``,
``--fp32``, ``--suffix``, ``--ext``, ``-i/--input``, ``-t/--tile``, ``--tile_pad``,
``--pre_pad``, ``--alpha_upsampler``, ``-g/--gpu-id``), with their official meanings. Video files
are remastered as videos (see :mod:`remaster.video`), with the official
``inference_realesrgan_video.py``'s ``--fps``.

Exit codes: 0 every image was remastered; 1 some (or all) failed, each named on stderr;
2 bad usage (an unknown option or model, an option out of range, no input images); 130 stopped
by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (see :mod:`remaster.signals`): what finished is kept, a
video's finished segments too, and one line says so and how to go on.

Parsing the command line imports no torch: bad usage is answered at once, and the
networks load only when there is work for them.
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import logs, signals
from .errors import InvalidOptionError, RemasterError, StoppedError
from .options import ALPHA_UPSAMPLERS, DEFAULT_FACE_STRENGTH, PRECISIONS, STILL_FORMATS, Options
from .references import is_reference
from .registry import DEFAULT_FACE_MODEL, DEFAULT_MODEL, NO_MODEL, model_names
from .settings import Settings, models_dir_from_env
from .video import add_video_options, is_video, video_options_from

if TYPE_CHECKING:
    from tqdm import tqdm

    from .pipeline import Enhancer

__all__ = [
    "add_options",
    "checked_options",
    "collect_inputs",
    "main",
    "options_from",
    "parse_args",
    "resolved_options",
    "settings_from",
]


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of one remastering (model, scale, tiles, faces, precision, output format) to ``parser``.

    Every command that remasters (this one, archives) takes them with the same spellings;
    :func:`options_from` turns the parsed values into an :class:`Options`.
    """
    parser.add_argument(
        "-n",
        "--model",
        "--model_name",
        default=DEFAULT_MODEL,
        metavar="MODEL",
        help=f"one of: {', '.join(model_names('upscaler'))}, a model file's stem in REMASTER_MODELS_DIR, or a model "
        "file of any architecture spandrel knows: a path, hf://owner/repo/file.pth[@revision] or a URL; or "
        f"{NO_MODEL}: a video's frames keep their size, for --interpolate or skipped repeats alone "
        f"(default: {DEFAULT_MODEL})",
    )
    parser.add_argument("-s", "--outscale", type=float, default=4.0, help="output scale, 1 to 8 (default: 4)")
    parser.add_argument(
        "-t",
        "--tile",
        type=int,
        default=None,
        help="tile edge in input pixels (32-4096), 0 for none (default: sized to the free memory)",
    )
    parser.add_argument(
        "-dn",
        "--denoise-strength",
        "--denoise_strength",
        type=float,
        default=0.5,
        dest="denoise_strength",
        help="realesr-general-x4v3 only: 0 removes the most noise, 1 none (default: 0.5)",
    )
    parser.add_argument("--face-enhance", "--face_enhance", action="store_true", help="also restore faces")
    parser.add_argument(
        "--face-model", default=DEFAULT_FACE_MODEL, choices=model_names("face_restorer"), help="face restoration model"
    )
    parser.add_argument(
        "--face-strength",
        type=float,
        default=DEFAULT_FACE_STRENGTH,
        help=f"0 (plain upscale) to 1 (fully restored faces) (default: {DEFAULT_FACE_STRENGTH})",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=PRECISIONS, default="auto")
    precision.add_argument("--fp32", action="store_const", const="fp32", dest="precision", help="exact fp32")
    parser.add_argument(
        "--ext",
        choices=("auto", *STILL_FORMATS),
        default="auto",
        help="output format; auto keeps JPEG and WebP inputs' format, PNG otherwise (and for transparency or 16 bits)",
    )
    parser.add_argument("--quality", type=int, default=None, help="JPEG or lossy WebP quality, 1-100")
    parser.add_argument(
        "--png-compression",
        type=int,
        default=6,
        help="zlib's level for PNG results, 0-9: 6 smallest in fair time (default), 1 three times faster",
    )
    parser.add_argument(
        "--tile_pad",
        "--tile-pad",
        type=int,
        default=None,
        dest="tile_pad",
        help="overlap between tiles, as the official script (raised to the model's own where smaller, so tiles "
        "stay invisible; default: the model's own)",
    )
    parser.add_argument(
        "--pre_pad",
        "--pre-pad",
        type=int,
        default=0,
        dest="pre_pad",
        help="pixels of reflected border added at the bottom and right for the network, then cropped (default: 0)",
    )
    parser.add_argument(
        "--alpha_upsampler",
        "--alpha-upsampler",
        choices=ALPHA_UPSAMPLERS,
        default="realesrgan",
        dest="alpha_upsampler",
        help="how transparency is enlarged: by the model, or bicubic (OpenCV's linear resize, as the official "
        "script) (default: realesrgan)",
    )
    parser.add_argument(
        "-g", "--gpu-id", "--gpu_id", type=int, default=None, dest="gpu_id", help="the CUDA GPU to use (default: 0)"
    )
    parser.add_argument(
        "--model_path", "--model-path", default=None, dest="model_path", help="a model file, as -n takes it"
    )
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of .pth files (REMASTER_WEIGHTS_DIR)")


def checked_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options | None:
    """:func:`options_from` the parsed ``args``; a bad value exits through ``parser.error`` (status 2).

    None when the model is a file (or a stem in ``REMASTER_MODELS_DIR``), which only
    :func:`resolved_options` can load: the other values are checked all the same.
    """
    if args.quality is not None and not 1 <= args.quality <= 100:
        parser.error(f"--quality must be from 1 to 100, not {args.quality}")
    if args.model_path is not None:
        args.model = args.model_path
    deferred = args.model not in (*model_names("upscaler"), NO_MODEL)
    if deferred and not is_reference(args.model) and models_dir_from_env() is None:
        parser.error(
            f"argument -n/--model: invalid choice: {args.model!r} (choose from {', '.join(model_names('upscaler'))}, "
            f"{NO_MODEL} (a video's frames as they are, for --interpolate), or give a model file)"
        )
    try:
        options = options_from(args, model=DEFAULT_MODEL if deferred else args.model)
    except InvalidOptionError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line is never reached
    return None if deferred else options


def resolved_options(args: argparse.Namespace, settings: Settings) -> Options:
    """The :class:`Options`, once the model file that ``-n`` names (if it names one) is loaded and registered.

    Raises:
        RemasterError: the model file cannot be used (the message says why), or no model has that name.
    """
    if args.options is not None:
        return args.options
    from .model_files import ModelFiles

    return options_from(args, model=ModelFiles(settings).resolve(args.model).name)


def settings_from(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """The :class:`Settings` of the environment with the command line's own overrides, and notes on them.

    ``-g/--gpu-id`` picks that CUDA GPU; where there is none, the work runs where it would
    have run anyway, as in the official script, and a note says so.
    """
    overrides: dict[str, object] = {"weights_dir": args.weights_dir} if args.weights_dir else {}
    notes = []
    gpu = getattr(args, "gpu_id", None)
    if gpu is not None:
        import torch

        if torch.cuda.is_available() and 0 <= gpu < torch.cuda.device_count():
            overrides["device"] = f"cuda:{gpu}"
        else:
            notes.append(f"there is no CUDA GPU {gpu} here, so --gpu-id is ignored")
    return Settings.from_env(**overrides), notes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options, with ``args.options`` the checked :class:`Options`.

    Exits with status 2 (bad usage) on an error.
    """
    parser = argparse.ArgumentParser(
        prog="remaster",
        description="Remaster images with the official Real-ESRGAN models: upscale, sharpen, clean, restore faces.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-i", "--input", action="append", default=[], help="another input (as the official script)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="output folder (default: results)")
    add_options(parser)
    parser.add_argument(
        "--suffix",
        default=None,
        help="name results NAME_SUFFIX.EXT, as the official script does with its default 'out' "
        "(default: NAME_MODEL_xSCALE.EXT, as the page and batches name them)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_video_options(parser)
    args = parser.parse_args(argv)
    args.inputs = [*args.inputs, *args.input]
    if not args.inputs:
        parser.error("give at least one INPUT (a file, a folder or a glob pattern)")
    args.options = checked_options(parser, args)
    try:
        args.video = video_options_from(args)
    except InvalidOptionError as error:
        parser.error(str(error))
    return args


def options_from(args: argparse.Namespace, model: str | None = None) -> Options:
    """The request's :class:`Options` from parsed arguments (``model`` in place of ``args.model``, if given).

    Raises:
        InvalidOptionError: a value is out of range.
    """
    return Options(
        model=model or args.model,
        outscale=args.outscale,
        tile=args.tile,
        face_enhance=args.face_enhance,
        denoise_strength=args.denoise_strength,
        precision=args.precision,
        face_model=args.face_model,
        face_strength=args.face_strength,
        output_format=args.ext,
        animation_format=args.ext,
        quality=args.quality,
        png_compression=args.png_compression,
        alpha_upsampler=args.alpha_upsampler,
        tile_pad=args.tile_pad,
        pre_pad=args.pre_pad,
    )


def collect_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The image and video files that ``patterns`` name (files, folders' images and videos, glob matches),
    and the patterns that match nothing."""
    found: list[Path] = []
    missing = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            from .video import MEDIA_SUFFIXES  # Pillow's list: loaded when a folder is first listed

            found.extend(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True) if Path(m).is_file())
            if matches:
                found.extend(matches)
            else:
                missing.append(pattern)
    unique = list(dict.fromkeys(found))
    return unique, missing


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    cancel = threading.Event()
    with signals.Stopping(cancel) as stopping:
        args = parse_args(argv)
        logs.configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
        sources, missing = collect_inputs(args.inputs)
        if not sources:
            print(f"error: no input images found in {', '.join(args.inputs)}", file=sys.stderr)
            return 2
        tally = _Tally(len(sources))
        try:
            return _remaster_all(args, sources, missing, cancel, tally)
        except KeyboardInterrupt:  # a second signal: stopped at once, the file in hand unfinished
            print(tally.interrupted(stopping.name, args.output), file=sys.stderr)
            return stopping.exit_status
        except StoppedError as error:
            print(tally.interrupted(stopping.name, args.output, error), file=sys.stderr)
            return stopping.exit_status


class _Tally:
    """How far a run got: the files finished (remastered or failed), and the first one not finished."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.finished = 0
        self.remastered = 0
        self.unfinished: Path | None = None
        self.working = False
        """Whether the work on :attr:`unfinished` had begun."""

    def interrupted(self, signal_name: str, output: Path, stopped: StoppedError | None = None) -> str:
        """The one line of a stopped run: what was kept, and how to go on."""
        kept = f"{self.remastered} of {self.total} files remastered and kept in {output}"
        head = f"interrupted ({signal_name}): {kept}"
        unfinished = self.unfinished
        if unfinished is None or self.finished == self.total:
            return head
        if self.working and is_video(unfinished):
            # The video keeps its finished segments, and the same command continues it from them.
            if stopped is not None:  # its message says how many frames are kept, and how to go on
                return f"{head}; {unfinished.name}: {str(stopped).removeprefix('Stopped: ')}"
            return f"{head}; {unfinished.name}: its finished segments are kept; run the same command again to go on"
        return f"{head}; run it again on the {self.total - self.finished} not done, from {unfinished} on"


def _remaster_all(
    args: argparse.Namespace, sources: list[Path], missing: list[str], cancel: threading.Event, tally: _Tally
) -> int:
    """Remaster ``sources`` one by one, each file's line on stderr; the exit status.

    Raises:
        StoppedError: ``cancel`` was set; what finished is kept.
    """
    from tqdm import tqdm

    from .pipeline import Enhancer

    settings, notes = settings_from(args)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        args.options = resolved_options(args, settings)
    except RemasterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for pattern in missing:
        print(f"error: {pattern}: no such file, folder or match", file=sys.stderr)
    enhancer = Enhancer(settings)
    written: set[str] = set()
    failed = len(missing)
    bar = tqdm(sources, unit="image", disable=args.quiet, file=sys.stderr)
    try:
        for source in bar:
            tally.unfinished, tally.working = source, False
            if cancel.is_set():
                raise StoppedError("Stopped between two files")
            bar.set_postfix_str(source.name)
            tally.working = True
            line = _remaster_one(enhancer, source, args, written, bar, cancel)
            failed += line.startswith("error:")
            tally.finished, tally.remastered = tally.finished + 1, len(written)
            bar.write(line, file=sys.stderr)
    finally:
        bar.close()
    print(f"{len(written)} remastered, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _remaster_one(
    enhancer: Enhancer, source: Path, args: argparse.Namespace, written: set[str], bar: tqdm, cancel: threading.Event
) -> str:
    """Remaster one file, image or video; the line that says what came of it. Nothing a file does ends the run but
    ``cancel`` (StoppedError)."""
    from .batch import remaster_any
    from .files import output_stem, unique_name

    def show_progress(fraction: float, desc: str) -> None:
        # A video's frames, frames per second and time left; a still's stage and share of its work (told at most
        # every quarter of a second, within a tile too).
        shown = desc if is_video(source) else f"{fraction:.0%} {desc}"
        bar.set_postfix_str(f"{source.name}: {shown}", refresh=True)

    target = args.output / unique_name(output_stem(source.stem, args.options, args.suffix), written)
    try:
        done = remaster_any(
            enhancer, source, target, args.options, video=args.video, progress=show_progress, cancel=cancel
        )
    except StoppedError as error:
        if cancel.is_set():
            raise
        return f"error: {source}: {error}"
    except (RemasterError, OSError, ValueError) as error:
        return f"error: {source}: {error}"
    except Exception as error:  # noqa: BLE001 - a fault of ours with one file: say so, and go on with the rest
        logging.getLogger(__name__).debug("remastering %s failed", source, exc_info=True)
        return f"error: {source}: an unexpected {type(error).__name__}: {error} (please report it)"
    written.add(done.path.stem)
    return f"{source} → {done.path} ({done.summary()})"
