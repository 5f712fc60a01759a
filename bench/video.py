"""A whole video through remaster against the official script's method, alternating, in one run.

    python bench/video.py --weights-dir ../shared/weights            # 240 frames of 480×270 → 1920×1080
    python bench/video.py --frames 96 --rounds 2 --device cuda       # a GPU

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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--size", default="480x270", help="the clip's frame size (×4 gives 1920×1080)")
    parser.add_argument("--rounds", type=int, default=1, help="each round runs both methods, alternating")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality for both (x264's default)")
    parser.add_argument("--weights-dir", type=Path, default=None, help="where realesr-animevideov3.pth is")
    parser.add_argument("--ffmpeg", default=shutil.which("ffmpeg") or "ffmpeg", help="the official side's ffmpeg")
    parser.add_argument("--child", choices=("official", "remaster"), help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
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
