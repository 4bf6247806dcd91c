"""Data-parallel training (mlff.train.distributed): two CPU processes with gloo.

The ranks are started as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT; tests/distributed_worker.py), and once through torchrun itself (the CLI).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from mlff.train.distributed import DistContext, _first_slurm_host, launch_environment, shard

WORKER = Path(__file__).with_name("distributed_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cu_frames(n: int, seed: int = 0):
    """Rattled, strained 8-atom Cu cells with EMT energies, forces and stress."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.02 * rng.standard_normal((3, 3))), scale_atoms=True)
        atoms.rattle(0.08, seed=seed * 1000 + k)
        atoms.calc = EMT()
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        frames.append(atoms)
    return frames


def launch(scenario: str, directory: Path, n: int = 2, timeout: float = 60.0) -> list[subprocess.CompletedProcess]:
    """Start ``n`` ranks of the worker and wait for all of them (``timeout`` s in all)."""
    port = free_port()
    procs = []
    for rank in range(n):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(n), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), scenario, str(directory)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + timeout
    results = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(subprocess.CompletedProcess(p.args, p.returncode, out))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {n} ranks of {scenario!r} did not finish within {timeout:g} s (a hang)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """The ``train`` scenario on two ranks (gradients, two epochs of training)."""
    directory = tmp_path_factory.mktemp("ddp")
    write(directory / "data.extxyz", cu_frames(20), format="extxyz")
    results = launch("train", directory)
    for r in results:
        assert r.returncode == 0, r.stdout
    return directory


def test_launch_environment_torchrun_slurm_and_single():
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"}
    info = launch_environment(env)
    assert (info["rank"], info["world_size"], info["local_rank"], info["launcher"]) == (1, 4, 1, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
             "SLURM_STEP_NODELIST": "node[03-06,9],gpu1", "SLURM_JOB_ID": "4242"}
    info = launch_environment(slurm)
    assert (info["rank"], info["world_size"], info["local_rank"], info["launcher"]) == (5, 8, 1, "slurm")
    if shutil.which("scontrol") is None:
        assert info["master_addr"] == "node03"
    assert info["master_port"] == str(15000 + 4242)
    assert launch_environment({}) is None
    assert launch_environment({"RANK": "0", "WORLD_SIZE": "1"}) is None
    # a batch script's single process is not a distributed run
    assert launch_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) is None
    assert _first_slurm_host("c1") == "c1" and _first_slurm_host("a[007-9]") in ("a007",)


def test_shards_cover_the_batch_in_order():
    batch = np.array([9, 3, 5, 1, 7])
    parts = [shard(batch, 2, r) for r in range(2)]
    assert np.array_equal(np.concatenate(parts), batch) and [len(p) for p in parts] == [2, 3]
    sizes = [len(shard(batch, 7, r)) for r in range(7)]
    assert sum(sizes) == 5 and set(sizes) == {0, 1}  # a rank may get none: it still joins the all-reduce
    assert not DistContext().enabled and DistContext().is_main


def test_summed_gradients_equal_the_single_process_gradient(two_rank_run):
    """Energy, force and stress terms; shards of 2 and 3 structures; fp64 to 1e-10."""
    from mlff.graph import atoms_to_graph, collate
    from mlff.models import build_model
    from mlff.train.statistics import fit_energy_scale
    from mlff.train.trainer import batch_loss
    from mlff.data.io import read_dataset

    train = read_dataset(two_rank_run / "data.extxyz")[:15]
    torch.manual_seed(0)
    model = build_model("schnet", ["Cu"], 5.0, dtype=torch.float64, n_features=8, n_interactions=2)
    graphs = [atoms_to_graph(a, model.species, 5.0) for a in train]
    fit_energy_scale(model, graphs)
    torch.nn.init.normal_(model.readout[-1].weight, std=0.5)
    params = [p for p in model.parameters() if p.requires_grad]
    loss, _, _ = batch_loss(model, collate([graphs[k] for k in [4, 0, 11, 7, 2]]), 1.0, 0.5)
    loss.backward(inputs=params)
    ranks = [torch.load(two_rank_run / f"grad_rank{r}.pt") for r in range(2)]
    assert ranks[0]["local"] == [4, 0] and ranks[1]["local"] == [11, 7, 2]
    for rank in ranks:
        for p, g in zip(params, rank["grad"]):
            assert (p.grad is None) == (g is None)
            if g is not None:
                scale = float(p.grad.abs().max()) + 1e-30
                assert float((g - p.grad).abs().max()) <= 1e-10 * max(scale, 1.0)
    assert sum(float(p.grad.abs().sum()) for p in params if p.grad is not None) > 0


