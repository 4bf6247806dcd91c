"""Per-model default training settings: the one table that ``mlff train`` (through
:class:`~mlff.train.config.TrainConfig`) and ``benchmarks/accuracy/run.py`` both read.

A value the user gives (flag, YAML, ``TrainConfig(...)`` argument) always wins; an option
left unset (``None``) takes the model's entry here, then :data:`COMMON`. Model
hyperparameters (``model_params``) are merged the same way, key by key, under those the
user gives. ``docs/models.md`` ("Default training settings") lists the table; the values
are the ones the accuracy benchmark trains with (``docs/accuracy.md``), chosen from the
peers' settings (``shared/baselines.md``) and the models' sources, not tuned on a hold-out.
"""

from __future__ import annotations

import copy
from typing import Any

# Shared by every model unless its entry says otherwise.
COMMON: dict[str, Any] = {
    "dtype": "float32",            # about 1.7x the epochs of float64 on one CPU thread
    "batch_size": 5,               # global: structures per optimizer step, all processes together
    "lr": 1e-3,                    # Adam
    "energy_weight": 1.0,          # ρ of the loss ρ·mean((ΔE/N)²) + mean(ΔF²)
    "ema_decay": 0.99,
    "lr_factor": 0.5,              # ReduceLROnPlateau on the validation force MAE
    "lr_patience": 15,
    "min_lr": 1e-6,
    "early_stopping_patience": 60,
}

# Per model kind: options that differ from COMMON, and the model hyperparameters.
MODELS: dict[str, dict[str, Any]] = {
    # SchNet, the SchNetPack baseline's size.
    "schnet": {"model_params": {"n_features": 64, "n_interactions": 3, "n_rbf": 20}},
    # DTNN, the model's own defaults: 30 features, 60 factors, 3 passes of the shared interaction.
    "dtnn": {"model_params": {"n_features": 30, "n_factors": 60, "n_interactions": 3, "n_hidden": 15}},
    # Behler–Parrinello: the thesis's search-default descriptor, 10-10 tanh networks (the
    # accuracy benchmark widens them to 50-50 for toluene: see its ROW_PARAMS).
    "bp": {"model_params": {"symmetry_functions": "Gs-6-10-1-G4"}},
    # Coupled many-body expansion, the seed's sizes.
    "mbe": {"model_params": {"n_pair_features": 20, "n_triplet_features": 10, "n_hidden": 50}},
    # NequIP, the nequip baseline's size (32 channels, l_max 1, 3 layers), trained with 5e-3:
    # 1e-3 left it at 21.5 meV/Å on the toluene hold-out after 25 CPU-min (issue 22).
    "nequip": {"lr": 5e-3, "model_params": {"n_features": 32, "l_max": 1, "n_interactions": 3, "n_basis": 8,
                                             "radial_hidden": 64, "radial_layers": 2}},
    # TFN with direct force prediction, the thesis's 1,000-frame network.
    "tfn_dfp": {"model_params": {"n_features": 30, "l_max": 1, "n_layers": 4, "n_basis": 15}},
    # SE(3)-Transformer, the thesis's basic model (energy head).
    "se3_transformer": {"model_params": {"n_features": 8, "l_max": 2, "n_layers": 3, "n_heads": 8,
                                         "head_features": 2}},
}

# The TrainConfig options this table decides when the user leaves them unset.
TUNED = tuple(COMMON)


def training_defaults(model: str) -> dict[str, Any]:
    """The default value of every option in :data:`TUNED` for ``model`` (COMMON, then the
    model's entry), without ``model_params``; a model without an entry gets COMMON."""
    entry = MODELS.get(model, {})
    return {name: copy.deepcopy(entry.get(name, COMMON[name])) for name in TUNED}


def model_params(model: str) -> dict[str, Any]:
    """The default model hyperparameters of ``model`` (a copy; ``{}`` without an entry)."""
    return copy.deepcopy(MODELS.get(model, {}).get("model_params", {}))


def table_rows() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(model, training defaults, model hyperparameters)`` for every model (docs, ``--help``)."""
    return [(name, training_defaults(name), model_params(name)) for name in MODELS]
