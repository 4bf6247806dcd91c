"""Trajectory readers: everything ``mlff analyze`` reads becomes one :class:`Trajectory`.

Inputs:

* a run directory of ``mlff md`` (``summary.json``; one trajectory per seed), LAMMPS or ASE;
* a LAMMPS text dump (``*.dump``, ``*.lammpstrj``; read with ASE's ``lammps-dump-text``
  reader) with the thermo output of the ``log.lammps`` beside it when present;
* any ASE-readable trajectory (extxyz, ``.traj``), with the ``thermo.csv`` beside it when
  present.

Units: time ps, positions Å, velocities Å/ps, forces eV/Å, energies eV, masses amu.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import units
from ase.data import atomic_masses, atomic_numbers

from . import AnalysisError

#: ASE velocity unit (Å per ASE time unit) in Å/ps.
ASE_VELOCITY_TO_A_PER_PS = 1000.0 * units.fs

#: LAMMPS thermo keywords (units metal) -> Trajectory.thermo keys.
THERMO_COLUMNS = {"Step": "step", "Time": "time_ps", "Temp": "temp_K", "PotEng": "pe_eV", "KinEng": "ke_eV",
                  "TotEng": "etotal_eV", "Press": "press_bar", "Volume": "volume_A3"}

DUMP_SUFFIXES = (".dump", ".lammpstrj")


@dataclass
class Trajectory:
    """One MD trajectory as numpy arrays (F frames, N atoms).

    ``time_ps`` [F]; ``positions`` [F, N, 3] Å as stored (wrapped or not); ``cells``
    [F, 3, 3] Å (rows a, b, c; for a molecule the box of the file, unused); ``pbc`` [3];
    ``symbols`` [N]; ``masses`` [N] amu; optional ``velocities`` [F, N, 3] Å/ps,
    ``forces`` [F, N, 3] eV/Å, ``energies`` [F, N] eV (per-atom potential energies),
    ``potential_energy`` [F] eV, ``images`` [F, N, 3] int (periodic image flags);
    ``thermo``: ``{"time_ps", "temp_K", "pe_eV", "ke_eV", "etotal_eV", ...}`` arrays from
    the MD program's own output (LAMMPS log or thermo.csv), or None. ``has_energy`` is
    false for a direct-force model. ``meta`` is the run's summary.json (or {}),
    ``run_info`` the entry of this seed.
    """

    time_ps: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    symbols: list[str]
    masses: np.ndarray
    velocities: np.ndarray | None = None
    forces: np.ndarray | None = None
    energies: np.ndarray | None = None
    potential_energy: np.ndarray | None = None
    images: np.ndarray | None = None
    thermo: dict | None = None
    label: str = ""
    source: str = ""
    has_energy: bool = True
    ensemble: str | None = None
    meta: dict = field(default_factory=dict)
    run_info: dict | None = None

    @property
    def n_frames(self) -> int:
        return len(self.time_ps)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def periodic(self) -> bool:
        return bool(np.all(self.pbc))

    def require(self, name: str, purpose: str) -> np.ndarray:
        """The array ``name``, or :class:`AnalysisError` naming the file and ``purpose``."""
        value = getattr(self, name)
        if value is None:
            columns = {"velocities": "velocities (vx vy vz / momenta)", "forces": "forces (fx fy fz / f_fpot[*])",
                       "energies": "per-atom energies (c_pe / energies)"}.get(name, name)
            raise AnalysisError(f"{self.source} has no {columns}; {purpose} needs them")
        return value

    def slice(self, stop: int) -> "Trajectory":
        """The first ``stop`` frames (thermo rows up to the same time)."""
        cut = {k: (v[:stop] if isinstance(v, np.ndarray) and v.ndim and len(v) == self.n_frames else v)
               for k, v in self.__dict__.items() if k not in ("pbc", "masses", "symbols", "thermo")}
        thermo = None
        if self.thermo is not None and stop > 0:
            keep = self.thermo["time_ps"] <= self.time_ps[stop - 1] + 1e-9
            thermo = {k: v[keep] for k, v in self.thermo.items()}
        return Trajectory(**{**cut, "pbc": self.pbc, "masses": self.masses, "symbols": self.symbols,
                             "thermo": thermo})


def element_masses(symbols, masses_by_element: dict | None = None) -> np.ndarray:
    """Masses [N] amu: from ``masses_by_element`` where given, else ASE's atomic masses."""
    masses_by_element = masses_by_element or {}
    return np.array([masses_by_element.get(s, atomic_masses[atomic_numbers[s]]) for s in symbols], dtype=np.float64)


