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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .. import pixels
from ..errors import InvalidVideoError, StoppedError, brief
from ..image_io import Picture
from ..options import Options
from ..pipeline import Enhancer, Prepared, Report, default_enhancer
from ..version import __version__
from . import VideoOptions
from .encoding import OutputPlan, plan_output, source_colour, sws_matrix, sws_range
from .frames import decoded_frames, to_array, to_encoder
from .join import join
from .probe import VideoInfo, open_input, probe
from .segments import JobState, SegmentWriter, fingerprint

__all__ = ["VideoResult", "preview_frame", "remaster_video"]

log = logging.getLogger(__name__)

SEGMENT_SECONDS = 10
"""About how long one segment takes, what a kill may cost at most."""
_MACS_PER_SECOND = {"cuda": 50e12, "mps": 5e12, "cpu": 0.5e12}
"""What each kind of device does of these networks, roughly, to size segments by."""
MIN_SEGMENT_FRAMES, MAX_SEGMENT_FRAMES = 8, 250
"""Each segment starts on a keyframe: fewer frames cost compression, more risk more work."""
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

    def summary(self) -> str:
        """One line, with the notes after it."""
        resumed = f" · {self.resumed} frames from the earlier run" if self.resumed else ""
        return " ".join([self.report.summary() + resumed, *(f"· {note}" for note in self.notes)])


@dataclass
class _Item:
    """One decoded frame and the output frames it becomes (one, or with ``fps`` none or several)."""

    array: np.ndarray
    outputs: list[int]
    """Presentation times of the output frames, in the plan's time base."""
    first: int
    """The output index of ``outputs[0]``."""
    result: np.ndarray | None = None


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
        segment_frames: output frames per resumable segment (default: about 10 s of work each, 8 to 250 frames;
            a job resumed keeps the size it started with).
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
    options = enhancer.resolve(options if options is not None else Options())
    video = video if video is not None else VideoOptions()
    started = time.perf_counter()
    report = _reporter(progress)
    source, target = Path(source), Path(target)
    info = probe(source, enhancer.settings, options, video)
    report(0.0, f"Loading {options.model}…")
    prepared = enhancer.prepare(options, lambda message: report(0.0, message))
    size = pixels.output_size(info.width, info.height, options.outscale)
    with open_input(info.path) as container:
        plan = plan_output(info.stream_of(container), info.suffix, size, video, prepared.device)
    result_path = target.with_name(target.name + plan.suffix)
    if segment_frames is None:
        segment_frames = _segment_frames(info, plan, prepared)
    identity = {
        "remaster": __version__,
        "source": fingerprint(info.path),
        "options": options.describe(),
        "video": video.describe(),
        "plan": plan.describe(),
    }
    with JobState.open(result_path, identity, segment_frames) as state:
        total = info.output_frames(video.fps)
        resumed = state.done_frames()
        shared = _Shared()
        channels = 4 if plan.array_format.startswith("rgba") else 3
        enhancer.batch_frames(prepared, info.width, info.height, channels, frames_per_batch)
        work = _Work(enhancer, prepared, info, plan, state, total, resumed, shared, report, cancel, started, video.fps)
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
        )


