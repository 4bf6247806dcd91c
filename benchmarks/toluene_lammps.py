#!/usr/bin/env python
"""NVE energy conservation and speed of a deployed model in LAMMPS (toluene).

Runs ``deploy/toluene/in.toluene`` with plain ``lmp`` (pair_style mlff): Langevin
equilibration at 300 K, then NVE for ``--ps`` picoseconds at 0.5 fs. Reports

* NVE energy drift: slope of a least-squares line through the total energy,
  in meV/atom/ps, and the RMS fluctuation of the total energy (meV/atom);
* speed: LAMMPS loop wall time per MD step (ms/step) over the NVE run.

    python benchmarks/toluene_lammps.py --model benchmarks/out/toluene_schnet/model.pt
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_ATOMS = 15
DT_PS = 0.0005


def thermo_blocks(log: str) -> list[dict[str, np.ndarray]]:
    """Each thermo table of a LAMMPS log as {column: values}."""
    blocks, lines = [], log.splitlines()
    k = 0
    while k < len(lines):
        if lines[k].split()[:1] == ["Step"]:
            cols = lines[k].split()
            rows = []
            k += 1
            while k < len(lines) and not lines[k].startswith("Loop time"):
                parts = lines[k].split()
                if len(parts) == len(cols):
                    try:
                        rows.append([float(x) for x in parts])
                    except ValueError:
                        pass
                k += 1
            blocks.append(dict(zip(cols, np.array(rows).T)))
        k += 1
    return blocks


def loop_times(log: str) -> list[tuple[float, int]]:
    """(seconds, steps) of each 'Loop time of X on P procs for N steps' line."""
    out = []
    for line in log.splitlines():
        if line.startswith("Loop time of"):
            w = line.split()
            out.append((float(w[3]), int(w[8])))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--ps", type=float, default=10.0, help="NVE length in ps (default 10)")
    p.add_argument("--equil-ps", type=float, default=1.0, help="Langevin equilibration length in ps")
    p.add_argument("--out", type=Path, help="write results JSON here")
    args = p.parse_args()
    nsteps, nequil = int(round(args.ps / DT_PS)), int(round(args.equil_ps / DT_PS))
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "log.lammps"
        subprocess.run(["lmp", "-in", "in.toluene", "-var", "model", str(args.model.resolve()), "-var", "nsteps",
                        str(nsteps), "-var", "nequil", str(nequil), "-log", str(log_path), "-screen", "none"],
                       cwd=ROOT / "deploy/toluene", check=True)
        log = log_path.read_text()
    nve = thermo_blocks(log)[-1]
    t = nve["Step"] * DT_PS
    t = t - t[0]
    etot = nve["TotEng"] / N_ATOMS * 1e3  # meV/atom
    slope = np.polyfit(t, etot, 1)[0]
    seconds, steps = loop_times(log)[-1]
    result = {"nve_ps": args.ps, "drift_meV_per_atom_per_ps": float(slope),
              "etot_rms_fluct_meV_per_atom": float(np.std(etot)), "mean_T_K": float(np.mean(nve["Temp"])),
              "ms_per_step": 1e3 * seconds / steps, "steps": steps}
    print(f"NVE {args.ps:g} ps at 0.5 fs ({steps} steps), mean T {result['mean_T_K']:.0f} K:")
    print(f"  energy drift {slope:+.4f} meV/atom/ps, total-energy RMS fluctuation {result['etot_rms_fluct_meV_per_atom']:.3f} meV/atom")
    print(f"  speed {result['ms_per_step']:.3f} ms/step (LAMMPS loop time, 1 rank)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
