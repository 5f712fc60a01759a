"""Whole videos: every frame, in order, with its time; the other streams copied; resume; bad input.

The videos are made by the tests with PyAV (tests/videos.py); the networks are the tiny
random-weight ones, so a clip takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

import remaster
from remaster import Options
from remaster.architectures import ARCHITECTURES, SRVGGNetCompact, register_architecture
from remaster.batch import run_batch
from remaster.errors import JobBusyError
from remaster.registry import DEFAULT_INTERPOLATOR, MODELS
from remaster.video import VideoOptions, preview_frame, remaster_video
from remaster.video.segments import JobState, state_folder

from . import images
from .commands import Forked
from .fixtures import _SRVGG, command_env, run_module, running_app, slow_model
from .test_cli import weights_for_cli
from .videos import make_clip, read_video

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fast(tiny_models):
    """The tiny SRVGG network at ×2, in exact fp32."""
    return Options("tiny-srvgg", outscale=2, precision="fp32")


def test_every_frame_and_its_time_sound_subtitles_chapters_and_attachments_are_kept(fast, enhancer, tmp_path):
    """Variable frame rate in MKV: the gaps between frames are kept exactly."""
    clip = make_clip(
        tmp_path / "vfr.mkv",
        pts=[0, 40, 80, 200, 240, 260, 300, 420],
        time_base=Fraction(1, 1000),
        audio=True,
        subtitles=True,
        chapters=True,
        attachment=True,
    )
    done = remaster_video(clip.path, tmp_path / "out" / "vfr_out", fast, enhancer=enhancer, segment_frames=3)
    assert done.path == tmp_path / "out" / "vfr_out.mkv" and done.frames == 8 and done.notes == ()
    result, source = read_video(done.path), read_video(clip.path)
    assert result.times == source.times == clip.times
    assert result.size == (64, 48) and result.pix_fmt == "yuv420p"
    assert result.audio_packets == source.audio_packets == clip.audio_packets
    assert result.subtitles == [b"Bonjour"]
    assert result.streams == ["video", "audio", "subtitle", "attachment"]
    assert [c["metadata"]["title"] for c in result.chapters] == ["First", "Second"]
    assert [c["start"] * c["time_base"] for c in result.chapters] == [
        c["start"] * c["time_base"] for c in source.chapters
    ]
    assert result.metadata["title"] == "A test clip"
    assert not state_folder(done.path).exists(), "the job's state is removed once the result is written"
    assert "8 frames" in done.summary() and "tiny-srvgg" in done.summary()


def test_a_constant_rate_mp4_keeps_its_count_duration_and_audio_bytes(fast, enhancer, tmp_path):
    clip = make_clip(
        tmp_path / "cfr.mp4", frames=10, time_base=Fraction(1, 12800), pts=[512 * i for i in range(10)], audio=True
    )
    done = remaster_video(clip.path, tmp_path / "cfr_out", fast, enhancer=enhancer, segment_frames=4)
    assert done.path.suffix == ".mp4"
    with av.open(str(done.path)) as out, av.open(str(clip.path)) as source:
        assert out.streams.video[0].frames == source.streams.video[0].frames == 10
        assert abs(out.duration - source.duration) <= 1e6 / 25, "duration within one frame"
    result = read_video(done.path)
    assert result.times == clip.times
    assert result.audio_packets == clip.audio_packets


@pytest.mark.parametrize(
    ("name", "codec", "audio", "kept"),
    [
        ("clip.avi", "mpeg4", "mp3", ".mkv"),
        ("clip.mov", "libx264", "aac", ".mov"),
        ("clip.webm", "libvpx-vp9", "libopus", ".mkv"),
        ("clip.ts", "libx264", "aac", ".mkv"),
    ],
)
def test_other_containers_and_codecs_are_read_with_their_sound(fast, enhancer, tmp_path, name, codec, audio, kept):
    clip = make_clip(tmp_path / name, frames=5, codec=codec, audio=True, audio_codec=audio)
    done = remaster_video(clip.path, tmp_path / "out", fast, enhancer=enhancer)
    assert done.path.suffix == kept
    result, source = read_video(done.path), read_video(clip.path)
    assert len(result.frames) == len(source.frames) == 5
    assert [float(t) for t in result.times] == pytest.approx([float(t) for t in source.times], abs=1e-3)
    if name.endswith(".ts"):  # MKV holds AAC without the ADTS header that MPEG-TS puts before each packet
        assert result.audio_packets == [packet[7:] for packet in source.audio_packets]
    else:
        assert result.audio_packets == source.audio_packets


@pytest.mark.parametrize("codec", ["h265", "vp9", "av1", "ffv1"])
def test_every_codec_keeps_every_frame_and_the_duration_in_mp4(enhancer, tiny_models, tmp_path, codec):
    """MP4 ends its last frame by the packet's duration, which not every encoder sets."""
    clip = make_clip(tmp_path / "clip.mp4", frames=6, time_base=Fraction(1, 12800), pts=[512 * i for i in range(6)])
    options = Options("tiny-srvgg", outscale=4, precision="fp32")
    done = remaster_video(clip.path, tmp_path / "out", options, VideoOptions(codec=codec), enhancer=enhancer)
    assert done.path.suffix == ".mp4"
    assert read_video(done.path).times == clip.times
    with av.open(str(done.path)) as out, av.open(str(clip.path)) as source:
        assert out.duration == source.duration


