"""Running an archive job on Ray Data: what is left to do, the workers, the manifest as rows come back.

Ray is imported here, when a job has work, so ``import remaster`` never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import PARTIAL_NAME
from ..options import Options
from ..settings import Settings
from ..video import VideoOptions, is_video
from .manifest import FOLDER, SCHEMA, Manifest, options_key
from .sources import Location, clashing, list_sources, locate
from .worker import WRITTEN_IN, ArchiveWorker, Job, temporary_work

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["ArchiveSummary", "Workers", "remaster_archive"]

log = logging.getLogger(__name__)

WORK = f"{FOLDER}/_work"
"""Where in a local DEST the videos being remastered keep their finished segments (a name that Parquet readers
of the manifest folder pass over)."""
_FORWARDED_PREFIXES = ("REMASTER_", "HF_")
"""Environment variables passed to every worker, wherever it runs, so it reads the settings the command was given."""


@dataclass(frozen=True)
class Workers:
    """How many workers to run and what each one reserves; None chooses from the cluster's resources."""

    count: int | None = None
    """Workers (Ray actors), each holding one loaded network. Default: one per GPU, or, without GPUs, as
    many as the CPUs hold at ``cpus`` each."""
    cpus: float | None = None
    """CPUs each worker reserves (and, on a CPU worker, its torch threads). Default: the CPUs shared among
    the workers; without GPUs and without ``count``, those of the smallest node (one worker a node)."""
    gpus: float | None = None
    """GPUs each worker reserves: 1 by default where the cluster has GPUs, else 0; 0.5 puts two on a GPU."""
    batch_size: int = 4
    """Files sent to a worker at once; a worker that dies has its batch retried."""


