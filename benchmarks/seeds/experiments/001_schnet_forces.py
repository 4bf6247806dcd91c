"""Seed 001 (K. T. Schütt, PhD TU Berlin 2018), Tables 5.3/5.4 and 5.1/5.2: SchNet trained on
energies only against energies + forces at 1,000 training frames, on four MD17-protocol
molecules (GFN2-xTB stand-in), and the T = 1/2/3 interaction-block ablation on ethanol."""

from __future__ import annotations

import numpy as np

from common import (KCAL_MOL, Report, TrainSpec, errors, fit, fmt, md17_sets, md17_specs, predict, pyplot,
                    ratio_span, save, schutt_energy_weight)

TITLE = "SchNet: energy-only vs energy + forces at 1,000 frames, and T = 1/2/3 interaction blocks (seed 001 §5.2)"
FINDING = ("training on forces cuts the force error by one to two orders of magnitude (and the energy error by "
           "more than one) at 1,000 frames; T ≥ 2 interaction blocks are needed")
COST_MINUTES = 55
PAPER = "K. T. Schütt, PhD thesis, TU Berlin (2018), seed 001, §5.2.1"

MOLECULES = ["benzene", "toluene", "ethanol", "malonaldehyde"]
#: Table 5.4, N = 1,000, force MAE (kcal/mol/Å): (energy-only, energy + forces), SchNet T = 3.
TABLE_5_4 = {"benzene": (14.12, 0.31), "toluene": (22.31, 0.57), "ethanol": (6.56, 0.39),
             "malonaldehyde": (20.41, 0.66)}
#: Table 5.3, N = 1,000, energy MAE (kcal/mol): (energy-only, energy + forces).
TABLE_5_3 = {"benzene": (1.19, 0.08), "toluene": (2.95, 0.12), "ethanol": (0.93, 0.08),
             "malonaldehyde": (2.03, 0.13)}
#: Table 5.1, ethanol, N = 1,000, energy + forces (ρ = 0.01), unshared filters: T -> (E MAE, E RMSE, F MAE, F RMSE).
TABLE_5_1 = {1: (0.43, 0.57, 1.72, 2.52), 2: (0.08, 0.13, 0.40, 0.70), 3: (0.08, 0.14, 0.39, 0.72)}
RHO = 0.01                       # energy-force trade-off of Eq. 5.7
N_TRAIN, N_VALID, N_TEST = 1000, 100, 500
SCHNET = dict(n_features=64, n_filters=64, n_rbf=20)
#: an energy-only model "learned" when its test energy RMSE is below this fraction of the
#: test energies' standard deviation (the RMSE of predicting their mean)
LEARNED_FRACTION = 0.8


def kcal(x_ev: float | None) -> float | None:
    return None if x_ev is None else x_ev / KCAL_MOL


def run(ctx) -> Report:
    results = {}
    for mol in MOLECULES:
        train, valid, test = md17_sets(ctx, mol, N_TRAIN, N_VALID, N_TEST)
        n = len(train[0])
        results[mol] = {"n_atoms": n}
        for label, w_f, w_e, budget in (("energy", 0.0, 1.0, 3.0),
                                        ("energy+forces", 1.0, schutt_energy_weight(RHO, n), 5.0)):
            spec = TrainSpec(model="schnet", params=dict(SCHNET, n_interactions=3), energy_weight=w_e,
                             force_weight=w_f, lr=1e-3, batch_size=ctx.pick(32, 8),
                             cpu_minutes=ctx.pick(budget, 0.02), select="valid", lr_patience=15, stop_patience=60)
            res = fit(ctx, f"{mol}-{label}-T3", spec, train, valid)
            results[mol][label] = {**res.summary(), "energy_weight": w_e,
                                   "test": errors(predict(res.model, test), test)}
            t = results[mol][label]["test"]
            ctx.log(f"{mol} {label:14s}: energy MAE {1e3 * t['energy_mae_eV']:.1f} meV, force MAE "
                    f"{1e3 * t['force_mae_eV_A']:.1f} meV/Å")
    train, valid, test = md17_sets(ctx, "ethanol", N_TRAIN, N_VALID, N_TEST)
    ablation = {3: results["ethanol"]["energy+forces"]}
    for T in (1, 2):
        spec = TrainSpec(model="schnet", params=dict(SCHNET, n_interactions=T),
                         energy_weight=schutt_energy_weight(RHO, len(train[0])), force_weight=1.0, lr=1e-3,
                         batch_size=ctx.pick(32, 8), cpu_minutes=ctx.pick(5.0, 0.02), select="valid",
                         lr_patience=15, stop_patience=60)
        res = fit(ctx, f"ethanol-energy+forces-T{T}", spec, train, valid)
        ablation[T] = {**res.summary(), "test": errors(predict(res.model, test), test)}
        ctx.log(f"ethanol T={T}: force MAE {1e3 * ablation[T]['test']['force_mae_eV_A']:.1f} meV/Å")
    return report(ctx, results, ablation)


