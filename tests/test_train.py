"""`mlff train`, `mlff-deploy` and `mlff eval` through the command line, good and bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml
from ase.build import molecule as ase_molecule
from ase.io import write

from mlff.cli import main as mlff
from mlff.deploy import main as mlff_deploy
from mlff.train import checkpoint


def train_args(data, out, *extra):
    return ["train", "--model", "schnet", "--train", str(data), "--out", str(out), "--features", "16",
            "--n-valid", "8", "--no-progress", *extra]


def test_train_deploy_eval_and_resume(toluene_emt_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "2")) == 0
    for name in ("best.ckpt", "last.ckpt", "metrics.csv", "learning_curve.png", "config.yaml"):
        assert (run / name).is_file(), name
    # --resume continues after the last epoch instead of starting over
    assert mlff(["train", "--train", str(toluene_emt_file), "--out", str(run), "--resume", "--epochs", "4",
                 "--n-valid", "8", "--no-progress"]) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])

    model = tmp_path / "model.pt"
    assert mlff_deploy([str(run / "best.ckpt"), "-o", str(model)]) == 0
    capsys.readouterr()
    assert mlff(["eval", str(model), str(toluene_emt_file), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == {"energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "force_mae_meV_per_A",
                            "force_rmse_meV_per_A", "n_structures"}
    assert metrics["n_structures"] == 40 and 0 < metrics["force_mae_meV_per_A"] < metrics["force_rmse_meV_per_A"]


def test_yaml_config_and_flag_override(toluene_emt_file, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"epochs": 1, "lr": 5e-4, "batch_size": 4, "model_params": {"n_interactions": 2}}))
    run = tmp_path / "run"
    assert mlff(train_args(toluene_emt_file, run, "--config", str(cfg), "--lr", "2e-4")) == 0
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["lr"] == 2e-4 and stored["batch_size"] == 4 and stored["model_params"]["n_interactions"] == 2


def bad_files(tmp_path):
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("this is not\nan xyz file\n")
    unlabelled = tmp_path / "unlabelled.extxyz"
    write(unlabelled, [ase_molecule("CH4")] * 3, format="extxyz")
    return {"garbage": garbage, "unlabelled": unlabelled, "missing": tmp_path / "nope.extxyz"}


@pytest.mark.parametrize("kind", ["garbage", "unlabelled", "missing"])
def test_train_rejects_bad_data_naming_the_file(kind, tmp_path, capsys):
    path = bad_files(tmp_path)[kind]
    assert mlff(train_args(path, tmp_path / "run", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "error" in err


@pytest.mark.parametrize("kind", ["garbage", "unlabelled", "missing"])
def test_eval_rejects_bad_data_naming_the_file(kind, deployed_toluene, tmp_path, capsys):
    path = bad_files(tmp_path)[kind]
    assert mlff(["eval", str(deployed_toluene), str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_eval_rejects_a_file_that_is_not_a_model(toluene_emt_file, tmp_path, capsys):
    fake = tmp_path / "model.pt"
    fake.write_text("not a model")
    assert mlff(["eval", str(fake), str(toluene_emt_file)]) == 2
    assert str(fake) in capsys.readouterr().err


def test_unknown_config_option_is_named(toluene_emt_file, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("learning_rate: 0.1\n")
    assert mlff(train_args(toluene_emt_file, tmp_path / "run", "--config", str(cfg))) == 2
    assert "learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("device, message", [
    ("tpu0", "is not a device name"),
    ("meta", "cpu or cuda only"),
    ("cuda", "sees no CUDA device"),
    ("cuda:7", "sees no CUDA device"),
])
def test_unusable_device_is_refused_by_name(device, message, toluene_emt_file, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert mlff(train_args(toluene_emt_file, tmp_path / "run", "--device", device, "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert repr(device) in err and message in err
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_auto_device_is_the_cpu_without_a_gpu():
    from mlff.train.config import TrainConfig

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TrainConfig().validate().torch_device().type == expected
    assert TrainConfig(device="cpu").validate().torch_device() == torch.device("cpu")


def test_interrupted_save_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "best.ckpt"
    checkpoint.save_checkpoint(path, {"format": checkpoint.FORMAT, "epoch": 1})

    def crash(obj, fh):
        fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, {"format": checkpoint.FORMAT, "epoch": 2})
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(path)["epoch"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no stray temporary file


def test_ema_keeps_fitted_buffers_exact(toluene_emt_file, tmp_path):
    """The EMA averages weights only: fitted buffers reach best.ckpt unchanged."""
    run = tmp_path / "run"
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "2", "--lr", "1e-2")) == 0
    best = checkpoint.load_checkpoint(run / "best.ckpt")["model_state"]
    last = checkpoint.load_checkpoint(run / "last.ckpt")["model_state"]
    for name in ("energy_scale.reference_energy", "energy_scale.scale", "rbf.centres"):
        assert torch.equal(best[name], last[name]), name
    assert not torch.equal(best["readout.0.weight"], last["readout.0.weight"])  # weights are averaged


def test_cpu_budget_ends_a_long_epoch_early(toluene_emt_file, tmp_path):
    """A budget smaller than one epoch stops inside the first epoch (batch 1), still
    validating and writing a usable best.ckpt."""
    full = tmp_path / "full"
    assert mlff(train_args(toluene_emt_file, full, "--epochs", "1", "--batch-size", "1")) == 0
    epoch_cpu_s = float(list(csv.DictReader(open(full / "metrics.csv")))[0]["cpu_s"])
    run = tmp_path / "run"
    assert mlff(train_args(toluene_emt_file, run, "--epochs", "5", "--batch-size", "1",
                           "--max-cpu-minutes", "0.0001")) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["cpu_s"]) < 0.5 * epoch_cpu_s
    assert (run / "best.ckpt").is_file()


def test_composition_baseline_is_the_spread_that_composition_leaves(toluene_emt_file):
    """The baseline predicts the fitted mean energy of the one composition and zero forces:
    its RMSEs are the RMS deviation of the validation energies per atom from the training
    mean, and the RMS force component."""
    import numpy as np

    from mlff.data.io import read_dataset
    from mlff.graph import atoms_to_graph
    from mlff.models import build_model
    from mlff.train.baseline import composition_baseline
    from mlff.train.statistics import fit_energy_scale
    from mlff.train.trainer import GraphSet

    frames = read_dataset(toluene_emt_file)
    model = build_model("schnet", ["C", "H"], 5.0, dtype=torch.float64, n_features=8, n_interactions=1)
    graphs = [atoms_to_graph(a, model.species, 5.0) for a in frames]
    fit_energy_scale(model, graphs[:30])
    base = composition_baseline(model, GraphSet(graphs[30:]), batch_size=3)
    energies = np.array([a.info["energy"] for a in frames])
    n = len(frames[0])
    expected_e = 1e3 * np.sqrt(np.mean(((energies[30:] - energies[:30].mean()) / n) ** 2))
    expected_f = 1e3 * np.sqrt(np.mean(np.concatenate([a.arrays["forces"] for a in frames[30:]]) ** 2))
    assert base["energy_rmse"] == pytest.approx(expected_e, rel=1e-8)
    assert base["force_rmse"] == pytest.approx(expected_f, rel=1e-8)


def test_unlearned_warnings_fire_only_above_the_fraction():
    from mlff.train.baseline import LEARNED_FRACTION, unlearned_warnings

    base = {"energy_rmse": 10.0, "force_rmse": 100.0}
    learned = {"valid_energy_rmse": 0.5 * LEARNED_FRACTION * 10.0, "valid_force_rmse": 20.0}
    assert unlearned_warnings(learned, base, predicts_energy=True) == []
    stuck = {"valid_energy_rmse": 9.9, "valid_force_rmse": 20.0}
    (message,) = unlearned_warnings(stuck, base, predicts_energy=True)
    assert "energy RMSE" in message and "99 %" in message and "learned little" in message
    # a direct-force model has no energy error to judge
    assert unlearned_warnings({"valid_energy_rmse": float("nan"), "valid_force_rmse": 95.0}, base, False)[0] \
        .startswith("the best model's validation force RMSE")


def test_train_warns_when_the_model_learned_nothing(toluene_emt_file, tmp_path, capsys):
    """A learning rate too small to move the weights leaves the model at the fitted mean:
    mlff train says so, and summary.json records the baseline it compared with."""
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="learned little"):
        assert mlff(train_args(toluene_emt_file, run, "--epochs", "1", "--lr", "1e-12")) == 0
    assert "warning: the best model's validation energy RMSE" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["baseline_valid_energy_rmse"] > 0 and summary["baseline_valid_force_rmse"] > 0
