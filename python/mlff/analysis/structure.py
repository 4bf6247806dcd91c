"""Structure along a trajectory: radial distribution, bonds, the stability verdict.

* g(r) of periodic systems: ``freud.density.RDF`` (minimum image in the frame's cell,
  triclinic allowed), normalised with ``normalization_mode="finite_size"`` so that an
  ideal gas of any size gives 1 (as LAMMPS's ``compute rdf``, which divides by
  ``N (N - 1)`` pairs), accumulated over frames. Its cumulative coordination ``n(r)``
  comes with it.
* Molecules (no cell): the intramolecular pair-distance distribution ``P(r)`` of all
  atom pairs, from the pair counts of the same freud computation in a non-periodic box,
  normalised to ``∫ P dr = 1`` (1/Å). A bulk density does not exist for one molecule, so
  ``P(r)`` replaces g(r); model and reference are compared on the same quantity.
* Bonds: pairs closer than 1.2 × the sum of their covalent radii in the starting geometry
  (``ase.neighborlist.natural_cutoffs`` and ``neighbor_list``, Cordero et al., Dalton
  Trans. 2008). A run fails at the first frame where a bond length deviates from its
  starting value by more than 0.5 Å, a position, force or per-atom energy is not
  finite, or at the last frame when the MD program stopped early (an error, or its own
  bond check halting the run).
"""

from __future__ import annotations

import math

import numpy as np

from . import AnalysisError
from .trajectory import Trajectory

#: A bond is broken when its length deviates from the starting length by more than this (Å).
BOND_TOLERANCE = 0.5


def _box(cell: np.ndarray, periodic: bool):
    """A freud box for a cell (rows a, b, c; any orientation is rotated to freud's upper
    triangular form by freud.box.Box.from_matrix on the transposed cell)."""
    import freud

    if periodic:
        return freud.box.Box.from_matrix(np.asarray(cell, dtype=np.float64).T)
    box = freud.box.Box.cube(1.0)
    box.periodic = False
    return box


def _lammps_frame(cell: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Positions expressed in freud's frame of ``cell`` (QR rotation: ``a`` along x, ``b``
    in the xy plane), which is what ``Box.from_matrix`` assumes of the points."""
    q, r = np.linalg.qr(np.asarray(cell, dtype=np.float64).T)
    s = np.sign(np.diag(r))
    s[s == 0] = 1.0
    return positions @ (q * s)


def max_rdf_radius(cells: np.ndarray) -> float:
    """Largest r (Å) a minimum-image g(r) can reach in all of ``cells`` [F, 3, 3]: half the
    smallest perpendicular width of any cell, less 1e-6."""
    widths = [abs(np.linalg.det(c)) / np.linalg.norm(np.cross(c[(k + 1) % 3], c[(k + 2) % 3]))
              for c in cells for k in range(3)]
    return 0.5 * min(widths) - 1e-6


def rdf(traj: Trajectory, r_max: float | None = None, bins: int = 200, frames: slice | np.ndarray | None = None,
        r_max_default: float = 8.0) -> dict:
    """Radial distribution of ``traj`` over ``frames`` (default all).

    Periodic: ``{"kind": "g(r)", "r": [bins] Å, "g": [bins], "n_r": [bins] (cumulative
    coordination), "r_max"}``; ``r_max`` defaults to ``min(r_max_default, half the
    smallest cell width)``, and a larger one raises :class:`AnalysisError`.
    Molecule: ``{"kind": "P(r)", "r", "g": P(r) [bins] 1/Å (∫ P dr = 1), "r_max"}``,
    ``r_max`` defaulting to 1.5 × the largest pair distance of the first frame.
    Source: freud.density.RDF (Ramasubramani et al., Comput. Phys. Commun. 254, 107275 (2020)).
    """
    import freud

    idx = np.arange(traj.n_frames)[frames] if frames is not None else np.arange(traj.n_frames)
    idx = np.atleast_1d(idx)
    if len(idx) == 0:
        raise AnalysisError(f"{traj.source}: no frames to compute a radial distribution from")
    if traj.n_atoms < 2:
        raise AnalysisError(f"{traj.source}: a radial distribution needs at least 2 atoms")
    if traj.periodic:
        limit = max_rdf_radius(traj.cells[idx])
        if r_max is None:
            r_max = min(r_max_default, limit)
        elif r_max > limit + 1e-9:
            raise AnalysisError(f"{traj.source}: r_max {r_max:g} Å exceeds half the cell width ({limit:.3f} Å)")
        calc = freud.density.RDF(bins=bins, r_max=r_max, normalization_mode="finite_size")
        for k in idx:
            box = _box(traj.cells[k], True)
            calc.compute((box, _lammps_frame(traj.cells[k], traj.positions[k])), reset=False)
        return {"kind": "g(r)", "r": np.array(calc.bin_centers), "g": np.array(calc.rdf), "n_r": np.array(calc.n_r),
                "r_max": float(r_max), "bins": bins, "frames": len(idx)}
    if r_max is None:
        x = traj.positions[idx[0]]
        r_max = 1.5 * float(np.max(np.linalg.norm(x[:, None] - x[None], axis=-1)))
        r_max = math.ceil(r_max)
    calc = freud.density.RDF(bins=bins, r_max=r_max)
    box = _box(None, False)
    for k in idx:
        calc.compute((box, traj.positions[k]), reset=False)
    counts = np.array(calc.bin_counts, dtype=np.float64)
    edges = np.array(calc.bin_edges)
    total = counts.sum()
    if total == 0:
        raise AnalysisError(f"{traj.source}: no atom pairs within {r_max:g} Å")
    return {"kind": "P(r)", "r": np.array(calc.bin_centers), "g": counts / (total * np.diff(edges)),
            "r_max": float(r_max), "bins": bins, "frames": len(idx)}


def rdf_difference(r: np.ndarray, g: np.ndarray, g_ref: np.ndarray) -> float:
    """Integrated absolute difference ``∫ |g - g_ref| dr`` (trapezoid rule) on a common
    grid ``r`` [bins] Å: in Å for g(r), dimensionless (0 to 2) for P(r)."""
    if np.shape(g) != np.shape(g_ref) or np.shape(g) != np.shape(r):
        raise AnalysisError(f"radial distributions on different grids ({np.shape(g)} vs {np.shape(g_ref)} bins)")
    return float(np.trapezoid(np.abs(np.asarray(g) - np.asarray(g_ref)), r))


#: Bonds are pairs closer than this times the sum of covalent radii: room for bonds a little
#: longer than the sum (C-H is 1.09 Å, the radii sum 1.07 Å), far below second neighbours.
BOND_RADIUS_FACTOR = 1.2


def find_bonds(atoms, mult: float = BOND_RADIUS_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """Bonds of a structure: pairs ``i < j`` closer than ``mult`` × (sum of covalent radii),
    with minimum images in a periodic cell. Returns ``(pairs [B, 2] int, lengths [B] Å)``.
    Source: ``ase.neighborlist.natural_cutoffs`` (covalent radii, Cordero et al. 2008)."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j, d = neighbor_list("ijd", atoms, natural_cutoffs(atoms, mult=mult))
    keep = i < j
    order = np.lexsort((j[keep], i[keep]))
    pairs = np.stack([i[keep], j[keep]], axis=1)[order].astype(np.int64)
    return pairs.reshape(-1, 2), d[keep][order]


