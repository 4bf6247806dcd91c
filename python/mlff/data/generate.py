"""Labelled training data from molecular dynamics.

:func:`sample_md` runs ASE's Langevin integrator (Vanden-Eijnden & Ciccotti,
Chem. Phys. Lett. 429, 310 (2006), as implemented in ``ase.md.langevin``) or,
with ``ensemble="nve"``, velocity Verlet (``ase.md.verlet.VelocityVerlet``)
with a reference calculator and records frames with their energies, forces
and (periodic systems) stress. A Langevin run can sweep a list of
temperatures, with equilibration and an equal number of frames at each.

The molecule presets follow the MD17 protocol of Chmiela et al., Sci. Adv. 3,
e1603015 (2017): a single molecule in vacuum, 500 K, 0.5 fs time step. MD17
used ab initio (PBE+TS) MD; here the reference is GFN2-xTB via tblite, so the
datasets are "MD17-like", not MD17. A frame is kept every 10 steps (5 fs)
after 1 ps of equilibration.

The metal and semiconductor presets use classical potentials (ASE's EMT, EAM
Cu and Stillinger-Weber Si through LAMMPS); see each preset's
``description`` and ``source``. All presets live in :data:`PRESETS`
(``mlff data --list``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import DataError
from .calculators import make_calculator
from .molecules import SMILES, au6_cluster, bulk_cu, c20_fullerene, diamond_si, molecule, pt110_au_slab, water

MD17_REFERENCE = "Chmiela et al., Sci. Adv. 3, e1603015 (2017)"
SEED_003 = 'X. Zhang, "3 approaches to neural network potentials" (2019), seed 003'
SEED_004 = ("A. G. Lefdalsnes, MSc thesis, University of Oslo (2019): Behler-Parrinello potentials "
            "for EMT Cu and Stillinger-Weber Si, seed 004")
EMT_REFERENCE = "EMT: Jacobsen, Stoltze, Norskov, Surf. Sci. 366, 394 (1996)"
EAM_CU_REFERENCE = "EAM Cu_u3: Foiles, Baskes, Daw, Phys. Rev. B 33, 7983 (1986)"
SW_REFERENCE = "Stillinger, Weber, Phys. Rev. B 31, 5262 (1985)"

ENSEMBLES = ("langevin", "nve", "npt")
#: Barostat time constant of the ``npt`` ensemble (ASE LangevinBAOAB ``P_tau``), fs.
NPT_P_TAU_FS = 1000.0


@dataclass(frozen=True)
class Preset:
    """Settings of one dataset preset.

    ``structure`` builds the starting geometry: ``structure()``, or
    ``structure(n)`` for presets with a ``supercell`` (their default ``n``,
    the number of conventional cubic cells along each axis). ``calculator``
    is a :func:`~mlff.data.calculators.make_calculator` name. ``ensemble`` is
    ``"langevin"`` (NVT) or ``"nve"``. ``temperatures_K``, if set, is a
    temperature sweep (``n_frames`` split equally, each segment equilibrated
    for ``equilibration_fs``) and replaces ``temperature_K``.
    ``description`` says what the data are; ``source`` where the protocol
    comes from. Units: K, fs, 1/fs.
    """

    name: str
    structure: Callable[..., Atoms]
    calculator: str
    temperature_K: float
    timestep_fs: float
    interval: int
    equilibration_fs: float
    n_frames: int
    friction_per_fs: float = 0.01
    description: str = ""
    source: str = ""
    ensemble: str = "langevin"
    temperatures_K: tuple[float, ...] | None = None
    supercell: int | None = None

    def build(self, supercell: int | None = None) -> Atoms:
        """The starting structure (``supercell`` overrides the preset's default ``n``)."""
        if self.supercell is None:
            if supercell is not None:
                raise DataError(f"preset {self.name!r} has a fixed structure; --supercell applies only to "
                                f"{', '.join(n for n, p in PRESETS.items() if p.supercell is not None)}")
            return self.structure()
        return self.structure(self.supercell if supercell is None else supercell)

    def temperature_text(self) -> str:
        if self.temperatures_K:
            return ",".join(f"{t:g}" for t in self.temperatures_K) + " K"
        return f"{self.temperature_K:g} K"


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
        description=f"{name.replace('_', ' ')} in vacuum, GFN2-xTB, MD17 protocol (Langevin)",
        source=MD17_REFERENCE,
    )


