"""Where an archive job keeps a video's layout and finished parts until the video is joined.

In DEST's work folder (``DEST/_remaster_manifest/_work/VIDEO/``), which every worker on the machine (or on
a shared disk) writes in; where DEST is an object store, under the same prefix there, each worker writing
its parts in a local folder first and uploading each part's segment and then its record, so that a record
in the store says its segment is whole. The driver gathers them for the join.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import shutil
from pathlib import Path

from ..atomic import atomic_file
from ..video.parts import Layout, PartsFolder
from .manifest import FOLDER
from .sources import Location

__all__ = ["LAYOUT", "WORK", "PartsStore"]

log = logging.getLogger(__name__)

WORK = f"{FOLDER}/_work"
"""Where in DEST the videos being remastered keep their layouts and finished parts (a name that Parquet readers
of the manifest folder pass over)."""
LAYOUT = "layout.npz"
_IDENTITY = "layout.json"


class PartsStore:
    """The layout and finished parts of one video (by its source URI) of the job writing to ``dest``.

    Args:
        local_root: where a worker keeps its own copies when ``dest`` is an object store.
    """

    def __init__(self, dest: Location, video: str, local_root: Path) -> None:
        digest = hashlib.sha256(video.encode()).hexdigest()[:24]
        self.dest = dest
        self.remote = None if dest.is_local else posixpath.join(dest.join(WORK), digest)
        self.folder = (Path(dest.join(WORK)) if dest.is_local else local_root) / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        self.parts = PartsFolder(self.folder)

    def layout(self, identity: dict[str, object]) -> Layout | None:
        """The layout kept for the job ``identity`` describes; None where there is none, or one of another job
        (whose parts are then of no use: they go)."""
        self._pull(LAYOUT, _IDENTITY)
        try:
            kept = json.loads((self.folder / _IDENTITY).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = None
        if kept != json.loads(json.dumps(identity)):
            if kept is not None:
                log.info("%s holds another job's parts: they are made again", self.folder)
            self.clear(keep_folder=True)
            return None
        return Layout.load(self.folder / LAYOUT)

    def keep_layout(self, layout: Layout, identity: dict[str, object]) -> None:
        """Keep ``layout`` for the job ``identity`` describes (its identity written last)."""
        layout.save(self.folder / LAYOUT)
        with atomic_file(self.folder / _IDENTITY) as partial:
            Path(partial).write_text(json.dumps(identity), encoding="utf-8")
        self._push(LAYOUT, _IDENTITY)

    def publish(self, index: int) -> None:
        """Make part ``index`` (written in :attr:`folder`) seen where the driver looks: its segment, then its record."""
        segment = self.parts.segment_path(index)
        self._push(segment.name, segment.with_suffix(".json").name)

    def records(self) -> list[tuple[int, int, int]]:
        """(number, first frame, frames) of each finished part, wherever a worker made it."""
        if self.remote is not None:
            self._pull(*self._remote_names(".json"))
        return [(part.index, part.first, part.frames) for part in self.parts.parts(segments=self.remote is None)]

    def gathered(self) -> PartsFolder:
        """The finished parts, all in :attr:`folder` (fetched from the object store where DEST is one)."""
        if self.remote is not None:
            self._pull(*(f"{index:06d}.nut" for index, _, _ in self.records()))
        return self.parts

    def clear(self, keep_folder: bool = False) -> None:
        """Remove the layout and the parts, here and in the object store."""
        if self.remote is not None:
            for name in self._remote_names(""):
                self.dest.filesystem.delete_file(posixpath.join(self.remote, name))
        shutil.rmtree(self.folder, ignore_errors=True)
        if keep_folder:
            self.folder.mkdir(parents=True, exist_ok=True)

    def _remote_names(self, suffix: str) -> list[str]:
        import pyarrow.fs as pafs

        assert self.remote is not None
        selector = pafs.FileSelector(self.remote, allow_not_found=True)
        return sorted(
            info.base_name
            for info in self.dest.filesystem.get_file_info(selector)
            if info.is_file and info.base_name.endswith(suffix)
        )

    def _push(self, *names: str) -> None:
        if self.remote is None:
            return
        for name in names:
            self.dest.put(posixpath.join(self.remote, name), (self.folder / name).read_bytes())

    def _pull(self, *names: str) -> None:
        if self.remote is None:
            return
        for name in names:
            local = self.folder / name
            if local.is_file():
                continue
            remote = posixpath.join(self.remote, name)
            if not self.dest.filesystem.get_file_info(remote).is_file:
                continue
            with atomic_file(local) as partial, self.dest.filesystem.open_input_stream(remote) as stream:
                Path(partial).write_bytes(stream.read())
