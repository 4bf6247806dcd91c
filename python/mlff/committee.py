"""Committees of models: one deployed file, the mean prediction and its spread.

A committee is ``N`` models of the same kind, species and ``r_max`` trained on the
same data from different random seeds (``mlff train --committee N``). Their spread is
an estimate of the model's error where no reference is at hand (query by committee:
Seung, Opper, Sompolinsky, COLT 1992; as "model deviation" in DP-GEN: Zhang et al.,
Comput. Phys. Commun. 253, 107206 (2020), Eq. 2).

Deployed (``mlff-deploy`` of a committee run), the file's ``forward`` has the usual
contract (``docs/model_interface.md``: the *mean* ``atomic_energy`` and ``edge_grad``,
or the mean ``forces`` of direct-force members) plus, per member ``m``:

* ``member_forces`` ``[n_nodes, N, 3]`` (eV/Å): the forces on each node from this
  graph's edges, ``F_i^m = Σ_j g_ij^m − Σ_j g_ji^m``. On one rank (and in Python) these
  are the members' forces; on several LAMMPS ranks the ghost rows still have to be
  summed onto their owners (the pair style does that by reverse communication);
* ``member_atomic_energy`` ``[n_nodes, N]`` (eV; energy models);
* ``member_virial`` ``[N, 3, 3]`` (eV): ``W^m = −Σ_ij r_ij ⊗ g_ij^m`` over this graph's edges.

From the members' forces, per atom ``i`` (population standard deviations over members,
as DP-GEN):

* ``force_deviation`` ``σ_F,i = sqrt(Σ_c Var_m F_ic^m)`` (the norm of the standard
  deviation vector, eV/Å; DP-GEN's ``devi_f``);
* ``force_deviation_max`` ``max_c sqrt(Var_m F_ic^m)`` (eV/Å);
* ``energy_deviation_atom`` ``sqrt(Var_m e_i^m)`` (eV), and for the structure
  ``energy_deviation = sqrt(Var_m E^m) / n_atoms`` (eV/atom).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from .models import EnergyModel


def _node_forces(edge_grad: torch.Tensor, edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    forces = torch.zeros(n_nodes, 3, dtype=edge_grad.dtype, device=edge_grad.device)
    forces = forces.index_add(0, edge_index[0], edge_grad)
    return forces.index_add(0, edge_index[1], -edge_grad)


class DeployedCommittee(nn.Module):
    """Committee of energy models: ``forward(species [n] int64, edge_index [2, e] int64,
    edge_vec [e, 3], n_local=None) -> {"atomic_energy" [n], "edge_grad" [e, 3] (means),
    "member_forces" [n, N, 3], "member_atomic_energy" [n, N], "member_virial" [N, 3, 3]}``.
    Each member's energy and gradient come from its own forward and backward pass over the
    shared graph (``N`` passes, so a committee costs ``N`` models). ``n_local``: as
    :class:`mlff.deploy.DeployedPotential` (energies of the first ``n_local`` nodes)."""

    __constants__ = ["pass_n_local", "n_members"]

    def __init__(self, members: list[EnergyModel]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.n_members = len(members)
        self.pass_n_local = bool(getattr(members[0], "accepts_n_local", False))

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: Optional[int] = None) -> Dict[str, torch.Tensor]:
        edge_vec = edge_vec.detach().requires_grad_(True)
        n_nodes = species.shape[0]
        energies = []
        grads = []
        for member in self.members:
            if self.pass_n_local:
                atomic = member(species, edge_index, edge_vec, n_local)
            else:
                atomic = member(species, edge_index, edge_vec)
            energy = atomic.sum() if n_local is None else atomic[:n_local].sum()
            g = torch.autograd.grad([energy], [edge_vec], allow_unused=True)[0]
            if g is None:
                g = torch.zeros_like(edge_vec)
            energies.append(atomic.detach())
            grads.append(g)
        member_grad = torch.stack(grads)  # [N, e, 3]
        member_forces = torch.stack([_node_forces(g, edge_index, n_nodes) for g in grads], dim=1)
        vec = edge_vec.detach()
        member_virial = -torch.einsum("ea,meb->mab", vec, member_grad)
        member_energy = torch.stack(energies, dim=1)
        return {"atomic_energy": member_energy.mean(dim=1), "edge_grad": member_grad.mean(dim=0),
                "member_forces": member_forces, "member_atomic_energy": member_energy,
                "member_virial": member_virial}


class DeployedForceCommittee(nn.Module):
    """Committee of direct-force models: ``-> {"forces" [n, 3] (mean), "member_forces"
    [n, N, 3]}`` (``n_local`` accepted for the common signature)."""

    __constants__ = ["n_members"]

    def __init__(self, members: list[EnergyModel]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.n_members = len(members)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: Optional[int] = None) -> Dict[str, torch.Tensor]:
        forces = []
        for member in self.members:
            forces.append(member(species, edge_index, edge_vec).detach())
        member_forces = torch.stack(forces, dim=1)
        return {"forces": member_forces.mean(dim=1), "member_forces": member_forces}


def check_members(members: list[EnergyModel]) -> None:
    """``ConfigError`` unless all members share kind, species, ``r_max`` and force type."""
    from .errors import ConfigError

    if len(members) < 2:
        raise ConfigError(f"a committee needs at least 2 members, got {len(members)}")
    first = members[0]
    for k, m in enumerate(members[1:], start=1):
        for what, a, b in (("kind", first.kind, m.kind), ("species", first.species, m.species),
                           ("r_max", first.r_max, m.r_max),
                           ("direct forces", getattr(first, "direct_forces", False),
                            getattr(m, "direct_forces", False))):
            if a != b:
                raise ConfigError(f"committee member {k} differs from member 0 in {what}: {b!r} vs {a!r}")


def deviations(member_forces: np.ndarray, member_atomic_energy: np.ndarray | None = None) -> dict[str, np.ndarray | float]:
    """Per-atom deviations from the members' forces ``[n, N, 3]`` (eV/Å) and atomic
    energies ``[n, N]`` (eV); see the module docstring. Population (ddof 0) variances."""
    var = member_forces.var(axis=1)  # [n, 3]
    out: dict[str, np.ndarray | float] = {"force_deviation": np.sqrt(var.sum(axis=1)),
                                          "force_deviation_max": np.sqrt(var.max(axis=1))}
    if member_atomic_energy is not None:
        out["energy_deviation_atom"] = member_atomic_energy.std(axis=1)
        out["energy_deviation"] = float(member_atomic_energy.sum(axis=0).std() / len(member_atomic_energy))
    return out
