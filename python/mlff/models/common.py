"""Building blocks shared by the models: cutoffs, radial bases, activations,
and the per-species energy scaling every model ends with.

All modules are TorchScript-compatible: they are exported by ``mlff-deploy``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_cutoff(r: torch.Tensor, r_max: float) -> torch.Tensor:
    """Behler's cosine cutoff ``f_c(r) = ½(cos(π r / r_max) + 1)`` for ``r < r_max``, else 0.

    Shape-preserving; smooth (C¹) at ``r_max``. Source: Behler & Parrinello,
    PRL 98, 146401 (2007); J. Behler, J. Chem. Phys. 134, 074106 (2011), Eq. 4.
    """
    fc = 0.5 * (torch.cos(r * (math.pi / r_max)) + 1.0)
    return torch.where(r < r_max, fc, torch.zeros_like(fc))


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """``ssp(x) = ln(½eˣ + ½) = softplus(x) − ln 2`` (Schütt thesis, Eq. 4.8); ssp(0) = 0."""
    return nn.functional.softplus(x) - math.log(2.0)


class ShiftedSoftplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_softplus(x)


class GaussianRBF(nn.Module):
    """Gaussian radial basis ``exp(−γ (r − μ_k)²)`` with ``n_rbf`` centres on ``[0, r_max]``.

    ``γ = 1 / (2 Δμ²)`` with ``Δμ`` the centre spacing (Schütt thesis, Eq. 3.4).
    Input ``r`` ``[e]`` (Å); output ``[e, n_rbf]``.
    """

    def __init__(self, n_rbf: int, r_max: float):
        super().__init__()
        centres = torch.linspace(0.0, r_max, n_rbf, dtype=torch.float64)
        spacing = r_max / (n_rbf - 1)
        self.register_buffer("centres", centres)
        self.gamma = 0.5 / spacing**2

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.gamma * (r[:, None] - self.centres) ** 2)


class AtomicEnergyScale(nn.Module):
    """``E_i = scale · y_i + shift + E0[species_i]``: turns the network's unit-scale
    output ``y_i`` into atomic energies (eV).

    ``E0`` (per-species reference energies), ``scale`` and ``shift`` are buffers fitted
    on the training set by :func:`mlff.train.statistics.fit_energy_scale`
    (reference energies by least squares on composition, scale = RMS force component).
    """

    def __init__(self, n_species: int):
        super().__init__()
        self.register_buffer("reference_energy", torch.zeros(n_species, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))

    def forward(self, y: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        return self.scale * y + self.shift + self.reference_energy[species]


class MLP(nn.Sequential):
    """Dense layers ``sizes[0] → … → sizes[-1]`` with ``activation`` between them
    (and after the last one if ``last_activation``)."""

    def __init__(self, sizes: list[int], activation: type[nn.Module] = ShiftedSoftplus, last_activation: bool = False,
                 bias: bool = True):
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, bias=bias))
            if k < len(sizes) - 2 or last_activation:
                layers.append(activation())
        super().__init__(*layers)


def reverse_edge_groups(edge_index: torch.Tensor, edge_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Group each edge with its reverse, so that a function of ``|r_ij|`` alone is
    evaluated once per atom pair instead of once per direction.

    Edges ``i → j`` (vector ``r``) and ``j → i`` (vector ``−r``) are the same pair;
    so are exact duplicates. Pairs are found by sorting on the unordered node pair and
    on the pair vector, oriented from the lower to the higher node index (for an atom's
    own periodic image, ``i → i``, so that its first non-zero component is positive)
    and quantised to ``2·max|r_c| / 2²¹`` (about 5e-6 Å at 5 Å). Edges between the
    same nodes that are different periodic images differ by a lattice vector, so they
    are never grouped; a pair split by the quantisation is merely computed twice.

    Using ``f(|r_rep|)`` for every edge of a group leaves the energy the same function
    of the positions (the grouped vectors are ``±`` each other), so forces, virials and
    higher derivatives are unchanged; only the split of ``∂E/∂r`` between the two
    directed edges moves onto the representative.

    Args:
        edge_index: ``[2, e]`` int64 (centre, neighbour) node indices.
        edge_vec: ``[e, 3]`` Å, any float dtype (only read, never differentiated).

    Returns:
        ``(representative [u] int64 edge indices, group [e] int64 index into them)``,
        ``u ≤ e``; ``group[representative[g]] == g``.
    """
    n_edges = edge_index.shape[1]
    if n_edges == 0:
        empty = torch.zeros(0, dtype=torch.long, device=edge_index.device)
        return empty, empty
    centre, neighbour = edge_index[0], edge_index[1]
    v = edge_vec.detach().to(torch.float64)
    first = torch.where(v[:, 0] != 0, v[:, 0], torch.where(v[:, 1] != 0, v[:, 1], v[:, 2]))
    flip = (centre > neighbour) | ((centre == neighbour) & (first < 0))
    v = torch.where(flip[:, None], -v, v)
    bound = v.abs().max() * (1.0 + 1e-12) + 1e-300
    levels = 2**21 - 1
    q = torch.round((v / bound + 1.0) * (0.5 * levels)).to(torch.long)  # each component in [0, 2^21)
    key_vec = (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]
    lo, hi = torch.minimum(centre, neighbour), torch.maximum(centre, neighbour)
    key_nodes = (lo << 32) | hi  # node indices < 2^31 (no data-dependent size: exportable)
    # lexicographic sort on (key_nodes, key_vec): two stable sorts, minor key first
    order = torch.sort(key_vec, stable=True).indices
    order = order[torch.sort(key_nodes[order], stable=True).indices]
    kn, kv = key_nodes[order], key_vec[order]
    start = torch.ones(n_edges, dtype=torch.bool, device=edge_index.device)
    start[1:] = (kn[1:] != kn[:-1]) | (kv[1:] != kv[:-1])
    group = torch.empty_like(order)
    group[order] = torch.cumsum(start.to(torch.long), 0) - 1
    return order[start], group
