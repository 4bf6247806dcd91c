"""The protocols driven by ASE, for reference calculators LAMMPS does not have (EMT, GFN2-xTB).

:func:`run_ase_protocol` executes the stage list of a :class:`~mlff.md.protocols.Protocol`
(:meth:`~mlff.md.protocols.Protocol.stages`) with the same thermostat and time step as
the LAMMPS template:

* Langevin stages: ``ase.md.langevin.Langevin`` with the protocol's friction, which is
  already in ASE's units (LAMMPS gets ``damp = 10.1805 fs / friction``); the centre of
  mass is held by ``ase.constraints.FixCom`` (LAMMPS: ``fix langevin ... zero yes`` and
  zero initial momentum). A ramped target is updated every ``check_every`` steps.
* NVE stages: ``ase.md.verlet.VelocityVerlet``.
* NPT stages: ``ase.md.langevinbaoab.LangevinBAOAB`` (hydrostatic; thermostat time
  ``1 / friction``, barostat time ``pdamp``). LAMMPS uses ``fix langevin`` + ``fix nph``:
  the same thermostat, a different barostat.

Initial velocities: Maxwell-Boltzmann at T from ``numpy.random.default_rng(seed)``, zero
total momentum, zero angular momentum for molecules, scaled to exactly T (3N - 3 degrees
of freedom), as LAMMPS's ``velocity create ... mom yes rot yes``.

Outputs per seed (``seed_NNN/``): ``traj.extxyz`` (one frame every ``dump_every``
production steps: positions, momenta, forces of the calculator without constraints,
per-atom energies where the calculator has them, ``info["time_ps"]``, ``info["step"]``),
``thermo.csv`` (``step, time_ps, temp_K, pe_eV, ke_eV, etotal_eV[, volume_A3]``, temperature
with 3N - 3 degrees of freedom as LAMMPS), and ``final.extxyz``. The stability check
(:func:`mlff.analysis.structure.bond_deviation`) runs on every recorded frame.
"""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import ConfigError
from .protocols import HALT_GUARDS, Protocol, Stage
from .runner import Potential, base_summary, prepare, structure_elements

#: Calculators an ASE-driven run accepts (names of mlff.data.calculators.make_calculator).
ASE_CALCULATORS = ("emt", "xtb", "gfn2-xtb", "gfn1-xtb")


def _kinetic_temperature(atoms: Atoms) -> tuple[float, float]:
    from ..analysis.energy import temperature_from_kinetic

    ke = float(atoms.get_kinetic_energy())
    return ke, float(temperature_from_kinetic(ke, len(atoms)))


def _initial_velocities(atoms: Atoms, temperature: float, seed: int) -> None:
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    Stationary, ZeroRotation = vd.Stationary, vd.ZeroRotation
    Stationary(atoms)
    if not atoms.pbc.any() and len(atoms) > 2:
        ZeroRotation(atoms)
    _, t_now = _kinetic_temperature(atoms)
    if t_now > 0:
        atoms.set_momenta(atoms.get_momenta() * np.sqrt(temperature / t_now))


def _dynamics(system: Atoms, stage: Stage, timestep_fs: float, rng):
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    dt = timestep_fs * units.fs
    if stage.kind == "nve":
        return VelocityVerlet(system, timestep=dt)
    if stage.kind == "langevin":
        return Langevin(system, timestep=dt, temperature_K=stage.t_start, friction=stage.friction, fixcm=False,
                        rng=rng)
    from ase.md.langevinbaoab import LangevinBAOAB

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using heuristic P_mass")
        return LangevinBAOAB(system, timestep=dt, temperature_K=stage.t_start,
                             externalstress=-stage.pressure_bar * units.bar, hydrostatic=True,  # stress = -P
                             T_tau=1.0 / stage.friction, P_tau=stage.pdamp_ps * 1000.0 * units.fs, rng=rng)


