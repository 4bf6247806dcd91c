"""Training configuration: defaults, YAML files and command-line overrides."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import ConfigError


@dataclass
class TrainConfig:
    """All training hyperparameters. Units: energies eV, forces eV/Å, time minutes
    (``max_minutes`` wall clock, ``max_cpu_minutes`` process CPU time, all threads).

    The loss is ``ρ · mean((ΔE / n_atoms)²) + mean(ΔF²) + λ · mean((Δσ · V / n_atoms)²)``
    over a batch, with ``ρ = energy_weight`` (Schütt thesis Eq. 5.3 uses total energies
    and ρ = 0.01; per-atom energies keep ρ independent of system size) and
    ``λ = stress_weight`` on the stress error expressed as virial per atom (eV, so λ is
    comparable with ρ). ``stress_weight = None`` (default): 1 if every training
    structure is periodic with a stress label, else 0.

    ``device``: where the model and the training data live: ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``, or ``"auto"`` (default: the current CUDA device when torch has one,
    else the CPU). ``threads`` sets torch's CPU threads.

    ``dtype``, ``batch_size``, ``lr``, ``energy_weight``, ``ema_decay`` and the schedule
    (``lr_factor``, ``lr_patience``, ``min_lr``, ``early_stopping_patience``) left at
    ``None`` take the model's tuned value from :mod:`mlff.train.defaults` (the table the
    benchmarks train with); ``batch_size`` is global, all processes of a distributed run
    together.
    """

    def __post_init__(self) -> None:
        self.resolve_defaults()

    def resolve_defaults(self) -> "TrainConfig":
        """Fill the options left at ``None`` from the model's entry in :mod:`mlff.train.defaults`
        (nothing while ``model`` is not a string: :meth:`validate` names that error)."""
        from .defaults import training_defaults

        if isinstance(self.model, str):
            for name, value in training_defaults(self.model).items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        return self

    model: str = "schnet"
    model_params: dict[str, Any] = field(default_factory=dict)
    r_max: float = 5.0
    dtype: str | None = None
    epochs: int = 1000
    max_minutes: float | None = None
    max_cpu_minutes: float | None = None
    batch_size: int | None = None
    valid_batch_size: int = 50
    lr: float | None = None
    energy_weight: float | None = None
    stress_weight: float | None = None
    lr_factor: float | None = None
    lr_patience: int | None = None
    min_lr: float | None = None
    early_stopping_patience: int | None = None
    ema_decay: float | None = None
    n_valid: int | None = None
    seed: int = 0
    threads: int | None = None
    device: str = "auto"

    def validate(self) -> "TrainConfig":
        """Check every option's type and range; ``ConfigError`` naming the option, the value
        and what is wrong (a YAML string where a number belongs, NaN, infinity, a negative
        weight, zero threads, ...)."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _checked(f.name, getattr(self, f.name), hints[f.name]))
        self.resolve_defaults()
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("epochs", "batch_size", "valid_batch_size", "lr_patience", "early_stopping_patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("energy_weight", "stress_weight", "min_lr"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        for name in ("r_max", "lr", "max_minutes", "max_cpu_minutes"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.lr_factor < 1.0:
            raise ConfigError(f"lr_factor must be in (0, 1), got {self.lr_factor}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be ≥ 1 (torch CPU threads), got {self.threads}")
        if self.n_valid is not None and self.n_valid < 1:
            raise ConfigError(f"n_valid must be ≥ 1, got {self.n_valid}")
        if any(not isinstance(k, str) for k in self.model_params):
            raise ConfigError(f"model_params must map hyperparameter names to values, got {self.model_params!r}")
        self.torch_device()
        return self

    def torch_device(self) -> torch.device:
        """``device`` resolved (``"auto"``: CUDA if available, else CPU); ``ConfigError`` for a
        name torch does not know, a device type other than CPU/CUDA, or a CUDA device this
        machine does not have."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"device {self.device!r} is not a device name ({exc}); use cpu, cuda, cuda:N or auto") \
                from None
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"device {self.device!r}: mlff trains on cpu or cuda only")
        if device.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if count == 0:
                raise ConfigError(f"device {self.device!r}: torch {torch.__version__} sees no CUDA device "
                                  f"(CPU build, or no GPU on this machine); use --device cpu")
            if device.index is not None and device.index >= count:
                raise ConfigError(f"device {self.device!r}: this machine has {count} CUDA device(s)")
        return device

    @classmethod
    def from_sources(cls, yaml_path: str | Path | None, overrides: dict[str, Any]) -> "TrainConfig":
        """Defaults, then the YAML file's keys, then non-``None`` ``overrides``."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            path = Path(yaml_path)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must contain a mapping of option: value")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**values).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _checked(name: str, value: Any, annotation: Any) -> Any:
    """``value`` of option ``name`` if it fits ``annotation`` (``int``, ``float``, ``str``,
    ``dict``, or ``X | None``), an ``int`` given for a ``float`` converted; ``ConfigError``
    otherwise. Floats must be finite. ``bool`` is not accepted as a number."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None:
            return None
        (annotation,) = [a for a in args if a is not type(None)]
    kind = typing.get_origin(annotation) or annotation
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    if kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping (name: value), got {value!r}")
        return value
    raise TypeError(f"option {name}: unsupported annotation {annotation!r}")  # a bug in TrainConfig, not input
