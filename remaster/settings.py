"""Settings, read once from documented environment variables.

Every environment variable remaster reads is read here, and every default that depends
on the device lives here. Other modules take a :class:`Settings` and never read the
environment themselves.

=========================== =====================================================
Variable                    Meaning
=========================== =====================================================
``REMASTER_WEIGHTS_DIR``    A folder of weight files (``RealESRGAN_x4plus.pth`` …)
                            tried before any download. Files there are trusted.
``REMASTER_MODELS_DIR``     A folder of model files of your own (any architecture spandrel
                            knows); each becomes a model named by its file's stem.
``REMASTER_MAX_MODEL_MB``   Largest model file downloaded or uploaded (default 2048).
``REMASTER_ALLOW_MODEL_UPLOAD`` ``1`` to let the page take model files that visitors upload
                            (default: off; Hub references and URLs always work).
``REMASTER_CACHE_DIR``      Where weights downloaded from the GitHub fallback are
                            kept (default ``$XDG_CACHE_HOME/remaster``).
``REMASTER_HUB_REPO``       A Hub repo that holds every weight file, instead of
                            each file's default repo.
``REMASTER_HUB_REVISION``   The branch, tag or commit of that repo to use.
``REMASTER_DEVICE``         ``cuda``, ``cuda:1``, ``mps`` or ``cpu`` (default: the
                            first available of CUDA, Apple MPS, CPU).
``REMASTER_DEFAULT_MODEL``  The model the page starts with and downloads first.
``REMASTER_MAX_UPLOAD_MB``  Largest file the app accepts, in megabytes (default 50).
``REMASTER_MAX_INPUT_PIXELS`` Largest input accepted, in pixels (default 16 MP).
``REMASTER_MAX_OUTPUT_PIXELS`` Largest result made, in pixels (default 268 MP).
``REMASTER_TILE``           Tile edge used when tiling is automatic (default: sized
                            to the free memory).
``REMASTER_TIME_LIMIT``     Seconds a request may run before it is stopped.
``REMASTER_MAX_FACES``      Most faces restored in one image (default 10).
``REMASTER_MCP``            ``1`` to also serve the app as an MCP server (tools for LLM agents).
``REMASTER_MAX_BATCH_FILES`` Most images in one batch (default 50).
``REMASTER_MAX_BATCH_MB``   Most megabytes of images a batch's zips may hold, uncompressed
                            (default 500).
``REMASTER_MAX_VIDEO_SECONDS`` Longest video accepted, in seconds (default 3 hours; 10 s on a
                            CPU Space, 2 minutes on a GPU Space).
``REMASTER_MAX_VIDEO_FRAMES`` Most frames in one video (default 1,000,000; 300 on a CPU Space).
``REMASTER_MAX_VIDEO_FRAME_PIXELS`` Largest output frame of a video, in pixels (default 7680×4320;
                            1920×1080 on a CPU Space).
``REMASTER_COMPILE``        ``1`` or ``0``: compile networks with ``torch.compile`` in the
                            background (default: on with CUDA, except on ZeroGPU).
``REMASTER_CPU_BF16``       ``0`` to act as a CPU without bf16 instructions: automatic
                            precision is then fp32.
``REMASTER_CPU_FLAGS``      The CPU flags to act as if the CPU had, instead of its own (space
                            or comma separated, as ``/proc/cpuinfo`` spells them: ``avx2`` acts
                            as an AVX2-only CPU, ``avx2 avx512f avx512_bf16`` as one with bf16).
                            Automatic precision, int8's recipe and the kept runtime decisions
                            (keyed by the processor) follow them.
``REMASTER_BACKEND``        ``auto`` (measure: OpenVINO on CPUs, and int8 where its pictures pass
                            the quality gate; TensorRT or compiled on CUDA; where faster), or
                            force ``torch``, ``compiled``, ``openvino``, ``tensorrt``, ``int8``.
``REMASTER_CONCURRENCY``    How many requests the app runs at once.
``REMASTER_QUEUE_SIZE``     How many requests may wait; more are turned away.
``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``
                            As huggingface_hub reads them.
=========================== =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import SettingsError
from .registry import DEFAULT_MODEL
from .runtimes import AUTO, backend_names

__all__ = ["DeviceDefaults", "Settings", "device_defaults", "detect_device", "models_dir_from_env"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class DeviceDefaults:
    """What suits a kind of device when the user has not said otherwise."""

    default_model: str
    concurrency: int
    max_input_pixels: int = 4096 * 4096
    time_limit: int | None = None
    max_video_seconds: int = 3 * 3600
    max_video_frames: int = 1_000_000
    max_video_frame_pixels: int = 7680 * 4320


def device_defaults(device: str, on_space: bool = False) -> DeviceDefaults:
    """Defaults for a device string such as ``"cuda:0"``, ``"mps"`` or ``"cpu"``.

    On a CPU Space (2 shared vCPUs for everyone), inputs are smaller and each request
    has a time limit, so one visitor cannot hold the queue for long.
    """
    kind = device.split(":", 1)[0]
    if kind == "cuda" and on_space:
        return DeviceDefaults(
            DEFAULT_MODEL,
            concurrency=2,
            max_video_seconds=120,
            max_video_frames=3600,
            max_video_frame_pixels=3840 * 2160,
        )
    if kind == "cuda":
        return DeviceDefaults(default_model=DEFAULT_MODEL, concurrency=2)
    if kind == "mps":
        return DeviceDefaults(default_model=DEFAULT_MODEL, concurrency=1)
    # On a CPU threads only compete, and the big RRDB models take minutes per megapixel.
    if on_space:
        return DeviceDefaults(
            "realesr-general-x4v3",
            concurrency=1,
            max_input_pixels=2048 * 2048,
            time_limit=300,
            max_video_seconds=10,
            max_video_frames=300,
            max_video_frame_pixels=1920 * 1080,
        )
    return DeviceDefaults(default_model="realesr-general-x4v3", concurrency=1)


def detect_device() -> str:
    """The best available device: CUDA, then Apple MPS, then the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass(frozen=True)
