"""The Ray actor that remasters an archive's files: one loaded :class:`~remaster.Enhancer` per worker.

Each file goes through :func:`remaster.files.remaster_file`, as on the command line, from its bytes
written to a scratch folder; the result is written to DEST by the worker itself, under the source's
own relative path, whole or not at all. A file that cannot be remastered is a row with its error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RemasterError, brief
from ..options import Options
from ..registry import MODELS
from .manifest import SCHEMA, options_key
from .sources import Location, output_stem

__all__ = ["ArchiveWorker", "Job"]

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

    def relative(self, path: str) -> str:
        """``path`` relative to :attr:`base`."""
        return posixpath.relpath(path, self.base) if self.base else path.lstrip("/")


class ArchiveWorker:
    """Called by Ray Data with batches of ``{"path", "bytes"}``; returns one manifest row per file."""

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
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        log.info("worker %s: %s on %s", self.name, job.options.model, self.enhancer.settings.device)

    def __call__(self, batch: Mapping[str, object]) -> dict[str, list]:
        """Remaster each file of ``batch`` and write its output; the rows, column by column."""
        rows = [self.remaster(str(path), bytes(data)) for path, data in zip(batch["path"], batch["bytes"], strict=True)]
        return {name: [row[name] for row in rows] for name in SCHEMA.names}

    def remaster(self, path: str, data: bytes) -> dict[str, object]:
        """Remaster one file (its path on the source file system and its bytes); its manifest row."""
        started = time.perf_counter()
        row: dict[str, object] = dict.fromkeys(SCHEMA.names)
        row.update(
            source=self.job.source.uri(path),
            status="failed",
            input_bytes=len(data),
            model=self.job.options.model,
            options=self.options_key,
            worker=self.name,
        )
        try:
            row.update(self._remaster(path, data))
        except Exception as error:  # noqa: BLE001 - one bad file is a row with its error, never a failed job
            if isinstance(error, _EXPECTED):
                log.info("%s: %s", row["source"], error)
            else:
                log.warning("%s: %s", row["source"], error, exc_info=True)
            row["error"] = brief(error, 1000)
        row["seconds"] = time.perf_counter() - started
        row["finished_at"] = time.time()
        return row

    def _remaster(self, path: str, data: bytes) -> dict[str, object]:
        from ..batch import remaster_any

        relative = self.job.relative(path)
        with tempfile.TemporaryDirectory(prefix="remaster-archive-") as scratch:
            local = Path(scratch) / "source" / posixpath.basename(path)
            local.parent.mkdir()
            local.write_bytes(data)
            done = remaster_any(self.enhancer, local, Path(scratch) / "result", self.job.options)
            result = done.path.read_bytes()
        output = self.job.dest.join(output_stem(relative, self.job.clashes) + done.path.suffix)
        self.job.dest.put(output, result)
        (width, height), (out_width, out_height) = done.report.input_size, done.report.output_size
        return {
            "status": "done",
            "output": self.job.dest.uri(output),
            "output_bytes": len(result),
            "output_sha256": hashlib.sha256(result).hexdigest(),
            "input_width": width,
            "input_height": height,
            "output_width": out_width,
            "output_height": out_height,
            "frames": done.report.frames,
        }
