"""Did the model learn anything? Its validation errors against a model that learned nothing.

The *composition baseline* predicts, for every structure, only the per-species reference
energies fitted before training (``E = sum_i E0[s_i]``, :func:`mlff.train.statistics.fit_energy_scale`)
and zero forces. Its validation energy RMSE is the spread of the energies that composition
does not explain (for one molecule: the standard deviation of its energies), and its force
RMSE is the RMS force component. A trained model whose error stays close to the baseline's
has fitted the mean and nothing more: on near-harmonic molecules an energy-only SchNet can sit
there for many epochs (seed experiment 001 found this on benzene, toluene and malonaldehyde).
:func:`unlearned_warnings` turns such cases into messages for the user.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models import EnergyModel
from .errors import Errors

# an error above this fraction of the baseline's counts as "learned little" (the seed
# experiments judge a model as having learned only below 0.8 x the spread it had to explain)
LEARNED_FRACTION = 0.8


def composition_baseline(model: EnergyModel, data, batch_size: int) -> dict[str, float]:
    """Validation errors of the composition baseline on ``data`` (a ``GraphSet`` or
    ``PackedSet`` of :mod:`mlff.train.trainer`), with ``model``'s fitted reference energies.

    Returns ``energy_rmse`` (meV/atom) and ``force_rmse`` (meV/Å), as
    :meth:`mlff.train.errors.Errors.summary` reports them."""
    e0 = model.energy_scale.reference_energy.detach().double().cpu()
    errors = Errors()
    for start in range(0, len(data), batch_size):
        batch = data.batch(np.arange(start, min(start + batch_size, len(data))))
        species, owner = batch.species.cpu(), batch.batch.cpu()
        energy = torch.zeros(batch.n_structures, dtype=torch.float64).index_add_(0, owner, e0[species])
        errors.add(energy, batch.energy.cpu().double(), batch.n_atoms.cpu(), torch.zeros_like(batch.forces.cpu()),
                   batch.forces.cpu())
    s = errors.summary()
    return {"energy_rmse": s["energy_rmse"], "force_rmse": s["force_rmse"]}


def unlearned_warnings(best: dict, baseline: dict[str, float], predicts_energy: bool) -> list[str]:
    """Messages for the errors of the best epoch (``best``: a metrics row with
    ``valid_energy_rmse`` and ``valid_force_rmse``) that exceed ``LEARNED_FRACTION`` of the
    composition baseline's; empty when the model learned both."""
    out = []
    checks = [("force", "valid_force_rmse", "force_rmse", "meV/Å", "zero forces")]
    if predicts_energy:
        checks.insert(0, ("energy", "valid_energy_rmse", "energy_rmse", "meV/atom",
                          "only the per-species reference energies"))
    for what, key, base_key, unit, trivial in checks:
        err, base = best.get(key), baseline.get(base_key)
        if err is None or base is None or not math.isfinite(err) or not math.isfinite(base) or base <= 0:
            continue
        if err > LEARNED_FRACTION * base:
            out.append(f"the best model's validation {what} RMSE, {err:.3g} {unit}, is {100 * err / base:.0f} % of "
                       f"that of a model predicting {trivial} ({base:.3g} {unit}): it has learned little beyond the "
                       f"mean. Train longer or with a higher learning rate"
                       + (", or add forces to the loss (energy-only fits of near-harmonic molecules can stay at "
                          "the mean energy for many epochs)" if what == "energy" else "")
                       + ".")
    return out
