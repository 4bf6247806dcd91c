"""Shared machinery of the seed-paper reproductions (``benchmarks/seeds/run.py``).

* :class:`Context` -- where an experiment writes, whether it is a ``--quick`` run, a logger;
* :class:`DataSpec` / :func:`dataset` -- labelled MD data from :mod:`mlff.data.generate`
  presets, cached as extxyz under ``OUT/data/`` (a rerun reuses them);
* :class:`TrainSpec` / :func:`fit` -- training of an mlff model with the loss
  ``ρ·mean((ΔE/N)²) + w_F·mean(ΔF²)``. ``mlff.train.Trainer`` has no force weight, and the
  papers train energy-only models (``w_F = 0``) and in stages (energies, then energies +
  forces, from the same weights); this loop adds exactly that and otherwise follows the
  Trainer (Adam, learning rate halved on a plateau, EMA of the weights, early stopping,
  a CPU-time budget). Energy-only Behler-Parrinello training computes each frame's
  symmetry functions once, as AMP does. Finished trainings are cached per settings and data;
* :func:`predict` / :func:`errors` -- energies and forces of a model on labelled frames
  (float64) and the errors in the papers' units;
* :class:`Report` -- ``report.md`` (what the paper did, what we did and every difference,
  the paper-vs-mlff table, the verdict line, plots) and ``results.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "out" / "seeds"
DEFAULT_QUICK_OUT = REPO / "benchmarks" / "out" / "seeds-quick"

# Unit conversions (ASE's constants).
KCAL_MOL = 0.0433641043         # eV per kcal/mol  (ase.units.kcal / ase.units.mol)
HARTREE = 27.211386245988       # eV per Hartree   (ase.units.Hartree)

VERDICTS = ("reproduced", "not reproduced", "not comparable", "partly reproduced")


# ----------------------------------------------------------------------------------------
# context


@dataclass
class Context:
    """One experiment run: ``out`` is ``OUT/EXPERIMENT`` (report, plots, results.json),
    ``data`` the shared data cache ``OUT/data``, ``runs`` the training cache."""

    experiment: str
    out: Path
    data: Path
    quick: bool = False
    progress: bool = True
    log_file: Path | None = None
    t0: float = field(default_factory=time.perf_counter)
    #: CPU seconds of the fits this run took from the training cache (spent by an earlier run)
    cached_cpu_s: float = 0.0

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def log(self, message: str) -> None:
        stamp = f"[{self.experiment} {time.perf_counter() - self.t0:7.1f} s]"
        print(f"{stamp} {message}", flush=True)
        if self.log_file is not None:
            with open(self.log_file, "a") as fh:
                fh.write(f"{stamp} {message}\n")

    def pick(self, full, quick):
        """``quick`` in a ``--quick`` run, else ``full``."""
        return quick if self.quick else full


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (lmp runs), all threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine() -> str:
    """The CPU (model name, cores) and the torch threads used, for the reports."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores visible, torch {torch.__version__} on {torch.get_num_threads()} thread(s)"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks/seeds", "python/mlff"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class DataSpec:
    """A labelled MD data set: an :mod:`mlff.data.generate` preset, a frame count, a seed
    and overrides of the preset's protocol (``temperature_K``, ``timestep_fs``, ``interval``,
    ``equilibration_fs``, ``ensemble``, ``friction``, ``supercell``, ``calculator``)."""

    preset: str
    n_frames: int
    seed: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def make(preset: str, n_frames: int, seed: int = 0, **overrides) -> "DataSpec":
        return DataSpec(preset, int(n_frames), int(seed), tuple(sorted(overrides.items())))

    def protocol(self) -> dict[str, Any]:
        """The resolved protocol: the preset's values with the overrides applied."""
        from mlff.data.generate import get_preset

        p = get_preset(self.preset)
        over = dict(self.overrides)
        return {"preset": p.name, "calculator": over.get("calculator", p.calculator),
                "ensemble": over.get("ensemble", p.ensemble),
                "temperature_K": float(over.get("temperature_K", p.temperature_K)),
                "timestep_fs": float(over.get("timestep_fs", p.timestep_fs)),
                "interval": int(over.get("interval", p.interval)),
                "equilibration_fs": float(over.get("equilibration_fs", p.equilibration_fs)),
                "friction_per_fs": float(over.get("friction", p.friction_per_fs)),
                "supercell": over.get("supercell", p.supercell),
                "n_frames": self.n_frames, "seed": self.seed}

    def describe(self) -> str:
        p = self.protocol()
        md = "NVE (velocity Verlet)" if p["ensemble"] == "nve" else \
            f"Langevin NVT (friction {p['friction_per_fs']:g}/fs)" if p["ensemble"] == "langevin" else p["ensemble"]
        return (f"`{p['preset']}` ({p['calculator']}): {md}, {p['temperature_K']:g} K, {p['timestep_fs']:g} fs steps, "
                f"{p['equilibration_fs']:g} fs equilibration, a frame every {p['interval']} steps, "
                f"{p['n_frames']} frames, seed {p['seed']}")


