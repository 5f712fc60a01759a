"""Running an archive job on Ray: what is left to do, the workers, the manifest as rows come back, the videos joined.

Ray is imported here, when a job has work, so ``import remaster`` never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import logs
from ..atomic import PARTIAL_NAME
from ..errors import RemasterError, brief
from ..options import Options
from ..registry import DETECTOR, MODELS, PARSER, WeightFile
from ..settings import Settings
from ..video import VideoOptions, is_video
from ..weights import check_own_copies
from .manifest import SCHEMA, Manifest, merge_segments, options_key, write_segment
from .noise import RayNoise
from .parts_store import WORK
from .scheduler import Laid, PartDone, Scheduler, Task
from .sources import Listing, Location, clashing, list_sources, locate
from .worker import ACTOR, REPLACED, RETURNED_BY, WRITTEN_IN, ArchiveWorker, Job, deliver, temporary_work

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = ["ArchiveSummary", "Workers", "remaster_archive"]

log = logging.getLogger(__name__)

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
    """Sources that failed in this run (list entries that name no file included)."""
    seconds: float
    manifest: str
    """The manifest's URI."""
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(source, error) of each failure of this run."""
    failed_before: list[tuple[str, str]] = field(default_factory=list)
    """(source, error) of each source that failed before with the same options and was not tried again."""
    sent: int = 0
    """Files given to the workers in this run (none: Ray was not started)."""
    tried: int = 0
    """Files the workers remastered or failed in this run: the work the rate counts."""
    dead_workers: list[str] = field(default_factory=list)
    """The workers (``host:pid``; ``restarted as host:pid`` for one that had finished no file) that died during the
    run; Ray restarted each and retried its batch."""

    @property
    def images_per_second(self) -> float:
        """Files the workers remastered or failed, per second of this run."""
        return self.tried / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The summary line: done, skipped, failed (and failed before, not tried again), images per second of the work
        done in this run, dead workers."""
        parts = [f"{self.done} done", f"{self.skipped} skipped", f"{self.failed} failed"]
        if self.failed_before:
            parts.append(f"{len(self.failed_before)} failed before and not tried again")
        if self.tried:
            parts.append(f"{self.images_per_second:.2f} images/s")
        line = f"{', '.join(parts)} ({self.seconds:.1f} s)"
        if self.dead_workers:
            count = len(self.dead_workers)
            line += f"; {count} worker{'s' if count > 1 else ''} died, {'their' if count > 1 else 'its'} work retried"
        return line


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
    retry_failed: bool | None = None,
    notice: Callable[[str], None] | None = None,
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
        video: how videos are encoded (codec, quality, frame rate, in-betweens), as on the command line; the
            defaults when None. A video is made in parts by any worker (each about ``video.segment_seconds`` of
            that worker's measured work), kept in ``DEST/_remaster_manifest/_work/`` (or under that prefix in an
            object store) until all are in and joined, so a dead worker's part is made again and a run again
            makes only the missing ones.
        segment_frames: a fixed number of output frames a part (default: sized by the measured speed).
        retry_failed: whether sources that failed before with the same options, on the same file, are tried again:
            True always, False never, None (the default) along with other work but not alone, so that a run with
            nothing new does not start Ray only to fail them again. A lost batch's files are always tried again.
        notice: told each event of the run worth a line of its own (a worker that died); logged as a warning
            when None.

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
    checked = Settings.from_env(device="cpu", **overrides)  # a malformed variable is an error now; workers pick theirs
    source_at, dest_at = locate(source, source_filesystem), locate(dest, dest_filesystem)
    listing = list_sources(source_at, dest_at)
    manifest = Manifest(dest_at)
    plan = _plan(listing, manifest.latest(), _dest_files(dest_at), options, video, retry_failed)
    counter = _Counter(manifest, progress, len(plan.todo) + len(listing.missing), notice)
    try:
        for missing in listing.missing:
            counter.row(_failed_row(missing, options, video, "No such file: the list names it, but it is not there"))
        if plan.todo:
            check_own_copies(_weights_of(options), checked)  # said once here, for every worker
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
                said=logs.said(),
            )
            _run(job, plan.todo, workers or Workers(), address, counter)
    finally:
        manifest_uri = manifest.merge()
        merge_segments(dest_at)
        _remove_work_folders(dest_at)
    return ArchiveSummary(
        done=counter.done,
        skipped=plan.skipped,
        failed=len(counter.failures),
        seconds=time.perf_counter() - started,
        manifest=manifest_uri,
        failures=counter.failures,
        failed_before=plan.failed_before,
        sent=len(plan.todo),
        tried=counter.tried,
        dead_workers=counter.dead,
    )