def test_lossless_output_is_exactly_the_still_result_of_each_decoded_frame(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=4)
    done = remaster_video(clip.path, tmp_path / "lossless", fast, VideoOptions(codec="ffv1"), enhancer=enhancer)
    result = read_video(done.path)
    assert result.pix_fmt == "bgr0"
    source = read_video(clip.path)
    assert len(result.frames) == len(source.frames) == 4
    for before, after in zip(source.frames, result.frames, strict=True):
        still, _ = enhancer.run(before, fast)
        assert np.array_equal(after, still)


def test_stop_keeps_finished_segments_and_the_same_call_continues(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "long.mkv", frames=9, audio=True)
    target = tmp_path / "long_out"
    lossless = VideoOptions(codec="ffv1")  # bytes that depend on the pixels alone (see tests/slow_video_job.py)
    uninterrupted = remaster_video(
        clip.path, tmp_path / "reference", fast, lossless, enhancer=enhancer, segment_frames=2
    )
    cancel = threading.Event()

    def stop_after_five(fraction: float, desc: str) -> None:
        if desc.startswith("Frame 5 "):
            cancel.set()

    with pytest.raises(remaster.StoppedError, match=r"Stopped: 4 of 9 frames are finished and kept"):
        remaster_video(
            clip.path,
            target,
            fast,
            lossless,
            enhancer=enhancer,
            progress=stop_after_five,
            cancel=cancel,
            segment_frames=2,
        )
    assert not (tmp_path / "long_out.mkv").exists(), "nothing half-written is presented as the result"
    kept = sorted(p.name for p in state_folder(tmp_path / "long_out.mkv").iterdir())
    assert kept == ["000000.json", "000000.nut", "000001.json", "000001.nut", "job.json", "lock"]
    done = remaster_video(clip.path, target, fast, lossless, enhancer=enhancer, segment_frames=2)
    assert done.resumed == 4 and done.frames == 9
    assert done.path.read_bytes() == uninterrupted.path.read_bytes()