def _both(kcal_value: float, per_angstrom: bool) -> str:
    """A paper value in kcal/mol (or kcal/mol/Å) with ours (meV or meV/Å) in parentheses."""
    unit = "/Å" if per_angstrom else ""
    return f"{kcal_value:g} kcal/mol{unit} ({kcal_value * KCAL_MOL * 1e3:.3g} meV{unit})"


def report(ctx, results, ablation) -> Report:
    spec_train, spec_test = md17_specs("ethanol", ctx.quick, N_TRAIN, N_VALID, N_TEST)
    r = Report(
        experiment=ctx.experiment, title=TITLE, paper=PAPER,
        paper_did=(
            "SchNet (T = 3 interaction blocks, unshared filter networks, F = 64) trained with Adam, batch 32, on "
            "N = 1,000 random frames of each MD17 trajectory (PBE+vdW-TS AIMD at 500 K), either on energies alone "
            "or with the combined loss ρ‖E − Ê‖² + (1/N)Σ‖F_i + ∂Ê/∂R_i‖² with ρ = 0.01 (Eq. 5.7). Tables 5.3/5.4: "
            "test MAE of the energy (kcal/mol) and of the force components (kcal/mol/Å); for the four molecules "
            "here energy-only 14.1-22.3 kcal/mol/Å force MAE against 0.31-0.66 with forces ('improvements of 1-2 "
            "orders of magnitude'; energies 'reduced by more than one order of magnitude'). Tables 5.1/5.2: on "
            "ethanol at N = 1,000 with forces, T = 1 gives 0.43 / 1.72 (energy / force MAE), T = 2 0.08 / 0.40, "
            "T = 3 0.08 / 0.39: 'the second interaction block is crucial'."),
        we_did=[
            f"Reference: GFN2-xTB instead of PBE+vdW-TS (DFT is not available offline): another energy surface, so "
            f"absolute errors are not comparable, the ratios are. Data per molecule: {spec_train.describe()} "
            f"(MD17's own protocol: 500 K, 0.5 fs), split at random into {N_TRAIN} training and {N_VALID} "
            f"validation frames; test: {spec_test.describe()} (an independent trajectory; MD17 tests on the rest "
            "of its one long trajectory).",
            "Molecules: benzene, toluene (aromatic), ethanol, malonaldehyde (the two without rings, where SchNet "
            "beat GDML), four of MD17's eight.",
            f"Model: mlff `schnet` (F = 64, 64 filters, 20 Gaussians on [0, 5 Å], T = 3; a cosine cutoff at 5 Å "
            f"on the filters, which the thesis lacks). Loss: ρ = 0.01 of Eq. 5.7 becomes mlff's energy weight "
            f"ρN²/3 on the per-atom energy error (e.g. {schutt_energy_weight(RHO, 9):.2f} for 9 atoms), the force "
            "term per component. Energy-only: force weight 0.",
            f"Training: Adam (lr 1e-3, halved on a validation plateau), EMA weights, batch {ctx.pick(32, 8)}, best "
            f"validation loss kept; budgets {ctx.pick('3 CPU-min (energy-only) and 5 CPU-min (energy + forces)', '0.02 CPU-min')} "
            "per model on one core (the thesis trained to convergence on a GPU).",
            "Ablation: the same energy + forces set-up on ethanol with T = 1, 2, 3 interaction blocks.",
            "Units: energies as total-energy MAE in meV (the thesis: kcal/mol; 1 kcal/mol = 43.4 meV), forces as "
            "component MAE in meV/Å (the thesis: kcal/mol/Å).",
        ],
        results={"molecules": results, "ablation": ablation},
    )
    f_ratios, e_ratios = [], []
    learned, f_ratio_of = {}, {}    # did the energy-only model learn more than the mean energy?
    for mol in MOLECULES:
        d = results[mol]
        t_e, t_ef = d["energy"]["test"], d["energy+forces"]["test"]
        learned[mol] = t_e["energy_rmse_eV"] < LEARNED_FRACTION * t_e["energy_std_eV"]
        r.add(f"{mol}: energy-only test energy RMSE / std of the test energies", "— (learned: Table 5.3)",
              f"{t_e['energy_rmse_eV'] / t_e['energy_std_eV']:.2f}", "ratio",
              f"{1e3 * t_e['energy_rmse_eV']:.3g} / {1e3 * t_e['energy_std_eV']:.3g} meV; 1 = the mean energy "
              f"only; {'learned' if learned[mol] else 'learned nothing beyond the mean'}")
        fe, fef = t_e["force_mae_eV_A"], t_ef["force_mae_eV_A"]
        ee, eef = t_e["energy_mae_eV"], t_ef["energy_mae_eV"]
        f_ratio_of[mol] = fe / fef
        if learned[mol]:    # against an untrained baseline the ratios say nothing about force training
            f_ratios.append(fe / fef)
            e_ratios.append(ee / eef)
        pe, pef = TABLE_5_4[mol]
        r.add(f"{mol}: force MAE, energy-only", _both(pe, True),
              f"{1e3 * fe:.3g} meV/Å", "meV/Å", f"{fmt(kcal(fe))} kcal/mol/Å; Table 5.4")
        r.add(f"{mol}: force MAE, energy + forces", _both(pef, True),
              f"{1e3 * fef:.3g} meV/Å", "meV/Å", f"{fmt(kcal(fef))} kcal/mol/Å; Table 5.4")
        r.add(f"{mol}: force MAE ratio energy-only / energy + forces", f"{pe / pef:.0f}×", f"{fe / fef:.1f}×", "ratio")
        qe, qef = TABLE_5_3[mol]
        r.add(f"{mol}: energy MAE ratio energy-only / energy + forces", f"{qe / qef:.0f}× ({qe:g} → {qef:g} kcal/mol, "
              "Table 5.3)", f"{ee / eef:.1f}× ({1e3 * ee:.3g} → {1e3 * eef:.3g} meV)", "ratio")
    for T in (1, 2, 3):
        t = ablation[T]["test"]
        pe, _, pf, _ = TABLE_5_1[T]
        r.add(f"ethanol, T = {T}: energy MAE / force MAE", f"{pe:g} / {pf:g} kcal/mol(/Å) (Table 5.1)",
              f"{1e3 * t['energy_mae_eV']:.3g} meV / {1e3 * t['force_mae_eV_A']:.3g} meV/Å", "meV, meV/Å",
              f"{fmt(kcal(t['energy_mae_eV']))} / {fmt(kcal(t['force_mae_eV_A']))} kcal/mol(/Å)")
    f1, f2, f3 = (ablation[T]["test"]["force_mae_eV_A"] for T in (1, 2, 3))
    judged = [m for m in MOLECULES if learned[m]]
    skipped = [m for m in MOLECULES if not learned[m]]
    checks = {f"energy-only models learn more than the mean energy (RMSE < {LEARNED_FRACTION} × std; every "
              "molecule)": not skipped,
              "force MAE falls ≥ 10× with force training (every molecule)": bool(f_ratios) and min(f_ratios) >= 10,
              "energy MAE falls ≥ 10× with force training (every molecule)": bool(e_ratios) and min(e_ratios) >= 10,
              "T = 1 is clearly worse than T = 2 and 3 (force MAE ≥ 1.5×)": f1 >= 1.5 * min(f2, f3),
              "T = 2 and T = 3 are close (within 1.5×)": max(f2, f3) <= 1.5 * min(f2, f3)}
    r.record_checks(checks, FINDING)
    main = checks["force MAE falls ≥ 10× with force training (every molecule)"]
    r.verdict = "reproduced" if main else "not reproduced"
    if not f_ratios:
        r.verdict = "not comparable"
        r.reason = (f"no energy-only model learned more than the mean energy in its {ctx.pick(3, 0.02)} CPU-min "
                    "(the thesis trained to convergence on a GPU); likely because near equilibrium the energy is "
                    "quadratic in the displacements while freshly initialised features respond linearly, so the "
                    "energy-only gradient starts near zero, where force labels give a first-order signal. The "
                    "force-training ratios would compare against an untrained model")
    elif not main:
        r.reason = (f"the force MAE falls only {ratio_span(f_ratios)} with force training on {', '.join(judged)} "
                    "(budget-limited training on one core)"
                    + (f"; the energy-only models of {', '.join(skipped)} learned nothing beyond the mean energy, "
                       "so those molecules are not judged" if skipped else ""))
    if skipped:
        r.notes.append("Counting every molecule, the force MAE ratios energy-only / energy + forces are "
                       + ", ".join(f"{m} {v:.1f}×" for m, v in f_ratio_of.items()) + " (the thesis: "
                       + ", ".join(f"{TABLE_5_4[m][0] / TABLE_5_4[m][1]:.0f}×" for m in MOLECULES)
                       + "); the energy-only force errors themselves are close to the thesis's (see the plot), "
                       "whose energy-only models were poor at forces too.")
    if judged and skipped:
        r.notes.append("The ratios are taken over the molecules whose energy-only model learned more than the mean "
                       f"energy ({', '.join(judged)}); the others ({', '.join(skipped)}) would compare against an "
                       "untrained model.")
    others = [k for k, v in checks.items() if not v and not k.startswith("force MAE falls")]
    if others:
        r.notes.append("Not holding in this run: " + "; ".join(others) + ".")
    r.plots += plots(ctx, results, ablation)
    return r


