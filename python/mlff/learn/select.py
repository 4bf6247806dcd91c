"""Which explored frames to label: the committee's candidates, spread out.

A frame is *accurate* when its largest atomic force deviation is below ``trust_lo``, a
*candidate* in ``[trust_lo, trust_hi)``, a *failure* above (too far from the data to be
worth a label: its geometry is likely unphysical); DP-GEN's classification (Zhang et al.,
Comput. Phys. Commun. 253, 107206 (2020), Sec. 2.2). At most ``n_select`` candidates are
kept, chosen by greedy farthest-point sampling (Gonzalez, Theor. Comput. Sci. 38, 293
(1985)) on a per-structure fingerprint: per species, the mean and standard deviation
over its atoms of atom-centred symmetry functions (AMP's default G2/G4 set,
:func:`mlff.models.symmetry_functions.amp_default_set`), so that the labels cover
different environments instead of consecutive frames of one trajectory.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from ..graph import neighbor_graph, species_indices
from ..models.symmetry_functions import SymmetryFunctions, amp_default_set
from .config import SelectConfig


def classify(frames: Sequence[Atoms], config: SelectConfig) -> dict[str, list[int]]:
    """Indices of the accurate, candidate and failed frames (by ``info["max_devi_f"]``)."""
    dev = np.array([a.info["max_devi_f"] for a in frames])
    return {"accurate": np.flatnonzero(dev < config.trust_lo).tolist(),
            "candidate": np.flatnonzero((dev >= config.trust_lo) & (dev < config.trust_hi)).tolist(),
            "failed": np.flatnonzero(dev >= config.trust_hi).tolist()}


def fingerprints(frames: Sequence[Atoms], species: list[str], r_max: float) -> np.ndarray:
    """``[n_frames, 2 · n_species · n_features]``: per species, mean and standard deviation of
    the symmetry functions of its atoms (zeros for a species a frame lacks)."""
    radial, angular = amp_default_set(r_max)
    sf = SymmetryFunctions(len(species), r_max, radial, angular, cutoff="cosine")
    rows = []
    for atoms in frames:
        edge_index, shift = neighbor_graph(atoms, r_max)
        vec = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shift
        s = species_indices(atoms, species)
        with torch.no_grad():
            g = sf(torch.as_tensor(s), torch.as_tensor(edge_index), torch.as_tensor(vec)).numpy()
        parts = []
        for k in range(len(species)):
            mine = g[s == k]
            parts += [mine.mean(axis=0), mine.std(axis=0)] if len(mine) else [np.zeros(g.shape[1])] * 2
        rows.append(np.concatenate(parts))
    return np.array(rows)


def farthest_point_sampling(x: np.ndarray, n: int, start: int = 0) -> list[int]:
    """Greedy farthest-point order of the rows of ``x`` (standardised per column), first ``n``."""
    if len(x) <= n:
        return list(range(len(x)))
    scale = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    chosen = [start]
    dist = np.linalg.norm(x - x[start], axis=1)
    while len(chosen) < n:
        k = int(np.argmax(dist))
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
    return chosen


def select(frames: Sequence[Atoms], config: SelectConfig, species: list[str], r_max: float) -> tuple[list[int], dict]:
    """Indices of the frames to label and the classification counts."""
    groups = classify(frames, config)
    cand = groups["candidate"]
    if not cand:
        return [], groups
    fp = fingerprints([frames[k] for k in cand], species, r_max)
    start = int(np.argmax([frames[k].info["max_devi_f"] for k in cand]))  # the most uncertain first
    return [cand[k] for k in farthest_point_sampling(fp, config.n_select, start)], groups


def spread_out(frames: Sequence[Atoms], n: int, species: list[str], r_max: float) -> list[int]:
    """``n`` frames chosen by farthest-point sampling among all ``frames`` (when the
    committee's deviation cannot guide the choice yet)."""
    return farthest_point_sampling(fingerprints(frames, species, r_max), n)
