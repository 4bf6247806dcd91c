"""``mlff report``: several analysed runs side by side in one Markdown file with figures.

Each argument is a run directory of ``mlff md`` (its ``analysis/`` is used, and made by
:func:`~.analyze.analyze` without a reference if missing), an ``mlff analyze`` output
directory, or its ``analysis.json``. The report has one table row per run (and per
reference, once), and overlays of energy, temperature, g(r), MSD and VDOS from the runs'
``curves.npz``, grouped by system (formula, periodicity and temperature) so that only
comparable curves share a figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import AnalysisError
from .analyze import analyze, default_output


def _locate(path: Path) -> Path:
    """The analysis directory of ``path`` (made if ``path`` is an unanalysed run)."""
    path = Path(path)
    if path.is_file() and path.name == "analysis.json":
        return path.parent
    if path.is_dir() and (path / "analysis.json").is_file():
        return path
    if path.is_dir() and (path / "analysis" / "analysis.json").is_file():
        return path / "analysis"
    if path.is_dir() and (path / "summary.json").is_file():
        analyze(path)
        return default_output(path)
    raise AnalysisError(f"{path} is not an mlff md run, an analysis directory or an analysis.json")


def _fmt(x, spec=".3g", none="—") -> str:
    return none if x is None else format(x, spec)


def _row(a: dict, name: str, is_reference: bool = False) -> list[str]:
    e, st, m, r, v = a.get("energy", {}), a.get("stability", {}), a.get("msd", {}), a.get("rdf", {}), a.get("vdos", {})
    params = a.get("parameters") or {}
    drift = e.get("drift_meV_per_atom_per_ps")
    drift_text = _fmt(drift, "+.3g") if drift is not None else "n/a (no energy)"
    if drift is not None and e.get("drift_is_conservation_test") is False:
        drift_text += " (thermostatted)"
    fails = [s["time_to_failure_ps"] for s in st.get("per_seed", []) if not s["stable"]]
    if st.get("n_seeds"):
        stab = f"{st['n_stable']}/{st['n_seeds']} stable"
        if fails:
            stab += "; failed at " + ", ".join(f"{t:.3g}" for t in sorted(fails)) + " ps"
        longest = max(s["duration_ps"] for s in st["per_seed"])
        stab += f" (of {longest:.3g} ps)"
    else:
        stab = "—"
    d = m.get("D_A2_per_ps")
    d_text = _fmt(d)
    if m.get("D_reference_A2_per_ps") is not None:
        d_text += f" vs {_fmt(m['D_reference_A2_per_ps'])}"
    return [name + (" *(reference)*" if is_reference else ""), str(a.get("protocol") or "—"),
            _fmt(params.get("temperature"), "g"), drift_text, _fmt(e.get("rms_fluctuation_meV_per_atom")),
            _fmt(e.get("temperature_drift_K_per_ps"), "+.3g"), _fmt(e.get("temperature_mean_K"), ".0f"), stab,
            _fmt(r.get("error_vs_reference")) if not is_reference else "—", d_text if not is_reference else _fmt(d),
            _fmt(v.get("peak_cm1"), ".0f")]


HEADER = ["run", "protocol", "T (K)", "drift (meV/atom/ps)", "E fluct. (meV/atom)", "T drift (K/ps)", "mean T (K)",
          "stability", "RDF error vs ref.", "D (Å²/ps) [vs ref.]", "VDOS peak (cm⁻¹)"]


def write_report(runs: list[str | Path], output: str | Path, title: str = "MD quality report",
                 labels: list[str] | None = None) -> Path:
    """Write the Markdown report ``output`` and its figures (in ``output``'s folder, named
    ``STEM_*.png``); returns the path. Raises :class:`AnalysisError` for a path that is not
    a run or analysis."""
    from . import plots as P

    if not runs:
        raise AnalysisError("mlff report needs at least one run")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, run in enumerate(runs):
        d = _locate(Path(run))
        data = json.loads((d / "analysis.json").read_text())
        curves = np.load(d / "curves.npz", allow_pickle=False)
        name = labels[k] if labels and k < len(labels) else data["analysis"]["label"]
        entries.append((d, name, data, curves))
    lines = [f"# {title}", "", "Columns: energy drift = slope of a line fitted to the total energy; E fluct. = RMS "
             "about that line; stability = seeds without a broken bond (> 0.5 Å from the start), non-finite value "
             "or early stop; RDF error = ∫|g − g_ref| dr (Å; for molecules ∫|P − P_ref| dr, 0–2); D from the MSD's "
             "linear regime.", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    seen_refs = set()
    for d, name, data, _ in entries:
        lines.append("| " + " | ".join(_row(data["analysis"], name)) + " |")
        ref = data.get("reference")
        if ref is not None and ref["run"] not in seen_refs:
            seen_refs.add(ref["run"])
            lines.append("| " + " | ".join(_row(ref, ref["label"], True)) + " |")
    lines.append("")
    groups: dict = {}
    for d, name, data, curves in entries:
        a = data["analysis"]
        temperature = (a.get("parameters") or {}).get("temperature")
        groups.setdefault((a["formula"], a["periodic"], temperature), []).append((d, name, data, curves))
    for (formula, periodic, temperature), members in groups.items():
        t_text = f", {temperature:g} K" if temperature is not None else ""
        lines += [f"## {formula} ({'periodic' if periodic else 'molecule'}){t_text}", ""]
        series, refs, ref_label = [], set(), None
        for d, name, data, curves in members:
            series.append((name, {k[4:]: curves[k] for k in curves.files if k.startswith("run_")}))
            ref = data.get("reference")
            if ref is not None and ref["run"] not in refs:
                refs.add(ref["run"])
                ref_label = ref["label"]
                series.append((ref_label, {k[4:]: curves[k] for k in curves.files if k.startswith("ref_")}))
        stem = f"{output.stem}_{formula}{'_periodic' if periodic else ''}" + (f"_{temperature:g}K" if temperature else "")
        figures = [P.energy_plot(series, output.parent / f"{stem}_energy.png", ref_label),
                   P.temperature_plot(series, output.parent / f"{stem}_temperature.png", ref_label),
                   P.rdf_plot(series, output.parent / f"{stem}_rdf.png", ref_label, lammps=False),
                   P.msd_plot(series, output.parent / f"{stem}_msd.png", ref_label),
                   P.vacf_vdos_plot(series, output.parent / f"{stem}_vdos.png", ref_label)]
        bonded = [s for s in series if "bond_kinds" in s[1]]
        if bonded:
            figures.append(P.bonds_plot(bonded, output.parent / f"{stem}_bonds.png", ref_label))
        for f in figures:
            lines += [f"![{f.stem}]({f.name})", ""]
        lines += ["Per-run analyses: " + ", ".join(f"[{name}]({Path(_rel(d, output.parent)) / 'analysis.json'})"
                                                     for d, name, _, _ in members), ""]
    output.write_text("\n".join(lines))
    return output


def _rel(path: Path, base: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
