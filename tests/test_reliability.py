"""Bad input a new user tries: clear one-line errors, nothing lost, nothing silently wrong
(checkpoints, deploy outputs, options, data files, extrapolation)."""

from __future__ import annotations

import hashlib
import os
import warnings

import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.build import bulk
from ase.io import read, write

from conftest import emt_frames, molecule
from mlff.calculator import MLFFCalculator
from mlff.cli import main as mlff
from mlff.data.check import CheckSettings, check_frames
from mlff.data.io import read_dataset, write_dataset
from mlff.deploy import load_deployed, main as mlff_deploy
from mlff.errors import DataError, DataWarning, ModelEvaluationError, ModelFileError


def train_args(data, out, *extra):
    return ["train", "--model", "schnet", "--train", str(data), "--out", str(out), "--features", "8",
            "--interactions", "1", "--n-valid", "8", "--no-progress", *extra]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def trained_run(toluene_emt_file, tmp_path_factory):
    """A finished one-epoch run (best.ckpt, last.ckpt) and its deployed model."""
    run = tmp_path_factory.mktemp("reliability") / "run"
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "1")) == 0
    model = run.parent / "model.pt"
    assert mlff_deploy([str(run / "best.ckpt"), "-o", str(model)]) == 0
    return run, model


# ---------------------------------------------------------------- 1. species only in --valid
def test_element_only_in_validation_is_refused(toluene_emt_file, tmp_path, capsys):
    valid = tmp_path / "valid.extxyz"
    write(valid, emt_frames(molecule("ethanol"), 3), format="extxyz")  # has O; toluene has not
    run = tmp_path / "run"
    assert mlff(["train", "--train", str(toluene_emt_file), "--valid", str(valid), "--out", str(run),
                 "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "['O']" in err and str(valid) in err and str(toluene_emt_file) in err and "untrained" in err
    assert not list(run.glob("*.ckpt"))


# ---------------------------------------------------------------- 2. --out with checkpoints
@pytest.mark.parametrize("existing", ["best.ckpt", "last.ckpt"])
def test_existing_checkpoint_is_never_overwritten(existing, trained_run, toluene_emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / existing).write_bytes((trained_run[0] / existing).read_bytes())
    before = digest(run / existing)
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert existing in err and "--resume" in err and "--overwrite" in err
    assert digest(run / existing) == before
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "1", "--overwrite", "--seed", "1")) == 0
    assert digest(run / existing) != before  # replaced, as asked


# ---------------------------------------------------------------- 3. mlff-deploy outputs
def test_deploy_refuses_to_overwrite_its_input(trained_run, tmp_path, capsys):
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes((trained_run[0] / "best.ckpt").read_bytes())
    link = tmp_path / "same.ckpt"
    os.link(ckpt, link)
    before = digest(ckpt)
    for output in (ckpt, link):
        assert mlff_deploy([str(ckpt), "-o", str(output)]) == 2
        assert "is the checkpoint itself" in capsys.readouterr().err
    assert digest(ckpt) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "same.ckpt"]


