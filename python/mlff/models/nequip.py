"""NequIP-style E(3)-equivariant interatomic potential (built on e3nn).

Source: S. Batzner et al., "E(3)-equivariant graph neural networks for data-efficient and
accurate interatomic potentials", Nat. Commun. 13, 2453 (2022). This is a from-scratch
implementation of the architecture described there, not the ``nequip`` package.

Architecture:

* node attributes: one-hot species ``z_i``; initial features ``x_i = Linear(z_i)``
  (``n_features x 0e``);
* edge attributes: spherical harmonics ``Y(r̂_ij)`` up to ``l_max`` (``normalize=True``,
  component normalisation) and the Bessel basis ``b(r_ij)`` times the ``p = 6``
  polynomial envelope;
* ``n_interactions`` interaction blocks, each:
  ``h = Linear(x)``; ``m_i = 1/√N_avg · Σ_j R(r_ij) ⊙ (h_j ⊗ Y(r̂_ij))`` (channel-wise ``uvu``
  Clebsch–Gordan tensor product, one radial-MLP weight per path and channel);
  ``y = Linear(m) + SelfConnection(x, z)`` (a fully connected tensor product with the
  one-hot species); ``x ← Gate(y) (+ x when the irreps match)`` (SiLU on scalars,
  sigmoid gates on ``l > 0``);
* readout: ``Linear(x → n_features/2 x 0e) → Linear(→ 1x0e)`` gives ``y_i``, then
  ``E_i = scale · y_i + shift + E0[z_i]`` (:class:`AtomicEnergyScale`); forces by autograd.

``direct_forces=True``: the same network, but the readout is ``Linear(x → 1x1o)`` on the
last layer's features (only its ``1o`` channels contribute) and ``F_i = scale · v_i``
(eV/Å) is returned directly — no energy. ``N_avg`` (``avg_num_neighbors``) is fitted on the
training set (mean neighbours per atom) unless given.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn

from ..errors import ConfigError
from .equivariant import (EdgeConvolution, EdgeEmbedding, EquivariantModel, float64_construction, irreps_up_to,
                          radial_per_pair, vector_from_l1)


class NequIPInteraction(nn.Module):
    """One interaction block: ``x [n, irreps_in.dim] → [n, irreps_out.dim]`` (residual included)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_hidden: o3.Irreps, irreps_sh: o3.Irreps, n_species: int,
                 n_basis: int, radial_hidden: int, radial_layers: int, implementation: str = "auto"):
        super().__init__()
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.conv = EdgeConvolution(irreps_in, irreps_sh, irreps_hidden, n_basis, radial_hidden, radial_layers,
                                    implementation)
        reachable = {ir for _, ir in self.conv.irreps_out}
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l == 0 and ir in reachable])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_hidden if ir.l > 0 and ir in reachable])
        self.gate = Gate(scalars, [nn.functional.silu] * len(scalars), f"{gated.num_irreps}x0e",
                         [torch.sigmoid] if gated.num_irreps else [], gated)
        self.linear_out = o3.Linear(self.conv.irreps_out, self.gate.irreps_in)
        self.self_connection = o3.FullyConnectedTensorProduct(irreps_in, f"{n_species}x0e", self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out
        self.residual = o3.Irreps(irreps_in) == self.irreps_out

    def forward(self, x: torch.Tensor, attrs: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                r: torch.Tensor, edge_index: torch.Tensor, group: torch.Tensor,
                inv_sqrt_neighbors: torch.Tensor) -> torch.Tensor:
        m = self.conv(self.linear_in(x), sh, radial, r, edge_index, group) * inv_sqrt_neighbors
        y = self.gate(self.linear_out(m) + self.self_connection(x, attrs))
        if self.residual:
            y = y + x
        return y


class NequIP(EquivariantModel):
    """NequIP-style equivariant potential.

    Args:
        species: element symbols, e.g. ``["C", "H"]``.
        r_max: cutoff (Å).
        n_features: channels per irrep (``n_features x 0e + n_features x 1o + …``).
        l_max: highest rotation order of features and edge spherical harmonics (≥ 1).
        n_interactions: interaction blocks (= ``n_message_passing``).
        n_basis: Bessel functions; ``radial_hidden``/``radial_layers``: radial MLP shape.
        avg_num_neighbors: normalisation ``N_avg`` (``None``: fitted on the training set).
        direct_forces: output forces ``[n, 3]`` from a ``1o`` readout instead of energies.
        implementation: convolutions by mlff's fused C++ kernel (``"ops"``), by e3nn
            (``"e3nn"``), or the kernel when built (``"auto"``, default);
            see :class:`~mlff.models.equivariant.EdgeConvolution`.

    ``forward(species [n], edge_index [2, e], edge_vec [e, 3] Å) -> atomic energies [n] eV``
    (or forces ``[n, 3]`` eV/Å with ``direct_forces``).
    """

    kind = "nequip"

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 32, l_max: int = 1,
                 n_interactions: int = 3, n_basis: int = 8, radial_hidden: int = 64, radial_layers: int = 2,
                 avg_num_neighbors: float | None = None, direct_forces: bool = False, implementation: str = "auto"):
        if l_max < 1:
            raise ConfigError("nequip needs l_max >= 1")
        super().__init__(species, r_max, dict(n_features=n_features, l_max=l_max, n_interactions=n_interactions,
                                              n_basis=n_basis, radial_hidden=radial_hidden,
                                              radial_layers=radial_layers, avg_num_neighbors=avg_num_neighbors,
                                              direct_forces=direct_forces, implementation=implementation),
                         direct_forces=direct_forces, avg_num_neighbors=avg_num_neighbors)
        self.n_message_passing = n_interactions
        with float64_construction():  # exact Clebsch–Gordan coefficients
            n_species = len(species)
            self.edge_embedding = EdgeEmbedding(l_max, r_max, n_basis, basis="bessel")
            irreps_hidden = irreps_up_to(n_features, l_max)
            irreps = o3.Irreps(f"{n_features}x0e")
            self.embedding = o3.Linear(f"{n_species}x0e", irreps)
            layers = []
            for _ in range(n_interactions):
                layer = NequIPInteraction(irreps, irreps_hidden, self.edge_embedding.irreps_sh, n_species, n_basis,
                                          radial_hidden, radial_layers, implementation)
                layers.append(layer)
                irreps = layer.irreps_out
            self.interactions = nn.ModuleList(layers)
            if direct_forces:
                self.readout = nn.Sequential(o3.Linear(irreps, "1x1o"))
            else:
                self.readout = nn.Sequential(o3.Linear(irreps, f"{max(n_features // 2, 1)}x0e"),
                                             o3.Linear(f"{max(n_features // 2, 1)}x0e", "1x0e"))
            # Zero last layer: an untrained energy model predicts the reference energies,
            # an untrained direct-force model zero forces.
            with torch.no_grad():
                self.readout[-1].weight.zero_()

    def halo_widths(self) -> list[int]:
        return [layer.irreps_out.dim for layer in self.interactions[:-1]]

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        sh, radial, _, r = self.edge_embedding(edge_vec)
        radial, r, group = radial_per_pair(edge_index, edge_vec, radial, r)  # radial MLPs once per atom pair
        attrs = self.one_hot(species, edge_vec.dtype)
        inv_sqrt_neighbors = self.avg_num_neighbors.rsqrt()
        x = self.embedding(attrs)  # exact on ghost atoms too: no exchange before layer 1
        for t, layer in enumerate(self.interactions):
            if t > 0:  # ghost rows are stale after a layer: refresh them from their owners
                x = torch.ops.mlff.halo_exchange(x)
            x = layer(x, attrs, sh, radial, r, edge_index, group, inv_sqrt_neighbors)
        y = self.readout(x)
        if self.direct_forces:
            return self.energy_scale.scale * vector_from_l1(y)
        return self.energy_scale(y.squeeze(-1), species)
