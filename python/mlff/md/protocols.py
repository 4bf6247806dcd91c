"""Named MD protocols: a LAMMPS input template in ``deploy/protocols/`` plus its parameters.

Each :class:`Protocol` knows

* its template (``deploy/protocols/NAME.in``, a plain LAMMPS input driven by ``-var``
  variables, documented at its top);
* its default parameters (temperature K, time step fs, production length ps, seeds,
  dump interval, and protocol-specific ones such as Langevin frictions);
* how to turn parameters into the template's LAMMPS variables
  (:meth:`Protocol.lammps_variables`) and into the equivalent stage list that the
  ASE-driven reference run follows (:meth:`Protocol.stages`, used by
  :mod:`mlff.md.reference`).

Frictions are given as ASE Langevin frictions in inverse ASE time units, as in the
seed 000 protocol (S. Batzner, MSc thesis, MIT 2019: friction 1.0 for 1,000 steps, then
0.1 until the temperature is within 5 %, then NVE at 0.5 fs). One ASE time unit is
``1 / ase.units.fs`` = 10.1805 fs, so a friction ``g`` is a LAMMPS ``fix langevin``
damping time of ``10.1805 fs / g`` (:func:`damp_ps_from_ase_friction`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ase import units

from ..errors import ConfigError
from ..templates import template_dir

#: One ASE time unit in fs (ase.units.fs is one fs in ASE time units).
ASE_TIME_FS = 1.0 / units.fs

#: Folder of the LAMMPS templates.
TEMPLATE_DIR = template_dir("protocols")


def damp_ps_from_ase_friction(friction: float) -> float:
    """LAMMPS ``fix langevin`` damping time (ps) equal to ASE Langevin ``friction``
    (inverse ASE time units): ``damp = ASE_TIME_FS / friction / 1000``. Raises
    :class:`ConfigError` if ``friction <= 0``."""
    if not friction > 0:
        raise ConfigError(f"a Langevin friction must be > 0 (ASE units), got {friction!r}")
    return ASE_TIME_FS / float(friction) / 1000.0


#: ``fix halt`` ids of the templates that end a failed run, and what each means (the
#: ``halt_reason`` of a run; the ASE reference run reports the same reasons).
HALT_GUARDS = {"bondcheck": "bond broken", "runaway": "temperature above t_max x temperature"}


@dataclass(frozen=True)
class Stage:
    """One stage of a protocol, as the ASE reference run executes it.

    ``kind``: ``"langevin"`` (NVT, ``ase.md.langevin.Langevin``), ``"nve"`` (velocity
    Verlet) or ``"npt"`` (``ase.md.langevinbaoab.LangevinBAOAB``, hydrostatic).
    ``steps``: length (the cap, for a stage that ends on ``until_within``).
    ``t_start``/``t_end`` (K): thermostat target, ramped linearly over the stage.
    ``friction``: ASE units. ``until_within``: end the stage at the first check (every
    ``check_every`` steps) where ``|T - t_end| <= until_within * t_end``.
    ``production``: frames are recorded. ``check_bonds``: stop at a broken bond.
    ``zero_rotation``: the angular momentum is zeroed every step (``ase.md.velocitydistribution.ZeroRotation``).
    ``t_runaway`` (K): stop at the first recorded frame hotter than this (``None``: never).
    """

    kind: str
    steps: int
    t_start: float
    t_end: float
    friction: float = 0.0
    pressure_bar: float = 0.0
    pdamp_ps: float = 1.0
    until_within: float | None = None
    check_every: int = 10
    production: bool = False
    check_bonds: bool = False
    zero_rotation: bool = False  # also zero the angular momentum every step (the COM always is)
    t_runaway: float | None = None
    name: str = ""


@dataclass(frozen=True)
class Protocol:
    """A named MD protocol (see the module docstring).

    ``ensemble`` is that of the recorded (production) part: ``nve``, ``nvt`` or ``npt``.
    ``periodic``: ``True`` if the protocol needs a periodic system, ``None`` if it takes
    both. ``defaults``: every parameter the protocol reads, with its default.
    """

    name: str
    template: str
    description: str
    ensemble: str
    periodic: bool | None
    defaults: dict = field(default_factory=dict)
    help: dict = field(default_factory=dict)

    @property
    def template_path(self) -> Path:
        """The template file; :class:`ConfigError` if it is missing."""
        path = TEMPLATE_DIR / self.template
        if not path.is_file():
            raise ConfigError(f"protocol {self.name!r}: template {path} is missing")
        return path

    def resolve(self, overrides: dict) -> dict:
        """Defaults updated with ``overrides`` (``None`` values ignored), checked.

        Raises :class:`ConfigError` for unknown names or invalid values. Lengths are
        rounded to whole dump intervals.
        """
        params = dict(self.defaults)
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in params:
                raise ConfigError(f"protocol {self.name!r} has no parameter {key!r}; "
                                  f"its parameters: {', '.join(sorted(params))}")
            params[key] = type(params[key])(value) if not isinstance(params[key], bool) else bool(value)
        for key in ("temperature", "timestep", "length"):
            if not (params[key] > 0 and math.isfinite(params[key])):
                raise ConfigError(f"{key} must be a positive number, got {params[key]!r}")
        for key in ("seeds", "dump_every"):
            if params[key] < 1:
                raise ConfigError(f"{key} must be >= 1, got {params[key]!r}")
        for key, value in params.items():
            if key.startswith("friction") and not value > 0:
                raise ConfigError(f"{key} must be > 0 (ASE units), got {value!r}")
        return params

    def steps(self, params: dict, ps: float) -> int:
        """``ps`` of MD as a number of steps, rounded up to whole dump intervals (>= 1)."""
        n = max(1, math.ceil(ps * 1000.0 / params["timestep"] / params["dump_every"] - 1e-9))
        return n * int(params["dump_every"])

    def production_steps(self, params: dict) -> int:
        """Number of recorded (dumped) steps."""
        if self.name in ("melt", "anneal"):
            return sum(s.steps for s in self.stages(params) if s.production)
        return self.steps(params, params["length"])

    def lammps_variables(self, params: dict) -> dict[str, str]:
        """The template's ``-var`` values (strings) for ``params`` (from :meth:`resolve`),
        without ``data``, ``potential``, ``elements``, ``periodic``, ``seed``, ``bonds``,
        ``dump_pe`` (set by the runner)."""
        p = params
        out = {"temp": p["temperature"], "dt": p["timestep"], "dump_every": p["dump_every"],
               "thermo_every": p["dump_every"]}
        if self.name == "nve-drift":
            out.update(n_hot=p["n_hot"], damp_hot=damp_ps_from_ase_friction(p["friction_hot"]),
                       damp_cool=damp_ps_from_ase_friction(p["friction_cool"]), t_tol=p["t_tol"],
                       check_every=p["check_every"], max_cool=p["max_cool"],
                       nsteps=self.steps(p, p["length"]), zero_momentum=int(p["zero_momentum"]),
                       t_max=p["t_max"])
        elif self.name == "stability":
            out.update(damp=damp_ps_from_ase_friction(p["friction"]), nsteps=self.steps(p, p["length"]),
                       check_every=p["dump_every"], bond_tol=p["bond_tol"])
        elif self.name == "npt":
            out.update(damp=damp_ps_from_ase_friction(p["friction"]), pdamp=p["pdamp"], press=p["pressure"],
                       n_equil=self.steps(p, p["equil"]), nsteps=self.steps(p, p["length"]))
        else:  # melt, anneal
            st = {s.name: s.steps for s in self.stages(p)}
            out.update(damp=damp_ps_from_ase_friction(p["friction"]), pdamp=p["pdamp"], press=p["pressure"],
                       t_high=p["t_high"], t_final=p["t_final"], n_equil=st["equil"], n_heat=st["heat"],
                       n_hold=st["hold"], n_quench=st["quench"])
        return {k: (repr(float(v)) if isinstance(v, float) else str(v)) for k, v in out.items()}

    def stages(self, params: dict) -> list[Stage]:
        """The same protocol as a list of :class:`Stage` (for the ASE reference run)."""
        p = params
        T = p["temperature"]
        if self.name == "nve-drift":
            return [Stage("langevin", int(p["n_hot"]), T, T, p["friction_hot"], name="hot"),
                    Stage("langevin", int(p["max_cool"]), T, T, p["friction_cool"], until_within=p["t_tol"],
                          check_every=int(p["check_every"]), name="cool"),
                    Stage("nve", self.steps(p, p["length"]), T, T, production=True, name="nve",
                          zero_rotation=bool(p["zero_momentum"]),
                          t_runaway=p["t_max"] * T if p["t_max"] > 0 else None)]
        if self.name == "stability":
            return [Stage("langevin", self.steps(p, p["length"]), T, T, p["friction"], production=True,
                          check_bonds=True, check_every=int(p["dump_every"]), name="nvt")]
        if self.name == "npt":
            kw = dict(friction=p["friction"], pressure_bar=p["pressure"], pdamp_ps=p["pdamp"])
            return [Stage("npt", self.steps(p, p["equil"]), T, T, name="equil", **kw),
                    Stage("npt", self.steps(p, p["length"]), T, T, production=True, name="npt", **kw)]
        fractions = {"equil": p["equil_fraction"], "heat": p["heat_fraction"], "hold": p["hold_fraction"],
                     "quench": p["quench_fraction"]}
        total = sum(fractions.values())
        n = {k: self.steps(p, p["length"] * f / total) for k, f in fractions.items()}
        kw = dict(friction=p["friction"], pressure_bar=p["pressure"], pdamp_ps=p["pdamp"])
        return [Stage("npt", n["equil"], T, T, name="equil", **kw),
                Stage("npt", n["heat"], T, p["t_high"], production=True, name="heat", **kw),
                Stage("npt", n["hold"], p["t_high"], p["t_high"], production=True, name="hold", **kw),
                Stage("npt", n["quench"], p["t_high"], p["t_final"], production=True, name="quench", **kw)]


_COMMON = {"temperature": 300.0, "timestep": 0.5, "length": 10.0, "seeds": 1, "dump_every": 10}
_COMMON_HELP = {"temperature": "K", "timestep": "fs", "length": "ps of recorded MD", "seeds": "independent runs",
                "dump_every": "steps between frames (also thermo lines and LAMMPS compute samples)"}
_THERMO_HELP = {"friction": "Langevin friction, ASE units (0.1 = damping 0.1018 ps)", "pressure": "bar",
                "pdamp": "barostat damping, ps"}
_MELT_HELP = {**_THERMO_HELP, "t_high": "K, top of the heating ramp", "t_final": "K, end of the quench",
              "equil_fraction": "share of --length at the start temperature (not recorded)",
              "heat_fraction": "share of --length heating", "hold_fraction": "share of --length at t_high",
              "quench_fraction": "share of --length quenching"}

#: All protocols, by name.
PROTOCOLS: dict[str, Protocol] = {
    "nve-drift": Protocol(
        "nve-drift", "nve-drift.in",
        "Langevin (ASE friction 1.0 for n_hot steps, then 0.1 until T is within t_tol) then NVE for --length: "
        "energy conservation (the seed 000 protocol, 0.5 fs); NVE stops if T exceeds t_max x temperature",
        "nve", None,
        {**_COMMON, "n_hot": 1000, "friction_hot": 1.0, "friction_cool": 0.1, "t_tol": 0.05, "check_every": 10,
         "max_cool": 20000, "zero_momentum": 0, "t_max": 10.0},
        {**_COMMON_HELP, "n_hot": "steps with friction_hot", "friction_hot": "ASE units (1.0 = 0.0102 ps)",
         "friction_cool": "ASE units (0.1 = 0.1018 ps)", "t_tol": "relative temperature band ending stage 2",
         "check_every": "steps between temperature checks", "max_cool": "cap on stage 2, steps",
         "zero_momentum": "1: zero the centre-of-mass and angular momentum every NVE step (seed 000's MD)",
         "t_max": "NVE stops when T exceeds t_max x temperature (a runaway run; 0: never)"},
    ),
    "stability": Protocol(
        "stability", "stability.in",
        "Langevin NVT at T for --length, --seeds independent runs; a run fails at the first frame where a bond "
        "(covalent radii, starting geometry) deviates by more than bond_tol, a force or energy is not finite, "
        "or LAMMPS stops",
        "nvt", None,
        {**_COMMON, "temperature": 500.0, "length": 50.0, "seeds": 5, "friction": 0.1, "bond_tol": 0.5},
        {**_COMMON_HELP, "friction": _THERMO_HELP["friction"], "bond_tol": "largest bond deviation, A"},
    ),
    "melt": Protocol(
        "melt", "melt.in",
        "periodic solid at constant pressure: equilibrate at T, heat to t_high, hold, quench to t_final "
        "(Langevin thermostat + fix nph barostat)",
        "npt", True,
        {**_COMMON, "timestep": 1.0, "length": 60.0, "dump_every": 100, "t_high": 2000.0, "t_final": 300.0,
         "pressure": 0.0, "friction": 0.1, "pdamp": 1.0, "equil_fraction": 0.1, "heat_fraction": 0.3,
         "hold_fraction": 0.3, "quench_fraction": 0.3},
        {**_COMMON_HELP, **_MELT_HELP},
    ),
    "anneal": Protocol(
        "anneal", "melt.in",
        "periodic solid at constant pressure: equilibrate at T, heat to t_high (below melting), hold, cool "
        "slowly to t_final (melt.in with a lower t_high and a longer cooling)",
        "npt", True,
        {**_COMMON, "timestep": 1.0, "length": 60.0, "dump_every": 100, "t_high": 1000.0, "t_final": 300.0,
         "pressure": 0.0, "friction": 0.1, "pdamp": 1.0, "equil_fraction": 0.1, "heat_fraction": 0.2,
         "hold_fraction": 0.2, "quench_fraction": 0.5},
        {**_COMMON_HELP, **_MELT_HELP},
    ),
    "npt": Protocol(
        "npt", "npt.in",
        "periodic system at T and --pressure (Langevin thermostat + fix nph barostat): equil ps, then --length "
        "recorded",
        "npt", True,
        {**_COMMON, "timestep": 1.0, "length": 20.0, "dump_every": 50, "pressure": 0.0, "friction": 0.1,
         "pdamp": 1.0, "equil": 2.0},
        {**_COMMON_HELP, **_THERMO_HELP, "equil": "ps of equilibration (not recorded)"},
    ),
}


def protocol_names() -> list[str]:
    """Names accepted by :func:`get_protocol`."""
    return list(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``; :class:`ConfigError` listing the valid names if unknown."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; valid protocols: {', '.join(protocol_names())}")
    return PROTOCOLS[key]
