"""``mlff-deploy``: export a trained model for LAMMPS and Python, as an AOTInductor package
(:mod:`mlff.aoti`; the default on CPUs, :func:`auto_format`) or TorchScript.

The exported module implements the contract in ``docs/model_interface.md``:
``forward(species, edge_index, edge_vec, n_local=None) -> {"atomic_energy", "edge_grad"}``
(energy models) or ``-> {"forces"}`` (direct-force models, ``metadata["direct_forces"]``),
with metadata (r_max, species, model kind, message-passing depth, halo-exchange widths,
dtype, versions) in the archive's extra file ``metadata.json``.

``n_local`` (format version 2) is for multi-rank LAMMPS: the first ``n_local`` nodes are
the atoms the rank owns, the rest are ghost atoms; ``edge_grad`` is then the gradient
of the energy of the owned atoms only.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from . import __version__
from . import ops  # noqa: F401  (torch.ops.mlff.*: needed to script and to load models)
from .errors import ConfigError, MLFFError, ModelFileError
from .models import EnergyModel

FORMAT = "mlff-deployed-model"
# 1: forward(species, edge_index, edge_vec); 2: + optional n_local, metadata halo_widths
FORMAT_VERSION = 2


class DeployedPotential(nn.Module):
    """Wraps an energy model so one call returns atomic energies and ``∂E/∂r_ij``.

    ``forward(species [n] int64, edge_index [2, e] int64, edge_vec [e, 3], n_local=None)
    -> {"atomic_energy": [n] eV, "edge_grad": [e, 3] eV/Å}``, with ``E`` the sum of the
    atomic energies of all nodes, or of the first ``n_local`` nodes if given. Must be
    called with autograd enabled (not under ``torch.no_grad()``).

    Models with ``accepts_n_local = True`` get ``n_local`` too (they may then skip the
    ghost rows, see :class:`~mlff.models.schnet.SchNet`).
    """

    __constants__ = ["pass_n_local"]  # TorchScript constant: the branch not taken is not compiled

    def __init__(self, model: EnergyModel):
        super().__init__()
        self.model = model
        self.pass_n_local = bool(getattr(model, "accepts_n_local", False))

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: Optional[int] = None) -> Dict[str, torch.Tensor]:
        edge_vec = edge_vec.detach().requires_grad_(True)
        if self.pass_n_local:
            atomic_energy = self.model(species, edge_index, edge_vec, n_local)
        else:
            atomic_energy = self.model(species, edge_index, edge_vec)
        energy = atomic_energy.sum() if n_local is None else atomic_energy[:n_local].sum()
        grads = torch.autograd.grad([energy], [edge_vec], allow_unused=True)
        edge_grad = grads[0]
        if edge_grad is None:
            edge_grad = torch.zeros_like(edge_vec)
        return {"atomic_energy": atomic_energy.detach(), "edge_grad": edge_grad}


class DeployedForceField(nn.Module):
    """Wraps a direct-force model: ``forward(species [n] int64, edge_index [2, e] int64,
    edge_vec [e, 3], n_local=None) -> {"forces": [n, 3] eV/Å}``. No energy, no autograd
    needed; ``n_local`` is accepted for the common signature (forces of ghost nodes are
    simply not used)."""

    def __init__(self, model: EnergyModel):
        super().__init__()
        self.model = model

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: Optional[int] = None) -> Dict[str, torch.Tensor]:
        return {"forces": self.model(species, edge_index, edge_vec).detach()}


def is_direct_force(model: nn.Module) -> bool:
    return bool(getattr(model, "direct_forces", False))


def metadata_for(model: EnergyModel, dtype: torch.dtype) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "mlff_version": __version__,
            "model_kind": model.kind, "r_max": model.r_max, "species": list(model.species),
            "n_message_passing": int(model.n_message_passing), "dtype": str(dtype).removeprefix("torch."),
            "direct_forces": is_direct_force(model), "halo_widths": halo_widths(model), "hparams": model.hparams}


def halo_widths(model: nn.Module) -> list[int] | None:
    """Metadata ``halo_widths``: values per atom of each halo exchange the model makes
    (``[]``: strictly local; ``None``: message passing without exchange)."""
    widths = model.halo_widths() if hasattr(model, "halo_widths") else None
    if widths is None:
        return [] if int(getattr(model, "n_message_passing", 2)) <= 1 else None
    return [int(w) for w in widths]


def _prepared(model: EnergyModel, dtype: torch.dtype, tabulate: bool, table_tolerance: float):
    """A copy of ``model`` in eval mode, radial networks tabulated if asked, cast to ``dtype``,
    and the metadata ``radial_tables`` entry."""
    model = copy.deepcopy(model).eval()
    tables = model.tabulate_radial(table_tolerance) if tabulate else []
    info = None if not tables else {
        "tolerance": table_tolerance, "n_intervals": [t.n_intervals for t in tables],
        "error": max(t.error for t in tables), "error_derivative": max(t.error_derivative for t in tables)}
    return model.to(dtype), info


def _write(scripted: torch.jit.ScriptModule, meta: dict[str, Any], path: str | Path) -> None:
    """Save ``scripted`` with ``metadata.json`` atomically (temporary file, then rename)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"output {path} is a directory; give a file name, e.g. {path / 'model.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={"metadata.json": json.dumps(meta)})
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_model(model: EnergyModel, path: str | Path, dtype: torch.dtype = torch.float64,
                 tabulate: bool = False, table_tolerance: float = 1e-8,
                 training_range: dict[str, Any] | None = None, format: str = "torchscript",
                 threads: int = 1) -> dict[str, Any]:
    """Script ``model`` (a copy, cast to ``dtype``) and write it with metadata to ``path``.

    ``tabulate``: the copy's radial networks are replaced by tables first
    (:meth:`~mlff.models.EnergyModel.tabulate_radial`, relative error at most
    ``table_tolerance`` in values and derivatives; metadata ``radial_tables``).

    ``training_range``: what the training data covered (metadata ``training_range``, from
    the checkpoint: shortest distance per species pair, atomic-energy range per species,
    periodicity), for extrapolation warnings in LAMMPS and the ASE calculator.

    ``format``: ``"torchscript"`` (``.pt``) or ``"aoti"`` (an AOTInductor ``.pt2`` package,
    :mod:`mlff.aoti`: compiled kernels, faster on small systems; takes a minute or two).
    ``threads``: for ``"aoti"``, the OpenMP threads its kernels are generated for (1: serial
    code, fastest per core; :func:`mlff.aoti.compile_package`).

    Returns the metadata dict. The file is written to a temporary name and renamed.
    Raises ``ConfigError`` if ``tabulate`` is asked of a model without radial networks,
    or if ``path`` is a directory.
    """
    model, tables = _prepared(model, dtype, tabulate, table_tolerance)
    meta = metadata_for(model, dtype)
    meta["training_range"] = training_range
    meta["radial_tables"] = tables
    if format == "aoti":
        from .aoti import compile_package

        compile_package([model], "direct" if meta["direct_forces"] else "energy", meta, path, dtype, threads)
        return meta
    wrapper = DeployedForceField if meta["direct_forces"] else DeployedPotential
    _write(torch.jit.script(wrapper(model.for_export())), meta, path)
    return meta


