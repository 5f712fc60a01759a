"""``python -m remaster.archive SOURCE DEST [options]``: a whole archive, on Ray, resumable.

Exit codes: 0 every image is done (now or before); 1 some failed (each named on stderr), or the
job stopped; 2 bad usage (an unknown option, SOURCE naming no image); 130 interrupted (run the
same command again to go on). Parsing imports neither torch nor Ray.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import logs
from ..cli import add_options, checked_options, resolved_options
from ..errors import InvalidOptionError, RemasterError
from ..registry import get_model
from ..settings import Settings
from ..video import add_video_options, video_options_from
from .driver import Workers, remaster_archive
from .manifest import FOLDER
from .sources import SourceError


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command's options, with ``args.options`` the checked :class:`~remaster.Options`; exits 2 on an error."""
    parser = argparse.ArgumentParser(
        prog="python -m remaster.archive",
        description="Remaster a whole archive on Ray: every image and video under SOURCE into DEST at its own "
        f"relative path, with a Parquet manifest in DEST/{FOLDER}/. Run it again to go on where it stopped.",
    )
    parser.add_argument("source", metavar="SOURCE", help="a folder, a glob, or a .parquet/.csv list of paths; or a URI")
    parser.add_argument("dest", metavar="DEST", help="the output folder, local or a URI (s3://bucket/prefix)")
    add_options(parser)
    parser.add_argument("--address", default=None, help="a Ray cluster to join (default: RAY_ADDRESS, else start one)")
    parser.add_argument("--workers", type=int, default=None, help="workers (default: one per GPU, or per node)")
    parser.add_argument("--cpus-per-worker", type=float, default=None, help="CPUs each worker reserves and uses")
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs each (default: 1 where there are)")
    parser.add_argument("--batch-size", type=int, default=4, help="files sent to a worker at once (default: 4)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_video_options(parser)
    args = parser.parse_args(argv)
    for name in ("workers", "cpus_per_worker", "batch_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be more than 0, not {value:g}")
    if args.gpus_per_worker is not None and args.gpus_per_worker < 0:
        parser.error(f"--gpus-per-worker must be 0 or more, not {args.gpus_per_worker:g}")
    args.options = checked_options(parser, args)
    try:
        args.video = video_options_from(args)
    except InvalidOptionError as error:
        parser.error(str(error))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = parse_args(argv)
    logs.configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
    from tqdm import tqdm

    bar = tqdm(unit="image", disable=args.quiet, file=sys.stderr)

    def progress(row: dict, total: int) -> None:
        bar.total = total
        bar.update()
        if row["status"] != "done":
            bar.write(f"error: {row['source']}: {row['error']}", file=sys.stderr)

    workers = Workers(args.workers, args.cpus_per_worker, args.gpus_per_worker, args.batch_size)
    settings = {"weights_dir": args.weights_dir.resolve()} if args.weights_dir else {}
    model_file = None
    try:
        if args.options is None:  # a model file: checked here, and loaded by each worker
            args.options = resolved_options(args, Settings.from_env(**settings))
            downloaded = args.model.startswith(("hf://", "http://", "https://"))
            model_file = args.model if downloaded else str(get_model(args.options.model).weights.path)
        summary = remaster_archive(
            args.source, args.dest, args.options, workers=workers, settings=settings, address=args.address,
            progress=progress, model_file=model_file, video=args.video,
        )  # fmt: skip
    except (SourceError, RemasterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not type(error).__module__.startswith("ray."):
            raise
        print(f"error: the job stopped: {error}\nwhat finished is kept; run the same command again", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: what finished is kept; run the same command again to go on", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(summary.line(), file=sys.stderr)
    print(f"manifest: {summary.manifest}", file=sys.stderr)
    for source, message in summary.failures:
        print(f"  failed: {source}: {message}", file=sys.stderr)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
