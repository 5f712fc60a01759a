"""Which output frames a video's frames become, and what each is made of.

Each input frame comes with its time, whether it shows the same picture as the drawing before
(:class:`Duplicates`) and whether a scene cut comes before it (:class:`Cuts`). :class:`Timeline`
turns them into output frames (:class:`Slot`), in order, each with its time and what it is made
of: the result of one input frame, or an in-between frame of two.

- Without a frame rate, each input frame gives ``interpolate`` output frames: itself at its own
  time, then in-betweens at equal steps to the next frame's time (the last one's at its end), so
  a variable frame rate stays variable and in-betweens sit in the real gaps.
- With ``fps``, output frame ``k`` is shown at ``start + k / fps``: without interpolation it is the
  last input frame that starts at or before then (times rounded to the nearest output frame, as
  FFmpeg's ``fps`` filter does); with it, the frame of that exact time, made in between where no
  input frame is there.
- A frame that repeats the drawing before it is never run through the network: its output frames
  reuse that drawing's result. When interpolating, the drawings are placed at the times they first
  appear and the in-betweens are made between them, so an animation drawn on twos or threes moves
  on every output frame; a drawing held longer than :data:`MAX_RUN` frames is a pause and stays
  still until its last frame, and then moves on to the next.
- No in-between is blended across a scene cut: the picture before the cut is held until the cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["MAX_RUN", "Cuts", "Duplicates", "Judge", "Slot", "Timeline", "block_difference"]

MAX_RUN = 4
"""The most frames a drawing may be shown for and still be in motion (animation on ones to fours): a drawing
shown longer is a pause, which in-betweens do not smear over."""
BLOCK = 16
"""The side of the blocks :func:`block_difference` compares."""


@dataclass(frozen=True)
class Slot:
    """One output frame: its number, its time, and what it is made of."""

    index: int
    pts: int
    """Its presentation time, in the output's time base."""
    left: int
    """The input frame (its decoding number) whose result it is, or the one before it for an in-between."""
    right: int | None = None
    """The input frame after it, for an in-between."""
    at: float = 0.0
    """Where between ``left`` and ``right`` it is, in (0, 1)."""


