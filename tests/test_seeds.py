"""The seed-paper reproductions (benchmarks/seeds/, issue 19): every experiment's ``--quick``
run writes its report with a verdict line and a paper-vs-mlff table whose every row has both
values; the data protocols are the papers' (temperatures, time steps, intervals, splits); and
the pieces the reports rely on (energy-only training on stored symmetry functions, the
loss-weight conversion, the departure and bond-group analyses, exact Wigner-D matrices)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "benchmarks" / "seeds"
sys.path.insert(0, str(SEEDS))

import common  # noqa: E402
from experiments import EXPERIMENTS, load  # noqa: E402

VERDICT = re.compile(r"^\*\*Verdict:\*\* (reproduced|(?:not reproduced|partly reproduced|not comparable) \(.+\))( — .+)?$", re.M)


@pytest.fixture(scope="module")
def quick_root(tmp_path_factory):
    """One output root for every quick run, so 004_si_sw finds 004_cu_emt's result and the xTB
    molecules are generated once."""
    return tmp_path_factory.mktemp("seeds")


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table of ``text``: (header cells, body rows), ``\\|`` kept inside cells."""
    tables, lines = [], text.splitlines()
    k = 0
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # noqa: E731
    while k < len(lines):
        if lines[k].startswith("|") and k + 1 < len(lines) and lines[k + 1].startswith("|---"):
            header, body = split(lines[k]), []
            k += 2
            while k < len(lines) and lines[k].startswith("|"):
                body.append(split(lines[k]))
                k += 1
            tables.append((header, body))
        else:
            k += 1
    return tables


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_quick_run_writes_the_report(experiment, quick_root):
    proc = subprocess.run([sys.executable, str(SEEDS / "run.py"), experiment, "--quick", "--no-progress",
                           "--out", str(quick_root)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = quick_root / experiment
    text = (out / "report.md").read_text()
    assert "Quick run" in text
    assert VERDICT.search(text), text[:2000]
    for section in ("## What the paper did", "## What we did (and every difference)", "## Paper vs mlff"):
        assert section in text
    tables = _tables(text)
    compared = [(h, b) for h, b in tables if any(c.lower().startswith("paper") for c in h)]
    assert compared, "no paper-vs-mlff table"
    for header, body in compared:
        assert body
        paper_cols = [i for i, c in enumerate(header) if c.lower().startswith("paper")]
        ours_cols = [i for i, c in enumerate(header) if c.lower().startswith("mlff")]
        assert ours_cols, header
        for row in body:
            assert len(row) == len(header), row
            for i in paper_cols + ours_cols:
                assert row[i] and row[i] != "—", (experiment, header[i], row)
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (out / image).is_file(), image
    results = json.loads((out / "results.json").read_text())
    assert results["quick"] is True and results["verdict"] in common.VERDICTS
    assert results["rows"] and all(r["paper"] and r["ours"] for r in results["rows"])


def test_list_and_collect(tmp_path):
    proc = subprocess.run([sys.executable, str(SEEDS / "run.py"), "--list"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and all(e in proc.stdout for e in EXPERIMENTS)
    sys.path.insert(0, str(SEEDS))
    import run as runner

    fake = tmp_path / "out" / "003_au6"
    fake.mkdir(parents=True)
    (fake / "report.md").write_text("# report\n")
    (fake / "p.png").write_bytes(b"png")
    (fake / "results.json").write_text(json.dumps({"verdict": "reproduced", "reason": "", "finding": "f",
                                                   "command": "python benchmarks/seeds/run.py 003_au6",
                                                   "cpu_minutes": 1.0, "date": "d", "plots": ["p.png"],
                                                   "quick": False}))
    doc = runner.collect(tmp_path / "out", docs=tmp_path / "docs")
    text = doc.read_text()
    assert "| 003_au6 |" in text and "reproduced" in text and "[report](seeds/003_au6/report.md)" in text
    assert "not run yet" in text
    assert (tmp_path / "docs" / "seeds" / "003_au6" / "p.png").is_file()
    # on another machine (no run outputs) the committed copy in docs/seeds keeps its row
    (tmp_path / "empty").mkdir()
    again = runner.collect(tmp_path / "empty", docs=tmp_path / "docs").read_text()
    assert again == text and (tmp_path / "docs" / "seeds" / "003_au6" / "report.md").read_text() == "# report\n"


# ------------------------------------------------------------------------- protocols


def test_003_au6_protocol_and_split():
    m = load("003_au6")
    p = m.DATA.protocol()
    assert (p["ensemble"], p["temperature_K"], p["timestep_fs"], p["interval"], p["n_frames"]) == \
        ("nve", 300.0, 1.0, 50, 2500)
    assert p["n_frames"] * p["interval"] == 125_000 and p["equilibration_fs"] == 0.0
    assert (m.N_TRAIN, m.N_TEST) == (2000, 500)
    frames = list(range(2500))
    seq_train, seq_test = m.splits(frames, m.N_TRAIN)["sequential"]
    assert seq_train == list(range(2000)) and seq_test == list(range(2000, 2500))
    rnd_train, rnd_test = m.splits(frames, m.N_TRAIN)["random"]
    assert len(rnd_train) == 2000 and sorted(rnd_train + rnd_test) == frames and rnd_train != seq_train
    from mlff.data.generate import get_preset

    carved = get_preset("au6-emt-carved").build()
    assert np.allclose(np.sort(carved.get_all_distances()[0])[1], 4.08 / np.sqrt(2))   # cut from fcc Au, not relaxed
    assert m.TABLE1[(10, 10, 10)] == (0.04, 0.04) and m.TABLE4["Eq. 4"] == (0.013, 0.009)


def test_004_protocols():
    lc = load("004_learning_curve")
    p = lc.LC_TRAIN.protocol()
    assert (p["temperature_K"], p["timestep_fs"], p["supercell"]) == (500.0, 5.0, 2)
    t = lc.LC_TEST.protocol()
    assert (t["n_frames"], t["interval"], t["timestep_fs"], t["seed"]) == (200, 100, 5.0, 1)
    ef = lc.EF_TRAIN.protocol()
    assert (ef["supercell"], ef["n_frames"], ef["temperature_K"], ef["timestep_fs"]) == (3, 500, 500.0, 5.0)
    assert lc.EF_TEST.protocol()["n_frames"] == 100 and lc.FORCE_COEFFICIENT == 0.1
    assert {10, 50, 200, 500, 10000} <= set(lc.SIZES) and lc.BP["symmetry_functions"] == "Gs-6-10-1-G4"
    assert lc.training_subset(list(range(10000)), 2000) == (list(range(0, 10000, 5)), 5)
    assert lc.training_subset(list(range(10000)), 10000)[1] == 1

    from experiments import _thesis11 as t11

    for key, atoms in (("cu", 32), ("si", 64)):
        spec = t11.train_spec(t11.SYSTEMS[key], quick=False).protocol()
        assert (spec["temperature_K"], spec["timestep_fs"], spec["supercell"], spec["n_frames"]) == \
            (500.0, 5.0, 2, 9000)
    md = t11.md_params(quick=False)
    assert (md["temperature"], md["timestep"], md["dump_every"]) == (300.0, 1.0, 10)
    assert md["length"] * 1000 / md["timestep"] == 5000
    assert t11.FIT["force_coefficient"] == 0.1 and t11.R_MAX == 5.0
    from mlff.md.protocols import get_protocol

    assert get_protocol("nve-drift").production_steps(get_protocol("nve-drift").resolve(md)) == 5000


def test_000_001_002_protocols():
    dfp = load("000_dfp_vs_energy")
    md = dfp.md_params(300.0, quick=False)
    assert (md["timestep"], md["friction_hot"], md["n_hot"], md["friction_cool"], md["t_tol"]) == \
        (0.5, 1.0, 1000, 0.1, 0.05)
    assert dfp.TEMPERATURES == [100.0, 200.0, 300.0] and dfp.TABLE_3_1["toluene"] == (0.39, 0.57)
    train, test = common.md17_specs("toluene", quick=False)
    p = train.protocol()
    assert (p["calculator"], p["temperature_K"], p["timestep_fs"], p["interval"], p["equilibration_fs"]) == \
        ("xtb", 500.0, 0.5, 10, 1000.0)
    assert p["n_frames"] == 1100 and test.protocol()["seed"] != p["seed"]
    c20 = load("001_c20")
    q = c20.DATA.protocol()
    assert (q["temperature_K"], q["timestep_fs"], q["calculator"]) == (500.0, 1.0, "xtb")
    assert c20.RHOS == [0.1, 0.01, 0.001, 0.0]
    se3 = load("002_se3")
    w = common.md17_specs("water", quick=False)[0].protocol()
    assert (w["temperature_K"], w["timestep_fs"]) == (500.0, 0.5) and se3.W_E == 1e-5
    cost = load("000_cost")
    assert cost.N_CALLS == 500 and cost.TIMING_MOLECULES == ["ethanol", "benzene", "aspirin"]


def test_presets_water_and_c20():
    from mlff.data.generate import get_preset

    water = get_preset("water").build()
    assert water.get_chemical_formula() == "H2O" and not water.pbc.any()
    c20 = get_preset("c20").build()
    d = c20.get_all_distances()
    np.fill_diagonal(d, np.inf)
    assert len(c20) == 20 and np.allclose(d.min(axis=1), 1.45)
    assert np.all(np.sum(np.isclose(d, 1.45), axis=1) == 3)   # every atom has three bonds: the dodecahedron


# ------------------------------------------------------------------------- pieces


def test_schutt_energy_weight():
    # ρ|ΔE|² + (1/N) Σ_i |ΔF_i|²  =  3 · [(ρN²/3)(ΔE/N)² + mean over components of ΔF²]
    rng = np.random.default_rng(0)
    n, rho = 9, 0.01
    de, df = rng.normal(), rng.normal(size=(n, 3))
    schutt = rho * de ** 2 + (df ** 2).sum() / n
    ours = common.schutt_energy_weight(rho, n) * (de / n) ** 2 + (df ** 2).mean()
    assert np.isclose(schutt, 3 * ours)


def test_energy_only_bp_uses_stored_descriptors():
    from ase.build import bulk

    from mlff.calculator import edge_graph
    from mlff.models import build_model

    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    model = build_model("bp", ["Cu"], 5.0, dtype=torch.float64, symmetry_functions="cu_emt_final")
    ei, ev = edge_graph(atoms, 5.0)
    species = torch.zeros(len(atoms), dtype=torch.int64)
    direct = model(species, torch.as_tensor(ei), torch.as_tensor(ev))
    g = model.descriptors(species, torch.as_tensor(ei), torch.as_tensor(ev))
    own = model.descriptor
    model.descriptor = common._Given(g)
    stored = model(species, torch.as_tensor(ei), torch.as_tensor(ev))
    model.descriptor = own
    assert torch.allclose(direct, stored, atol=1e-12)


def test_fit_energy_only_and_staged(tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    frames = []
    rng = np.random.default_rng(0)
    for k in range(12):
        a = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        a.calc = EMT()
        a.info["energy"] = a.get_potential_energy()
        a.arrays["forces"] = a.get_forces()
        a.calc = None
        frames.append(a)
    ctx = common.Context("t", tmp_path, tmp_path / "data", quick=True, progress=False)
    params = dict(symmetry_functions="cu_emt_final", hidden=[5, 5])
    spec = common.TrainSpec(model="bp", params=params, force_weight=0.0, cpu_minutes=1.0, select="last",
                            lr=1e-2, epochs=5, min_batches=2)
    first = common.fit(ctx, "stage1", spec, frames[:8])
    assert first.epochs == 5 and first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    again = common.fit(ctx, "stage1", spec, frames[:8])   # cached
    assert again.epochs == 5 and torch.equal(next(again.model.parameters()), next(first.model.parameters()))
    spec2 = common.TrainSpec(model="bp", params=params, force_weight=0.1, cpu_minutes=1.0, epochs=2, min_batches=2)
    second = common.fit(ctx, "stage2", spec2, frames[8:], frames[:2], init=first.model)
    # the second stage keeps the first stage's fitted statistics
    assert torch.equal(second.model.feature_shift, first.model.feature_shift)
    pred = common.predict(second.model, frames)
    err = common.errors(pred, frames)
    assert err["n_frames"] == 12 and err["force_rmse_eV_A"] > 0 and err["energy_rmse_eV"] is not None


def test_departure_and_bond_groups():
    from experiments import _thesis11 as t11

    t = np.arange(0, 5.0, 0.01)
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 0.02, len(t))
    flat = t11.departure(t, ref[::-1] + 3.0, t, ref)     # a constant offset is not a departure
    assert flat["time_ps"] is None
    rising = t11.departure(t, ref[::-1] + np.where(t > 2.0, 0.5 * (t - 2.0), 0.0), t, ref)
    assert rising["time_ps"] is not None and 2.0 < rising["time_ps"] < 3.0

    from mlff.data.molecules import c20_fullerene

    c20 = load("001_c20")
    groups = c20.bond_groups(c20_fullerene())
    assert groups["n_bonds"] == 30 and np.allclose(groups["means_A"], 1.45)


def test_exact_wigner_d():
    from e3nn import o3

    se3 = load("002_se3")
    irreps = o3.Irreps("2x0e + 2x1o + 1x2e + 1x4e")
    R = o3.rand_matrix(dtype=torch.float64)
    D = se3.wigner_d(irreps, R)
    assert torch.allclose(D @ D.T, torch.eye(irreps.dim, dtype=torch.float64), atol=1e-12)
    x = torch.randn(5, 3, dtype=torch.float64)
    sh = o3.Irreps.spherical_harmonics(4)
    ys = o3.spherical_harmonics(sh, x, normalize=True, normalization="component")
    ys_rot = o3.spherical_harmonics(sh, x @ R.T, normalize=True, normalization="component")
    assert torch.allclose(ys_rot, ys @ se3.wigner_d(sh, R).T, atol=1e-12)
    assert np.isclose(D[2:5, 2:5].numpy(), R.numpy()).all()   # l = 1 in e3nn's Cartesian order is R itself
