"""mlff learn: configuration errors, the loop end to end with EMT on a small Cu cell (two
iterations, killed mid-iteration and resumed), a reference that fails on some frames,
and the committee calibration of mlff eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.io import write

from mlff.calibration import calibrate
from mlff.cli import main as mlff
from mlff.data.io import read_dataset
from mlff.errors import ConfigError
from mlff.learn.config import LabelConfig, LearnConfig
from mlff.learn.label import label

TESTS = Path(__file__).parent

QUICK = {
    "reference": "emt", "structures": ["cu.xyz"], "n_initial": 4, "rattle": 0.05, "committee": 2,
    "train": {"model": "schnet", "model_params": {"n_features": 8, "n_interactions": 1}, "epochs": 8,
              "batch_size": 1, "lr": 0.005, "r_max": 4.0},
    "explore": {"temperatures": [300, 1200], "steps": 100, "every": 20, "timestep_fs": 2.0, "parallel": 2},
    "select": {"trust_lo": 0.0001, "trust_hi": 0.5, "n_select": 3},
    "label": {"workers": 2}, "max_iterations": 2,
}


@pytest.fixture
def learn_dir(tmp_path):
    write(tmp_path / "cu.xyz", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2))
    (tmp_path / "learn.yaml").write_text(yaml.safe_dump(QUICK))
    return tmp_path


@pytest.mark.parametrize("change, message", [
    ({"select": {"trust_lo": 0.5, "trust_hi": 0.1}}, "select.trust_lo must be ≥ 0 and < select.trust_hi"),
    ({"explore": {"temperatures": ["hot"]}}, "temperatures/pressures must be numbers"),
    ({"explore": {"tempratures": [300]}}, "unknown option(s) ['explore.tempratures']"),
    ({"committee": 1}, "committee must be an integer ≥ 2"),
    ({"structures": ["missing.xyz"]}, "missing.xyz: no such file"),
    ({"train": {"lr": "fast"}}, "lr must be a number"),
])
def test_bad_configuration_is_named(change, message, learn_dir, capsys):
    (learn_dir / "bad.yaml").write_text(yaml.safe_dump({**QUICK, **change}))
    assert mlff(["learn", str(learn_dir / "bad.yaml"), "--out", str(learn_dir / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.yaml" in err


def _state(run: Path) -> dict:
    try:
        return json.loads((run / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_two_iterations_killed_mid_iteration_and_resumed(learn_dir):
    run = learn_dir / "run"
    cmd = [sys.executable, "-m", "mlff.cli", "learn"]
    proc = subprocess.Popen(cmd + [str(learn_dir / "learn.yaml"), "--out", str(run)], cwd=learn_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill during iteration 1, after its committee is trained
        s = _state(run)
        if s.get("iteration") == 1 and "train" in s.get("done", []):
            break
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _state(run)["iteration"] == 1 and len(_state(run)["history"]) == 1

    done = subprocess.run(cmd + ["--resume", "--out", str(run)], cwd=learn_dir, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    state = _state(run)
    assert [h["iteration"] for h in state["history"]] == [0, 1] and state["stop_reason"].startswith("max_iterations")
    assert "member 1 of 2" not in done.stdout  # the trained committee of iteration 1 was not retrained
    h0, h1 = state["history"]
    assert h0["labelled"] > 0 and h1["n_train"] == QUICK["n_initial"] + h0["labelled"]
    labelled = read_dataset(run / "iter_000" / "labelled.extxyz")
    assert len(labelled) == h0["labelled"] and all("max_devi_f" in a.info for a in labelled)
    report = (run / "report.md").read_text()
    assert report.count("\n| 0 |") == 1 and report.count("\n| 1 |") == 1
    assert (run / "learning.png").is_file() and (run / "deviations.png").is_file()


def test_failing_reference_loses_only_its_frames(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    frames = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
        atoms.positions += 0.01 * k
        atoms.positions[0, 0] = 0.2 if k in (1, 3) else 1.0
        frames.append(atoms)
    messages = []
    done, failures = label(frames, "flaky_reference:flaky_emt", LabelConfig(workers=2), tmp_path / "label",
                           log=messages.append)
    assert len(done) == 2 and len(failures) == 2
    assert all("SCF did not converge" in f for f in failures) and {f.split(":")[0] for f in failures} == {"frame 1",
                                                                                                        "frame 3"}
    assert "frame 1: RuntimeError" in (tmp_path / "label" / "failures.log").read_text()
    assert sum("dropped" in m for m in messages) == 2
    # a second call repeats nothing (every frame has its result on disk)
    assert label(frames, "flaky_reference:flaky_emt", LabelConfig(workers=2), tmp_path / "label",
                 log=messages.append)[0][0].info["energy"] == done[0].info["energy"]
    assert sum("dropped" in m for m in messages) == 2


def test_unknown_reference_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="neither a calculator name"):
        label([bulk("Cu")], "dft-please", LabelConfig(), tmp_path)
    with pytest.raises(ConfigError, match="cannot import"):
        label([bulk("Cu")], "no_such_module:calc", LabelConfig(), tmp_path)


def test_calibration_of_a_calibrated_committee():
    """Errors drawn as |N(0, σ²)| per component around deviations σ: Spearman clearly
    positive, RMS error per bin ≈ the bin's deviation."""
    rng = np.random.default_rng(0)
    sigma = np.exp(rng.uniform(np.log(0.01), np.log(1.0), 20000))
    error = np.linalg.norm(rng.normal(size=(20000, 3)) * (sigma / np.sqrt(3))[:, None], axis=1)
    result = calibrate(sigma, error)
    assert result["spearman"] > 0.7
    for b in result["bins"]:
        assert b["rms_error"] == pytest.approx(np.sqrt(np.mean(sigma[(sigma >= b["deviation_lo"]) &
                                                                     (sigma <= b["deviation_hi"])] ** 2)), rel=0.1)
    noise = calibrate(sigma, rng.permutation(error))
    assert abs(noise["spearman"]) < 0.05


def test_eval_reports_the_calibration_of_a_committee(toluene_emt_file, tmp_path, capsys):
    from conftest import random_schnet
    from mlff.deploy import export_committee

    export_committee([random_schnet(["H", "C"], seed=s) for s in range(3)], tmp_path / "c.pt")
    assert mlff(["eval", str(tmp_path / "c.pt"), str(toluene_emt_file), "--json",
                 "--calibration-plot", str(tmp_path / "cal.png")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["calibration"]["n_atoms"] == 40 * 15 and len(m["calibration"]["bins"]) == 10
    assert (tmp_path / "cal.png").stat().st_size > 10_000
