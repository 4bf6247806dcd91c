"""Is a structure inside what the model was trained on?

A deployed model's metadata ``training_range`` (written by ``mlff-deploy`` from the
training checkpoint) records the shortest distance seen in training for each species
pair within ``r_max`` (``pair_min_distance``, Å), each species' range of atomic
energies (``atomic_energy``, eV) and whether the structures were periodic
(``periodic``). A pair of species never closer than ``r_max`` in training has no entry;
any such pair inside the cutoff is then outside the training range.

The same rules run in the LAMMPS plugin (``pair_style mlff``, rate-limited
``error->warning``) and in :class:`mlff.calculator.MLFFCalculator` (Python warnings):
a pair closer than its training minimum by more than ``distance_tolerance`` (Å), or an
atomic energy outside its species' range by more than ``energy_tolerance`` times the
width of that range, is reported. These are warnings: the model may still be right,
but nothing in its training tested it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DISTANCE_TOLERANCE = 0.1  # Å below the training minimum before a pair is reported
ENERGY_TOLERANCE = 0.1    # fraction of a species' atomic-energy range outside it before reported
SAME_POSITION = 0.01      # Å: two atoms this close are an error, not a structure


@dataclass
class Excursion:
    """What lies outside the training range in one structure: ``n_pairs`` pairs (each
    direction counted once) closer than allowed, the ``closest`` as text, and ``n_energies``
    atoms with atomic energies outside their species' range."""

    n_pairs: int = 0
    closest: str = ""
    n_energies: int = 0
    energy_text: str = ""

    def __bool__(self) -> bool:
        return bool(self.n_pairs or self.n_energies)

    def message(self) -> str:
        parts = []
        if self.n_pairs:
            parts.append(f"{self.n_pairs} pair(s) closer than in training ({self.closest})")
        if self.n_energies:
            parts.append(f"{self.n_energies} atomic energies outside the training range ({self.energy_text})")
        return "; ".join(parts)


class TrainingRange:
    """The limits of metadata ``training_range`` for the model's ``species`` and ``r_max``.
    ``None`` or an empty dict (models deployed before mlff recorded them) checks nothing."""

    def __init__(self, meta: dict[str, Any], distance_tolerance: float = DISTANCE_TOLERANCE,
                 energy_tolerance: float = ENERGY_TOLERANCE):
        rng = meta.get("training_range") or {}
        self.species = list(meta["species"])
        self.known = bool(rng.get("pair_min_distance"))
        n = len(self.species)
        self.min_distance = np.full((n, n), float(meta["r_max"]))
        for key, d in (rng.get("pair_min_distance") or {}).items():
            a, b = (self.species.index(s) for s in key.split("-"))
            self.min_distance[a, b] = self.min_distance[b, a] = float(d)
        self.limit = self.min_distance - distance_tolerance
        self.energy = np.full((n, 2), [-np.inf, np.inf])
        for s, (lo, hi) in (rng.get("atomic_energy") or {}).items():
            pad = energy_tolerance * (hi - lo)
            self.energy[self.species.index(s)] = (lo - pad, hi + pad)
        self.periodic = rng.get("periodic")
        self._limit_max = float(self.limit.max()) if n else 0.0

    def check(self, species: np.ndarray, edge_index: np.ndarray, distance: np.ndarray,
              atomic_energy: np.ndarray | None = None) -> Excursion:
        """``species`` ``[n]`` indices, ``edge_index`` ``[2, e]``, ``distance`` ``[e]`` Å,
        ``atomic_energy`` ``[n]`` eV (optional). Returns the :class:`Excursion` (falsy if none)."""
        out = Excursion()
        # (each test first asks whether anything can be outside at all: in MD almost nothing is,
        # and the calculator runs this on every call)
        if self.known and len(distance) and distance.min() < self._limit_max:
            a, b = species[edge_index[0]], species[edge_index[1]]
            close = np.flatnonzero((distance < self.limit[a, b]) & (edge_index[0] < edge_index[1]))
            if len(close):
                k = close[np.argmin(distance[close] - self.min_distance[a[close], b[close]])]
                out.n_pairs = len(close)
                lo, hi = sorted((a[k], b[k]))
                out.closest = (f"closest {self.species[lo]}-{self.species[hi]} at {distance[k]:.3f} Å, "
                               f"training minimum {self.min_distance[a[k], b[k]]:.3f} Å")
        if atomic_energy is not None:
            bounds = self.energy[species]
            lo, hi = bounds[:, 0], bounds[:, 1]
            outside = np.flatnonzero((atomic_energy < lo) | (atomic_energy > hi))
            if len(outside):
                k = outside[0]
                out.n_energies = len(outside)
                out.energy_text = (f"e.g. atom {k} ({self.species[species[k]]}) {atomic_energy[k]:.4f} eV, "
                                   f"allowed {lo[k]:.4f} to {hi[k]:.4f} eV")
        return out


def same_position_pairs(edge_index: np.ndarray, distance: np.ndarray) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, d)`` closer than ``SAME_POSITION`` Å (an error: no model is defined there)."""
    if not len(distance) or distance.min() >= SAME_POSITION:  # the usual case, in one pass
        return []
    hit = np.flatnonzero((distance < SAME_POSITION) & (edge_index[0] < edge_index[1]))
    return [(int(edge_index[0, k]), int(edge_index[1, k]), float(distance[k])) for k in hit]


def periodicity_mismatch(meta: dict[str, Any], frames: Sequence) -> str:
    """A sentence if periodic structures are given to a model trained on molecules, or the
    reverse (metadata ``training_range.periodic``); ``""`` when they match or it is unknown."""
    trained = (meta.get("training_range") or {}).get("periodic")
    if trained not in ("periodic", "non-periodic"):
        return ""
    periodic = sum(bool(np.all(a.pbc)) for a in frames)
    other = len(frames) - periodic if trained == "periodic" else periodic
    if other == 0:
        return ""
    kind = "non-periodic" if trained == "periodic" else "periodic"
    return (f"{other} of {len(frames)} structures are {kind}, but the model was trained on {trained} structures "
            f"only: expect larger errors there")
