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
    forces = torch.cat([g.forces for g in graphs])
    return set_energy_scale(model, counts, energies, float(torch.sqrt(torch.mean(forces.double() ** 2))))


def set_energy_scale(model: EnergyModel, counts: np.ndarray, energies: np.ndarray, rms_force: float) -> dict[str, object]:
    """:func:`fit_energy_scale` from its inputs: composition counts ``[n, S]``, total
    energies ``[n]`` (eV) and the RMS force component (eV/Å); packed data sets stream them."""
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    scale = rms_force or 1.0
    es = model.energy_scale
    es.reference_energy.copy_(torch.as_tensor(e0, dtype=es.reference_energy.dtype))
    es.scale.fill_(scale)
    es.shift.zero_()
    return {"reference_energy": dict(zip(model.species, e0.tolist())), "scale": scale}


def pair_min_distances(graphs: Sequence[Graph], species: Sequence[str]) -> dict[str, float]:
    """Shortest distance (Å) between each pair of species over the edges of ``graphs``
    (within ``r_max``), keyed ``"A-B"`` with ``A`` before ``B`` in ``species`` order.
    Pairs never closer than ``r_max`` are absent. Used as the extrapolation limit that
    the deployed model carries (metadata ``training_range``)."""
    n = len(species)
    best = np.full(n * n, np.inf)
    for g in graphs:
        if g.edge_index.shape[1] == 0:
            continue
        d = torch.linalg.norm(g.edge_vec(), dim=1).double().cpu().numpy()
        s = g.species.cpu().numpy()
        a, b = s[g.edge_index[0].cpu().numpy()], s[g.edge_index[1].cpu().numpy()]
        key = np.minimum(a, b) * n + np.maximum(a, b)
        np.minimum.at(best, key, d)
    return {f"{species[k // n]}-{species[k % n]}": float(best[k]) for k in np.flatnonzero(np.isfinite(best))}


def atomic_energy_range(model: EnergyModel, graphs: Sequence[Graph], batch_size: int = 50,
                        batches=None) -> dict[str, list[float]]:
    """Smallest and largest atomic energy (eV) ``model`` gives each species over ``graphs``
    (or over ``batches``, an iterable of collated graphs, when given):
    ``{"Cu": [lo, hi], ...}`` (direct-force models, which have no energy: ``{}``)."""
    from ..graph import collate

    if getattr(model, "direct_forces", False):
        return {}
    lo = np.full(len(model.species), np.inf)
    hi = np.full(len(model.species), -np.inf)
    with torch.no_grad():
        if batches is None:
            batches = (collate(graphs[start:start + batch_size]) for start in range(0, len(graphs), batch_size))
        for batch in batches:
            e = model(batch.species, batch.edge_index, batch.edge_vec()).double().cpu().numpy()
            s = batch.species.cpu().numpy()
            np.minimum.at(lo, s, e)
            np.maximum.at(hi, s, e)
    return {model.species[k]: [float(lo[k]), float(hi[k])] for k in np.flatnonzero(np.isfinite(lo))}


def periodicity(frames) -> str:
    """``"periodic"``, ``"non-periodic"`` or ``"mixed"``: what the training structures were
    (``mlff eval`` names data of the other kind)."""
    kinds = {bool(np.all(a.pbc)) for a in frames}
    return "mixed" if len(kinds) > 1 else ("periodic" if kinds.pop() else "non-periodic")
