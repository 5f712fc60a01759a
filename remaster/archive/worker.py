"""The Ray actor that remasters an archive's files: one loaded :class:`~remaster.Enhancer` per worker.

An image goes through :func:`remaster.batch.remaster_any`, as on the command line: the worker reads it
from SOURCE, writes the result to DEST under the source's own relative path, whole or not at all, and
its row into the manifest right after it (see :mod:`.manifest`), so that a job stopped in any way redoes
nothing it finished (but a file whose row was being written at that moment). A file that cannot be
remastered is a row with its error.

A video is shared out: one worker lays it out (:meth:`ArchiveWorker.lay_out`: its frames decoded once,
see :mod:`remaster.video.parts`), then any worker makes any part of it (:meth:`ArchiveWorker.make`),
each kept in the video's work folder (:class:`~.parts_store.PartsStore`) as soon as it is finished; the
driver joins them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import logs
from ..errors import RemasterError, brief
from ..options import Options
from ..registry import MODELS
from ..video import VideoOptions
from .manifest import SCHEMA, options_key, rows_written_by, write_part, write_segment
from .scheduler import Laid, PartDone
from .sources import Location, output_stem

if TYPE_CHECKING:
    from ..video.job import VideoJob
    from ..video.parts import Layout
    from .parts_store import PartsStore

__all__ = ["ACTOR", "REPLACED", "RETURNED_BY", "WRITTEN_IN", "ArchiveWorker", "Job", "deliver", "temporary_work"]

log = logging.getLogger(__name__)

_EXPECTED = (RemasterError, OSError, ValueError)
"""Errors of a file (unreadable, too large, unwritable): its row says it all. Others are logged with a traceback."""


@dataclass(frozen=True)
class Job:
    """What every worker of one run needs to know, sent to each when it starts."""

    options: Options
    source: Location
    """The sources' file system and URI scheme (its path is unused)."""
    base: str
    """The folder the sources' relative paths start from."""
    dest: Location
    clashes: frozenset[str] = field(default_factory=frozenset)
    """Relative paths whose outputs keep their whole name (see :func:`~remaster.archive.sources.output_stem`)."""
    settings: Mapping[str, object] = field(default_factory=dict)
    """Overrides of the settings each worker reads from its own environment (the device is its own)."""
    threads: int | None = None
    """Torch threads for a CPU worker: the CPUs Ray gave it."""
    model_file: str | None = None
    """A model file the options' model comes from (a path, ``hf://`` reference or URL), for each worker to load."""
    video: VideoOptions = field(default_factory=VideoOptions)
    """How videos are encoded."""
    segment_frames: int | None = None
    """A video's output frames per part; None for about ``video.segment_seconds`` of each worker's measured work."""
    said: frozenset[str] = field(default_factory=frozenset)
    """What the driver has logged once for the whole job (see :func:`remaster.logs.once`): no worker repeats it."""

    def relative(self, path: str) -> str:
        """``path`` relative to :attr:`base`."""
        return posixpath.relpath(path, self.base) if self.base else path.lstrip("/")


WRITTEN_IN = "written_in"
"""The column, beside the manifest's, that names the part a worker wrote a row in (None where it could not)."""
ACTOR = "actor"
"""The column, beside the manifest's, that names the Ray actor that returned the row (a restart keeps it)."""
RETURNED_BY = "returned_by"
"""The column, beside the manifest's, that names the worker process (``host:pid``) that returned the row: a
restarted actor's row may be one its earlier process finished."""
REPLACED = "replaced"
"""The column, beside the manifest's: where Ray restarted the actor, the processes it replaced that it found in the
manifest (``host:pid``, comma-separated), or ``?`` where it found none; empty where it was not restarted."""


@dataclass
class _Video:
    """A video a worker works on: its job (checked, networks loaded, output planned), where its parts are kept, and
    its layout once read."""

    job: VideoJob
    store: PartsStore
    layout: Layout | None = None


