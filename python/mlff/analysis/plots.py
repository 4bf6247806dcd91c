"""Figures of ``mlff analyze`` and ``mlff report`` (matplotlib, Agg backend).

Every function takes the curves of one or more labelled runs (``[(label, curves), ...]``,
``curves`` as written to ``curves.npz`` by :mod:`.analyze`), writes one PNG and returns
its path. The reference run, if any, is drawn in black, dashed; axes carry units; the
legend names every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(k: int, label: str, reference_label: str | None) -> dict:
    if reference_label is not None and label == reference_label:
        return dict(REFERENCE_STYLE)
    return {"color": f"C{k}", "linewidth": 1.2}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def energy_plot(runs, path: Path, reference_label: str | None = None) -> Path:
    """Total, potential and kinetic energy per atom vs time, each relative to its first
    value (meV/atom), one panel each; the total-energy legend gives the fitted drift."""
    plt = _plt()
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    names = [("etotal_eV", "total energy"), ("pe_eV", "potential energy"), ("ke_eV", "kinetic energy")]
    for k, (label, c) in enumerate(runs):
        n = float(c["n_atoms"])
        for ax, (key, _) in zip(axes, names):
            if key not in c or c[key].size == 0:
                continue
            y = (c[key] - c[key][0]) / n * 1e3
            text = label
            if key == "etotal_eV" and "drift" in c:
                text += f" (drift {float(c['drift']):+.3g} meV/atom/ps)"
            ax.plot(c["time_ps"], y, label=text, **_style(k, label, reference_label))
    for ax, (key, name) in zip(axes, names):
        ax.set_ylabel(f"Δ {name}\n(meV/atom)")
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=8)
        elif key != "ke_eV":
            ax.text(0.5, 0.5, "no potential energy (direct-force model)", transform=ax.transAxes, ha="center")
    axes[-1].set_xlabel("time (ps)")
    axes[0].set_title("Energies relative to the first frame")
    return _save(fig, path)


def temperature_plot(runs, path: Path, reference_label: str | None = None) -> Path:
    """Kinetic temperature (K) vs time (ps)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, (label, c) in enumerate(runs):
        ax.plot(c["time_ps"], c["temp_K"], label=label, **_style(k, label, reference_label))
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.legend(fontsize=8)
    ax.set_title("Kinetic temperature (3N - 3 degrees of freedom)")
    return _save(fig, path)