def dataset(ctx: Context, spec: DataSpec) -> list:
    """The frames of ``spec`` (labelled ASE ``Atoms`` as :func:`mlff.data.io.read_dataset`
    returns them), generated once and cached as ``OUT/data/<preset>-<n>f-s<seed>-<hash>.extxyz``."""
    from mlff.data.generate import generate_preset
    from mlff.data.io import read_dataset, write_dataset

    key = _digest(spec.protocol())
    path = ctx.data / f"{spec.preset}-{spec.n_frames}f-s{spec.seed}-{key}.extxyz"
    if path.is_file():
        return read_dataset(path)
    ctx.log(f"generating data: {spec.describe()}")
    t0 = time.perf_counter()
    frames, settings = generate_preset(spec.preset, n_frames=spec.n_frames, seed=spec.seed,
                                       progress=ctx.progress, **dict(spec.overrides))
    ctx.data.mkdir(parents=True, exist_ok=True)
    write_dataset(path, frames)
    path.with_suffix(".json").write_text(json.dumps({**spec.protocol(), "wall_s": time.perf_counter() - t0,
                                                     "n_atoms": settings.n_atoms}, indent=2))
    ctx.log(f"  {len(frames)} frames in {time.perf_counter() - t0:.0f} s -> {path.name}")
    return read_dataset(path)


def energies(frames) -> np.ndarray:
    return np.array([a.info["energy"] for a in frames], dtype=np.float64)


# ----------------------------------------------------------------------------------------
# training


@dataclass
class TrainSpec:
    """How to train one model. Loss per batch:
    ``energy_weight · mean((ΔE/N)²) + force_weight · mean(ΔF²)`` (eV, Å; per-atom energy
    errors, force components). ``force_weight = 0``: energy-only (no forces are computed);
    a direct-force model has no energy term.

    ``select``: ``"valid"`` keeps the EMA weights with the lowest validation loss (the
    learning-rate plateau and early stopping watch it too); ``"last"`` keeps the final EMA
    weights and watches the training loss (the papers that train to convergence on the
    training set, with no validation data). ``reference_energies``: ``"fit"``
    (per-species least squares, as ``mlff train``) or ``"zero"`` (the network must learn
    the whole energy). ``min_batches``: an epoch has at least this many batches (tiny
    training sets are cycled), so patience counts comparable amounts of work."""

    model: str
    params: dict = field(default_factory=dict)
    r_max: float = 5.0
    energy_weight: float = 1.0
    force_weight: float = 1.0
    lr: float = 1e-3
    batch_size: int = 5
    epochs: int = 100_000
    cpu_minutes: float = 1.0
    dtype: str = "float32"
    seed: int = 0
    ema_decay: float = 0.99
    lr_factor: float = 0.5
    lr_patience: int = 10
    stop_patience: int = 40
    min_lr: float = 1e-6
    min_batches: int = 20
    select: str = "valid"
    reference_energies: str = "fit"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    model: Any
    history: list[dict]
    epochs: int
    cpu_s: float
    wall_s: float
    stop_reason: str
    n_parameters: int
    run_dir: Path
    training_range: dict

    def summary(self) -> dict:
        return {"epochs": self.epochs, "cpu_min": self.cpu_s / 60, "wall_min": self.wall_s / 60,
                "stop_reason": self.stop_reason, "n_parameters": self.n_parameters}


