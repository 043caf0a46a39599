#!/usr/bin/env bash
# The GPU check of issue 15, in one go, for a machine with an NVIDIA GPU and CuPy
# (a few minutes): the device parity tests and the CUDA kernel tests on `cuda`,
# then the GPU benchmark (graphnet vs the CuPy reference vs PyTorch CUDA on W1,
# W3 and W4). Everything it prints also goes to files in OUT_DIR:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]      # default: gpu-results/
#
# Exit status: 2 when there is no usable GPU or CuPy (nothing was measured),
# else that of the tests or the benchmark, whichever failed first.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-results}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
    "$PY" -c "import sys, numpy, cupy; print('python', sys.version.split()[0], '| numpy', numpy.__version__, '| cupy', cupy.__version__)" 2>&1
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 || true
} | tee "$OUT/machine.txt"
if ! "$PY" -c "import graphnet.backend as b; b.get('cuda')" 2>"$OUT/no-gpu.txt"; then
    cat "$OUT/no-gpu.txt" >&2
    echo "gpu_check: no usable GPU/CuPy here; nothing was measured" >&2
    exit 2
fi
status=0
# The parity tests run on every device present: cpu, the stand-in, and cuda here.
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_backend.py tests/test_devices.py \
    tests/test_deferred.py tests/test_cuda_kernels.py 2>&1 | tee "$OUT/tests.txt" || status=$?
"$PY" -m benchmarks --device cuda --reps "${REPS:-5}" --out "$OUT" 2>&1 | tee "$OUT/bench.txt" || {
    [ "$status" = 0 ] && status=$?
}
echo "gpu_check: results in $OUT/ (tests.txt, gpu.md, gpu.json, bench.txt); exit $status"
exit "$status"
