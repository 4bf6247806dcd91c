"""Equivariant building blocks shared by ``nequip``, ``tfn_dfp`` and ``se3_transformer``.

All irreducible representations, spherical harmonics, Clebsch–Gordan tensor products
and Wigner-D matrices come from e3nn (M. Geiger & T. Smidt, arXiv:2207.09453), so the
conventions are e3nn's: real spherical harmonics with ``normalize=True`` and
``component`` normalisation. Since e3nn 0.2.2 (its change of basis to a YXY Euler
convention, see the e3nn guide "Change of Basis") the l = 1 components are Cartesian
``(x, y, z)`` (``Y_1(r̂) = √3 r̂`` and ``D^1(R) = R``) rather than the "standard" ``(y, z, x)``,
so a ``1o`` feature *is* a Cartesian vector; this module checks that on import, and a test
checks it against ``o3.Irreps("1o").D_from_matrix``. (For l ≥ 2 e3nn's real harmonics are a
rotated version of the textbook ones; nothing here depends on that.)

Feature irreps use the "natural" parity ``(-1)^l`` (``0e + 1o + 2e + …``): the models are
then E(3)-equivariant (rotations and reflections), energies are invariant and forces
(``1o``) transform as polar vectors.

TorchScript: e3nn's ``Gate`` contains modules e3nn marks for tracing rather than
scripting, so a model built from these blocks must go through
:func:`e3nn.util.jit.compile` before ``torch.jit.script``; :meth:`EquivariantModel.for_export`
does that (``mlff.deploy.export_model`` calls it).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from e3nn import o3
from e3nn.math import normalize2mom
from e3nn.nn import FullyConnectedNet
from e3nn.util.jit import compile as e3nn_compile
from torch import nn

from .. import ops
from ..ops import export as export_ops
from ..errors import ConfigError
from .base import EnergyModel
from .common import reverse_edge_groups
from .radial_table import RadialTable, lookup, tabulate

IMPLEMENTATIONS = ("auto", "ops", "e3nn")


def use_tensor_product_ops(implementation: str) -> bool:
    """Whether ``implementation`` (``"auto"``, ``"ops"`` or ``"e3nn"``) selects mlff's C++
    tensor-product operators: ``"auto"`` does when the C++ library is built. Raises
    ``ConfigError`` for an unknown name or ``"ops"`` without the library."""
    if implementation not in IMPLEMENTATIONS:
        raise ConfigError(f"unknown tensor-product implementation {implementation!r}; "
                          f"available: {list(IMPLEMENTATIONS)}")
    if implementation == "ops" and not ops.NATIVE:
        raise ConfigError(f"tensor-product implementation 'ops' needs the C++ library: {ops.WHERE}")
    return implementation == "ops" or (implementation == "auto" and ops.NATIVE)


def tensor_product_tables(tp: o3.TensorProduct) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The path tables of mlff's tensor-product operators for an e3nn tensor product with
    per-edge weights and a multiplicity-1 second input, all paths ``"uvu"`` (for
    ``torch.ops.mlff.tp_conv``, ``cpp/ops/src/tensor_product.cpp``) or all ``"uvw"`` (for
    ``torch.ops.mlff.tp_uvw``, ``cpp/ops/src/tensor_product_uvw.cpp``).

    Returns ``paths`` int64, ``[K, 7]`` for uvu (offset and irrep dimension in input 1,
    multiplicity, offset in input 2, offset and dimension in the output, weight offset) or
    ``[K, 8]`` for uvw (the same with the output multiplicity before the weight offset);
    ``coeff_index [nnz, 4]`` int64 (path, m1, m2, m3) and ``coeff [nnz]`` float64 = e3nn's
    ``path_weight`` × ``o3.wigner_3j`` (the exact coefficients e3nn's own code uses;
    non-zeros only). Raises ``ValueError`` for any other kind of path or a mix of modes."""
    modes = {ins.connection_mode for ins in tp.instructions}
    if len(modes) > 1:
        raise ValueError(f"mlff's tensor-product tables need one connection mode, got {sorted(modes)}")
    paths, index, coeff = [], [], []
    w_off = 0
    s1, s2, s3 = tp.irreps_in1.slices(), tp.irreps_in2.slices(), tp.irreps_out.slices()
    for k, ins in enumerate(tp.instructions):
        mul, ir1 = tp.irreps_in1[ins.i_in1]
        mul2, ir2 = tp.irreps_in2[ins.i_in2]
        mul_out, ir3 = tp.irreps_out[ins.i_out]
        uvu = ins.connection_mode == "uvu" and mul_out == mul
        if not (uvu or ins.connection_mode == "uvw") or mul2 != 1 or not ins.has_weight:
            raise ValueError(f"mlff's tensor products support weighted uvu/uvw paths with a multiplicity-1 "
                             f"second input, got {ins}")
        row = [s1[ins.i_in1].start, ir1.dim, mul, s2[ins.i_in2].start, s3[ins.i_out].start, ir3.dim]
        paths.append(row + ([w_off] if uvu else [mul_out, w_off]))
        w_off += mul if uvu else mul * mul_out
        c = o3.wigner_3j(ir1.l, ir2.l, ir3.l, dtype=torch.float64) * ins.path_weight
        for m1, m2, m3 in torch.nonzero(c.abs() > 1e-15).tolist():
            index.append([k, m1, m2, m3])
            coeff.append(float(c[m1, m2, m3]))
    width = 7 if modes == {"uvu"} else 8
    return (torch.tensor(paths, dtype=torch.int64).reshape(-1, width),
            torch.tensor(index, dtype=torch.int64).reshape(-1, 4), torch.tensor(coeff, dtype=torch.float64))


