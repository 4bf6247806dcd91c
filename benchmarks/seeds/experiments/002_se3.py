"""Seed 002 (B. E. Hedelius, BSc BYU 2021): the SE(3)-Transformer.

§3.1: per-layer equivariance error in float32 (all layers below 1e-6). Table 3.1: energy
statistics of a multi-molecule data set with and without per-species self-energies (the
standard deviation falls by more than 99 %), and the errors of a network trained without
and with the subtraction (Fig. 3.2: forces fine, energies 'completely off'). §3.2: a water
molecule started at rest, driven by direct forces and by −∇E.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from ase import units

from common import (HARTREE, KCAL_MOL, DataSpec, Report, TrainSpec, dataset, energies, errors, fit, fmt,
                    md17_specs, predict, pyplot, save)

TITLE = ("SE(3)-Transformer: per-layer equivariance in float32, self-energies, and a water molecule with direct vs "
         "−∇E forces (seed 002)")
FINDING = ("every layer is equivariant to < 1e-6 in float32; subtracting self-energies cuts the energy spread by "
           "> 99 % (without it energies stay 'completely off'); direct forces blow a water molecule apart within a "
           "few hundred steps")
COST_MINUTES = 40
PAPER = "B. E. Hedelius, BSc thesis, Brigham Young University (2021), seed 002"

#: §3.1: the equivariance error Δ_EQ = ‖LΦ(f) − ΦL(f)‖ / ‖LΦ(f)‖ of every layer, float32.
EQUIVARIANCE_BOUND = 1e-6
#: Table 3.1: (mean, standard deviation) of the energies in Hartree.
TABLE_3_1 = {"ANI1": ((-338, 60.9), (0.0574, 0.110)), "ANI1x": ((-395, 139), (0.0184, 0.106))}
#: Fig. 3.2: after 200,000 iterations on raw ANI-1x energies: force error ~4 kcal/mol/Å, energy error ~100 kcal/mol.
FIG_3_2 = (4.0, 100.0)
#: §3.2: "After a few hundred time steps, the atoms were completely separated by dozens of Angstroms."
WATER_STEPS_PAPER = "a few hundred"
#: The thesis's model: 8 heads, 3 layers, 2 channels (per head); energy weight W_e = 1e-5 on the
#: squared total-energy error against the per-atom-averaged squared force error (Eq. 3.2).
SE3 = dict(n_features=8, l_max=2, n_layers=3, n_heads=8, head_features=2)
W_E = 1e-5

#: The ANI-like stand-in: GFN2-xTB MD (MD17 protocol) of nine molecules with H, C, N, O.
MIXED = ["water", "ethanol", "malonaldehyde", "uracil", "benzene", "toluene", "salicylic_acid", "naphthalene",
         "aspirin"]
MIXED_TRAIN = {m: DataSpec.make(m, 100, seed=1) for m in MIXED}
MIXED_TEST = {m: DataSpec.make(m, 20, seed=2, equilibration_fs=500.0) for m in MIXED}
QUICK_MIXED = ["water", "ethanol", "malonaldehyde"]
WATER_STEPS, WATER_DT_FS = 2000, 0.5


def quick_mixed(m: str, seed: int) -> DataSpec:
    return DataSpec.make(m, 8, seed=seed, interval=5, equilibration_fs=50.0)


# --------------------------------------------------------------------------- equivariance


def wigner_d(irreps, R: torch.Tensor) -> torch.Tensor:
    """The representation matrix of ``irreps`` (e3nn layout) for the rotation ``R``, float64,
    exact to ~1e-15: each D^l is solved from e3nn's spherical harmonics at random points,
    ``Y^l(R x) = D^l Y^l(x)`` (they are polynomials). e3nn's own ``D_from_matrix`` is only good
    to ~1e-6 for l = 4 (its tabulated J matrices), which would hide a float32 error of 1e-7."""
    from e3nn import o3

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64, generator=gen)
    blocks = []
    for mul, ir in irreps:
        y = o3.spherical_harmonics(ir.l, x, normalize=True, normalization="component")
        y_rot = o3.spherical_harmonics(ir.l, x @ R.T, normalize=True, normalization="component")
        d = torch.linalg.lstsq(y, y_rot).solution.T
        blocks += [d] * mul
    return torch.block_diag(*blocks)


def layer_equivariance(model, atoms, rotations) -> list[float]:
    """Δ_EQ of every attention layer: the layer applied to rotated inputs (features rotated by
    their Wigner-D matrices, geometry rotated and translated) against its rotated output;
    the largest over ``rotations``."""
    from mlff.calculator import edge_graph
    from mlff.graph import species_indices
    from mlff.models.equivariant import radial_per_pair

    dtype = next(model.parameters()).dtype
    species = torch.as_tensor(species_indices(atoms, model.species))
    inputs, outputs = {}, {}

    def keep(k):
        def hook(module, args, out):
            inputs[k], outputs[k] = args[0].detach(), out.detach()   # returns None: the output is unchanged
        return hook

    hooks = [layer.register_forward_hook(keep(k)) for k, layer in enumerate(model.layers)]
    ei, ev = edge_graph(atoms, model.r_max)
    with torch.no_grad():
        model(species, torch.as_tensor(ei), torch.as_tensor(ev, dtype=dtype))
    for h in hooks:
        h.remove()
    worst = [0.0] * len(model.layers)
    rng = np.random.default_rng(1)
    for R in rotations:
        moved = atoms.copy()
        moved.positions = atoms.positions @ R.numpy().T + rng.normal(0, 3.0, 3)
        ei2, ev2 = edge_graph(moved, model.r_max)
        ei2, ev2 = torch.as_tensor(ei2), torch.as_tensor(ev2, dtype=dtype)
        with torch.no_grad():
            sh, radial, cutoff, r = model.edge_embedding(ev2)
            radial, r, group = radial_per_pair(ei2, ev2, radial, r)
            for k, layer in enumerate(model.layers):
                d_in = wigner_d(layer.query.irreps_in, R).to(dtype)
                d_out = wigner_d(layer.mix.irreps_out, R).to(dtype)
                expected = outputs[k] @ d_out.T
                got = layer(inputs[k] @ d_in.T, sh, radial, r, cutoff, ei2, group)
                err = float(torch.linalg.norm((got - expected).double()) / torch.linalg.norm(expected.double()))
                worst[k] = max(worst[k], err)
    return worst


def equivariance(ctx) -> dict:
    from e3nn import o3

    from mlff.data.molecules import molecule, water
    from mlff.models import build_model

    torch.manual_seed(0)
    rotations = [o3.rand_matrix(dtype=torch.float64) for _ in range(ctx.pick(10, 2))]
    structures = {"water": water(), "toluene": molecule("toluene"), "aspirin": molecule("aspirin")}
    out = {}
    for head in ("energy", "direct"):
        torch.manual_seed(0)
        base = build_model("se3_transformer", ["H", "C", "N", "O"], 5.0, dtype=torch.float64,
                           **SE3, direct_forces=head == "direct")
        with torch.no_grad():   # the zero-initialised output layer gets random weights (else its output is 0)
            for p in base.layers[-1].parameters():
                if not p.abs().any():
                    p.normal_(0.0, 0.3)
        for dtype in (torch.float32, torch.float64):
            model = copy.deepcopy(base).to(dtype)     # a float64 -> float32 -> float64 round trip would round the
            errs = np.max([layer_equivariance(model, a, rotations)       # Clebsch-Gordan coefficients
                           for a in structures.values()], axis=0)
            out[f"{head}-{str(dtype).split('.')[-1]}"] = [float(e) for e in errs]
            ctx.log(f"equivariance, {head} head, {dtype}: " + ", ".join(f"{e:.1e}" for e in errs))
    return out


# --------------------------------------------------------------------------- self-energies


def self_energy_statistics(frames) -> dict:
    """Mean and standard deviation (Hartree) of the total energies, raw and after subtracting
    per-species self-energies fitted by least squares (ANI's linear self-energy fit)."""
    from ase.data import atomic_numbers

    symbols = sorted({s for a in frames for s in a.get_chemical_symbols()}, key=lambda s: atomic_numbers[s])
    counts = np.array([[a.get_chemical_symbols().count(s) for s in symbols] for a in frames], dtype=float)
    e = energies(frames) / HARTREE
    sae, *_ = np.linalg.lstsq(counts, e, rcond=None)
    rest = e - counts @ sae
    return {"mean_Ha": float(e.mean()), "std_Ha": float(e.std()), "mean_wo_Ha": float(rest.mean()),
            "std_wo_Ha": float(rest.std()), "std_reduction": float(1 - rest.std() / e.std()),
            "self_energies_Ha": dict(zip(symbols, sae.tolist())), "n_frames": len(frames),
            "n_molecules": len({a.get_chemical_formula() for a in frames})}


def water_md(model, steps: int, dt_fs: float) -> dict:
    """NVE from the xTB-relaxed water geometry at rest (velocity Verlet, ASE), with the model's
    forces: O-H distances, H-H distance and the centre-of-mass displacement per step."""
    from ase.md.verlet import VelocityVerlet
    from ase.optimize import BFGS

    from mlff.calculator import MLFFCalculator
    from mlff.data.calculators import make_calculator
    from mlff.data.molecules import water

    atoms = water()
    atoms.calc = make_calculator("xtb")
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=200)
    start = atoms.copy()
    atoms.calc = MLFFCalculator(model, max_warnings=0)
    atoms.set_momenta(np.zeros((3, 3)))
    dyn = VelocityVerlet(atoms, timestep=dt_fs * units.fs)
    d0 = start.get_all_distances()
    oh0 = float(d0[0, 1])
    rows = []
    broken = None
    com0 = start.get_center_of_mass()
    for step in range(steps + 1):
        if step:
            try:
                dyn.run(1)
            except Exception as exc:  # a model that fails far outside its data
                rows.append({"step": step, "failed": str(exc)})
                break
        d = atoms.get_all_distances()
        oh = max(d[0, 1], d[0, 2])
        rows.append({"step": step, "oh_max_A": float(oh), "hh_A": float(d[1, 2]),
                     "com_shift_A": float(np.linalg.norm(atoms.get_center_of_mass() - com0)),
                     "ke_eV": float(atoms.get_kinetic_energy())})
        if broken is None and oh > 1.5 * oh0:
            broken = step
        if oh > 50.0:
            break
    return {"oh_equilibrium_A": oh0, "first_step_oh_over_1.5x": broken, "rows": rows,
            "max_oh_A": max(r.get("oh_max_A", 0) for r in rows)}


