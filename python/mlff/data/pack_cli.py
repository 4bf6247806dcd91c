"""``mlff data pack IN.extxyz [IN2 ...] -o OUT.h5 --r-max R``: a packed data set for training."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data-pack", prog="mlff data pack",
        help="pack labelled extxyz into one HDF5 file with neighbour lists, read lazily by 'mlff train' "
             "('mlff data pack')",
        description="Read labelled frames (extxyz, one frame at a time, so the input may be larger than memory), "
                    "compute their neighbour lists within --r-max in --workers processes, and write structures, "
                    "energies, forces, stress, cells and neighbour lists to one chunked HDF5 file "
                    "(mlff/data/packed.py describes the layout). 'mlff train --train OUT.h5' reads it batch by "
                    "batch with bounded memory; its --r-max must equal the pack's (it is taken from the file "
                    "when not given).")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN.extxyz", help="labelled extxyz files (energy and forces)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.h5", help="packed file (written atomically)")
    p.add_argument("--r-max", type=float, default=5.0, help="neighbour-list cutoff, Å (default 5, mlff train's default)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="processes computing neighbour lists (default: min(4, CPU count))")
    p.add_argument("--chunk", type=int, default=256, metavar="FRAMES",
                   help="frames per task handed to a worker (default 256)")
    p.add_argument("--compression", choices=["lzf", "gzip", "none"], default="lzf",
                   help="HDF5 compression of the arrays (default lzf: fast; gzip: smaller, slower to read)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .packed import pack

    s = pack(args.inputs, args.output, args.r_max, workers=args.workers, chunk_frames=args.chunk,
             compression=None if args.compression == "none" else args.compression, progress=not args.no_progress)
    print(f"mlff data pack: {s['n_structures']:,} structures, {s['n_atoms']:,} atoms, {s['n_edges']:,} edges "
          f"(r_max {s['r_max']:g} Å), species {', '.join(s['species'])}, {s['bytes'] / 2**20:.1f} MiB, "
          f"{s['wall_s']:.1f} s -> {s['path']}")
    return 0
