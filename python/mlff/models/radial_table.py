"""Tabulated radial functions for deployed models.

A radial network ``y(r)`` (SchNet's filter-generating network, the radial MLPs of the
e3nn models) depends on the pair distance alone, yet a force call evaluates it for every
atom pair: two dense layers and their transcendental activations per pair are half of a
SchNet step and a third of a NequIP one. Tabulated once at deployment, it costs a few
table reads per pair instead.

The table holds ``y``, ``h·y'`` and ``h²·y''`` at the knots ``r_k = k·h``, ``h = r_max / N``,
and ``y(r)`` between knots is the quintic Hermite interpolant of those six values: C²
(continuous forces and force derivatives in MD), with errors ``O(h⁶)`` in ``y`` and
``O(h⁵)`` in ``y'`` (Burden & Faires, *Numerical Analysis*, §3.4). The number of
intervals is doubled until the interpolant, checked in float64 at three points inside
every interval, is within a relative tolerance (default 1e-8, below float32 rounding) of
the network, for the values and for the derivatives (the forces). The same idea as
DeePMD-kit's model compression (Lu et al., J. Chem. Theory Comput. 18, 5559 (2022)),
which tabulates its embedding nets with fifth-order polynomials.

``torch.ops.mlff.radial_table`` (``cpp/ops/src/radial_table*.cpp``) evaluates the table
on the CPU; :func:`interpolate` is the PyTorch version (any device, any derivative order),
the reference the operator is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import ops  # noqa: F401 (registers torch.ops.mlff.radial_table)
from ..ops import export as export_ops
from ..errors import ConfigError


@dataclass
class RadialTable:
    """A tabulated radial function.

    ``table`` ``[N + 1, 3, F]`` float64: ``y``, ``h·y'``, ``h²·y''`` at ``r_k = k·h``;
    ``r_max`` (Å); ``error`` and ``error_derivative``: the largest deviation of the
    interpolant from the function (and of their ``r``-derivatives) at the check points,
    relative to the largest ``|y|`` (``|y'|``) there.
    """

    table: torch.Tensor
    r_max: float
    error: float
    error_derivative: float

    @property
    def n_intervals(self) -> int:
        return int(self.table.shape[0]) - 1


def _basis(t: torch.Tensor) -> torch.Tensor:
    """Quintic Hermite basis ``[..., 6]`` at ``t ∈ [0, 1]``, in the order
    (y_k, h·y'_k, h²·y''_k, y_k+1, h·y'_k+1, h²·y''_k+1)."""
    t2 = t * t
    t3 = t2 * t
    t4 = t3 * t
    t5 = t4 * t
    h0 = 1.0 - 10.0 * t3 + 15.0 * t4 - 6.0 * t5
    h1 = t - 6.0 * t3 + 8.0 * t4 - 3.0 * t5
    h2 = 0.5 * t2 - 1.5 * t3 + 1.5 * t4 - 0.5 * t5
    h4 = -4.0 * t3 + 7.0 * t4 - 3.0 * t5
    h5 = 0.5 * t3 - t4 + 0.5 * t5
    return torch.stack([h0, h1, h2, 1.0 - h0, h4, h5], dim=-1)


def interpolate(r: torch.Tensor, table: torch.Tensor, r_max: float) -> torch.Tensor:
    """``y(r)`` ``[U, F]`` from ``table`` ``[N + 1, 3, F]`` for distances ``r`` ``[U]`` (Å):
    the quintic Hermite interpolant, 0 outside ``[0, r_max)``. Pure PyTorch (any device,
    differentiable to any order in ``r``); same numbers as ``torch.ops.mlff.radial_table``."""
    n = table.shape[0] - 1
    x = r * (n / r_max)
    inside = (r >= 0) & (r < r_max)
    k = torch.clamp(x.detach().floor(), 0, n - 1).to(torch.long)
    k = torch.where(inside, k, torch.zeros_like(k))
    t = x - k.to(x.dtype)
    value = _basis(t)
    rows = torch.cat([table.index_select(0, k), table.index_select(0, k + 1)], dim=1)  # [U, 6, F]
    y = torch.einsum("uj,ujf->uf", value, rows)
    return torch.where(inside[:, None], y, torch.zeros_like(y))


def lookup(r: torch.Tensor, table: torch.Tensor, r_max: float) -> torch.Tensor:
    """``y(r)`` ``[U, F]`` of a deployed model's table: ``torch.ops.mlff.radial_table`` on
    the CPU (first derivatives only; its export form while a model is traced for an
    AOTInductor package, :mod:`mlff.aoti`), :func:`interpolate` on other devices."""
    if r.is_cpu:
        if not torch.jit.is_scripting():  # eager only
            if export_ops.ENABLED:
                return torch.ops.mlff.radial_table_export(r, table, r_max)
        return torch.ops.mlff.radial_table(r, table, r_max)
    return interpolate(r, table, r_max)


def _derivatives(fn: Callable[[torch.Tensor], torch.Tensor], r: torch.Tensor,
                 second: bool = True) -> tuple[torch.Tensor, ...]:
    """``y, y'`` and (if ``second``) ``y''`` ``[k, F]`` of ``fn`` (row u a function of
    ``r[u]`` alone) in float64.

    Forward-mode AD (``torch.func.jvp`` with a tangent of ones, nested once for ``y''``):
    one pass gives the derivatives of all ``F`` outputs, so time and memory do not grow
    with ``F`` (a reverse-mode loop over outputs kept ``F`` graphs alive: thousands of
    outputs went past 18 GB). Functions with an operator lacking a forward-mode formula
    fall back to that loop."""
    r = r.detach().to(torch.float64)
    ones = torch.ones_like(r)
    try:
        with torch.no_grad():
            if not second:
                y, dy = torch.func.jvp(fn, (r,), (ones,))
                return y, dy

            def first(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                return torch.func.jvp(fn, (x,), (ones,))

            (y, dy), (_, d2y) = torch.func.jvp(first, (r,), (ones,))
            return y, dy, d2y
    except (NotImplementedError, RuntimeError):
        return _derivatives_reverse(fn, r, second)


def _derivatives_reverse(fn: Callable[[torch.Tensor], torch.Tensor], r: torch.Tensor,
                         second: bool) -> tuple[torch.Tensor, ...]:
    """:func:`_derivatives` by reverse mode, one output at a time (any differentiable ``fn``)."""
    r = r.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = fn(r)
        first, more = [], []
        for f in range(y.shape[1]):
            (g1,) = torch.autograd.grad(y[:, f].sum(), r, create_graph=second, retain_graph=True)
            first.append(g1.detach())
            if second:
                (g2,) = torch.autograd.grad(g1.sum(), r, retain_graph=True, allow_unused=True)
                more.append(torch.zeros_like(r) if g2 is None else g2.detach())
            del g1
    derivatives = (torch.stack(first, 1),) + ((torch.stack(more, 1),) if second else ())
    return (y.detach(),) + derivatives


def _knot_derivatives(fn: Callable[[torch.Tensor], torch.Tensor], knots: torch.Tensor,
                      h: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``y, y', y''`` at the knots. A function that is finite at ``r = 0`` but whose
    autograd is not (``sin(kr)/r``, NequIP's Bessel basis: 0/0 there) gets its first knot
    from ``r = δ = h/1024``, shifted back to 0 by Taylor's formula (errors ``O(δ³)``, far
    below any tolerance; the checks inside the first interval verify it). Raises
    ``ConfigError`` for a non-finite value anywhere else."""
    y, dy, d2y = _derivatives(fn, knots)
    bad = ~(torch.isfinite(y) & torch.isfinite(dy) & torch.isfinite(d2y)).all(dim=1)
    if bool(bad[0]) and float(knots[0]) == 0.0:
        delta = h / 1024.0
        y0, dy0, d2y0 = _derivatives(fn, torch.tensor([delta], dtype=torch.float64))
        y[0] = (y0 - delta * dy0 + 0.5 * delta * delta * d2y0)[0]
        dy[0] = (dy0 - delta * d2y0)[0]
        d2y[0] = d2y0[0]
        bad[0] = not bool((torch.isfinite(y[0]) & torch.isfinite(dy[0]) & torch.isfinite(d2y[0])).all())
    if bool(bad.any()):
        r = float(knots[int(bad.nonzero()[0, 0])])
        raise ConfigError(f"radial table: the radial function or its derivatives are not finite at r = {r:g} Å")
    return y, dy, d2y