def plots(ctx, results, ablation):
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1.6, 1]})
    x = np.arange(len(MOLECULES))
    w = 0.2
    for k, (label, key, color) in enumerate((("energy-only", "energy", "C1"), ("energy + forces", "energy+forces", "C0"))):
        a1.bar(x + (2 * k - 1) * w - w / 2, [TABLE_5_4[m][k] * KCAL_MOL * 1e3 for m in MOLECULES], w, color=color,
               alpha=0.45, hatch="//", label=f"thesis (DFT), {label}")
        a1.bar(x + (2 * k - 1) * w + w / 2, [1e3 * results[m][key]["test"]["force_mae_eV_A"] for m in MOLECULES], w,
               color=color, label=f"mlff (xTB), {label}")
    a1.set_yscale("log")
    a1.set_xticks(x, MOLECULES)
    a1.set_ylabel("force MAE (meV/Å)")
    a1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    a1.grid(alpha=0.3, axis="y")
    a1.set_title("Table 5.4: N = 1,000")
    Ts = [1, 2, 3]
    a2.plot(Ts, [TABLE_5_1[T][2] * KCAL_MOL * 1e3 for T in Ts], "s--", color="0.5", label="thesis, force MAE (DFT)")
    a2.plot(Ts, [1e3 * ablation[T]["test"]["force_mae_eV_A"] for T in Ts], "o-", label="mlff, force MAE (xTB)")
    a2.set(xlabel="interaction blocks T", ylabel="ethanol force MAE (meV/Å)", xticks=Ts, title="Table 5.1: ethanol, N = 1,000")
    a2.set_yscale("log")
    a2.legend(fontsize=8)
    a2.grid(alpha=0.3, which="both")
    return [(save(fig, ctx, "schnet_forces.png"), "Left: test force MAE of SchNet trained on energies only and on "
             "energies + forces (ρ = 0.01), thesis (DFT) beside mlff (GFN2-xTB). Right: ethanol force MAE against "
             "the number of interaction blocks.")]
