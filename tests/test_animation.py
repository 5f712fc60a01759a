"""Animated GIF, WebP and PNG: every frame remastered, frame count and timing kept, limits count every frame."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

import remaster
from remaster import Options
from remaster.animation import animation_format, read_animation, save_animation

from . import images


def animated(path: Path, fmt: str, frames: int = 3, size: tuple[int, int] = (20, 16), loop: int = 0) -> Path:
    pictures = [images.rgb(size[1], size[0], seed=seed) for seed in range(frames)]
    durations = [100 + 50 * index for index in range(frames)]
    pictures[0].save(path, format=fmt, save_all=True, append_images=pictures[1:], duration=durations, loop=loop)
    return path


def frames_of(path: Path) -> tuple[list[Image.Image], list[int], int]:
    with Image.open(path) as im:
        frames, durations = [], []
        for frame in ImageSequence.Iterator(im):
            frame.load()
            durations.append(int(frame.info.get("duration") or 0))
            frames.append(frame.convert("RGB"))
        return frames, durations, int(im.info.get("loop", 0) or 0)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_are_read_with_their_timing_and_stills_are_not(tmp_path, fmt):
    path = animated(tmp_path / f"a.{fmt.lower()}", fmt, loop=2)
    animation = read_animation(path, max_pixels=10**6)
    assert len(animation.frames) == 3 and animation.durations == [100, 150, 200] and animation.loop == 2
    assert animation.size == (20, 16) and animation_format(animation) == fmt.lower()
    assert read_animation(images.save(images.rgb(), tmp_path / "still.png"), 10**6) is None


def test_the_input_limit_counts_every_frame(tmp_path):
    path = animated(tmp_path / "long.gif", "GIF", frames=5, size=(20, 20))
    assert read_animation(path, max_pixels=2000) is not None
    with pytest.raises(remaster.ImageTooLargeError, match="5 frames of 20×20, 0.0 MP in all"):
        read_animation(path, max_pixels=1999)


def test_every_frame_is_remastered_and_the_output_limit_counts_them_all(enhancer, tmp_path):
    animation = read_animation(animated(tmp_path / "a.webp", "WEBP"), max_pixels=10**6)
    frames, report = enhancer.run_animation(animation, Options("tiny-srvgg", precision="fp32"))
    assert [frame.size for frame in frames] == [(80, 64)] * 3 and report.frames == 3
    assert "3 frames" in report.summary() and ", 3 frames" in report.description()
    for original, result in zip(animation.frames, frames, strict=True):
        assert np.array_equal(
            np.asarray(result), np.asarray(enhancer.enhance(original, model="tiny-srvgg", precision="fp32"))
        )
    strict = remaster.Enhancer(replace(enhancer.settings, max_output_pixels=80 * 64 * 2), enhancer.store)
    with pytest.raises(remaster.ImageTooLargeError, match="3 frames of 80×64"):
        strict.run_animation(animation, Options("tiny-srvgg"))


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_saved_animations_keep_frame_count_timing_and_loop(tmp_path, fmt):
    frames = [images.rgb(16, 20, seed=seed) for seed in range(4)]
    path = save_animation(frames, tmp_path / f"out.{fmt}", fmt, [100, 200, 300, 400], loop=3, description="Remastered")
    read, durations, loop = frames_of(path)
    assert len(read) == 4 and durations == [100, 200, 300, 400] and loop == 3
    if fmt != "gif":  # GIF has 256 colours a frame
        assert np.array_equal(np.asarray(read[2]), np.asarray(frames[2]))
    with pytest.raises(ValueError, match="JPG cannot hold an animation"):
        save_animation(frames, tmp_path / "x.jpg", "jpg", [100] * 4, 0)


def test_a_truncated_animation_is_a_clear_error(tmp_path):
    path = animated(tmp_path / "cut.gif", "GIF", frames=4, size=(40, 40))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(remaster.InvalidImageError, match="truncated or corrupt"):
        read_animation(path, max_pixels=10**6)


def test_the_library_function_gives_the_first_frame(enhancer, tmp_path):
    path = animated(tmp_path / "a.gif", "GIF")
    result = enhancer.enhance(path, model="tiny-srvgg", precision="fp32")
    first = enhancer.enhance(np.asarray(Image.open(path).convert("RGB")), model="tiny-srvgg", precision="fp32")
    assert result.size == (80, 64) and np.array_equal(np.asarray(result.convert("RGB")), first)
