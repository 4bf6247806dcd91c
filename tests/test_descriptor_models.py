"""Descriptor and many-body models: Behler–Parrinello (``bp``), DTNN (``dtnn``) and the
coupled many-body expansion (``mbe``).

* symmetry functions against hand-computed values (plain ``math``) for a 3-atom
  configuration, and against dscribe's ACSF (same conventions: un-normalised η,
  angular sum over unordered pairs ``j < k``, cosine cutoff; dscribe's G1 is our G2
  with ``η = r_s = 0``). The dscribe test is skipped if dscribe is not installed;
* for every model: forces = −finite-difference gradient, invariance under rotation,
  translation and permutation of like atoms (toluene and a periodic Cu box), deployed
  TorchScript module = eager model (float64 and float32), exact checkpoint round
  trip, smoothness at the cutoff, and one epoch of ``mlff train --model NAME``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from conftest import assert_forces_are_minus_gradient, same_species_permutation
from mlff.calculator import predict
from mlff.cli import main as mlff
from mlff.data.molecules import molecule
from mlff.deploy import export_model, load_deployed
from mlff.errors import ConfigError
from mlff.graph import atoms_to_graph, collate
from mlff.models import build_model
from mlff.models.symmetry_functions import SymmetryFunctions, edge_pairs, parameter_set
from mlff.train.checkpoint import load_checkpoint, model_from_record, model_record, save_checkpoint

KINDS = ["bp", "dtnn", "mbe"]
# the C++ kernel and the pure-PyTorch reference of the symmetry functions (tests/test_symmetry_ops.py)
IMPLEMENTATIONS = ["ops", "torch"]
SMALL = {"bp": {"symmetry_functions": "Gs-3-4-1-G4"}, "dtnn": {"n_features": 16, "n_factors": 24, "n_interactions": 2},
         "mbe": {"n_hidden": 24}}


def random_model(kind: str, species: list[str], seed: int = 0, r_max: float = 5.0, fit_on=None, **hparams):
    """A model with all weights random (non-zero output layer) so energies and forces are non-trivial.
    ``fit_on``: structures for the model's ``fit_statistics`` hook (BP feature scaling, MBE 1/r scaling)."""
    torch.manual_seed(seed)
    model = build_model(kind, species, r_max, dtype=torch.float64, **{**SMALL[kind], **hparams})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    model.energy_scale.scale.fill_(0.5)
    model.energy_scale.reference_energy.copy_(torch.linspace(-3.0, -1.0, len(species), dtype=torch.float64))
    if fit_on is not None and hasattr(model, "fit_statistics"):
        model.fit_statistics([atoms_to_graph(a, species, r_max) for a in fit_on])
    return model


def energy_forces(model, atoms):
    """Eager energy (eV) and forces (eV/Å) by autograd, float64 numpy."""
    g = atoms_to_graph(atoms, model.species, model.r_max)
    dtype = next(model.parameters()).dtype
    pos = g.pos.to(dtype).requires_grad_(True)
    energy = model(g.species, g.edge_index, g.to(dtype).edge_vec(pos)).sum()
    (grad,) = torch.autograd.grad(energy, pos)
    return float(energy.detach()), -grad.double().numpy()


def toluene():
    atoms = molecule("toluene")
    atoms.rattle(0.03, seed=5)
    return atoms


def cu_small():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms, 7.22 Å cell < 2 r_max
    atoms.rattle(0.08, seed=3)
    return atoms


