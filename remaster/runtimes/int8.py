"""int8 on a CPU: a network quantized by NNCF from OpenVINO's fp32 model, judged against fp32 on probe pictures of
several kinds on this processor; the quantized model and its quality kept on disk.

The recipe is what measured best for the upscalers (realesr-animevideov3 and RealESRGAN_x4plus, real weights,
an AVX2 CPU): weights per output channel and symmetric, activations asymmetric (NNCF's mixed preset), their
ranges the calibration crops' own minimum and maximum (NNCF's default ranges clip: 31 dB instead of 37.5 dB for
realesr-animevideov3), calibrated on photographs and drawn cels (:mod:`.probes`). On a CPU without VNNI the
first layer's weights keep to 7 bits (AVX2 sums pairs of int8 products in 16 bits, which saturate on the
image's full range: 28–31 dB without), and later layers keep 8 (7 everywhere cost 2 dB). Where the whole network
in int8 misses the quality gate and ``auto`` asks, the layers measured to carry most of the error (the largest
error each adds to its own output, on a calibration crop) stay in f32, up to a quarter of the work, and the
result is judged again; the better of the two is what is reported.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..kept import KeptTable
from . import Runner, probes
from .measured import NotUsed
from .openvino import compiled_runner, converted_model, read_kept, save_atomically

if TYPE_CHECKING:
    import openvino as ov

    from ..network import Processor

__all__ = ["GATE", "Quality", "int8_runner"]

log = logging.getLogger(__name__)

_REFINED_SHARE = 0.25
"""The refinement keeps in f32 the layers of most error, up to this share of the network's multiply-adds."""


@dataclass(frozen=True)
class Quality:
    """How far a network's pictures moved from fp32's on the probe pictures, as 8-bit images."""

    psnr: float
    """The lowest PSNR over the probes, in dB."""
    max_difference: int
    """The largest difference of any pixel of any probe, out of 255."""
    worst: str = ""
    """The probe of the lowest PSNR."""
    f32_share: float = 0.0
    """The share of the network's multiply-adds kept in f32."""

    def within(self, gate: Quality) -> bool:
        """Whether it is at least as close to fp32 as ``gate`` asks."""
        return self.psnr >= gate.psnr and self.max_difference <= gate.max_difference

    def __str__(self) -> str:
        worst = f" ({self.worst})" if self.worst else ""
        kept = f", {self.f32_share:.0%} of the work kept in f32" if self.f32_share else ""
        return f"{self.psnr:.1f} dB PSNR{worst} and {self.max_difference}/255 at most{kept}"


GATE = Quality(psnr=40.0, max_difference=8)
"""Where ``auto`` uses int8: on every probe picture, this close to fp32 or closer."""


class _Int8Runner:
    """The runner of a quantized network, and the quality it measured."""

    def __init__(self, run: Runner, quality: Quality) -> None:
        self._run = run
        self.quality = quality

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self._run(batch)