@contextmanager
def float64_construction() -> Iterator[None]:
    """Build e3nn modules under ``torch.set_default_dtype(float64)``: e3nn computes its
    Clebsch–Gordan (Wigner-3j) buffers in the default dtype, and float32 coefficients
    (even when cast to float64 later) break equivariance at the 1e-8 level."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def irreps_up_to(mul: int, l_max: int) -> o3.Irreps:
    """``mul x 0e + mul x 1o + mul x 2e + …`` up to ``l_max`` (parity ``(-1)^l``)."""
    return o3.Irreps([(mul, (l, (-1) ** l)) for l in range(l_max + 1)])


def _check_l1_is_cartesian() -> None:
    unit = torch.eye(3, dtype=torch.float64)
    sh = o3.spherical_harmonics(1, unit, normalize=True, normalization="component") / math.sqrt(3.0)
    if not torch.allclose(sh, unit):
        raise ImportError("mlff's equivariant models need an e3nn whose l = 1 spherical harmonics are (x, y, z)")


_check_l1_is_cartesian()


def vector_from_l1(v: torch.Tensor) -> torch.Tensor:
    """Cartesian vector ``[n, 3]`` from a ``1x1o`` feature ``[n, 3]``: the identity in e3nn's
    basis (see the module docstring); kept as the one place that fixes the convention."""
    return v


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """``out[index[e]] += src[e]``: ``[e, d] -> [n, d]``."""
    out = torch.zeros((n, src.shape[1]), dtype=src.dtype, device=src.device)
    return out.index_add_(0, index, src)


class BesselBasis(nn.Module):
    """NequIP's radial basis ``b_n(r) = √(2/r_c) · sin(w_n r / r_c) / r`` with ``w_n = nπ`` at
    initialisation (trainable, as in Batzner et al., Nat. Commun. 13, 2453 (2022)).
    ``r`` ``[e]`` (Å) → ``[e, n_basis]``."""

    def __init__(self, n_basis: int, r_max: float, trainable: bool = True):
        super().__init__()
        self.r_max = float(r_max)
        self.prefactor = math.sqrt(2.0 / r_max)
        freqs = math.pi * torch.arange(1, n_basis + 1, dtype=torch.float64)
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.prefactor * torch.sin(self.freqs * (r[:, None] / self.r_max)) / r[:, None]


class PolynomialCutoff(nn.Module):
    """NequIP's polynomial envelope (from Klicpera et al., DimeNet, ICLR 2020) with ``p = 6``:
    ``u(x) = 1 − (p+1)(p+2)/2 · x^p + p(p+2) · x^{p+1} − p(p+1)/2 · x^{p+2}``, ``x = r/r_max``,
    and ``u = 0`` for ``r ≥ r_max``. ``u`` and its first two derivatives vanish at ``r_max``."""

    def __init__(self, r_max: float, p: float = 6.0):
        super().__init__()
        self.r_max = float(r_max)
        self.p = float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        p = self.p
        x = r / self.r_max
        u = 1.0 - 0.5 * (p + 1.0) * (p + 2.0) * x.pow(p) + p * (p + 2.0) * x.pow(p + 1.0) \
            - 0.5 * p * (p + 1.0) * x.pow(p + 2.0)
        return u * (x < 1.0).to(u.dtype)


class GaussianBasis(nn.Module):
    """Gaussians ``c · exp(−(r − μ_k)² / (2Δ²))`` with ``n`` centres evenly spaced on ``[0, r_max]``
    (the TFN-DFP radial basis, Batzner MSc thesis Sec. 3.2: 15 Gaussians). ``Σ_k exp(…)² ≈ √π``
    for any ``r`` inside the grid, so ``c = (n/√π)^½`` gives the components unit mean square,
    the input scale the radial MLP's initialisation assumes."""

    def __init__(self, n_basis: int, r_max: float):
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, r_max, n_basis, dtype=torch.float64))
        self.gamma = 0.5 / (r_max / (n_basis - 1)) ** 2
        self.norm = math.sqrt(n_basis / math.sqrt(math.pi))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.norm * torch.exp(-self.gamma * (r[:, None] - self.centres) ** 2)


