"""Whole archives at once, on Ray: ``python -m remaster.archive SOURCE DEST``.

Every image under SOURCE (a folder, a glob, a Parquet/CSV list; local or ``s3://``, ``gs://``…) is
remastered by Ray workers that each hold one loaded network, and written under DEST at its own
relative path. ``DEST/_remaster_manifest/`` records a Parquet row per source; running the same
command again skips what is done and does the rest. Ray is imported only when a job runs.
"""

from __future__ import annotations

from .driver import ArchiveSummary, Workers, remaster_archive
from .manifest import FOLDER, SCHEMA
from .sources import SourceError

__all__ = ["FOLDER", "SCHEMA", "ArchiveSummary", "SourceError", "Workers", "remaster_archive"]
