"""Labelling selected frames with the reference calculator, in parallel.

Locally the frames go to a pool of worker processes (``concurrent.futures``); on a
cluster, each frame is one job of a submitit array on Slurm (submitit: Facebook
Research's scheduler interface, https://github.com/facebookincubator/submitit). Each
labelled frame is written to its own file as soon as it is done, so an interrupted
labelling repeats only the unfinished frames. A reference that fails on a frame (an
SCF that does not converge, a crash) loses that frame with its reason in
``failures.log``, never the iteration.
"""

from __future__ import annotations

import importlib
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms

from ..data.calculators import calculator_names, make_calculator
from ..data.io import read_dataset, write_dataset
from ..errors import ConfigError
from .config import LabelConfig


def reference_factory(spec: str) -> Callable:
    """A zero-argument factory of the reference calculator: a name of
    :mod:`mlff.data.calculators`, or ``"module:callable"`` (called with no arguments).
    ``ConfigError`` if neither."""
    if ":" in spec:
        module, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"reference {spec!r}: cannot import {name} from {module} ({exc})") from None
        if not callable(factory):
            raise ConfigError(f"reference {spec!r}: {name} is not callable")
        return factory
    if spec.lower() not in calculator_names():
        raise ConfigError(f"reference {spec!r} is neither a calculator name ({', '.join(calculator_names())}) "
                          f"nor 'module:callable'")
    return lambda: make_calculator(spec)


def label_one(spec: str, atoms: Atoms) -> Atoms:
    """``atoms`` with the reference's energy (eV), forces (eV/Å) and, when periodic, stress."""
    atoms = atoms.copy()
    atoms.calc = reference_factory(spec)()
    out = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info["energy"] = float(atoms.get_potential_energy())
    out.arrays["forces"] = np.asarray(atoms.get_forces(), dtype=float)
    if np.all(atoms.pbc):
        out.info["stress"] = np.asarray(atoms.get_stress(voigt=True), dtype=float)
    for key in ("max_devi_f", "run", "step"):
        if key in atoms.info:
            out.info[key] = atoms.info[key]
    if not np.isfinite(out.info["energy"]) or not np.all(np.isfinite(out.arrays["forces"])):
        raise FloatingPointError("the reference returned non-finite energy or forces")
    return out


def _safe_label(spec: str, atoms: Atoms) -> tuple[Atoms | None, str]:
    try:
        return label_one(spec, atoms), ""
    except Exception as exc:  # any failure of the user's reference loses this frame only
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0] + " | " + \
            traceback.format_exc().strip().splitlines()[-1]


def _executor(config: LabelConfig, folder: Path):
    if config.executor == "local":
        return ProcessPoolExecutor(max_workers=config.workers)
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "slurm", cluster="slurm")
    executor.update_parameters(**{f"slurm_{k}": v for k, v in config.slurm.items()})
    return executor


def label(frames: Sequence[Atoms], spec: str, config: LabelConfig, folder: Path,
          log: Callable[[str], None] = print) -> tuple[list[Atoms], list[str]]:
    """Label ``frames`` (frame ``k`` saved as ``folder/frame_k.extxyz``); returns the
    labelled frames and one reason per failed frame (also in ``folder/failures.log``)."""
    reference_factory(spec)  # a bad reference is a configuration error, before any work
    folder.mkdir(parents=True, exist_ok=True)
    todo = [k for k in range(len(frames)) if not (folder / f"frame_{k}.extxyz").is_file()
            and not (folder / f"frame_{k}.failed").is_file()]
    if todo:
        executor = _executor(config, folder)
        if config.executor == "local":
            with executor:
                futures = {executor.submit(_safe_label, spec, frames[k]): k for k in todo}
                for f in as_completed(futures):
                    _store(folder, futures[f], *f.result(), log)
        else:
            jobs = executor.map_array(_safe_label, [spec] * len(todo), [frames[k] for k in todo])
            for k, job in zip(todo, jobs):
                _store(folder, k, *job.result(), log)
    done, failures = [], []
    for k in range(len(frames)):
        if (folder / f"frame_{k}.extxyz").is_file():
            done.append(read_dataset(folder / f"frame_{k}.extxyz")[0])
        else:
            failures.append(f"frame {k}: {(folder / f'frame_{k}.failed').read_text().strip()}")
    (folder / "failures.log").write_text("".join(f + "\n" for f in failures))
    return done, failures


def _store(folder: Path, k: int, atoms: Atoms | None, reason: str, log) -> None:
    if atoms is None:
        (folder / f"frame_{k}.failed").write_text(reason + "\n")
        log(f"mlff learn: frame {k} dropped: the reference failed: {reason}")
    else:
        write_dataset(folder / f"frame_{k}.extxyz", [atoms])