SYSTEMS = {"toluene": (["H", "C"], toluene), "cu": (["Cu"], cu_small)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small tensors: one thread is faster, and immune to oversubscription on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models():
    """One random model per (kind, system), statistics fitted on that system."""
    out = {}
    for kind in KINDS:
        for name, (species, build) in SYSTEMS.items():
            out[kind, name] = random_model(kind, species, seed=len(out), fit_on=[build()])
    return out


# --------------------------------------------------------------------------- symmetry functions
def fc_cos(r, rc):
    return 0.5 * (math.cos(math.pi * r / rc) + 1.0) if r < rc else 0.0


def fc_poly(r, rc, gamma):
    x = r / rc
    return 1.0 + gamma * x ** (gamma + 1) - (gamma + 1) * x**gamma if r < rc else 0.0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("cutoff", ["cosine", "polynomial"])
def test_symmetry_functions_match_hand_computed_values(cutoff, implementation):
    """O–H–H triangle, species order [H, O]: every G2/G4/G5 entry of every atom written
    out from the formulas (thesis Eqs. 6.6–6.9, G5 of Behler 2015) with plain math."""
    rc, gamma = 3.0, 5.0
    fc = (lambda r: fc_cos(r, rc)) if cutoff == "cosine" else (lambda r: fc_poly(r, rc, gamma))
    pos = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.25, 0.93, 0.1]])  # O, H, H
    atoms = Atoms("OH2", positions=pos)
    radial = [[0.0, 0.0], [0.7, 0.0], [2.0, 0.9]]
    angular = [[4, 0.3, 1.0, 1.0], [4, 0.1, 2.0, -1.0], [5, 0.2, 1.0, -1.0], [5, 0.05, 4.0, 1.0]]
    sf = SymmetryFunctions(2, rc, radial, angular, cutoff=cutoff, gamma=gamma, implementation=implementation)
    g = atoms_to_graph(atoms, ["H", "O"], rc)
    got = sf(g.species, g.edge_index, g.edge_vec()).numpy()
    assert got.shape == (3, 2 * 3 + 3 * 4)

    def dist(a, b):
        return math.dist(pos[a], pos[b])

    def g2(i, j, eta, rs):
        r = dist(i, j)
        return math.exp(-eta * (r - rs) ** 2) * fc(r)

    def ang(i, j, k, kind, eta, zeta, lam):
        rij, rik, rjk = dist(i, j), dist(i, k), dist(j, k)
        cos = float(np.dot(pos[j] - pos[i], pos[k] - pos[i])) / (rij * rik)
        value = 2 ** (1 - zeta) * (1 + lam * cos) ** zeta * fc(rij) * fc(rik)
        if kind == 4:
            return value * math.exp(-eta * (rij**2 + rik**2 + rjk**2)) * fc(rjk)
        return value * math.exp(-eta * (rij**2 + rik**2))

    O, H1, H2 = 0, 1, 2
    zeros_r, zeros_a = [0.0] * 3, [0.0] * 4
    # layout: [G2 from H neighbours | G2 from O neighbours | pair (H,H) | pair (H,O) | pair (O,O)]
    expected_O = ([g2(O, H1, *p) + g2(O, H2, *p) for p in radial] + zeros_r
                  + [ang(O, H1, H2, *p) for p in angular] + zeros_a + zeros_a)
    expected_H1 = ([g2(H1, H2, *p) for p in radial] + [g2(H1, O, *p) for p in radial]
                   + zeros_a + [ang(H1, O, H2, *p) for p in angular] + zeros_a)
    expected_H2 = ([g2(H2, H1, *p) for p in radial] + [g2(H2, O, *p) for p in radial]
                   + zeros_a + [ang(H2, O, H1, *p) for p in angular] + zeros_a)
    np.testing.assert_allclose(got, np.array([expected_O, expected_H1, expected_H2]), rtol=1e-12, atol=1e-15)
    assert abs(got[O, 6]) > 1e-3, "angular value too small to test anything"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_angular_sum_is_over_unordered_pairs(implementation):
    """Convention: Σ_{j<k} (AMP, dscribe); the thesis's ordered Σ_{j,k≠i} is exactly twice ours.
    CH4: 4 neighbours of C → 6 unordered pairs, each with the same tetrahedral angle."""
    from ase.build import molecule as ase_molecule

    atoms = ase_molecule("CH4")
    sf = SymmetryFunctions(2, 4.0, [], [[5, 0.0, 1.0, 1.0]], cutoff="cosine", implementation=implementation)
    g = atoms_to_graph(atoms, ["H", "C"], 4.0)
    got = sf(g.species, g.edge_index, g.edge_vec()).numpy()
    c = int(np.flatnonzero(np.array(atoms.get_chemical_symbols()) == "C")[0])
    h = [k for k in range(5) if k != c]
    rs = [atoms.get_distance(c, k) for k in h]
    def term(a, b):
        cos = float(np.dot(atoms.positions[h[a]] - atoms.positions[c], atoms.positions[h[b]] - atoms.positions[c])
                    / (rs[a] * rs[b]))
        return (1 + cos) * fc_cos(rs[a], 4.0) * fc_cos(rs[b], 4.0)

    unordered = sum(term(a, b) for a in range(4) for b in range(a + 1, 4))
    ordered = sum(term(a, b) for a in range(4) for b in range(4) if a != b)
    # pair channel (H, H) is the first of the three angular blocks
    assert got[c, 0] == pytest.approx(unordered, rel=1e-12)
    assert ordered == pytest.approx(2 * got[c, 0], rel=1e-12)