def _one_process(directory: Path, out: Path, epochs: int = 2):
    import importlib.util

    spec = importlib.util.spec_from_file_location("distributed_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    from mlff.train.trainer import Trainer

    train, valid = worker.frames(directory)
    trainer = Trainer(worker.config(epochs=epochs), out)
    trainer.fit(train, valid, progress=False, log=lambda *_: None)
    return trainer, train, valid


def _assert_same_weights(a: dict, b: dict, tol: float = 1e-9):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].double(), b[k].double(), rtol=tol, atol=tol), k


def test_two_processes_reach_the_weights_of_one(two_rank_run, tmp_path):
    one, _, _ = _one_process(two_rank_run, tmp_path / "one")
    w0 = torch.load(two_rank_run / "weights_rank0.pt")
    w1 = torch.load(two_rank_run / "weights_rank1.pt")
    _assert_same_weights(w0, w1, 0.0)  # the ranks never drift apart
    _assert_same_weights(one.model.state_dict(), w0)
    import csv

    rows = list(csv.DictReader(open(two_rank_run / "run" / "metrics.csv")))
    ref = list(csv.DictReader(open(tmp_path / "one" / "metrics.csv")))
    for a, b in zip(rows, ref):  # the same reduced metrics: the same schedule and stopping decisions
        assert float(a["valid_force_mae"]) == pytest.approx(float(b["valid_force_mae"]), rel=1e-9)
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-9)


def test_only_rank_zero_writes_files(two_rank_run):
    written = {p.name for p in (two_rank_run / "run").iterdir()}
    assert {"best.ckpt", "last.ckpt", "metrics.csv", "config.yaml", "summary.json", "learning_curve.png"} <= written
    assert not (two_rank_run / "run_rank1").exists()


def test_resume_a_two_process_checkpoint_in_one_process(two_rank_run, tmp_path):
    from mlff.train.trainer import Trainer

    resumed_dir = tmp_path / "resumed"
    shutil.copytree(two_rank_run / "run", resumed_dir)
    _, train, valid = _one_process(two_rank_run, tmp_path / "ref", epochs=3)
    resumed = Trainer.resume(resumed_dir, {"epochs": 3})
    resumed.fit(train, valid, progress=False, log=lambda *_: None)
    ref = torch.load(tmp_path / "ref" / "last.ckpt", weights_only=False)
    _assert_same_weights(resumed.model.state_dict(), ref["model_state"])
    assert torch.load(two_rank_run / "run" / "last.ckpt", weights_only=False)["world_size"] == 2


def test_a_failing_rank_stops_every_rank_with_its_message(tmp_path):
    write(tmp_path / "data.extxyz", cu_frames(20, seed=1), format="extxyz")
    t0 = time.monotonic()
    results = launch("fail", tmp_path, timeout=60.0)
    assert time.monotonic() - t0 < 60
    assert [r.returncode for r in results] == [1, 1], [r.stdout for r in results]
    own = (tmp_path / "error_rank1.txt").read_text()
    other = (tmp_path / "error_rank0.txt").read_text()
    assert own == "RuntimeError: injected failure on rank 1"
    assert other.startswith("RankFailedError: rank 1 of 2 stopped the run: RuntimeError: injected failure on rank 1")


def test_torchrun_cli_then_resume_in_one_process(tmp_path):
    """``torchrun --nproc-per-node 2 -m mlff train``, then ``mlff train --resume`` in one process."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    write(tmp_path / "data.extxyz", cu_frames(12, seed=2), format="extxyz")
    common = ["--train", str(tmp_path / "data.extxyz"), "--n-valid", "4", "--out", str(tmp_path / "run"),
              "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "mlff",
                            "train", "--model", "schnet", "--features", "8", "--interactions", "2", "--epochs", "1",
                            *common], env=env, capture_output=True, text=True, timeout=90)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 processes, gloo" in first.stdout and first.stdout.count("effective batch size 5") == 1
    second = subprocess.run([sys.executable, "-m", "mlff", "train", "--resume", "--epochs", "2", *common], env=env,
                            capture_output=True, text=True, timeout=90)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming" in second.stdout
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=False)["epoch"] == 2
