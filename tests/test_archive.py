"""Whole archives on a real local Ray: outputs at their relative paths, the manifest, dead workers, resuming, S3.

One Ray (4 logical CPUs and 1 logical GPU, so the GPU scheduling path runs on a CPU machine) serves the
whole session; the workers load random weights of realesr-animevideov3 under its official name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import remaster
from remaster import Options
from remaster.archive import FOLDER, Workers, remaster_archive
from remaster.archive.driver import _dest_files, _finished, _sizes
from remaster.archive.manifest import SEGMENTS, Manifest, merge_segments, options_key, write_part, write_segment
from remaster.archive.parts_store import WORK
from remaster.archive.sources import SourceError, clashing, list_sources, locate, output_stem
from remaster.archive.worker import temporary_work
from remaster.engine import build_network
from remaster.video import VideoOptions

from . import images
from .commands import Forked, run_forked
from .fixtures import command_env, run_module
from .test_animation import animated
from .videos import make_clip, read_video

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ray")]  # one local Ray at a time

MODEL = "realesr-animevideov3"
OPTIONS = Options(model=MODEL)
TWO_CPU_WORKERS = Workers(count=2, cpus=1, gpus=0, batch_size=2)  # one thread each: the tests share 2 cores


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """Random weights for realesr-animevideov3 under its official name: small, fast, no network."""
    folder = tmp_path_factory.mktemp("archive-weights")
    spec = remaster.get_model(MODEL)
    torch.manual_seed(0)
    torch.save({"params": build_network(spec).state_dict()}, folder / spec.weights.filename)
    return folder


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for these tests (shut down after them: idle, it still takes a few percent of a core); its
    address, for a command that joins it."""
    import ray

    context = ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, logging_level="warning")
    yield context.address_info["gcs_address"]
    ray.shutdown()


def settings_for(weights: Path) -> dict:
    """The workers' settings: torch, as everywhere in the tests but the backends' own."""
    return {"weights_dir": weights, "offline": True, "backend": "torch"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, dict[str, tuple[int, int]], dict[str, str]]:
    """A folder of 30 files in subfolders: 26 good images (two animated, two sharing a stem), 4 broken,
    and files that are not images or are hidden. Returns it, the good ones' sizes and the broken ones' errors."""
    root = tmp_path_factory.mktemp("archive") / "scans"
    (root / "1970" / "summer").mkdir(parents=True)
    (root / "1980").mkdir()
    good: dict[str, tuple[int, int]] = {}
    for index in range(10):
        name = f"1970/summer/photo{index}.jpg"
        good[name] = (20 + index, 16)
        images.save(images.rgb(16, 20 + index, seed=index), root / name, quality=90)
    for index in range(10):
        name = f"1980/print{index}.png"
        good[name] = (18, 14 + index)
        images.save(images.rgba(14 + index, 18), root / name)
    for index in range(3):
        name = f"page{index}.webp"
        good[name] = (16, 16)
        images.save(images.rgb(16, 16, seed=index), root / name, lossless=True)
    good["1980/clash.tif"] = (12, 10)
    images.save(images.rgb(10, 12), root / "1980/clash.tif")
    good["1980/clash.png"] = (10, 12)
    images.save(images.rgb(12, 10), root / "1980/clash.png")
    good["moving.gif"] = (20, 16)
    animated(root / "moving.gif", "GIF")
    broken = {
        "1970/torn.png": "truncated or corrupt",
        "1970/empty.jpg": "file is empty",
        "notes.jpg": "not one remaster can read",
        "1980/torn.gif": "truncated or corrupt",
    }
    images.truncated(root / "1970/torn.png", images.rgb(64, 64), "PNG")
    (root / "1970/empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("a text file named like a JPEG")
    images.truncated(root / "1980/torn.gif", images.rgb(64, 64), "GIF")
    (root / "readme.txt").write_text("not an image: left alone")
    (root / ".thumbs").mkdir()
    images.save(images.rgb(8, 8), root / ".thumbs" / "hidden.png")
    assert len(good) + len(broken) == 30
    return root, good, broken


def read_manifest(dest: Path) -> list[dict]:
    return pq.read_table(dest / FOLDER).to_pylist()


def expected_output(relative: str) -> str:
    stem = output_stem(relative, {"1980/clash.tif", "1980/clash.png"})
    suffix = {".jpg": ".jpg", ".webp": ".webp", ".gif": ".gif"}.get(Path(relative).suffix, ".png")
    return stem + suffix


def assert_complete(root: Path, dest: Path, good: dict, broken: dict) -> list[dict]:
    """Every good image written once at its relative path, 4× its size; every broken one a row with its error."""
    rows = read_manifest(dest)
    by_source = {row["source"]: row for row in rows}
    assert len(by_source) == len(rows) == len(good) + len(broken), "one row per source"
    for relative, (width, height) in good.items():
        row = by_source[str(root / relative)]
        output = dest / expected_output(relative)
        assert row["status"] == "done" and row["output"] == str(output), row
        with Image.open(output) as result:
            assert result.size == (width * 4, height * 4)
            assert getattr(result, "n_frames", 1) == (3 if relative.endswith(".gif") else 1)
        data = output.read_bytes()
        assert row["output_sha256"] == hashlib.sha256(data).hexdigest() and row["output_bytes"] == len(data)
        assert row["input_bytes"] == (root / relative).stat().st_size and row["model"] == MODEL
    for relative, message in broken.items():
        row = by_source[str(root / relative)]
        assert row["status"] == "failed" and message in row["error"] and row["output"] is None, row
    written = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and FOLDER not in p.parts}
    assert written == {expected_output(relative) for relative in good}, "nothing else, nothing half-written"
    assert [p.name for p in (dest / FOLDER).iterdir()] == ["manifest.parquet"], "parts merged at the end"
    return rows