def _segment_frames(info: VideoInfo, plan: OutputPlan, prepared: Prepared) -> int:
    """Output frames per segment: about :data:`SEGMENT_SECONDS` of work on this kind of device."""
    passes = 2 if plan.array_format.startswith("rgba") else 1  # colour, then alpha
    per_frame = info.width * info.height * prepared.macs_per_pixel * passes
    speed = _MACS_PER_SECOND.get(prepared.device, _MACS_PER_SECOND["cpu"])
    return min(max(round(SEGMENT_SECONDS * speed / per_frame), MIN_SEGMENT_FRAMES), MAX_SEGMENT_FRAMES)


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
        fps: float | None,
    ) -> None:
        self.enhancer, self.prepared, self.info, self.plan, self.state = enhancer, prepared, info, plan, state
        self.total, self.resumed, self.shared, self.report, self.cancel = total, resumed, shared, report, cancel
        self.started = started
        self.fps = fps
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
        with contextlib.closing(decoded_frames(self.info, self.plan, self.fps, self.total, self.shared.stop)) as frames:
            decoded = self._decode_into_queue(frames)
        if self.shared.stop.is_set():
            return
        if decoded < self.info.frames:
            raise InvalidVideoError(
                f"Only {decoded} of the video's {self.info.frames} frames could be decoded: it is truncated or "
                "corrupt; re-export or re-download it"
            )
        self._put(self.decoded, _END)

    def _decode_into_queue(self, frames: Iterator[tuple[Callable[[], np.ndarray], list[int], int]]) -> int:
        """Queue the frames not finished in an earlier run; how many frames were decoded in all."""
        decoded = 0
        while True:
            began = time.perf_counter()
            placed = next(frames, None)
            if placed is None:
                return decoded
            array_of, outputs, first = placed
            decoded += 1
            if first + len(outputs) <= self.resumed:
                continue  # finished in an earlier run: decoded (to keep count), not converted
            array = array_of()
            self.shared.timings["decode"] += time.perf_counter() - began
            keep = max(self.resumed - first, 0)
            if not self._put(self.decoded, _Item(array, outputs[keep:], first + keep)):
                return decoded

    def _network(self) -> None:
        done = self.resumed
        began = time.perf_counter()
        ended = False
        while not ended:
            item = self._get(self.decoded, self._check)
            if item is _END:
                break
            group = [item]
            # The decoder is far ahead of the network: a full batch is quick.
            while len(group) < self.prepared.frames_at_once:
                more = self._get(self.decoded, self._check)
                if more is _END:
                    ended = True
                    break
                group.append(more)
            frame_started = time.perf_counter()
            try:
                results = self._upscale(group)
            except StoppedError:
                self._check()  # cancelled: say so as the job does
                raise
            self.shared.timings["network"] += time.perf_counter() - frame_started
            for item, result in zip(group, results, strict=True):
                item.result = np.ascontiguousarray(result[: self.plan.height, : self.plan.width])
                if self.first_input is None:
                    self.first_input = Picture(pixels=item.array, kind="numpy", numpy_dtype=item.array.dtype)
                    self.first_output = item.result
                item.array = None
                if not self._put(self.results, item):
                    return
                done += len(item.outputs)
            self._progress(done, done - self.resumed, time.perf_counter() - began)
        self._check()

    def _upscale(self, group: list[_Item]) -> list[np.ndarray]:
        """The results of a group of frames, through the one door into the network; the faces are counted."""
        done = self.enhancer.run_frames(
            self.prepared, [item.array for item in group], cancel=self.cancel, check=self._check
        )
        for _, report in done:
            if report.faces_found is not None:
                self.faces = report if self.faces is None else self.faces.totalled([self.faces, report])
        return [result for result, _ in done]

    def _progress(self, done: int, this_run: int, seconds: float) -> None:
        rate = this_run / seconds if seconds > 0 else 0.0
        left = (self.total - done) / rate if rate > 0 else math.inf
        self.report(
            0.99 * done / self.total,
            f"Frame {done} of {self.total} · {rate:.2f} frames/s · {_duration(left)} left",
        )

    def _encode(self) -> None:
        writer: SegmentWriter | None = None
        index = self.resumed
        try:
            while True:
                item = self._get(self.results)
                if item is _END:
                    break
                assert isinstance(item, _Item) and item.result is not None
                began = time.perf_counter()
                picture = av.VideoFrame.from_ndarray(item.result, format=self.plan.array_format)
                frame = to_encoder(picture, self.plan)
                for pts in item.outputs:
                    if writer is None:
                        writer = SegmentWriter(self.state, self.plan, index // self.state.segment_frames)
                    frame.pts = pts
                    writer.encode(frame)
                    index += 1
                    if index % self.state.segment_frames == 0 or index == self.total:
                        writer.finish()
                        writer = None
                self.shared.timings["encode"] += time.perf_counter() - began
        finally:
            if writer is not None:
                writer.abort()


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
    *,
    enhancer: Enhancer | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The frame shown at ``seconds`` and its result, to judge the options before doing the whole clip.

    Returns:
        (the frame, its result, the frame's own time in seconds): RGB arrays, uint8 or, for deeper
        video, uint16.

    Raises:
        InvalidVideoError: not a readable video.
        ImageTooLargeError: the frame or its result is over the frame limits (the video's length is not checked).
    """
    enhancer = enhancer if enhancer is not None else default_enhancer()
    options = options if options is not None else Options()
    info = probe(source, enhancer.settings, options, VideoOptions(), check_length=False)
    with open_input(info.path) as container:
        stream = info.stream_of(container)
        colour = source_colour(stream.codec_context)
        deep = max(c.bits for c in av.VideoFormat(info.pix_fmt).components) > 8
        target = max(info.start, min(float(seconds), info.start + info.duration))
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                if chosen is not None and frame.time is not None and frame.time > target + 1e-6:
                    break
                chosen = frame
        except av.error.FFmpegError as error:
            raise InvalidVideoError(f"The frame at {target:g} s could not be decoded ({brief(error, 120)})") from None
        if chosen is None:
            raise InvalidVideoError(f"No frame could be decoded at {target:g} s")
        array = to_array(chosen, "rgb48le" if deep else "rgb24", sws_matrix(colour), sws_range(colour))
        when = float(chosen.time or 0.0)
    result, _ = enhancer.run(array, options, cancel=cancel)
    return array, result, when
