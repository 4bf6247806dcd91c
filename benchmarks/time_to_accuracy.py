#!/usr/bin/env python
"""Time to accuracy on toluene: mlff's ``nequip`` against MACE and the nequip package (issue 22).

All three train on the same 1,000 toluene frames (GFN2-xTB, ``benchmarks/data``; the
accuracy benchmark's split: permutation seed 0, 100 validation frames first) on this
machine, one at a time, each with one thread, with the settings of ``shared/baselines.md``:

* mlff ``nequip`` (32 × l ≤ 1, 3 layers): ``mlff train --model nequip`` with no other
  options, i.e. the tuned defaults (``mlff/train/defaults.py``), for ``--cpu-minutes``;
* MACE 0.3.16: 32 channels, L = 1, correlation 3, 2 layers, r_max 5 Å, fp64, batch 5,
  lr 0.01, force weight 100, 20 epochs;
* nequip 0.19.1: 32 features, l_max 1, 3 layers, r_max 5 Å, fp64, batch 5, Adam lr 0.01,
  EMA, force weight 100, 40 epochs.

MACE and nequip are installed by this script into their own virtual environments under
``benchmarks/out/peers/`` (two: mace-torch 0.3.16 pins e3nn 0.4.4, nequip 0.19.1 needs
e3nn ≥ 0.6), each with ``torch==2.13.0`` pinned exactly (the CPU build; a looser pin pulls
a multi-GB CUDA build).

Every run's validation force MAE (the same 100 frames) is recorded against the CPU time
of its process tree (user + system, all threads, start-up included), sampled from
``/proc`` every 0.5 s and stamped on each validation result when it appears; a run's CPU
time is that at its last validation result (hold-out scoring excluded). The plot ``OUT/time_to_accuracy.png`` shows
the three curves and MACE's 20-epoch error; ``OUT/report.md`` and ``OUT/results.json``
give the CPU-minutes at which each run first reaches that error (target for mlff: at most
half of MACE's CPU time) and each final model's hold-out force and energy MAE.

    python benchmarks/time_to_accuracy.py                  # the benchmark (about 70 min on this machine, see docs/training.md)
    python benchmarks/time_to_accuracy.py --quick          # a minute or two: 20 EMT toluene frames, 2 epochs
    python benchmarks/time_to_accuracy.py --only mlff      # one of mlff, mace, nequip (results are cached)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PEERS = HERE / "out" / "peers"
TORCH = "torch==2.13.0"
PACKAGES = {"mace": "mace-torch==0.3.16", "nequip": "nequip==0.19.1"}
RUNS = ("mlff", "mace", "nequip")


# ------------------------------------------------------------------------------ environments


def venv(name: str) -> Path:
    """The peer's virtual environment (created and installed once)."""
    path = PEERS / f"{name}_venv"
    python = path / "bin" / "python"
    marker = path / ".installed"
    if marker.is_file() and marker.read_text() == PACKAGES[name]:
        return path
    PEERS.mkdir(parents=True, exist_ok=True)
    if not python.is_file():
        print(f"[setup] creating {path}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    print(f"[setup] pip install {TORCH} {PACKAGES[name]} into {path} (log: {PEERS / (name + '_install.log')})",
          flush=True)
    with open(PEERS / f"{name}_install.log", "w") as log:
        subprocess.run([str(python), "-m", "pip", "install", TORCH, PACKAGES[name]], stdout=log,
                       stderr=subprocess.STDOUT, check=True)
    version = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip()
    if not version.startswith("2.13.0") or "+cu" in version:
        raise SystemExit(f"{path} got torch {version}; expected the CPU build of 2.13.0")
    marker.write_text(PACKAGES[name])
    return path


# ------------------------------------------------------------------------------ data


