"""pair_style mlff with the rest of LAMMPS: hybrid/overlay with zbl and dispersion/d3 (sums
of the parts), NULL types in hybrid styles (the model sees only its own atoms), units real,
type labels. Real lmp runs on 1 and 2 ranks (halo mode with a 2-layer SchNet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from conftest import random_schnet
from lammps_helpers import NKTV2P, lammps_error, read_dump, run_lmp, write_data
from mlff.calculator import MLFFCalculator
from mlff.data.molecules import molecule
from mlff.deploy import export_model

RTOL = 1e-10

POINT = """
units {units}
atom_style atomic
boundary {boundary}
read_data data.lmp
{labels}
pair_style {style}
{coeffs}
neighbor 1.0 bin
compute pe all pe/atom
compute st all stress/atom NULL virial
compute vir all pressure NULL virial
dump d all custom 1 atoms.dump id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]
dump_modify d sort id format float %.17g
thermo_style custom step pe press
run 0
print "RESULT $(pe:%.17g) $(vol:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) $(c_vir[4]:%.17g) $(c_vir[5]:%.17g) $(c_vir[6]:%.17g)"
"""


def point(tmp_path, name, atoms, species, style, coeffs, nprocs=1, units="metal", labels="", types=None,
          boundary="p p p", box=None):
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    write_data(folder / "data.lmp", atoms, species, types=types, box=box)
    proc = run_lmp(folder, POINT.format(units=units, boundary=boundary, style=style, coeffs=coeffs, labels=labels),
                   nprocs=nprocs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    pe, vol, *p = map(float, [x for x in out.splitlines() if x.startswith("RESULT")][0].split()[1:])
    table = read_dump(folder / "atoms.dump")
    return {"energy": pe, "pressure": np.array(p), "forces": table[:, 1:4], "energies": table[:, 4],
            "atom_virial": table[:, 5:11], "log": out}


def assert_sum(total, parts, what):
    assert total["energy"] == pytest.approx(sum(p["energy"] for p in parts), rel=RTOL, abs=1e-10), what
    for key in ("pressure", "forces", "energies", "atom_virial"):
        expected = sum(p[key] for p in parts)
        np.testing.assert_allclose(total[key], expected, rtol=0, atol=RTOL * max(np.abs(expected).max(), 1.0),
                                   err_msg=f"{what}: {key}")


@pytest.fixture(scope="module")
def cu_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("integration") / "cu.pt"
    export_model(random_schnet(["Cu"], seed=4, n_interactions=2), path)
    return path


@pytest.fixture(scope="module")
def collision():
    """A Cu crystal with one atom knocked to 1.2 Å of its neighbour (ZBL matters there)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=2)
    d = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + d / np.linalg.norm(d) * 1.2
    return atoms


@pytest.mark.parametrize("nprocs", [1, 2])
def test_hybrid_overlay_with_zbl_is_the_sum_of_its_parts(nprocs, cu_model, collision, tmp_path):
    total = point(tmp_path, "overlay", collision, ["Cu"], "hybrid/overlay mlff zbl 1.5 2.5",
                  f"pair_coeff * * mlff {cu_model} Cu\npair_coeff * * zbl 29 29", nprocs)
    mlff = point(tmp_path, "mlff", collision, ["Cu"], "mlff", f"pair_coeff * * {cu_model} Cu", nprocs)
    zbl = point(tmp_path, "zbl", collision, ["Cu"], "zbl 1.5 2.5", "pair_coeff * * 29 29", nprocs)
    assert abs(zbl["energy"]) > 1.0  # the collision is in ZBL's range
    assert_sum(total, [mlff, zbl], f"hybrid/overlay mlff zbl, {nprocs} rank(s)")
    if nprocs == 2:
        assert "halo" in mlff["log"]


@pytest.mark.parametrize("nprocs", [1, 2])
def test_hybrid_overlay_with_dispersion_d3_is_the_sum_of_its_parts(nprocs, tmp_path):
    atoms = _toluene_box()
    model = tmp_path / "ch.pt"
    export_model(random_schnet(["H", "C"], seed=5, n_interactions=2), model)
    d3 = "dispersion/d3 bj pbe 12.0 8.0"
    total = point(tmp_path, "overlay", atoms, ["H", "C"], f"hybrid/overlay mlff {d3}",
                  f"pair_coeff * * mlff {model} H C\npair_coeff * * dispersion/d3 H C", nprocs)
    mlff = point(tmp_path, "mlff", atoms, ["H", "C"], "mlff", f"pair_coeff * * {model} H C", nprocs)
    disp = point(tmp_path, "d3", atoms, ["H", "C"], d3, "pair_coeff * * H C", nprocs)
    assert abs(disp["energy"]) > 0.1
    assert_sum(total, [mlff, disp], f"hybrid/overlay mlff dispersion/d3, {nprocs} rank(s)")


