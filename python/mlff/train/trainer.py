"""The training loop: energy + force (+ stress) loss, Adam, plateau LR decay, EMA weights,
early stopping, atomic checkpoints, resumption, CSV metrics and a learning curve.

Outputs in the run directory:

* ``best.ckpt`` — the EMA weights with the lowest validation force MAE so far;
* ``last.ckpt`` — everything needed by ``--resume`` (written after every epoch);
* ``metrics.csv`` — one row per epoch; ``learning_curve.png``; ``config.yaml``;
* ``summary.json`` — written when training ends: best validation force MAE, epochs,
  time, why it stopped (a committee run resumes only the members without it), and the
  validation errors of the composition baseline (:mod:`mlff.train.baseline`; a warning
  when the best model is not clearly better).
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import yaml
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..data.check import CheckSettings, check_frames, summary_line, write_report
from ..errors import ConfigError, DataError, DataWarning, TrainingDivergedError
from ..graph import Graph, atoms_to_graph, collate
from ..models import EnergyModel, build_model
from .baseline import composition_baseline, unlearned_warnings
from .checkpoint import load_checkpoint, model_record, save_checkpoint
from .config import TrainConfig
from .defaults import model_params as model_param_defaults
from .distributed import DistContext, shard
from .errors import Errors
from .statistics import (atomic_energy_range, fit_energy_scale, pair_min_distances, periodicity,
                         set_energy_scale)

# packed training sets: model statistics other than the energy scale (neighbour counts,
# feature scaling) and the atomic-energy range are fitted on a random subset of this size
STATISTICS_STRUCTURES = 2_000

METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_energy_mae", "train_force_mae", "valid_energy_mae",
                 "valid_force_mae", "valid_energy_rmse", "valid_force_rmse", "wall_s", "cpu_s"]


def energy_and_forces(model: EnergyModel, batch: Graph, create_graph: bool) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Total energies ``[b]`` (eV) and forces ``[n, 3]`` (eV/Å) of a batch; forces are
    ``−∂E/∂x`` by autograd (``create_graph`` for force training). A direct-force model
    (``model.direct_forces``) returns its forces and ``None`` for the energies."""
    if getattr(model, "direct_forces", False):
        return None, model(batch.species, batch.edge_index, batch.edge_vec())
    pos = batch.pos.detach().requires_grad_(True)
    atomic = model(batch.species, batch.edge_index, batch.edge_vec(pos))
    energy = atomic.new_zeros(batch.n_structures).index_add_(0, batch.batch, atomic)
    (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
    return energy, -grad


def energy_forces_stress(model: EnergyModel, batch: Graph,
                         create_graph: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Total energies ``[b]`` (eV), forces ``[n, 3]`` (eV/Å) and stress ``[b, 3, 3]``
    (eV/Å³, ASE sign: ``σ = (1/V) ∂E/∂ε``) of a batch of periodic structures, by
    autograd through a homogeneous strain ``ε`` applied to every edge vector,
    ``r → r (1 + ε)`` (the same stress as ``−Σ r ⊗ ∂E/∂r / V`` of the deployed model)."""
    pos = batch.pos.detach().requires_grad_(True)
    strain = pos.new_zeros(batch.n_structures, 3, 3).requires_grad_(True)
    vec = batch.edge_vec(pos)
    vec = vec + torch.einsum("ea,eab->eb", vec, strain[batch.batch[batch.edge_index[0]]])
    atomic = model(batch.species, batch.edge_index, vec)
    energy = atomic.new_zeros(batch.n_structures).index_add_(0, batch.batch, atomic)
    grad_pos, grad_strain = torch.autograd.grad(energy.sum(), [pos, strain], create_graph=create_graph)
    stress = grad_strain / batch.volume[:, None, None]
    return energy, -grad_pos, 0.5 * (stress + stress.transpose(1, 2))


def stress_weight_for(config: TrainConfig, model: EnergyModel, graphs: Sequence[Graph]) -> float:
    """The stress loss weight: ``config.stress_weight``, or if that is ``None`` 1.0 when every
    training structure is periodic with a stress label (else 0). ``ConfigError`` if a positive
    weight is asked for without labels or for a direct-force model."""
    if hasattr(graphs, "all_stress_labelled"):  # GraphSet, PackedSet
        labelled = graphs.all_stress_labelled()
    else:
        labelled = all(g.stress is not None and float(g.volume[0]) > 0 for g in graphs)
    direct = getattr(model, "direct_forces", False)
    if config.stress_weight is None:
        return 1.0 if labelled and not direct else 0.0
    if config.stress_weight > 0 and (not labelled or direct):
        raise ConfigError("stress_weight > 0 needs periodic training structures that all carry stress labels "
                          "and an energy model")
    return float(config.stress_weight)


def batch_loss(model: EnergyModel, batch: Graph, energy_weight: float, stress_weight: float,
               n_structures: int | None = None, n_components: int | None = None):
    """This batch's part of the loss ``ρ·mean((ΔE/N)²) + mean(ΔF²) + λ·mean((Δσ·V/N)²)`` of
    a global batch of ``n_structures`` structures with ``n_components`` force components
    (default: this batch's own, i.e. the plain means). The parts of the shards of a global
    batch add up to its loss, so their gradients add up to its gradient. Returns the loss
    and the predicted energies (``None`` for direct-force models) and forces."""
    n_structures = batch.n_structures if n_structures is None else n_structures
    n_components = batch.forces.numel() if n_components is None else n_components
    if stress_weight > 0:
        energy, forces, stress = energy_forces_stress(model, batch, create_graph=True)
    else:
        (energy, forces), stress = energy_and_forces(model, batch, create_graph=True), None
    loss = torch.sum((forces - batch.forces) ** 2) / n_components
    if energy is not None:  # direct-force models: force loss only
        loss = loss + energy_weight * torch.sum(((energy - batch.energy) / batch.n_atoms) ** 2) / n_structures
    if stress is not None:  # stress error as virial per atom (eV)
        per_atom = (batch.volume / batch.n_atoms)[:, None, None]
        loss = loss + stress_weight * torch.sum(((stress - batch.stress) * per_atom) ** 2) / (9 * n_structures)
    return loss, energy, forces


def evaluate_graphs(model: EnergyModel, graphs: Sequence[Graph], batch_size: int) -> dict[str, float]:
    """Energy and force errors of ``model`` on labelled graphs (see :class:`Errors`)."""
    errors = Errors()
    for start in range(0, len(graphs), batch_size):
        batch = collate(graphs[start:start + batch_size])
        energy, forces = energy_and_forces(model, batch, create_graph=False)
        errors.add(energy, batch.energy, batch.n_atoms, forces, batch.forces)
    return errors.summary()


def evaluate_set(model: EnergyModel, data, batch_size: int, dist: DistContext | None = None) -> Errors:
    """Error sums of ``model`` on this rank's share of ``data`` (:class:`GraphSet` or
    :class:`PackedSet`), in batches of ``batch_size``; summed over the ranks by the caller."""
    dist = dist or DistContext()
    positions = shard(np.arange(len(data)), dist.world_size, dist.rank)
    errors = Errors()
    for start in range(0, len(positions), batch_size):
        batch = data.batch(positions[start:start + batch_size])
        energy, forces = energy_and_forces(model, batch, create_graph=False)
        errors.add(energy, batch.energy, batch.n_atoms, forces, batch.forces)
    return errors


class GraphSet:
    """Training or validation graphs held in memory."""

    def __init__(self, graphs: Sequence[Graph]):
        self.graphs = list(graphs)
        self.n_atoms = np.array([int(g.pos.shape[0]) for g in self.graphs], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.graphs)

    def batch(self, positions) -> Graph:
        return collate([self.graphs[k] for k in positions])

    def all_stress_labelled(self) -> bool:
        return all(g.stress is not None and float(g.volume[0]) > 0 for g in self.graphs)


class PackedSet:
    """A packed data set (:class:`mlff.data.packed.PackedDataset`) read batch by batch."""

    def __init__(self, data, species: Sequence[str], dtype: torch.dtype, device: torch.device):
        self.data, self.species, self.dtype, self.device = data, list(species), dtype, device
        self.n_atoms = data.n_atoms

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, positions) -> Graph:
        return self.data.batch(positions, self.species, self.dtype, self.device)

    def all_stress_labelled(self) -> bool:
        return self.data.all_stress_labelled()

    def statistics_subset(self, seed: int) -> np.ndarray:
        """Sorted positions of at most ``STATISTICS_STRUCTURES`` random structures."""
        n = len(self.data)
        if n <= STATISTICS_STRUCTURES:
            return np.arange(n)
        return np.sort(np.random.default_rng(seed).choice(n, STATISTICS_STRUCTURES, replace=False))


class _Clock:
    """Training time (wall: rank 0's; CPU: all ranks' processes together, all threads),
    continuing a resumed run's, and the per-step gradient all-reduce that carries it."""

    def __init__(self, wall0: float, cpu0: float, dist: DistContext):
        self.wall0, self.cpu0, self.dist = wall0, cpu0, dist
        self.t_wall, self.t_cpu = time.perf_counter(), time.process_time()

    def _local(self) -> tuple[float, float]:
        return time.process_time() - self.t_cpu, time.perf_counter() - self.t_wall

    def reduce_step(self, params: list[torch.Tensor], local_loss: float,
                    failure: BaseException | None) -> tuple[float, float, float]:
        """Sum every rank's gradients (each rank's loss is its part of the global batch's
        loss, so the sum is the gradient of the global loss), in one flat float64 all-reduce
        that also carries the error flag, the CPU times, rank 0's wall time and the loss
        parts. A parameter without a gradient on every rank keeps none (as in one process).
        Returns the global loss, the CPU and the wall time (s) so far."""
        cpu, wall = self._local()
        dist = self.dist
        if not dist.enabled:
            return local_loss, self.cpu0 + cpu, self.wall0 + wall
        device = params[0].device
        meta = [1.0 if failure is not None else 0.0, cpu, wall if dist.is_main else 0.0, local_loss]
        meta += [0.0 if p.grad is None else 1.0 for p in params]
        flat = torch.cat([torch.tensor(meta, dtype=torch.float64, device=device)]
                         + [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
                            for p in params])
        dist.all_reduce_sum(flat)
        head = flat[:4 + len(params)].tolist()
        if head[0] > 0:
            dist.raise_failures(True, failure)
        offset = 4 + len(params)
        for p, has in zip(params, head[4:]):
            n = p.numel()
            p.grad = flat[offset:offset + n].reshape(p.shape).to(p.dtype) if has > 0 else None
            offset += n
        return head[3], self.cpu0 + head[1], self.wall0 + head[2]

    def reduce_epoch(self, train: Errors, valid: Errors, failure: BaseException | None):
        """Training and validation error summaries summed over the ranks, with the CPU and
        wall time (s) so far; every rank gets the same numbers (and so decides the same)."""
        cpu, wall = self._local()
        dist = self.dist
        if dist.enabled:
            v = torch.tensor([1.0 if failure is not None else 0.0, cpu, wall if dist.is_main else 0.0]
                             + train.vector() + valid.vector(), dtype=torch.float64, device=dist.flag_device)
            dist.all_reduce_sum(v)
            v = v.tolist()
            if v[0] > 0:
                dist.raise_failures(True, failure)
            cpu, wall = v[1], v[2]
            train, valid = Errors.from_vector(v[3:9]), Errors.from_vector(v[9:15])
        return train.summary(), valid.summary(), self.cpu0 + cpu, self.wall0 + wall


class Trainer:
    """Trains one model on labelled structures.

    ``Trainer(config, out_dir).fit(train_atoms, valid_atoms)`` or, to continue an
    interrupted run, ``Trainer.resume(out_dir).fit(train_atoms, valid_atoms)``.
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path, model: EnergyModel | None = None):
        self.config = config.validate()
        self.out = Path(out_dir)
        self.dtype = getattr(torch, config.dtype)
        self.device = config.torch_device()
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.model = model
        self.resume_state: dict | None = None

    @classmethod
    def resume(cls, out_dir: str | Path, overrides: dict | None = None) -> "Trainer":
        """A trainer that continues from ``out_dir/last.ckpt`` (``overrides`` may extend ``epochs``/``max_minutes``)."""
        from .checkpoint import model_from_record

        record = load_checkpoint(Path(out_dir) / "last.ckpt")
        values = dict(record["config"])
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        trainer = cls(TrainConfig(**values), out_dir, model=model_from_record(record))
        trainer.resume_state = record
        return trainer

    # ------------------------------------------------------------------ setup
    def _graphs(self, frames, species, source: str) -> list[Graph]:
        graphs = []
        for k, atoms in enumerate(frames):
            try:
                graphs.append(atoms_to_graph(atoms, species, self.config.r_max).to(self.dtype))
            except DataError as exc:
                raise DataError(f"{source}, frame {k}: {exc}") from None
        return graphs

    def _check_data(self, frames, source: str, strict: bool, log: Callable[[str], None]) -> None:
        """The checks of :mod:`mlff.data.check` on the training frames: a warning and a report
        (``data_check.md``/``.json`` in the run directory); with ``strict`` any finding is an error."""
        settings = CheckSettings(r_max=self.config.r_max)
        findings = check_frames(frames, settings)
        self.out.mkdir(parents=True, exist_ok=True)
        report, _ = write_report(findings, self.out / "data_check.md", source, len(frames), settings)
        if not findings:
            return
        text = f"data check of {source}: {summary_line(findings)} (report: {report})"
        if strict:
            raise DataError(text + "\n  " + "\n  ".join(f.message for f in findings))
        warnings.warn(text, DataWarning, stacklevel=2)
        for f in findings:
            log(f"  warning: {f.kind}: {f.message}")

    def _species(self, frames) -> list[str]:
        from ase.data import atomic_numbers

        symbols = {s for a in frames for s in a.get_chemical_symbols()}
        return sorted(symbols, key=lambda s: atomic_numbers[s])

    # ------------------------------------------------------------------ loop
    def fit(self, train_frames, valid_frames, progress: bool = True, log: Callable[[str], None] = print,
            sources: tuple[str, str] = ("the training set", "the validation set"),
            strict_data: bool = False, dist: DistContext | None = None) -> dict[str, float]:
        """Train on ``train_frames``, validate on ``valid_frames``: labelled ASE ``Atoms``
        (:func:`mlff.data.io.read_dataset` convention) or packed data sets
        (:class:`mlff.data.packed.PackedDataset`, read lazily). ``sources`` name the two sets
        in messages (e.g. their files). The training frames are checked first
        (:mod:`mlff.data.check`: a warning and ``data_check.md``; ``strict_data``: an error;
        packed sets are not checked: run ``mlff data check`` on what you pack).

        ``dist``: this process's place in a distributed run (:mod:`mlff.train.distributed`);
        only rank 0 logs and writes files, and an error on any rank stops every rank.

        Raises ``ConfigError`` for an empty set or a validation element that the training
        set lacks (its parameters would stay untrained), ``DataError`` for bad frames.
        Returns the best validation force MAE (meV/Å), epochs, time and the stop reason."""
        cfg = self.config
        dist = dist or DistContext()
        if not dist.is_main:
            log, progress = (lambda *_: None), False
        with dist.guard():
            train, valid = self._prepare(train_frames, valid_frames, sources, strict_data, log, dist)
        model = self.model
        dist.broadcast_state(model)  # rank 0's fitted statistics (and weights) everywhere
        model.to(self.device)

        # Buffers hold statistics fitted before training (reference energies, feature scaling,
        # index tables): the EMA copies them instead of averaging them, which would round
        # integer buffers through floating point.
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=False)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg.lr_factor,
                                                               patience=cfg.lr_patience, min_lr=cfg.min_lr)
        history: list[dict] = []
        start_epoch, best, since_best = 0, math.inf, 0
        wall0, cpu0 = 0.0, 0.0
        rng = np.random.default_rng(cfg.seed)
        if self.resume_state is not None:
            st = self.resume_state
            ema.load_state_dict(st["ema_state"])
            optimizer.load_state_dict(st["optimizer_state"])
            scheduler.load_state_dict(st["scheduler_state"])
            history = st["history"]
            start_epoch, best, since_best = st["epoch"], st["best_valid_force_mae"], st["since_best"]
            wall0, cpu0 = history[-1]["wall_s"], history[-1]["cpu_s"]
            rng.bit_generator.state = st["rng_state"]
            torch.set_rng_state(st["torch_rng_state"])
            log(f"resuming {self.out} after epoch {start_epoch} (best valid force MAE {best:.2f} meV/Å)")

        n_params = sum(p.numel() for p in model.parameters())
        with dist.guard():
            stress_weight = stress_weight_for(cfg, model, train)
            if dist.is_main:
                self.out.mkdir(parents=True, exist_ok=True)
                (self.out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log(f"training {cfg.model} ({n_params:,} parameters, {cfg.dtype}, {self.device}) on {len(train)} structures, "
            f"validating on {len(valid)}; stress weight {stress_weight:g}; output in {self.out}")
        per_rank = cfg.batch_size / dist.world_size
        log(f"effective batch size {cfg.batch_size} structures per step"
            + (f" ({per_rank:g} per process on average, {dist.world_size} processes, {dist.backend})"
               if dist.enabled else "") + f", learning rate {cfg.lr:g}")

        clock = _Clock(wall0, cpu0, dist)
        bar = tqdm(range(start_epoch, cfg.epochs), initial=start_epoch, total=cfg.epochs, disable=not progress,
                   desc="epochs", unit="epoch")
        stop_reason = "epochs done"
        n_atoms = train.n_atoms
        for epoch in bar:
            model.train()
            errors, loss_sum, n_seen = Errors(), 0.0, 0
            order = rng.permutation(len(train))  # the same on every rank (shared seed and state)
            for start in range(0, len(order), cfg.batch_size):
                batch_idx = order[start:start + cfg.batch_size]
                local = shard(batch_idx, dist.world_size, dist.rank)
                # the loss of the global batch is a sum of per-rank parts with global denominators
                n_structures, n_components = len(batch_idx), 3 * int(n_atoms[batch_idx].sum())
                optimizer.zero_grad(set_to_none=True)
                failure, local_loss = None, 0.0
                try:
                    if len(local):
                        batch = train.batch(local)
                        loss, energy, forces = batch_loss(model, batch, cfg.energy_weight, stress_weight,
                                                          n_structures, n_components)
                        # only the weights: the positions are leaves too, and their second-order
                        # gradient (a Hessian-vector product nobody reads) costs up to 40 % of a step
                        loss.backward(inputs=trainable)
                        local_loss = float(loss.detach())
                        errors.add(energy, batch.energy, batch.n_atoms, forces, batch.forces)
                except Exception as exc:  # noqa: BLE001 (one process: re-raised at once)
                    if not dist.enabled:
                        raise
                    failure = exc
                step_loss, cpu_s, wall_s = clock.reduce_step(trainable, local_loss, failure)
                optimizer.step()
                ema.update_parameters(model)
                loss_sum += step_loss * n_structures
                n_seen += n_structures
                # a budget can run out inside a long epoch (big models, small budgets): end the
                # epoch early, so the overshoot is at most one batch plus one validation
                if cfg.max_cpu_minutes is not None and cpu_s >= 60 * cfg.max_cpu_minutes:
                    break
                if cfg.max_minutes is not None and wall_s >= 60 * cfg.max_minutes:
                    break
            if not all(math.isfinite(p.detach().sum().item()) for p in model.parameters()):
                raise TrainingDivergedError(f"training diverged at epoch {epoch + 1} (non-finite weights); "
                                         f"lower the learning rate (now {optimizer.param_groups[0]['lr']:g})")
            val_errors, failure = Errors(), None
            try:
                val_errors = evaluate_set(ema.module, valid, cfg.valid_batch_size, dist)
            except Exception as exc:  # noqa: BLE001
                if not dist.enabled:
                    raise
                failure = exc
            tr, val, cpu_s, wall_s = clock.reduce_epoch(errors, val_errors, failure)
            row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / n_seen,
                   "train_energy_mae": tr["energy_mae"], "train_force_mae": tr["force_mae"],
                   "valid_energy_mae": val["energy_mae"], "valid_force_mae": val["force_mae"],
                   "valid_energy_rmse": val["energy_rmse"], "valid_force_rmse": val["force_rmse"],
                   "wall_s": wall_s, "cpu_s": cpu_s}
            history.append(row)
            scheduler.step(val["force_mae"])
            improved = val["force_mae"] < best
            if improved:
                best, since_best = val["force_mae"], 0
            else:
                since_best += 1
            with dist.guard():  # only rank 0 writes; a failed write stops every rank
                if dist.is_main:
                    if improved:
                        save_checkpoint(self.out / "best.ckpt", {**model_record(ema.module), "config": cfg.to_dict(),
                                                                 "epoch": epoch + 1, "valid": val,
                                                                 "training_range": self.training_range})
                    save_checkpoint(self.out / "last.ckpt", {
                        **model_record(model), "config": cfg.to_dict(), "epoch": epoch + 1, "history": history,
                        "training_range": self.training_range,
                        "ema_state": ema.state_dict(), "optimizer_state": optimizer.state_dict(),
                        "scheduler_state": scheduler.state_dict(), "best_valid_force_mae": best,
                        "since_best": since_best, "rng_state": rng.bit_generator.state,
                        "torch_rng_state": torch.get_rng_state(), "world_size": dist.world_size})
                    self._write_metrics(history)
            bar.set_postfix(F=f"{val['force_mae']:.1f}", E=f"{val['energy_mae']:.2f}", best=f"{best:.1f}",
                            lr=f"{row['lr']:.1e}")
            if not progress:
                log(f"epoch {epoch + 1}: valid force MAE {val['force_mae']:.2f} meV/Å, energy MAE "
                    f"{val['energy_mae']:.2f} meV/atom, lr {row['lr']:.2e}")
            # every rank sees the same reduced numbers, so every rank decides the same here
            if since_best >= cfg.early_stopping_patience:
                stop_reason = f"early stopping: no improvement for {since_best} epochs"
                break
            if optimizer.param_groups[0]["lr"] <= cfg.min_lr and since_best >= cfg.lr_patience:
                stop_reason = f"learning rate reached min_lr {cfg.min_lr:g}"
                break
            if cfg.max_minutes is not None and row["wall_s"] >= 60 * cfg.max_minutes:
                stop_reason = f"time budget of {cfg.max_minutes:g} min reached"
                break
            if cfg.max_cpu_minutes is not None and row["cpu_s"] >= 60 * cfg.max_cpu_minutes:
                stop_reason = f"CPU budget of {cfg.max_cpu_minutes:g} CPU-min reached"
                break
        bar.close()
        last = history[-1]
        summary = {"best_valid_force_mae": best, "epochs": last["epoch"], "wall_s": last["wall_s"],
                   "cpu_s": last["cpu_s"], "stop_reason": stop_reason, "world_size": dist.world_size,
                   "batch_size": cfg.batch_size, "lr": cfg.lr}
        with dist.guard():
            if dist.is_main:
                self._plot(history)
                self._record_energy_range(self._range_graphs(train))
                summary.update(self._check_learned(model, valid, history, best, log))
                log(f"{stop_reason} after {last['epoch']} epochs, {last['wall_s'] / 60:.1f} min wall, "
                    f"{last['cpu_s'] / 60:.1f} CPU-min; best valid force MAE {best:.2f} meV/Å -> "
                    f"{self.out / 'best.ckpt'}")
                (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def _check_learned(self, model: EnergyModel, valid, history: list[dict], best: float,
                       log: Callable[[str], None]) -> dict:
        """Compare the best epoch's validation errors with the composition baseline's
        (:mod:`mlff.train.baseline`): a warning when the model learned little; the baseline's
        errors go into ``summary.json``."""
        base = composition_baseline(model, valid, self.config.valid_batch_size)
        best_row = next((r for r in history if r["valid_force_mae"] == best), history[-1])
        predicts_energy = math.isfinite(best_row.get("valid_energy_rmse", math.nan))
        for message in unlearned_warnings(best_row, base, predicts_energy):
            log(f"  warning: {message}")
            warnings.warn(message, UserWarning, stacklevel=3)
        return {"baseline_valid_energy_rmse": base["energy_rmse"], "baseline_valid_force_rmse": base["force_rmse"]}

    # ------------------------------------------------------------------ data
    def _prepare(self, train_frames, valid_frames, sources, strict_data, log, dist):
        """Build the model (unless resuming) and the two data sets; rank 0 fits the
        statistics and the training range (broadcast afterwards)."""
        from ..data.packed import PackedDataset, streaming_energy_statistics

        cfg = self.config
        if len(train_frames) == 0 or len(valid_frames) == 0:
            raise ConfigError("training and validation sets must both be non-empty")
        packed = isinstance(train_frames, PackedDataset)
        if packed != isinstance(valid_frames, PackedDataset):
            raise ConfigError("training and validation data must both be packed or both be frames")
        if packed:
            for data, source in ((train_frames, sources[0]), (valid_frames, sources[1])):
                if abs(data.r_max - cfg.r_max) > 1e-12:
                    raise ConfigError(f"{source} was packed with neighbour lists for r_max {data.r_max:g} Å, but "
                                      f"training uses r_max {cfg.r_max:g} Å; pass --r-max {data.r_max:g} or pack "
                                      f"again with 'mlff data pack --r-max {cfg.r_max:g}'")
        elif dist.is_main:
            self._check_data(train_frames, sources[0], strict_data, log)
        if self.model is None:
            species = list(train_frames.species) if packed else self._species(train_frames)
            valid_species = list(valid_frames.species) if packed else self._species(valid_frames)
            untrained = sorted(set(valid_species) - set(species))
            if untrained:
                raise ConfigError(f"element(s) {untrained} occur in {sources[1]} but not in {sources[0]}: "
                                  f"the model would have untrained parameters for them; add frames with "
                                  f"{', '.join(untrained)} to the training data or remove them from validation")
            cfg.model_params = {**model_param_defaults(cfg.model), **cfg.model_params}
            self.model = build_model(cfg.model, species, cfg.r_max, dtype=self.dtype, **cfg.model_params)
        model = self.model
        if packed:
            train = PackedSet(train_frames, model.species, self.dtype, self.device)
            valid = PackedSet(valid_frames, model.species, self.dtype, self.device)
            self.training_range = {"pair_min_distance": dict(train_frames.pair_min_distance),
                                   "periodic": train_frames.periodicity}
            if self.resume_state is None and dist.is_main:
                counts, energies, rms = streaming_energy_statistics(train_frames, model.species)
                stats = set_energy_scale(model, counts, energies, rms)
                log(f"fitted reference energies {stats['reference_energy']} eV, scale {stats['scale']:.4f} eV "
                    f"(all {len(train_frames)} training structures, read block by block)")
                if callable(getattr(model, "fit_statistics", None)):
                    subset = train.statistics_subset(cfg.seed)
                    log(f"fitted model statistics {model.fit_statistics(train_frames.graphs(subset, model.species, self.dtype))}"
                        f" ({len(subset)} structures)")
            return train, valid
        graphs = self._graphs(train_frames, model.species, sources[0])
        valid_graphs = self._graphs(valid_frames, model.species, sources[1])
        # extrapolation limits carried into every checkpoint and the deployed model's metadata
        self.training_range = {"pair_min_distance": pair_min_distances(graphs, model.species) if dist.is_main else {},
                               "periodic": periodicity(train_frames)}
        if self.resume_state is None and dist.is_main:
            stats = fit_energy_scale(model, graphs)
            log(f"fitted reference energies {stats['reference_energy']} eV, scale {stats['scale']:.4f} eV")
            if callable(getattr(model, "fit_statistics", None)):  # model-specific statistics (e.g. neighbour count)
                log(f"fitted model statistics {model.fit_statistics(graphs)}")
        # statistics are fitted on the CPU copies; every graph then moves once
        return (GraphSet([g.to(device=self.device) for g in graphs]),
                GraphSet([g.to(device=self.device) for g in valid_graphs]))

    def _range_graphs(self, train):
        """Training graphs for the atomic-energy range of the best model; packed sets: batches
        of the statistics subset, read one at a time."""
        if isinstance(train, GraphSet):
            return train.graphs
        subset = train.statistics_subset(self.config.seed)
        size = self.config.valid_batch_size
        return (train.batch(subset[k:k + size]) for k in range(0, len(subset), size))

    def _record_energy_range(self, train) -> None:
        """Add the best model's atomic-energy range on the training set to ``best.ckpt``
        (metadata ``training_range.atomic_energy`` of the deployed model)."""
        from .checkpoint import model_from_record

        path = self.out / "best.ckpt"
        if not path.is_file():
            return
        record = load_checkpoint(path)
        best = model_from_record(record).to(self.device)
        ranges = atomic_energy_range(best, train, self.config.valid_batch_size) if isinstance(train, list) \
            else atomic_energy_range(best, [], batches=train)
        record["training_range"] = {**self.training_range, "atomic_energy": ranges}
        save_checkpoint(path, record)

    # ------------------------------------------------------------------ outputs
    def _write_metrics(self, history: list[dict]) -> None:
        with open(self.out / "metrics.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(history)
        if len(history) % 10 == 0:
            self._plot(history)

    def _plot(self, history: list[dict]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in history]
        fig, (ax_f, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
        ax_f.semilogy(epochs, [r["train_force_mae"] for r in history], label="train (live weights, during the epoch)")
        ax_f.semilogy(epochs, [r["valid_force_mae"] for r in history], label="validation (EMA)")
        ax_f.set(xlabel="epoch", ylabel="force MAE (meV/Å)")
        if all(math.isnan(r["valid_energy_mae"]) for r in history):
            ax_e.text(0.5, 0.5, "direct-force model: no energy", ha="center", va="center", transform=ax_e.transAxes)
        else:
            ax_e.semilogy(epochs, [r["train_energy_mae"] for r in history], label="train (live weights, during the epoch)")
            ax_e.semilogy(epochs, [r["valid_energy_mae"] for r in history], label="validation (EMA)")
        ax_e.set(xlabel="epoch", ylabel="energy MAE (meV/atom)")
        for ax in (ax_f, ax_e):
            if ax.get_lines():
                ax.legend()
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.out / "learning_curve.png", dpi=100)
        plt.close(fig)
