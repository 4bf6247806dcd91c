#!/usr/bin/env python
"""Training throughput (structures/s) of 1 and 2 processes (issue 22): ``schnet`` and
``nequip`` (their default settings) on toluene and on 32-atom fcc Cu, CPU, gloo, one
thread per process.

Each configuration trains ``--epochs`` epochs on ``--frames`` structures (``--n-valid``
more for validation): one process (``python -m mlff train --threads 1``) and
``torchrun --nproc-per-node 2 -m mlff train`` with the same global batch (5, the default;
each process takes 2 or 3 structures a step), and with ``--batch-size 10`` (5 per process
on 2 processes: the same work per process and step as one process at batch 5). The rate
is training structures per second of wall time over the epochs after the first (rank 0's
clock, validation included), from ``metrics.csv``; efficiency = rate(2) / (2 × rate(1)).

Data: ``benchmarks/data/toluene_train.extxyz`` and ``cu_emt_train.extxyz`` when they exist
(``make_toluene_data.sh``, ``make_periodic_data.sh``), else EMT frames made here.

    python benchmarks/ddp_throughput.py                 # about 15 min on 2 free cores
    python benchmarks/ddp_throughput.py --quick         # a check: 30 frames, 2 epochs (about 3 min)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def frames_for(system: str, n: int, out: Path) -> Path:
    """An extxyz file of ``n`` labelled frames of ``system`` (``toluene`` or ``cu``)."""
    from mlff.data.io import read_dataset, write_dataset

    path = out / f"{system}_{n}.extxyz"
    if path.is_file():
        return path
    src = HERE / "data" / ("toluene_train.extxyz" if system == "toluene" else "cu_emt_train.extxyz")
    if src.is_file():
        frames = read_dataset(src)[:n]
    else:
        from ase import units
        from ase.build import bulk
        from ase.calculators.emt import EMT
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
        from ase.md.verlet import VelocityVerlet

        from mlff.data.molecules import molecule

        atoms = molecule("toluene") if system == "toluene" else bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
        atoms.calc = EMT()
        MaxwellBoltzmannDistribution(atoms, temperature_K=800 if system == "toluene" else 1000,
                                     rng=np.random.default_rng(0))
        dyn = VelocityVerlet(atoms, 0.5 * units.fs if system == "toluene" else 2 * units.fs)
        frames = []
        for _ in range(n):
            dyn.run(5)
            f = atoms.copy()
            f.calc = None
            f.info["energy"] = float(atoms.get_potential_energy())
            f.arrays["forces"] = atoms.get_forces().copy()
            if system == "cu":
                f.info["stress"] = atoms.get_stress().copy()
            frames.append(f)
    if len(frames) < n:
        raise SystemExit(f"{src} has only {len(frames)} frames; ask for --frames {len(frames)}")
    return write_dataset(path, frames)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rate(run: Path, n_train: int) -> float:
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    if len(rows) < 2:
        raise SystemExit(f"{run}: needs at least 2 epochs")
    dt = float(rows[-1]["wall_s"]) - float(rows[0]["wall_s"])
    return n_train * (len(rows) - 1) / dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--frames", type=int, default=300, help="training structures (default 300)")
    p.add_argument("--n-valid", type=int, default=20)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--models", default="schnet,nequip")
    p.add_argument("--systems", default="toluene,cu")
    p.add_argument("--out", type=Path, default=HERE / "out" / "ddp_throughput")
    args = p.parse_args()
    if args.quick:
        args.frames, args.epochs, args.out = 30, 2, args.out.with_name(args.out.name + "_quick")
    args.out.mkdir(parents=True, exist_ok=True)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    results = []
    for system in args.systems.split(","):
        data = frames_for(system, args.frames + args.n_valid, args.out)
        for model in args.models.split(","):
            for n_proc, batch in ((1, 5), (2, 5), (1, 10), (2, 10)):
                run = args.out / f"{system}_{model}_np{n_proc}_b{batch}"
                common = ["train", "--model", model, "--train", str(data), "--n-valid", str(args.n_valid),
                          "--epochs", str(args.epochs), "--batch-size", str(batch), "--out", str(run),
                          "--overwrite", "--no-progress", "--threads", "1"]
                cmd = ([sys.executable, "-m", "mlff"] if n_proc == 1 else
                       [torchrun, "--nproc-per-node", str(n_proc), "--master-port", str(free_port()), "-m", "mlff"])
                print(f"[{system} {model} {n_proc} proc, batch {batch}] {' '.join(cmd + common)}", flush=True)
                t0 = time.perf_counter()
                done = subprocess.run(cmd + common, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(done.stdout[-2000:] + done.stderr[-4000:])
                r = rate(run, args.frames)
                results.append({"system": system, "model": model, "processes": n_proc, "batch": batch,
                                "structures_per_s": r, "wall_s": time.perf_counter() - t0})
                print(f"    {r:.1f} structures/s", flush=True)
    lines = ["| system | model | global batch | 1 process (structures/s) | 2 processes | speed-up | efficiency |",
             "|---|---|---|---|---|---|---|"]
    for system in args.systems.split(","):
        for model in args.models.split(","):
            for batch in (5, 10):
                one, two = (next(r["structures_per_s"] for r in results if r["system"] == system
                                 and r["model"] == model and r["batch"] == batch and r["processes"] == n)
                            for n in (1, 2))
                lines.append(f"| {system} | {model} | {batch} | {one:.1f} | {two:.1f} | {two / one:.2f} | "
                             f"{two / (2 * one):.0%} |")
    plot(results, args.out / "throughput.png")
    text = ("QUICK RUN (not a result)\n\n" if args.quick else "") + "\n".join(lines)
    text += "\n\n![throughput](throughput.png)"
    (args.out / "report.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(text)


def plot(results: list[dict], path: Path) -> None:
    """Bars of structures/s, 1 vs 2 processes, per system, model and global batch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["system"], r["model"], r["batch"]) for r in results})
    fig, ax = plt.subplots(figsize=(10, 4))
    for offset, n in ((-0.2, 1), (0.2, 2)):
        ys = [next(r["structures_per_s"] for r in results if (r["system"], r["model"], r["batch"]) == k
                   and r["processes"] == n) for k in keys]
        ax.bar(np.arange(len(keys)) + offset, ys, width=0.4, label=f"{n} process{'es' if n > 1 else ''}")
    ax.set_xticks(np.arange(len(keys)), [f"{s} {m}\nbatch {b}" for s, m, b in keys], fontsize=8)
    ax.set_ylabel("training structures / s")
    ax.set_title("DDP training throughput, 2-core CPU (gloo, 1 thread per process)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
