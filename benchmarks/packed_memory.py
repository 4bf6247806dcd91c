#!/usr/bin/env python
"""Peak memory of training on a packed data set against reading the same data as extxyz
(issue 22).

1. ``--structures`` small labelled structures (default 1,000,000), made cheaply: 4-atom fcc
   Cu cells, randomly strained and rattled, labelled by ASE's EMT, in ``--workers``
   processes, written as one extxyz file frame by frame;
2. ``mlff data pack`` of that file (neighbour lists in ``--workers`` processes);
3. ``mlff train --model schnet`` for ``--train-minutes`` of wall time on (a) the packed file
   and (b) extxyz files of the first ``--extxyz-sizes`` structures (the extxyz path reads
   every frame and builds every graph in memory, so its memory grows with the data set;
   ``--extxyz-sizes`` can include the full size when the machine has room), each in a
   child process whose peak resident memory (``ru_maxrss``) is recorded.

Reports ``OUT/report.md``, ``OUT/results.json`` and ``OUT/peak_memory.png``: peak RSS of each
run, the extxyz path's growth per structure (a straight-line fit) and its extrapolation to the
full set (``--report-only`` redoes them from ``results.json``).

    python benchmarks/packed_memory.py                      # 1,000,000 structures (about 2 h on 2 cores: EMT labels ~80 min, pack ~20 min, trainings ~15 min)
    python benchmarks/packed_memory.py --quick              # 5,000 structures (about 2 min)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _label(args):
    """Worker: ``n`` strained, rattled 4-atom Cu cells with EMT labels, as extxyz text."""
    import io

    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    seed, n = args
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.615, cubic=True)
    calc = EMT()
    frames = []
    for _ in range(n):
        atoms = base.copy()
        atoms.set_cell(base.cell.array @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.positions += 0.1 * rng.standard_normal(atoms.positions.shape)
        atoms.calc = calc
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        frames.append(atoms)
    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    return buf.getvalue()


def generate(path: Path, n: int, workers: int, chunk: int = 2000) -> None:
    from tqdm import tqdm

    if path.is_file():
        return
    tmp = path.with_suffix(".tmp")
    tasks = [(seed, min(chunk, n - start)) for seed, start in enumerate(range(0, n, chunk))]
    with open(tmp, "w") as fh, multiprocessing.get_context("fork").Pool(workers) as pool, \
            tqdm(total=n, desc="EMT labels", unit=" structures") as bar:
        for (seed, m), text in zip(tasks, pool.imap(_label, tasks)):
            fh.write(text)
            bar.update(m)
    tmp.replace(path)


def head(src: Path, dst: Path, n: int) -> Path:
    """The first ``n`` frames of an extxyz file (4-atom frames: 6 lines each)."""
    if not dst.is_file():
        with open(src) as fin, open(dst, "w") as fout:
            for k, line in enumerate(fin):
                if k >= 6 * n:
                    break
                fout.write(line)
    return dst


def peak_rss_mb(cmd: list[str], log: Path) -> tuple[float, int, float]:
    """Run ``cmd``; its peak resident memory (MiB), exit status and wall time (s)."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--structures", type=int, default=1_000_000)
    p.add_argument("--extxyz-sizes", default="10000,30000,100000",
                   help="extxyz training runs on the first N structures (comma-separated)")
    p.add_argument("--train-minutes", type=float, default=2.0, help="wall minutes of each training run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "out" / "packed_memory")
    p.add_argument("--report-only", action="store_true", help="redo report.md and the plot from OUT/results.json")
    args = p.parse_args()
    if args.quick:
        args.structures, args.extxyz_sizes, args.train_minutes = 5000, "1000,5000", 0.1
        args.out = args.out.with_name(args.out.name + "_quick")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        report(json.loads((args.out / "results.json").read_text()), args.out, args.quick)
        return
    n = args.structures
    xyz = args.out / f"cu4_{n}.extxyz"
    h5 = args.out / f"cu4_{n}.h5"
    t0 = time.perf_counter()
    generate(xyz, n, args.workers)
    t_gen = time.perf_counter() - t0
    if not h5.is_file():
        subprocess.run([sys.executable, "-m", "mlff", "data", "pack", str(xyz), "-o", str(h5), "--r-max", "5.0",
                        "--workers", str(args.workers)], check=True)
    t_pack = time.perf_counter() - t0 - t_gen
    train = ["train", "--model", "schnet", "--n-valid", "100", "--max-minutes", str(args.train_minutes),
             "--threads", "1", "--no-progress", "--overwrite"]
    results = {"structures": n, "generate_s": t_gen, "pack_s": t_pack, "xyz_bytes": xyz.stat().st_size,
               "h5_bytes": h5.stat().st_size, "runs": []}
    runs = [("packed", n, h5)] + [("extxyz", m, head(xyz, args.out / f"cu4_first_{m}.extxyz", m))
                                  for m in sorted(int(s) for s in args.extxyz_sizes.split(",") if s)]
    for kind, m, path in runs:
        out = args.out / f"train_{kind}_{m}"
        print(f"[{kind} {m:,} structures] mlff train --train {path}", flush=True)
        rss, rc, wall = peak_rss_mb([sys.executable, "-m", "mlff", *train, "--train", str(path), "--out", str(out)],
                                    args.out / f"train_{kind}_{m}.log")
        if rc != 0:
            raise SystemExit(f"training failed; see {args.out / f'train_{kind}_{m}.log'}")
        results["runs"].append({"kind": kind, "structures": m, "peak_rss_mb": rss, "wall_s": wall})
        print(f"    peak RSS {rss:,.0f} MiB, {wall:.0f} s", flush=True)
    report(results, args.out, args.quick)


def report(results: dict, out: Path, quick: bool) -> None:
    """``OUT/report.md``, ``OUT/results.json`` (with the extxyz fit) and ``OUT/peak_memory.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = results["structures"]
    xyz_runs = [r for r in results["runs"] if r["kind"] == "extxyz"]
    lines = [f"{'QUICK RUN (not a result). ' if quick else ''}{n:,} 4-atom Cu structures: extxyz "
             f"{results['xyz_bytes'] / 2**30:.2f} GiB, packed {results['h5_bytes'] / 2**30:.2f} GiB; "
             f"labels {results['generate_s'] / 60:.1f} min, pack {results['pack_s'] / 60:.1f} min (wall)", "",
             "| data | structures | peak RSS (MiB) |", "|---|---|---|"]
    lines += [f"| {r['kind']} | {r['structures']:,} | {r['peak_rss_mb']:,.0f} |" for r in results["runs"]]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot([r["structures"] for r in xyz_runs], [r["peak_rss_mb"] for r in xyz_runs], "o", label="extxyz (measured)")
    if len(xyz_runs) >= 2:
        slope, icpt = np.polyfit([r["structures"] for r in xyz_runs], [r["peak_rss_mb"] for r in xyz_runs], 1)
        results["extxyz_mb_per_structure"] = slope
        results["extxyz_extrapolated_mb"] = icpt + slope * n
        lines.append(f"| extxyz (straight line through the runs above) | {n:,} | {icpt + slope * n:,.0f} |")
        x = np.geomspace(min(r["structures"] for r in xyz_runs), n, 60)
        ax.plot(x, icpt + slope * x, "--", color="C0", label=f"extxyz, straight line ({slope * 1024:.1f} KiB/structure)")
    for r in results["runs"]:
        if r["kind"] == "packed":
            ax.plot([r["structures"]], [r["peak_rss_mb"]], "s", color="C1", ms=9, label="packed HDF5 (measured)")
    ax.set(xscale="log", yscale="log", xlabel="structures in the training set", ylabel="peak RSS of mlff train (MiB)",
           title="Training memory: packed HDF5 vs extxyz (4-atom Cu, SchNet)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "peak_memory.png", dpi=110)
    plt.close(fig)
    lines += ["", "![peak memory](peak_memory.png)"]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
