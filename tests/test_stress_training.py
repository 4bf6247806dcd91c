"""The stress term of the training loss (periodic data with stress labels)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from conftest import random_schnet
from mlff.calculator import MLFFCalculator
from mlff.deploy import export_model
from mlff.errors import ConfigError
from mlff.graph import atoms_to_graph, collate
from mlff.train.config import TrainConfig
from mlff.train.trainer import Trainer, energy_and_forces, energy_forces_stress, stress_weight_for


def labelled_cu(n: int, seed: int = 0, stress: bool = True):
    """Strained, rattled 32-atom Cu cells with EMT energy, forces (and stress) labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        labels = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        if stress:
            labels["stress"] = atoms.get_stress()
        atoms.calc = None
        atoms.info["energy"] = labels["energy"]
        atoms.arrays["forces"] = labels["forces"]
        if stress:
            atoms.info["stress"] = labels["stress"]
        frames.append(atoms)
    return frames


def test_strain_derivative_stress_equals_the_deployed_models_virial_stress(tmp_path):
    model = random_schnet(["Cu"], seed=8)
    frames = labelled_cu(2, seed=1)
    batch = collate([atoms_to_graph(a, model.species, model.r_max) for a in frames])
    energy, forces, stress = energy_forces_stress(model, batch, create_graph=False)
    energy0, forces0 = energy_and_forces(model, batch, create_graph=False)
    torch.testing.assert_close(energy, energy0, rtol=1e-12, atol=0)
    torch.testing.assert_close(forces, forces0, rtol=0, atol=1e-12)
    export_model(model, tmp_path / "m.pt")
    for k, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = MLFFCalculator(tmp_path / "m.pt")
        ref = atoms.get_stress(voigt=False)
        assert np.abs(ref).max() > 1e-4
        np.testing.assert_allclose(stress[k].detach().numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_stress_weight_default_follows_the_labels():
    model = random_schnet(["Cu"], seed=8)
    with_stress = [atoms_to_graph(a, ["Cu"], 5.0) for a in labelled_cu(2, seed=2)]
    without = [atoms_to_graph(a, ["Cu"], 5.0) for a in labelled_cu(2, seed=2, stress=False)]
    assert stress_weight_for(TrainConfig(), model, with_stress) == 1.0
    assert stress_weight_for(TrainConfig(), model, without) == 0.0
    assert stress_weight_for(TrainConfig(stress_weight=0.0), model, with_stress) == 0.0
    assert stress_weight_for(TrainConfig(stress_weight=0.3), model, with_stress) == 0.3
    with pytest.raises(ConfigError, match="stress labels"):
        stress_weight_for(TrainConfig(stress_weight=0.3), model, without)
    with pytest.raises(ConfigError, match="stress_weight must be"):
        TrainConfig(stress_weight=-1.0).validate()


@pytest.mark.parametrize("stress_weight", [None, 0.0])
def test_training_with_stress_labels(tmp_path, stress_weight):
    frames = labelled_cu(6, seed=3)
    config = TrainConfig(model="schnet", model_params={"n_features": 8, "n_interactions": 2}, epochs=2,
                         batch_size=2, dtype="float64", stress_weight=stress_weight)
    lines = []
    result = Trainer(config, tmp_path / "run").fit(frames[:4], frames[4:], progress=False, log=lines.append)
    expected = "stress weight 1" if stress_weight is None else "stress weight 0"
    assert any(expected in line for line in lines), lines
    assert np.isfinite(result["best_valid_force_mae"])
