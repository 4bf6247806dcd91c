"""Committees: one deployed file with the mean of its members and their spread, in Python
and in LAMMPS (compute mlff/uncertainty/atom, the devi file, fix halt), on 1, 2 and 4
ranks; mlff train --committee and mlff-deploy of the run directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk

from conftest import random_schnet
from lammps_helpers import lammps_error, read_dump, run_lmp, write_data
from mlff.calculator import MLFFCalculator
from mlff.cli import main as mlff
from mlff.data.molecules import molecule
from mlff.deploy import export_committee, export_model, load_deployed, main as mlff_deploy
from mlff.models import build_model


def members(species, n=3, **hparams):
    return [random_schnet(species, seed=10 + k, **hparams) for k in range(n)]


@pytest.fixture(scope="module")
def cu_atoms():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)  # 256 atoms
    atoms.rattle(0.08, seed=7)
    return atoms


@pytest.fixture(scope="module")
def cu_committee(tmp_path_factory):
    """3 SchNet members with 2 interactions (halo exchange on several ranks), and each alone."""
    d = tmp_path_factory.mktemp("committee")
    models = members(["Cu"], n_interactions=2)
    export_committee(models, d / "committee.pt")
    singles = []
    for k, m in enumerate(models):
        export_model(m, d / f"member{k}.pt")
        singles.append(d / f"member{k}.pt")
    return d / "committee.pt", singles


def member_results(atoms, paths):
    out = []
    for p in paths:
        a = atoms.copy()
        a.calc = MLFFCalculator(p)
        out.append({"energy": a.get_potential_energy(), "forces": a.get_forces(),
                    "energies": a.get_potential_energies()})
    return out


@pytest.mark.parametrize("system", ["toluene", "cu"])
def test_committee_is_the_mean_and_spread_of_its_members(system, cu_atoms, cu_committee, tmp_path):
    if system == "toluene":
        atoms = molecule("toluene")
        models = members(["C", "H"])
        export_committee(models, tmp_path / "c.pt")
        paths = []
        for k, m in enumerate(models):
            export_model(m, tmp_path / f"m{k}.pt")
            paths.append(tmp_path / f"m{k}.pt")
        committee = tmp_path / "c.pt"
    else:
        atoms, (committee, paths) = cu_atoms, cu_committee
    ref = member_results(atoms, paths)
    a = atoms.copy()
    a.calc = MLFFCalculator(committee)
    forces = np.stack([r["forces"] for r in ref], axis=1)  # [n, N, 3]
    energies = np.stack([r["energies"] for r in ref], axis=1)
    np.testing.assert_allclose(a.get_forces(), forces.mean(axis=1), rtol=0, atol=1e-10)
    assert a.get_potential_energy() == pytest.approx(np.mean([r["energy"] for r in ref]), rel=1e-12)
    res = a.calc.results
    assert np.abs(forces.std(axis=1)).max() > 1e-3  # the members do differ
    np.testing.assert_allclose(res["force_deviation"], np.sqrt((forces.std(axis=1) ** 2).sum(axis=1)), atol=1e-10)
    np.testing.assert_allclose(res["force_deviation_max"], forces.std(axis=1).max(axis=1), atol=1e-10)
    np.testing.assert_allclose(res["energy_deviation_atom"], energies.std(axis=1), atol=1e-10)
    assert res["energy_deviation"] == pytest.approx(np.std([r["energy"] for r in ref]) / len(atoms), abs=1e-12)
    _, meta = load_deployed(committee)
    assert meta["committee"] == 3


def test_direct_force_committee(tmp_path):
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        m = build_model("tfn_dfp", ["C", "H"], 5.0, dtype=torch.float64, n_features=8)
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.3)
        models.append(m)
    export_committee(models, tmp_path / "c.pt")
    paths = []
    for k, m in enumerate(models):
        export_model(m, tmp_path / f"m{k}.pt")
        paths.append(tmp_path / f"m{k}.pt")
    atoms = molecule("toluene")
    forces = []
    for p in paths:
        a = atoms.copy()
        a.calc = MLFFCalculator(p)
        forces.append(a.get_forces())
    forces = np.stack(forces, axis=1)
    a = atoms.copy()
    a.calc = MLFFCalculator(tmp_path / "c.pt")
    np.testing.assert_allclose(a.get_forces(), forces.mean(axis=1), atol=1e-10)
    np.testing.assert_allclose(a.calc.results["force_deviation"], np.linalg.norm(forces.std(axis=1), axis=1),
                               atol=1e-10)


def test_members_must_match(tmp_path):
    a = random_schnet(["C", "H"])
    b = random_schnet(["C", "H"], r_max=4.0)
    with pytest.raises(Exception, match="r_max"):
        export_committee([a, b], tmp_path / "c.pt")


LAMMPS = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlff {style}
pair_coeff * * {model} Cu
neighbor 1.0 bin
compute u all mlff/uncertainty/atom
dump d all custom 1 atoms.dump id fx fy fz c_u[1] c_u[2] c_u[3]
dump_modify d sort id format float %.17g
thermo_style custom step pe c_u[1] c_u[2] c_u[3] c_u[4]
thermo_modify format float %.17g
run 0
"""