def run(ctx) -> Report:
    eq = equivariance(ctx)

    names = QUICK_MIXED if ctx.quick else MIXED
    train_all, test_all = [], []
    for m in names:
        train_all += dataset(ctx, quick_mixed(m, 1) if ctx.quick else MIXED_TRAIN[m])
        test_all += dataset(ctx, quick_mixed(m, 2) if ctx.quick else MIXED_TEST[m])
    stats = self_energy_statistics(train_all)
    ctx.log(f"energies: mean {stats['mean_Ha']:.2f} Ha, std {stats['std_Ha']:.3f} Ha; without self-energies "
            f"mean {stats['mean_wo_Ha']:.2e}, std {stats['std_wo_Ha']:.2e} Ha ({stats['std_reduction']:.2%} less)")
    order = np.random.default_rng(0).permutation(len(train_all))
    n_valid = max(2, len(train_all) // 10)
    valid = [train_all[k] for k in order[:n_valid]]
    train = [train_all[k] for k in order[n_valid:]]
    n_mean = float(np.mean([len(a) for a in train]))
    trained = {}
    for label, ref in (("raw energies (no self-energies)", "zero"), ("self-energies subtracted", "fit")):
        spec = TrainSpec(model="se3_transformer", params=SE3, energy_weight=W_E * n_mean ** 2, force_weight=1.0,
                         lr=1e-3, batch_size=5, cpu_minutes=ctx.pick(10.0, 0.03), select="valid",
                         reference_energies=ref, lr_patience=10, stop_patience=40)
        res = fit(ctx, f"mixed-{ref}", spec, train, valid)
        trained[label] = {**res.summary(), "test": errors(predict(res.model, test_all), test_all)}
        t = trained[label]["test"]
        ctx.log(f"{label}: energy MAE {t['energy_mae_eV'] / KCAL_MOL:.1f} kcal/mol, force MAE "
                f"{t['force_mae_eV_A'] / KCAL_MOL:.2f} kcal/mol/Å")

    spec_w, _ = md17_specs("water", ctx.quick)
    w_frames = dataset(ctx, spec_w)
    w_order = np.random.default_rng(0).permutation(len(w_frames))
    w_valid = [w_frames[k] for k in w_order[:max(2, len(w_frames) // 10)]]
    w_train = [w_frames[k] for k in w_order[max(2, len(w_frames) // 10):]]
    md = {}
    for label, direct in (("direct forces", True), ("−∇E", False)):
        spec = TrainSpec(model="se3_transformer", params=dict(SE3, direct_forces=direct), energy_weight=1.0,
                         force_weight=1.0, lr=1e-3, batch_size=5, cpu_minutes=ctx.pick(5.0, 0.02), select="valid",
                         lr_patience=10, stop_patience=40)
        res = fit(ctx, f"water-{'direct' if direct else 'energy'}", spec, w_train, w_valid)
        from common import export

        path = export(res.model, ctx.out / "models" / f"water-{'direct' if direct else 'energy'}.pt",
                      res.training_range)
        md[label] = {**res.summary(), "valid": errors(predict(res.model, w_valid), w_valid),
                     **water_md(path, ctx.pick(WATER_STEPS, 100), WATER_DT_FS)}
        ctx.log(f"water, {label}: first step with O-H > 1.5x: {md[label]['first_step_oh_over_1.5x']}, largest O-H "
                f"{md[label]['max_oh_A']:.2f} Å")
    return report(ctx, eq, stats, trained, md, names)


def report(ctx, eq, stats, trained, md, names) -> Report:
    r = Report(
        experiment=ctx.experiment, title=TITLE, paper=PAPER,
        paper_did=(
            "§3.1: every layer of the author's SE(3)-Transformer has an equivariance error "
            "Δ_EQ = ‖LΦ(f) − ΦL(f)‖₂/‖LΦ(f)‖₂ below 1e-6 in float32, for roto-translations L. §3.2: networks with "
            "8 heads, 3 layers and 2 channels, an energy (degree-0) and a direct force (degree-1) output, trained "
            "on raw ANI-1/ANI-1x energies with energy weight W_e = 1e-5: forces reached ~4 kcal/mol/Å, energies "
            "~100 kcal/mol (Fig. 3.2), because the self-interaction (atomisation) energies dominate; Table 3.1: "
            "subtracting them turns mean/STD −338/60.9 Ha into 0.0574/0.110 Ha (ANI1) and −395/139 into "
            "0.0184/0.106 Ha (ANI1x), an STD reduction of more than 99 %. A water molecule started at its "
            "equilibrium geometry with no velocity, driven by the direct forces, flew apart by dozens of Å "
            "within a few hundred steps."),
        we_did=[
            "Equivariance: mlff `se3_transformer` (3 layers, 8 heads × 2 channels, degrees ≤ 2, 8 channels between "
            "layers), random weights (the zero-initialised output layer too), on water, toluene and aspirin; each "
            "layer is fed the rotated inputs of the unrotated pass (features rotated by their Wigner-D matrices, "
            f"geometry rotated and translated) and compared with its rotated output; the largest Δ_EQ over "
            f"{ctx.pick(10, 2)} random rotations and the three molecules, in float32 and float64. The Wigner-D "
            "matrices are solved from e3nn's spherical harmonics (exact to ~1e-15): e3nn's own `D_from_matrix` is "
            "accurate only to ~1e-6 at l = 4 and would hide the float32 error it is meant to measure.",
            f"Self-energies: ANI-1/ANI-1x (DFT, millions of conformers) are not available offline; the stand-in is "
            f"GFN2-xTB MD (MD17 protocol) of {len(names)} molecules with H, C, N, O "
            f"({', '.join(names)}), {stats['n_frames']} frames; the self-energies are fitted per element by least "
            "squares (ANI's linear fit). With few molecules of fixed size, the spread of the raw energies is "
            "smaller than ANI's, so the percentage, not the Hartrees, is compared.",
            f"Training with and without self-energies: the same network with an energy head (forces −∇E; the "
            f"thesis's network had an energy and a separate direct-force output), on {len(names)} molecules' "
            "frames (90 % train, 10 % validation), tested on independent trajectories; the loss weights the "
            "squared total-energy error by W_e = 1e-5 against the force term, as Eq. 3.2. 'Without' means the "
            "per-species reference energies of mlff's energy head are 0, so the network must produce the whole "
            f"energy; 'with' means they are the least-squares fit (mlff's default). {ctx.pick(10, 0.03)} CPU-min "
            "each (the thesis: 200,000 iterations on a GPU).",
            f"Water: {md17_specs('water', ctx.quick)[0].describe()}; two networks, direct-force head and energy "
            f"head, {ctx.pick(5, 0.02)} CPU-min each; then NVE (velocity Verlet in ASE, {WATER_DT_FS} fs steps, "
            f"{ctx.pick(WATER_STEPS, 100)} steps) from the GFN2-xTB-relaxed geometry at rest. `mlff md`'s "
            "protocols start from thermal velocities, so this three-atom run uses ASE with the deployed model "
            "(`MLFFCalculator`). The thesis does not give its time step.",
            "Units: the thesis's Hartree (Table 3.1) and kcal/mol(/Å) (Fig. 3.2) are kept for its own quantities; "
            "meV and meV/Å are given beside.",
        ],
        results={"equivariance": eq, "self_energy_statistics": stats, "training": trained,
                 "water_md": {k: {kk: vv for kk, vv in v.items() if kk != "rows"} for k, v in md.items()}},
    )
    for key in ("energy-float32", "direct-float32"):
        for k, e in enumerate(eq[key]):
            r.add(f"Δ_EQ of layer {k + 1}, {key.split('-')[0]} head, float32", "< 1e-6 (§3.1)", f"{e:.1e}", "",
                  f"float64: {eq[key.replace('32', '64')][k]:.1e}")
    r.add("energy mean / STD, raw", "−338 / 60.9 (ANI1), −395 / 139 (ANI1x), Table 3.1",
          f"{stats['mean_Ha']:.1f} / {stats['std_Ha']:.2f}", "Ha")
    r.add("energy mean / STD, self-energies subtracted", "0.0574 / 0.110 (ANI1), 0.0184 / 0.106 (ANI1x)",
          f"{stats['mean_wo_Ha']:.1e} / {stats['std_wo_Ha']:.3f}", "Ha")
    r.add("STD reduction by the self-energies", "> 99 % (99.8 % ANI1, 99.9 % ANI1x)",
          f"{100 * stats['std_reduction']:.2f} %", "")
    raw, sub = trained["raw energies (no self-energies)"]["test"], trained["self-energies subtracted"]["test"]
    r.add("energy MAE, raw energies / self-energies subtracted", f"~{FIG_3_2[1]:g} kcal/mol raw (Fig. 3.2)",
          f"{raw['energy_mae_eV'] / KCAL_MOL:.3g} / {sub['energy_mae_eV'] / KCAL_MOL:.3g}", "kcal/mol",
          f"{1e3 * raw['energy_mae_eV']:.3g} / {1e3 * sub['energy_mae_eV']:.3g} meV")
    r.add("force MAE, raw energies / self-energies subtracted", f"~{FIG_3_2[0]:g} kcal/mol/Å raw (Fig. 3.2)",
          f"{raw['force_mae_eV_A'] / KCAL_MOL:.3g} / {sub['force_mae_eV_A'] / KCAL_MOL:.3g}", "kcal/mol/Å",
          f"{1e3 * raw['force_mae_eV_A']:.3g} / {1e3 * sub['force_mae_eV_A']:.3g} meV/Å")
    for label, d in md.items():
        step = d["first_step_oh_over_1.5x"]
        r.add(f"water from rest, {label}: first step with an O-H bond > 1.5× equilibrium",
              f"{WATER_STEPS_PAPER} steps to 'dozens of Å' (§3.2, direct)" if "direct" in label else
              "not run (the thesis had no −∇E head)",
              "none" if step is None else str(step), "steps",
              f"largest O-H {d['max_oh_A']:.2f} Å in {len(d['rows']) - 1} steps of {WATER_DT_FS} fs; "
              f"validation force MAE {1e3 * d['valid']['force_mae_eV_A']:.3g} meV/Å")
    eq32 = max(eq["energy-float32"] + eq["direct-float32"])
    direct_breaks = md["direct forces"]["first_step_oh_over_1.5x"] is not None
    grad_breaks = md["−∇E"]["first_step_oh_over_1.5x"] is not None
    checks = {"every layer equivariant to < 1e-6 in float32": eq32 < EQUIVARIANCE_BOUND,
              "self-energies cut the energy STD by > 99 %": stats["std_reduction"] > 0.99,
              "without self-energies the energy error is far larger (> 3×)": raw["energy_mae_eV"] > 3 * sub["energy_mae_eV"],
              "the water molecule driven by direct forces flies apart": direct_breaks,
              "the water molecule driven by −∇E stays bound": not grad_breaks}
    failed = r.record_checks(checks, FINDING)
    r.judge_all(failed)
    if failed:
        if not direct_breaks:
            r.reason += (" (mlff's direct head is an E(3)-equivariant network with a smooth cutoff, trained to "
                         f"{1e3 * md['direct forces']['valid']['force_mae_eV_A']:.0f} meV/Å; at rest the molecule "
                         "stays where its training data are)")
    r.plots += plots(ctx, eq, md)
    return r


def plots(ctx, eq, md):
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    layers = np.arange(1, len(eq["energy-float32"]) + 1)
    for key, style in (("energy-float32", "o-"), ("direct-float32", "s-"), ("energy-float64", "o--"),
                       ("direct-float64", "s--")):
        a1.semilogy(layers, eq[key], style, label=key.replace("-", " head, "))
    a1.axhline(EQUIVARIANCE_BOUND, color="r", ls=":", label="thesis bound 1e-6 (float32)")
    a1.set(xlabel="attention layer", ylabel="Δ_EQ (relative)", xticks=layers, title="per-layer equivariance error")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3, which="both")
    for label, d in md.items():
        rows = [x for x in d["rows"] if "oh_max_A" in x]
        a2.plot([WATER_DT_FS * x["step"] for x in rows], [x["oh_max_A"] for x in rows], label=f"{label}: longest O-H")
    a2.axhline(1.5 * md["−∇E"]["oh_equilibrium_A"], color="r", ls=":", label="1.5× equilibrium O-H")
    longest = max(d["max_oh_A"] for d in md.values())
    a2.set(xlabel="time (fs)", ylabel="longest O-H distance (Å)", yscale="log" if longest > 5 else "linear",
           title="water started at rest (NVE)")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3, which="both")
    return [(save(fig, ctx, "se3.png"), "Left: largest per-layer equivariance error over random rotations and three "
             "molecules, float32 and float64, with the thesis's bound. Right: the longest O-H distance of a water "
             "molecule started at rest, driven by the direct-force and by the energy-gradient network.")]