def test_deploy_refuses_a_directory_output_without_leaving_files(trained_run, tmp_path, capsys):
    out = tmp_path / "models"
    out.mkdir()
    assert mlff_deploy([str(trained_run[0] / "best.ckpt"), "-o", str(out)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["models"]


# ---------------------------------------------------------------- 4. checkpoint where a model belongs
def test_checkpoint_given_as_model_is_recognised(trained_run, toluene_emt_file, capsys):
    ckpt = trained_run[0] / "best.ckpt"
    assert mlff(["eval", str(ckpt), str(toluene_emt_file)]) == 2
    err = capsys.readouterr().err
    assert "training checkpoint" in err and "mlff-deploy" in err
    with pytest.raises(ModelFileError, match="training checkpoint.*mlff-deploy"):
        MLFFCalculator(ckpt)


# ---------------------------------------------------------------- 5. one-line errors for bad values
def bad_option_cases(tmp_path):
    (tmp_path / "afile").write_text("x")
    yaml_file = tmp_path / "cfg.yaml"
    yaml_file.write_text('batch_size: "ten"\n')
    return {
        "yaml-string": (["--config", str(yaml_file)], "batch_size must be an integer, got 'ten'"),
        "lr-nan": (["--lr", "nan"], "lr must be a finite number"),
        "r-max-inf": (["--r-max", "inf"], "r_max must be a finite number"),
        "energy-weight": (["--energy-weight", "-1"], "energy_weight must be ≥ 0, got -1"),
        "threads": (["--threads", "0"], "threads must be ≥ 1"),
        "out-file": (["--out", str(tmp_path / "afile")], "is a file, not a directory"),
        "out-unwritable": (["--out", str(tmp_path / "afile" / "run")], "cannot be written"),
    }


@pytest.mark.parametrize("case", ["yaml-string", "lr-nan", "r-max-inf", "energy-weight", "threads", "out-file",
                                  "out-unwritable"])
def test_bad_option_gives_one_line(case, toluene_emt_file, tmp_path, capsys):
    extra, message = bad_option_cases(tmp_path)[case]
    args = train_args(toluene_emt_file, tmp_path / "run", "--epochs", "1")
    if extra[0] == "--out":
        args[args.index("--out") + 1] = extra[1]
        extra = []
    assert mlff(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "best.ckpt").exists()


def test_truncated_extxyz_names_the_frame(toluene_emt_file, tmp_path, capsys):
    lines = toluene_emt_file.read_text().splitlines()
    truncated = tmp_path / "truncated.extxyz"
    truncated.write_text("\n".join(lines[:-3]) + "\n")
    n_frames = len(read(toluene_emt_file, ":"))
    assert mlff(train_args(truncated, tmp_path / "run", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and f"frame {n_frames - 1}" in err


# ---------------------------------------------------------------- 6. --resume contradictions
@pytest.mark.parametrize("option", [["--model", "bp"], ["--r-max", "4.0"], ["--features", "16"], ["--lr", "0.5"]])
def test_resume_refuses_changed_model_options(option, trained_run, toluene_emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.ckpt", "last.ckpt"):
        (run / name).write_bytes((trained_run[0] / name).read_bytes())
    before = digest(run / "last.ckpt")
    assert mlff(["train", "--train", str(toluene_emt_file), "--out", str(run), "--resume", "--epochs", "2",
                 "--n-valid", "8", "--no-progress", *option]) == 2
    err = capsys.readouterr().err
    assert "contradict" in err and option[0].lstrip("-").replace("-", "_").replace("features", "n_features") in err
    assert digest(run / "last.ckpt") == before


def test_resume_removes_a_stale_temporary_checkpoint(trained_run, toluene_emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.ckpt", "last.ckpt"):
        (run / name).write_bytes((trained_run[0] / name).read_bytes())
    stale = run / "last.ckpt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert mlff(["train", "--train", str(toluene_emt_file), "--out", str(run), "--resume", "--epochs", "2",
                 "--n-valid", "8", "--no-progress", "--features", "8"]) == 0
    assert not stale.exists() and "removed" in capsys.readouterr().out


# ---------------------------------------------------------------- 7. data checks
def labelled(atoms, energy, forces):
    atoms = atoms.copy()
    atoms.info["energy"] = float(energy)
    atoms.arrays["forces"] = np.asarray(forces, dtype=float)
    return atoms


@pytest.fixture(scope="module")
def clean_frames(toluene_emt_file):
    return read_dataset(toluene_emt_file)


def kinds(findings):
    return {f.kind for f in findings}


def test_clean_data_has_no_findings(clean_frames):
    assert check_frames(clean_frames) == []


@pytest.mark.parametrize("factor, name", [(23.0605, "kcal/mol vs eV"), (27.2114, "eV vs Hartree"), (1000.0, "meV")])
def test_unit_mixup_between_subsets_is_named(clean_frames, factor, name):
    frames = [labelled(a, a.info["energy"] * (factor if k >= 25 else 1), a.arrays["forces"] * (factor if k >= 25 else 1))
              for k, a in enumerate(clean_frames)]
    findings = [f for f in check_frames(frames) if f.kind == "unit-mixup"]
    assert findings and all(name in f.message for f in findings)
    assert set(findings[0].frames) == set(range(25, len(frames)))


def test_precise_energies_name_one_unit_factor(clean_frames):
    """Energies with a large reference (as from DFT or xTB) give the factor exactly."""
    frames = [labelled(a, (a.info["energy"] - 40.0 * len(a)) * (627.5095 if k < 5 else 1), a.arrays["forces"])
              for k, a in enumerate(clean_frames)]
    (finding,) = [f for f in check_frames(frames) if f.kind == "unit-mixup"]
    assert "627.51" in finding.message and " or " not in finding.message and finding.frames == list(range(5))


def test_outliers_duplicates_overlaps_and_isolated_atoms_are_found(clean_frames):
    frames = [a.copy() for a in clean_frames]
    frames[3].info["energy"] += 5.0 * len(frames[3])                 # +5 eV/atom
    frames[7].arrays["forces"] = frames[7].arrays["forces"] * 40.0   # force outlier, not a unit factor
    frames[9] = frames[2].copy()                                     # duplicate
    frames[11].positions[1] = frames[11].positions[0] + [0.2, 0, 0]  # overlapping atoms
    frames[13].positions[5] += [30.0, 0, 0]                          # isolated atom
    found = {f.kind: f.frames for f in check_frames(frames)}
    assert 3 in found["energy-outlier"] and 7 in found["force-outlier"] and found["duplicate"] == [9]
    assert 11 in found["close-contact"] and found["isolated-atom"] == [13]


def test_periodic_crystal_without_pbc_is_found(cu_box):
    frames = []
    for seed in range(6):
        atoms = cu_box.copy()
        atoms.rattle(0.02, seed=seed)
        frames.append(labelled(atoms, -0.1 * len(atoms), np.zeros((len(atoms), 3)) + 0.01 * seed))
    frames[2].pbc = False
    frames[4].info["stress"] = np.zeros(6)
    frames[4].pbc = False
    found = {f.kind: f.frames for f in check_frames(frames, CheckSettings(r_max=4.0))}
    assert found["missing-pbc"] == [2, 4] and found["stress-without-pbc"] == [4]


def test_data_check_command_and_strict_training(clean_frames, toluene_emt_file, tmp_path, capsys):
    bad = tmp_path / "mixed.extxyz"
    frames = [labelled(a, a.info["energy"] * (23.0605 if k % 2 else 1), a.arrays["forces"] * (23.0605 if k % 2 else 1))
              for k, a in enumerate(clean_frames)]
    write_dataset(bad, frames)
    assert mlff(["data", "check", str(bad)]) == 0
    out = capsys.readouterr().out
    assert "unit-mixup" in out and "23.06" in out and (tmp_path / "mixed_check.md").is_file()
    assert mlff(["data", "check", str(bad), "--strict"]) == 2
    capsys.readouterr()
    # training warns and writes the report; --strict stops before any checkpoint
    run = tmp_path / "run"
    with pytest.warns(DataWarning, match="unit-mixup"):
        assert mlff(train_args(bad, run, "--epochs", "1")) == 0
    assert "unit-mixup" in (run / "data_check.md").read_text()
    strict = tmp_path / "strict"
    assert mlff(train_args(bad, strict, "--epochs", "1", "--strict")) == 2
    assert "unit-mixup" in capsys.readouterr().err and not list(strict.glob("*.ckpt"))


# ---------------------------------------------------------------- 8. extrapolation
def test_training_range_reaches_the_deployed_metadata(trained_run, clean_frames):
    _, meta = load_deployed(trained_run[1])
    rng = meta["training_range"]
    assert set(rng["pair_min_distance"]) == {"H-H", "H-C", "C-C"} and rng["periodic"] == "non-periodic"
    closest_ch = min(np.min(a.get_distances(i, [j for j in range(len(a)) if a[j].symbol == "H"], mic=False))
                     for a in clean_frames for i in range(len(a)) if a[i].symbol == "C")
    assert rng["pair_min_distance"]["H-C"] <= closest_ch + 1e-6  # training part only: not below the whole set
    for s in ("C", "H"):
        lo, hi = rng["atomic_energy"][s]
        assert lo < hi


def test_calculator_warns_outside_the_training_range_and_not_inside(trained_run, clean_frames):
    calc = MLFFCalculator(trained_run[1])
    atoms = clean_frames[0].copy()
    atoms.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        atoms.get_forces()  # a training-like frame: no warning
    squeezed = clean_frames[0].copy()
    h = [k for k, s in enumerate(squeezed.get_chemical_symbols()) if s == "H"][0]
    c = [k for k, s in enumerate(squeezed.get_chemical_symbols()) if s == "C"][0]
    squeezed.positions[h] = squeezed.positions[c] + [0.6, 0, 0]
    squeezed.calc = calc
    with pytest.warns(DataWarning, match="closer than in training.*H-C at 0.600"):
        squeezed.get_forces()
    assert calc.extrapolation_count == 1


def test_atoms_at_the_same_position_are_an_error(trained_run, clean_frames):
    atoms = clean_frames[0].copy()
    atoms.positions[4] = atoms.positions[2]
    atoms.calc = MLFFCalculator(trained_run[1])
    with pytest.raises(DataError, match="atoms 2 and 4 are at the same position"):
        atoms.get_potential_energy()


def test_non_finite_model_output_is_an_error(clean_frames, tmp_path):
    from conftest import random_schnet
    from mlff.deploy import export_model

    model = random_schnet(["C", "H"])
    with torch.no_grad():
        model.readout[-1].bias.fill_(float("nan"))
    export_model(model, tmp_path / "nan.pt")
    atoms = clean_frames[0].copy()
    atoms.calc = MLFFCalculator(tmp_path / "nan.pt")
    with pytest.raises(ModelEvaluationError, match="non-finite"):
        atoms.get_forces()


# ---------------------------------------------------------------- 9. periodic vs molecule models
def test_eval_names_periodic_data_given_to_a_molecule_model(trained_run, tmp_path, capsys):
    box = molecule("toluene")
    box.center(vacuum=6.0)
    box.pbc = True
    frames = emt_frames(box, 3)
    data = tmp_path / "periodic.extxyz"
    write(data, frames, format="extxyz")
    assert mlff(["eval", str(trained_run[1]), str(data)]) == 0
    err = capsys.readouterr().err
    assert "3 of 3 structures are periodic" in err and "non-periodic structures only" in err