@dataclass(frozen=True)
class _Plan:
    """What one run does of a listing: the paths to send to the workers, and what it leaves as it is."""

    todo: list[str]
    skipped: int
    """Sources done before with these options, their outputs whole in DEST."""
    failed_before: list[tuple[str, str]]
    """(source, error) of sources that failed before with these options on the same file, not tried again."""


def _plan(
    listing: Listing,
    rows: Mapping[str, dict],
    outputs: Mapping[str, int],
    options: Options,
    video: VideoOptions,
    retry_failed: bool | None,
) -> _Plan:
    """What to do of ``listing``, given the manifest's current ``rows`` and DEST's files (``outputs``, by URI)."""
    key, video_key = options_key(options), options_key(options, video)
    finished = _finished(rows, outputs, key, video_key)
    sizes = {listing.location.uri(path): size for path, size in listing.sizes.items()}
    failed = _failed_before(rows, sizes, key, video_key)
    uris = [(path, listing.location.uri(path)) for path in listing.paths]
    new = [path for path, uri in uris if uri not in finished and uri not in failed]
    retrying = retry_failed or (retry_failed is None and bool(new))
    todo = [path for path, uri in uris if uri not in finished and (uri not in failed or retrying)]
    kept = [] if retrying else [(uri, failed[uri]) for _, uri in uris if uri in failed]
    return _Plan(todo, sum(uri in finished for _, uri in uris), kept)


def _finished(rows: Mapping[str, dict], outputs: Mapping[str, int], key: str, video_key: str) -> set[str]:
    """Sources whose current row (of the manifest's ``rows``) is done with these options (``video_key`` for a video)
    and whose output is in ``outputs`` (DEST's files and their sizes), whole."""
    return {
        row["source"]
        for row in rows.values()
        if row["status"] == "done"
        and row["options"] == (video_key if is_video(row["source"]) else key)
        and outputs.get(row["output"]) == row["output_bytes"]
    }


def _failed_before(rows: Mapping[str, dict], sizes: Mapping[str, int], key: str, video_key: str) -> dict[str, str]:
    """Sources whose current row is a failure with these options, of the file of the same size (``sizes``: the
    sources' now, by URI), with their errors. A file whose batch was lost has no size in its row: it is not one."""
    return {
        row["source"]: row["error"]
        for row in rows.values()
        if row["status"] == "failed"
        and row["options"] == (video_key if is_video(row["source"]) else key)
        and row["input_bytes"] is not None
        and sizes.get(row["source"]) == row["input_bytes"]
    }


def _weights_of(options: Options) -> list[WeightFile]:
    """The weight files the job's workers load for ``options``."""
    names = [options.model]
    if options.face_enhance:
        names += [options.face_model, DETECTOR, PARSER]
    return [weight for name in names if name in MODELS for weight in MODELS[name].weight_files]


def _remove_work_folders(dest: Location) -> None:
    """Remove the videos' work folders that nothing is left in."""
    if dest.is_local:
        _remove_empty_folders(Path(dest.join(WORK)))
        return
    work = temporary_work(dest)  # this machine's temporary work folder, and the folder of all such
    _remove_empty_folders(work)
    with contextlib.suppress(OSError):
        work.parent.rmdir()


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
    """Takes each row as it comes back: into the manifest, the counts and the progress callback; and notices the
    workers that died from the rows their restarts return."""

    def __init__(
        self,
        manifest: Manifest,
        progress: Callable[[dict, int], None] | None,
        total: int,
        notice: Callable[[str], None] | None,
    ) -> None:
        self.manifest = manifest
        self.progress = progress
        self.total = total
        self.notice = notice
        self.done = 0
        self.tried = 0
        self.failures: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.dead: list[str] = []
        self._process_of: dict[str, str] = {}
        """Each actor's process (``host:pid``) as its last row named it."""

    def row(self, row: dict) -> None:
        """Take one row (with the worker's columns beside the manifest's, where a worker returned it)."""
        written_in = row.pop(WRITTEN_IN, None)
        actor, process, replaced = row.pop(ACTOR, None), row.pop(RETURNED_BY, None), row.pop(REPLACED, None)
        if process:
            self.note_worker(actor or process, process, replaced or "")
        self.manifest.add(row, written_in)
        self.seen.add(row["source"])
        self.tried += bool(row["worker"])  # a worker's row: the driver's own (a file missing, a batch lost) are not
        if row["status"] == "done":
            self.done += 1
        else:
            self.failures.append((row["source"], row["error"]))
        if self.progress is not None:
            self.progress(row, self.total)

    def note_worker(self, actor: str, process: str, replaced: str) -> None:
        """Name each worker process that died, once: an actor's rows now come from another process (Ray restarted
        it), or its restart says which processes it replaced (``?``: one that had finished no file)."""
        before = self._process_of.get(actor)
        self._process_of[actor] = process
        gone = {name: f"worker {name} died" for name in replaced.split(",") if name and name != "?"}
        if before is not None and before != process:
            gone[before] = f"worker {before} died"
        elif before is None and replaced == "?":
            gone[f"restarted as {process}"] = f"a worker died before it finished a file (Ray restarted it as {process})"
        for name, message in sorted(gone.items()):
            if name == process or name in self.dead:
                continue
            self.dead.append(name)
            if self.notice is not None:
                self.notice(f"{message}; its batch is retried")
            else:
                log.warning("%s; its batch is retried", message)


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

    with RayNoise() as noise:
        started_here = not ray.is_initialized()
        if started_here:
            _start_ray(address)
        try:
            noise.filter_output()
            _execute(job, todo, workers, counter)
        finally:
            if started_here:
                ray.shutdown()


