#!/usr/bin/env python
"""MD quality on toluene (GFN2-xTB reference): NVE drift and stability of schnet, nequip and
tfn_dfp trained on the same 1,000 frames at the same CPU budget, against xTB's own MD.

Steps (each skipped when its output exists; --redo starts over):

1. data: benchmarks/data/toluene_train.extxyz (``bash benchmarks/make_toluene_data.sh``):
   1,000 training + 100 validation frames of the MD17-like xTB trajectory;
2. train each model with ``mlff train`` for --cpu-minutes of CPU time (1 thread; the
   hyperparameters of benchmarks/accuracy/run.py), deploy in float64;
3. starting geometry: RDKit's toluene relaxed with GFN2-xTB (BFGS, fmax 0.01 eV/Å);
4. reference: ``mlff md nve-drift --calculator xtb`` at 300 K (--nve-ps) and
   ``mlff md stability --calculator xtb`` at 500 K (1 seed, --reference-ps): ASE MD with
   the same Langevin schedule and 0.5 fs time step;
5. each model in LAMMPS (plain lmp, pair_style mlff): ``nve-drift`` at 300 K (the seed 000
   claim: the direct-force model drifts and breaks bonds without a thermostat, the energy
   models hold) and ``stability`` at 500 K, --seeds seeds x --stability-ps;
6. ``mlff analyze`` of every run against the xTB run of the same protocol (g(r) -> P(r)
   of all intramolecular pairs, VDOS), ``mlff report`` of all of them, and
   OUT/results.json + OUT/table.md (model x {drift, time to failure, RDF error, VDOS}).

    python benchmarks/md_quality/toluene.py              # hours: see --help for the knobs
    python benchmarks/md_quality/toluene.py --quick      # minutes: tiny data, budget and runs (plumbing check)

Output: benchmarks/out/md_quality/toluene (or --out): report.md with figures, results.json, table.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import BIN, DATA, log, sh  # noqa: E402

# rough cost of a simulated ps, relative to schnet in LAMMPS (orders the task graph only)
COST = {"nequip": 4.0, "se3_transformer": 10.0, "mbe": 1.5, "xtb": 1.5}


def starting_geometry(out: Path) -> Path:
    path = out / "toluene_xtb.xyz"
    if path.is_file():
        return path
    from ase.io import write
    from ase.optimize import BFGS

    from mlff.data.calculators import make_calculator
    from mlff.data.molecules import molecule

    atoms = molecule("toluene")
    atoms.calc = make_calculator("xtb")
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=500)
    log(f"starting geometry: RDKit toluene relaxed with GFN2-xTB, E = {atoms.get_potential_energy():.4f} eV")
    atoms.calc = None
    write(path, atoms)
    return path


# the energy change over an NVE run that counts as drifting: 10 % of the mean kinetic energy
# per atom, (3/2) k_B T (38.8 meV at 300 K); for a direct-force model the kinetic energy's
# change (it has no total energy to conserve)
DRIFT_FRACTION = 0.1
K_B_MEV = 8.617333e-2  # meV/K


def seed000_claim(rows: list[dict], nve_ps: float) -> tuple[dict, list[str]]:
    """The seed-000 claim on the 300 K NVE runs: the direct-force model drifts or breaks a
    bond without a thermostat, the energy models hold (no broken bond, drift below
    ``DRIFT_FRACTION`` of the mean kinetic energy per atom over the run)."""
    verdicts, lines = {}, []
    for r in rows:
        if r["protocol"] != "nve-drift":
            continue
        model = r["label"].split()[0]
        direct = r["drift_meV_per_atom_per_ps"] is None
        rate = r["kinetic_drift_meV_per_atom_per_ps"] if direct else r["drift_meV_per_atom_per_ps"]
        limit = DRIFT_FRACTION * 1.5 * K_B_MEV * (r["temperature_K"] or 300.0) / nve_ps
        drifts = rate is not None and abs(rate) > limit
        broke = r["n_stable"] < r["n_seeds"]
        holds = not drifts and not broke
        verdicts[model] = {"direct_forces": direct, "drift_meV_per_atom_per_ps": rate,
                           "drift_limit_meV_per_atom_per_ps": limit, "drifts": drifts, "bond_broken": broke,
                           "holds": holds}
        what = "kinetic-energy drift" if direct else "total-energy drift"
        lines.append(f"- {model} ({'direct forces' if direct else 'energy model'}): {what} {rate:+.3g} meV/atom/ps "
                     f"(limit ±{limit:.3g}), " + ("a bond broke" if broke else "no bond broke")
                     + (" — holds" if holds else " — does not hold"))
    direct = [m for m, v in verdicts.items() if v["direct_forces"]]
    energy = [m for m, v in verdicts.items() if not v["direct_forces"]]
    claim = bool(direct) and bool(energy) and all(not verdicts[m]["holds"] for m in direct) \
        and all(verdicts[m]["holds"] for m in energy)
    partly = (any(not verdicts[m]["holds"] for m in direct) or all(verdicts[m]["holds"] for m in energy)) \
        and not claim
    verdict = "reproduced" if claim else ("partly reproduced" if partly else "not reproduced")
    head = [f"Seed 000's claim (NVE at 300 K, {nve_ps:g} ps, no thermostat): the direct-force model drifts and "
            f"breaks bonds; the energy models hold. Drifting means an energy change over the run above "
            f"{100 * DRIFT_FRACTION:g} % of the mean kinetic energy per atom, (3/2) k_B T. **{verdict}**.", ""]
    return {"verdict": verdict, "per_model": verdicts}, head + lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=common.BENCH / "out" / "md_quality" / "toluene")
    p.add_argument("--models", default="schnet,nequip,tfn_dfp")
    p.add_argument("--cpu-minutes", type=float, default=25.0, help="training budget per model (CPU time, 1 thread)")
    p.add_argument("--jobs", type=int, default=1, help="trainings and MD runs at once (one thread each)")
    p.add_argument("--nve-ps", type=float, default=20.0, help="NVE length at 300 K (models and xTB)")
    p.add_argument("--stability-ps", type=float, default=50.0, help="length of each 500 K stability run")
    p.add_argument("--seeds", type=int, default=5, help="stability seeds per model")
    p.add_argument("--reference-ps", type=float, help="xTB stability run length (default --stability-ps)")
    p.add_argument("--dump-every", type=int, default=5, help="steps between frames (5 x 0.5 fs: VDOS to 6,671 cm^-1)")
    p.add_argument("--np", type=int, default=1, help="MPI ranks of the LAMMPS runs")
    p.add_argument("--quick", action="store_true", help="tiny data, budget and runs: checks the plumbing only")
    p.add_argument("--redo", action="store_true", help="delete OUT and start over")
    args = p.parse_args()
    if args.quick:
        args.out = args.out.with_name(args.out.name + "_quick")
        args.cpu_minutes, args.nve_ps, args.stability_ps, args.seeds, args.reference_ps = 0.1, 0.2, 0.2, 2, 0.2
    if args.redo:
        common.clean(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]

    # 1. data
    if args.quick:
        train_file, n_valid = args.out / "data" / "toluene_quick.extxyz", 5
        if not train_file.is_file():
            train_file.parent.mkdir(exist_ok=True)
            sh([BIN / "mlff", "data", "toluene", "-o", train_file, "--frames", 30, "--equilibration", 25,
                "--interval", 2, "--seed", 1])
    else:
        train_file, n_valid = DATA / "toluene_train.extxyz", 100
        if not train_file.is_file():
            raise SystemExit(f"missing {train_file}: run bash benchmarks/make_toluene_data.sh (about 15 min)")
    # 2. train + deploy, 3. geometry, 4. references (ASE + xTB), 5. models in LAMMPS: one task
    # graph, --jobs tasks at once, so a model's MD starts as soon as it is deployed and the xTB
    # runs fill the gaps; the longest runs (nequip) come first
    row, epochs = "toluene", (2 if args.quick else None)
    start = starting_geometry(args.out)
    runs = args.out / "runs"
    every = args.dump_every
    quick_set = {"n_hot": 100, "max_cool": 400} if args.quick else {}
    xtb = ["--calculator", "xtb"]
    ref_nve, ref_stab = runs / "xtb_nve300", runs / "xtb_stability500"
    tasks = {f"train {m}": ((), lambda m=m: common.train_one(m, row, train_file, args.out, args.cpu_minutes, n_valid,
                                                               epochs))
             for m in sorted(models, key=lambda m: -COST.get(m, 1.0))}
    md_tasks = {
        "xtb stability": ((), lambda: common.md("stability", start, xtb, ref_stab, temperature=500,
                                                length=args.reference_ps or args.stability_ps, seeds=1,
                                                dump_every=every, log_file=runs / "xtb_stability500.log")),
        "xtb nve": ((), lambda: common.md("nve-drift", start, xtb, ref_nve, temperature=300, length=args.nve_ps,
                                          dump_every=every, set=quick_set, log_file=runs / "xtb_nve300.log")),
    }
    analysed = []
    for m in models:
        stab, nve = runs / f"{m}_stability500", runs / f"{m}_nve300"
        md_tasks[f"{m} stability"] = ((f"train {m}",), lambda m=m, stab=stab: common.md(
            "stability", start, ["--model", done[f"train {m}"]], stab, temperature=500, length=args.stability_ps,
            seeds=args.seeds, dump_every=every, np=args.np, log_file=stab.with_suffix(".log")))
        md_tasks[f"{m} nve"] = ((f"train {m}",), lambda m=m, nve=nve: common.md(
            "nve-drift", start, ["--model", done[f"train {m}"]], nve, temperature=300, length=args.nve_ps,
            dump_every=every, np=args.np, set=dict(quick_set), log_file=nve.with_suffix(".log")))
        analysed += [(m, "nve 300 K", nve, ref_nve), (m, "stability 500 K", stab, ref_stab)]
    # longest first: estimated cost = model cost x simulated ps
    length = {"stability": args.stability_ps * args.seeds, "nve": args.nve_ps + 1.0}
    ordered = sorted(md_tasks, key=lambda name: -COST.get(name.split()[0], 1.0) * length[name.split()[1]])
    runs.mkdir(parents=True, exist_ok=True)
    done: dict = {}
    tasks |= {name: md_tasks[name] for name in ordered}
    common.run_graph(tasks, args.jobs, done)  # train tasks put model.pt in ``done``, where md tasks read it
    # 6. analysis and report
    rows, labels = [], []
    for model, what, run, ref in analysed:
        label = f"{model} {what}"
        result = common.analyze(run, ref, label=label, reference_label=f"GFN2-xTB {what} (ASE)")
        rows.append(common.row_of(result))
        labels.append(label)
    common.report([r for _, _, r, _ in analysed], args.out / "report.md",
                  "Toluene: MD with models trained on GFN2-xTB, against xTB's own MD", labels)
    claim, claim_lines = seed000_claim(rows, args.nve_ps)
    lines = ["# Toluene, GFN2-xTB reference" + (" (QUICK plumbing run: not a measurement)" if args.quick else ""),
             "", *common.TABLE_HEADER, *common.table(rows, "toluene"), "", *claim_lines]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)},
                                                       "rows": rows, "seed000_claim": claim}, indent=2,
                                                      default=str))
    print("\n".join(lines))
    log(f"done: {args.out / 'report.md'}, {args.out / 'table.md'}, {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