def _toluene_box():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(5)
    base = molecule("toluene")
    base.positions -= base.positions.mean(axis=0)
    atoms = Atoms(cell=[16.0, 16.0, 16.0], pbc=True)
    for corner in np.ndindex(2, 2, 2):
        m = base.copy()
        m.positions = Rotation.random(random_state=rng).apply(m.positions) + (np.array(corner) + 0.5) * 8.0
        atoms += m
    return atoms


def cu_with_argon(rattle_seed: int, argon_seed: int, n_argon: int, stride: int):
    """Rattled 108-atom fcc Cu (type 1) and the same crystal with ``n_argon`` Ar atoms (type 2)
    in its interstitial region, within r_max of Cu: (cu, mixed, types)."""
    cu = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    cu.rattle(0.05, seed=rattle_seed)
    mixed = cu.copy()
    rng = np.random.default_rng(argon_seed)
    for k in range(n_argon):
        mixed += Atoms("Ar", positions=[cu.positions[stride * k] + rng.normal(scale=0.2, size=3) + 1.3])
    return cu, mixed, [1] * len(cu) + [2] * n_argon


def assert_model_on_cu_alone(got, cu, model):
    """mlff's energy and forces are the model's on the Cu atoms alone; the Ar atoms get none."""
    ref = cu.copy()
    ref.calc = MLFFCalculator(model)
    assert got["energy"] == pytest.approx(ref.get_potential_energy(), rel=RTOL)
    np.testing.assert_allclose(got["forces"][: len(cu)], ref.get_forces(), rtol=0, atol=1e-10)
    assert np.all(got["forces"][len(cu):] == 0.0) and np.all(got["energies"][len(cu):] == 0.0)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_null_types_are_outside_the_models_graph(nprocs, cu_model, tmp_path):
    """Cu (type 1) with Ar (type 2) left to another style: mlff's energy and forces are the
    model's on the Cu atoms alone, and the Ar atoms get no mlff force (pair zero adds none)."""
    cu, mixed, types = cu_with_argon(rattle_seed=6, argon_seed=1, n_argon=12, stride=3)
    species = ["Cu", "Ar"]
    got = point(tmp_path, "null", mixed, species, "hybrid/overlay mlff zero 5.0",
                f"pair_coeff * * mlff {cu_model} Cu NULL\npair_coeff * * zero", nprocs, types=types)
    assert "NULL    -> (not in the model's graph" in got["log"]
    assert_model_on_cu_alone(got, cu, cu_model)
    # hybrid/scaled: the same forces, scaled
    scaled = point(tmp_path, "scaled", mixed, species, "hybrid/scaled 0.5 mlff 1.0 zero 5.0",
                   f"pair_coeff * * mlff {cu_model} Cu NULL\npair_coeff * * zero", nprocs, types=types)
    assert scaled["energy"] == pytest.approx(0.5 * got["energy"], rel=RTOL)
    np.testing.assert_allclose(scaled["forces"], 0.5 * got["forces"], rtol=0, atol=1e-10)
    # plain hybrid: mlff for Cu-Cu, lj/cut for everything with Ar
    lj = "pair_coeff 1 2 {kw} 0.01 3.0\npair_coeff 2 2 {kw} 0.0104 3.4"
    both = point(tmp_path, "hybrid", mixed, species, "hybrid mlff lj/cut 6.0",
                 f"pair_coeff * * mlff {cu_model} Cu NULL\n" + lj.format(kw="lj/cut"), nprocs, types=types)
    only_lj = point(tmp_path, "lj", mixed, species, "lj/cut 6.0", "pair_coeff 1 1 0.0 1.0\n" + lj.format(kw=""),
                    nprocs, types=types)
    assert both["energy"] == pytest.approx(got["energy"] + only_lj["energy"], rel=RTOL)
    np.testing.assert_allclose(both["forces"], got["forces"] + only_lj["forces"], rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode,nprocs,layers,expected", [("", 1, 2, "owner-mapped"), ("halo", 2, 2, "halo (ghost"),
                                                         ("redundant", 2, 2, "redundant (ghost"),
                                                         ("", 2, 1, "ghost-node")])