def _start_ray(address: str | None) -> None:
    """Start Ray on this machine, or join ``address`` (or ``RAY_ADDRESS``), keeping this process's SIGTERM handler.

    ``ray.init`` replaces the handler with its own (``sys.exit``), and Ray's core adds one in C++ that prints a
    stack dump: a job stopped by SIGTERM would end at once, with those lines, instead of as the caller handles it.
    """
    import ray

    joining = bool(address or os.environ.get("RAY_ADDRESS"))
    handler = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        # A cluster's workers get this package and the command's settings with the job; on this machine they
        # inherit both from this process, and the dashboard would only slow the start.
        ray.init(
            address=address,
            include_dashboard=None if joining else False,
            logging_level=logging.WARNING,
            runtime_env=_job_environment() if joining else None,
        )
    except SystemExit as stop:  # Ray's handler, for a SIGTERM while Ray started: the caller's own handler has it
        if stop.code == signal.SIGTERM and callable(handler):
            handler(signal.SIGTERM, None)
        raise
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _execute(job: Job, todo: list[str], workers: Workers, counter: _Counter) -> None:
    """Hand ``todo`` out to a pool of workers (Ray actors, each holding a loaded network) as they come free: batches
    of images and parts of videos, taking turns (see :mod:`.scheduler`); join each video when its parts are in."""
    import ray

    count, cpus, gpus = _sizes(workers, ray.cluster_resources(), ray.nodes())
    threads = None if gpus else max(1, int(cpus))
    # A worker that dies is restarted by Ray and its task sent again, as often as it takes.
    worker = ray.remote(ArchiveWorker).options(
        num_cpus=cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=_TASK_RETRIES
    )
    actors = [worker.remote(replace(job, threads=threads)) for _ in range(count)]
    log.info("%d files on %d workers of %g CPUs and %g GPUs", len(todo), count, cpus, gpus)
    videos = [path for path in todo if is_video(path)]
    scheduler = Scheduler(
        [path for path in todo if not is_video(path)],
        videos,
        workers.batch_size,
        job.video.segment_seconds,
        job.segment_frames,
        workers=count,
    )
    films = _Films(job, counter, scheduler)
    pending: dict[object, tuple[int, Task]] = {}
    idle = list(range(count))
    try:
        while scheduler.waiting or pending:
            while idle and (task := scheduler.next_for(str(idle[0]))) is not None:
                index = idle.pop(0)
                pending[_submitted(actors[index], task)] = (index, task)
            if not pending:
                break  # nothing in hand, and nothing can be handed out: every video left has failed
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            index, task = pending.pop(ready)
            idle.append(index)
            films.take(task, str(index), ready)
    finally:
        for actor in actors:
            ray.kill(actor)


_TASK_RETRIES = 5
"""How often a task whose worker died is sent again (to the worker Ray started in its place) before it is given up."""


def _submitted(actor: object, task: Task) -> object:
    """Send ``task`` to ``actor``; the reference to its result."""
    if task.kind == "images":
        return actor.images.remote(list(task.paths))
    if task.kind == "layout":
        return actor.lay_out.remote(task.video)
    return actor.make.remote(task.video, task.index, task.first, task.count)


