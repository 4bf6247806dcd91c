#!/usr/bin/env python
"""Toluene accuracy benchmark of mlff's SchNet against the peers in shared/baselines.md.

Protocol (as in ../shared/baselines.md): GFN2-xTB toluene, 1,000 random training and
100 validation frames from one trajectory (seed 1), scored on 2,000 frames of an
independent trajectory (seed 2). SchNet of the SchNetPack baseline's size: 64 features,
3 interactions, 20 Gaussians, cosine cutoff r_max 5 Å, float32; trained within a
CPU-time budget (default 25 CPU-minutes, the baselines' budget).

    benchmarks/make_toluene_data.sh          # once: writes benchmarks/data/*.extxyz
    python benchmarks/toluene_schnet.py      # trains, deploys, scores; prints a table

Prints a markdown table and writes ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mlff.data.io import read_dataset
from mlff.deploy import export_model
from mlff.evaluate import evaluate_model
from mlff.train.checkpoint import load_checkpoint, model_from_record
from mlff.train.config import TrainConfig
from mlff.train.trainer import Trainer

HERE = Path(__file__).resolve().parent
BASELINES = [  # ../shared/baselines.md, same data protocol, CPU
    ("MACE 0.3.16 (32 ch, L=1, 2 layers), 20 epochs", "≈25 CPU-min", 13.2, 2.2),
    ("nequip 0.19.1 (32 feat, l_max 1, 3 layers), 40 epochs", "19 CPU-min", 26.9, 2.65),
    ("SchNetPack 2.1.1 SchNet (64 feat, 3 int.), 160 epochs", "26 CPU-min", 49.1, 7.48),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=Path, default=HERE / "data/toluene_train.extxyz")
    p.add_argument("--holdout", type=Path, default=HERE / "data/toluene_holdout.extxyz")
    p.add_argument("--out", type=Path, default=HERE / "out/toluene_schnet")
    p.add_argument("--cpu-minutes", type=float, default=25.0, help="training budget in CPU-minutes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--evaluate-only", action="store_true", help="score an existing OUT/best.ckpt")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    if not args.evaluate_only:
        frames = read_dataset(args.train)
        order = np.random.default_rng(0).permutation(len(frames))
        valid = [frames[k] for k in order[:100]]
        train = [frames[k] for k in order[100:1100]]
        cfg = TrainConfig(model="schnet", model_params=dict(n_features=64, n_interactions=3, n_rbf=20), r_max=5.0,
                          dtype="float32", epochs=100000, max_cpu_minutes=args.cpu_minutes, batch_size=args.batch_size,
                          lr=args.lr, lr_patience=15, early_stopping_patience=60, threads=args.threads)
        if args.out.exists() and (args.out / "last.ckpt").exists():
            raise SystemExit(f"{args.out} holds a previous run; remove it or use --evaluate-only")
        Trainer(cfg, args.out).fit(train, valid, progress=False)

    record = load_checkpoint(args.out / "best.ckpt")
    history = load_checkpoint(args.out / "last.ckpt")["history"]
    model = model_from_record(record)
    export_model(model, args.out / "model.pt", dtype=torch.float64)
    t0 = time.perf_counter()
    metrics = evaluate_model(args.out / "model.pt", args.holdout)
    eval_s = time.perf_counter() - t0
    last = history[-1]
    result = {**metrics, "epochs": last["epoch"], "best_epoch": record["epoch"], "train_cpu_min": last["cpu_s"] / 60,
              "train_wall_min": last["wall_s"] / 60, "threads": args.threads,
              "n_parameters": sum(p.numel() for p in model.parameters()),
              "ms_per_structure_eval": 1e3 * eval_s / metrics["n_structures"]}
    (args.out / "results.json").write_text(json.dumps(result, indent=2))

    print(f"\nToluene (GFN2-xTB), 1,000 training frames, hold-out: {metrics['n_structures']} frames of an independent trajectory\n")
    print("| model | training | hold-out force MAE (meV/Å) | hold-out energy MAE (meV/atom) |")
    print("|---|---|---|---|")
    print(f"| **mlff SchNet** (64 feat, 3 int., {result['n_parameters']:,} params), {result['epochs']} epochs "
          f"(best {result['best_epoch']}) | {result['train_cpu_min']:.1f} CPU-min ({result['train_wall_min']:.1f} min wall, "
          f"{args.threads} thread) | **{metrics['force_mae_meV_per_A']:.1f}** | **{metrics['energy_mae_meV_per_atom']:.2f}** |")
    for name, budget, f, e in BASELINES:
        print(f"| {name} | {budget} | {f} | {e} |")
    schnetpack = BASELINES[2][2]
    print(f"\nforce MAE ratio mlff SchNet / SchNetPack SchNet: {metrics['force_mae_meV_per_A'] / schnetpack:.2f} "
          f"(≤ 1 meets the target)")
    print(f"force RMSE {metrics['force_rmse_meV_per_A']:.1f} meV/Å, energy RMSE {metrics['energy_rmse_meV_per_atom']:.2f} meV/atom; "
          f"results in {args.out / 'results.json'}")


if __name__ == "__main__":
    main()