def tabulate(fn: Callable[[torch.Tensor], torch.Tensor], r_max: float, tolerance: float = 1e-8,
             n_intervals: int = 128, max_intervals: int = 2**14) -> RadialTable:
    """Tabulate ``fn: r [k] float64 (Å) -> y [k, F]`` on ``[0, r_max]``.

    ``fn`` must be twice differentiable, row ``u`` of its output a function of ``r[u]``
    alone, and 0 from ``r_max`` on (a cutoff-multiplied network): the table returns 0
    there. Starting from ``n_intervals``, the intervals are doubled until the relative
    errors of the values and of the derivatives at ``t = ¼, ½, ¾`` of every interval
    are both at most ``tolerance``.

    Raises ``ConfigError`` if ``tolerance`` is not positive or ``max_intervals`` are not
    enough (the error reached is in the message).
    """
    if not tolerance > 0:
        raise ConfigError(f"radial table tolerance must be > 0, got {tolerance}")
    n = max(1, int(n_intervals))
    while True:
        h = r_max / n
        knots = torch.arange(n + 1, dtype=torch.float64) * h
        # the last knot's derivatives are the limits from inside: a cutoff is usually only
        # C¹ at r_max, and fn(r_max) takes the outer branch
        knots[-1] = math.nextafter(r_max, 0.0)
        y, dy, d2y = _knot_derivatives(fn, knots, h)
        table = torch.stack([y, h * dy, h * h * d2y], dim=1)
        check = (torch.arange(n, dtype=torch.float64)[:, None] + torch.tensor([0.25, 0.5, 0.75],
                                                                              dtype=torch.float64)).reshape(-1) * h
        y_ref, dy_ref = _derivatives(fn, check, second=False)
        y_tab, dy_tab = _derivatives(lambda r: interpolate(r, table, r_max), check, second=False)
        error = float((y_tab - y_ref).abs().max() / y_ref.abs().max().clamp_min(1e-300))
        error_derivative = float((dy_tab - dy_ref).abs().max() / dy_ref.abs().max().clamp_min(1e-300))
        if max(error, error_derivative) <= tolerance:
            return RadialTable(table, float(r_max), error, error_derivative)
        if 2 * n > max_intervals:
            raise ConfigError(f"radial table: {n} intervals on [0, {r_max}] Å reach relative errors "
                              f"{error:.1e} (values) and {error_derivative:.1e} (derivatives), above the "
                              f"tolerance {tolerance:.1e}; allow more than {max_intervals} intervals or a "
                              f"larger tolerance")
        n *= 2


__all__ = ["RadialTable", "interpolate", "lookup", "tabulate"]
