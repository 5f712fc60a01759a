"""In-between frames (a random-weight RIFE of the real architecture), repeated frames skipped, and scene cuts."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
import torch

import remaster
from remaster import Options
from remaster.ifnet import IFNet
from remaster.pipeline import Enhancer
from remaster.registry import NO_MODEL
from remaster.video import VideoOptions, remaster_video
from remaster.video.timeline import Duplicates, Timeline, block_difference

from . import images
from .videos import frame_pixels, make_clip, read_video

LOSSLESS = {"codec": "ffv1", "interpolation_model": "tiny-rife"}


@pytest.fixture
def fast(tiny_models):
    """The tiny SRVGG network at ×2, in exact fp32."""
    return Options("tiny-srvgg", outscale=2, precision="fp32")


@pytest.fixture
def calls(monkeypatch):
    """How many frames went through the network, counted at the one door into it."""
    counted = {"frames": 0}
    run_frames = Enhancer.run_frames

    def counting(self, prepared, frames, **kwargs):
        counted["frames"] += len(frames) if prepared.network is not None else 0
        return run_frames(self, prepared, frames, **kwargs)

    monkeypatch.setattr(Enhancer, "run_frames", counting)
    return counted


def on_threes(drawings: int, size: tuple[int, int] = (32, 24)) -> list[np.ndarray]:
    """Each drawing three times, as anime drawn on threes is (each repeat with new sensor noise)."""
    pictures = []
    for drawing in range(drawings):
        base = frame_pixels(drawing, *size).astype(np.int16)
        for repeat in range(3):
            noise = np.random.default_rng(drawing * 3 + repeat).integers(-1, 2, base.shape)
            pictures.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return pictures


def test_timeline_places_in_betweens_in_the_real_gaps_and_drawings_at_the_times_they_appear():
    def slots(timeline, frames):
        made = [slot for pts, repeats, cut in frames for slot in timeline.add(pts, repeats, cut)]
        return [(s.pts, s.left, s.right, round(s.at, 3)) for s in made + timeline.finish()]

    tb, plain = Fraction(1, 100), [(0, False, False), (10, False, False), (30, False, False)]
    doubled = slots(Timeline(0, tb, 0.4, 6, interpolate=2, blend=True), plain)
    assert doubled == [
        (0, 0, None, 0.0), (10, 0, 1, 0.5), (20, 1, None, 0.0), (40, 1, 2, 0.5), (60, 2, None, 0.0),
        (70, 2, None, 0.0),
    ], "a variable rate: the in-between of 0.1 → 0.3 s is at 0.2 s; the last frame is held to the end"  # fmt: skip
    threes = [(10 * i, i % 3 != 0, False) for i in range(6)]
    assert slots(Timeline(0, tb, 0.6, 6, interpolate=1, blend=True), threes) == [
        (0, 0, None, 0.0), (10, 0, 3, 0.333), (20, 0, 3, 0.667), (30, 3, None, 0.0), (40, 3, None, 0.0),
        (50, 3, None, 0.0),
    ], "drawings on threes move on every frame towards the next drawing"  # fmt: skip
    paused = [(10 * i, 0 < i < 6, False) for i in range(7)]
    assert [s[1:] for s in slots(Timeline(0, tb, 0.7, 7, interpolate=1, blend=True), paused)][:6] == [
        (0, None, 0.0)
    ] * 6
    cut = [(0, False, False), (10, False, True)]
    assert slots(Timeline(0, tb, 0.2, 4, interpolate=2, blend=True), cut)[1] == (10, 0, None, 0.0), "held at a cut"
    target = slots(Timeline(0, tb, 0.3, 8, fps=25, blend=True), plain)
    assert [pts for pts, *_ in target] == list(range(8)) and target[1] == (1, 0, 1, 0.4)
    resumed = slots(Timeline(0, tb, 0.4, 6, interpolate=2, blend=True, skip=3), plain)
    assert resumed == doubled[3:], "a resumed run hands out the same frames from where it stopped"


def test_the_block_difference_tells_a_repeat_from_a_mouth_that_moves():
    picture = images.to_uint8(images.gradient(64, 64, seed=1))
    noisy = np.clip(picture.astype(np.int16) + np.random.default_rng(2).integers(-3, 4, picture.shape), 0, 255)
    mouth = picture.copy()
    mouth[18:30, 18:30] = 255 - mouth[18:30, 18:30]  # 144 of 4096 pixels: 3.5% of the frame
    assert block_difference(picture, noisy.astype(np.uint8)) < 3
    assert block_difference(picture, mouth) > 40, "the whole frame's mean would be under 2"
    duplicates = Duplicates(10.0)
    assert [duplicates.repeats(f) for f in (picture, noisy.astype(np.uint8), mouth, mouth)] == [
        False,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize("interpolate", [2, 3])
def test_in_betweens_multiply_the_frames_at_exact_times_with_the_sound_kept(
    fast, enhancer, tmp_path, calls, interpolate
):
    pts = [0, 40, 120, 160, 280]  # milliseconds: a variable frame rate
    clip = make_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), audio=True)
    video = VideoOptions(interpolate=interpolate, **LOSSLESS)
    done = remaster_video(clip.path, tmp_path / "out", fast, video, enhancer=enhancer)
    result, source = read_video(done.path), read_video(clip.path)
    assert done.frames == len(result.frames) == 5 * interpolate and done.in_betweens == 4 * (interpolate - 1)
    ends = [*pts[1:], 320]  # the last frame lasts until the video's end
    expected = [
        Fraction(interpolate * start + k * (end - start), interpolate * 1000)
        for start, end in zip(pts, ends, strict=True)
        for k in range(interpolate)
    ]
    assert result.times == [Fraction(round(t * 1000), 1000) for t in expected], "MKV keeps milliseconds"
    assert result.audio_packets == source.audio_packets
    assert calls["frames"] == 5, "the network runs once per input frame"
    stills = [enhancer.run(frame, fast)[0] for frame in source.frames]
    made = enhancer.interpolator.between("tiny-rife", stills[1], stills[2], [1 / interpolate], flow_scale=0.5)[0]
    assert np.array_equal(result.frames[1 * interpolate], stills[1])
    assert np.array_equal(result.frames[1 * interpolate + 1], made), "the in-between RIFE makes of the two results"


def test_a_target_rate_gets_in_betweens_where_no_frame_is(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "cfr.mp4", frames=5, time_base=Fraction(1, 10), rate=10, audio=True)
    done = remaster_video(
        clip.path, tmp_path / "out", fast, VideoOptions(fps=25, interpolate=2, **LOSSLESS), enhancer=enhancer
    )
    result = read_video(done.path)
    assert len(result.frames) == done.frames == round(0.5 * 25)
    assert result.times == [Fraction(k, 25) for k in range(done.frames)]
    assert done.in_betweens == 8, "at 0.04, 0.08, 0.12, 0.16 s… only 0, 0.2 and 0.4 s are frames of the input"
    assert result.audio_packets == read_video(clip.path).audio_packets


def test_no_in_between_is_blended_across_a_scene_cut(fast, enhancer, tmp_path):
    first = [frame_pixels(i, 32, 24) for i in range(3)]
    second = [255 - frame_pixels(i + 7, 32, 24)[:, :, ::-1] for i in range(3)]  # other colours, other light
    clip = make_clip(tmp_path / "cut.mkv", pictures=first + second)
    done = remaster_video(clip.path, tmp_path / "out", fast, VideoOptions(interpolate=2, **LOSSLESS), enhancer=enhancer)
    result = read_video(done.path)
    assert done.cuts == 1 and len(result.frames) == 12 and done.in_betweens == 4
    assert np.array_equal(result.frames[5], result.frames[4]), "the last picture before the cut is held"
    assert not np.array_equal(result.frames[3], result.frames[2]), "within a scene, an in-between"


def test_repeated_frames_run_the_network_once_per_drawing_and_every_frame_is_kept(fast, enhancer, tmp_path, calls):
    clip = make_clip(tmp_path / "threes.mkv", pictures=on_threes(3))
    done = remaster_video(clip.path, tmp_path / "out", fast, VideoOptions(codec="ffv1"), enhancer=enhancer)
    result = read_video(done.path)
    assert calls["frames"] == 3 and done.repeats == 6 and len(result.frames) == 9
    assert result.times == read_video(clip.path).times
    assert "6 repeated frames not run again" in done.summary()
    assert all(np.array_equal(result.frames[k], result.frames[k - k % 3]) for k in range(9))
    calls["frames"] = 0
    every = VideoOptions(codec="ffv1", skip_duplicates=False)
    again = remaster_video(clip.path, tmp_path / "every", fast, every, enhancer=enhancer)
    assert calls["frames"] == 9 and again.repeats == 0 and len(read_video(again.path).frames) == 9
    calls["frames"] = 0
    smooth = remaster_video(
        clip.path, tmp_path / "smooth", fast, VideoOptions(interpolate=2, **LOSSLESS), enhancer=enhancer
    )
    assert calls["frames"] == 3 and smooth.frames == 18
    assert smooth.in_betweens == 10, "drawings on threes: every output frame between two drawings is an in-between"


def test_an_interrupted_run_with_in_betweens_resumes_to_the_same_frames(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "threes.mkv", pictures=on_threes(3), audio=True)
    video = VideoOptions(interpolate=2, **LOSSLESS)
    reference = remaster_video(clip.path, tmp_path / "reference", fast, video, enhancer=enhancer, segment_frames=4)
    cancel = threading.Event()

    def stop_midway(fraction: float, desc: str) -> None:
        if desc.startswith("Frame ") and int(desc.split()[1]) >= 7:
            cancel.set()

    with pytest.raises(remaster.StoppedError, match=r"(\d+) of 18 frames are finished and kept") as stopped:
        remaster_video(
            clip.path, tmp_path / "out", fast, video, enhancer=enhancer,
            progress=stop_midway, cancel=cancel, segment_frames=4,
        )  # fmt: skip
    kept = int(stopped.value.args[0].split(": ")[1].split()[0])
    done = remaster_video(clip.path, tmp_path / "out", fast, video, enhancer=enhancer, segment_frames=4)
    assert 0 < done.resumed == kept < 18 and done.frames == 18
    one, other = read_video(done.path), read_video(reference.path)
    assert one.times == other.times and one.audio_packets == other.audio_packets
    for a, b in zip(one.frames, other.frames, strict=True):
        assert np.array_equal(a, b)


def test_interpolation_alone_keeps_the_size(enhancer, tiny_models, tmp_path, calls):
    clip = make_clip(tmp_path / "clip.mkv", frames=4)
    none = Options(NO_MODEL, outscale=4)
    assert none.outscale == 1
    done = remaster_video(clip.path, tmp_path / "out", none, VideoOptions(interpolate=2, **LOSSLESS), enhancer=enhancer)
    result = read_video(done.path)
    assert result.size == (32, 24) and len(result.frames) == 8 and calls["frames"] == 0
    assert np.array_equal(result.frames[0], read_video(clip.path).frames[0]), "the frames as they were"
    with pytest.raises(remaster.InvalidOptionError, match="keeps a video's frames as they are"):
        enhancer.run(images.rgb(), none)


def test_bad_interpolation_options_are_refused_when_made(tiny_models):
    with pytest.raises(remaster.InvalidOptionError, match="interpolate must be from 1 to 16"):
        VideoOptions(interpolate=17)
    with pytest.raises(remaster.InvalidOptionError, match="interpolate must be a whole number"):
        VideoOptions(interpolate=2.5)
    with pytest.raises(remaster.UnknownModelError):
        VideoOptions(interpolate=2, interpolation_model="tiny-srvgg")
    with pytest.raises(remaster.InvalidOptionError, match="duplicate_threshold must be from 0.5 to 255"):
        VideoOptions(duplicate_threshold=0)


def test_the_official_weights_load_less_their_refinement_networks(tmp_path):
    from remaster.architectures import get_architecture

    torch.manual_seed(0)
    network = IFNet()
    bundled = {f"module.{key}": value for key, value in network.state_dict().items()}
    bundled["module.contextnet.conv1.0.weight"] = torch.zeros(8, 3, 3, 3)  # as in flownet.pkl: not v4's
    path = tmp_path / "flownet.pkl"
    torch.save(bundled, path)
    from remaster.engine import load_checkpoint

    loaded = get_architecture("IFNet").load({}, load_checkpoint(path, ""))
    first, second = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded.eval()(first, second, 0.5), network.eval()(first, second, 0.5))


def test_the_preview_shows_the_in_between_the_whole_run_makes(fast, enhancer, tmp_path):
    from remaster.video import preview_frame

    clip = make_clip(tmp_path / "clip.mkv", frames=4)
    video = VideoOptions(interpolate=2, **LOSSLESS)
    before, after, when = preview_frame(clip.path, 0.05, fast, video, enhancer=enhancer)
    assert when == pytest.approx(0.06), "halfway between the frames at 0.04 and 0.08 s"
    assert np.array_equal(before, read_video(clip.path).frames[1])
    done = remaster_video(clip.path, tmp_path / "out", fast, video, enhancer=enhancer)
    assert np.array_equal(after, read_video(done.path).frames[3])


def test_a_batch_makes_in_betweens_in_its_videos_and_says_why_a_still_cannot_go_without_a_model(
    enhancer, tiny_models, tmp_path
):
    import zipfile

    from remaster.batch import run_batch

    clip = make_clip(tmp_path / "clip.mkv", frames=3)
    still = tmp_path / "still.png"
    images.rgb().save(still)
    video = VideoOptions(interpolate=3, **LOSSLESS)
    done = run_batch(enhancer, [clip.path, still], tmp_path / "out.zip", Options(NO_MODEL), video=video)
    assert [name for name, _ in done.done] == ["clip.mkv"]
    assert done.failed[0][0] == "still.png" and "keeps a video's frames as they are" in done.failed[0][1]
    with zipfile.ZipFile(done.archive) as archive:
        archive.extract(done.done[0][1], tmp_path / "unzipped")
    assert len(read_video(tmp_path / "unzipped" / done.done[0][1]).frames) == 9


@pytest.mark.integration
def test_the_command_line_interpolates_alone_and_to_a_target_rate(tmp_path):
    from .fixtures import run_module

    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    torch.save(IFNet().state_dict(), weights / "rife-v4.0.pth")  # a user's own copy: trusted, said once
    clip = make_clip(tmp_path / "clip.mkv", pts=[0, 40, 80, 200], time_base=Fraction(1, 1000), audio=True)
    doubled = run_module(
        "remaster", str(clip.path), "-o", "out", "-n", NO_MODEL, "--interpolate", "2", "--codec", "ffv1",
        weights_dir=weights, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert doubled.returncode == 0, doubled.stderr
    assert "in-between frames made" in doubled.stderr
    result = read_video(tmp_path / "out" / "clip_none_x1.mkv")
    assert result.size == (32, 24) and [float(t) for t in result.times] == [0, 0.02, 0.04, 0.06, 0.08, 0.14, 0.2, 0.22]
    assert result.audio_packets == clip.audio_packets
    target = run_module(
        "remaster", str(clip.path), "-o", "out", "-n", NO_MODEL, "--fps", "25", "--interpolate", "--suffix", "25",
        weights_dir=weights, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert target.returncode == 0, target.stderr
    assert read_video(tmp_path / "out" / "clip_25.mkv").times == [Fraction(k, 25) for k in range(6)]


def test_parts_made_apart_in_any_order_join_to_the_one_machine_result(fast, enhancer, tmp_path):
    from remaster.video.job import VideoJob
    from remaster.video.join import join
    from remaster.video.parts import Layout, PartsFolder, analyse, make_part

    pictures = on_threes(4) + [frame_pixels(i + 20, 32, 24) for i in range(5)]  # repeats, then motion
    pts = [40 * k + (10 if k > 6 else 0) for k in range(len(pictures))]  # a variable frame rate
    clip = make_clip(
        tmp_path / "clip.mkv", pictures=pictures, pts=pts, time_base=Fraction(1, 1000), audio=True,
        options={"g": "4", "keyint_min": "4", "sc_threshold": "0"},
    )  # fmt: skip
    video = VideoOptions(interpolate=2, **LOSSLESS)
    whole = remaster_video(clip.path, tmp_path / "whole", fast, video, enhancer=enhancer)
    job = VideoJob.of(enhancer, clip.path, fast, video)
    layout = analyse(job.info, job.plan, job.video, job.total)
    assert layout.total == job.total == 2 * len(pictures) and layout.repeats == 8
    layout.save(tmp_path / "layout.npz")
    layout = Layout.load(tmp_path / "layout.npz")
    folder = PartsFolder(tmp_path / "parts")
    sizes = [(0, 0, 5), (1, 5, 9), (2, 14, job.total - 14)]  # boundaries between keyframes, in an in-between run
    for index, first, count in reversed(sizes):
        make_part(enhancer, job.prepared, job.info, job.plan, layout, folder, index, first, count)
    assert folder.covering(job.total - 1) is None and [part.first for part in folder.covering(job.total)] == [0, 5, 14]
    target = tmp_path / f"joined{job.plan.suffix}"
    join(job.info, job.plan, folder.covering(job.total), target, folder.folder)
    one, other = read_video(target), read_video(whole.path)
    assert one.times == other.times and one.audio_packets == other.audio_packets
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, other.frames, strict=True))
