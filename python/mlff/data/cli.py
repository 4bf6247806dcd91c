"""``mlff data``: generate a labelled MD dataset from a preset.

Examples::

    mlff data --list
    mlff data toluene -o toluene.extxyz --frames 1100 --seed 1
    mlff data cu-emt -o cu.extxyz --frames 200 --temperature 800
    mlff data cu-eam-melt -o cu_melt.extxyz --temperatures 300,900,1500 --frames 300 --supercell 2
    mlff data au6-emt -o au6.extxyz --frames 1000 --seed 1
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
            "Run Langevin (or NVE) MD with a reference calculator and write frames with "
            "energies (eV), forces (eV/A) and, for periodic systems, stress (eV/A^3, "
            "Voigt, ASE sign) as extended XYZ. Options override the preset's values "
            "(see --list)."
        ),
    )
    p.add_argument("preset", nargs="?", help="preset name (see --list)")
    p.add_argument("-o", "--output", metavar="OUT.extxyz", help="output file (extxyz, written atomically)")
    p.add_argument("--list", action="store_true", help="list the presets and exit")
    p.add_argument("--frames", type=int, metavar="N", help="number of frames to record")
    p.add_argument("--temperature", type=float, metavar="K", help="temperature, K")
    p.add_argument(
        "--temperatures",
        type=_temperatures,
        metavar="K1,K2,...",
        help="temperature sweep (Langevin): --frames split equally over the temperatures, "
        "each segment equilibrated for --equilibration first",
    )
    p.add_argument(
        "--ensemble",
        choices=("langevin", "nve", "npt"),
        help="langevin (NVT), nve (velocity Verlet) or npt (Langevin + zero-pressure barostat, periodic only)",
    )
    p.add_argument(
        "--supercell",
        type=int,
        metavar="N",
        help="N x N x N conventional cubic cells (bulk presets: cu-emt, cu-eam, cu-eam-melt, si-sw)",
    )
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


def _temperatures(text: str) -> list[float]:
    """``"300,600,900"`` -> ``[300.0, 600.0, 900.0]`` (argparse type)."""
    try:
        values = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated temperatures in K, got {text!r}") from None
    if not values or any(not (v >= 0) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated temperatures >= 0 K, got {text!r}")
    return values


def list_presets(file=None) -> None:
    """Print each preset: name, calculator, MD settings, then its description and source."""
    from .generate import PRESETS

    file = file or sys.stdout
    for name, pr in PRESETS.items():
        size = f", supercell {pr.supercell}" if pr.supercell is not None else ""
        equil = f"{pr.equilibration_fs:g} fs equil.{' per T' if pr.temperatures_K else ''}"
        print(
            f"{name:16s} {pr.calculator:7s} {pr.ensemble} {pr.temperature_text()}, dt {pr.timestep_fs:g} fs, "
            f"every {pr.interval} steps, {equil}, {pr.n_frames} frames{size}\n"
            f"{'':16s}   {pr.description}\n{'':16s}   source: {pr.source}",
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
        temperatures_K=args.temperatures,
        ensemble=args.ensemble,
        supercell=args.supercell,
    )
    path = write_dataset(args.output, frames)
    temps = ",".join(f"{t:g}" for t in s.temperatures_K) or f"{s.temperature_K:g}"
    print(
        f"mlff data: {len(frames)} frames x {s.n_atoms} atoms, preset {s.preset}, "
        f"calculator {s.calculator}, {s.ensemble} {temps} K, dt {s.timestep_fs:g} fs, "
        f"every {s.interval} steps, seed {s.seed}, {s.wall_s:.1f} s -> {path}"
    )
    return 0
