"""One module per experiment (file name = experiment id). Each defines ``TITLE``,
``FINDING`` (the paper's qualitative finding, one line), ``COST_MINUTES`` (estimated CPU
minutes of the full run on one core), optionally ``REQUIRES`` (what else it needs), the
paper's numbers as constants with their table or figure, its data protocol (``DATA``) and
``run(ctx) -> common.Report``."""

from __future__ import annotations

import importlib
from types import ModuleType

#: In the priority order of issue 19.
EXPERIMENTS = [
    "004_cu_emt",
    "004_si_sw",
    "004_learning_curve",
    "003_au6",
    "000_dfp_vs_energy",
    "000_cost",
    "001_schnet_forces",
    "001_c20",
    "002_se3",
]


def load(experiment: str) -> ModuleType:
    """The module of ``experiment`` (its file name is the id, e.g. ``003_au6.py``)."""
    if experiment not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}")
    return importlib.import_module(f"{__name__}.{experiment}")
