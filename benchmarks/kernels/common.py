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
    """``--threads``, ``--repeat``, ``--dtype``, ``--device``, ``--json``; sets torch's thread
    count and stops with a message when the C++ operators are not built, or when
    ``--device cuda`` has no GPU or no CUDA kernels in the library. Returns (args, dtype)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: GPU wall time per call (the library must be built with the CUDA kernels)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if not ops.NATIVE:
        raise SystemExit(f"the C++ operators are not built: {ops.WHERE}")
    if args.device == "cuda" and not (torch.cuda.is_available() and ops.cuda_built()):
        raise SystemExit("--device cuda needs a GPU and libmlff_ops.so built with the CUDA kernels "
                         "(scripts/build_plugin.sh on a machine where torch has CUDA)")
    torch.set_num_threads(args.threads)
    return args, getattr(torch, args.dtype)


def unit(device: str) -> str:
    """How times are measured on ``device``, for the table headers."""
    return "GPU wall ms" if device == "cuda" else "CPU ms"


def structure(name: str, cells: int = 10) -> Atoms:
    """``"toluene"`` or fcc Cu (a = 3.615 Å) in ``cells``³ cubic cells, rattled by 0.05 Å (seed 1)."""
    atoms = molecule("toluene") if name == "toluene" else bulk("Cu", "fcc", a=3.615, cubic=True).repeat(cells)
    atoms.rattle(0.05, seed=1)
    return atoms


def time_ms(fn, repeat: int, inner: int, device: str = "cpu") -> float:
    """Milliseconds per call of ``fn`` on ``device``: :func:`cpu_ms` on the CPU; on a GPU the
    median over ``repeat`` runs of wall time for ``inner`` calls, synchronised before and
    after (kernels run asynchronously), after one warm-up call."""
    if device != "cuda":
        return cpu_ms(fn, repeat, inner)
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / inner * 1e3)
    return statistics.median(times)


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
