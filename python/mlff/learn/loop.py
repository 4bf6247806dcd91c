"""The active-learning loop of ``mlff learn``: train a committee, explore with it in
LAMMPS, select the frames it is unsure about, label them with the reference, repeat.

Concurrent learning as in DP-GEN (Zhang et al., Phys. Rev. Mater. 3, 023804 (2019);
Comput. Phys. Commun. 253, 107206 (2020)), with mlff's committees, LAMMPS plugin and
reference calculators. The run directory holds everything and can be resumed after any
interruption (``mlff learn --resume --out DIR``):

* ``config.yaml``, ``state.json`` (the iteration and stage reached, the history), ``report.md``;
* ``data/initial.extxyz``;
* ``iter_K/train/member_M/`` (committee runs; an interrupted member resumes from its
  ``last.ckpt``), ``iter_K/committee.pt``, ``iter_K/explore/<run>/`` (a run with
  ``done.json`` is not repeated), ``iter_K/selected.extxyz``, ``iter_K/label/frame_N.extxyz``
  (one file per labelled frame), ``iter_K/labelled.extxyz``.

A stage's outputs are complete before ``state.json`` records it, so a kill at any
moment repeats at most the unfinished part of one stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from ase import Atoms
from ase.io import read

from ..data.io import read_dataset, write_dataset
from ..deploy import export_committee, merged_training_range
from ..errors import ConfigError
from ..train.checkpoint import load_checkpoint, model_from_record
from ..train.trainer import Trainer
from .config import LearnConfig
from .explore import explore
from .label import label, reference_factory
from .report import write_report
from .select import select, spread_out

STAGES = ("train", "deploy", "explore", "select", "label")


class ActiveLearner:
    """``ActiveLearner(config, folder).run()``; ``base``: where relative paths in the
    config point (the config file's folder)."""

    def __init__(self, config: LearnConfig, folder: str | Path, base: str | Path = ".",
                 log: Callable[[str], None] = print):
        self.config = config
        self.folder = Path(folder)
        self.base = Path(base)
        self.log = log
        self.state_path = self.folder / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else \
            {"iteration": 0, "done": [], "history": [], "stop_reason": ""}

    # ------------------------------------------------------------------ state
    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.state_path)

    def _mark(self, stage: str, seconds: float, **values) -> None:
        self.state["done"].append(stage)
        self.state.setdefault("current", {}).update(values)
        self.state["current"].setdefault("seconds", {})[stage] = seconds
        self._save_state()

    def _path(self, p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else self.base / p

    # ------------------------------------------------------------------ data
    def structures(self) -> list[Atoms]:
        return [read(self._path(p), index=-1) for p in self.config.structures]

    def species(self) -> list[str]:
        from ase.data import atomic_numbers

        symbols = {s for a in self.structures() for s in a.get_chemical_symbols()}
        return sorted(symbols, key=lambda s: atomic_numbers[s])

    def initial_data(self) -> list[Atoms]:
        path = self.folder / "data" / "initial.extxyz"
        if path.is_file():
            return read_dataset(path)
        cfg = self.config
        if cfg.initial_data:
            frames = read_dataset(self._path(cfg.initial_data))
        else:
            rng = np.random.default_rng(cfg.seed)
            structures = self.structures()
            rattled = []
            for k in range(cfg.n_initial):
                atoms = structures[k % len(structures)].copy()
                atoms.positions += rng.normal(scale=cfg.rattle, size=atoms.positions.shape)
                rattled.append(atoms)
            self.log(f"mlff learn: labelling {len(rattled)} rattled starting structures with {cfg.reference}")
            frames, failures = label(rattled, cfg.reference, cfg.label, self.folder / "data" / "initial_label", self.log)
            if len(frames) < 2:
                raise ConfigError(f"the reference {cfg.reference!r} labelled only {len(frames)} of {len(rattled)} "
                                  f"starting structures: {failures[:3]}")
        write_dataset(path, frames)
        return frames

    def training_frames(self, iteration: int) -> list[Atoms]:
        frames = self.initial_data()
        for k in range(iteration):
            path = self.folder / f"iter_{k:03d}" / "labelled.extxyz"
            if path.is_file():
                frames += read_dataset(path)
        return frames

    # ------------------------------------------------------------------ stages
    def train(self, iteration: int, folder: Path) -> float:
        """Train the committee (members warm-started from the previous iteration's);
        returns the members' mean best validation force MAE (meV/Å)."""
        cfg = self.config
        frames = self.training_frames(iteration)
        order = np.random.default_rng(cfg.seed + iteration).permutation(len(frames))
        n_valid = max(1, int(round(cfg.n_valid_fraction * len(frames))))
        valid = [frames[k] for k in order[:n_valid]]
        train = [frames[k] for k in order[n_valid:]]
        maes = []
        for m in range(cfg.committee):
            out = folder / "train" / f"member_{m}"
            summary = out / "summary.json"
            if not summary.is_file():
                if (out / "last.ckpt").is_file():
                    trainer = Trainer.resume(out)
                else:
                    config = cfg.train_config(iteration)
                    config.seed += m
                    previous = self.folder / f"iter_{iteration - 1:03d}" / "train" / f"member_{m}" / "best.ckpt"
                    warm = model_from_record(load_checkpoint(previous)) if previous.is_file() else None
                    trainer = Trainer(config, out, model=warm)
                self.log(f"mlff learn: iteration {iteration}: member {m + 1} of {cfg.committee} on {len(train)} frames")
                trainer.fit(train, valid, progress=False, log=lambda s: None)
            maes.append(json.loads(summary.read_text())["best_valid_force_mae"])
        return float(np.mean(maes))

    def deploy(self, folder: Path) -> Path:
        records = [load_checkpoint(folder / "train" / f"member_{m}" / "best.ckpt") for m in range(self.config.committee)]
        path = folder / "committee.pt"
        export_committee([model_from_record(r) for r in records], path, dtype=torch.float32,
                         training_range=merged_training_range([r.get("training_range") for r in records]))
        return path

    # ------------------------------------------------------------------ loop
    def run(self) -> dict:
        """Iterate until converged or a budget ends; returns the final state."""
        cfg = self.config
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        reference_factory(cfg.reference)
        self.initial_data()
        species = self.species()
        r_max = cfg.train_config(0).r_max
        while not self.state["stop_reason"]:
            it = self.state["iteration"]
            folder = self.folder / f"iter_{it:03d}"
            folder.mkdir(exist_ok=True)
            done = self.state["done"]
            if "train" not in done:
                t0 = time.perf_counter()
                mae = self.train(it, folder)
                self._mark("train", time.perf_counter() - t0, valid_force_mae=mae,
                           n_train=len(self.training_frames(it)))
            if "deploy" not in done:
                t0 = time.perf_counter()
                self.deploy(folder)
                self._mark("deploy", time.perf_counter() - t0)
            if "explore" not in done:
                t0 = time.perf_counter()
                self.log(f"mlff learn: iteration {it}: exploring ({len(cfg.structures)} structure(s) × "
                         f"{len(cfg.explore.temperatures)} temperature(s) × {len(cfg.explore.pressures)} pressure(s))")
                frames, runs = explore(self.structures(), folder / "committee.pt", species, cfg.explore,
                                       folder / "explore", cfg.seed + 1000 * it,
                                       progress=lambda s: self.log(f"  explored {s['run']}"
                                                                   + (f" (stopped: {s['error']})" if s['error'] else "")))
                frames_path = folder / "explored.extxyz"
                if frames:
                    write_dataset(frames_path, frames)
                elif frames_path.exists():
                    frames_path.unlink()
                self._mark("explore", time.perf_counter() - t0, runs=len(runs),
                           crashed=sum(1 for r in runs if r["error"]))
            if "select" not in done:
                t0 = time.perf_counter()
                frames = read(folder / "explored.extxyz", ":") if (folder / "explored.extxyz").is_file() else []
                chosen, groups = select(frames, cfg.select, species, r_max)
                overconfident = 1e-3 * self.state["current"]["valid_force_mae"] > cfg.select.trust_hi
                if not chosen and frames and overconfident:
                    # the committee agrees but is far from the reference (members not yet diverse):
                    # its deviation means nothing yet, so label a spread of explored frames
                    chosen = spread_out(frames, cfg.select.n_select, species, r_max)
                    self.log(f"mlff learn: iteration {it}: no candidates, but the validation force MAE "
                             f"({self.state['current']['valid_force_mae']:.0f} meV/Å) exceeds trust_hi: labelling "
                             f"{len(chosen)} explored frames chosen by farthest-point sampling")
                elif not chosen and groups["failed"] and len(groups["failed"]) / len(frames) >= cfg.converged_fraction:
                    # nothing in the trust window, but exploration fails: label the least uncertain failures
                    chosen = sorted(groups["failed"], key=lambda k: frames[k].info["max_devi_f"])[:cfg.select.n_select]
                    self.log(f"mlff learn: iteration {it}: no candidates; labelling the {len(chosen)} least uncertain "
                             f"of {len(groups['failed'])} failed frames")
                if chosen:
                    write_dataset(folder / "selected.extxyz", [frames[k] for k in chosen])
                deviation = [float(a.info["max_devi_f"]) for a in frames]
                np.save(folder / "deviations.npy", np.array(deviation))
                self._mark("select", time.perf_counter() - t0, explored=len(frames),
                           **{k: len(v) for k, v in groups.items()}, selected=len(chosen))
            if "label" not in done:
                t0 = time.perf_counter()
                selected = read_dataset(folder / "selected.extxyz", require=()) \
                    if (folder / "selected.extxyz").is_file() else []
                labelled, failures = label(selected, cfg.reference, cfg.label, folder / "label", self.log) \
                    if selected else ([], [])
                if labelled:
                    write_dataset(folder / "labelled.extxyz", labelled)
                self._mark("label", time.perf_counter() - t0, labelled=len(labelled), label_failures=len(failures))
            self._finish_iteration(it)
        return self.state

    def _finish_iteration(self, it: int) -> None:
        cfg = self.config
        current = self.state.pop("current")
        entry = {"iteration": it, "reference": cfg.reference, "committee": cfg.committee, **current}
        self.state["history"].append(entry)
        n_explored = max(entry["explored"], 1)
        unsure = (entry["candidate"] + entry["failed"]) / n_explored
        n_labels = len(self.training_frames(it + 1))
        accurate_enough = 1e-3 * entry["valid_force_mae"] <= cfg.select.trust_hi
        if entry["explored"] and unsure < cfg.converged_fraction and not entry["crashed"] and accurate_enough:
            self.state["stop_reason"] = (f"converged: {100 * unsure:.1f} % of the explored frames are candidates or "
                                         f"failures (< {100 * cfg.converged_fraction:g} %)")
        elif n_labels >= cfg.max_labels:
            self.state["stop_reason"] = f"label budget: {n_labels} labelled frames (max_labels {cfg.max_labels})"
        elif it + 1 >= cfg.max_iterations:
            self.state["stop_reason"] = f"max_iterations {cfg.max_iterations} reached"
        self.state["iteration"] = it + 1
        self.state["done"] = []
        self._save_state()
        deviations = [np.load(self.folder / f"iter_{h['iteration']:03d}" / "deviations.npy")
                      for h in self.state["history"]]
        report = write_report(self.folder, self.state["history"], deviations,
                              (cfg.select.trust_lo, cfg.select.trust_hi), self.state["stop_reason"])
        self.log(f"mlff learn: iteration {it} done: {entry['accurate']} accurate, {entry['candidate']} candidate, "
                 f"{entry['failed']} failed of {entry['explored']} frames; {entry['labelled']} labelled "
                 f"({entry['label_failures']} failed); report {report}")
        if self.state["stop_reason"]:
            self.log(f"mlff learn: stopped: {self.state['stop_reason']}")
