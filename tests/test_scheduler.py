"""How the archive hands out a video's parts: sized by measured speed, shrinking at the end so workers finish
together."""

from __future__ import annotations

import heapq

import pytest

from remaster.archive.scheduler import FIRST_PART_FRAMES, Laid, PartDone, Scheduler

pytestmark = pytest.mark.unit


def finish_times(workers: int, frames: int, seconds_per_frame: float, told: int) -> dict[str, float]:
    """When each of ``workers`` equal workers runs out of work on one film of ``frames``, the scheduler told of
    ``told`` workers; parts are about 60 s of work, as the archive's default."""
    scheduler = Scheduler([], ["film.mkv"], batch_size=4, segment_seconds=60, workers=told)
    names = [f"host:{k}" for k in range(workers)]
    layout = scheduler.next_for(names[0])
    assert layout is not None and layout.kind == "layout"
    scheduler.laid_out("film.mkv", Laid(frames, (), (), None, None, 0, 0, names[0]))  # type: ignore[arg-type]
    clock: list[tuple[float, str, object]] = [(0.0, name, None) for name in names]
    finished = dict.fromkeys(names, 0.0)
    while clock:
        now, name, task = heapq.heappop(clock)
        if task is not None:
            scheduler.part_done(task, PartDone(task.count, task.count * seconds_per_frame, name))
            finished[name] = now
        following = scheduler.next_for(name)
        if following is not None:
            heapq.heappush(clock, (now + following.count * seconds_per_frame, name, following))
    assert scheduler.video("film.mkv").complete
    return finished


def test_a_films_parts_shrink_at_its_end_so_two_workers_finish_together():
    together = finish_times(2, 300, 0.16, told=2)
    assert max(together.values()) - min(together.values()) <= FIRST_PART_FRAMES * 0.16
    alone = finish_times(2, 300, 0.16, told=1)  # parts of a minute each: one worker does nearly all of it
    assert max(alone.values()) - min(alone.values()) > 20
    assert max(together.values()) < 0.6 * max(alone.values())


def test_a_long_films_parts_stay_about_a_minute_of_work():
    scheduler = Scheduler([], ["film.mkv"], batch_size=4, segment_seconds=60, workers=2)
    scheduler.next_for("a")
    scheduler.laid_out("film.mkv", Laid(100_000, (), (), None, None, 0, 0, "a"))  # type: ignore[arg-type]
    first = scheduler.next_for("a")
    assert first is not None and first.count == FIRST_PART_FRAMES
    scheduler.part_done(first, PartDone(first.count, first.count * 0.5, "a"))
    second = scheduler.next_for("a")
    assert second is not None and second.count == 120  # 60 s at 0.5 s a frame, far below its share