def int8_runner(
    module: nn.Module,
    example: torch.Tensor,
    label: str,
    threads: int,
    cache: Path,
    processor: Processor | None,
    fixed_shape: bool = False,
    gated: bool = False,
) -> Runner:
    """``module`` quantized to int8 for this CPU, judged against fp32 on the probe pictures; kept in ``cache`` (with
    the converted fp32 models) and read from there by later processes, its quality too (by processor).

    Args:
        label: names the network in the log.
        processor: what it runs on: whether the first layer's weights keep to 7 bits, and what the quality is
            kept for.
        gated: for ``auto``: where the whole network misses :data:`GATE`, try again with the layers of most
            error in f32, and raise :class:`~remaster.runtimes.measured.NotUsed` where the better of the two
            misses it still.

    Raises:
        NotUsed: ``gated``, and the quality reached misses the gate (its message says which it reached).
        ValueError: a network of one input size (int8 takes networks of any).
    """
    if fixed_shape:
        raise ValueError("int8 takes networks of any input size")
    core, converted, path = converted_model(module, example, cache)
    overflow = "disable" if processor is not None and processor.vnni else "first_layer_only"
    table = KeptTable(cache / "int8.json", "int8 quality measured")
    where = processor.key if processor is not None else "this processor"
    best: tuple[ov.Model, Quality] | None = None
    judge = _Judge(core, converted, example.shape[1], threads)
    for refined in (False, True) if gated else (False,):
        key = f"{path.stem}|{overflow}|{'refined' if refined else 'all'}|{where}"
        attempt = _kept(core, table.get(key), cache)
        if attempt is None:
            started = time.perf_counter()
            ignored, share = _most_error(module, converted, example.shape[1]) if refined else ([], 0.0)
            quantized = _quantized(converted, example.shape[1], overflow, ignored)
            quality = judge(quantized, share)
            log.info("%s: quantized to int8 and judged in %.0f s: %s", label, time.perf_counter() - started, quality)
            name = f"{path.stem}-int8-{overflow}-{_digest(ignored)}.xml"
            if save_atomically(quantized, cache / name, "the int8 network"):
                table.put(key, {"model": name, **quality.__dict__})
            attempt = quantized, quality
        if best is None or attempt[1].psnr > best[1].psnr:
            best = attempt
        if attempt[1].within(GATE):
            break
    assert best is not None
    quantized, quality = best
    if gated and not quality.within(GATE):
        raise NotUsed(
            f"int8 reached {quality} from fp32 on the probe pictures, short of the {GATE.psnr:.0f} dB and "
            f"{GATE.max_difference}/255 it needs to be used automatically",
            quality,
        )
    if gated:
        log.info("%s can run in int8: %s from fp32 on the probe pictures", label, quality)
    else:
        log.warning(
            "%s runs in int8, as asked: %s from fp32 on the probe pictures (%s the %.0f dB and %d/255 of auto)",
            label,
            quality,
            "within" if quality.within(GATE) else "short of",
            GATE.psnr,
            GATE.max_difference,
        )
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "CACHE_DIR": str(cache)}
    return _Int8Runner(compiled_runner(core.compile_model(quantized, "CPU", config)), quality)


def _kept(core: ov.Core, record: object, cache: Path) -> tuple[ov.Model, Quality] | None:
    """The quantized model and its quality kept by an earlier process, where both are there."""
    if not isinstance(record, dict) or not isinstance(record.get("model"), str):
        return None
    try:
        quality = Quality(**{name: record[name] for name in Quality.__dataclass_fields__ if name in record})
    except TypeError:
        return None
    model = read_kept(core, cache / record["model"])
    return None if model is None else (model, quality)


def _quantized(converted: ov.Model, channels: int, overflow: str, ignored: list[str]) -> ov.Model:
    """``converted`` quantized by NNCF with the recipe, the layers named in ``ignored`` kept in f32."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    crops = [_batch(crop, channels) for crop in probes.calibration()]
    with _quiet_nncf():
        return nncf.quantize(
            converted,
            nncf.Dataset(crops),
            preset=nncf.QuantizationPreset.MIXED,
            target_device=nncf.TargetDevice.CPU,
            subset_size=len(crops),
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False) if ignored else None,
            advanced_parameters=AdvancedQuantizationParameters(
                overflow_fix=OverflowFix(overflow),
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
            ),
        )


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """Keep NNCF's notes (it logs every layer it leaves alone, to standard output) and its progress bars (rich's
    console) out of the program's output while it quantizes; its warnings still go to the log."""
    import rich
    from nncf.common.logging.logger import nncf_logger, set_log_level

    console = rich.get_console()
    level, quiet = nncf_logger.level, console.quiet
    set_log_level(logging.WARNING)
    console.quiet = True
    try:
        yield
    finally:
        console.quiet = quiet
        set_log_level(level)


