"""The same images through the plain command line and through the archive command on Ray, in one run.

    python bench/archive.py                           # 100 images of 128², realesr-animevideov3, 1 and 2 workers
    python bench/archive.py --images 200 --size 256 --model RealESRGAN_x4plus --workers 1 2 4
    python bench/archive.py --size 256 --cpus-per-worker 1        # scaling: each worker one core
    python bench/archive.py --video 300 --size 160 --cpus-per-worker 1   # one film shared by the workers

Each command runs as a user runs it (``python -m remaster`` and ``python -m remaster.archive``, each
starting fresh, the archive one starting its own local Ray), in turn, ``--repeats`` times. For each:

- wall: seconds from start to exit, start-up included, and images/s over it;
- steady: seconds per image from the first output written to the last (file times for the command
  line, the manifest's ``finished_at`` for the archive), which leaves start-up out;
- Ray's overhead per image: the archive's steady seconds per image less the command line's, and
  its start-up: the archive's wall less its steady part, less the same for the command line;
- peak memory: the largest total resident set of the command and every process under it (Ray's
  GCS, raylet and workers included), sampled every 50 ms; shared pages count once per process.

Weights: the real ones from --weights-dir (default: REMASTER_WEIGHTS_DIR, else ../shared/weights beside
the repository) where present, random ones otherwise (speed does not depend on the values). On a CUDA
machine the archive's workers take one GPU each and images/s per GPU is printed; on a CPU nothing is
said about GPUs but that there are none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Timing:
    wall: float
    steady_per_image: float
    peak_bytes: int
    images: int
    status: int


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


def run(command: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``command``; its wall seconds, its process tree's peak resident bytes, its exit status."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        print(f"  {' '.join(command[2:4])} exited {process.returncode}: {stderr.decode()[-800:]}", file=sys.stderr)
    return wall, peak[0], process.returncode


def make_video(folder: Path, frames: int, size: int) -> None:
    """A video of ``frames`` frames, ``size`` wide (3:4): a camera panning across scikit-image's astronaut photo,
    H.264 at CRF 18 in MKV, with a tone for sound."""
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image
    from skimage import data

    height = size * 3 // 4 // 2 * 2
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((size * 2, height * 2), Image.Resampling.BICUBIC))
    folder.mkdir(parents=True)
    with av.open(str(folder / "film.mkv"), "w") as out:
        video = out.add_stream("libx264", rate=24, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = size, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for index in range(frames):
            x = round(size * index / max(frames - 1, 1))
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(photo[height // 2 : height // 2 + height, x : x + size])
            )
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode())
        samples = 48000 * frames // 24
        tone = (0.2 * np.sin(np.arange(samples) / 48000 * 2 * np.pi * 440)).astype(np.float32)[None]
        for start in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + 1024]), format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            for packet in sound.encode(chunk):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)


def make_images(folder: Path, count: int, size: int) -> None:
    """``count`` different crops of scikit-image's astronaut photo, ``size``×``size``, as PNG."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((512, 512), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        y, x = rng.integers(0, 512 - size, 2) if size < 512 else (0, 0)
        Image.fromarray(photo[y : y + size, x : x + size]).save(folder / f"image{index:04d}.png")


def prepare_weights(model: str, weights_dir: Path | None, scratch: Path) -> tuple[Path, str]:
    """A folder with ``model``'s weights: the real file where available, random otherwise."""
    import torch

    import remaster
    from remaster.engine import build_network

    folder = scratch / "weights"
    folder.mkdir()
    spec = remaster.get_model(model)
    origin = "real"
    for weight in spec.weight_files:
        real = weights_dir / weight.filename if weights_dir else None
        if real is not None and real.is_file():
            (folder / weight.filename).symlink_to(real.resolve())
        else:
            torch.manual_seed(0)
            torch.save({spec.state_dict_key: build_network(spec).state_dict()}, folder / weight.filename)
            origin = "random"
    return folder, origin


def plain(source: Path, out: Path, model: str, env: dict[str, str]) -> Timing:
    wall, peak, status = run([sys.executable, "-m", "remaster", str(source), "-o", str(out), "-n", model, "-q"], env)
    times = sorted(p.stat().st_mtime for p in out.iterdir())
    return Timing(wall, _steady(times), peak, len(times), status)


@dataclass
class FilmTiming:
    wall: float
    frames: int
    join: float | None
    """Seconds from the last part's end to the video's row (the join, and the move into DEST)."""
    until_first_part: float | None
    """Seconds from the command's start to its first part's start: Ray's start-up, the worker's, the layout pass."""
    workers: int
    parts: int
    status: int