class _Given(torch.nn.Module):
    """Stands in for a Behler-Parrinello descriptor module: returns precomputed symmetry
    functions (energy-only training, where they do not depend on the weights)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, *args):
        return self.value


def _data_key(frames) -> str:
    h = hashlib.sha256()
    for a in frames:
        h.update(np.ascontiguousarray(a.positions, dtype=np.float64).tobytes())
        h.update(np.float64(a.info["energy"]).tobytes())
    return h.hexdigest()[:16]


def fit(ctx: Context, name: str, spec: TrainSpec, train: Sequence, valid: Sequence | None = None,
        init: Any | None = None) -> FitResult:
    """Train ``spec`` on ``train`` (validating on ``valid``); ``init``: a model to continue
    from (its fitted statistics kept, e.g. the second stage of a staged fit). Cached in
    ``ctx.runs/name`` by settings and data: a rerun with the same ones loads the result."""
    from ase.data import atomic_numbers
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from mlff.graph import atoms_to_graph, collate
    from mlff.models import build_model
    from mlff.train.checkpoint import load_checkpoint, model_from_record, model_record, save_checkpoint
    from mlff.train.statistics import fit_energy_scale, pair_min_distances, periodicity
    from mlff.train.trainer import energy_and_forces

    run_dir = ctx.runs / name
    key = {"spec": spec.to_dict(), "train": _data_key(train), "valid": _data_key(valid) if valid else None,
           "init": None if init is None else _digest({k: v.tolist() for k, v in
                                                       list(init.state_dict().items())[:4]})}
    done = run_dir / "result.pt"
    if done.is_file():
        record = load_checkpoint(done)
        if record.get("key") == key:
            model = model_from_record(record)
            r = record["result"]
            ctx.log(f"[cached] {name}: {r['epochs']} epochs, {r['cpu_s'] / 60:.1f} CPU-min")
            ctx.cached_cpu_s += r["cpu_s"]
            return FitResult(model, record["history"], r["epochs"], r["cpu_s"], r["wall_s"], r["stop_reason"],
                             r["n_parameters"], run_dir, record.get("training_range", {}))
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)
    dtype = getattr(torch, spec.dtype)
    symbols = sorted({s for a in train for s in a.get_chemical_symbols()}, key=lambda s: atomic_numbers[s])
    if init is None:
        model = build_model(spec.model, symbols, spec.r_max, dtype=dtype, **spec.params)
    else:
        model = copy.deepcopy(init).to(dtype)
    species = model.species
    tr = [atoms_to_graph(a, species, spec.r_max).to(dtype) for a in train]
    va = [atoms_to_graph(a, species, spec.r_max).to(dtype) for a in valid] if valid else []
    if init is None:
        fit_energy_scale(model, tr)
        if spec.reference_energies == "zero":
            model.energy_scale.reference_energy.zero_()
        if callable(getattr(model, "fit_statistics", None)):
            model.fit_statistics(tr)
    training_range = {"pair_min_distance": pair_min_distances(tr, species), "periodic": periodicity(train)}
    direct = bool(getattr(model, "direct_forces", False))
    w_e = 0.0 if direct else spec.energy_weight
    w_f = spec.force_weight
    if w_e == 0 and w_f == 0:
        raise ValueError(f"{name}: nothing to train (no energy and no force weight)")

    # energy-only Behler-Parrinello: symmetry functions once per frame
    cached = w_f == 0 and spec.model == "bp"
    if cached:
        with torch.no_grad():
            feats_tr = [model.descriptors(g.species, g.edge_index, g.edge_vec()) for g in tr]
            feats_va = [model.descriptors(g.species, g.edge_index, g.edge_vec()) for g in va]

    def batch_loss(module, graphs, feats, create_graph):
        batch = collate(graphs)
        n = batch.n_atoms.to(dtype)
        if w_f > 0 or direct:
            energy, forces = energy_and_forces(module, batch, create_graph=create_graph)
        else:
            forces = None
            if cached:
                own = module.descriptor
                module.descriptor = _Given(torch.cat(feats))
                try:
                    atomic = module(batch.species, batch.edge_index, batch.shift_vec)
                finally:
                    module.descriptor = own
            else:
                atomic = module(batch.species, batch.edge_index, batch.edge_vec())
            energy = atomic.new_zeros(batch.n_structures).index_add_(0, batch.batch, atomic)
        e_sq = ((energy - batch.energy) / n) ** 2 if energy is not None else None
        f_sq = (forces - batch.forces) ** 2 if forces is not None else None
        loss = 0.0
        if e_sq is not None and w_e > 0:
            loss = loss + w_e * e_sq.mean()
        if f_sq is not None and w_f > 0:
            loss = loss + w_f * f_sq.mean()
        return loss, e_sq, f_sq

    def evaluate(module, graphs, feats) -> dict:
        tot, sums, n_e, n_f = 0.0, np.zeros(4), 0, 0
        for s in range(0, len(graphs), 50):
            loss, e_sq, f_sq = batch_loss(module, graphs[s:s + 50], feats[s:s + 50] if cached else None, False)
            tot += float(torch.as_tensor(loss).detach()) * len(graphs[s:s + 50])
            if e_sq is not None:
                sums[:2] += (float(e_sq.detach().sum()), float(e_sq.detach().sqrt().sum()))
                n_e += e_sq.numel()
            if f_sq is not None:
                sums[2:] += (float(f_sq.detach().sum()), float(f_sq.detach().sqrt().sum()))
                n_f += f_sq.numel()
        return {"loss": tot / len(graphs),
                "energy_rmse_meV_atom": 1e3 * math.sqrt(sums[0] / n_e) if n_e else None,
                "energy_mae_meV_atom": 1e3 * sums[1] / n_e if n_e else None,
                "force_rmse_meV_A": 1e3 * math.sqrt(sums[2] / n_f) if n_f else None,
                "force_mae_meV_A": 1e3 * sums[3] / n_f if n_f else None}

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(spec.ema_decay), use_buffers=False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=spec.lr)
    rng = np.random.default_rng(spec.seed)
    n_batches = max(math.ceil(len(tr) / spec.batch_size), spec.min_batches)
    best, best_state, since, since_lr = math.inf, None, 0, 0
    history: list[dict] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stop = "epoch limit"
    from tqdm.auto import tqdm

    bar = tqdm(total=None, disable=not ctx.progress, desc=f"train {name}", unit="epoch", leave=False)
    for epoch in range(1, spec.epochs + 1):
        model.train()
        order = np.concatenate([rng.permutation(len(tr)) for _ in range(math.ceil(n_batches * spec.batch_size
                                                                                   / len(tr)))])
        train_loss = 0.0
        out_of_time = False
        for b in range(n_batches):
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            loss, _, _ = batch_loss(model, [tr[k] for k in idx], [feats_tr[k] for k in idx] if cached else None,
                                    create_graph=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=params)
            optimizer.step()
            ema.update_parameters(model)
            train_loss += float(loss.detach()) / n_batches
            if time.process_time() - cpu0 >= 60 * spec.cpu_minutes:
                out_of_time = True
                break
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{name}: training diverged at epoch {epoch} (lr {optimizer.param_groups[0]['lr']:g})")
        row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               "cpu_s": time.process_time() - cpu0}
        if va:
            v = evaluate(ema.module, va, feats_va if cached else None)
            row.update({f"valid_{k}": x for k, x in v.items()})
            watched = v["loss"]
        else:
            watched = train_loss
        history.append(row)
        if watched < best * (1 - 1e-4):
            best, since, since_lr = watched, 0, 0
            if spec.select == "valid":
                best_state = copy.deepcopy(ema.module.state_dict())
        else:
            since += 1
            since_lr += 1
        if since_lr >= spec.lr_patience:
            for group in optimizer.param_groups:
                group["lr"] = max(group["lr"] * spec.lr_factor, spec.min_lr)
            since_lr = 0
        bar.update(1)
        bar.set_postfix(loss=f"{watched:.3g}", lr=f"{row['lr']:.1e}", refresh=False)
        if out_of_time:
            stop = f"CPU budget of {spec.cpu_minutes:g} min"
            break
        if since >= spec.stop_patience:
            stop = f"no improvement for {since} epochs"
            break
        if optimizer.param_groups[0]["lr"] <= spec.min_lr and since >= spec.lr_patience:
            stop = "learning rate at its minimum"
            break
    bar.close()
    final = copy.deepcopy(ema.module)
    if spec.select == "valid" and best_state is not None:
        final.load_state_dict(best_state)
    final.eval()
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    n_params = sum(p.numel() for p in final.parameters())
    result = {"epochs": len(history), "cpu_s": cpu_s, "wall_s": wall_s, "stop_reason": stop, "n_parameters": n_params}
    save_checkpoint(done, {**model_record(final), "key": key, "result": result, "history": history,
                           "training_range": training_range})
    ctx.log(f"trained {name}: {len(history)} epochs, {cpu_s / 60:.1f} CPU-min ({stop})")
    return FitResult(final, history, len(history), cpu_s, wall_s, stop, n_params, run_dir, training_range)


# ----------------------------------------------------------------------------------------
# evaluation


@dataclass
class Prediction:
    energy: np.ndarray | None      # [frames] eV (None: direct-force model)
    forces: list[np.ndarray]       # per frame [n, 3] eV/Å


def predict(model, frames, batch_size: int = 25) -> Prediction:
    """Energies and forces of ``model`` (a float64 copy) on ``frames``."""
    from mlff.graph import atoms_to_graph, collate
    from mlff.train.trainer import energy_and_forces

    m = copy.deepcopy(model).to(torch.float64).eval()
    direct = bool(getattr(m, "direct_forces", False))
    e_out, f_out = [], []
    for s in range(0, len(frames), batch_size):
        graphs = [atoms_to_graph(a, m.species, m.r_max) for a in frames[s:s + batch_size]]
        batch = collate(graphs)
        energy, forces = energy_and_forces(m, batch, create_graph=False)
        f = forces.detach().numpy()
        f_out.extend(np.split(f, np.cumsum(batch.n_atoms.numpy())[:-1]))
        if energy is not None:
            e_out.extend(energy.detach().numpy().tolist())
    return Prediction(None if direct else np.array(e_out), f_out)


def errors(pred: Prediction, frames) -> dict[str, float | None]:
    """Errors of ``pred`` on ``frames``: energy per configuration (eV, as the 003/004
    papers), per atom (meV/atom), force components (eV/Å and meV/Å), the largest
    component error, and the standard deviation of the reference energies (the RMSE of
    predicting their mean)."""
    ref_e = energies(frames)
    n_atoms = np.array([len(a) for a in frames])
    ref_f = np.concatenate([a.arrays["forces"] for a in frames])
    df = np.concatenate(pred.forces) - ref_f
    out: dict[str, float | None] = {
        "n_frames": len(frames),
        "energy_std_eV": float(ref_e.std()),
        "force_rms_eV_A": float(np.sqrt((ref_f ** 2).mean())),
        "force_rmse_eV_A": float(np.sqrt((df ** 2).mean())),
        "force_mae_eV_A": float(np.abs(df).mean()),
        "force_max_abs_error_eV_A": float(np.abs(df).max()),
    }
    if pred.energy is None:
        out.update({k: None for k in ("energy_rmse_eV", "energy_mae_eV", "energy_max_abs_error_eV",
                                      "energy_rmse_meV_atom", "energy_mae_meV_atom")})
    else:
        de = pred.energy - ref_e
        out.update({"energy_rmse_eV": float(np.sqrt((de ** 2).mean())), "energy_mae_eV": float(np.abs(de).mean()),
                    "energy_max_abs_error_eV": float(np.abs(de).max()),
                    "energy_rmse_meV_atom": float(1e3 * np.sqrt(((de / n_atoms) ** 2).mean())),
                    "energy_mae_meV_atom": float(1e3 * np.abs(de / n_atoms).mean())})
    return out


def export(model, path: Path, training_range: dict | None = None, dtype: str = "float64") -> Path:
    """Deploy ``model`` (``mlff-deploy``'s :func:`~mlff.deploy.export_model`) for LAMMPS / ASE."""
    from mlff.deploy import export_model

    export_model(model, path, dtype=getattr(torch, dtype), training_range=training_range)
    return path


# ----------------------------------------------------------------------------------------
# report


def ratio_span(ratios: Sequence[float]) -> str:
    """A range of ratios for a verdict line: ``a-b×``, or ``a×`` when both ends print alike."""
    lo, hi = f"{min(ratios):.1f}", f"{max(ratios):.1f}"
    return f"{lo}×" if lo == hi else f"{lo}-{hi}×"


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, ``—`` for None/NaN."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    x = float(x)
    if not math.isfinite(x):
        return "—" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits}g}"


