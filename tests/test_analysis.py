"""Known-answer tests of mlff.analysis (no LAMMPS): g(r), MSD and unwrapping, drift, VDOS,
the stability criterion, the readers, and clear errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

from mlff.analysis import AnalysisError
from mlff.analysis.analyze import analyze
from mlff.analysis.dynamics import (diffusion_coefficient, image_flags_from_jumps, msd, unwrapped_positions, vacf,
                                    vdos)
from mlff.analysis.energy import kinetic_energy, linear_drift, temperature_from_kinetic
from mlff.analysis.structure import find_bonds, rdf, rdf_difference, stability_verdict
from mlff.analysis.trajectory import ASE_VELOCITY_TO_A_PER_PS, Trajectory, load_run, read_lammps_log

from conftest import molecule

C_CM_PER_PS = 2.99792458e-2


def make_traj(positions, cell=None, dt=0.01, velocities=None, symbols=None, **kw) -> Trajectory:
    """A Trajectory of F frames: positions [F, N, 3], one cell for all frames (None: molecule)."""
    positions = np.asarray(positions, dtype=np.float64)
    f, n, _ = positions.shape
    cells = np.zeros((f, 3, 3)) if cell is None else np.broadcast_to(np.asarray(cell, dtype=float), (f, 3, 3)).copy()
    symbols = symbols or ["Cu"] * n
    return Trajectory(time_ps=np.arange(f) * dt, positions=positions, cells=cells, pbc=np.array([cell is not None] * 3),
                      symbols=symbols, masses=np.full(n, 63.546) if symbols[0] == "Cu" else np.ones(n),
                      velocities=velocities, source="synthetic", **kw)


# ---------------------------------------------------------------- g(r)

def test_rdf_of_an_ideal_gas_is_one():
    rng = np.random.default_rng(0)
    L = 20.0
    traj = make_traj(rng.uniform(0, L, size=(30, 400, 3)), np.eye(3) * L)
    out = rdf(traj, r_max=9.0, bins=18)
    sel = out["r"] > 2.0  # small shells hold few pairs
    assert np.all(np.abs(out["g"][sel] - 1.0) < 0.06), out["g"]
    assert abs(np.mean(out["g"][sel]) - 1.0) < 0.01


@pytest.mark.parametrize("cubic", [True, False])
def test_rdf_of_fcc_has_its_shells_and_coordination_numbers(cubic):
    a = 3.6
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(4) if cubic else bulk("Cu", "fcc", a=a).repeat(7)
    traj = make_traj(atoms.positions[None], atoms.cell.array)  # primitive cell: triclinic, not LAMMPS-shaped
    out = rdf(traj, r_max=5.4, bins=540)
    r, g, n_r = out["r"], out["g"], out["n_r"]
    shells = np.array([a / np.sqrt(2), a, a * np.sqrt(1.5), a * np.sqrt(2)])  # 12, 6, 24, 12 neighbours
    peaks = r[np.flatnonzero(g > 0)]
    for shell in shells:
        assert np.min(np.abs(peaks - shell)) < 0.011
    # every non-zero bin is at a shell distance
    assert np.all(np.min(np.abs(peaks[:, None] - shells[None]), axis=1) < 0.011)
    for between, coordination in [(2.2, 0), (3.0, 12), (4.0, 18), (4.8, 42), (5.3, 54)]:
        assert n_r[np.searchsorted(r, between)] == pytest.approx(coordination, abs=1e-3)


def test_rdf_of_a_molecule_is_a_normalised_pair_distance_distribution():
    atoms = molecule("toluene")
    traj = make_traj(atoms.positions[None], symbols=atoms.get_chemical_symbols())
    out = rdf(traj, bins=400)
    assert out["kind"] == "P(r)"
    assert np.trapezoid(out["g"], out["r"]) == pytest.approx(1.0, abs=1e-6)
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)[np.triu_indices(15, 1)]
    assert np.sum(out["g"] * np.diff(out["r"])[0] * (out["r"] < 1.2)) == pytest.approx(np.mean(d < 1.2), abs=1e-6)
    assert rdf_difference(out["r"], out["g"], out["g"]) == 0.0


def test_rdf_radius_beyond_half_the_cell_is_refused():
    traj = make_traj(np.zeros((1, 2, 3)) + [[0, 0, 0], [1, 1, 1]], np.eye(3) * 10.0)
    with pytest.raises(AnalysisError, match="half the cell width"):
        rdf(traj, r_max=5.5)


# ---------------------------------------------------------------- unwrapping and MSD

def _wrap(x, cell):
    frac = x @ np.linalg.inv(cell)
    return (frac - np.floor(frac)) @ cell


@pytest.mark.parametrize("tilted", [False, True])
def test_unwrapping_across_periodic_boundaries(tilted):
    rng = np.random.default_rng(1)
    cell = np.array([[8.0, 0, 0], [2.5 if tilted else 0, 7.0, 0], [-1.0 if tilted else 0, 1.5 if tilted else 0, 9.0]])
    steps = rng.normal(scale=0.7, size=(200, 20, 3))
    steps[:, 0] = [1.9, -2.3, 3.1]  # one atom crosses boundaries every few frames
    true = np.cumsum(steps, axis=0) + rng.uniform(0, 5, size=(20, 3))
    wrapped = _wrap(true, cell)
    assert np.abs(wrapped - true).max() > 20  # the test would prove nothing otherwise
    traj = make_traj(wrapped, cell)
    shift = true[0] - wrapped[0]
    np.testing.assert_allclose(unwrapped_positions(traj), true - shift, atol=2e-4)  # freud works in float32
    # exact image flags (as in a LAMMPS dump) give the same
    images = np.rint((true - wrapped) @ np.linalg.inv(cell)).astype(int)
    traj.images = images
    np.testing.assert_allclose(unwrapped_positions(traj), true, atol=2e-4)
    # positions that are already continuous come back unchanged
    assert np.array_equal(image_flags_from_jumps(true, np.broadcast_to(cell, (200, 3, 3))), np.zeros_like(images))


def test_msd_of_a_ballistic_trajectory_is_v2_t2():
    rng = np.random.default_rng(2)
    n, f, dt = 50, 100, 0.01
    v = rng.normal(size=(n, 3))
    v -= v.mean(axis=0)  # equal masses: zero centre-of-mass velocity
    t = np.arange(f) * dt
    cell = np.eye(3) * 6.0
    x = _wrap(rng.uniform(0, 6, (n, 3))[None] + t[:, None, None] * v[None], cell)
    out = msd(make_traj(x, cell, dt=dt))
    expected = np.mean(np.sum(v ** 2, axis=1)) * out["t_ps"] ** 2
    np.testing.assert_allclose(out["msd_A2"], expected, rtol=1e-4, atol=1e-5)
    assert diffusion_coefficient(out["t_ps"], out["msd_A2"])["alpha"] == pytest.approx(2.0, abs=0.02)


def test_msd_of_a_random_walk_gives_its_diffusion_coefficient_and_removes_com_drift():
    rng = np.random.default_rng(3)
    n, f, dt, sigma = 1000, 400, 0.01, 0.05
    D = sigma ** 2 / (2 * dt)  # Å²/ps: <Δx²> = σ² per step and component = 2 D dt
    steps = rng.normal(scale=sigma, size=(f, n, 3))
    x = np.cumsum(steps, axis=0) + np.array([0.3, 0.0, 0.0]) * np.arange(f)[:, None, None]  # + uniform drift
    cell = np.eye(3) * 12.0
    out = msd(make_traj(_wrap(x, cell), cell, dt=dt))
    fit = diffusion_coefficient(out["t_ps"], out["msd_A2"])
    assert fit["D_A2_per_ps"] == pytest.approx(D, rel=0.05)
    assert fit["alpha"] == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- energy

def test_drift_of_a_linear_energy_and_its_fluctuation():
    t = np.linspace(0, 10, 1001)
    n = 15
    slope = 0.37  # meV/atom/ps
    e = (-50.0 + n * slope * 1e-3 * t) + 0.002 * np.cos(2 * np.pi * 3.0 * t)  # eV; cos: orthogonal to 1 and t
    out = linear_drift(t, e, n)
    assert out["drift_meV_per_atom_per_ps"] == pytest.approx(slope, rel=1e-3)
    assert out["rms_fluctuation_meV_per_atom"] == pytest.approx(2.0 / n / np.sqrt(2), rel=1e-2)
    assert linear_drift(t, np.full_like(t, -3.0), n)["drift_meV_per_atom_per_ps"] == pytest.approx(0.0, abs=1e-12)


def test_kinetic_energy_and_temperature_match_ase():
    atoms = molecule("toluene")
    rng = np.random.default_rng(4)
    atoms.set_velocities(rng.normal(size=(15, 3)) * 0.01)  # Å per ASE time unit
    from mlff.analysis.trajectory import ASE_VELOCITY_TO_A_PER_PS

    v = atoms.get_velocities()[None] * ASE_VELOCITY_TO_A_PER_PS
    ke = kinetic_energy(v, atoms.get_masses())[0]
    assert ke == pytest.approx(atoms.get_kinetic_energy(), rel=1e-12)
    assert temperature_from_kinetic(ke, 15, dof=45) == pytest.approx(atoms.get_temperature(), rel=1e-12)


# ---------------------------------------------------------------- VACF / VDOS

def test_vdos_of_a_harmonic_trajectory_peaks_at_its_frequency():
    nu = 1500.0  # cm⁻¹
    f = nu * C_CM_PER_PS  # 1/ps
    dt = 0.002
    t = np.arange(3000) * dt
    rng = np.random.default_rng(5)
    phases = rng.uniform(0, 2 * np.pi, size=(10, 3))
    v = np.cos(2 * np.pi * f * t[:, None, None] + phases[None])
    traj = make_traj(np.zeros((len(t), 10, 3)), dt=dt, velocities=v)
    out = vdos(traj, max_lag_ps=2.0)
    assert abs(out["peak_cm1"] - nu) < out["resolution_cm1"]
    assert np.trapezoid(out["dos"], out["wavenumber_cm1"]) == pytest.approx(1.0, rel=1e-9)
    c = vacf(traj, 1.0)
    np.testing.assert_allclose(c["vacf"], np.cos(2 * np.pi * f * c["t_ps"]), atol=0.02)


# ---------------------------------------------------------------- stability

@pytest.mark.parametrize("stretch, stable", [(0.6, False), (0.4, True)])
def test_stability_criterion_fires_above_half_an_angstrom(stretch, stable):
    atoms = molecule("toluene")
    pairs, d0 = find_bonds(atoms)
    assert len(pairs) == 15  # 6 ring C-C, 1 C-CH3, 8 C-H
    frames = np.repeat(atoms.positions[None], 10, axis=0)
    k = next(b for b, (i, j) in enumerate(pairs) if "H" in (atoms[i].symbol, atoms[j].symbol))
    i, j = pairs[k]
    h = j if atoms[j].symbol == "H" else i
    other = i if h == j else j
    unit = (atoms.positions[h] - atoms.positions[other]) / d0[k]
    frames[6:, h] += stretch * unit  # the C-H bond is stretched from frame 6 on
    traj = make_traj(frames, symbols=atoms.get_chemical_symbols(), dt=0.005)
    verdict = stability_verdict(traj, pairs, d0)
    assert verdict["stable"] is stable
    if not stable:
        assert verdict["time_to_failure_ps"] == pytest.approx(0.03)
        assert f"{h} H" in verdict["reason"]


def test_stability_criterion_fires_on_non_finite_forces_and_on_a_stopped_run():
    atoms = molecule("toluene")
    pairs, d0 = find_bonds(atoms)
    frames = np.repeat(atoms.positions[None], 5, axis=0)
    forces = np.zeros_like(frames)
    forces[3, 2, 1] = np.nan
    traj = make_traj(frames, symbols=atoms.get_chemical_symbols(), forces=forces)
    verdict = stability_verdict(traj, pairs, d0)
    assert not verdict["stable"] and verdict["failure_frame"] == 3 and "non-finite forces" in verdict["reason"]
    traj = make_traj(frames, symbols=atoms.get_chemical_symbols(),
                     run_info={"returncode": 1, "error": "ERROR: Lost atoms", "completed": False})
    verdict = stability_verdict(traj, pairs, d0)
    assert not verdict["stable"] and verdict["failure_frame"] == 4 and "Lost atoms" in verdict["reason"]


# ---------------------------------------------------------------- readers and bad input

DUMP_HEADER = "ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\n"


def _write_dump(path, columns, rows_of_frame, n_frames=5):
    with open(path, "w") as fd:
        for k in range(n_frames):
            fd.write(DUMP_HEADER.format(step=10 * k) + f"ITEM: ATOMS {columns}\n")
            for row in rows_of_frame(k):
                fd.write(" ".join(str(x) for x in row) + "\n")


def test_dump_reader_units_images_and_incomplete_last_frame(tmp_path):
    path = tmp_path / "traj.dump"
    cols = "id element x y z c_img[1] c_img[2] c_img[3] vx vy vz f_fpot[1] f_fpot[2] f_fpot[3] c_pe"
    _write_dump(path, cols, lambda k: [[2, "Cu", 9.5, 1, 1, k, 0, 0, 1.5, 0, 0, 0.1, 0, 0, -3.0],
                                       [1, "Cu", 1, 1, 1, 0, 0, -1, -1.5, 0, 0, -0.1, 0, 0, -3.5]])
    with open(path, "a") as fd:  # a crashed run's half-written frame
        fd.write(DUMP_HEADER.format(step=50) + f"ITEM: ATOMS {cols}\n1 Cu 1 1")
    traj = load_run(path, timestep_fs=2.0)[0]
    assert traj.n_frames == 5 and traj.periodic
    np.testing.assert_allclose(traj.time_ps, [0, 0.02, 0.04, 0.06, 0.08])
    np.testing.assert_allclose(traj.velocities[:, :, 0], [[-1.5, 1.5]] * 5)  # Å/ps, sorted by id
    np.testing.assert_allclose(traj.energies, [[-3.5, -3.0]] * 5)
    np.testing.assert_allclose(traj.forces[:, :, 0], [[-0.1, 0.1]] * 5)
    assert traj.images[3, 1, 0] == 3 and traj.images[0, 0, 2] == -1
    assert unwrapped_positions(traj)[4, 1, 0] == pytest.approx(49.5)


def test_analyze_refuses_a_dump_without_velocities_naming_the_file(tmp_path):
    path = tmp_path / "novel.dump"
    _write_dump(path, "id element x y z", lambda k: [[1, "Cu", 1 + 0.01 * k, 1, 1], [2, "Cu", 3, 3, 3]], n_frames=20)
    with pytest.raises(AnalysisError, match=r"novel\.dump has no velocities .*VDOS"):
        analyze(path, timestep_fs=1.0, plots=False, out=tmp_path / "a")


def test_dump_without_time_step_is_refused(tmp_path):
    path = tmp_path / "x.dump"
    _write_dump(path, "id element x y z", lambda k: [[1, "Cu", 1, 1, 1], [2, "Cu", 3, 3, 3]])
    with pytest.raises(AnalysisError, match="time step"):
        load_run(path)


def test_log_without_thermo_is_refused_naming_the_file(tmp_path):
    log = tmp_path / "log.lammps"
    log.write_text("LAMMPS (22 Jul 2025)\nunits metal\nERROR: Unrecognized pair style 'foo'\n")
    with pytest.raises(AnalysisError, match=r"log\.lammps has no thermo output"):
        read_lammps_log(log)


def test_log_reader_keeps_production_rows_of_a_crashed_run(tmp_path):
    log = tmp_path / "log.lammps"
    log.write_text("Step Temp TotEng\n0 10 -1\n5 11 -1\nLoop time of 0.1 on 1 procs for 5 steps\n"
                   "MLFF_PRODUCTION nve\nStep Time Temp PotEng KinEng TotEng\n0 0 300 -5 1 -4\n"
                   "WARNING: something\n10 0.005 301 -5.1 1.1 -4\n20 0.01 nan nan nan nan\n")
    th = read_lammps_log(log)
    np.testing.assert_allclose(th["step"], [0, 10, 20])
    assert th["temp_K"][1] == 301 and np.isnan(th["etotal_eV"][2])


def test_mismatched_reference_is_refused(tmp_path):
    from ase.io import write

    def frames(atoms, n=12):
        out = []
        for k in range(n):
            a = atoms.copy()
            a.set_momenta(np.full((len(a), 3), 0.01 * (k + 1)))
            a.info["time_ps"] = 0.01 * k
            out.append(a)
        return out

    write(tmp_path / "tol.extxyz", frames(molecule("toluene")))
    write(tmp_path / "benz.extxyz", frames(molecule("benzene")))
    with pytest.raises(AnalysisError, match=r"reference .*benz\.extxyz is a different molecule"):
        analyze(tmp_path / "tol.extxyz", reference=tmp_path / "benz.extxyz", plots=False, out=tmp_path / "a")
    cu = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    write(tmp_path / "cu.extxyz", frames(cu))
    with pytest.raises(AnalysisError, match=r"reference .*cu\.extxyz is periodic"):
        analyze(tmp_path / "tol.extxyz", reference=tmp_path / "cu.extxyz", plots=False, out=tmp_path / "b")


def test_analyze_an_extxyz_pair_end_to_end(tmp_path):
    """Two synthetic 'runs' of a harmonic Cu crystal: analysis.json holds every section and the
    comparison entries; identical runs compare as identical."""
    from ase.io import write

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    rng = np.random.default_rng(6)
    omega = 2 * np.pi * 6.0  # 6 THz
    phases = rng.uniform(0, 2 * np.pi, size=(len(atoms), 3))
    frames = []
    for k in range(200):
        t = 0.005 * k
        a = atoms.copy()
        a.positions += 0.05 * np.sin(omega * t + phases)
        v = 0.05 * omega * np.cos(omega * t + phases)  # Å/ps
        a.set_velocities(v / ASE_VELOCITY_TO_A_PER_PS)
        a.info["time_ps"] = t
        frames.append(a)
    write(tmp_path / "run.extxyz", frames)
    write(tmp_path / "ref.extxyz", frames)
    result = analyze(tmp_path / "run.extxyz", reference=tmp_path / "ref.extxyz", out=tmp_path / "out", plots=False)
    a = result["analysis"]
    assert a["rdf"]["error_vs_reference"] == 0.0 and a["vdos"]["difference_vs_reference"] == 0.0
    assert a["vdos"]["peak_cm1"] == pytest.approx(6.0 / C_CM_PER_PS, abs=a["vdos"]["resolution_cm1"])
    assert a["rdf"]["first_peak_A"] == pytest.approx(3.6 / np.sqrt(2), abs=0.1)
    assert abs(a["msd"]["D_A2_per_ps"]) < 1e-3 and a["stability"]["n_stable"] == 1
    saved = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert saved["analysis"]["rdf"]["error_vs_reference"] == 0.0
    assert set(np.load(tmp_path / "out" / "curves.npz").files) >= {"run_rdf_g", "ref_rdf_g", "run_vdos", "labels"}


def test_first_peak_is_the_first_not_the_highest():
    from mlff.analysis.analyze import first_peak

    r = np.linspace(0.0, 8.0, 801)
    g = 2.0 * np.exp(-((r - 2.35) / 0.05) ** 2) + 3.0 * np.exp(-((r - 3.84) / 0.05) ** 2) + 0.05 * np.sin(9 * r) ** 2
    assert first_peak(r, g) == pytest.approx(2.35, abs=0.011)