def _stack(values: list, name: str, path: Path) -> np.ndarray | None:
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        raise AnalysisError(f"{path}: {name} present in some frames only")
    return np.array(values, dtype=np.float64)


def complete_dump_frames(path: Path) -> int:
    """Number of frames of a text dump, less an incomplete last one (a run that stopped while
    writing): the last frame must hold its NUMBER OF ATOMS rows after ITEM: ATOMS."""
    count, n_atoms, rows, expect, line = 0, 0, 0, None, b"\n"
    with open(path, "rb") as fd:
        for line in fd:
            if line.startswith(b"ITEM: "):
                if line.startswith(b"ITEM: TIMESTEP"):
                    count += 1
                    rows, expect = 0, None
                elif line.startswith(b"ITEM: NUMBER OF ATOMS"):
                    expect = "n"
                elif line.startswith(b"ITEM: ATOMS"):
                    rows, expect = 0, "rows"
                continue
            if expect == "n":
                n_atoms, expect = int(line.split()[0]), None
            elif expect == "rows":
                rows += 1
    if count and (rows < n_atoms or not line.endswith(b"\n")):
        count -= 1
    return count


def read_lammps_dump(path: str | Path, timestep_fs: float | None, masses: dict | None = None) -> Trajectory:
    """A LAMMPS text dump (ASE's ``lammps-dump-text`` reader), frames sorted by atom id.

    Columns used: ``element`` (else ``type``, as element index of ``masses`` order), ``x y z``
    (or ``xu``...), ``vx vy vz`` (Å/ps), forces ``f_fpot[1..3]`` (mlff md's forces of the
    potential alone) or ``fx fy fz``, per-atom energy ``c_pe``, image flags
    ``c_img[1..3]``. Time = ``timestep × timestep_fs`` (ps); frames repeating a time
    step are dropped; an incomplete last frame (a crashed run) is ignored. Raises
    :class:`AnalysisError` if the file is missing or has no complete frame, or
    ``timestep_fs`` is None.
    """
    from ase.io import iread

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"dump file {path} does not exist")
    if timestep_fs is None:
        raise AnalysisError(f"{path}: the MD time step is needed to turn dump steps into time: pass --timestep FS "
                            "or analyze the run directory (summary.json)")
    frames, seen = [], set()
    complete = complete_dump_frames(path)
    if complete == 0:
        raise AnalysisError(f"{path} holds no complete frame")
    from tqdm.auto import tqdm

    try:
        frames_in = iread(str(path), index=slice(0, complete), format="lammps-dump-text",
                          specorder=list(masses or {}) or None)
        # a bar for long dumps on a terminal (disable=None: off when output is not a TTY)
        for atoms in tqdm(frames_in, total=complete, desc=f"reading {path.name}", unit="frame", leave=False,
                          disable=None if complete > 2000 else True):
            step = atoms.info.get("timestep")
            if step in seen:
                continue
            seen.add(step)
            frames.append(atoms)
    except Exception as exc:
        raise AnalysisError(f"{path} is not a readable LAMMPS text dump: {type(exc).__name__}: {exc}") from None
    first = frames[0]
    symbols = first.get_chemical_symbols()
    n = len(symbols)
    frames = [f for f in frames if len(f) == n]

    def arrays(names):
        if not all(name in first.arrays for name in names):
            return None
        return np.array([np.stack([f.arrays[name] for name in names], axis=-1) for f in frames], dtype=np.float64)

    forces = arrays(["f_fpot[1]", "f_fpot[2]", "f_fpot[3]"])
    if forces is None and first.calc is not None and "forces" in first.calc.results:
        forces = np.array([f.calc.results["forces"] for f in frames])
    velocities = None
    if first.has("momenta"):
        velocities = np.array([f.get_velocities() for f in frames]) * ASE_VELOCITY_TO_A_PER_PS
    images = arrays(["c_img[1]", "c_img[2]", "c_img[3]"])
    energies = np.array([f.arrays["c_pe"] for f in frames], dtype=np.float64) if "c_pe" in first.arrays else None
    steps = np.array([f.info["timestep"] for f in frames], dtype=np.float64)
    pbc = np.asarray(first.pbc, dtype=bool)
    return Trajectory(
        time_ps=steps * timestep_fs / 1000.0,
        positions=np.array([f.positions for f in frames]),
        cells=np.array([f.cell.array for f in frames]),
        pbc=pbc,
        symbols=symbols,
        masses=element_masses(symbols, masses),
        velocities=velocities,
        forces=forces,
        energies=energies,
        potential_energy=energies.sum(axis=1) if energies is not None else None,
        images=images.astype(np.int64) if images is not None and pbc.all() else None,
        source=str(path),
    )