def outputs_in(dest: Path) -> set[str]:
    return {str(p) for p in dest.rglob("*") if p.is_file() and FOLDER not in p.parts and not p.name.endswith(".part")}


def worker_pids(rows: list[dict]) -> set[int]:
    return {int(row["worker"].rsplit(":", 1)[1]) for row in rows if row["worker"]}


def wait_for_exit(pids: set[int], timeout: float = 60) -> None:
    """Until the worker processes ``pids`` have exited (Ray stops a stopped job's workers)."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker {pid} still running")


def kill_a_worker_after_its_first_file(dest: Path, killed: list[tuple[str, str, int]]) -> None:
    """SIGKILL the first worker that writes a part of its own (one file, as it writes each) with a file done in it,
    midway through its batch; ``killed`` gets its name, that file's source and its output's inode."""
    earlier_parts = set((dest / FOLDER).glob("part-*"))
    deadline = time.monotonic() + 120
    while not killed and time.monotonic() < deadline:
        for part in set((dest / FOLDER).glob("part-*-a*.parquet")) - earlier_parts:
            if not re.fullmatch(r"part-[0-9T]+-a[0-9a-f]{32}\.parquet", part.name):
                continue  # the driver's
            try:
                [row] = pq.read_table(part).to_pylist()
            except FileNotFoundError:  # the driver holds its row already, and removed it
                continue
            if row["status"] != "done":
                continue
            os.kill(int(row["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
            killed.append((row["worker"], row["source"], Path(row["output"]).stat().st_ino))
            return
        time.sleep(0.002)


def test_a_folder_interrupted_then_resumed_while_a_worker_is_killed(ray_address, weights, archive, tmp_path):
    root, good, broken = archive
    dest = tmp_path / "remastered"
    first = []

    def interrupt_after_six(row: dict, total: int) -> None:
        first.append((row["source"], total))
        if len(first) == 6:
            raise KeyboardInterrupt

    # One worker taking the one (logical) GPU, interrupted as Ctrl-C would.
    with pytest.raises(KeyboardInterrupt):
        remaster_archive(str(root), str(dest), OPTIONS, settings=settings_for(weights), progress=interrupt_after_six)
    kept = read_manifest(dest)
    assert {source for source, _ in first} <= {row["source"] for row in kept}, "what came back is kept"
    wait_for_exit(worker_pids(kept))
    kept = read_manifest(dest)
    written, recorded = outputs_in(dest), {row["output"] for row in kept if row["status"] == "done"}
    assert recorded <= written and len(written - recorded) <= 1, "each output has its row, but the one being written"
    assert not [p for p in dest.rglob("*.part")], "nothing half-written"
    done_first = {row["source"] for row in kept if row["status"] == "done"}
    assert done_first and {total for _, total in first} == {30}

    # Run again, on two CPU workers, one of them killed once it has recorded its first file, in the middle of a
    # batch that Ray then sends again to the worker it restarts.
    again, killed = [], []
    killer = threading.Thread(target=kill_a_worker_after_its_first_file, args=(dest, killed), daemon=True)
    killer.start()
    notices: list[str] = []
    summary = remaster_archive(
        str(root), str(dest), OPTIONS, workers=TWO_CPU_WORKERS, settings=settings_for(weights),
        progress=lambda row, total: again.append((row, total)), notice=notices.append,
    )  # fmt: skip
    killer.join()
    assert notices == [f"worker {killed[0][0]} died; its batch is retried"] and summary.dead_workers == [killed[0][0]]
    todo = 30 - len(done_first)
    assert (summary.done, summary.skipped, summary.failed) == (len(good) - len(done_first), len(done_first), 4)
    assert f"{len(good) - len(done_first)} done, {len(done_first)} skipped, {len(broken)} failed" in summary.line()
    assert sorted(source for source, _ in summary.failures) == sorted(str(root / r) for r in broken)
    sources = [row["source"] for row, _ in again]
    assert len(sources) == len(set(sources)) == todo and {total for _, total in again} == {todo}, "each once"
    assert not done_first & set(sources), "the finished ones are not redone"
    assert_complete(root, dest, good, broken)
    workers = {row["worker"] for row, _ in again}
    assert killed and len(workers) == 3, f"two workers, and the killed one's restart: {workers}"
    worker, source, inode = killed[0]
    rows = {row["source"]: row for row in read_manifest(dest)}
    assert rows[source]["worker"] == worker, "the killed worker's finished file is not redone by its restart"
    assert Path(rows[source]["output"]).stat().st_ino == inode, "nor its output written again"


def test_a_driver_killed_outright_leaves_the_rows_of_the_outputs_it_wrote(ray_address, weights, archive, tmp_path):
    """A SIGKILL gives the driver no time to write the rows that came back: the workers wrote each one as they
    delivered its output, so a run again does only what was not finished."""
    root = archive[0]
    dest = tmp_path / "remastered"
    command = [str(root), str(dest), "-n", MODEL, "--address", ray_address, "--workers", "1", "-q"]
    env = command_env(weights, tmp_path)
    driver = Forked("remaster.archive", command, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 120
        while len(outputs_in(dest)) < 6 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        driver.kill()
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, "killed while it ran"
    rows = Manifest(locate(str(dest))).latest()
    wait_for_exit(worker_pids(list(rows.values())))
    rows = Manifest(locate(str(dest))).latest()
    written = outputs_in(dest)
    recorded = {row["output"]: row for row in rows.values() if row["status"] == "done"}
    assert len(written) >= 6 and set(recorded) <= written
    # At most the one output its worker was writing when the job was stopped lacks its row.
    assert len(written - set(recorded)) <= 1, written - set(recorded)
    for output, row in recorded.items():
        assert row["output_sha256"] == hashlib.sha256(Path(output).read_bytes()).hexdigest()

    # What a run again would skip (the Ctrl-C test above runs one): every output written but that one.
    at = locate(str(dest))
    rows = Manifest(at).latest()
    skipped = _finished(rows, _dest_files(at), options_key(OPTIONS), options_key(OPTIONS, VideoOptions()))
    assert skipped == {row["source"] for row in recorded.values()}


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


RAY_NOISE = ("Token authentication", "constructor arguments in the object store", "(raylet)", "SIGTERM received")


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the driver's processes through /proc")
def test_sigterm_stops_the_command_and_its_ray_and_a_run_again_names_a_killed_worker_once(
    ray_address, weights, tmp_path
):
    """As Kubernetes, Slurm or systemd stop the command (SIGTERM; SIGINT ignored, as in a script's background job):
    exit 143 and what was kept, no stack dump, Ray's processes gone, nothing half-written. Run again, with a worker
    killed: that worker named once, each source done once. Neither run shows Ray's notices, and the warning about
    the weights (random ones under the official name) is given once by each command, not by every worker."""
    root, dest = tmp_path / "scans", tmp_path / "out"
    root.mkdir()
    for index in range(12):
        images.save(images.rgb(24, 20, seed=index), root / f"plate{index:02}.png")
    env = command_env(weights, tmp_path)
    command = [str(root), str(dest), "-n", MODEL, "-q", "--batch-size", "2"]
    driver = Forked(
        "remaster.archive", [*command, "--workers", "1", "--cpus-per-worker", "1"], cwd=tmp_path, env=env,
        sigint_ignored=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while len(outputs_in(dest)) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    started = descendants(driver.pid)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 143, err
    assert "interrupted (SIGTERM): what finished is kept (" in err and "run the same command again to go on" in err
    assert "Traceback" not in err and not [noise for noise in RAY_NOISE if noise in out + err], out + err
    assert err.count("differs from the official file") == 1, err
    deadline = time.monotonic() + 30
    while [pid for pid in started if running(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert started and not [pid for pid in started if running(pid)], "Ray's processes end with the command"
    rows = {row["output"] for row in read_manifest(dest) if row["status"] == "done"}
    assert len(outputs_in(dest) - rows) <= 1 and not list(dest.rglob("*.part")), "nothing half-written"

    killed: list[tuple[str, str, int]] = []
    killer = threading.Thread(target=kill_a_worker_after_its_first_file, args=(dest, killed), daemon=True)
    killer.start()
    again = run_forked(
        "remaster.archive", [*command, "--address", ray_address, "--workers", "1", "--cpus-per-worker", "1",
                             "--gpus-per-worker", "0"], cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    killer.join()
    assert again.returncode == 0 and killed, again.stderr
    died = [line for line in again.stderr.splitlines() if "died" in line]
    assert died[0] == f"worker {killed[0][0]} died; its batch is retried" and len(died) == 2, again.stderr
    assert died[1].endswith("; 1 worker died, its work retried"), "the count, on the summary line"
    assert not [noise for noise in RAY_NOISE if noise in again.stdout + again.stderr], again.stdout + again.stderr
    assert again.stderr.count("differs from the official file") == 1, again.stderr
    manifest = read_manifest(dest)
    assert sorted(row["source"] for row in manifest) == sorted(str(p) for p in root.iterdir()), "each source once"
    assert all(row["status"] == "done" for row in manifest) and len(outputs_in(dest)) == 12


def test_a_run_with_nothing_new_starts_no_ray_and_retry_failed_chooses(
    ray_address, weights, tmp_path, monkeypatch, capsys
):
    """A finished archive with a broken file, run again: said so, at once, without Ray (``ray.init`` counted), and a
    summary of this run only; ``--no-retry-failed`` with new work leaves the failure; ``--retry-failed`` tries it."""
    import ray

    from remaster.archive.__main__ import main

    root, dest = tmp_path / "scans", tmp_path / "out"
    root.mkdir()
    for index in range(2):
        images.save(images.rgb(12, 10, seed=index), root / f"p{index}.png")
    (root / "torn.jpg").write_bytes(b"not a JPEG at all")
    # The session's workers read their settings from the job (--weights-dir), as those of a cluster joined do.
    command = [str(root), str(dest), "-n", MODEL, "-q", "--weights-dir", str(weights), "--workers", "1"]
    command += ["--cpus-per-worker", "1", "--gpus-per-worker", "0"]
    assert main(command) == 1
    assert "2 done, 0 skipped, 1 failed, " in capsys.readouterr().err

    started = []
    with monkeypatch.context() as no_ray:
        no_ray.setattr(ray, "is_initialized", lambda: False)
        no_ray.setattr(ray, "init", lambda *args, **kwargs: started.append(kwargs))
        assert main(command) == 1
    err = capsys.readouterr().err
    assert not started, "Ray was not started"
    assert "nothing new to do: every source is done or failed before with these options (--retry-failed" in err
    assert re.search(r"^0 done, 2 skipped, 0 failed, 1 failed before and not tried again \([0-9.]+ s\)$", err, re.M)
    assert f"  failed before: {root / 'torn.jpg'}: Expected an image" in err and "images/s" not in err
    torn = {row["source"]: row for row in read_manifest(dest)}[str(root / "torn.jpg")]

    images.save(images.rgb(12, 10, seed=9), root / "p9.png")
    assert main([*command, "--no-retry-failed"]) == 1
    assert "1 done, 2 skipped, 0 failed, 1 failed before and not tried again, " in capsys.readouterr().err
    assert {row["source"]: row for row in read_manifest(dest)}[str(root / "torn.jpg")] == torn, "left as it was"
    assert main([*command, "--retry-failed"]) == 1
    assert re.search(r"^0 done, 3 skipped, 1 failed, [0-9.]+ images/s", capsys.readouterr().err, re.M)


def test_rays_notices_are_left_out_of_the_output_and_everything_else_passes(capfd, caplog):
    from remaster.archive.noise import RayNoise

    caplog.set_level(logging.DEBUG)

    core = "[2026-01-01 00:00:00,000 E 1 1] core_worker.cc:2465: Actor with class name: 'MapWorker(X)' and ID: 'ab' "
    with RayNoise() as noise:
        noise.filter_output()
        os.write(2, f"{core}has constructor arguments in the object store and max_restarts > 0. See …\n".encode())
        os.write(1, b"\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected ")
        os.write(1, b"system error. To troubleshoot...\nkept on stdout\n")
        os.write(2, b"[2026-01-01 00:00:00,000 E 1 1] core_worker.cc:1: a real error\n\r 50%|#####     |")
        logging.getLogger("ray._private.authentication.authentication_token_setup").warning(
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."
        )
    out, err = capfd.readouterr()
    assert out == "kept on stdout\n"
    assert err == "[2026-01-01 00:00:00,000 E 1 1] core_worker.cc:1: a real error\n\r 50%|#####     |"
    [record] = [r for r in caplog.records if "Token authentication" in r.getMessage()]
    assert record.levelno == logging.DEBUG and record.name == "remaster.archive.noise", "logged at debug level instead"


def test_a_parquet_list_on_the_command_line_joining_a_cluster(ray_address, weights, archive, tmp_path):
    root, good, _ = archive
    chosen = ["1970/summer/photo1.jpg", "1980/print2.png", "moving.gif"]
    listed = [str(root / chosen[0]), str(root / chosen[1]), os.path.relpath(root / chosen[2], tmp_path), "gone.png"]
    pq.write_table(pa.table({"path": listed}), tmp_path / "wanted.parquet")
    done = run_module(
        "remaster.archive", "wanted.parquet", "out", "-n", MODEL, "-s", "2", "--address", ray_address, "-q",
        weights_dir=weights, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "3 done, 0 skipped, 1 failed" in done.stderr and "gone.png: No such file" in done.stderr
    assert "Progress bars disabled" not in done.stderr and "execution finished" not in done.stderr, "Ray Data's notices"
    assert "get_actor_id" not in done.stderr, "a deprecation warning from the worker's look at its restarts"
    outputs = tmp_path / "out"
    for relative in chosen:
        with Image.open(outputs / expected_output(relative)) as result:
            assert result.size == tuple(2 * side for side in good[relative])
    rows = {Path(row["source"]).name: row for row in read_manifest(outputs)}
    assert rows["gone.png"]["status"] == "failed" and rows["photo1.jpg"]["status"] == "done"

    again = run_module(
        "remaster.archive", "wanted.parquet", "out", "-n", MODEL, "-s", "2", "-q", "--workers", "1",
        weights_dir=weights, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert "0 done, 3 skipped, 1 failed" in again.stderr, again.stderr


def test_a_video_in_the_archive_is_made_in_parts_as_the_command_line_makes_it(ray_address, weights, tmp_path):
    """Every frame with its time, and the sound, as remaster_video keeps them, in the codec asked for; the row counts
    the frames and records the video options; the segments table has a row for each part."""
    root = tmp_path / "reels"
    (root / "1999").mkdir(parents=True)
    clip = make_clip(root / "1999" / "party.mkv", frames=5, audio=True)
    images.save(images.rgb(12, 16), root / "poster.png")
    done = run_module(
        "remaster.archive", "reels", "out", "-n", MODEL, "-s", "2", "--codec", "ffv1", "--address", ray_address, "-q",
        weights_dir=weights, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and "2 done, 0 skipped, 0 failed" in done.stderr, done.stderr
    video = read_video(tmp_path / "out" / "1999" / "party.mkv")
    assert len(video.frames) == 5 and video.times == clip.times and video.frames[0].shape == (48, 64, 3)
    assert video.audio_packets == read_video(clip.path).audio_packets
    with av.open(str(tmp_path / "out" / "1999" / "party.mkv")) as container:
        assert container.streams.video[0].codec_context.name == "ffv1"
    rows = {Path(row["source"]).name: row for row in read_manifest(tmp_path / "out")}
    assert rows["party.mkv"]["frames"] == 5 and rows["party.mkv"]["output_width"] == 64
    assert rows["party.mkv"]["input_bytes"] == clip.path.stat().st_size and rows["party.mkv"]["resumed_frames"] == 0
    assert json.loads(rows["party.mkv"]["options"])["video"]["codec"] == "ffv1"
    assert rows["poster.png"]["status"] == "done" and "video" not in json.loads(rows["poster.png"]["options"])
    parts = read_segments(tmp_path / "out")
    assert sum(part["frames"] for part in parts) == 5 and {part["status"] for part in parts} == {"done"}
    assert not (tmp_path / "out" / WORK).exists(), "the videos' work folder goes when they are done"


def read_segments(dest: Path) -> list[dict]:
    return pq.read_table(dest / SEGMENTS).to_pylist()


def holder_of(file: Path) -> int:
    """The process that holds ``file`` open (Linux)."""
    target = str(file.resolve())
    for link in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                return int(link.parts[2])
    raise AssertionError(f"no process holds {file}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc")
def test_two_workers_share_one_film_frame_exact_while_one_is_killed_mid_part(ray_address, weights, tmp_path):
    """Both workers make parts of one video; one is killed while it makes one, and Ray's restart makes that part
    again; every frame is in exactly one part, and the result is the one-machine result, frame for frame."""
    from remaster import Enhancer, Settings
    from remaster.video import remaster_video

    root, dest = tmp_path / "reels", tmp_path / "out"
    root.mkdir()
    pts = [40 * k + (20 if k > 20 else 0) for k in range(48)]  # a variable frame rate
    clip = make_clip(
        root / "film.mkv", pts=pts, time_base=Fraction(1, 1000), size=(48, 32), audio=True,
        options={"g": "5", "keyint_min": "5", "sc_threshold": "0"},
    )  # fmt: skip
    options, video = Options(model=MODEL, outscale=2), VideoOptions(codec="ffv1")
    # One backend throughout (settings_for's): "auto" moves to the one measured faster at a moment each process
    # finds for itself.
    settings = settings_for(weights)
    killed: list[int] = []

    def kill_a_worker_making_a_part() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            done = list((dest / WORK).glob("*/0*.json"))
            for partial in (dest / WORK).glob("*/.0*.nut.*.part") if done else ():
                with contextlib.suppress(AssertionError, FileNotFoundError):
                    pid = holder_of(partial)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker_making_a_part, daemon=True)
    killer.start()
    summary = remaster_archive(
        str(root), str(dest), options, workers=Workers(count=2, cpus=1, gpus=0), settings=settings,
        video=video, segment_frames=7,
    )  # fmt: skip
    killer.join()
    assert killed, "a worker was killed while it made a part"
    assert (summary.done, summary.failed) == (1, 0), summary.failures
    assert summary.dead_workers, "the dead worker is named"
    parts = [part for part in read_segments(dest) if part["status"] == "done"]
    covered = sorted((part["first_frame"], part["frames"]) for part in parts)
    assert covered == [(first, min(7, 48 - first)) for first in range(0, 48, 7)], "every frame in one part, once"
    assert len({part["worker"] for part in parts}) >= 2, "both workers made parts of the one film"
    whole = remaster_video(
        clip.path, tmp_path / "whole", options, video, enhancer=Enhancer(Settings.from_env(**settings))
    )
    one, other = read_video(dest / "film.mkv"), read_video(whole.path)
    assert one.times == other.times == clip.times and one.audio_packets == other.audio_packets
    assert all(np.array_equal(a, b) for a, b in zip(one.frames, other.frames, strict=True))
    assert not (dest / WORK).exists()


def test_a_stopped_run_again_makes_only_the_missing_parts_and_images_are_not_held_up(ray_address, weights, tmp_path):
    root, dest = tmp_path / "reels", tmp_path / "out"
    root.mkdir()
    make_clip(root / "film.mkv", frames=40, size=(48, 32), audio=True)
    for index in range(3):
        images.save(images.rgb(12, 16, seed=index), root / f"still{index}.png")
    settings = settings_for(weights)
    run = {"workers": Workers(count=1, cpus=1, gpus=0, batch_size=1), "settings": settings, "segment_frames": 4}

    def stop_after_three_parts() -> None:
        import _thread

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list((dest / WORK).glob("*/0*.json"))) < 3:
            time.sleep(0.005)
        _thread.interrupt_main()  # as Ctrl-C does

    threading.Thread(target=stop_after_three_parts, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        remaster_archive(str(root), str(dest), OPTIONS, **run)
    first = [part for part in read_segments(dest) if part["status"] == "done"]
    assert 3 <= len(first) < 10
    still_done = {Path(row["source"]).name: row for row in read_manifest(dest) if row["status"] == "done"}
    assert "still0.png" in still_done, "the first image was done before the video's parts went on"
    again = remaster_archive(str(root), str(dest), OPTIONS, **run)
    assert again.done >= 1 and again.failed == 0
    parts = [part for part in read_segments(dest) if part["status"] == "done"]
    made_again = [part for part in parts if part not in first]
    assert sorted(p["first_frame"] for p in first + made_again) == list(range(0, 40, 4)), "each part once"
    [film] = [row for row in read_manifest(dest) if row["source"].endswith("film.mkv")]
    assert film["resumed_frames"] == 4 * len(first) and film["frames"] == 40
    assert min(part["finished_at"] for part in made_again) > max(part["finished_at"] for part in first)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_s3_bucket_in_and_out(ray_address, weights, tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer
    from pyarrow.fs import S3FileSystem

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        s3.create_bucket(Bucket="museum")
        for index in range(3):
            image = tmp_path / f"plate{index}.png"
            images.save(images.rgb(12, 10 + index, seed=index), image)
            s3.upload_file(str(image), "museum", f"scans/box/plate{index}.png")
        s3.put_object(Bucket="museum", Key="scans/broken.jpg", Body=b"not a JPEG")
        clip = make_clip(tmp_path / "reel.mkv", frames=4, audio=True)
        s3.upload_file(str(clip.path), "museum", "scans/reel.mkv")
        fs = S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}", scheme="http", access_key="testing", secret_key="testing",
            region="us-east-1",
        )  # fmt: skip
        run = {"source_filesystem": fs, "dest_filesystem": fs, "settings": settings_for(weights)}
        summary = remaster_archive("s3://museum/scans", "s3://museum/remastered", OPTIONS, **run)
        assert (summary.done, summary.failed) == (4, 1), summary.failures
        listed = s3.list_objects_v2(Bucket="museum", Prefix="remastered/")["Contents"]
        keys = {item["Key"] for item in listed if not item["Key"].endswith("/")}  # pyarrow's folder markers
        assert keys == {f"remastered/box/plate{i}.png" for i in range(3)} | {
            "remastered/reel.mkv",
            f"remastered/{FOLDER}/manifest.parquet",
            f"remastered/{SEGMENTS}/segments.parquet",
        }, "the video's parts are gone, their rows kept in one table"
        s3.download_file("museum", "remastered/reel.mkv", str(tmp_path / "reel-out.mkv"))
        video = read_video(tmp_path / "reel-out.mkv")
        assert video.times == clip.times and video.audio_packets == read_video(clip.path).audio_packets
        work = temporary_work(locate("s3://museum/remastered", fs))
        assert not work.exists(), "the video's copy and its folder are gone"
        assert not work.parent.exists() or any(work.parent.iterdir()), "an empty folder of work folders is removed"
        for index in range(3):
            body = s3.get_object(Bucket="museum", Key=f"remastered/box/plate{index}.png")["Body"].read()
            with Image.open(io.BytesIO(body)) as result:
                assert result.size == (4 * (10 + index), 48)
        rows = pq.read_table(f"museum/remastered/{FOLDER}", filesystem=fs).to_pylist()
        assert {row["source"] for row in rows if row["status"] == "done"} == {
            f"s3://museum/scans/box/plate{i}.png" for i in range(3)
        } | {"s3://museum/scans/reel.mkv"}
        again = remaster_archive("s3://museum/scans", "s3://museum/remastered", OPTIONS, **run)
        assert (again.done, again.skipped, again.failed, again.sent) == (0, 4, 0, 0), "nothing new: Ray not used"
        assert [source for source, _ in again.failed_before] == ["s3://museum/scans/broken.jpg"]
    finally:
        server.stop()


def test_done_means_done_with_these_options_and_the_output_whole_in_dest(tmp_path):
    dest = locate(str(tmp_path / "out"))
    manifest = Manifest(dest)
    key, other = options_key(OPTIONS), options_key(Options(model=MODEL, outscale=2))
    video_key = options_key(OPTIONS, VideoOptions(codec="ffv1"))
    assert video_key != options_key(OPTIONS, VideoOptions()) != key, "a video's key says how it is encoded"
    sources = {"kept": "png", "deleted": "png", "resized": "png", "other-options": "png", "reel": "mkv", "film": "mkv"}
    for name, suffix in sources.items():
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / f"{name}.{suffix}").write_bytes(b"12345")
        options = {"other-options": other, "reel": video_key, "film": key}.get(name, key)
        manifest.add(
            {"source": f"/in/{name}.{suffix}", "output": str(tmp_path / "out" / f"{name}.{suffix}"), "status": "done",
             "output_bytes": 5, "options": options, "finished_at": 0.0}
        )  # fmt: skip
    manifest.add({"source": "/in/broken.png", "status": "failed", "error": "truncated", "options": key})
    manifest.add({"source": "/in/kept.png", "output": str(tmp_path / "out" / "kept.png"), "status": "done",
                  "output_bytes": 5, "options": key})  # fmt: skip
    manifest.flush()
    (tmp_path / "out" / "deleted.png").unlink()
    (tmp_path / "out" / "resized.png").write_bytes(b"123")
    left = tmp_path / "out" / "sub" / f".kept.png.{'0' * 32}.part"
    left.parent.mkdir()
    left.write_bytes(b"half")
    assert _finished(manifest.latest(), _dest_files(dest), key, video_key) == {"/in/kept.png", "/in/reel.mkv"}
    assert not left.exists(), "what a killed run left half-written is removed"
    assert manifest.merge().endswith(f"{FOLDER}/manifest.parquet")
    unfinished = tmp_path / "out" / WORK / "0123abcd" / ".result.mkv.remaster-video" / "000000.mkv"
    unfinished.parent.mkdir(parents=True)
    unfinished.write_bytes(b"a segment of a video that a dead worker left")
    assert len(read_manifest(tmp_path / "out")) == 7, "one row per source after merging; the work folder passed over"


def test_a_stopped_runs_line_counts_the_files_and_the_parts_of_unfinished_videos_it_kept(tmp_path):
    from remaster.archive.__main__ import _kept_since

    out = tmp_path / "out"
    dest, manifest = locate(str(out)), Manifest(locate(str(out)))
    key = options_key(OPTIONS)
    manifest.add({"source": "/in/old.png", "status": "done", "options": key, "finished_at": time.time() - 60})
    write_segment(dest, "/in/old.mkv", 0, 0, 8, "host:1", 1.0, "done")  # an earlier run's
    started = time.time()
    time.sleep(0.01)  # the tables keep milliseconds
    for name, status in (("a.png", "done"), ("b.png", "done"), ("c.png", "failed"), ("reel.mkv", "done")):
        manifest.add({"source": f"/in/{name}", "status": status, "options": key, "finished_at": time.time()})
    manifest.flush()
    parts = [("reel", 0, "done"), ("reel", 1, "done"), ("film", 0, "done"), ("film", 1, "done"), ("film", 1, "done")]
    for video, segment, status in [*parts, ("film", 2, "failed"), ("old", 1, "done")]:
        write_segment(dest, f"/in/{video}.mkv", segment, 8 * segment, 8, "host:2", 1.0, status)
    line = (
        "what finished is kept (3 files and 3 parts of 2 videos done in this run, each with its row in "
        f"{out}/{FOLDER}); run the same command again to go on"
    )
    assert _kept_since(str(out), started) == line, "a part made twice (its worker died) counted once"
    merge_segments(dest)
    assert len(read_segments(out)) == 8 and _kept_since(str(out), started) == line, "merged or not"
    assert _kept_since(str(out), time.time() + 1).startswith("what finished is kept (0 files done in this run, each")


@pytest.mark.parametrize("where", ["disk", "memory"])
def test_the_driver_removes_the_workers_parts_once_its_own_part_holds_their_rows(where, tmp_path):
    dest = locate(str(tmp_path / "out") if where == "disk" else f"memory://{tmp_path.name}/out")
    rows = [{"source": f"/in/{name}.png", "status": "done", "finished_at": time.time()} for name in "abc"]
    parts = [write_part(dest, [row], f"w{index}") for index, row in enumerate(rows)]
    dest.filesystem.delete_file(parts[2])  # merged and removed already
    manifest = Manifest(dest)
    assert set(manifest.latest()) == {"/in/a.png", "/in/b.png"}, "the workers' parts are the manifest's"
    for row, part in zip(rows, parts, strict=True):
        manifest.add(row, part)
    manifest.flush()
    [kept] = [info.path for info in dest.filesystem.get_file_info(pafs.FileSelector(dest.join(FOLDER)))]
    assert kept not in parts and kept.endswith(f"-{manifest._run}.parquet")
    assert set(manifest.latest()) == {"/in/a.png", "/in/b.png", "/in/c.png"}


def test_output_names_keep_the_relative_path_and_clashing_stems_keep_their_whole_name():
    relatives = ["a/scan.tif", "a/scan.png", "a/other.jpg", "b/scan.jpg"]
    clashes = clashing(relatives)
    assert clashes == {"a/scan.tif", "a/scan.png"}
    assert [output_stem(r, clashes) for r in relatives] == ["a/scan.tif", "a/scan.png", "a/other", "b/scan"]


def test_globs_match_as_glob_does_and_csv_lists_are_relative_to_their_folder(tmp_path):
    for name in ("a/x1.png", "a/deep/x2.png", "a/x3.jpg", "a/.hidden.png", "b/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        images.save(images.rgb(8, 8), tmp_path / name)
    nowhere = locate(str(tmp_path / "out"))

    def names(source: str) -> list[str]:
        listing = list_sources(locate(source), nowhere)
        return [listing.relative(path) for path in listing.paths]

    assert names(str(tmp_path / "a" / "*.png")) == ["x1.png"], "* stays in its folder; hidden files are left out"
    assert names(str(tmp_path / "a" / "**" / "*.png")) == ["deep/x2.png", "x1.png"]
    assert names(str(tmp_path / "*" / "x[0-9].*")) == ["a/x1.png", "a/x3.jpg"]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "wanted.csv").write_text(f"path\n../a/x1.png\n{tmp_path / 'b' / 'y.png'}\nmissing.png\n")
    listing = list_sources(locate(str(tmp_path / "lists" / "wanted.csv")), nowhere)
    assert [listing.relative(path) for path in listing.paths] == ["a/x1.png", "b/y.png"]
    assert listing.missing == [str(tmp_path / "lists" / "missing.png")]
    with pytest.raises(SourceError, match="No images or videos matching"):
        list_sources(locate(str(tmp_path / "a" / "*.tif")), nowhere)


def test_workers_are_sized_to_the_cluster():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 16.0}}]
    assert _sizes(Workers(), {"CPU": 24.0}, nodes) == (3, 8.0, 0.0), "one worker per node's CPUs"
    assert _sizes(Workers(), {"CPU": 24.0, "GPU": 4.0}, nodes) == (4, 6.0, 1.0), "one per GPU"
    assert _sizes(Workers(gpus=0.5), {"CPU": 24.0, "GPU": 2.0}, nodes) == (4, 6.0, 0.5)
    assert _sizes(Workers(count=3), {"CPU": 2.0}, nodes[:1]) == (3, 1.0, 0.0)


def test_bad_usage_is_answered_without_starting_ray(weights, tmp_path):
    done = run_module("remaster.archive", "nowhere", "out", "-n", MODEL, weights_dir=weights, cwd=tmp_path)
    assert done.returncode == 2 and "No file, folder or match at" in done.stderr, done.stderr
    crf = run_module("remaster.archive", str(tmp_path), "out", "--crf", "99", weights_dir=weights, cwd=tmp_path)
    assert crf.returncode == 2 and "crf for h264 must be from 0 to 51, not 99" in crf.stderr, crf.stderr
    (tmp_path / "same").mkdir()
    images.save(images.rgb(8, 8), tmp_path / "same" / "a.png")
    with pytest.raises(SourceError, match="DEST is SOURCE"):
        remaster_archive(str(tmp_path / "same"), str(tmp_path / "same"), OPTIONS)
    lazy = subprocess.run(
        [sys.executable, "-c", "import sys, remaster.archive; print(sorted({'ray', 'torch'} & set(sys.modules)))"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, check=True,
    )  # fmt: skip
    assert lazy.stdout.strip() == "[]"