def test_null_types_in_every_parallel_mode(mode, nprocs, layers, expected, tmp_path):
    """NULL types are outside the model's graph in each parallel mode: owner (1 rank),
    halo and redundant (2 ranks, 2-layer SchNet), local (2 ranks, 1 layer)."""
    model = tmp_path / "cu.pt"
    export_model(random_schnet(["Cu"], seed=9, n_interactions=layers), model)
    cu, mixed, types = cu_with_argon(rattle_seed=7, argon_seed=2, n_argon=10, stride=5)
    got = point(tmp_path, "null", mixed, ["Cu", "Ar"], f"hybrid/overlay mlff {mode} zero 5.0",
                f"pair_coeff * * mlff {model} Cu NULL\npair_coeff * * zero", nprocs, types=types)
    assert f"MPI rank(s), {expected}" in got["log"]
    assert_model_on_cu_alone(got, cu, model)


def test_null_alone_is_refused(cu_model, tmp_path):
    folder = tmp_path / "alone"
    folder.mkdir()
    write_data(folder / "data.lmp", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), ["Cu"])
    script = POINT.format(units="metal", boundary="p p p", style="mlff", coeffs=f"pair_coeff * * {cu_model} NULL",
                          labels="")
    assert "every atom type is NULL" in lammps_error(run_lmp(folder, script))


def test_units_real_equals_units_metal_after_conversion(tmp_path):
    atoms = molecule("toluene")
    model = tmp_path / "ch.pt"
    export_model(random_schnet(["H", "C"], seed=7), model)
    box = np.array(((-20.0, 20.0),) * 3)
    kw = dict(style="mlff", coeffs=f"pair_coeff * * {model} H C", boundary="f f f", box=box)
    metal = point(tmp_path, "metal", atoms, ["H", "C"], units="metal", **kw)
    real = point(tmp_path, "real", atoms, ["H", "C"], units="real", **kw)
    kcal = 23.060549  # LAMMPS's eV -> kcal/mol
    assert real["energy"] == pytest.approx(metal["energy"] * kcal, rel=1e-7)
    np.testing.assert_allclose(real["forces"], metal["forces"] * kcal, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(real["energies"], metal["energies"] * kcal, rtol=1e-7, atol=1e-10)
    # pressure: metal bar, real atm (1 atm = 1.01325 bar)
    np.testing.assert_allclose(real["pressure"] * 1.01325, metal["pressure"], rtol=1e-6, atol=1e-6)
    folder = tmp_path / "lj"
    folder.mkdir()
    write_data(folder / "data.lmp", atoms, ["H", "C"], box=box)
    bad = POINT.format(units="lj", boundary="f f f", style="mlff", coeffs=f"pair_coeff * * {model} H C", labels="")
    assert "supports 'units metal'" in lammps_error(run_lmp(folder, bad)) and "'units lj'" in lammps_error(
        run_lmp(folder, bad))


def test_type_labels(tmp_path):
    atoms = molecule("toluene")
    model = tmp_path / "ch.pt"
    export_model(random_schnet(["H", "C"], seed=8), model)
    box = np.array(((-20.0, 20.0),) * 3)
    plain = point(tmp_path, "plain", atoms, ["H", "C"], "mlff", f"pair_coeff * * {model} H C", boundary="f f f",
                  box=box)
    labelled = point(tmp_path, "labels", atoms, ["H", "C"], "mlff", f"pair_coeff * * {model}", boundary="f f f",
                     box=box, labels="labelmap atom 1 H 2 C")
    assert labelled["energy"] == pytest.approx(plain["energy"], rel=1e-12)
    np.testing.assert_allclose(labelled["forces"], plain["forces"], rtol=0, atol=1e-12)
    # labels that are not model species are named
    folder = tmp_path / "bad"
    folder.mkdir()
    write_data(folder / "data.lmp", atoms, ["H", "C"], box=box)
    script = POINT.format(units="metal", boundary="f f f", style="mlff", coeffs=f"pair_coeff * * {model}",
                          labels="labelmap atom 1 Hx 2 C")
    assert "atom type 1 has no type label among the model's species" in lammps_error(run_lmp(folder, script))
