"""Message-passing models on several MPI ranks: halo exchange and redundant ghosts.

``pair_style mlff`` runs a 3-layer SchNet on 1, 2 and 4 ranks (``mpirun``; 4 ranks
oversubscribe the 2-core CI machine, so the runs are short) and the results must
agree with each other and with the Python model: energy, forces, global virial,
per-atom energy and per-atom virial, to relative 1e-10 in float64 and 1e-5 in
float32. Systems: a periodic Cu box of 2048 atoms (orthogonal and triclinic) and a
periodic box of 8 toluene molecules (three LAMMPS types, two of them H). Then MD in
which atoms migrate between ranks (NPT, ``comm_style tiled`` + ``fix balance``), an
empty subdomain with non-consecutive atom IDs, the failure paths, the device choice,
and the halo operator itself (an index-map exchanger in one process).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

from conftest import random_schnet, sheared_cu
from lammps_helpers import NKTV2P, lammps_error, read_dump, run_lmp, thermo_tables, write_data
from mlff.calculator import MLFFCalculator
from mlff.data.molecules import molecule
from mlff.deploy import export_model, load_deployed
from mlff.graph import neighbor_graph
from mlff.plugin import plugin_path

import mlff.ops

RTOL = {"float64": 1e-10, "float32": 1e-5}


@pytest.fixture(scope="module", autouse=True)
def plugin_is_built():
    if not Path(plugin_path()).is_file() or not mlff.ops.NATIVE:
        pytest.fail(f"LAMMPS plugin / operator library missing ({mlff.ops.WHERE}): run `bash scripts/build_plugin.sh`",
                    pytrace=False)


# ------------------------------------------------------------------ systems


@pytest.fixture(scope="module")
def cu2048():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(8)
    atoms.rattle(0.05, seed=11)
    return atoms


@pytest.fixture(scope="module")
def cu2048_triclinic():
    return sheared_cu(8, xy=2.1, xz=-1.7, yz=2.6, seed=12)


@pytest.fixture(scope="module")
def toluene_box():
    """8 randomly oriented toluene molecules on a 2x2x2 grid in a periodic 16 Å box (120 atoms)."""
    rng = np.random.default_rng(5)
    base = molecule("toluene")
    base.positions -= base.positions.mean(axis=0)
    parts = []
    for k, corner in enumerate(np.ndindex(2, 2, 2)):
        m = base.copy()
        m.positions = Rotation.random(random_state=rng).apply(m.positions) + (np.array(corner) + 0.5) * 8.0
        parts.append(m)
    atoms = parts[0]
    for m in parts[1:]:
        atoms += m
    atoms.set_cell([16.0, 16.0, 16.0])
    atoms.pbc = True
    d = atoms.get_all_distances(mic=True)
    mol = np.repeat(np.arange(8), len(base))
    assert d[mol[:, None] != mol[None, :]].min() > 1.5  # no clashes between molecules
    return atoms


# ---------------------------------------------------------- single points

SINGLE_POINT = """
units metal
atom_style atomic
boundary p p p
{processors}
read_data data.lmp
{after_read}
pair_style mlff {mode}
pair_coeff * * {model} {elements}
neighbor 1.0 bin
compute pe all pe/atom
compute st all stress/atom NULL virial
compute vir all pressure NULL virial
compute proc all property/atom proc
dump d all custom 1 atoms.dump id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6] c_proc
dump_modify d sort id format float %.17g
thermo_style custom step pe c_vir[*] vol
run 0
print "MLFF_RESULT $(pe:%.17g) $(vol:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) $(c_vir[4]:%.17g) $(c_vir[5]:%.17g) $(c_vir[6]:%.17g)"
"""


def lammps_point(tmp_path: Path, atoms: Atoms, model: Path, species: list[str], nprocs: int, mode: str = "",
                 types: list[int] | None = None, ids: list[int] | None = None, processors: str = "",
                 after_read: str = "") -> dict:
    """One ``run 0`` of LAMMPS: energy, forces, per-atom energies and virials (eV; LAMMPS order
    xx yy zz xy xz yz), rows in atom-ID order."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_data(tmp_path / "data.lmp", atoms, species, types=types, ids=ids)
    script = SINGLE_POINT.format(mode=mode, model=model, elements=" ".join(species), processors=processors,
                                 after_read=after_read)
    proc = run_lmp(tmp_path, script, nprocs=nprocs)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"LAMMPS failed:\n{out[-4000:]}"
    res = [line.split()[1:] for line in out.splitlines() if line.startswith("MLFF_RESULT")][0]
    pe, vol, *pressure = map(float, res)
    table = read_dump(tmp_path / "atoms.dump")
    expected_ids = sorted(ids) if ids is not None else list(range(1, len(atoms) + 1))
    assert table[:, 0].astype(int).tolist() == expected_ids
    return {"energy": pe, "forces": table[:, 1:4], "energies": table[:, 4],
            "atom_virial": -table[:, 5:11] / NKTV2P, "virial": np.array(pressure) * vol / NKTV2P,
            "rank": table[:, 11].astype(int), "log": out}


