"""The command line: ``python -m remaster INPUT... -o OUTDIR``.

A drop-in for the official ``inference_realesrgan.py``: its option names work too
(``-n/--model_name``, ``-s/--outscale``, ``-dn/--denoise_strength``, ``--face_enhance``,
``--fp32``, ``--suffix``, ``--ext``, ``-i/--input``). Video files are remastered as videos
(see :mod:`remaster.video`), with the official ``inference_realesrgan_video.py``'s ``--fps``.

Exit codes: 0 every image was remastered; 1 some (or all) failed, each named on stderr;
2 bad usage (an unknown option or model, an option out of range, no input images).

Parsing the command line imports no torch: bad usage is answered at once, and the
networks load only when there is work for them.
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import image_io
from .errors import InvalidOptionError, RemasterError
from .options import DEFAULT_FACE_STRENGTH, PRECISIONS, STILL_FORMATS, Options
from .registry import DEFAULT_FACE_MODEL, model_names
from .settings import Settings
from .video import VIDEO_SUFFIXES, add_video_options, is_video, video_options_from

if TYPE_CHECKING:
    from tqdm import tqdm

    from .pipeline import Enhancer
    from .video import VideoResult

__all__ = ["add_options", "checked_options", "collect_inputs", "main", "options_from", "parse_args", "settings_from"]


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of one remastering (model, scale, tiles, faces, precision, output format) to ``parser``.

    Every command that remasters (this one, archives) takes them with the same spellings;
    :func:`options_from` turns the parsed values into an :class:`Options`.
    """
    parser.add_argument(
        "-n",
        "--model",
        "--model_name",
        default="RealESRGAN_x4plus",
        choices=model_names("upscaler"),
        metavar="MODEL",
        help=f"one of: {', '.join(model_names('upscaler'))} (default: RealESRGAN_x4plus)",
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
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of .pth files (REMASTER_WEIGHTS_DIR)")


def checked_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """:func:`options_from` the parsed ``args``; a bad value exits through ``parser.error`` (status 2)."""
    if args.quality is not None and not 1 <= args.quality <= 100:
        parser.error(f"--quality must be from 1 to 100, not {args.quality}")
    try:
        return options_from(args)
    except InvalidOptionError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line is never reached


def settings_from(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` of the environment, with the command line's own overrides applied."""
    overrides = {"weights_dir": args.weights_dir} if args.weights_dir else {}
    return Settings.from_env(**overrides)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options, with ``args.options`` the checked :class:`Options`.

    Exits with status 2 (bad usage) on an error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m remaster",
        description="Remaster images with the official Real-ESRGAN models: upscale, sharpen, clean, restore faces.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("-i", "--input", action="append", default=[], help="another input (as the official script)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results"), help="output folder (default: results)")
    add_options(parser)
    parser.add_argument("--suffix", default="out", help="added to output names: NAME_SUFFIX.EXT (default: out)")
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


def options_from(args: argparse.Namespace) -> Options:
    """The request's :class:`Options` from parsed arguments.

    Raises:
        InvalidOptionError: a value is out of range.
    """
    return Options(
        model=args.model,
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
    )


def collect_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The image and video files that ``patterns`` name (files, folders' images and videos, glob matches),
    and the patterns that match nothing."""
    found: list[Path] = []
    missing = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and p.suffix.lower() in (*image_io.IMAGE_SUFFIXES, *VIDEO_SUFFIXES)
                )
            )
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


def _remaster_video(enhancer: Enhancer, source: Path, target: Path, args: argparse.Namespace, bar: tqdm) -> VideoResult:
    """A video, its progress (frames, frames per second, time left) shown on the bar, and its notes written."""
    from .video import remaster_video

    def progress(fraction: float, desc: str) -> None:
        bar.set_postfix_str(f"{source.name}: {desc}", refresh=True)

    done = remaster_video(source, target, args.options, args.video, enhancer=enhancer, progress=progress)
    resumed = [f"{done.resumed} of {done.frames} frames were kept from an earlier run"] if done.resumed else []
    for note in [*resumed, *done.notes]:
        bar.write(f"note: {source}: {note}", file=sys.stderr)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sources, missing = collect_inputs(args.inputs)
    if not sources:
        print(f"error: no input images found in {', '.join(args.inputs)}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    from .files import remaster_file, unique_name
    from .pipeline import Enhancer

    enhancer = Enhancer(settings_from(args))
    failures = [(pattern, "no such file, folder or match") for pattern in missing]
    written: set[str] = set()
    bar = tqdm(sources, unit="image", disable=args.quiet, file=sys.stderr)
    for source in bar:
        bar.set_postfix_str(source.name)
        name = f"{source.stem}{'_' + args.suffix if args.suffix else ''}"
        try:
            target = args.output / unique_name(name, written)
            if is_video(source):
                done = _remaster_video(enhancer, source, target, args, bar)
            else:
                done = remaster_file(enhancer, source, target, args.options)
            written.add(done.path.stem)
            bar.write(f"{source} → {done.path} ({done.report.summary()})", file=sys.stderr)
        except (RemasterError, OSError, ValueError) as error:
            failures.append((str(source), str(error)))
            bar.write(f"error: {source}: {error}", file=sys.stderr)
    bar.close()
    print(f"{len(written)} remastered, {len(failures)} failed", file=sys.stderr)
    for name, message in failures:
        print(f"  failed: {name}: {message}", file=sys.stderr)
    return 1 if failures else 0
