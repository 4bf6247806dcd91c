"""Starting geometries, built in code (no downloads).

Molecules are built with RDKit from SMILES: explicit hydrogens, ETKDGv3
embedding with a fixed random seed, then an MMFF94 relaxation (UFF if MMFF94
has no parameters for the molecule); of a few embedded conformers the one
with the lowest force-field energy is kept. They come back as non-periodic
:class:`ase.Atoms` (``pbc=False``, no cell) with positions in Å.

The molecule set is that of the MD17 benchmark (Chmiela et al., Sci. Adv. 3,
e1603015 (2017)); only the starting geometry is built here, the trajectories
are sampled by :mod:`mlff.data.generate`.

Two more molecules are built without RDKit: :func:`water` (ASE's G2 geometry) and
:func:`c20_fullerene` (a regular dodecahedron, the C20 cage of Schütt's thesis, seed 001 §5.3).

Crystals (:func:`bulk_cu`, :func:`diamond_si`) are built with
:func:`ase.build.bulk` in conventional cubic cells. :func:`au6_cluster` (an
octahedral Au6 cut from fcc Au) and :func:`pt110_au_slab` (Pt(110) with two Au
adatoms) are the systems of Zhang, "3 approaches to neural network
potentials" (2019), relaxed with ASE's EMT.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc110

from ..errors import DataError

#: SMILES of the built-in molecules. Malonaldehyde is the enol tautomer
#: ((Z)-3-hydroxyprop-2-enal, intramolecular O-H...O hydrogen bond) as in MD17.
SMILES: dict[str, str] = {
    "benzene": "c1ccccc1",
    "toluene": "Cc1ccccc1",
    "ethanol": "CCO",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "naphthalene": "c1ccc2ccccc2c1",
    "uracil": "O=C1C=CNC(=O)N1",
    "malonaldehyde": "O/C=C\\C=O",
    "salicylic_acid": "OC(=O)c1ccccc1O",
}

#: Lattice constants (Å) of the built-in crystals.
CU_LATTICE_A = 3.615
SI_LATTICE_A = 5.431

#: Seed of the ETKDG embedding: fixed so that every call gives the same geometry.
EMBED_SEED = 0xF00D
#: Conformers embedded per molecule; the lowest force-field energy one is kept
#: (e.g. the intramolecularly hydrogen-bonded form of malonaldehyde).
N_CONFORMERS = 10


def molecule_names() -> list[str]:
    """Names accepted by :func:`molecule`, sorted."""
    return sorted(SMILES)


def _normalise_name(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def molecule(name: str, seed: int = EMBED_SEED) -> Atoms:
    """Build a relaxed 3D geometry of a named molecule.

    Parameters
    ----------
    name
        One of :func:`molecule_names` (case-insensitive; ``-``, ``_`` and
        spaces are interchangeable, e.g. ``"salicylic acid"``).
    seed
        Random seed of the ETKDG embedding (fixed by default, so the result
        is deterministic).

    Returns
    -------
    ase.Atoms
        Non-periodic (``pbc=False``, zero cell), positions ``float64 [n, 3]``
        in Å, hydrogens explicit, heavy atoms first in SMILES order.
        ``atoms.info["name"]`` holds the canonical name.

    Raises
    ------
    DataError
        If the name is unknown (the message lists the valid names) or RDKit
        cannot embed the molecule.

    Notes
    -----
    RDKit: ``Chem.AddHs(Chem.MolFromSmiles(smiles))``, ETKDGv3 embedding of
    ``N_CONFORMERS`` conformers, MMFF94 optimisation (UFF as a fallback) of
    each, and the lowest-energy conformer is returned. The geometry is a force-field
    minimum, not a GFN2-xTB one; MD equilibration takes care of the rest.
    """
    key = _normalise_name(name)
    if key not in SMILES:
        raise DataError(
            f"unknown molecule {name!r}; valid names: {', '.join(molecule_names())}"
        )
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(SMILES[key]))
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    conf_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=N_CONFORMERS, params=params))
    if not conf_ids:
        raise DataError(f"RDKit could not embed molecule {name!r} (seed {seed})")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        results = AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    else:  # pragma: no cover - all built-in molecules have MMFF94 parameters
        results = AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=2000)
    # lowest force-field energy; ties (symmetry-equivalent conformers) -> first
    best = min(range(len(conf_ids)), key=lambda i: (round(results[i][1], 6), i))
    symbols = [a.GetSymbol() for a in mol.GetAtoms()]
    positions = np.asarray(mol.GetConformer(conf_ids[best]).GetPositions(), dtype=np.float64)
    atoms = Atoms(symbols=symbols, positions=positions, pbc=False)
    atoms.info["name"] = key
    return atoms


def _check_rep(n_rep: int) -> int:
    if int(n_rep) != n_rep or n_rep < 1:
        raise DataError(f"n_rep must be a positive integer, got {n_rep!r}")
    return int(n_rep)


def bulk_cu(n_rep: int = 2) -> Atoms:
    """fcc Cu, ``n_rep x n_rep x n_rep`` conventional cubic cells (a = 3.615 Å).

    Returns a periodic :class:`ase.Atoms` with ``4 * n_rep**3`` atoms (32 for
    ``n_rep=2``), positions in Å. Raises :class:`DataError` if ``n_rep < 1``.
    """
    n = _check_rep(n_rep)
    atoms = bulk("Cu", "fcc", a=CU_LATTICE_A, cubic=True).repeat((n, n, n))
    atoms.info["name"] = f"cu_fcc_{n}x{n}x{n}"
    return atoms


def diamond_si(n_rep: int = 2) -> Atoms:
    """Diamond-cubic Si, ``n_rep x n_rep x n_rep`` conventional cells (a = 5.431 Å).

    Returns a periodic :class:`ase.Atoms` with ``8 * n_rep**3`` atoms (64 for
    ``n_rep=2``), positions in Å. Raises :class:`DataError` if ``n_rep < 1``.
    """
    n = _check_rep(n_rep)
    atoms = bulk("Si", "diamond", a=SI_LATTICE_A, cubic=True).repeat((n, n, n))
    atoms.info["name"] = f"si_diamond_{n}x{n}x{n}"
    return atoms


#: fcc lattice constant of Au used to cut the Au6 cluster (ASE's reference value), Å.
AU_LATTICE_A = 4.08
#: Relaxation target (max force, eV/Å) of the EMT-relaxed starting structures.
RELAX_FMAX = 1e-4


def _relax_emt(atoms: Atoms, fmax: float = RELAX_FMAX) -> Atoms:
    """Relax with ASE's EMT and BFGS (deterministic; respects constraints); returns a copy without calculator."""
    from ase.calculators.emt import EMT
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = EMT()
    BFGS(work, logfile=None).run(fmax=fmax, steps=1000)
    out = work.copy()  # copies constraints, not the calculator
    out.positions = work.positions
    return out