def read_lammps_log(path: str | Path) -> dict:
    """Thermo output of a LAMMPS log (units metal) as ``{key: [rows]}`` arrays, keys from
    :data:`THERMO_COLUMNS` (others lower-cased).

    Tables after the line ``MLFF_PRODUCTION ...`` (printed by the mlff md templates) are
    joined; without it, the last table is used. A table ends at ``Loop time`` or at the
    end of the file (a run that stopped); rows repeating a step are dropped; ``nan``/``inf``
    values are kept. Raises :class:`AnalysisError` naming the file if it is missing or has
    no thermo table.
    """
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"log file {path} does not exist")
    lines = path.read_text(errors="replace").splitlines()
    marker = max((k for k, line in enumerate(lines) if line.startswith("MLFF_PRODUCTION")), default=None)
    tables, k = [], 0 if marker is None else marker
    while k < len(lines):
        header = lines[k].split()
        if header[:1] == ["Step"]:
            rows = []
            k += 1
            while k < len(lines) and not lines[k].startswith("Loop time"):
                words = lines[k].split()
                if len(words) == len(header) and words[0].lstrip("-").isdigit():
                    try:
                        rows.append([float(w) for w in words])
                    except ValueError:
                        pass
                if words[:1] == ["Step"] or "ERROR" in lines[k]:
                    break
                k += 1
            if rows:
                tables.append((header, np.array(rows)))
            continue
        k += 1
    if not tables:
        raise AnalysisError(f"{path} has no thermo output (no 'Step ...' table"
                            f"{' after MLFF_PRODUCTION' if marker is not None else ''})")
    if marker is None:
        tables = tables[-1:]
    header = tables[0][0]
    if any(h != header for h, _ in tables):
        raise AnalysisError(f"{path}: the thermo tables of the production run have different columns")
    data = np.concatenate([t for _, t in tables])
    _, first = np.unique(data[:, 0], return_index=True)
    data = data[np.sort(first)]
    return {THERMO_COLUMNS.get(h, h.lower()): data[:, c] for c, h in enumerate(header)}