class _Films:
    """The driver's side of the work: the rows of images as they come back, and each video's parts handed out and
    joined into the result once all are in."""

    def __init__(self, job: Job, counter: _Counter, scheduler: Scheduler) -> None:
        self.job, self.counter, self.scheduler = job, counter, scheduler
        self.started = time.time()
        self.laid: dict[str, Laid] = {}
        self.first_seen: dict[str, float] = {}
        self.last_worker: dict[str, str] = {}

    def take(self, task: Task, worker: str, result: object) -> None:
        """What came back for ``task`` from the worker numbered ``worker`` (an object reference)."""
        import ray

        try:
            value = ray.get(result)
        except Exception as error:  # noqa: BLE001 - a worker's exception, or a worker that kept dying
            self._failed(task, error)
            return
        if task.kind == "images":
            columns = dict(value)
            for position in range(len(columns["source"])):
                self.counter.row({name: values[position] for name, values in columns.items()})
        elif task.kind == "layout":
            self._laid_out(task.video, value)
        else:
            self._part_done(task, value, worker)

    def _laid_out(self, path: str, laid: Laid) -> None:
        self.counter.note_worker(laid.actor or laid.returned_by, laid.returned_by, laid.replaced)
        self.laid[path] = laid
        self.first_seen.setdefault(path, time.time())
        self.last_worker[path] = laid.worker
        self.scheduler.laid_out(path, laid)
        if self.scheduler.video(path).complete:
            self._join(path)

    def _part_done(self, task: Task, done: PartDone, worker: str) -> None:
        self.counter.note_worker(done.actor or done.returned_by, done.returned_by, done.replaced)
        self.last_worker[task.video] = done.worker
        if self.scheduler.part_done(task, replace(done, worker=worker)):
            self._join(task.video)

    def _failed(self, task: Task, error: BaseException) -> None:
        """A task that raised, or whose worker kept dying: images are rows of their own (those their worker finished
        before are in the manifest); a video fails, its parts kept for a run again."""
        import ray

        cause = error.cause if isinstance(error, ray.exceptions.RayTaskError) and error.cause else error
        message = brief(cause, 1000)
        if task.kind == "images":
            self._lost(list(task.paths))
            return
        if task.kind == "part":
            with contextlib.suppress(OSError):
                uri = self.job.source.uri(task.video)
                write_segment(self.job.dest, uri, task.index, task.first, task.count, "", 0.0, "failed")
        video = self.scheduler.video(task.video)
        if video.failed:
            return
        self.scheduler.failed(task.video)
        if isinstance(error, ray.exceptions.RayActorError):
            message = f"its worker kept failing ({message}); run the same command again to go on from its parts"
        self.counter.row(self._video_row(task.video, {"status": "failed", "error": message}))

    def _lost(self, paths: list[str]) -> None:
        """Rows of images whose worker kept dying: those it finished first are in the manifest already."""
        self.counter.manifest.flush()
        current = self.counter.manifest.latest()
        for path in paths:
            source = self.job.source.uri(path)
            row = current.get(source)
            if _done_since(row, self.started):
                self.counter.row({**row, "finished_at": row["finished_at"].timestamp()})
            else:
                self.counter.row(
                    _failed_row(
                        source,
                        self.job.options,
                        self.job.video,
                        "Not remastered: the batch holding it was lost (its worker kept failing); run the same "
                        "command again to retry it",
                    )
                )

    def _join(self, path: str) -> None:
        """Join the parts of the video at ``path`` into its result in DEST, and write its row."""
        from ..video.join import join
        from .parts_store import PartsStore

        laid, video = self.laid[path], self.scheduler.video(path)
        uri = self.job.source.uri(path)
        store = PartsStore(self.job.dest, uri, temporary_work(self.job.dest))
        try:
            parts = store.gathered().covering(laid.total)
            if parts is None:
                raise OSError(f"the parts of {uri} in {store.folder} do not cover its {laid.total} frames")
            local = self.job.source.local_copy(path, store.folder.parent / f"{store.folder.name}-source")
            info = replace(laid.info, path=local)
            result = store.folder / f"result{laid.plan.suffix}"
            join(info, laid.plan, parts, result, store.folder)
            size = (laid.plan.width, laid.plan.height)
            row = {
                **deliver(self.job, path, result, info.size, size, laid.total),
                "input_bytes": local.stat().st_size,
                "resumed_frames": video.resumed,
            }
        except (RemasterError, OSError, ValueError) as error:
            self.scheduler.failed(path)
            self.counter.row(self._video_row(path, {"status": "failed", "error": brief(error, 1000)}))
            return
        store.clear()
        shutil.rmtree(store.folder.parent / f"{store.folder.name}-source", ignore_errors=True)  # a copy of SOURCE's
        self.counter.row(self._video_row(path, row))

    def _video_row(self, path: str, values: Mapping[str, object]) -> dict:
        row = dict.fromkeys(SCHEMA.names)
        with contextlib.suppress(OSError):  # a failure's size tells a run again the same file from a new one
            row["input_bytes"] = self.job.source.filesystem.get_file_info(path).size
        row.update(
            source=self.job.source.uri(path),
            model=self.job.options.model,
            options=options_key(self.job.options, self.job.video),
            worker=self.last_worker.get(path, ""),
            seconds=time.time() - self.first_seen.get(path, self.started),
            finished_at=time.time(),
        )
        row.update(values)
        return row


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