def python_point(atoms: Atoms, model: Path) -> dict:
    atoms = atoms.copy()
    atoms.calc = MLFFCalculator(model)
    w = -atoms.get_stress(voigt=False) * atoms.get_volume()
    return {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(),
            "energies": atoms.get_potential_energies(),
            "virial": np.array([w[0, 0], w[1, 1], w[2, 2], w[0, 1], w[0, 2], w[1, 2]])}


def assert_agree(got: dict, ref: dict, rtol: float, what: str) -> None:
    """Relative agreement: energy relative to itself, arrays relative to their largest entry."""
    assert got["energy"] == pytest.approx(ref["energy"], rel=rtol), what
    for key in ("forces", "energies", "virial", "atom_virial"):
        if key in got and key in ref:
            scale = np.abs(ref[key]).max()
            assert scale > 1e-3, f"{key} trivially small"
            np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=rtol * scale, err_msg=f"{what}: {key}")
    if "atom_virial" in got:  # per-atom virials add up to the global one (ghost parts sent home)
        np.testing.assert_allclose(got["atom_virial"].sum(axis=0), got["virial"], rtol=0,
                                   atol=rtol * np.abs(got["virial"]).max(), err_msg=f"{what}: sum of atom virials")


@pytest.fixture(scope="module")
def mpi_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpi_models")
    paths = {}
    for name, species, seed in (("cu", ["Cu"], 21), ("toluene", ["C", "H"], 22)):
        model = random_schnet(species, seed=seed)  # 16 features, 3 interactions, r_max 5 Å
        for dtype in ("float64", "float32"):
            paths[f"{name}_{dtype}"] = d / f"{name}_{dtype}.pt"
            export_model(model, paths[f"{name}_{dtype}"], dtype=getattr(torch, dtype))
    return paths