#: Default temperatures (K) of the ``cu-eam-melt`` sweep; EAM Cu_u3 melts
#: near 1,300-1,400 K (a periodic crystal without surfaces can superheat).
CU_MELT_TEMPERATURES_K = (300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0)

#: All presets, by name.
PRESETS: dict[str, Preset] = {name: _molecule_preset(name) for name in SMILES}
PRESETS["cu-emt"] = Preset(
    name="cu-emt",
    structure=bulk_cu,
    supercell=2,
    calculator="emt",
    temperature_K=500.0,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=1000.0,
    n_frames=1000,
    description="bulk fcc Cu, 4*N^3 atoms (N=2: 32; N x N x N cubic cells, a=3.615 A), ASE EMT, "
                "Langevin NVT; periodic, stress labels",
    source=f"{SEED_004} (32 Cu atoms, 500 K; the thesis used 5 fs steps, a frame every 100 steps); {EMT_REFERENCE}",
)
PRESETS["cu-eam"] = Preset(
    name="cu-eam",
    structure=bulk_cu,
    supercell=3,
    calculator="eam-cu",
    temperature_K=500.0,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=1000.0,
    n_frames=1000,
    description="bulk fcc Cu, 4*N^3 atoms (N=3: 108), EAM Cu_u3 via LAMMPS, Langevin NVT; periodic, stress labels",
    source=f"{SEED_004} (108-atom Cu cell, 500 K); {EAM_CU_REFERENCE}",
)
PRESETS["cu-eam-melt"] = Preset(
    name="cu-eam-melt",
    structure=bulk_cu,
    supercell=3,
    calculator="eam-cu",
    ensemble="npt",
    temperature_K=CU_MELT_TEMPERATURES_K[0],
    temperatures_K=CU_MELT_TEMPERATURES_K,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=3000.0,
    n_frames=600,
    description="fcc Cu (N=3: 108 atoms), EAM Cu_u3 via LAMMPS, temperature sweep 300-1800 K through melting, "
                "NPT at zero pressure (Langevin thermostat + hydrostatic Langevin-Hoover barostat: at fixed "
                "volume the crystal builds up ~10 GPa and does not melt by 1800 K); equal frames per "
                "temperature, each segment equilibrated for 3 ps; the superheated crystal melts during the "
                "1800 K segment's equilibration; cell varies per frame; periodic, stress labels",
    source=EAM_CU_REFERENCE,
)
PRESETS["si-sw"] = Preset(
    name="si-sw",
    structure=diamond_si,
    supercell=2,
    calculator="sw-si",
    temperature_K=500.0,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=1000.0,
    n_frames=1000,
    description="diamond Si, 8*N^3 atoms (N=2: 64; a=5.431 A), Stillinger-Weber via LAMMPS, Langevin NVT; "
                "periodic, stress labels",
    source=f"{SEED_004}; {SW_REFERENCE}",
)
PRESETS["au6-emt"] = Preset(
    name="au6-emt",
    structure=au6_cluster,
    calculator="emt",
    ensemble="nve",
    temperature_K=300.0,
    timestep_fs=1.0,
    interval=50,
    equilibration_fs=0.0,
    n_frames=2500,
    description="Au6 cluster (octahedron cut from fcc Au, EMT-relaxed), EMT, NVE (velocity Verlet) from "
                "Maxwell-Boltzmann velocities at 300 K (not doubled, as in the source: the kinetic "
                "temperature settles near half); non-periodic",
    source=f"{SEED_003} (125,000 steps of 1 fs, a frame every 50 steps); {EMT_REFERENCE}",
)
PRESETS["au6-emt-carved"] = Preset(
    name="au6-emt-carved",
    structure=lambda: au6_cluster(relax=False),
    calculator="emt",
    ensemble="nve",
    temperature_K=300.0,
    timestep_fs=1.0,
    interval=50,
    equilibration_fs=0.0,
    n_frames=2500,
    description="Au6 octahedron cut from fcc Au and NOT relaxed (the source's literal protocol), EMT, NVE from "
                "Maxwell-Boltzmann velocities at 300 K: the 2.2 eV the cut cluster lies above its EMT minimum "
                "heats it to ~1,300 K (energy spread ~0.28 eV, ten times au6-emt's); non-periodic",
    source=f"{SEED_003} (\"carve out 6 Au atoms\", 125,000 steps of 1 fs, a frame every 50 steps); {EMT_REFERENCE}",
)
PRESETS["pt110-au-emt"] = Preset(
    name="pt110-au-emt",
    structure=pt110_au_slab,
    calculator="emt",
    ensemble="nve",
    temperature_K=300.0,
    timestep_fs=1.0,
    interval=50,
    equilibration_fs=0.0,
    n_frames=2500,
    description="Pt8Au2: 2x2 two-layer Pt(110) slab + 2 Au adatoms (EMT-relaxed), bottom layer fixed "
                "(FixAtoms) during MD, EMT, NVE from 300 K; made periodic in z with a 14.8 A vacuum gap "
                "(mlff graphs need all-or-no periodicity), so frames carry stress labels of the padded cell",
    source=f"{SEED_003} (its Pt8Au2 set; MD settings as for its Au6 set); {EMT_REFERENCE}",
)
PRESETS["water"] = replace(
    _molecule_preset("water"), structure=water,
    description="one water molecule in vacuum (ASE's G2 geometry), GFN2-xTB, MD17 protocol (Langevin)",
    source=f"{MD17_REFERENCE}; the water molecule of seed 002 (Hedelius, BSc thesis, BYU 2021, §3.2)")