def film(
    source: Path, out: Path, model: str, workers: int | None, cpus: float | None, env: dict[str, str]
) -> FilmTiming:
    """The one video of ``source`` through the command line (``workers`` None) or the archive command."""
    if workers is None:
        wall, _, status = run([sys.executable, "-m", "remaster", str(source), "-o", str(out), "-n", model, "-q"], env)
        return FilmTiming(wall, _frames(next(out.iterdir())), None, None, 0, 0, status)
    import pyarrow.parquet as pq

    command = [sys.executable, "-m", "remaster.archive", str(source), str(out), "-n", model, "-q"]
    command += ["--workers", str(workers)] + (["--cpus-per-worker", f"{cpus:g}"] if cpus else [])
    started = time.time()
    wall, _, status = run(command, env)
    [row] = pq.read_table(out / "_remaster_manifest").to_pylist()
    parts = pq.read_table(out / "_remaster_manifest" / "_segments").to_pylist()
    ends = [part["finished_at"].timestamp() for part in parts]
    starts = [part["finished_at"].timestamp() - part["seconds"] for part in parts]
    return FilmTiming(
        wall,
        row["frames"] or 0,
        row["finished_at"].timestamp() - max(ends),
        min(starts) - started,
        len({part["worker"] for part in parts}),
        len(parts),
        status,
    )


def _frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def film_report(results: dict[str, list[FilmTiming]], gpus: int) -> None:
    print(
        f"{'command':<24} {'wall s':>8} {'frames/s':>9} {'join s':>8} {'join %':>7} {'to 1st part s':>14} {'parts':>6}"
    )
    rates = {}
    for name, timings in results.items():
        wall = statistics.median(t.wall for t in timings)
        rate = statistics.median(t.frames / t.wall for t in timings)
        rates[name] = rate
        join = statistics.median(t.join for t in timings) if timings[0].join is not None else None
        start = statistics.median(t.until_first_part for t in timings) if timings[0].join is not None else None
        parts = statistics.median(t.parts for t in timings) if timings[0].parts else None
        print(
            f"{name:<24} {wall:>8.1f} {rate:>9.2f} "
            + (f"{join:>8.2f} {join / wall:>7.1%} {start:>14.1f} {parts:>6.0f}" if join is not None else "")
        )
        if gpus and join is not None:
            print(f"{'':<24} {rate / gpus:>18.2f} frames/s per GPU")
    one, two = rates.get("archive, 1 worker"), rates.get("archive, 2 workers")
    if one and two:
        print(f"2 workers: {two / one:.2f}× the frames/s of 1 worker of the same size")


def archive(source: Path, out: Path, model: str, workers: int, cpus: float | None, env: dict[str, str]) -> Timing:
    import pyarrow.parquet as pq

    command = [sys.executable, "-m", "remaster.archive", str(source), str(out), "-n", model, "-q"]
    command += ["--workers", str(workers)] + (["--cpus-per-worker", f"{cpus:g}"] if cpus else [])
    wall, peak, status = run(command, env)
    rows = pq.read_table(out / "_remaster_manifest").to_pylist()
    times = sorted(row["finished_at"].timestamp() for row in rows if row["status"] == "done")
    return Timing(wall, _steady(times), peak, len(times), status)