def test_a_second_run_on_the_same_result_is_refused_while_the_first_works(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=3)
    busy = pytest.raises(JobBusyError, match="clip_out.mkv is being made by another run right now")
    with JobState.open(tmp_path / "clip_out.mkv", {"another": "job"}, 2), busy:
        remaster_video(clip.path, tmp_path / "clip_out", fast, enhancer=enhancer)
    done = remaster_video(clip.path, tmp_path / "clip_out", fast, enhancer=enhancer)
    assert len(read_video(done.path).frames) == 3, "once the first is done, the next runs"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Random weights for realesr-animevideov3 under its official name, for jobs in another process."""
    return weights_for_cli(tmp_path_factory.mktemp("video"))


@pytest.mark.integration
def test_a_job_killed_midway_resumes_to_the_same_file_as_an_uninterrupted_run(weights_dir, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=12, audio=True)
    # One backend on both sides (torch: a background build finishing midway would change the bytes).
    env = command_env(weights_dir, tmp_path)
    target = tmp_path / "killed"
    job = Forked("tests.slow_video_job", [str(clip.path), str(target)], cwd=ROOT, env=env)
    state = state_folder(tmp_path / "killed.mkv")
    deadline = time.monotonic() + 120
    while len(list(state.glob("*.json"))) < 3 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "killed midway, not finished"
    assert not (tmp_path / "killed.mkv").exists()
    settings = remaster.Settings.from_env(env=env, device="cpu")
    local = remaster.Enhancer(settings)
    options = Options("realesr-animevideov3", outscale=2)
    resumed = remaster_video(clip.path, target, options, VideoOptions(codec="ffv1"), enhancer=local, segment_frames=2)
    assert resumed.resumed >= 4 and resumed.frames == 12
    whole = remaster_video(
        clip.path, tmp_path / "whole", options, VideoOptions(codec="ffv1"), enhancer=local, segment_frames=2
    )
    assert resumed.path.read_bytes() == whole.path.read_bytes()
    assert read_video(resumed.path).times == clip.times


class _RunsOutOfMemory(_SRVGG):
    """SRVGGNetCompact that, like a GPU with little memory, cannot take inputs wider than 100 pixels."""

    refusals = 0

    def forward(self, x):
        if x.shape[-1] > 100:
            type(self).refusals += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x)


class _SmallMemory(SRVGGNetCompact):
    name = "SmallMemorySRVGGNetCompact"

    def build(self, kwargs, device=None):
        return _RunsOutOfMemory(**kwargs)


def test_a_frame_that_runs_out_of_memory_is_retried_in_tiles_and_none_is_dropped(enhancer, tiny_models, tmp_path):
    if _SmallMemory.name not in ARCHITECTURES:
        register_architecture(_SmallMemory())
    spec = replace(tiny_models["tiny-srvgg"].spec, name="tiny-small-memory", architecture=_SmallMemory.name)
    clip = make_clip(tmp_path / "wide.mkv", frames=3, size=(128, 96))
    with MODELS.extended(spec):
        done = remaster_video(
            clip.path,
            tmp_path / "wide_out",
            Options(spec.name, outscale=1, precision="fp32"),
            VideoOptions(codec="ffv1"),
            enhancer=enhancer,
        )
    assert _RunsOutOfMemory.refusals >= 3, "each frame ran out of memory whole"
    result = read_video(done.path)
    assert len(result.frames) == 3 and result.times == clip.times and result.size == (128, 96)


def test_ten_bit_stays_ten_bit_and_the_colour_description_and_rotation_are_kept(fast, enhancer, tmp_path):
    bt709 = (1, 1, 1, 1)
    clip = make_clip(tmp_path / "deep.mkv", frames=3, pix_fmt="yuv420p10le", rotation=90, colour=bt709)
    done = remaster_video(clip.path, tmp_path / "deep_out", fast, VideoOptions(codec="h265"), enhancer=enhancer)
    with av.open(str(done.path)) as out:
        codec = out.streams.video[0].codec_context
        assert codec.name == "hevc" and codec.pix_fmt == "yuv420p10le"
        assert (codec.color_primaries, codec.color_trc, codec.colorspace, codec.color_range) == bt709
    assert read_video(done.path).rotation == 90


def test_an_untagged_small_video_gets_the_matrix_players_assumed_written_down(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "sd.mp4", frames=2)
    done = remaster_video(clip.path, tmp_path / "sd_out", fast, enhancer=enhancer)
    with av.open(str(done.path)) as out:
        codec = out.streams.video[0].codec_context
        assert (codec.color_primaries, codec.color_trc, codec.colorspace, codec.color_range) == (6, 6, 6, 1)


def test_odd_sizes_lose_their_last_line_for_4_2_0_and_webm_keeps_its_container_for_vp9(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "odd.webm", frames=2, size=(22, 18), codec="libvpx-vp9")
    done = remaster_video(
        clip.path,
        tmp_path / "odd_out",
        Options("tiny-srvgg", outscale=1.5, precision="fp32"),
        VideoOptions(codec="vp9"),
        enhancer=enhancer,
    )
    assert done.path.suffix == ".webm" and read_video(done.path).size == (32, 26)
    assert any("cropped" in note for note in done.notes)
    h264 = remaster_video(clip.path, tmp_path / "as_h264", fast, enhancer=enhancer)
    assert h264.path.suffix == ".mkv" and any("WEBM cannot hold H264: written as MKV" in n for n in h264.notes)


def test_a_constant_output_rate_keeps_the_duration(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "vfr.mkv", pts=[0, 100, 150, 400, 450], time_base=Fraction(1, 1000))
    done = remaster_video(clip.path, tmp_path / "cfr", fast, VideoOptions(fps=10), enhancer=enhancer)
    result = read_video(done.path)
    assert result.times == [Fraction(k, 10) for k in range(5)], "0.5 s at 10 frames/s"
    assert done.frames == 5


def test_the_preview_is_the_still_result_of_the_frame_shown_then(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=6)
    before, after, when = preview_frame(clip.path, 0.13, fast, enhancer=enhancer)
    assert when == pytest.approx(0.12)
    decoded = read_video(clip.path)
    assert np.array_equal(before, decoded.frames[3])
    assert np.array_equal(after, enhancer.run(decoded.frames[3], fast)[0])


def test_a_single_frame_is_a_video_too(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "one.mp4", frames=1)
    done = remaster_video(clip.path, tmp_path / "one_out", fast, enhancer=enhancer)
    assert len(read_video(done.path).frames) == 1


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode())
    return path


def _no_frames(path: Path) -> Path:
    """A video track with no frames in it, beside a sound track that has some."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height = 32, 24
        sound = out.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode())
        out.mux(video.encode())
    return path


