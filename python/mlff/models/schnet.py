"""SchNet: continuous-filter convolutional neural network.

Source: K. T. Schütt et al., J. Chem. Phys. 148, 241722 (2018); K. T. Schütt,
PhD thesis, TU Berlin (2018), Ch. 4 (seed ``001_schnet.md``).

Architecture (thesis Eqs. 4.5–4.8, Sec. 4.3):

* embedding ``x_i⁽⁰⁾ = A[Z_i]``;
* ``T`` interaction blocks with untied weights, each a residual update
  ``x_i ← x_i + v_i`` where ``v = Dense(ssp(Dense(cfconv(Dense_nobias(x)))))``;
* cfconv ``h_i = Σ_j h_j ∘ W(r_ij)``, the filter ``W`` produced by a
  filter-generating network ``Dense+ssp → Dense+ssp`` on a Gaussian RBF of ``r_ij``,
  multiplied here by a cosine cutoff so energies are smooth at ``r_max``. The filters
  depend on ``|r_ij|`` only, so they are computed once per atom pair, not per direction
  (:func:`~mlff.models.common.reverse_edge_groups`), and the convolution runs in mlff's
  C++ operator ``torch.ops.mlff.edge_conv``: together 2–3× faster than per-edge filters
  with PyTorch gathers, and identical in value;
* atom-wise output ``Dense(F→F/2) + ssp → Dense(F/2→1)``, then per-species
  reference energies and a fitted scale (:class:`AtomicEnergyScale`).

Unlike the thesis's periodic variant, messages are not divided by the neighbour
count: energies stay extensive and smooth when atoms cross the cutoff.

Before every interaction block but the first, the filter-space features ``in2f(x)``
go through ``torch.ops.mlff.halo_exchange`` (:mod:`mlff.ops`): the identity in
Python; in LAMMPS on several MPI ranks it refreshes the rows of ghost atoms from
their owners, so the ghost cutoff can stay ``r_max`` (``docs/model_interface.md``)
and each rank updates only the atoms it owns.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from .. import ops  # registers torch.ops.mlff.*
from ..ops import export as export_ops
from ..errors import ConfigError
from .base import EnergyModel
from .common import MLP, GaussianRBF, cosine_cutoff, reverse_edge_groups, shifted_softplus
from .radial_table import RadialTable, lookup, tabulate


IMPLEMENTATIONS = ("auto", "ops", "torch")


def _edge_conv(h: torch.Tensor, w: torch.Tensor, group: torch.Tensor, edge_index: torch.Tensor,
               n_out: int) -> torch.Tensor:
    """``torch.ops.mlff.edge_conv`` (its export form while traced for an AOTInductor
    package, :mod:`mlff.aoti`)."""
    if not torch.jit.is_scripting():  # eager only
        if export_ops.ENABLED:
            return torch.ops.mlff.edge_conv_export(h, w, edge_index[1], group, edge_index[0], n_out)
    return torch.ops.mlff.edge_conv(h, w, group, edge_index[1], edge_index[0], n_out)


class Interaction(nn.Module):
    """One SchNet interaction block: ``x [n, F] → v [n, F]`` (the residual update).

    The filters are computed once per atom pair (``rbf [u, n_rbf]``, ``fcut [u]``) and
    ``group [e]`` maps every directed edge to its pair. ``use_ops``: the convolution
    ``h_i = Σ_j h_j ∘ W_ij`` by mlff's C++ operator ``torch.ops.mlff.edge_conv``, which
    never builds the per-edge filter or message tensors; otherwise by PyTorch gathers and
    ``index_add_`` (the reference).

    ``fused_filter`` (set on deployed copies by :meth:`SchNet.for_export`): the filter
    network by ``torch.ops.mlff.schnet_filter``, one vectorised pass per pair that also
    yields ``dW/dr`` and keeps no activations; first derivatives only.

    ``tabulated`` (set by :meth:`SchNet.tabulate_radial`, ``mlff-deploy --tabulate``): the
    filter network is replaced by ``filter_table`` (:mod:`mlff.models.radial_table`), read
    by ``torch.ops.mlff.radial_table`` on the CPU and by PyTorch on other devices.
    """

    # TorchScript constants: the branches not taken are not compiled
    __constants__ = ["use_ops", "fused_filter", "tabulated"]

    def __init__(self, n_features: int, n_filters: int, n_rbf: int, use_ops: bool):
        super().__init__()
        self.filter_net = MLP([n_rbf, n_filters, n_filters], last_activation=True)
        self.in2f = nn.Linear(n_features, n_filters, bias=False)
        self.f2out = nn.Linear(n_filters, n_features)
        self.dense = nn.Linear(n_features, n_features)
        self.use_ops = use_ops
        self.fused_filter = False
        self.tabulated = False
        # not persistent: checkpoints never hold a table, deployed files do
        self.register_buffer("filter_table", torch.zeros(0, 3, 0), persistent=False)

    def filters(self, r: torch.Tensor, rbf: torch.Tensor, fcut: torch.Tensor, rbf_centres: torch.Tensor,
                rbf_gamma: float, r_max: float) -> torch.Tensor:
        """``W(r) [u, n_filters]`` for pair distances ``r [u]`` (Å)."""
        if self.tabulated:
            return lookup(r, self.filter_table, r_max)
        if self.fused_filter and not r.is_cuda:
            first, second = self.filter_net[0], self.filter_net[2]
            if not torch.jit.is_scripting():  # traced for an AOTI package (mlff.aoti): eager only
                if export_ops.ENABLED:
                    return export_ops.schnet_filter(r, rbf_centres, rbf_gamma, r_max, first.weight, first.bias,
                                                    second.weight, second.bias)
            return torch.ops.mlff.schnet_filter(r, rbf_centres, rbf_gamma, r_max, first.weight, first.bias,
                                                second.weight, second.bias)
        return self.filter_net(rbf) * fcut[:, None]

    def forward(self, h: torch.Tensor, w: torch.Tensor, edge_index: torch.Tensor, group: torch.Tensor,
                n_out: int) -> torch.Tensor:
        """``h = in2f(x)`` of every node ``[n, n_filters]`` and the pair filters ``w`` →
        update ``v`` of the first ``n_out`` nodes ``[n_out, F]`` (every edge's centre must
        be one of them)."""
        if self.use_ops:
            h = _edge_conv(h, w, group, edge_index, n_out)
        else:
            messages = h.index_select(0, edge_index[1]) * w.index_select(0, group)
            h = h.new_zeros(n_out, h.shape[1]).index_add_(0, edge_index[0], messages)
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
        implementation: the convolution by mlff's C++ operator (``"ops"``), by PyTorch
            gathers and scatters (``"torch"``, the reference), or the operator when the
            library is built (``"auto"``). Both give the same numbers
            (``tests/test_edge_conv_ops.py``).

    Raises ``ConfigError`` for an unknown implementation or ``"ops"`` without the library.

    ``forward(species [n], edge_index [2, e], edge_vec [e, 3] Å, n_local=None) -> atomic
    energies [n] eV``. With ``n_local`` and a halo exchanger installed (LAMMPS, halo mode),
    only the first ``n_local`` nodes (the atoms this rank owns, the centres of every edge)
    are updated; ghost rows are refreshed from their owners before each convolution, and
    ghost energies are returned as 0.
    """

    kind = "schnet"
    accepts_n_local = True
    __constants__ = ["fused_filter", "tabulated"]

    def __init__(self, species: list[str], r_max: float = 5.0, n_features: int = 64, n_filters: int | None = None,
                 n_interactions: int = 3, n_rbf: int = 20, implementation: str = "auto"):
        n_filters = n_features if n_filters is None else n_filters
        if implementation not in IMPLEMENTATIONS:
            raise ConfigError(f"unknown SchNet implementation {implementation!r}; available: {list(IMPLEMENTATIONS)}")
        if implementation == "ops" and not ops.NATIVE:
            raise ConfigError(f"SchNet implementation 'ops' needs the C++ library: {ops.WHERE}")
        super().__init__(species, r_max, dict(n_features=n_features, n_filters=n_filters,
                                              n_interactions=n_interactions, n_rbf=n_rbf,
                                              implementation=implementation))
        use_ops = implementation == "ops" or (implementation == "auto" and ops.NATIVE)
        self.fused_filter = False
        self.tabulated = False
        self.n_message_passing = n_interactions
        self.embedding = nn.Embedding(len(species), n_features)
        self.rbf = GaussianRBF(n_rbf, r_max)
        self.interactions = nn.ModuleList(Interaction(n_features, n_filters, n_rbf, use_ops) for _ in range(n_interactions))
        self.readout = MLP([n_features, n_features // 2, 1])
        # Zero-initialised last layer: the untrained model predicts the reference energies.
        nn.init.zeros_(self.readout[-1].weight)
        nn.init.zeros_(self.readout[-1].bias)

    def for_export(self) -> nn.Module:
        """Deployed copies (LAMMPS, ``mlff eval``, the ASE calculator) compute the filters
        with the fused kernel ``torch.ops.mlff.schnet_filter`` when the C++ operators are
        used: same values, about 1.2x faster in LAMMPS and far less memory traffic, but
        no weight gradients or second derivatives (train the Python model instead)."""
        if self.interactions[0].use_ops:
            self.fused_filter = True
            for block in self.interactions:
                block.fused_filter = True
        return self

    def tabulate_radial(self, tolerance: float = 1e-8) -> list[RadialTable]:
        """Replace every block's filter network by a table of ``W(r)`` on ``[0, r_max]``
        (:func:`mlff.models.radial_table.tabulate`: quintic Hermite, values and
        derivatives within ``tolerance`` relative to the network's in float64) — for a
        deployed copy (``mlff-deploy --tabulate``): a SchNet force call is then about 2×
        faster, but the filter weights no longer train. Returns the blocks' tables."""
        tables = []
        rbf = copy.deepcopy(self.rbf).double()
        for block in self.interactions:
            net = copy.deepcopy(block.filter_net).double()
            table = tabulate(lambda r: net(rbf(r)) * cosine_cutoff(r, self.r_max)[:, None], self.r_max, tolerance)
            block.filter_table = table.table.to(block.filter_net[0].weight.dtype)
            block.tabulated = True
            tables.append(table)
        self.tabulated = True
        return tables

    def halo_widths(self) -> list[int]:
        # the filter-space features h = in2f(x) of blocks 2..T
        return [self.hparams["n_filters"]] * (len(self.interactions) - 1)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor,
                n_local: Optional[int] = None) -> torch.Tensor:
        n = species.shape[0]
        # Halo mode: ghost rows come from their owners, so only owned nodes are computed
        # (a rank has 2-3x more ghosts than owned atoms at r_max 5 Å).
        m = n_local if n_local is not None and torch.ops.mlff.halo_active() else n
        # The filters depend on |r_ij| only: evaluate them once per atom pair, not per
        # direction (the filter networks are most of the cost).
        representative, group = reverse_edge_groups(edge_index, edge_vec)
        r = torch.linalg.vector_norm(edge_vec.index_select(0, representative), dim=1)
        if self.tabulated or (self.fused_filter and not r.is_cuda):  # they need neither
            rbf, fcut = r, r
        else:
            rbf, fcut = self.rbf(r), cosine_cutoff(r, self.r_max)
        x = self.embedding(species)  # exact on ghost atoms too: no exchange before block 1
        for t, block in enumerate(self.interactions):
            h = block.in2f(x)
            if t > 0:  # ghost rows of h are stale or missing here: fetch them from their owners
                if m < n:
                    h = torch.cat([h, h.new_zeros(n - m, h.shape[1])])
                h = torch.ops.mlff.halo_exchange(h)
            w = block.filters(r, rbf, fcut, self.rbf.centres, self.rbf.gamma, self.r_max)
            x = x[:m] + block(h, w, edge_index, group, m)
        y = self.energy_scale(self.readout(x).squeeze(-1), species[:m])
        if m < n:
            y = torch.cat([y, y.new_zeros(n - m)])
        return y
