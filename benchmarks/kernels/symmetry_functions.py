"""Speed of mlff's symmetry-function kernel against the pure-PyTorch path, in one run.

    python benchmarks/kernels/symmetry_functions.py [--threads 1] [--repeat 5] [--device cpu|cuda] [--json OUT]

For each system it times, with both implementations and in the same process:

* descriptor forward + backward (what a force call spends in the descriptor);
* a whole ``bp`` force call (energy and forces by autograd, ``create_graph=False``);
* a ``bp`` training step (force loss, double backward into the weights).

Systems: toluene, 15 atoms, ``Gs-6-10-1-G4`` at 5 Å with 50-50 networks (the
``benchmarks/accuracy`` toluene model; latency), and fcc Cu, 4,000 atoms (10³ cells,
rattled), ``cu_emt_final`` at 5 Å with 10-10 networks (the accuracy benchmark's Cu
model; throughput). Timings are the median of ``--repeat`` runs of CPU time per call
(``time.process_time``, so other load on the machine disturbs them less than wall time);
with ``--device cuda``, of synchronised wall time, on the GPU kernels of ``cuda/``.
Printed: milliseconds, µs per atom and the ratio ``torch / ops`` (> 1: the kernel is faster).
"""

from __future__ import annotations

import json

import torch
from common import parse_args, structure, time_ms, unit

from mlff.graph import atoms_to_graph, collate
from mlff.models import build_model
from mlff.train.trainer import energy_and_forces

SYSTEMS = {
    "toluene (15 atoms)": dict(structure="toluene", species=["H", "C"], set="Gs-6-10-1-G4", hidden=[50, 50]),
    "Cu fcc (4,000 atoms)": dict(structure="cu", species=["Cu"], set="cu_emt_final", hidden=[10, 10]),
}


def main() -> None:
    args, dtype = parse_args(__doc__)
    results = []
    print(f"mlff symmetry functions, {args.dtype}, {args.device}, {args.threads} thread(s), "
          f"{unit(args.device)} per call (median of {args.repeat})")
    print("| system | what | torch (ms) | ops (ms) | ops µs/atom | torch / ops |")
    print("|---|---|---|---|---|---|")
    for name, spec in SYSTEMS.items():
        atoms = structure(spec["structure"])
        n = len(atoms)
        batch = collate([atoms_to_graph(atoms, spec["species"], 5.0)]).to(dtype, args.device)
        batch.forces = torch.zeros(n, 3, dtype=dtype, device=args.device)
        inner = 20 if n < 100 else 1
        row = {}
        for impl in ("torch", "ops"):
            torch.manual_seed(0)
            model = build_model("bp", spec["species"], 5.0, dtype, symmetry_functions=spec["set"],
                                hidden=spec["hidden"], implementation=impl)
            for prm in model.parameters():
                torch.nn.init.normal_(prm, std=0.1)
            model = model.to(args.device)
            sf = model.descriptor
            vec = batch.edge_vec().detach()

            def descriptor():
                v = vec.clone().requires_grad_(True)
                g = sf(batch.species, batch.edge_index, v)
                torch.autograd.grad(g.sum(), v)

            def force_call():
                energy_and_forces(model, batch, create_graph=False)

            params = list(model.parameters())

            def train_step():
                energy, forces = energy_and_forces(model, batch, create_graph=True)
                loss = ((forces - batch.forces) ** 2).mean() + energy.pow(2).mean()
                torch.autograd.backward(loss, inputs=params)

            for what, fn in (("descriptor fwd+bwd", descriptor), ("bp force call", force_call),
                             ("bp training step", train_step)):
                row.setdefault(what, {})[impl] = time_ms(fn, args.repeat, inner, args.device)
        for what, t in row.items():
            ratio = t["torch"] / t["ops"]
            print(f"| {name} | {what} | {t['torch']:.3f} | {t['ops']:.3f} | {t['ops'] * 1e3 / n:.2f} | {ratio:.2f} |")
            results.append({"system": name, "what": what, "torch_ms": t["torch"], "ops_ms": t["ops"],
                            "ops_us_per_atom": t["ops"] * 1e3 / n, "ratio": ratio})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dtype": args.dtype, "device": args.device, "threads": args.threads, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
