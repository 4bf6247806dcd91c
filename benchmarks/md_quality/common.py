"""Shared steps of the MD-quality benchmarks (toluene.py, cu.py): train, deploy, run, analyse.

Every step writes into the benchmark's output folder and is skipped when its output is
already there, so an interrupted benchmark resumes where it stopped (``--redo`` in the
scripts starts over). Commands are the public ones (``mlff train``, ``mlff-deploy``,
``mlff md``, ``mlff analyze``, ``mlff report``), printed before they run.

Training hyperparameters are those of the equal-budget accuracy benchmark
(``benchmarks/accuracy/run.py``, ``model_settings(model, row)``), written to a YAML file
for ``mlff train --config``.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
DATA = BENCH / "data"
BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(cmd: list, log_file: Path | None = None) -> None:
    """Run a command (printed first); its output goes to the terminal or to ``log_file``."""
    cmd = [str(c) for c in cmd]
    print("$ " + shlex.join(cmd), flush=True)
    if log_file is None:
        subprocess.run(cmd, check=True)
    else:
        with open(log_file, "w") as fd:
            subprocess.run(cmd, check=True, stdout=fd, stderr=subprocess.STDOUT)


def accuracy_settings(model: str, row: str) -> dict:
    """Training configuration of ``model`` for ``row`` from benchmarks/accuracy/run.py."""
    spec = importlib.util.spec_from_file_location("accuracy_run", BENCH / "accuracy" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.model_settings(model, row)


def train_command(model: str, row: str, train_file: Path, out: Path, cpu_minutes: float, n_valid: int,
                  epochs: int | None = None) -> tuple[Path, list[str]]:
    """The ``mlff train`` command of ``model`` (1 thread, ``cpu_minutes`` of CPU time; resumes
    an interrupted run) and its run folder, ``OUT/train/MODEL``."""
    d = out / "train" / model
    d.mkdir(parents=True, exist_ok=True)
    if (d / "last.ckpt").is_file():
        return d, [str(c) for c in [BIN / "mlff", "train", "--resume", "--train", train_file, "--n-valid", n_valid,
                                    "--out", d, "--no-progress"]]
    cfg = accuracy_settings(model, row)
    if epochs is not None:
        cfg["epochs"] = epochs
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    return d, [str(c) for c in [BIN / "mlff", "train", "--config", d / "config.yaml", "--train", train_file,
                                "--n-valid", n_valid, "--max-cpu-minutes", cpu_minutes, "--threads", 1, "--out", d,
                                "--no-progress"]]


def train_one(model: str, row: str, train_file: Path, out: Path, cpu_minutes: float, n_valid: int,
              epochs: int | None = None) -> Path:
    """Train ``model`` with ``mlff train`` (skipped if OUT/train/MODEL/model.pt exists) and deploy
    its best checkpoint in float64. Returns model.pt."""
    d = out / "train" / model
    if (d / "model.pt").is_file():
        log(f"{model}: trained model found ({d / 'model.pt'})")
        return d / "model.pt"
    d, cmd = train_command(model, row, train_file, out, cpu_minutes, n_valid, epochs)
    log(f"{model}: training, {cpu_minutes:g} CPU-min budget (log: {d / 'train.log'})")
    try:
        sh(cmd, d / "train.log")
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"{model}: mlff train failed (exit {exc.returncode}); see {d / 'train.log'}") from None
    sh([BIN / "mlff-deploy", d / "best.ckpt", "-o", d / "model.pt", "--dtype", "float64"])
    log(f"{model}: trained and deployed -> {d / 'model.pt'}")
    return d / "model.pt"


def train_models(models: list[str], row: str, train_file: Path, out: Path, cpu_minutes: float, n_valid: int,
                 jobs: int = 1, epochs: int | None = None) -> dict[str, Path]:
    """Train and deploy every model (``train_one``), ``jobs`` at once. Returns model -> model.pt."""
    tasks = {m: ((), lambda m=m: train_one(m, row, train_file, out, cpu_minutes, n_valid, epochs)) for m in models}
    return run_graph(tasks, jobs)


def run_graph(tasks: dict, jobs: int, done: dict | None = None) -> dict:
    """Run callables with dependencies, ``jobs`` at once, in the order of ``tasks`` among those
    whose dependencies are done. ``tasks``: name -> (names it waits for, callable taking no
    arguments). Results go into ``done`` (name -> result) as tasks finish, so a task can read
    its dependencies' results there; returns it. The first failure stops the scheduling and is
    raised once the running tasks end."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    done = {} if done is None else done
    running, failure = {}, None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            if failure is None:
                for name, (deps, fn) in tasks.items():
                    if len(running) >= max(1, jobs):
                        break
                    if name not in done and name not in running.values() and all(d in done for d in deps):
                        running[pool.submit(fn)] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                if future.exception() is not None:
                    failure = failure or future.exception()
                else:
                    done[name] = future.result()
    if failure is not None:
        raise failure
    missing = [n for n in tasks if n not in done]
    if missing:
        raise RuntimeError(f"tasks never ran (a dependency is missing): {missing}")
    return done


