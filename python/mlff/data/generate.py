"""Labelled training data from Langevin molecular dynamics.

:func:`sample_md` runs ASE's Langevin integrator (Vanden-Eijnden & Ciccotti,
Chem. Phys. Lett. 429, 310 (2006), as implemented in ``ase.md.langevin``) with
a reference calculator and records frames with their energies and forces.

The molecule presets follow the MD17 protocol of Chmiela et al., Sci. Adv. 3,
e1603015 (2017): a single molecule in vacuum, 500 K, 0.5 fs time step. MD17
used ab initio (PBE+TS) MD; here the reference is GFN2-xTB via tblite, so the
datasets are "MD17-like", not MD17. A frame is kept every 10 steps (5 fs)
after 1 ps of equilibration.

All presets live in :data:`PRESETS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import DataError
from .calculators import make_calculator
from .molecules import SMILES, bulk_cu, molecule

MD17_REFERENCE = "Chmiela et al., Sci. Adv. 3, e1603015 (2017)"


@dataclass(frozen=True)
class Preset:
    """Settings of one dataset preset.

    ``structure`` builds the starting geometry; ``calculator`` is a
    :func:`~mlff.data.calculators.make_calculator` name. Units: K, fs, 1/fs.
    """

    name: str
    structure: Callable[[], Atoms]
    calculator: str
    temperature_K: float
    timestep_fs: float
    interval: int
    equilibration_fs: float
    n_frames: int
    friction_per_fs: float = 0.01
    description: str = ""


def _molecule_preset(name: str) -> Preset:
    return Preset(
        name=name,
        structure=lambda: molecule(name),
        calculator="xtb",
        temperature_K=500.0,
        timestep_fs=0.5,
        interval=10,
        equilibration_fs=1000.0,
        n_frames=1000,
        description=f"{name.replace('_', ' ')} in vacuum, GFN2-xTB, MD17 protocol ({MD17_REFERENCE})",
    )


#: All presets, by name.
PRESETS: dict[str, Preset] = {name: _molecule_preset(name) for name in SMILES}
PRESETS["cu-emt"] = Preset(
    name="cu-emt",
    structure=lambda: bulk_cu(2),
    calculator="emt",
    temperature_K=500.0,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=1000.0,
    n_frames=1000,
    description="fcc Cu, 32 atoms (2x2x2 cubic cells, a=3.615 A), ASE EMT",
)


def preset_names() -> list[str]:
    """Names accepted by :func:`get_preset`, in definition order."""
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    """Look up a preset (case-insensitive; ``-``/``_`` interchangeable for molecules).

    Raises :class:`DataError` listing the valid names if unknown.
    """
    key = str(name).strip().lower()
    for candidate in (key, key.replace("-", "_"), key.replace("_", "-")):
        if candidate in PRESETS:
            return PRESETS[candidate]
    raise DataError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise DataError(message)


def sample_md(
    atoms: Atoms,
    calculator: Calculator | str,
    temperature_K: float,
    timestep_fs: float,
    n_frames: int,
    interval: int,
    equilibration_fs: float = 0.0,
    seed: int = 0,
    friction: float = 0.01,
    progress: bool = True,
) -> list[Atoms]:
    """Run Langevin MD and return labelled snapshots.

    Parameters
    ----------
    atoms
        Starting structure (not modified; a copy is propagated). Periodic
        if ``atoms.pbc.all()``.
    calculator
        An ASE calculator, or a name for
        :func:`~mlff.data.calculators.make_calculator` (e.g. ``"xtb"``).
    temperature_K
        Thermostat and initial Maxwell-Boltzmann temperature, K.
    timestep_fs
        Integration time step, fs.
    n_frames
        Number of frames to return (>= 1).
    interval
        MD steps between recorded frames (>= 1). The first frame is taken
        ``interval`` steps after equilibration.
    equilibration_fs
        Unrecorded MD before the first interval, fs (rounded to whole steps).
    seed
        Seeds ``np.random.default_rng(seed)``, which draws the initial
        velocities and then the Langevin random forces: same seed, same
        settings and same calculator give the same trajectory -- bitwise only
        with the same OpenMP thread count (``OMP_NUM_THREADS``) for tblite:
        a different count changes the last bits of the forces and the
        (chaotic) trajectory then diverges, staying statistically equivalent.
    friction
        Langevin friction coefficient in 1/fs (0.01/fs by default; passed to
        ASE as ``friction / ase.units.fs``).
    progress
        Show a tqdm progress bar (on stderr).

    Returns
    -------
    list of ase.Atoms
        ``n_frames`` copies, each with a
        :class:`~ase.calculators.singlepoint.SinglePointCalculator` holding
        ``energy`` (eV) and ``forces`` (float64 [n, 3], eV/Å) and, for
        periodic systems whose calculator provides it, ``stress`` (Voigt 6,
        eV/Å³, ASE sign convention), so ``ase.io.write(..., format="extxyz")``
        writes them. Momenta (ASE units) are kept; ``info`` gets ``md_step``,
        ``md_time_fs`` and ``md_temperature_K`` (instantaneous).

    Raises
    ------
    DataError
        For invalid settings, or if the calculator fails during the run
        (the message gives the MD step).

    Notes
    -----
    Initial velocities: Maxwell-Boltzmann at ``temperature_K``, then total
    momentum removed and, for non-periodic systems, angular momentum removed
    (both rescaled back to ``temperature_K``). Integrator:
    ``ase.md.langevin.Langevin``; the centre of mass is held fixed with an
    ``ase.constraints.FixCom`` constraint during the run. The recorded frames
    carry no constraint and their labels are the calculator's unconstrained
    energy, forces and stress (FixCom would otherwise remove the mass-weighted
    net force from the forces of a mixed-mass molecule). The instantaneous temperature counts ``3N - 3``
    degrees of freedom.
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from tqdm.auto import tqdm

    _check(int(n_frames) == n_frames and n_frames >= 1, f"n_frames must be a positive integer, got {n_frames!r}")
    _check(int(interval) == interval and interval >= 1, f"interval must be a positive integer, got {interval!r}")
    _check(timestep_fs > 0, f"timestep must be > 0 fs, got {timestep_fs!r}")
    _check(temperature_K >= 0, f"temperature must be >= 0 K, got {temperature_K!r}")
    _check(equilibration_fs >= 0, f"equilibration must be >= 0 fs, got {equilibration_fs!r}")
    _check(friction >= 0, f"friction must be >= 0 /fs, got {friction!r}")
    _check(len(atoms) > 0, "the structure has no atoms")
    n_frames, interval = int(n_frames), int(interval)

    calc_name = calculator if isinstance(calculator, str) else type(calculator).__name__
    calc = make_calculator(calculator) if isinstance(calculator, str) else calculator
    periodic = bool(np.all(atoms.pbc))

    system = atoms.copy()
    system.calc = calc
    rng = np.random.default_rng(seed)
    _thermalize(system, temperature_K, rng)
    Stationary(system)
    if not periodic and len(system) > 2:
        ZeroRotation(system)

    # Centre of mass fixed by a constraint (ASE >= 3.28 deprecates fixcm=True).
    system.set_constraint(FixCom())
    dyn = Langevin(
        system,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )

    n_equil = int(round(equilibration_fs / timestep_fs))
    total = n_equil + n_frames * interval
    want_stress = periodic and "stress" in getattr(calc, "implemented_properties", ())
    frames: list[Atoms] = []

    with tqdm(total=total, unit="step", disable=not progress, desc=f"MD ({calc_name})", leave=False) as bar:

        def run(steps: int) -> None:
            # in chunks, so that the bar moves during a long equilibration
            chunk = max(1, min(steps, 50))
            done = 0
            try:
                while done < steps:
                    k = min(chunk, steps - done)
                    dyn.run(k)
                    done += k
                    bar.update(k)
            except Exception as exc:
                raise DataError(
                    f"calculator {calc_name!r} failed near MD step {dyn.nsteps}: {type(exc).__name__}: {exc}"
                ) from exc

        run(n_equil)
        for _ in range(n_frames):
            run(interval)
            frames.append(_snapshot(system, want_stress, dyn.nsteps, timestep_fs))
            bar.set_postfix(frames=len(frames), refresh=False)
    return frames