def prepare_data(out: Path, quick: bool) -> dict[str, Path]:
    """Training / validation / hold-out files, in mlff's convention and with REF_ keys for the peers."""
    from ase.io import write

    from mlff.data.io import read_dataset, write_dataset

    d = out / "data"
    d.mkdir(parents=True, exist_ok=True)
    if quick:
        frames = _emt_toluene(45)
        train, valid, holdout = frames[:20], frames[20:25], frames[25:]
    else:
        src, hold = DATA / "toluene_train.extxyz", DATA / "toluene_holdout.extxyz"
        if not src.is_file() or not hold.is_file():
            raise SystemExit(f"{src} or {hold} is missing: run 'bash benchmarks/make_toluene_data.sh' first")
        frames = read_dataset(src)
        order = np.random.default_rng(0).permutation(len(frames))  # benchmarks/accuracy's split
        valid = [frames[k] for k in order[:100]]
        train = [frames[k] for k in order[100:1100]]
        holdout = read_dataset(hold)
    files = {}
    for name, part in (("train", train), ("valid", valid), ("holdout", holdout)):
        files[name] = write_dataset(d / f"{name}.extxyz", part)
        ref = []
        for a in part:
            b = a.copy()
            b.calc = None
            b.info = {"REF_energy": a.info["energy"]}
            b.arrays["REF_forces"] = a.arrays["forces"].copy()
            del b.arrays["forces"]
            ref.append(b)
        write(d / f"{name}_ref.extxyz", ref, format="extxyz")
        files[f"{name}_ref"] = d / f"{name}_ref.extxyz"
    return files