def test_edge_pairs_lists_every_unordered_pair_once():
    rng = np.random.default_rng(0)
    centre = torch.as_tensor(rng.integers(0, 6, size=40))  # unsorted, one node without edges
    a, b = edge_pairs(centre, 7)
    pairs = {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist())}
    expected = {(x, y) for x in range(40) for y in range(x + 1, 40) if centre[x] == centre[y]}
    assert len(pairs) == len(a) and pairs == expected
    empty_a, empty_b = edge_pairs(torch.zeros(0, dtype=torch.int64), 3)
    assert empty_a.numel() == 0 and empty_b.numel() == 0


def test_parameter_sets_follow_the_thesis():
    """Seed 004 §1.4: counts and values of the AMP default and the thesis's custom sets;
    η in the AMP convention divided by r_c²."""
    radial, angular = parameter_set("Gs-6-10-1-G4", 6.0)
    assert len(radial) == 12 and len(angular) == 20
    np.testing.assert_allclose([p[0] * 36 for p in radial[:6]], np.linspace(1, 20, 6))
    np.testing.assert_allclose([p[1] for p in radial[6:]], [0.5, 1.5, 2.5, 3.5, 4.5, 5.5])
    np.testing.assert_allclose([p[0] * 36 for p in radial[6:]], 5.0)
    assert {p[0] for p in angular} == {4.0} and {p[3] for p in angular} == {1.0, -1.0} and {p[2] for p in angular} == {1.0}
    np.testing.assert_allclose(sorted({round(p[1] * 36, 10) for p in angular}), np.linspace(0.01, 3.0, 10))
    assert [len(s) for s in parameter_set("cu_emt_final", 5.0)] == [14, 16]
    assert [len(s) for s in parameter_set("si_sw_final", 5.0)] == [14, 22]
    assert [len(s) for s in parameter_set("Gs-10-14-2-G5", 6.0)] == [20, 56]
    r, a = parameter_set("amp_default", 6.0)
    np.testing.assert_allclose([p[0] * 36 for p in r], [0.05, 0.232079, 1.077217, 5.0], rtol=1e-5)
    assert sorted((p[2], p[3]) for p in a) == [(1.0, -1.0), (1.0, 1.0), (4.0, -1.0), (4.0, 1.0)]
    with pytest.raises(ConfigError, match="unknown symmetry-function set"):
        parameter_set("Gs-6-G4", 6.0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("system", ["toluene", "cu"])
def test_symmetry_functions_match_dscribe(system, implementation):
    """dscribe (if installed) uses the same conventions: G2 = Σ exp(−η(r−r_s)²) f_c,
    G4/G5 summed over j < k, cosine cutoff, blocks per neighbour element then per
    element pair; its always-present G1 = Σ f_c is our G2 with η = r_s = 0."""
    dscribe = pytest.importorskip("dscribe.descriptors", reason="dscribe not installed")
    species, build = SYSTEMS[system]
    atoms = build()
    rc = 5.0
    g2 = [[0.5, 0.0], [1.5, 1.2], [4.0, 2.5]]
    g4 = [[0.02, 1.0, 1.0], [0.05, 2.0, -1.0]]
    g5 = [[0.01, 1.0, -1.0], [0.04, 4.0, 1.0]]
    ref = dscribe.ACSF(species=species, r_cut=rc, g2_params=g2, g4_params=g4, g5_params=g5,
                       periodic=bool(atoms.pbc.all())).create(atoms)
    sf = SymmetryFunctions(len(species), rc, [[0.0, 0.0]] + g2, [[4, *p] for p in g4] + [[5, *p] for p in g5],
                           cutoff="cosine", implementation=implementation)
    g = atoms_to_graph(atoms, species, rc)
    got = sf(g.species, g.edge_index, g.edge_vec()).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)  # both float64


