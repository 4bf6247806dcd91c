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


def evaluate_model(model_path: str | Path, data_path: str | Path,
                   calibration_plot: str | Path | None = None) -> dict[str, float | int | None]:
    """Errors of the deployed model at ``model_path`` on the frames of ``data_path``.

    Returns ``energy_mae_meV_per_atom``, ``energy_rmse_meV_per_atom`` (per-atom energy
    errors), ``force_mae_meV_per_A``, ``force_rmse_meV_per_A`` (over force components)
    and ``n_structures``. A direct-force model has no energy: its energy metrics are
    ``None`` (``null`` in JSON). Raises ``ModelFileError``/``DataError`` naming the bad file.
    Periodic data given to a model trained on molecules, or the reverse, give a
    ``DataWarning`` (``mlff eval`` prints it). A committee model adds ``calibration``
    (:func:`mlff.calibration.calibrate`: per-atom force deviation against the true force
    error), plotted to ``calibration_plot`` if given.
    """
    module, meta = load_deployed(model_path)
    frames = read_dataset(data_path)
    mismatch = periodicity_mismatch(meta, frames)
    if mismatch:
        warnings.warn(f"{data_path}: {mismatch} ({model_path})", DataWarning, stacklevel=2)
    has_energy = not meta.get("direct_forces", False)
    de, df, deviation, atom_error = [], [], [], []
    for k, atoms in enumerate(frames):
        try:
            res = predict(module, meta, atoms)
        except MLFFError as exc:
            raise type(exc)(f"{data_path}: frame {k}: {exc}") from None
        if has_energy:
            de.append((res["energy"] - atoms.info["energy"]) / len(atoms))
        df.append((res["forces"] - atoms.arrays["forces"]).ravel())
        if "force_deviation" in res:
            deviation.append(res["force_deviation"])
            atom_error.append(np.linalg.norm(res["forces"] - atoms.arrays["forces"], axis=1))
    de, df = 1e3 * np.asarray(de), 1e3 * np.concatenate(df)
    e_mae = float(np.abs(de).mean()) if has_energy else None
    e_rmse = float(math.sqrt((de**2).mean())) if has_energy else None
    out = {"energy_mae_meV_per_atom": e_mae, "energy_rmse_meV_per_atom": e_rmse,
           "force_mae_meV_per_A": float(np.abs(df).mean()), "force_rmse_meV_per_A": float(math.sqrt((df**2).mean())),
           "n_structures": len(frames)}
    if deviation:
        from .calibration import calibrate, plot_calibration

        deviation, atom_error = np.concatenate(deviation), np.concatenate(atom_error)
        out["calibration"] = calibrate(deviation, atom_error)
        if calibration_plot is not None:
            plot_calibration(out["calibration"], deviation, atom_error, calibration_plot,
                             title=f"{Path(model_path).name} on {Path(data_path).name}")
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a deployed model on labelled extxyz data")
    p.add_argument("model", type=Path, help="deployed model (mlff-deploy output)")
    p.add_argument("data", type=Path, help="labelled extxyz (energy and forces)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--calibration-plot", type=Path, metavar="PNG",
                   help="committee models: plot the per-atom force deviation against the true force error")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        m = evaluate_model(args.model, args.data, args.calibration_plot)
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
        if "calibration" in m:
            c = m["calibration"]
            print(f"  committee: Spearman ρ(force deviation, force error) = {c['spearman']:.3f} over {c['n_atoms']} "
                  f"atoms; RMS error per deviation bin (eV/Å): "
                  + ", ".join(f"{b['mean_deviation']:.3g} → {b['rms_error']:.3g}" for b in c["bins"]))
    return 0
