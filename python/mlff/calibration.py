"""How well a committee's predicted force deviation tracks the true force error.

Per atom of a labelled hold-out set: the committee's force deviation ``σ_F,i``
(:mod:`mlff.committee`, eV/Å) against the true error ``|F_i − F_i^ref|`` (eV/Å). Reported:
the Spearman rank correlation (does a larger deviation mean a larger error?) and, in
bins of equal atom counts along the deviation, the mean and RMS true error (is the
deviation of the right size? for a calibrated Gaussian committee the RMS error equals
the deviation). Users choose ``trust_lo``/``trust_hi`` of ``mlff learn`` from this
(DP-GEN's practice: Zhang et al., Comput. Phys. Commun. 253, 107206 (2020), Fig. 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def calibrate(deviation: np.ndarray, error: np.ndarray, n_bins: int = 10) -> dict:
    """``deviation``, ``error``: ``[n_atoms]`` eV/Å. Returns ``spearman`` and ``bins`` (each
    ``deviation_lo``, ``deviation_hi``, ``mean_deviation``, ``mean_error``, ``rms_error``, ``n``)."""
    from scipy.stats import spearmanr

    order = np.argsort(deviation)
    bins = []
    for part in np.array_split(order, min(n_bins, len(order))):
        if len(part) == 0:
            continue
        d, e = deviation[part], error[part]
        bins.append({"deviation_lo": float(d.min()), "deviation_hi": float(d.max()), "mean_deviation": float(d.mean()),
                     "mean_error": float(e.mean()), "rms_error": float(np.sqrt((e**2).mean())), "n": int(len(part))})
    rho = spearmanr(deviation, error).statistic if len(deviation) > 2 else float("nan")
    return {"spearman": float(rho), "n_atoms": int(len(deviation)), "bins": bins}


def plot_calibration(result: dict, deviation: np.ndarray, error: np.ndarray, path: str | Path, title: str = "") -> None:
    """Scatter of per-atom error vs deviation (log-log), binned means, and the line error = deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    keep = (deviation > 0) & (error > 0)
    ax.scatter(deviation[keep], error[keep], s=3, alpha=0.25, color="0.5", label="atoms")
    b = result["bins"]
    ax.plot([x["mean_deviation"] for x in b], [x["rms_error"] for x in b], "o-", color="C3", label="RMS error per bin")
    ax.plot([x["mean_deviation"] for x in b], [x["mean_error"] for x in b], "s--", color="C0", label="mean error per bin")
    lo = max(min(deviation[keep].min(), error[keep].min()), 1e-5) if keep.any() else 1e-3
    hi = max(deviation.max(), error.max(), 10 * lo)
    ax.plot([lo, hi], [lo, hi], "k:", label="error = deviation")
    ax.set(xscale="log", yscale="log", xlabel="committee force deviation σ_F (eV/Å)",
           ylabel="true force error |F − F_ref| (eV/Å)",
           title=(title + "\n" if title else "") + f"Spearman ρ = {result['spearman']:.3f}, {result['n_atoms']} atoms")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
