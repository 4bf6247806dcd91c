"""AOTInductor packages (mlff-deploy --format aoti): the same energies, forces and virials
as the TorchScript export in Python and in lmp (1 rank, and 2 ranks in halo mode, the
exchange staying an mlff operator call inside the package); a package compiled by another
torch is refused. Every model family: the slow test (CI runs it)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from ase.build import bulk

from lammps_helpers import NKTV2P, lammps_error, read_dump, run_lmp, write_data
from mlff.calculator import MLFFCalculator
from mlff.data.molecules import molecule
from mlff.deploy import export_model, load_deployed
from mlff.errors import ConfigError, ModelFileError
from mlff.models import build_model

SPECIES = ["H", "C", "Cu"]
HPARAMS = {"schnet": dict(n_features=16, n_interactions=2), "dtnn": dict(), "bp": dict(), "mbe": dict(),
           "nequip": dict(n_features=8), "tfn_dfp": dict(n_features=8),
           "se3_transformer": dict()}


def random_model(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(kind, SPECIES, 5.0, dtype=torch.float64, **HPARAMS[kind])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model


def cu_box():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    atoms.rattle(0.05, seed=3)
    return atoms


def python_results(path, atoms):
    a = atoms.copy()
    a.calc = MLFFCalculator(path)
    out = {"forces": a.get_forces()}
    if "energy" in a.calc.results:
        out["energy"] = a.get_potential_energy()
        if atoms.pbc.all():
            out["stress"] = a.get_stress()
    return out


def assert_same(got, ref, rtol, what):
    for key, value in ref.items():
        scale = max(np.abs(value).max(), 1e-3)
        np.testing.assert_allclose(got[key], value, rtol=0, atol=rtol * scale, err_msg=f"{what}: {key}")


LMP = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlff
pair_coeff * * {model} Cu
dump d all custom 1 d.dump id fx fy fz
dump_modify d sort id format float %.17g
compute vir all pressure NULL virial
run 0
print "RESULT $(pe:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) $(vol:%.17g)"
"""


def lammps_results(tmp_path, model, atoms, nprocs):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, LMP.format(model=model), nprocs=nprocs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    pe, px, py, pz, vol = map(float, [x for x in out.splitlines() if x.startswith("RESULT")][0].split()[1:])
    return {"energy": pe, "forces": read_dump(tmp_path / "d.dump")[:, 1:], "pressure": np.array([px, py, pz]),
            "vol": vol, "log": out}


@pytest.fixture(scope="module")
def schnet_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aoti")
    model = random_model("schnet")
    export_model(model, folder / "schnet.pt")
    export_model(model, folder / "schnet.pt2", format="aoti")
    return folder / "schnet.pt", folder / "schnet.pt2"


def test_aoti_package_equals_torchscript_in_python(schnet_pair):
    ts, pt2 = schnet_pair
    module, meta = load_deployed(pt2)
    assert meta["package"] == "aoti" and meta["outputs"] == ["atomic_energy", "edge_grad", "node_forces", "virial"]
    for atoms in (molecule("toluene"), cu_box()):
        assert_same(python_results(pt2, atoms), python_results(ts, atoms), 1e-10, atoms.get_chemical_formula())


@pytest.mark.parametrize("nprocs", [1, 2])
def test_aoti_package_in_lammps_equals_python(nprocs, schnet_pair, tmp_path):
    ts, pt2 = schnet_pair
    atoms = cu_box()
    got = lammps_results(tmp_path, pt2, atoms, nprocs)
    if nprocs == 2:
        assert "halo" in got["log"]
    ref = python_results(ts, atoms)
    assert got["energy"] == pytest.approx(ref["energy"], rel=1e-10)
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=1e-10 * np.abs(ref["forces"]).max())
    # pressure (bar) = -stress (eV/Å³) converted; diagonal components
    np.testing.assert_allclose(got["pressure"], -ref["stress"][:3] * NKTV2P, rtol=1e-9, atol=1e-6)


