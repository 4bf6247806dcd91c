"""Write tests/data/molecules.extxyz: mlff's built-in molecules as RDKit builds them
(``mlff.data.molecules.molecule``, default seed). The tests read them from this file only
where RDKit is not installed (the lent GPU machine; see tests/conftest.py).

    python tests/data/make_molecules.py
"""

from pathlib import Path

from ase.io import write

from mlff.data.molecules import molecule, molecule_names

if __name__ == "__main__":
    out = Path(__file__).with_name("molecules.extxyz")
    write(out, [molecule(name) for name in molecule_names()], format="extxyz")
    print(f"wrote {out}")
