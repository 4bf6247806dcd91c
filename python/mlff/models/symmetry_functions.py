"""Atom-centred symmetry functions (ACSF) of Behler and Parrinello, in torch.

Sources: J. Behler & M. Parrinello, PRL 98, 146401 (2007); J. Behler, J. Chem. Phys.
134, 074106 (2011); J. Behler, Int. J. Quantum Chem. 115, 1032 (2015) (G5); the AMP
"Gaussian" descriptor as used in A. G. Lefdalsnes, MSc thesis, Oslo (2019)
(seed ``004_behler_parrinello.md``; thesis Eqs. 6.6–6.9, Sec. 10, Table 10.4).

Definitions (``r`` in Å, ``η`` in Å⁻², ``r_s`` in Å; sums over the neighbours of
atom ``i`` inside the cutoff ``r_c``)::

    G2_i  = Σ_j exp(−η (r_ij − r_s)²) f_c(r_ij)
    G4_i  = 2^{1−ζ} Σ_{j<k} (1 + λ cos θ_ijk)^ζ exp(−η (r_ij² + r_ik² + r_jk²)) f_c(r_ij) f_c(r_ik) f_c(r_jk)
    G5_i  = 2^{1−ζ} Σ_{j<k} (1 + λ cos θ_ijk)^ζ exp(−η (r_ij² + r_ik²))           f_c(r_ij) f_c(r_ik)

with ``cos θ_ijk = r_ij · r_ik / (r_ij r_ik)``.

**Conventions** (each one is tested in ``tests/test_descriptor_models.py``):

* *Angular pair sum over unordered pairs* ``j < k`` (AMP, dscribe). The thesis's
  Eq. 6.9 writes ``Σ_{j,k≠i}`` over ordered pairs, which is exactly twice this.
* *η is un-normalised* (Å⁻²) inside this module, as in Behler's papers and dscribe.
  AMP and the thesis divide the exponent by ``r_c²`` (``exp(−η (r−r_s)²/r_c²)``); the
  parameter-set generators below take η in that AMP convention and return
  ``η / r_c²``, so a set built from the thesis's numbers is the thesis's descriptor.
* *Element channels*: G2 is resolved by the neighbour's element (one block per
  element), G4/G5 by the unordered pair of neighbour elements ``(s_j, s_k)``,
  ``s_j ≤ s_k``. With ``S`` species and ``P = S(S+1)/2`` pairs, the descriptor of an
  atom is ``[G2 block of element 0, …, element S−1, G4/G5 block of pair (0,0), (0,1),
  …, (0,S−1), (1,1), …, (S−1,S−1)]``, each block ordered like the parameter lists
  (this is also dscribe's layout when its G1 is written as G2 with ``η = r_s = 0``).
* Cutoffs: cosine ``f_c = ½(1 + cos(π r / r_c))`` (thesis Eq. 6.7) and AMP's
  polynomial ``f_c = 1 + γ (r/r_c)^{γ+1} − (γ+1)(r/r_c)^γ`` (thesis Eq. 6.8; γ = 5 in
  the thesis, AMP's default is 4), both 0 for ``r ≥ r_c`` and C¹ at ``r_c``.

Triplets are built inside the module from the edge list alone (every unordered pair
of edges that share their centre atom, ``r_jk = r_ik − r_ij``), so the descriptor
needs only the centre's edges; this is what the LAMMPS plugin passes in its
ghost-node mode. Everything is vectorised and TorchScript-compatible.

**Implementations.** ``implementation="ops"`` calls mlff's C++ kernel
``torch.ops.mlff.symmetry_functions`` (``cpp/ops/src/symmetry_functions.cpp``: one pass
over each atom's pairs and triplets, analytic first and second derivatives);
``"torch"`` is the pure-PyTorch code of this module, kept as the reference the kernel is
tested against. ``"auto"`` (default) picks the kernel when ``libmlff_ops.so`` is built.
Tensors on a GPU use the CUDA kernel (``cuda/``) when the library was built with it,
else the PyTorch path.
"""

from __future__ import annotations

import math
import re
from typing import Any, List, Tuple

import numpy as np
import torch
from torch import nn

from .. import ops
from ..ops import export as export_ops
from ..errors import ConfigError

CUTOFFS = ("cosine", "polynomial")
IMPLEMENTATIONS = ("auto", "ops", "torch")


