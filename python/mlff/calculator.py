"""ASE calculator for deployed mlff models, and the single-structure prediction
that ``mlff eval`` and the tests share with it.

Forces, virial and stress are derived from the model's ``edge_grad = ∂E/∂r_ij``
exactly as the LAMMPS plugin derives them (``docs/model_interface.md``). Direct-force
models (``metadata["direct_forces"]``) give forces only: no energy, virial or stress.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .committee import deviations
from .deploy import load_deployed
from .errors import DataError, DataWarning, ModelEvaluationError
from .extrapolation import TrainingRange, same_position_pairs
from .graph import neighbor_graph, species_indices


def edge_graph(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """``edge_index`` ``[2, e]`` int64 and ``edge_vec`` ``[e, 3]`` float64 (Å) of ``atoms``
    within ``r_max`` (the model's graph; ``docs/model_interface.md``)."""
    edge_index, shift_vec = neighbor_graph(atoms, r_max)
    pos = np.asarray(atoms.positions, dtype=np.float64)
    return edge_index, pos[edge_index[1]] - pos[edge_index[0]] + shift_vec


def _require_finite(values: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        raise ModelEvaluationError(f"the model returned non-finite {what} ({len(bad)} of {len(values)} rows, first "
                                   f"row {int(bad[0])}); the structure is probably far outside its training data")


def predict(module: torch.jit.ScriptModule, meta: dict[str, Any], atoms: Atoms,
            graph: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray | float]:
    """Energy (eV), forces ``[n, 3]`` (eV/Å), atomic energies ``[n]`` (eV), virial
    ``[3, 3]`` (eV) and, for periodic cells, stress ``[3, 3]`` (eV/Å³, ASE sign) of ``atoms``.

    For a direct-force model only ``forces`` is returned (it has no energy). A committee
    (metadata ``committee``) adds its deviations (:func:`mlff.committee.deviations`:
    ``force_deviation`` and ``force_deviation_max`` ``[n]`` eV/Å, ``energy_deviation_atom``
    ``[n]`` eV, ``energy_deviation`` eV/atom).
    ``graph``: a precomputed ``(edge_index, edge_vec)`` of ``atoms`` (else built here).

    Raises ``DataError`` if an element is not among the model's species or two atoms are
    at the same position, ``ModelEvaluationError`` if the model returns non-finite values.
    """
    edge_index, edge_vec = graph if graph is not None else edge_graph(atoms, meta["r_max"])
    same = same_position_pairs(edge_index, np.linalg.norm(edge_vec, axis=1))
    if same:
        i, j, d = same[0]
        raise DataError(f"atoms {i} and {j} are at the same position ({d:.2g} Å apart; {len(same)} such pair(s)): "
                        f"no potential is defined there")
    dtype = getattr(torch, meta["dtype"])
    species = torch.as_tensor(species_indices(atoms, meta["species"]))
    out = module(species, torch.as_tensor(edge_index), torch.as_tensor(edge_vec, dtype=dtype))
    committee = {}
    if meta.get("committee"):
        member_energy = out.get("member_atomic_energy")
        committee = deviations(out["member_forces"].detach().double().numpy(),
                               None if member_energy is None else member_energy.detach().double().numpy())
    if meta.get("direct_forces", False):
        forces = out["forces"].detach().double().numpy()
        _require_finite(forces, "forces")
        return {"forces": forces, **committee}
    atomic_energy = out["atomic_energy"].detach().double().numpy()
    g = out["edge_grad"].detach().double().numpy()
    _require_finite(atomic_energy, "atomic energies")
    _require_finite(g, "energy gradients (forces)")
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, edge_index[0], g)
    np.add.at(forces, edge_index[1], -g)
    virial = -edge_vec.T @ g
    result = {"energy": float(atomic_energy.sum()), "forces": forces, "energies": atomic_energy,
              "virial": 0.5 * (virial + virial.T), **committee}
    if np.all(atoms.pbc):
        result["stress"] = -result["virial"] / atoms.get_volume()
    return result


COMMITTEE_RESULTS = ("force_deviation", "force_deviation_max", "energy_deviation_atom", "energy_deviation")


class MLFFCalculator(Calculator):
    """ASE calculator backed by a deployed mlff model (``mlff-deploy`` output).

    ``MLFFCalculator("model.pt")``; provides ``energy`` (eV), ``free_energy``,
    ``forces`` (eV/Å), ``energies`` (per atom, eV) and, for periodic cells,
    ``stress`` (eV/Å³, Voigt). A direct-force model provides ``forces`` only; asking
    for its energy raises ASE's ``PropertyNotImplementedError``.

    A committee file (``mlff train --committee N``) also gives, in ``results`` after a
    calculation, ``force_deviation``, ``force_deviation_max`` (per atom, eV/Å),
    ``energy_deviation_atom`` (per atom, eV) and ``energy_deviation`` (eV/atom): the
    spread of its members (:mod:`mlff.committee`).

    Structures outside the model's training range (:mod:`mlff.extrapolation`: pairs
    closer than in training, atomic energies outside the trained range) give a
    ``DataWarning``, the first ``max_warnings`` times; ``extrapolation_count`` counts all.
    Raises ``ModelFileError`` for a bad model file, ``DataError`` for two atoms at the
    same position, ``ModelEvaluationError`` for non-finite model output.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress"]

    def __init__(self, model: str | Path, max_warnings: int = 10, **kwargs):
        super().__init__(**kwargs)
        self.module, self.metadata = load_deployed(model)
        self.model_path = str(model)
        if self.metadata.get("direct_forces", False):
            self.implemented_properties = ["forces"]
        if self.metadata.get("committee"):
            self.implemented_properties = self.implemented_properties + list(COMMITTEE_RESULTS)
        self.training_range = TrainingRange(self.metadata)
        self.max_warnings = max_warnings
        self.extrapolation_count = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        edge_index, edge_vec = edge_graph(self.atoms, self.metadata["r_max"])
        res = predict(self.module, self.metadata, self.atoms, graph=(edge_index, edge_vec))
        species = species_indices(self.atoms, self.metadata["species"])
        excursion = self.training_range.check(species, edge_index, np.linalg.norm(edge_vec, axis=1),
                                              res.get("energies"))
        if excursion:
            self.extrapolation_count += 1
            if self.extrapolation_count <= self.max_warnings:
                last = " (further warnings suppressed; see extrapolation_count)" \
                    if self.extrapolation_count == self.max_warnings else ""
                warnings.warn(f"{self.model_path}: structure outside the training range: {excursion.message()}"
                              f"{last}", DataWarning, stacklevel=2)
        deviation = {k: res[k] for k in COMMITTEE_RESULTS if k in res}
        if self.metadata.get("direct_forces", False):
            self.results = {"forces": res["forces"], **deviation}
            return
        self.results = {"energy": res["energy"], "free_energy": res["energy"], "forces": res["forces"],
                        "energies": res["energies"], **deviation}
        if "stress" in res:
            s = res["stress"]
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
