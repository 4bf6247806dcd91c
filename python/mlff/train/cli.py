"""``mlff train``: train a model on labelled extxyz files."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from ..data.io import read_dataset
from ..data.packed import PackedDataset, is_packed
from ..errors import ConfigError
from ..models import MODELS
from .config import TrainConfig
from .distributed import DistContext, init_distributed
from .trainer import Trainer


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model on labelled extxyz data",
                              description="Train a model on energies and forces. Options given on the command line "
                                          "override those in --config (YAML with the same names, '-' as '_'); "
                                          "options given nowhere take the model's tuned defaults "
                                          "(mlff/train/defaults.py, docs/models.md). Started by torchrun "
                                          "('torchrun --nproc-per-node N -m mlff train ...') or by srun under "
                                          "Slurm, N processes train one model (docs/training.md).")
    p.add_argument("--model", choices=sorted(MODELS), help="model kind (default schnet)")
    p.add_argument("--train", required=True, type=Path,
                   help="training data: extxyz with energy and forces, or a packed HDF5 file from 'mlff data pack' "
                        "(read lazily: for data sets larger than memory)")
    p.add_argument("--valid", type=Path, help="validation data (of the same kind as --train); if omitted, --n-valid "
                                              "random training frames are held out")
    p.add_argument("--n-valid", type=int, help="frames held out of --train for validation (default 10%%)")
    p.add_argument("--n-train", type=int, help="use only this many (random) training frames")
    p.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, metrics.csv, learning_curve.png)")
    p.add_argument("--config", type=Path, help="YAML file of training options")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.ckpt (model options cannot change; epochs, time "
                        "budgets, device and threads can)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in --out even if it holds checkpoints (they are replaced)")
    p.add_argument("--committee", type=int, metavar="N",
                   help="train N models that differ in seed (and data order) in --out/member_0 ... member_N-1; "
                        "'mlff-deploy OUT -o committee.pt' then writes one file with the mean and per-atom deviations")
    p.add_argument("--committee-resplit", action="store_true",
                   help="committee members also differ in their validation split (default: the same split)")
    p.add_argument("--strict", action="store_true",
                   help="stop if the data check (see 'mlff data check') finds anything, instead of warning")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-minutes", type=float, help="stop after this much wall time (minutes)")
    p.add_argument("--max-cpu-minutes", type=float, help="stop after this much CPU time (minutes, all threads)")
    p.add_argument("--batch-size", type=int,
                   help="structures per optimizer step, all processes together (global: with N processes each "
                        "takes about 1/N of them, and the step equals the one-process step); default: the model's "
                        "(5)")
    p.add_argument("--lr", type=float,
                   help="initial learning rate (Adam); default: the model's (nequip 5e-3, the others 1e-3)")
    p.add_argument("--energy-weight", type=float, help="ρ: weight of the per-atom energy loss relative to forces")
    p.add_argument("--stress-weight", type=float,
                   help="weight of the stress loss (as virial per atom, eV); default 1 if all training "
                        "structures are periodic with stress labels, else 0")
    p.add_argument("--r-max", type=float, help="cutoff radius (Å)")
    p.add_argument("--dtype", choices=["float32", "float64"])
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: cuda when available, else cpu)")
    p.add_argument("--features", type=int, help="SchNet: feature width (n_features)")
    p.add_argument("--interactions", type=int, help="SchNet: interaction blocks (n_interactions)")
    p.add_argument("--no-progress", action="store_true", help="print one line per epoch instead of a progress bar")
    p.add_argument("--cache-mb", type=float, default=16.0,
                   help="packed data: HDF5 chunk cache per open file, MiB (default 16); memory stays bounded by it")
    p.add_argument("--dist-timeout", type=float, default=10.0, metavar="MIN",
                   help="distributed runs: minutes a process waits for the others before giving up (default 10)")
    p.set_defaults(func=run)


def _take(frames, positions):
    """The frames at ``positions``: a list, or a subset of a packed data set."""
    if isinstance(frames, PackedDataset):
        return frames.subset(positions)
    return [frames[k] for k in positions]


def _split(frames, n_train, n_valid, seed):
    order = np.random.default_rng(seed).permutation(len(frames))
    n_valid = max(1, len(frames) // 10) if n_valid is None else n_valid
    if n_valid >= len(frames):
        raise ConfigError(f"--n-valid {n_valid} leaves no training frames out of {len(frames)}")
    valid = _take(frames, order[:n_valid])
    train = _take(frames, order[n_valid:])
    return train, valid


def _read(path: Path, cache_mb: float):
    """Labelled frames of an extxyz file, or a packed data set (read lazily)."""
    return PackedDataset(path, cache_mb=cache_mb) if is_packed(path) else read_dataset(path)


# options that may differ from the checkpoint's when a run is resumed
RESUMABLE = ("epochs", "max_minutes", "max_cpu_minutes", "device", "threads")


def _check_out_dir(out: Path) -> None:
    """``ConfigError`` if ``out`` is a file or cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {out} cannot be written: {exc.strerror or exc}") from None


