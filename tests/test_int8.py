"""int8: used automatically only within the quality gate, run anyway where asked for (saying its quality), kept on
disk and read back; real architectures with random weights, small."""

from __future__ import annotations

import logging
import re
import time

import numpy as np
import pytest
from PIL import Image

import remaster
from remaster import Options
from remaster.runtimes import get_runtime
from remaster.runtimes.int8 import Quality
from remaster.runtimes.measured import Accelerated

from .images import gradient
from .test_cli import run_cli, weights_for_cli

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not get_runtime("int8").available(), reason="int8 needs OpenVINO and NNCF"),
]


def settled(enhancer: remaster.Enhancer, name: str, precision: str) -> Accelerated:
    enhancer.run(gradient(40, 40), Options(model=name, outscale=remaster.get_model(name).scale, precision=precision))
    accelerated = enhancer.engine.network(remaster.get_model(name), precision).accelerated
    assert isinstance(accelerated, Accelerated) and accelerated.wait(timeout=600)
    return accelerated


def test_int8_that_misses_the_gate_is_not_used_automatically_and_the_log_says_its_quality(
    enhancer, tmp_path, monkeypatch, caplog
):
    from remaster.runtimes import int8

    monkeypatch.setattr(int8, "GATE", Quality(psnr=99.0, max_difference=0))  # no int8 network reaches it
    caplog.set_level(logging.INFO)
    automatic = enhancer.with_settings(backend="auto", cache_dir=tmp_path / "cache")
    accelerated = settled(automatic, "tiny-srvgg", "auto")
    assert accelerated.backend != "int8" and accelerated.state in ("chosen", "torch")
    quality = accelerated.qualities["int8"]
    assert isinstance(quality, Quality) and 0 < quality.psnr < 99 and quality.f32_share > 0, "tried once more, refined"
    assert f"stays off int8: int8 reached {quality}" in caplog.text
    kept = automatic.engine.backends.get(accelerated._key)
    assert kept["runtime"] in ("openvino", "torch") and "int8" not in kept["seconds_per_pixel"]


@pytest.mark.parametrize("name", ["tiny-rrdb-x4", "tiny-srvgg"])
def test_int8_as_asked_runs_says_its_quality_and_is_read_back_from_disk(name, enhancer, tmp_path, monkeypatch, caplog):
    import nncf

    caplog.set_level(logging.INFO)
    cache = tmp_path / "cache"
    first = enhancer.with_settings(backend="auto", cache_dir=cache)
    accelerated = settled(first, name, "int8")
    assert accelerated.state == "chosen" and accelerated.backend == "int8" and accelerated.speedup is None
    quality = accelerated.qualities["int8"]
    assert f"runs in int8, as asked: {quality} from fp32 on the probe pictures" in caplog.text
    options = Options(model=name, outscale=remaster.get_model(name).scale, precision="int8")
    image = gradient(48, 40, seed=2)
    ours = first.run(image, options)[0]
    exact = enhancer.run(image, Options(model=name, outscale=options.outscale, precision="fp32"))[0]
    assert accelerated.calls["backend"] >= 1 and ours.shape == exact.shape and np.abs(ours - exact).mean() < 0.1
    assert len(list((cache / "openvino").glob("*-int8-*.xml"))) == 1

    def quantized_again(*args, **kwargs):
        raise RuntimeError("quantized again")

    monkeypatch.setattr(nncf, "quantize", quantized_again)
    later = enhancer.with_settings(backend="auto", cache_dir=cache)  # another process, the same cache
    reread = settled(later, name, "int8")
    assert reread.state == "chosen" and reread.backend == "int8" and reread.qualities["int8"] == quality


def test_the_command_line_runs_int8_as_asked_and_prints_its_quality(tmp_path):
    weights = weights_for_cli(tmp_path)  # realesr-animevideov3's architecture, random weights
    Image.fromarray((gradient(40, 48, seed=5) * 255).astype(np.uint8)).save(tmp_path / "in.png")
    args = ("in.png", "-n", "realesr-animevideov3", "--precision", "int8")
    done = run_cli(*args, weights_dir=weights, cwd=tmp_path, env={"REMASTER_BACKEND": "auto"})
    assert done.returncode == 0, done.stderr
    assert "runs in int8" in done.stderr and "dB PSNR" in done.stderr and "/255 at most" in done.stderr


def test_the_pages_fastest_runs_int8_and_its_line_says_how_far_from_fp32(enhancer, tmp_path):
    from gradio_client import Client, handle_file

    from .fixtures import running_app

    source = tmp_path / "in.png"
    Image.fromarray((gradient(40, 48, seed=3) * 255).astype(np.uint8)).save(source)
    with running_app(enhancer, backend="auto", cache_dir=tmp_path / "cache") as url:
        client = Client(url, verbose=False)
        client.predict(handle_file(str(source)), "tiny-srvgg", 4, precision="int8", api_name="/remaster")
        # The first request runs in fp32 while the quantized network is made beside it, from its input.
        deadline = time.monotonic() + 300
        while not list((tmp_path / "cache" / "openvino").glob("*-int8-*.xml")) and time.monotonic() < deadline:
            time.sleep(0.5)
        for _ in range(60):  # the build is on disk; the switch to it follows once it is compiled
            line = client.predict(handle_file(str(source)), "tiny-srvgg", 4, precision="int8", api_name="/remaster")[2]
            if "int8" in line:
                break
            time.sleep(0.5)
    assert re.search(r"cpu, int8 \(\d+\.\d dB PSNR.* and \d+/255 at most.* from fp32\)", line), line
