"""Many people at once: start the app on 127.0.0.1 and send N concurrent requests through gradio_client.

    python bench/load.py --requests 20

It reports how many requests completed, how many the full queue turned away, how many
failed otherwise (there should be none), the median and 95th-percentile latency of the
completed ones, and the server's peak memory. Weights: the real ones from --weights-dir
(default REMASTER_WEIGHTS_DIR, else ../shared/weights) where present, random ones otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from benchmark import prepare_weights, test_image  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_of_tree(pid: int) -> int:
    """Resident memory of a process and its children, in bytes."""
    total = 0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found] + [grand for child in found for grand in _children(int(child))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--queue-size", type=int, default=10)
    parser.add_argument("--model", default="realesr-animevideov3")
    parser.add_argument("--size", type=int, default=256, help="input side in pixels")
    parser.add_argument("--timeout", type=float, default=600, help="seconds the whole run may take")
    parser.add_argument("--weights-dir", type=Path, default=None)
    return parser.parse_args()


def start_app(args: argparse.Namespace, weights: Path, scratch: Path) -> tuple[subprocess.Popen, str]:
    """``python app.py`` in a subprocess, logging into ``scratch``; returns it and its URL once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(scratch / "gradio"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "REMASTER_WEIGHTS_DIR": str(weights),
        "REMASTER_QUEUE_SIZE": str(args.queue_size),
        "REMASTER_DEFAULT_MODEL": args.model,
    }
    log = open(scratch / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=scratch, env=env, stdout=log, stderr=log)
    log.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return server, url
        if time.monotonic() > deadline or server.poll() is not None:
            server.terminate()
            raise SystemExit(f"the app did not start; see {scratch / 'server.log'}")
        time.sleep(0.5)


def fire(url: str, source: Path, args: argparse.Namespace) -> tuple[list[tuple[str, float, str]], float]:
    """``args.requests`` requests at once; each one's outcome and seconds, and the wall time of them all."""
    from gradio_client import Client, handle_file

    def one(index: int) -> tuple[str, float, str]:
        started = time.monotonic()
        try:
            client = Client(url, verbose=False)
            job = client.submit(handle_file(str(source)), args.model, 4, "auto", False, 0.5, api_name="/remaster")
            result = job.result(timeout=args.timeout)
            with Image.open(result[0]) as out:
                assert out.size == (args.size * 4, args.size * 4), out.size
            return "completed", time.monotonic() - started, ""
        except Exception as error:  # noqa: BLE001 - every outcome is counted
            kind = "rejected" if "queue" in str(error).lower() else "failed"
            return kind, time.monotonic() - started, f"{type(error).__name__}: {error}"

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.requests) as pool:
        outcomes = list(pool.map(one, range(args.requests)))
    return outcomes, time.monotonic() - began


def main() -> None:
    args = parse_args()
    import remaster

    scratch = Path(tempfile.mkdtemp(prefix="remaster-load-"))
    weights_dir = args.weights_dir or Path(os.environ.get("REMASTER_WEIGHTS_DIR") or ROOT.parent / "shared" / "weights")
    folder, origin = prepare_weights([args.model], weights_dir if weights_dir.is_dir() else None, scratch)
    source = scratch / "photo.png"
    Image.fromarray(test_image(args.size)).save(source)

    server, url = start_app(args, folder, scratch)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.wait(0.05):
            peak = max(peak, rss_of_tree(server.pid))

    threading.Thread(target=watch, daemon=True).start()
    try:
        idle = rss_of_tree(server.pid)
        outcomes, wall = fire(url, source, args)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)

    latencies = sorted(seconds for kind, seconds, _ in outcomes if kind == "completed")
    counts = {kind: sum(1 for k, _, _ in outcomes if k == kind) for kind in ("completed", "rejected", "failed")}
    p95 = latencies[min(len(latencies) - 1, int(np.ceil(0.95 * len(latencies))) - 1)] if latencies else float("nan")
    print(
        f"remaster {remaster.__version__}: {args.requests} concurrent requests, {args.model} ({origin[args.model]} "
        f"weights), {args.size}² → {args.size * 4}², queue size {args.queue_size}, {os.cpu_count()} CPUs\n"
    )
    print("| completed | rejected by the queue | failed | p50 s | p95 s | wall s | server RSS idle / peak MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {counts['completed']} | {counts['rejected']} | {counts['failed']} | "
        f"{statistics.median(latencies) if latencies else float('nan'):.2f} | {p95:.2f} | {wall:.1f} | "
        f"{idle / 2**20:.0f} / {peak / 2**20:.0f} |"
    )
    for kind, _, message in outcomes:
        if kind == "failed":
            print(f"failed: {message}")
    sys.exit(1 if counts["failed"] else 0)


if __name__ == "__main__":
    main()