class RadialMLP(nn.Module):
    """Radial network ``sizes[0] → … → sizes[-1]``: e3nn's ``FullyConnectedNet`` (bias-free,
    SiLU normalised to unit second moment, weights ``N(0, 1)/√fan_in``), as in NequIP.

    Bias-free with ``SiLU(0) = 0``, so a zero input (the radial basis times the cutoff at
    ``r_max``) gives zero weights: messages vanish smoothly at the cutoff.

    ``forward(x [u, sizes[0]], r [u] Å) -> [u, sizes[-1]]``: the network of the radial
    features ``x`` of pair distances ``r``. After :meth:`tabulate` (deployed copies,
    ``mlff-deploy --tabulate``) the output is read from a table of ``r`` instead
    (:mod:`mlff.models.radial_table`; ``torch.ops.mlff.radial_table`` on the CPU,
    PyTorch interpolation elsewhere) and ``x`` is not used.
    """

    __constants__ = ["tabulated"]  # TorchScript constant: the branch not taken is not compiled

    def __init__(self, sizes: list[int]):
        super().__init__()
        self.net = FullyConnectedNet(list(sizes), nn.functional.silu)
        self.tabulated = False
        self.r_max = 0.0
        # not persistent: checkpoints never hold a table, deployed files do
        self.register_buffer("table", torch.zeros(0, 3, 0), persistent=False)

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        if self.tabulated:
            return lookup(r, self.table, self.r_max)
        return self.net(x)

    def tabulate(self, features, r_max: float, tolerance: float) -> RadialTable:
        """Replace the network by a table of ``net(features(r))`` on ``[0, r_max]``
        (:func:`~mlff.models.radial_table.tabulate`; ``features: r [k] float64 -> [k,
        sizes[0]]``, zero from ``r_max`` on). Returns the table."""
        net = copy.deepcopy(self.net).double()
        table = tabulate(lambda r: net(features(r)), r_max, tolerance)
        self.table = table.table.to(next(self.net.parameters()).dtype)
        self.r_max = float(r_max)
        self.tabulated = True
        return table


