#!/usr/bin/env python
"""MD quality on Cu (EAM reference): NVE drift, g(r) and MSD of bp, schnet and nequip trained
on EAM Cu data, against pair_style eam run with the same protocol, for the solid at 300 K
and the liquid at 1,600 K.

Steps (each skipped when its output exists; --redo starts over):

1. data: benchmarks/data/cu_eam_train.extxyz (made here with ``mlff data cu-eam-melt`` if
   missing, as benchmarks/make_periodic_data.sh: 108 atoms, EAM Cu_u3, NPT sweep
   300-1,800 K through melting, 600 frames);
2. train each model with ``mlff train`` for --cpu-minutes (1 thread; hyperparameters of
   benchmarks/accuracy/run.py's cu row), deploy in float64;
3. structures: fcc Cu, --cells^3 cubic cells (a = 3.615 Å); the liquid is made with
   pair_style eam by ``mlff md melt`` (start at 1,600 K, heat to 2,500 K, hold, cool back
   to 1,600 K at zero pressure); its last frame starts every liquid run;
4. for the solid (300 K) and the liquid (1,600 K): ``mlff md nve-drift`` with
   ``pair_style eam`` (the reference) and with each model (pair_style mlff), --nve-ps of
   NVE at --timestep;
5. ``mlff analyze`` of each model run against the eam run of the same state (g(r),
   MSD and D, VDOS), ``mlff report``, OUT/results.json and OUT/table.md.

    python benchmarks/md_quality/cu.py                # about an hour on 2 cores: see --help
    python benchmarks/md_quality/cu.py --quick        # minutes: plumbing check only

Output: benchmarks/out/md_quality/cu (or --out): report.md with figures, results.json, table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import BIN, DATA, log, sh  # noqa: E402

EAM = ["--pair-style", "eam", "--pair-coeff", "* * Cu_u3.eam"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=common.BENCH / "out" / "md_quality" / "cu")
    p.add_argument("--models", default="bp,schnet,nequip")
    p.add_argument("--cpu-minutes", type=float, default=15.0, help="training budget per model (CPU time, 1 thread)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at once")
    p.add_argument("--cells", type=int, default=4, help="fcc cubic cells per edge (4: 256 atoms)")
    p.add_argument("--timestep", type=float, default=2.0, help="fs")
    p.add_argument("--nve-ps", type=float, default=10.0, help="NVE length of every run")
    p.add_argument("--melt-ps", type=float, default=30.0, help="length of the eam melt that makes the liquid")
    p.add_argument("--solid-temperature", type=float, default=300.0)
    p.add_argument("--liquid-temperature", type=float, default=1600.0)
    p.add_argument("--dump-every", type=int, default=10, help="steps between frames")
    p.add_argument("--np", type=int, default=1, help="MPI ranks of the LAMMPS runs")
    p.add_argument("--quick", action="store_true", help="tiny data, budget and runs: checks the plumbing only")
    p.add_argument("--redo", action="store_true", help="delete OUT and start over")
    args = p.parse_args()
    if args.quick:
        args.out = args.out.with_name(args.out.name + "_quick")
        args.cpu_minutes, args.cells, args.nve_ps, args.melt_ps = 0.1, 3, 0.4, 2.0
    if args.redo:
        common.clean(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]

    # 1. data
    if args.quick:
        train_file, n_valid = args.out / "data" / "cu_quick.extxyz", 5
        frames = ["--frames", 30, "--equilibration", 100, "--temperatures", "300,1800"]
    else:
        train_file, n_valid = DATA / "cu_eam_train.extxyz", 60
        frames = ["--frames", 600, "--seed", 1, "--temperatures", "300,600,900,1200,1500,1800"]
    if not train_file.is_file():
        train_file.parent.mkdir(parents=True, exist_ok=True)
        sh([BIN / "mlff", "data", "cu-eam-melt", "-o", train_file, "--supercell", 3, *frames])
    # 2. train + deploy
    deployed = common.train_models(models, "cu", train_file, args.out, args.cpu_minutes, n_valid, args.jobs,
                                   epochs=1 if args.quick else None)
    # 3. structures
    from ase.build import bulk
    from ase.io import write

    solid = args.out / f"cu_fcc_{args.cells}.extxyz"
    if not solid.is_file():
        write(solid, bulk("Cu", "fcc", a=3.615, cubic=True).repeat(args.cells))
    runs = args.out / "runs"
    melt = common.md("melt", solid, EAM, runs / "eam_melt", temperature=args.liquid_temperature,
                     timestep=args.timestep, length=args.melt_ps, dump_every=args.dump_every, np=args.np,
                     set={"t_high": 2500, "t_final": args.liquid_temperature})
    liquid = melt / "seed_000" / "final.extxyz"
    # 4. runs
    analysed = []
    hot = {"n_hot": 200, "max_cool": 400} if args.quick else {}
    for state, temperature, start in (("solid", args.solid_temperature, solid),
                                      ("liquid", args.liquid_temperature, liquid)):
        kw = dict(temperature=temperature, timestep=args.timestep, length=args.nve_ps, dump_every=args.dump_every,
                  np=args.np, set=dict(hot))
        ref = common.md("nve-drift", start, EAM, runs / f"eam_{state}", **kw)
        analysed.append(("eam", state, temperature, ref, None))
        for model in models:
            run = common.md("nve-drift", start, ["--model", deployed[model]], runs / f"{model}_{state}",
                            **dict(kw, set=dict(hot)))  # a fresh dict: md() consumes "set"
            analysed.append((model, state, temperature, run, ref))
    # 5. analysis and report
    rows, labels, model_runs = [], [], []
    for model, state, temperature, run, ref in analysed:
        label = f"{model} {state} {temperature:g} K"
        result = common.analyze(run, ref, label=label,
                                reference_label=f"eam {state} {temperature:g} K" if ref is not None else None)
        rows.append(common.row_of(result))
        if ref is not None:  # the eam runs enter the report as the references of the model runs
            labels.append(label)
            model_runs.append(run)
    common.report(model_runs, args.out / "report.md",
                  "Cu: MD with models trained on EAM data, against pair_style eam", labels)
    lines = ["# Cu, EAM (Cu_u3) reference" + (" (QUICK plumbing run: not a measurement)" if args.quick else ""), "",
             *common.TABLE_HEADER, *common.table(rows, f"Cu {4 * args.cells ** 3} atoms")]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                                       "rows": rows}, indent=2, default=str))
    print("\n".join(lines))
    log(f"done: {args.out / 'report.md'}, {args.out / 'table.md'}, {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
