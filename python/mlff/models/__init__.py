"""Model registry: ``build_model(kind, species, r_max, **hparams)``."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .base import EnergyModel
from .bp import BehlerParrinello
from .dtnn import DTNN
from .mbe import ManyBodyExpansion
from .schnet import SchNet

MODELS: dict[str, type[EnergyModel]] = {cls.kind: cls for cls in (SchNet, BehlerParrinello, DTNN, ManyBodyExpansion)}

from .nequip import NequIP  # noqa: E402  (e3nn models)
from .se3_transformer import SE3Transformer  # noqa: E402
from .tfn import TFNDirectForce  # noqa: E402

MODELS.update({cls.kind: cls for cls in (NequIP, TFNDirectForce, SE3Transformer)})


def build_model(kind: str, species: list[str], r_max: float, dtype: torch.dtype = torch.float64,
                **hparams: Any) -> EnergyModel:
    """A freshly initialised model of registry name ``kind`` in ``dtype``.

    Raises ``ConfigError`` for an unknown kind or unknown hyperparameter.
    """
    if kind not in MODELS:
        raise ConfigError(f"unknown model {kind!r}; available: {sorted(MODELS)}")
    try:
        model = MODELS[kind](list(species), float(r_max), **hparams)
    except TypeError as exc:
        raise ConfigError(f"bad hyperparameters for model {kind!r}: {exc}") from None
    return model.to(dtype)


__all__ = ["EnergyModel", "MODELS", "build_model", "SchNet", "BehlerParrinello", "DTNN", "ManyBodyExpansion"]
__all__ += ["NequIP", "TFNDirectForce", "SE3Transformer"]
