#!/usr/bin/env bash
# The GPU checks and benchmark on a lent GPU machine (the `device` tool), which has no internet.
#
# Prepare here, once, in the repository root (list both folders in .git/info/exclude):
#   mkdir -p .site .weights && cp ../shared/weights/*.pth .weights/
#   cp -r "$(python -c 'import basicsr, os; print(os.path.dirname(basicsr.__file__))')" \
#         "$(python -c 'import realesrgan, os; print(os.path.dirname(realesrgan.__file__))')" .site/
# Both packages are pure Python; the rest of what the engine needs is on the machine's image.
# For the video benchmark, also copy PyAV (binary, with its bundled FFmpeg) into .site:
#   site=$(python -c 'import av, os; print(os.path.dirname(os.path.dirname(av.__file__)))')
#   cp -r "$site/av" "$site/av.libs" .site/
# Its official side needs an ffmpeg binary on the machine; without one that part is skipped.
# Then run it there with carry [".site", ".weights"]:  bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/.site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
logs=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 150 python3 bench/gpu_checks.py --weights-dir .weights 2>&1 | tee "$logs/gpu_checks.log"
timeout 400 python3 bench/benchmark.py --device cuda --half --weights-dir .weights --sizes 512 1024 --repeats 5 \
    --models RealESRGAN_x4plus realesr-animevideov3 realesr-general-x4v3 --seam-size 512 --seam-tile 128 \
    --tiling-cost 1024 --compile-timeout 200 "$@" 2>&1 | tee "$logs/benchmark.log"
if python3 -c "import av" 2>/dev/null && command -v ffmpeg >/dev/null; then
    timeout 400 python3 bench/video.py --device cuda --frames 240 --weights-dir .weights 2>&1 | tee "$logs/video.log"
else
    echo "video benchmark skipped: it needs PyAV in .site and an ffmpeg binary" | tee "$logs/video.log"
fi