class ArchiveWorker:
    """One worker of the pool: given batches of images (:meth:`images`), videos to lay out (:meth:`lay_out`) and parts
    of videos to make (:meth:`make`); an image's row is written into the manifest as a part as soon as its output is
    in DEST, and a part kept where the driver gathers it as soon as it is made."""

    def __init__(self, job: Job) -> None:
        from ..pipeline import Enhancer
        from ..settings import Settings

        if job.threads:
            import torch

            torch.set_num_threads(job.threads)
        self.job = job
        logs.already_said(job.said)
        self.enhancer = Enhancer(Settings.from_env(**job.settings))
        if job.model_file is not None and job.options.model not in MODELS:
            from ..model_files import ModelFiles

            ModelFiles(self.enhancer.settings).load(job.model_file)
        self.options_key = options_key(job.options)
        self.video_key = options_key(job.options, job.video)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.actor, self.finished_before, self.replaced = _incarnation(job.dest, self.name)
        self.part_writer = f"a{self.actor}" if self.actor else f"w{uuid.uuid4().hex[:8]}"
        self._videos: dict[str, _Video] = {}
        log.info("worker %s: %s on %s", self.name, job.options.model, self.enhancer.settings.device)

    def images(self, paths: list[str]) -> dict[str, list]:
        """Remaster the images at ``paths`` (read from SOURCE) one by one, each row written as its output is in
        DEST; the rows, as :meth:`__call__` returns them."""
        columns: dict[str, list] = {}
        for path in paths:
            for name, values in self({"path": [path], "bytes": [self._read(path)]}).items():
                columns.setdefault(name, []).extend(values)
        return columns

    def _read(self, path: str) -> bytes | None:
        """The bytes of the source at ``path``; None where it cannot be read (its row then says so)."""
        try:
            with self.job.source.filesystem.open_input_stream(path) as stream:
                return stream.read()
        except OSError as error:
            log.info("%s could not be read: %s", path, error)
            return None

    def lay_out(self, path: str) -> Laid:
        """Lay the video at ``path`` out (or take the layout an earlier attempt kept), for its parts to be made by
        any worker; what the driver needs to hand them out and join them.

        Raises:
            RemasterError, OSError: the video cannot be remastered (the driver writes its row).
        """
        from ..video.parts import analyse

        video = self._video(path)
        store, job = video.store, video.job
        layout = store.layout(job.identity)
        if layout is None:
            layout = analyse(job.info, job.plan, job.video, job.total)
            store.keep_layout(layout, job.identity)
        video.layout = layout
        kept = store.records()
        return Laid(
            total=layout.total,
            done=tuple((first, frames) for _, first, frames in kept),
            indices=tuple(index for index, _, _ in kept),
            info=job.info,
            plan=job.plan,
            repeats=layout.repeats,
            cuts=layout.cuts,
            worker=self.name,
            **self._who(),
        )

    def make(self, path: str, index: int, first: int, count: int) -> PartDone:
        """Make output frames ``first`` to ``first + count - 1`` of the video at ``path`` as its part ``index``, and
        keep it where the driver gathers the parts.

        Raises:
            RemasterError, OSError: the part cannot be made (the driver fails the video).
        """
        from ..video.parts import make_part

        started = time.perf_counter()
        video = self._video(path)
        if video.layout is None:
            video.layout = video.store.layout(video.job.identity)
            if video.layout is None:
                raise RemasterError(f"{path} has no layout: it was laid out by another job")
        job = video.job
        part = make_part(
            self.enhancer, job.prepared, job.info, job.plan, video.layout, video.store.parts, index, first, count
        )
        video.store.publish(index)
        seconds = time.perf_counter() - started
        try:
            write_segment(
                self.job.dest, self.job.source.uri(path), index, first, part.frames, self.name, seconds, "done"
            )
        except OSError as error:  # the part is kept all the same: the table is a record of the work
            log.warning("could not write the segments table's row of %s part %d: %s", path, index, error)
        return PartDone(part.frames, seconds, self.name, **self._who())

    def _video(self, path: str) -> _Video:
        """The video at ``path`` as this worker works on it: a local copy of it, its job, where its parts go."""
        from ..video.job import VideoJob
        from .parts_store import PartsStore

        if path not in self._videos:
            uri = self.job.source.uri(path)
            store = PartsStore(self.job.dest, uri, temporary_work(self.job.dest))
            local = self.job.source.local_copy(path, store.folder.parent / f"{store.folder.name}-source")
            job = VideoJob.of(self.enhancer, local, self.job.options, self.job.video)
            self._videos[path] = _Video(job, store)
        return self._videos[path]

    def _who(self) -> dict[str, str]:
        return {"actor": self.actor or "", "returned_by": self.name, "replaced": self.replaced}

    def __call__(self, batch: Mapping[str, object]) -> dict[str, list]:
        """Remaster each file of ``batch``, write its output and its row; the rows, column by column, with
        :data:`WRITTEN_IN`, :data:`ACTOR`, :data:`RETURNED_BY` and :data:`REPLACED`."""
        rows, parts, fresh = [], [], []
        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            finished = self._finished_before(str(path))
            if finished is not None:
                rows.append(finished[0])
                parts.append(finished[1])
            else:
                rows.append(self.remaster(str(path), None if data is None else bytes(data)))
                parts.append(None)
                fresh.append(rows[-1])
        # The rows go in after the outputs: a row written first would, if the worker died before moving its output
        # in, make an older output there (of other options, at the same size) look done.
        part = None
        try:
            part = write_part(self.job.dest, fresh, self.part_writer) if fresh else None
        except OSError as error:  # the driver writes the rows it gets back; only a dead driver would lose them
            log.warning("could not write the manifest rows of %s: %s", [row["source"] for row in fresh], error)
        parts = [written or part for written in parts]
        who = {ACTOR: self.actor or "", RETURNED_BY: self.name, REPLACED: self.replaced}
        return {
            **{name: [row[name] for row in rows] for name in SCHEMA.names},
            WRITTEN_IN: parts,
            **{name: [value] * len(rows) for name, value in who.items()},
        }

    def _finished_before(self, path: str) -> tuple[dict[str, object], str] | None:
        """The row and part of ``path`` if this worker finished it before Ray restarted it, and the output is
        still in DEST at its size: Ray sends the batch it died in again, and what was done of it is not redone."""
        earlier = self.finished_before.pop(self.job.source.uri(path), None)
        if earlier is None:
            return None
        row, part = earlier
        scheme = f"{self.job.dest.scheme}://" if self.job.dest.scheme else ""
        info = self.job.dest.filesystem.get_file_info(row["output"].removeprefix(scheme))
        if not info.is_file or info.size != row["output_bytes"]:
            return None
        log.info("%s: done before this worker was restarted", row["source"])
        return {**row, "finished_at": row["finished_at"].timestamp()}, part

    def remaster(self, path: str, data: bytes | None) -> dict[str, object]:
        """Remaster one image (its path on the source file system, and its bytes: None where they could not be
        read); its manifest row."""
        started = time.perf_counter()
        row: dict[str, object] = dict.fromkeys(SCHEMA.names)
        row.update(
            source=self.job.source.uri(path),
            status="failed",
            input_bytes=len(data) if data is not None else self._size(path),
            model=self.job.options.model,
            options=self.options_key,
            worker=self.name,
        )
        try:
            if data is None:
                raise OSError(f"{path} could not be read from SOURCE")
            row.update(self._remaster_image(path, data))
        except Exception as error:  # noqa: BLE001 - one bad file is a row with its error, never a failed job
            if isinstance(error, _EXPECTED):
                log.info("%s: %s", row["source"], error)
            else:
                log.warning("%s: %s", row["source"], error, exc_info=True)
            row["error"] = brief(error, 1000)
        row["seconds"] = time.perf_counter() - started
        row["finished_at"] = time.time()
        return row

    def _size(self, path: str) -> int | None:
        """The size of the source at ``path`` (None where it cannot be read): a failure's row records it, so that a
        run again can tell the same file from a new one."""
        try:
            return self.job.source.filesystem.get_file_info(path).size
        except OSError:
            return None

    def _remaster_image(self, path: str, data: bytes) -> dict[str, object]:
        from ..batch import remaster_any

        with tempfile.TemporaryDirectory(prefix="remaster-archive-") as scratch:
            local = Path(scratch) / "source" / posixpath.basename(path)
            local.parent.mkdir()
            local.write_bytes(data)
            done = remaster_any(self.enhancer, local, Path(scratch) / "result", self.job.options)
            report = done.report
            return deliver(self.job, path, done.path, report.input_size, report.output_size, report.frames)


