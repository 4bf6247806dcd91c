"""``mlff data``: generate a labelled MD dataset from a preset.

Examples::

    mlff data --list
    mlff data toluene -o toluene.extxyz --frames 1100 --seed 1
    mlff data cu-emt -o cu.extxyz --frames 200 --temperature 800
"""

from __future__ import annotations

import argparse
import sys

from ..errors import DataError
from .calculators import calculator_names


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "data",
        help="generate a labelled MD dataset (extxyz) from a preset",
        description=(
            "Run Langevin MD with a reference calculator and write frames with "
            "energies (eV) and forces (eV/A) as extended XYZ. Options override "
            "the preset's values (see --list)."
        ),
    )
    p.add_argument("preset", nargs="?", help="preset name (see --list)")
    p.add_argument("-o", "--output", metavar="OUT.extxyz", help="output file (extxyz, written atomically)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument("--frames", type=int, metavar="N", help="number of frames to record")
    p.add_argument("--temperature", type=float, metavar="K", help="temperature, K")
    p.add_argument("--timestep", type=float, metavar="FS", help="time step, fs")
    p.add_argument("--interval", type=int, metavar="N", help="MD steps between recorded frames")
    p.add_argument("--equilibration", type=float, metavar="FS", help="unrecorded equilibration, fs")
    p.add_argument("--friction", type=float, metavar="PER_FS", help="Langevin friction, 1/fs (default 0.01)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--calculator",
        metavar="NAME",
        help=f"override the preset's reference calculator ({', '.join(calculator_names())})",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=func)
    return p


def list_presets(file=None) -> None:
    """Print one line per preset: name, calculator and MD settings."""
    from .generate import PRESETS

    file = file or sys.stdout
    for name, pr in PRESETS.items():
        print(
            f"{name:16s} {pr.calculator:5s} {pr.temperature_K:g} K, dt {pr.timestep_fs:g} fs, "
            f"every {pr.interval} steps, {pr.equilibration_fs:g} fs equil., "
            f"{pr.n_frames} frames -- {pr.description}",
            file=file,
        )


def func(args: argparse.Namespace) -> int:
    """Run ``mlff data`` with parsed arguments; returns the exit status (0)."""
    from .generate import generate_preset
    from .io import write_dataset

    if args.list:
        list_presets()
        return 0
    if not args.preset:
        raise DataError("a preset is required (see mlff data --list)")
    if not args.output:
        raise DataError("an output file is required (-o OUT.extxyz)")
    frames, s = generate_preset(
        args.preset,
        n_frames=args.frames,
        temperature_K=args.temperature,
        timestep_fs=args.timestep,
        interval=args.interval,
        equilibration_fs=args.equilibration,
        seed=args.seed,
        calculator=args.calculator,
        friction=args.friction,
        progress=not args.no_progress,
    )
    path = write_dataset(args.output, frames)
    print(
        f"mlff data: {len(frames)} frames x {s.n_atoms} atoms, preset {s.preset}, "
        f"calculator {s.calculator}, {s.temperature_K:g} K, dt {s.timestep_fs:g} fs, "
        f"every {s.interval} steps, seed {s.seed}, {s.wall_s:.1f} s -> {path}"
    )
    return 0
