"""Checks that only a CUDA machine can make, printed as a table (run by bench/gpu.sh).

    python bench/gpu_checks.py --weights-dir .weights

With real RealESRGAN_x4plus weights (random where absent), uncompiled: tiled versus whole
in the GPU's precision for several tile sizes, fp16 and bf16 versus fp32, how many tiles
run at once, and the out-of-memory fallback under a real CUDA memory cap (the whole image
does not fit, the retry must give the tiled result in full); then how long the first
requests take while the network compiles in the background.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import remaster  # noqa: E402
from bench.benchmark import max_difference, prepare_weights, test_image, timed  # noqa: E402
from remaster import tiling  # noqa: E402
from remaster.settings import Settings  # noqa: E402

MODEL = "RealESRGAN_x4plus"


class WarningCount(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--device", default="cuda", help="another device runs the checks that need no CUDA")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="remaster-gpu-checks-"))
    folder, origin = prepare_weights([MODEL], args.weights_dir, scratch)
    settings = Settings.from_env(
        env={}, device=args.device, weights_dir=folder, offline=True, cache_dir=scratch, compile=False
    )
    enhancer = remaster.Enhancer(settings)
    image = test_image(args.size)
    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"{where}, torch {torch.__version__}, {MODEL} ({origin[MODEL]} weights)\n")
    print("| check | result |")
    print("| --- | --- |")

    whole = enhancer.enhance(image, model=MODEL, tile=0)
    for tile in (64, 100, 128, 256):
        tiled = enhancer.enhance(image, model=MODEL, tile=tile)
        print(
            f"| auto-precision tiled ({tile}) vs whole, {args.size}², max /255 | {max_difference(whole, tiled)} |",
            flush=True,
        )
    odd = image[: args.size - 37, : args.size - 11]
    print(
        f"| auto-precision tiled (100) vs whole, {odd.shape[1]}×{odd.shape[0]}, max /255 | "
        f"{max_difference(enhancer.enhance(odd, model=MODEL, tile=0), enhancer.enhance(odd, model=MODEL, tile=100))} |"
    )
    exact = enhancer.enhance(image, model=MODEL, precision="fp32", tile=0)
    for precision in ("fp16", "bf16"):
        other = enhancer.enhance(image, model=MODEL, precision=precision, tile=0)
        difference = np.abs(other.astype(np.int32) - exact.astype(np.int32))
        print(
            f"| {precision} vs fp32 whole, max / mean /255 | {difference.max()} / {difference.mean():.3f} |", flush=True
        )

    if not args.device.startswith("cuda"):
        return
    network = enhancer.engine.network(remaster.get_model(MODEL))
    windows_at_once = tiling.batch_size(network, *image.shape[:2], 64)
    print(
        f"| tiles of 64 run at once (free memory {torch.cuda.mem_get_info()[0] / 2**30:.0f} GiB) | {windows_at_once} |"
    )

    big = test_image(1024)
    expected = enhancer.enhance(big, model=MODEL, tile=512)
    warnings = WarningCount()
    logging.getLogger("remaster").addHandler(warnings)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(4.5 * 2**30 / total)
    try:
        started = time.perf_counter()
        result = enhancer.enhance(big, model=MODEL, tile=0)
        seconds = time.perf_counter() - started
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        logging.getLogger("remaster").removeHandler(warnings)
    print(
        f"| 1024² whole under a 4.5 GiB cap: retries, then max /255 vs tile 512 | "
        f"{'; '.join(warnings.messages) or 'no retry'}, {seconds:.2f} s, {max_difference(result, expected)} |"
    )

    photo = test_image(512)
    cuda = torch.device("cuda")
    uncompiled = statistics.median(timed(cuda, enhancer.enhance, photo, model=MODEL)[0] for _ in range(3))
    compiling = enhancer.with_settings(compile=True)
    first = [timed(cuda, compiling.enhance, photo, model=MODEL)[0] for _ in range(3)]
    state = compiling.engine.network(remaster.get_model(MODEL)).accelerated.state
    print(
        f"| first 3 requests, 512², while compiling in the background ({state}) | "
        f"{', '.join(f'{seconds:.2f} s' for seconds in first)} (uncompiled, warm: {uncompiled:.2f} s) |"
    )


if __name__ == "__main__":
    main()
