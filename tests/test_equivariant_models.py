"""The e3nn models (nequip, tfn_dfp, se3_transformer): symmetry, gradients, the direct-force
plumbing (deploy, calculator, eval, training) and e3nn conventions. Small widths: fast."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import yaml
from ase.calculators.calculator import PropertyNotImplementedError
from e3nn import o3

from conftest import assert_forces_are_minus_gradient, forces_from_edge_grad, same_species_permutation, sheared_cu
from mlff.calculator import MLFFCalculator, predict
from mlff.cli import main as mlff
from mlff.data.molecules import molecule
from mlff.deploy import export_model, load_deployed
from mlff.deploy import main as mlff_deploy
from mlff.graph import atoms_to_graph
from mlff.models import build_model
from mlff.train.checkpoint import load_checkpoint, model_from_record, model_record, save_checkpoint

SMALL = {
    "nequip": ("nequip", dict(n_features=8, l_max=2, n_interactions=2, n_basis=6, radial_hidden=16)),
    "nequip_direct": ("nequip", dict(n_features=8, l_max=1, n_interactions=2, n_basis=6, radial_hidden=16,
                                     direct_forces=True)),
    "tfn_dfp": ("tfn_dfp", dict(n_features=8, n_layers=3, n_basis=8, radial_hidden=16)),
    "se3_transformer": ("se3_transformer", dict(n_features=4, n_layers=2, n_heads=2, head_features=2, n_basis=6,
                                                radial_hidden=16, si_hidden=8)),
    "se3_transformer_direct": ("se3_transformer", dict(n_features=4, n_layers=2, n_heads=2, head_features=2, n_basis=6,
                                                       radial_hidden=16, si_hidden=8, direct_forces=True)),
}
ENERGY = [k for k, (_, hp) in SMALL.items() if not hp.get("direct_forces") and k != "tfn_dfp"]
DIRECT = [k for k in SMALL if k not in ENERGY]


def random_model(name: str, seed: int = 0, dtype=torch.float64):
    """A small model with every zero-initialised parameter (readouts, biases) randomised,
    so outputs are non-trivial; ``avg_num_neighbors`` fitted on toluene."""
    kind, hp = SMALL[name]
    torch.manual_seed(seed)
    model = build_model(kind, ["C", "H"], 5.0, dtype=dtype, **hp)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 0 and not p.any():
                p.normal_(0.0, 0.5)
        model.energy_scale.scale.fill_(0.7)
    model.fit_statistics([atoms_to_graph(molecule("toluene"), model.species, model.r_max)])
    return model


@pytest.fixture(scope="module")
def models():
    """One random small model of each configuration (tests must not modify them)."""
    return {name: random_model(name) for name in SMALL}


@pytest.fixture(scope="module")
def deployed(models, tmp_path_factory):
    """Deployed (fp64) file of each small model, exported once."""
    paths = {}
    for name, model in models.items():
        path = tmp_path_factory.mktemp("eqmodels") / f"{name}.pt"
        export_model(model, path)
        paths[name] = path
    return paths


def rotated(atoms, R, t):
    moved = atoms.copy()
    moved.positions = atoms.positions @ R.T + t
    return moved


@pytest.mark.parametrize("name", SMALL)
def test_metadata_and_kind(name, deployed):
    _, meta = load_deployed(deployed[name])
    assert meta["direct_forces"] is (name in DIRECT)
    assert meta["model_kind"] == SMALL[name][0] and meta["n_message_passing"] >= 2


@pytest.mark.parametrize("name", ENERGY)
def test_energy_model_forces_are_minus_finite_difference_gradient(name, deployed):
    atoms = molecule("toluene")
    atoms.calc = MLFFCalculator(deployed[name])

    def energy_of(moved):
        moved.calc = atoms.calc
        return moved.get_potential_energy()

    assert_forces_are_minus_gradient(energy_of, atoms, atoms.get_forces(), atom_indices=(0, len(atoms) - 1))


@pytest.mark.parametrize("name", ENERGY)
def test_energy_invariant_under_rotation_translation_permutation(name, deployed):
    module, meta = load_deployed(deployed[name])
    atoms = molecule("toluene")
    ref = predict(module, meta, atoms)
    R = o3.rand_matrix(dtype=torch.float64).numpy()
    rng = np.random.default_rng(1)
    res = predict(module, meta, rotated(atoms, R, rng.normal(size=3) * 5))
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"] @ R.T, atol=1e-10)
    perm = same_species_permutation(atoms, rng)
    res = predict(module, meta, atoms[perm])
    assert res["energy"] == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(res["forces"], ref["forces"][perm], atol=1e-10)


@pytest.mark.parametrize("name", DIRECT)
def test_direct_forces_equivariant_under_rotation_translation_permutation(name, deployed):
    module, meta = load_deployed(deployed[name])
    atoms = molecule("toluene")
    ref = predict(module, meta, atoms)
    assert set(ref) == {"forces"}
    assert np.abs(ref["forces"]).max() > 1e-3, "forces are trivial; the test would prove nothing"
    rng = np.random.default_rng(2)
    for _ in range(2):
        R = o3.rand_matrix(dtype=torch.float64).numpy()
        res = predict(module, meta, rotated(atoms, R, rng.normal(size=3) * 5))
        np.testing.assert_allclose(res["forces"], ref["forces"] @ R.T, atol=1e-10)
    # reflections too (E(3)): forces are polar vectors (1o)
    res = predict(module, meta, rotated(atoms, -np.eye(3), 0.0))
    np.testing.assert_allclose(res["forces"], -ref["forces"], atol=1e-10)
    perm = same_species_permutation(atoms, rng)
    res = predict(module, meta, atoms[perm])
    np.testing.assert_allclose(res["forces"], ref["forces"][perm], atol=1e-10)


@pytest.mark.parametrize("name", DIRECT)
def test_direct_force_calculator_has_no_energy(name, deployed):
    atoms = molecule("toluene")
    atoms.calc = MLFFCalculator(deployed[name])
    assert atoms.get_forces().shape == (len(atoms), 3)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_potential_energy()


@pytest.mark.parametrize("name", SMALL)
def test_deployed_module_matches_eager_model(name, models, deployed):
    model = models[name]
    module, _ = load_deployed(deployed[name])
    g = atoms_to_graph(molecule("toluene"), model.species, model.r_max)
    out = module(g.species, g.edge_index, g.edge_vec())
    if model.direct_forces:
        eager = model(g.species, g.edge_index, g.edge_vec()).detach()
        torch.testing.assert_close(out["forces"], eager, rtol=1e-10, atol=1e-10)
    else:
        vec = g.edge_vec().requires_grad_(True)
        eager = model(g.species, g.edge_index, vec)
        (grad,) = torch.autograd.grad(eager.sum(), vec)
        torch.testing.assert_close(out["atomic_energy"], eager.detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out["edge_grad"], grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["nequip", "se3_transformer_direct"])
def test_float32_export_agrees_with_float64(name, models, deployed, tmp_path):
    export_model(models[name], tmp_path / "m32.pt", dtype=torch.float32)
    atoms = molecule("toluene")
    res = predict(*load_deployed(tmp_path / "m32.pt"), atoms)
    ref = predict(*load_deployed(deployed[name]), atoms)
    np.testing.assert_allclose(res["forces"], ref["forces"], atol=1e-4)


@pytest.mark.parametrize("name", SMALL)
def test_checkpoint_round_trip_is_exact(name, tmp_path):
    model = random_model(name, seed=3)
    save_checkpoint(tmp_path / "m.ckpt", model_record(model))
    clone = model_from_record(load_checkpoint(tmp_path / "m.ckpt"))
    assert clone.direct_forces == model.direct_forces
    g = atoms_to_graph(molecule("toluene"), model.species, model.r_max)
    assert torch.equal(model(g.species, g.edge_index, g.edge_vec()), clone(g.species, g.edge_index, g.edge_vec()))
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


@pytest.mark.parametrize("name", SMALL)
def test_radial_networks_once_per_pair_equal_once_per_edge(name, models, monkeypatch):
    """The radial MLPs run once per atom pair (``radial_per_pair``); with one per edge instead,
    outputs and forces are the same (periodic Cu with images of each atom in its own
    neighbour list, and toluene)."""
    import mlff.models.nequip
    import mlff.models.se3_transformer
    import mlff.models.tfn

    model = models[name]
    cu = sheared_cu(1, 0.3, -0.2, 0.1, seed=2)
    cu.set_chemical_symbols(["C", "H"] * (len(cu) // 2))
    results, calls = [], []
    for per_pair in (True, False):
        if not per_pair:
            def per_edge(edge_index, edge_vec, radial, r):
                calls.append(radial.shape[0])
                return radial, r, torch.arange(radial.shape[0], device=radial.device)
            for module in (mlff.models.nequip, mlff.models.tfn, mlff.models.se3_transformer):
                monkeypatch.setattr(module, "radial_per_pair", per_edge)
        out = []
        for atoms in (cu, molecule("toluene")):
            g = atoms_to_graph(atoms, model.species, model.r_max)
            vec = g.edge_vec().requires_grad_(True)
            y = model(g.species, g.edge_index, vec)
            (grad,) = torch.autograd.grad((y * torch.linspace(0.5, 1.5, y.numel()).reshape(y.shape)).sum(), vec)
            out.append((y.detach(), forces_from_edge_grad(g.edge_index, grad, len(atoms))))
        results.append(out)
    assert len(calls) == 2  # the per-edge variant ran
    for (y1, f1), (y2, f2) in zip(*results):
        assert f1.abs().max() > 1e-3
        torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(f1, f2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", SMALL)
def test_smooth_at_cutoff(name, models):
    """An atom just inside ``r_max`` of one atom (and beyond it from the rest) barely changes
    that atom's output: messages (and attention weights) vanish smoothly at the cutoff."""
    model = models[name]
    species = torch.tensor([0, 1, 1])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.66, 0.528, 0.704], [-(model.r_max - 1e-3), 0.0, 0.0]],
                       dtype=torch.float64)  # |r_01| = 1.1 Å, |r_02| = r_max − 1e-3 Å, |r_12| > r_max

    def run(n):
        ei = torch.tensor([[i, j] for i in range(n) for j in range(n)
                           if i != j and float((pos[i] - pos[j]).norm()) < model.r_max], dtype=torch.int64).T
        return model(species[:n], ei, pos[ei[1]] - pos[ei[0]]).detach()[:2]

    with_far, without = run(3), run(2)
    assert without.abs().max() > 1e-3
    torch.testing.assert_close(with_far, without, rtol=0, atol=1e-6)


