"""DTNN: Deep Tensor Neural Network.

Source: K. T. Schütt, F. Arbabzadah, S. Chmiela, K.-R. Müller & A. Tkatchenko,
Nat. Commun. 8, 13890 (2017); K. T. Schütt, PhD thesis, TU Berlin (2018), Ch. 3
(seed ``001_schnet.md`` §2).

Architecture:

* embedding ``x_i⁽⁰⁾ = A[Z_i]`` (thesis Eq. 3.1);
* Gaussian expansion of the distance ``d̂_ij,k = exp(−γ (r_ij − k Δμ)²)``, centres
  ``0 … r_max``, ``γ = 1/(2 Δμ²)`` (Eq. 3.4; ``Δμ = 0.2`` Å as in the public dtnn code);
* ``T`` passes of **one shared** factorized tensor interaction (Eqs. 3.2, 3.7)::

      v_ij = tanh(W^{xf} ((W^{fx} x_j + b^{f1}) ∘ (W^{fd} d̂_ij + b^{f2}))) · f_c(r_ij)
      x_i ← x_i + Σ_j v_ij

  The cosine cutoff ``f_c`` multiplying ``v_ij`` is **an addition to the paper** (which
  uses a hard distance cutoff): it makes energies and forces continuous when an atom
  crosses ``r_max``;
* output ``o(x) = w₂ᵀ tanh(W₁ x + b₁) + b₂`` with one tanh hidden layer (Eq. 3.8;
  15 units as in the public code, last layer zero-initialised), then per-species
  reference energies and a fitted scale (:class:`AtomicEnergyScale`, the role of the
  paper's ``E_σ Ê_i + E_μ``).

``n_message_passing = T``: an atom's energy depends on atoms up to ``T · r_max`` away.
Between passes the features go through ``torch.ops.mlff.halo_exchange`` (identity in
Python; in multi-rank LAMMPS it refreshes ghost atoms' features from their owners).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops  # noqa: F401  (registers torch.ops.mlff.halo_exchange)
from ..errors import ConfigError
from .base import EnergyModel
from .common import GaussianRBF, cosine_cutoff


class DTNN(EnergyModel):
    """Deep Tensor Neural Network energy model.

    Args:
        species: element symbols, e.g. ``["H", "C"]``.
        r_max: cutoff radius (Å).
        n_features: atom feature width (paper: 30).
        n_factors: factor-space width of the tensor layer (paper: 60).
        n_interactions: number of passes ``T`` of the shared interaction (paper: 1–3).
        rbf_spacing: Gaussian centre spacing ``Δμ`` (Å); ``round(r_max/Δμ) + 1`` centres
            on ``[0, r_max]``.
        n_hidden: width of the output network's tanh hidden layer.

    ``forward(species [n] int64, edge_index [2, e] int64, edge_vec [e, 3] Å) ->
    atomic energies [n] eV`` in the model dtype (float32 or float64). Raises
    ``ConfigError`` at construction for non-positive sizes or spacing.
    """

    kind = "dtnn"

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 30, n_factors: int = 60,
                 n_interactions: int = 3, rbf_spacing: float = 0.2, n_hidden: int = 15):
        if min(n_features, n_factors, n_interactions, n_hidden) < 1 or rbf_spacing <= 0:
            raise ConfigError("DTNN sizes must be ≥ 1 and rbf_spacing > 0")
        super().__init__(species, r_max, dict(n_features=n_features, n_factors=n_factors,
                                              n_interactions=n_interactions, rbf_spacing=float(rbf_spacing),
                                              n_hidden=n_hidden))
        self.n_message_passing = n_interactions
        self.n_interactions = n_interactions
        n_rbf = max(2, int(round(r_max / rbf_spacing)) + 1)
        self.embedding = nn.Embedding(len(species), n_features)
        self.rbf = GaussianRBF(n_rbf, r_max)
        self.fx = nn.Linear(n_features, n_factors)           # W^{fx}, b^{f1}
        self.fd = nn.Linear(n_rbf, n_factors)                # W^{fd}, b^{f2}
        self.xf = nn.Linear(n_factors, n_features, bias=False)  # W^{xf} (no bias in Eq. 3.7)
        self.hidden = nn.Linear(n_features, n_hidden)
        self.out = nn.Linear(n_hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def halo_widths(self) -> list[int]:
        return [self.hparams["n_features"]] * (self.n_interactions - 1)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        centre, neighbour = edge_index[0], edge_index[1]
        r = torch.linalg.vector_norm(edge_vec, dim=1)
        fcut = cosine_cutoff(r, self.r_max)[:, None]
        distance_factors = self.fd(self.rbf(r))  # shared by all passes
        x = self.embedding(species)
        for t in range(self.n_interactions):
            if t > 0:  # refresh ghost atoms' features from their owners (multi-rank LAMMPS)
                x = torch.ops.mlff.halo_exchange(x)
            v = torch.tanh(self.xf(self.fx(x).index_select(0, neighbour) * distance_factors)) * fcut
            x = x + torch.zeros_like(x).index_add(0, centre, v)
        y = self.out(torch.tanh(self.hidden(x))).squeeze(1)
        return self.energy_scale(y, species)