class Settings:
    """Everything configurable about remaster, resolved to plain values."""

    device: str
    default_model: str
    max_upload_mb: int
    max_input_pixels: int
    max_output_pixels: int
    tile: int | None
    """Core tile edge used when tiling is automatic; None sizes tiles to the free memory."""
    time_limit: float | None
    """Seconds one request may run before it is stopped; None for no limit."""
    max_faces: int
    """Most faces restored in one image; the largest are chosen."""
    max_batch_files: int
    max_batch_mb: int
    mcp: bool
    concurrency: int
    queue_size: int
    weights_dir: Path | None
    cache_dir: Path
    hub_cache_dir: Path | None
    hub_endpoint: str | None
    hub_token: str | None
    hub_repo: str | None
    hub_revision: str | None
    offline: bool
    download_timeout: float = 30.0
    compile: bool = False
    """Compile networks in the background and use the compiled graph where it is faster."""
    cpu_bf16: bool = True
    """Whether automatic precision may pick bf16 on a CPU that has bf16 instructions (off: fp32, as elsewhere)."""
    cpu_flags: frozenset[str] | None = None
    """The CPU flags to act as if the CPU had (``REMASTER_CPU_FLAGS``); None: its own."""
    backend: str = AUTO
    """Which inference backend networks run on: ``auto`` (measured per network) or a forced one."""
    models_dir: Path | None = None
    """A folder of model files of the user's own, each a model named by its file stem."""
    max_model_mb: int = 2048
    allow_model_upload: bool = False
    """Whether the page takes model files that visitors upload (Hub references and URLs always work)."""
    max_video_seconds: int = 3 * 3600
    """Longest video accepted, in seconds."""
    max_video_frames: int = 1_000_000
    """Most frames one video may have (after ``--fps``, if given)."""
    max_video_frame_pixels: int = 7680 * 4320
    """Largest output frame of a video, in pixels."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``), then apply ``overrides``.

        Raises:
            SettingsError: a variable holds a value of the wrong kind; the message names it.
        """
        env = os.environ if env is None else env
        device = str(overrides.get("device") or env.get("REMASTER_DEVICE") or detect_device())
        defaults = device_defaults(device, on_space=bool(env.get("SPACE_ID")))
        xdg_cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        settings = cls(
            device=device,
            default_model=env.get("REMASTER_DEFAULT_MODEL") or defaults.default_model,
            max_upload_mb=_positive_int(env, "REMASTER_MAX_UPLOAD_MB", 50),
            max_input_pixels=_positive_int(env, "REMASTER_MAX_INPUT_PIXELS", defaults.max_input_pixels),
            max_output_pixels=_positive_int(env, "REMASTER_MAX_OUTPUT_PIXELS", 16384 * 16384),
            tile=_positive_int(env, "REMASTER_TILE", None),
            time_limit=_positive_int(env, "REMASTER_TIME_LIMIT", defaults.time_limit),
            max_faces=_positive_int(env, "REMASTER_MAX_FACES", 10),
            max_batch_files=_positive_int(env, "REMASTER_MAX_BATCH_FILES", 50),
            max_batch_mb=_positive_int(env, "REMASTER_MAX_BATCH_MB", 500),
            mcp=env.get("REMASTER_MCP", "").strip().lower() in _TRUE,
            concurrency=_positive_int(env, "REMASTER_CONCURRENCY", defaults.concurrency),
            queue_size=_positive_int(env, "REMASTER_QUEUE_SIZE", 20),
            weights_dir=_optional_path(env.get("REMASTER_WEIGHTS_DIR")),
            cache_dir=Path(env.get("REMASTER_CACHE_DIR") or xdg_cache / "remaster").expanduser(),
            hub_cache_dir=_hub_cache_dir(env),
            hub_endpoint=env.get("HF_ENDPOINT") or None,
            hub_token=env.get("HF_TOKEN") or None,
            hub_repo=env.get("REMASTER_HUB_REPO") or None,
            hub_revision=env.get("REMASTER_HUB_REVISION") or None,
            offline=env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE,
            compile=_compile(env, device),
            backend=_choice(env, "REMASTER_BACKEND", backend_names(), AUTO),
            cpu_bf16=_flag(env, "REMASTER_CPU_BF16", True),
            cpu_flags=_words(env, "REMASTER_CPU_FLAGS"),
            models_dir=models_dir_from_env(env),
            max_model_mb=_positive_int(env, "REMASTER_MAX_MODEL_MB", 2048),
            allow_model_upload=_flag(env, "REMASTER_ALLOW_MODEL_UPLOAD", False),
            max_video_seconds=_positive_int(env, "REMASTER_MAX_VIDEO_SECONDS", defaults.max_video_seconds),
            max_video_frames=_positive_int(env, "REMASTER_MAX_VIDEO_FRAMES", defaults.max_video_frames),
            max_video_frame_pixels=_positive_int(
                env, "REMASTER_MAX_VIDEO_FRAME_PIXELS", defaults.max_video_frame_pixels
            ),
        )
        return replace(settings, **overrides) if overrides else settings


