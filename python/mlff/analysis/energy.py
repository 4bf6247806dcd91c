"""Energies, temperature, momentum and net force along a trajectory.

Drift is the slope of a least-squares line through the total energy per atom
(``numpy.polyfit``), in meV/atom/ps; the fluctuation is the RMS of the residuals about
that line (meV/atom), so that drift and noise are reported separately. Temperatures use
``3N - 3`` degrees of freedom (total momentum fixed), as LAMMPS's ``compute temp``.
A direct-force model has no energy: its total energy is not defined, and its heating
shows in the kinetic energy and temperature drifts instead.
"""

from __future__ import annotations

import numpy as np
from ase import units

from . import AnalysisError
from .trajectory import Trajectory

#: amu·(Å/ps)² in eV.
AMU_A2_PER_PS2_IN_EV = units._amu * 1e4 / units._e


def temperature_from_kinetic(ke_eV, n_atoms: int, dof: int | None = None):
    """Kinetic temperature (K) of kinetic energy ``ke_eV`` (scalar or array, eV) with
    ``dof`` degrees of freedom (default ``3 n_atoms - 3``, at least 1)."""
    dof = max(1, 3 * n_atoms - 3) if dof is None else dof
    return 2.0 * np.asarray(ke_eV) / (dof * units.kB)


def kinetic_energy(velocities: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """``Σ_i ½ m_i v_i²`` per frame: velocities [F, N, 3] Å/ps, masses [N] amu -> [F] eV."""
    return 0.5 * np.einsum("fni,n->f", np.asarray(velocities) ** 2, masses) * AMU_A2_PER_PS2_IN_EV


def linear_drift(time_ps: np.ndarray, energy_eV: np.ndarray, n_atoms: int) -> dict:
    """Fit ``E(t)/N = a + b t``: ``{"drift_meV_per_atom_per_ps": b, "rms_fluctuation_meV_per_atom":
    RMS of the residuals, "fit_intercept_meV_per_atom": a}``. Raises :class:`AnalysisError` for
    fewer than 3 points or non-finite values."""
    t = np.asarray(time_ps, dtype=np.float64)
    e = np.asarray(energy_eV, dtype=np.float64) / n_atoms * 1e3
    if len(t) < 3:
        raise AnalysisError(f"a drift needs at least 3 energy values, got {len(t)}")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(t))):
        raise AnalysisError("the energy is not finite along the run; no drift can be fitted")
    slope, intercept = np.polyfit(t, e, 1)
    resid = e - (intercept + slope * t)
    return {"drift_meV_per_atom_per_ps": float(slope), "rms_fluctuation_meV_per_atom": float(np.sqrt(np.mean(resid ** 2))),
            "fit_intercept_meV_per_atom": float(intercept)}


def thermo_series(traj: Trajectory) -> dict:
    """``{"time_ps", "temp_K", "ke_eV", "pe_eV" (or None), "etotal_eV" (or None)}`` arrays: the MD
    program's thermo output when present, else computed from the frames (kinetic energy
    from velocities and masses, potential energy from the frames' energies). Potential and
    total energy are None for a model without energies. Raises :class:`AnalysisError` when
    neither thermo output nor velocities exist."""
    th = traj.thermo
    if th is not None and "ke_eV" in th and "time_ps" in th:
        ke = th["ke_eV"]
        pe = th.get("pe_eV") if traj.has_energy else None
        temp = th.get("temp_K", temperature_from_kinetic(ke, traj.n_atoms))
        return {"time_ps": th["time_ps"] - th["time_ps"][0] + (traj.time_ps[0] if traj.n_frames else 0.0),
                "temp_K": temp, "ke_eV": ke, "pe_eV": pe, "etotal_eV": None if pe is None else pe + ke,
                "volume_A3": th.get("volume_A3")}
    v = traj.require("velocities", "the kinetic energy and temperature (no thermo output either)")
    ke = kinetic_energy(v, traj.masses)
    pe = traj.potential_energy if traj.has_energy else None
    return {"time_ps": traj.time_ps, "temp_K": temperature_from_kinetic(ke, traj.n_atoms), "ke_eV": ke,
            "pe_eV": pe, "etotal_eV": None if pe is None else pe + ke, "volume_A3": None}