# --------------------------------------------------------------------------- cutoffs
def cutoff_function(r: torch.Tensor, r_c: float, kind: str, gamma: float) -> torch.Tensor:
    """``f_c(r)`` (dimensionless, shape of ``r``): ``kind`` ``"cosine"`` (Behler, thesis
    Eq. 6.7) or ``"polynomial"`` (AMP's ``Polynomial(γ)``, thesis Eq. 6.8); 0 for ``r ≥ r_c``."""
    x = r / r_c
    if kind == "cosine":
        fc = 0.5 * (torch.cos(x * math.pi) + 1.0)
    else:
        x = torch.clamp(x, max=1.0)
        fc = 1.0 + gamma * torch.pow(x, gamma + 1.0) - (gamma + 1.0) * torch.pow(x, gamma)
    return torch.where(r < r_c, fc, torch.zeros_like(fc))


# --------------------------------------------------------------------------- triplets
def edge_pairs(centre: torch.Tensor, n_nodes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """All unordered pairs of edges that share their centre atom.

    ``centre`` ``[e]`` int64 (``edge_index[0]``). Returns ``(a, b)``, two int64 tensors
    of length ``Σ_i c_i (c_i − 1) / 2`` (``c_i`` = edges of centre ``i``) indexing the
    edge list; every unordered pair appears once. Vectorised (sort + repeat_interleave),
    no Python loop over atoms; cost and memory are linear in the number of triplets.
    """
    n_edges = centre.shape[0]
    sorted_centre, order = torch.sort(centre, stable=True)
    counts = torch.bincount(centre, minlength=n_nodes)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n_edges, device=centre.device) - start[sorted_centre]
    n_partners = counts[sorted_centre] - 1 - rank  # partners later in the same group
    first = torch.repeat_interleave(torch.arange(n_edges, device=centre.device), n_partners)
    offsets = torch.cumsum(n_partners, 0) - n_partners
    second = first + 1 + (torch.arange(first.shape[0], device=centre.device) - offsets[first])
    return order[first], order[second]


def pair_channel(s_j: torch.Tensor, s_k: torch.Tensor, n_species: int) -> torch.Tensor:
    """Unordered-pair channel of neighbour species ``(s_j, s_k)`` (int64, shape of the inputs):
    with ``a = min``, ``b = max``: ``a·S − a(a−1)/2 + (b − a)``, i.e. ``(0,0) → 0, (0,1) → 1, …,
    (0,S−1), (1,1), …, (S−1,S−1) → S(S+1)/2 − 1``. Computed, not looked up in an integer
    buffer: integer buffers do not survive ``AveragedModel`` EMA averaging (see ``SymmetryFunctions``)."""
    a = torch.minimum(s_j, s_k)
    b = torch.maximum(s_j, s_k)
    return a * n_species - torch.div(a * (a - 1), 2, rounding_mode="floor") + (b - a)