def md(protocol: str, structure: Path, potential: list, out: Path, redo: bool = False, log_file: Path | None = None,
       **params) -> Path:
    """``mlff md PROTOCOL`` into ``out`` (skipped if ``out/summary.json`` lists every seed); its
    output goes to the terminal or to ``log_file``."""
    summary = out / "summary.json"
    seeds = int(params.get("seeds") or 1)
    if summary.is_file() and not redo and len(json.loads(summary.read_text())["runs"]) >= seeds:
        log(f"{out.name}: done before ({summary})")
        return out
    cmd = [BIN / "mlff", "md", protocol, "--structure", structure, *potential, "--out", out, "--overwrite"]
    sets = params.pop("set", {})
    for key, value in params.items():
        if value is not None:
            cmd += [f"--{key.replace('_', '-')}", value]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    log(f"{out.name}: mlff md {protocol}" + (f" (log: {log_file})" if log_file else ""))
    sh(cmd, log_file)
    log(f"{out.name}: done")
    return out


def analyze(run: Path, reference: Path | None, label: str | None = None, reference_label: str | None = None,
            extra: list | None = None) -> dict:
    """``mlff analyze RUN [--reference REF]`` into RUN/analysis; returns analysis.json."""
    cmd = [BIN / "mlff", "analyze", run] + (["--reference", reference] if reference else [])
    cmd += (["--label", label] if label else []) + (["--reference-label", reference_label] if reference_label else [])
    sh(cmd + list(extra or []))
    return json.loads((run / "analysis" / "analysis.json").read_text())


def report(runs: list[Path], output: Path, title: str, labels: list[str]) -> None:
    sh([BIN / "mlff", "report", *runs, "-o", output, "--title", title, "--labels", ",".join(labels)])


def row_of(analysis: dict) -> dict:
    """The table entries of one analysed run: drift, time to failure, RDF error, D."""
    a = analysis["analysis"]
    e, st, r, m, v = a["energy"], a["stability"], a["rdf"], a["msd"], a["vdos"]
    fails = [s["time_to_failure_ps"] for s in st["per_seed"] if not s["stable"]]
    return {
        "label": a["label"], "protocol": a["protocol"], "temperature_K": (a.get("parameters") or {}).get("temperature"),
        "drift_meV_per_atom_per_ps": e.get("drift_meV_per_atom_per_ps"),
        "drift_is_conservation_test": e.get("drift_is_conservation_test"),
        "kinetic_drift_meV_per_atom_per_ps": e.get("kinetic_drift_meV_per_atom_per_ps"),
        "temperature_drift_K_per_ps": e.get("temperature_drift_K_per_ps"),
        "temperature_mean_K": e.get("temperature_mean_K"),
        "n_stable": st["n_stable"], "n_seeds": st["n_seeds"], "times_to_failure_ps": sorted(fails),
        "duration_ps": max(s["duration_ps"] for s in st["per_seed"]),
        "rdf_error": r.get("error_vs_reference"), "rdf_error_unit": r.get("error_unit"),
        "D_A2_per_ps": m.get("D_A2_per_ps"), "D_reference_A2_per_ps": m.get("D_reference_A2_per_ps"),
        "vdos_difference": v.get("difference_vs_reference"), "vdos_peak_cm1": v.get("peak_cm1"),
        "reference_vdos_peak_cm1": v.get("reference_peak_cm1"),
    }


def fmt(x, spec=".3g") -> str:
    return "—" if x is None else format(x, spec)


def table(rows: list[dict], system: str) -> list[str]:
    """Markdown rows: model × system × {drift, time to failure, RDF error, D vs reference}."""
    out = []
    for r in rows:
        drift = fmt(r["drift_meV_per_atom_per_ps"], "+.3g")
        if r["drift_meV_per_atom_per_ps"] is None:
            drift = f"n/a (direct forces; KE drift {fmt(r['kinetic_drift_meV_per_atom_per_ps'], '+.3g')})"
        elif r["drift_is_conservation_test"] is False:
            drift += " (thermostatted)"
        ttf = f"{r['n_stable']}/{r['n_seeds']} stable over {r['duration_ps']:.3g} ps"
        if r["times_to_failure_ps"]:
            ttf += "; failed at " + ", ".join(f"{t:.3g}" for t in r["times_to_failure_ps"]) + " ps"
        d = fmt(r["D_A2_per_ps"]) + (f" vs {fmt(r['D_reference_A2_per_ps'])}" if r["D_reference_A2_per_ps"] is not None
                                     else "")
        out.append(f"| {r['label']} | {system} | {r['protocol']} {fmt(r['temperature_K'], 'g')} K | {drift} | {ttf} | "
                   f"{fmt(r['rdf_error'])} | {d} | {fmt(r['vdos_difference'])} |")
    return out


TABLE_HEADER = ["| model | system | protocol | drift (meV/atom/ps) | time to failure | RDF error vs ref. | "
                "D (Å²/ps) vs ref. | VDOS difference |", "|---|---|---|---|---|---|---|---|"]


def clean(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
