"""Seed 003 (X. Zhang, "3 approaches to neural network potentials", 2019): Au6 with EMT.

Tables 1 (Behler-Parrinello at three network sizes), 4 (many-body expansion variants)
and §6 (a GNN) on the paper's data protocol, with the paper's sequential split and a
random split beside it; then Table 5's question, direct-force models against forces
from the gradient of an energy model, on the same split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common import DataSpec, Report, TrainSpec, dataset, energies, errors, fit, fmt, predict, pyplot, save
from mlff.models import MODELS
from mlff.models.mbe import ManyBodyExpansion
from mlff.models.symmetry_functions import cutoff_function

TITLE = "Au₆ with EMT: BP, many-body expansions and GNNs; sequential vs random split; direct vs −∇E forces (seed 003)"
FINDING = ("the coupled many-body expansion (Eq. 4) is the most accurate energy model (test RMSE < 0.01 eV); "
           "BP over-fits at (50,25,10,10); the paper's GNN reaches only 0.2 eV; forces are much harder (best 0.12 eV/Å)")
COST_MINUTES = 55
PAPER = 'X. Zhang, "3 approaches to neural network potentials" (2019), seed 003'

# --- the paper's protocol (§2, App. A) and numbers -------------------------------------
#: Au6 carved from fcc Au (not relaxed, as the paper says), Maxwell-Boltzmann velocities for
#: 300 K, NVE (velocity Verlet), 125,000 steps of 1 fs, a frame every 50 steps -> 2,500 frames
#: (preset ``au6-emt-carved``; ``au6-emt`` relaxes the cluster first, and its energies spread
#: ten times less than the paper's errors suggest theirs did).
DATA = DataSpec.make("au6-emt-carved", 2500, seed=0)
DATA_QUICK = DataSpec.make("au6-emt-carved", 150, seed=0)
#: Frames 1-2000 train, 2001-2500 test, not shuffled (§3.2).
N_TRAIN, N_TEST = 2000, 500
SPLIT_SEED = 0                      # the random-split column: a permutation of all frames

#: Table 1: energy RMSE (eV) train / test of the Behler model (AMP defaults), by hidden layers.
TABLE1 = {(5, 5): (0.08, 0.09), (10, 10, 10): (0.04, 0.04), (50, 25, 10, 10): (0.01, 0.30)}
#: Table 4: energy RMSE (eV) train / test of the many-body expansion models.
TABLE4 = {"Eq. 3": (0.1, 0.1), "Eq. 2": (0.017, 0.014), "Eq. 4": (0.013, 0.009), "Eq. 5": (0.014, 0.012)}
#: §6: the DGL graph network (complete graph, dense message passing), energy RMSE (eV).
GNN_RMSE = 0.2
#: Table 5: force RMSE (eV/Å) train / test of the direct-force many-body models.
TABLE5 = {"Eq. 6": (0.69, 0.7), "Eq. 7 (1000 epochs)": (0.27, 0.31), "Eq. 8": (0.11, 0.16), "Eq. 9": (0.08, 0.12)}

R_MAX = 6.5   # AMP's default Gaussian cutoff (Å); covers the whole cluster, as the paper's sums


class PairSum(ManyBodyExpansion):
    """Seed 003 Eq. 3, the classical two-body expansion ``E = Σ_{i<j} MLP(r_ij)``: the
    many-body model's pair network on the standardised inverse distance, summed and read
    out linearly (no coupling into one-body terms), ``E_i = ½ Σ_j f_c(r_ij) w·φ_2(u_ij)``."""

    kind = "mbe_pair_sum_003"

    def __init__(self, species, r_max=5.0, n_pair_features=20, n_triplet_features=10, n_hidden=50,
                 three_body=False, cutoff="cosine", cutoff_gamma=5.0):
        super().__init__(species, r_max, n_pair_features, n_triplet_features, n_hidden, False, cutoff, cutoff_gamma)
        self.triplet_net = self.coupling_net = self.out_net = None
        self.pair_out = nn.Linear(n_pair_features, 1, bias=False)
        nn.init.zeros_(self.pair_out.weight)

    def forward(self, species, edge_index, edge_vec):
        n = species.shape[0]
        r = torch.linalg.vector_norm(edge_vec, dim=1)
        fc = cutoff_function(r, self.r_max, self.cutoff, self.cutoff_gamma)[:, None]
        onehot = nn.functional.one_hot(species, self.n_species).to(edge_vec.dtype)
        u = self.inverse_distance(r)[:, None]
        pair = self.pair_out(self.pair_net(torch.cat([u, onehot[edge_index[0]], onehot[edge_index[1]]], 1)) * fc)
        y = 0.5 * torch.zeros(n, dtype=edge_vec.dtype).index_add(0, edge_index[0], pair.squeeze(1))
        return self.energy_scale(y, species)


MODELS.setdefault(PairSum.kind, PairSum)

AMP = dict(symmetry_functions="amp_default", cutoff="cosine", feature_scaling="minmax", activation="tanh")
#: Energy models: (label, model, hyperparameters, learning rate, share of the budget).
ENERGY_MODELS = [
    ("BP (5, 5)", "bp", dict(AMP, hidden=[5, 5]), 1e-2, 1.0),
    ("BP (10, 10, 10)", "bp", dict(AMP, hidden=[10, 10, 10]), 1e-2, 1.0),
    ("BP (50, 25, 10, 10)", "bp", dict(AMP, hidden=[50, 25, 10, 10]), 1e-2, 1.0),
    ("MBE Eq. 3 (pair sum)", PairSum.kind, dict(n_pair_features=20, n_hidden=50), 1e-3, 1.0),
    ("MBE Eq. 2 (pairs coupled)", "mbe", dict(n_pair_features=20, n_hidden=50, three_body=False), 1e-3, 1.5),
    ("MBE Eq. 4 (triplets coupled)", "mbe", dict(n_pair_features=20, n_triplet_features=10, n_hidden=50), 1e-3, 1.5),
    ("GNN: SchNet", "schnet", dict(n_features=64, n_interactions=3, n_rbf=20), 1e-3, 2.0),
    ("GNN: nequip", "nequip", dict(n_features=32, l_max=1, n_interactions=3, n_basis=8), 5e-3, 2.0),
]
#: Force models on the sequential split: (label, model, hyperparameters, lr, how forces come).
FORCE_MODELS = [
    ("tfn_dfp (direct)", "tfn_dfp", dict(n_features=30, l_max=1, n_layers=4, n_basis=15), 1e-3, "direct"),
    ("nequip, direct head", "nequip", dict(n_features=32, l_max=1, n_interactions=3, n_basis=8, direct_forces=True),
     5e-3, "direct"),
    ("MBE Eq. 4, −∇E", "mbe", dict(n_pair_features=20, n_triplet_features=10, n_hidden=50), 1e-3, "−∇E"),
    ("nequip, −∇E", "nequip", dict(n_features=32, l_max=1, n_interactions=3, n_basis=8), 5e-3, "−∇E"),
]


def splits(frames, n_train: int):
    """The paper's sequential split and a random split of the same frames."""
    seq = (frames[:n_train], frames[n_train:])
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frames))
    rnd = ([frames[k] for k in order[:n_train]], [frames[k] for k in order[n_train:]])
    return {"sequential": seq, "random": rnd}


