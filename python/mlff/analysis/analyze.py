"""``mlff analyze``: every analysis of one run (and its reference) into ``analysis.json``,
``curves.npz`` and PNG figures.

Which frames: the stability verdict is computed for every seed. Every other analysis uses
all frames up to the first non-finite value (a molecule that breaks apart is part of the
MD the potential drives, and shows in g(r) and the VDOS). Energies, MSD, VACF and VDOS
come from the first seed; g(r) / P(r) is averaged over all seeds' frames (weighted by
their numbers of frames). Bonds are checked for molecules only (in a periodic solid or liquid,
covalent-radius "bonds" between metal neighbours break and form by diffusion): a
periodic run fails only on non-finite values or when LAMMPS stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from . import AnalysisError
from .dynamics import diffusion_coefficient, msd, remove_com, unwrapped_positions, vdos, vdos_difference
from .energy import energy_summary, momentum_and_net_force, thermo_series
from .structure import (BOND_TOLERANCE, bond_lengths, find_bonds, max_rdf_radius, rdf, rdf_difference,
                        stability_verdict)
from .trajectory import Trajectory, load_run, read_ave_time_vector

#: Default largest r of g(r) for periodic systems (Å), reduced to half the cell width.
RDF_R_MAX = 8.0


def _start_structure(trajs: list[Trajectory]):
    """Starting geometry: ``start.extxyz`` of the ``mlff md`` run, else the first frame."""
    from ase import Atoms
    from ase.io import read

    root = trajs[0].meta.get("_root")
    if root and (Path(root) / "start.extxyz").is_file():
        atoms = read(Path(root) / "start.extxyz")
        if atoms.get_chemical_symbols() == trajs[0].symbols:
            return atoms
    t = trajs[0]
    return Atoms(t.symbols, positions=t.positions[0], cell=t.cells[0], pbc=t.pbc)


def _check_reference(ours: Trajectory, ref: Trajectory, run: Path, reference: Path) -> None:
    if ours.periodic != ref.periodic:
        raise AnalysisError(f"reference {reference} is {'periodic' if ref.periodic else 'a molecule'}, but run {run} is "
                            f"{'periodic' if ours.periodic else 'a molecule'}: they cannot be compared")
    if set(ours.symbols) != set(ref.symbols):
        raise AnalysisError(f"reference {reference} has elements {sorted(set(ref.symbols))}, run {run} has "
                            f"{sorted(set(ours.symbols))}")
    if not ours.periodic and Counter(ours.symbols) != Counter(ref.symbols):
        raise AnalysisError(f"reference {reference} is a different molecule ({_formula(ref)}) than run {run} "
                            f"({_formula(ours)})")


def _formula(t: Trajectory) -> str:
    return "".join(f"{s}{n}" for s, n in sorted(Counter(t.symbols).items()))


def _bond_kinds(symbols, pairs) -> tuple[list[str], np.ndarray]:
    names = ["-".join(sorted((symbols[i], symbols[j]))) for i, j in pairs]
    kinds = sorted(set(names))
    return kinds, np.array([kinds.index(n) for n in names], dtype=np.int64)


def first_peak(r: np.ndarray, g: np.ndarray) -> float | None:
    """Position (Å) of the first peak of ``g(r)``: the first local maximum that reaches half
    the highest and stands out by a tenth of it (``scipy.signal.find_peaks``); ``None``
    for an empty curve."""
    from scipy.signal import find_peaks

    top = float(np.max(g)) if len(g) else 0.0
    if top <= 0:
        return None
    peaks, _ = find_peaks(g, height=0.5 * top, prominence=0.1 * top)
    return float(r[peaks[0]]) if len(peaks) else float(r[int(np.argmax(g))])


def _lammps_rdf_check(traj: Trajectory) -> dict | None:
    """freud's g(r) against LAMMPS's compute rdf of the same run (frames after the first,
    which is what fix ave/time averaged), when the run wrote lammps_rdf.dat."""
    root = traj.meta.get("_root")
    if not traj.periodic or traj.run_info is None or not root:
        return None
    path = Path(root) / traj.run_info.get("dir", "") / "lammps_rdf.dat"
    if not path.is_file():
        return None
    rows = read_ave_time_vector(path)["rows"]
    r_l, g_l = rows[:, 1], rows[:, 2]
    width = r_l[1] - r_l[0]
    r_cut = r_l[-1] + 0.5 * width
    if r_cut > max_rdf_radius(traj.cells) or traj.n_frames < 2:
        return {"file": str(path), "note": f"LAMMPS's cutoff {r_cut:.3f} Å exceeds half the cell width; not compared",
                "r": r_l, "g": g_l}
    ours = rdf(traj, r_max=r_cut, bins=len(r_l), frames=slice(1, None))
    diff = np.abs(ours["g"] - g_l)
    return {"file": str(path), "max_abs_difference": float(diff.max()),
            "integrated_abs_difference_A": float(np.trapezoid(diff, r_l)), "r": r_l, "g": g_l}


def _lammps_msd_vacf_check(traj: Trajectory) -> dict | None:
    """Our unwrapping, centre-of-mass removal and velocities against LAMMPS's compute msd
    (``com yes``, one time origin: freud.msd.MSD in ``direct`` mode) and compute vacf (one
    origin, not mass-weighted) of the same run, when it wrote lammps_msd_vacf.dat."""
    import freud

    root, info = traj.meta.get("_root"), traj.run_info
    timestep = traj.meta.get("timestep_fs")
    if not root or info is None or not timestep or traj.velocities is None:
        return None
    path = Path(root) / info.get("dir", "") / "lammps_msd_vacf.dat"
    if not path.is_file():
        return None
    rows = np.loadtxt(path, comments="#", ndmin=2)
    by_step = {int(r[0]): r[1:] for r in rows}
    steps = np.rint(traj.time_ps * 1000.0 / timestep).astype(int)
    keep = np.array([s in by_step for s in steps])
    if keep.sum() < 2 or not keep[0]:
        return None
    lmp = np.array([by_step[s] for s in steps[keep]])
    x = remove_com(unwrapped_positions(traj), traj.masses)[keep]
    ours_msd = np.asarray(freud.msd.MSD(mode="direct").compute(x).msd, dtype=np.float64)
    v = traj.velocities[keep]
    ours_vacf = np.einsum("fni,ni->f", v, v[0]) / traj.n_atoms
    return {"file": str(path), "frames": int(keep.sum()),
            "msd_max_relative_difference": float(np.max(np.abs(ours_msd - lmp[:, 0])) / max(np.max(lmp[:, 0]), 1e-12)),
            "vacf_max_relative_difference": float(np.max(np.abs(ours_vacf - lmp[:, 1])) / max(abs(lmp[0, 1]), 1e-12))}


def _finite_frames(t: Trajectory) -> int:
    """Number of leading frames whose positions, velocities, forces and energies are all finite."""
    ok = np.ones(t.n_frames, dtype=bool)
    for arr in (t.positions, t.velocities, t.forces, t.energies):
        if arr is not None:
            ok &= np.isfinite(arr.reshape(t.n_frames, -1)).all(axis=1)
    return t.n_frames if ok.all() else int(np.argmin(ok))


def evaluate(run: Path, trajs: list[Trajectory], *, rdf_r_max: float | None, rdf_bins: int, vdos_max_lag_ps: float,
             msd_window: tuple[float, float], bond_tolerance: float) -> tuple[dict, dict, list[Trajectory]]:
    """All analyses of one run's trajectories: ``(summary, curves, truncated trajectories)``."""
    start = _start_structure(trajs)
    first = trajs[0]
    first.require("velocities", "the temperature, the VACF and the VDOS")
    if not first.periodic:
        pairs, d0 = find_bonds(start)
    else:
        pairs, d0 = np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    seeds, kept = [], []
    for t in trajs:
        v = stability_verdict(t, pairs, d0, bond_tolerance)
        kept.append(t.slice(max(2, _finite_frames(t))))
        seeds.append({"seed": (t.run_info or {}).get("seed"), "stable": v["stable"],
                      "time_to_failure_ps": v["time_to_failure_ps"], "reason": v["reason"],
                      "duration_ps": float(t.time_ps[-1] - t.time_ps[0]), "frames": t.n_frames,
                      "max_bond_deviation_A": float(np.nanmax(v["max_bond_deviation_A"])) if len(pairs) else None,
                      "_deviation": v["max_bond_deviation_A"], "_time": t.time_ps - t.time_ps[0]})
    main = kept[0]
    meta = first.meta or {}
    summary = {
        "run": str(run), "label": first.label, "protocol": meta.get("protocol"), "ensemble": first.ensemble,
        "parameters": meta.get("parameters"), "potential": meta.get("potential"), "n_atoms": first.n_atoms,
        "formula": _formula(first), "periodic": first.periodic, "seeds": len(trajs), "frames": main.n_frames,
    }
    failures = [s["time_to_failure_ps"] for s in seeds if not s["stable"]]
    summary["stability"] = {
        "criterion": (f"bond (covalent radii, starting geometry) deviating by more than {bond_tolerance} Å, non-finite "
                      "values, or the MD stopping early" if len(pairs) else
                      "non-finite values or the MD stopping early (bonds not checked in periodic systems)"),
        "n_bonds": int(len(pairs)), "n_stable": sum(s["stable"] for s in seeds), "n_seeds": len(seeds),
        "per_seed": [{k: v for k, v in s.items() if not k.startswith("_")} for s in seeds],
        "mean_time_to_failure_ps": float(np.mean(failures)) if failures else None,
        "min_time_to_failure_ps": float(np.min(failures)) if failures else None,
    }
    curves: dict = {"n_atoms": first.n_atoms}
    summary["energy"] = energy_summary(main)
    th = thermo_series(main)
    curves.update(time_ps=th["time_ps"], temp_K=th["temp_K"], ke_eV=th["ke_eV"])
    if th["pe_eV"] is not None:
        curves.update(pe_eV=th["pe_eV"], etotal_eV=th["etotal_eV"])
        if summary["energy"].get("drift_meV_per_atom_per_ps") is not None and first.ensemble in (None, "nve"):
            curves["drift"] = summary["energy"]["drift_meV_per_atom_per_ps"]
    mf = momentum_and_net_force(main)
    curves["frame_time_ps"] = main.time_ps
    if mf["momentum"] is not None:
        curves["momentum"] = mf["momentum"]
    if mf["net_force"] is not None:
        curves["net_force"] = mf["net_force"]
    # g(r) / P(r), averaged over seeds
    if first.periodic and rdf_r_max is None:
        rdf_r_max = min(RDF_R_MAX, min(max_rdf_radius(t.cells) for t in kept))
    parts = [rdf(t, r_max=rdf_r_max, bins=rdf_bins) for t in kept]
    weights = np.array([p["frames"] for p in parts], dtype=np.float64)
    g = np.average(np.array([p["g"] for p in parts]), axis=0, weights=weights)
    curves.update(rdf_r=parts[0]["r"], rdf_g=g, rdf_kind=parts[0]["kind"])
    summary["rdf"] = {"kind": parts[0]["kind"], "r_max_A": parts[0]["r_max"], "bins": rdf_bins,
                      "frames": int(weights.sum()), "first_peak_A": first_peak(parts[0]["r"], g),
                      "highest_peak_A": float(parts[0]["r"][np.argmax(g)])}
    check = _lammps_rdf_check(main)
    if check is not None:
        curves.update(lammps_rdf_r=check.pop("r"), lammps_rdf_g=check.pop("g"))
        summary["rdf"]["lammps_compute_rdf"] = check
    # MSD and diffusion
    m = msd(main)
    curves.update(msd_t=m["t_ps"], msd=m["msd_A2"])
    summary["msd"] = {"final_msd_A2": float(m["msd_A2"][-1])}
    check = _lammps_msd_vacf_check(main)
    if check is not None:
        summary["msd"]["lammps_compute_msd_vacf"] = check
    if first.periodic:
        try:
            d = diffusion_coefficient(m["t_ps"], m["msd_A2"], msd_window)
            summary["msd"].update(d)
            curves.update(D=d["D_A2_per_ps"], D_fit=np.array(d["fit_ps"]))
        except AnalysisError as exc:
            summary["msd"]["D_A2_per_ps"] = None
            summary["msd"]["note"] = str(exc)
    else:
        summary["msd"]["D_A2_per_ps"] = None
        summary["msd"]["note"] = "one molecule: internal motion only (centre of mass removed), no diffusion coefficient"
    # VACF / VDOS
    s = vdos(main, vdos_max_lag_ps)
    curves.update(vacf_t=s["vacf_t_ps"], vacf=s["vacf"], vdos_nu=s["wavenumber_cm1"], vdos=s["dos"])
    summary["vdos"] = {"peak_cm1": s["peak_cm1"], "nyquist_cm1": s["nyquist_cm1"],
                       "resolution_cm1": s["resolution_cm1"], "max_lag_ps": float(s["vacf_t_ps"][-1])}
    # bonds
    if len(pairs):
        kinds, index = _bond_kinds(first.symbols, pairs)
        lengths = bond_lengths(main.positions, pairs, main.cells, main.pbc)
        curves.update(bond_kinds=np.array(kinds), bond_kind_index=index, bond_lengths=lengths)
        summary["bonds"] = {kind: {"mean_A": float(np.nanmean(lengths[:, index == k])),
                                   "std_A": float(np.nanstd(lengths[:, index == k])),
                                   "start_mean_A": float(np.mean(d0[index == k]))} for k, kind in enumerate(kinds)}
        longest = max(len(s["_time"]) for s in seeds)
        dev_t, dev = np.full((len(seeds), longest), np.nan), np.full((len(seeds), longest), np.nan)
        for k, sd in enumerate(seeds):
            dev_t[k, :len(sd["_time"])], dev[k, :len(sd["_time"])] = sd["_time"], sd["_deviation"]
        curves.update(deviation_t=dev_t, deviation=dev)
    return summary, curves, kept


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def default_output(run: Path) -> Path:
    """``RUN/analysis`` for a run directory, ``DIR/analysis_STEM`` for a file."""
    run = Path(run)
    return run / "analysis" if run.is_dir() else run.parent / f"analysis_{run.stem}"