def _thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta (``thermalize_momenta`` in ASE >= 3.29)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:  # ASE < 3.29
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def _snapshot(system: Atoms, want_stress: bool, step: int, timestep_fs: float) -> Atoms:
    results = {
        "energy": float(system.get_potential_energy()),
        # apply_constraint=False: the MD-only FixCom rewrites forces of mixed-mass
        # systems; the label must be the calculator's -dE/dx.
        "forces": np.array(system.get_forces(apply_constraint=False), dtype=np.float64),
    }
    if want_stress:
        try:
            results["stress"] = np.array(system.get_stress(voigt=True, apply_constraint=False), dtype=np.float64)
        except (PropertyNotImplementedError, NotImplementedError):
            pass
    frame = system.copy()  # copies positions, momenta, cell, pbc, info; not the calculator
    frame.set_constraint()  # drop the MD-only FixCom
    frame.info["md_step"] = int(step)
    frame.info["md_time_fs"] = float(step * timestep_fs)
    frame.info["md_temperature_K"] = float(system.get_temperature())
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


@dataclass
class RunSettings:
    """Resolved settings of a :func:`generate_preset` run (for reporting)."""

    preset: str
    calculator: str
    temperature_K: float
    timestep_fs: float
    n_frames: int
    interval: int
    equilibration_fs: float
    seed: int
    friction_per_fs: float
    n_atoms: int = 0
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)