def paper_energy(label: str):
    """The paper's (train, test) energy RMSE for one of our energy-model labels (None: GNN)."""
    if label.startswith("BP"):
        return TABLE1[tuple(int(x) for x in label[label.index("(") + 1:label.index(")")].split(","))]
    if label.startswith("MBE"):
        return TABLE4[label.split(" (")[0].replace("MBE ", "")]
    return None


def slug(label: str) -> str:
    text = label.lower().replace("−∇e", "grad-e")
    return "-".join("".join(c if c.isalnum() else " " for c in text).split())


def run(ctx) -> Report:
    frames = dataset(ctx, ctx.pick(DATA, DATA_QUICK))
    n_train = ctx.pick(N_TRAIN, int(0.8 * len(frames)))
    sets = splits(frames, n_train)
    budget = ctx.pick(1.4, 0.012)                 # CPU-min per energy model and split, times its share
    force_budget = ctx.pick(3.0, 0.02)
    e = energies(frames)
    ctx.log(f"{len(frames)} frames; energy mean {e.mean():.3f} eV, std {e.std():.4f} eV; "
            f"train {n_train}, test {len(frames) - n_train}")

    table: dict[str, dict] = {}
    for label, kind, params, lr, share in ENERGY_MODELS:
        table[label] = {}
        for split, (train, test) in sets.items():
            spec = TrainSpec(model=kind, params=params, r_max=R_MAX, energy_weight=1.0, force_weight=0.0, lr=lr,
                             batch_size=ctx.pick(20, 10), cpu_minutes=budget * share, select="last",
                             lr_patience=25, stop_patience=100)
            res = fit(ctx, f"energy-{split}-{slug(label)}", spec, train)
            table[label][split] = {"train": errors(predict(res.model, train), train),
                                   "test": errors(predict(res.model, test), test), **res.summary()}
            ctx.log(f"{label:30s} {split:10s} energy RMSE train {table[label][split]['train']['energy_rmse_eV']:.4f}"
                    f" test {table[label][split]['test']['energy_rmse_eV']:.4f} eV")

    forces: dict[str, dict] = {}
    train, test = sets["sequential"]
    for label, kind, params, lr, how in FORCE_MODELS:
        spec = TrainSpec(model=kind, params=params, r_max=R_MAX, energy_weight=1.0, force_weight=1.0, lr=lr,
                         batch_size=ctx.pick(10, 10), cpu_minutes=force_budget, select="last",
                         lr_patience=25, stop_patience=100)
        res = fit(ctx, f"forces-{slug(label)}", spec, train)
        forces[label] = {"how": how, "train": errors(predict(res.model, train), train),
                         "test": errors(predict(res.model, test), test), **res.summary()}
        ctx.log(f"{label:30s} force RMSE train {forces[label]['train']['force_rmse_eV_A']:.4f} "
                f"test {forces[label]['test']['force_rmse_eV_A']:.4f} eV/Å")
    return report(ctx, frames, n_train, table, forces)


