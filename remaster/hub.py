"""The Hugging Face Hub: one download function for weight files and model files, and whether the Hub answers.

Both go through ``huggingface_hub`` with the settings' endpoint, token, cache folder and
timeout, so a weight file and a user's ``hf://`` model file are fetched, cached and refused
offline the same way.
"""

from __future__ import annotations

from pathlib import Path

from .errors import brief
from .settings import Settings
from .version import __version__

__all__ = ["hub_download", "hub_unreachable"]


def hub_download(settings: Settings, repo: str, filename: str, revision: str, *, local_only: bool = False) -> Path:
    """The file ``filename`` of the Hub repo ``repo`` at ``revision``, from the Hub's cache or downloaded into it.

    Args:
        local_only: take the file from the cache only (offline); never ask the Hub.

    Raises:
        huggingface_hub's errors: ``LocalEntryNotFoundError`` when the file is neither cached nor reachable,
        ``EntryNotFoundError``, ``RepositoryNotFoundError``, ``RevisionNotFoundError``, HTTP errors.
    """
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            repo_id=repo,
            filename=filename,
            revision=revision,
            cache_dir=settings.hub_cache_dir,
            endpoint=settings.hub_endpoint,
            token=settings.hub_token,
            local_files_only=local_only or settings.offline,
            etag_timeout=settings.download_timeout,
            library_name="remaster",
            library_version=__version__,
        )
    )


def hub_unreachable(settings: Settings, timeout: float) -> str | None:
    """Why the Hugging Face Hub (``HF_ENDPOINT``) does not answer, or None when it does (with any HTTP status)."""
    import httpx

    endpoint = settings.hub_endpoint or "https://huggingface.co"
    try:
        httpx.head(endpoint, timeout=timeout)
    except httpx.HTTPError as error:
        return f"the Hugging Face Hub ({endpoint}) did not answer ({brief(error, 120)})"
    return None