def test_l1_features_rotate_with_e3nn_wigner_d(models):
    """Conventions: the hidden 1o/2e features rotate by e3nn's Wigner-D, and e3nn's l = 1
    Wigner-D is the Cartesian rotation itself (so a 1o readout is a Cartesian force)."""
    model = models["nequip"]
    g = atoms_to_graph(molecule("toluene"), model.species, model.r_max)
    feats = []
    hook = model.interactions[0].register_forward_hook(lambda mod, inp, out: feats.append(out.detach()))
    R = o3.rand_matrix(dtype=torch.float64)
    model(g.species, g.edge_index, g.edge_vec())
    model(g.species, g.edge_index, g.edge_vec() @ R.T)
    hook.remove()
    irreps = model.interactions[0].irreps_out
    assert irreps == o3.Irreps("8x0e+8x1o+8x2e")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds D from float generators in the default dtype
    try:
        D = irreps.D_from_matrix(R)
        D1 = o3.Irreps("1o").D_from_matrix(R)
    finally:
        torch.set_default_dtype(old)
    torch.testing.assert_close(D1, R, rtol=0, atol=1e-12)
    assert feats[0][:, 8:32].abs().max() > 1e-2
    torch.testing.assert_close(feats[1], feats[0] @ D.T, rtol=0, atol=1e-10)


