"""ASE calculator for deployed mlff models, and the single-structure prediction
that ``mlff eval`` and the tests share with it.

Forces, virial and stress are derived from the model's ``edge_grad = ∂E/∂r_ij``
exactly as the LAMMPS plugin derives them (``docs/model_interface.md``). Direct-force
models (``metadata["direct_forces"]``) give forces only: no energy, virial or stress.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes, compare_atoms

from .allocator import reuse_freed_memory
from .committee import deviations
from .deploy import load_deployed
from .errors import DataError, DataWarning, ModelEvaluationError
from .extrapolation import TrainingRange, same_position_pairs
from .graph import neighbor_edges, species_indices
from .neighbor_list import EdgeList


@dataclass
class StructureGraph:
    """The model's inputs for one structure: ``species`` ``[n]`` int64 indices into the
    model's species, ``edge_index`` ``[2, e]`` int64, ``edge_vec`` ``[e, 3]`` float64 (Å,
    ``x_j − x_i`` with the periodic shift) and ``distance`` ``[e]`` (Å)."""

    species: np.ndarray
    edge_index: np.ndarray
    edge_vec: np.ndarray
    distance: np.ndarray


def edge_graph(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """``edge_index`` ``[2, e]`` int64 and ``edge_vec`` ``[e, 3]`` float64 (Å) of ``atoms``
    within ``r_max`` (the model's graph; ``docs/model_interface.md``)."""
    edge_index, edge_vec, _ = neighbor_edges(atoms, r_max)
    return edge_index, edge_vec


def structure_graph(atoms: Atoms, meta: dict[str, Any], edges: EdgeList | None = None,
                    species: np.ndarray | None = None) -> StructureGraph:
    """:class:`StructureGraph` of ``atoms`` for a model with metadata ``meta``; ``edges``: the
    :class:`~mlff.neighbor_list.EdgeList` to build the graph with (one is kept between
    calls), ``species``: the atoms' species indices if already known. Raises ``DataError``
    for an element the model lacks or two atoms at the same position."""
    edge_index, edge_vec, distance = neighbor_edges(atoms, meta["r_max"]) if edges is None else edges(atoms)
    same = same_position_pairs(edge_index, distance)
    if same:
        i, j, d = same[0]
        raise DataError(f"atoms {i} and {j} are at the same position ({d:.2g} Å apart; {len(same)} such pair(s)): "
                        f"no potential is defined there")
    if species is None:
        species = species_indices(atoms, meta["species"])
    return StructureGraph(species, edge_index, edge_vec, distance)


def _require_finite(values: np.ndarray, what: str) -> None:
    if not np.isfinite(values).all():
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        raise ModelEvaluationError(f"the model returned non-finite {what} ({len(bad)} of {len(values)} rows, first "
                                   f"row {int(bad[0])}); the structure is probably far outside its training data")


def edge_forces(edge_grad: np.ndarray, edge_index: np.ndarray, n_atoms: int) -> np.ndarray:
    """Forces ``[n_atoms, 3]`` (eV/Å) from ``edge_grad = ∂E/∂r_ij`` ``[e, 3]`` (eV/Å, float64):
    ``F_i = Σ_j ∂E/∂r_ij − Σ_j ∂E/∂r_ji`` (``r_ij = x_j − x_i``), as the LAMMPS plugin sums them."""
    # one bincount over flat (atom, component) slots: +grad at the centre, -grad at the neighbour
    slots = (3 * edge_index).reshape(-1, 1) + np.arange(3)
    values = np.concatenate([edge_grad, -edge_grad])
    return np.bincount(slots.ravel(), values.ravel(), 3 * n_atoms).reshape(n_atoms, 3)


def predict(module: torch.jit.ScriptModule, meta: dict[str, Any], atoms: Atoms,
            graph: StructureGraph | None = None) -> dict[str, np.ndarray | float]:
    """Energy (eV), forces ``[n, 3]`` (eV/Å), atomic energies ``[n]`` (eV), virial
    ``[3, 3]`` (eV) and, for periodic cells, stress ``[3, 3]`` (eV/Å³, ASE sign) of ``atoms``.

    For a direct-force model only ``forces`` is returned (it has no energy). A committee
    (metadata ``committee``) adds its deviations (:func:`mlff.committee.deviations`:
    ``force_deviation`` and ``force_deviation_max`` ``[n]`` eV/Å, ``energy_deviation_atom``
    ``[n]`` eV, ``energy_deviation`` eV/atom).
    ``graph``: the :class:`StructureGraph` of ``atoms`` if already built.

    The model runs without TorchScript's profiling (shape-specialising) executor: in MD the
    edge count changes from call to call, and re-specialising cost more than it gained
    (toluene SchNet fp32: 6.0 ms per call with it, 2.2 ms without), as in the LAMMPS plugin.

    Raises ``DataError`` if an element is not among the model's species or two atoms are
    at the same position, ``ModelEvaluationError`` if the model returns non-finite values.
    """
    g = graph if graph is not None else structure_graph(atoms, meta)
    dtype = getattr(torch, meta["dtype"])
    edge_index = torch.from_numpy(g.edge_index)
    inputs = (torch.from_numpy(g.species), edge_index, torch.as_tensor(g.edge_vec, dtype=dtype))
    if isinstance(module, torch.jit.ScriptModule):
        with torch.jit.optimized_execution(False):
            out = module(*inputs)
    else:  # an AOTInductor package (mlff.aoti.AOTIModel): no executor to configure
        out = module(*inputs)
    committee = {}
    if meta.get("committee"):
        member_energy = out.get("member_atomic_energy")
        committee = deviations(out["member_forces"].detach().double().numpy(),
                               None if member_energy is None else member_energy.detach().double().numpy())
    if meta.get("direct_forces", False):
        forces = out["forces"].detach().numpy().astype(np.float64)
        _require_finite(forces, "forces")
        return {"forces": forces, **committee}
    # numpy from here: for a small molecule each torch op from Python costs more than its arithmetic
    atomic_energy = out["atomic_energy"].detach().numpy().astype(np.float64)
    if "node_forces" in out:  # an AOTI package sums the forces and the virial itself
        forces = out["node_forces"].numpy().astype(np.float64)
        virial = out["virial"].numpy().astype(np.float64)
        check = forces
    else:
        grad = out["edge_grad"].detach().numpy().astype(np.float64)
        forces = edge_forces(grad, g.edge_index, len(atoms))
        virial = -g.edge_vec.T @ grad
        virial = 0.5 * (virial + virial.T)
        check = grad
    energy = float(atomic_energy.sum())
    if not np.isfinite(energy + check.sum()):  # any NaN or inf reaches the sums (fp64: no overflow)
        _require_finite(atomic_energy, "atomic energies")
        _require_finite(check, "energy gradients (forces)")
    result = {"energy": energy, "forces": forces, "energies": atomic_energy, "virial": virial, **committee}
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
        reuse_freed_memory()
        self.module, self.metadata = load_deployed(model)
        self.model_path = str(model)
        if self.metadata.get("direct_forces", False):
            self.implemented_properties = ["forces"]
        if self.metadata.get("committee"):
            self.implemented_properties = self.implemented_properties + list(COMMITTEE_RESULTS)
        self.training_range = TrainingRange(self.metadata)
        self.edges = EdgeList(self.metadata["r_max"])
        self._species = (None, None)  # the last structure's atomic numbers and species indices
        self.max_warnings = max_warnings
        self.extrapolation_count = 0

    def check_state(self, atoms, tol=1e-15):
        """ASE's :func:`~ase.calculators.calculator.compare_atoms` with exact comparisons:
        the same changes, except that values within ``tol`` of the last ones count as changed
        (a recalculation, never a stale result). ASE's ``allclose`` on every array cost about
        0.09 ms per call, an eighth of a toluene force call."""
        prev = self.atoms
        if prev is None or len(prev) != len(atoms):
            return compare_atoms(prev, atoms, tol=tol, excluded_properties=set(self.ignored_changes))
        checked = set(all_changes) - set(self.ignored_changes)
        changes = [p for p in ("cell", "pbc") if p in checked and not np.array_equal(getattr(prev, p),
                                                                                      getattr(atoms, p))]
        old, new = prev.arrays, atoms.arrays
        for p in checked - {"cell", "pbc"}:
            if (p in old) != (p in new) or (p in old and not np.array_equal(old[p], new[p])):
                changes.append(p)
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        # ASE's Calculator.calculate copies the atoms and creates the calculator's directory;
        # this calculator writes no files, so only the copy (check_state compares with it)
        if atoms is not None:
            self.atoms = atoms.copy()
        numbers, species = self._species
        if numbers is None or not np.array_equal(numbers, self.atoms.numbers):
            numbers, species = self.atoms.numbers, None  # (the copy's own array: nobody changes it)
        graph = structure_graph(self.atoms, self.metadata, edges=self.edges, species=species)
        self._species = (numbers, graph.species)
        res = predict(self.module, self.metadata, self.atoms, graph=graph)
        excursion = self.training_range.check(graph.species, graph.edge_index, graph.distance, res.get("energies"))
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
