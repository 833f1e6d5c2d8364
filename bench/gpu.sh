#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: installs the cuda extra if missing, runs the CUDA tests on
# the device, then the CUDA benchmarks (fused vs unfused vs CuPy / torch eager where installed)
# into bench/results/cuda.json. Takes under 5 minutes.
#   bench/gpu.sh             on the GPU
#   bench/gpu.sh --simulate  the same steps in Numba's CUDA simulator (tiny sizes): a check of
#                            this script on a machine without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
start=$SECONDS

if [ "${1:-}" = "--simulate" ]; then
    export NUMBA_ENABLE_CUDASIM=1
    unset TRACEJIT_CUDA_DEVICE
    out=bench/results/cuda-simulated.json
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    export TRACEJIT_CUDA_DEVICE=1  # tests/test_cuda.py runs on the device, not the simulator
    unset NUMBA_ENABLE_CUDASIM
    out=bench/results/cuda.json
fi

if ! "$PY" -c "import numba.cuda, tracejit" 2>/dev/null; then
    "$PY" -m pip install -q -e ".[cuda]"
fi
"$PY" - <<'PY'
from numba import cuda
assert cuda.is_available(), "numba.cuda sees no GPU (driver missing?)"
print("numba.cuda device:", getattr(cuda.get_current_device(), "name", "simulator"))
PY

echo "== CUDA tests"
timeout 150 "$PY" -m pytest tests/test_cuda.py -q -p no:cacheprovider
echo "== CUDA benchmarks"
mkdir -p bench/results
timeout 120 "$PY" bench/bench_cuda.py --json "$out"
echo "done in $((SECONDS - start)) s; results in $out"