def _resume(out: Path, args: argparse.Namespace, overrides: dict, member: int = 0) -> Trainer:
    """The trainer of the run in ``--out``; ``ConfigError`` if options given now (flags or
    ``--config``) contradict its configuration, except those in ``RESUMABLE``."""
    for stale in sorted(out.glob("*.ckpt.*.tmp")):  # a kill during a checkpoint write left it
        stale.unlink(missing_ok=True)  # every rank of a distributed run looks
        print(f"mlff train: removed {stale}, left by a checkpoint write that was interrupted")
    trainer = Trainer.resume(out, {k: overrides[k] for k in RESUMABLE})
    asked = TrainConfig.from_sources(args.config, overrides)
    asked.seed += member  # committee member `member` was started with seed + member
    given = {k for k, v in overrides.items() if v is not None} | set(_yaml_keys(args.config))
    conflicts = [f"{name}: checkpoint {getattr(trainer.config, name)!r}, given {getattr(asked, name)!r}"
                 for name in sorted(given - set(RESUMABLE) - {"model_params"})
                 if getattr(asked, name) != getattr(trainer.config, name)]
    stored_params = trainer.model.hparams
    conflicts += [f"{name}: checkpoint {stored_params.get(name)!r}, given {value!r}"
                  for name, value in _model_params(args, asked.model_params).items()
                  if stored_params.get(name) != value]
    if conflicts:
        raise ConfigError(f"--resume continues the run in {out} with its own settings, but these options "
                          f"contradict it: {'; '.join(conflicts)}. Drop them, or start a new run with another "
                          f"--out (or --overwrite)")
    return trainer


def _yaml_keys(path: Path | None) -> list[str]:
    """Top-level option names of a YAML config file (already validated by ``from_sources``)."""
    if path is None:
        return []
    import yaml

    loaded = yaml.safe_load(Path(path).read_text()) or {}
    return list(loaded) if isinstance(loaded, dict) else []


def _model_params(args: argparse.Namespace, params: dict) -> dict:
    params = dict(params)
    if args.features is not None:
        params["n_features"] = args.features
    if args.interactions is not None:
        params["n_interactions"] = args.interactions
    return params


def _finished(out: Path, epochs: int | None) -> bool:
    """Whether the run in ``out`` ended (``summary.json``) and asking for ``epochs`` would
    not continue it: it converged (early stopping, min_lr), or it reached ``epochs``."""
    summary = out / "summary.json"
    if not summary.is_file():
        return False
    done = json.loads(summary.read_text())
    if done["stop_reason"].startswith(("early stopping", "learning rate reached")):
        return True
    return epochs is None or done["epochs"] >= epochs


def _member_dirs(args: argparse.Namespace) -> list[Path]:
    """Run directories: ``--out`` itself, or ``--out/member_K`` for a committee (``--committee
    N``, or on ``--resume`` the ``committee.json`` written when the committee started)."""
    n = args.committee
    manifest = args.out / "committee.json"
    if args.resume and manifest.is_file():
        stored = json.loads(manifest.read_text())["n_members"]
        if n is not None and n != stored:
            raise ConfigError(f"--committee {n} contradicts the run in {args.out}, a committee of {stored}")
        n = stored
    if n is None or n == 1:
        return [args.out]
    if n < 1:
        raise ConfigError(f"--committee must be ≥ 1, got {n}")
    return [args.out / f"member_{k}" for k in range(n)]


