"""The interface every mlff energy model implements."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common import AtomicEnergyScale


class EnergyModel(nn.Module):
    """Base class: ``forward(species, edge_index, edge_vec) -> atomic_energy``.

    Inputs follow ``docs/model_interface.md``: ``species`` ``[n]`` int64 indices into
    ``self.species``, ``edge_index`` ``[2, e]`` int64 (centre, neighbour), ``edge_vec``
    ``[e, 3]`` = ``x_j − x_i`` in Å. Output: atomic energies ``[n]`` in eV.

    Subclasses set ``kind`` (registry name) and ``n_message_passing`` (how many
    hops of ``r_max`` an atom's energy depends on), store their constructor
    arguments in ``self.hparams`` so a checkpoint can rebuild them, and end with
    ``self.energy_scale`` (an :class:`AtomicEnergyScale`).

    Multi-rank LAMMPS (``docs/model_interface.md``, halo exchange): a message-passing
    model calls ``torch.ops.mlff.halo_exchange`` on its node features after every
    layer whose output later layers read from neighbours, and overrides
    :meth:`halo_widths` to list the width of each call. Models that do not (the
    default for ``n_message_passing > 1``) run on several ranks with redundant ghosts.

    Direct-force models (``self.direct_forces = True``) instead return forces ``[n, 3]``
    (eV/Å) from ``forward``; they have no energy, and ``energy_scale.scale`` is the
    output scale of their vector readout (fitted to the RMS force component).
    """

    kind: str = ""
    # True when forward takes a fourth argument n_local (the first n_local nodes are
    # the atoms a LAMMPS rank owns); the deployed wrapper then passes it on.
    accepts_n_local: bool = False

    def __init__(self, species: list[str], r_max: float, hparams: dict[str, Any]):
        super().__init__()
        self.species = list(species)
        self.r_max = float(r_max)
        self.hparams = dict(hparams)
        self.n_message_passing = 1
        self.direct_forces = False
        self.energy_scale = AtomicEnergyScale(len(species))

    def halo_widths(self) -> list[int] | None:
        """Values per atom of each ``torch.ops.mlff.halo_exchange`` call ``forward`` makes,
        in order (exported as metadata ``halo_widths``). ``[]`` for strictly local models
        (no exchange needed); ``None`` for message-passing models that do not exchange."""
        return [] if self.n_message_passing <= 1 else None

    def tabulate_radial(self, tolerance: float) -> list:
        """Replace the model's radial networks by tables (:mod:`mlff.models.radial_table`)
        for a deployed copy; returns the :class:`~mlff.models.radial_table.RadialTable`
        of each. Raises ``ConfigError`` for models without tabulated radial networks."""
        from ..errors import ConfigError

        raise ConfigError(f"model kind {self.kind!r} has no radial networks to tabulate "
                          f"(tabulation is available for: schnet, nequip, tfn_dfp, se3_transformer)")

    def for_export(self) -> nn.Module:
        """The module to pass to ``torch.jit.script`` (models whose submodules need
        special compilation override this; may modify ``self``)."""
        return self

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