def _positive_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise SettingsError(f"{name} must be a positive whole number, but it is {raw!r}")
    return value


def _compile(env: Mapping[str, str], device: str) -> bool:
    """REMASTER_COMPILE if set; else on for CUDA, where it pays, but not on ZeroGPU, whose
    GPU is lent per call, too briefly for a compilation to finish."""
    raw = env.get("REMASTER_COMPILE", "").strip().lower()
    if raw:
        if raw not in _TRUE | _FALSE:
            raise SettingsError(f"REMASTER_COMPILE must be 1 or 0, but it is {raw!r}")
        return raw in _TRUE
    zero_gpu = env.get("SPACES_ZERO_GPU", "").strip().lower() in _TRUE
    return device.split(":", 1)[0] == "cuda" and not zero_gpu


def models_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """``REMASTER_MODELS_DIR`` as a path (read without anything else, for the command line's parsing)."""
    env = os.environ if env is None else env
    return _optional_path(env.get("REMASTER_MODELS_DIR"))


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, but it is {raw!r}")
    return raw


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _TRUE | _FALSE:
        raise SettingsError(f"{name} must be 1 or 0, but it is {raw!r}")
    return raw in _TRUE


def _words(env: Mapping[str, str], name: str) -> frozenset[str] | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    return frozenset(raw.replace(",", " ").lower().split())


def _optional_path(raw: str | None) -> Path | None:
    return Path(raw).expanduser() if raw else None


def _hub_cache_dir(env: Mapping[str, str]) -> Path | None:
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return None
