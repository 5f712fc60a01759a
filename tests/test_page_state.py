"""What the page says and keeps, in-process: the progress line, the background work, the face switches, the
session's results."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from gradio.utils import get_upload_folder

import remaster
from remaster import background
from remaster.page.progress import PageProgress, time_left
from remaster.page.session import SESSION_RESULTS, recall, remember
from remaster.page.status import background_status, faces_unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_is_said_from_the_rate_the_work_moves_at():
    clock, told = Clock(), []
    progress = PageProgress(lambda fraction, desc: told.append((fraction, desc)), clock=clock)
    progress(0.0, "Loading RealESRGAN_x4plus…")
    clock.now = 30.0  # loading took 30 s: not counted
    progress(0.1, "Upscaling the image")
    clock.now = 31.0
    progress(0.2, "Upscaling the image")  # too soon to tell
    clock.now = 34.0
    progress(0.5, "Upscaling the image")  # 0.4 in 4 s: 0.5 more in 5 s
    assert [desc for _, desc in told] == [
        "Loading RealESRGAN_x4plus…",
        "Upscaling the image",
        "Upscaling the image",
        "Upscaling the image · a few seconds left",
    ]
    clock.now = 40.0
    progress(0.05, "Upscaling the image")  # began again (smaller tiles): the rate is measured afresh
    assert told[-1] == (0.05, "Upscaling the image")
    assert PageProgress(None)(0.5, "nobody watches") is None


def test_the_time_left_reads_as_a_person_would_say_it():
    assert [time_left(s) for s in (4, 42, 185, 7200)] == [
        "a few seconds left",
        "about 40 s left",
        "about 3 min left",
        "about 2.0 h left",
    ]


def test_a_video_says_its_own_time_left_and_an_agent_gets_steps():
    clock, told = Clock(), []
    progress = PageProgress(lambda *args, **kwargs: told.append((args, kwargs)), steps=True, clock=clock)
    progress(0.1, "Frame 10 of 100, 4.0 frames/s, 22 s left")
    clock.now = 10.0
    progress(0.5, "Frame 50 of 100, 4.0 frames/s, 12 s left")
    assert told[-1] == (((50, 100),), {"desc": "Frame 50 of 100, 4.0 frames/s, 12 s left", "unit": "%"})


def test_background_builds_are_named_where_they_slow_the_work():
    release = threading.Event()
    background.start(release.wait, name="the OpenVINO build of tiny-test (torch.float32)")
    try:
        told = []
        PageProgress(lambda fraction, desc: told.append(desc))(0.3, "Upscaling the image")
        assert told == [
            "Upscaling the image · slower while the OpenVINO build of tiny-test (torch.float32) runs in the background"
        ]
        assert "**In the background:** the OpenVINO build of tiny-test" in background_status()
    finally:
        release.set()
        background.wait_for_all(5)
    assert background_status() == ""


def test_the_face_switch_says_why_faces_cannot_be_restored(enhancer, tiny_faces, tmp_path):
    assert faces_unavailable(enhancer) is None, "nothing asked for yet: fetched on demand"
    offline = remaster.Enhancer(
        replace(enhancer.settings, offline=True, hub_cache_dir=tmp_path / "empty-hub", cache_dir=tmp_path / "empty")
    )
    offline.store.prefetch([remaster.get_model("detection_Resnet50_Final")]).join(30)
    why = faces_unavailable(offline)
    assert why is not None and why.startswith("Not available: ") and "detection_Resnet50_Final.pth" in why


def test_the_session_keeps_the_latest_results_that_are_still_there(tmp_path):
    folder = Path(get_upload_folder()) / "remaster-test-session"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for index in range(SESSION_RESULTS + 2):
        path = folder / f"result{index}.png"
        path.write_bytes(b"png")
        results.append(str(path))
    history: list = []
    for index, path in enumerate(results):
        history, gallery = remember(history, path, f"{index}×1 → {4 * index}×4 (RGB) · tiny-srvgg · cpu")
    assert gallery == history and len(history) == SESSION_RESULTS
    last = len(results) - 1
    assert history[0] == [results[-1], f"result{last}.png · {last}×1 → {4 * last}×4 (RGB)"]
    Path(results[-1]).unlink()
    assert [entry[0] for entry in recall(history)] == results[-2 : -SESSION_RESULTS - 1 : -1], "a deleted file goes"
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"png")
    assert recall([[str(outside), "not ours"], ["/etc/passwd", "no"], "junk"]) == [], "only the app's own results"
    assert remember(None, str(outside), "x")[0] == []


@pytest.mark.parametrize("history", [None, "not a list", [[1]], [[None, None]]])
def test_a_damaged_history_from_the_browser_is_an_empty_one(history):
    assert recall(history) == []