def au6_cluster(relax: bool = True) -> Atoms:
    """Au6 octahedron cut from fcc Au, relaxed with EMT (non-periodic).

    The six face-centre atoms of one conventional fcc cell (a = 4.08 Å) form
    an octahedron in which every atom has four nearest neighbours at a/√2.
    Zhang (2019) "carved out" six atoms from crystalline Au and started NVE MD
    from there; the unrelaxed octahedron lies 2.2 eV above its EMT minimum,
    which NVE would turn into ~2000 K of heat in a 6-atom cluster, so by
    default it is relaxed (BFGS, max force 1e-4 eV/Å; the Oh shape is kept,
    edge 2.63 Å). ``relax=False`` returns the cut, unrelaxed octahedron.

    Returns a non-periodic :class:`ase.Atoms` (``pbc=False``, zero cell),
    centred at the origin, positions in Å.
    """
    h = AU_LATTICE_A / 2.0
    pos = np.array([[h, h, 0], [h, h, 2 * h], [h, 0, h], [h, 2 * h, h], [0, h, h], [2 * h, h, h]], dtype=np.float64)
    atoms = Atoms("Au6", positions=pos - pos.mean(axis=0), pbc=False)
    if relax:
        atoms = _relax_emt(atoms)
    atoms.info["name"] = "au6_octahedron"
    return atoms


