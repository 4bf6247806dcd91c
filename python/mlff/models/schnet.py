"""SchNet: continuous-filter convolutional neural network.

Source: K. T. Schütt et al., J. Chem. Phys. 148, 241722 (2018); K. T. Schütt,
PhD thesis, TU Berlin (2018), Ch. 4 (seed ``001_schnet.md``).

Architecture (thesis Eqs. 4.5–4.8, Sec. 4.3):

* embedding ``x_i⁽⁰⁾ = A[Z_i]``;
* ``T`` interaction blocks with untied weights, each a residual update
  ``x_i ← x_i + v_i`` where ``v = Dense(ssp(Dense(cfconv(Dense_nobias(x)))))``;
* cfconv ``h_i = Σ_j h_j ∘ W(r_ij)``, the filter ``W`` produced by a
  filter-generating network ``Dense+ssp → Dense+ssp`` on a Gaussian RBF of ``r_ij``,
  multiplied here by a cosine cutoff so energies are smooth at ``r_max``;
* atom-wise output ``Dense(F→F/2) + ssp → Dense(F/2→1)``, then per-species
  reference energies and a fitted scale (:class:`AtomicEnergyScale`).

Unlike the thesis's periodic variant, messages are not divided by the neighbour
count: energies stay extensive and smooth when atoms cross the cutoff.

Before every interaction block but the first, the features go through
``torch.ops.mlff.halo_exchange`` (:mod:`mlff.ops`): the identity in Python; in
LAMMPS on several MPI ranks it refreshes the features of ghost atoms from their
owners, so the ghost cutoff can stay ``r_max`` (``docs/model_interface.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops  # noqa: F401  (registers torch.ops.mlff.halo_exchange)
from .base import EnergyModel
from .common import MLP, GaussianRBF, cosine_cutoff, shifted_softplus


class Interaction(nn.Module):
    """One SchNet interaction block: ``x [n, F] → v [n, F]`` (the residual update)."""

    def __init__(self, n_features: int, n_filters: int, n_rbf: int):
        super().__init__()
        self.filter_net = MLP([n_rbf, n_filters, n_filters], last_activation=True)
        self.in2f = nn.Linear(n_features, n_filters, bias=False)
        self.f2out = nn.Linear(n_filters, n_features)
        self.dense = nn.Linear(n_features, n_features)

    def forward(self, x: torch.Tensor, rbf: torch.Tensor, fcut: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        w = self.filter_net(rbf) * fcut[:, None]
        h = self.in2f(x)
        messages = h.index_select(0, edge_index[1]) * w
        h = torch.zeros_like(h).index_add_(0, edge_index[0], messages)
        return self.dense(shifted_softplus(self.f2out(h)))


class SchNet(EnergyModel):
    """SchNet energy model.

    Args:
        species: element symbols the model knows, e.g. ``["C", "H"]``.
        r_max: cutoff radius (Å).
        n_features: atom feature width ``F`` (thesis default 64).
        n_filters: filter width (default ``F``).
        n_interactions: number of interaction blocks ``T`` (thesis: 3 for MD17).
        n_rbf: number of Gaussians on ``[0, r_max]``.

    ``forward(species [n], edge_index [2, e], edge_vec [e, 3] Å) -> atomic energies [n] eV``.
    """

    kind = "schnet"

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 64, n_filters: int | None = None,
                 n_interactions: int = 3, n_rbf: int = 20):
        n_filters = n_features if n_filters is None else n_filters
        super().__init__(species, r_max, dict(n_features=n_features, n_filters=n_filters,
                                              n_interactions=n_interactions, n_rbf=n_rbf))
        self.n_message_passing = n_interactions
        self.embedding = nn.Embedding(len(species), n_features)
        self.rbf = GaussianRBF(n_rbf, r_max)
        self.interactions = nn.ModuleList(Interaction(n_features, n_filters, n_rbf) for _ in range(n_interactions))
        self.readout = MLP([n_features, n_features // 2, 1])
        # Zero-initialised last layer: the untrained model predicts the reference energies.
        nn.init.zeros_(self.readout[-1].weight)
        nn.init.zeros_(self.readout[-1].bias)

    def halo_widths(self) -> list[int]:
        return [self.hparams["n_features"]] * (len(self.interactions) - 1)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        r = torch.linalg.vector_norm(edge_vec, dim=1)
        rbf = self.rbf(r)
        fcut = cosine_cutoff(r, self.r_max)
        x = self.embedding(species)  # exact on ghost atoms too: no exchange before block 1
        for t, block in enumerate(self.interactions):
            if t > 0:  # ghost rows of x are stale after a block: refresh them from their owners
                x = torch.ops.mlff.halo_exchange(x)
            x = x + block(x, rbf, fcut, edge_index)
        y = self.readout(x).squeeze(-1)
        return self.energy_scale(y, species)