# --------------------------------------------------------------------------- all models
@pytest.mark.parametrize("system", ["toluene", "cu"])
@pytest.mark.parametrize("kind", KINDS)
def test_forces_are_minus_finite_difference_gradient(kind, system, models):
    model = models[kind, system]
    atoms = SYSTEMS[system][1]()
    _, forces = energy_forces(model, atoms)
    assert_forces_are_minus_gradient(lambda a: energy_forces(model, a)[0], atoms, forces)
    assert np.abs(forces.sum(0)).max() < 1e-10  # translation invariance: no net force


@pytest.mark.parametrize("system", ["toluene", "cu"])
@pytest.mark.parametrize("kind", KINDS)
def test_energy_invariant_under_rotation_translation_permutation(kind, system, models):
    model = models[kind, system]
    atoms = SYSTEMS[system][1]()
    e0, f0 = energy_forces(model, atoms)
    rng = np.random.default_rng(1)
    R = Rotation.random(random_state=2).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ R.T + rng.normal(size=3) * 4
    if atoms.pbc.all():
        moved.cell = atoms.cell.array @ R.T
        moved.wrap()
    e, f = energy_forces(model, moved)
    assert e == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(f, f0 @ R.T, atol=1e-10)
    perm = same_species_permutation(atoms, rng)
    permuted = atoms[perm]
    e, f = energy_forces(model, permuted)
    assert e == pytest.approx(e0, rel=1e-12)
    np.testing.assert_allclose(f, f0[perm], atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_energy_is_smooth_when_an_atom_crosses_the_cutoff(kind):
    """H2 leaves the C–H1 pair through r_max (it has no other neighbour): just inside, the
    energy equals that of the separated system and the forces vanish with f_c(r) → 0."""
    model = random_model(kind, ["H", "C"], seed=4)
    rc = model.r_max

    def trimer(x):
        return Atoms("CHH", positions=[[0, 0, 0], [-1.1, 0.0, 0.0], [x, 0.0, 0.0]])

    e_far, f_far = energy_forces(model, trimer(rc + 1.0))
    e_in, f_in = energy_forces(model, trimer(rc - 1e-4))
    e_out, f_out = energy_forces(model, trimer(rc + 1e-4))
    e_mid, f_mid = energy_forces(model, trimer(rc - 0.5))
    assert abs(e_mid - e_far) > 1e-4, "the leaving atom does not interact; the test would prove nothing"
    assert e_in == pytest.approx(e_far, abs=1e-7) and e_out == pytest.approx(e_far, abs=1e-12)
    np.testing.assert_allclose(f_in, f_far, atol=1e-4)
    np.testing.assert_allclose(f_out, f_far, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_deployed_module_matches_eager_model(kind, dtype, tol, models, tmp_path):
    model = models[kind, "toluene"]
    path = tmp_path / f"{kind}.pt"
    meta = export_model(model, path, dtype=dtype)
    assert meta["model_kind"] == kind and meta["dtype"] == str(dtype).removeprefix("torch.")
    assert meta["n_message_passing"] == (SMALL["dtnn"]["n_interactions"] if kind == "dtnn" else 1)
    module, meta = load_deployed(path)
    atoms = toluene()
    res = predict(module, meta, atoms)
    eager = model.to(dtype)
    try:
        e, f = energy_forces(eager, atoms)
    finally:
        model.to(torch.float64)
    assert res["energy"] == pytest.approx(e, rel=tol)
    np.testing.assert_allclose(res["forces"], f, rtol=tol, atol=tol * np.abs(f).max())


@pytest.mark.parametrize("kind", KINDS)
def test_deployed_periodic_cu_matches_eager_model(kind, models, tmp_path):
    model = models[kind, "cu"]
    export_model(model, tmp_path / "m.pt")
    module, meta = load_deployed(tmp_path / "m.pt")
    atoms = cu_small()
    res = predict(module, meta, atoms)
    e, f = energy_forces(model, atoms)
    assert res["energy"] == pytest.approx(e, rel=1e-12)
    np.testing.assert_allclose(res["forces"], f, atol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip_is_exact(kind, models, tmp_path):
    model = models[kind, "toluene"]
    save_checkpoint(tmp_path / "m.ckpt", model_record(model))
    clone = model_from_record(load_checkpoint(tmp_path / "m.ckpt"))
    assert clone.hparams == model.hparams
    g = atoms_to_graph(toluene(), model.species, model.r_max)
    assert torch.equal(model(g.species, g.edge_index, g.edge_vec()), clone(g.species, g.edge_index, g.edge_vec()))
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), clone.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)


@pytest.mark.parametrize("kind", KINDS)
def test_ema_copy_equals_model(kind, models):
    """The trainer's EMA (AveragedModel, use_buffers=True) averages every buffer; integer
    buffers would be rounded through floating point (corrupted for decay 0.9). The models
    keep only floating-point buffers, so an EMA of unchanged weights is the model itself."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = models[kind, "toluene"]
    assert all(b.is_floating_point() for b in model.buffers())
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(3):
        ema.update_parameters(model)
    g = atoms_to_graph(toluene(), model.species, model.r_max)
    torch.testing.assert_close(ema.module(g.species, g.edge_index, g.edge_vec()),
                               model(g.species, g.edge_index, g.edge_vec()), rtol=1e-14, atol=1e-14)


def test_bp_feature_scaling_is_fitted_per_element():
    """After fit_statistics, each non-constant scaled symmetry function has mean 0 and
    std 1 over the training atoms of each element ("standard"), or spans [−1, 1] ("minmax")."""
    frames = [toluene() for _ in range(3)]
    for k, a in enumerate(frames):
        a.rattle(0.05, seed=k)
    graphs = [atoms_to_graph(a, ["H", "C"], 5.0) for a in frames]
    for scaling in ("standard", "minmax"):
        model = build_model("bp", ["H", "C"], 5.0, symmetry_functions="Gs-3-4-1-G5", feature_scaling=scaling)
        model.fit_statistics(graphs)
        g = collate(graphs)
        raw = model.descriptors(g.species, g.edge_index, g.edge_vec())
        scaled = (raw - model.feature_shift[g.species]) / model.feature_scale[g.species]
        for s in (0, 1):
            x = scaled[g.species == s]
            varying = raw[g.species == s].std(0) > 1e-8
            assert varying.sum() > 5
            if scaling == "standard":
                torch.testing.assert_close(x.mean(0)[varying], torch.zeros(int(varying.sum()), dtype=x.dtype))
                torch.testing.assert_close(x.std(0, correction=0)[varying], torch.ones(int(varying.sum()), dtype=x.dtype))
            else:
                torch.testing.assert_close(x.max(0).values[varying], torch.ones(int(varying.sum()), dtype=x.dtype))
                torch.testing.assert_close(x.min(0).values[varying], -torch.ones(int(varying.sum()), dtype=x.dtype))
            assert torch.all(model.feature_scale[s][~varying] == 1.0)


def test_bad_hyperparameters_raise_config_error():
    with pytest.raises(ConfigError, match="cutoff"):
        build_model("bp", ["Cu"], 5.0, cutoff="gaussian")
    with pytest.raises(ConfigError, match="angular"):
        build_model("bp", ["Cu"], 5.0, radial=[[0.1, 0.0]], angular=[[3, 0.1, 1.0, 1.0]])
    with pytest.raises(ConfigError, match="bad hyperparameters"):
        build_model("dtnn", ["Cu"], 5.0, n_filters=3)
    with pytest.raises(ConfigError, match="cutoff"):
        build_model("mbe", ["Cu"], 5.0, cutoff="hard")


@pytest.mark.parametrize("kind", KINDS)
def test_mlff_train_runs_one_epoch(kind, toluene_emt_file, tmp_path):
    run = tmp_path / kind
    assert mlff(["train", "--model", kind, "--train", str(toluene_emt_file), "--out", str(run), "--epochs", "1",
                 "--n-valid", "8", "--no-progress"]) == 0
    record = load_checkpoint(run / "best.ckpt")
    assert record["model_kind"] == kind
    model = model_from_record(record)
    if kind == "bp":  # the trainer called fit_statistics: the feature scaling is not the identity
        assert not torch.all(model.feature_scale == 1.0) and not torch.all(model.feature_shift == 0.0)
    if kind == "mbe":
        assert float(model.inv_r_mean) > 0.1


# --------------------------------------------------------------------------- LAMMPS
def _lammps_helpers():
    from mlff.plugin import is_built

    if not is_built():
        pytest.skip("LAMMPS plugin mlffplugin.so not built (bash scripts/build_plugin.sh)")
    try:
        import test_lammps
    except ImportError as exc:
        pytest.skip(f"tests/test_lammps.py helpers unavailable: {exc}")
    if not test_lammps.LMP.exists():
        pytest.skip(f"no lmp launcher at {test_lammps.LMP}")
    return test_lammps


def cu108():
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=3)
    return atoms


@pytest.mark.parametrize("system", ["toluene", "cu"])
@pytest.mark.parametrize("kind", KINDS)
def test_lammps_matches_python(kind, system, models, tmp_path):
    """A real ``lmp`` run (pair_style mlff, fp64) gives the Python energy, forces, atomic
    energies and (Cu) virial to rel 1e-8; helpers from tests/test_lammps.py."""
    lmp = _lammps_helpers()
    species = SYSTEMS[system][0]
    model = models[kind, system]
    path = tmp_path / f"{kind}.pt"
    export_model(model, path)
    atoms = toluene() if system == "toluene" else cu108()
    lmp_res = lmp.lammps_single_point(tmp_path, atoms, path, species)
    lmp.assert_same(lmp_res, lmp.python_single_point(atoms, path), rtol=1e-8)


@pytest.mark.parametrize("kind", ["bp", "mbe"])
def test_lammps_two_ranks_local_models(kind, models, tmp_path):
    """Strictly local models run on 2 MPI ranks (ghost-node mode): triplets are built from the
    centre's own edges, so ghost atoms need no edges of their own."""
    lmp = _lammps_helpers()
    if not lmp.MPIRUN.exists():
        pytest.skip(f"no mpirun at {lmp.MPIRUN}")
    path = tmp_path / f"{kind}.pt"
    export_model(models[kind, "cu"], path)
    atoms = cu108()
    two = lmp.lammps_single_point(tmp_path, atoms, path, ["Cu"], nprocs=2)
    assert "ghost-node" in two["log"]
    lmp.assert_same(two, lmp.python_single_point(atoms, path), rtol=1e-8)
