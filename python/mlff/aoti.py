"""AOTInductor export of deployed models (``mlff-deploy --format aoti``): ``.pt2`` packages.

TorchScript runs a model op by op in an interpreter; on small systems (a 15-atom
molecule) that fixed cost per op is most of a call. AOTInductor (PyTorch's ahead-of-time
compiler) instead compiles the whole computation — the energy *and* its gradient — into
one shared library of fused C++ kernels, loaded by LAMMPS and Python without an
interpreter.

How a model is exported:

1. the deployed function (atomic energies and ``∂E/∂r_ij``, or direct forces; committees
   with their members' forces, energies and virials) is traced with ``make_fx`` on
   symbolic shapes, which records the backward pass of ``torch.autograd.grad`` as
   explicit operations (the approach of the nequip package's ``nequip-compile``);
2. ``torch.export`` turns the trace into an ExportedProgram with dynamic numbers of atoms
   and edges;
3. ``torch._inductor.aoti_compile_and_package`` compiles it; the package's metadata holds
   mlff's ``metadata.json`` (key ``mlff_metadata``).

mlff's own operators stay calls in the compiled package: the halo exchange
(``torch.ops.mlff.halo_exchange`` / ``halo_reverse``, which LAMMPS needs on several MPI
ranks; registered at every dispatcher level) and, through their export forms
(``cpp/ops/src/export_ops.cpp``, :mod:`mlff.ops.export`: a forward operator whose backward
is another operator), the symmetry functions, the ``uvu`` tensor-product convolution
``tp_conv`` and ``tp_uvw`` tensor products, the radial tables, and SchNet's convolution
and fused filter. Everything else is traced as PyTorch operations, which Inductor
compiles into fused loops.

Inputs of the package: ``species [n] int64, edge_index [2, e] int64, edge_vec [e, 3],
local_weight [n]`` (1 for the atoms whose energy counts, 0 for LAMMPS's ghost atoms; the
TorchScript models' ``n_local``). Outputs: a tuple named by ``metadata["outputs"]``.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, ModelFileError

#: the torch recorded in a package (compared with the running torch when it is loaded)
TORCH_VERSION = torch.__version__

# "node_forces" and "virial" (F_i and the symmetric virial of the weighted energy, fp64-ready in
# the package's dtype) spare the ASE calculator its post-processing; LAMMPS reads edge_grad
OUTPUTS = {"energy": ["atomic_energy", "edge_grad", "node_forces", "virial"], "direct": ["forces"],
           "committee": ["atomic_energy", "edge_grad", "member_forces", "member_atomic_energy", "member_virial"],
           "direct_committee": ["forces", "member_forces"]}


def is_aoti_package(path: str | Path) -> bool:
    """Whether ``path`` is an AOTInductor package (a zip holding ``data/aotinductor/``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any("/data/aotinductor/" in n or n.startswith("data/aotinductor/") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _export_implementations(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a prepared model for tracing, its kernels those of the TorchScript export
    (SchNet's fused filter), each traced as its export operator."""
    from .models.schnet import SchNet

    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, SchNet):
            m.for_export()  # the fused filter, as in TorchScript exports
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _node_forces(edge_grad: torch.Tensor, edge_index: torch.Tensor, n: int) -> torch.Tensor:
    forces = torch.zeros(n, 3, dtype=edge_grad.dtype, device=edge_grad.device)
    return forces.index_add(0, edge_index[0], edge_grad).index_add(0, edge_index[1], -edge_grad)


class _Exported(torch.nn.Module):
    """The function that is traced: ``(species, edge_index, edge_vec, local_weight) -> tuple``."""

    def __init__(self, members: list[torch.nn.Module], kind: str):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.kind = kind

    def forward(self, species, edge_index, edge_vec, local_weight):
        n = species.shape[0]
        if self.kind in ("direct", "direct_committee"):
            forces = [m(species, edge_index, edge_vec) for m in self.members]
            if self.kind == "direct":
                return (forces[0],)
            member = torch.stack(forces, dim=1)
            return member.mean(dim=1), member
        edge_vec = edge_vec.detach().requires_grad_(True)
        energies, grads = [], []
        for m in self.members:
            atomic = m(species, edge_index, edge_vec)
            (g,) = torch.autograd.grad([(atomic * local_weight).sum()], [edge_vec])
            energies.append(atomic.detach())
            grads.append(g)
        if self.kind == "energy":
            virial = -edge_vec.detach().t() @ grads[0]
            return energies[0], grads[0], _node_forces(grads[0], edge_index, n), 0.5 * (virial + virial.t())
        member_grad = torch.stack(grads)
        member_forces = torch.stack([_node_forces(g, edge_index, n) for g in grads], dim=1)
        member_virial = -torch.einsum("ea,meb->mab", edge_vec.detach(), member_grad)
        member_energy = torch.stack(energies, dim=1)
        return member_energy.mean(dim=1), member_grad.mean(dim=0), member_forces, member_energy, member_virial


def example_inputs(species: list[str], r_max: float, dtype: torch.dtype, n: int = 12) -> tuple:
    """A small random cluster whose atoms are within ``r_max`` of several others (tracing input)."""
    rng = np.random.default_rng(0)
    side = 0.8 * r_max
    pos = rng.uniform(0.0, side, size=(n, 3))
    pos[1] = pos[0] + [0.6 * r_max, 0.0, 0.0]
    d = pos[None, :, :] - pos[:, None, :]
    r = np.linalg.norm(d, axis=-1)
    i, j = np.nonzero((r < r_max) & (r > 0))
    edge_index = torch.as_tensor(np.stack([i, j]), dtype=torch.int64)
    edge_vec = torch.as_tensor(d[i, j], dtype=dtype)
    sp = torch.as_tensor(np.arange(n) % len(species), dtype=torch.int64)
    return sp, edge_index, edge_vec, torch.ones(n, dtype=dtype)


def compile_package(members: list[torch.nn.Module], kind: str, meta: dict[str, Any], path: str | Path,
                    dtype: torch.dtype, threads: int = 1) -> Path:
    """Trace, export and AOT-compile ``members`` (prepared, in ``dtype``) into ``path``.

    ``threads``: the OpenMP threads Inductor generates the package's kernels for (metadata
    ``threads``). Inductor fixes this at compile time (default: the compiling process's
    torch threads); code generated for several threads keeps its parallel regions and
    per-thread reduction buffers when run on one, which cost SchNet (fp32, tabulated)
    1.3 instead of 0.7 ms per toluene call and 76 instead of 12 ms on 500-atom Cu. 1, the
    default, is right for one thread per MPI rank and for small systems. Raises
    ``ConfigError`` for ``threads`` < 1 or a directory as ``path``.
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory; give a file name, e.g. {path / 'model.pt2'}")
    if int(threads) != threads or threads < 1:
        raise ConfigError(f"threads must be an integer >= 1 (the OpenMP threads the package is compiled for), "
                          f"got {threads!r}")
    threads = int(threads)
    from .ops import export as export_ops

    module = _Exported([_export_implementations(m) for m in members], kind).eval()
    args = example_inputs(meta["species"], meta["r_max"], dtype)
    with export_ops.enabled():
        traced = make_fx(module, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*args)
    n, e = torch.export.Dim("n_nodes", min=2), torch.export.Dim("n_edges", min=3)
    exported = torch.export.export(traced, args, dynamic_shapes=({0: n}, {1: e}, {0: e}, {0: n}), strict=False)
    meta = {**meta, "format_version": meta["format_version"], "package": "aoti", "outputs": OUTPUTS[kind],
            "torch_version": TORCH_VERSION, "threads": threads}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".pt2", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        # decompose_sort_ops: Inductor's sort lowering otherwise indexes in int16 and guards the
        # sorted length below 32,767 from the small tracing input (the edge count of a large box
        # is far above); int32 indices allow up to 2^31 - 1
        torch._inductor.aoti_compile_and_package(
            exported, package_path=tmp,
            inductor_configs={"aot_inductor.metadata": {"mlff_metadata": json.dumps(meta)},
                              "triton.decompose_sort_ops": True, "cpp.threads": threads})
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class AOTIModel:
    """A loaded ``.pt2`` package with the TorchScript models' call: ``(species, edge_index,
    edge_vec, n_local=None) -> dict`` of the outputs (``docs/model_interface.md``)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            # the package loader itself, as LAMMPS uses it: torch's Python wrapper warns about any
            # file name not ending in .pt2, and mlff-deploy writes packages under the name given
            self.loader = torch._C._aoti.AOTIModelPackageLoader(self.path, "model", False, 1, -1)
        except Exception as exc:
            raise ModelFileError(f"{path} is not a loadable AOTInductor package: {str(exc).splitlines()[0]}") \
                from None
        text = self.loader.get_metadata().get("mlff_metadata")
        if not text:
            raise ModelFileError(f"{path} is an AOTInductor package without mlff metadata (not from mlff-deploy)")
        self.metadata = json.loads(text)
        built = self.metadata.get("torch_version")
        if built and built != torch.__version__:
            raise ModelFileError(f"{path} was compiled with torch {built}, but this is torch {torch.__version__}: "
                                 f"AOTInductor packages run only with the torch that compiled them; export it "
                                 f"again (mlff-deploy --format aoti) or use a TorchScript export")
        self.dtype = getattr(torch, self.metadata["dtype"])
        # The package's own entry point parses its input and output tree specs on every
        # call (about 20 µs, a sixth of the SchNet package's toluene call). Its four inputs
        # and its outputs are flat lists of tensors in order, so the loader is called
        # directly (torch is the compiling version, checked above).
        self._run = self.loader.boxed_run
        self._ones = torch.ones(0, dtype=self.dtype)

    def __call__(self, species, edge_index, edge_vec, n_local: int | None = None) -> dict[str, torch.Tensor]:
        n = species.shape[0]
        if n_local is None:
            # all atoms count: the same all-ones weight serves every call with n atoms (the
            # package only reads its inputs)
            if self._ones.shape[0] != n:
                self._ones = torch.ones(n, dtype=self.dtype)
            weight = self._ones
        else:
            weight = torch.ones(n, dtype=self.dtype)
            weight[n_local:] = 0.0
        # The package holds its own backward pass, so autograd is not needed at run time; in
        # inference mode the dispatcher also skips the Python autograd wrappers that
        # mlff.ops.export registers for tracing (6 Python calls per nequip call, 0.13 of
        # 0.66 ms on toluene).
        with torch.inference_mode():
            out = self._run([species, edge_index, edge_vec.to(self.dtype), weight])
        return dict(zip(self.metadata["outputs"], out))
