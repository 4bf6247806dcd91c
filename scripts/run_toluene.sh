#!/usr/bin/env bash
# The main job, end to end on a fresh machine:
#   GFN2-xTB reference MD of toluene -> train SchNet (a few CPU minutes) -> mlff-deploy
#   -> mlff eval on an independent trajectory -> plain `lmp -in in.toluene` with pair_style mlff.
# Environment knobs: OUT (default runs/toluene), TRAIN_MINUTES (default 4),
# N_FRAMES (training frames, default 400), NSTEPS (LAMMPS NVE steps, default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup.sh
. .venv/bin/activate

OUT=${OUT:-runs/toluene}
TRAIN_MINUTES=${TRAIN_MINUTES:-4}
N_FRAMES=${N_FRAMES:-400}
NSTEPS=${NSTEPS:-2000}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "== 1/5 reference data: toluene, GFN2-xTB (tblite), Langevin 500 K, 0.5 fs, frame every 10 steps"
[ -s "$OUT/train.extxyz" ] || mlff data toluene -o "$OUT/train.extxyz" --frames "$N_FRAMES" --seed 1
[ -s "$OUT/test.extxyz" ] || mlff data toluene -o "$OUT/test.extxyz" --frames 100 --seed 2

echo "== 2/5 training SchNet for ${TRAIN_MINUTES} min"
rm -rf "$OUT/schnet"
mlff train --model schnet --train "$OUT/train.extxyz" --n-valid 40 --out "$OUT/schnet" \
    --max-minutes "$TRAIN_MINUTES" --threads 1 --no-progress

echo "== 3/5 deploying"
mlff-deploy "$OUT/schnet/best.ckpt" -o "$OUT/model.pt"

echo "== 4/5 scoring on an independent trajectory (seed 2)"
mlff eval "$OUT/model.pt" "$OUT/test.extxyz" | tee "$OUT/eval.txt"

echo "== 5/5 LAMMPS: lmp -in deploy/toluene/in.toluene"
(cd deploy/toluene && lmp -in in.toluene -var model "$OUT/model.pt" -var nsteps "$NSTEPS" \
    -log "$OUT/log.lammps" -screen none)
echo "NVE run, last thermo lines (step time temp pe ke etotal press):"
grep -B4 "^Loop time" "$OUT/log.lammps" | tail -5

cat <<EOM

Done. Everything is in $OUT:
  reference data      train.extxyz, test.extxyz
  training run        schnet/ (best.ckpt, metrics.csv, learning_curve.png)
  deployed model      model.pt   (use: pair_style mlff / pair_coeff * * model.pt C H)
  hold-out errors     eval.txt
  LAMMPS log          log.lammps
EOM
