"""A visitor's own results: the latest few, kept in their browser (not on the server) and shown as a gallery to
download again while the server still has the files (Gradio deletes them after an hour)."""

from __future__ import annotations

from pathlib import Path

from gradio.utils import get_cache_folder, get_upload_folder

__all__ = ["SESSION_RESULTS", "History", "recall", "remember"]

SESSION_RESULTS = 12
"""How many of a visitor's results the gallery keeps, the latest first."""

History = list[list[str]]
"""[path, caption] of each result, the latest first: what the browser keeps."""


def _ours(path: str) -> bool:
    """Whether ``path`` is a result this app wrote that is still there: the browser's list is not trusted further."""
    try:
        file = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, TypeError, ValueError):
        return False
    folders = (Path(get_upload_folder()).resolve(), Path(get_cache_folder()).resolve())
    return file.is_file() and any(file.is_relative_to(folder) for folder in folders)


def remember(history: History | None, result: str | None, summary: str | None) -> tuple[History, History]:
    """``history`` with ``result`` first (once), the latest :data:`SESSION_RESULTS` that are still there: for the
    browser to keep, and for the gallery."""
    kept = recall(history)
    if result and _ours(result):
        caption = f"{Path(result).name} · {(summary or '').split(' · ')[0]}".rstrip(" ·")
        kept = [[result, caption], *(entry for entry in kept if entry[0] != result)]
    kept = kept[:SESSION_RESULTS]
    return kept, kept


def recall(history: History | None) -> History:
    """The results of ``history`` that are still on the server, for the gallery."""
    entries = history if isinstance(history, list) else []
    return [
        [str(entry[0]), str(entry[1])]
        for entry in entries
        if isinstance(entry, (list, tuple)) and len(entry) == 2 and _ours(str(entry[0]))
    ][:SESSION_RESULTS]
