#!/usr/bin/env bash
# The LAMMPS Cu benchmark end to end: train SchNet (64 features, 3 interactions,
# r_max 5 Å) on benchmarks/data/cu_eam_train.extxyz for a few CPU minutes, deploy it
# in float32 and float64 (and float32 with tabulated filters, mlff-deploy --tabulate),
# report their hold-out errors, then time them in LAMMPS next to pair_style eam and snap
# (benchmarks/lammps_cu.py).
#
#   bash benchmarks/lammps_cu.sh
# Env: OUT (benchmarks/out/cu_schnet), TRAIN_MINUTES (12), REPEAT (3), STEPS (10)
# The data come from benchmarks/make_periodic_data.sh (mlff data cu-eam).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
OUT="${OUT:-benchmarks/out/cu_schnet}"
data=benchmarks/data
[ -f "$data/cu_eam_train.extxyz" ] || { echo "missing $data/cu_eam_train.extxyz: bash benchmarks/make_periodic_data.sh" >&2; exit 1; }
if [ ! -f "$OUT/best.ckpt" ]; then
  mlff train --model schnet --features 64 --interactions 3 --r-max 5 --dtype float32 --threads 1 \
    --train "$data/cu_eam_train.extxyz" --out "$OUT" --max-minutes "${TRAIN_MINUTES:-12}" --seed 1 --no-progress
fi
mlff-deploy "$OUT/best.ckpt" -o "$OUT/model.pt" --dtype float64
mlff-deploy "$OUT/best.ckpt" -o "$OUT/model_f32.pt" --dtype float32
mlff-deploy "$OUT/best.ckpt" -o "$OUT/model_f32_tab.pt" --dtype float32 --tabulate
for m in model model_f32 model_f32_tab; do mlff eval "$OUT/$m.pt" "$data/cu_eam_holdout.extxyz"; done
python benchmarks/lammps_cu.py --model "$OUT/model_f32.pt" "$OUT/model_f32_tab.pt" --repeat "${REPEAT:-3}" --steps "${STEPS:-10}" \
  --json "$OUT/../lammps_cu_f32.json"
python benchmarks/lammps_cu.py --model "$OUT/model.pt" --modes owner halo --repeat "${REPEAT:-3}" \
  --steps "${STEPS:-10}" --json "$OUT/../lammps_cu_f64.json"
