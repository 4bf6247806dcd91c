"""``mlff analyze`` and ``mlff report``.

Examples::

    mlff analyze runs/schnet_nve                          # -> runs/schnet_nve/analysis/
    mlff analyze runs/schnet_nve --reference runs/xtb_nve
    mlff analyze seed_000/traj.dump --timestep 0.5        # a dump alone (log.lammps beside it is read)
    mlff analyze md.extxyz --frame-interval 0.005
    mlff report runs/schnet_nve runs/nequip_nve -o report.md
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _fraction_pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two fractions 'A,B', got {text!r}") from None
    if not 0 <= a < b <= 1:
        raise argparse.ArgumentTypeError(f"expected 0 <= A < B <= 1, got {text!r}")
    return a, b


def register(subparsers) -> None:
    """Add ``analyze`` and ``report`` to an argparse subparsers object."""
    p = subparsers.add_parser(
        "analyze", help="analyse an MD run: energy drift, temperature, g(r), MSD, VDOS, stability",
        description="Analyse the trajectory of an `mlff md` run (or a LAMMPS dump + log, an ASE trajectory, an extxyz "
                    "file) and write analysis.json, curves.npz and PNG figures: total/potential/kinetic energy and "
                    "drift (meV/atom/ps), temperature, centre-of-mass momentum and net force, g(r) (molecules: P(r) of "
                    "all intramolecular pairs), MSD and diffusion coefficient, VACF and vibrational density of states "
                    "(cm^-1), bond lengths and the stability verdict of every seed. With --reference, the reference "
                    "run is analysed the same way and overlaid.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="run directory of mlff md, LAMMPS dump, or ASE-readable trajectory")
    p.add_argument("--reference", type=Path, help="reference run of the same system (same forms as RUN)")
    p.add_argument("--out", type=Path, help="output directory (default RUN/analysis, or analysis_STEM beside a file)")
    p.add_argument("--label", help="name of the run in plots (default: the potential)")
    p.add_argument("--reference-label", help="name of the reference in plots")
    p.add_argument("--timestep", type=float, metavar="FS", help="MD time step of a dump without summary.json")
    p.add_argument("--frame-interval", type=float, metavar="PS", help="time between frames of a file without times")
    p.add_argument("--rdf-bins", type=int, default=200, help="bins of g(r)")
    p.add_argument("--rdf-r-max", type=float, metavar="A", help="largest r of g(r) (default 8 Å or half the cell)")
    p.add_argument("--vdos-max-lag", type=float, default=2.0, metavar="PS", help="VACF length for the VDOS")
    p.add_argument("--msd-window", type=_fraction_pair, default=(0.1, 0.5), metavar="A,B",
                   help="lags (fractions of the run) over which MSD = 6Dt is fitted")
    p.add_argument("--bond-tolerance", type=float, default=0.5, metavar="A", help="largest bond deviation")
    p.set_defaults(func=run_analyze)

    r = subparsers.add_parser(
        "report", help="several analysed runs side by side in one Markdown file",
        description="Put several runs (mlff md run directories, analysed or not, or mlff analyze outputs) side by "
                    "side: one table row per run (drift, stability, RDF error, D, VDOS peak) and overlaid figures "
                    "per system.")
    r.add_argument("runs", nargs="+", type=Path, help="run or analysis directories")
    r.add_argument("-o", "--output", type=Path, required=True, help="Markdown file (figures go beside it)")
    r.add_argument("--title", default="MD quality report")
    r.add_argument("--labels", help="comma-separated names of the runs, in order")
    r.set_defaults(func=run_report)


def run_analyze(args: argparse.Namespace) -> int:
    from .analyze import analyze

    result = analyze(args.run, args.reference, args.out, label=args.label, reference_label=args.reference_label,
                     timestep_fs=args.timestep, frame_interval_ps=args.frame_interval, rdf_bins=args.rdf_bins,
                     rdf_r_max=args.rdf_r_max, vdos_max_lag_ps=args.vdos_max_lag, msd_window=args.msd_window,
                     bond_tolerance=args.bond_tolerance)
    a = result["analysis"]
    e, st = a["energy"], a["stability"]
    drift = e.get("drift_meV_per_atom_per_ps")
    print(f"mlff analyze: {a['label']}: {a['formula']}, {a['seeds']} seed(s), {e['duration_ps']:.3g} ps analysed")
    thermostatted = " (thermostatted run: not a conservation test)" if e.get("drift_is_conservation_test") is False else ""
    print(f"  energy drift {'n/a (no energy)' if drift is None else f'{drift:+.4g} meV/atom/ps{thermostatted}'}"
          + (f", RMS fluctuation {e['rms_fluctuation_meV_per_atom']:.3g} meV/atom" if drift is not None else "")
          + f"; T {e['temperature_mean_K']:.1f} ± {e['temperature_std_K']:.1f} K"
          + (f", drift {e['temperature_drift_K_per_ps']:+.3g} K/ps" if "temperature_drift_K_per_ps" in e else ""))
    print(f"  stability: {st['n_stable']}/{st['n_seeds']} stable"
          + "".join(f"; seed {s['seed']} failed at {s['time_to_failure_ps']:.4g} ps ({s['reason']})"
                    for s in st["per_seed"] if not s["stable"]))
    if "error_vs_reference" in a["rdf"]:
        print(f"  {a['rdf']['kind']} error vs reference {a['rdf']['error_vs_reference']:.4g} {a['rdf']['error_unit']}; "
              f"VDOS difference {a['vdos']['difference_vs_reference']:.3g}")
    if a["msd"].get("D_A2_per_ps") is not None:
        print(f"  D = {a['msd']['D_A2_per_ps']:.4g} Å²/ps"
              + (f" (reference {a['msd']['D_reference_A2_per_ps']:.4g})"
                 if a["msd"].get("D_reference_A2_per_ps") is not None else ""))
    print(f"  -> {result['out']}/analysis.json, {', '.join(result['figures'])}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .report import write_report

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    path = write_report(args.runs, args.output, args.title, labels)
    print(f"mlff report: {len(args.runs)} run(s) -> {path}")
    return 0