def read_thermo_csv(path: str | Path) -> dict:
    """``thermo.csv`` of an ASE reference run as ``{column: array}``; :class:`AnalysisError`
    if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"thermo file {path} does not exist")
    with open(path, newline="") as fd:
        rows = list(csv.DictReader(fd))
    if not rows:
        raise AnalysisError(f"{path} has no thermo rows")
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def read_ase_trajectory(path: str | Path, frame_interval_ps: float | None = None,
                        masses: dict | None = None) -> Trajectory:
    """Any ASE-readable trajectory (extxyz, .traj). Time from ``info["time_ps"]`` or
    ``info["md_time_fs"]`` (mlff data), else frame index × ``frame_interval_ps``;
    velocities from momenta; forces, per-atom ``energies`` and the energy from the
    attached calculator results. Raises :class:`AnalysisError` naming the file if it
    cannot be read, is empty, or has no time information and no ``frame_interval_ps``."""
    from ase.io import iread

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"trajectory file {path} does not exist")
    try:
        frames = list(iread(str(path), index=":"))
    except Exception as exc:
        raise AnalysisError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not frames:
        raise AnalysisError(f"{path} holds no frame")
    first = frames[0]
    if "time_ps" in first.info:
        time_ps = np.array([f.info["time_ps"] for f in frames], dtype=np.float64)
    elif "md_time_fs" in first.info:
        time_ps = np.array([f.info["md_time_fs"] for f in frames], dtype=np.float64) / 1000.0
    elif frame_interval_ps is not None:
        time_ps = np.arange(len(frames)) * float(frame_interval_ps)
    else:
        raise AnalysisError(f"{path}: frames carry no time (info time_ps or md_time_fs); pass --frame-interval PS")

    def results(key):
        return [f.calc.results.get(key) if f.calc is not None else None for f in frames]

    symbols = first.get_chemical_symbols()
    return Trajectory(
        time_ps=time_ps,
        positions=np.array([f.positions for f in frames]),
        cells=np.array([f.cell.array for f in frames]),
        pbc=np.asarray(first.pbc, dtype=bool),
        symbols=symbols,
        masses=element_masses(symbols, masses),
        velocities=(np.array([f.get_velocities() for f in frames]) * ASE_VELOCITY_TO_A_PER_PS
                    if all(f.has("momenta") for f in frames) else None),
        forces=_stack(results("forces"), "forces", path),
        energies=_stack(results("energies"), "per-atom energies", path),
        potential_energy=_stack(results("energy"), "energy", path),
        source=str(path),
    )


def _from_summary(run_dir: Path, summary: dict) -> list[Trajectory]:
    out = []
    masses = summary.get("masses")
    pot = summary.get("potential", {})
    for entry in summary.get("runs", []):
        path = run_dir / entry["trajectory"]
        if path.suffix in DUMP_SUFFIXES:
            traj = read_lammps_dump(path, summary.get("timestep_fs"), masses)
            traj.thermo = read_lammps_log(run_dir / entry["log"])
        else:
            traj = read_ase_trajectory(path, summary.get("frame_interval_ps"), masses)
            traj.thermo = read_thermo_csv(run_dir / entry["thermo"])
        traj.label = pot.get("label", run_dir.name)
        traj.has_energy = bool(pot.get("has_energy", True))
        traj.ensemble = summary.get("ensemble")
        traj.meta = {**summary, "_root": str(run_dir)}
        traj.run_info = entry
        if not traj.has_energy:
            traj.energies = traj.potential_energy = None
        out.append(traj)
    if not out:
        raise AnalysisError(f"{run_dir / 'summary.json'} lists no runs")
    return out


def load_run(path: str | Path, timestep_fs: float | None = None, frame_interval_ps: float | None = None,
             label: str | None = None) -> list[Trajectory]:
    """Everything in ``path`` as trajectories (one per seed of an ``mlff md`` run).

    ``path``: a run directory (``summary.json``), a LAMMPS dump (``log.lammps`` beside it
    is read when present; the ``summary.json`` of the run above it gives the time step),
    or an ASE-readable file (``thermo.csv`` beside it when present). ``timestep_fs``
    (dumps) and ``frame_interval_ps`` (files without times) are needed only without a
    summary. Raises :class:`AnalysisError` naming the path when it holds no trajectory.
    """
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"{path} does not exist")
    if path.is_dir():
        if (path / "summary.json").is_file():
            trajs = _from_summary(path, json.loads((path / "summary.json").read_text()))
        else:
            found = sorted(p for p in path.iterdir() if p.suffix in DUMP_SUFFIXES or p.suffix == ".extxyz")
            if not found:
                raise AnalysisError(f"{path} has no summary.json, LAMMPS dump (*.dump, *.lammpstrj) or *.extxyz")
            trajs = load_run(found[0], timestep_fs, frame_interval_ps, label)
    else:
        summary_path = next((p / "summary.json" for p in (path.parent, path.parent.parent)
                             if (p / "summary.json").is_file()), None)
        summary = json.loads(summary_path.read_text()) if summary_path else {}
        masses = summary.get("masses")
        if path.suffix in DUMP_SUFFIXES or path.name.startswith("dump."):
            traj = read_lammps_dump(path, timestep_fs or summary.get("timestep_fs"), masses)
            if (path.parent / "log.lammps").is_file():
                traj.thermo = read_lammps_log(path.parent / "log.lammps")
        else:
            traj = read_ase_trajectory(path, frame_interval_ps or summary.get("frame_interval_ps"), masses)
            if (path.parent / "thermo.csv").is_file():
                traj.thermo = read_thermo_csv(path.parent / "thermo.csv")
        if summary:
            pot = summary.get("potential", {})
            traj.label, traj.has_energy = pot.get("label", ""), bool(pot.get("has_energy", True))
            traj.ensemble, traj.meta = summary.get("ensemble"), {**summary, "_root": str(summary_path.parent)}
            traj.run_info = next((r for r in summary.get("runs", [])
                                  if (summary_path.parent / r["trajectory"]).resolve() == path.resolve()), None)
        traj.label = traj.label or path.stem
        trajs = [traj]
    if label:
        for t in trajs:
            t.label = label
    return trajs


def read_ave_time_vector(path: str | Path) -> dict:
    """The last block of a ``fix ave/time ... mode vector`` file (e.g. ``lammps_rdf.dat`` of
    ``compute rdf``: columns row, r, g(r), coordination) as ``{"step", "rows": [R, C]}``.
    Raises :class:`AnalysisError` naming the file if it is missing or has no block."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path} does not exist")
    lines = [l.split() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]
    k, last = 0, None
    while k < len(lines):
        if len(lines[k]) == 2:
            step, n = int(lines[k][0]), int(lines[k][1])
            block = lines[k + 1:k + 1 + n]
            if len(block) == n:
                last = {"step": step, "rows": np.array(block, dtype=np.float64)}
            k += n + 1
        else:
            k += 1
    if last is None:
        raise AnalysisError(f"{path} holds no complete block of fix ave/time output")
    return last
