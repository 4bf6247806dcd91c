"""SE(3)-Transformer interatomic model (``se3_transformer``), direct-force or energy-gradient.

Source: B. E. Hedelius, BSc thesis, BYU (2021), "Learning inter-atomic forces with an
SE(3)-Transformer" (seed ``002``), after F. Fuchs et al., NeurIPS 2020. Implemented
from the thesis equations with e3nn (spherical harmonics, Clebsch–Gordan tensor products).

One attention layer (thesis Eqs. 2.3–2.8), for centre ``i`` and neighbours ``j``:

* query ``q_i = W_Q f_i`` (per-degree channel mixing, degrees ≤ min(l_in, l_out));
* key ``k_ij = W_K(r_ij) f_j`` and value ``v_ij = W_V(r_ij) f_j``: equivariant kernels, i.e.
  Clebsch–Gordan tensor products ``f_j ⊗ Y(r̂_ij)`` with every (input channel, output channel,
  path) weighted by a radial network of ``|r_ij|`` (Eq. 2.2; a fully connected ``uvw`` product
  with per-edge weights, so the ``n_heads`` heads have independent kernels);
* per head ``h``: ``s_ij = q_i^h · k_ij^h / √d_h`` (invariant: dot products within each
  degree), and attention weights with the smooth cutoff ``u(r)`` folded in,

      α_ij = u(r_ij) exp(s_ij) / (1 + Σ_j' u(r_ij') exp(s_ij')),

  i.e. a softmax over the neighbours plus one "null" slot of logit 0 and zero value.
  ``u`` is NequIP's ``p = 6`` polynomial envelope (``u``, ``u'``, ``u''`` vanish at ``r_max``),
  so a neighbour crossing ``r_max`` enters with zero weight and the layer output (and, in
  energy mode, the forces) is continuous there; the null slot keeps the denominator ≥ 1
  when the last neighbour leaves (an isolated atom gets zero message, not 0/0). Numerically
  the exponentials are shifted by ``max(0, max_j s_ij)``, which cancels exactly;
* output ``f_i' = SI_att(f_i) + W_O [⊕_h Σ_j α_ij^h v_ij^h]``: the heads are concatenated and
  mixed by an equivariant linear layer (Sec. 1.6); ``SI_att`` is the attentive
  self-interaction (Eqs. 2.6–2.7): per degree, an MLP of the channel Gram matrix
  ``f_{i,c}^l · f_{i,c'}^l`` gives a per-atom channel-mixing matrix.

Between layers: norm nonlinearity with a layer norm over each degree's channel norms
(Eq. 2.9), written here as ``f_c ← σ(LN(‖f‖)_c) f_c`` (direction kept, as in the thesis; a
sigmoid gate on ``f`` instead of ``ReLU(LN‖f‖) f/‖f‖`` so nothing divides by ``‖f‖``, which
the thesis blames for its NaNs). Input: one-hot species (``n_species x 0e``); ``n_layers``
layers, hidden degrees ``0 … l_max`` with ``n_features`` channels; the last layer outputs
``1x1o`` (``direct_forces=True``: ``F_i = scale · v_i``, eV/Å, no energy, as in the thesis) or
``1x0e`` (``direct_forces=False``: atomic energies through :class:`AtomicEnergyScale`,
forces ``−∂E/∂x`` by autograd — the conservative head the thesis lacks).

Deviations from the thesis: a distance cutoff ``r_max`` and the smooth weighting above
(the thesis uses fully connected molecules); radial networks see only the distance
(Bessel basis × cutoff; the author's code also feeds endpoint feature products) and have
no BatchNorm; attention logits are scaled by ``1/√d_h``.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ..errors import ConfigError
from ..ops import export as export_ops
from .equivariant import (EdgeEmbedding, EquivariantModel, NormActivation, RadialMLP, float64_construction,
                          irreps_up_to, radial_per_pair, scatter_sum, tensor_product_tables, use_tensor_product_ops,
                          vector_from_l1)


def uvw_paths(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps) -> list[tuple[int, int, int, str, bool]]:
    """Every ``irreps_in[i] ⊗ irreps_sh[j] → irreps_out[k]`` path allowed by the selection rules, fully connected in channels."""
    return [(i, j, k, "uvw", True)
            for i, (_, ir_in) in enumerate(irreps_in)
            for j, (_, ir_sh) in enumerate(irreps_sh)
            for k, (_, ir_out) in enumerate(irreps_out)
            if ir_out in ir_in * ir_sh]


def value_key_tables(value_tp: o3.TensorProduct, key_tp: o3.TensorProduct) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """One ``torch.ops.mlff.tp_uvw`` table set computing ``[value | key]`` per edge from
    weights ``[value weights | key weights]`` per pair (the radial network's output):
    the key paths' output and weight offsets and path numbers are shifted past the value's."""
    v_paths, v_index, v_coeff = tensor_product_tables(value_tp)
    k_paths, k_index, k_coeff = tensor_product_tables(key_tp)
    k_paths, k_index = k_paths.clone(), k_index.clone()
    k_paths[:, 4] += value_tp.irreps_out.dim
    k_paths[:, 7] += value_tp.weight_numel
    k_index[:, 0] += v_paths.shape[0]
    return torch.cat([v_paths, k_paths]), torch.cat([v_index, k_index]), torch.cat([v_coeff, k_coeff])


class GramMixing(nn.Module):
    """Attentive self-interaction for one degree: ``[n, irreps_in.dim] → [n, mul_out · d]``.

    ``G_cc' = f_c · f_c' / d`` (``d = 2l+1``) → MLP → ``W [mul_out, mul_in]`` per atom →
    ``Σ_c W_oc f_c``. With ``mul_in = 0`` (degree absent from the input) it returns zeros.
    """

    def __init__(self, start: int, mul_in: int, mul_out: int, d: int, hidden: int):
        super().__init__()
        self.start, self.mul_in, self.mul_out, self.d = start, mul_in, mul_out, d
        n_in = max(mul_in * mul_in, 1)
        self.mlp = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, mul_out * max(mul_in, 1)))
        nn.init.normal_(self.mlp[-1].weight, std=1.0 / math.sqrt(hidden * max(mul_in, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.mul_in == 0:
            return torch.zeros((n, self.mul_out * self.d), dtype=x.dtype, device=x.device)
        f = x.narrow(1, self.start, self.mul_in * self.d).reshape(n, self.mul_in, self.d)
        gram = torch.einsum("ncm,ndm->ncd", f, f).reshape(n, self.mul_in * self.mul_in) / self.d
        w = self.mlp(gram).reshape(n, self.mul_out, self.mul_in)
        return torch.einsum("noc,ncm->nom", w, f).reshape(n, self.mul_out * self.d)


class AttentiveSelfInteraction(nn.Module):
    """Thesis Eqs. 2.6–2.7 for every output degree (zero where the input lacks that degree)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, hidden: int):
        super().__init__()
        starts = {}
        start = 0
        for mul, ir in irreps_in:
            starts[ir] = (start, mul)
            start += mul * ir.dim
        self.blocks = nn.ModuleList(GramMixing(starts.get(ir, (0, 0))[0], starts.get(ir, (0, 0))[1], mul, ir.dim, hidden)
                                    for mul, ir in irreps_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for block in self.blocks:
            outs.append(block(x))
        return torch.cat(outs, dim=1)


class SE3AttentionLayer(nn.Module):
    """One multi-head SE(3)-equivariant attention layer, followed by the norm nonlinearity
    (unless it is the last layer): ``[n, irreps_in.dim] → [n, irreps_out.dim]``.

    ``use_ops``: key and value kernels by ``torch.ops.mlff.tp_uvw`` (CPU tensors; gathers of
    neighbour features and per-pair weights fused in), otherwise by e3nn on gathered rows.
    """

    __constants__ = ["use_ops"]  # TorchScript constant: the branch not taken is not compiled

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, n_heads: int,
                 head_features: int, n_basis: int, radial_hidden: int, radial_layers: int, si_hidden: int,
                 nonlinearity: bool, use_ops: bool = False):
        super().__init__()
        irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        width = n_heads * head_features
        l_key = min(irreps_in.lmax, irreps_out.lmax)
        self.value_irreps = o3.Irreps([(width, ir) for _, ir in irreps_out])
        self.key_irreps = o3.Irreps([(width, ir) for _, ir in irreps_out if ir.l <= l_key and ir in irreps_in])
        if len(self.key_irreps) == 0:
            raise ConfigError(f"no common degree for attention between {irreps_in} and {irreps_out}")
        self.value_tp = o3.TensorProduct(irreps_in, irreps_sh, self.value_irreps,
                                         uvw_paths(irreps_in, irreps_sh, self.value_irreps),
                                         shared_weights=False, internal_weights=False)
        self.key_tp = o3.TensorProduct(irreps_in, irreps_sh, self.key_irreps,
                                       uvw_paths(irreps_in, irreps_sh, self.key_irreps),
                                       shared_weights=False, internal_weights=False)
        self.n_value_weights = self.value_tp.weight_numel
        self.use_ops = use_ops
        self.value_dim, self.key_dim = self.value_irreps.dim, self.key_irreps.dim
        # plain tensor attributes, not buffers: integer buffers do not survive EMA averaging
        self.kv_paths, self.kv_coeff_index, self.kv_coeff = value_key_tables(self.value_tp, self.key_tp)
        self.radial = RadialMLP([n_basis] + [radial_hidden] * radial_layers
                                + [self.value_tp.weight_numel + self.key_tp.weight_numel])
        self.query = o3.Linear(irreps_in, self.key_irreps)
        self.mix = o3.Linear(self.value_irreps, irreps_out)
        self.self_interaction = AttentiveSelfInteraction(irreps_in, irreps_out, si_hidden)
        self.nonlinearity = NormActivation(irreps_out, layer_norm=True) if nonlinearity else nn.Identity()
        self.n_heads = n_heads
        self.key_dims: list[int] = [ir.dim for _, ir in self.key_irreps]
        self.value_dims: list[int] = [ir.dim for _, ir in self.value_irreps]
        self.width = width
        self.logit_scale = 1.0 / math.sqrt(head_features * sum(ir.dim for _, ir in self.key_irreps))

    def head_dot(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``[e, key_dim] × [e, key_dim] → [e, n_heads]``: per head, Σ over channels, degrees and m."""
        e = q.shape[0]
        out = torch.zeros((e, self.n_heads), dtype=q.dtype, device=q.device)
        start = 0
        for d in self.key_dims:
            size = self.width * d
            prod = q.narrow(1, start, size) * k.narrow(1, start, size)
            out = out + prod.reshape(e, self.n_heads, size // self.n_heads).sum(-1)
            start += size
        return out

    def weight_heads(self, v: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Multiply each head's channels of ``v [e, value_dim]`` by ``alpha [e, n_heads]``."""
        e = v.shape[0]
        outs: list[torch.Tensor] = []
        start = 0
        for d in self.value_dims:
            size = self.width * d
            block = v.narrow(1, start, size).reshape(e, self.n_heads, size // self.n_heads)
            outs.append((block * alpha[:, :, None]).reshape(e, size))
            start += size
        return torch.cat(outs, dim=1)

    def key_value(self, f: torch.Tensor, sh: torch.Tensor, w: torch.Tensor, neighbour: torch.Tensor,
                  group: torch.Tensor) -> torch.Tensor:
        """``[value | key]`` ``[e, value_dim + key_dim]`` by ``torch.ops.mlff.tp_uvw`` (its export
        form while traced for an AOTInductor package, :mod:`mlff.aoti`)."""
        if not torch.jit.is_scripting():  # eager only
            if export_ops.ENABLED:
                return torch.ops.mlff.tp_uvw_export(f, sh, w, neighbour, group, self.kv_paths, self.kv_coeff_index,
                                                    self.kv_coeff, self.value_dim + self.key_dim)
        return torch.ops.mlff.tp_uvw(f, sh, w, neighbour, group, self.kv_paths, self.kv_coeff_index, self.kv_coeff,
                                     self.value_dim + self.key_dim)

    def forward(self, f: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, r: torch.Tensor,
                cutoff: torch.Tensor, edge_index: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        n = f.shape[0]
        centre, neighbour = edge_index[0], edge_index[1]
        w = self.radial(radial, r)  # [pairs, n_w]: one row per atom pair (group maps edges to pairs)
        # both products in one pass over w, no copies of it (on a GPU if the library has the CUDA kernels)
        if self.use_ops and (not f.is_cuda or torch.ops.mlff.cuda_built()):
            vk = self.key_value(f, sh, w, neighbour, group)
            v, k = torch.split(vk, [self.value_dim, self.key_dim], dim=1)
        else:
            # split, not narrow: one gradient buffer for both halves in the backward
            w_v, w_k = torch.split(w, [self.n_value_weights, w.shape[1] - self.n_value_weights], dim=1)
            f_j = f.index_select(0, neighbour)
            v = self.value_tp(f_j, sh, w_v.index_select(0, group))
            k = self.key_tp(f_j, sh, w_k.index_select(0, group))
        q = self.query(f).index_select(0, centre)
        s = self.head_dot(q, k) * self.logit_scale                                   # [e, H]
        # α_ij = u_ij e^{s_ij} / (1 + Σ_j u_ij e^{s_ij}); shift by M_i = max(0, max_j s_ij) (cancels exactly)
        shift = torch.zeros((n, self.n_heads), dtype=s.dtype, device=s.device).scatter_reduce(
            0, centre[:, None].expand(-1, self.n_heads), s.detach(), reduce="amax", include_self=True)
        weight = cutoff[:, None] * torch.exp(s - shift.index_select(0, centre))       # [e, H]
        denom = torch.exp(-shift) + scatter_sum(weight, centre, n)                      # [n, H]
        alpha = weight / denom.index_select(0, centre)
        message = scatter_sum(self.weight_heads(v, alpha), centre, n)
        return self.nonlinearity(self.self_interaction(f) + self.mix(message))


class SE3Transformer(EquivariantModel):
    """SE(3)-Transformer (Hedelius thesis), direct-force or energy-gradient.

    Args:
        species: element symbols.
        r_max: cutoff (Å).
        n_features: channels per degree between layers (thesis code: 8).
        l_max: highest degree of hidden features (thesis: 2).
        l_max_sh: highest degree ``J`` of the kernel's spherical harmonics (default ``2·l_max``,
            every ``J ≤ k + l`` of Eq. 2.2; smaller is cheaper).
        n_layers: attention layers (thesis: 3) = ``n_message_passing``.
        n_heads, head_features: heads and channels per head (thesis: 8 heads × 2 channels).
        n_basis, radial_hidden, radial_layers: radial network (Bessel basis × cutoff → MLP).
        si_hidden: hidden width of the attentive self-interaction MLP.
        direct_forces: ``True``: ``forward`` returns forces ``[n, 3]`` (eV/Å) from the ``1o``
            output; ``False`` (default): atomic energies ``[n]`` (eV), forces by autograd.
        implementation: key/value kernels by mlff's C++ operator ``tp_uvw`` (``"ops"``), by
            e3nn (``"e3nn"``, the reference) or ``"auto"`` (the operator when the C++ library
            is built; e3nn for tensors on a GPU). Both give the same numbers
            (``tests/test_tensor_product_ops.py``).

    Raises ``ConfigError`` for ``l_max < 1``, ``n_layers < 1``, an unknown implementation or
    ``"ops"`` without the C++ library.
    """

    kind = "se3_transformer"

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 8, l_max: int = 2, n_layers: int = 3,
                 n_heads: int = 8, head_features: int = 2, n_basis: int = 8, radial_hidden: int = 32,
                 radial_layers: int = 2, si_hidden: int = 32, l_max_sh: int | None = None,
                 direct_forces: bool = False, implementation: str = "auto"):
        if l_max < 1 or n_layers < 1:
            raise ConfigError("se3_transformer needs l_max >= 1 and n_layers >= 1")
        use_ops = use_tensor_product_ops(implementation)
        super().__init__(species, r_max, dict(n_features=n_features, l_max=l_max, n_layers=n_layers, n_heads=n_heads,
                                              head_features=head_features, n_basis=n_basis,
                                              radial_hidden=radial_hidden, radial_layers=radial_layers,
                                              si_hidden=si_hidden, l_max_sh=l_max_sh, direct_forces=direct_forces,
                                              implementation=implementation),
                         direct_forces=direct_forces)
        self.n_message_passing = n_layers
        with float64_construction():  # exact Clebsch–Gordan coefficients
            self.edge_embedding = EdgeEmbedding(2 * l_max if l_max_sh is None else l_max_sh, r_max, n_basis, basis="bessel")
            hidden = irreps_up_to(n_features, l_max)
            self.hidden_dim = hidden.dim
            irreps = o3.Irreps(f"{len(species)}x0e")
            out_irreps = o3.Irreps("1x1o" if direct_forces else "1x0e")
            layers = []
            for k in range(n_layers):
                last = k == n_layers - 1
                target = out_irreps if last else hidden
                layers.append(SE3AttentionLayer(irreps, target, self.edge_embedding.irreps_sh, n_heads, head_features,
                                                n_basis, radial_hidden, radial_layers, si_hidden, nonlinearity=not last,
                                                use_ops=use_ops))
                irreps = target
            self.layers = nn.ModuleList(layers)
            with torch.no_grad():  # untrained model: reference energies / zero forces
                self.layers[-1].mix.weight.zero_()
                for block in self.layers[-1].self_interaction.blocks:
                    block.mlp[-1].weight.zero_()
                    block.mlp[-1].bias.zero_()

    def halo_widths(self) -> list[int]:
        return [self.hidden_dim] * (len(self.layers) - 1)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        sh, radial, cutoff, r = self.edge_embedding(edge_vec)
        radial, r, group = radial_per_pair(edge_index, edge_vec, radial, r)  # radial MLPs once per atom pair
        f = self.one_hot(species, edge_vec.dtype)  # exact on ghost atoms: no exchange before layer 1
        for t, layer in enumerate(self.layers):
            if t > 0:  # ghost rows are stale after a layer: refresh them from their owners
                f = torch.ops.mlff.halo_exchange(f)
            f = layer(f, sh, radial, r, cutoff, edge_index, group)
        if self.direct_forces:
            return self.energy_scale.scale * vector_from_l1(f)
        return self.energy_scale(f.squeeze(-1), species)
