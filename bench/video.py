"""A whole video through remaster against the official script's method, alternating, in one run; and
in-between frames and skipped repeats (``--in-betweens``).

    python bench/video.py --weights-dir ../shared/weights            # 240 frames of 480×270 → 1920×1080
    python bench/video.py --frames 96 --rounds 2 --device cuda       # a GPU
    python bench/video.py --in-betweens --weights-dir ../shared/weights

``--in-betweens`` measures, in one process, with the real weights (realesr-animevideov3 and RIFE v4.0):

- skipped repeats: a clip drawn on threes (real photographs, the camera moving every third frame,
  H.264 at CRF 18, so that the repeats differ by compression noise as a real one's do) remastered
  with repeats skipped and without, alternating; the speed ratio, and how far each output frame of
  the skipping run is from the other's (PSNR, and the largest mean difference of a 16×16 input block);
- in-betweens: triplets of real photographs moved by known camera motions (pans, zooms, rotations),
  the middle frame made by RIFE from the outer two and by their plain average, each against the true
  middle frame (PSNR on the centre, away from the edges the motion uncovers);
- what an in-between costs at 640×480 and 1280×960 against the upscaler's cost per frame, and both
  orders of the work: interpolate the small frames and upscale each in-between, or upscale the
  frames and interpolate the large ones (their motion estimated at the small size).

The official method is what ``inference_realesrgan_video.py`` does: an ``ffmpeg`` subprocess
decodes to raw BGR frames on a pipe, ``RealESRGANer.enhance`` upscales each frame in turn, and a
second ``ffmpeg`` encodes the frames from a pipe with libx264 (yuv420p) and copies the audio.
Both sides encode H.264 at the same CRF and preset (x264's defaults, CRF 23, medium, as the official
script gets) and use the same weights (realesr-animevideov3, ×4). Each run is a fresh process, so
its peak memory is its own; the clip is made by PyAV (a pan across a drawn cartoon, with a tone
for audio). The official side needs an ``ffmpeg`` binary (Debian's ``ffmpeg`` package,
or ``imageio-ffmpeg``'s); remaster needs none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "realesr-animevideov3"


def cartoon(width: int, height: int, seed: int = 0):
    """A flat-coloured picture with dark outlines, like an anime cel, as an RGB array."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", (width, height), (120, 180, 235))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(110, 170, 90))
    for _ in range(60):
        x, y = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(width // 40, width // 8, size=2)
        colour = tuple(int(c) for c in rng.integers(40, 250, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x, y, x + w, y + h), fill=colour, outline=(30, 20, 40), width=max(2, width // 400))
    for _ in range(20):
        points = [tuple(int(v) for v in rng.integers(0, (width, height))) for _ in range(3)]
        draw.line(points, fill=(30, 20, 40), width=max(2, width // 500))
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(0.7)))


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 24) -> None:
    """A slow pan across a cartoon twice the clip's size, H.264 in MP4, with an AAC tone."""
    import av
    import numpy as np

    pixels = cartoon(width * 2, height * 2)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="stereo")
        for index in range(frames):
            t = index / max(frames - 1, 1)
            x = round((pixels.shape[1] - width) * t)
            y = round((pixels.shape[0] - height) * (0.5 - 0.5 * np.cos(2 * np.pi * t)))
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[y : y + height, x : x + width]))
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = round(48000 * frames / fps)
        tone = (0.2 * np.sin(np.arange(samples) / 48000 * 2 * np.pi * 440)).astype(np.float32)
        for start in range(0, samples, 1024):
            chunk = np.ascontiguousarray(np.stack([tone[start : start + 1024]] * 2))
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            out.mux(sound.encode(frame))
        out.mux(sound.encode())


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the children it waited for (the official side's ffmpegs):
    steadier than the clock where other programs share the CPU."""
    used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in used)


def official(clip: Path, out: Path, weights: Path, device: str, ffmpeg: str, crf: int) -> dict:
    """The loop of ``inference_realesrgan_video.py`` (its ``Reader``/``Writer`` pipes, ``RealESRGANer``)."""
    import av
    import numpy as np
    import torch

    from remaster._compat import import_basicsr
    from remaster.engine import build_network

    RealESRGANer = import_basicsr("realesrgan").RealESRGANer  # noqa: N806 - the official class
    spec = __import__("remaster").get_model(MODEL)
    upsampler = RealESRGANer(
        scale=4,
        model_path=str(weights / spec.weights.filename),
        model=build_network(spec),
        tile=0,
        tile_pad=10,
        pre_pad=0,
        half=device.startswith("cuda"),  # the script's default (--fp32 off) where half runs
        device=torch.device(device),
    )
    with av.open(str(clip)) as probe:  # the script probes with ffmpeg.probe; the same facts
        stream = probe.streams.video[0]
        width, height, fps = stream.codec_context.width, stream.codec_context.height, float(stream.average_rate)
    out_w, out_h = width * 4, height * 4
    started, cpu = time.perf_counter(), cpu_seconds()
    reader = subprocess.Popen(
        [ffmpeg, "-loglevel", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:"],
        stdout=subprocess.PIPE,
    )
    writer = subprocess.Popen(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{out_w}x{out_h}",
            "-framerate",
            f"{fps}",
            "-i",
            "pipe:",
            "-i",
            str(clip),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "copy",
            str(out),
        ],
        stdin=subprocess.PIPE,
    )
    timings = {"decode": 0.0, "network": 0.0, "encode": 0.0}
    frames = 0
    frame_bytes = width * height * 3
    while True:
        began = time.perf_counter()
        data = reader.stdout.read(frame_bytes)
        timings["decode"] += time.perf_counter() - began
        if len(data) < frame_bytes:
            break
        img = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        began = time.perf_counter()
        output, _ = upsampler.enhance(img, outscale=4)
        timings["network"] += time.perf_counter() - began
        began = time.perf_counter()
        writer.stdin.write(output.astype(np.uint8).tobytes())
        timings["encode"] += time.perf_counter() - began
        frames += 1
    reader.wait()
    writer.stdin.close()
    began = time.perf_counter()
    writer.wait()
    timings["encode"] += time.perf_counter() - began
    seconds = time.perf_counter() - started
    return {"frames": frames, "seconds": seconds, "cpu_seconds": cpu_seconds() - cpu, "timings": timings}


def ours(clip: Path, out: Path, weights: Path, device: str, crf: int) -> dict:
    import remaster
    from remaster.video import VideoOptions, remaster_video

    settings = remaster.Settings.from_env(env={"HF_HUB_OFFLINE": "1"}, device=device, weights_dir=weights)
    enhancer = remaster.Enhancer(settings)
    enhancer.engine.network(remaster.get_model(MODEL))  # loaded before the clock, as RealESRGANer is
    started, cpu = time.perf_counter(), cpu_seconds()
    done = remaster_video(clip, out, remaster.Options(MODEL, outscale=4), VideoOptions(crf=crf), enhancer=enhancer)
    seconds = time.perf_counter() - started
    return {
        "frames": done.frames,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu,
        "timings": done.timings,
        "path": str(done.path),
    }


def child(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.method == "official":
        result = official(Path(args.clip), out, Path(args.weights), args.device, args.ffmpeg, args.crf)
    else:
        result = ours(Path(args.clip), out, Path(args.weights), args.device, args.crf)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if args.device.startswith("cuda"):
        import torch

        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result))


def run_child(method: str, clip: Path, out: Path, args: argparse.Namespace, weights: Path) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--clip",
        str(clip),
        "--out",
        str(out),
        "--weights",
        str(weights),
        "--device",
        args.device,
        "--ffmpeg",
        args.ffmpeg,
        "--crf",
        str(args.crf),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    line = next((line for line in done.stdout.splitlines() if line.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{method} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(line.removeprefix("RESULT "))


def count_frames(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as container:
        video = sum(1 for _ in container.decode(video=0))
        container.seek(0)
        audio = sum(1 for packet in container.demux(audio=0) if packet.size)
    return video, audio


def weights_folder(weights_dir: Path | None, scratch: Path) -> tuple[Path, str]:
    import torch

    import remaster
    from remaster.engine import build_network

    spec = remaster.get_model(MODEL)
    if weights_dir is not None and (weights_dir / spec.weights.filename).is_file():
        return weights_dir, "real"
    folder = scratch / "weights"
    folder.mkdir()
    torch.manual_seed(0)
    torch.save({"params": build_network(spec).state_dict()}, folder / spec.weights.filename)
    return folder, "random"


def real_pictures():
    """Real photographs (scikit-image's bundled data), RGB."""
    import numpy as np
    from skimage import data

    pictures = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    pictures += [np.repeat(data.camera()[:, :, None], 3, axis=2), data.hubble_deep_field()[:512, :512]]
    return pictures


def moved(picture, width: int, height: int, dx: float, dy: float, zoom: float = 1.0, degrees: float = 0.0):
    """The ``width`` × ``height`` view of ``picture``'s centre seen by a camera moved by (dx, dy) pixels, zoomed and
    turned: a real picture under a known motion."""
    import cv2

    centre = (picture.shape[1] / 2 + dx, picture.shape[0] / 2 + dy)
    matrix = cv2.getRotationMatrix2D(centre, degrees, zoom)
    matrix[:, 2] += (width / 2 - centre[0], height / 2 - centre[1])
    return cv2.warpAffine(picture, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def parallax(background, in_front, step: int):
    """``background`` with a disc of another picture before it that moves the other way, ``step`` × 12 pixels:
    two motions and the edges they uncover, as in front of a panning camera."""
    import numpy as np

    height, width = background.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    centre = (width / 2 - 12 * step, height / 2 + 4 * step)
    disc = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 < (height / 4) ** 2
    front = moved(in_front, width, height, dx=-12.0 * step, dy=4.0 * step)
    return np.where(disc[:, :, None], front, background)


def on_threes(path: Path, drawings: int, width: int, height: int) -> None:
    """A clip drawn on threes: a real photograph under a camera that moves every third frame, H.264 at CRF 18."""
    import av
    import cv2

    picture = cv2.resize(real_pictures()[0], (width * 2, height * 2), interpolation=cv2.INTER_AREA)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=24, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for index in range(drawings * 3):
            step = index // 3
            view = moved(picture, width, height, dx=3.0 * step, dy=1.5 * step, zoom=1 + 0.004 * step)
            frame = av.VideoFrame.from_ndarray(view)
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode())


def psnr(a, b) -> float:
    import numpy as np

    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(255.0**2 / error)


def largest_block_difference(a, b, block: int) -> float:
    import numpy as np

    height, width = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    difference = np.abs(a[:height, :width].astype(np.float64) - b[:height, :width]).mean(axis=2)
    return float(difference.reshape(height // block, block, width // block, block).mean(axis=(1, 3)).max())


def skipped_repeats(args: argparse.Namespace, weights: Path) -> None:
    """Repeats skipped against not, alternating: the speed ratio and how close the frames stay."""
    import remaster
    from remaster.video import VideoOptions, remaster_video
    from tests.videos import read_video

    width, height = (int(side) for side in args.size.lower().split("x"))
    settings = remaster.Settings.from_env(env={"HF_HUB_OFFLINE": "1"}, device=args.device, weights_dir=weights)
    enhancer = remaster.Enhancer(settings)
    options = remaster.Options(MODEL, outscale=4)
    with tempfile.TemporaryDirectory(prefix="remaster-bench-repeats-") as scratch:
        clip = Path(scratch) / "threes.mp4"
        on_threes(clip, args.frames // 3, width, height)
        enhancer.run(read_video(clip).frames[0], options)  # the network loaded (and its runtime chosen) first
        seconds: dict[bool, list[float]] = {True: [], False: []}
        outputs: dict[bool, Path] = {}
        for round_index in range(args.rounds):
            for skip in (True, False):
                video = VideoOptions(codec="ffv1", skip_duplicates=skip)
                started = time.perf_counter()
                done = remaster_video(clip, Path(scratch) / f"{skip}-{round_index}", options, video, enhancer=enhancer)
                seconds[skip].append(time.perf_counter() - started)
                outputs[skip] = done.path
                print(
                    f"  round {round_index + 1}, repeats skipped {skip!s:5}: {seconds[skip][-1]:.1f} s; "
                    + done.summary()
                )
        skipped, every = read_video(outputs[True]).frames, read_video(outputs[False]).frames
        closeness = [psnr(a, b) for a, b in zip(skipped, every, strict=True)]
        blocks = [largest_block_difference(a, b, 16 * 4) for a, b in zip(skipped, every, strict=True)]
    best = {skip: min(times) for skip, times in seconds.items()}
    print(
        f"repeats skipped: {args.frames} frames of {width}×{height} drawn on threes, {MODEL} ×4, {args.device}: "
        f"{best[False]:.1f} s → {best[True]:.1f} s, {best[False] / best[True]:.2f}× faster; every frame within "
        f"{min(closeness):.1f} dB PSNR of the output without skipping (mean {sum(closeness) / len(closeness):.1f}); "
        f"largest 16×16-input-block mean difference {max(blocks):.2f}/255"
    )


def in_between_quality(args: argparse.Namespace, weights: Path) -> None:
    """RIFE's middle frame and the plain average, each against the true middle frame of real pictures moved: a
    pan with something in front moving the other way, a zoom, a turn, and all three."""
    import numpy as np

    import remaster

    settings = remaster.Settings.from_env(env={"HF_HUB_OFFLINE": "1"}, device=args.device, weights_dir=weights)
    enhancer = remaster.Enhancer(settings)
    motions = {"pan": (10.0, 4.0, 0.0, 0.0), "zoom": (0.0, 0.0, 0.025, 0.0), "turn": (0.0, 0.0, 0.0, 2.0)}
    # The pan has a disc in front moving the other way (see parallax).
    motions["pan, zoom and turn"] = (6.0, -3.0, 0.015, 1.5)
    rows, margin = [], 24
    pictures = real_pictures()
    for index, picture in enumerate(pictures):
        in_front = pictures[(index + 1) % len(pictures)]
        for name, (dx, dy, zoom, degrees) in motions.items():
            frames = [moved(picture, 320, 240, k * dx, k * dy, 1 + k * zoom, k * degrees) for k in (-1, 0, 1)]
            if name == "pan":
                frames = [parallax(frame, in_front, k) for frame, k in zip(frames, (-1, 0, 1), strict=True)]
            made = enhancer.interpolator.between(remaster.registry.DEFAULT_INTERPOLATOR, frames[0], frames[2], [0.5])[0]
            average = ((frames[0].astype(np.float64) + frames[2]) / 2).round().astype(np.uint8)
            centre = (slice(margin, -margin), slice(margin, -margin))
            rows.append((index, name, psnr(made[centre], frames[1][centre]), psnr(average[centre], frames[1][centre])))
    rife, plain = (sum(row[k] for row in rows) / len(rows) for k in (2, 3))
    for index, name, made, average in rows:
        print(f"  picture {index}, {name:18s}: RIFE {made:.2f} dB, average {average:.2f} dB")
    print(
        f"in-betweens: {len(rows)} triplets of real pictures, 320×240: RIFE {rife:.2f} dB, plain average {plain:.2f} dB"
    )


def in_between_cost(args: argparse.Namespace, weights: Path) -> None:
    """What an in-between costs at 640×480 and 1280×960 against the upscaler's frame, and both orders of work."""
    import statistics

    import remaster

    settings = remaster.Settings.from_env(env={"HF_HUB_OFFLINE": "1"}, device=args.device, weights_dir=weights)
    enhancer = remaster.Enhancer(settings)
    model = remaster.registry.DEFAULT_INTERPOLATOR
    picture = real_pictures()[1]
    small = [moved(picture, 640, 480, 4 * k, 0) for k in (0, 1)]
    large = [moved(picture, 1280, 960, 8 * k, 0, zoom=2.0) for k in (0, 1)]
    options = remaster.Options(MODEL, outscale=2)
    cases = {
        "upscale a 640×480 frame ×2": lambda: enhancer.run(small[0], options),
        "in-between at 640×480": lambda: enhancer.interpolator.between(model, *small, [0.5]),
        "in-between at 1280×960, motion at 1/2": lambda: enhancer.interpolator.between(
            model, *large, [0.5], flow_scale=0.5
        ),
        "in-between at 1280×960, motion at full size": lambda: enhancer.interpolator.between(model, *large, [0.5]),
    }
    for run in cases.values():  # runtimes built and chosen before the clock
        run()
    enhancer.engine.network(remaster.get_model(MODEL))
    times = {name: [] for name in cases}
    for _ in range(max(3, args.rounds)):
        for name, run in cases.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in times.items()}
    upscale = median["upscale a 640×480 frame ×2"]
    for name, seconds in median.items():
        print(f"  {name:45s}: {seconds:.3f} s ({seconds / upscale:.2f}× the upscaler's frame)")
    before = median["in-between at 640×480"] + upscale
    after = median["in-between at 1280×960, motion at 1/2"]
    print(
        f"order of work, per in-between of a 640×480 video upscaled ×2: interpolate first, then upscale it "
        f"{before:.3f} s; upscale first, then interpolate (motion at 1/2) {after:.3f} s: {before / after:.2f}×"
    )


def in_betweens(args: argparse.Namespace) -> None:
    weights = args.weights_dir
    needed = [remaster_weight(MODEL), remaster_weight("rife-v4.0")]
    if weights is None or not all((weights / name).is_file() for name in needed):
        raise SystemExit(f"--in-betweens needs the real weights: {', '.join(needed)} in --weights-dir")
    print(f"{os.cpu_count()} CPUs; device {args.device}")
    skipped_repeats(args, weights)
    in_between_quality(args, weights)
    in_between_cost(args, weights)


def remaster_weight(model: str) -> str:
    import remaster

    return remaster.get_model(model).weights.filename


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--size", default="480x270", help="the clip's frame size (×4 gives 1920×1080)")
    parser.add_argument("--rounds", type=int, default=1, help="each round runs both methods, alternating")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality for both (x264's default)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="where realesr-animevideov3.pth is")
    parser.add_argument("--ffmpeg", default=shutil.which("ffmpeg") or "ffmpeg", help="the official side's ffmpeg")
    parser.add_argument("--in-betweens", action="store_true", help="skipped repeats and in-betweens instead")
    parser.add_argument("--child", choices=("official", "remaster"), help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.in_betweens:
        in_betweens(args)
        return
    if args.child:
        args.method = args.child
        child(args)
        return
    if shutil.which(args.ffmpeg) is None:
        raise SystemExit(
            "The official method needs ffmpeg: apt-get install ffmpeg, or pip install imageio-ffmpeg "
            "and pass --ffmpeg $(python -c 'import imageio_ffmpeg as f; print(f.get_ffmpeg_exe())')"
        )
    width, height = (int(side) for side in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="remaster-bench-video-") as scratch:
        scratch = Path(scratch)
        weights, origin = weights_folder(args.weights_dir, scratch)
        clip = scratch / "clip.mp4"
        make_clip(clip, args.frames, width, height)
        in_frames, in_audio = count_frames(clip)
        print(
            f"clip: {args.frames} frames of {width}×{height} at 24 frames/s, AAC audio; {MODEL} ×4 "
            f"({origin} weights) → {width * 4}×{height * 4}; device {args.device}; H.264 CRF {args.crf}, "
            f"yuv420p; {os.cpu_count()} CPUs"
        )
        results: dict[str, list[dict]] = {"official": [], "remaster": []}
        for round_index in range(args.rounds):
            for method in ("official", "remaster"):
                out = scratch / f"{method}-{round_index}.mp4"
                result = run_child(
                    method, scratch / "clip.mp4", out if method == "official" else out.with_suffix(""), args, weights
                )
                path = Path(result.get("path", out))
                result["check"] = count_frames(path)
                results[method].append(result)
                fps = result["frames"] / result["seconds"]
                print(
                    f"round {round_index + 1} {method:9s}: {result['frames']} frames in {result['seconds']:.1f} s = "
                    f"{fps:.2f} frames/s ({result['frames'] / result['cpu_seconds']:.2f} per CPU-second); "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB"
                    + (f", GPU {result['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in result else "")
                    + f"; output {result['check'][0]} frames, {result['check'][1]} audio packets "
                    f"(input {in_frames}, {in_audio})"
                )
                print(
                    "    where the time went (s): "
                    + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in result["timings"].items())
                )
        best = {method: max(r["frames"] / r["seconds"] for r in runs) for method, runs in results.items()}
        cpu = {method: max(r["frames"] / r["cpu_seconds"] for r in runs) for method, runs in results.items()}
        print(
            f"best frames/s: official {best['official']:.2f}, remaster {best['remaster']:.2f}; "
            f"ratio {best['remaster'] / best['official']:.2f}×; per CPU-second: official {cpu['official']:.2f}, "
            f"remaster {cpu['remaster']:.2f}; ratio {cpu['remaster'] / cpu['official']:.2f}×"
        )


if __name__ == "__main__":
    main()
