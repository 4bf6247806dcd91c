"""Neighbor graphs of atomic structures, and batches of them for training.

The graph convention is the deployed-model contract (``docs/model_interface.md``):
``edge_index[0]`` is the centre atom ``i``, ``edge_index[1]`` the neighbour ``j``,
and the edge vector is ``r_ij = x_j - x_i + S_ij @ cell`` (Å), where ``S_ij`` is the
integer periodic image shift. Neighbor lists come from ``vesin``; periodic images
are handled for any cell size, including cells smaller than ``2 r_max``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from vesin import NeighborList

from .errors import DataError


def neighbor_graph(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Full neighbor list of ``atoms`` within ``r_max``.

    Returns ``edge_index`` (int64, ``[2, n_edges]``) and ``shift_vec`` (float64,
    ``[n_edges, 3]``, Å): the Cartesian image shift so that
    ``r_ij = pos[j] - pos[i] + shift_vec``. Both directions of every pair are listed.

    Raises ``DataError`` if a periodic structure has a degenerate cell.
    """
    edge_index, shifts, cell = neighbor_shifts(atoms, r_max)
    shift_vec = shift_vectors(shifts, cell) if bool(np.all(atoms.pbc)) else np.zeros((shifts.shape[0], 3))
    return edge_index, shift_vec