def bond_lengths(positions: np.ndarray, pairs: np.ndarray, cells: np.ndarray | None = None,
                 pbc=False) -> np.ndarray:
    """Bond lengths ``[F, B]`` (Å) of ``pairs`` [B, 2] in frames ``positions`` [F, N, 3];
    minimum image in ``cells`` [F, 3, 3] when ``pbc`` (freud.box.Box.compute_distances)."""
    positions = np.asarray(positions, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not np.all(pbc):
        return np.linalg.norm(positions[:, pairs[:, 1]] - positions[:, pairs[:, 0]], axis=-1)
    out = np.empty((len(positions), len(pairs)))
    for k, (x, cell) in enumerate(zip(positions, cells)):
        x = _lammps_frame(cell, x)
        out[k] = _box(cell, True).compute_distances(x[pairs[:, 0]], x[pairs[:, 1]])
    return out


def bond_deviation(positions: np.ndarray, pairs: np.ndarray, lengths: np.ndarray, cells: np.ndarray | None = None,
                   pbc=False) -> np.ndarray:
    """Largest ``|d_b(t) - d_b(0)|`` over bonds, per frame: ``[F]`` Å (0 if there are no bonds;
    NaN propagates)."""
    if len(pairs) == 0:
        return np.zeros(len(positions))
    return np.max(np.abs(bond_lengths(positions, pairs, cells, pbc) - np.asarray(lengths)[None]), axis=1)


def stability_verdict(traj: Trajectory, pairs: np.ndarray, lengths: np.ndarray,
                      tolerance: float = BOND_TOLERANCE) -> dict:
    """Stability of one run: ``{"stable": bool, "time_to_failure_ps": float | None,
    "failure_frame": int | None, "reason": str, "max_bond_deviation_A": [F]}``.

    Fails at the first frame with a bond deviation > ``tolerance`` (Å, strictly), or with a
    non-finite position, velocity, force or per-atom energy; or, when the run's record
    (``traj.run_info``) says the MD program stopped early (an error or its own halt), at
    the last frame. ``time_to_failure_ps`` is the frame's time from the start of the
    recorded run.
    """
    dev = bond_deviation(traj.positions, pairs, lengths, traj.cells, traj.pbc)
    bad = ~np.isfinite(dev) | (dev > tolerance)
    reasons = {}
    for name in ("positions", "velocities", "forces", "energies"):
        arr = getattr(traj, name)
        if arr is not None:
            finite = np.isfinite(arr.reshape(traj.n_frames, -1)).all(axis=1)
            for k in np.flatnonzero(~finite):
                reasons.setdefault(int(k), f"non-finite {name}")
            bad |= ~finite
    result = {"stable": True, "time_to_failure_ps": None, "failure_frame": None, "reason": "stable",
              "max_bond_deviation_A": dev, "n_bonds": int(len(pairs)), "tolerance_A": tolerance}
    if bad.any():
        k = int(np.argmax(bad))
        reason = reasons.get(k) or f"bond deviation {dev[k]:.3f} Å > {tolerance} Å"
        if reasons.get(k) is None:
            b = int(np.nanargmax(np.abs(bond_lengths(traj.positions[k:k + 1], pairs, traj.cells[k:k + 1], traj.pbc)[0]
                                        - lengths)))
            i, j = pairs[b]
            reason += f" (atoms {i} {traj.symbols[i]} - {j} {traj.symbols[j]})"
        result.update(stable=False, time_to_failure_ps=float(traj.time_ps[k] - traj.time_ps[0]), failure_frame=k,
                      reason=reason)
        return result
    info = traj.run_info or {}
    why = info.get("error") or info.get("halted")
    if not why and info.get("returncode") not in (None, 0):
        why = f"exit status {info['returncode']}"
    if why:
        k = traj.n_frames - 1
        result.update(stable=False, time_to_failure_ps=float(traj.time_ps[k] - traj.time_ps[0]), failure_frame=k,
                      reason=f"the MD stopped early: {why}")
    return result
