"""Reading and writing labelled datasets (extended XYZ).

Label conventions of the frames returned by :func:`read_dataset`:

* ``atoms.info["energy"]``: total potential energy, Python ``float``, eV.
* ``atoms.arrays["forces"]``: ``float64 [n_atoms, 3]``, eV/Å (``-dE/dR``).
* ``atoms.info["stress"]`` (optional, periodic frames): ``float64 [6]``,
  Voigt order ``(xx, yy, zz, yz, xz, xy)``, eV/Å³, ASE sign convention:
  ``stress = (1/V) dE/d(strain)``, so a compressed crystal has *negative*
  stress and the pressure is ``-trace/3``. A 3x3 input is converted to Voigt 6.

The frames carry no calculator (``atoms.calc is None``), so a frame never has
its labels in two places.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from ..errors import DataError

LABELS = ("energy", "forces", "stress")


def _lookup(atoms: Atoms, key: str, where: str):
    """Label ``key`` from the calculator results, else from info/arrays."""
    calc = atoms.calc
    results = getattr(calc, "results", None) if calc is not None else None
    if results and results.get(key) is not None:
        return results[key]
    store = atoms.arrays if where == "arrays" else atoms.info
    return store.get(key)


def _without_labels(atoms: Atoms) -> Atoms:
    """Copy of ``atoms`` with no calculator and no energy/forces/stress in info or arrays."""
    out = atoms.copy()
    out.calc = None
    for key in ("energy", "stress"):
        out.info.pop(key, None)
    out.arrays.pop("forces", None)
    return out


def _normalise_frame(atoms: Atoms, path: Path, index: int, require: Sequence[str]) -> Atoms:
    where = f"{path}: frame {index}"
    n = len(atoms)
    energy = _lookup(atoms, "energy", "info")
    forces = _lookup(atoms, "forces", "arrays")
    stress = _lookup(atoms, "stress", "info")
    missing = [
        label
        for label, value in (("energy", energy), ("forces", forces), ("stress", stress))
        if label in require and value is None
    ]
    if missing:
        raise DataError(f"{where}: missing label(s) {', '.join(missing)} (required: {', '.join(require)})")

    out = _without_labels(atoms)

    if energy is not None:
        try:
            e = float(np.asarray(energy, dtype=np.float64).reshape(()))
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: energy is not a number ({energy!r})") from exc
        if not np.isfinite(e):
            raise DataError(f"{where}: energy is not finite ({e})")
        out.info["energy"] = e
    if forces is not None:
        f = np.asarray(forces, dtype=np.float64)
        if f.shape != (n, 3):
            raise DataError(f"{where}: forces have shape {f.shape}, expected ({n}, 3)")
        if not np.all(np.isfinite(f)):
            raise DataError(f"{where}: forces contain non-finite values")
        out.arrays["forces"] = f.copy()
    if stress is not None:
        s = np.asarray(stress, dtype=np.float64)
        if s.shape == (3, 3):
            s = full_3x3_to_voigt_6_stress(s)
        elif s.shape == (9,):
            s = full_3x3_to_voigt_6_stress(s.reshape(3, 3))
        elif s.shape != (6,):
            raise DataError(f"{where}: stress has shape {s.shape}, expected (6,) or (3, 3)")
        if not np.all(np.isfinite(s)):
            raise DataError(f"{where}: stress contains non-finite values")
        out.info["stress"] = np.array(s, dtype=np.float64)
    return out


def read_dataset(
    path: str | os.PathLike,
    require: Sequence[str] = ("energy", "forces"),
    index: str | int | slice = ":",
    format: str | None = None,
) -> list[Atoms]:
    """Read labelled frames, validate them and normalise where labels live.

    Parameters
    ----------
    path
        Dataset file; extended XYZ (``.extxyz`` / ``.xyz``) is read with
        ``format="extxyz"``, other extensions are left to ASE to recognise.
    require
        Labels every frame must have: any of ``"energy"``, ``"forces"``,
        ``"stress"``. Use ``()`` to read unlabelled structures.
    index
        Which frames (ASE ``index`` syntax), all by default.
    format
        ASE format name, overriding the guess from the extension.

    Labels are taken from the frame's calculator results (what ASE's extxyz
    reader produces for ``energy=``/``forces`` columns) or, failing that, from
    ``atoms.info["energy"]``, ``atoms.arrays["forces"]``,
    ``atoms.info["stress"]``.

    Returns
    -------
    list of ase.Atoms
        At least one frame, each with ``info["energy"]`` (float, eV),
        ``arrays["forces"]`` (float64 [n, 3], eV/Å) and, when present,
        ``info["stress"]`` (float64 [6] Voigt, eV/Å³, ASE sign convention:
        positive = tensile); ``calc`` is ``None``. See the module docstring.

    Raises
    ------
    DataError
        The file is missing or not a file, ASE cannot parse it, it holds no
        frames, a frame lacks a required label, or a label has the wrong
        shape or non-finite values. The message names the file (and the
        frame index where relevant).
    """
    import ase.io

    p = Path(path)
    unknown = [r for r in require if r not in LABELS]
    if unknown:
        raise DataError(f"{p}: unknown required label(s) {unknown}; known: {', '.join(LABELS)}")
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file")
    if format is None and p.suffix.lower() in (".extxyz", ".xyz"):
        format = "extxyz"
    if p.stat().st_size == 0:
        raise DataError(f"{p}: file is empty (no frames)")
    frames: list[Atoms] = []
    try:
        if index == ":":  # frame by frame, so that an error names the frame it is in
            for atoms in ase.io.iread(p, index=index, format=format):
                frames.append(atoms)
        else:
            read = ase.io.read(p, index=index, format=format)
            frames = [read] if isinstance(read, Atoms) else list(read)
    except Exception as exc:  # ASE raises many types for bad input
        where = f" frame {len(frames)} (counting from 0; a truncated or malformed file?)" if index == ":" else ""
        raise DataError(f"{p}: cannot parse{where} as {format or 'a known format'}: "
                        f"{type(exc).__name__}: {exc}") from None
    if not frames:
        raise DataError(f"{p}: file contains no frames")
    return [_normalise_frame(a, p, i, tuple(require)) for i, a in enumerate(frames)]


def _to_writable(atoms: Atoms) -> Atoms:
    """Copy with all labels moved onto a SinglePointCalculator."""
    energy = _lookup(atoms, "energy", "info")
    forces = _lookup(atoms, "forces", "arrays")
    stress = _lookup(atoms, "stress", "info")
    out = _without_labels(atoms)
    results = {}
    if energy is not None:
        results["energy"] = float(energy)
    if forces is not None:
        results["forces"] = np.asarray(forces, dtype=np.float64)
    if stress is not None:
        s = np.asarray(stress, dtype=np.float64)
        results["stress"] = full_3x3_to_voigt_6_stress(s) if s.shape == (3, 3) else s
    if results:
        out.calc = SinglePointCalculator(out, **results)
    return out


def write_dataset(path: str | os.PathLike, frames: Iterable[Atoms]) -> Path:
    """Write frames as extended XYZ, atomically.

    Labels are taken from each frame's calculator results or from
    ``info["energy"]`` / ``arrays["forces"]`` / ``info["stress"]`` (the
    :func:`read_dataset` convention) and written as the standard extxyz
    ``energy=``, ``forces`` and ``stress=`` fields. The file is first written
    to a temporary file in the same directory and then moved over ``path``
    with :func:`os.replace`, so readers never see a half-written file. Parent
    directories are created.

    Returns the path written. Raises :class:`DataError` if ``frames`` is empty
    or the file cannot be written.
    """
    import ase.io

    p = Path(path)
    frames = [_to_writable(a) for a in frames]
    if not frames:
        raise DataError(f"{p}: refusing to write an empty dataset")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise DataError(f"{p}: cannot write: {exc}") from exc
    try:
        with os.fdopen(fd, "w") as fh:
            ase.io.write(fh, frames, format="extxyz")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise DataError(f"{p}: cannot write: {exc}") from exc
        raise
    return p