def analyze(run: str | Path, reference: str | Path | None = None, out: str | Path | None = None, *,
            label: str | None = None, reference_label: str | None = None, timestep_fs: float | None = None,
            frame_interval_ps: float | None = None, rdf_bins: int = 200, rdf_r_max: float | None = None,
            vdos_max_lag_ps: float = 2.0, msd_window: tuple[float, float] = (0.1, 0.5),
            bond_tolerance: float = BOND_TOLERANCE, plots: bool = True) -> dict:
    """Analyse ``run`` (see :func:`~.trajectory.load_run`), optionally against ``reference``,
    into ``out`` (default :func:`default_output`): ``analysis.json``, ``curves.npz`` (every
    plotted curve, for ``mlff report``) and the PNG figures. Returns the analysis dict.

    The reference is analysed the same way, on the same g(r) grid and VACF length; the run's
    entries ``rdf.error_vs_reference`` (∫|g - g_ref| dr), ``msd.D_reference_A2_per_ps`` and
    ``vdos.difference_vs_reference`` compare them. Raises :class:`AnalysisError` naming the
    file when an input lacks what an analysis needs or the reference is a different system.
    """
    from . import plots as P

    run = Path(run)
    trajs = load_run(run, timestep_fs, frame_interval_ps, label)
    kw = dict(rdf_bins=rdf_bins, vdos_max_lag_ps=vdos_max_lag_ps, msd_window=msd_window, bond_tolerance=bond_tolerance)
    ref_trajs = None
    if reference is not None:
        reference = Path(reference)
        ref_trajs = load_run(reference, timestep_fs, frame_interval_ps, reference_label)
        _check_reference(trajs[0], ref_trajs[0], run, reference)
        if ref_trajs[0].label == trajs[0].label:
            for t in ref_trajs:
                t.label += " (reference)"
        if trajs[0].periodic and rdf_r_max is None:
            rdf_r_max = min(RDF_R_MAX, min(max_rdf_radius(t.cells) for t in trajs + ref_trajs))
    summary, curves, _ = evaluate(run, trajs, rdf_r_max=rdf_r_max, **kw)
    result = {"analysis": summary}
    runs = [(summary["label"], curves)]
    ref_label = None
    if ref_trajs is not None:
        ref_summary, ref_curves, _ = evaluate(reference, ref_trajs, rdf_r_max=summary["rdf"]["r_max_A"], **kw)
        ref_label = ref_summary["label"]
        err = rdf_difference(curves["rdf_r"], curves["rdf_g"], ref_curves["rdf_g"])
        summary["rdf"]["error_vs_reference"] = err
        summary["rdf"]["error_unit"] = "Å" if summary["rdf"]["kind"] == "g(r)" else "dimensionless (0 to 2)"
        curves["rdf_error"] = err
        summary["msd"]["D_reference_A2_per_ps"] = ref_summary["msd"].get("D_A2_per_ps")
        d, d_ref = summary["msd"].get("D_A2_per_ps"), ref_summary["msd"].get("D_A2_per_ps")
        summary["msd"]["D_ratio_to_reference"] = d / d_ref if d is not None and d_ref else None
        ours = {"wavenumber_cm1": curves["vdos_nu"], "dos": curves["vdos"]}
        theirs = {"wavenumber_cm1": ref_curves["vdos_nu"], "dos": ref_curves["vdos"]}
        summary["vdos"]["difference_vs_reference"] = vdos_difference(ours, theirs)
        summary["vdos"]["reference_peak_cm1"] = ref_summary["vdos"]["peak_cm1"]
        curves["vdos_error"] = summary["vdos"]["difference_vs_reference"]
        result["reference"] = ref_summary
        runs.append((ref_label, ref_curves))
    out = Path(out) if out is not None else default_output(run)
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    if plots:
        figures = [P.energy_plot(runs, out / "energy.png", ref_label),
                   P.temperature_plot(runs, out / "temperature.png", ref_label),
                   P.momentum_force_plot(runs, out / "momentum_force.png", ref_label),
                   P.rdf_plot(runs, out / "rdf.png", ref_label),
                   P.msd_plot(runs, out / "msd.png", ref_label),
                   P.vacf_vdos_plot(runs, out / "vacf_vdos.png", ref_label)]
        if any("bond_kinds" in c for _, c in runs):
            figures.append(P.bonds_plot([r for r in runs if "bond_kinds" in r[1]], out / "bonds.png", ref_label,
                                        bond_tolerance))
    result["figures"] = [f.name for f in figures]
    arrays = {f"run_{k}": v for k, v in curves.items()}
    if ref_trajs is not None:
        arrays.update({f"ref_{k}": v for k, v in runs[1][1].items()})
    np.savez_compressed(out / "curves.npz", **{k: np.asarray(v) for k, v in arrays.items()},
                        labels=np.array([r[0] for r in runs]))
    (out / "analysis.json").write_text(json.dumps(_jsonable(result), indent=2, ensure_ascii=False))
    result["out"] = str(out)
    return result