@dataclass
class Row:
    """One line of the paper-vs-mlff table: what is compared, the paper's value (with its
    table or figure), ours, the unit, a note."""

    quantity: str
    paper: str
    ours: str
    unit: str = ""
    note: str = ""


@dataclass
class Report:
    """What an experiment writes: ``report.md``, ``results.json`` and its plots."""

    experiment: str
    title: str
    paper: str                          # the document (seed id, author, year)
    paper_did: str                      # what the paper did (section, table, figure)
    we_did: list[str]                   # what we did and every difference (bullets)
    rows: list[Row] = field(default_factory=list)
    verdict: str = "not comparable"     # one of VERDICTS
    finding: str = ""                   # the paper's qualitative finding, one line
    reason: str = ""                    # why (not reproduced / not comparable), one line
    plots: list[tuple[str, str]] = field(default_factory=list)   # (file name, caption)
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    table_note: str = ""

    def add(self, quantity: str, paper: Any, ours: Any, unit: str = "", note: str = "", digits: int = 3) -> None:
        self.rows.append(Row(quantity, paper if isinstance(paper, str) else fmt(paper, digits),
                             ours if isinstance(ours, str) else fmt(ours, digits), unit, note))

    def record_checks(self, checks: dict[str, bool], finding: str) -> list[str]:
        """Keep the paper's findings checked one by one (``results["checks"]`` and a table)
        and the finding's one-line statement; return the checks that failed."""
        self.results["checks"] = checks
        self.extra_tables.append(("The thesis's findings, one by one", ["finding (thesis)", "holds in this run"],
                                  [[k, "yes" if v else "no"] for k, v in checks.items()]))
        self.finding = finding
        return [k for k, v in checks.items() if not v]

    def judge_all(self, failed: list[str]) -> None:
        """Verdict when every check must hold: reproduced, or not (naming the failed checks)."""
        self.verdict = "reproduced" if not failed else "not reproduced"
        if failed:
            self.reason = "does not hold here: " + "; ".join(failed)

    def verdict_line(self) -> str:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        text = f"**Verdict:** {self.verdict}"
        if self.reason:
            text += f" ({self.reason})"
        if self.finding:
            text += f" — the paper's finding: {self.finding}"
        return text

    def write(self, ctx: Context, cpu_s: float, wall_s: float, command: str) -> Path:
        ctx.out.mkdir(parents=True, exist_ok=True)
        lines = [f"# {self.experiment}: {self.title}", ""]
        if ctx.quick:
            lines += ["> **Quick run (`--quick`)**: tiny data and budgets, to test the pipeline. Its numbers are "
                      "not results; run without `--quick` for the experiment.", ""]
        lines += [self.verdict_line(), "",
                  f"Paper: {self.paper}  ",
                  f"Command: `{command}`  ",
                  f"Run: {time.strftime('%Y-%m-%d %H:%M')}, {(cpu_s + ctx.cached_cpu_s) / 60:.1f} CPU-min"
                  f"{cached_note(ctx.cached_cpu_s, cpu_s)}, {wall_s / 60:.1f} min wall, "
                  f"mlff commit {git_commit()}  ",
                  f"Machine: {machine()}", "",
                  "## What the paper did", "", self.paper_did, "",
                  "## What we did (and every difference)", ""]
        lines += [f"* {b}" for b in self.we_did]
        lines += ["", "## Paper vs mlff", ""]
        if self.table_note:
            lines += [self.table_note, ""]
        lines += ["| quantity | paper | mlff (this run) | unit | note |", "|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(table_row([r.quantity, r.paper, r.ours, r.unit, r.note]))
        for caption, header, body in self.extra_tables:
            lines += ["", f"### {caption}", "", table_row(header), "|" + "---|" * len(header)]
            lines += [table_row(row) for row in body]
        if self.plots:
            lines += ["", "## Plots", ""]
            for name, caption in self.plots:
                lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"* {n}" for n in self.notes]
        path = ctx.out / "report.md"
        path.write_text("\n".join(lines).rstrip() + "\n")
        summary = {"experiment": self.experiment, "title": self.title, "paper": self.paper, "quick": ctx.quick,
                   "verdict": self.verdict, "reason": self.reason, "finding": self.finding,
                   "verdict_line": self.verdict_line(), "command": command,
                   "cpu_minutes": (cpu_s + ctx.cached_cpu_s) / 60, "cpu_minutes_cached": ctx.cached_cpu_s / 60,
                   "wall_minutes": wall_s / 60, "machine": machine(),
                   "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M"),
                   "rows": [dataclasses.asdict(r) for r in self.rows], "plots": [p for p, _ in self.plots],
                   "results": self.results}
        (ctx.out / "results.json").write_text(json.dumps(_jsonable(summary), indent=2))
        return path