def momentum_and_net_force(traj: Trajectory) -> dict:
    """Centre-of-mass momentum ``|Σ m v|`` [F] (amu·Å/ps) and net force ``|Σ F|`` [F] (eV/Å)
    per frame (None where velocities or forces are missing). ``momentum_scale`` and
    ``net_force_relative`` compare them with a sum of N uncorrelated terms (``√N × RMS``
    of the per-atom term): a relative size ~1 means "not conserved at all", ~1e-10
    "conserved to round-off"."""
    out = {"time_ps": traj.time_ps, "momentum": None, "net_force": None}
    n = traj.n_atoms
    if traj.velocities is not None:
        p_atoms = traj.velocities * traj.masses[None, :, None]
        p = np.linalg.norm(p_atoms.sum(axis=1), axis=-1)
        out["momentum"] = p
        out["momentum_scale"] = float(np.sqrt(n) * np.sqrt(np.mean(np.sum(p_atoms ** 2, axis=-1))))
    if traj.forces is not None:
        f = np.linalg.norm(traj.forces.sum(axis=1), axis=-1)
        out["net_force"] = f
        out["net_force_relative"] = f / (np.sqrt(n) * np.sqrt(np.mean(np.sum(traj.forces ** 2, axis=-1))) + 1e-300)
    return out


def energy_summary(traj: Trajectory) -> dict:
    """JSON-ready summary: drift and fluctuation of the total energy (energy models; in a
    thermostatted ensemble it is not a conservation test and is labelled so), drifts of the
    kinetic energy (meV/atom/ps) and temperature (K/ps), mean and standard deviation of T,
    largest centre-of-mass momentum change and net force, and whether both are conserved
    (relative size below 1e-3)."""
    s = thermo_series(traj)
    n = traj.n_atoms
    t = s["time_ps"]
    out = {"ensemble": traj.ensemble, "has_energy": traj.has_energy, "duration_ps": float(t[-1] - t[0]),
           "temperature_mean_K": float(np.mean(s["temp_K"])), "temperature_std_K": float(np.std(s["temp_K"]))}
    finite = np.isfinite(s["ke_eV"])
    if finite.sum() >= 3:
        ke = linear_drift(t[finite], s["ke_eV"][finite], n)
        out["kinetic_drift_meV_per_atom_per_ps"] = ke["drift_meV_per_atom_per_ps"]
        out["temperature_drift_K_per_ps"] = float(np.polyfit(t[finite], s["temp_K"][finite], 1)[0])
    if s["etotal_eV"] is not None and np.isfinite(s["etotal_eV"]).sum() >= 3:
        ok = np.isfinite(s["etotal_eV"])
        out.update(linear_drift(t[ok], s["etotal_eV"][ok], n))
        out["drift_is_conservation_test"] = traj.ensemble in (None, "nve")
        out["pe_mean_eV"] = float(np.mean(s["pe_eV"][ok]))
    else:
        out["drift_meV_per_atom_per_ps"] = None
        out["note"] = "no potential energy (direct-force model): see the kinetic-energy and temperature drifts"
    if s.get("volume_A3") is not None:
        out["volume_mean_A3"] = float(np.mean(s["volume_A3"]))
    mf = momentum_and_net_force(traj)
    if mf["momentum"] is not None:
        change = np.abs(mf["momentum"] - mf["momentum"][0])
        out["com_momentum_max_change_amu_A_per_ps"] = float(np.max(change))
        out["com_momentum_conserved"] = bool(np.max(change) <= 1e-3 * mf["momentum_scale"])
    if mf["net_force"] is not None:
        out["net_force_max_eV_per_A"] = float(np.max(mf["net_force"]))
        out["net_force_zero"] = bool(np.max(mf["net_force_relative"]) < 1e-3)
    return out