def momentum_force_plot(runs, path: Path, reference_label: str | None = None) -> Path:
    """Centre-of-mass momentum |Σ m v| (amu·Å/ps) and net force |Σ F| (eV/Å) per frame,
    log scale (zeros drawn at 1e-16)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for k, (label, c) in enumerate(runs):
        st = _style(k, label, reference_label)
        if "momentum" in c and c["momentum"].size:
            axes[0].semilogy(c["frame_time_ps"], np.maximum(c["momentum"], 1e-16), label=label, **st)
        if "net_force" in c and c["net_force"].size:
            axes[1].semilogy(c["frame_time_ps"], np.maximum(c["net_force"], 1e-16), label=label, **st)
    axes[0].set_ylabel("|centre-of-mass momentum|\n(amu Å/ps)")
    axes[1].set_ylabel("|net force| (eV/Å)")
    axes[1].set_xlabel("time (ps)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_title("Conservation: an energy model keeps both at round-off")
    return _save(fig, path)


def rdf_plot(runs, path: Path, reference_label: str | None = None, lammps: bool = True) -> Path:
    """g(r) (periodic) or the intramolecular pair-distance distribution P(r) (1/Å) vs r (Å);
    legend entries carry the integrated absolute difference to the reference; ``lammps``:
    also LAMMPS's own compute rdf of the run, where it wrote one (dotted)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    kind = "g(r)"
    for k, (label, c) in enumerate(runs):
        kind = str(c["rdf_kind"])
        text = label
        if "rdf_error" in c:
            text += f" (∫|Δ| = {float(c['rdf_error']):.3g}{' Å' if kind == 'g(r)' else ''})"
        ax.plot(c["rdf_r"], c["rdf_g"], label=text, **_style(k, label, reference_label))
        if lammps and "lammps_rdf_g" in c and c["lammps_rdf_g"].size:
            ax.plot(c["lammps_rdf_r"], c["lammps_rdf_g"], ":", color=f"C{k}", label=f"{label}: LAMMPS compute rdf")
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r)" if kind == "g(r)" else "P(r) (1/Å)")
    ax.set_title("Radial distribution function (minimum image)" if kind == "g(r)"
                 else "Intramolecular pair-distance distribution (all pairs, ∫P dr = 1)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def msd_plot(runs, path: Path, reference_label: str | None = None) -> Path:
    """MSD (Å²) vs lag time (ps), with the fitted Einstein line and D (Å²/ps) in the legend."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (label, c) in enumerate(runs):
        st = _style(k, label, reference_label)
        text = label
        if "D" in c and np.isfinite(float(c["D"])):
            text += f" (D = {float(c['D']):.3g} Å²/ps)"
        ax.plot(c["msd_t"], c["msd"], label=text, **st)
        if "D" in c and np.isfinite(float(c["D"])):
            t0, t1 = c["D_fit"]
            tt = np.linspace(t0, t1, 20)
            sel = (c["msd_t"] >= t0) & (c["msd_t"] <= t1)
            offset = np.mean(c["msd"][sel] - 6 * float(c["D"]) * c["msd_t"][sel])
            ax.plot(tt, offset + 6 * float(c["D"]) * tt, color=st["color"], linewidth=3, alpha=0.3)
    ax.set_xlabel("lag time (ps)")
    ax.set_ylabel("MSD (Å²)")
    ax.set_title("Mean squared displacement\n(unwrapped, centre of mass removed; thick line: fit of MSD = 6Dt)",
                 fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def vacf_vdos_plot(runs, path: Path, reference_label: str | None = None) -> Path:
    """Normalised mass-weighted VACF vs lag (ps) and VDOS (normalised, cm) vs wavenumber (cm⁻¹)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 1, figsize=(7, 6.5))
    for k, (label, c) in enumerate(runs):
        st = _style(k, label, reference_label)
        axes[0].plot(c["vacf_t"], c["vacf"], label=label, **st)
        text = label
        if "vdos_error" in c:
            text += f" (∫|Δ| = {float(c['vdos_error']):.3g})"
        axes[1].plot(c["vdos_nu"], c["vdos"], label=text, **st)
    axes[0].set_xlabel("lag time (ps)")
    axes[0].set_ylabel("C(t) / C(0)")
    axes[0].set_title("Velocity autocorrelation (mass-weighted)")
    axes[0].axhline(0, color="grey", linewidth=0.5)
    axes[1].set_xlabel("wavenumber (cm⁻¹)")
    axes[1].set_ylabel("VDOS (cm, unit area)")
    axes[1].set_title("Vibrational density of states")
    top = max(float(c["vdos_nu"][np.flatnonzero(c["vdos"] > 1e-3 * c["vdos"].max())[-1]]) for _, c in runs)
    axes[1].set_xlim(0, min(top * 1.1, max(float(c["vdos_nu"][-1]) for _, c in runs)))
    for ax in axes:
        ax.legend(fontsize=8)
    return _save(fig, path)


def bonds_plot(runs, path: Path, reference_label: str | None = None, tolerance: float = 0.5) -> Path:
    """Bond-length distributions by element pair (Å), and the largest bond deviation (Å)
    vs time for every seed, with the failure threshold."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, (label, c) in enumerate(runs):
        st = _style(k, label, reference_label)
        kinds = [str(x) for x in c["bond_kinds"]]
        for m, kind in enumerate(kinds):
            lengths = c["bond_lengths"][:, c["bond_kind_index"] == m].ravel()
            lengths = lengths[np.isfinite(lengths)]
            if lengths.size == 0:
                continue
            hist, edges = np.histogram(lengths, bins=60, density=True)
            style = {"color": st["color"], "linewidth": 2.0 if label == reference_label else 1.2,
                     "alpha": 0.6 if label == reference_label else 1.0, "linestyle": ["-", ":", "-.", "--"][m % 4]}
            axes[0].plot(0.5 * (edges[1:] + edges[:-1]), hist, label=f"{label}: {kind}", **style)
        for s in range(c["deviation"].shape[0]):
            t, d = c["deviation_t"][s], c["deviation"][s]
            keep = np.isfinite(t)
            axes[1].plot(t[keep], d[keep], label=label if s == 0 else None, alpha=0.8, **st)
    axes[0].set_xlabel("bond length (Å)")
    axes[0].set_ylabel("probability density (1/Å)")
    axes[0].set_title("Bond lengths (bonds of the starting geometry)")
    axes[0].legend(fontsize=7)
    axes[1].axhline(tolerance, color="0.3", linestyle=":", linewidth=1.5, label=f"failure threshold {tolerance} Å")
    axes[1].set_xlabel("time (ps)")
    axes[1].set_ylabel("largest |bond length - start| (Å)")
    axes[1].set_title("Stability: every seed")
    axes[1].legend(fontsize=7)
    return _save(fig, path)
