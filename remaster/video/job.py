"""A whole video through the engine: decoding, the network and encoding overlapped in a bounded pipeline.

Three threads pass frames along two short queues: one decodes the input and turns frames
into RGB arrays, this one runs them through :meth:`Enhancer.run_frames` (the same path as a
still: model, scale, tiles, precision, faces, denoise, out-of-memory retries with smaller tiles;
whole frames batched where that pays), and one converts the results back and encodes them, a
segment at a time. The queues are
short so memory stays bounded and none of the three waits long on the others.

Every input frame is decoded, in order, with its own presentation time; none is dropped
(with ``fps`` set, frames are repeated or dropped only to fill a constant rate). Finished
segments stay on disk (see :mod:`remaster.video.segments`), so the same call after a stop
or a crash continues where it was; the result appears under its name only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .. import pixels
from ..errors import InvalidVideoError, StoppedError, brief
from ..image_io import Picture
from ..options import Options
from ..pipeline import Enhancer, Prepared, Report, default_enhancer
from ..registry import NO_MODEL
from ..version import __version__
from . import VideoOptions
from .encoding import OutputPlan, plan_output, source_colour, sws_matrix, sws_range
from .frames import converter, decoded_frames, to_array, to_encoder
from .join import join
from .probe import VideoInfo, open_input, probe
from .segments import JobState, SegmentWriter, fingerprint
from .timeline import Judge, Slot, Timeline

__all__ = ["VideoJob", "VideoResult", "preview_frame", "remaster_video"]

log = logging.getLogger(__name__)

QUEUE_BYTES = 256 << 20
"""Most bytes of frames waiting in each queue."""
_POLL = 0.2


@dataclass(frozen=True)
class VideoResult:
    """A written video and what was done."""

    path: Path
    report: Report
    frames: int
    """Frames in the result."""
    resumed: int
    """Of those, frames that an earlier, stopped run had finished."""
    notes: tuple[str, ...]
    """What the user should know: a changed container, a stream that could not be copied."""
    timings: dict[str, float]
    """Seconds spent decoding, in the network, encoding and joining (the first three overlap)."""
    first_input: Picture | None = None
    """The first frame remastered in this run, and its result, for previews."""
    first_output: np.ndarray | None = None
    repeats: int = 0
    """Input frames that showed the same picture as the one before them: their results were reused."""
    in_betweens: int = 0
    """Output frames made in between two input frames, in this run."""
    cuts: int = 0
    """Scene cuts found (no in-between is blended across one); counted where frames are interpolated."""

    def summary(self) -> str:
        """One line, with the notes after it."""
        resumed = f" · {self.resumed} frames from the earlier run" if self.resumed else ""
        return " ".join([self.report.summary() + resumed + self._made(), *(f"· {note}" for note in self.notes)])

    def _made(self) -> str:
        parts = []
        if self.repeats:
            parts.append(f"{self.repeats} repeated frames not run again")
        if self.in_betweens or self.cuts:
            parts.append(f"{self.in_betweens} in-between frames made, {self.cuts} scene cuts not blended across")
        return "".join(f" · {part}" for part in parts)


@dataclass
class _Step:
    """What the decoder hands on: the frames whose results the output frames now known (and later ones) need,
    each frame once, and those output frames."""

    arrays: dict[int, np.ndarray]
    slots: list[Slot]


@dataclass
class _Output:
    """Output frames that show one picture: the first one's number, each one's time, the picture."""

    first: int
    pts: list[int]
    array: np.ndarray


_END = object()


@dataclass
class _Shared:
    """What the three threads share: the stop flag, the first error, and where the time went."""

    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    timings: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "network": 0.0, "encode": 0.0})

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.stop.set()


def remaster_video(
    source: str | Path,
    target: str | Path,
    options: Options | None = None,
    video: VideoOptions | None = None,
    *,
    enhancer: Enhancer | None = None,
    progress: Callable[..., object] | None = None,
    cancel: threading.Event | None = None,
    segment_frames: int | None = None,
    frames_per_batch: int | None = None,
) -> VideoResult:
    """Remaster every frame of the video ``source`` and write it to ``target`` plus the right extension.

    Audio, subtitle and attachment streams, chapters and metadata are copied packet for packet.
    Run the same call again after a stop or a crash and it continues where it was.

    Args:
        source: a video file FFmpeg reads (MP4, MKV, WebM, MOV, AVI…).
        target: the result's path without its extension: the input's container is kept where it
            can hold the codec (MP4, MOV, MKV, WebM), else it is MKV.
        options: the model and its choices, as for a still.
        video: codec, quality, frame rate (the defaults: H.264 at CRF 20, every frame at its time).
        enhancer: keeps the networks between calls (a process-wide one when omitted).
        progress: called as ``progress(fraction, desc)``, with frames done, frames per second and time left.
        cancel: when set, the work stops within a frame or a tile, keeping finished segments.
        segment_frames: output frames per resumable segment (default: as many as ``video.segment_seconds`` of
            work make, measured as the job goes; a job resumed keeps the size it started with).
        frames_per_batch: most frames through the network at once (default: on CUDA as many as the free
            memory holds, up to 16; elsewhere one). Only whole frames at the network's own scale, without
            faces or transparency, are batched; the others go one by one.

    Returns:
        The :class:`VideoResult`.

    Raises:
        InvalidVideoError: not a video, no video stream, no frames, truncated, corrupt or unsupported.
        ImageTooLargeError: over the length, frame-count or frame-size limits (checked before any work).
        InvalidOptionError: an option is out of range, or NVENC was asked for without a GPU.
        StoppedError: cancelled or over the time limit; the same call continues the job.
        JobBusyError: another run is making the same result now.
        OSError: the result could not be written.
    """
    enhancer = enhancer if enhancer is not None else default_enhancer()
    started = time.perf_counter()
    report = _reporter(progress)
    target = Path(target)
    job = VideoJob.of(enhancer, source, options, video, lambda message: report(0.0, message))
    info, plan, prepared, options, video, total = job.info, job.plan, job.prepared, job.options, job.video, job.total
    result_path = target.with_name(target.name + plan.suffix)
    with JobState.open(result_path, job.identity, segment_frames) as state:
        resumed = state.done_frames()
        shared = _Shared()
        channels = 4 if plan.array_format.startswith("rgba") else 3
        enhancer.batch_frames(prepared, info.width, info.height, channels, frames_per_batch)
        work = _Work(enhancer, prepared, info, plan, state, total, resumed, shared, report, cancel, started, video)
        try:
            work.run()
        except InvalidVideoError:
            state.remove()  # the same input fails the same way: nothing to resume
            raise
        segments = state.segments()
        covered = sum(segment.frames for segment in segments)
        if covered != total:  # a segment deleted under the job (a cache cleaner, say): never a shorter video
            raise StoppedError(
                f"Only {covered} of {total} frames are in {state.folder}: some finished segments are missing; "
                "run the same again to redo them"
            )
        report(0.99, "Joining the segments and copying the other streams")
        joined = time.perf_counter()
        notes = join(info, plan, segments, result_path, state.folder)
        shared.timings["join"] = time.perf_counter() - joined
        state.remove()
        shared.timings["wall"] = time.perf_counter() - started
        mode = f"{plan.pix_fmt}, {video.codec.upper()}"
        summary = prepared.report(info.size, (plan.width, plan.height), mode, shared.timings["wall"])
        summary = summary.totalled([work.faces] if work.faces is not None else [], frames=total)
        report(1.0, "Done")
        log.info("%s", summary.summary())
        return VideoResult(
            path=result_path,
            report=summary,
            frames=total,
            resumed=resumed,
            notes=plan.notes + tuple(notes),
            timings=shared.timings,
            first_input=work.first_input,
            first_output=work.first_output,
            repeats=work.repeats,
            in_betweens=work.in_betweens,
            cuts=work.cuts,
        )


@dataclass(frozen=True)
class VideoJob:
    """What remastering one video takes, worked out before any frame is: the video, its output, the networks."""

    info: VideoInfo
    plan: OutputPlan
    prepared: Prepared
    options: Options
    video: VideoOptions
    total: int
    """Output frames."""

    @classmethod
    def of(
        cls,
        enhancer: Enhancer,
        source: str | Path,
        options: Options | None = None,
        video: VideoOptions | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> VideoJob:
        """Check the video at ``source`` against the limits, load the networks, plan the output.

        Raises:
            As :func:`remaster_video`, before any work.
        """
        options = enhancer.resolve(options if options is not None else Options())
        video = video if video is not None else VideoOptions()
        info = probe(Path(source), enhancer.settings, options, video)
        if on_wait is not None:
            on_wait(f"Loading {options.model}…")
        interpolator = video.interpolation_model if video.interpolates else None
        prepared = enhancer.prepare(options, on_wait, interpolator=interpolator)
        size = pixels.output_size(info.width, info.height, options.outscale)
        with open_input(info.path) as container:
            plan = plan_output(info.stream_of(container), info.suffix, size, video, prepared.device)
        return cls(info, plan, prepared, options, video, info.output_frames(video))

    @property
    def identity(self) -> dict[str, object]:
        """What makes this job this job: a run that finds another's state starts afresh."""
        return {
            "remaster": __version__,
            "source": fingerprint(self.info.path),
            "options": self.options.describe(),
            "video": self.video.describe(),
            "plan": self.plan.describe(),
        }


