"""Statistics fitted on the training set before training starts."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..graph import Graph
from ..models import EnergyModel


def fit_energy_scale(model: EnergyModel, graphs: Sequence[Graph]) -> dict[str, object]:
    """Set the model's per-species reference energies and output scale from training data.

    * reference energies ``E0[s]`` (eV): least-squares fit of the total energies to the
      composition counts (minimum-norm when compositions are collinear, e.g. one molecule);
    * ``scale`` (eV): root-mean-square force component, so the network's unit-scale output
      gives forces of the right magnitude at initialisation (as in NequIP and MACE).

    Returns the fitted values (for the training log).
    """
    n_species = len(model.species)
    counts = np.stack([np.bincount(g.species.numpy(), minlength=n_species) for g in graphs]).astype(np.float64)
    energies = np.array([float(g.energy[0]) for g in graphs])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    forces = torch.cat([g.forces for g in graphs])
    scale = float(torch.sqrt(torch.mean(forces.double() ** 2))) or 1.0
    es = model.energy_scale
    es.reference_energy.copy_(torch.as_tensor(e0, dtype=es.reference_energy.dtype))
    es.scale.fill_(scale)
    es.shift.zero_()
    return {"reference_energy": dict(zip(model.species, e0.tolist())), "scale": scale}
