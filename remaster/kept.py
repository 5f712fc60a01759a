"""Small JSON tables that remaster keeps in ``REMASTER_CACHE_DIR`` between runs.

Backends chosen (``backends.json``), overlaps measured (``overlaps.json``) and model files
pinned (``model-files.json``) are each a table from a key to a value, read and added to by
several threads of one process and by other processes. Each change reads the file afresh and
replaces it whole through :func:`remaster.atomic.atomic_file`, so a reader never sees half a
table; a table that cannot be read counts as empty, and one that cannot be written is a warning,
since everything in it can be found again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .atomic import atomic_file

__all__ = ["KeptTable"]

log = logging.getLogger(__name__)


class KeptTable:
    """A JSON object in ``path``; ``what`` names its values in the warning when it cannot be written."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The value kept for ``key``, or None."""
        with self._lock:
            return self._read().get(key)

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` for ``key``."""
        self.change(key, lambda _old: value)

    def change(self, key: str, change: Callable[[Any], Any]) -> Any:
        """Replace the value for ``key`` (None if there is none) by ``change(value)``, with no other
        change in between from this process; an exception from ``change`` leaves the table as it was."""
        with self._lock:
            table = self._read()
            table[key] = new = change(table.get(key))
            try:
                with atomic_file(self.path) as partial:
                    Path(partial).write_text(json.dumps(table, indent=1, sort_keys=True), encoding="utf-8")
            except OSError as error:
                log.warning("Could not keep the %s in %s (%s); it is found again later", self.what, self.path, error)
            return new

    def _read(self) -> dict[str, Any]:
        try:
            table = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return table if isinstance(table, dict) else {}
