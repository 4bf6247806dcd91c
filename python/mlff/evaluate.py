"""``mlff eval``: energy and force errors of a deployed model on labelled data."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from .calculator import predict
from .data.io import read_dataset
from .deploy import load_deployed
from .errors import DataWarning, MLFFError
from .extrapolation import periodicity_mismatch


def evaluate_model(model_path: str | Path, data_path: str | Path) -> dict[str, float | int | None]:
    """Errors of the deployed model at ``model_path`` on the frames of ``data_path``.

    Returns ``energy_mae_meV_per_atom``, ``energy_rmse_meV_per_atom`` (per-atom energy
    errors), ``force_mae_meV_per_A``, ``force_rmse_meV_per_A`` (over force components)
    and ``n_structures``. A direct-force model has no energy: its energy metrics are
    ``None`` (``null`` in JSON). Raises ``ModelFileError``/``DataError`` naming the bad file.
    Periodic data given to a model trained on molecules, or the reverse, give a
    ``DataWarning`` (``mlff eval`` prints it).
    """
    module, meta = load_deployed(model_path)
    frames = read_dataset(data_path)
    mismatch = periodicity_mismatch(meta, frames)
    if mismatch:
        warnings.warn(f"{data_path}: {mismatch} ({model_path})", DataWarning, stacklevel=2)
    has_energy = not meta.get("direct_forces", False)
    de, df = [], []
    for k, atoms in enumerate(frames):
        try:
            res = predict(module, meta, atoms)
        except MLFFError as exc:
            raise type(exc)(f"{data_path}: frame {k}: {exc}") from None
        if has_energy:
            de.append((res["energy"] - atoms.info["energy"]) / len(atoms))
        df.append((res["forces"] - atoms.arrays["forces"]).ravel())
    de, df = 1e3 * np.asarray(de), 1e3 * np.concatenate(df)
    e_mae = float(np.abs(de).mean()) if has_energy else None
    e_rmse = float(math.sqrt((de**2).mean())) if has_energy else None
    return {"energy_mae_meV_per_atom": e_mae, "energy_rmse_meV_per_atom": e_rmse,
            "force_mae_meV_per_A": float(np.abs(df).mean()), "force_rmse_meV_per_A": float(math.sqrt((df**2).mean())),
            "n_structures": len(frames)}


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a deployed model on labelled extxyz data")
    p.add_argument("model", type=Path, help="deployed model (mlff-deploy output)")
    p.add_argument("data", type=Path, help="labelled extxyz (energy and forces)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        m = evaluate_model(args.model, args.data)
    for w in caught:
        if issubclass(w.category, DataWarning):
            print(f"mlff eval: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        if m["energy_mae_meV_per_atom"] is None:
            energy = "  energy      (direct-force model: no energy)\n"
        else:
            energy = (f"  energy MAE  {m['energy_mae_meV_per_atom']:10.3f} meV/atom   "
                      f"RMSE {m['energy_rmse_meV_per_atom']:10.3f} meV/atom\n")
        print(f"{args.data}: {m['n_structures']} structures\n"
              f"{energy}"
              f"  force  MAE  {m['force_mae_meV_per_A']:10.3f} meV/Å       RMSE {m['force_rmse_meV_per_A']:10.3f} meV/Å")
    return 0
