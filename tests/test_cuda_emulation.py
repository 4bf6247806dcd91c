"""The CUDA kernels (cuda/src/*.cu) and their torch glue, run by the host emulation of the
CUDA execution model (cuda/include/mlff/cuda/host_emulation.h), against the CPU operators.

``libmlff_cuda_emulation.so`` compiles the kernels as host C++: every kernel runs thread by
thread on CPU tensors, through the same glue (``cpp/ops/src/cuda_glue.cpp``) that drives
the GPU. This checks in every test run, without a GPU, what each kernel computes: its
indexing and division of work, its dual-number (double backward) instantiations, and the
glue's tables and groupings. It cannot find data races or device-memory errors; those
need the lent GPU (tests/test_cuda_ops.py, compute-sanitizer).

Each glue call is compared with the CPU operator's value, gradient (grad given), forward
directional derivative (tangent given) and backward directional derivative (both given);
the references come from the CPU operators' own autograd, which
tests/test_symmetry_ops.py and tests/test_tensor_product_ops.py check against PyTorch
and e3nn."""

from __future__ import annotations

import os

import pytest
import torch
from test_tensor_product_ops import CASES, UVW_CASES, conv_case, uvw_case

from mlff import ops
from mlff.data.molecules import molecule
from mlff.graph import atoms_to_graph
from mlff.models.equivariant import tensor_product_tables
from mlff.models.symmetry_functions import parameter_set

LIBRARY = os.path.join(os.path.dirname(ops.library_path()), "libmlff_cuda_emulation.so")

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason="needs the C++ operator library")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


@pytest.fixture(scope="module")
def emulated():
    """torch.ops.mlff_cuda_emulation (scripts/build_plugin.sh builds and installs it)."""
    assert os.path.exists(LIBRARY), f"{LIBRARY} is missing: run scripts/build_plugin.sh"
    torch.ops.load_library(LIBRARY)
    return torch.ops.mlff_cuda_emulation


def cpu_derivatives(f, inputs, grad, tangents):
    """The value of f, <grad, f>'s gradient (a tuple over inputs), the forward directional
    derivative J·t and the gradient's directional derivative along t (grad fixed), from the
    CPU operator's autograd (double backward)."""
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    g = grad.detach().clone().requires_grad_(True)
    out = f(*xs)
    vjp = torch.autograd.grad(out, xs, g, create_graph=True)
    inner = sum((v * t).sum() for v, t in zip(vjp, tangents))
    jvp = torch.autograd.grad(inner, g, retain_graph=True)[0]
    hvp = torch.autograd.grad(inner, xs, allow_unused=True)
    hvp = [torch.zeros_like(x) if d is None else d for x, d in zip(xs, hvp)]
    return out.detach(), [v.detach() for v in vjp], jvp, hvp


def random_like(tensors, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(t.shape, dtype=t.dtype, generator=gen) for t in tensors]


