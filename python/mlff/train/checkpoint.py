"""Checkpoints: save atomically, load with clear errors, rebuild the model.

A checkpoint is a ``torch.save`` dict with ``format = "mlff-checkpoint"``, the model
kind, species, ``r_max``, hyperparameters and dtype (enough to rebuild the model),
its ``state_dict`` and, for resuming, the optimizer/scheduler/EMA state and history.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ModelFileError
from ..models import EnergyModel, build_model

FORMAT = "mlff-checkpoint"


def model_record(model: EnergyModel) -> dict[str, Any]:
    """What is needed to rebuild ``model``: kind, species, r_max, hparams, dtype, weights."""
    dtype = next(model.parameters()).dtype
    return {"format": FORMAT, "mlff_version": __version__, "model_kind": model.kind, "species": model.species,
            "r_max": model.r_max, "hparams": model.hparams, "dtype": str(dtype).removeprefix("torch."),
            "model_state": model.state_dict()}


def save_checkpoint(path: str | Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically: a temporary file in the same
    directory is fully written, flushed, then renamed over ``path``, so an
    interruption never leaves a half-written checkpoint in place of a good one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint dict; ``ModelFileError`` naming ``path`` if missing or not an mlff checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ModelFileError(f"{path} is not a readable checkpoint: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not an mlff checkpoint (no format={FORMAT!r} record)")
    return record


def model_from_record(record: dict[str, Any]) -> EnergyModel:
    """Rebuild the model stored in a checkpoint record, weights included."""
    model = build_model(record["model_kind"], record["species"], record["r_max"],
                        dtype=getattr(torch, record["dtype"]), **record["hparams"])
    model.load_state_dict(record["model_state"])
    return model
