"""ASE calculator for deployed mlff models, and the single-structure prediction
that ``mlff eval`` and the tests share with it.

Forces, virial and stress are derived from the model's ``edge_grad = ∂E/∂r_ij``
exactly as the LAMMPS plugin derives them (``docs/model_interface.md``). Direct-force
models (``metadata["direct_forces"]``) give forces only: no energy, virial or stress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from .deploy import load_deployed
from .graph import neighbor_graph, species_indices


def predict(module: torch.jit.ScriptModule, meta: dict[str, Any], atoms: Atoms) -> dict[str, np.ndarray | float]:
    """Energy (eV), forces ``[n, 3]`` (eV/Å), atomic energies ``[n]`` (eV), virial
    ``[3, 3]`` (eV) and, for periodic cells, stress ``[3, 3]`` (eV/Å³, ASE sign) of ``atoms``.

    For a direct-force model only ``forces`` is returned (it has no energy).

    Raises ``DataError`` if an element is not among the model's species.
    """
    edge_index, shift_vec = neighbor_graph(atoms, meta["r_max"])
    dtype = getattr(torch, meta["dtype"])
    pos = np.asarray(atoms.positions, dtype=np.float64)
    edge_vec = pos[edge_index[1]] - pos[edge_index[0]] + shift_vec
    species = torch.as_tensor(species_indices(atoms, meta["species"]))
    out = module(species, torch.as_tensor(edge_index), torch.as_tensor(edge_vec, dtype=dtype))
    if meta.get("direct_forces", False):
        return {"forces": out["forces"].detach().double().numpy()}
    atomic_energy = out["atomic_energy"].detach().double().numpy()
    g = out["edge_grad"].detach().double().numpy()
    forces = np.zeros((len(atoms), 3))
    np.add.at(forces, edge_index[0], g)
    np.add.at(forces, edge_index[1], -g)
    virial = -edge_vec.T @ g
    result = {"energy": float(atomic_energy.sum()), "forces": forces, "energies": atomic_energy,
              "virial": 0.5 * (virial + virial.T)}
    if np.all(atoms.pbc):
        result["stress"] = -result["virial"] / atoms.get_volume()
    return result


class MLFFCalculator(Calculator):
    """ASE calculator backed by a deployed mlff model (``mlff-deploy`` output).

    ``MLFFCalculator("model.pt")``; provides ``energy`` (eV), ``free_energy``,
    ``forces`` (eV/Å), ``energies`` (per atom, eV) and, for periodic cells,
    ``stress`` (eV/Å³, Voigt). A direct-force model provides ``forces`` only; asking
    for its energy raises ASE's ``PropertyNotImplementedError``.
    Raises ``ModelFileError`` for a bad model file.
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress"]

    def __init__(self, model: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.module, self.metadata = load_deployed(model)
        if self.metadata.get("direct_forces", False):
            self.implemented_properties = ["forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        res = predict(self.module, self.metadata, self.atoms)
        if self.metadata.get("direct_forces", False):
            self.results = {"forces": res["forces"]}
            return
        self.results = {"energy": res["energy"], "free_energy": res["energy"], "forces": res["forces"],
                        "energies": res["energies"]}
        if "stress" in res:
            s = res["stress"]
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