def generate_preset(
    name: str,
    *,
    n_frames: int | None = None,
    temperature_K: float | None = None,
    timestep_fs: float | None = None,
    interval: int | None = None,
    equilibration_fs: float | None = None,
    seed: int = 0,
    calculator: str | None = None,
    friction: float | None = None,
    progress: bool = True,
) -> tuple[list[Atoms], RunSettings]:
    """Build a preset's structure and run :func:`sample_md` with its settings.

    Any argument left ``None`` takes the preset's value; ``calculator``
    replaces the preset's calculator by name (e.g. ``"emt"``). Returns the
    frames (see :func:`sample_md`) and the resolved :class:`RunSettings`
    (with ``wall_s``, the wall-clock time of the MD). Raises
    :class:`DataError` for an unknown preset or calculator or invalid values.
    """
    p = get_preset(name)
    p = replace(
        p,
        calculator=p.calculator if calculator is None else str(calculator).lower(),
        temperature_K=p.temperature_K if temperature_K is None else float(temperature_K),
        timestep_fs=p.timestep_fs if timestep_fs is None else float(timestep_fs),
        interval=p.interval if interval is None else interval,
        equilibration_fs=p.equilibration_fs if equilibration_fs is None else float(equilibration_fs),
        n_frames=p.n_frames if n_frames is None else n_frames,
        friction_per_fs=p.friction_per_fs if friction is None else float(friction),
    )
    calc = make_calculator(p.calculator)  # validates the name before building anything
    atoms = p.structure()
    t0 = time.perf_counter()
    frames = sample_md(
        atoms,
        calc,
        temperature_K=p.temperature_K,
        timestep_fs=p.timestep_fs,
        n_frames=p.n_frames,
        interval=p.interval,
        equilibration_fs=p.equilibration_fs,
        seed=seed,
        friction=p.friction_per_fs,
        progress=progress,
    )
    settings = RunSettings(
        preset=p.name,
        calculator=p.calculator,
        temperature_K=p.temperature_K,
        timestep_fs=p.timestep_fs,
        n_frames=p.n_frames,
        interval=p.interval,
        equilibration_fs=p.equilibration_fs,
        seed=seed,
        friction_per_fs=p.friction_per_fs,
        n_atoms=len(atoms),
        wall_s=time.perf_counter() - t0,
    )
    return frames, settings
