#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root, install mlff with its pinned
# dependencies, and build the LAMMPS plugin mlffplugin.so. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating virtual environment .venv"
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
# torch first and exactly pinned: anything looser pulls the multi-GB CUDA build.
pip install -q "torch==2.13.0" "setuptools>=64"
# No build isolation: an isolated build environment would install its own torch.
pip install -q --no-build-isolation -e ".[test]"
bash scripts/build_plugin.sh
echo "setup: done (activate with '. .venv/bin/activate'; plain 'lmp' now knows pair_style mlff)"