def _emt_toluene(n: int):
    """``n`` frames of toluene MD with ASE's EMT (the quick mode's stand-in for xTB)."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from mlff.data.molecules import molecule

    atoms = molecule("toluene")
    atoms.calc = EMT()
    MaxwellBoltzmannDistribution(atoms, temperature_K=800, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    frames = []
    for _ in range(n):
        dyn.run(4)
        f = atoms.copy()
        f.calc = None
        f.info["energy"] = float(atoms.get_potential_energy())
        f.arrays["forces"] = atoms.get_forces().copy()
        frames.append(f)
    return frames


# ------------------------------------------------------------------------------ CPU tracking


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (and their reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            f = stats[p]
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime
        todo += children.get(p, [])
    return total / tick


def run_tracked(cmd: list[str], log: Path, watch: callable, env: dict, cwd: Path | None = None,
                interval: float = 0.5) -> tuple[list[tuple[float, float]], float, int]:
    """Run ``cmd`` (output to ``log``); every ``interval`` s sample its CPU time and call
    ``watch()``, which returns the validation force MAEs (meV/Å) seen so far. A new value is
    stamped with the CPU time at which it appeared. Returns the curve
    ``[(cpu_s, mae)]``, the total CPU seconds and the exit status."""
    curve: list[tuple[float, float]] = []
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        cpu = 0.0
        while True:
            done = proc.poll() is not None
            if not done:
                try:
                    cpu = max(cpu, tree_cpu_seconds(proc.pid))
                except (OSError, ValueError):
                    pass
            values = watch()
            for v in values[len(curve):]:  # (cpu_s, mae) from the run itself, or a MAE stamped here
                curve.append(tuple(v) if isinstance(v, (tuple, list)) else (cpu, v))
            if done:
                break
            time.sleep(interval)
    return curve, cpu, proc.returncode


# ------------------------------------------------------------------------------ the three runs


def thread_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_mlff(out: Path, files: dict, cpu_minutes: float) -> dict:
    run = out / "mlff_nequip"
    metrics = run / "metrics.csv"

    def watch():
        if not metrics.is_file():
            return []
        with open(metrics) as fh:
            return [float(r["valid_force_mae"]) for r in csv.DictReader(fh)]

    cmd = [sys.executable, "-m", "mlff", "train", "--model", "nequip", "--train", str(files["train"]), "--valid",
           str(files["valid"]), "--threads", "1", "--max-cpu-minutes", str(cpu_minutes), "--out", str(run),
           "--overwrite", "--no-progress"]
    print(f"[mlff]   {' '.join(cmd)}", flush=True)
    curve, cpu, rc = run_tracked(cmd, out / "mlff_nequip.log", watch, thread_env())
    if rc != 0:
        raise SystemExit(f"mlff training failed; see {out / 'mlff_nequip.log'}")
    subprocess.run([sys.executable, "-m", "mlff.deploy", str(run / "best.ckpt"), "-o", str(run / "model.pt"),
                    "--dtype", "float64"], check=True, env=thread_env(), capture_output=True)
    ev = subprocess.run([sys.executable, "-m", "mlff", "eval", str(run / "model.pt"), str(files["holdout"]), "--json"],
                        check=True, env=thread_env(), capture_output=True, text=True).stdout
    metrics_eval = json.loads(ev[ev.index("{"):])
    return {"curve": curve, "cpu_s": curve[-1][0] if curve else cpu,
            "holdout_force_mae": metrics_eval["force_mae_meV_per_A"],
            "holdout_energy_mae": metrics_eval["energy_mae_meV_per_atom"]}


def run_mace(out: Path, files: dict, epochs: int) -> dict:
    env_dir = venv("mace")
    run = out / "mace"
    run.mkdir(parents=True, exist_ok=True)
    results = run / "results"

    def watch():
        values = []
        for path in sorted(results.glob("*_train.txt")):
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if row.get("mode") == "eval" and "mae_f" in row:
                    values.append(1e3 * float(row["mae_f"]))
        return values

    cmd = [str(env_dir / "bin" / "mace_run_train"), "--name", "toluene", "--seed", "1",
           "--train_file", str(files["train_ref"]), "--valid_file", str(files["valid_ref"]),
           "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--E0s", "average",
           "--model", "MACE", "--hidden_irreps", "32x0e + 32x1o", "--max_L", "1", "--correlation", "3",
           "--num_interactions", "2", "--r_max", "5.0", "--default_dtype", "float64", "--batch_size", "5",
           "--valid_batch_size", "20", "--lr", "0.01", "--forces_weight", "100", "--energy_weight", "1",
           "--max_num_epochs", str(epochs), "--eval_interval", "1",
           "--error_table", "PerAtomMAE", "--device", "cpu", "--num_workers", "0",
           "--log_dir", str(run / "logs"), "--model_dir", str(run), "--checkpoints_dir", str(run / "checkpoints"),
           "--results_dir", str(results), "--restart_latest"]
    print(f"[mace]   {' '.join(cmd)}", flush=True)
    curve, cpu, rc = run_tracked(cmd, out / "mace.log", watch, thread_env(), cwd=run)
    if rc != 0:
        raise SystemExit(f"MACE training failed; see {out / 'mace.log'}")
    model = run / "toluene.model"
    pred = run / "holdout_pred.extxyz"
    subprocess.run([str(env_dir / "bin" / "mace_eval_configs"), "--configs", str(files["holdout_ref"]),
                    "--model", str(model), "--output", str(pred), "--default_dtype", "float64", "--device", "cpu"],
                   check=True, env=thread_env(), capture_output=True)
    return {"curve": curve, "cpu_s": curve[-1][0] if curve else cpu,
            **_holdout_errors(pred, "MACE_energy", "MACE_forces")}


NEQUIP_CONFIG = """
run: [train, test]
seed: 1
cutoff_radius: 5.0
model_type_names: [H, C]
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
        chemical_species_to_atom_type_map: {H: H, C: C}
      - _target_: nequip.data.transforms.NeighborListTransform
        r_max: ${cutoff_radius}
  val_dataset:
    _target_: nequip.data.dataset.ASEDataset
    file_path: VALID
    key_mapping: {REF_energy: total_energy, REF_forces: forces}
    transforms: *transforms
  test_dataset:
    _target_: nequip.data.dataset.ASEDataset
    file_path: HOLDOUT
    key_mapping: {REF_energy: total_energy, REF_forces: forces}
    transforms: *transforms
  train_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 5, shuffle: true}
  val_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 20}
  test_dataloader: {_target_: torch.utils.data.DataLoader, batch_size: 20}
  stats_manager:
    _target_: nequip.data.CommonDataStatisticsManager
    type_names: ${model_type_names}

trainer:
  _target_: lightning.Trainer
  accelerator: cpu
  max_epochs: EPOCHS
  check_val_every_n_epoch: 1
  log_every_n_steps: 50
  enable_progress_bar: false
  logger:
    _target_: lightning.pytorch.loggers.CSVLogger
    save_dir: RUNDIR
    name: csv
    version: 0
    flush_logs_every_n_steps: 1
  callbacks:
    - _target_: tta_callback.CPUTimeLog
      path: RUNDIR/cpu_log.jsonl
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
  test_metrics: ${training_module.val_metrics}
  optimizer: {_target_: torch.optim.Adam, lr: 0.01}
  model:
    _target_: nequip.model.NequIPGNNModel
    seed: ${seed}
    model_dtype: float64
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