def _steady(times: list[float]) -> float:
    return (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")


def median(timings: list[Timing], field: str) -> float:
    return statistics.median(getattr(t, field) for t in timings)


def report(results: dict[str, list[Timing]], images: int, gpus: int, cpus_per_worker: float | None) -> None:
    base = results["command line"]
    base_wall, base_steady = median(base, "wall"), median(base, "steady_per_image")
    base_start = base_wall - base_steady * (images - 1)
    header = (
        f"{'command':<22} {'wall s':>8} {'images/s':>9} {'steady s/img':>13} {'Ray s/img':>10} "
        f"{'Ray start-up s':>15} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, timings in results.items():
        wall, steady = median(timings, "wall"), median(timings, "steady_per_image")
        extra = steady - base_steady
        start = wall - steady * (images - 1) - base_start
        ray = "" if timings is base else f"{extra:>+10.4f} {start:>15.1f}"
        rate = images / wall
        print(
            f"{name:<22} {wall:>8.1f} {rate:>9.2f} {steady:>13.4f} {ray:>26} "
            f"{median(timings, 'peak_bytes') / 2**20:>8.0f}"
        )
        if gpus and timings is not base:
            print(f"{'':<22} {rate / gpus:>18.2f} images/s per GPU")
    for name, timings in results.items():
        one = results.get("archive, 1 worker")
        if one and name != "command line" and timings is not one:
            wall_ratio = median(one, "wall") / median(timings, "wall")
            steady_ratio = median(one, "steady_per_image") / median(timings, "steady_per_image")
            print(f"{name}: {wall_ratio:.2f}× the wall rate of 1 worker, {steady_ratio:.2f}× its steady rate")
    one = results.get("archive, 1 worker")
    if one:
        print(
            f"archive with 1 worker vs the command line: wall {median(one, 'wall') / base_wall - 1:+.1%}, "
            f"steady {median(one, 'steady_per_image') / base_steady - 1:+.1%}"
            + (f" (its worker on {cpus_per_worker:g} CPU(s), the command line on all)" if cpus_per_worker else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=128, help="input edge in pixels (default 128)")
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--cpus-per-worker", type=float, default=None,
        help="CPUs (and torch threads) each archive worker takes; default: the command's own sizing, which gives "
        "one worker every core and splits them between more; a fixed number measures how the workers scale",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--video", type=int, default=None, metavar="FRAMES", help="one video of FRAMES frames instead")
    args = parser.parse_args()
    import torch

    gpus = torch.cuda.device_count()
    weights_dir = args.weights_dir or Path(os.environ.get("REMASTER_WEIGHTS_DIR") or ROOT.parent / "shared" / "weights")
    with tempfile.TemporaryDirectory(prefix="remaster-bench-archive-") as scratch:
        scratch = Path(scratch)
        weights, origin = prepare_weights(args.model, weights_dir, scratch)
        source = scratch / "images"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "REMASTER_WEIGHTS_DIR": str(weights), "PYTHONPATH": str(ROOT)}
        env.pop("RAY_ADDRESS", None)
        if args.video:
            make_video(source, args.video, args.size)
            print(
                f"one video of {args.video} frames, {args.size} wide → ×4, {args.model} ({origin} weights), "
                f"{os.cpu_count()} CPUs, {gpus} GPU(s); {args.repeats} run(s) each, medians; "
                f"{args.cpus_per_worker or 'all'} CPU(s) per archive worker"
            )
            films: dict[str, list[FilmTiming]] = {"command line": []}
            films.update({f"archive, {n} worker{'s' if n > 1 else ''}": [] for n in args.workers})
            for repeat in range(args.repeats):
                for name in films:
                    out = scratch / f"film-{repeat}-{name.replace(' ', '').replace(',', '-')}"
                    count = None if name == "command line" else int(name.split()[1])
                    timing = film(source, out, args.model, count, args.cpus_per_worker, env)
                    films[name].append(timing)
                    print(f"  {name}: {timing.wall:.1f} s, {timing.frames} frames", file=sys.stderr, flush=True)
            film_report(films, gpus)
            return
        make_images(source, args.images, args.size)
        device = f"{gpus} CUDA GPU(s): {torch.cuda.get_device_name(0)}" if gpus else "no GPU"
        print(
            f"{args.images} images of {args.size}² → ×4, {args.model} ({origin} weights), {os.cpu_count()} CPUs, "
            f"{device}; torch {torch.__version__}; {args.repeats} run(s) each, medians; "
            + (
                f"{args.cpus_per_worker:g} CPU(s) per archive worker"
                if args.cpus_per_worker
                else "archive workers sized by the command"
            )
        )
        results: dict[str, list[Timing]] = {"command line": []}
        results.update({f"archive, {n} worker{'s' if n > 1 else ''}": [] for n in args.workers})
        for repeat in range(args.repeats):
            for name in results:
                out = scratch / f"out-{repeat}-{name.replace(' ', '').replace(',', '-')}"
                if name == "command line":
                    timing = plain(source, out, args.model, env)
                else:
                    timing = archive(source, out, args.model, int(name.split()[1]), args.cpus_per_worker, env)
                if timing.images != args.images or timing.status != 0:
                    print(f"  {name}: {timing.images} of {args.images} images written", file=sys.stderr)
                results[name].append(timing)
                print(f"  {name}: {timing.wall:.1f} s", file=sys.stderr, flush=True)
        report(results, args.images, gpus, args.cpus_per_worker)


if __name__ == "__main__":
    main()
