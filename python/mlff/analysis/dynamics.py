"""Dynamics: unwrapped positions, MSD and diffusion, velocity autocorrelation and VDOS.

* Unwrapping: with image flags (LAMMPS dumps of ``mlff md``), ``freud.box.Box.unwrap``
  per frame, exact. Without them (ASE trajectories, extxyz), image flags are rebuilt
  from consecutive frames: a fractional coordinate that jumps by more than half a cell
  crossed a boundary (valid when no atom moves half a cell between frames). Positions
  that are already continuous come back unchanged.
* MSD: ``freud.msd.MSD`` (``mode="window"``: every time origin, FFT algorithm of
  Calandrini et al., J. Chem. Phys. 2011) on unwrapped positions with the
  centre-of-mass motion removed per frame. D from the Einstein relation
  ``MSD = 6 D t`` fitted over a window of lags (default 10 % to 50 % of the run).
* VACF: the mass-weighted velocity autocorrelation ``C(t) = <Σ_i m_i v_i(0)·v_i(t+0)>``
  averaged over all time origins, computed through the Wiener–Khinchin theorem (the
  autocorrelation is the inverse FFT of the power spectrum; zero-padded to 2F to avoid
  circular wrap-around). VDOS: the cosine transform of ``C(t)`` up to a maximum lag, with
  a Hann window, normalised to unit area over wavenumber (cm⁻¹) (the frequency spectrum
  as the Fourier transform of the VACF: Dickey & Paskin, Phys. Rev. 188, 1407 (1969)).
"""

from __future__ import annotations

import numpy as np

from . import AnalysisError
from .structure import _box, _lammps_frame
from .trajectory import Trajectory

#: Speed of light in cm/ps: a frequency in THz (1/ps) divided by this is a wavenumber in cm⁻¹.
C_CM_PER_PS = 2.99792458e-2


def _uniform_dt(traj: Trajectory) -> float:
    t = np.asarray(traj.time_ps)
    if len(t) < 2:
        raise AnalysisError(f"{traj.source}: at least 2 frames are needed, got {len(t)}")
    dt = np.diff(t)
    if not np.allclose(dt, dt[0], rtol=1e-6, atol=1e-9) or dt[0] <= 0:
        raise AnalysisError(f"{traj.source}: frames are not evenly spaced in time "
                            f"(intervals {dt.min():g} to {dt.max():g} ps)")
    return float(dt[0])


