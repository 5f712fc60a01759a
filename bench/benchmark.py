"""remaster against the official RealESRGANer, on the same weights, in one process and one run.

    python bench/benchmark.py                      # CPU, the default sizes and models
    python bench/benchmark.py --device cuda --half # a GPU, against RealESRGANer(half=True)
    python bench/benchmark.py --big                # also 1920×1080 → 7680×4320 with RealESRGAN_x4plus
    python bench/benchmark.py --families           # only: one row per architecture family of model files
    python bench/benchmark.py --faces              # only: face restoration, automatic backend against torch

Where networks are compiled (CUDA by default, or REMASTER_COMPILE=1), each model is warmed
up at each size and its background compilation awaited before timing; the table then also
gives remaster uncompiled, and on CUDA a second table times the networks alone.

Weights: the real ones from --weights-dir (default: REMASTER_WEIGHTS_DIR, else
../shared/weights beside the repository) where present, random ones otherwise (speed does
not depend on the values). The two pipelines are timed alternately; the table gives median
seconds, the ratio, the largest tiled-versus-whole difference of each, peak memory and the
network's achieved TFLOP/s (2 × multiply-adds per second). On a CPU, the rates of one
convolution in each layout and precision follow: they bound the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import remaster  # noqa: E402
from remaster import Options, tiling  # noqa: E402
from remaster._compat import import_basicsr  # noqa: E402
from remaster.engine import build_network  # noqa: E402
from remaster.runtimes.measured import Accelerated  # noqa: E402
from remaster.settings import Settings  # noqa: E402
from remaster.timing import busy_share  # noqa: E402

DEFAULT_DENOISE = Options().denoise_strength
FAMILIES = {
    "RealESRGAN_x4plus": "RRDB, 23 blocks",
    "RealESRGAN_x4plus_anime_6B": "RRDB, 6 blocks",
    "realesr-animevideov3": "SRVGG, 16 convs",
    "realesr-general-x4v3": "SRVGG, 32 convs",
}


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or the growth of the process's resident set
    (sampled every 5 ms) over what it held when the block began."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self._base = _rss()
        self.peak = self._base

        def sample() -> None:
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, _rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss()) - self._base


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_image(size: int | tuple[int, int]) -> np.ndarray:
    """A natural photo (scikit-image's astronaut, public domain) at ``size``×``size`` (or ``size`` = width, height),
    RGB uint8."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    return np.asarray(photo.resize(_extent(size), Image.Resampling.BICUBIC))


def _extent(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


def _size_label(size: int | tuple[int, int]) -> str:
    return f"{size}²" if isinstance(size, int) else f"{size[0]}×{size[1]}"


def _size(text: str) -> int | tuple[int, int]:
    """``128`` (a square) or ``640x480`` (width × height), as ``--sizes`` takes them."""
    width, _, height = text.lower().partition("x")
    return (int(width), int(height)) if height else int(width)


def prepare_weights(names: list[str], weights_dir: Path | None, scratch: Path) -> tuple[Path, dict[str, str]]:
    """A folder with a weight file for every model: the real one where available, random otherwise."""
    folder = scratch / "weights"
    folder.mkdir()
    origin = {}
    for name in names:
        spec = remaster.get_model(name)
        for weight in spec.weight_files:
            real = weights_dir / weight.filename if weights_dir else None
            if real is not None and real.is_file():
                (folder / weight.filename).symlink_to(real.resolve())
                origin[name] = "real"
            else:
                torch.manual_seed(0)
                torch.save({spec.state_dict_key: build_network(spec).state_dict()}, folder / weight.filename)
                origin.setdefault(name, "random")
    return folder, origin


def reference(spec: remaster.ModelSpec, folder: Path, device: torch.device, half: bool, tile: int = 0):
    RealESRGANer = import_basicsr("realesrgan").RealESRGANer  # noqa: N806 - the official class

    model_path = str(folder / spec.weights.filename)
    dni = None
    if spec.supports_denoise:
        model_path = [model_path, str(folder / spec.denoise_weights.filename)]
        dni = [0.5, 0.5]
    return RealESRGANer(
        scale=spec.scale,
        model_path=model_path,
        dni_weight=dni,
        model=build_network(spec),
        tile=tile,
        pre_pad=0,
        half=half,
        device=device,
    )


def timed(device: torch.device, fn, *args, sample_memory: bool = True, **kwargs) -> tuple[float, int, object]:
    """Seconds, peak memory (0 unless ``sample_memory``) and result of ``fn(*args, **kwargs)``.

    On a CPU the memory is sampled by a thread every 5 ms, which on two cores takes time from the call
    timed: the speed table samples it in one of its repeats only.
    """
    tracker = PeakMemory(device)
    with tracker if sample_memory else contextlib.nullcontext(tracker) as memory:
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    return seconds, memory.peak, result


def quietly(fn, *args):
    """Call ``fn`` with its prints (RealESRGANer prints every tile) sent nowhere."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def max_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="run the reference with half=True (its GPU setting)")
    parser.add_argument("--models", nargs="+", default=list(FAMILIES))
    parser.add_argument(
        "--sizes", nargs="+", type=_size, default=[128, 256], help="squares (128) or width×height (640x480: a frame)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seam-size", type=int, default=192, help="image side for the tiled-versus-whole check")
    parser.add_argument("--seam-tile", type=int, default=64)
    parser.add_argument("--big", action="store_true", help="also 1920×1080 ×4 with RealESRGAN_x4plus, ours only")
    parser.add_argument(
        "--tiling-cost",
        type=int,
        default=0,
        metavar="SIDE",
        help="also time RealESRGAN_x4plus on a SIDE² input whole and at the automatic tiling, ours only",
    )
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="REMASTER_CACHE_DIR for the run (converted and quantized networks, decisions); default: a new folder",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each row, wait up to SECONDS for other work to leave the processor",
    )
    parser.add_argument(
        "--int8", action="store_true", help="also: int8 as asked against torch, and the int8 quality of each model"
    )
    parser.add_argument(
        "--compile-timeout", type=float, default=300, help="seconds to wait for a background compilation"
    )
    parser.add_argument(
        "--families",
        action="store_true",
        help="instead: one model file per architecture family (random weights at real sizes), remaster against "
        "spandrel's own call on the whole image",
    )
    parser.add_argument("--family-size", type=int, default=64, help="the families' input side (default: 64)")
    parser.add_argument(
        "--faces",
        nargs="+",
        metavar="FACE_MODEL",
        help="instead: face restoration with these face models (random weights at real sizes, one face per "
        "image, upscaled by the first of --models) on the automatic backend against REMASTER_BACKEND=torch",
    )
    parser.add_argument(
        "--no-bf16", action="store_true", help="act as a CPU without bf16 instructions (automatic precision: fp32)"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.families:
        families(torch.device(args.device), args.family_size, args.repeats)
        return
    device = torch.device(args.device)
    weights_dir = args.weights_dir or Path(os.environ.get("REMASTER_WEIGHTS_DIR") or ROOT.parent / "shared" / "weights")
    weights_dir = weights_dir if weights_dir.is_dir() else None
    scratch = Path(tempfile.mkdtemp(prefix="remaster-bench-"))
    extra = ["RealESRGAN_x4plus"] if args.tiling_cost or args.big else []
    folder, origin = prepare_weights(list(dict.fromkeys([*args.models, *extra])), weights_dir, scratch)
    settings = Settings.from_env(
        device=args.device, weights_dir=folder, offline=True, cache_dir=args.cache_dir or scratch
    )
    if args.no_bf16:
        settings = replace(settings, cpu_bf16=False)
    if args.faces:
        face_table(args, settings)
        return
    enhancer = remaster.Enhancer(settings)
    uncompiled = enhancer.with_settings(compile=False, backend="torch")
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else _cpu_name()})")
    if device.type == "cpu":
        print(f"processor as remaster keys its decisions: {enhancer.engine.processor.key}; {_load()}")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, remaster {remaster.__version__}")
    print(f"weights: {weights_dir or 'random'}; reference: RealESRGANer(tile=0, pre_pad=0, half={args.half})")
    print(f"compile: {'in the background, awaited before timing' if settings.compile else 'off'}\n")

    speed_table(args, enhancer, uncompiled, folder, origin)
    if args.int8:
        int8_table(args, enhancer, uncompiled)
    split_table(args, enhancer, uncompiled)
    if device.type == "cuda" and settings.compile:
        network_alone(enhancer, args.models, args.sizes)
    if device.type == "cpu":
        convolution_rates()
    seam_table(args, uncompiled, folder)
    if args.tiling_cost:
        tiling_cost(args.tiling_cost, uncompiled)
    if args.big:
        big_image(enhancer)


def _busy_elsewhere(samples: list[float]) -> None:
    """Sample how busy other work keeps the processor, between timed runs (after their threads settle)."""
    time.sleep(0.05)
    share = busy_share(0.2)
    if share is not None:
        samples.append(share)


def _busy_note(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0%}" if samples else "?"


def _wait_quiet(seconds: float) -> None:
    """Wait, up to ``seconds``, for other work to leave the processor (under 10% busy for two seconds running)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        share = busy_share(2.0)
        if share is None or share < 0.1:
            return
    print(f"(the processor stayed busy with other work for {seconds:.0f} s; timing anyway)", flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def int8_table(args: argparse.Namespace, enhancer: remaster.Enhancer, plain: remaster.Enhancer) -> None:
    """For each model: int8's quality against fp32 on the probe pictures (the whole network in int8, as
    ``--precision int8`` runs it, and the best the automatic search reached), whether ``auto`` uses it, and requests
    in int8 against torch and the automatic choice, alternating."""
    from remaster.runtimes.int8 import GATE

    print(
        f"\nint8 (OpenVINO, NNCF) against fp32 on the probe pictures (lowest PSNR, largest difference; auto uses it "
        f"only within {GATE.psnr:.0f} dB and {GATE.max_difference}/255), and whole requests, median of "
        f"{args.repeats}, alternating ({_load()}):\n"
    )
    print(
        "| model | input | int8 as asked: quality | best reached by auto's search | auto uses | int8 s | torch s | "
        "int8 / torch | auto s | auto / torch | CPU busy elsewhere |"
    )
    print("|" + " --- |" * 11)
    device = enhancer.engine.device
    for name in args.models:
        spec = remaster.get_model(name)
        for size in args.sizes:
            image = test_image(size)
            forced = _settled(enhancer, spec, image, "int8", args.compile_timeout)
            automatic = _settled(enhancer, spec, image, "auto", args.compile_timeout)
            plain.run(image, Options(model=name))
            qualities = [getattr(n.accelerated, "qualities", {}).get("int8") for n in (forced, automatic)]
            cells = [str(quality) if quality is not None else "—" for quality in qualities]
            runs: dict[str, list[float]] = {"int8": [], "torch": [], "auto": []}
            busy: list[float] = []
            _wait_quiet(args.wait_quiet)
            for _ in range(args.repeats):
                _busy_elsewhere(busy)
                for key, runner, precision in (
                    ("int8", enhancer, "int8"),
                    ("torch", plain, "auto"),
                    ("auto", enhancer, "auto"),
                ):
                    options = Options(model=name, precision=precision)
                    runs[key].append(timed(device, runner.run, image, options, sample_memory=False)[0])
            int8_s, torch_s, auto_s = (statistics.median(runs[key]) for key in ("int8", "torch", "auto"))
            print(
                f"| {name} | {_size_label(size)} | {cells[0]} | {cells[1]} | {_backend(automatic.accelerated)} | "
                f"{int8_s:.4f} | {torch_s:.4f} | **{torch_s / int8_s:.2f}×** | {auto_s:.4f} | "
                f"**{torch_s / auto_s:.2f}×** | {_busy_note(busy)} |",
                flush=True,
            )


def speed_table(
    args: argparse.Namespace,
    enhancer: remaster.Enhancer,
    plain: remaster.Enhancer,
    folder: Path,
    origin: dict[str, str],
) -> None:
    """One row per model and size: the reference; ours on the automatic backend, on torch alone, and in fp32
    (automatic backend); the backend chosen; differences; rate; memory."""
    header = (
        "| model | weights | input | reference s | remaster auto s | ratio | torch s | auto / torch | "
        "remaster fp32 s | ratio fp32 | precision | backend | max /255: auto vs torch fp32, fp32 vs reference | "
        "TFLOP/s | peak MB added, ref / ours | CPU busy elsewhere |"
    )
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for name in args.models:
        spec = remaster.get_model(name)
        upsampler = reference(spec, folder, enhancer.engine.device, args.half)
        for size in args.sizes:
            speed_row(args, enhancer, plain, upsampler, spec, size, origin[name])


def _settled(enhancer: remaster.Enhancer, spec: remaster.ModelSpec, image: np.ndarray, precision: str, wait: float):
    """Warm up ``spec`` on ``image`` and wait for its backend to be built and measured; its network."""
    enhancer.run(image, Options(model=spec.name, precision=precision))
    network = enhancer.engine.network(spec, precision, denoise_strength=DEFAULT_DENOISE)
    if network.accelerated is not None:
        network.accelerated.wait(wait)
    return network


def _backend(accelerated) -> str:
    """What runs a network: its ``accelerated`` runner, or a helper's runner (a plain module runs on torch)."""
    if accelerated is None or isinstance(accelerated, torch.nn.Module):
        return "torch"
    name = getattr(accelerated, "backend", "compiled")
    speed = f"{accelerated.speedup:.2f}×" if accelerated.speedup else "forced"
    loads = [c.load for c in getattr(accelerated, "comparisons", {}).values() if c.load is not None]
    busy = f", measured with {max(loads):.0%} of the CPU busy elsewhere" if loads and max(loads) >= 0.1 else ""
    quality = getattr(accelerated, "qualities", {}).get("int8")
    int8 = f"; int8 {quality.psnr:.1f} dB, {quality.max_difference}/255" if quality is not None else ""
    return f"{name}: {accelerated.state} ({speed}{busy}){int8}"


def speed_row(
    args: argparse.Namespace,
    enhancer: remaster.Enhancer,
    plain: remaster.Enhancer,
    upsampler: object,
    spec: remaster.ModelSpec,
    size: int | tuple[int, int],
    origin: str,
) -> None:
    device, name = enhancer.engine.device, spec.name
    image = test_image(size)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    _wait_quiet(args.wait_quiet)  # the automatic choice is measured now: quietly, where that can be had
    network = _settled(enhancer, spec, image, "auto", args.compile_timeout)
    exact_network = _settled(enhancer, spec, image, "fp32", args.compile_timeout)
    plain.run(image, Options(model=name))
    torch_exact = plain.run(image, Options(model=name, precision="fp32"))[0]
    reference_result = quietly(upsampler.enhance, bgr)[0][:, :, ::-1]
    ours_exact = enhancer.run(image, Options(model=name, precision="fp32"))[0]
    differences = (
        f"{max_difference(enhancer.run(image, Options(model=name))[0], torch_exact)}, "
        f"{max_difference(ours_exact, np.ascontiguousarray(reference_result))}"
    )
    runs: dict[str, list[float]] = {"ref": [], "auto": [], "torch": [], "fp32": []}
    peaks = {"ref": 0, "auto": 0}
    precision = ""
    busy: list[float] = []
    _wait_quiet(args.wait_quiet)
    for repeat in range(args.repeats):
        _busy_elsewhere(busy)
        sampled = repeat == args.repeats // 2
        seconds, peak, _ = timed(device, quietly, upsampler.enhance, bgr, sample_memory=sampled)
        runs["ref"].append(seconds)
        peaks["ref"] = max(peaks["ref"], peak)
        seconds, peak, (_, report) = timed(device, enhancer.run, image, Options(model=name), sample_memory=sampled)
        runs["auto"].append(seconds)
        peaks["auto"] = max(peaks["auto"], peak)
        precision = report.precision
        runs["torch"].append(timed(device, plain.run, image, Options(model=name), sample_memory=False)[0])
        exact_run = timed(device, enhancer.run, image, Options(model=name, precision="fp32"), sample_memory=False)
        runs["fp32"].append(exact_run[0])
    ref, auto, on_torch, exact = (statistics.median(runs[key]) for key in ("ref", "auto", "torch", "fp32"))
    tflops = 2 * network.macs_per_pixel * np.prod(_extent(size)) / auto / 1e12
    exact_backend = "" if exact_network is network else f"; fp32 {_backend(exact_network.accelerated)}"
    backends = _backend(network.accelerated) + exact_backend
    print(
        f"| {name} | {origin} | {_size_label(size)} | {ref:.4f} | {auto:.4f} | **{ref / auto:.2f}×** | "
        f"{on_torch:.4f} | **{on_torch / auto:.2f}×** | {exact:.4f} | {ref / exact:.2f}× | {precision} | "
        f"{backends} | {differences} | {tflops:.2f} | {peaks['ref'] / 2**20:.0f} / {peaks['auto'] / 2**20:.0f} | "
        f"{_busy_note(busy)} |",
        flush=True,
    )


_STAGES = (
    ("decode", "image_io.py", "decode"),
    ("network, with its casts and padding", "network.py", "_run"),
    ("tile copies and conversion to float", "tiling.py", "run_windows"),
    ("quantising the cores", "tiling.py", "_write_core"),
    ("resizing to the output scale", "pixels.py", "resize"),
    ("encoding and writing", "image_io.py", "save"),
)


def request_split(
    enhancer: remaster.Enhancer, name: str, side: int | tuple[int, int], repeats: int, in_memory: bool
) -> None:
    """Where a request's time goes: as the command line runs one (a PNG file in, a PNG file out, zlib level 6),
    or in memory (an array in, an array out: what ``Enhancer.run`` costs around the network)."""
    import cProfile
    import pstats

    from PIL import Image

    from remaster.files import remaster_file

    scratch = Path(tempfile.mkdtemp(prefix="remaster-split-"))
    source = scratch / "in.png"
    image = test_image(side)
    Image.fromarray(image).save(source)
    options = Options(model=name)

    def request(index: int | str) -> None:
        if in_memory:
            enhancer.run(image, options)
        else:
            remaster_file(enhancer, source, scratch / f"out{index}", options)

    request("warm")
    profile = cProfile.Profile()
    profile.enable()
    for index in range(repeats):
        request(index)
    profile.disable()
    stats = pstats.Stats(profile).stats

    def seconds(file: str, function: str) -> float:
        return sum(value[3] for key, value in stats.items() if key[0].endswith(file) and key[2] == function)

    total = seconds("pipeline.py", "run") if in_memory else seconds("files.py", "remaster_file")

    parts = {label: seconds(file, function) for label, file, function in _STAGES}
    parts["tile copies and conversion to float"] -= (
        parts["network, with its casts and padding"] + parts["quantising the cores"]
    )
    parts["the rest"] = total - sum(parts.values())
    cells = " | ".join(f"{value / repeats * 1000:.1f} ms ({value / total:.0%})" for value in parts.values())
    outside = 1 - parts["network, with its casts and padding"] / total
    print(
        f"| {name} | {_size_label(side)} | {total / repeats * 1000:.1f} ms | {cells} | **{outside:.0%}** |", flush=True
    )


def split_table(args: argparse.Namespace, enhancer: remaster.Enhancer, plain: remaster.Enhancer) -> None:
    labels = [label for label, _, _ in _STAGES] + ["the rest", "outside the network"]
    for title, engine in (("the automatic backend", enhancer), ("torch alone", plain)):
        for in_memory in (True, False):
            how = "an array in, an array out" if in_memory else "a PNG file in, a PNG file out"
            print(f"\nWhere a request's time goes on {title} ({how}, {args.repeats} requests, cProfile):\n")
            print("| model | input | request | " + " | ".join(labels) + " |")
            print("|" + " --- |" * (len(labels) + 3))
            for name in args.models:
                request_split(
                    engine, name, max(args.sizes, key=lambda size: np.prod(_extent(size))), args.repeats, in_memory
                )


def seam_table(args: argparse.Namespace, uncompiled: remaster.Enhancer, folder: Path) -> None:
    """The largest tiled-versus-whole difference of each pipeline, in fp32."""
    device = uncompiled.engine.device
    print(f"\nTiled versus whole, {args.seam_size}² input, tile {args.seam_tile}, fp32, largest difference (/255):\n")
    print("| model | RealESRGANer (tile_pad 10) | remaster |")
    print("| --- | --- | --- |")
    image = test_image(args.seam_size)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    for name in args.models:
        spec = remaster.get_model(name)
        whole_ref = quietly(reference(spec, folder, device, False).enhance, bgr)[0]
        tiled_ref = quietly(reference(spec, folder, device, False, tile=args.seam_tile).enhance, bgr)[0]
        whole = uncompiled.enhance(image, model=name, precision="fp32", tile=0)
        tiled = uncompiled.enhance(image, model=name, precision="fp32", tile=args.seam_tile)
        print(f"| {name} | {max_difference(whole_ref, tiled_ref)} | {max_difference(whole, tiled)} |", flush=True)


def tiling_cost(side: int, uncompiled: remaster.Enhancer) -> None:
    """What the automatic tiling costs against the whole image at once, RealESRGAN_x4plus on a side² input."""
    device = uncompiled.engine.device
    image = test_image(side)
    network = uncompiled.engine.network(remaster.get_model("RealESRGAN_x4plus"))
    tiles = tiling.auto_tile(network, side, side)
    whole, _, _ = timed(device, uncompiled.enhance, image, model="RealESRGAN_x4plus", tile=0)
    auto, _, _ = timed(device, uncompiled.enhance, image, model="RealESRGAN_x4plus")
    print(
        f"\nRealESRGAN_x4plus, {side}² input: whole {whole:.1f} s, automatic tiling {tiles} "
        f"{auto:.1f} s ({(auto / whole - 1) * 100:+.0f}%)"
    )


def big_image(enhancer: remaster.Enhancer) -> None:
    """1920×1080 → 7680×4320 with RealESRGAN_x4plus: seconds and peak memory."""
    from PIL import Image
    from skimage import data

    device = enhancer.engine.device
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((1920, 1080), Image.Resampling.BICUBIC))
    seconds, peak, (result, report) = timed(device, enhancer.run, photo, Options(model="RealESRGAN_x4plus"))
    print(
        f"\n1920×1080 → {result.shape[1]}×{result.shape[0]} with RealESRGAN_x4plus ({report.precision}): "
        f"{seconds:.1f} s, peak {'GPU memory' if device.type == 'cuda' else 'RSS'} {peak / 2**30:.2f} GiB"
    )


def face_table(args: argparse.Namespace, settings: Settings) -> None:
    """Seconds a request with one face takes on the automatic backend and on torch, and the face step's share."""
    from remaster.faces import FACE_TEMPLATE, Face
    from remaster.registry import DETECTOR, PARSER

    folder = settings.weights_dir
    helpers = [*((name, "face_restorer") for name in args.faces), (PARSER, "face_parser"), (DETECTOR, "face_detector")]
    for name, kind in helpers:
        spec = remaster.get_model(name, kind)
        torch.manual_seed(0)
        state = build_network(spec).state_dict()
        torch.save({spec.state_dict_key: state} if spec.state_dict_key else state, folder / spec.weights.filename)
    side = min(_extent(args.sizes[0]))
    image = test_image(side)
    # One face, its aligned 512² crop two thirds of the image across; random detectors find none, so it is given.
    face = Face(((FACE_TEMPLATE - 256) * (side / 768) + side / 2).astype(np.float32))
    automatic = remaster.Enhancer(settings)
    on_torch = automatic.with_settings(backend="torch")
    for enhancer in (automatic, on_torch):
        enhancer.faces.detect = lambda source, on_wait=None: [face]
    model = args.models[0]
    print(f"{side}² with one face, upscaled by {model}; face networks with random weights at real sizes")
    print(
        f"{'face model':<16}{'restorer + parser on':>44}{'torch s':>10}{'auto s':>9}{'ratio':>8}"
        f"{'face step: torch s':>20}{'auto s':>9}"
    )
    for face_model in args.faces:
        options = Options(model=model, face_enhance=True, face_model=face_model)
        automatic.run(image, options)  # builds the face networks' backends in the background
        # The restorer's and the parser's runners as the request built them (cached by name: the lambda is unused).
        runners = [
            automatic.engine.helper(remaster.get_model(name, kind), lambda module: module)
            for name, kind in ((face_model, "face_restorer"), (PARSER, "face_parser"))
        ]
        for runner in runners:
            if isinstance(runner, Accelerated):
                runner.wait(timeout=args.compile_timeout)
        chosen = [_backend(runner) for runner in runners]
        times: dict[str, list[float]] = {"torch": [], "auto": [], "torch plain": [], "auto plain": []}
        plain = replace(options, face_enhance=False)
        for _ in range(args.repeats):
            for label, enhancer in (("torch", on_torch), ("auto", automatic)):
                for key, request in ((label, options), (f"{label} plain", plain)):
                    started = time.perf_counter()
                    enhancer.run(image, request)
                    times[key].append(time.perf_counter() - started)
        median = {key: statistics.median(value) for key, value in times.items()}
        step = {label: median[label] - median[f"{label} plain"] for label in ("torch", "auto")}
        print(
            f"{face_model:<16}{' + '.join(chosen):>44}{median['torch']:>10.2f}{median['auto']:>9.2f}"
            f"{median['torch'] / median['auto']:>7.2f}×{step['torch']:>20.2f}{step['auto']:>9.2f}"
        )
    detection_table(automatic, on_torch, args.repeats, args.compile_timeout)


def detection_table(automatic: remaster.Enhancer, on_torch: remaster.Enhancer, repeats: int, timeout: float) -> None:
    """Seconds the face detector (RetinaFace, random weights) takes on a photo, automatic backend against torch."""
    from remaster.faces import FaceRestorer
    from remaster.registry import DETECTOR

    photos = [test_image(side).astype(np.float32) / 255 for side in (256, 1024, 1600)]
    FaceRestorer.detect(automatic.faces, photos[0])  # builds the detector's backend in the background
    runner = automatic.engine.helper(remaster.get_model(DETECTOR, "face_detector"), lambda module: module)
    if isinstance(runner, Accelerated):
        runner.wait(timeout=timeout)
    print(f"\nface detection ({DETECTOR}, random weights) on {_backend(runner)}")
    print(f"{'photo':<12}{'torch s':>10}{'auto s':>9}{'ratio':>8}")
    for photo in photos:
        times: dict[str, list[float]] = {"torch": [], "auto": []}
        for _ in range(repeats):
            for label, enhancer in (("torch", on_torch), ("auto", automatic)):
                started = time.perf_counter()
                FaceRestorer.detect(enhancer.faces, photo)  # the real method: the faces were patched in above
                times[label].append(time.perf_counter() - started)
        torch_s, auto_s = statistics.median(times["torch"]), statistics.median(times["auto"])
        print(f"{f'{photo.shape[1]}²':<12}{torch_s:>10.3f}{auto_s:>9.3f}{torch_s / auto_s:>7.2f}×")


def _family_networks() -> dict[str, object]:
    """A network of each architecture family of model files people bring, at a real size, random weights."""
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.PLKSR import PLKSR
    from spandrel.architectures.RealCUGAN import UpCunet2x
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    rrdb = import_basicsr("basicsr.archs.rrdbnet_arch").RRDBNet
    compact = import_basicsr("realesrgan.archs.srvgg_arch").SRVGGNetCompact
    swinir = {"img_size": 64, "window_size": 8, "embed_dim": 180, "depths": [6] * 6, "num_heads": [6] * 6}
    return {
        "ESRGAN (4x, 23 blocks)": lambda: rrdb(3, 3, num_feat=64, num_block=23, num_grow_ch=32, scale=4),
        "Compact (4x, 32 convs)": lambda: compact(num_feat=64, num_conv=32, upscale=4),
        "SPAN (4x, 48 ch)": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4),
        "Real-CUGAN (2x)": lambda: UpCunet2x(in_channels=3, out_channels=3),
        "PLKSR (4x, 28 blocks)": lambda: PLKSR(dim=64, n_blocks=28, upscaling_factor=4),
        "OmniSR (4x)": lambda: OmniSR(num_feat=64, up_scale=4),
        "SwinIR-M (4x)": lambda: SwinIR(upscale=4, upsampler="pixelshuffle", mlp_ratio=2, **swinir),
        "HAT-S-like (4x)": lambda: HAT(upscale=4, upsampler="pixelshuffle"),
        "DAT (4x)": lambda: DAT(upscale=4),
    }


def families(device: torch.device, side: int, repeats: int) -> None:
    """remaster (its engine, automatic precision, whole image) against spandrel's own call, same precision."""
    from spandrel import ModelLoader

    from remaster.model_files import ModelFiles

    scratch = Path(tempfile.mkdtemp(prefix="remaster-families-"))
    settings = Settings.from_env(device=str(device), offline=True, cache_dir=scratch)
    enhancer = remaster.Enhancer(settings)
    image = test_image(side)
    print(
        f"device: {device}; input {side}²; median of {repeats}, alternating; both in remaster's automatic precision\n"
    )
    print("| family | precision | spandrel s | remaster s | ratio | remaster TFLOP/s | max /255 between them |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for family, make in _family_networks().items():
        torch.manual_seed(0)
        path = scratch / f"{family.split()[0].lower()}.pth"
        torch.save(make().state_dict(), path)
        spec = ModelFiles(settings).load(str(path))
        options = Options(model=spec.name, outscale=spec.scale, tile=0)
        ours, report = enhancer.run(image, options)
        network = enhancer.engine.network(spec)
        descriptor = ModelLoader(device).load_from_file(path).eval().to(network.dtype)
        batch = torch.from_numpy(image.transpose(2, 0, 1).copy())[None].to(device, network.dtype) / 255

        def theirs(descriptor=descriptor, batch=batch):
            with torch.inference_mode():
                return descriptor(batch)

        reference = (theirs()[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        runs: dict[str, list[float]] = {"spandrel": [], "remaster": []}
        for _ in range(repeats):
            runs["spandrel"].append(timed(device, theirs, sample_memory=False)[0])
            runs["remaster"].append(timed(device, enhancer.run, image, options, sample_memory=False)[0])
        spandrel_s, remaster_s = (statistics.median(runs[key]) for key in ("spandrel", "remaster"))
        tflops = 2 * network.macs_per_pixel * side * side / remaster_s / 1e12
        print(
            f"| {family} | {report.precision} | {spandrel_s:.3f} | {remaster_s:.3f} | "
            f"**{spandrel_s / remaster_s:.2f}×** | {tflops:.2f} | {max_difference(ours, reference)} |",
            flush=True,
        )


def network_alone(enhancer: remaster.Enhancer, names: list[str], sizes: list[int]) -> None:
    """Times each network's forward pass alone on CUDA (events, median of 20), eager and compiled."""
    print("\nNetworks alone (input on the GPU, no conversion), median of 20:\n")
    print("| model | input | eager ms | TFLOP/s | compiled ms | TFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        network = enhancer.engine.network(remaster.get_model(name))
        if network.accelerated is None or network.accelerated.state != "compiled":
            continue
        for size in sizes:
            with torch.inference_mode():  # as the engine calls it: dynamo's guards tell the modes apart
                batch = torch.rand(1, 3, size, size, device=network.device).to(network.dtype)
                batch = batch.contiguous(memory_format=torch.channels_last)
            cells = []
            for forward in (network.module, network.accelerated):
                with torch.inference_mode():
                    if forward is network.accelerated and not forward.accepts(batch):
                        cells.append("— | —")
                        continue
                    milliseconds = cuda_milliseconds(forward, batch)
                tflops = 2 * network.macs_per_pixel * size * size / milliseconds / 1e9
                cells.append(f"{milliseconds:.2f} | {tflops:.0f}")
            print(f"| {name} | {size}² | {' | '.join(cells)} |", flush=True)


def convolution_rates(side: int = 256, repeats: int = 7) -> None:
    """The CPU's rate on one 64→64 3×3 convolution, the bulk of every model's work, in each layout and dtype."""
    convolution = torch.nn.Conv2d(64, 64, 3, padding=1).eval().requires_grad_(False)
    flop = 2 * 64 * 64 * 9 * side * side
    variants = {
        "fp32 NCHW": (torch.float32, torch.contiguous_format),
        "fp32 channels-last": (torch.float32, torch.channels_last),
        "bf16 channels-last": (torch.bfloat16, torch.channels_last),
    }
    rates = []
    with torch.inference_mode():
        for name, (dtype, layout) in variants.items():
            layer = convolution.to(dtype=dtype, memory_format=layout)
            batch = torch.rand(1, 64, side, side).to(dtype).contiguous(memory_format=layout)
            layer(batch)
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                layer(batch)
                times.append(time.perf_counter() - started)
            rates.append(f"{name} {flop / statistics.median(times) / 1e12:.2f}")
    print(f"\nOne 64→64 3×3 convolution at {side}², TFLOP/s: {', '.join(rates)}")


def cuda_milliseconds(forward, batch: torch.Tensor, repeats: int = 20) -> float:
    for _ in range(3):
        forward(batch)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        forward(batch)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return "CPU"


if __name__ == "__main__":
    main()
