"""torch.ops.mlff.symmetry_functions (cpp/ops/src/symmetry_functions.cpp) against the
pure-PyTorch reference of mlff.models.symmetry_functions: values, first and second
derivatives, and the Behler–Parrinello model built on either."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk

from conftest import sheared_cu
from mlff import ops
from mlff.data.molecules import molecule
from mlff.graph import atoms_to_graph, collate
from mlff.models import build_model
from mlff.models.symmetry_functions import SymmetryFunctions, parameter_set
from mlff.train.trainer import energy_and_forces

pytestmark = pytest.mark.skipif(not ops.NATIVE, reason=f"C++ operators not built: {ops.WHERE}")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def descriptor_pair(n_species, r_c, radial, angular, cutoff, dtype):
    """(kernel, reference) modules with the same parameters."""
    return tuple(SymmetryFunctions(n_species, r_c, radial, angular, cutoff, implementation=impl).to(dtype)
                 for impl in ("ops", "torch"))


def mixed_set(r_c):
    """Thesis set plus its G5 twin: G2, G4 and G5, non-integer ζ included."""
    radial, angular = parameter_set("Gs-3-3-2-G4", r_c)
    angular = angular + [[5.0] + p[1:] for p in angular] + [[4.0, 0.02, 1.5, -1.0], [5.0, 0.03, 2.5, 1.0]]
    return radial, angular


def toluene_graph(species):
    atoms = molecule("toluene")
    atoms.rattle(0.05, seed=3)
    return atoms_to_graph(atoms, species, 4.0)


def cu_graph():
    # periodic, triclinic, r_c > half the cell: every image through the edge list
    return atoms_to_graph(sheared_cu(2, 0.3, 0.1, -0.2, seed=4), ["Cu"], 4.0)


CASES = {
    "toluene-polynomial": (lambda: toluene_graph(["H", "C"]), 2, "polynomial"),
    "toluene-cosine-3species": (lambda: toluene_graph(["H", "C", "O"]), 3, "cosine"),
    "cu-triclinic": (cu_graph, 1, "polynomial"),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_reference_values_and_gradients(case, dtype):
    make, n_species, cutoff = CASES[case]
    g = make()
    kernel, reference = descriptor_pair(n_species, 4.0, *mixed_set(4.0), cutoff, dtype)
    vec = g.edge_vec().to(dtype)
    got, ref = kernel(g.species, g.edge_index, vec), reference(g.species, g.edge_index, vec)
    assert got.shape == ref.shape and got.dtype == dtype
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, **TOL[dtype])
    # vector-Jacobian product (forces) with a random cotangent
    w = torch.randn(ref.shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    grads = []
    for module in (kernel, reference):
        v = vec.clone().requires_grad_(True)
        grads.append(torch.autograd.grad((module(g.species, g.edge_index, v) * w).sum(), v)[0])
    torch.testing.assert_close(grads[0], grads[1], **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", list(CASES))
def test_kernel_matches_reference_jacobian_vector_product(case, dtype):
    """J u, the double backward of force training (d/dw of <Jᵀw, u>), on every case:
    G2, G4 and G5, non-integer ζ, three species, a triclinic cell."""
    make, n_species, cutoff = CASES[case]
    g = make()
    kernel, reference = descriptor_pair(n_species, 4.0, *mixed_set(4.0), cutoff, dtype)
    vec = g.edge_vec().to(dtype)
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(vec.shape, dtype=dtype, generator=gen)
    n_features = reference(g.species, g.edge_index, vec).shape[1]
    jvps = []
    for module in (kernel, reference):
        v = vec.clone().requires_grad_(True)
        w = torch.zeros(g.species.shape[0], n_features, dtype=dtype, requires_grad=True)
        (grad_v,) = torch.autograd.grad((module(g.species, g.edge_index, v) * w).sum(), v, create_graph=True)
        jvps.append(torch.autograd.grad((grad_v * u).sum(), w)[0])
    assert jvps[1].abs().max() > 0.1
    torch.testing.assert_close(jvps[0], jvps[1], **TOL[dtype])


def test_gradcheck_and_gradgradcheck():
    g = toluene_graph(["H", "C"])
    keep = torch.arange(0, g.edge_index.shape[1], 3)  # a third of the edges keeps gradcheck quick
    edge_index = g.edge_index[:, keep]
    radial, angular = mixed_set(4.0)
    rad = torch.tensor(radial, dtype=torch.float64)
    ang = torch.tensor(angular, dtype=torch.float64)

    def op(v):
        return torch.ops.mlff.symmetry_functions(v, edge_index[0], g.species[edge_index[1]], g.species.shape[0], 2,
                                                 rad, ang, 4.0, 1, 5.0)

    vec = g.edge_vec()[keep].detach().requires_grad_(True)
    assert torch.autograd.gradcheck(op, (vec,))
    assert torch.autograd.gradgradcheck(op, (vec,))


def test_third_derivative_raises_a_clear_error():
    g = toluene_graph(["H", "C"])
    kernel, _ = descriptor_pair(2, 4.0, *mixed_set(4.0), "cosine", torch.float64)
    v = g.edge_vec().detach().requires_grad_(True)
    (d1,) = torch.autograd.grad(kernel(g.species, g.edge_index, v).sum(), v, create_graph=True)
    (d2,) = torch.autograd.grad((d1**2).sum(), v, create_graph=True)
    with pytest.raises(RuntimeError, match="beyond the second order"):
        torch.autograd.grad(d2.sum(), v)


def test_bad_inputs_raise():
    g = toluene_graph(["H", "C"])
    rad, ang = torch.tensor([[0.5, 0.0]], dtype=torch.float64), torch.zeros(0, 4, dtype=torch.float64)
    vec, centre, nbr = g.edge_vec(), g.edge_index[0], g.species[g.edge_index[1]]
    with pytest.raises(RuntimeError, match="outside"):
        torch.ops.mlff.symmetry_functions(vec, centre, nbr, 3, 2, rad, ang, 4.0, 1, 5.0)  # centres ≥ 3
    with pytest.raises(RuntimeError, match="neighbour species"):
        torch.ops.mlff.symmetry_functions(vec, centre, nbr + 5, 15, 2, rad, ang, 4.0, 1, 5.0)
    with pytest.raises(RuntimeError, match="edge_vec must be"):
        torch.ops.mlff.symmetry_functions(vec[:, :2], centre, nbr, 15, 2, rad, ang, 4.0, 1, 5.0)


def test_result_does_not_depend_on_thread_count():
    g = atoms_to_graph(bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3), ["Cu"], 5.0)
    kernel, _ = descriptor_pair(1, 5.0, *parameter_set("cu_emt_final", 5.0), "polynomial", torch.float64)
    threads = torch.get_num_threads()
    try:
        out = []
        for n in (1, 2):
            torch.set_num_threads(n)
            v = g.edge_vec().detach().requires_grad_(True)
            G = kernel(g.species, g.edge_index, v)
            out.append((G, torch.autograd.grad(G.sum(), v)[0]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bp_model_same_energy_forces_and_training_gradient(dtype):
    """The model on the kernel equals the model on the reference, including the
    force-loss weight gradient (double backward through the descriptor)."""
    species = ["H", "C"]
    frames = [molecule("toluene") for _ in range(3)]
    for k, a in enumerate(frames):
        a.rattle(0.1, seed=k)
    batch = collate([atoms_to_graph(a, species, 5.0) for a in frames]).to(dtype)
    out = []
    for impl in ("ops", "torch"):
        torch.manual_seed(0)
        model = build_model("bp", species, 5.0, dtype, symmetry_functions="Gs-3-3-1-G4", hidden=[8, 8],
                            implementation=impl)
        for p in model.parameters():  # non-zero output layer, so forces are non-trivial
            torch.nn.init.normal_(p, std=0.3)
        energy, forces = energy_and_forces(model, batch, create_graph=True)
        loss = (forces**2).mean() + (energy**2).mean()
        params = list(model.parameters())
        out.append((energy, forces, torch.autograd.grad(loss, params)))
    tol = TOL[dtype] if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[0][0], out[1][0], **tol)
    torch.testing.assert_close(out[0][1], out[1][1], **tol)
    for a, b in zip(out[0][2], out[1][2]):
        torch.testing.assert_close(a, b, **tol)


def test_bp_deploys_the_kernel_and_the_reference(tmp_path):
    """A scripted model calls torch.ops.mlff.symmetry_functions (so lmp needs the library),
    the reference implementation does not."""
    from mlff.deploy import export_model

    for impl in ("ops", "torch"):
        model = build_model("bp", ["H", "C"], 4.0, torch.float64, symmetry_functions="amp_default",
                            implementation=impl)
        path = tmp_path / f"{impl}.pt"
        export_model(model, path)
        graph = str(torch.jit.load(str(path)).inlined_graph)
        assert ("mlff::symmetry_functions" in graph) == (impl == "ops")
