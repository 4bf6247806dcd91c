"""Speed of mlff's fused tensor-product convolution against e3nn, in one run.

    python benchmarks/kernels/tensor_product.py [--threads 1] [--repeat 5] [--device cpu|cuda] [--json OUT]

Times, with both implementations in the same process (CPU time per call, median of
``--repeat``):

* the convolution alone, forward + backward w.r.t. features, spherical harmonics and
  weights: ``torch.ops.mlff.tp_conv`` vs e3nn (``index_select`` gather,
  ``o3.TensorProduct`` uvu with per-edge weights, ``index_add`` scatter), for the NequIP
  sizes of ``benchmarks/accuracy`` (32 channels, l_max 1) and l_max 2;
* ``torch.ops.mlff.tp_uvw`` forward + backward vs e3nn (``index_select`` gathers of
  features and per-pair weights, ``o3.TensorProduct`` uvw with per-edge weights) at the
  ``se3_transformer`` sizes (8 channels l ≤ 2 in, harmonics l ≤ 4, values and keys of
  16 channels l ≤ 2: the kernels of its middle layer);
* a whole ``nequip`` and ``se3_transformer`` force call (energies and forces by autograd)
  and a training step (force loss, double backward into the weights).

Systems: toluene, 15 atoms (latency), and fcc Cu, 4,000 atoms at r_max 5 Å (throughput;
the uvw and model rows use a 500-atom box so that the e3nn reference stays within memory
and time).
Printed ratios are ``reference / ops`` (> 1: the kernel is faster). Where
``cuequivariance_torch`` is installed, the ``tp_conv`` rows are also timed against its
``ChannelWiseTensorProduct`` with fused gather/scatter (its CUDA ops on a GPU when
``cuequivariance-ops-torch-cu13`` is installed, otherwise its PyTorch fallback, as labelled). ``--device cuda`` runs
everything on the GPU (mlff's CUDA kernels against e3nn on CUDA) and times synchronised
wall time.
"""

from __future__ import annotations

import itertools
import json

import torch
from common import parse_args, structure, time_ms, unit
from e3nn import o3

from mlff.graph import atoms_to_graph, collate
from mlff.models import build_model
from mlff.models.common import reverse_edge_groups
from mlff.models.equivariant import (float64_construction, irreps_up_to, tensor_product_paths,
                                     tensor_product_tables)
from mlff.models.se3_transformer import SE3AttentionLayer, value_key_tables
from mlff.train.trainer import energy_and_forces


def conv_rows(args, dtype):
    rows, dev = [], args.device
    for name, species, atoms in (("toluene (15 atoms)", ["H", "C"], structure("toluene")),
                                 ("Cu fcc (4,000 atoms)", ["Cu"], structure("cu", 10))):
        graph = atoms_to_graph(atoms, species, 5.0)
        n, e = graph.species.shape[0], graph.edge_index.shape[1]
        for l_max in (1, 2):
            with float64_construction():
                irreps_in = irreps_up_to(32, l_max)
                irreps_sh = o3.Irreps.spherical_harmonics(l_max)
                irreps_out, ins = tensor_product_paths(irreps_in, irreps_sh, irreps_in, "uvu")
                tp = o3.TensorProduct(irreps_in, irreps_sh, irreps_out, ins, shared_weights=False,
                                      internal_weights=False)
            tp = tp.to(dtype).to(dev)
            tables = tensor_product_tables(tp)
            gen = torch.Generator().manual_seed(0)
            h = torch.randn(n, irreps_in.dim, dtype=dtype, generator=gen).to(dev)
            sh = torch.randn(e, irreps_sh.dim, dtype=dtype, generator=gen).to(dev)
            w = torch.randn(e, tp.weight_numel, dtype=dtype, generator=gen).to(dev)
            ei = graph.edge_index.to(dev)

            def e3nn_call():
                x = [t.clone().requires_grad_(True) for t in (h, sh, w)]
                out = torch.zeros(n, irreps_out.dim, dtype=dtype, device=dev).index_add(
                    0, ei[0], tp(x[0][ei[1]], x[1], x[2]))
                torch.autograd.grad(out.sum(), x)

            def ops_call():
                x = [t.clone().requires_grad_(True) for t in (h, sh, w)]
                out = torch.ops.mlff.tp_conv(x[0], x[1], x[2], ei[0], ei[1], n, *tables)
                torch.autograd.grad(out.sum(), x)

            inner = 20 if n < 100 else 1
            t_ref, t_ops = time_ms(e3nn_call, args.repeat, inner, dev), time_ms(ops_call, args.repeat, inner, dev)
            what = f"tp_conv fwd+bwd, 32x l≤{l_max}, {e} edges"
            rows.append(dict(system=name, what=what, ref="e3nn", ref_ms=t_ref, ops_ms=t_ops))
            cueq = cuequivariance_conv(irreps_in, irreps_sh, irreps_out, dtype, dev)
            if cueq is not None:
                label, cw = cueq
                w_c = torch.randn(e, cw.weight_numel, dtype=dtype, generator=gen).to(dev)

                def cueq_call():
                    x = [t.clone().requires_grad_(True) for t in (h, sh, w_c)]
                    out = cw(x[0], x[1], x[2], indices_1=ei[1], indices_out=ei[0], size_out=n)
                    torch.autograd.grad(out.sum(), x)

                rows.append(dict(system=name, what=what, ref=label, ref_ms=time_ms(cueq_call, args.repeat, inner, dev),
                                 ops_ms=t_ops))
    return rows


