"""Neighbour lists for repeated calls on one system (the ASE calculator): vesin's C
library called directly, with its options and result buffers kept between calls.

vesin's Python ``NeighborList.compute`` converts and checks every input and wraps every
output on each call. For a 15-atom molecule that is about 30 µs with warm caches and
120–200 µs in MD driven from Python, where other code runs between two calls, while
the C call itself takes a few µs. :class:`EdgeList` makes the same C call through
vesin's own ctypes declarations (so the structure layouts are those of the installed
library) and copies each result out once, in the layout the models take. It checks
itself against vesin's public API on a small periodic cell when created, and uses that
API instead (:func:`mlff.graph.neighbor_edges`) if the two disagree or vesin's
declarations are not there (another vesin release).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
from ase import Atoms

from .errors import DataError
from .graph import checked_cell, is_periodic, neighbor_edges

_REQUIRED_OPTIONS = {"cutoff", "full", "return_shifts", "return_distances", "return_vectors"}


def _vesin_c() -> tuple[Any, Any] | None:
    """(vesin's loaded library, its ctypes declarations), or ``None`` if either is missing."""
    try:
        from vesin import _c_api
        from vesin._c_lib import get_library

        lib = get_library()
    except (ImportError, OSError, AttributeError):
        return None
    fields = {name for name, _ in getattr(_c_api.VesinOptions, "_fields_", [])}
    if not _REQUIRED_OPTIONS <= fields or not hasattr(_c_api, "VesinDevice"):
        return None
    # the C signature this module calls, as vesin itself declares it (older releases differ)
    c = ctypes
    expected = [c.POINTER(c.c_double), c.c_size_t, c.POINTER(c.c_double), c.POINTER(c.c_bool), _c_api.VesinDevice,
                _c_api.VesinOptions, c.POINTER(_c_api.VesinNeighborList), c.POINTER(c.c_char_p)]
    if list(getattr(lib.vesin_neighbors, "argtypes", None) or []) != expected:
        return None
    return lib, _c_api


def _edge_order(edge_index: np.ndarray, edge_vec: np.ndarray) -> np.ndarray:
    """The edges sorted by centre, neighbour and vector (vesin's order is unspecified)."""
    v = np.round(edge_vec, 9)
    return np.lexsort((v[:, 2], v[:, 1], v[:, 0], edge_index[1], edge_index[0]))


class EdgeList:
    """The full neighbour list of one system within ``r_max`` (Å), computed again on each call.

    ``EdgeList(r_max)(atoms)`` returns what :func:`mlff.graph.neighbor_edges` returns:
    ``edge_index`` (int64 ``[2, e]``, centre then neighbour), edge vectors
    ``r_ij = x_j − x_i + S_ij @ cell`` (float64 ``[e, 3]``, Å) and their lengths (float64
    ``[e]``, Å), each a fresh array. ``native`` says whether vesin's C library is called
    directly (module docstring) or through its Python API.

    Raises ``DataError`` for mixed periodicity or a degenerate (zero-volume) cell.
    """

    def __init__(self, r_max: float):
        self.r_max = float(r_max)
        self.native = False
        c = _vesin_c()
        if c is None:
            return
        self._lib, api = c
        options = api.VesinOptions()
        options.cutoff, options.full = self.r_max, True
        options.return_shifts, options.return_distances, options.return_vectors = False, True, True
        self._options = options
        self._device = api.VesinDevice(api.VesinCPU, 0)
        self._result = api.VesinNeighborList()
        self._error = ctypes.c_char_p()
        # vesin_neighbors with the arrays declared as plain addresses: NumPy hands those over
        # without building a typed pointer per call
        void = ctypes.c_void_p
        prototype = ctypes.CFUNCTYPE(ctypes.c_int, void, ctypes.c_size_t, void, void, api.VesinDevice,
                                     api.VesinOptions, ctypes.POINTER(api.VesinNeighborList),
                                     ctypes.POINTER(ctypes.c_char_p))
        self._neighbors = prototype(("vesin_neighbors", self._lib))
        self._periodic = (ctypes.c_bool * 3)()
        self._no_cell = np.zeros((3, 3))
        self._cell = np.zeros((3, 3))  # the last periodic cell, already checked
        self.native = self._agrees_with_vesin()

    def __del__(self):
        if getattr(self, "_result", None) is not None:
            self._lib.vesin_free(ctypes.byref(self._result))

    def _agrees_with_vesin(self) -> bool:
        """One periodic and one open structure through both paths; ``False`` on any difference."""
        rng = np.random.default_rng(7)
        for pbc in (True, False):
            atoms = Atoms("Cu8", positions=rng.uniform(0, 3.0, (8, 3)), cell=3.0 * np.eye(3), pbc=pbc)
            try:
                mine, ref = self._native(atoms), neighbor_edges(atoms, self.r_max)
            except Exception:  # noqa: BLE001  (another library ABI: use the public API)
                return False
            if mine[0].shape != ref[0].shape:
                return False
            a, b = _edge_order(*mine[:2]), _edge_order(*ref[:2])
            if not all(np.allclose(x[..., a], y[..., b], atol=1e-12) for x, y in
                       ((mine[0], ref[0]), (mine[1].T, ref[1].T), (mine[2], ref[2]))):
                return False
        return True

    def __call__(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._native(atoms) if self.native else neighbor_edges(atoms, self.r_max)

    def _native(self, atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        periodic = is_periodic(atoms)
        box = self._no_cell
        if periodic:
            cell = atoms.cell.array
            if not np.array_equal(cell, self._cell):  # checked once per cell
                self._cell = checked_cell(cell).copy()
            box = self._cell
        self._periodic[0] = self._periodic[1] = self._periodic[2] = periodic
        positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
        # vesin's threads pay off only for large systems (15 atoms: 9 µs with them, 5.5 without)
        self._options.n_threads = 1 if len(positions) < 1000 else 0
        status = self._neighbors(positions.ctypes.data, len(positions), box.ctypes.data, ctypes.addressof(self._periodic),
                                 self._device, self._options, ctypes.byref(self._result), ctypes.byref(self._error))
        if status != 0:
            raise DataError(f"vesin could not build the neighbour list: {self._error.value.decode('utf8')}")
        r = self._result
        n = int(r.length)
        # copied out of vesin's buffers, which it reuses on the next call; the pairs are size_t,
        # read as int64 (indices < 2^63, the same bits)
        pairs, edge_vec, distance = np.empty((n, 2), dtype=np.int64), np.empty((n, 3)), np.empty(n)
        if n:
            for out, source in ((pairs, r.pairs), (edge_vec, r.vectors), (distance, r.distances)):
                ctypes.memmove(out.ctypes.data, source, out.nbytes)
        return pairs.T.copy(), edge_vec, distance
