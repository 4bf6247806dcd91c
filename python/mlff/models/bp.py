"""Behler–Parrinello neural-network potential on atom-centred symmetry functions.

Source: J. Behler & M. Parrinello, PRL 98, 146401 (2007); as used with AMP in
A. G. Lefdalsnes, MSc thesis, Oslo (2019) (seed ``004_behler_parrinello.md``:
Eqs. 1.4/6.2–6.3 energy decomposition, 6.6–6.9 symmetry functions, Table 10.1 and
Table 11.1 network and cutoff, §1.3 feature scaling).

Architecture:

* descriptor ``G_i`` = G2 per neighbour element and G4/G5 per unordered
  neighbour-element pair (:class:`~mlff.models.symmetry_functions.SymmetryFunctions`);
* feature scaling ``G'_i = (G_i − shift[s_i]) / scale[s_i]`` with per-element buffers
  fitted on the training set by :meth:`BehlerParrinello.fit_statistics` (mean/std,
  ``feature_scaling="standard"``, or AMP's min/max to ``[−1, 1]``, ``"minmax"``);
* one MLP per element, hidden ``(10, 10)`` tanh, linear output (thesis Table 10.1);
* ``E_i = scale · y_i + shift + E0[s_i]`` (:class:`AtomicEnergyScale`), ``E = Σ_i E_i``.

Forces are ``−∂E/∂x`` by autograd through the descriptor (the thesis/AMP differentiate
the fingerprints analytically; the result is the same function). Information reaches
an atom from one cutoff sphere only: ``n_message_passing = 1``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .base import EnergyModel
from .symmetry_functions import SymmetryFunctions, describe, parameter_set

ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "silu": nn.SiLU}


class BehlerParrinello(EnergyModel):
    """Behler–Parrinello (BP) energy model.

    Args:
        species: element symbols, e.g. ``["H", "C"]``.
        r_max: cutoff radius ``R_c`` (Å); the thesis's searches use 6 Å, its final
            models 5 Å.
        symmetry_functions: named parameter set used when ``radial`` and ``angular``
            are both ``None``: ``"Gs-a-b-c-G4|G5"`` (thesis Table 10.4; default
            ``"Gs-6-10-1-G4"``, the thesis's 12 radial + 20 angular search default),
            ``"amp_default"``, ``"cu_emt_final"``, ``"si_sw_final"``. Sets depend on ``r_max``.
        radial: explicit G2 parameters ``[[η (Å⁻², un-normalised), r_s (Å)], …]``.
        angular: explicit G4/G5 parameters ``[[4|5, η (Å⁻²), ζ, λ], …]``.
        cutoff: ``"polynomial"`` (default, γ = ``cutoff_gamma`` = 5 as in the thesis) or
            ``"cosine"``.
        hidden: hidden-layer widths of each element's network (default ``[10, 10]``).
        activation: ``"tanh"`` (default), ``"sigmoid"`` or ``"silu"``.
        feature_scaling: ``"standard"`` (mean/std per element and function, default) or
            ``"minmax"`` (AMP: to ``[−1, 1]``).
        implementation: symmetry functions by mlff's C++ kernel (``"ops"``), by the
            pure-PyTorch reference (``"torch"``), or the kernel when built (``"auto"``).

    ``forward(species [n] int64, edge_index [2, e] int64, edge_vec [e, 3] Å) ->
    atomic energies [n] eV`` in the model dtype (float32 or float64). Raises
    ``ConfigError`` at construction for an unknown set, cutoff, activation or scaling.
    The resolved ``radial``/``angular`` lists are stored in ``hparams`` so a
    checkpoint rebuilds exactly this descriptor.
    """

    kind = "bp"

    def __init__(self, species: list[str], r_max: float = 6.0, symmetry_functions: str = "Gs-6-10-1-G4",
                 radial: list[list[float]] | None = None, angular: list[list[float]] | None = None,
                 cutoff: str = "polynomial", cutoff_gamma: float = 5.0, hidden: Sequence[int] = (10, 10),
                 activation: str = "tanh", feature_scaling: str = "standard", implementation: str = "auto"):
        if radial is None and angular is None:
            radial, angular = parameter_set(symmetry_functions, r_max)
        radial = [[float(v) for v in p] for p in (radial or [])]
        angular = [[float(v) for v in p] for p in (angular or [])]
        if activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; available: {sorted(ACTIVATIONS)}")
        if feature_scaling not in ("standard", "minmax"):
            raise ConfigError(f"feature_scaling must be 'standard' or 'minmax', got {feature_scaling!r}")
        hidden = [int(h) for h in hidden]
        if any(h < 1 for h in hidden):
            raise ConfigError(f"hidden layer widths must be ≥ 1, got {hidden}")
        super().__init__(species, r_max, dict(symmetry_functions=symmetry_functions, radial=radial, angular=angular,
                                              cutoff=cutoff, cutoff_gamma=float(cutoff_gamma), hidden=hidden,
                                              activation=activation, feature_scaling=feature_scaling,
                                              implementation=implementation))
        self.n_message_passing = 1
        self.descriptor = SymmetryFunctions(len(species), r_max, radial, angular, cutoff, cutoff_gamma,
                                            implementation)
        n_in = self.descriptor.n_features
        S = len(species)
        self.register_buffer("feature_shift", torch.zeros(S, n_in, dtype=torch.float64))
        self.register_buffer("feature_scale", torch.ones(S, n_in, dtype=torch.float64))
        act = ACTIVATIONS[activation]
        nets = []
        for _ in species:
            sizes = [n_in, *hidden, 1]
            layers: list[nn.Module] = []
            for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                lin = nn.Linear(a, b)
                nn.init.xavier_uniform_(lin.weight)  # AMP uses Xavier initialisation
                nn.init.zeros_(lin.bias)
                layers.append(lin)
                if k < len(sizes) - 2:
                    layers.append(act())
            # zero-initialised output: the untrained model predicts the reference energies
            nn.init.zeros_(layers[-1].weight)
            nets.append(nn.Sequential(*layers))
        self.networks = nn.ModuleList(nets)

    def descriptors(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        """Unscaled symmetry functions ``[n, n_features]``."""
        return self.descriptor(species, edge_index, edge_vec)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        g = self.descriptor(species, edge_index, edge_vec)
        g = (g - self.feature_shift[species]) / self.feature_scale[species]
        y = torch.zeros(species.shape[0], dtype=g.dtype, device=g.device)
        for s, net in enumerate(self.networks):
            idx = torch.nonzero(species == s).squeeze(1)
            y = y.index_copy(0, idx, net(g.index_select(0, idx)).squeeze(1))
        return self.energy_scale(y, species)

    def fit_statistics(self, graphs: Sequence[Any], batch_size: int = 64) -> dict[str, Any]:
        """Fit the per-element feature scaling on training graphs (:class:`mlff.graph.Graph`).

        ``"standard"``: shift = mean, scale = standard deviation of each symmetry function
        over the training atoms of each element; ``"minmax"``: shift = (max + min)/2,
        scale = (max − min)/2 (AMP's scaling to ``[−1, 1]``). Functions that are constant
        on the training set (e.g. a channel for an element pair that never occurs) get
        scale 1. Returns a summary for the training log.
        """
        from ..graph import collate

        S, n_in = self.feature_shift.shape
        dtype = self.feature_shift.dtype
        feats, spec = [], []
        with torch.no_grad():
            for start in range(0, len(graphs), batch_size):
                batch = collate(list(graphs[start:start + batch_size]))
                vec = batch.edge_vec().to(dtype)
                feats.append(self.descriptor(batch.species, batch.edge_index, vec).double())
                spec.append(batch.species)
        g, species = torch.cat(feats), torch.cat(spec)
        shift = torch.zeros(S, n_in, dtype=torch.float64)
        scale = torch.ones(S, n_in, dtype=torch.float64)
        for s in range(S):
            gs = g[species == s]
            if gs.shape[0] == 0:
                continue
            if self.hparams["feature_scaling"] == "standard":
                shift[s] = gs.mean(0)
                spread = gs.std(0, correction=0)
            else:
                hi, lo = gs.max(0).values, gs.min(0).values
                shift[s] = 0.5 * (hi + lo)
                spread = 0.5 * (hi - lo)
            scale[s] = torch.where(spread > 1e-8 * (1.0 + shift[s].abs()), spread, torch.ones_like(spread))
        self.feature_shift.copy_(shift.to(dtype))
        self.feature_scale.copy_(scale.to(dtype))
        return {"descriptor": describe(self.hparams["radial"], self.hparams["angular"]),
                "n_features": n_in, "feature_scaling": self.hparams["feature_scaling"],
                "atoms_per_element": {sp: int((species == s).sum()) for s, sp in enumerate(self.species)}}
