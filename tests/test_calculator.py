"""MLFFCalculator's own change detection: the same system changes as ASE's compare_atoms."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.calculator import compare_atoms

from mlff.calculator import MLFFCalculator
from mlff.errors import DataError
from mlff.graph import species_indices


def _edits():
    def move(a): a.positions[3, 1] += 1e-6
    def swap(a): a.numbers[[0, 7]] = a.numbers[[7, 0]]
    def cell(a): a.cell = np.diag([20.0, 20.0, 20.0])
    def pbc(a): a.pbc = [True, True, True]
    def charges(a): a.set_initial_charges(np.linspace(0, 1, len(a)))
    def magmoms(a): a.set_initial_magnetic_moments(np.ones(len(a)))
    def nothing(a): pass
    def tiny(a): a.positions[0, 0] += 1e-17  # below ASE's tolerance near 0, above it elsewhere
    return [move, swap, cell, pbc, charges, magmoms, nothing, tiny]


@pytest.mark.parametrize("edit", _edits(), ids=lambda f: f.__name__)
def test_check_state_reports_what_ase_reports(edit, deployed_toluene):
    calc = MLFFCalculator(deployed_toluene)
    atoms = molecule("C6H6")
    atoms.calc = calc
    atoms.get_forces()
    edit(atoms)
    ours, ase = set(calc.check_state(atoms)), set(compare_atoms(calc.atoms, atoms))
    # exact comparison: never fewer changes than ASE (no stale result); more only within ASE's tolerance
    assert ours >= ase
    assert ours - ase <= {"positions"}


def test_results_follow_the_atoms(deployed_toluene):
    """A moved atom gives new forces, an unmoved structure the cached ones, a fresh
    calculator the same numbers."""
    atoms = molecule("C6H6")
    atoms.calc = MLFFCalculator(deployed_toluene)
    f0 = atoms.get_forces()
    atoms.positions[2] += [0.05, 0.0, 0.0]
    f1 = atoms.get_forces()
    assert not np.allclose(f0, f1)
    fresh = atoms.copy()
    fresh.calc = MLFFCalculator(deployed_toluene)
    np.testing.assert_allclose(fresh.get_forces(), f1, rtol=0, atol=1e-12)
    atoms.cell = np.diag([30.0, 30.0, 30.0])  # a cell on a molecule changes nothing physical, but is a change
    assert "cell" in atoms.calc.check_state(atoms)


def test_species_indices_by_table_lookup():
    atoms = molecule("CH3CH2OH")
    np.testing.assert_array_equal(species_indices(atoms, ["H", "O", "C"]),
                                  [{"C": 2, "H": 0, "O": 1}[s] for s in atoms.get_chemical_symbols()])
    with pytest.raises(DataError, match=r"\['O'\] not among the model's species \['C', 'H'\]"):
        species_indices(atoms, ["C", "H"])
    cu = bulk("Cu")
    with pytest.raises(DataError, match=r"\['Cu'\]"):
        species_indices(cu, ["C", "H"])


@pytest.mark.parametrize("periodic", [False, True])
def test_neighbor_edges_match_the_graph_convention(periodic):
    """vesin's distance vectors are r_ij = x_j - x_i + S_ij @ cell, the graph's convention."""
    from mlff.graph import neighbor_edges, neighbor_graph

    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1)) if periodic else molecule("C6H6")
    atoms.rattle(0.05, seed=1)
    edge_index, edge_vec, distance = neighbor_edges(atoms, 5.0)
    reference_index, shift = neighbor_graph(atoms, 5.0)
    np.testing.assert_array_equal(edge_index, reference_index)
    expected = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shift
    np.testing.assert_allclose(edge_vec, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(distance, np.linalg.norm(expected, axis=1), rtol=0, atol=1e-12)
    assert edge_index.dtype == np.int64 and len(edge_index[0]) > 0


def test_edge_forces_sum_both_ends_of_every_edge():
    from mlff.calculator import edge_forces

    rng = np.random.default_rng(0)
    edge_index, grad = rng.integers(0, 7, (2, 50)), rng.standard_normal((50, 3))
    expected = np.zeros((7, 3))
    np.add.at(expected, edge_index[0], grad)
    np.subtract.at(expected, edge_index[1], grad)
    np.testing.assert_allclose(edge_forces(grad, edge_index, 7), expected, rtol=0, atol=1e-13)
    assert edge_forces(np.zeros((0, 3)), np.zeros((2, 0), dtype=np.int64), 3).shape == (3, 3)


def _sorted_edges(edge_index, edge_vec, distance):
    from mlff.neighbor_list import _edge_order

    order = _edge_order(edge_index, edge_vec)
    return edge_index[:, order], edge_vec[order], distance[order]


def test_edge_list_equals_vesins_python_api():
    """The calculator's direct call of vesin's C library gives vesin's own neighbour list: a
    molecule, a cell smaller than 2 r_max, the same list after the cell changes (the checked
    cell is cached), no neighbours at all; bad cells refused as vesin's path refuses them."""
    from mlff.graph import neighbor_edges
    from mlff.neighbor_list import EdgeList

    edges = EdgeList(5.0)
    assert edges.native  # the installed vesin's declarations are found and agree
    small = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    small.rattle(0.05, seed=3)
    strained = small.copy()
    strained.set_cell(small.cell.array * 1.02, scale_atoms=True)
    lonely = molecule("H2")
    lonely.positions[1] += [9.0, 0.0, 0.0]
    for atoms in (molecule("C6H6"), small, strained, small, lonely):
        mine, ref = edges(atoms), neighbor_edges(atoms, 5.0)
        assert mine[0].dtype == np.int64 and mine[0].flags.c_contiguous and mine[0].shape == ref[0].shape
        for a, b in zip(_sorted_edges(*mine), _sorted_edges(*ref)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert edges(lonely)[0].shape == (2, 0)
    flat = small.copy()
    flat.cell[2] = 0.0
    with pytest.raises(DataError, match="degenerate"):
        edges(flat)
    mixed = small.copy()
    mixed.pbc = [True, True, False]
    with pytest.raises(DataError, match="mixed periodicity"):
        edges(mixed)


def test_calculator_follows_new_numbers_and_cells(deployed_toluene):
    """The calculator keeps the species indices and the checked cell between calls: swapped
    elements and a new cell give what a fresh calculator gives."""
    atoms = molecule("C6H6", vacuum=6.0, pbc=True)
    atoms.calc = MLFFCalculator(deployed_toluene)
    atoms.get_forces()
    atoms.numbers[[0, 7]] = atoms.numbers[[7, 0]]  # a C and an H trade places
    swapped = atoms.get_forces()
    atoms.set_cell(atoms.cell.array * 0.45)  # a smaller box: images of the molecule within r_max
    shrunk = atoms.get_forces()
    assert not np.allclose(swapped, shrunk)
    for forces, cell in ((swapped, atoms.cell.array / 0.45), (shrunk, atoms.cell.array)):
        fresh = atoms.copy()
        fresh.set_cell(cell)
        fresh.calc = MLFFCalculator(deployed_toluene)
        np.testing.assert_allclose(fresh.get_forces(), forces, rtol=0, atol=1e-12)


def test_edge_list_without_vesins_c_declarations_uses_its_python_api(monkeypatch):
    """Another vesin release (no matching ctypes declarations): the public API, same list."""
    import mlff.neighbor_list as nl
    from mlff.graph import neighbor_edges

    monkeypatch.setattr(nl, "_vesin_c", lambda: None)
    edges = nl.EdgeList(5.0)
    assert not edges.native
    atoms = molecule("C6H6")
    for a, b in zip(edges(atoms), neighbor_edges(atoms, 5.0)):
        np.testing.assert_array_equal(a, b)
