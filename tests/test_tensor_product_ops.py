"""torch.ops.mlff.tp_conv (cpp/ops/src/tensor_product.cpp) and torch.ops.mlff.tp_uvw
(cpp/ops/src/tensor_product_uvw.cpp) against e3nn: the fused gather + uvu Clebsch–Gordan
tensor product + scatter, the fully connected uvw product per edge with per-pair weights,
their first and second derivatives, and the NequIP / TFN / SE(3)-Transformer models built
on either implementation."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from mlff import ops
from mlff.data.molecules import molecule
from mlff.graph import atoms_to_graph, collate
from mlff.models import build_model
from mlff.models.equivariant import float64_construction, tensor_product_paths, tensor_product_tables
from mlff.models.se3_transformer import uvw_paths
from mlff.train.trainer import energy_and_forces

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def conv_case(irreps_in: str, l_max_sh: int, targets: str, n_nodes=9, n_edges=40, seed=0):
    """An e3nn uvu tensor product, its tables and random inputs (float64)."""
    with float64_construction():
        irreps_in = o3.Irreps(irreps_in)
        irreps_sh = o3.Irreps.spherical_harmonics(l_max_sh)
        irreps_out, instructions = tensor_product_paths(irreps_in, irreps_sh, o3.Irreps(targets), "uvu")
        tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_out, instructions, shared_weights=False,
                              internal_weights=False)
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n_nodes, irreps_in.dim, dtype=torch.float64, generator=gen)
    sh = torch.randn(n_edges, irreps_sh.dim, dtype=torch.float64, generator=gen)
    w = torch.randn(n_edges, tp.weight_numel, dtype=torch.float64, generator=gen)
    edge_index = torch.randint(0, n_nodes, (2, n_edges), generator=gen)
    return tp, h, sh, w, edge_index


def reference(tp, h, sh, w, edge_index):
    out = torch.zeros(h.shape[0], tp.irreps_out.dim, dtype=h.dtype)
    return out.index_add(0, edge_index[0], tp(h.index_select(0, edge_index[1]), sh, w))


def kernel(tp, h, sh, w, edge_index):
    return torch.ops.mlff.tp_conv(h, sh, w, edge_index[0], edge_index[1], h.shape[0], *tensor_product_tables(tp))


# (the kernels are compiled for 8, 16, 32 and 64 channels as constants, any other count at
# run time: "l1" and "l1-32" run two of the former, the others the latter)
CASES = {
    "l1": ("8x0e+8x1o", 1, "0e+1o"),
    "l1-32": ("32x0e+32x1o", 1, "0e+1o"),
    "l2": ("4x0e+4x1o+4x2e", 2, "0e+1o+2e"),
    "l3-odd-parity": ("3x0e+2x1o+2x1e+2x2e+2x3o", 3, "0e+0o+1o+1e+2e+2o+3o+3e"),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_e3nn(case, dtype):
    tp, h, sh, w, edge_index = conv_case(*CASES[case])
    tp = tp.to(dtype)
    h, sh, w = (t.to(dtype) for t in (h, sh, w))
    ref = reference(tp, h, sh, w, edge_index)
    got = kernel(tp, h, sh, w, edge_index)
    assert got.dtype == dtype and ref.abs().max() > 1.0
    torch.testing.assert_close(got, ref, **TOL[dtype])
    # gradients w.r.t. every input, with a random cotangent
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    grads = []
    for f in (reference, kernel):
        inputs = [t.clone().requires_grad_(True) for t in (h, sh, w)]
        grads.append(torch.autograd.grad((f(tp, *inputs, edge_index) * g).sum(), inputs))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("irreps, differentiable", [
    *((("3x0e+2x1o+2x2e", 2, "0e+1o+2e"), d) for d in ["hYW", "h", "Y", "W", "hW"]),
    (("8x0e+8x1o", 1, "0e+1o"), "hYW"),  # the kernels with a compile-time channel count
], ids=lambda x: x if isinstance(x, str) else x[0])
def test_gradcheck_and_gradgradcheck(irreps, differentiable):
    # inputs that need no gradient leave their tangents undefined in the double backward
    tp, h, sh, w, edge_index = conv_case(*irreps, n_nodes=5, n_edges=12)
    tables = tensor_product_tables(tp)

    def f(h, sh, w):
        return torch.ops.mlff.tp_conv(h, sh, w, edge_index[0], edge_index[1], h.shape[0], *tables)

    inputs = [t.clone().requires_grad_(name in differentiable) for t, name in zip((h, sh, w), "hYW")]
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_third_derivative_raises_a_clear_error():
    tp, h, sh, w, edge_index = conv_case("2x0e+2x1o", 1, "0e+1o", n_nodes=4, n_edges=8)
    h = h.requires_grad_(True)
    (d1,) = torch.autograd.grad(kernel(tp, h, sh, w, edge_index).pow(2).sum(), h, create_graph=True)
    (d2,) = torch.autograd.grad(d1.pow(2).sum(), h, create_graph=True)
    with pytest.raises(RuntimeError, match="beyond the second order"):
        torch.autograd.grad(d2.sum(), h)


def test_bad_edge_index_raises():
    tp, h, sh, w, edge_index = conv_case("2x0e+2x1o", 1, "0e+1o", n_nodes=4, n_edges=8)
    bad = edge_index.clone()
    bad[1, 0] = 99
    with pytest.raises(RuntimeError, match="outside"):
        kernel(tp, h, sh, w, bad)


def test_tables_edited_in_place_are_not_served_stale():
    """The operators cache their validated tables per table tensor (keyed by address and
    version counter): an in-place edit, as load_state_dict makes, is seen by the next call,
    and so is an edit that makes the tables invalid."""
    tp, h, sh, w, edge_index = conv_case("2x0e+2x1o", 1, "0e+1o", n_nodes=5, n_edges=12)
    paths, coeff_index, coeff = tensor_product_tables(tp)

    def f(paths, coeff):
        return torch.ops.mlff.tp_conv(h, sh, w, edge_index[0], edge_index[1], 5, paths, coeff_index, coeff)

    before = f(paths, coeff)
    coeff.mul_(2.0)
    torch.testing.assert_close(f(paths, coeff), 2.0 * before, rtol=1e-12, atol=1e-12)
    paths[0, 0] = 1000  # path 0 now reads far outside the features
    with pytest.raises(RuntimeError, match="outside the feature or weight layout"):
        f(paths, coeff)
    # more table sets than the cache holds, then the first again (its entry evicted)
    paths, coeff_index, coeff = tensor_product_tables(tp)
    copies = [(paths.clone(), coeff.clone() * (k + 1)) for k in range(70)]
    outs = [f(*c) for c in copies]
    torch.testing.assert_close(f(*copies[0]), outs[0], rtol=0, atol=0)
    torch.testing.assert_close(outs[69], 70.0 * outs[0], rtol=1e-12, atol=1e-12)


def test_inference_tables_are_cached_by_contents():
    """Inference tensors (an AOTInductor package's constants in inference mode) have no
    version counter, so the cache keys them by their contents: an in-place edit in
    inference mode is seen, as is a different table at a reused address."""
    tp, h, sh, w, edge_index = conv_case("2x0e+2x1o", 1, "0e+1o", n_nodes=5, n_edges=12)
    tables = tensor_product_tables(tp)
    with torch.inference_mode():
        paths, coeff_index, coeff = (t.clone() for t in tables)
        assert coeff.is_inference()

        def f():
            return torch.ops.mlff.tp_conv(h, sh, w, edge_index[0], edge_index[1], 5, paths, coeff_index, coeff)

        before = f()
        torch.testing.assert_close(f(), before, rtol=0, atol=0)
        coeff.mul_(3.0)
        torch.testing.assert_close(f(), 3.0 * before, rtol=1e-12, atol=1e-12)
        paths[0, 0] = 1000
        with pytest.raises(RuntimeError, match="outside the feature or weight layout"):
            f()


def uvw_case(irreps_in: str, l_max_sh: int, irreps_out: str, n_nodes=7, n_pairs=15, seed=0):
    """An e3nn uvw tensor product, its tables and random float64 inputs: node features,
    per-edge harmonics, per-pair weights, and neighbour / pair index per edge (every pair
    used by one or two edges, as for ``reverse_edge_groups``)."""
    with float64_construction():
        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        irreps_sh = o3.Irreps.spherical_harmonics(l_max_sh)
        tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_out, uvw_paths(irreps_in, irreps_sh, irreps_out),
                              shared_weights=False, internal_weights=False)
    gen = torch.Generator().manual_seed(seed)
    group = torch.cat([torch.arange(n_pairs), torch.arange(0, n_pairs, 2)])
    n_edges = group.shape[0]
    h = torch.randn(n_nodes, irreps_in.dim, dtype=torch.float64, generator=gen)
    sh = torch.randn(n_edges, irreps_sh.dim, dtype=torch.float64, generator=gen)
    w = torch.randn(n_pairs, tp.weight_numel, dtype=torch.float64, generator=gen)
    neighbour = torch.randint(0, n_nodes, (n_edges,), generator=gen)
    return tp, h, sh, w, neighbour, group


def uvw_reference(tp, h, sh, w, neighbour, group):
    return tp(h.index_select(0, neighbour), sh, w.index_select(0, group))


def uvw_kernel(tp, h, sh, w, neighbour, group):
    return torch.ops.mlff.tp_uvw(h, sh, w, neighbour, group, *tensor_product_tables(tp), tp.irreps_out.dim)


UVW_CASES = {
    "se3-l2": ("4x0e+3x1o+2x2e", 4, "5x0e+4x1o+3x2e"),   # several inputs per output block
    "species-in": ("3x0e", 2, "4x0e+2x1o+2x2e"),
    "l3-odd-parity": ("2x0e+2x1o+1x1e+2x2e+1x3o", 3, "1x0o+2x1o+1x1e+2x2e+1x2o+1x3e"),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(UVW_CASES))
def test_uvw_kernel_matches_e3nn(case, dtype):
    tp, h, sh, w, neighbour, group = uvw_case(*UVW_CASES[case])
    tp = tp.to(dtype)
    h, sh, w = (t.to(dtype) for t in (h, sh, w))
    ref = uvw_reference(tp, h, sh, w, neighbour, group)
    got = uvw_kernel(tp, h, sh, w, neighbour, group)
    assert got.dtype == dtype and got.shape == ref.shape and ref.abs().max() > 1.0
    torch.testing.assert_close(got, ref, **TOL[dtype])
    g = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    grads = []
    for f in (uvw_reference, uvw_kernel):
        inputs = [t.clone().requires_grad_(True) for t in (h, sh, w)]
        grads.append(torch.autograd.grad((f(tp, *inputs, neighbour, group) * g).sum(), inputs))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("differentiable", ["hYW", "h", "Y", "W", "YW"])
def test_uvw_gradcheck_and_gradgradcheck(differentiable):
    tp, h, sh, w, neighbour, group = uvw_case("2x0e+2x1o+1x2e", 2, "2x0e+2x1o+1x2e", n_nodes=4, n_pairs=5)
    tables = tensor_product_tables(tp)

    def f(h, sh, w):
        return torch.ops.mlff.tp_uvw(h, sh, w, neighbour, group, *tables, tp.irreps_out.dim)

    inputs = [t.clone().requires_grad_(name in differentiable) for t, name in zip((h, sh, w), "hYW")]
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_uvw_bad_input_raises():
    tp, h, sh, w, neighbour, group = uvw_case("2x0e+2x1o", 1, "2x0e+2x1o", n_nodes=4, n_pairs=5)
    bad = group.clone()
    bad[0] = 5
    with pytest.raises(RuntimeError, match="weight row 5"):
        uvw_kernel(tp, h, sh, w, neighbour, bad)
    with pytest.raises(RuntimeError, match="outside the feature, output or weight layout"):
        torch.ops.mlff.tp_uvw(h, sh, w[:, :-1], neighbour, group, *tensor_product_tables(tp), tp.irreps_out.dim)
    with pytest.raises(ValueError, match="one connection mode"):
        with float64_construction():
            mixed = o3.TensorProduct("2x0e", "1x0e", "2x0e", [(0, 0, 0, "uvu", True), (0, 0, 0, "uvw", True)],
                                     shared_weights=False, internal_weights=False)
        tensor_product_tables(mixed)


def test_uvw_tables_edited_in_place_are_not_served_stale():
    tp, h, sh, w, neighbour, group = uvw_case("2x0e+2x1o", 1, "2x0e+2x1o", n_nodes=4, n_pairs=5)
    paths, coeff_index, coeff = tensor_product_tables(tp)

    def f():
        return torch.ops.mlff.tp_uvw(h, sh, w, neighbour, group, paths, coeff_index, coeff, tp.irreps_out.dim)

    before = f()
    coeff.mul_(-3.0)
    torch.testing.assert_close(f(), -3.0 * before, rtol=1e-12, atol=1e-12)
    paths[0, 7] = w.shape[1]  # path 0's weights start past the end of the weight row
    with pytest.raises(RuntimeError, match="outside the feature, output or weight layout"):
        f()


MODELS = {
    "nequip": dict(n_features=8, l_max=2, n_interactions=2, n_basis=6, radial_hidden=16),
    "tfn_dfp": dict(n_features=6, l_max=2, n_layers=2, n_basis=6, radial_hidden=16),
    "se3_transformer": dict(n_features=4, l_max=2, n_layers=2, n_heads=2, head_features=2, n_basis=6,
                            radial_hidden=16, si_hidden=8),
}


def model_outputs(kind: str, implementation: str, dtype: torch.dtype, device: str = "cpu"):
    """Energies, forces and the force-loss parameter gradient (double backward through the
    convolutions) of a small random model of ``kind`` on two rattled toluene frames."""
    species = ["H", "C"]
    frames = [molecule("toluene") for _ in range(2)]
    for k, a in enumerate(frames):
        a.rattle(0.1, seed=k)
    batch = collate([atoms_to_graph(a, species, 4.0) for a in frames]).to(dtype, device)
    torch.manual_seed(0)
    model = build_model(kind, species, 4.0, dtype, implementation=implementation, **MODELS[kind])
    with torch.no_grad():  # non-zero readout so that forces are non-trivial
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    model = model.to(device)
    energy, forces = energy_and_forces(model, batch, create_graph=True)
    loss = (forces**2).mean() + (0.0 if energy is None else (energy**2).mean())
    params = [p for p in model.parameters() if p.requires_grad]
    return energy, forces, torch.autograd.grad(loss, params, allow_unused=True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", list(MODELS))
def test_models_same_output_and_training_gradient(kind, dtype):
    """The model on the kernel equals the model on e3nn: energies, forces and the
    force-loss weight gradient (double backward through the convolutions)."""
    out = [model_outputs(kind, impl, dtype) for impl in ("ops", "e3nn")]
    tol = TOL[dtype] if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    assert out[0][1].abs().max() > 1e-3
    if out[0][0] is not None:
        torch.testing.assert_close(out[0][0], out[1][0], **tol)
    torch.testing.assert_close(out[0][1], out[1][1], **tol)
    for a, b in zip(out[0][2], out[1][2]):
        if a is None or b is None:
            assert a is None and b is None
            continue
        torch.testing.assert_close(a, b, **tol)
