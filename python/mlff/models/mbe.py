"""MBE: coupled many-body-expansion network.

Source: X. Zhang, "3 approaches to neural network potentials" (2019), seed
``003_7be313722f4f457f.txt``: Eq. 2 (2-body terms coupled into 1-body terms),
Eq. 4 (3-body terms coupled into lower orders), §4.3 (both as inputs of one atomic
network), Appendix B (inverse-distance features, standardised).

Atom-centred form, ``E = Σ_i E_i``::

    E_i = φ_out([ Σ_j f_c(r_ij) φ_2(u_ij, s_i, s_j)              (Eq. 2)
                  Σ_j f_c(r_ij) φ_3( Σ_k t_ijk )                   (Eq. 4)
                  onehot(s_i) ])
    t_ijk = f_c(r_ij) f_c(r_ik) ψ(sym(j, k), u_jk, s_i)

with ``u = (1/r − μ_u)/σ_u`` the standardised inverse distance (Appendix B; ``μ_u``,
``σ_u`` fitted on the training pairs by :meth:`ManyBodyExpansion.fit_statistics`),
``j, k`` neighbours of ``i`` inside ``r_max`` and ``k ≠ j``. ``φ_2``, ``ψ``, ``φ_3``,
``φ_out`` are MLPs with one tanh hidden layer (seed Table 4: widths 50, pair features
20, triplet features 10; the seed does not state the activation — tanh is our choice,
smooth so forces are continuous).

Departures from the seed, needed for a force field that scales to periodic systems:

* the seed sums over all atoms of a 6-atom cluster; here every term carries the
  smooth cutoff ``f_c`` (cosine by default) of the distances from the centre, so
  ``E`` and ``F`` are continuous when atoms cross ``r_max`` and the cost is linear in
  the number of atoms. ``r_jk`` itself is not cut off (it is < 2 r_max);
* element types (which the seed leaves as future work) enter as one-hot vectors;
* the triplet network sees ``(j, k)`` through a symmetric, injective encoding of the
  unordered pair ``{a_j, a_k}``, ``a_j = [u_ij, onehot(s_j)]``: ``a_j + a_k`` and the
  upper triangle of ``a_j a_kᵀ + a_k a_jᵀ``, plus ``u_jk`` and ``onehot(s_i)``. So
  ``ψ`` is invariant to swapping ``j`` and ``k`` and each unordered triplet is
  evaluated once and added to both ``Σ_k t_ijk`` and ``Σ_j t_ikj``;
* the seed's Eq. 5 (an MLP around ``Σ_i``) is not implemented: it is not
  extensive and has no atomic energies.

``three_body=False`` gives seed Eq. 2 alone. ``n_message_passing = 1``.
"""

from __future__ import annotations

from typing import Any, List, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .base import EnergyModel
from .symmetry_functions import CUTOFFS, cutoff_function, edge_pairs


def _mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.Tanh(), nn.Linear(n_hidden, n_out))