class _Work:
    """One run of a job: the three threads, from the first unfinished segment to the end."""

    def __init__(
        self,
        enhancer: Enhancer,
        prepared: Prepared,
        info: VideoInfo,
        plan: OutputPlan,
        state: JobState,
        total: int,
        resumed: int,
        shared: _Shared,
        report: Callable[[float, str], None],
        cancel: threading.Event | None,
        started: float,
        video: VideoOptions,
    ) -> None:
        self.enhancer, self.prepared, self.info, self.plan, self.state = enhancer, prepared, info, plan, state
        self.total, self.resumed, self.shared, self.report, self.cancel = total, resumed, shared, report, cancel
        self.started = started
        self.video = video
        self.flow_scale = info.width / plan.width
        """The input's size over the result's: where in-betweens of results have their motion estimated."""
        self.repeats = self.in_betweens = self.cuts = 0
        self._ended = False
        frame_bytes = max(info.width * info.height, plan.width * plan.height) * 8
        depth = max(2, min(8, QUEUE_BYTES // frame_bytes))
        self.decoded: queue.Queue = queue.Queue(max(depth, prepared.frames_at_once))
        self.results: queue.Queue = queue.Queue(depth)
        self.faces: Report | None = None
        """The faces found and restored in this run's frames so far, as one report (None: no faces asked for)."""
        self.first_input: Picture | None = None
        self.first_output: np.ndarray | None = None

    def run(self) -> None:
        """Do the frames not finished yet. A stop lets the encoder finish what the network already
        made (complete segments are kept), then raises :class:`StoppedError`."""
        if self.resumed >= self.total:
            return
        decoder = threading.Thread(target=self._guarded, args=(self._decode,), name="remaster-video-decode")
        encoder = threading.Thread(target=self._guarded, args=(self._encode,), name="remaster-video-encode")
        decoder.start()
        encoder.start()
        stopped: StoppedError | None = None
        try:
            self._network()
        except StoppedError as error:
            stopped = error
        except BaseException as error:
            self.shared.fail(error)
        finally:
            self.shared.stop.set()
            if self.shared.error is None:
                self._drain(encoder)
            decoder.join()
            encoder.join()
        if self.shared.error is not None:
            raise self.shared.error
        if stopped is not None:
            raise StoppedError(self._stopped(str(stopped)))

    def _drain(self, encoder: threading.Thread) -> None:
        """Let the encoder finish the results already made, then end."""
        while encoder.is_alive() and self.shared.error is None:
            try:
                self.results.put(_END, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self.shared.fail(error)

    def _segment_full(self, writer: SegmentWriter) -> bool:
        """Whether the open segment is done: its fixed number of frames, or about ``segment_seconds`` of work (so a
        slow or busy machine still saves its progress often)."""
        if self.state.segment_frames is not None:
            return writer.frames >= self.state.segment_frames
        return time.monotonic() - writer.opened >= self.video.segment_seconds

    def _check(self) -> None:
        if self.shared.error is not None:
            raise self.shared.error
        if self.cancel is not None and self.cancel.is_set():
            raise StoppedError("Stopped")
        limit = self.enhancer.settings.time_limit
        if limit is not None and time.perf_counter() - self.started > limit:
            raise StoppedError(f"Stopped after the time limit of {limit:g} s")

    def _stopped(self, what: str) -> str:
        done = self.state.done_frames()
        return f"{what}: {done} of {self.total} frames are finished and kept; run the same again to continue from there"

    def _put(self, box: queue.Queue, item: object) -> bool:
        """Put ``item`` unless the job stops first; whether it was put."""
        while not self.shared.stop.is_set():
            try:
                box.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, box: queue.Queue, check: Callable[[], None] | None = None) -> object:
        """The next item; ``check`` is called while waiting (and raises to stop), else a failure ends the wait."""
        while True:
            if check is not None:
                check()
            elif self.shared.error is not None:
                return _END
            try:
                return box.get(timeout=_POLL)
            except queue.Empty:
                continue

    def _decode(self) -> None:
        """Decode every frame, tell the repeats and the cuts, and hand on the output frames as the timeline
        makes them known, with the frames they are made of (converted in this thread)."""
        video, info = self.video, self.info
        timeline = timeline_of(info, video, self.total, skip=self.resumed)
        judge = judge_of(info, video)
        convert = converter(self.plan)
        held = _Held(convert)
        with contextlib.closing(decoded_frames(info, self.shared.stop)) as frames:
            for frame in frames:
                began = time.perf_counter()
                index = timeline.frames
                if video.fps is None and index >= info.frames:
                    raise InvalidVideoError(
                        f"The video decodes to more frames than its {info.frames} packets; remux it (or give --fps)"
                    )
                # Every frame is looked at where repeats or cuts are told; else only those an output frame needs.
                array = convert(frame) if judge.looks else None
                repeats, cut = judge.judge(array)
                self.repeats = judge.repeats
                held.add(index, array if array is not None else frame)
                step = held.step(timeline.add(frame.pts, repeats, cut))
                held.keep({timeline.drawing.frame, index})
                self.shared.timings["decode"] += time.perf_counter() - began
                if step is not None and not self._put(self.decoded, step):
                    return
        if self.shared.stop.is_set():
            return
        if timeline.frames < info.frames:
            raise InvalidVideoError(
                f"Only {timeline.frames} of the video's {info.frames} frames could be decoded: it is truncated or "
                "corrupt; re-export or re-download it"
            )
        self.cuts = judge.cuts_found
        step = held.step(timeline.finish())
        if step is not None and not self._put(self.decoded, step):
            return
        self._put(self.decoded, _END)

    def _network(self) -> None:
        """Run the frames the output frames need through the network (those of a group of steps together), make
        the in-betweens, and hand the output frames on in order."""
        done, began = self.resumed, time.perf_counter()
        arrays: dict[int, np.ndarray] = {}
        results: dict[int, np.ndarray] = {}
        while (group := self._group()) is not None:
            for step in group:
                arrays.update(step.arrays)
            slots = [slot for step in group for slot in step.slots]
            network_started = time.perf_counter()
            needed = sorted(_frames_of(slots) - results.keys())
            try:
                results.update(zip(needed, self._upscale([arrays[frame] for frame in needed]), strict=True))
                outputs = self._outputs(slots, results)
            except StoppedError:
                self._check()  # cancelled: say so as the job does
                raise
            self.shared.timings["network"] += time.perf_counter() - network_started
            for output in outputs:
                if not self._put(self.results, output):
                    return
                done += len(output.pts)
            oldest = min(slot.left for slot in slots)  # later output frames are made of this frame or later ones
            for kept in (arrays, results):
                for frame in [frame for frame in kept if frame < oldest]:
                    del kept[frame]
            self._progress(done, done - self.resumed, time.perf_counter() - began)
        self._check()

    def _group(self) -> list[_Step] | None:
        """The next steps, as many as bring the frames that go through the network together (None at the end)."""
        if self._ended:
            return None
        group: list[_Step] = []
        # The decoder is far ahead of the network: a full batch is quick.
        while not group or sum(len(step.arrays) for step in group) < self.prepared.frames_at_once:
            step = self._get(self.decoded, self._check)
            if step is _END:
                self._ended = True
                break
            group.append(step)
        return group or None

    def _outputs(self, slots: list[Slot], results: dict[int, np.ndarray]) -> list[_Output]:
        """The output frames of ``slots``: results shown again, or in-betweens made of two (all the times
        between one pair at once)."""
        outputs: list[_Output] = []
        start = 0
        while start < len(slots):
            slot = slots[start]
            if slot.right is None:
                picture = results[slot.left]
                if outputs and outputs[-1].array is picture:
                    outputs[-1].pts.append(slot.pts)
                else:
                    outputs.append(_Output(slot.index, [slot.pts], picture))
                start += 1
                continue
            end = start
            while end < len(slots) and (slots[end].left, slots[end].right) == (slot.left, slot.right):
                end += 1
            pair = slots[start:end]
            made = self.enhancer.in_between(
                self.prepared,
                results[slot.left],
                results[slot.right],
                [each.at for each in pair],
                flow_scale=self.flow_scale,
                check=self._check,
            )
            self.in_betweens += len(made)
            outputs.extend(_Output(each.index, [each.pts], picture) for each, picture in zip(pair, made, strict=True))
            start = end
        return outputs

    def _upscale(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """The results of frames, through the one door into the network, cropped to the plan's size; the faces
        are counted, and the first frame kept for previews."""
        if not frames:
            return []
        done = self.enhancer.run_frames(self.prepared, frames, cancel=self.cancel, check=self._check)
        results = []
        for frame, (result, report) in zip(frames, done, strict=True):
            if report.faces_found is not None:
                self.faces = report if self.faces is None else self.faces.totalled([self.faces, report])
            results.append(np.ascontiguousarray(result[: self.plan.height, : self.plan.width]))
            if self.first_input is None:
                self.first_input = Picture(pixels=frame, kind="numpy", numpy_dtype=frame.dtype)
                self.first_output = results[-1]
        return results

    def _progress(self, done: int, this_run: int, seconds: float) -> None:
        rate = this_run / seconds if seconds > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else math.inf
        made = f" · {self.repeats} repeated frames not run again" if self.repeats else ""
        if self.in_betweens:
            made += f" · {self.in_betweens} in-betweens made"
        self.report(
            0.99 * done / self.total,
            f"Frame {done} of {self.total} · {rate:.2f} frames/s · {_duration(left)} left{made}",
        )

    def _encode(self) -> None:
        writer: SegmentWriter | None = None
        index = self.resumed
        segment = len(self.state.segments())
        try:
            while True:
                output = self._get(self.results)
                if output is _END:
                    break
                assert isinstance(output, _Output) and output.first == index
                began = time.perf_counter()
                picture = av.VideoFrame.from_ndarray(output.array, format=self.plan.array_format)
                frame = to_encoder(picture, self.plan)
                for pts in output.pts:
                    if writer is None:
                        writer = SegmentWriter(self.state, self.plan, segment, index)
                    frame.pts = pts
                    writer.encode(frame)
                    index += 1
                    if index == self.total or self._segment_full(writer):
                        writer.finish()
                        writer, segment = None, segment + 1
                self.shared.timings["encode"] += time.perf_counter() - began
        finally:
            if writer is not None:
                writer.abort()


def timeline_of(info: VideoInfo, video: VideoOptions, total: int, skip: int = 0) -> Timeline:
    """The :class:`Timeline` of the video ``info`` describes, remastered as ``video`` says."""
    end = info.start + info.duration
    return Timeline(
        info.start, info.time_base, end, total, video.interpolate, video.fps, blend=video.interpolates, skip=skip
    )


def judge_of(info: VideoInfo, video: VideoOptions) -> Judge:
    """The :class:`Judge` of the frames of the video ``info`` describes, remastered as ``video`` says."""
    threshold = video.duplicate_threshold if video.skip_duplicates else None
    return Judge(threshold, cuts=video.interpolates, rate=float(info.rate) if info.rate else None)


class _Held:
    """The decoder's frames that output frames may still be made of, converted when first needed, and handed
    on once each."""

    def __init__(self, convert: Callable[[av.VideoFrame], np.ndarray]) -> None:
        self.convert = convert
        self.frames: dict[int, av.VideoFrame | np.ndarray] = {}
        self.sent: set[int] = set()

    def add(self, index: int, frame: av.VideoFrame | np.ndarray) -> None:
        self.frames[index] = frame

    def step(self, slots: list[Slot]) -> _Step | None:
        """What the network needs for ``slots``: the frames they are made of that it has not had yet."""
        if not slots:
            return None
        arrays = {}
        for index in sorted(_frames_of(slots) - self.sent):
            held = self.frames[index]
            arrays[index] = held if isinstance(held, np.ndarray) else self.convert(held)
            self.sent.add(index)
        return _Step(arrays, slots)

    def keep(self, live: set[int]) -> None:
        """Let go of the frames no output frame can be made of any more (only ``live`` ones can)."""
        for index in [index for index in self.frames if index not in live]:
            del self.frames[index]
        self.sent &= live


def _frames_of(slots: list[Slot]) -> set[int]:
    """The input frames ``slots`` are made of."""
    return {slot.left for slot in slots} | {slot.right for slot in slots if slot.right is not None}


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _reporter(progress: Callable[..., object] | None) -> Callable[[float, str], None]:
    if progress is None:
        return lambda fraction, message: None
    return lambda fraction, message: progress(min(max(fraction, 0.0), 1.0), message)


def preview_frame(
    source: str | Path,
    seconds: float,
    options: Options | None = None,
    video: VideoOptions | None = None,
    *,
    enhancer: Enhancer | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The frame shown at ``seconds`` and its result, to judge the options before doing the whole clip; where
    ``video`` makes in-betweens, the one halfway to the next frame instead of the result.

    Returns:
        (the frame, its result or the in-between, the time the result is shown at, in seconds): RGB arrays,
        uint8 or, for deeper video, uint16.

    Raises:
        InvalidVideoError: not a readable video.
        ImageTooLargeError: the frame or its result is over the frame limits (the video's length is not checked).
    """
    enhancer = enhancer if enhancer is not None else default_enhancer()
    options = enhancer.resolve(options if options is not None else Options())
    video = video if video is not None else VideoOptions()
    info = probe(source, enhancer.settings, options, video, check_length=False)
    (array, when), following = _frames_at(info, seconds)
    if not video.interpolates or following is None:
        if options.model == NO_MODEL:
            return array, array, when
        result, _ = enhancer.run(array, options, cancel=cancel)
        return array, result, when
    prepared = enhancer.prepare(options, interpolator=video.interpolation_model)
    (first, _), (second, _) = enhancer.run_frames(prepared, [array, following[0]], cancel=cancel)
    made = enhancer.in_between(prepared, first, second, [0.5], flow_scale=info.width / first.shape[1])[0]
    return array, made, (when + following[1]) / 2


def _frames_at(info: VideoInfo, seconds: float) -> tuple[tuple[np.ndarray, float], tuple[np.ndarray, float] | None]:
    """The frame shown at ``seconds`` and the one after it (None at the end), with their times, as RGB arrays."""
    with open_input(info.path) as container:
        stream = info.stream_of(container)
        colour = source_colour(stream.codec_context)
        deep = max(c.bits for c in av.VideoFormat(info.pix_fmt).components) > 8
        target = max(info.start, min(float(seconds), info.start + info.duration))

        def converted(frame: av.VideoFrame) -> tuple[np.ndarray, float]:
            array = to_array(frame, "rgb48le" if deep else "rgb24", sws_matrix(colour), sws_range(colour))
            return array, float(frame.time or 0.0)

        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            chosen = following = None
            for frame in container.decode(stream):
                if chosen is not None and frame.time is not None and frame.time > target + 1e-6:
                    following = frame
                    break
                chosen = frame
        except av.error.FFmpegError as error:
            raise InvalidVideoError(f"The frame at {target:g} s could not be decoded ({brief(error, 120)})") from None
        if chosen is None:
            raise InvalidVideoError(f"No frame could be decoded at {target:g} s")
        return converted(chosen), (converted(following) if following is not None else None)
