"""``mlff data check FILE``: look for mistakes in a labelled dataset before training."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DataError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data-check", prog="mlff data check",
        help="check a labelled dataset for outliers, unit mix-ups, duplicates, overlaps, missing pbc ('mlff data check')",
        description="Check labelled frames (extxyz) for mistakes that train without an error: energy or force "
                    "outliers per composition, subsets in other units (kcal/mol, Hartree, meV, kJ/mol), duplicated "
                    "frames, overlapping atoms, periodic-looking frames without pbc, isolated atoms. Writes a "
                    "Markdown and a JSON report; exits 1 if anything was found with --strict. 'mlff train' runs "
                    "the same checks on its training data.")
    p.add_argument("data", type=Path, help="labelled extxyz (energy and forces)")
    p.add_argument("--r-max", type=float, default=5.0, help="cutoff for the isolated-atom check, Å (default 5)")
    p.add_argument("--min-distance-factor", type=float, default=0.5,
                   help="close contact: closer than this × the sum of covalent radii (default 0.5)")
    p.add_argument("--z-max", type=float, default=8.0,
                   help="outlier threshold in robust standard deviations (default 8)")
    p.add_argument("--report", type=Path, help="report file (default: DATA_check.md next to the data)")
    p.add_argument("--strict", action="store_true", help="exit with an error if anything is found")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .check import CheckSettings, check_frames, summary_line, write_report
    from .io import read_dataset

    for name in ("r_max", "min_distance_factor", "z_max"):
        value = getattr(args, name)
        if not value > 0 or value == float("inf"):
            raise DataError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    frames = read_dataset(args.data)
    settings = CheckSettings(r_max=args.r_max, min_distance_factor=args.min_distance_factor, z_max=args.z_max)
    findings = check_frames(frames, settings)
    report = args.report or args.data.with_name(args.data.stem + "_check.md")
    md, js = write_report(findings, report, str(args.data), len(frames), settings)
    print(f"mlff data check: {args.data}: {len(frames)} frames, {summary_line(findings)}")
    for f in findings:
        print(f"  {f.kind}: {f.message}")
    print(f"report: {md} (and {js.name})")
    if findings and args.strict:
        raise DataError(f"{args.data}: {summary_line(findings)} (--strict)")
    return 0