def _tt(d: dict, key: str) -> str:
    return f"{fmt(d['train'][key])} / {fmt(d['test'][key])}"


def report(ctx, frames, n_train, table, forces) -> Report:
    e = energies(frames)
    seq = {k: v["sequential"]["test"]["energy_rmse_eV"] for k, v in table.items()}
    rnd = {k: v["random"]["test"]["energy_rmse_eV"] for k, v in table.items()}
    best_energy = min(seq, key=seq.get)
    eq3, eq2, eq4 = (seq["MBE Eq. 3 (pair sum)"], seq["MBE Eq. 2 (pairs coupled)"],
                     seq["MBE Eq. 4 (triplets coupled)"])
    bp_big = table["BP (50, 25, 10, 10)"]["sequential"]
    bp_mid = table["BP (10, 10, 10)"]["sequential"]
    gnn_best = min(seq["GNN: SchNet"], seq["GNN: nequip"])
    inflation = float(np.median([seq[k] / rnd[k] for k in seq if rnd[k] > 0]))
    best_direct = min((v["test"]["force_rmse_eV_A"], k) for k, v in forces.items() if v["how"] == "direct")
    best_grad = min((v["test"]["force_rmse_eV_A"], k) for k, v in forces.items() if v["how"] != "direct")

    r = Report(
        experiment=ctx.experiment, title=TITLE, paper=PAPER,
        paper_did=(
            "§2/App. A: six Au atoms cut from fcc Au, Maxwell-Boltzmann velocities for 300 K, NVE with ASE/Asap "
            "EMT for 125,000 steps of 1 fs, a frame every 50 steps: 2,500 frames; frames 1-2,000 train and "
            "2,000-2,500 test, not shuffled, because neighbouring frames are correlated (App. A, Fig. 5). "
            "Energy-only fits, RMSE of the total energy in eV: Behler-Parrinello with AMP's defaults at three "
            "network sizes (Table 1: (5,5) 0.08/0.09, (10,10,10) 0.04/0.04, (50,25,10,10) 0.01/0.30 train/test), "
            "many-body expansions on standardised 1/r (Table 4: Eq. 3 pair sum 0.1/0.1, Eq. 2 pairs coupled into "
            "one-body terms 0.017/0.014, Eq. 4 triplets coupled 0.013/0.009, Eq. 5 0.014/0.012) and a DGL graph "
            "network (§6: 0.2 eV). Table 5: models that predict forces directly (Eqs. 6-9) reach 0.7 down to "
            "0.12 eV/Å test RMSE; the paper concludes that F(X) is much harder to learn than E(X)."),
        we_did=[
            f"Data: {ctx.pick(DATA, DATA_QUICK).describe()}, as the paper (ASE's pure-Python EMT instead of "
            f"Asap's). The octahedron is cut from fcc Au (a = 4.08 Å) and not relaxed, as the paper writes: it "
            f"lies 2.2 eV above its EMT minimum, which NVE turns into ~1,300 K. Energy mean {e.mean():.3f} eV, "
            f"standard deviation {e.std():.4f} eV (the RMSE of predicting the mean). From the relaxed octahedron "
            f"(preset `au6-emt`, ~150 K) the standard deviation is only ~0.026 eV, below most of the paper's errors, "
            f"so the paper's errors fit the unrelaxed start.",
            f"Splits: sequential, frames 1-{n_train} train and the rest test, as the paper; and a random split "
            f"of the same frames into the same sizes (permutation seed {SPLIT_SEED}).",
            "Energy-only training for Tables 1/4 and §6, as the paper; no validation set, the final weights are "
            "kept (the paper trains to convergence on the training set). mlff's loop: Adam, learning rate halved "
            "on a training-loss plateau, EMA of the weights, batch "
            f"{ctx.pick(20, 10)}, a CPU budget per model ({ctx.pick(1.4, 0.012):g} CPU-min × 1, 1.5 (MBE Eq. 2/4) or "
            "2 (GNNs)). The paper used AMP's BFGS (BP) and Keras for 200-400 epochs (MBE).",
            f"BP: mlff `bp` with AMP's default symmetry functions (`amp_default`: 4 G2 + 4 G4), cosine cutoff "
            f"{R_MAX} Å (AMP's default), min-max feature scaling to [−1, 1] (AMP's), tanh, hidden layers as "
            "Table 1.",
            "MBE: mlff `mbe` (Eq. 2: `three_body=False`; Eq. 4: coupled triplets; 20 pair / 10 triplet features, "
            "50 hidden units, Table 4's sizes) with a smooth cosine cutoff at 6.5 Å that the paper's all-pairs sums "
            "lack. Eq. 3 is this experiment's own `PairSum`: the same pair network, summed and read out linearly. "
            "Eq. 5 (an MLP around Σ_i) is not run: it has no atomic energies, so it is not an mlff model.",
            "GNN: instead of the paper's two-layer dense message passing on the complete graph (not in mlff), "
            "two modern GNNs: SchNet (64 features, 3 interactions) and nequip (32 channels, l ≤ 1, 3 layers).",
            f"Forces (Table 5's question) on the sequential split: direct-force models (mlff `tfn_dfp`, nequip "
            f"with its direct head; the paper's Eqs. 6-9 are not in mlff) against −∇E of energy models (MBE Eq. 4, "
            f"nequip) trained on energies and forces, {ctx.pick(3.0, 0.02):g} CPU-min each; force RMSE over "
            "components.",
            "All errors are of total energies per cluster (eV) and force components (eV/Å), as the paper's tables.",
        ],
        results={"energy": table, "forces": forces, "n_frames": len(frames), "n_train": n_train,
                 "energy_std_eV": float(e.std())},
    )
    for label, _, _, _, _ in ENERGY_MODELS:
        d = table[label]["sequential"]
        pv = paper_energy(label)
        paper = f"{fmt(pv[0])} / {fmt(pv[1])}" if pv else f"— / {GNN_RMSE} (§6, dense GNN)"
        ref = "Table 1" if label.startswith("BP") else "Table 4" if label.startswith("MBE") else ""
        r.add(f"{label}: energy RMSE train / test, sequential split", paper + (f" ({ref})" if ref else ""),
              _tt(d, "energy_rmse_eV"), "eV",
              f"random split: {_tt(table[label]['random'], 'energy_rmse_eV')}; {d['epochs']} epochs")
    for label, v in forces.items():
        paper = ("0.69–0.08 / 0.70–0.12 (Table 5, direct MBE Eqs. 6–9)" if v["how"] == "direct"
                 else "not run on Au₆ (best force model in the paper: 0.08 / 0.12, Eq. 9)")
        r.add(f"{label}: force RMSE train / test, sequential split", paper, _tt(v, "force_rmse_eV_A"), "eV/Å",
              f"energy RMSE test {fmt(v['test']['energy_rmse_eV'])} eV" if v["how"] != "direct" else "no energy")
    r.add("sequential / random test RMSE (median over the energy models)", "> 1 (App. A: random splits inflate "
          "scores)", f"{inflation:.2f}", "ratio")
    r.extra_tables.append((
        "Energy RMSE (eV), train / test: the paper's split and a random one",
        ["model", "paper (sequential)", "mlff, sequential split", "mlff, random split", "test ratio seq./random"],
        [[label, (lambda pv: f"{fmt(pv[0])} / {fmt(pv[1])}" if pv else f"— / {GNN_RMSE}")(paper_energy(label)),
          _tt(table[label]["sequential"], "energy_rmse_eV"), _tt(table[label]["random"], "energy_rmse_eV"),
          f"{seq[label] / rnd[label]:.2f}" if rnd[label] else "—"] for label, *_ in ENERGY_MODELS]))

    # findings
    checks = {
        "coupled MBE (Eq. 2/4) beats the pair sum (Eq. 3) by > 3x": min(eq2, eq4) * 3 < eq3,
        "BP (50,25,10,10) over-fits (test/train > 3)":
            bp_big["test"]["energy_rmse_eV"] > 3 * bp_big["train"]["energy_rmse_eV"],
        "Eq. 4 is the best energy model": best_energy == "MBE Eq. 4 (triplets coupled)",
        "the GNNs are worse than BP (10,10,10)": gnn_best > bp_mid["test"]["energy_rmse_eV"],
        "a random split lowers the test error (median ratio > 1.2)": inflation > 1.2,
        "forces are hard: best force RMSE > 0.1 eV/Å": min(best_direct[0], best_grad[0]) > 0.1,
    }
    r.results["checks"] = checks
    r.extra_tables.append(("The paper's findings, one by one", ["finding (paper)", "holds in this run"],
                           [[k, "yes" if v else "no"] for k, v in checks.items()]))
    main = checks["Eq. 4 is the best energy model"]
    r.verdict = "reproduced" if main else "not reproduced"
    r.finding = FINDING
    bp_best = min(seq[k] for k in seq if k.startswith("BP"))
    bp_clause = (f"; BP's best test RMSE is {fmt(bp_best)} eV against the paper's 0.04-0.09 eV (Table 1); "
                 f"the energies' standard deviation is {fmt(float(e.std()))} eV")
    if not main:
        r.reason = (f"the best energy model here is {best_energy} ({fmt(seq[best_energy])} eV test RMSE vs "
                    f"{fmt(eq4)} for Eq. 4): the paper's GNN was a small dense network, and modern GNNs are not; "
                    f"the coupled MBE does beat the pair sum ({fmt(min(eq2, eq4))} vs {fmt(eq3)} eV)"
                    if best_energy.startswith("GNN") else
                    f"the best energy model here is {best_energy} ({fmt(seq[best_energy])} vs {fmt(eq4)} eV for "
                    f"Eq. 4)") + bp_clause
    r.notes += [
        f"Best force model: {best_grad[1]} at {fmt(best_grad[0])} eV/Å test RMSE (−∇E) and {best_direct[1]} at "
        f"{fmt(best_direct[0])} eV/Å (direct), against the paper's 0.12 eV/Å (Eq. 9). The reference forces have an "
        f"RMS of {fmt(forces[best_grad[1]]['test']['force_rms_eV_A'])} eV/Å.",
        "An energy RMSE near the standard deviation of the energies "
        f"({fmt(float(e.std()))} eV) means the model learned little more than the mean.",
    ]
    r.plots += plots(ctx, frames, n_train, table, forces)
    return r


