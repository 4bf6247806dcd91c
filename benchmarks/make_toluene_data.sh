#!/usr/bin/env bash
# Regenerate the toluene benchmark datasets (GFN2-xTB via tblite, MD17 protocol:
# Langevin 500 K, 0.5 fs, a frame every 10 steps after 1 ps equilibration).
#   toluene_train.extxyz   seed 1, 1,100 frames (1,000 train + 100 validation)
#   toluene_holdout.extxyz seed 2, 2,000 frames (independent trajectory)
# Output goes to benchmarks/data/ (git-ignored). Usage: benchmarks/make_toluene_data.sh [--no-progress]
set -euo pipefail
# One OpenMP thread: for a 15-atom molecule tblite gains nothing from more, and
# on a busy machine OpenMP spinning made 2 threads >10x slower than 1.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${here}/data"
mkdir -p "${out}"
mlff data toluene -o "${out}/toluene_train.extxyz" --frames 1100 --seed 1 "$@"
mlff data toluene -o "${out}/toluene_holdout.extxyz" --frames 2000 --seed 2 "$@"