def _frame(system: Atoms, step: int, time_ps: float, per_atom: bool) -> Atoms:
    forces = np.array(system.get_forces(apply_constraint=False))
    results = {"energy": float(system.get_potential_energy()), "forces": forces}
    if per_atom:
        results["energies"] = np.array(system.get_potential_energies())
    frame = Atoms(system.get_chemical_symbols(), positions=system.positions, cell=system.cell, pbc=system.pbc,
                  momenta=system.get_momenta())
    frame.info.update(step=int(step), time_ps=float(time_ps))
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def _run_seed(protocol: Protocol, params: dict, atoms: Atoms, calculator: str, seed: int, run_dir: Path,
              bonds: tuple | None, bar) -> dict:
    """One seed: the stages in order; returns the summary entry of the run."""
    from ase.constraints import FixCom
    from ase.io import write

    from ..analysis.structure import bond_deviation
    from ..data.calculators import make_calculator

    system = atoms.copy()
    system.calc = make_calculator(calculator)
    per_atom = "energies" in getattr(system.calc, "implemented_properties", ())
    _initial_velocities(system, params["temperature"], seed)
    rng = np.random.default_rng(seed + 1)
    dt_fs, every = params["timestep"], int(params["dump_every"])
    traj, thermo_path = run_dir / "traj.extxyz", run_dir / "thermo.csv"
    traj.unlink(missing_ok=True)
    entry = {"seed": seed, "dir": run_dir.name, "trajectory": f"{run_dir.name}/traj.extxyz",
             "thermo": f"{run_dir.name}/thermo.csv", "returncode": 0, "error": None, "halted": None,
             "completed": False, "frames": 0}
    t0 = time.perf_counter()
    prod_step = 0
    with open(thermo_path, "w", newline="") as fd:
        writer = csv.writer(fd)
        periodic = bool(system.pbc.all())
        writer.writerow(["step", "time_ps", "temp_K", "pe_eV", "ke_eV", "etotal_eV"] + (["volume_A3"] if periodic else []))

        def halt(why: str, guard: str) -> bool:
            entry["halted"], entry["halt_reason"] = why, HALT_GUARDS[guard]
            entry["stopped_at_ps"] = prod_step * dt_fs / 1000.0
            return False

        def record(stage: Stage) -> bool:
            """Write a frame + thermo row; False if the run must stop (broken bond, runaway heating)."""
            frame = _frame(system, prod_step, prod_step * dt_fs / 1000.0, per_atom)
            write(traj, frame, format="extxyz", append=True)
            ke, temp = _kinetic_temperature(system)
            pe = frame.get_potential_energy()
            writer.writerow([prod_step, prod_step * dt_fs / 1000.0, temp, pe, ke, pe + ke]
                            + ([system.get_volume()] if periodic else []))
            fd.flush()
            entry["frames"] += 1
            if bonds is not None:
                dev = bond_deviation(frame.positions[None], bonds[0], bonds[1], cells=frame.cell.array[None],
                                     pbc=frame.pbc)[0]
                if dev > params["bond_tol"]:
                    return halt(f"bond deviation {dev:.3f} A > {params['bond_tol']} A at step {prod_step}", "bondcheck")
            if stage.t_runaway is not None and temp > stage.t_runaway:
                return halt(f"temperature {temp:.0f} K > {stage.t_runaway:g} K at step {prod_step}", "runaway")
            if not np.all(np.isfinite(frame.get_forces())):
                entry["error"] = f"non-finite forces at step {prod_step}"
                return False
            return True

        try:
            first_production = True
            for stage in protocol.stages(params):
                if stage.kind != "npt":
                    system.set_constraint(FixCom())
                else:
                    system.set_constraint()
                dyn = _dynamics(system, stage, dt_fs, rng)
                if stage.zero_rotation:
                    from ase.md.velocitydistribution import ZeroRotation

                    dyn.attach(lambda: ZeroRotation(system), interval=1)
                chunk = every if stage.production else max(1, min(stage.check_every, 50))
                if stage.production and first_production:
                    first_production = False
                    if not record(stage):
                        break
                done, stop = 0, False
                while done < stage.steps and not stop:
                    k = min(chunk, stage.steps - done)
                    if stage.t_start != stage.t_end and hasattr(dyn, "set_temperature"):
                        frac = (done + k / 2) / stage.steps
                        dyn.set_temperature(temperature_K=stage.t_start + frac * (stage.t_end - stage.t_start))
                    dyn.run(k)
                    done += k
                    bar.update(k)
                    if stage.production:
                        prod_step += k
                        stop = not record(stage)
                    elif stage.until_within is not None:
                        _, temp = _kinetic_temperature(system)
                        if abs(temp - stage.t_end) <= stage.until_within * stage.t_end:
                            entry["equilibrated_after_steps"] = done
                            break
                if stop:
                    break
            else:
                entry["completed"] = True
        except Exception as exc:  # the calculator failed (e.g. SCF not converged): a failed run
            entry["returncode"] = 1
            entry["error"] = f"{type(exc).__name__}: {exc} (production step {prod_step})"
    entry["wall_s"] = time.perf_counter() - t0
    final = system.copy()
    final.set_constraint()
    final.calc = None
    write(run_dir / "final.extxyz", Atoms(final.get_chemical_symbols(), positions=final.positions, cell=final.cell,
                                          pbc=final.pbc, momenta=final.get_momenta()), format="extxyz")
    return entry