@dataclass(frozen=True)
class ArchiveSummary:
    """What one run did."""

    done: int
    skipped: int
    """Sources the manifest and DEST show as done with the same options before this run."""
    failed: int
    seconds: float
    manifest: str
    """The manifest's URI."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source, error) of each failure of this run."""

    @property
    def images_per_second(self) -> float:
        """Files remastered or failed per second of this run."""
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The summary line: done, skipped, failed, images per second."""
        return (
            f"{self.done} done, {self.skipped} skipped, {self.failed} failed, "
            f"{self.images_per_second:.2f} images/s ({self.seconds:.1f} s)"
        )


def remaster_archive(
    source: str,
    dest: str,
    options: Options | None = None,
    *,
    workers: Workers | None = None,
    settings: Mapping[str, object] | None = None,
    address: str | None = None,
    source_filesystem: pyarrow.fs.FileSystem | None = None,
    dest_filesystem: pyarrow.fs.FileSystem | None = None,
    progress: Callable[[dict, int], None] | None = None,
    model_file: str | None = None,
    video: VideoOptions | None = None,
    segment_frames: int | None = None,
) -> ArchiveSummary:
    """Remaster every image SOURCE names into DEST, on Ray, skipping those already done; resumable.

    Args:
        source: a folder (searched recursively), a glob, a Parquet or CSV list of paths (column ``path``,
            else the first), or one file; a local path or a URI (``s3://``, ``gs://``…).
        dest: the folder the outputs go to, each at its source's relative path; the manifest is kept in
            ``DEST/_remaster_manifest/``.
        options: the remastering's choices, as for one image.
        workers: how many Ray workers, and their CPUs and GPUs.
        settings: overrides of the :class:`~remaster.Settings` each worker reads from its own environment
            (``{"weights_dir": Path(...)}``).
        address: a Ray cluster to join; None uses ``RAY_ADDRESS``, else starts Ray on this machine. If Ray is
            running in this process already, that is used.
        source_filesystem, dest_filesystem: pyarrow file systems to use instead of those the URIs name.
        progress: called as ``progress(row, total)`` with each manifest row as it comes back, and the number
            of files this run does.
        model_file: where ``options.model`` comes from when it is a model file of the user's (a path,
            ``hf://`` reference or URL): each worker loads it too.
        video: how videos are encoded (codec, quality, frame rate), as on the command line; the defaults when
            None. A video's finished segments are kept in ``DEST/_remaster_manifest/_work/`` (on an object store,
            in each worker's temporary folder) until it is done, so a dead worker's video goes on from them.
        segment_frames: a video's output frames per resumable segment (default: about 10 s of work each).

    Returns:
        The counts of this run; the manifest holds a row for every source.

    Raises:
        SourceError: SOURCE or DEST names nothing usable.
        ValueError: a setting in the environment is malformed.
        KeyboardInterrupt: interrupted; what finished is in the manifest, and running again goes on.
    """
    started = time.perf_counter()
    options = options if options is not None else Options()
    video = video if video is not None else VideoOptions()
    overrides = dict(settings or {})
    Settings.from_env(device="cpu", **overrides)  # a malformed variable is an error now; workers pick their device
    source_at, dest_at = locate(source, source_filesystem), locate(dest, dest_filesystem)
    listing = list_sources(source_at, dest_at)
    manifest = Manifest(dest_at)
    finished = _finished(manifest, _dest_files(dest_at), options_key(options), options_key(options, video))
    todo = [path for path in listing.paths if listing.location.uri(path) not in finished]
    counter = _Counter(manifest, progress, len(todo) + len(listing.missing))
    try:
        for missing in listing.missing:
            counter.row(_failed_row(missing, options, video, "No such file: the list names it, but it is not there"))
        if todo:
            job = Job(
                options=options,
                source=listing.location,
                base=listing.base,
                dest=dest_at,
                clashes=frozenset(clashing(listing.relative(path) for path in listing.paths)),
                settings=overrides,
                model_file=model_file,
                video=video,
                segment_frames=segment_frames,
                work=dest_at.join(WORK) if dest_at.is_local else None,
            )
            _run(job, todo, workers or Workers(), address, counter)
    finally:
        manifest_uri = manifest.merge()
        if dest_at.is_local:
            _remove_empty_folders(Path(dest_at.join(WORK)))
        else:  # this machine's temporary work folder, and the folder of all such, where nothing is left in them
            work = temporary_work(dest_at)
            _remove_empty_folders(work)
            with contextlib.suppress(OSError):
                work.parent.rmdir()
    return ArchiveSummary(
        done=counter.done,
        skipped=len(listing.paths) - len(todo),
        failed=len(counter.failures),
        seconds=time.perf_counter() - started,
        manifest=manifest_uri,
        failures=counter.failures,
    )


def _finished(manifest: Manifest, outputs: Mapping[str, int], key: str, video_key: str) -> set[str]:
    """Sources whose current row is done with these options (``video_key`` for a video) and whose output is in
    ``outputs`` (DEST's files and their sizes), whole."""
    return {
        row["source"]
        for row in manifest.latest().values()
        if row["status"] == "done"
        and row["options"] == (video_key if is_video(row["source"]) else key)
        and outputs.get(row["output"]) == row["output_bytes"]
    }


def _remove_empty_folders(folder: Path) -> None:
    """Remove ``folder`` and the folders in it, where empty (what a video left unfinished stays)."""
    if not folder.is_dir():
        return
    for inner in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            inner.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _dest_files(dest: Location) -> dict[str, int]:
    """DEST's files and their sizes, by URI; temporary files that a killed run left behind are removed."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(dest.path, recursive=True, allow_not_found=True)
    files = {}
    for info in dest.filesystem.get_file_info(selector):
        if not info.is_file:
            continue
        if PARTIAL_NAME.fullmatch(info.base_name):
            log.info("removing %s, left unfinished by an earlier run", info.path)
            dest.filesystem.delete_file(info.path)
        else:
            files[dest.uri(info.path)] = info.size
    return files


class _Counter:
    """Takes each row as it comes back: into the manifest, the counts and the progress callback."""

    def __init__(self, manifest: Manifest, progress: Callable[[dict, int], None] | None, total: int) -> None:
        self.manifest = manifest
        self.progress = progress
        self.total = total
        self.done = 0
        self.failures: list[tuple[str, str]] = []
        self.seen: set[str] = set()

    def row(self, row: dict) -> None:
        written_in = row.pop(WRITTEN_IN, None)
        self.manifest.add(row, written_in)
        self.seen.add(row["source"])
        if row["status"] == "done":
            self.done += 1
        else:
            self.failures.append((row["source"], row["error"]))
        if self.progress is not None:
            self.progress(row, self.total)


def _failed_row(source: str, options: Options, video: VideoOptions, error: str) -> dict:
    row = dict.fromkeys(SCHEMA.names)
    row.update(
        source=source,
        status="failed",
        error=error,
        model=options.model,
        options=options_key(options, video if is_video(source) else None),
        finished_at=time.time(),
    )
    return row


def _run(job: Job, todo: list[str], workers: Workers, address: str | None, counter: _Counter) -> None:
    """Remaster ``todo`` on Ray (joined, or started here and stopped at the end), rows into ``counter``."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        joining = bool(address or os.environ.get("RAY_ADDRESS"))
        # A cluster's workers get this package and the command's settings with the job; on this machine they
        # inherit both from this process, and the dashboard would only slow the start.
        ray.init(
            address=address,
            include_dashboard=None if joining else False,
            logging_level=logging.WARNING,
            runtime_env=_job_environment() if joining else None,
        )
    try:
        _execute(job, todo, workers, counter)
    finally:
        if started_here:
            ray.shutdown()


def _execute(job: Job, todo: list[str], workers: Workers, counter: _Counter) -> None:
    import ray
    from ray.data import ActorPoolStrategy, DataContext
    from ray.util.debug import log_once

    started = time.time()
    count, cpus, gpus = _sizes(workers, ray.cluster_resources(), ray.nodes())
    threads = None if gpus else max(1, int(cpus))
    context = DataContext.get_current()
    saved = context.enable_progress_bars, context.print_on_execution_start, context.max_errored_blocks
    # Progress is the caller's to show. Ray Data restarts a dead worker and retries its batch (its actors'
    # default); a block that still fails (its files could not be read) is dropped and its files reported as
    # failed, and the job goes on.
    context.enable_progress_bars, context.print_on_execution_start, context.max_errored_blocks = False, False, -1
    # Ray Data would say that its progress bars are off (they are, for ours) and log each dataset's plan and
    # timing at INFO; the command's own progress and summary say what matters.
    log_once("ray_data_progress_manager_disabled")
    data_log = logging.getLogger("ray.data")
    data_level = data_log.level
    data_log.setLevel(max(data_level, logging.WARNING))
    log.info("%d files on %d workers of %g CPUs and %g GPUs", len(todo), count, cpus, gpus)
    try:
        # Reading is I/O: it reserves no CPU, and a few reads at a time keep the workers fed without taking the
        # cores they compute on. One block per batch: a batch's rows come back (and are kept) as soon as it is
        # done, and a worker that dies costs one batch, not a block of thousands.
        # A video is a block of its own, its path alone: the worker reads it, however large, from SOURCE. Videos
        # go first, so that the longest tasks do not come last.
        images = [path for path in todo if not is_video(path)]
        videos = [{"path": path, "bytes": b""} for path in todo if is_video(path)]
        parts = []
        if videos:
            parts.append(ray.data.from_items(videos, override_num_blocks=len(videos)))
        if images:
            blocks = -(-len(images) // workers.batch_size)
            parts.append(
                ray.data.read_binary_files(
                    images,
                    include_paths=True,
                    filesystem=job.source.filesystem,
                    num_cpus=0,
                    concurrency=min(2 * count, blocks),
                    override_num_blocks=blocks,
                )
            )
        files = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        rows = files.map_batches(
            ArchiveWorker,
            fn_constructor_kwargs={"job": replace(job, threads=threads)},
            # One file per call, and (Ray bundles a task's input up to a batch) one block per task: a batch of
            # images as read, or one video, never several videos that a dead worker would all start again.
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(min_size=1, max_size=count),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        iterator = iter(rows.iter_rows())
        try:
            for row in iterator:
                counter.row(dict(row))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
    finally:
        context.enable_progress_bars, context.print_on_execution_start, context.max_errored_blocks = saved
        data_log.setLevel(data_level)
    lost = [job.source.uri(path) for path in todo if job.source.uri(path) not in counter.seen]
    if lost:
        # A worker that died after finishing some files of a batch that then failed for good wrote their rows.
        counter.manifest.flush()
        current = counter.manifest.latest()
        finished = [current[source] for source in lost if _done_since(current.get(source), started)]
        for row in finished:
            counter.row({**row, "finished_at": row["finished_at"].timestamp()})
        lost = [source for source in lost if source not in counter.seen]
    for source in lost:
        counter.row(
            _failed_row(
                source,
                job.options,
                job.video,
                "Not remastered: the batch holding it was lost (it could not be read, or its worker kept failing); "
                "run the same command again to retry it",
            )
        )


def _done_since(row: dict | None, started: float) -> bool:
    return row is not None and row["status"] == "done" and row["finished_at"].timestamp() >= started


def _sizes(workers: Workers, resources: Mapping[str, float], nodes: list[dict]) -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each) for the cluster's ``resources``."""
    total_cpus = max(1.0, resources.get("CPU", 1.0))
    total_gpus = resources.get("GPU", 0.0)
    gpus = workers.gpus if workers.gpus is not None else (1.0 if total_gpus >= 1 else 0.0)
    if gpus:
        count = workers.count or max(1, int(total_gpus // gpus))
        return count, workers.cpus or max(1.0, float(int(total_cpus // count))), gpus
    if workers.count:
        return workers.count, workers.cpus or max(1.0, float(int(total_cpus // workers.count))), 0.0
    node_cpus = [node["Resources"].get("CPU", 0.0) for node in nodes if node.get("Alive")]
    cpus = workers.cpus or max(1.0, min((c for c in node_cpus if c > 0), default=total_cpus))
    return max(1, int(total_cpus // cpus)), cpus, 0.0


def _job_environment() -> dict[str, object]:
    """What a cluster's workers need from here: this package, and the command's REMASTER_* and HF_* variables."""
    return {
        "py_modules": [str(Path(__file__).resolve().parent.parent)],
        "env_vars": {name: value for name, value in os.environ.items() if name.startswith(_FORWARDED_PREFIXES)},
    }
