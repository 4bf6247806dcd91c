"""What the kernel benchmarks share: their command line, the test structures and the timer."""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from ase import Atoms
from ase.build import bulk

from mlff import ops
from mlff.data.molecules import molecule


def parse_args(description: str) -> tuple[argparse.Namespace, torch.dtype]:
    """``--threads``, ``--repeat``, ``--dtype``, ``--json``; sets torch's thread count and
    stops with a message when the C++ operators are not built. Returns (args, dtype)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if not ops.NATIVE:
        raise SystemExit(f"the C++ operators are not built: {ops.WHERE}")
    torch.set_num_threads(args.threads)
    return args, getattr(torch, args.dtype)


def structure(name: str, cells: int = 10) -> Atoms:
    """``"toluene"`` or fcc Cu (a = 3.615 Å) in ``cells``³ cubic cells, rattled by 0.05 Å (seed 1)."""
    atoms = molecule("toluene") if name == "toluene" else bulk("Cu", "fcc", a=3.615, cubic=True).repeat(cells)
    atoms.rattle(0.05, seed=1)
    return atoms


def cpu_ms(fn, repeat: int, inner: int) -> float:
    """Median over ``repeat`` runs of the CPU time (ms) per call of ``fn``, ``inner`` calls per
    run, after one warm-up call (process time, so other load on the machine matters less)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.process_time()
        for _ in range(inner):
            fn()
        times.append((time.process_time() - t) / inner * 1e3)
    return statistics.median(times)