#: Vacuum (Å) on each side of the Pt(110) slab given to ``ase.build.fcc110``.
SLAB_VACUUM = 8.0


def pt110_au_slab(relax: bool = True) -> Atoms:
    """Pt8Au2: a 2x2, two-layer Pt(110) slab with two Au adatoms, fully periodic.

    ``ase.build.fcc110("Pt", size=(2, 2, 2), vacuum=8.0)`` (a = 3.92 Å; the
    8 Pt atoms of Zhang's Pt8Au2) with one Au adatom in each of two hollow
    sites (``add_adsorbate(..., "Au", 1.5, "hollow", offset=(0, 0))`` and
    ``offset=(1, 1)``). The bottom layer is fixed with
    :class:`ase.constraints.FixAtoms` (it stays attached to the returned
    structure, for MD). The free atoms are relaxed with EMT (BFGS, max force
    1e-4 eV/Å) unless ``relax=False``.

    The cell is made periodic in z too (``pbc=True``): mlff's graph code does
    not accept mixed periodicity. The vacuum gap between the adatoms and the
    next periodic image of the slab is ~14.8 Å (> 2 x 6 Å), so nothing within
    6 Å interacts across it. Positions in Å; cell 7.84 x 5.54 x 17.39 Å.
    """
    from ase.constraints import FixAtoms

    slab = fcc110("Pt", size=(2, 2, 2), vacuum=SLAB_VACUUM)
    for offset in ((0, 0), (1, 1)):
        add_adsorbate(slab, "Au", 1.5, position="hollow", offset=offset)
    tags = slab.get_tags()
    bottom = tags == tags[: 8].max()  # fcc110 tags layers from the top (1); adatoms get tag 0
    slab.set_constraint(FixAtoms(mask=bottom))
    slab.pbc = True
    if relax:
        slab = _relax_emt(slab)
    slab.info.pop("adsorbate_info", None)
    slab.info["name"] = "pt110_2x2x2_au2"
    return slab


def water() -> Atoms:
    """H2O, ASE's G2 geometry (``ase.build.molecule("H2O")``: O-H 0.969 Å, H-O-H 103.9°),
    non-periodic, positions in Å; the water molecule of seed 002 §3.2."""
    from ase.build import molecule as g2_molecule

    atoms = g2_molecule("H2O")
    atoms.pbc = False
    atoms.info["name"] = "water"
    return atoms


#: C-C bond length (Å) of the regular dodecahedron :func:`c20_fullerene` starts from.
C20_BOND_A = 1.45


def c20_fullerene() -> Atoms:
    """The C20 fullerene cage of Schütt's thesis (seed 001 §5.3) as a regular dodecahedron
    with every C-C bond :data:`C20_BOND_A` long: the 20 vertices ``(±1, ±1, ±1)``,
    ``(0, ±1/φ, ±φ)``, ``(±1/φ, ±φ, 0)``, ``(±φ, 0, ±1/φ)`` (edge ``2/φ``), scaled.
    A relaxation breaks the symmetry into three distinct bond lengths (Jahn-Teller
    distortion; the thesis's DFT and SchNet: 1.41, 1.45 and 1.52 Å). Non-periodic, centred
    at the origin, positions in Å."""
    phi = (1.0 + 5.0 ** 0.5) / 2.0
    pts = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    for a in (-1, 1):
        for b in (-1, 1):
            pts += [(0, a / phi, b * phi), (a / phi, b * phi, 0), (a * phi, 0, b / phi)]
    positions = np.array(pts, dtype=np.float64) * (C20_BOND_A / (2.0 / phi))
    atoms = Atoms("C20", positions=positions, pbc=False)
    atoms.info["name"] = "c20_fullerene"
    return atoms