def cuequivariance_conv(irreps_in, irreps_sh, irreps_out, dtype, device):
    """NVIDIA cuEquivariance's channel-wise tensor product with the same irreps, per-edge
    weights and fused gather/scatter (``indices_1``, ``indices_out``), e3nn's layout, and a
    label saying whether its CUDA ops or its PyTorch fallback run; ``None`` when
    ``cuequivariance_torch`` is not installed (it is optional: pip install cuequivariance-torch,
    plus cuequivariance-ops-torch-cu13 for its GPU kernels)."""
    try:
        import cuequivariance as cue
        import cuequivariance_torch as cuet
    except ImportError:
        return None
    try:
        import cuequivariance_ops_torch  # noqa: F401
        fast = device == "cuda"
    except ImportError:
        fast = False
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback's notice; the label says it
        cw = cuet.ChannelWiseTensorProduct(
            cue.Irreps("O3", str(irreps_in)), cue.Irreps("O3", str(irreps_sh)),
            filter_irreps_out=[cue.O3.from_string(str(ir)) for _, ir in irreps_out], layout=cue.mul_ir,
            shared_weights=False, internal_weights=False, dtype=dtype, device=device)
    return ("cuEquivariance" if fast else "cuEquivariance (PyTorch fallback)"), cw


def uvw_rows(args, dtype):
    rows, dev = [], args.device
    for name, species, atoms in (("toluene (15 atoms)", ["H", "C"], structure("toluene")),
                                 ("Cu fcc (500 atoms)", ["Cu"], structure("cu", 5))):
        graph = atoms_to_graph(atoms, species, 5.0)
        n, e = graph.species.shape[0], graph.edge_index.shape[1]
        with float64_construction():
            hidden = irreps_up_to(8, 2)
            layer = SE3AttentionLayer(hidden, hidden, o3.Irreps.spherical_harmonics(4), n_heads=8, head_features=2,
                                      n_basis=8, radial_hidden=32, radial_layers=2, si_hidden=32, nonlinearity=True)
        layer = layer.to(dtype).to(dev)
        tables = value_key_tables(layer.value_tp, layer.key_tp)
        edge_vec = graph.to(dtype).edge_vec()
        _, group = reverse_edge_groups(graph.edge_index, edge_vec)
        n_pairs = int(group.max()) + 1
        gen = torch.Generator().manual_seed(0)
        h = torch.randn(n, hidden.dim, dtype=dtype, generator=gen).to(dev)
        sh = torch.randn(e, o3.Irreps.spherical_harmonics(4).dim, dtype=dtype, generator=gen).to(dev)
        w = torch.randn(n_pairs, layer.value_tp.weight_numel + layer.key_tp.weight_numel, dtype=dtype,
                        generator=gen).to(dev)
        nbr, group = graph.edge_index[1].to(dev), group.to(dev)

        def e3nn_call():
            x = [t.clone().requires_grad_(True) for t in (h, sh, w)]
            w_v, w_k = torch.split(x[2], [layer.value_tp.weight_numel, layer.key_tp.weight_numel], dim=1)
            h_j = x[0].index_select(0, nbr)
            out = torch.cat([layer.value_tp(h_j, x[1], w_v.index_select(0, group)),
                             layer.key_tp(h_j, x[1], w_k.index_select(0, group))], dim=1)
            torch.autograd.grad(out.sum(), x)

        def ops_call():
            x = [t.clone().requires_grad_(True) for t in (h, sh, w)]
            out = torch.ops.mlff.tp_uvw(x[0], x[1], x[2], nbr, group, *tables, layer.value_dim + layer.key_dim)
            torch.autograd.grad(out.sum(), x)

        inner = 20 if n < 100 else 1
        t_ref, t_ops = time_ms(e3nn_call, args.repeat, inner, dev), time_ms(ops_call, args.repeat, inner, dev)
        rows.append(dict(system=name, what=f"tp_uvw fwd+bwd, se3 values+keys, {e} edges, {n_pairs} pairs",
                         ref="e3nn", ref_ms=t_ref, ops_ms=t_ops))
    return rows


