"""Shared fixtures: small labelled datasets and deployed models, built once per session."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.md.verlet import VelocityVerlet
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

import mlff.data.molecules as _molecules
from mlff.deploy import export_model
from mlff.models import build_model


def _stored_molecules() -> None:
    """Without RDKit (the lent GPU machine: its wheel does not fit in what a call carries),
    ``molecule()`` returns the RDKit geometries stored in tests/data/molecules.extxyz
    (tests/data/make_molecules.py) and skips a test that asks for another seed. Runs before
    the test modules import ``molecule``."""
    try:
        import rdkit  # noqa: F401
    except ImportError:
        from pathlib import Path

        from ase.io import read

        stored = {a.info["name"]: a for a in read(Path(__file__).parent / "data" / "molecules.extxyz", ":")}
        build = _molecules.molecule

        def stored_molecule(name: str, seed: int = _molecules.EMBED_SEED):
            key = _molecules._normalise_name(name)
            if key not in stored:
                return build(name, seed)  # unknown names raise DataError before needing RDKit
            if seed != _molecules.EMBED_SEED:
                pytest.skip("needs RDKit (a molecule with a non-default seed)")
            atoms = stored[key].copy()
            atoms.info = {"name": key}
            return atoms

        _molecules.molecule = stored_molecule


_stored_molecules()
molecule = _molecules.molecule

def emt_frames(atoms, n_frames: int, seed: int = 0):
    """Short EMT MD: labelled frames without tblite (fast, deterministic)."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=800, rng=np.random.default_rng(seed))
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    frames = []
    for _ in range(n_frames):
        dyn.run(4)
        frame = atoms.copy()
        frame.calc = SinglePointCalculator(frame, energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        frames.append(frame)
    return frames


def same_species_permutation(atoms, rng) -> np.ndarray:
    """A random permutation of atom indices that only exchanges atoms of the same element."""
    symbols = np.array(atoms.get_chemical_symbols())
    perm = np.arange(len(atoms))
    for s in set(symbols):
        idx = np.flatnonzero(symbols == s)
        perm[idx] = rng.permutation(idx)
    return perm


def assert_forces_are_minus_gradient(energy_of, atoms, forces, atom_indices=None, h=1e-5, rel=1e-6,
                                     abs_tol=1e-8):
    """Central finite differences of ``energy_of(atoms)`` (eV) at a few atoms equal ``forces`` (eV/Å)
    (``pytest.approx`` with ``rel`` and ``abs_tol``)."""
    assert np.abs(forces).max() > 1e-3, "forces are trivial; the test would prove nothing"
    for i in atom_indices or (0, len(atoms) // 2, len(atoms) - 1):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            fd = -(energy_of(plus) - energy_of(minus)) / (2 * h)
            assert fd == pytest.approx(forces[i, k], rel=rel, abs=abs_tol)


def forces_from_edge_grad(edge_index: torch.Tensor, edge_grad: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Forces ``[n_atoms, 3]`` float64 from a model's ``edge_grad = ∂E/∂r_ij`` ``[e, 3]``:
    ``F_i = Σ_j ∂E/∂r_ij − Σ_j ∂E/∂r_ji`` (as ``mlff.calculator.predict``)."""
    grad = edge_grad.detach().double()
    forces = torch.zeros(n_atoms, 3, dtype=torch.float64).index_add_(0, edge_index[0], grad)
    return forces.index_add_(0, edge_index[1], -grad)


def sheared_cu(repeat: int, xy: float, xz: float, yz: float, seed: int):
    """Rattled fcc Cu (``repeat``³ cubic cells) in a restricted-triclinic cell with tilts xy, xz, yz (Å)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(repeat)
    frac = atoms.get_scaled_positions()
    L = atoms.cell[0, 0]
    atoms.set_cell([[L, 0, 0], [xy, L, 0], [xz, yz, L]], scale_atoms=False)
    atoms.set_scaled_positions(frac)
    atoms.rattle(0.05, seed=seed)
    return atoms


@pytest.fixture(scope="session")
def toluene_emt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "toluene_emt.extxyz"
    write(path, emt_frames(molecule("toluene"), 40), format="extxyz")
    return path


def random_schnet(species, seed=0, **hparams):
    """A SchNet with random (non-zero) readout so energies and forces are non-trivial."""
    torch.manual_seed(seed)
    model = build_model("schnet", species, hparams.pop("r_max", 5.0), dtype=torch.float64,
                        **{"n_features": 16, "n_interactions": 3, **hparams})
    torch.nn.init.normal_(model.readout[-1].weight, std=0.5)
    model.energy_scale.scale.fill_(0.5)
    return model


@pytest.fixture(scope="session")
def deployed_toluene(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "schnet_CH.pt"
    export_model(random_schnet(["C", "H"]), path)
    return path


@pytest.fixture(scope="session")
def deployed_cu(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "schnet_Cu.pt"
    export_model(random_schnet(["Cu"], seed=1), path)
    return path


@pytest.fixture
def cu_box():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=3)
    return atoms