def _truncated(path: Path, **options: str) -> Path:
    clip = make_clip(path, frames=40, size=(64, 48), container_options=options)
    data = clip.path.read_bytes()
    clip.path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _unknown_codec(path: Path) -> Path:
    make_clip(path, frames=2)
    path.write_bytes(path.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_REMASTER/TEST"))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: (tmp / "notes.mp4").write_text("just text") and tmp / "notes.mp4", "not one FFmpeg can read"),
        (lambda tmp: (tmp / "empty.mkv").write_bytes(b"") is not None and tmp / "empty.mkv", "the file is empty"),
        (lambda tmp: _audio_only(tmp / "song.mka"), r"no video stream \(it holds only audio\)"),
        (lambda tmp: _no_frames(tmp / "none.mkv"), "has no frames"),
        (lambda tmp: _truncated(tmp / "cut.mkv"), r"truncated or corrupt: only \d+ frames, up to"),
        (lambda tmp: _truncated(tmp / "cut.mp4"), "truncated, or not a video"),
        (lambda tmp: _truncated(tmp / "cut.mp4", movflags="faststart"), r"header promises 40 frames, but only \d+"),
        (lambda tmp: _unknown_codec(tmp / "strange.mkv"), "not one this FFmpeg can decode"),
    ],
    ids=[
        "not a video",
        "empty",
        "no video stream",
        "zero frames",
        "truncated mkv",
        "truncated mp4",
        "truncated mp4, index first",
        "unknown codec",
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(fast, enhancer, tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(remaster.InvalidVideoError, match=message):
        remaster_video(source, tmp_path / "out" / "result", fast, enhancer=enhancer)
    assert not (tmp_path / "out").exists()


def test_corrupt_data_in_the_middle_fails_and_says_how_far_it_got(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "bad.mp4", frames=40, size=(64, 48))
    data = bytearray(clip.path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes((b * 7 + 13) % 256 for b in data[middle : middle + 200])
    clip.path.write_bytes(bytes(data))
    with pytest.raises(remaster.InvalidVideoError, match=r"corrupt after \d+ readable frames"):
        remaster_video(clip.path, tmp_path / "out" / "bad", fast, enhancer=enhancer, segment_frames=4)
    assert list((tmp_path / "out").iterdir()) == [], "no result and no state to resume"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_video_seconds": 1}, r"1.6 s long, more than the limit of 1 s"),
        ({"max_video_frames": 39}, r"40 frames, more than the limit of 39"),
        ({"max_video_frame_pixels": 100 * 100}, r"128×96, more than the limit of 0.0 MP a frame"),
        ({"max_input_pixels": 1000}, r"64×48, more than the limit of 0.0 MP a frame"),
    ],
)
def test_limits_are_checked_before_any_work(fast, enhancer, tmp_path, changes, message):
    clip = make_clip(tmp_path / "clip.mkv", frames=40, size=(64, 48))
    strict = enhancer.with_settings(**changes)
    calls = []
    with pytest.raises(remaster.ImageTooLargeError, match=message):
        remaster_video(clip.path, tmp_path / "out" / "clip", fast, enhancer=strict, progress=lambda *a: calls.append(a))
    assert calls == [] and not (tmp_path / "out").exists()


def test_bad_video_options_are_refused_when_made():
    with pytest.raises(remaster.InvalidOptionError, match="codec must be one of h264, h265, vp9, av1, ffv1"):
        VideoOptions(codec="divx")
    with pytest.raises(remaster.InvalidOptionError, match="crf for h264 must be from 0 to 51"):
        VideoOptions(crf=60)
    with pytest.raises(remaster.InvalidOptionError, match="FFV1 is lossless"):
        VideoOptions(codec="ffv1", crf=10)
    with pytest.raises(remaster.InvalidOptionError, match="NVENC encodes h264, h265, av1"):
        VideoOptions(codec="vp9", nvenc=True)
    assert VideoOptions(codec="av1").quality == 32 and VideoOptions(crf=12).quality == 12


def test_nvenc_without_a_gpu_is_refused_before_any_work(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=2)
    with pytest.raises(remaster.InvalidOptionError, match="NVENC needs an NVIDIA GPU"):
        remaster_video(clip.path, tmp_path / "out" / "clip", fast, VideoOptions(nvenc=True), enhancer=enhancer)
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_the_command_line_treats_video_files_as_videos_with_the_official_spellings(weights_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mkv", pts=[0, 100, 150, 400], time_base=Fraction(1, 1000), audio=True)
    images.save(images.rgb(16, 20), folder / "still.png")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    done = run_module(
        "remaster",
        "-i",
        str(folder),
        "-o",
        "out",
        "-n",
        "realesr-animevideov3",
        "-s",
        "2",
        "--fps",
        "10",
        "--suffix",
        "x2",
        "-q",
        weights_dir=weights_dir,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "broken.mp4" in done.stderr and "not one FFmpeg can read" in done.stderr
    assert "2 remastered, 1 failed" in done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_x2.mkv", "still_x2.png"]
    result = read_video(tmp_path / "out" / "clip_x2.mkv")
    assert result.times == [Fraction(k, 10) for k in range(4)] and result.size == (64, 48), "0.44 s at 10 frames/s"
    assert len(result.audio_packets) > 0
    refused = run_module("remaster", "clip.mkv", "--crf", "70", weights_dir=weights_dir, cwd=folder)
    assert refused.returncode == 2 and "crf for h264 must be from 0 to 51" in refused.stderr


def test_a_batch_takes_videos_beside_images(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=True)
    still = images.save(images.rgb(16, 20), tmp_path / "still.png")
    bundle = tmp_path / "more.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.write(clip.path, "inside/second.mp4")
    result = run_batch(enhancer, [clip.path, still, bundle], tmp_path / "results.zip", fast)
    assert result.failed == []
    with zipfile.ZipFile(result.archive) as archive:
        names = sorted(archive.namelist())
        assert names == ["clip_tiny-srvgg_x2.mp4", "second_tiny-srvgg_x2.mp4", "still_tiny-srvgg_x2.png"]
        (tmp_path / "back.mp4").write_bytes(archive.read("clip_tiny-srvgg_x2.mp4"))
    assert read_video(tmp_path / "back.mp4").audio_packets == clip.audio_packets


@pytest.mark.integration
def test_the_page_remasters_a_video_and_previews_one_frame_through_the_api(enhancer, tiny_models, tmp_path):
    clip = make_clip(tmp_path / "holiday.mp4", frames=4, audio=True)
    tiny_rife = replace(tiny_models["tiny-rife"].spec, name=DEFAULT_INTERPOLATOR)
    with (
        MODELS.extended(tiny_rife, replace=True),
        running_app(enhancer, max_video_seconds=90, max_video_frames=2000) as url,
    ):
        page = httpx.get(url + "config", timeout=30).text
        assert "Videos up to 90 s and 2,000 frames" in page, "the page states the limits"
        client = Client(url, verbose=False)
        endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        names = [parameter["parameter_name"] for parameter in endpoints["/remaster_video"]["parameters"]]
        assert names == [
            "video",
            "model",
            "outscale",
            "tile",
            "face_enhance",
            "denoise_strength",
            "face_model",
            "face_strength",
            "codec",
            "crf",
            "interpolate",
            "skip_duplicates",
        ], "the new parameters at the end, with defaults: old calls still work"
        download, player, summary = client.predict(
            handle_file(str(clip.path)),
            "tiny-srvgg",
            2,
            "auto",
            False,
            0.5,
            "GFPGANv1.4",
            0.7,
            "h264",
            18,
            api_name="/remaster_video",
        )
        assert Path(download).name == "holiday_tiny-srvgg_x2.mp4" and "4 frames" in summary
        result = read_video(Path(download))
        assert result.times == clip.times and result.audio_packets == clip.audio_packets and result.size == (64, 48)
        (before, after), caption = client.predict(
            handle_file(str(clip.path)),
            0.1,
            "tiny-srvgg",
            2,
            "auto",
            False,
            0.5,
            "GFPGANv1.4",
            0.7,
            api_name="/preview_video",
        )
        assert "The frame at 0.08 s: 32×24 → 64×48" in caption
        doubled, _, said = client.predict(
            handle_file(str(clip.path)), "none", 1, "auto", False, 0.5, "GFPGANv1.4", 0.7, "ffv1", 20, 2, True,
            api_name="/remaster_video",
        )  # fmt: skip
        assert len(read_video(Path(doubled)).frames) == 8 and "in-between frames made" in said
        _, between = client.predict(
            handle_file(str(clip.path)), 0.05, "tiny-srvgg", 2, "auto", False, 0.5, "GFPGANv1.4", 0.7, 2,
            api_name="/preview_video",
        )  # fmt: skip
        assert "The in-between frame made at 0.06 s" in between

        with Image.open(before) as b, Image.open(after) as a:
            assert b.size == a.size == (64, 48)


def test_frames_in_one_batch_are_the_frames_done_one_by_one(fast, enhancer, tmp_path):
    clip = make_clip(tmp_path / "clip.mkv", frames=5)
    native = Options("tiny-srvgg", outscale=4, precision="fp32")
    lossless = VideoOptions(codec="ffv1")
    batched = remaster_video(clip.path, tmp_path / "batched", native, lossless, enhancer=enhancer, frames_per_batch=3)
    single = remaster_video(clip.path, tmp_path / "single", native, lossless, enhancer=enhancer, frames_per_batch=1)
    one, other = read_video(batched.path), read_video(single.path)
    assert len(one.frames) == 5 and one.times == other.times
    for a, b in zip(one.frames, other.frames, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_the_video_job_reaches_the_network_only_through_the_enhancer(fast, enhancer, tmp_path, monkeypatch):
    from remaster.pipeline import Enhancer

    clip = make_clip(tmp_path / "clip.mkv", frames=4)
    native = Options("tiny-srvgg", outscale=4, precision="fp32")
    prepared = enhancer.prepare(native)
    frames = [np.asarray(images.rgb(24, 32)) for _ in range(3)]
    assert enhancer.batch_frames(prepared, 32, 24, 3, requested=3) == 3
    together = enhancer.run_frames(prepared, frames)
    apart = [enhancer.run(frame, native) for frame in frames]
    for (result, report), (alone, alone_report) in zip(together, apart, strict=True):
        assert np.abs(result.astype(int) - alone.astype(int)).max() <= 1 and result.dtype == alone.dtype
        assert (report.input_size, report.output_size, report.mode, report.model, report.precision) == (
            alone_report.input_size, alone_report.output_size, alone_report.mode, alone_report.model,
            alone_report.precision,
        )  # fmt: skip

    batches: list[int] = []
    run_frames = Enhancer.run_frames

    def counted(self, prepared, frames, **kwargs):
        batches.append(len(frames))
        return run_frames(self, prepared, frames, **kwargs)

    monkeypatch.setattr(Enhancer, "run_frames", counted)
    monkeypatch.setattr(Enhancer, "prepare", lambda self, options, on_wait=None, interpolator=None: prepared)
    monkeypatch.setattr(type(enhancer.engine), "network", lambda *a, **k: pytest.fail("the engine reached directly"))
    done = remaster_video(clip.path, tmp_path / "out", native, VideoOptions(codec="ffv1"), enhancer=enhancer)
    assert sum(batches) == 4 and done.frames == 4


@pytest.mark.integration
def test_agents_get_the_video_tool(enhancer):
    async def list_tools(url: str) -> dict:
        async with (
            streamable_http_client(url + "gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return {tool.name: tool for tool in (await session.list_tools()).tools}

    with running_app(enhancer, mcp=True) as url:
        tools = asyncio.run(list_tools(url))
    video = tools["remaster_video"]
    assert list(video.inputSchema["properties"])[:3] == ["video", "model", "outscale"]
    assert "every frame of a video" in video.description and "preview_video" in tools


def test_segments_are_sized_by_the_time_their_work_takes(enhancer, tiny_models, tmp_path):
    import json

    clip = make_clip(tmp_path / "clip.mkv", frames=12)
    cancel = threading.Event()

    def stop_late(fraction: float, desc: str) -> None:
        if desc.startswith("Frame 11 "):
            cancel.set()

    with slow_model(tiny_models, delay=0.25) as slow:
        options = Options(slow, outscale=1, precision="fp32")
        video = VideoOptions(codec="ffv1", segment_seconds=1)
        with pytest.raises(remaster.StoppedError, match=r"(\d) of 12 frames are finished and kept"):
            remaster_video(
                clip.path, tmp_path / "out", options, video, enhancer=enhancer, progress=stop_late, cancel=cancel
            )
        folder = state_folder(tmp_path / "out.mkv")
        records = [json.loads(path.read_text()) for path in sorted(folder.glob("0*.json"))]
        assert len(records) >= 2 and all(1 <= record["frames"] <= 5 for record in records), (
            "about a second of work each"
        )
        assert json.loads((folder / "job.json").read_text())["segment_frames"] is None
        slower = VideoOptions(
            codec="ffv1", segment_seconds=30
        )  # a size that is not what the result is: the job goes on
        done = remaster_video(clip.path, tmp_path / "out", options, slower, enhancer=enhancer)
    assert done.resumed == sum(record["frames"] for record in records) and done.frames == 12
    assert len(read_video(done.path).frames) == 12