def export_committee(models: list[EnergyModel], path: str | Path, dtype: torch.dtype = torch.float64,
                     tabulate: bool = False, table_tolerance: float = 1e-8,
                     training_range: dict[str, Any] | None = None, format: str = "torchscript",
                     threads: int = 1) -> dict[str, Any]:
    """Script a committee of ``models`` (:mod:`mlff.committee`) into one file at ``path``:
    metadata as :func:`export_model` from the first member, plus ``committee`` = the number
    of members; ``halo_widths`` lists every member's exchanges in call order. Raises
    ``ConfigError`` if the members differ in kind, species, ``r_max`` or force type."""
    from .committee import DeployedCommittee, DeployedForceCommittee, check_members

    check_members(models)
    prepared = [_prepared(m, dtype, tabulate, table_tolerance) for m in models]
    members = [m for m, _ in prepared]
    meta = metadata_for(members[0], dtype)
    meta["committee"] = len(members)
    widths = meta["halo_widths"]
    meta["halo_widths"] = None if widths is None else widths * len(members)
    meta["training_range"] = training_range
    tables = [t for _, t in prepared if t]
    meta["radial_tables"] = None if not tables else {
        "tolerance": table_tolerance, "n_intervals": [n for t in tables for n in t["n_intervals"]],
        "error": max(t["error"] for t in tables), "error_derivative": max(t["error_derivative"] for t in tables)}
    if format == "aoti":
        from .aoti import compile_package

        compile_package(members, "direct_committee" if meta["direct_forces"] else "committee", meta, path, dtype,
                        threads)
        return meta
    wrapper = DeployedForceCommittee if meta["direct_forces"] else DeployedCommittee
    _write(torch.jit.script(wrapper([m.for_export() for m in members])), meta, path)
    return meta


