"""Sanity checks of a labelled dataset before training (``mlff data check``).

Each check looks for a mistake that trains without an error but gives a wrong or
fragile model:

* ``energy-outlier`` / ``force-outlier``: a frame whose energy per atom, or largest
  force, lies far from the rest of its composition, by the robust z-score
  ``|x − median| / (1.4826 · MAD)`` (Iglewicz & Hoaglin 1993; 1.4826 makes the MAD a
  standard deviation for normal data). Forces are compared on a log scale.
* ``unit-mixup``: two groups of frames whose energies per atom, or RMS forces, differ
  by a factor close to a unit conversion (eV ↔ kcal/mol 23.06, Hartree ↔ kcal/mol
  627.5, Hartree ↔ eV 27.21, eV ↔ meV 1000, eV ↔ kJ/mol 96.49).
* ``duplicate``: identical frames (same species, positions, cell).
* ``close-contact``: two atoms closer than ``min_distance_factor`` times the sum of
  their covalent radii (ASE's Cordero et al. 2008 radii).
* ``missing-pbc`` / ``stress-without-pbc`` / ``degenerate-cell``: a non-periodic frame
  whose atoms fill a 3-D cell (a crystal written without ``pbc``), stress labels on a
  non-periodic frame, or a periodic frame without a proper cell.
* ``isolated-atom``: an atom with no neighbour within ``r_max``; the model sees it as a
  free atom and learns its label from the reference energy alone.

:func:`check_frames` returns the findings; :func:`write_report` writes them as
Markdown and JSON. ``mlff train`` runs the checks, warns and writes the report in its
run directory; ``--strict`` makes any finding an error.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

# (factor, what it converts), compared with the ratio of two groups of frames
UNIT_FACTORS = ((23.0605, "kcal/mol vs eV"), (627.5095, "kcal/mol vs Hartree"), (27.2114, "eV vs Hartree"),
                (1000.0, "meV vs eV (or kJ vs J)"), (96.4853, "kJ/mol vs eV"))
MAD_TO_SIGMA = 1.4826


@dataclass
class Finding:
    """One problem: ``kind`` (see the module docstring), the 0-based ``frames`` concerned
    and a sentence saying what is wrong."""

    kind: str
    message: str
    frames: list[int] = field(default_factory=list)


@dataclass
class CheckSettings:
    """Thresholds: ``r_max`` (Å) for isolated atoms; ``min_distance_factor`` × (sum of
    covalent radii) for close contacts; ``z_max`` robust z-score for outliers."""

    r_max: float = 5.0
    min_distance_factor: float = 0.5
    z_max: float = 8.0


def _composition(atoms: Atoms) -> str:
    return atoms.get_chemical_formula(mode="hill")


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = MAD_TO_SIGMA * np.median(np.abs(values - median))
    if mad == 0.0:
        spread = np.abs(values - median)
        return np.where(spread > 1e-12 * max(1.0, abs(median)), np.inf, 0.0)
    return (values - median) / mad


def _unit_gap(values: np.ndarray, tolerance: float,
              max_spread: float = math.inf) -> tuple[np.ndarray, float, list[str]] | None:
    """Split of positive ``values`` into two groups at the widest gap of ``log(values)``, if
    that gap is wider than a factor 3: ``(upper-group mask, ratio of the groups' medians,
    the unit factors within ``tolerance`` of the ratio (log scale), nearest first)``.
    If the log values spread inside a group by more than ``max_spread`` (standard
    deviation; e.g. energies near zero), the ratio cannot name a unit: no factors."""
    if len(values) < 2 or np.any(values <= 0):
        return None
    logs = np.log(values)
    order = np.argsort(logs)
    gaps = np.diff(logs[order])
    k = int(np.argmax(gaps))
    if gaps[k] < math.log(3.0):
        return None
    upper = np.zeros(len(values), dtype=bool)
    upper[order[k + 1:]] = True
    ratio = float(np.exp(np.median(logs[upper]) - np.median(logs[~upper])))
    if max(float(np.std(logs[upper])), float(np.std(logs[~upper]))) > max_spread:
        return upper, ratio, []
    near = sorted((abs(math.log(ratio / factor)), f"{factor:g} ({what})") for factor, what in UNIT_FACTORS)
    return upper, ratio, [text for dist, text in near if dist < tolerance]


def _frames_text(frames: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", … ({len(frames)} in all)" if len(frames) > limit else "")


def _label_checks(frames: Sequence[Atoms], settings: CheckSettings) -> list[Finding]:
    findings = []
    groups: dict[str, list[int]] = defaultdict(list)
    for k, atoms in enumerate(frames):
        groups[_composition(atoms)].append(k)
    for formula, idx in groups.items():
        idx = np.array(idx)
        energy = np.array([frames[k].info["energy"] / len(frames[k]) for k in idx])
        f_rms = np.array([math.sqrt(np.mean(frames[k].arrays["forces"] ** 2)) for k in idx])
        f_max = np.array([np.linalg.norm(frames[k].arrays["forces"], axis=1).max() for k in idx])
        mixed: set[int] = set()
        # unit mix-ups first: a whole subset in other units is not an "outlier" of itself.
        # Energies (when they share a sign) and RMS forces are both split at their widest
        # gap; a subset found by both is one finding, named by the closer unit factor(s).
        splits = []
        if np.all(energy < 0) or np.all(energy > 0):
            splits.append(("energies per atom", _unit_gap(np.abs(energy), 0.03, max_spread=0.01)))
        splits.append(("RMS forces", _unit_gap(f_rms, 0.2)))
        reported: dict[frozenset, Finding] = {}
        for what, gap in splits:
            if gap is None:
                continue
            upper, ratio, units = gap
            small = upper if upper.sum() <= (~upper).sum() else ~upper
            bad = [int(k) for k in idx[small]]
            mixed.update(bad)
            key = frozenset(bad)
            if key in reported and (reported[key].kind == "unit-mixup" or not units):
                continue
            direction = "larger" if small is upper else "smaller"
            if units:
                reported[key] = Finding("unit-mixup", f"{formula}: frames {_frames_text(bad)} have {what} "
                                        f"{ratio:.4g}× {direction} than the other frames, close to the unit factor "
                                        f"{' or '.join(units)}: convert them to eV and eV/Å", bad)
            else:
                reported[key] = Finding("energy-outlier" if what.startswith("energies") else "force-outlier",
                                        f"{formula}: frames {_frames_text(bad)} have {what} {ratio:.3g}× "
                                        f"{direction} than the other frames", bad)
        findings += reported.values()
        if len(idx) < 5:
            continue
        for values, kind, what, unit in ((energy, "energy-outlier", "energy per atom", "eV/atom"),
                                         (np.log(np.maximum(f_max, 1e-12)), "force-outlier", "largest force",
                                          "eV/Å")):
            z = _robust_z(values)
            bad = [int(idx[j]) for j in np.flatnonzero(np.abs(z) > settings.z_max) if int(idx[j]) not in mixed]
            if not bad:
                continue
            shown = energy if kind == "energy-outlier" else f_max
            median = float(np.median(shown))
            worst = int(np.argmax(np.abs(z)))
            findings.append(Finding(kind, f"{formula}: frames {_frames_text(bad)} have a {what} more than "
                                    f"{settings.z_max:g} robust standard deviations from the median "
                                    f"{median:.6g} {unit} (worst: frame {int(idx[worst])}, "
                                    f"{float(shown[worst]):.6g} {unit})", bad))
    return findings


def _duplicates(frames: Sequence[Atoms]) -> list[Finding]:
    seen: dict[bytes, int] = {}
    pairs = []
    for k, atoms in enumerate(frames):
        key = (np.asarray(atoms.numbers).tobytes() + np.round(atoms.positions, 8).tobytes()
               + np.round(atoms.cell.array, 8).tobytes())
        if key in seen:
            pairs.append((seen[key], k))
        else:
            seen[key] = k
    if not pairs:
        return []
    text = ", ".join(f"{b} = {a}" for a, b in pairs[:8]) + (f", … ({len(pairs)} in all)" if len(pairs) > 8 else "")
    return [Finding("duplicate", f"{len(pairs)} frame(s) repeat an earlier frame ({text}); duplicates weigh "
                    f"twice in training and leak between training and validation", [b for _, b in pairs])]


def _cell_checks(frames: Sequence[Atoms]) -> list[Finding]:
    missing, stress, degenerate = [], [], []
    for k, atoms in enumerate(frames):
        pbc = np.asarray(atoms.pbc, dtype=bool)
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        if pbc.any() and volume < 1e-9:
            degenerate.append(k)
        if not pbc.any():
            if "stress" in atoms.info:
                stress.append(k)
            if volume > 1e-9:
                frac = np.linalg.solve(atoms.cell.array.T, atoms.positions.T).T
                if np.all(frac.max(axis=0) - frac.min(axis=0) > 0.8):
                    missing.append(k)
    out = []
    if missing:
        out.append(Finding("missing-pbc", f"frames {_frames_text(missing)} are not periodic (pbc F F F) but their "
                           f"atoms fill their 3-D cell, as a crystal written without pbc would; set pbc=True "
                           f"(extxyz: pbc=\"T T T\") if they are periodic", missing))
    if stress:
        out.append(Finding("stress-without-pbc", f"frames {_frames_text(stress)} carry stress labels but are not "
                           f"periodic (stress needs a periodic cell)", stress))
    if degenerate:
        out.append(Finding("degenerate-cell", f"frames {_frames_text(degenerate)} are periodic but their cell has "
                           f"no volume (missing Lattice?)", degenerate))
    return out


def _geometry_checks(frames: Sequence[Atoms], settings: CheckSettings, skip: set[int]) -> list[Finding]:
    from ..errors import DataError
    from ..graph import neighbor_graph

    close, isolated = [], []
    worst: tuple[float, str] | None = None
    lonely = ""
    for k, atoms in enumerate(frames):
        if k in skip or len(atoms) < 2:
            continue
        try:
            edge_index, shift = neighbor_graph(atoms, settings.r_max)
        except DataError:
            continue  # reported by the cell checks
        d = np.linalg.norm(atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]] + shift, axis=1)
        z = atoms.numbers
        limit = settings.min_distance_factor * (covalent_radii[z[edge_index[0]]] + covalent_radii[z[edge_index[1]]])
        hit = np.flatnonzero(d < limit)
        if len(hit):
            close.append(k)
            j = hit[np.argmin(d[hit] / limit[hit])]
            a, b = int(edge_index[0, j]), int(edge_index[1, j])
            ratio = float(d[j] / limit[j])
            if worst is None or ratio < worst[0]:
                sym = atoms.get_chemical_symbols()
                worst = (ratio, f"frame {k}: {sym[a]}{a}–{sym[b]}{b} at {d[j]:.3f} Å, limit {limit[j]:.3f} Å")
        alone = np.setdiff1d(np.arange(len(atoms)), edge_index[0])
        if len(alone):
            isolated.append(k)
            if not lonely:
                lonely = f"frame {k}: atom(s) {_frames_text([int(a) for a in alone], 5)}"
    out = []
    if close:
        out.append(Finding("close-contact", f"frames {_frames_text(close)} have atoms closer than "
                           f"{settings.min_distance_factor:g} × the sum of their covalent radii (closest: "
                           f"{worst[1]}); overlapping atoms point to broken structures or wrong units", close))
    if isolated:
        out.append(Finding("isolated-atom", f"frames {_frames_text(isolated)} have atoms with no neighbour within "
                           f"r_max = {settings.r_max:g} Å ({lonely}); the model can only give them their "
                           f"reference energy", isolated))
    return out


def check_frames(frames: Sequence[Atoms], settings: CheckSettings | None = None) -> list[Finding]:
    """All checks of the module docstring on labelled ``frames`` (:func:`mlff.data.io.read_dataset`
    output: ``info["energy"]`` eV, ``arrays["forces"]`` eV/Å). Returns the findings (empty when
    nothing looks wrong); frame numbers count from 0 in the order given."""
    settings = settings or CheckSettings()
    findings = _label_checks(frames, settings) + _duplicates(frames)
    cells = _cell_checks(frames)
    skip = {k for f in cells if f.kind == "degenerate-cell" for k in f.frames}
    return findings + cells + _geometry_checks(frames, settings, skip)


def summary_line(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no problems found"
    counts = defaultdict(int)
    for f in findings:
        counts[f.kind] += 1
    return f"{len(findings)} finding(s): " + ", ".join(f"{k} ×{n}" for k, n in counts.items())


def write_report(findings: Sequence[Finding], path: str | Path, source: str, n_frames: int,
                 settings: CheckSettings) -> tuple[Path, Path]:
    """Write ``path`` (.md) and the same stem with ``.json``; returns both paths."""
    md = Path(path).with_suffix(".md")
    md.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Data check of {source}", "", f"{n_frames} frames; r_max {settings.r_max:g} Å, close-contact "
             f"factor {settings.min_distance_factor:g}, outlier threshold {settings.z_max:g} robust σ.", "",
             f"**{summary_line(findings)}**", ""]
    lines += [f"- `{f.kind}`: {f.message}" for f in findings]
    md.write_text("\n".join(lines) + "\n")
    js = md.with_suffix(".json")
    js.write_text(json.dumps({"source": source, "n_frames": n_frames, "settings": asdict(settings),
                              "findings": [asdict(f) for f in findings]}, indent=2))
    return md, js