# (ranks, pair_style keyword): 1 rank plain = owner-mapped graph; the others exchange or use redundant ghosts
CU_RUNS = {
    "float64": [(2, "halo"), (4, "halo"), (1, "halo"), (2, "redundant"), (4, "redundant")],
    "float32": [(2, "halo"), (4, "halo"), (4, "redundant")],
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("box", ["orthogonal", "triclinic"])
def test_cu_1_2_4_ranks_agree_with_each_other_and_python(tmp_path, mpi_models, cu2048, cu2048_triclinic, box, dtype):
    atoms = cu2048 if box == "orthogonal" else cu2048_triclinic
    model = mpi_models[f"cu_{dtype}"]
    rtol = RTOL[dtype]
    runs = CU_RUNS[dtype] if box == "orthogonal" else [(2, "halo"), (4, "halo"), (4, "redundant")]
    ref = lammps_point(tmp_path / "np1", atoms, model, ["Cu"], 1)
    assert "owner-mapped" in ref["log"]
    py = python_point(atoms, model)
    assert_agree(ref, py, max(rtol, 1e-10), "1 rank vs Python")
    for nprocs, mode in runs:
        got = lammps_point(tmp_path / f"np{nprocs}_{mode}", atoms, model, ["Cu"], nprocs, mode=mode)
        assert f"{nprocs} MPI rank(s), {mode}" in got["log"]
        assert_agree(got, ref, rtol, f"{nprocs} ranks {mode} vs 1 rank")
        assert_agree(got, py, rtol, f"{nprocs} ranks {mode} vs Python")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_toluene_box_1_2_4_ranks_agree(tmp_path, mpi_models, toluene_box, dtype):
    """Several LAMMPS types map to one species (types 2 and 3 are both H)."""
    model = mpi_models[f"toluene_{dtype}"]
    rtol = RTOL[dtype]
    symbols = toluene_box.get_chemical_symbols()
    types = [1 if s == "C" else (3 if k % 15 >= 12 else 2) for k, s in enumerate(symbols)]
    species = ["C", "H", "H"]
    assert {types[k] for k, s in enumerate(symbols) if s == "H"} == {2, 3}
    ref = lammps_point(tmp_path / "np1", toluene_box, model, species, 1, types=types)
    py = python_point(toluene_box, model)
    assert_agree(ref, py, max(rtol, 1e-10), "1 rank vs Python")
    runs = [(2, "halo"), (4, "halo"), (2, "redundant"), (4, "redundant")] if dtype == "float64" else [(4, "halo")]
    for nprocs, mode in runs:
        got = lammps_point(tmp_path / f"np{nprocs}_{mode}", toluene_box, model, species, nprocs, mode=mode, types=types)
        assert_agree(got, ref, rtol, f"{nprocs} ranks {mode} vs 1 rank")
        assert_agree(got, py, rtol, f"{nprocs} ranks {mode} vs Python")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tabulated_schnet_on_1_2_4_ranks_equals_python(tmp_path, cu500, dtype):
    """``mlff-deploy --tabulate`` (filters read from tables by torch.ops.mlff.radial_table),
    15 filters: an fp32 halo row of 60 bytes is padded to 8 doubles."""
    model = random_schnet(["Cu"], seed=23, n_features=15)
    path = tmp_path / "tab.pt"
    meta = export_model(model, path, dtype=getattr(torch, dtype), tabulate=True)
    assert meta["radial_tables"] and meta["halo_widths"] == [15, 15]
    rtol = RTOL[dtype]
    py = python_point(cu500, path)
    for nprocs, mode in ((1, ""), (2, "halo"), (4, "halo")):
        got = lammps_point(tmp_path / f"np{nprocs}", cu500, path, ["Cu"], nprocs, mode=mode)
        assert_agree(got, py, max(rtol, 1e-10) if nprocs == 1 else rtol, f"{nprocs} ranks {mode or 'owner'} vs Python")


def test_empty_subdomain_and_non_consecutive_ids(tmp_path, mpi_models):
    """``processors 1 1 4`` with one z-slab emptied: the empty rank still takes part in every
    exchange and relays ghosts across its (thinner than the cutoff) slab; atom IDs have gaps."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(6)
    layer = np.round(atoms.positions[:, 2] / (3.61 / 2)).astype(int)
    keep = layer != 8  # one (001) layer removed: the slab of rank 2 below holds only that layer
    atoms = atoms[keep]
    atoms.rattle(0.03, seed=13)
    ids = (np.flatnonzero(keep) * 1000 + 7).tolist()  # sparse IDs (1 rank: hash-map owner lookup)
    # z cuts half-way between layers 3|4, 7|8 and 8|9 (in units of the box height of 12 layers)
    processors = "processors 1 1 4"
    after_read = "balance 1.0 z 0.29166666 0.625 0.70833333"
    model = mpi_models["cu_float64"]
    ref = lammps_point(tmp_path / "np1", atoms, model, ["Cu"], 1, ids=ids)
    py = python_point(atoms, model)
    assert_agree(ref, py, 1e-10, "1 rank vs Python")
    for mode in ("halo", "redundant"):
        got = lammps_point(tmp_path / mode, atoms, model, ["Cu"], 4, mode=mode, ids=ids, processors=processors,
                           after_read=after_read)
        assert sorted(set(got["rank"].tolist())) == [0, 1, 3], "rank 2 should own no atom"
        assert_agree(got, ref, 1e-10, f"4 ranks {mode}, one empty")


def test_dtnn_halo_exchange_on_two_ranks(tmp_path, cu500):
    """DTNN (one shared interaction applied three times) also exchanges between passes."""
    from mlff.models import build_model

    torch.manual_seed(4)
    model = build_model("dtnn", ["Cu"], 5.0, n_features=8, n_factors=12, n_interactions=3, dtype=torch.float64)
    with torch.no_grad():
        torch.nn.init.normal_(model.out.weight, std=0.5)
    meta = export_model(model, tmp_path / "dtnn.pt")
    assert meta["halo_widths"] == [8, 8]
    got = lammps_point(tmp_path / "np2", cu500, tmp_path / "dtnn.pt", ["Cu"], 2, mode="halo")
    assert "2 MPI rank(s), halo" in got["log"]
    assert_agree(got, python_point(cu500, tmp_path / "dtnn.pt"), 1e-10, "DTNN, 2 ranks halo vs Python")


# ------------------------------------------------------------------ MD

MD = """
units metal
atom_style atomic
boundary p p p
{comm}
read_data data.lmp
atom_modify sort 10 2.0
pair_style mlff {mode}
pair_coeff * * {model} Cu
neighbor 0.5 bin
neigh_modify every 1 delay 0 check yes
velocity all create 1500 4928459 mom yes rot no dist gaussian loop geom
fix md all {ensemble}
{balance}
timestep 0.002
compute p all property/atom proc
dump procs all custom {nsteps} procs.dump id c_p
dump_modify procs sort id
thermo 10
thermo_style custom step pe ke etotal press vol
thermo_modify format float %.15g
run {nsteps}
write_dump all custom final.dump id x y z modify sort id format float %.17g
"""

# (Redundant ghosts are covered by the single points only: on this small box their
# 16 Å ghost shell makes every MD step ~40x dearer than halo mode.)
MD_CASES = {
    # NPT on a brick decomposition: the box and the subdomains change, atoms migrate
    "npt-halo-4": dict(nprocs=4, mode="halo", comm="", balance="", ensemble="npt temp 1500 1500 0.1 iso 0 0 0.5"),
    # recursive bisection on 3 ranks, rebalanced every 10 steps
    "tiled-balance-halo-3": dict(nprocs=3, mode="halo", comm="comm_style tiled",
                                 balance="fix bal all balance 10 1.0 rcb", ensemble="nve"),
}


def md_run(tmp_path: Path, atoms: Atoms, model: Path, nprocs: int, mode: str, comm: str, balance: str,
           ensemble: str, nsteps: int = 60):
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_data(tmp_path / "data.lmp", atoms, ["Cu"])
    proc = run_lmp(tmp_path, MD.format(model=model, mode=mode, comm=comm, balance=balance, ensemble=ensemble,
                                       nsteps=nsteps), nprocs=nprocs)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "log.lammps").read_text()
    final = read_dump(tmp_path / "final.dump")[:, 1:]
    snapshots = (tmp_path / "procs.dump").read_text().split("ITEM: ATOMS id c_p\n")[1:]
    first, last = (np.array([line.split() for line in snap.splitlines()[: len(atoms)]], dtype=int)
                   for snap in (snapshots[0], snapshots[-1]))
    assert len(snapshots) == 2 and np.array_equal(first[:, 0], last[:, 0])
    migrated = int((first[:, 1] != last[:, 1]).sum())
    return thermo_tables(log)[-1], final, migrated, log


@pytest.fixture(scope="module")
def cu500():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(5)
    atoms.rattle(0.05, seed=14)
    return atoms


@pytest.mark.parametrize("case", list(MD_CASES))
def test_md_with_migrating_atoms_matches_one_rank(tmp_path, mpi_models, cu500, case):
    spec = MD_CASES[case]
    model = mpi_models["cu_float64"]
    ensemble = spec["ensemble"]
    thermo1, final1, _, _ = md_run(tmp_path / "np1", cu500, model, 1, "", "", "", ensemble)
    thermo, final, migrated, log = md_run(tmp_path / case, cu500, model, **spec)
    assert migrated > 0, "no atom changed its rank: the test would not cover migration"
    assert int(re.search(r"Neighbor list builds = (\d+)", log).group(1)) >= 3
    np.testing.assert_allclose(final, final1, rtol=0, atol=1e-8)
    for col in ("PotEng", "TotEng", "Press", "Volume"):
        np.testing.assert_allclose(thermo[col], thermo1[col], rtol=1e-9, atol=1e-9, err_msg=col)
    if ensemble.startswith("npt"):
        assert np.ptp(thermo["Volume"]) > 0.1  # the barostat really moved the box (virial in use)


# ------------------------------------------------------------- failures


def test_one_rank_running_out_of_memory_mid_exchange_stops_the_run(tmp_path, mpi_models, cu500):
    """Rank 1 fails (an injected out-of-memory error) between two halo exchanges while
    rank 0 waits in the next one: the run must end with the error, not hang."""
    write_data(tmp_path / "data.lmp", cu500, ["Cu"])
    script = SINGLE_POINT.format(mode="halo", model=mpi_models["cu_float64"], elements="Cu", processors="",
                                 after_read="")
    proc = run_lmp(tmp_path, script, nprocs=2, env={"MLFF_FAULT_INJECT_OOM_RANK": "1"}, timeout=60)
    err = lammps_error(proc)
    assert "out of memory on MPI rank 1" in err and "injected" in err


def test_halo_keyword_needs_a_model_that_exchanges(tmp_path, cu500):
    """Message-passing models without halo_exchange widths in their metadata (files from
    before halo support; emulated here on NequIP) run on several ranks with redundant
    ghosts by default; asking for halo mode is a clear error."""
    from mlff.models import build_model

    torch.manual_seed(3)
    model = build_model("nequip", ["Cu"], 4.0, n_features=4, l_max=1, n_interactions=2, n_basis=4, radial_hidden=8)
    with torch.no_grad():  # randomise the zero-initialised readout so that forces are non-trivial
        for p in model.parameters():
            if p.ndim > 0 and not p.any():
                p.normal_(0.0, 0.5)
    model.halo_widths = lambda: None  # as exported before the e3nn models exchanged features
    meta = export_model(model, tmp_path / "nequip.pt")
    assert meta["halo_widths"] is None
    write_data(tmp_path / "data.lmp", cu500, ["Cu"])
    script = SINGLE_POINT.format(mode="halo", model=tmp_path / "nequip.pt", elements="Cu", processors="",
                                 after_read="")
    err = lammps_error(run_lmp(tmp_path, script, nprocs=2))
    assert "does not exchange its features between layers" in err and "redundant" in err
    got = lammps_point(tmp_path / "auto", cu500, tmp_path / "nequip.pt", ["Cu"], 2)
    assert "2 MPI rank(s), redundant" in got["log"]
    assert_agree(got, python_point(cu500, tmp_path / "nequip.pt"), 1e-10, "NequIP, 2 ranks redundant vs Python")


def test_redundant_mode_needs_single_comm_cutoff(tmp_path, mpi_models, cu500):
    write_data(tmp_path / "data.lmp", cu500, ["Cu"])
    script = SINGLE_POINT.format(mode="redundant", model=mpi_models["cu_float64"], elements="Cu",
                                 processors="neighbor 1.0 multi\ncomm_modify mode multi", after_read="")
    script = script.replace("neighbor 1.0 bin", "neighbor 1.0 multi")
    err = lammps_error(run_lmp(tmp_path, script, nprocs=2))
    assert "requires 'comm_modify mode single'" in err


# --------------------------------------------------------------- devices


def test_device_index_is_node_local_rank_mod_device_count():
    assert [mlff.ops.select_device_index(r, 4) for r in range(6)] == [0, 1, 2, 3, 0, 1]
    assert mlff.ops.select_device_index(3, 1) == 0
    assert mlff.ops.select_device_index(0, 0) == -1  # no GPU: CPU


def test_device_log_and_cuda_request_without_gpu(tmp_path, mpi_models, cu500):
    write_data(tmp_path / "data.lmp", cu500, ["Cu"])
    script = SINGLE_POINT.format(mode="", model=mpi_models["cu_float64"], elements="Cu", processors="", after_read="")
    proc = run_lmp(tmp_path, script, nprocs=2)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # on a GPU machine (gpu_lammps.sh runs this with MLFF_DEVICE=cuda) rank r uses cuda:(r mod devices)
    n_gpu = torch.cuda.device_count() if os.environ.get("MLFF_DEVICE", "auto") != "cpu" else 0
    for r in range(2):
        want = f"cuda:{r % n_gpu}" if n_gpu else "cpu"
        assert re.search(rf"rank {r}: {r} of 2 -> {want}\b", proc.stdout), proc.stdout[-2000:]
    if not torch.cuda.is_available():
        err = lammps_error(run_lmp(tmp_path, script, nprocs=2, env={"MLFF_DEVICE": "cuda"}))
        assert "MLFF_DEVICE=cuda but torch sees no CUDA device" in err


# ---------------------------------------- the halo operator in one process


def ghost_graph(atoms: Atoms, r_max: float):
    """The graph one LAMMPS rank builds in halo mode, for a single periodic cell: local atoms
    0..n-1, then one ghost node per periodic image that some local atom has as a neighbour.
    Returns species-order node → atom map, edge_index over nodes, edge vectors."""
    n = len(atoms)
    edge_index, shift_vec = neighbor_graph(atoms, r_max)
    i, j = edge_index
    pos = atoms.positions
    vec = pos[j] - pos[i] + shift_vec
    image = np.round(shift_vec @ np.linalg.inv(atoms.cell.array)).astype(int)
    ghost_key = {}
    owner = list(range(n))
    dst = j.copy()
    for k in range(len(i)):
        if image[k].any():
            key = (int(j[k]), *image[k].tolist())
            if key not in ghost_key:
                ghost_key[key] = len(owner)
                owner.append(int(j[k]))
            dst[k] = ghost_key[key]
    return np.array(owner), np.stack([i, dst]), vec


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_halo_exchange_on_explicit_ghost_nodes_reproduces_the_model(tmp_path, cu500, dtype):
    """Ghost nodes refreshed by the exchange (index-map exchanger) + energy of the local nodes
    = the model on the periodic cell, forces from edge gradients included."""
    model = random_schnet(["Cu"], seed=23)
    export_model(model, tmp_path / "m.pt", dtype=dtype)
    module, meta = load_deployed(tmp_path / "m.pt")
    assert meta["halo_widths"] == [16, 16] and meta["format_version"] == 2
    atoms = cu500
    owner, edge_index, vec = ghost_graph(atoms, 5.0)
    n = len(atoms)
    species = torch.zeros(len(owner), dtype=torch.int64)
    ref = python_point(atoms, tmp_path / "m.pt")
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    with mlff.ops.owner_map_exchange(torch.as_tensor(owner)):
        assert torch.ops.mlff.halo_active()
        out = module(species, torch.as_tensor(edge_index), torch.as_tensor(vec, dtype=dtype), n)
    assert not torch.ops.mlff.halo_active()
    e = out["atomic_energy"].double().numpy()
    g = out["edge_grad"].double().numpy()
    forces = np.zeros((len(owner), 3))
    np.add.at(forces, edge_index[0], g)
    np.add.at(forces, edge_index[1], -g)
    np.add.at(forces, owner[n:], forces[n:])  # ghost forces go home (LAMMPS reverse comm)
    assert e[:n].sum() == pytest.approx(ref["energy"], rel=rtol)
    np.testing.assert_allclose(e[:n], ref["energies"], rtol=0, atol=rtol * np.abs(ref["energies"]).max())
    np.testing.assert_allclose(forces[:n], ref["forces"], rtol=0, atol=rtol * np.abs(ref["forces"]).max())
    # without the exchange the ghost features stay stale and the result is wrong
    out = module(species, torch.as_tensor(edge_index), torch.as_tensor(vec, dtype=dtype), n)
    assert abs(out["atomic_energy"][:n].double().sum().item() - ref["energy"]) > 1e-3


def test_halo_ops_are_identity_without_exchanger_and_adjoint_with_one():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.ops.mlff.halo_exchange(x)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    owner = torch.tensor([0, 1, 2, 0, 2, 2])
    with mlff.ops.owner_map_exchange(owner):
        assert torch.autograd.gradcheck(torch.ops.mlff.halo_exchange, (x,))
        assert torch.autograd.gradgradcheck(torch.ops.mlff.halo_exchange, (x,))
        u, v = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
        # <F u, v> = <u, F^T v>
        lhs = (torch.ops.mlff.halo_exchange(u) * v).sum()
        rhs = (u * torch.ops.mlff.halo_reverse(v)).sum()
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)
        with pytest.raises(RuntimeError, match="owner map has 6 rows"):
            torch.ops.mlff.halo_exchange(torch.zeros(5, 4))


# ------------------------------------------------------------------ deploy/


def test_deploy_mpirun_script_runs_the_cu_example(tmp_path, mpi_models):
    """deploy/mpirun.sh (env.sh + the real lmp binary under mpirun) with deploy/cu/in.cu."""
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["bash", str(root / "deploy" / "mpirun.sh"), "-n", "2", "--", "-in",
                           str(root / "deploy" / "cu" / "in.cu"), "-var", "model", str(mpi_models["cu_float32"]),
                           "-var", "ncells", "4", "-var", "nsteps", "20", "-var", "thermo_every", "10",
                           "-var", "dump_every", "20", "-log", str(tmp_path / "log.lammps")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 MPI rank(s), halo" in proc.stdout
    thermo = thermo_tables((tmp_path / "log.lammps").read_text())[-1]
    assert thermo["Step"].tolist() == [0, 10, 20] and np.all(np.isfinite(thermo["Press"]))
    assert read_dump(tmp_path / "cu.dump").shape == (256, 11)  # id x y z pe + 6 virial components
