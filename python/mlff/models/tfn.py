"""Tensor-field network with direct force prediction (``tfn_dfp``).

Source: S. Batzner, MSc thesis, MIT (2019), "Learning Symmetry-Preserving Interatomic
Force Fields for Atomistic Simulations", Secs. 2.3–2.4 and 3.2 (seed ``000``), built on
Tensor Field Networks (N. Thomas et al., arXiv:1802.08219). Implemented with e3nn.

The network maps positions and species directly to one ``l = 1`` vector per atom, used as
the force (Eq. 2.12); there is no energy and the forces are not conservative.

Architecture (thesis Sec. 3.2: "a self-interaction layer was used for the embedding of
the chemical species, followed by a series of convolution-interaction-nonlinearity blocks
… repeated three times until the final layer, in which only a convolution followed by a
self-interaction layer and no nonlinearity was used"; four convolutions of width 30,
15 Gaussian radial basis functions):

* embedding: self-interaction of the one-hot species → ``n_features x 0e``;
* ``n_layers − 1`` blocks of
  - point convolution ``m_i = 1/√N_avg · Σ_j R(r_ij) ⊙ (V_j ⊗ Y(r̂_ij))`` (spherical-harmonic
    filters, a radial MLP on the Gaussian basis giving one weight per path and channel,
    Clebsch–Gordan coupling to all rotation orders ≤ ``l_max``),
  - self-interaction (Eq. 2.11, ``Σ_c' W^{(l)}_{cc'} V_{c'm}``, per-``l`` channel mixing,
    bias on scalars),
  - norm nonlinearity (``V_c ← σ(‖V_c‖ + b_c) V_c`` for ``l > 0``, ``SiLU(x + b)`` on scalars);
* final convolution and a self-interaction to ``1x1o``; ``F_i = scale · v_i`` (eV/Å), with
  ``scale`` the RMS training force component.

Deviation from the thesis: the radial functions are multiplied by NequIP's smooth
polynomial cutoff (the Gaussian basis times ``u(r)``), so forces are continuous when atoms
cross ``r_max``; the thesis's TFN has no cutoff envelope.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from ..errors import ConfigError
from .equivariant import (EdgeConvolution, EdgeEmbedding, EquivariantModel, NormActivation, float64_construction,
                          irreps_up_to, radial_per_pair, vector_from_l1)


class TFNBlock(nn.Module):
    """Convolution → self-interaction (→ norm nonlinearity unless ``last``)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, n_basis: int,
                 radial_hidden: int, radial_layers: int, last: bool, implementation: str = "auto"):
        super().__init__()
        self.conv = EdgeConvolution(irreps_in, irreps_sh, irreps_out, n_basis, radial_hidden, radial_layers,
                                    implementation)
        self.self_interaction = o3.Linear(self.conv.irreps_out, irreps_out, biases=True)
        self.irreps_out = o3.Irreps(irreps_out)
        self.nonlinearity = nn.Identity() if last else NormActivation(self.irreps_out)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, r: torch.Tensor,
                edge_index: torch.Tensor, group: torch.Tensor, inv_sqrt_neighbors: torch.Tensor) -> torch.Tensor:
        m = self.conv(x, sh, radial, r, edge_index, group)
        return self.nonlinearity(self.self_interaction(m * inv_sqrt_neighbors))


class TFNDirectForce(EquivariantModel):
    """TFN direct-force model (``direct_forces`` is always true).

    Args:
        species: element symbols.
        r_max: cutoff (Å).
        n_features: channels per rotation order (thesis: 30).
        l_max: highest rotation order of features and filters (≥ 1).
        n_layers: convolutions (thesis: 4) = ``n_message_passing``.
        n_basis: Gaussians on ``[0, r_max]`` (thesis: 15).
        radial_hidden, radial_layers: radial MLP shape.
        avg_num_neighbors: message normalisation (``None``: fitted on the training set).
        implementation: convolutions by mlff's fused C++ kernel (``"ops"``), by e3nn
            (``"e3nn"``), or the kernel when built (``"auto"``, default).

    ``forward(species [n], edge_index [2, e], edge_vec [e, 3] Å) -> forces [n, 3] eV/Å``.
    """

    kind = "tfn_dfp"

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 30, l_max: int = 1,
                 n_layers: int = 4, n_basis: int = 15, radial_hidden: int = 32, radial_layers: int = 2,
                 avg_num_neighbors: float | None = None, implementation: str = "auto"):
        if l_max < 1 or n_layers < 1:
            raise ConfigError("tfn_dfp needs l_max >= 1 and n_layers >= 1")
        super().__init__(species, r_max, dict(n_features=n_features, l_max=l_max, n_layers=n_layers, n_basis=n_basis,
                                              radial_hidden=radial_hidden, radial_layers=radial_layers,
                                              avg_num_neighbors=avg_num_neighbors, implementation=implementation),
                         direct_forces=True, avg_num_neighbors=avg_num_neighbors)
        self.n_message_passing = n_layers
        with float64_construction():  # exact Clebsch–Gordan coefficients
            self.edge_embedding = EdgeEmbedding(l_max, r_max, n_basis, basis="gaussian")
            irreps = o3.Irreps(f"{n_features}x0e")
            self.embedding = o3.Linear(f"{len(species)}x0e", irreps, biases=True)
            hidden = irreps_up_to(n_features, l_max)
            blocks = []
            for k in range(n_layers):
                last = k == n_layers - 1
                block = TFNBlock(irreps, o3.Irreps("1x1o") if last else hidden, self.edge_embedding.irreps_sh, n_basis,
                                 radial_hidden, radial_layers, last, implementation)
                blocks.append(block)
                irreps = block.irreps_out
            self.blocks = nn.ModuleList(blocks)
            with torch.no_grad():  # untrained model predicts zero forces
                self.blocks[-1].self_interaction.weight.zero_()

    def halo_widths(self) -> list[int]:
        return [block.irreps_out.dim for block in self.blocks[:-1]]

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        sh, radial, _, r = self.edge_embedding(edge_vec)
        radial, r, group = radial_per_pair(edge_index, edge_vec, radial, r)  # radial MLPs once per atom pair
        inv_sqrt_neighbors = self.avg_num_neighbors.rsqrt()
        x = self.embedding(self.one_hot(species, edge_vec.dtype))  # exact on ghosts: no exchange before block 1
        for t, block in enumerate(self.blocks):
            if t > 0:  # ghost rows are stale after a block: refresh them from their owners
                x = torch.ops.mlff.halo_exchange(x)
            x = block(x, sh, radial, r, edge_index, group, inv_sqrt_neighbors)
        return self.energy_scale.scale * vector_from_l1(x)
