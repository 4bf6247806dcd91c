#!/usr/bin/env bash
# Regenerate the periodic / metal benchmark datasets (classical potentials, seconds to minutes on 1 core).
#   cu_eam_train.extxyz    cu-eam-melt: 108 Cu atoms, EAM Cu_u3 (LAMMPS), NPT (zero pressure) sweep
#                          300,600,900,1200,1500,1800 K, 3 ps equilibration per temperature, 600 frames
#                          (100 per temperature, one every 10 fs), seed 1; stress labels
#   cu_eam_holdout.extxyz  same protocol, seed 2, 300 frames (50 per temperature)
#   au6_emt_train.extxyz   au6-emt: EMT Au6 cluster, NVE from 300 K, 1 fs, a frame every 50 steps, 1,000 frames, seed 1
#   au6_emt_holdout.extxyz same, seed 2, 500 frames
#   cu_emt_train.extxyz    cu-emt: 32 Cu atoms, EMT, Langevin 500 K, 1 ps equilibration, a frame every 10 fs,
#                          1,000 frames, seed 1; stress labels
#   cu_emt_holdout.extxyz  same, seed 2, 500 frames
# Output goes to benchmarks/data/ (git-ignored). Usage: benchmarks/make_periodic_data.sh [--no-progress]
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${here}/data"
mkdir -p "${out}"
sweep="300,600,900,1200,1500,1800"
mlff data cu-eam-melt -o "${out}/cu_eam_train.extxyz" --supercell 3 --temperatures "${sweep}" --frames 600 --seed 1 "$@"
mlff data cu-eam-melt -o "${out}/cu_eam_holdout.extxyz" --supercell 3 --temperatures "${sweep}" --frames 300 --seed 2 "$@"
mlff data au6-emt -o "${out}/au6_emt_train.extxyz" --frames 1000 --seed 1 "$@"
mlff data au6-emt -o "${out}/au6_emt_holdout.extxyz" --frames 500 --seed 2 "$@"
mlff data cu-emt -o "${out}/cu_emt_train.extxyz" --supercell 2 --frames 1000 --seed 1 "$@"
mlff data cu-emt -o "${out}/cu_emt_holdout.extxyz" --supercell 2 --frames 500 --seed 2 "$@"
