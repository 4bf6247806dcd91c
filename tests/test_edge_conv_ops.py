"""SchNet's per-pair filters and ``torch.ops.mlff.edge_conv``: the pairing of edges with
their reverses, the operators against PyTorch gathers and scatters, derivatives of
first, second and third order, and whole SchNet models on both implementations."""

from __future__ import annotations

import ase.build
import pytest
import torch

from mlff import ops
from mlff.graph import atoms_to_graph
from mlff.models.common import cosine_cutoff, reverse_edge_groups
from mlff.models.schnet import SchNet

from conftest import forces_from_edge_grad, sheared_cu

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")


def _graph(atoms, r_max=5.0, species=("Cu",)):
    g = atoms_to_graph(atoms, list(species), r_max)
    return g.edge_index, g.edge_vec()


def test_reverse_groups_pair_each_edge_with_its_reverse():
    # triclinic cell smaller than 2 r_max: an atom sees several images of the same
    # neighbour and of itself, which must stay separate pairs
    atoms = sheared_cu(2, 0.8, -0.5, 0.6, seed=3)
    edge_index, edge_vec = _graph(atoms, r_max=5.0)
    rep, group = reverse_edge_groups(edge_index, edge_vec)
    assert torch.equal(group[rep], torch.arange(rep.numel()))
    sizes = torch.bincount(group)
    assert int(sizes.max()) == 2 and int(sizes.min()) == 2  # every edge has exactly one reverse
    # the two edges of a pair are reverses: swapped nodes, opposite vectors
    other = torch.empty_like(group)
    order = torch.argsort(group, stable=True)
    other[order[0::2]] = order[1::2]
    other[order[1::2]] = order[0::2]
    assert torch.equal(edge_index[0], edge_index[1, other])
    assert torch.allclose(edge_vec, -edge_vec[other], atol=1e-12)


def test_reverse_groups_keep_unpaired_edges_alone():
    edge_index = torch.tensor([[0, 1, 0, 2], [1, 0, 2, 0]])
    vec = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 2.0, 0], [0, -2.5, 0]], dtype=torch.float64)
    rep, group = reverse_edge_groups(edge_index, vec)
    assert rep.numel() == 3 and group[0] == group[1] and group[2] != group[3]


def _dense_reference(x, w, group, src, dst, n_out):
    return torch.zeros(n_out, x.shape[1], dtype=x.dtype).index_add_(0, dst, x[src] * w[group])


def _random_conv_problem(seed, n, u, e, f, dtype=torch.float64):
    """Random ``edge_conv`` inputs: ``src``, ``dst`` ``[e]`` node indices, ``group`` ``[e]`` pair
    indices, features ``x`` ``[n, f]`` and pair filters ``w`` ``[u, f]`` (both requiring grad), and
    the generator for further draws."""
    gen = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (e,), generator=gen), torch.randint(0, n, (e,), generator=gen)
    group = torch.randint(0, u, (e,), generator=gen)
    x = torch.randn(n, f, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(u, f, generator=gen, dtype=dtype, requires_grad=True)
    return src, dst, group, x, w, gen


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_edge_conv_matches_pytorch(dtype, tol):
    n, u, e, f = 30, 50, 200, 16
    src, dst, group, x, w, gen = _random_conv_problem(0, n, u, e, f, dtype)
    g = torch.randn(n, f, generator=gen, dtype=dtype)
    ours = torch.ops.mlff.edge_conv(x, w, group, src, dst, n)
    ref = _dense_reference(x, w, group, src, dst, n)
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)
    spare = torch.ops.mlff.edge_conv(x, w, group, src, dst, n + 3)  # rows no edge reaches: zero
    torch.testing.assert_close(spare[:n], ours, rtol=0, atol=0)
    assert not spare[n:].any()
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_edge_conv_gradcheck_to_third_order():
    n, u, e, f = 6, 8, 20, 3
    src, dst, group, x, w, _ = _random_conv_problem(1, n, u, e, f)

    def conv(x, w):
        return torch.ops.mlff.edge_conv(x, w, group, src, dst, n)

    assert torch.autograd.gradcheck(conv, (x, w))
    assert torch.autograd.gradgradcheck(conv, (x, w))

    def pair_product(a, b):
        return torch.ops.mlff.edge_pair_product(a, b, src, dst, group, u)

    assert torch.autograd.gradcheck(pair_product, (x, x.detach().clone().requires_grad_()))
    assert torch.autograd.gradgradcheck(pair_product, (x, x.detach().clone().requires_grad_()))

    # third order: the ops are closed under differentiation (a cubic in x, w through sin)
    def cubic(x, w):
        return torch.sin(conv(x, w)).sum()

    g1 = torch.autograd.grad(cubic(x, w), x, create_graph=True)[0]
    g2 = torch.autograd.grad(g1.sum(), w, create_graph=True)[0]
    g3 = torch.autograd.grad(g2.sum(), x)[0]
    x_ref, w_ref = x.detach().requires_grad_(), w.detach().requires_grad_()
    r1 = torch.autograd.grad(torch.sin(_dense_reference(x_ref, w_ref, group, src, dst, n)).sum(), x_ref,
                             create_graph=True)[0]
    r2 = torch.autograd.grad(r1.sum(), w_ref, create_graph=True)[0]
    r3 = torch.autograd.grad(r2.sum(), x_ref)[0]
    torch.testing.assert_close(g3, r3, rtol=1e-12, atol=1e-12)