def test_the_package_calls_mlffs_halo_exchange(schnet_pair):
    _, pt2 = schnet_pair
    assert package_calls(pt2) == KEPT["schnet"]


def test_mlff_deploy_writes_a_package_by_default_on_cpus(tmp_path, capsys, caplog):
    """``--format auto`` (the default): a package on a machine without a GPU, whatever the
    name; TorchScript when asked, and as the fallback when the C++ compiler fails."""
    from mlff.deploy import main as deploy_main
    from mlff.train.checkpoint import model_record, save_checkpoint

    torch.manual_seed(0)
    model = build_model("dtnn", SPECIES, 5.0, dtype=torch.float64, n_features=4, n_interactions=1)
    save_checkpoint(tmp_path / "m.ckpt", model_record(model))
    assert deploy_main([str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "m.pt")]) == 0
    assert "AOTInductor package" in capsys.readouterr().out
    assert deploy_main([str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "ts.pt"), "--format", "torchscript"]) == 0
    assert load_deployed(tmp_path / "m.pt")[1].get("package") == "aoti"
    assert "Unable to load package" not in caplog.text  # torch's loader warns about names not ending in .pt2
    assert load_deployed(tmp_path / "ts.pt")[1].get("package") != "aoti"
    assert_same(python_results(tmp_path / "m.pt", cu_box()), python_results(tmp_path / "ts.pt", cu_box()), 1e-10,
                "default vs torchscript")
    # no working C++ compiler: auto falls back to TorchScript and says why; --format aoti fails
    import torch._inductor.config as inductor_config

    capsys.readouterr()
    with inductor_config.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++")), "force_disable_caches": True}):
        assert deploy_main([str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "fallback.pt")]) == 0
        assert "compilation failed" in capsys.readouterr().err
        assert load_deployed(tmp_path / "fallback.pt")[1].get("package") != "aoti"
        assert deploy_main([str(tmp_path / "m.ckpt"), "-o", str(tmp_path / "forced.pt2"), "--format", "aoti"]) == 2
        assert "compilation failed" in capsys.readouterr().err and not (tmp_path / "forced.pt2").exists()


def omp_regions(path) -> int:
    """OpenMP parallel regions in a package's generated kernel code."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return sum(z.read(name).decode().count("#pragma omp parallel") for name in z.namelist()
                   if name.endswith(".cpp"))


def test_packages_are_serial_unless_more_threads_are_asked(schnet_pair, tmp_path):
    ts, pt2 = schnet_pair
    assert omp_regions(pt2) == 0 and load_deployed(pt2)[1]["threads"] == 1
    model = random_model("schnet")
    export_model(model, tmp_path / "two.pt2", format="aoti", threads=2)
    assert load_deployed(tmp_path / "two.pt2")[1]["threads"] == 2 and omp_regions(tmp_path / "two.pt2") > 0
    assert_same(python_results(tmp_path / "two.pt2", cu_box()), python_results(ts, cu_box()), 1e-10, "threads=2")
    with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
        export_model(model, tmp_path / "zero.pt2", format="aoti", threads=0)
    assert not (tmp_path / "zero.pt2").exists()


def package_calls(path) -> set[str]:
    """The mlff operators a package calls (its proxy-executor table)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        nodes = [n for name in z.namelist() if name.endswith(".wrapper.json")
                 for n in json.loads(z.read(name))["nodes"]]
    return {n["node"]["target"] for n in nodes if n["node"]["target"].startswith("mlff::")}


# the kernels each family's package keeps as mlff operator calls
KEPT = {"schnet": {"mlff::halo_exchange", "mlff::halo_reverse", "mlff::schnet_filter_export", "mlff::edge_conv_export"},
        "dtnn": {"mlff::halo_exchange", "mlff::halo_reverse"},
        "bp": {"mlff::symmetry_functions_export", "mlff::symmetry_functions_export_backward"}, "mbe": set(),
        "nequip": {"mlff::halo_exchange", "mlff::halo_reverse", "mlff::tp_conv_export", "mlff::tp_conv_export_backward"},
        "tfn_dfp": {"mlff::tp_conv_export", "mlff::halo_exchange"},
        "se3_transformer": {"mlff::halo_exchange", "mlff::halo_reverse", "mlff::tp_uvw_export",
                            "mlff::tp_uvw_export_backward"}}