PRESETS["c20"] = Preset(
    name="c20",
    structure=c20_fullerene,
    calculator="xtb",
    temperature_K=500.0,
    timestep_fs=1.0,
    interval=10,
    equilibration_fs=1000.0,
    n_frames=1000,
    description="C20 fullerene cage (regular dodecahedron, C-C 1.45 A) in vacuum, GFN2-xTB, Langevin NVT",
    source="K. T. Schütt, PhD thesis, TU Berlin (2018), seed 001 §5.3 and App. A (C20 MD at 500 K with 1 fs steps, "
           "PBE+vdW-TS there; GFN2-xTB here)",
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
    temperature_K: float | Sequence[float],
    timestep_fs: float,
    n_frames: int,
    interval: int,
    equilibration_fs: float = 0.0,
    seed: int = 0,
    friction: float = 0.01,
    progress: bool = True,
    ensemble: str = "langevin",
) -> list[Atoms]:
    """Run Langevin (or NVE) MD and return labelled snapshots.

    Parameters
    ----------
    atoms
        Starting structure (not modified; a copy is propagated). Periodic
        if ``atoms.pbc.all()``. Constraints attached to it (e.g. ``FixAtoms``
        on a slab's bottom layer) are applied during the MD.
    calculator
        An ASE calculator, or a name for
        :func:`~mlff.data.calculators.make_calculator` (e.g. ``"xtb"``).
    temperature_K
        Thermostat and initial Maxwell-Boltzmann temperature, K; or a
        sequence of temperatures (Langevin only): a sweep of equal segments,
        each ``equilibration_fs`` of unrecorded MD at the new thermostat
        temperature followed by ``n_frames / len(temperature_K)`` frames
        (``n_frames`` must be divisible). The velocities are drawn once, at
        the first temperature.
    timestep_fs
        Integration time step, fs.
    n_frames
        Number of frames to return (>= 1).
    interval
        MD steps between recorded frames (>= 1). The first frame is taken
        ``interval`` steps after equilibration.
    equilibration_fs
        Unrecorded MD before the first interval (of each sweep segment), fs
        (rounded to whole steps).
    seed
        Seeds ``np.random.default_rng(seed)``, which draws the initial
        velocities and then the Langevin random forces: same seed, same
        settings and same calculator give the same trajectory -- bitwise only
        with the same OpenMP thread count (``OMP_NUM_THREADS``) for tblite:
        a different count changes the last bits of the forces and the
        (chaotic) trajectory then diverges, staying statistically equivalent.
    friction
        Langevin friction coefficient in 1/fs (0.01/fs by default; passed to
        ASE as ``friction / ase.units.fs``). Unused for NVE.
    progress
        Show a tqdm progress bar (on stderr).
    ensemble
        ``"langevin"`` (NVT, default), ``"nve"`` (velocity Verlet, no
        thermostat; ``temperature_K`` only sets the initial velocities) or
        ``"npt"`` (periodic systems only: ASE's ``LangevinBAOAB`` -- Langevin
        thermostat with time constant ``1/friction`` and a hydrostatic
        Langevin-Hoover barostat at zero external pressure, ``P_tau`` =
        :data:`NPT_P_TAU_FS`; Quigley & Probert, J. Chem. Phys. 120, 11432
        (2004). The cell then changes from frame to frame).

    Returns
    -------
    list of ase.Atoms
        ``n_frames`` copies, each with a
        :class:`~ase.calculators.singlepoint.SinglePointCalculator` holding
        ``energy`` (eV) and ``forces`` (float64 [n, 3], eV/Å) and, for
        periodic systems whose calculator provides it, ``stress`` (Voigt 6,
        eV/Å³, ASE sign convention), so ``ase.io.write(..., format="extxyz")``
        writes them. Momenta (ASE units) are kept; ``info`` gets ``md_step``,
        ``md_time_fs``, ``md_temperature_K`` (instantaneous) and
        ``md_target_temperature_K`` (the thermostat or initial temperature of
        the frame's segment). Frames carry no constraints.

    Raises
    ------
    DataError
        For invalid settings, or if the calculator fails during the run
        (the message gives the MD step).

    Notes
    -----
    Initial velocities: Maxwell-Boltzmann at ``temperature_K`` (not doubled
    for equipartition), then total momentum removed and, for non-periodic
    systems, angular momentum removed (both rescaled back to the drawn
    kinetic temperature); for ``nve`` the momenta are then scaled so that the
    initial instantaneous temperature is exactly ``temperature_K`` (NVE keeps
    the kinetic energy it starts with; in a small cluster a random draw
    would set the temperature of the whole run). Integrator:
    ``ase.md.langevin.Langevin``, ``ase.md.verlet.VelocityVerlet`` or
    ``ase.md.langevinbaoab.LangevinBAOAB``;
    except for ``npt`` the centre of mass is held fixed with an
    ``ase.constraints.FixCom`` constraint during the run. If the structure
    has its own constraints, those are used instead (no FixCom, no momentum
    removal) and fixed atoms start at rest. The recorded frames carry no
    constraint and their labels are the calculator's unconstrained energy,
    forces and stress (FixCom would otherwise remove the mass-weighted net
    force from the forces of a mixed-mass molecule; FixAtoms would zero the
    fixed atoms' forces). The instantaneous temperature counts ``3N`` minus
    the constrained degrees of freedom (``3N - 3`` with FixCom). Stress is
    the calculator's (virial, no kinetic term).
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet
    from tqdm.auto import tqdm

    temperatures = _temperature_list(temperature_K)
    _check(int(n_frames) == n_frames and n_frames >= 1, f"n_frames must be a positive integer, got {n_frames!r}")
    _check(int(interval) == interval and interval >= 1, f"interval must be a positive integer, got {interval!r}")
    _check(timestep_fs > 0, f"timestep must be > 0 fs, got {timestep_fs!r}")
    _check(equilibration_fs >= 0, f"equilibration must be >= 0 fs, got {equilibration_fs!r}")
    _check(friction >= 0, f"friction must be >= 0 /fs, got {friction!r}")
    _check(len(atoms) > 0, "the structure has no atoms")
    ensemble = str(ensemble).strip().lower()
    _check(ensemble in ENSEMBLES, f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
    _check(ensemble != "nve" or len(temperatures) == 1,
           "a temperature sweep needs a thermostat (ensemble 'langevin' or 'npt'), not NVE")
    _check(n_frames % len(temperatures) == 0,
           f"n_frames ({n_frames}) must be divisible by the number of temperatures ({len(temperatures)})")
    n_frames, interval = int(n_frames), int(interval)
    per_segment = n_frames // len(temperatures)

    calc_name = calculator if isinstance(calculator, str) else type(calculator).__name__
    calc = make_calculator(calculator) if isinstance(calculator, str) else calculator
    periodic = bool(np.all(atoms.pbc))

    system = atoms.copy()  # keeps the structure's own constraints (e.g. FixAtoms)
    system.calc = calc
    own_constraints = bool(system.constraints)
    if ensemble == "npt":
        _check(periodic, "the npt ensemble needs a periodic system (pbc all true)")
        _check(not own_constraints, "the npt ensemble does not support constrained structures")
        _check(friction > 0, "the npt ensemble needs a friction > 0 (its thermostat time constant is 1/friction)")
    rng = np.random.default_rng(seed)
    _thermalize(system, temperatures[0], rng)  # momenta of fixed atoms are zeroed by their constraint
    if not own_constraints:
        Stationary(system)
        if not periodic and len(system) > 2:
            ZeroRotation(system)
        if ensemble != "npt":  # LangevinBAOAB is untested with constraints; bulk COM drift is harmless
            # Centre of mass fixed by a constraint (ASE >= 3.28 deprecates fixcm=True).
            system.set_constraint(FixCom())
    if ensemble == "nve":
        # NVE keeps the kinetic energy it starts with: make the initial
        # instantaneous temperature (ASE's count of degrees of freedom, after
        # the constraints) exactly temperature_K instead of a random draw.
        current = system.get_temperature()
        if current > 0:
            system.set_momenta(system.get_momenta() * np.sqrt(temperatures[0] / current))
    if ensemble == "npt":
        try:
            from ase.md.langevinbaoab import LangevinBAOAB
        except ImportError as exc:  # ASE < 3.25
            raise DataError(f"the npt ensemble needs ase.md.langevinbaoab (a newer ASE): {exc}") from exc
        with warnings.catch_warnings():  # the barostat mass from P_tau is the intended heuristic
            warnings.filterwarnings("ignore", message="Using heuristic P_mass")
            dyn = LangevinBAOAB(
                system,
                timestep=timestep_fs * units.fs,
                temperature_K=temperatures[0],
                externalstress=0.0,
                hydrostatic=True,
                T_tau=units.fs / friction,
                P_tau=NPT_P_TAU_FS * units.fs,
                rng=rng,
            )
    elif ensemble == "langevin":
        dyn = Langevin(
            system,
            timestep=timestep_fs * units.fs,
            temperature_K=temperatures[0],
            friction=friction / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dyn = VelocityVerlet(system, timestep=timestep_fs * units.fs)

    n_equil = int(round(equilibration_fs / timestep_fs))
    total = len(temperatures) * (n_equil + per_segment * interval)
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

        for k, target in enumerate(temperatures):
            if ensemble != "nve" and k > 0:
                dyn.set_temperature(temperature_K=target)
            run(n_equil)
            for _ in range(per_segment):
                run(interval)
                frames.append(_snapshot(system, want_stress, dyn.nsteps, timestep_fs, target))
                bar.set_postfix(frames=len(frames), T=f"{target:g}", refresh=False)
    return frames


def _temperature_list(temperature_K) -> list[float]:
    """One temperature or a non-empty sequence of them, each finite and >= 0 K."""
    values = [temperature_K] if np.ndim(temperature_K) == 0 else list(temperature_K)
    _check(len(values) >= 1, "at least one temperature is needed")
    try:
        values = [float(t) for t in values]
    except (TypeError, ValueError) as exc:
        raise DataError(f"temperatures must be numbers, got {temperature_K!r}") from exc
    for t in values:
        _check(np.isfinite(t) and t >= 0, f"temperature must be >= 0 K, got {t!r}")
    return values


def _thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta (``thermalize_momenta`` in ASE >= 3.29)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:  # ASE < 3.29
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def _snapshot(system: Atoms, want_stress: bool, step: int, timestep_fs: float, target_K: float) -> Atoms:
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
    frame.set_constraint()  # drop the MD-only FixCom / FixAtoms
    frame.info["md_step"] = int(step)
    frame.info["md_time_fs"] = float(step * timestep_fs)
    frame.info["md_temperature_K"] = float(system.get_temperature())
    frame.info["md_target_temperature_K"] = float(target_K)
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
    ensemble: str = "langevin"
    temperatures_K: tuple[float, ...] = ()
    supercell: int | None = None
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
    temperatures_K: Sequence[float] | None = None,
    ensemble: str | None = None,
    supercell: int | None = None,
) -> tuple[list[Atoms], RunSettings]:
    """Build a preset's structure and run :func:`sample_md` with its settings.

    Any argument left ``None`` takes the preset's value; ``calculator``
    replaces the preset's calculator by name (e.g. ``"emt"``).
    ``temperature_K`` (one temperature) and ``temperatures_K`` (a sweep)
    exclude each other; either replaces the preset's temperature or sweep.
    ``supercell`` (N, for presets built from N x N x N cubic cells) resizes
    the structure. Returns the frames (see :func:`sample_md`) and the
    resolved :class:`RunSettings` (with ``wall_s``, the wall-clock time of
    the MD). Raises :class:`DataError` for an unknown preset or calculator
    or invalid values.
    """
    p = get_preset(name)
    if temperature_K is not None and temperatures_K is not None:
        raise DataError("give either one temperature or a list of temperatures, not both")
    if temperatures_K is not None:
        temps = tuple(_temperature_list(temperatures_K))
    elif temperature_K is not None:
        temps = (float(temperature_K),)
    else:
        temps = tuple(p.temperatures_K) if p.temperatures_K else (p.temperature_K,)
    if supercell is not None:
        _check(int(supercell) == supercell and supercell >= 1,
               f"supercell must be a positive integer, got {supercell!r}")
        supercell = int(supercell)
    p = replace(
        p,
        calculator=p.calculator if calculator is None else str(calculator).strip().lower(),
        temperature_K=temps[0],
        temperatures_K=temps if len(temps) > 1 else None,
        timestep_fs=p.timestep_fs if timestep_fs is None else float(timestep_fs),
        interval=p.interval if interval is None else interval,
        equilibration_fs=p.equilibration_fs if equilibration_fs is None else float(equilibration_fs),
        n_frames=p.n_frames if n_frames is None else n_frames,
        friction_per_fs=p.friction_per_fs if friction is None else float(friction),
        ensemble=p.ensemble if ensemble is None else str(ensemble).strip().lower(),
    )
    _check(p.ensemble in ENSEMBLES, f"ensemble must be one of {', '.join(ENSEMBLES)}, got {p.ensemble!r}")
    calc = make_calculator(p.calculator)  # validates the name before building anything
    atoms = p.build(supercell)
    t0 = time.perf_counter()
    frames = sample_md(
        atoms,
        calc,
        temperature_K=list(temps) if len(temps) > 1 else temps[0],
        timestep_fs=p.timestep_fs,
        n_frames=p.n_frames,
        interval=p.interval,
        equilibration_fs=p.equilibration_fs,
        seed=seed,
        friction=p.friction_per_fs,
        progress=progress,
        ensemble=p.ensemble,
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
        ensemble=p.ensemble,
        temperatures_K=temps,
        supercell=supercell if supercell is not None else p.supercell,
    )
    return frames, settings