class ManyBodyExpansion(EnergyModel):
    """Coupled 2- and 3-body expansion energy model (seed 003, Eqs. 2 and 4).

    Args:
        species: element symbols, e.g. ``["H", "C"]``.
        r_max: cutoff radius (Å).
        n_pair_features: output width of the pair network ``φ_2`` (seed: 20).
        n_triplet_features: output width of ``ψ`` and ``φ_3`` (seed: 10).
        n_hidden: hidden width of every network (seed: 50).
        three_body: include the coupled 3-body term (Eq. 4); ``False`` is Eq. 2 alone.
        cutoff: ``"cosine"`` (default) or ``"polynomial"`` (γ = ``cutoff_gamma``).

    ``forward(species [n] int64, edge_index [2, e] int64, edge_vec [e, 3] Å) ->
    atomic energies [n] eV`` in the model dtype (float32 or float64). Raises
    ``ConfigError`` at construction for non-positive sizes or an unknown cutoff.
    Cost and memory are linear in the number of triplets ``Σ_i c_i(c_i − 1)/2``.
    """

    kind = "mbe"

    def __init__(self, species: list[str], r_max: float = 5.0, n_pair_features: int = 20,
                 n_triplet_features: int = 10, n_hidden: int = 50, three_body: bool = True,
                 cutoff: str = "cosine", cutoff_gamma: float = 5.0):
        if min(n_pair_features, n_triplet_features, n_hidden) < 1:
            raise ConfigError("MBE network sizes must be ≥ 1")
        if cutoff not in CUTOFFS:
            raise ConfigError(f"unknown cutoff {cutoff!r}; available: {list(CUTOFFS)}")
        super().__init__(species, r_max, dict(n_pair_features=n_pair_features, n_triplet_features=n_triplet_features,
                                              n_hidden=n_hidden, three_body=bool(three_body), cutoff=cutoff,
                                              cutoff_gamma=float(cutoff_gamma)))
        self.n_message_passing = 1
        S = len(species)
        self.n_species = S
        self.three_body = bool(three_body)
        self.cutoff = cutoff
        self.cutoff_gamma = float(cutoff_gamma)
        self.register_buffer("inv_r_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("inv_r_std", torch.ones((), dtype=torch.float64))
        self.pair_net = _mlp(1 + 2 * S, n_hidden, n_pair_features)
        A = 1 + S
        # upper triangle of an [A, A] matrix, flattened: a plain tensor attribute, not an int64
        # buffer (torch's EMA averaging would round integer buffers through floating point)
        self.sym_index = torch.tensor([r * A + c for r in range(A) for c in range(r, A)], dtype=torch.int64)
        n_triplet_in = A + A * (A + 1) // 2 + 1 + S
        self.triplet_net = _mlp(n_triplet_in, n_hidden, n_triplet_features)
        self.coupling_net = _mlp(n_triplet_features, n_hidden, n_triplet_features)
        n_out_in = n_pair_features + (n_triplet_features if self.three_body else 0) + S
        self.out_net = _mlp(n_out_in, n_hidden, 1)
        nn.init.zeros_(self.out_net[-1].weight)
        nn.init.zeros_(self.out_net[-1].bias)

    def inverse_distance(self, r: torch.Tensor) -> torch.Tensor:
        """Standardised inverse distance ``(1/r − μ_u)/σ_u`` (seed Appendix B)."""
        return (1.0 / r - self.inv_r_mean) / self.inv_r_std

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        n = species.shape[0]
        dtype = edge_vec.dtype
        keep = torch.nonzero(torch.linalg.vector_norm(edge_vec.detach(), dim=1) < self.r_max).squeeze(1)
        centre = edge_index[0].index_select(0, keep)
        neighbour = edge_index[1].index_select(0, keep)
        vec = edge_vec.index_select(0, keep)
        r = torch.linalg.vector_norm(vec, dim=1)
        fc = cutoff_function(r, self.r_max, self.cutoff, self.cutoff_gamma)[:, None]
        u = self.inverse_distance(r)[:, None]
        onehot = nn.functional.one_hot(species, self.n_species).to(dtype)
        oh_i = onehot.index_select(0, centre)
        oh_j = onehot.index_select(0, neighbour)
        pair = self.pair_net(torch.cat([u, oh_i, oh_j], dim=1)) * fc
        parts: List[torch.Tensor] = [torch.zeros(n, pair.shape[1], dtype=dtype, device=vec.device)
                                     .index_add(0, centre, pair)]
        if self.three_body:
            a, b = edge_pairs(centre, n)
            feat_a = torch.cat([u, oh_j], dim=1)  # a_j = [u_ij, onehot(s_j)]
            fa, fb = feat_a.index_select(0, a), feat_a.index_select(0, b)
            outer = fa[:, :, None] * fb[:, None, :]
            sym = (outer + outer.transpose(1, 2)).flatten(1).index_select(1, self.sym_index.to(vec.device))
            u_jk = self.inverse_distance(torch.linalg.vector_norm(vec.index_select(0, b) - vec.index_select(0, a),
                                                                  dim=1))[:, None]
            psi = self.triplet_net(torch.cat([fa + fb, sym, u_jk, oh_i.index_select(0, a)], dim=1))
            t = psi * (fc.index_select(0, a) * fc.index_select(0, b))
            h = torch.zeros(vec.shape[0], t.shape[1], dtype=dtype, device=vec.device)
            h = h.index_add(0, a, t).index_add(0, b, t)  # h_ij = Σ_k t_ijk
            coupled = self.coupling_net(h) * fc
            parts.append(torch.zeros(n, coupled.shape[1], dtype=dtype, device=vec.device).index_add(0, centre, coupled))
        parts.append(onehot)
        y = self.out_net(torch.cat(parts, dim=1)).squeeze(1)
        return self.energy_scale(y, species)

    def fit_statistics(self, graphs: Sequence[Any]) -> dict[str, Any]:
        """Standardise the inverse distances: ``μ_u``, ``σ_u`` = mean and standard deviation
        of ``1/r_ij`` (Å⁻¹) over all training pairs inside ``r_max`` (seed Appendix B).
        Returns the fitted values for the training log."""
        inv = []
        for g in graphs:
            r = torch.linalg.vector_norm(g.edge_vec().double(), dim=1)
            inv.append(1.0 / r[r < self.r_max])
        values = torch.cat(inv) if inv else torch.zeros(0, dtype=torch.float64)
        if values.numel() < 2:
            return {"inv_r_mean": float(self.inv_r_mean), "inv_r_std": float(self.inv_r_std)}
        mean, std = float(values.mean()), float(values.std(correction=0))
        self.inv_r_mean.fill_(mean)
        self.inv_r_std.fill_(std if std > 1e-8 else 1.0)
        return {"inv_r_mean": mean, "inv_r_std": float(self.inv_r_std)}