def block_difference(first: np.ndarray, second: np.ndarray) -> float:
    """The largest mean absolute difference, in 0–255 steps, of any :data:`BLOCK` × :data:`BLOCK` block of two
    frames of one shape (uint8 or uint16): small between frames of one drawing (compression noise), large where
    anything moves, even a mouth or a subtitle, which a whole frame's mean would hide."""
    height, width = first.shape[:2]
    rows, cols = -(-height // BLOCK), -(-width // BLOCK)
    difference = np.abs(first.astype(np.int32) - second.astype(np.int32)).mean(axis=2, dtype=np.float32)
    padded = np.zeros((rows * BLOCK, cols * BLOCK), np.float32)
    padded[:height, :width] = difference
    counts = np.zeros_like(padded)
    counts[:height, :width] = 1
    sums = padded.reshape(rows, BLOCK, cols, BLOCK).sum(axis=(1, 3))
    means = sums / counts.reshape(rows, BLOCK, cols, BLOCK).sum(axis=(1, 3))
    scale = 255.0 / 65535.0 if first.dtype == np.uint16 else 1.0
    return float(means.max()) * scale


class Duplicates:
    """Tells the frames that show the same picture as the last distinct one (:func:`block_difference` below
    ``threshold``); ``threshold`` None never tells any."""

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold
        self.reference: np.ndarray | None = None
        """The last distinct frame: what a frame is compared with."""

    def repeats(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` shows the last distinct frame's picture (if not, it becomes the one to compare with)."""
        same = (
            self.threshold is not None
            and self.reference is not None
            and self.reference.shape == frame.shape
            and block_difference(self.reference, frame) < self.threshold
        )
        if not same:
            self.reference = frame
        return same


class Cuts:
    """Tells the frames that start a new scene, with PySceneDetect's content detector (changes of hue,
    saturation and brightness between consecutive frames, at its default threshold), on frames shrunk as its
    scene manager shrinks them."""

    _WIDTH = 256

    def __init__(self, rate: float | None) -> None:
        from scenedetect.detectors import ContentDetector

        self.rate = rate or 24.0
        self.detector = ContentDetector(min_scene_len=1)
        self.frames = 0
        self.found = 0

    def starts_scene(self, frame: np.ndarray) -> bool:
        """Whether a cut comes between the frame before and ``frame``."""
        import cv2
        from scenedetect.common import FrameTimecode

        if frame.dtype != np.uint8:
            frame = (frame >> 8).astype(np.uint8)
        if frame.shape[1] > self._WIDTH:
            height = max(1, round(frame.shape[0] * self._WIDTH / frame.shape[1]))
            frame = cv2.resize(frame, (self._WIDTH, height), interpolation=cv2.INTER_AREA)
        cut = bool(self.detector.process_frame(FrameTimecode(self.frames, fps=self.rate), frame[:, :, ::-1]))
        self.frames += 1
        self.found += cut
        return cut


class Judge:
    """What each decoded frame is, told the same way wherever a video's frames are looked at: whether it repeats
    the drawing before it (where repeats are skipped) and whether a scene cut comes before it (where in-betweens
    are made, which no cut may be blended across).

    Args:
        threshold: :class:`Duplicates`' threshold, or None where repeats are not skipped.
        cuts: tell scene cuts.
        rate: the video's frame rate, for the cut detector's clock.
    """

    def __init__(self, threshold: float | None, cuts: bool, rate: float | None) -> None:
        self.duplicates = Duplicates(threshold)
        self.cuts = Cuts(rate) if cuts else None
        self.repeats = 0

    @property
    def looks(self) -> bool:
        """Whether every frame must be converted to be judged (else a frame is only if an output needs it)."""
        return self.duplicates.threshold is not None or self.cuts is not None

    def judge(self, frame: np.ndarray | None) -> tuple[bool, bool]:
        """Whether ``frame`` (None where :attr:`looks` is off) repeats the drawing before it, and whether a cut
        comes before it."""
        if frame is None:
            return False, False
        repeats = self.duplicates.repeats(frame)
        self.repeats += repeats
        return repeats, self.cuts is not None and self.cuts.starts_scene(frame)

    @property
    def cuts_found(self) -> int:
        return self.cuts.found if self.cuts is not None else 0


@dataclass
class _Drawing:
    """The drawing on screen: the frame that first showed it, when, how many frames show it, until when."""

    frame: int
    time: Fraction
    frames: int = 1
    last: Fraction = field(default=Fraction(0))


class Timeline:
    """Output frames from input frames, as the module says, handed out in order as soon as they are known.

    Args:
        start: the first frame's time in seconds.
        time_base: the input's time base; frames' times (``pts``) are counted in it.
        end: the video's end in seconds (the last frame's end).
        total: how many output frames there are.
        interpolate: output frames per input frame without ``fps`` (1: none made in between).
        fps: a constant output rate, or None.
        blend: make in-betweens (interpolation on); else output frames only repeat input frames.
        skip: output frames from the first ``skip`` are not handed out (done in an earlier run).
    """

    def __init__(
        self,
        start: float,
        time_base: Fraction,
        end: float,
        total: int,
        interpolate: int = 1,
        fps: float | None = None,
        blend: bool = False,
        skip: int = 0,
    ) -> None:
        self.time_base, self.total, self.interpolate, self.blend, self.skip = time_base, total, interpolate, blend, skip
        self.rate = Fraction(fps).limit_denominator(1001) if fps else None
        self.start = Fraction(start)
        self.end = Fraction(end)
        self.start_slot = round(self.start * self.rate) if self.rate else 0
        self.frames = 0
        self.emitted = 0
        self.drawing: _Drawing | None = None
        self._waiting: list[tuple[int, Fraction, int]] = []
        """Output frames whose time is known but not yet what they are made of: (number, time, pts)."""
        self._previous: tuple[int, int] | None = None
        """Without ``fps``: the last frame's (number, pts), whose output frames wait for the next frame's time."""
        self._last_pts: int | None = None

    @property
    def time_base_out(self) -> Fraction:
        """The output's time base: the input's, divided among the in-betweens; or one frame at ``fps``."""
        return 1 / self.rate if self.rate else self.time_base / self.interpolate

    def add(self, pts: int | None, repeats: bool, cut: bool) -> list[Slot]:
        """The next input frame (its time, whether it repeats the drawing before it, whether a cut comes before
        it); the output frames now known, in order."""
        pts = self._monotonic(pts)
        index, time = self.frames, pts * self.time_base
        self.frames += 1
        self._place(index, pts, time)
        if self.drawing is not None and repeats:
            drawing = self.drawing
            drawing.frames, drawing.last = drawing.frames + 1, time
            # Without in-betweens, or in a pause, what is shown up to now is that drawing, still; else the
            # output frames wait for the next drawing to move towards.
            return self._resolve(time, inclusive=True) if drawing.frames > MAX_RUN or not self.blend else []
        done = self._resolve(time, inclusive=False, upcoming=(index, time, cut))
        self.drawing = _Drawing(index, time, last=time)
        return done

    def finish(self) -> list[Slot]:
        """The output frames left once every input frame is in: to the video's end, the last drawing held."""
        if self.rate is None:
            if self._previous is not None:
                index, pts = self._previous
                self._between_frames(index, pts, max(round(self.end / self.time_base), pts + 1))
        else:
            self._times_until(self.end)
        return self._resolve(None, inclusive=True)

    def _monotonic(self, pts: int | None) -> int:
        """A missing or repeated time becomes the next tick, so output times always increase."""
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + 1
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _place(self, index: int, pts: int, time: Fraction) -> None:
        """Add the output frames whose times this frame makes known."""
        if self.rate is None:
            if self._previous is not None:
                self._between_frames(*self._previous, pts)
            self._previous = (index, pts)
        elif not self.blend:
            # FFmpeg's fps filter: a frame stands for the output frames from the one nearest its start.
            self._times_until(self.start + Fraction(round((time - self.start) * self.rate)) / self.rate)
        else:
            self._times_until(time)

    def _between_frames(self, index: int, pts: int, next_pts: int) -> None:
        """Without ``fps``: the ``interpolate`` output frames from frame ``index`` at ``pts`` to the next."""
        step = Fraction(next_pts - pts, self.interpolate)
        for k in range(self.interpolate):
            self._append(pts * self.interpolate + k * (next_pts - pts), (pts + k * step) * self.time_base)

    def _times_until(self, until: Fraction) -> None:
        """With ``fps``: the output frames shown before ``until`` (all of them at the end)."""
        while len(self._waiting) + self.emitted < self.total:
            number = len(self._waiting) + self.emitted
            time = Fraction(self.start_slot + number) / self.rate
            if time >= until and until < self.end:
                return
            self._append(self.start_slot + number, time)

    def _append(self, pts: int, time: Fraction) -> None:
        number = self.emitted + len(self._waiting)
        if number < self.total:
            self._waiting.append((number, time, pts))

    def _resolve(
        self, until: Fraction | None, inclusive: bool, upcoming: tuple[int, Fraction, bool] | None = None
    ) -> list[Slot]:
        """What the waiting output frames up to ``until`` are made of: the drawing on screen, or in-betweens of
        it and ``upcoming`` (the next drawing: its frame, time, whether a cut comes before it)."""
        done, drawing = [], self.drawing
        while self._waiting:
            number, time, pts = self._waiting[0]
            if until is not None and (time > until or (time == until and not inclusive)):
                break
            self._waiting.pop(0)
            if drawing is None:  # output frames before the first input frame show it
                left, right, at = upcoming[0], None, 0.0
            else:
                left, right, at = self._made_of(drawing, time, upcoming)
            if number >= self.skip:
                done.append(Slot(number, pts, left, right, at))
            self.emitted += 1
        return done

    def _made_of(
        self, drawing: _Drawing, time: Fraction, upcoming: tuple[int, Fraction, bool] | None
    ) -> tuple[int, int | None, float]:
        moving_from = drawing.time if drawing.frames <= MAX_RUN else drawing.last
        if not self.blend or upcoming is None or upcoming[2] or time <= moving_from:
            return drawing.frame, None, 0.0
        frame, until, _ = upcoming
        return drawing.frame, frame, float((time - moving_from) / (until - moving_from))
