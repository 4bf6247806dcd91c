"""The active-learning report: ``report.md`` with one row per iteration and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

STAGES = ("train", "deploy", "explore", "select", "label")


def write_report(folder: Path, history: Sequence[dict], deviations: Sequence[np.ndarray], trust: tuple[float, float],
                 stop_reason: str = "") -> Path:
    """``folder/report.md`` and ``learning.png``, ``deviations.png``; returns the report path."""
    _plots(folder, history, deviations, trust)
    lines = ["# Active learning (mlff learn)", "",
             f"Reference: {history[0]['reference'] if history else '?'}; committee of "
             f"{history[0]['committee'] if history else '?'}; trust levels {trust[0]:g}–{trust[1]:g} eV/Å.", ""]
    if stop_reason:
        lines += [f"**Stopped: {stop_reason}.**", ""]
    lines += ["| iteration | training frames | valid force MAE (meV/Å) | explored frames | accurate | candidate | "
              "failed | selected | labelled | label failures | time (s): " + " / ".join(STAGES) + " |",
              "|---" * 11 + "|"]
    for h in history:
        n = max(h["explored"], 1)
        times = " / ".join(f"{h['seconds'].get(s, 0):.0f}" for s in STAGES)
        lines.append(f"| {h['iteration']} | {h['n_train']} | {h['valid_force_mae']:.1f} | {h['explored']} | "
                     f"{100 * h['accurate'] / n:.0f} % | {100 * h['candidate'] / n:.0f} % | {100 * h['failed'] / n:.0f} % | "
                     f"{h['selected']} | {h['labelled']} | {h['label_failures']} | {times} |")
    lines += ["", "![training-set size, validation error and frame classes per iteration](learning.png)", "",
              "![largest atomic force deviation of the explored frames](deviations.png)", ""]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def _plots(folder: Path, history, deviations, trust) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    it = [h["iteration"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    ax.plot(it, [h["n_train"] for h in history], "o-", color="C0")
    ax.set(xlabel="iteration", ylabel="training frames", title="training set")
    ax2 = ax.twinx()
    ax2.plot(it, [h["valid_force_mae"] for h in history], "s--", color="C3")
    ax2.set_ylabel("validation force MAE (meV/Å)", color="C3")
    ax2.set_yscale("log")
    n = np.array([max(h["explored"], 1) for h in history], dtype=float)
    bottom = np.zeros(len(history))
    for key, colour in (("accurate", "C2"), ("candidate", "C1"), ("failed", "C3")):
        frac = np.array([h[key] for h in history]) / n
        axes[1].bar(it, frac, bottom=bottom, color=colour, label=key)
        bottom += frac
    axes[1].set(xlabel="iteration", ylabel="fraction of explored frames", title="frame classes", ylim=(0, 1))
    axes[1].legend()
    bottom = np.zeros(len(history))
    for k, stage in enumerate(STAGES):
        t = np.array([h["seconds"].get(stage, 0.0) for h in history])
        axes[2].bar(it, t, bottom=bottom, color=f"C{k}", label=stage)
        bottom += t
    axes[2].set(xlabel="iteration", ylabel="wall time (s)", title="time per stage")
    axes[2].legend()
    from matplotlib.ticker import MaxNLocator

    for a in axes:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(folder / "learning.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    finite = [d[np.isfinite(d) & (d > 0)] for d in deviations]
    values = np.concatenate(finite) if finite and any(len(d) for d in finite) else np.array([trust[0], trust[1]])
    lo = max(values.min(), 1e-5)
    bins = np.logspace(np.log10(lo), np.log10(max(values.max(), 10 * lo) * 1.01), 40)
    for h, d in zip(history, finite):
        if len(d):
            ax.hist(d, bins=bins, histtype="step", label=f"iteration {h['iteration']}")
    for t, name in zip(trust, ("trust_lo", "trust_hi")):
        ax.axvline(t, color="k", ls="--", lw=1)
        ax.text(t, ax.get_ylim()[1] * 0.95, f" {name}", va="top", fontsize=8)
    ax.set(xscale="log", xlabel="largest atomic force deviation of a frame (eV/Å)", ylabel="frames",
           title="committee deviation of the explored frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "deviations.png", dpi=100)
    plt.close(fig)