def run_ase_protocol(protocol: Protocol, params: dict, atoms: Atoms, calculator: str, out: Path, source: str = "",
                     base_seed: int = 1, overwrite: bool = False, progress: bool = True) -> dict:
    """Run ``protocol`` with the ASE calculator ``calculator`` (``emt``, ``xtb``, ...),
    one run per seed (``base_seed + k``), into ``out`` (layout of :mod:`mlff.md.runner`).
    Returns the summary (also ``out/summary.json``). Raises :class:`ConfigError` for an
    unknown calculator or a protocol the structure cannot run, :class:`MDError` if the
    first force call fails."""
    from ase.io import write
    from tqdm.auto import tqdm

    from ..analysis.structure import find_bonds
    from ..data.calculators import make_calculator
    from . import MDError

    name = str(calculator).strip().lower()
    if name not in ASE_CALCULATORS:
        raise ConfigError(f"--calculator {calculator!r}: ASE-driven runs take {', '.join(ASE_CALCULATORS)}")
    if protocol.periodic and not atoms.pbc.all():
        raise ConfigError(f"protocol {protocol.name!r} needs a periodic structure; {source or 'the structure'} "
                          "is a molecule (no periodic cell)")
    try:
        probe = atoms.copy()
        probe.calc = make_calculator(name)
        probe.get_forces()
    except ConfigError:
        raise
    except Exception as exc:
        raise MDError(f"calculator {name!r} fails on {source or 'the structure'}: {type(exc).__name__}: {exc}") from None
    out = prepare(out, overwrite)
    potential = Potential("ase", name, structure_elements(atoms), info={"calculator": name})
    summary = base_summary(protocol, params, potential, atoms, source, 1)
    write(out / "start.extxyz", atoms, format="extxyz")
    bonds = None
    if protocol.name == "stability":
        pairs, lengths = find_bonds(atoms)
        summary["bonds"] = [[int(i), int(j), float(d)] for (i, j), d in zip(pairs, lengths)]
        bonds = (pairs, lengths)
    n_seeds = int(params["seeds"])
    planned = sum(s.steps for s in protocol.stages(params) if s.until_within is None)
    for k in range(n_seeds):
        run_dir = out / f"seed_{k:03d}"
        run_dir.mkdir(exist_ok=True)
        desc = f"{protocol.name} {name} (ASE)" + (f" seed {k + 1}/{n_seeds}" if n_seeds > 1 else "")
        with tqdm(total=planned, unit="step", desc=desc, disable=not progress, leave=False) as bar:
            entry = _run_seed(protocol, params, atoms, name, base_seed + k, run_dir, bonds, bar)
        summary["runs"].append(entry)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