def plots(ctx, frames, n_train, table, forces) -> list[tuple[str, str]]:
    plt = pyplot()
    out = []
    labels = [lab for lab, *_ in ENERGY_MODELS]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    paper = [paper_energy(lab)[1] if paper_energy(lab) else GNN_RMSE for lab in labels]
    ax.bar(x - 0.27, paper, 0.27, label="paper, test (sequential)", color="0.6")
    ax.bar(x, [table[lab]["sequential"]["test"]["energy_rmse_eV"] for lab in labels], 0.27,
           label="mlff, test (sequential)", color="C0")
    ax.bar(x + 0.27, [table[lab]["random"]["test"]["energy_rmse_eV"] for lab in labels], 0.27,
           label="mlff, test (random split)", color="C1")
    ax.axhline(float(energies(frames).std()), color="k", ls=":", lw=1, label="std of the energies")
    ax.set_yscale("log")
    ax.set_xticks(x, [lab.replace(": ", ":\n").replace(" (", "\n(") for lab in labels], fontsize=8)
    ax.set_ylabel("energy RMSE (eV per Au₆)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, axis="y")
    out.append((save(fig, ctx, "energy_rmse.png"),
                "Test energy RMSE per model: the paper (Tables 1, 4, §6; GNN: the paper's dense GNN), mlff on the "
                "paper's sequential split and on a random split."))

    e = energies(frames)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(np.arange(len(e)), e, lw=0.6)
    a1.axvline(n_train, color="r", ls="--", label="train | test")
    a1.set(xlabel="frame (50 fs apart)", ylabel="EMT energy (eV)", title="the trajectory")
    a1.legend(fontsize=8)
    d = e - e.mean()
    lags = np.arange(0, min(200, len(e) // 2))
    acf = [float((d[: len(d) - k] * d[k:]).mean() / (d * d).mean()) for k in lags]
    a2.plot(lags, acf)
    a2.axhline(0, color="k", lw=0.5)
    a2.set(xlabel="lag δ (frames)", ylabel="autocorrelation of the energy", title="correlation between frames")
    out.append((save(fig, ctx, "trajectory.png"),
                "Left: EMT energy along the NVE trajectory and the paper's train/test boundary. Right: energy "
                "autocorrelation between frames δ apart (cf. the paper's Fig. 5)."))

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = list(forces)
    xs = np.arange(len(names))
    ax.bar(xs - 0.2, [forces[n]["train"]["force_rmse_eV_A"] for n in names], 0.4, label="mlff, train")
    ax.bar(xs + 0.2, [forces[n]["test"]["force_rmse_eV_A"] for n in names], 0.4, label="mlff, test")
    ax.axhline(TABLE5["Eq. 9"][1], color="r", ls="--", label="paper, best direct model (Eq. 9), test")
    ax.axhline(TABLE5["Eq. 6"][1], color="r", ls=":", label="paper, Eq. 6, test")
    ax.set_yscale("log")
    ax.set_xticks(xs, [n.replace(", ", ",\n").replace(" (", "\n(") for n in names], fontsize=8)
    ax.set_ylabel("force RMSE (eV/Å, components)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, axis="y")
    out.append((save(fig, ctx, "force_rmse.png"),
                "Force RMSE of direct-force models and of −∇E of energy models (sequential split), against the "
                "paper's direct many-body models (Table 5)."))
    return out
