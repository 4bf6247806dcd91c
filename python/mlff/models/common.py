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
