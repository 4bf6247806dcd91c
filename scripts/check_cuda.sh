#!/usr/bin/env bash
# Prove that mlff's CUDA code compiles on a machine without a GPU and with the CPU torch:
#  1. the kernels (cuda/), a torch-free static library, with nvcc for every target GPU
#     architecture (MLFF_CUDA_ARCHITECTURES, default 75;80;90);
#  2. the torch glue (cpp/ops/src/cuda_glue.cpp) and the ops built with MLFF_WITH_CUDA,
#     syntax- and type-checked against torch's headers (the CPU wheel ships the c10/cuda
#     headers but not the generated cuda_cmake_macros.h, which is stubbed here).
# Linking against torch's CUDA libraries needs torch with CUDA: scripts/build_plugin.sh
# does that on a GPU machine.  Called by .ci/run.
# Usage: bash scripts/check_cuda.sh   (PYTHON, BUILD_DIR as in build_plugin.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}/cuda-check"
command -v nvcc >/dev/null || { echo "check_cuda.sh: nvcc not found" >&2; exit 1; }

cmake -S "$ROOT/cuda" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "${JOBS:-2}"
echo "check_cuda.sh: kernels compiled: $(ls "$BUILD_DIR"/libmlff_cuda_kernels.a)"

TORCH_INC="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')"
CUDA_INC="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")/include"
[ -f "$CUDA_INC/cuda_runtime_api.h" ] || CUDA_INC=/usr/local/cuda/include
STUB="$(mktemp -d)"
trap 'rm -rf "$STUB"' EXIT
mkdir -p "$STUB/c10/cuda/impl"
echo '#pragma once' > "$STUB/c10/cuda/impl/cuda_cmake_macros.h"
for src in cuda_glue.cpp symmetry_functions.cpp tensor_product.cpp tensor_product_uvw.cpp registration.cpp; do
  "${CXX:-c++}" -std=c++17 -fsyntax-only -DMLFF_WITH_CUDA -isystem "$STUB" -isystem "$TORCH_INC" \
    -isystem "$TORCH_INC/torch/csrc/api/include" -I"$ROOT/cpp/ops/include" -I"$ROOT/cuda/include" -isystem "$CUDA_INC" \
    "$ROOT/cpp/ops/src/$src"
done
echo "check_cuda.sh: torch glue and ops with MLFF_WITH_CUDA type-check"
