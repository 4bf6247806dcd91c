"""Tests of mlff.data: molecules, calculators, MD sampling, extxyz I/O, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from mlff.data.calculators import make_calculator
from mlff.data.generate import PRESETS, generate_preset, get_preset, sample_md
from mlff.data.io import read_dataset, write_dataset
from mlff.data.molecules import bulk_cu, diamond_si, molecule, molecule_names
from mlff.errors import DataError

FORMULAS = {
    "benzene": "C6H6",
    "toluene": "C7H8",
    "ethanol": "C2H6O",
    "aspirin": "C9H8O4",
    "naphthalene": "C10H8",
    "uracil": "C4H4N2O2",
    "malonaldehyde": "C3H4O2",
    "salicylic_acid": "C7H6O3",
}


def _cli(argv: list[str]) -> int:
    from mlff.cli import main

    return main(argv)


# --------------------------------------------------------------- structures


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_molecule_formula_and_geometry(name):
    atoms = molecule(name)
    assert atoms.get_chemical_formula(mode="hill") == FORMULAS[name]
    assert not atoms.pbc.any()
    assert np.allclose(atoms.cell.array, 0.0)
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert d.min() > 0.9
    # bonded: every atom has a neighbour within 1.7 A (embedding did not fail)
    assert np.all(d.min(axis=1) < 1.7)


def test_molecule_names_and_determinism():
    assert sorted(molecule_names()) == sorted(FORMULAS)
    a, b = molecule("toluene"), molecule("Toluene")
    assert np.array_equal(a.positions, b.positions)
    assert molecule("salicylic acid").get_chemical_formula(mode="hill") == "C7H6O3"


def test_malonaldehyde_is_hydrogen_bonded_enol():
    atoms = molecule("malonaldehyde")
    o = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "O"]
    assert atoms.get_distance(*o) < 3.0


def test_unknown_molecule_lists_names():
    with pytest.raises(DataError, match="toluene"):
        molecule("unobtainium")


def test_crystals():
    cu = bulk_cu(2)
    assert len(cu) == 32 and cu.pbc.all()
    assert np.allclose(cu.cell.lengths(), 2 * 3.615)
    si = diamond_si(1)
    assert len(si) == 8 and np.allclose(si.cell.lengths(), 5.431)
    with pytest.raises(DataError):
        bulk_cu(0)


def test_calculators():
    assert isinstance(make_calculator("emt"), EMT)
    assert type(make_calculator("xtb")).__name__ == "TBLite"
    assert type(make_calculator("GFN2-xTB")).__name__ == "TBLite"
    assert type(make_calculator("eam-cu")).__name__ == "LammpsPotential"
    assert type(make_calculator("sw-si")).__name__ == "LammpsPotential"
    with pytest.raises(DataError, match="emt"):
        make_calculator("dft-of-the-gods")


def test_presets():
    p = get_preset("toluene")
    assert (p.calculator, p.temperature_K, p.timestep_fs, p.interval, p.equilibration_fs) == (
        "xtb", 500.0, 0.5, 10, 1000.0)
    assert get_preset("cu-emt").structure().get_chemical_formula() == "Cu32"
    assert {"benzene", "ethanol", "aspirin", "cu-emt", "cu-eam", "cu-eam-melt", "si-sw", "au6-emt",
            "pt110-au-emt"} <= set(PRESETS)
    with pytest.raises(DataError, match="toluene"):
        get_preset("nope")


# ------------------------------------------------------------------ sampling


def _tiny_cu(seed=0, n_frames=4):
    return sample_md(bulk_cu(2), "emt", temperature_K=500, timestep_fs=1.0, n_frames=n_frames,
                     interval=3, equilibration_fs=5, seed=seed, progress=False)


def test_sample_md_labels_and_reproducibility():
    a = _tiny_cu(seed=7)
    b = _tiny_cu(seed=7)
    c = _tiny_cu(seed=8)
    assert len(a) == 4
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.positions, fb.positions)
        assert fa.get_potential_energy() == fb.get_potential_energy()
        assert np.array_equal(fa.get_forces(), fb.get_forces())
    assert not np.allclose(a[-1].positions, c[-1].positions)
    # frames differ from each other and carry stress (periodic EMT)
    assert not np.allclose(a[0].positions, a[1].positions)
    assert a[0].get_stress().shape == (6,)
    assert [f.info["md_step"] for f in a] == [8, 11, 14, 17]


def test_sample_md_invalid_settings():
    with pytest.raises(DataError):
        sample_md(bulk_cu(1), "emt", 300, 1.0, n_frames=0, interval=1, progress=False)
    with pytest.raises(DataError):
        sample_md(bulk_cu(1), "emt", 300, -1.0, n_frames=1, interval=1, progress=False)


def test_cu_emt_roundtrip_matches_fresh_single_points(tmp_path):
    out = tmp_path / "cu.extxyz"
    assert _cli(["data", "cu-emt", "-o", str(out), "--frames", "5", "--interval", "2",
                 "--equilibration", "4", "--seed", "3", "--no-progress"]) == 0
    frames = read_dataset(out, require=("energy", "forces", "stress"))
    assert len(frames) == 5
    for f in frames:
        assert f.calc is None
        assert isinstance(f.info["energy"], float)
        assert f.arrays["forces"].shape == (32, 3) and f.arrays["forces"].dtype == np.float64
        ref = Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=f.pbc)
        ref.calc = EMT()
        assert f.info["energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(f.arrays["forces"], ref.get_forces(), atol=1e-6)
        np.testing.assert_allclose(f.info["stress"], ref.get_stress(), atol=1e-6)


def test_calculator_override_on_a_preset():
    # --calculator swaps the reference; EMT has H/C/O parameters, so it runs.
    frames, s = generate_preset("ethanol", n_frames=2, interval=1, equilibration_fs=0,
                                calculator="emt", progress=False)
    assert s.calculator == "emt" and len(frames) == 2
    # labels are the calculator's own forces, not the FixCom-constrained MD forces
    # (ethanol has mixed masses, so the two differ)
    for f in frames:
        assert not f.constraints
        ref = Atoms(f.numbers, positions=f.positions)
        ref.calc = EMT()
        np.testing.assert_allclose(f.get_forces(), ref.get_forces(), atol=1e-10)


def test_xtb_toluene_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "sub" / "toluene.extxyz"
    args = ["data", "toluene", "-o", str(out), "--frames", "3", "--interval", "2",
            "--equilibration", "2", "--seed", "5", "--no-progress"]
    assert _cli(args) == 0
    summary = capsys.readouterr().out
    assert "3 frames" in summary and "15 atoms" in summary and str(out) in summary
    frames = read_dataset(out)
    assert len(frames) == 3
    assert frames[0].get_chemical_formula(mode="hill") == "C7H8"
    assert all(f.arrays["forces"].shape == (15, 3) for f in frames)
    assert all(-600 < f.info["energy"] < -400 for f in frames)  # GFN2-xTB total energy, eV
    calc = make_calculator("xtb")
    for f in frames:  # labels = fresh GFN2-xTB single points (up to SCC convergence)
        ref = Atoms(f.numbers, positions=f.positions)
        ref.calc = calc
        assert ref.get_potential_energy() == pytest.approx(f.info["energy"], abs=1e-6)
        np.testing.assert_allclose(ref.get_forces(), f.arrays["forces"], atol=1e-3)
    # same seed -> same frames
    out2 = tmp_path / "again.extxyz"
    assert _cli(args[:3] + [str(out2)] + args[4:]) == 0
    again = read_dataset(out2)
    for f, g in zip(frames, again):
        np.testing.assert_allclose(f.positions, g.positions, atol=1e-10)
        assert f.info["energy"] == pytest.approx(g.info["energy"], abs=1e-8)


def test_cli_list_and_errors(tmp_path, capsys):
    assert _cli(["data", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "toluene" in listing and "cu-emt" in listing
    assert _cli(["data", "-o", str(tmp_path / "x.extxyz")]) == 2  # no preset
    assert _cli(["data", "toluene"]) == 2  # no output
    assert _cli(["data", "nope", "-o", str(tmp_path / "x.extxyz")]) == 2
    assert _cli(["data", "cu-emt", "-o", str(tmp_path / "x.extxyz"), "--calculator", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset" in err and "unknown calculator" in err
    assert not (tmp_path / "x.extxyz").exists()


# ----------------------------------------------------------------------- I/O


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_dataset_errors_name_the_file(tmp_path):
    cases = {
        "garbage": _bad(tmp_path, "garbage.extxyz", "this is not\nan xyz file at all\n"),
        "truncated": _bad(tmp_path, "trunc.extxyz", "3\nenergy=1.0\nH 0 0 0\n"),
        "empty": _bad(tmp_path, "empty.extxyz", ""),
        "missing": tmp_path / "does_not_exist.extxyz",
        "unlabelled": _bad(tmp_path, "unlabelled.extxyz",
                           '2\nProperties=species:S:1:pos:R:3 pbc="F F F"\n'
                           "H 0 0 0\nH 0 0 0.74\n"),
    }
    for what, path in cases.items():
        with pytest.raises(DataError) as info:
            read_dataset(path)
        assert str(path) in str(info.value), what
    with pytest.raises(DataError, match="frame 0.*missing label"):
        read_dataset(cases["unlabelled"])
    # unlabelled frames are fine when nothing is required
    assert len(read_dataset(cases["unlabelled"], require=())) == 1


def test_read_dataset_forces_only_frame_index(tmp_path):
    good = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    good.info["energy"] = -1.0
    good.arrays["forces"] = np.zeros((2, 3))
    bad = good.copy()
    del bad.info["energy"]
    bad.arrays["forces"] = np.ones((2, 3))
    p = tmp_path / "mixed.extxyz"
    write_dataset(p, [good, good, bad])
    with pytest.raises(DataError, match=r"frame 2: missing label\(s\) energy"):
        read_dataset(p)
    assert len(read_dataset(p, require=("forces",))) == 3


def test_write_read_info_arrays_and_stress_3x3(tmp_path):
    a = bulk_cu(1)
    a.rattle(0.05, seed=1)
    a.info["energy"] = 1.5
    a.arrays["forces"] = np.arange(12, dtype=float).reshape(4, 3)
    s6 = np.array([1e-3, 2e-3, 3e-3, 4e-4, 5e-4, 6e-4])
    from ase.stress import voigt_6_to_full_3x3_stress

    a.info["stress"] = voigt_6_to_full_3x3_stress(s6)
    p = tmp_path / "d.extxyz"
    write_dataset(p, [a])
    assert not [q for q in tmp_path.iterdir() if q.name.endswith(".tmp")]
    (f,) = read_dataset(p, require=("energy", "forces", "stress"))
    assert f.info["energy"] == 1.5
    np.testing.assert_allclose(f.arrays["forces"], a.arrays["forces"])
    np.testing.assert_allclose(f.info["stress"], s6)
    np.testing.assert_allclose(f.positions, a.positions, atol=1e-7)  # extxyz: 8 decimals
    # the normalised frames can be written again unchanged
    write_dataset(p, [f])
    (g,) = read_dataset(p, require=("energy", "forces", "stress"))
    assert g.info["energy"] == 1.5
    with pytest.raises(DataError):
        write_dataset(tmp_path / "none.extxyz", [])
