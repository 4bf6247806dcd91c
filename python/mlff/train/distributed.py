"""Data-parallel training across processes and nodes (``torch.distributed``).

``mlff train`` becomes one process of a distributed run when it is started by a launcher:

* ``torchrun --nproc-per-node N -m mlff train ...`` (``env://`` rendezvous: ``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``);
* ``srun -n N mlff train ...`` under Slurm: rank, size and local rank from
  ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` (``SLURM_NTASKS``) and ``SLURM_LOCALID``;
  ``MASTER_ADDR`` is the first host of the step's node list and ``MASTER_PORT`` is derived
  from the job id unless either is set already.

The backend is ``nccl`` when training on CUDA (one device per local rank), else ``gloo``.

How training stays exact and in step (see :class:`mlff.train.trainer.Trainer`):

* every rank draws the same epoch permutation from the shared seed; each global batch of
  ``batch_size`` structures is split into ``world_size`` contiguous shards;
* each rank's loss is its part of the global loss (sums divided by the *global* batch's
  counts), and the gradients are summed over the ranks in one flat all-reduce per step,
  so the step equals the single-process step on the union of the shards, for any number
  of processes (which is also why ``--resume`` may change it);
* the same all-reduce carries an error flag, each rank's CPU time and rank 0's wall time,
  so budgets and failures are decided identically everywhere without extra messages;
* statistics are fitted on rank 0 and broadcast; validation errors are summed over the
  ranks, so learning-rate schedule and early stopping see the same numbers everywhere;
* a rank that raises sets the flag at the next synchronisation point: every rank then
  stops with that rank's message (:class:`RankFailedError`) instead of waiting for it.
  A rank that dies without raising (killed, segfault) is caught by the launcher
  (``torchrun`` stops the others; under Slurm use ``srun --kill-on-bad-exit=1``) or, at
  the latest, by the process-group timeout (``--dist-timeout``).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import shutil
import subprocess
import traceback
from dataclasses import dataclass

import torch

from ..errors import ConfigError, MLFFError


class RankFailedError(MLFFError):
    """Another rank of a distributed run raised; the message is that rank's."""


def _first_slurm_host(nodelist: str) -> str:
    """The first hostname of a Slurm host list (``"node[03-05,9],gpu1"`` -> ``"node03"``);
    ``scontrol show hostnames`` when it is there."""
    if shutil.which("scontrol"):
        try:
            out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                                 timeout=30, check=True).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.SubprocessError):
            pass
    first = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if first is None:
        raise ConfigError(f"cannot read the Slurm node list {nodelist!r}; set MASTER_ADDR")
    prefix, ranges = first.group(1), first.group(3)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def launch_environment(env: dict[str, str] | None = None) -> dict[str, str | int] | None:
    """Rank, world size, local rank and rendezvous address of this process, from
    ``torchrun``'s or Slurm's variables; ``None`` for a single process (neither, or a world
    of one). Slurm counts only inside an ``srun`` step (``SLURM_STEP_NUM_TASKS``), so a
    plain ``mlff train`` in a batch script stays a single process."""
    env = dict(os.environ if env is None else env)
    if "RANK" in env and "WORLD_SIZE" in env:
        world = int(env["WORLD_SIZE"])
        info = {"rank": int(env["RANK"]), "world_size": world, "local_rank": int(env.get("LOCAL_RANK", 0)),
                "launcher": "torchrun", "master_addr": env.get("MASTER_ADDR", "127.0.0.1"),
                "master_port": env.get("MASTER_PORT", "29500")}
    elif "SLURM_PROCID" in env and int(env.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        world = int(env["SLURM_STEP_NUM_TASKS"])
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
        port = env.get("MASTER_PORT") or str(15000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
        info = {"rank": int(env["SLURM_PROCID"]), "world_size": world,
                "local_rank": int(env.get("SLURM_LOCALID", 0)), "launcher": "slurm",
                "master_addr": env.get("MASTER_ADDR") or _first_slurm_host(nodes), "master_port": port}
    else:
        return None
    return info if world > 1 else None


@dataclass
class DistContext:
    """This process's place in a run: ``rank`` of ``world_size`` (1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    launcher: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ collectives
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks in place (a no-op for one process)."""
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def broadcast_state(self, module: torch.nn.Module) -> None:
        """Every parameter and buffer of ``module`` from rank 0 (fitted statistics, weights)."""
        if not self.enabled:
            return
        for value in module.state_dict().values():
            if isinstance(value, torch.Tensor):
                torch.distributed.broadcast(value, src=0)

    def broadcast_object(self, value):
        """``value`` as rank 0 has it, on every rank."""
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def raise_failures(self, failed: bool, exc: BaseException | None) -> None:
        """After a flag all-reduce said some rank failed: collect each rank's message and
        raise: the failing rank its own exception, the others :class:`RankFailedError` with
        the first failing rank's message."""
        message = None
        if exc is not None:
            message = f"{type(exc).__name__}: {exc}"
        messages = [None] * self.world_size
        torch.distributed.all_gather_object(messages, message)
        if exc is not None:
            raise exc
        rank, text = next((k, m) for k, m in enumerate(messages) if m is not None)
        raise RankFailedError(f"rank {rank} of {self.world_size} stopped the run: {text}")

    @contextlib.contextmanager
    def guard(self, what: str = ""):
        """Run a block on every rank; if it raised on any rank, every rank raises (see
        :meth:`raise_failures`) instead of the others going on to wait for the failed one.
        One small all-reduce on leaving the block; nothing for a single process."""
        if not self.enabled:
            yield
            return
        error: BaseException | None = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001 (re-raised below, on every rank)
            error = exc
            if not isinstance(exc, MLFFError):
                traceback.print_exc()
        flag = torch.tensor([0.0 if error is None else 1.0], dtype=torch.float64, device=self.flag_device)
        self.all_reduce_sum(flag)
        if flag.item() > 0:
            self.raise_failures(True, error)

    @property
    def flag_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_distributed(device: str = "auto", timeout_minutes: float = 10.0,
                     env: dict[str, str] | None = None) -> DistContext:
    """Join the process group that the launcher set up (``env://``), or a single-process
    :class:`DistContext` when there is none. ``device``: the training device option; CUDA
    uses ``nccl`` and device ``cuda:LOCAL_RANK``, the CPU ``gloo``."""
    info = launch_environment(env)
    if info is None:
        return DistContext()
    if not torch.distributed.is_available():
        raise ConfigError("this torch build has no torch.distributed; train in one process")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        if torch.cuda.device_count() <= info["local_rank"]:
            raise ConfigError(f"local rank {info['local_rank']} has no CUDA device of its own "
                              f"({torch.cuda.device_count()} on this node); start at most one process per GPU")
        torch.cuda.set_device(info["local_rank"])
    os.environ.setdefault("MASTER_ADDR", str(info["master_addr"]))
    os.environ.setdefault("MASTER_PORT", str(info["master_port"]))
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, init_method="env://", rank=info["rank"],
                                             world_size=info["world_size"],
                                             timeout=datetime.timedelta(minutes=timeout_minutes))
    return DistContext(rank=info["rank"], world_size=info["world_size"], local_rank=info["local_rank"],
                       backend=backend, launcher=str(info["launcher"]))


def shard(indices, world_size: int, rank: int):
    """Rank ``rank``'s contiguous part of ``indices`` (sizes differ by at most one; the
    parts of all ranks, in rank order, are ``indices``)."""
    n = len(indices)
    lo = rank * n // world_size
    hi = (rank + 1) * n // world_size
    return indices[lo:hi]
