"""Packed data sets (mlff.data.packed, ``mlff data pack``): exact round trips, the graphs
training builds from them, r_max checks, and training under a memory limit smaller than
the data set."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from mlff.cli import main as mlff_main
from mlff.data.io import read_dataset
from mlff.data.packed import PackedDataset, is_packed, pack, read_packed
from mlff.errors import ConfigError, DataError
from mlff.graph import atoms_to_graph, collate


def mixed_frames():
    """Periodic Cu cells of two sizes with stress, and molecules (no cell, no stress)."""
    frames = []
    for k in range(12):
        if k % 3 == 2:
            atoms = molecule("CH3OH" if k % 2 else "CH4")
            atoms.rattle(0.05, seed=k)
        else:
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 1 + k % 2))
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.01 * k * np.array([[0, 1, 0], [0, 0, 0], [0, 0, 1]])),
                           scale_atoms=True)
            atoms.rattle(0.1, seed=k)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        extra = {"stress": atoms.get_stress()} if atoms.pbc.all() else {}
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, **extra)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("packed")
    write(d / "mixed.extxyz", mixed_frames(), format="extxyz")
    assert mlff_main(["data", "pack", str(d / "mixed.extxyz"), "-o", str(d / "mixed.h5"), "--r-max", "4.0",
                      "--workers", "2", "--chunk", "5", "--no-progress"]) == 0
    return d


def test_round_trip_is_exact(mixed):
    ref = read_dataset(mixed / "mixed.extxyz")
    back = read_packed(mixed / "mixed.h5")
    assert is_packed(mixed / "mixed.h5") and not is_packed(mixed / "mixed.extxyz")
    assert len(back) == len(ref)
    for a, b in zip(ref, back):
        assert np.array_equal(a.numbers, b.numbers)
        assert np.array_equal(a.positions, b.positions)
        assert np.array_equal(a.cell.array, b.cell.array)
        assert np.array_equal(a.pbc, b.pbc)
        assert a.info["energy"] == b.info["energy"]
        assert np.array_equal(a.arrays["forces"], b.arrays["forces"])
        assert ("stress" in a.info) == ("stress" in b.info)
        if "stress" in a.info:
            assert np.array_equal(a.info["stress"], b.info["stress"])


def test_batches_are_the_graphs_training_builds(mixed):
    ref = read_dataset(mixed / "mixed.extxyz")
    data = PackedDataset(mixed / "mixed.h5")
    assert data.species == ["H", "C", "O", "Cu"] and data.r_max == 4.0 and data.periodicity == "mixed"
    for idx in ([3, 4, 0], [0, 1], [6, 7, 9, 10]):
        got = data.batch(idx, data.species)
        want = collate([atoms_to_graph(ref[k], data.species, 4.0) for k in idx])
        for name in ("species", "pos", "edge_index", "shift_vec", "batch", "n_atoms", "cell", "volume", "energy",
                     "forces", "stress"):
            a, b = getattr(got, name), getattr(want, name)
            assert (a is None) == (b is None), name
            if a is not None:
                assert a.shape == b.shape and torch.equal(a, b.to(a.dtype)), name
    # shortest distances per species pair over all edges: the deployed model's extrapolation limits
    from mlff.train.statistics import pair_min_distances

    graphs = [atoms_to_graph(a, data.species, 4.0) for a in ref]
    assert data.pair_min_distance == pytest.approx(pair_min_distances(graphs, data.species), rel=1e-12)
    sub = data.subset([5, 2])
    assert len(sub) == 2 and np.array_equal(sub.n_atoms, data.n_atoms[[5, 2]])


def test_packing_errors_name_the_frame(tmp_path):
    bad = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=[[1, 0, 0], [0, 1, 0], [0, 0, 0]],
                pbc=True)
    bad.calc = SinglePointCalculator(bad, energy=0.0, forces=np.zeros((2, 3)))
    good = bulk("Cu", cubic=True)
    good.calc = SinglePointCalculator(good, energy=1.0, forces=np.zeros((4, 3)))
    write(tmp_path / "bad.extxyz", [good, bad], format="extxyz")
    with pytest.raises(DataError, match="frame 1"):
        pack([tmp_path / "bad.extxyz"], tmp_path / "bad.h5", 3.0, progress=False)
    assert not (tmp_path / "bad.h5").exists()
    with pytest.raises(DataError, match="not an mlff packed"):
        import h5py

        h5py.File(tmp_path / "other.h5", "w").close()
        PackedDataset(tmp_path / "other.h5")


def test_train_checks_r_max_and_trains_on_packed_data(mixed, tmp_path, capsys):
    args = ["train", "--model", "schnet", "--features", "8", "--interactions", "2", "--train",
            str(mixed / "mixed.h5"), "--n-valid", "3", "--epochs", "2", "--no-progress", "--threads", "1"]
    assert mlff_main(args + ["--out", str(tmp_path / "bad"), "--r-max", "5.0"]) == 2
    assert "packed with neighbour lists for r_max 4" in capsys.readouterr().err
    assert mlff_main(args + ["--out", str(tmp_path / "run")]) == 0  # r_max taken from the file
    record = torch.load(tmp_path / "run" / "best.ckpt", weights_only=False)
    assert record["r_max"] == 4.0 and record["training_range"]["periodic"] == "mixed"
    assert set(record["training_range"]["atomic_energy"]) <= {"H", "C", "O", "Cu"}
    assert mlff_main(args + ["--out", str(tmp_path / "run"), "--resume", "--epochs", "3"]) == 0


def big_frames(n: int, seed: int = 0):
    """``n`` rattled 32-atom Cu cells with made-up labels (cheap; training only needs numbers)."""
    rng = np.random.default_rng(seed)
    base = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    for k in range(n):
        atoms = base.copy()
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        atoms.info["energy"] = -100.0 + rng.standard_normal()
        atoms.arrays["forces"] = rng.standard_normal((len(atoms), 3))
        yield atoms


LIMITED_TRAINING = textwrap.dedent("""
    import json, resource, sys
    import torch
    from mlff.cli import main
    import mlff.train.trainer, mlff.data.packed, h5py  # everything imported before the limit
    def vm_data_mb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmData")) / 1024
    base = vm_data_mb()
    limit = base + float(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_DATA, (int(limit * 2**20), resource.RLIM_INFINITY))
    rc = main(["train", "--model", "schnet", "--features", "8", "--interactions", "2", "--train", sys.argv[1],
               "--n-valid", "20", "--max-minutes", "0.04", "--out", sys.argv[2], "--no-progress", "--threads", "1",
               "--cache-mb", "4"])
    print(json.dumps({"rc": rc, "base_mb": base, "limit_mb": limit,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def test_a_packed_set_larger_than_the_memory_limit_trains(tmp_path):
    headroom_mb = 128.0  # above what the process had allocated once everything was imported
    summary = pack([], tmp_path / "big.h5", 5.0, workers=2, progress=False, frames=big_frames(8000))
    payload_mb = (49 * summary["n_atoms"] + 20 * summary["n_edges"]) / 2**20  # positions, forces, numbers, edges
    assert payload_mb > 1.5 * headroom_mb
    run = subprocess.run([sys.executable, "-c", LIMITED_TRAINING, str(tmp_path / "big.h5"), str(tmp_path / "run"),
                          str(headroom_mb)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (tmp_path / "run" / "best.ckpt").is_file()
    # the data set's arrays alone exceed what the process was allowed to allocate
    assert payload_mb > headroom_mb