CPU_CALLBACK = """
import json, os, time
import lightning


class CPUTimeLog(lightning.Callback):
    \"\"\"Append the process's CPU time (all threads, and reaped children) and the validation
    force MAE to a JSON-lines file at the end of every validation (not the sanity check).\"\"\"

    def __init__(self, path):
        self.path = path

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or "val0_epoch/forces_mae" not in trainer.callback_metrics:
            return
        t = os.times()
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"epoch": trainer.current_epoch, "cpu_s": t.user + t.system + t.children_user
                                 + t.children_system,
                                 "forces_mae": float(trainer.callback_metrics["val0_epoch/forces_mae"])}) + "\\n")
"""


def run_nequip(out: Path, files: dict, epochs: int) -> dict:
    env_dir = venv("nequip")
    run = out / "nequip"
    run.mkdir(parents=True, exist_ok=True)
    config = (NEQUIP_CONFIG.replace("TRAIN", str(files["train_ref"])).replace("VALID", str(files["valid_ref"]))
              .replace("HOLDOUT", str(files["holdout_ref"]))
              .replace("EPOCHS", str(epochs)).replace("RUNDIR", str(run)))
    (run / "config.yaml").write_text(config)
    metrics = run / "csv" / "version_0" / "metrics.csv"
    cpu_log = run / "cpu_log.jsonl"
    cpu_log.unlink(missing_ok=True)
    (run / "tta_callback.py").write_text(CPU_CALLBACK)

    def watch():  # the callback writes the process's CPU time with each validation result
        if not cpu_log.is_file():
            return []
        rows = [json.loads(line) for line in cpu_log.read_text().splitlines() if line.strip()]
        return [(r["cpu_s"], 1e3 * r["forces_mae"]) for r in rows]

    cmd = [str(env_dir / "bin" / "nequip-train"), "-cp", str(run), "-cn", "config.yaml",
           f"hydra.run.dir={run / 'hydra'}"]
    print(f"[nequip] {' '.join(cmd)}", flush=True)
    env = {**thread_env(), "PYTHONPATH": str(run)}
    curve, cpu, rc = run_tracked(cmd, out / "nequip.log", watch, env, cwd=run)
    if rc != 0:
        raise SystemExit(f"nequip training failed; see {out / 'nequip.log'}")
    # the hold-out is nequip-train's "test" task, which runs on the best checkpoint
    with open(metrics) as fh:
        test = [r for r in csv.DictReader(fh) if r.get("test0_epoch/forces_mae")][-1]
    return {"curve": curve, "cpu_s": curve[-1][0] if curve else cpu,
            "holdout_force_mae": 1e3 * float(test["test0_epoch/forces_mae"]),
            "holdout_energy_mae": 1e3 * float(test["test0_epoch/per_atom_energy_mae"])}


def _holdout_errors(pred: Path, energy_key: str, forces_key: str) -> dict:
    from ase.io import read

    frames = read(pred, ":", format="extxyz")
    df = np.concatenate([a.arrays[forces_key] - a.arrays["REF_forces"] for a in frames])
    de = np.array([(a.info[energy_key] - a.info["REF_energy"]) / len(a) for a in frames])
    return {"holdout_force_mae": 1e3 * float(np.mean(np.abs(df))), "holdout_energy_mae": 1e3 * float(np.mean(np.abs(de)))}


# ------------------------------------------------------------------------------ report


def first_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """CPU seconds at which a curve first reaches ``target`` (``None``: never)."""
    return next((cpu for cpu, mae in curve if mae <= target), None)


