"""Whole archives on a real local Ray: outputs at their relative paths, the manifest, dead workers, resuming, S3.

One Ray (4 logical CPUs and 1 logical GPU, so the GPU scheduling path runs on a CPU machine) serves the
whole session; the workers load random weights of realesr-animevideov3 under its official name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

import remaster
from remaster import Options
from remaster.archive import FOLDER, Workers, remaster_archive
from remaster.archive.driver import WORK, _dest_files, _finished, _sizes
from remaster.archive.manifest import Manifest, options_key, write_part
from remaster.archive.sources import SourceError, clashing, list_sources, locate, output_stem
from remaster.archive.worker import temporary_work
from remaster.engine import build_network
from remaster.video import VideoOptions

from . import images
from .conftest import run_module
from .test_animation import animated
from .videos import make_clip, read_video

pytestmark = pytest.mark.integration

MODEL = "realesr-animevideov3"
OPTIONS = Options(model=MODEL)
TWO_CPU_WORKERS = Workers(count=2, cpus=2, gpus=0, batch_size=2)


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """Random weights for realesr-animevideov3 under its official name: small, fast, no network."""
    folder = tmp_path_factory.mktemp("archive-weights")
    spec = remaster.get_model(MODEL)
    torch.manual_seed(0)
    torch.save({"params": build_network(spec).state_dict()}, folder / spec.weights.filename)
    return folder


@pytest.fixture(scope="session")
def ray_address():
    """A local Ray for the whole session; its address, for a command that joins it."""
    import ray

    context = ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, logging_level="warning")
    yield context.address_info["gcs_address"]
    ray.shutdown()


def settings_for(weights: Path) -> dict:
    return {"weights_dir": weights, "offline": True}


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
    earlier_parts = set((dest / FOLDER).glob("part-*"))

    def kill_a_worker_after_its_first_file() -> None:
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

    killer = threading.Thread(target=kill_a_worker_after_its_first_file, daemon=True)
    killer.start()
    summary = remaster_archive(
        str(root), str(dest), OPTIONS, workers=TWO_CPU_WORKERS, settings=settings_for(weights),
        progress=lambda row, total: again.append((row, total)),
    )  # fmt: skip
    killer.join()
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
    command = [sys.executable, "-m", "remaster.archive", str(root), str(dest), "-n", MODEL, "--address", ray_address]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REMASTER_WEIGHTS_DIR": str(weights), "REMASTER_BACKEND": "torch",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # fmt: skip
    driver = subprocess.Popen([*command, "--workers", "1", "-q"], env=env, stderr=subprocess.DEVNULL)
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
    skipped = _finished(Manifest(at), _dest_files(at), options_key(OPTIONS), options_key(OPTIONS, VideoOptions()))
    assert skipped == {row["source"] for row in recorded.values()}


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


def test_a_video_in_the_archive_is_one_task_done_as_the_command_line_does_it(ray_address, weights, tmp_path):
    """Every frame with its time, and the sound, as remaster_video keeps them, in the codec asked for; the row counts
    the frames and records the video options."""
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
    assert not (tmp_path / "out" / WORK).exists(), "the videos' work folder goes when they are done"


def holder_of(lock: Path) -> int:
    """The process that holds ``lock`` open (Linux)."""
    target = str(lock.resolve())
    for link in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                return int(link.parts[2])
    raise AssertionError(f"no process holds {lock}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds the worker through /proc")
def test_a_worker_killed_midway_through_a_video_goes_on_from_its_finished_segments(ray_address, weights, tmp_path):
    """The video's finished segments are kept in DEST's work folder, so Ray's retry of it on a new worker does only
    the rest, and the result is the same file an uninterrupted run makes."""
    from remaster import Enhancer, Settings
    from remaster.video import remaster_video

    root, dest = tmp_path / "reels", tmp_path / "out"
    root.mkdir()
    clip = make_clip(root / "long.mkv", frames=120, size=(48, 32), audio=True)
    options, video = Options(model=MODEL, outscale=2), VideoOptions(codec="ffv1")
    # One backend throughout: "auto" moves to the one measured faster at a moment each process finds for itself,
    # and backends differ in bf16 by a level here and there.
    settings = {**settings_for(weights), "backend": "torch"}
    killed: list[tuple[int, int]] = []

    def kill_the_worker_after_its_first_segment() -> None:
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for segment in (dest / WORK).glob("*/.*.remaster-video/000000.json"):
                done_segments = len(list(segment.parent.glob("0*.json")))
                pid = holder_of(segment.parent / "lock")
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, done_segments))
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_worker_after_its_first_segment, daemon=True)
    killer.start()
    summary = remaster_archive(
        str(root), str(dest), options, workers=Workers(count=1, cpus=2, gpus=0), settings=settings,
        video=video, segment_frames=8,
    )  # fmt: skip
    killer.join()
    assert killed, "the worker was killed midway"
    assert (summary.done, summary.failed) == (1, 0), summary.failures
    [row] = read_manifest(dest)
    assert row["frames"] == 120 and row["worker"] != f"{socket.gethostname()}:{killed[0][0]}"
    assert 8 <= row["resumed_frames"] < 120 and row["resumed_frames"] % 8 == 0, row["resumed_frames"]
    assert row["resumed_frames"] >= 8 * killed[0][1], "every segment finished before the kill was kept"
    whole = remaster_video(
        clip.path, tmp_path / "whole", options, video, enhancer=Enhancer(Settings.from_env(**settings)),
        segment_frames=8,
    )  # fmt: skip
    assert (dest / "long.mkv").read_bytes() == whole.path.read_bytes(), "the same file as an uninterrupted run"
    assert not (dest / WORK).exists()


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
        }
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
        assert (again.done, again.skipped, again.failed) == (0, 4, 1)
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
    assert _finished(manifest, _dest_files(dest), key, video_key) == {"/in/kept.png", "/in/reel.mkv"}
    assert not left.exists(), "what a killed run left half-written is removed"
    assert manifest.merge().endswith(f"{FOLDER}/manifest.parquet")
    unfinished = tmp_path / "out" / WORK / "0123abcd" / ".result.mkv.remaster-video" / "000000.mkv"
    unfinished.parent.mkdir(parents=True)
    unfinished.write_bytes(b"a segment of a video that a dead worker left")
    assert len(read_manifest(tmp_path / "out")) == 7, "one row per source after merging; the work folder passed over"


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
