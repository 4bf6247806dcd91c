#!/usr/bin/env python
"""The seed papers' experiments, reproduced with mlff: one command each, the paper's
numbers beside ours.

    python benchmarks/seeds/run.py --list                  # the experiments, their cost
    python benchmarks/seeds/run.py 003_au6                 # the real experiment (<= ~60 CPU-min)
    python benchmarks/seeds/run.py 003_au6 --quick         # a few minutes or less: tests the pipeline
    python benchmarks/seeds/run.py all --quick             # every experiment
    python benchmarks/seeds/run.py --collect               # docs/seeds.md from the finished full runs

Each run generates its data (cached under ``OUT/data``), trains, runs its MD and writes
``OUT/EXPERIMENT/report.md`` (what the paper did, what we did and every difference, the
paper-vs-mlff table, a verdict line), its plots and ``results.json``. ``OUT`` is
``benchmarks/out/seeds`` (``benchmarks/out/seeds-quick`` with ``--quick``, so a quick run
never overwrites a real one). Everything runs on one thread (``OMP_NUM_THREADS=1``,
``torch.set_num_threads(1)``), so two experiments can run side by side on two cores.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from common import DEFAULT_OUT, DEFAULT_QUICK_OUT, REPO, Context, cpu_seconds  # noqa: E402
from experiments import EXPERIMENTS, load  # noqa: E402

DOCS = REPO / "docs"


def command_for(exp: str, quick: bool, out: Path | None) -> str:
    cmd = f"python benchmarks/seeds/run.py {exp}" + (" --quick" if quick else "")
    if out is not None:
        cmd += f" --out {out}"
    return cmd


def run_one(exp: str, quick: bool, out_root: Path, progress: bool, explicit_out: Path | None) -> Path:
    module = load(exp)
    out = out_root / exp
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(experiment=exp, out=out, data=out_root / "data", quick=quick, progress=progress,
                  log_file=out / "run.log")
    (out / "run.log").write_text("")
    ctx.log(f"{module.TITLE} ({'quick' if quick else 'full'} run) -> {out}")
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    report = module.run(ctx)
    path = report.write(ctx, cpu_seconds() - cpu0, time.perf_counter() - wall0,
                        command_for(exp, quick, explicit_out))
    ctx.log(f"report: {path}")
    ctx.log(report.verdict_line())
    return path


def list_experiments() -> None:
    print(f"{'experiment':22s} {'full run (CPU-min)':>18s}  title")
    for exp in EXPERIMENTS:
        m = load(exp)
        print(f"{exp:22s} {m.COST_MINUTES:>18}  {m.TITLE}")
        if getattr(m, "REQUIRES", ""):
            print(f"{'':22s} {'':>18s}  needs: {m.REQUIRES}")


def _copy_run(run: Path, target: Path, res: dict) -> None:
    """``report.md``, ``results.json`` and the plots of ``run`` into ``target`` (replaced)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ["report.md", "results.json", *res.get("plots", [])]:
        if (run / name).is_file():
            shutil.copy(run / name, target / name)


def collect(out_root: Path, docs: Path = DOCS) -> Path:
    """Write ``docs/seeds.md`` from the full runs' ``results.json`` under ``out_root`` and copy
    each report with its plots and ``results.json`` to ``docs/seeds/EXPERIMENT/`` (the run
    outputs themselves are git-ignored). An experiment without a run under ``out_root`` keeps
    the copy an earlier collect left in ``docs/seeds/`` (runs are spread over machines whose
    outputs are gone); one with neither is listed as not run yet."""
    rows = []
    target_root = docs / "seeds"
    for exp in EXPERIMENTS:
        m = load(exp)
        command = f"`python benchmarks/seeds/run.py {exp}`"
        res_path, target = out_root / exp / "results.json", target_root / exp
        if res_path.is_file():
            res = json.loads(res_path.read_text())
            _copy_run(out_root / exp, target, res)
        elif (target / "results.json").is_file():
            res = json.loads((target / "results.json").read_text())
        else:
            rows.append((exp, m.TITLE, m.FINDING, "not run yet", "", f"{command} (≈ {m.COST_MINUTES} CPU-min)", "—"))
            continue
        verdict = f"**{res['verdict']}**" + (" (quick run: not a result)" if res.get("quick") else "")
        rows.append((exp, m.TITLE, res.get("finding") or m.FINDING, verdict, res.get("reason", ""),
                     f"`{res['command']}` ({res['cpu_minutes']:.0f} CPU-min, {res['date']})",
                     f"[report](seeds/{exp}/report.md)"))
    lines = ["# The seed papers' experiments, reproduced", "",
             "Every experiment of the five seed documents that issue 19 lists, run with mlff by one command,",
             "`python benchmarks/seeds/run.py EXPERIMENT` (code: `benchmarks/seeds/`; `--list` prints them",
             "with their cost). Each run generates its data, trains, runs its MD and writes",
             "`benchmarks/out/seeds/EXPERIMENT/report.md`: what the paper did (section, table, figure), what we",
             "did and every difference (reference method, sizes, budget), the paper's numbers beside ours, and a",
             "verdict on the paper's qualitative finding. Where the paper's reference method (DFT) is not",
             "available offline, GFN2-xTB stands in for it: trends can be compared, absolute numbers cannot.",
             "Each full run takes at most about an hour on one core of the 2-core machine; `--quick` runs the",
             "same pipeline on tiny data in under a minute (the test suite does, `tests/test_seeds.py`).", "",
             "This page is written by `python benchmarks/seeds/run.py --collect` from the full runs'",
             "`results.json`; it copies each report with its plots to `docs/seeds/EXPERIMENT/`.", "",
             "| experiment | what | the paper's finding | verdict | why (if not reproduced) | command | report |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    lines += ["", "Papers: 000 S. Batzner, MSc MIT (2019); 001 K. T. Schütt, PhD TU Berlin (2018); 002 B. E. Hedelius, "
              "BSc BYU (2021); 003 X. Zhang, report (2019); 004 A. G. Lefdalsnes, MSc Oslo (2019). Their experiments, "
              "numbers and protocols are listed in `shared/seeds/experiments.md`.", ""]
    path = docs / "seeds.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", help=f"one of {', '.join(EXPERIMENTS)}, or 'all'")
    parser.add_argument("--quick", action="store_true", help="tiny data and budgets: tests the pipeline in minutes")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output root (default {DEFAULT_OUT.relative_to(REPO)}, "
                             f"{DEFAULT_QUICK_OUT.relative_to(REPO)} with --quick)")
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    parser.add_argument("--collect", action="store_true",
                        help="write docs/seeds.md (and docs/seeds/EXPERIMENT/) from the runs under --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one log line per stage)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.list:
        list_experiments()
        return 0
    out_root = args.out if args.out is not None else (DEFAULT_QUICK_OUT if args.quick else DEFAULT_OUT)
    if args.collect:
        print(f"wrote {collect(out_root)}")
        return 0
    if not args.experiment:
        parser.error("name an experiment (see --list), 'all', or use --list / --collect")
    todo = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    unknown = [e for e in todo if e not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment {unknown[0]!r}; choose from {', '.join(EXPERIMENTS)} or 'all'")
    failed = []
    for exp in todo:
        try:
            run_one(exp, args.quick, out_root, not args.no_progress, args.out)
        except Exception:  # one failing experiment does not stop 'all'
            traceback.print_exc()
            failed.append(exp)
            if len(todo) == 1:
                return 1
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
