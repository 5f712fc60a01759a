"""Tile overlaps measured for models remaster has never seen, kept by the SHA-256 of their weights.

The official models' overlaps were measured by hand with their real weights; a model file of
someone's own gets its overlap measured the first time it is loaded (see
:func:`remaster.tiling.measure_overlap`), and the figure is kept in ``overlaps.json`` in
``REMASTER_CACHE_DIR``, so later runs and other processes use it at once.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from .image_io import atomic_file

__all__ = ["OverlapCache"]

log = logging.getLogger(__name__)


class OverlapCache:
    """Measured overlaps by weight-file SHA-256, in a JSON file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def get(self, sha256: str) -> int | None:
        """The overlap measured for these weights, if it was."""
        with self._lock:
            value = self._read().get(sha256)
        return int(value) if isinstance(value, int) else None

    def put(self, sha256: str, overlap: int) -> None:
        """Keep ``overlap`` for these weights."""
        with self._lock:
            table = self._read()
            table[sha256] = int(overlap)
            try:
                with atomic_file(self.path) as partial:
                    Path(partial).write_text(json.dumps(table, indent=1, sort_keys=True), encoding="utf-8")
            except OSError as error:
                log.warning(
                    "Could not keep the measured overlap in %s (%s); it is measured again next time", self.path, error
                )

    def _read(self) -> dict[str, object]:
        try:
            table = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return table if isinstance(table, dict) else {}
