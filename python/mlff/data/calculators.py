"""Reference (labelling) calculators, by name.

``make_calculator(name)`` returns a fresh ASE calculator. Names:

* ``xtb``, ``gfn2-xtb`` -- GFN2-xTB through tblite
  (``tblite.ase.TBLite(method="GFN2-xTB", verbosity=0)``); Bannwarth,
  Ehlert, Grimme, J. Chem. Theory Comput. 15, 1652 (2019). Molecules and
  periodic systems.
* ``gfn1-xtb`` -- GFN1-xTB through tblite.
* ``emt`` -- ASE's effective-medium theory (``ase.calculators.emt.EMT``);
  a toy potential for Al, Cu, Ag, Au, Ni, Pd, Pt (and H, C, N, O), fast.

New backends (e.g. EAM or Stillinger-Weber through LAMMPS) are added by
registering a zero-argument factory in :data:`CALCULATORS`.
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


#: name -> zero-argument factory returning a new ASE calculator.
CALCULATORS: dict[str, Callable[[], Calculator]] = {
    "xtb": _tblite("GFN2-xTB"),
    "gfn2-xtb": _tblite("GFN2-xTB"),
    "gfn1-xtb": _tblite("GFN1-xTB"),
    "emt": _emt,
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