def report(out: Path, results: dict, quick: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"mlff": "mlff nequip (defaults)", "mace": "MACE 0.3.16", "nequip": "nequip 0.19.1"}
    mace = results.get("mace")
    target = mace["curve"][-1][1] if mace and mace["curve"] else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results.items():
        if r["curve"]:
            ax.semilogy([c / 60 for c, _ in r["curve"]], [m for _, m in r["curve"]], "o-", ms=3, label=labels[name])
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1, label="MACE's final (last-epoch) validation error")
    ax.set(xlabel="CPU minutes (process tree, 1 thread)", ylabel="validation force MAE (meV/Å)",
           title="toluene, 1,000 frames" + (" — QUICK (not a result)" if quick else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "time_to_accuracy.png", dpi=110)
    plt.close(fig)
    lines = ["# Time to accuracy: toluene" + (" (QUICK RUN: not a result)" if quick else ""), "",
             "| run | CPU-min in all | final validation force MAE | CPU-min to reach MACE's final error | "
             "hold-out force MAE (meV/Å) | hold-out energy MAE (meV/atom) |", "|---|---|---|---|---|---|"]
    summary = {}
    for name, r in results.items():
        reach = first_reach(r["curve"], target) if target is not None else None
        summary[name] = {**r, "cpu_min_to_mace_final": None if reach is None else reach / 60}
        final = r["curve"][-1][1] if r["curve"] else math.nan
        lines.append(f"| {labels[name]} | {r['cpu_s'] / 60:.1f} | {final:.1f} | "
                     f"{'—' if reach is None else f'{reach / 60:.1f}'} | {r['holdout_force_mae']:.1f} | "
                     f"{r['holdout_energy_mae']:.2f} |")
    if mace and "mlff" in summary and summary["mlff"]["cpu_min_to_mace_final"] is not None:
        ratio = summary["mlff"]["cpu_min_to_mace_final"] / (mace["cpu_s"] / 60)
        lines.append(f"\nmlff's nequip reaches MACE's final validation error ({target:.1f} meV/Å) after "
                     f"{summary['mlff']['cpu_min_to_mace_final']:.1f} CPU-min, {ratio:.2f}× MACE's "
                     f"{mace['cpu_s'] / 60:.1f} CPU-min (target ≤ 0.5×): {'PASS' if ratio <= 0.5 else 'FAIL'}")
    elif mace and "mlff" in summary:
        lines.append(f"\nmlff's nequip did not reach MACE's final validation error ({target:.1f} meV/Å) "
                     f"within its budget: FAIL")
    (out / "results.json").write_text(json.dumps({"quick": quick, "mace_final_valid": target, "runs": summary},
                                                 indent=2))
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 EMT toluene frames, 2 epochs each (a check, not a result)")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/out/time_to_accuracy[_quick])")
    p.add_argument("--cpu-minutes", type=float, default=25.0, help="mlff nequip's CPU budget (default 25)")
    p.add_argument("--mace-epochs", type=int, default=20)
    p.add_argument("--nequip-epochs", type=int, default=40)
    p.add_argument("--only", help=f"comma-separated subset of {','.join(RUNS)} (the others are read from OUT)")
    p.add_argument("--setup-only", action="store_true", help="create the two peer environments and stop")
    args = p.parse_args()
    if args.setup_only:
        for name in PACKAGES:
            venv(name)
        return
    out = (args.out or HERE / "out" / ("time_to_accuracy_quick" if args.quick else "time_to_accuracy")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.cpu_minutes, args.mace_epochs, args.nequip_epochs = 0.3, 2, 2
    only = set((args.only or ",".join(RUNS)).split(","))
    files = prepare_data(out, args.quick)
    cache = out / "runs.json"
    results = json.loads(cache.read_text()) if cache.is_file() else {}
    steps = {"mlff": lambda: run_mlff(out, files, args.cpu_minutes),
             "mace": lambda: run_mace(out, files, args.mace_epochs),
             "nequip": lambda: run_nequip(out, files, args.nequip_epochs)}
    for name in RUNS:
        if name in only or name not in results:
            t0 = time.perf_counter()
            results[name] = steps[name]()
            print(f"[{name}] done in {(time.perf_counter() - t0) / 60:.1f} min wall, "
                  f"{results[name]['cpu_s'] / 60:.1f} CPU-min", flush=True)
            cache.write_text(json.dumps(results, indent=2))
    print(report(out, results, args.quick))
    print(f"written: {out / 'report.md'}, {out / 'results.json'}, {out / 'time_to_accuracy.png'}")


if __name__ == "__main__":
    main()
