"""One rank of the distributed tests (tests/test_distributed.py), started with the variables
torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT):

    python tests/distributed_worker.py SCENARIO DIR

``train``: the summed gradient of one global batch (``DIR/grad_rank{R}.pt``), then two
epochs of training (rank 0 in ``DIR/run``, every other rank told to use ``DIR/run_rank{R}``,
which must stay absent) and the final weights (``DIR/weights_rank{R}.pt``).
``fail``: rank 1 raises at its second training step; each rank writes what it raised to
``DIR/error_rank{R}.txt``.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import numpy as np
import torch


def config(**extra):
    from mlff.train.config import TrainConfig

    values = dict(model="schnet", model_params={"n_features": 8, "n_interactions": 2}, dtype="float64",
                  epochs=2, batch_size=5, lr=1e-3, threads=1)
    return TrainConfig(**{**values, **extra})


def frames(directory: Path):
    from mlff.data.io import read_dataset

    data = read_dataset(directory / "data.extxyz")
    return data[:15], data[15:]


def gradients(directory: Path, dist) -> None:
    """The summed gradient of the global batch, from this rank's shard."""
    from mlff.graph import atoms_to_graph, collate
    from mlff.models import build_model
    from mlff.train.distributed import shard
    from mlff.train.statistics import fit_energy_scale
    from mlff.train.trainer import _Clock, batch_loss

    train, _ = frames(directory)
    torch.manual_seed(0)
    model = build_model("schnet", ["Cu"], 5.0, dtype=torch.float64, n_features=8, n_interactions=2)
    graphs = [atoms_to_graph(a, model.species, 5.0) for a in train]
    fit_energy_scale(model, graphs)
    torch.nn.init.normal_(model.readout[-1].weight, std=0.5)  # non-trivial forces and gradients
    global_batch = np.array([4, 0, 11, 7, 2])
    local = shard(global_batch, dist.world_size, dist.rank)
    params = [p for p in model.parameters() if p.requires_grad]
    loss, _, _ = batch_loss(model, collate([graphs[k] for k in local]), 1.0, 0.5, len(global_batch),
                            3 * sum(int(graphs[k].pos.shape[0]) for k in global_batch))
    loss.backward(inputs=params)
    _Clock(0.0, 0.0, dist).reduce_step(params, float(loss), None)
    torch.save({"grad": [None if p.grad is None else p.grad.clone() for p in params], "local": local.tolist()},
               directory / f"grad_rank{dist.rank}.pt")


def main() -> int:
    from mlff.train.distributed import init_distributed
    from mlff.train.trainer import Trainer

    scenario, directory = sys.argv[1], Path(sys.argv[2])
    dist = init_distributed("cpu", timeout_minutes=2.0)
    try:
        out = directory / ("run" if dist.rank == 0 else f"run_rank{dist.rank}")
        if scenario == "train":
            gradients(directory, dist)
            train, valid = frames(directory)
            trainer = Trainer(config(), out)
            trainer.fit(train, valid, progress=False, log=lambda *_: None, dist=dist)
            torch.save(trainer.model.state_dict(), directory / f"weights_rank{dist.rank}.pt")
        elif scenario == "fail":
            import mlff.train.trainer as trainer_module

            calls = {"n": 0}
            original = trainer_module.batch_loss

            def failing(*args, **kwargs):
                calls["n"] += 1
                if dist.rank == 1 and calls["n"] == 2:
                    raise RuntimeError("injected failure on rank 1")
                return original(*args, **kwargs)

            trainer_module.batch_loss = failing
            train, valid = frames(directory)
            try:
                Trainer(config(epochs=50), out).fit(train, valid, progress=False, log=lambda *_: None, dist=dist)
            except Exception as exc:  # noqa: BLE001 - what each rank raised is the result
                (directory / f"error_rank{dist.rank}.txt").write_text(f"{type(exc).__name__}: {exc}")
                return 1
        return 0
    except Exception:
        traceback.print_exc()
        return 3
    finally:
        dist.close()


if __name__ == "__main__":
    sys.exit(main())
