"""``mlff learn``: the active-learning loop from a YAML configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "learn", help="active learning: committee MD in LAMMPS, label where the committee disagrees, retrain",
        description="Grow a training set where the model is unsure: each iteration trains a committee "
                    "(warm-started), explores with LAMMPS MD at the configured temperatures and pressures, selects "
                    "frames whose largest force deviation lies between trust_lo and trust_hi (farthest-point "
                    "sampling), labels them with the reference calculator in parallel, and repeats until few "
                    "frames are uncertain or a budget ends. The run directory can be resumed after any "
                    "interruption. See docs/active_learning.md for the configuration keys.")
    p.add_argument("config", nargs="?", type=Path, help="YAML configuration (not needed with --resume)")
    p.add_argument("--out", required=True, type=Path, help="run directory (state, iterations, report.md)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out with its stored configuration")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .config import LearnConfig
    from .loop import ActiveLearner

    state = args.out / "state.json"
    if args.resume:
        if not state.is_file():
            raise ConfigError(f"--resume: {args.out} holds no mlff learn run (no state.json)")
        if args.config is not None:
            raise ConfigError("--resume continues with the configuration stored in the run; give no config file")
        stored = args.out / "config.yaml"
        import yaml

        base = Path(yaml.safe_load((args.out / "base.txt").read_text())) if (args.out / "base.txt").is_file() else args.out
        config = LearnConfig.from_dict(yaml.safe_load(stored.read_text())).validate(base)
    else:
        if args.config is None:
            raise ConfigError("give the YAML configuration (or --resume)")
        if state.is_file():
            raise ConfigError(f"{args.out} already holds an mlff learn run; use --resume, or another --out")
        config = LearnConfig.from_yaml(args.config)
        base = args.config.resolve().parent
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "base.txt").write_text(str(base))
    final = ActiveLearner(config, args.out, base).run()
    print(f"mlff learn: {final['stop_reason']}; report: {args.out / 'report.md'}")
    return 0
