"""Tabulated radial functions (mlff.models.radial_table, torch.ops.mlff.radial_table) and
SchNet deployed with tabulated filters (mlff-deploy --tabulate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from mlff import ops
from mlff.calculator import predict
from mlff.deploy import export_model, load_deployed, main as deploy_main
from mlff.errors import ConfigError
from mlff.graph import atoms_to_graph
from mlff.models import build_model
from mlff.models.common import cosine_cutoff
from mlff.models.radial_table import interpolate, tabulate
from mlff.train.checkpoint import model_record, save_checkpoint

from conftest import assert_forces_are_minus_gradient, forces_from_edge_grad, random_schnet

needs_ops = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")
R_MAX = 5.0


def quintic(r: torch.Tensor) -> torch.Tensor:
    """Three quintic polynomials: the quintic Hermite interpolant reproduces them exactly."""
    return torch.stack([1 + r - 0.3 * r**2 + 0.05 * r**5, 2 - r**3 + 0.1 * r**4, 0.2 * r**5 - r], dim=1)


def quintic_table(n: int) -> torch.Tensor:
    h = R_MAX / n
    r = torch.arange(n + 1, dtype=torch.float64) * h
    y = quintic(r)
    dy = torch.stack([1 - 0.6 * r + 0.25 * r**4, -3 * r**2 + 0.4 * r**3, r**4 - 1], dim=1)
    d2y = torch.stack([-0.6 + r**3, -6 * r + 1.2 * r**2, 4 * r**3], dim=1)
    return torch.stack([y, h * dy, h * h * d2y], dim=1)


def test_interpolation_is_exact_for_quintics_and_zero_outside():
    table = quintic_table(7)
    r = torch.cat([torch.linspace(0, R_MAX * (1 - 1e-12), 501, dtype=torch.float64),
                   torch.tensor([R_MAX, 6.0, -0.5], dtype=torch.float64)])
    r.requires_grad_(True)
    y = interpolate(r, table, R_MAX)
    torch.testing.assert_close(y[:501], quintic(r[:501].detach()), rtol=0, atol=1e-12)
    assert torch.all(y[501:] == 0)
    # and its r-derivative is the polynomial's
    (g,) = torch.autograd.grad(y[:501, 1].sum(), r)
    torch.testing.assert_close(g[:501], -3 * r[:501].detach() ** 2 + 0.4 * r[:501].detach() ** 3, rtol=0, atol=1e-10)


@needs_ops
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_operator_equals_pytorch_interpolation(dtype, tol):
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(33, 3, 37, dtype=torch.float64, generator=gen).to(dtype)  # width 37: partial vectors
    r = torch.rand(2000, dtype=torch.float64, generator=gen) * 5.5
    r[:5] = torch.tensor([0.0, R_MAX, R_MAX / 32 * 7, 5.2, R_MAX * (1 - 1e-7)])  # knots, the edge, outside
    r = r.to(dtype)
    r_ref, r_op = r.clone().requires_grad_(True), r.clone().requires_grad_(True)
    ref = interpolate(r_ref, table, R_MAX)
    ours = torch.ops.mlff.radial_table(r_op, table, R_MAX)
    scale = ref.detach().abs().max()
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol * scale)
    assert torch.all(ours[r >= R_MAX] == 0)
    g = torch.randn(ours.shape, generator=gen, dtype=torch.float64).to(dtype)
    (gr,) = torch.autograd.grad(ours, r_op, g)
    (gr_ref,) = torch.autograd.grad(ref, r_ref, g)
    torch.testing.assert_close(gr, gr_ref, rtol=0, atol=tol * gr_ref.abs().max())


@needs_ops
def test_operator_gradcheck_and_refusals():
    table = quintic_table(5)
    r = torch.linspace(0.1, 4.9, 23, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: torch.ops.mlff.radial_table(x, table, R_MAX), (r,))
    y = torch.ops.mlff.radial_table(r, table, R_MAX)
    (g,) = torch.autograd.grad(y.sum(), r, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(g.sum(), r)
    t = table.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match="w.r.t. the table"):
        torch.autograd.grad(torch.ops.mlff.radial_table(r, t, R_MAX).sum(), t)
    with pytest.raises(RuntimeError, match=r"table must be \[N \+ 1, 3, F\]"):
        torch.ops.mlff.radial_table(r, table[:, :2], R_MAX)
    with pytest.raises(RuntimeError, match="share a float32/float64 dtype"):
        torch.ops.mlff.radial_table(r, table.float(), R_MAX)
    with pytest.raises(RuntimeError, match="r_max must be > 0"):
        torch.ops.mlff.radial_table(r, table, 0.0)


def schnet_filter_function(model, block: int = 0):
    net = model.interactions[block].filter_net
    return lambda r: net(model.rbf(r)) * cosine_cutoff(r, model.r_max)[:, None]


def test_tabulation_meets_its_tolerance_and_converges():
    model = random_schnet(["Cu"], seed=3)
    fn = schnet_filter_function(model)
    coarse = tabulate(fn, R_MAX, tolerance=1.0, n_intervals=32)  # accepted at once
    fine = tabulate(fn, R_MAX, tolerance=1.0, n_intervals=64)
    assert (coarse.n_intervals, fine.n_intervals) == (32, 64)
    # quintic Hermite: values O(h^6), derivatives O(h^5)
    assert coarse.error / fine.error > 30 and coarse.error_derivative / fine.error_derivative > 16
    table = tabulate(fn, R_MAX, tolerance=1e-8)
    assert max(table.error, table.error_derivative) <= 1e-8
    # an independent check between the check points
    r = torch.linspace(0.5, R_MAX - 1e-9, 9973, dtype=torch.float64, requires_grad=True)
    y_tab = interpolate(r, table.table, R_MAX)
    with torch.no_grad():
        y = fn(r)
    assert (y_tab - y).abs().max() <= 2e-8 * y.abs().max()
    with pytest.raises(ConfigError, match="intervals on"):
        tabulate(fn, R_MAX, tolerance=1e-14, max_intervals=256)
    with pytest.raises(ConfigError, match="tolerance must be > 0"):
        tabulate(fn, R_MAX, tolerance=0.0)


def test_tabulation_of_a_function_whose_autograd_is_singular_at_zero():
    """NequIP's Bessel basis ``sin(kr)/r``: finite at r = 0, its autograd 0/0 there. The
    first knot gets the limits (y = k, y' = 0, y'' = −k³/3), not NaN; a function that is
    not finite elsewhere is refused, naming the distance."""
    k = torch.tensor([1.0, 2.5, 4.0], dtype=torch.float64)
    table = tabulate(lambda r: torch.sin(k * r[:, None]) / r[:, None], R_MAX, tolerance=1e-8)
    assert max(table.error, table.error_derivative) <= 1e-8
    h = R_MAX / table.n_intervals
    # (δ = h/1024: the autograd of sin(kr)/r loses ~1e-9 of h²y'' there to cancellation)
    torch.testing.assert_close(table.table[0], torch.stack([k, 0 * k, -h * h * k**3 / 3]), rtol=0, atol=1e-8 * k.max())
    r = torch.linspace(1e-4, 0.2, 101, dtype=torch.float64)
    y = interpolate(r, table.table, R_MAX)
    assert (y - torch.sin(k * r[:, None]) / r[:, None]).abs().max() <= 1e-8 * k.max()
    with pytest.raises(ConfigError, match=r"not finite at r = 2\.5 Å"):
        tabulate(lambda r: 1.0 / (r[:, None] - 2.5), R_MAX, tolerance=1e-8, n_intervals=4)


def sheared_cu(seed: int):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    atoms.set_cell(atoms.cell.array + np.array([[0, 0, 0], [0.6, 0, 0], [0.3, -0.4, 0]]), scale_atoms=True)
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_deployed_schnet_with_tabulated_filters(tmp_path, dtype):
    """Same energies and forces as the exact model within the table's tolerance (fp32:
    its rounding), forces equal to minus the finite-difference gradient of the energy."""
    model = random_schnet(["Cu"], seed=4)
    with torch.no_grad():  # filters far from their initialisation
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    exact_meta = export_model(model, tmp_path / "exact.pt", dtype=dtype)
    meta = export_model(model, tmp_path / "tab.pt", dtype=dtype, tabulate=True)
    assert exact_meta["radial_tables"] is None
    tables = meta["radial_tables"]
    assert len(tables["n_intervals"]) == 3 and max(tables["error"], tables["error_derivative"]) <= 1e-8
    exact, _ = load_deployed(tmp_path / "exact.pt")
    tab, _ = load_deployed(tmp_path / "tab.pt")
    graph = str(getattr(tab.model.interactions, "0").filters.inlined_graph)
    assert "mlff::radial_table" in graph or not ops.NATIVE
    assert not model.interactions[0].tabulated  # the trained model keeps its network
    atoms = sheared_cu(seed=6)
    ref, got = predict(exact, exact_meta, atoms), predict(tab, meta, atoms)
    (e_ref, f_ref), (e_tab, f_tab) = (ref["energy"], ref["forces"]), (got["energy"], got["forces"])
    tol = 1e-7 if dtype == torch.float64 else 2e-5
    assert e_tab == pytest.approx(e_ref, rel=tol)
    assert np.abs(f_ref).max() > 0.1
    np.testing.assert_allclose(f_tab, f_ref, rtol=0, atol=tol * np.abs(f_ref).max())
    if dtype == torch.float64:
        atom_indices = tuple(np.random.default_rng(0).choice(len(atoms), 3, replace=False))
        assert_forces_are_minus_gradient(lambda a: predict(tab, meta, a)["energy"], atoms, f_tab, atom_indices,
                                         h=2e-5, rel=0, abs_tol=1e-7 * np.abs(f_tab).max())


def test_tabulate_is_refused_for_models_without_radial_networks(tmp_path, capsys):
    model = build_model("bp", ["Cu"], 4.0, symmetry_functions="cu_emt_final", hidden=[4])
    with pytest.raises(ConfigError, match="no radial networks to tabulate"):
        export_model(model, tmp_path / "bp.pt", tabulate=True)
    assert not (tmp_path / "bp.pt").exists()
    save_checkpoint(tmp_path / "bp.ckpt", model_record(model))
    assert deploy_main([str(tmp_path / "bp.ckpt"), "-o", str(tmp_path / "bp.pt"), "--tabulate"]) == 2
    assert "no radial networks to tabulate" in capsys.readouterr().err


def outputs_on_cpu_and_cuda(path, atoms, species):
    """The deployed file ``path`` on one graph of ``atoms``, on the CPU and on a GPU (where
    the tables are read by the PyTorch interpolation): ``(graph, cpu outputs, gpu outputs
    moved back to the CPU)``."""
    module, meta = load_deployed(path)
    g = atoms_to_graph(atoms, species, meta["r_max"])
    inputs = (g.species, g.edge_index, g.edge_vec().to(getattr(torch, meta["dtype"])))
    cpu = module(*inputs)
    gpu = module.to("cuda")(*(x.cuda() for x in inputs))
    return g, cpu, {key: value.cpu() for key, value in gpu.items()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tabulated_schnet_on_cuda_equals_cpu(tmp_path, dtype):
    export_model(random_schnet(["Cu"], seed=5), tmp_path / "tab.pt", dtype=dtype, tabulate=True)
    g, cpu, gpu = outputs_on_cpu_and_cuda(tmp_path / "tab.pt", sheared_cu(seed=7), ["Cu"])
    f_cpu, f_gpu = (forces_from_edge_grad(g.edge_index, out["edge_grad"], len(g.species)).numpy()
                    for out in (cpu, gpu))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert float(gpu["atomic_energy"].double().sum()) == pytest.approx(float(cpu["atomic_energy"].double().sum()),
                                                                       rel=tol)
    np.testing.assert_allclose(f_gpu, f_cpu, rtol=0, atol=tol * np.abs(f_cpu).max())


EQUIVARIANT = ["nequip", "nequip_direct", "tfn_dfp", "se3_transformer", "se3_transformer_direct"]


@pytest.mark.parametrize("name,dtype", [(name, torch.float64) for name in EQUIVARIANT] + [("nequip", torch.float32)])
def test_deployed_equivariant_models_with_tabulated_radial_networks(tmp_path, name, dtype):
    """Every radial MLP of the e3nn models (convolutions, attention layers) tabulated:
    the same energies and forces as the exact deployed model within the tolerance (fp32:
    its rounding); an energy model's forces equal minus the finite-difference gradient."""
    from mlff.data.molecules import molecule
    from test_equivariant_models import random_model

    model = random_model(name)
    export_model(model, tmp_path / "exact.pt", dtype=dtype)
    meta = export_model(model, tmp_path / "tab.pt", dtype=dtype, tabulate=True)
    tables = meta["radial_tables"]
    n_layers = model.hparams.get("n_interactions", model.hparams.get("n_layers"))
    assert len(tables["n_intervals"]) == n_layers and max(tables["error"], tables["error_derivative"]) <= 1e-8
    assert not any(m.tabulated for m in model.modules() if hasattr(m, "tabulated"))  # trained model unchanged
    exact, exact_meta = load_deployed(tmp_path / "exact.pt")
    tab, tab_meta = load_deployed(tmp_path / "tab.pt")
    radial = [m for m in tab.modules() if m.original_name == "RadialMLP"]
    assert len(radial) == n_layers and all("self.net" not in m.code for m in radial)  # the networks are gone
    assert all("mlff::radial_table" in str(m.forward.inlined_graph) for m in radial) or not ops.NATIVE
    atoms = molecule("toluene")
    atoms.rattle(0.05, seed=3)
    ref, got = predict(exact, exact_meta, atoms), predict(tab, tab_meta, atoms)
    f_ref, f_tab = ref["forces"], got["forces"]
    tol = 1e-7 if dtype == torch.float64 else 2e-5
    assert np.abs(f_ref).max() > 1e-2
    np.testing.assert_allclose(f_tab, f_ref, rtol=0, atol=tol * np.abs(f_ref).max())
    if "energy" in ref:
        assert got["energy"] == pytest.approx(ref["energy"], rel=tol)
    if "energy" in ref and dtype == torch.float64:
        assert_forces_are_minus_gradient(lambda a: predict(tab, tab_meta, a)["energy"], atoms, f_tab, (0, 7, 12),
                                         rel=0, abs_tol=1e-7 * np.abs(f_tab).max())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tabulated_nequip_on_cuda_equals_cpu(tmp_path):
    """The e3nn models' tables on a GPU give the CPU numbers."""
    from mlff.data.molecules import molecule
    from test_equivariant_models import random_model

    model = random_model("nequip")
    export_model(model, tmp_path / "tab.pt", tabulate=True)
    _, cpu, gpu = outputs_on_cpu_and_cuda(tmp_path / "tab.pt", molecule("toluene"), model.species)
    for key in ("atomic_energy", "edge_grad"):
        torch.testing.assert_close(gpu[key], cpu[key], rtol=1e-10, atol=1e-12)