class EdgeEmbedding(nn.Module):
    """Per-edge geometry: spherical harmonics ``Y(r̂_ij)`` (e3nn, ``normalize=True``,
    ``component`` normalisation) up to ``l_max_sh``, a radial basis times the smooth cutoff,
    and the cutoff ``u(r)`` itself.

    ``forward(edge_vec [e, 3]) -> (sh [e, Σ(2l+1)], radial [e, n_basis], cutoff [e], r [e])``.
    ``basis``: ``"bessel"`` (NequIP) or ``"gaussian"`` (TFN-DFP).
    """

    def __init__(self, l_max_sh: int, r_max: float, n_basis: int, basis: str = "bessel"):
        super().__init__()
        self.irreps_sh = o3.Irreps.spherical_harmonics(l_max_sh)
        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        if basis == "bessel":
            self.basis = BesselBasis(n_basis, r_max)
        elif basis == "gaussian":
            self.basis = GaussianBasis(n_basis, r_max)
        else:
            raise ValueError(f"unknown radial basis {basis!r}")
        self.cutoff = PolynomialCutoff(r_max)

    def forward(self, edge_vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r = torch.linalg.vector_norm(edge_vec, dim=1)
        u = self.cutoff(r)
        return self.sh(edge_vec), self.basis(r) * u[:, None], u, r

    def radial_features(self, r: torch.Tensor) -> torch.Tensor:
        """The radial part of :meth:`forward` alone: ``r [k]`` (Å) -> ``[k, n_basis]``."""
        return self.basis(r) * self.cutoff(r)[:, None]


def radial_per_pair(edge_index: torch.Tensor, edge_vec: torch.Tensor, radial: torch.Tensor,
                    r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The radial features and distances of one edge per atom pair,
    ``(radial [u, n_basis], r [u], group [e])``.

    Radial networks depend on ``|r_ij|`` only, so edge ``i → j`` and its reverse ``j → i``
    need them once: ``net(radial_pairs).index_select(0, group)`` equals ``net(radial)`` and
    costs half the network evaluations (the radial MLPs are most of an equivariant model's
    time on CPU). Exact in energies, forces and higher derivatives
    (:func:`~mlff.models.common.reverse_edge_groups`).
    """
    representative, group = reverse_edge_groups(edge_index, edge_vec)
    return radial.index_select(0, representative), r.index_select(0, representative), group


def tensor_product_paths(irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps,
                         mode: str) -> tuple[o3.Irreps, list[tuple[int, int, int, str, bool]]]:
    """Output irreps and e3nn instructions of every ``irreps_in[i] ⊗ irreps_sh[j] → ir_out``
    path whose ``ir_out`` occurs in ``targets``.

    ``mode="uvu"``: one output block per path with the input's multiplicity (channel-wise,
    NequIP/TFN convolution). Returned irreps are sorted (e3nn requires nothing more; the
    sort just groups equal irreps for the following ``o3.Linear``).
    """
    wanted = {ir for _, ir in targets}
    out: list[tuple[int, o3.Irrep]] = []
    instructions: list[tuple[int, int, int, str, bool]] = []
    for i, (mul, ir_in) in enumerate(irreps_in):
        for j, (_, ir_sh) in enumerate(irreps_sh):
            for ir_out in ir_in * ir_sh:
                if ir_out in wanted:
                    instructions.append((i, j, len(out), mode, True))
                    out.append((mul, ir_out))
    irreps_out = o3.Irreps(out)
    irreps_out, perm, _ = irreps_out.sort()
    instructions = [(i, j, perm[k], m, t) for i, j, k, m, t in instructions]
    return irreps_out, instructions


class EdgeConvolution(nn.Module):
    """Channel-wise (``uvu``) Clebsch–Gordan convolution of neighbour features with edge
    spherical harmonics, weighted per path and channel by a radial MLP, summed onto the
    centre atom: ``m_i = Σ_j R(r_ij) · (h_j ⊗ Y(r̂_ij))``.

    ``forward(h [n, irreps_in.dim], sh [e, ·], radial [u, n_basis], r [u], edge_index [2, e],
    group [e]) -> [n, irreps_out.dim]``: ``radial`` and the distances ``r`` hold one row per
    atom pair and ``group`` maps each edge to its pair (:func:`radial_per_pair`), so the
    radial MLP (or its table, :class:`RadialMLP`) runs once per pair.

    ``implementation``: ``"ops"`` runs mlff's fused C++ kernel ``torch.ops.mlff.tp_conv``
    (gather, tensor product and scatter in one pass, analytic first and second
    derivatives); ``"e3nn"`` runs ``e3nn.o3.TensorProduct`` on gathered features and
    scatters (the reference); ``"auto"`` picks the kernel when the C++ library is built
    (on a GPU: when it was built with the CUDA kernels of ``cuda/``). Both give the same numbers (``tests/test_tensor_product_ops.py``).
    Raises ``ConfigError`` for an unknown implementation or ``"ops"`` without the library.
    """

    __constants__ = ["use_ops"]  # TorchScript constant: the branch not taken is not compiled

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, targets: o3.Irreps, n_basis: int,
                 radial_hidden: int, radial_layers: int, implementation: str = "auto"):
        super().__init__()
        self.use_ops = use_tensor_product_ops(implementation)
        self.irreps_in = o3.Irreps(irreps_in)
        self.irreps_out, instructions = tensor_product_paths(self.irreps_in, irreps_sh, targets, "uvu")
        self.tp = o3.TensorProduct(self.irreps_in, irreps_sh, self.irreps_out, instructions,
                                   shared_weights=False, internal_weights=False)
        self.radial = RadialMLP([n_basis] + [radial_hidden] * radial_layers + [self.tp.weight_numel])
        # plain tensor attributes, not buffers: integer buffers do not survive EMA averaging
        self.tp_paths, self.tp_coeff_index, self.tp_coeff = tensor_product_tables(self.tp)

    def forward(self, h: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor, r: torch.Tensor,
                edge_index: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        weight = self.radial(radial, r).index_select(0, group)
        if self.use_ops and (not h.is_cuda or torch.ops.mlff.cuda_built()):
            if not torch.jit.is_scripting():  # traced for an AOTI package (mlff.aoti): eager only
                if export_ops.ENABLED:
                    return torch.ops.mlff.tp_conv_export(h, sh, weight, edge_index[0], edge_index[1], h.shape[0],
                                                         self.tp_paths, self.tp_coeff_index, self.tp_coeff,
                                                         self.irreps_out.dim)
            return torch.ops.mlff.tp_conv(h, sh, weight, edge_index[0], edge_index[1], h.shape[0], self.tp_paths,
                                          self.tp_coeff_index, self.tp_coeff)
        messages = self.tp(h.index_select(0, edge_index[1]), sh, weight)
        return scatter_sum(messages, edge_index[0], h.shape[0])


class NormActivation(nn.Module):
    """Norm nonlinearity in the form of Tensor Field Networks' (Thomas et al., arXiv:1802.08219):
    each ``l > 0`` channel ``V_c`` is scaled by a nonlinearity of its norm,
    ``V_c ← σ(‖V_c‖ + b_c) · V_c`` (so its direction is kept), and each scalar channel
    becomes ``SiLU(x_c + b_c)``.

    ``‖V‖`` is computed as ``√(‖V‖² + ε²)`` so the layer is smooth at ``V = 0``. SiLU and the
    sigmoid are multiplied by constants that give them unit second moment on ``N(0, 1)``
    inputs (e3nn's ``normalize2mom``), so feature scales do not decay with depth.
    With ``layer_norm=True`` (the SE(3)-Transformer variant, Hedelius thesis Eq. 2.9) the
    norms (and the scalars) of each irrep block are first layer-normalised across channels
    (learned affine), i.e. ``V_c ← σ(LN(‖V‖)_c) · V_c``.

    Scriptable (plain torch): ``forward(x [n, irreps.dim]) -> [n, irreps.dim]``.
    """

    def __init__(self, irreps: o3.Irreps, layer_norm: bool = False, eps: float = 1e-3):
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        self.eps2 = eps * eps
        self.layer_norm = layer_norm
        self.silu_scale = float(normalize2mom(nn.functional.silu).cst)
        self.gate_scale = float(normalize2mom(torch.sigmoid).cst)
        self.muls: list[int] = [mul for mul, _ in self.irreps]
        self.dims: list[int] = [ir.dim for _, ir in self.irreps]
        n_ch = sum(self.muls)
        self.bias = nn.Parameter(torch.zeros(n_ch, dtype=torch.float64))
        if layer_norm:
            self.ln_weight = nn.Parameter(torch.ones(n_ch, dtype=torch.float64))
        else:  # unused; a buffer so TorchScript sees the attribute and no parameter goes untrained
            self.register_buffer("ln_weight", torch.ones(n_ch, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        start = 0
        ch = 0
        for k in range(len(self.muls)):
            mul = self.muls[k]
            d = self.dims[k]
            block = x.narrow(1, start, mul * d).reshape(x.shape[0], mul, d)
            b = self.bias.narrow(0, ch, mul)
            w = self.ln_weight.narrow(0, ch, mul)
            if d == 1:
                s = block[:, :, 0]
                if self.layer_norm:
                    s = nn.functional.layer_norm(s, [mul]) * w
                outs.append(self.silu_scale * nn.functional.silu(s + b))
            else:
                norm = torch.sqrt(block.pow(2).sum(-1) + self.eps2)
                if self.layer_norm:
                    norm = nn.functional.layer_norm(norm, [mul]) * w
                gate = self.gate_scale * torch.sigmoid(norm + b)
                outs.append((block * gate[:, :, None]).reshape(x.shape[0], mul * d))
            start += mul * d
            ch += mul
        return torch.cat(outs, dim=1)


class EquivariantModel(EnergyModel):
    """Base of the e3nn models: the ``direct_forces`` flag, the neighbour-count
    normalisation ``avg_num_neighbors`` (a buffer, fitted by :meth:`fit_statistics` when
    the hyperparameter is ``None``) and TorchScript preparation (:meth:`for_export`).

    Energy models: ``forward(...) -> atomic energies [n]`` (eV). Direct-force models:
    ``forward(...) -> forces [n, 3]`` (eV/Å); their ``energy_scale.scale`` is the output
    scale of the ``1o`` readout (the RMS force component after fitting).
    """

    def __init__(self, species: list[str], r_max: float, hparams: dict[str, Any], direct_forces: bool = False,
                 avg_num_neighbors: float | None = None, default_avg_num_neighbors: float = 10.0):
        super().__init__(species, r_max, hparams)
        self.direct_forces = bool(direct_forces)
        self.fit_avg_num_neighbors = avg_num_neighbors is None
        value = default_avg_num_neighbors if avg_num_neighbors is None else float(avg_num_neighbors)
        self.register_buffer("avg_num_neighbors", torch.tensor(value, dtype=torch.float64))

    def fit_statistics(self, graphs) -> dict[str, float]:
        """Fit ``avg_num_neighbors`` = mean edges per atom over ``graphs`` (training set),
        unless it was given as a hyperparameter. Returns the value used."""
        if self.fit_avg_num_neighbors:
            n_edges = sum(int(g.edge_index.shape[1]) for g in graphs)
            n_nodes = sum(int(g.species.shape[0]) for g in graphs)
            self.avg_num_neighbors.fill_(max(n_edges / max(n_nodes, 1), 1.0))
        return {"avg_num_neighbors": float(self.avg_num_neighbors)}

    def one_hot(self, species: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return nn.functional.one_hot(species, len(self.species)).to(dtype)

    def tabulate_radial(self, tolerance: float = 1e-8) -> list[RadialTable]:
        """Replace every radial MLP (:class:`RadialMLP`: one per convolution or attention
        layer) by a table of its output on ``[0, r_max]``, with values and derivatives
        within ``tolerance`` relative to the network's in float64
        (:func:`~mlff.models.radial_table.tabulate`) — for a deployed copy
        (``mlff-deploy --tabulate``): the radial networks no longer train, and the
        tables give first derivatives only (forces, virials; no force training).
        Returns the tables, in module order."""
        features = copy.deepcopy(self.edge_embedding).double().radial_features
        return [m.tabulate(features, self.r_max, tolerance) for m in self.modules() if isinstance(m, RadialMLP)]

    def for_export(self) -> nn.Module:
        """This model with its e3nn submodules compiled (scripted or traced as e3nn
        prescribes), ready for ``torch.jit.script``. Modifies the model in place (the
        exporter passes a copy)."""
        return e3nn_compile(self)