def test_edge_conv_rejects_bad_indices():
    x, w = torch.zeros(3, 2), torch.zeros(4, 2)
    ok = torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="src has entries in"):
        torch.ops.mlff.edge_conv(x, w, ok, torch.tensor([0, 3]), ok, 3)
    with pytest.raises(RuntimeError, match="group has entries in"):
        torch.ops.mlff.edge_conv(x, w, torch.tensor([0, 4]), ok, ok, 3)
    with pytest.raises(RuntimeError, match="one entry per edge"):
        torch.ops.mlff.edge_conv(x, w, ok, ok, torch.tensor([0]), 3)
    with pytest.raises(RuntimeError, match="one F"):
        torch.ops.mlff.edge_conv(x, torch.zeros(4, 3), ok, ok, ok, 3)


def _pair_of_models(species, seed, dtype=torch.float64, **hparams):
    torch.manual_seed(seed)
    a = SchNet(list(species), implementation="ops", **hparams).to(dtype)
    b = SchNet(list(species), implementation="torch", **hparams).to(dtype)
    for p in a.parameters():
        torch.nn.init.normal_(p, std=0.3)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("system", ["benzene", "cu"])
def test_schnet_ops_equals_reference_and_per_edge_filters(system):
    """Per-pair filters + edge_conv == the reference path == a per-edge-filter SchNet:
    energies, forces and the gradients of a force loss (training)."""
    if system == "benzene":
        atoms, species = ase.build.molecule("C6H6"), ("C", "H")
    else:
        atoms, species = sheared_cu(2, 0.8, -0.5, 0.6, seed=4), ("Cu",)
    ops_model, ref_model = _pair_of_models(species, seed=5, n_features=16, n_interactions=3)
    g = atoms_to_graph(atoms, list(species), 5.0)
    pos = g.pos.clone().requires_grad_(True)
    out = []
    for model in (ops_model, ref_model):
        e = model(g.species, g.edge_index, g.edge_vec(pos)).sum()
        f = -torch.autograd.grad(e, pos, create_graph=True)[0]
        loss = (f**2).sum()
        params = list(model.parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)
        out.append((e.detach(), f.detach(), grads))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-10)
    for a, b in zip(out[0][2], out[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)

    # per-edge filters (no pairing): the same energy as a function of the positions
    def per_edge_energy(p):
        vec = g.edge_vec(p)
        r = torch.linalg.vector_norm(vec, dim=1)
        rbf, fcut = ref_model.rbf(r), cosine_cutoff(r, ref_model.r_max)
        x = ref_model.embedding(g.species)
        identity = torch.arange(vec.shape[0])
        for block in ref_model.interactions:
            w = block.filters(r, rbf, fcut, ref_model.rbf.centres, ref_model.rbf.gamma, ref_model.r_max)
            x = x + block(block.in2f(x), w, g.edge_index, identity, x.shape[0])
        return ref_model.energy_scale(ref_model.readout(x).squeeze(-1), g.species).sum()

    p = g.pos.clone().requires_grad_(True)
    e_edge = per_edge_energy(p)
    f_edge = -torch.autograd.grad(e_edge, p)[0]
    torch.testing.assert_close(out[0][0], e_edge.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[0][1], f_edge, rtol=1e-10, atol=1e-10)


def test_schnet_hessian_is_exact():
    """Second derivatives w.r.t. positions (phonons) through the per-pair filters."""
    atoms = ase.build.molecule("H2O")
    ops_model, _ = _pair_of_models(("H", "O"), seed=6, n_features=8, n_interactions=2)
    g = atoms_to_graph(atoms, ["H", "O"], 5.0)

    def energy(flat):
        return ops_model(g.species, g.edge_index, g.edge_vec(flat.view(-1, 3))).sum()

    x0 = g.pos.reshape(-1).clone()
    hessian = torch.autograd.functional.hessian(energy, x0)
    h = 1e-5
    numeric = torch.zeros_like(hessian)
    for k in range(x0.numel()):
        d = torch.zeros_like(x0)
        d[k] = h
        xp, xm = (x0 + d).requires_grad_(), (x0 - d).requires_grad_()
        numeric[k] = (torch.autograd.grad(energy(xp), xp)[0] - torch.autograd.grad(energy(xm), xm)[0]) / (2 * h)
    torch.testing.assert_close(hessian, numeric, rtol=1e-6, atol=1e-7)


def _reference_filter(block, rbf_module, r, r_max):
    return block.filter_net(rbf_module(r)) * cosine_cutoff(r, r_max)[:, None]


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("n_filters", [64, 13])  # 13: not a whole number of SIMD vectors
def test_fused_filter_matches_pytorch(dtype, tol, n_filters):
    model, _ = _pair_of_models(("Cu",), seed=8, dtype=dtype, n_features=n_filters, n_interactions=1)
    block = model.interactions[0]
    r = torch.linspace(0.05, 5.4, 301, dtype=dtype)  # includes r ≥ r_max = 5 Å: zero filters
    r_ref = r.clone().requires_grad_(True)
    ref = _reference_filter(block, model.rbf, r_ref, model.r_max)
    r_ops = r.clone().requires_grad_(True)
    first, second = block.filter_net[0], block.filter_net[2]
    with torch.no_grad():
        for p in block.parameters():
            p.requires_grad_(False)
    ours = torch.ops.mlff.schnet_filter(r_ops, model.rbf.centres, model.rbf.gamma, model.r_max, first.weight,
                                        first.bias, second.weight, second.bias)
    scale = ref.detach().abs().max()
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol * scale)
    assert torch.all(ours[r >= model.r_max] == 0)
    g = torch.randn(ours.shape, dtype=dtype, generator=torch.Generator().manual_seed(2))
    (gr,) = torch.autograd.grad(ours, r_ops, g)
    (gr_ref,) = torch.autograd.grad(ref, r_ref, g)
    torch.testing.assert_close(gr, gr_ref, rtol=0, atol=tol * gr_ref.abs().max() * 10)