def image_flags_from_jumps(positions: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Image flags [F, N, 3] (int, frame 0 = 0) that make ``positions`` [F, N, 3] continuous in
    the cells [F, 3, 3]: ``n_t = n_{t-1} - round(s_t - s_{t-1})`` on fractional coordinates."""
    frac = np.einsum("fni,fij->fnj", positions, np.linalg.inv(cells))
    jumps = np.rint(np.diff(frac, axis=0))
    images = np.zeros_like(frac)
    images[1:] = -np.cumsum(jumps, axis=0)
    return images.astype(np.int64)


def unwrapped_positions(traj: Trajectory) -> np.ndarray:
    """Continuous positions [F, N, 3] Å: molecules as stored; periodic systems with the
    dump's image flags or, without them, flags from :func:`image_flags_from_jumps`
    (freud.box.Box.unwrap per frame, in the frame of each cell's LAMMPS orientation)."""
    if not traj.periodic:
        return np.asarray(traj.positions, dtype=np.float64)
    images = traj.images if traj.images is not None else image_flags_from_jumps(traj.positions, traj.cells)
    out = np.empty_like(traj.positions, dtype=np.float64)
    for k in range(traj.n_frames):
        x = _lammps_frame(traj.cells[k], traj.positions[k])
        out[k] = _box(traj.cells[k], True).unwrap(x, images[k])
    return out


def remove_com(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Positions [F, N, 3] minus each frame's centre of mass (masses [N])."""
    com = np.einsum("fni,n->fi", positions, masses) / masses.sum()
    return positions - com[:, None, :]


def msd(traj: Trajectory) -> dict:
    """Mean squared displacement over all time origins: ``{"t_ps": [F] lags, "msd_A2": [F]}``
    (freud.msd.MSD, window mode) of unwrapped, centre-of-mass-corrected positions. Raises
    :class:`AnalysisError` for unevenly spaced frames."""
    import freud

    dt = _uniform_dt(traj)
    x = remove_com(unwrapped_positions(traj), traj.masses)
    values = freud.msd.MSD(mode="window").compute(x).msd
    return {"t_ps": np.arange(traj.n_frames) * dt, "msd_A2": np.asarray(values, dtype=np.float64)}


def diffusion_coefficient(t_ps: np.ndarray, msd_A2: np.ndarray, window: tuple[float, float] = (0.1, 0.5),
                          dim: int = 3) -> dict:
    """Einstein relation ``MSD(t) = 2 dim D t`` fitted (least squares with intercept) over lags
    in ``window`` (fractions of the longest lag): ``{"D_A2_per_ps", "D_cm2_per_s", "fit_ps":
    [t0, t1], "alpha"}``, ``alpha`` the log-log slope over the window (1 when diffusive, 2
    ballistic, ~0 in a solid). Raises :class:`AnalysisError` with fewer than 3 points in the
    window."""
    t, m = np.asarray(t_ps), np.asarray(msd_A2)
    t0, t1 = window[0] * t[-1], window[1] * t[-1]
    sel = (t >= t0) & (t <= t1) & (t > 0)
    if sel.sum() < 3:
        raise AnalysisError(f"the MSD has {sel.sum()} points between {t0:g} and {t1:g} ps; a diffusion "
                            "coefficient needs at least 3 (a longer run or more frames)")
    slope = np.polyfit(t[sel], m[sel], 1)[0]
    pos = sel & (m > 0)
    alpha = float(np.polyfit(np.log(t[pos]), np.log(m[pos]), 1)[0]) if pos.sum() >= 2 else float("nan")
    d = slope / (2 * dim)
    return {"D_A2_per_ps": float(d), "D_cm2_per_s": float(d * 1e-4), "fit_ps": [float(t0), float(t1)],
            "alpha": alpha}


def vacf(traj: Trajectory, max_lag_ps: float | None = None) -> dict:
    """Mass-weighted velocity autocorrelation averaged over all origins (Wiener–Khinchin):
    ``{"t_ps": [L], "vacf": [L] normalised to C(0) = 1, "c0_eV": C(0) / 2 = kinetic energy
    (eV)}`` up to ``max_lag_ps`` (default: half the run). Raises :class:`AnalysisError` naming
    the file if it has no velocities or uneven frames."""
    from .energy import AMU_A2_PER_PS2_IN_EV

    v = traj.require("velocities", "the velocity autocorrelation and the VDOS")
    dt = _uniform_dt(traj)
    n = traj.n_frames
    lags = n // 2 if max_lag_ps is None else min(n, int(round(max_lag_ps / dt)) + 1)
    lags = max(lags, 2)
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    weighted = v * np.sqrt(traj.masses)[None, :, None]
    spec = np.fft.rfft(weighted.reshape(n, -1), n=nfft, axis=0)
    acf = np.fft.irfft(np.abs(spec) ** 2, n=nfft, axis=0)[:lags].sum(axis=1)
    acf /= (n - np.arange(lags))
    if not acf[0] > 0:
        raise AnalysisError(f"{traj.source}: all velocities are zero; no autocorrelation")
    return {"t_ps": np.arange(lags) * dt, "vacf": acf / acf[0], "c0_eV": float(acf[0] * AMU_A2_PER_PS2_IN_EV)}


def vdos(traj: Trajectory, max_lag_ps: float = 2.0) -> dict:
    """Vibrational density of states: ``{"wavenumber_cm1": [K], "dos": [K] (∫ dos dν̃ = 1, cm),
    "peak_cm1", "nyquist_cm1", "resolution_cm1", "vacf_t_ps", "vacf"}`` from the Hann-windowed
    VACF (returned too) up to ``max_lag_ps`` (capped at half the run). Raises :class:`AnalysisError` as :func:`vacf`."""
    dt = _uniform_dt(traj)
    lag_ps = min(max_lag_ps, dt * (traj.n_frames // 2))
    corr = vacf(traj, lag_ps)
    c = corr["vacf"]
    m = len(c)
    y = c * np.cos(0.5 * np.pi * np.arange(m) / m) ** 2  # the decaying half of a Hann window
    nfft = 1 << int(np.ceil(np.log2(16 * m)))
    # cosine transform of the even function C(|t|): dt (C_0 + 2 Σ_k C_k cos(ω k dt))
    spec = (2.0 * np.fft.rfft(y, n=nfft).real - y[0]) * dt
    freq = np.fft.rfftfreq(nfft, d=dt) / C_CM_PER_PS
    spec = np.clip(spec, 0.0, None)
    area = np.trapezoid(spec, freq)
    if not area > 0:
        raise AnalysisError(f"{traj.source}: the vibrational spectrum is empty")
    dos = spec / area
    return {"wavenumber_cm1": freq, "dos": dos, "peak_cm1": float(freq[np.argmax(dos)]),
            "nyquist_cm1": float(0.5 / dt / C_CM_PER_PS), "resolution_cm1": float(1.0 / (2 * m * dt) / C_CM_PER_PS),
            "vacf_t_ps": corr["t_ps"], "vacf": c}


def vdos_difference(ours: dict, reference: dict) -> float:
    """``∫ |dos - dos_ref| dν̃`` (0 to 2) over the wavenumbers both cover, the reference
    interpolated onto ours."""
    x = ours["wavenumber_cm1"]
    top = min(x[-1], reference["wavenumber_cm1"][-1])
    sel = x <= top
    ref = np.interp(x[sel], reference["wavenumber_cm1"], reference["dos"])
    return float(np.trapezoid(np.abs(ours["dos"][sel] - ref), x[sel]))
