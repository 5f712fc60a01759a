"""The Ray actor that remasters an archive's files: one loaded :class:`~remaster.Enhancer` per worker.

Each file goes through :func:`remaster.batch.remaster_any`, as on the command line. An image comes
as its bytes, written to a scratch folder; a video is read by the worker from SOURCE itself (not
carried through Ray) and remastered in the job's work folder, where its finished segments stay
if the worker dies, so that the next attempt, on any worker that sees that folder, goes on from
them. The result is written to DEST by the worker, under the source's own relative path, whole or
not at all, and its row into the manifest right after it (see :mod:`.manifest`), so that a job
stopped in any way redoes nothing it finished (but a file whose row was being written at that
moment). A file that cannot be remastered is a row with its error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import shutil
import socket
import tempfile
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RemasterError, brief
from ..options import Options
from ..registry import MODELS
from ..video import VideoOptions, is_video
from .manifest import SCHEMA, options_key, rows_written_by, write_part
from .sources import Location, output_stem

if TYPE_CHECKING:
    from ..files import FileResult
    from ..video import VideoResult

__all__ = ["ArchiveWorker", "Job", "temporary_work"]

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
    """A video's output frames per resumable segment; None for about 10 s of work each."""
    work: str | None = None
    """The local folder where a video's finished segments are kept until it is done: DEST's own
    (``DEST/_remaster_manifest/_work``) on a local disk; None for each worker's temporary folder."""

    def relative(self, path: str) -> str:
        """``path`` relative to :attr:`base`."""
        return posixpath.relpath(path, self.base) if self.base else path.lstrip("/")


WRITTEN_IN = "written_in"
"""The column, beside the manifest's, that names the part a worker wrote a row in (None where it could not)."""


class ArchiveWorker:
    """Called by Ray Data with batches of ``{"path", "bytes"}`` (a video's bytes empty: the worker reads it from
    SOURCE); returns one manifest row per file, each already written into the manifest as a part."""

    def __init__(self, job: Job) -> None:
        from ..pipeline import Enhancer
        from ..settings import Settings

        if job.threads:
            import torch

            torch.set_num_threads(job.threads)
        self.job = job
        self.enhancer = Enhancer(Settings.from_env(**job.settings))
        if job.model_file is not None and job.options.model not in MODELS:
            from ..model_files import ModelFiles

            ModelFiles(self.enhancer.settings).load(job.model_file)
        self.options_key = options_key(job.options)
        self.video_key = options_key(job.options, job.video)
        self.work = Path(job.work) if job.work else temporary_work(job.dest)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.part_writer, self.finished_before = _writer_and_finished_before(job.dest)
        log.info("worker %s: %s on %s", self.name, job.options.model, self.enhancer.settings.device)

    def __call__(self, batch: Mapping[str, object]) -> dict[str, list]:
        """Remaster each file of ``batch``, write its output and its row; the rows, column by column, with
        :data:`WRITTEN_IN`."""
        rows, parts, fresh = [], [], []
        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            finished = self._finished_before(str(path))
            if finished is not None:
                rows.append(finished[0])
                parts.append(finished[1])
            else:
                rows.append(self.remaster(str(path), bytes(data)))
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
        return {**{name: [row[name] for row in rows] for name in SCHEMA.names}, WRITTEN_IN: parts}

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

    def remaster(self, path: str, data: bytes) -> dict[str, object]:
        """Remaster one file (its path on the source file system, and an image's bytes); its manifest row."""
        started = time.perf_counter()
        video = is_video(path)
        row: dict[str, object] = dict.fromkeys(SCHEMA.names)
        row.update(
            source=self.job.source.uri(path),
            status="failed",
            input_bytes=None if video else len(data),
            model=self.job.options.model,
            options=self.video_key if video else self.options_key,
            worker=self.name,
        )
        try:
            row.update(self._remaster_video(path) if video else self._remaster_image(path, data))
        except Exception as error:  # noqa: BLE001 - one bad file is a row with its error, never a failed job
            if isinstance(error, _EXPECTED):
                log.info("%s: %s", row["source"], error)
            else:
                log.warning("%s: %s", row["source"], error, exc_info=True)
            row["error"] = brief(error, 1000)
        row["seconds"] = time.perf_counter() - started
        row["finished_at"] = time.time()
        return row

    def _remaster_image(self, path: str, data: bytes) -> dict[str, object]:
        from ..batch import remaster_any

        with tempfile.TemporaryDirectory(prefix="remaster-archive-") as scratch:
            local = Path(scratch) / "source" / posixpath.basename(path)
            local.parent.mkdir()
            local.write_bytes(data)
            done = remaster_any(self.enhancer, local, Path(scratch) / "result", self.job.options)
            return self._deliver(path, done)

    def _remaster_video(self, path: str) -> dict[str, object]:
        from ..video import remaster_video

        folder = self.work / hashlib.sha256(self.job.source.uri(path).encode()).hexdigest()[:24]
        folder.mkdir(parents=True, exist_ok=True)
        try:
            local = self.job.source.local_copy(path, folder)
            done = remaster_video(
                local, folder / "result", self.job.options, self.job.video, enhancer=self.enhancer,
                segment_frames=self.job.segment_frames,
            )  # fmt: skip
            row = {"input_bytes": local.stat().st_size, **self._deliver(path, done), "resumed_frames": done.resumed}
        except BaseException:
            if not any(folder.glob(".*.remaster-video")):  # no finished segments to go on from
                shutil.rmtree(folder, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)
        return row

    def _deliver(self, path: str, done: FileResult | VideoResult) -> dict[str, object]:
        """Move ``done``'s file to DEST at the source's relative path; what the row says of it."""
        from ..atomic import sha256_of

        relative = self.job.relative(path)
        output = self.job.dest.join(output_stem(relative, self.job.clashes) + done.path.suffix)
        digest, size = sha256_of(done.path), done.path.stat().st_size
        self.job.dest.move_in(output, done.path)
        (width, height), (out_width, out_height) = done.report.input_size, done.report.output_size
        return {
            "status": "done",
            "output": self.job.dest.uri(output),
            "output_bytes": size,
            "output_sha256": digest,
            "input_width": width,
            "input_height": height,
            "output_width": out_width,
            "output_height": out_height,
            "frames": done.report.frames,
        }


def _writer_and_finished_before(dest: Location) -> tuple[str, dict[str, tuple[dict, str]]]:
    """This worker's name on its manifest parts (its Ray actor's, which a restart keeps), and, if Ray restarted
    it, the done rows it wrote before, by source, with their parts."""
    import ray

    context = ray.get_runtime_context() if ray.is_initialized() else None
    actor = context.get_actor_id() if context is not None else None
    if actor is None:
        return f"w{uuid.uuid4().hex[:8]}", {}
    writer = f"a{actor}"
    with warnings.catch_warnings():
        # Ray's own property reads its deprecated ``actor_id``, which would warn on every worker's start.
        warnings.simplefilter("ignore", DeprecationWarning)
        restarted = context.was_current_actor_reconstructed
    if not restarted:
        return writer, {}
    earlier = {source: found for source, found in rows_written_by(dest, writer).items() if found[0]["status"] == "done"}
    log.info("restarted: %d files finished before are in the manifest", len(earlier))
    return writer, earlier


def temporary_work(dest: Location) -> Path:
    """This machine's work folder for the job writing to ``dest`` (an object store): one per DEST, so that a
    worker started again on this machine finds what the one before it left."""
    digest = hashlib.sha256(dest.uri(dest.path).encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / "remaster-archive" / digest