def _train(data, out, name, *extra):
    kind, hp = SMALL[name]
    cfg = out.parent / f"{out.name}.yaml"
    cfg.write_text(yaml.safe_dump({"model_params": {k: v for k, v in hp.items()}}))
    return mlff(["train", "--model", kind, "--train", str(data), "--out", str(out), "--config", str(cfg),
                 "--n-valid", "4", "--n-train", "8", "--batch-size", "4", "--epochs", "1", "--dtype", "float64",
                 "--no-progress", *extra])


@pytest.fixture(scope="module")
def toluene_5(toluene_emt_file, tmp_path_factory):
    """The first 5 frames of the EMT toluene fixture (keeps ``mlff eval`` short)."""
    from ase.io import read, write

    path = tmp_path_factory.mktemp("data") / "toluene_5.extxyz"
    write(path, read(toluene_emt_file, index=":5"), format="extxyz")
    return path


@pytest.mark.parametrize("name", SMALL)
def test_train_one_epoch(name, toluene_emt_file, toluene_5, tmp_path, capsys):
    """``mlff train --model KIND`` (one epoch); for direct-force models also ``mlff-deploy``
    and ``mlff eval`` (energy metrics null, the training CSV's energy columns NaN)."""
    run = tmp_path / "run"
    assert _train(toluene_emt_file, run, name) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["valid_force_mae"]) > 0
    record = load_checkpoint(run / "best.ckpt")
    assert float(record["model_state"]["avg_num_neighbors"]) == pytest.approx(12.9, abs=0.5)  # fitted on toluene
    if name in ENERGY:
        assert math.isfinite(float(rows[0]["valid_energy_mae"]))
        return
    assert math.isnan(float(rows[0]["valid_energy_mae"])) and math.isnan(float(rows[0]["train_energy_mae"]))
    model = tmp_path / "model.pt"
    assert mlff_deploy([str(run / "best.ckpt"), "-o", str(model)]) == 0
    capsys.readouterr()
    assert mlff(["eval", str(model), str(toluene_5), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["energy_mae_meV_per_atom"] is None and metrics["energy_rmse_meV_per_atom"] is None
    assert metrics["n_structures"] == 5 and 0 < metrics["force_mae_meV_per_A"] < metrics["force_rmse_meV_per_A"]
    if name == "tfn_dfp":  # the text report too
        assert mlff(["eval", str(model), str(toluene_5)]) == 0
        assert "no energy" in capsys.readouterr().out