def deliver(
    job: Job, path: str, file: Path, input_size: tuple[int, int], output_size: tuple[int, int], frames: int
) -> dict[str, object]:
    """Move the result ``file`` of the source at ``path`` to DEST at the source's relative path (``file`` is gone
    afterwards); what its row says of it."""
    from ..atomic import sha256_of

    relative = job.relative(path)
    output = job.dest.join(output_stem(relative, job.clashes) + file.suffix)
    digest, size = sha256_of(file), file.stat().st_size
    job.dest.move_in(output, file)
    (width, height), (out_width, out_height) = input_size, output_size
    return {
        "status": "done",
        "output": job.dest.uri(output),
        "output_bytes": size,
        "output_sha256": digest,
        "input_width": width,
        "input_height": height,
        "output_width": out_width,
        "output_height": out_height,
        "frames": frames,
    }


def _incarnation(dest: Location, name: str) -> tuple[str | None, dict[str, tuple[dict, str]], str]:
    """This worker's Ray actor (None outside Ray); if Ray restarted it, the done rows it wrote before, by source, with
    their parts; and what :data:`REPLACED` says of it."""
    import ray

    context = ray.get_runtime_context() if ray.is_initialized() else None
    actor = context.get_actor_id() if context is not None else None
    if actor is None:
        return None, {}, ""
    with warnings.catch_warnings():
        # Ray's own property reads its deprecated ``actor_id``, which would warn on every worker's start.
        warnings.simplefilter("ignore", DeprecationWarning)
        restarted = context.was_current_actor_reconstructed
    if not restarted:
        return actor, {}, ""
    written = rows_written_by(dest, f"a{actor}")
    earlier = {source: found for source, found in written.items() if found[0]["status"] == "done"}
    replaced = sorted({row["worker"] for row, _ in written.values() if row["worker"] and row["worker"] != name})
    log.info("restarted: %d files finished before are in the manifest", len(earlier))
    return actor, earlier, ",".join(replaced) or "?"


def temporary_work(dest: Location) -> Path:
    """This machine's work folder for the job writing to ``dest`` (an object store): one per DEST, so that a
    worker started again on this machine finds what the one before it left."""
    digest = hashlib.sha256(dest.uri(dest.path).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "remaster-archive" / digest
