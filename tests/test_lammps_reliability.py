"""pair_style mlff and bad input: a training checkpoint given to pair_coeff, structures
outside the training range (rate-limited warnings, a count in the log, or a stop), atoms
at the same position, non-finite model output. Real lmp runs, 1 and 2 ranks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from ase.build import bulk

from conftest import random_schnet
from lammps_helpers import lammps_error, run_lmp, write_data
from mlff.cli import main as mlff
from mlff.data.io import read_dataset
from mlff.deploy import export_model, load_deployed, main as mlff_deploy

TOLUENE = """
units metal
atom_style atomic
boundary f f f
read_data data.lmp
mass * 1.0
pair_style mlff {style}
pair_coeff * * {model} H C
neighbor 1.0 bin
thermo_style custom step pe
run {steps}
"""


@pytest.fixture(scope="module")
def trained(toluene_emt_file, tmp_path_factory):
    """best.ckpt of a one-epoch run on toluene (EMT) and its deployed model (with training_range)."""
    run = tmp_path_factory.mktemp("lmp_reliability") / "run"
    assert mlff(["train", "--train", str(toluene_emt_file), "--out", str(run), "--features", "8",
                 "--interactions", "2", "--epochs", "1", "--n-valid", "8", "--no-progress"]) == 0
    model = run.parent / "model.pt"
    assert mlff_deploy([str(run / "best.ckpt"), "-o", str(model)]) == 0
    return run / "best.ckpt", model


def toluene_data(path, atoms):
    write_data(path / "data.lmp", atoms, ["H", "C"], box=np.array(((-20.0, 20.0),) * 3))


def squeezed(atoms, distance):
    """The first H moved to ``distance`` Å from the first C."""
    atoms = atoms.copy()
    h = atoms.get_chemical_symbols().index("H")
    c = atoms.get_chemical_symbols().index("C")
    atoms.positions[h] = atoms.positions[c] + [distance, 0.0, 0.0]
    return atoms


def warnings_in(proc):
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "outside the training range" in line]


def test_training_checkpoint_in_pair_coeff_is_named(trained, toluene_emt_file, tmp_path):
    toluene_data(tmp_path, read_dataset(toluene_emt_file)[0])
    err = lammps_error(run_lmp(tmp_path, TOLUENE.format(style="", model=trained[0], steps=0)))
    assert "is an mlff training checkpoint, not a deployed model" in err and "mlff-deploy" in err


def test_extrapolation_warning_fires_only_outside_the_training_range(trained, toluene_emt_file, tmp_path):
    frame = read_dataset(toluene_emt_file)[0]
    toluene_data(tmp_path, frame)
    normal = run_lmp(tmp_path, TOLUENE.format(style="", model=trained[1], steps=5))
    assert normal.returncode == 0, normal.stdout[-2000:]
    assert warnings_in(normal) == [] and "training range recorded" in normal.stdout

    toluene_data(tmp_path, squeezed(frame, 0.6))
    close = run_lmp(tmp_path, TOLUENE.format(style="", model=trained[1], steps=0))
    assert close.returncode == 0, close.stdout[-2000:]
    _, meta = load_deployed(trained[1])
    minimum = meta["training_range"]["pair_min_distance"]["H-C"]
    lines = warnings_in(close)
    assert any("WARNING" in x and f"closest H-C at 0.600 Angstrom, training minimum {minimum:.3f}" in x
               for x in lines)
    assert any("outside the training range in 1 of 1 model calls" in x for x in lines)  # the summary in the log


def test_extrapolation_warnings_are_rate_limited_and_counted(trained, toluene_emt_file, tmp_path):
    toluene_data(tmp_path, squeezed(read_dataset(toluene_emt_file)[0], 0.6))
    proc = run_lmp(tmp_path, TOLUENE.format(style="", model=trained[1], steps=30)
                   .replace("run 30", "fix nve all nve\ntimestep 0.0001\nrun 30"))
    assert proc.returncode == 0, proc.stdout[-2000:]
    warned = [x for x in warnings_in(proc) if "WARNING" in x and "step" in x]
    assert len(warned) == 10 and "further warnings suppressed" in warned[-1]
    (summary,) = [x for x in warnings_in(proc) if "model calls" in x]
    calls = int(re.search(r"in (\d+) of (\d+) model calls", summary).group(1))
    assert calls > 10


def test_extrapolation_error_stops_and_off_is_silent(trained, toluene_emt_file, tmp_path):
    toluene_data(tmp_path, squeezed(read_dataset(toluene_emt_file)[0], 0.6))
    err = lammps_error(run_lmp(tmp_path, TOLUENE.format(style="extrapolation error", model=trained[1], steps=0)))
    assert "outside its training range" in err and "extrapolation error" in err
    off = run_lmp(tmp_path, TOLUENE.format(style="extrapolation off", model=trained[1], steps=0))
    assert off.returncode == 0 and warnings_in(off) == []
    bad = run_lmp(tmp_path, TOLUENE.format(style="extrapolation maybe", model=trained[1], steps=0))
    assert "extrapolation 'maybe' is not warn, error or off" in lammps_error(bad)


def test_atoms_at_the_same_position_stop_the_run(trained, toluene_emt_file, tmp_path):
    atoms = read_dataset(toluene_emt_file)[0]
    atoms.positions[4] = atoms.positions[2]
    toluene_data(tmp_path, atoms)
    err = lammps_error(run_lmp(tmp_path, TOLUENE.format(style="", model=trained[1], steps=0)))
    assert "atoms 3 and 5 are at the same position" in err


def test_non_finite_model_output_stops_the_run(toluene_emt_file, tmp_path):
    model = random_schnet(["H", "C"])
    with torch.no_grad():
        model.readout[-1].bias.fill_(float("nan"))
    export_model(model, tmp_path / "nan.pt")
    toluene_data(tmp_path, read_dataset(toluene_emt_file)[0])
    err = lammps_error(run_lmp(tmp_path, TOLUENE.format(style="", model=tmp_path / "nan.pt", steps=0)))
    assert "returned non-finite" in err and "nan.pt" in err


CU = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlff {style}
pair_coeff * * {model} Cu
neighbor 1.0 bin
thermo_style custom step pe
run 0
"""


@pytest.mark.parametrize("nprocs", [1, 2])
def test_extrapolation_on_several_ranks(nprocs, tmp_path):
    """A 2-layer SchNet (halo mode on 2 ranks) with a recorded training range: one pair
    pushed to 1.8 Å is reported once, summed over the ranks; the crystal alone is not."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    export_model(random_schnet(["Cu"], seed=1, n_interactions=2), tmp_path / "cu.pt",
                 training_range={"pair_min_distance": {"Cu-Cu": 2.3}, "atomic_energy": {"Cu": [-10.0, 10.0]},
                                 "periodic": "periodic"})
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, CU.format(style="", model="cu.pt"), nprocs=nprocs)
    assert proc.returncode == 0 and warnings_in(proc) == [], proc.stdout[-2000:]
    atoms.positions[1] = atoms.positions[0] + (atoms.positions[1] - atoms.positions[0]) * 1.8 / atoms.get_distance(0, 1)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, CU.format(style="", model="cu.pt"), nprocs=nprocs)
    assert proc.returncode == 0, proc.stdout[-2000:]
    (warning,) = [x for x in warnings_in(proc) if "WARNING" in x]
    assert "closest Cu-Cu at 1.800 Angstrom, training minimum 2.300" in warning