def test_fused_filter_refuses_training_and_hessians():
    model, _ = _pair_of_models(("Cu",), seed=9, n_features=8, n_interactions=1)
    first, second = model.interactions[0].filter_net[0], model.interactions[0].filter_net[2]
    r = torch.linspace(1.0, 4.0, 5, dtype=torch.float64, requires_grad=True)
    w = torch.ops.mlff.schnet_filter(r, model.rbf.centres, model.rbf.gamma, model.r_max, first.weight, first.bias,
                                     second.weight, second.bias)
    with pytest.raises(RuntimeError, match="weights are not available"):
        torch.autograd.grad(w.sum(), first.weight, retain_graph=True)
    (gr,) = torch.autograd.grad(w.sum(), r, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(gr.sum(), r)
    with pytest.raises(RuntimeError, match="w2 must be"):
        torch.ops.mlff.schnet_filter(r, model.rbf.centres, model.rbf.gamma, model.r_max, first.weight, first.bias,
                                     second.weight[:, :3], second.bias)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_deployed_schnet_with_fused_filter_equals_python_model(tmp_path, dtype, tol):
    from mlff.deploy import export_model, load_deployed

    atoms = sheared_cu(2, 0.8, -0.5, 0.6, seed=5)
    model, _ = _pair_of_models(("Cu",), seed=10, n_features=16, n_interactions=3)
    export_model(model, tmp_path / "m.pt", dtype=dtype)
    module, _ = load_deployed(tmp_path / "m.pt")
    assert "schnet_filter" in getattr(module.model.interactions, "0").filters.code  # the deployed copy uses the kernel
    assert not model.interactions[0].fused_filter                # the trainable model does not
    g = atoms_to_graph(atoms, ["Cu"], 5.0)
    vec = g.edge_vec()
    out = module(g.species, g.edge_index, vec.to(dtype))
    v = vec.clone().requires_grad_(True)
    e = model(g.species, g.edge_index, v)
    (grad,) = torch.autograd.grad(e.sum(), v)
    e_scale = e.detach().abs().max()
    torch.testing.assert_close(out["atomic_energy"].double(), e.detach(), rtol=0, atol=tol * e_scale)
    # forces from edge gradients (the split between an edge and its reverse may differ)
    f_dep = forces_from_edge_grad(g.edge_index, out["edge_grad"], len(atoms))
    f_ref = forces_from_edge_grad(g.edge_index, grad, len(atoms))
    torch.testing.assert_close(f_dep, f_ref, rtol=0, atol=tol * f_ref.abs().max())


def test_export_forms_equal_the_autograd_operators():
    """``edge_conv_export`` and ``schnet_filter_export`` (the calls AOTInductor packages
    keep, with their Python-registered backward) give the values and first derivatives of
    ``edge_conv`` and ``schnet_filter``; bad indices are refused."""
    n, u, e, f = 12, 20, 60, 7
    src, dst, group, x, w, gen = _random_conv_problem(4, n, u, e, f)
    g = torch.randn(n, f, generator=gen, dtype=torch.float64)
    ours = torch.ops.mlff.edge_conv_export(x, w, src, group, dst, n)
    ref = torch.ops.mlff.edge_conv(x, w, group, src, dst, n)
    torch.testing.assert_close(ours, ref, rtol=1e-13, atol=1e-13)
    for a, b in zip(torch.autograd.grad(ours, (x, w), g), torch.autograd.grad(ref, (x, w), g)):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    with pytest.raises(RuntimeError, match="outside"):
        torch.ops.mlff.edge_conv_export(x, w, torch.full_like(src, n), group, dst, n)

    from mlff.ops import export as export_ops

    model, _ = _pair_of_models(("Cu",), seed=5, n_features=13, n_interactions=1)
    first, second = model.interactions[0].filter_net[0], model.interactions[0].filter_net[2]
    for p in model.parameters():
        p.requires_grad_(False)
    args = (model.rbf.centres, model.rbf.gamma, model.r_max, first.weight, first.bias, second.weight, second.bias)
    r = torch.linspace(0.5, 5.2, 40, dtype=torch.float64, requires_grad=True)
    ours, ref = export_ops.schnet_filter(r, *args), torch.ops.mlff.schnet_filter(r, *args)
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)
    gw = torch.randn(ours.shape, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(torch.autograd.grad(ours, r, gw)[0], torch.autograd.grad(ref, r, gw)[0],
                               rtol=1e-13, atol=1e-13)