def test_descriptor_kernels_stay_operator_calls(tmp_path):
    torch.manual_seed(0)
    model = build_model("bp", SPECIES, 5.0, dtype=torch.float64)
    export_model(model, tmp_path / "bp.pt2", format="aoti")
    export_model(model, tmp_path / "bp.pt")
    assert package_calls(tmp_path / "bp.pt2") == KEPT["bp"]
    atoms = molecule("toluene")
    assert_same(python_results(tmp_path / "bp.pt2", atoms), python_results(tmp_path / "bp.pt", atoms), 1e-10, "bp")


def test_a_package_compiled_by_another_torch_is_refused(tmp_path, monkeypatch):
    import mlff.aoti

    monkeypatch.setattr(mlff.aoti, "TORCH_VERSION", "1.0.0")
    torch.manual_seed(0)
    export_model(build_model("dtnn", SPECIES, 5.0, dtype=torch.float64, n_features=4, n_interactions=1),
                 tmp_path / "old.pt2", format="aoti")
    monkeypatch.undo()
    with pytest.raises(ModelFileError, match="compiled with torch 1.0.0"):
        load_deployed(tmp_path / "old.pt2")
    write_data(tmp_path / "data.lmp", cu_box(), ["Cu"])
    err = lammps_error(run_lmp(tmp_path, LMP.format(model=tmp_path / "old.pt2")))
    assert "compiled by AOTInductor with torch 1.0.0" in err and "mlff-deploy --format aoti" in err


FAMILIES = ["schnet", "dtnn", "bp", "mbe", "nequip", "tfn_dfp", "se3_transformer"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", FAMILIES)
def test_every_family_exports_to_aoti(kind, tmp_path):
    """fp64 (1e-10) and fp32 (1e-5), toluene and periodic Cu, Python and lmp on 1 and 2 ranks."""
    model = random_model(kind)
    for dtype, rtol in (("float64", 1e-10), ("float32", 1e-5)):
        ts, pt2 = tmp_path / f"{dtype}.pt", tmp_path / f"{dtype}.pt2"
        export_model(model, ts, dtype=getattr(torch, dtype))
        export_model(model, pt2, dtype=getattr(torch, dtype), format="aoti")
        assert KEPT[kind] <= package_calls(pt2), f"{kind}: kernels not kept as operator calls"
        for atoms in (molecule("toluene"), cu_box()):
            assert_same(python_results(pt2, atoms), python_results(ts, atoms), rtol,
                        f"{kind} {dtype} {atoms.get_chemical_formula()}")
        ref = python_results(ts, cu_box())
        for nprocs in (1, 2):
            got = lammps_results(tmp_path / f"{dtype}_np{nprocs}", pt2, cu_box(), nprocs)
            # Same floor as assert_same: these random models' net forces on the rattled
            # lattice are ~1e-7..1e-9 eV/A, sums of much larger per-edge terms, so in fp32
            # a relative test against max|F| would measure cancellation, not the package.
            # lmp also sums each atom's force from other graphs (its own rank's, ghosts'
            # reverse communication) in another order than Python: 1e-4 in fp32 (dtnn on
            # 2 ranks differed by 2.6e-5 of max|F| in CI), 1e-9 in fp64.
            lmp_rtol = 1e-4 if dtype == "float32" else 1e-9
            np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0,
                                       atol=lmp_rtol * max(np.abs(ref["forces"]).max(), 1e-3),
                                       err_msg=f"{kind} {dtype} lmp {nprocs} ranks")
            if "energy" in ref:
                assert got["energy"] == pytest.approx(ref["energy"], rel=max(rtol, 1e-9))
        shutil.rmtree(tmp_path / f"{dtype}_np1")
