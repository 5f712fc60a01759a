#!/usr/bin/env bash
# The benchmark on a lent GPU machine (the `device` tool), which has no internet.
#
# Prepare here, once, in the repository root:
#   echo /.whl/ >> .git/info/exclude; echo /.weights/ >> .git/info/exclude
#   mkdir -p .weights && cp ../shared/weights/*.pth .weights/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       basicsr==1.4.2 realesrgan==0.3.0 ...   # whatever the machine's package list lacks
# then run it there with carry [".whl", ".weights"]:  bash bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 bench/benchmark.py --device cuda --half --weights-dir .weights --sizes 512 1024 --repeats 5 \
    --models RealESRGAN_x4plus realesr-animevideov3 realesr-general-x4v3 --seam-size 512 --seam-tile 128 "$@"