def lammps_committee(tmp_path, atoms, model, nprocs, style=""):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, LAMMPS.format(style=style, model=model), nprocs=nprocs)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    lines = proc.stdout.splitlines()
    row = lines[[k for k, x in enumerate(lines) if x.split()[:2] == ["Step", "PotEng"]][0] + 1].split()
    return read_dump(tmp_path / "atoms.dump"), np.array([float(x) for x in row[2:6]]), proc.stdout


@pytest.mark.parametrize("nprocs", [1, 2, 4])
def test_lammps_deviations_equal_python_on_1_2_4_ranks(nprocs, cu_atoms, cu_committee, tmp_path):
    committee, _ = cu_committee
    a = cu_atoms.copy()
    a.calc = MLFFCalculator(committee)
    forces = a.get_forces()
    res = a.calc.results
    table, glob, log = lammps_committee(tmp_path, cu_atoms, committee, nprocs)
    assert "committee of 3 models" in log
    if nprocs > 1:
        assert "halo" in log
    np.testing.assert_allclose(table[:, 1:4], forces, rtol=0, atol=1e-10)
    np.testing.assert_allclose(table[:, 4], res["force_deviation"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(table[:, 5], res["force_deviation_max"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(table[:, 6], res["energy_deviation_atom"], rtol=0, atol=1e-10)
    dev = res["force_deviation"]
    np.testing.assert_allclose(glob, [dev.max(), dev.min(), dev.mean(), res["energy_deviation"]], rtol=1e-9, atol=1e-12)


def test_devi_file_is_dp_gen_style(cu_atoms, cu_committee, tmp_path):
    committee, _ = cu_committee
    write_data(tmp_path / "data.lmp", cu_atoms, ["Cu"])
    script = LAMMPS.format(style="devi model_devi.out every 2", model=committee).replace(
        "run 0", "velocity all create 300 1\nfix nve all nve\ntimestep 0.001\nrun 4")
    proc = run_lmp(tmp_path, script, nprocs=2)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = (tmp_path / "model_devi.out").read_text().splitlines()
    assert lines[0].split() == ["#", "step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f",
                                "avg_devi_f", "devi_e"]
    rows = np.array([[float(x) for x in line.split()] for line in lines[1:]])
    assert rows[:, 0].tolist() == [0, 2, 4]
    a = cu_atoms.copy()
    a.calc = MLFFCalculator(committee)
    a.get_forces()
    dev = a.calc.results["force_deviation"]
    np.testing.assert_allclose(rows[0, 4:8], [dev.max(), dev.min(), dev.mean(), a.calc.results["energy_deviation"]],
                               rtol=1e-5)
    assert np.all(rows[:, 1:4] > 0) and np.all(rows[:, 1] >= rows[:, 3]) and np.all(rows[:, 3] >= rows[:, 2])


def test_fix_halt_on_the_deviation_stops_the_run(cu_atoms, cu_committee, tmp_path):
    committee, _ = cu_committee
    a = cu_atoms.copy()
    a.calc = MLFFCalculator(committee)
    a.get_forces()
    threshold = 0.5 * a.calc.results["force_deviation"].max()
    write_data(tmp_path / "data.lmp", cu_atoms, ["Cu"])
    script = LAMMPS.format(style="", model=committee).replace(
        "run 0", f"variable maxdev equal c_u[1]\nfix stop all halt 1 v_maxdev > {threshold} error soft\n"
                 f"fix nve all nve\ntimestep 0.001\nrun 50")
    proc = run_lmp(tmp_path, script)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Fix halt condition for fix-id stop met on step 1" in proc.stdout + proc.stderr


def test_compute_needs_a_committee(cu_atoms, cu_committee, tmp_path):
    _, singles = cu_committee
    write_data(tmp_path / "data.lmp", cu_atoms, ["Cu"])
    err = lammps_error(run_lmp(tmp_path, LAMMPS.format(style="", model=singles[0])))
    assert "is not a committee" in err
    err = lammps_error(run_lmp(tmp_path, LAMMPS.format(style="devi d.out", model=singles[0])))
    assert "is not a committee" in err


def test_train_committee_and_deploy_its_directory(toluene_emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--train", str(toluene_emt_file), "--out", str(run), "--committee", "2", "--features", "8",
            "--interactions", "1", "--epochs", "1", "--n-valid", "8", "--no-progress"]
    assert mlff(args) == 0
    assert (run / "member_0" / "best.ckpt").is_file() and (run / "member_1" / "best.ckpt").is_file()
    # the members differ in their seed, and share the validation set
    import yaml
    seeds = [yaml.safe_load((run / f"member_{k}" / "config.yaml").read_text())["seed"] for k in range(2)]
    assert seeds == [0, 1]
    # resuming a finished committee trains nothing more
    capsys.readouterr()
    assert mlff(args[:1] + ["--train", str(toluene_emt_file), "--out", str(run), "--resume", "--no-progress",
                            "--n-valid", "8"]) == 0
    assert capsys.readouterr().out.count("has finished") == 2
    assert mlff_deploy([str(run), "-o", str(tmp_path / "c.pt")]) == 0
    _, meta = load_deployed(tmp_path / "c.pt")
    assert meta["committee"] == 2 and meta["training_range"]["pair_min_distance"]