def shift_vectors(shifts: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Cartesian image shifts (Å, float64 ``[e, 3]``) of integer cell shifts ``S`` ``[e, 3]``."""
    return shifts.astype(np.float64) @ np.asarray(cell, dtype=np.float64)


def is_periodic(atoms: Atoms) -> bool:
    """``True`` for an all-periodic structure, ``False`` for a molecule; ``DataError`` for
    mixed periodicity (not supported)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise DataError(f"mixed periodicity {pbc.tolist()} is not supported; use all-periodic or non-periodic")
    return bool(pbc.all())


def checked_cell(cell: np.ndarray) -> np.ndarray:
    """A periodic cell as float64 ``[3, 3]`` (Å); ``DataError`` if it is degenerate (zero volume)."""
    cell = np.asarray(cell, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-9:
        raise DataError("periodic structure has a degenerate (zero-volume) cell")
    return cell


def _neighbor_list_inputs(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, bool]:
    """Positions (float64, contiguous), cell (zero for a molecule) and periodicity of
    ``atoms`` for vesin; ``DataError`` for mixed periodicity or a degenerate cell."""
    periodic = is_periodic(atoms)
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    if not periodic:
        return positions, np.zeros((3, 3)), False
    return positions, checked_cell(atoms.cell.array), True


def neighbor_shifts(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`neighbor_graph` with the image shifts as integers: ``edge_index`` (int64
    ``[2, e]``), ``S`` (int64 ``[e, 3]``, zero for a molecule) and the cell used (zero for a
    molecule), so that the shift vector is ``S @ cell``. ``mlff data pack`` stores these."""
    positions, cell, periodic = _neighbor_list_inputs(atoms)
    nl = NeighborList(cutoff=float(r_max), full_list=True)
    i, j, S = nl.compute(points=positions, box=cell, periodic=periodic, quantities="ijS")
    edge_index = np.stack([i, j]).astype(np.int64)
    shifts = S.astype(np.int64) if periodic else np.zeros((len(i), 3), dtype=np.int64)
    return edge_index, shifts, cell


def neighbor_edges(atoms: Atoms, r_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph as the deployed models take it: ``edge_index`` (int64 ``[2, e]``), edge
    vectors ``r_ij = x_j − x_i + S_ij @ cell`` (float64 ``[e, 3]``, Å) and their lengths
    (``[e]``, Å), all from vesin in one call (the calculator's path: no index arithmetic in
    Python). ``DataError`` as :func:`neighbor_graph`."""
    positions, cell, periodic = _neighbor_list_inputs(atoms)
    nl = NeighborList(cutoff=float(r_max), full_list=True)
    i, j, vec, dist = nl.compute(points=positions, box=cell, periodic=periodic, quantities="ijDd")
    return np.stack([i, j]).astype(np.int64), vec, dist


@dataclass
class Graph:
    """One structure (or a batch of structures) as tensors.

    Shapes: ``species`` ``[n]`` int64, ``pos`` ``[n, 3]`` Å, ``edge_index`` ``[2, e]``,
    ``shift_vec`` ``[e, 3]`` Å, ``batch`` ``[n]`` structure index per atom,
    ``n_atoms`` ``[b]``, ``cell`` ``[b, 3, 3]`` Å, ``volume`` ``[b]`` Å³ (0 if not periodic).
    Labels (may be ``None``): ``energy`` ``[b]`` eV, ``forces`` ``[n, 3]`` eV/Å,
    ``stress`` ``[b, 3, 3]`` eV/Å³ (ASE sign convention).
    """

    species: torch.Tensor
    pos: torch.Tensor
    edge_index: torch.Tensor
    shift_vec: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    cell: torch.Tensor
    volume: torch.Tensor
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    @property
    def n_structures(self) -> int:
        return int(self.n_atoms.shape[0])

    def edge_vec(self, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``r_ij = pos[j] - pos[i] + shift`` for every edge, ``[e, 3]``."""
        pos = self.pos if pos is None else pos
        return pos[self.edge_index[1]] - pos[self.edge_index[0]] + self.shift_vec

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> "Graph":
        """Floating-point fields cast to ``dtype`` (integer fields keep theirs), and every
        field moved to ``device``; ``None`` keeps the current one."""
        def cast(t, floating=True):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if floating else None)
        return Graph(cast(self.species, False), cast(self.pos), cast(self.edge_index, False), cast(self.shift_vec),
                     cast(self.batch, False), cast(self.n_atoms, False), cast(self.cell), cast(self.volume),
                     cast(self.energy), cast(self.forces), cast(self.stress))


@lru_cache(maxsize=64)
def _species_table(species: tuple[str, ...]) -> np.ndarray:
    """Atomic number -> index in ``species`` (-1 for an element the model lacks)."""
    table = np.full(len(chemical_symbols), -1, dtype=np.int64)
    for k, s in enumerate(species):
        table[atomic_numbers[s]] = k
    return table


def species_indices(atoms: Atoms, species: Sequence[str]) -> np.ndarray:
    """Index of each atom's element in ``species`` (int64 ``[n]``); ``DataError`` for an
    element the model lacks. A table lookup on the atomic numbers: this runs on every
    calculator call."""
    numbers = atoms.numbers
    table = _species_table(tuple(species))
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= len(table)):
        raise DataError(f"atomic number(s) outside 0-{len(table) - 1} in the structure: {sorted(set(numbers.tolist()))}")
    index = table[numbers]
    if (index < 0).any():
        missing = sorted({chemical_symbols[z] for z in numbers[index < 0]})
        raise DataError(f"element(s) {missing} not among the model's species {list(species)}")
    return index


def atoms_to_graph(atoms: Atoms, species: Sequence[str], r_max: float) -> Graph:
    """Graph of one structure, with its labels if ``atoms`` carries them
    (``info['energy']``, ``arrays['forces']``, ``info['stress']``; see ``mlff.data.io``)."""
    edge_index, shift_vec = neighbor_graph(atoms, r_max)
    n = len(atoms)
    periodic = bool(np.all(atoms.pbc))
    cell = np.asarray(atoms.cell.array, dtype=np.float64) if periodic else np.zeros((3, 3))
    volume = abs(float(np.linalg.det(cell))) if periodic else 0.0
    energy = atoms.info.get("energy")
    forces = atoms.arrays.get("forces")
    stress = atoms.info.get("stress")
    if stress is not None:
        stress = np.asarray(stress, dtype=np.float64)
        if stress.shape == (6,):  # Voigt xx yy zz yz xz xy
            xx, yy, zz, yz, xz, xy = stress
            stress = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    return Graph(
        species=torch.as_tensor(species_indices(atoms, species)),
        pos=t(atoms.positions),
        edge_index=torch.as_tensor(edge_index),
        shift_vec=t(shift_vec),
        batch=torch.zeros(n, dtype=torch.int64),
        n_atoms=torch.tensor([n]),
        cell=t(cell)[None],
        volume=torch.tensor([volume], dtype=torch.float64),
        energy=None if energy is None else torch.tensor([float(energy)], dtype=torch.float64),
        forces=None if forces is None else t(forces),
        stress=None if stress is None else t(stress)[None],
    )


def collate(graphs: Sequence[Graph]) -> Graph:
    """Concatenate graphs into one disconnected batch graph (node indices offset)."""
    offsets = np.cumsum([0] + [g.pos.shape[0] for g in graphs[:-1]])
    cat = lambda name: torch.cat([getattr(g, name) for g in graphs])  # noqa: E731
    labelled = lambda name: all(getattr(g, name) is not None for g in graphs)  # noqa: E731
    return Graph(
        species=cat("species"),
        pos=cat("pos"),
        edge_index=torch.cat([g.edge_index + int(o) for g, o in zip(graphs, offsets)], dim=1),
        shift_vec=cat("shift_vec"),
        batch=torch.cat([torch.full((g.pos.shape[0],), k, dtype=torch.int64, device=g.pos.device)
                         for k, g in enumerate(graphs)]),
        n_atoms=cat("n_atoms"),
        cell=cat("cell"),
        volume=cat("volume"),
        energy=cat("energy") if labelled("energy") else None,
        forces=cat("forces") if labelled("forces") else None,
        stress=cat("stress") if labelled("stress") else None,
    )