class _Judge:
    """Runs the probe pictures through fp32 once, and through each quantized model, to tell how far they moved."""

    def __init__(self, core: ov.Core, converted: ov.Model, channels: int, threads: int) -> None:
        self.core = core
        self.threads = threads
        self.inputs = [(name, _batch(picture, channels)) for name, picture in probes.probes()]
        self._references: list[np.ndarray] | None = None
        self._converted = converted

    def __call__(self, quantized: ov.Model, f32_share: float) -> Quality:
        if self._references is None:
            self._references = self._outputs(self._converted)
        scores = [
            _psnr_and_max(ours, reference)
            for ours, reference in zip(self._outputs(quantized), self._references, strict=True)
        ]
        worst = min(range(len(scores)), key=lambda index: scores[index][0])
        return Quality(
            psnr=round(scores[worst][0], 2),
            max_difference=max(difference for _, difference in scores),
            worst=self.inputs[worst][0],
            f32_share=round(f32_share, 3),
        )

    def _outputs(self, model: ov.Model) -> list[np.ndarray]:
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": self.threads}
        compiled = self.core.compile_model(model, "CPU", config)
        return [_eight_bit(compiled(batch)[0]) for _, batch in self.inputs]


def _most_error(module: nn.Module, converted: ov.Model, channels: int) -> tuple[list[str], float]:
    """The convolutions of ``converted`` to keep in f32, and their share of the multiply-adds: those whose own output
    moves most when their input and weights alone are rounded to 8 bits, measured on the first calibration crop,
    up to :data:`_REFINED_SHARE` of the work."""
    plain = module if next(module.parameters()).dtype == torch.float32 else copy.deepcopy(module).float()
    errors: dict[str, float] = {}
    macs: dict[str, float] = {}

    def measure(name: str):
        def hook(layer: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            features = inputs[0].float()
            low, high = features.min(), features.max()
            step = torch.clamp((high - low) / 255, min=1e-12)
            rounded = torch.round((features - low) / step) * step + low
            weight = layer.weight.float()
            scale = torch.clamp(weight.abs().amax(dim=(1, 2, 3), keepdim=True) / 127, min=1e-12)
            approximate = F.conv2d(
                rounded,
                torch.round(weight / scale) * scale,
                layer.bias,
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
            )
            exact = output.float()
            errors[name] = float((approximate - exact).pow(2).mean() / exact.pow(2).mean().clamp(min=1e-12))
            kernel = layer.kernel_size[0] * layer.kernel_size[1] * layer.in_channels // layer.groups
            macs[name] = float(exact.numel() * kernel)

        return hook

    handles = [
        layer.register_forward_hook(measure(name))
        for name, layer in plain.named_modules()
        if isinstance(layer, nn.Conv2d) and layer.padding_mode == "zeros"
    ]
    try:
        with torch.inference_mode():
            plain(torch.from_numpy(_batch(probes.calibration()[0], channels)))
    finally:
        for handle in handles:
            handle.remove()
    names = {
        op.get_friendly_name()
        for op in converted.get_ordered_ops()
        if op.get_type_name() in ("Convolution", "GroupConvolution")
    }
    total = sum(macs.values()) or 1.0
    ignored: list[str] = []
    share = 0.0
    for name in sorted(errors, key=errors.__getitem__, reverse=True):
        if share + macs[name] / total > _REFINED_SHARE:
            continue
        found = [op for op in names if op.startswith(f"__module.{name}/")]
        if found:
            ignored += found
            share += macs[name] / total
    return sorted(ignored), share


def _batch(picture: np.ndarray, channels: int) -> np.ndarray:
    """An RGB uint8 picture as a network's ``(1, channels, H, W)`` float32 input in 0–1 (gray: its luma)."""
    pixels = picture.astype(np.float32) / 255
    if channels == 1:
        pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)[:, None]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


def _eight_bit(output: np.ndarray) -> np.ndarray:
    return np.round(np.clip(output, 0.0, 1.0) * 255).astype(np.int16)


def _psnr_and_max(ours: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    difference = ours.astype(np.float64) - reference
    mse = float(np.mean(difference**2))
    psnr = 10 * math.log10(255**2 / mse) if mse > 0 else 99.0
    return psnr, int(np.abs(difference).max())


def _digest(ignored: list[str]) -> str:
    return hashlib.sha256("\n".join(ignored).encode()).hexdigest()[:8] if ignored else "all"
