"""``python -m remaster.archive SOURCE DEST [options]``: a whole archive, on Ray, resumable.

Exit codes: 0 every image is done (now or before); 1 some failed (each named on stderr; those that failed
before and were not tried again too), or the job stopped; 2 bad usage (an unknown option, SOURCE naming no
image); 130 stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP (see :mod:`remaster.signals`): what finished
is kept, and the same command goes on. Parsing imports neither torch nor Ray.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence

from .. import logs, signals
from ..cli import add_options, checked_options, resolved_options
from ..errors import InvalidOptionError, RemasterError
from ..registry import get_model
from ..settings import Settings
from ..video import add_video_options, video_options_from
from .driver import ArchiveSummary, Workers, remaster_archive
from .manifest import FOLDER, Manifest, read_segments
from .sources import SourceError, locate


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
    parser.add_argument(
        "--retry-failed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="try again the sources that failed before with these options (default: along with other work, but a run "
        "with nothing new does not start Ray for them alone; --retry-failed: always; --no-retry-failed: never)",
    )
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
    with signals.Stopping() as stopping:
        args = parse_args(argv)
        logs.configure(logging.WARNING, "%(levelname)s %(name)s: %(message)s")
        try:
            return _run(args, stopping)
        except KeyboardInterrupt:  # after the job, while its summary was said: nothing more to say
            return stopping.exit_status


def _run(args: argparse.Namespace, stopping: signals.Stopping) -> int:
    """Run the job the parsed ``args`` ask for, and say how it went; the exit status."""
    from tqdm import tqdm

    bar = tqdm(unit="image", disable=args.quiet, file=sys.stderr)
    started = time.time()

    def progress(row: dict, total: int) -> None:
        bar.total = total
        bar.update()
        if row["status"] != "done":
            bar.write(f"error: {row['source']}: {row['error']}", file=sys.stderr)

    def interrupted() -> int:
        bar.close()
        print(f"interrupted ({stopping.name}): {_kept_since(args.dest, started)}", file=sys.stderr)
        return stopping.exit_status

    try:
        summary = _remaster(args, progress, lambda message: bar.write(message, file=sys.stderr))
    except (SourceError, RemasterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted()
    except Exception as error:
        if stopping.signum is not None:  # a signal stopped Ray's processes too, and the job with them
            return interrupted()
        if not type(error).__module__.startswith("ray."):
            raise
        print(f"error: the job stopped: {error}\nwhat finished is kept; run the same command again", file=sys.stderr)
        return 1
    finally:
        bar.close()
    _report(summary)
    return 1 if summary.failures or summary.failed_before else 0


def _remaster(
    args: argparse.Namespace, progress: Callable[[dict, int], None], notice: Callable[[str], None]
) -> ArchiveSummary:
    """The job, with the options, workers and settings of the command line.

    Raises:
        SourceError, RemasterError: bad usage (SOURCE, the model file…).
    """
    workers = Workers(args.workers, args.cpus_per_worker, args.gpus_per_worker, args.batch_size)
    settings = {"weights_dir": args.weights_dir.resolve()} if args.weights_dir else {}
    model_file = None
    if args.options is None:  # a model file: checked here, and loaded by each worker
        args.options = resolved_options(args, Settings.from_env(**settings))
        downloaded = args.model.startswith(("hf://", "http://", "https://"))
        model_file = args.model if downloaded else str(get_model(args.options.model).weights.path)
    return remaster_archive(
        args.source, args.dest, args.options, workers=workers, settings=settings, address=args.address,
        progress=progress, model_file=model_file, video=args.video, retry_failed=args.retry_failed, notice=notice,
    )  # fmt: skip


_GO_ON = "run the same command again to go on"


def _kept_since(dest: str, started: float) -> str:
    """What a stopped run kept since ``started`` (the files done, by the manifest, and the parts of videos not yet
    finished, by the segments table), and how to go on."""
    where = f"{dest.rstrip('/')}/{FOLDER}"
    try:
        at = locate(dest)
        rows, parts = Manifest(at).latest().values(), read_segments(at)
    except (OSError, SourceError):  # the count is only a courtesy: the outputs and rows are there all the same
        return f"what finished is kept, each file with its row in {where}; " + _GO_ON

    def done_since(row: dict) -> bool:
        return row["status"] == "done" and row["finished_at"] is not None and row["finished_at"].timestamp() >= started

    files = {row["source"] for row in rows if done_since(row)}
    parts_kept = {(part["video"], part["segment"]) for part in parts if done_since(part) and part["video"] not in files}
    kept = _count(len(files), "file")
    if parts_kept:
        kept += f" and {_count(len(parts_kept), 'part')} of {_count(len({video for video, _ in parts_kept}), 'video')}"
    return f"what finished is kept ({kept} done in this run, each with its row in {where}); " + _GO_ON


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _report(summary: ArchiveSummary) -> None:
    """The end of a run on stderr: whether there was nothing to do, the summary line, the manifest, the failures."""
    if not summary.sent:
        again = " (--retry-failed tries the failed ones again)" if summary.failed_before else ""
        print(f"nothing new to do: every source is done or failed before with these options{again}", file=sys.stderr)
    print(summary.line(), file=sys.stderr)
    print(f"manifest: {summary.manifest}", file=sys.stderr)
    for source, message in summary.failures:
        print(f"  failed: {source}: {message}", file=sys.stderr)
    for source, message in summary.failed_before:
        print(f"  failed before: {source}: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