def run(args: argparse.Namespace) -> int:
    """``mlff train``: one process, or one rank of a run started by torchrun or srun."""
    dist = init_distributed(args.device or "auto", args.dist_timeout)
    try:
        return _run(args, dist)
    finally:
        dist.close()


def _run(args: argparse.Namespace, dist: DistContext) -> int:
    overrides = {"model": args.model, "epochs": args.epochs, "max_minutes": args.max_minutes,
                 "max_cpu_minutes": args.max_cpu_minutes,
                 "batch_size": args.batch_size, "lr": args.lr, "energy_weight": args.energy_weight,
                 "stress_weight": args.stress_weight,
                 "r_max": args.r_max, "dtype": args.dtype, "seed": args.seed, "threads": args.threads,
                 "device": args.device}
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: choose one")
    with dist.guard():  # an error here on one rank (e.g. rank 0's checks of --out) stops all
        frames, valid_frames, dirs = _setup(args, overrides, dist)
    say = print if dist.is_main else (lambda *_: None)
    for k, out in enumerate(dirs):
        if len(dirs) > 1:
            say(f"mlff train: committee member {k + 1} of {len(dirs)} in {out}")
        if args.resume and _finished(out, args.epochs):
            say(f"mlff train: {out} has finished ({json.loads((out / 'summary.json').read_text())['stop_reason']})")
            continue
        with dist.guard():
            if args.resume and (len(dirs) == 1 or (out / "last.ckpt").is_file()):
                trainer = _resume(out, args, overrides, k)
            else:
                config = TrainConfig.from_sources(args.config, overrides)
                config.model_params = _model_params(args, config.model_params)
                config.seed += k
                trainer = Trainer(config, out)
        _fit(trainer, args, k, frames, valid_frames, dist)
    return 0


def _setup(args: argparse.Namespace, overrides: dict, dist: DistContext):
    """Check --out (rank 0 writes), read the data, and take a packed file's r_max unless one is given."""
    if dist.is_main:
        _check_out_dir(args.out)
    dirs = _member_dirs(args)
    if not args.resume:
        existing = sorted(str(p.relative_to(args.out)) for p in [*args.out.glob("*.ckpt"),
                                                                 *args.out.glob("member_*/*.ckpt")])
        if existing and not args.overwrite:
            raise ConfigError(f"{args.out} already holds a run ({', '.join(existing)}); use --resume to continue "
                              f"it, --overwrite to replace it, or another --out")
        TrainConfig.from_sources(args.config, overrides)  # option errors before the data is read
    frames = _read(args.train, args.cache_mb)
    valid_frames = _read(args.valid, args.cache_mb) if args.valid is not None else None
    if isinstance(frames, PackedDataset) and overrides["r_max"] is None and "r_max" not in _yaml_keys(args.config) \
            and not args.resume:
        overrides["r_max"] = frames.r_max  # the packed neighbour lists' cutoff
    if not args.resume:
        base = TrainConfig.from_sources(args.config, overrides)
        if len(dirs) > 1 and dist.is_main:
            (args.out / "committee.json").write_text(json.dumps(
                {"n_members": len(dirs), "seeds": [base.seed + k for k in range(len(dirs))],
                 "resplit": args.committee_resplit}, indent=2))
    return frames, valid_frames, dirs


def _fit(trainer: Trainer, args: argparse.Namespace, member: int, frames, valid_frames, dist: DistContext) -> None:
    """Split the data (committee members share the validation set unless
    ``--committee-resplit``) and train."""
    seed = trainer.config.seed
    split_seed = seed if args.committee_resplit else seed - member
    if valid_frames is not None:
        train, valid = frames, valid_frames
        sources = (str(args.train), str(args.valid))
    else:
        train, valid = _split(frames, None, args.n_valid, split_seed)
        sources = (f"{args.train} (training part)", f"{args.train} (validation part)")
    if args.n_train is not None:
        if args.n_train > len(train):
            raise ConfigError(f"--n-train {args.n_train} exceeds the {len(train)} available training frames")
        train = _take(train, np.random.default_rng(split_seed + 1).permutation(len(train))[:args.n_train])
    trainer.fit(train, valid, progress=not args.no_progress, sources=sources, strict_data=args.strict, dist=dist)
