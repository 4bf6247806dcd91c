"""The CUDA kernels (cuda/) against the CPU kernels: values, gradients and second
derivatives of torch.ops.mlff.symmetry_functions, torch.ops.mlff.tp_conv and
torch.ops.mlff.tp_uvw, and the se3_transformer model on either device.

Runs only where torch has a GPU and libmlff_ops.so was built with the CUDA kernels (the
lent GPU machine; see docs/results.md for its results). Elsewhere every test is skipped;
CI instead proves that the CUDA sources compile (scripts/check_cuda.sh) and runs the
kernels' host emulation (tests/test_cuda_emulation.py)."""

from __future__ import annotations

import csv

import pytest
import torch

from mlff import ops
from mlff.data.molecules import molecule
from mlff.graph import atoms_to_graph
from mlff.models.symmetry_functions import parameter_set

pytestmark = pytest.mark.skipif(not (ops.NATIVE and torch.cuda.is_available() and ops.cuda_built()),
                                reason="needs a GPU and libmlff_ops.so built with the CUDA kernels")

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def second_order(f, inputs, seed=0):
    """Output, first and second derivatives (of a random quadratic form of the gradients)."""
    gen = torch.Generator().manual_seed(seed)
    xs = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = f(*xs)
    w = torch.randn(out.shape, dtype=out.dtype, generator=gen).to(out.device)
    grads = torch.autograd.grad((out * w).sum(), xs, create_graph=True)
    second = torch.autograd.grad(sum((g**2).sum() for g in grads), xs)
    return [out.detach().cpu()] + [g.detach().cpu() for g in grads] + [s.cpu() for s in second]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_symmetry_functions_cuda_equals_cpu(dtype):
    atoms = molecule("toluene")
    atoms.rattle(0.05, seed=1)
    g = atoms_to_graph(atoms, ["H", "C"], 4.0)
    radial, angular = parameter_set("Gs-3-3-2-G4", 4.0)
    angular = angular + [[5.0] + p[1:] for p in angular]
    rad, ang = torch.tensor(radial, dtype=torch.float64), torch.tensor(angular, dtype=torch.float64)
    nbr = g.species[g.edge_index[1]]

    def run(device):
        def f(v):
            return torch.ops.mlff.symmetry_functions(v, g.edge_index[0].to(device), nbr.to(device),
                                                     g.species.shape[0], 2, rad, ang, 4.0, 1, 5.0)
        return second_order(f, [g.edge_vec().to(dtype).to(device)])

    for a, b in zip(run("cpu"), run("cuda")):
        torch.testing.assert_close(b, a, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tp_conv_cuda_equals_cpu(dtype):
    from test_tensor_product_ops import conv_case

    from mlff.models.equivariant import tensor_product_tables

    tp, h, sh, w, edge_index = conv_case("4x0e+4x1o+4x2e", 2, "0e+1o+2e", n_nodes=11, n_edges=60)
    tables = tensor_product_tables(tp)

    def run(device):
        def f(h, sh, w):
            return torch.ops.mlff.tp_conv(h, sh, w, edge_index[0].to(device), edge_index[1].to(device), h.shape[0],
                                          *tables)
        return second_order(f, [t.to(dtype).to(device) for t in (h, sh, w)])

    for a, b in zip(run("cpu"), run("cuda")):
        torch.testing.assert_close(b, a, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tp_uvw_cuda_equals_cpu(dtype):
    from test_tensor_product_ops import UVW_CASES, uvw_case

    from mlff.models.equivariant import tensor_product_tables

    tp, h, sh, w, neighbour, group = uvw_case(*UVW_CASES["l3-odd-parity"], n_nodes=40)
    tables = tensor_product_tables(tp)

    def run(device):
        def f(h, sh, w):
            return torch.ops.mlff.tp_uvw(h, sh, w, neighbour.to(device), group.to(device), *tables,
                                         tp.irreps_out.dim)
        return second_order(f, [t.to(dtype).to(device) for t in (h, sh, w)])

    for a, b in zip(run("cpu"), run("cuda")):
        torch.testing.assert_close(b, a, **TOL[dtype])


def test_se3_transformer_cuda_equals_cpu():
    """Energies, forces and force-loss parameter gradients of se3_transformer, whose keys
    and values run through tp_uvw on either device."""
    from test_tensor_product_ops import model_outputs

    cpu = model_outputs("se3_transformer", "ops", torch.float64, device="cpu")
    gpu = model_outputs("se3_transformer", "ops", torch.float64, device="cuda")
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], rtol=1e-10, atol=1e-10)
    for a, b in zip(cpu[2], gpu[2]):
        if a is not None:
            torch.testing.assert_close(b.cpu(), a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["schnet", "bp", "nequip"])
def test_training_on_the_gpu(kind, tmp_path):
    """``mlff train --device cuda``: a few epochs of force training on the GPU give finite,
    decreasing losses and a checkpoint that loads on the CPU and predicts what the GPU
    model predicted."""
    from conftest import emt_frames

    from mlff.train.checkpoint import load_checkpoint, model_from_record
    from mlff.train.config import TrainConfig
    from mlff.train.trainer import Trainer, energy_and_forces
    from mlff.graph import collate

    frames = emt_frames(molecule("toluene"), 24)
    params = {"schnet": {"n_features": 16}, "bp": {}, "nequip": {"n_features": 8, "n_interactions": 2}}[kind]
    config = TrainConfig(model=kind, model_params=params, epochs=4, batch_size=4, device="cuda", dtype="float64")
    trainer = Trainer(config, tmp_path / "run")
    result = trainer.fit(frames[:20], frames[20:], progress=False, log=lambda m: None)
    assert next(trainer.model.parameters()).is_cuda and result["epochs"] == 4
    losses = [float(r["train_loss"]) for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv"))]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]

    record = load_checkpoint(tmp_path / "run" / "last.ckpt")
    cpu_model = model_from_record(record)
    batch = collate([atoms_to_graph(a, cpu_model.species, cpu_model.r_max) for a in frames[20:]]).to(torch.float64)
    e_cpu, f_cpu = energy_and_forces(cpu_model, batch, create_graph=False)
    e_gpu, f_gpu = energy_and_forces(trainer.model, batch.to(device="cuda"), create_graph=False)
    torch.testing.assert_close(e_gpu.cpu(), e_cpu.detach(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(f_gpu.cpu(), f_cpu, rtol=1e-9, atol=1e-9)
