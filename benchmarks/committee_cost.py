"""Cost of a committee in LAMMPS: atom-steps/s of a 4-member committee against one member.

    python benchmarks/committee_cost.py [--models schnet,bp] [--cells 10] [--steps 10] [--repeat 3]

fcc Cu, ``--cells``³ cubic cells (10: 4,000 atoms), 600 K NVE, 1 rank, 1 torch thread, in
plain ``lmp``; each model (random weights: the cost does not depend on them) deployed in
float32 alone and as a committee of 4 (``mlff.deploy.export_committee``), timed
alternately after a warm-up run, best of ``--repeat``. The committee also computes the
per-atom deviations (``compute mlff/uncertainty/atom`` in the input). Target: the
committee at most 4× the single model's time per step. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SIZES = {"schnet": {"n_features": 64, "n_interactions": 3}, "bp": {}, "nequip": {"n_features": 32, "l_max": 1,
                                                                                  "n_layers": 3}}

INPUT = """
units metal
atom_style atomic
boundary p p p
lattice fcc 3.615
region box block 0 {cells} 0 {cells} 0 {cells}
create_box 1 box
create_atoms 1 box
mass 1 63.546
pair_style mlff extrapolation off
pair_coeff * * {model} Cu
neighbor 1.0 bin
velocity all create 600 4928459 mom yes rot no dist gaussian loop geom
fix nve all nve
timestep 0.002
{compute}
thermo 100
run 2
run {steps}
"""


def atom_steps_per_s(folder: Path, model: Path, cells: int, steps: int, committee: bool) -> float:
    compute = "compute u all mlff/uncertainty/atom\nthermo_style custom step pe c_u[1]" if committee else ""
    (folder / "in.bench").write_text(INPUT.format(cells=cells, model=model, steps=steps, compute=compute))
    env = {"OMP_NUM_THREADS": "1", "MLFF_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent)}
    import os

    env = {**os.environ, **env}
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.bench", "-log", "none", "-nocite"],
                         cwd=folder, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stdout[-3000:] + out.stderr[-2000:])
    loop = float(re.findall(r"Loop time of ([\d.e+-]+)", out.stdout)[-1])
    return 4 * cells**3 * steps / loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="schnet,bp")
    parser.add_argument("--cells", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "committee_cost")
    args = parser.parse_args()
    from mlff.deploy import export_committee, export_model
    from mlff.models import build_model

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind in args.models.split(","):
        members = []
        for seed in range(4):
            torch.manual_seed(seed)
            members.append(build_model(kind, ["Cu"], 5.0, dtype=torch.float64, **SIZES.get(kind, {})))
        single, committee = args.out / f"{kind}_single.pt", args.out / f"{kind}_committee4.pt"
        export_model(members[0], single, dtype=torch.float32)
        export_committee(members, committee, dtype=torch.float32)
        best = {"single": 0.0, "committee": 0.0}
        for _ in range(args.repeat):
            for name, path in (("single", single), ("committee", committee)):
                best[name] = max(best[name], atom_steps_per_s(args.out, path, args.cells, args.steps,
                                                              name == "committee"))
        rows.append({"model": kind, "atoms": 4 * args.cells**3, "single_atom_steps_per_s": best["single"],
                     "committee4_atom_steps_per_s": best["committee"],
                     "time_ratio": best["single"] / best["committee"]})
        print(f"{kind}: single {best['single']:,.0f} atom-steps/s, committee of 4 {best['committee']:,.0f}: "
              f"{rows[-1]['time_ratio']:.2f}x the time (target <= 4)", flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print("\n| model | atoms | single (atom-steps/s) | committee of 4 (atom-steps/s) | time ratio |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['atoms']} | {r['single_atom_steps_per_s']:,.0f} | "
              f"{r['committee4_atom_steps_per_s']:,.0f} | {r['time_ratio']:.2f} |")


if __name__ == "__main__":
    main()
