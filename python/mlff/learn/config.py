"""``mlff learn`` configuration (YAML), validated with errors that name the key."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..train.config import TrainConfig


@dataclass
class ExploreConfig:
    """LAMMPS MD with the committee (``deploy/learn/explore.in``), one run per structure ×
    temperature × pressure. ``pressures`` in bar (``null``: NVT with a Langevin thermostat);
    ``steps`` of ``timestep_fs``; a frame and a deviation row every ``every`` steps; a run
    stops early when any atom's force deviation exceeds ``halt`` eV/Å (its later frames
    would be failures anyway). ``parallel`` runs at once, each on ``np`` MPI ranks."""

    temperatures: list[float] = field(default_factory=lambda: [300.0])
    pressures: list[float | None] = field(default_factory=lambda: [None])
    steps: int = 2000
    timestep_fs: float = 1.0
    every: int = 20
    halt: float = 1.5
    parallel: int = 1
    np: int = 1


@dataclass
class SelectConfig:
    """Frames whose largest atomic force deviation lies in ``[trust_lo, trust_hi)`` eV/Å are
    candidates; at most ``n_select`` per iteration, spread out by farthest-point sampling."""

    trust_lo: float = 0.05
    trust_hi: float = 0.35
    n_select: int = 20


@dataclass
class LabelConfig:
    """Reference calculations in parallel: ``executor`` ``local`` (``workers`` processes on
    this machine) or ``slurm`` (through submitit; ``slurm`` holds submitit's ``slurm_*``
    parameters without the prefix, e.g. ``partition``, ``time``, ``cpus_per_task``)."""

    executor: str = "local"
    workers: int = 2
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass
class LearnConfig:
    """Everything ``mlff learn`` needs; see ``docs/active_learning.md``.

    ``reference``: a calculator name of :mod:`mlff.data.calculators` (``emt``, ``xtb``,
    ``eam-cu``, ``sw-si``) or ``"module:callable"`` returning an ASE calculator (e.g. a
    DFT code). ``structures``: starting structures for exploration (files ASE reads).
    ``initial_data``: labelled frames to start from, or ``n_initial`` rattled copies of
    the structures (``rattle`` Å) labelled by the reference. ``train``: ``mlff train``
    options (:class:`mlff.train.config.TrainConfig`) for each iteration's committee of
    ``committee`` members, warm-started from the previous iteration. The loop stops after
    ``max_iterations``, when more than ``max_labels`` frames are labelled, or when fewer
    than ``converged_fraction`` of the explored frames are candidates or failures while
    the committee's validation force MAE is below ``select.trust_hi`` (a committee that
    agrees with itself but not with the reference is not converged: its members are not
    yet diverse, and the loop labels a spread of explored frames instead).
    """

    reference: str = "emt"
    structures: list[str] = field(default_factory=list)
    initial_data: str | None = None
    n_initial: int = 10
    rattle: float = 0.05
    committee: int = 4
    n_valid_fraction: float = 0.1
    train: dict[str, Any] = field(default_factory=dict)
    explore: ExploreConfig = field(default_factory=ExploreConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    max_iterations: int = 10
    max_labels: int = 2000
    converged_fraction: float = 0.05
    seed: int = 0

    def train_config(self, iteration: int) -> TrainConfig:
        """The training options of one iteration's committee (seed offset per iteration)."""
        values = {"epochs": 200, "early_stopping_patience": 20, **self.train}
        values["seed"] = int(values.get("seed", self.seed)) + 100 * iteration
        return TrainConfig.from_sources(None, values)

    def validate(self, base: Path | None = None) -> "LearnConfig":
        e, s, lab = self.explore, self.select, self.label
        if not self.structures:
            raise ConfigError("structures: give at least one starting structure file")
        for path in self.structures + ([self.initial_data] if self.initial_data else []):
            p = Path(path) if base is None or Path(path).is_absolute() else base / path
            if not p.is_file():
                raise ConfigError(f"{path}: no such file (structures / initial_data)")
        checks = [("committee", self.committee >= 2, "an integer ≥ 2"),
                  ("n_initial", self.n_initial >= 2 or self.initial_data is not None, "≥ 2"),
                  ("rattle", self.rattle >= 0, "≥ 0 Å"),
                  ("n_valid_fraction", 0 < self.n_valid_fraction < 1, "in (0, 1)"),
                  ("max_iterations", self.max_iterations >= 1, "≥ 1"),
                  ("max_labels", self.max_labels >= 1, "≥ 1"),
                  ("converged_fraction", 0 <= self.converged_fraction < 1, "in [0, 1)"),
                  ("explore.temperatures", bool(e.temperatures) and all(t > 0 for t in e.temperatures), "> 0 K"),
                  ("explore.pressures", bool(e.pressures), "a list (null for NVT)"),
                  ("explore.steps", e.steps >= e.every >= 1, "≥ explore.every ≥ 1"),
                  ("explore.timestep_fs", 0 < e.timestep_fs < 20, "in (0, 20) fs"),
                  ("explore.halt", e.halt > s.trust_hi, "> select.trust_hi"),
                  ("explore.parallel", e.parallel >= 1, "≥ 1"), ("explore.np", e.np >= 1, "≥ 1"),
                  ("select.trust_lo", 0 <= s.trust_lo < s.trust_hi, "≥ 0 and < select.trust_hi"),
                  ("select.n_select", s.n_select >= 1, "≥ 1"),
                  ("label.executor", lab.executor in ("local", "slurm"), "local or slurm"),
                  ("label.workers", lab.workers >= 1, "≥ 1")]
        for name, ok, what in checks:
            if not ok:
                raise ConfigError(f"{name} must be {what}")
        self.train_config(0)  # the training options are valid
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "LearnConfig":
        """Read and validate a YAML file; ``ConfigError`` naming the file and the key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must contain a mapping of option: value")
        try:
            return cls.from_dict(values).validate(path.parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "LearnConfig":
        sections = {"explore": ExploreConfig, "select": SelectConfig, "label": LabelConfig}
        out = {}
        for key, value in values.items():
            if key in sections:
                out[key] = _build(sections[key], value, key)
            elif key in {f.name for f in dataclasses.fields(cls)}:
                out[key] = value
            else:
                raise ConfigError(f"unknown option {key!r}; known: {sorted(f.name for f in dataclasses.fields(cls))}")
        config = cls(**out)
        _check_types(config, "")
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(kind, value, name):
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a mapping, got {value!r}")
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {[f'{name}.{k}' for k in unknown]}; known: {sorted(known)}")
    return kind(**value)


def _check_types(obj, prefix: str) -> None:
    """Numbers where numbers belong (YAML strings and NaN refused), lists where lists belong."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            _check_types(value, name + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool) or default is None:
            continue
        if isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if isinstance(default, int) and not isinstance(default, bool) and ok:
                ok = float(value).is_integer()
                if ok:
                    setattr(obj, f.name, int(value))
            if not ok:
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        elif isinstance(default, list) and not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        elif isinstance(default, dict) and not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
    if isinstance(obj, ExploreConfig):
        for t in obj.temperatures + [p for p in obj.pressures if p is not None]:
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise ConfigError(f"{prefix}temperatures/pressures must be numbers, got {t!r}")