def assert_all_close(actual, expected, dtype):
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_symmetry_functions_emulated_kernels(emulated, dtype):
    atoms = molecule("toluene")
    atoms.rattle(0.05, seed=1)
    g = atoms_to_graph(atoms, ["H", "C"], 4.0)
    radial, angular = parameter_set("Gs-3-3-2-G4", 4.0)
    angular = angular + [[5.0] + p[1:] for p in angular]  # G4 and G5
    rad, ang = torch.tensor(radial, dtype=torch.float64), torch.tensor(angular, dtype=torch.float64)
    centre, nbr = g.edge_index[0], g.species[g.edge_index[1]]
    n = g.species.shape[0]
    vec = g.edge_vec().to(dtype)
    for cutoff, gamma in ((0, 0.0), (1, 5.0)):
        args = (centre, nbr, n, 2, rad, ang, 4.0, cutoff, gamma)

        def cpu(v, args=args):
            return torch.ops.mlff.symmetry_functions(v, *args)

        out = cpu(vec)
        grad, tangent = random_like([out, vec], seed=cutoff)
        ref = cpu_derivatives(cpu, [vec], grad, [tangent])
        got = [emulated.symmetry_functions(vec, None, None, *args),
               emulated.symmetry_functions(vec, None, grad, *args),
               emulated.symmetry_functions(vec, tangent, None, *args),
               emulated.symmetry_functions(vec, tangent, grad, *args)]
        assert_all_close(got, [ref[0], ref[1][0], ref[2], ref[3][0]], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_tp_conv_emulated_kernels(emulated, case, dtype):
    tp, h, sh, w, edge_index = conv_case(*CASES[case])
    h, sh, w = (t.to(dtype) for t in (h, sh, w))
    tables = tensor_product_tables(tp)
    centre, nbr = edge_index
    n = h.shape[0]

    def cpu(h, sh, w):
        return torch.ops.mlff.tp_conv(h, sh, w, centre, nbr, n, *tables)

    out = cpu(h, sh, w)
    grad, *tangents = random_like([out, h, sh, w], seed=1)
    ref_out, ref_vjp, ref_jvp, ref_hvp = cpu_derivatives(cpu, [h, sh, w], grad, tangents)
    idx = (centre, nbr, n, *tables)
    assert_all_close(emulated.tp_conv(h, sh, w, None, None, None, None, *idx), [ref_out], dtype)
    assert_all_close(emulated.tp_conv(h, sh, w, None, None, None, grad, *idx), ref_vjp, dtype)
    assert_all_close(emulated.tp_conv(h, sh, w, *tangents, None, *idx), [ref_jvp], dtype)
    assert_all_close(emulated.tp_conv(h, sh, w, *tangents, grad, *idx), ref_hvp, dtype)
    # one tangent at a time: the glue counts the missing ones as zero
    zero = [torch.zeros_like(t) for t in tangents]
    only_y = [zero[0], tangents[1], zero[2]]
    ref_y = cpu_derivatives(cpu, [h, sh, w], grad, only_y)
    assert_all_close(emulated.tp_conv(h, sh, w, None, tangents[1], None, grad, *idx), ref_y[3], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(UVW_CASES))
def test_tp_uvw_emulated_kernels(emulated, case, dtype):
    # more nodes than edges reach: some nodes have no edges, so their gradient rows must be zero
    tp, h, sh, w, neighbour, group = uvw_case(*UVW_CASES[case], n_nodes=40)
    h, sh, w = (t.to(dtype) for t in (h, sh, w))
    tables = tensor_product_tables(tp)
    dim_out = tp.irreps_out.dim

    def cpu(h, sh, w):
        return torch.ops.mlff.tp_uvw(h, sh, w, neighbour, group, *tables, dim_out)

    out = cpu(h, sh, w)
    grad, *tangents = random_like([out, h, sh, w], seed=2)
    ref_out, ref_vjp, ref_jvp, ref_hvp = cpu_derivatives(cpu, [h, sh, w], grad, tangents)
    idx = (neighbour, group, *tables, dim_out)
    assert_all_close(emulated.tp_uvw(h, sh, w, None, None, None, None, *idx), [ref_out], dtype)
    assert_all_close(emulated.tp_uvw(h, sh, w, None, None, None, grad, *idx), ref_vjp, dtype)
    assert_all_close(emulated.tp_uvw(h, sh, w, *tangents, None, *idx), [ref_jvp], dtype)
    assert_all_close(emulated.tp_uvw(h, sh, w, *tangents, grad, *idx), ref_hvp, dtype)
    zero = [torch.zeros_like(t) for t in tangents]
    ref_w = cpu_derivatives(cpu, [h, sh, w], grad, [zero[0], zero[1], tangents[2]])
    assert_all_close(emulated.tp_uvw(h, sh, w, None, None, tangents[2], grad, *idx), ref_w[3], dtype)


def test_tp_uvw_glue_rejects_tables_the_kernels_cannot_run(emulated):
    """The CUDA glue's own table checks (beyond the CPU operator's layout checks): a weight
    entry shared by two paths, paths of different shapes writing one output block, and an
    irrep wider than the kernels' accumulators."""
    tp, h, sh, w, neighbour, group = uvw_case(*UVW_CASES["se3-l2"])
    paths, coeff_index, coeff = tensor_product_tables(tp)
    dim_out = tp.irreps_out.dim

    shared = paths.clone()
    shared[1, 7] = shared[0, 7]  # path 1's weights start where path 0's do
    with pytest.raises(RuntimeError, match="weight entry 0 belongs to paths 0 and 1"):
        emulated.tp_uvw(h, sh, w, None, None, None, None, neighbour, group, shared, coeff_index, coeff, dim_out)

    mixed = paths.clone()
    other = int(torch.nonzero(mixed[:, 5] != mixed[0, 5])[0])  # a path with another output irrep dimension
    mixed[other, 4] = mixed[0, 4]  # ... made to write path 0's output block
    with pytest.raises(RuntimeError, match=f"paths 0 and {other} share a block but not its shape"):
        emulated.tp_uvw(h, sh, w, None, None, None, None, neighbour, group, mixed, coeff_index, coeff, dim_out)

    wide = paths.clone()
    wide[0, 1] = 17  # an input irrep of dimension 17 (l = 8)
    with pytest.raises(RuntimeError, match="path 0 has an irrep of dimension > 15"):
        emulated.tp_uvw(h, sh, w, None, None, None, None, neighbour, group, wide, coeff_index, coeff, dim_out)


def test_glue_tables_edited_in_place_are_not_served_stale(emulated):
    """The glue builds its tables (on a GPU: uploads them) once per table tensor; an
    in-place edit must reach the kernels and its checks on the next call."""
    tp, h, sh, w, neighbour, group = uvw_case(*UVW_CASES["se3-l2"])
    paths, coeff_index, coeff = tensor_product_tables(tp)
    dim_out = tp.irreps_out.dim

    def f():
        return emulated.tp_uvw(h, sh, w, None, None, None, None, neighbour, group, paths, coeff_index, coeff,
                               dim_out)[0]

    before = f()
    coeff.mul_(2.0)
    torch.testing.assert_close(f(), 2.0 * before, rtol=1e-12, atol=1e-12)
    paths[0, 1] = 17
    with pytest.raises(RuntimeError, match="path 0 has an irrep of dimension > 15"):
        f()

    tp, h, sh, w, edge_index = conv_case(*CASES["l1"])
    tables = list(tensor_product_tables(tp))
    idx = (edge_index[0], edge_index[1], h.shape[0])
    before = emulated.tp_conv(h, sh, w, None, None, None, None, *idx, *tables)[0]
    tables[2].mul_(-1.0)
    torch.testing.assert_close(emulated.tp_conv(h, sh, w, None, None, None, None, *idx, *tables)[0], -before,
                               rtol=1e-12, atol=1e-12)