# --------------------------------------------------------------------------- module
class SymmetryFunctions(nn.Module):
    """ACSF descriptor ``G [n_nodes, n_features]`` of every node.

    Args:
        n_species: number of elements ``S`` (species indices ``0 … S−1``).
        r_c: cutoff radius (Å); only edges shorter than ``r_c`` contribute.
        radial: list of ``(η [Å⁻²], r_s [Å])`` for G2.
        angular: list of ``(kind, η [Å⁻²], ζ, λ)`` with ``kind`` 4 (G4) or 5 (G5),
            ``ζ ≥ 1``, ``λ = ±1``.
        cutoff: ``"cosine"`` or ``"polynomial"``; ``gamma``: the polynomial's γ.
        implementation: ``"auto"``, ``"ops"`` (C++ kernel) or ``"torch"`` (reference);
            see the module docstring.

    ``forward(species [n] int64, edge_index [2, e] int64, edge_vec [e, 3] Å)`` returns
    ``[n, S·len(radial) + S(S+1)/2·len(angular)]`` in the dtype of ``edge_vec`` (the
    buffers follow ``module.to(dtype)``). Raises ``ConfigError`` at construction for an
    unknown cutoff, a non-positive ``r_c``, ``ζ < 1``, a negative η, an empty
    parameter set, an angular kind other than 4/5, an unknown implementation, or
    ``"ops"`` when the C++ library is not built.

    The module has floating-point buffers only (η, r_s, ζ, λ, 2^{1−ζ}); its index table is a
    plain tensor attribute (not in ``buffers()``/``state_dict``, rebuilt from the parameters),
    so EMA weight averaging cannot corrupt it.
    """

    # a TorchScript constant: the branch not taken is not compiled into a deployed model
    __constants__ = ["use_ops"]

    def __init__(self, n_species: int, r_c: float, radial: List[List[float]], angular: List[List[float]],
                 cutoff: str = "polynomial", gamma: float = 5.0, implementation: str = "auto"):
        super().__init__()
        if implementation not in IMPLEMENTATIONS:
            raise ConfigError(f"unknown symmetry-function implementation {implementation!r}; "
                              f"available: {list(IMPLEMENTATIONS)}")
        if implementation == "ops" and not ops.NATIVE:
            raise ConfigError(f"symmetry-function implementation 'ops' needs the C++ library: {ops.WHERE}")
        if cutoff not in CUTOFFS:
            raise ConfigError(f"unknown cutoff {cutoff!r}; available: {list(CUTOFFS)}")
        if r_c <= 0:
            raise ConfigError(f"cutoff radius must be > 0, got {r_c}")
        if cutoff == "polynomial" and gamma < 1.0:
            raise ConfigError(f"polynomial cutoff needs gamma ≥ 1 for a C¹ cutoff, got {gamma}")
        radial = [[float(v) for v in p] for p in radial]
        angular = [[float(v) for v in p] for p in angular]
        if not radial and not angular:
            raise ConfigError("empty symmetry-function set")
        for p in radial:
            if len(p) != 2 or p[0] < 0:
                raise ConfigError(f"radial symmetry function must be (eta >= 0, r_s), got {p}")
        for p in angular:
            if len(p) != 4 or p[0] not in (4.0, 5.0) or p[1] < 0 or p[2] < 1 or abs(p[3]) != 1:
                raise ConfigError(f"angular symmetry function must be (4|5, eta >= 0, zeta >= 1, lambda = ±1), got {p}")
        self.n_species = int(n_species)
        self.n_pairs = self.n_species * (self.n_species + 1) // 2
        self.r_c = float(r_c)
        self.cutoff = cutoff
        self.gamma = float(gamma)
        self.n_radial = len(radial)
        self.n_angular = len(angular)
        self.n_features = self.n_species * self.n_radial + self.n_pairs * self.n_angular
        # G4 needs f_c(r_jk): triplets with r_jk ≥ r_c vanish and can be dropped when there is no G5
        self.only_g4 = all(p[0] == 4.0 for p in angular)
        f64 = torch.float64
        rad = torch.tensor(radial, dtype=f64).reshape(-1, 2)
        self.register_buffer("radial_eta", rad[:, 0].clone())
        self.register_buffer("radial_rs", rad[:, 1].clone())
        # Angular terms factorise as A(λ, ζ; cos θ) · B(kind, η; distances): both factors are
        # computed on their unique parameter values only, the per-triplet product grid is
        # formed just before the scatter, and the requested functions are picked out of the
        # per-atom sums. This keeps autograd's saved tensors at [T, n_unique] instead of [T, n_angular].
        lz = list(dict.fromkeys((p[3], p[2]) for p in angular))
        eta4 = list(dict.fromkeys(p[1] for p in angular if p[0] == 4.0))
        eta5 = list(dict.fromkeys(p[1] for p in angular if p[0] == 5.0))
        self.n_lz = len(lz)
        self.n_g4 = len(eta4)
        self.n_g5 = len(eta5)
        self.n_grid = (self.n_g4 + self.n_g5) * self.n_lz
        column = [((eta4.index(p[1]) if p[0] == 4.0 else self.n_g4 + eta5.index(p[1])) * self.n_lz
                   + lz.index((p[3], p[2]))) for p in angular]
        self.register_buffer("lz_lambda", torch.tensor([v[0] for v in lz], dtype=f64))
        self.register_buffer("lz_zeta", torch.tensor([v[1] for v in lz], dtype=f64))
        self.register_buffer("lz_prefactor", torch.tensor([2.0 ** (1.0 - v[1]) for v in lz], dtype=f64))
        self.register_buffer("g4_eta", torch.tensor(eta4, dtype=f64))
        self.register_buffer("g5_eta", torch.tensor(eta5, dtype=f64))
        # A plain tensor attribute, not an int64 buffer: torch's EMA (AveragedModel with
        # use_buffers=True, as in the trainer) averages integer buffers in floating point and
        # truncates them back, which corrupts indices for some decays (e.g. 0.9).
        self.angular_column = torch.tensor(column, dtype=torch.int64)
        # the C++ kernel's parameter tables: plain float64 attributes, exact whatever the model dtype
        self.use_ops = implementation == "ops" or (implementation == "auto" and ops.NATIVE)
        self.cutoff_code = CUTOFFS.index(cutoff)
        self.radial_table = torch.tensor(radial, dtype=f64).reshape(-1, 2)
        self.angular_table = torch.tensor(angular, dtype=f64).reshape(-1, 4)

    def fc(self, r: torch.Tensor) -> torch.Tensor:
        return cutoff_function(r, self.r_c, self.cutoff, self.gamma)

    def forward(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        if self.use_ops and (not edge_vec.is_cuda or torch.ops.mlff.cuda_built()):
            if not torch.jit.is_scripting():  # traced for an AOTI package (mlff.aoti): eager only
                if export_ops.ENABLED:
                    return torch.ops.mlff.symmetry_functions_export(
                        edge_vec, edge_index[0], species.index_select(0, edge_index[1]), species.shape[0],
                        self.n_species, self.radial_table, self.angular_table, self.r_c, self.cutoff_code, self.gamma)
            return torch.ops.mlff.symmetry_functions(
                edge_vec, edge_index[0], species.index_select(0, edge_index[1]), species.shape[0], self.n_species,
                self.radial_table, self.angular_table, self.r_c, self.cutoff_code, self.gamma)
        return self.reference(species, edge_index, edge_vec)

    def reference(self, species: torch.Tensor, edge_index: torch.Tensor, edge_vec: torch.Tensor) -> torch.Tensor:
        """The pure-PyTorch descriptor (same inputs and output as :meth:`forward`)."""
        n = species.shape[0]
        S, P = self.n_species, self.n_pairs
        # edges at or beyond r_c contribute nothing (f_c = 0); drop them so every kept term is smooth
        r_all = torch.linalg.vector_norm(edge_vec.detach(), dim=1)
        keep = torch.nonzero(r_all < self.r_c).squeeze(1)
        centre = edge_index[0].index_select(0, keep)
        neighbour_species = species.index_select(0, edge_index[1].index_select(0, keep))
        vec = edge_vec.index_select(0, keep)
        r = torch.linalg.vector_norm(vec, dim=1)
        fc = self.fc(r)
        parts: List[torch.Tensor] = []
        if self.n_radial > 0:
            g2 = torch.exp(-self.radial_eta * (r[:, None] - self.radial_rs) ** 2) * fc[:, None]
            out = torch.zeros(n * S, self.n_radial, dtype=vec.dtype, device=vec.device)
            out = out.index_add(0, centre * S + neighbour_species, g2)
            parts.append(out.reshape(n, S * self.n_radial))
        if self.n_angular > 0:
            a, b = edge_pairs(centre, n)
            va, vb = vec.index_select(0, a), vec.index_select(0, b)
            vab = vb - va
            if self.only_g4:
                close = torch.nonzero(torch.linalg.vector_norm(vab.detach(), dim=1) < self.r_c).squeeze(1)
                a, b = a.index_select(0, close), b.index_select(0, close)
                va, vb, vab = va.index_select(0, close), vb.index_select(0, close), vab.index_select(0, close)
            ra, rb = r.index_select(0, a), r.index_select(0, b)
            rab = torch.linalg.vector_norm(vab, dim=1)
            cos = (va * vb).sum(dim=1) / (ra * rb)
            r2 = ra * ra + rb * rb
            f_ab = fc.index_select(0, a) * fc.index_select(0, b)
            # A: 2^{1−ζ} (1 + λ cos θ)^ζ per unique (λ, ζ)                      [T, n_lz]
            angle = self.lz_prefactor * torch.pow(1.0 + self.lz_lambda * cos[:, None], self.lz_zeta)
            # B: Gaussians and cutoffs per unique η, G4 (with r_jk) then G5       [T, n_g4 + n_g5]
            dist: List[torch.Tensor] = []
            if self.n_g4 > 0:
                dist.append(torch.exp(-self.g4_eta * (r2 + rab * rab)[:, None]) * (f_ab * self.fc(rab))[:, None])
            if self.n_g5 > 0:
                dist.append(torch.exp(-self.g5_eta * r2[:, None]) * f_ab[:, None])
            radial_part = dist[0] if len(dist) == 1 else torch.cat(dist, dim=1)
            grid = (radial_part[:, :, None] * angle[:, None, :]).reshape(-1, self.n_grid)
            channel = centre.index_select(0, a) * P + pair_channel(neighbour_species.index_select(0, a),
                                                                    neighbour_species.index_select(0, b), S)
            out = torch.zeros(n * P, self.n_grid, dtype=vec.dtype, device=vec.device).index_add(0, channel, grid)
            out = out.reshape(n, P, self.n_grid).index_select(2, self.angular_column.to(out.device))
            parts.append(out.reshape(n, P * self.n_angular))
        return torch.cat(parts, dim=1)


# --------------------------------------------------------------------------- parameter sets
def amp_default_set(r_c: float) -> tuple[list[list[float]], list[list[float]]]:
    """AMP's default Gaussian set, as listed in seed 004 §1.4 ("Default" row of Table 10.4):
    G2 with η = logspace(0.05, 5, 4) = 0.05, 0.2321, 1.0772, 5.0 (r_s = 0) and G4 with
    η = 0.005, ζ ∈ {1, 4}, λ = ±1 — η in the AMP convention, returned as η / r_c² (Å⁻²).
    Returns ``(radial, angular)`` lists for :class:`SymmetryFunctions`."""
    s = 1.0 / r_c**2
    radial = [[float(eta) * s, 0.0] for eta in np.logspace(np.log10(0.05), np.log10(5.0), 4)]
    angular = [[4.0, 0.005 * s, zeta, lam] for zeta in (1.0, 4.0) for lam in (1.0, -1.0)]
    return radial, angular


def thesis_set(n_radial_etas: int, n_angular_etas: int, n_zetas: int, angular_type: int,
               r_c: float) -> tuple[list[list[float]], list[list[float]]]:
    """The thesis's custom sets "Gs-a-b-c-Gx" (seed 004 §1.4, Table 10.4; thesis Sec. 10.0.4).

    * ``a`` = ``n_radial_etas`` centred radial functions, r_s = 0, η evenly spaced on [1, 20];
      plus ``a`` shifted ones with η = 5 and r_s evenly spaced on [0.5, r_c − 0.5] Å;
    * ``b`` = ``n_angular_etas`` angular η evenly spaced on [0.01, 3], ζ ∈ {2^m : m < c},
      λ ∈ {+1, −1}, all of type ``angular_type`` (4 or 5).

    η values are the thesis's (AMP convention) divided by ``r_c²`` (Å⁻²). Counts:
    ``2a`` radial, ``2·b·c`` angular; e.g. Gs-6-10-1-G4 at r_c = 6 Å: 12 + 20
    (thesis Table 10.1); Gs-7-8-1-G4 at 5 Å: 14 + 16 (final Cu/EMT model).
    """
    if min(n_radial_etas, n_angular_etas, n_zetas) < 1 or angular_type not in (4, 5):
        raise ConfigError(f"bad thesis set Gs-{n_radial_etas}-{n_angular_etas}-{n_zetas}-G{angular_type}")
    if r_c <= 1.0:
        raise ConfigError(f"thesis sets need r_c > 1 Å (shifted centres span [0.5, r_c − 0.5]), got {r_c}")
    s = 1.0 / r_c**2
    radial = [[float(eta) * s, 0.0] for eta in np.linspace(1.0, 20.0, n_radial_etas)]
    radial += [[5.0 * s, float(rs)] for rs in np.linspace(0.5, r_c - 0.5, n_radial_etas)]
    angular = [[float(angular_type), float(eta) * s, float(2**m), lam]
               for eta in np.linspace(0.01, 3.0, n_angular_etas) for m in range(n_zetas) for lam in (1.0, -1.0)]
    return radial, angular


#: Named sets: the thesis's final models (seed 004 §1.4) and the AMP default.
NAMED_SETS = {
    "amp_default": None,
    "cu_emt_final": (7, 8, 1, 4),   # "14 radial and 16 angular functions of the G4 type", r_c = 5 Å
    "si_sw_final": (7, 11, 1, 4),   # "14 radial and 22 angular … G2 and G4", r_c = 5 Å
}


def parameter_set(name: str, r_c: float) -> tuple[list[list[float]], list[list[float]]]:
    """``(radial, angular)`` for a named set at cutoff ``r_c`` (Å): ``"amp_default"``,
    ``"cu_emt_final"``, ``"si_sw_final"`` or any ``"Gs-a-b-c-G4"`` / ``"Gs-a-b-c-G5"``
    (:func:`thesis_set`). Raises ``ConfigError`` for an unknown name."""
    if name == "amp_default":
        return amp_default_set(r_c)
    if name in NAMED_SETS:
        return thesis_set(*NAMED_SETS[name], r_c=r_c)
    m = re.fullmatch(r"Gs-(\d+)-(\d+)-(\d+)-G([45])", name)
    if m is None:
        raise ConfigError(f"unknown symmetry-function set {name!r}; use one of {sorted(NAMED_SETS)} "
                          f"or 'Gs-a-b-c-G4' / 'Gs-a-b-c-G5'")
    a, b, c, kind = (int(v) for v in m.groups())
    return thesis_set(a, b, c, kind, r_c)


def describe(radial: list[list[float]], angular: list[list[float]]) -> dict[str, Any]:
    """Counts of a parameter set (for logs)."""
    return {"n_radial": len(radial), "n_g4": sum(p[0] == 4 for p in angular),
            "n_g5": sum(p[0] == 5 for p in angular)}
