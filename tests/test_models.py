"""Physics of the models and the deployed module: gradients, symmetries, round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from conftest import assert_forces_are_minus_gradient, random_schnet, same_species_permutation
from mlff.calculator import MLFFCalculator, predict
from mlff.data.molecules import molecule
from mlff.deploy import export_model, load_deployed
from mlff.graph import atoms_to_graph
from mlff.train.checkpoint import load_checkpoint, model_from_record, model_record, save_checkpoint


def energy(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.mark.parametrize("system", ["toluene", "cu"])
def test_forces_are_minus_finite_difference_gradient(system, deployed_toluene, deployed_cu, cu_box):
    atoms = molecule("toluene") if system == "toluene" else cu_box
    calc = MLFFCalculator(deployed_toluene if system == "toluene" else deployed_cu)
    atoms.calc = calc
    assert_forces_are_minus_gradient(lambda a: energy(a, calc), atoms, atoms.get_forces())


def test_stress_is_finite_difference_strain_derivative(deployed_cu, cu_box):
    cu_box.calc = MLFFCalculator(deployed_cu)
    stress = cu_box.get_stress()
    numeric = cu_box.calc.calculate_numerical_stress(cu_box, d=1e-5)
    np.testing.assert_allclose(stress, numeric, rtol=1e-5, atol=1e-9)


def test_energy_invariant_under_rotation_translation_permutation(deployed_toluene):
    module, meta = load_deployed(deployed_toluene)
    atoms = molecule("toluene")
    ref = predict(module, meta, atoms)
    rng = np.random.default_rng(0)
    R = Rotation.random(random_state=1).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ R.T + rng.normal(size=3) * 10
    res = predict(module, meta, moved)
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"] @ R.T, atol=1e-10)  # forces rotate with the frame
    perm = same_species_permutation(atoms, rng)
    permuted = atoms[perm]
    res = predict(module, meta, permuted)
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"][perm], atol=1e-10)


def test_periodic_energy_invariant_under_cell_translation(deployed_cu, cu_box):
    module, meta = load_deployed(deployed_cu)
    ref = predict(module, meta, cu_box)
    shifted = cu_box.copy()
    shifted.positions += [1.3, -0.7, 2.9]
    shifted.wrap()
    res = predict(module, meta, shifted)
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"], atol=1e-10)


def test_small_cell_sees_periodic_images(deployed_cu):
    """A 4-atom cell (a = 3.61 Å < 2 r_max) must equal the same crystal as a 3x3x3 supercell."""
    from ase.build import bulk
    module, meta = load_deployed(deployed_cu)
    small = bulk("Cu", "fcc", a=3.61, cubic=True)
    big = small.repeat(3)
    e_small = predict(module, meta, small)["energy"] / len(small)
    e_big = predict(module, meta, big)["energy"] / len(big)
    assert e_small == pytest.approx(e_big, rel=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_deployed_module_matches_eager_model(tmp_path, dtype, tol):
    model = random_schnet(["C", "H"]).to(dtype)
    path = tmp_path / "m.pt"
    meta = export_model(model, path, dtype=dtype)
    assert meta["dtype"] == str(dtype).removeprefix("torch.") and meta["n_message_passing"] == 3
    module, _ = load_deployed(path)
    g = atoms_to_graph(molecule("toluene"), model.species, model.r_max).to(dtype)
    eager = model(g.species, g.edge_index, g.edge_vec())
    out = module(g.species, g.edge_index, g.edge_vec())
    torch.testing.assert_close(out["atomic_energy"], eager.detach(), rtol=tol, atol=tol)


def test_checkpoint_round_trip_is_exact(tmp_path):
    model = random_schnet(["C", "H"], seed=7)
    save_checkpoint(tmp_path / "m.ckpt", model_record(model))
    clone = model_from_record(load_checkpoint(tmp_path / "m.ckpt"))
    g = atoms_to_graph(molecule("toluene"), model.species, model.r_max)
    a = model(g.species, g.edge_index, g.edge_vec())
    b = clone(g.species, g.edge_index, g.edge_vec())
    assert torch.equal(a, b)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