def merged_training_range(ranges: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The training range of a committee: the shortest distance of each pair over the
    members' records, the widest atomic-energy ranges, one periodicity (or "mixed")."""
    ranges = [r for r in ranges if r]
    if not ranges:
        return None
    out: dict[str, Any] = {"pair_min_distance": {}, "atomic_energy": {}}
    for r in ranges:
        for key, d in (r.get("pair_min_distance") or {}).items():
            out["pair_min_distance"][key] = min(d, out["pair_min_distance"].get(key, d))
        for s, (lo, hi) in (r.get("atomic_energy") or {}).items():
            old = out["atomic_energy"].get(s, [lo, hi])
            out["atomic_energy"][s] = [min(lo, old[0]), max(hi, old[1])]
    kinds = {r.get("periodic") for r in ranges}
    out["periodic"] = kinds.pop() if len(kinds) == 1 else "mixed"
    return out


def is_training_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is an mlff training checkpoint (a ``torch.save`` zip archive whose
    pickle holds the ``format = "mlff-checkpoint"`` record), without unpickling it."""
    from .train.checkpoint import FORMAT as CHECKPOINT_FORMAT

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            return any(CHECKPOINT_FORMAT.encode() in archive.read(n) for n in pickles)
    except (OSError, zipfile.BadZipFile):
        return False


def load_deployed(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a deployed model and its metadata.

    Raises ``ModelFileError`` naming ``path`` if the file is missing, not TorchScript,
    or lacks mlff metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    from .aoti import AOTIModel, is_aoti_package

    if is_aoti_package(path):
        model = AOTIModel(path)
        return model, model.metadata
    extra = {"metadata.json": ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        if is_training_checkpoint(path):
            raise ModelFileError(f"{path} is an mlff training checkpoint, not a deployed model: deploy it first "
                                 f"with 'mlff-deploy {path} -o model.pt' and use model.pt") from None
        raise ModelFileError(f"{path} is not a TorchScript model file: {str(exc).splitlines()[0]}") from None
    try:
        meta = json.loads(extra["metadata.json"])
    except json.JSONDecodeError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an mlff deployed model (no mlff metadata.json)")
    return module, meta


def checkpoint_files(paths: list[Path]) -> list[Path]:
    """The checkpoints named by ``mlff-deploy``'s arguments: files as given; a directory
    gives its ``member_*/best.ckpt`` (a committee run) or else its ``best.ckpt``.
    ``ModelFileError`` for a directory with neither."""
    out = []
    for path in paths:
        if path.is_dir():
            members = sorted(path.glob("member_*/best.ckpt"), key=lambda p: int(p.parent.name.split("_")[1]))
            if members:
                out += members
            elif (path / "best.ckpt").is_file():
                out.append(path / "best.ckpt")
            else:
                raise ModelFileError(f"{path} is a directory without best.ckpt or member_*/best.ckpt")
        else:
            out.append(path)
    return out


def auto_format(output: Path) -> tuple[str, str]:
    """The format ``mlff-deploy --format auto`` (the default) writes, and why.

    An AOTInductor package (:mod:`mlff.aoti`) where this machine has no GPU: compiled
    kernels were faster than TorchScript for every model family at every size measured
    (``benchmarks/deployed_speed.py``: toluene, 500- and 4,000-atom Cu, fp32 and fp64;
    ``docs/results.md``) and give the same numbers (``tests/test_aoti.py``: 1e-10 in fp64).
    TorchScript where torch sees a GPU: packages are compiled for the CPU, a TorchScript
    file runs on either. An output named ``*.pt2`` is always a package.
    """
    if output.suffix == ".pt2":
        return "aoti", "the output is named .pt2"
    if torch.cuda.is_available():
        return "torchscript", "torch sees a GPU here; AOTInductor packages are compiled for the CPU"
    return "aoti", "the fastest exact format on CPUs for every model family"


def _export(models, output: Path, args, records, fmt: str) -> dict[str, Any]:
    dtype = getattr(torch, args.dtype)
    if len(models) == 1:
        return export_model(models[0], output, dtype, args.tabulate, args.table_tolerance,
                            training_range=records[0].get("training_range"), format=fmt, threads=args.threads)
    return export_committee(models, output, dtype, args.tabulate, args.table_tolerance,
                            training_range=merged_training_range([r.get("training_range") for r in records]),
                            format=fmt, threads=args.threads)


def main(argv: list[str] | None = None) -> int:
    from .train.checkpoint import load_checkpoint, model_from_record

    parser = argparse.ArgumentParser(
        prog="mlff-deploy",
        description="Export a checkpoint for LAMMPS (pair_style mlff) and Python: an AOTInductor package (the default on "
                    "CPUs) or a TorchScript model. Several "
                    "checkpoints, or a committee run directory (mlff train --committee N), give one committee "
                    "file: mean predictions plus per-atom force and energy deviations.")
    parser.add_argument("checkpoint", nargs="+",
                        help="training checkpoint(s), e.g. DIR/best.ckpt; or a run directory (its best.ckpt, or "
                             "for a committee run every member_*/best.ckpt)")
    parser.add_argument("-o", "--output", required=True, help="output model file, e.g. model.pt")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                        help="precision of the deployed model (default float64)")
    parser.add_argument("--tabulate", action="store_true",
                        help="replace the radial networks (functions of the pair distance alone) by quintic Hermite "
                             "tables within --table-tolerance of them: SchNet force calls about 2x faster, "
                             "nequip about 1.4x (schnet, nequip, tfn_dfp, se3_transformer)")
    parser.add_argument("--format", choices=["auto", "aoti", "torchscript"], default="auto",
                        help="aoti: an AOTInductor package, the energy and its gradient compiled into fused C++ "
                             "kernels, the fastest on CPUs at every size (compiling takes 15 s to a few minutes and a "
                             "C++ compiler; the package runs only with this torch version, on CPUs); torchscript: a "
                             "TorchScript file (not tied to the torch that wrote it; CPU or GPU); auto (default): aoti, except "
                             "where torch sees a GPU, or the compilation fails (then TorchScript, with a message)")
    parser.add_argument("--threads", type=int, default=1,
                        help="with --format aoti: the OpenMP threads the compiled kernels are generated for (default "
                             "1: serial code, the fastest per core and right for one thread per MPI rank; more makes "
                             "the package's kernels parallel, for one large system on several cores)")
    parser.add_argument("--table-tolerance", type=float, default=1e-8,
                        help="largest relative error of the tables in values and derivatives (default 1e-8)")
    args = parser.parse_args(argv)
    try:
        sources, output = checkpoint_files([Path(c) for c in args.checkpoint]), Path(args.output)
        fmt, why = auto_format(output) if args.format == "auto" else (args.format, "--format " + args.format)
        for source in sources:
            if output.exists() and source.exists() and os.path.samefile(source, output):
                raise ConfigError(f"output {output} is the checkpoint itself ({source}): writing it would destroy the "
                                  f"checkpoint; give another file name, e.g. {output.with_suffix('.pt')}")
        records = [load_checkpoint(source) for source in sources]
        models = [model_from_record(r) for r in records]
        if fmt == "aoti":
            print(f"mlff-deploy: compiling an AOTInductor package ({why}; 15 s to a few minutes; --format "
                  f"torchscript skips it)", flush=True)
        try:
            meta = _export(models, output, args, records, fmt)
        except MLFFError:
            raise
        except Exception as exc:  # noqa: BLE001 (auto: any compiler failure falls back to the portable format)
            if fmt != "aoti":
                raise
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
            if args.format != "auto" or output.suffix == ".pt2":
                raise ConfigError(f"AOTInductor compilation failed ({reason}); --format torchscript writes a "
                                  f"portable model without a C++ compiler") from exc
            print(f"mlff-deploy: AOTInductor compilation failed ({reason}); writing a TorchScript model instead",
                  file=sys.stderr)
            fmt = "torchscript"
            meta = _export(models, output, args, records, fmt)
    except MLFFError as exc:
        print(f"mlff-deploy: error: {exc}", file=sys.stderr)
        return 2
    if meta.get("committee"):
        print(f"mlff-deploy: committee of {meta['committee']} models from {', '.join(map(str, sources))}")
    kind = "AOTInductor package, this torch and CPUs only" if fmt == "aoti" else "TorchScript"
    print(f"mlff-deploy: wrote {args.output} ({kind}; {meta['model_kind']}, species {meta['species']}, "
          f"r_max {meta['r_max']} Å, {meta['n_message_passing']} message-passing layers, {meta['dtype']})")
    if meta["radial_tables"]:
        t = meta["radial_tables"]
        print(f"mlff-deploy: radial networks tabulated: {t['n_intervals']} intervals, relative error "
              f"{t['error']:.1e} (values), {t['error_derivative']:.1e} (derivatives)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