MODELS = {
    "nequip": ("32x l≤1, 3 layers",
               dict(n_features=32, l_max=1, n_interactions=3, n_basis=8, radial_hidden=64, radial_layers=2)),
    "se3_transformer": ("8x l≤2, 3 layers, 8 heads", dict(n_features=8, l_max=2, n_layers=3, n_heads=8, head_features=2)),
}


def model_rows(args, dtype):
    rows = []
    for (kind, (label, params)), (name, species, atoms) in itertools.product(
            MODELS.items(), (("toluene (15 atoms)", ["H", "C"], structure("toluene")),
                             ("Cu fcc (500 atoms)", ["Cu"], structure("cu", 5)))):
        batch = collate([atoms_to_graph(atoms, species, 5.0)]).to(dtype, args.device)
        batch.forces = torch.zeros(len(atoms), 3, dtype=dtype, device=args.device)
        inner = 10 if len(atoms) < 100 else 1
        times = {}
        for impl in ("e3nn", "ops"):
            torch.manual_seed(0)
            model = build_model(kind, species, 5.0, dtype, implementation=impl, **params)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            model = model.to(args.device)
            weights = [p for p in model.parameters() if p.requires_grad]

            def force_call():
                energy_and_forces(model, batch, create_graph=False)

            def train_step():
                energy, forces = energy_and_forces(model, batch, create_graph=True)
                loss = ((forces - batch.forces) ** 2).mean() + energy.pow(2).mean()
                torch.autograd.backward(loss, inputs=weights)

            times[impl] = (time_ms(force_call, args.repeat, inner, args.device),
                           time_ms(train_step, args.repeat, inner, args.device))
        rows.append(dict(system=name, what=f"{kind} force call ({label})", ref="e3nn", ref_ms=times["e3nn"][0],
                         ops_ms=times["ops"][0]))
        rows.append(dict(system=name, what=f"{kind} training step", ref="e3nn", ref_ms=times["e3nn"][1],
                         ops_ms=times["ops"][1]))
    return rows


def main() -> None:
    args, dtype = parse_args(__doc__)
    print(f"mlff tensor products vs e3nn, {args.dtype}, {args.device}, {args.threads} thread(s), "
          f"{unit(args.device)} per call (median of {args.repeat})")
    print("| system | what | reference | reference (ms) | ops (ms) | reference / ops |")
    print("|---|---|---|---|---|---|")
    rows = []
    for row in itertools.chain(conv_rows(args, dtype), uvw_rows(args, dtype), model_rows(args, dtype)):
        row["ratio"] = row["ref_ms"] / row["ops_ms"]
        print(f"| {row['system']} | {row['what']} | {row['ref']} | {row['ref_ms']:.3f} | {row['ops_ms']:.3f} "
              f"| {row['ratio']:.2f} |", flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"dtype": args.dtype, "device": args.device, "threads": args.threads, "results": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