def cached_note(cached_s: float, cpu_s: float) -> str:
    """`` (N of them in fits from the training cache, M in this run)`` when fits were reused."""
    if cached_s <= 0:
        return ""
    return f" ({cached_s / 60:.1f} of them in fits taken from the training cache, {cpu_s / 60:.1f} in this run)"


def table_row(cells: Sequence[Any]) -> str:
    """A markdown table row; a ``|`` inside a cell (|Σ F|, ∫|g − g_ref|) is escaped."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


def pyplot():
    """matplotlib's pyplot with the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, ctx: Context, name: str) -> str:
    fig.tight_layout()
    fig.savefig(ctx.out / name, dpi=110)
    pyplot().close(fig)
    return name


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def log_progress(ctx: Context, items: Sequence, desc: str) -> Callable:
    """``for x in log_progress(ctx, items, "stage")``: a tqdm bar over ``items``."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not ctx.progress, leave=False)


# ----------------------------------------------------------------------------------------
# MD17-protocol molecules (the GFN2-xTB stand-in), shared by the 000, 001 and 002 experiments


def md17_specs(molecule: str, quick: bool, n_train: int = 1000, n_valid: int = 100,
               n_test: int = 500) -> tuple[DataSpec, DataSpec]:
    """The MD17 protocol of the molecule presets (GFN2-xTB, Langevin 500 K, 0.5 fs, a frame
    every 10 steps after 1 ps): one trajectory for training + validation (seed 1) and an
    independent one for the test (seed 2). ``quick``: tiny runs (30 + 10 frames, 5-step
    spacing, 50 fs equilibration)."""
    if quick:
        return (DataSpec.make(molecule, 30, seed=1, interval=5, equilibration_fs=50.0),
                DataSpec.make(molecule, 10, seed=2, interval=5, equilibration_fs=50.0))
    return DataSpec.make(molecule, n_train + n_valid, seed=1), DataSpec.make(molecule, n_test, seed=2)


def md17_sets(ctx: Context, molecule: str, n_train: int = 1000, n_valid: int = 100, n_test: int = 500):
    """``(train, valid, test)`` frames of :func:`md17_specs`: the training trajectory split at
    random (seed 0) into ``n_train`` and ``n_valid`` frames (quick: 22 and 8)."""
    spec_train, spec_test = md17_specs(molecule, ctx.quick, n_train, n_valid, n_test)
    frames, test = dataset(ctx, spec_train), dataset(ctx, spec_test)
    if ctx.quick:
        n_train, n_valid = 22, 8
    order = np.random.default_rng(0).permutation(len(frames))
    return [frames[k] for k in order[:n_train]], [frames[k] for k in order[n_train:n_train + n_valid]], test


def schutt_energy_weight(rho: float, n_atoms: int) -> float:
    """mlff's ``energy_weight`` for Schütt's loss ``ρ‖ΔE‖² + (1/N) Σ_i ‖ΔF_i‖²`` (thesis Eq. 5.7):
    divided by 3 it is ``(ρN²/3)·(ΔE/N)² + mean over components of ΔF²``."""
    return rho * n_atoms ** 2 / 3.0
