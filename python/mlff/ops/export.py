"""Shapes and autograd of the ``*_export`` operators (``cpp/ops/src/export_ops.cpp``), the
forms of mlff's kernels that AOTInductor packages call (:mod:`mlff.aoti`).

Registered from Python because tracing (``make_fx``, ``torch.export``) happens here: the
fake kernels give output shapes on symbolic sizes, and each forward's backward is its
``*_export_backward`` operator, so a traced energy-and-forces function records both as
calls. At run time (LAMMPS, a loaded package) only the CPU kernels are used.

While :data:`ENABLED` is true (:func:`enabled`), the models call these operators instead
of the autograd-aware ones (eager Python only; TorchScript models never do).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

ENABLED = False


@contextlib.contextmanager
def enabled() -> Iterator[None]:
    global ENABLED
    previous, ENABLED = ENABLED, True
    try:
        yield
    finally:
        ENABLED = previous


def register() -> None:
    """Fake kernels and autograd of the export operators (once, when the library is loaded)."""
    lib = "mlff::"

    @torch.library.register_fake(lib + "radial_table_export")
    def _(r, table, r_max):
        return r.new_empty((r.shape[0], table.shape[2]))

    @torch.library.register_fake(lib + "radial_table_export_backward")
    def _(grad, r, table, r_max):
        return r.new_empty((r.shape[0],))

    def radial_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.r_max = inputs[2]

    def radial_backward(ctx, grad):
        r, table = ctx.saved_tensors
        return torch.ops.mlff.radial_table_export_backward(grad, r, table, ctx.r_max), None, None

    torch.library.register_autograd(lib + "radial_table_export", radial_backward, setup_context=radial_setup)

    @torch.library.register_fake(lib + "symmetry_functions_export")
    def _(edge_vec, centre, neighbour_species, n_atoms, n_species, radial, angular, r_c, cutoff, gamma):
        width = n_species * radial.shape[0] + n_species * (n_species + 1) // 2 * angular.shape[0]
        return edge_vec.new_empty((n_atoms, width))

    @torch.library.register_fake(lib + "symmetry_functions_export_backward")
    def _(grad, edge_vec, *args):
        return torch.empty_like(edge_vec)

    def sf_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1], inputs[2])
        ctx.args = inputs[3:]

    def sf_backward(ctx, grad):
        vec, centre, species = ctx.saved_tensors
        g = torch.ops.mlff.symmetry_functions_export_backward(grad, vec, centre, species, *ctx.args)
        return (g,) + (None,) * 9

    torch.library.register_autograd(lib + "symmetry_functions_export", sf_backward, setup_context=sf_setup)

    @torch.library.register_fake(lib + "tp_conv_export")
    def _(h, sh, weight, centre, neighbour, n_nodes, paths, coeff_index, coeff, dim_out):
        return h.new_empty((n_nodes, dim_out))

    @torch.library.register_fake(lib + "tp_conv_export_backward")
    def _(grad, h, sh, weight, *args):
        return torch.empty_like(h), torch.empty_like(sh), torch.empty_like(weight)

    def tp_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:5], *inputs[6:9])
        ctx.n_nodes = inputs[5]

    def tp_backward(ctx, grad):
        h, sh, weight, centre, neighbour, paths, coeff_index, coeff = ctx.saved_tensors
        gh, gs, gw = torch.ops.mlff.tp_conv_export_backward(grad, h, sh, weight, centre, neighbour, ctx.n_nodes,
                                                            paths, coeff_index, coeff)
        return (gh, gs, gw) + (None,) * 7

    torch.library.register_autograd(lib + "tp_conv_export", tp_backward, setup_context=tp_setup)

    @torch.library.register_fake(lib + "schnet_filter_export")
    def _(r, centres, gamma, r_max, w1, b1, w2, b2):
        return r.new_empty((r.shape[0], w2.shape[0])), r.new_empty((r.shape[0], w2.shape[0]))

    def filter_setup(ctx, inputs, output):
        ctx.save_for_backward(output[1])

    def filter_backward(ctx, grad_w, grad_dw_dr):
        # dL/dr = Σ_f dL/dW_f dW_f/dr; traced as plain operations (weights are frozen in a package)
        (dw_dr,) = ctx.saved_tensors
        return ((grad_w * dw_dr).sum(dim=1),) + (None,) * 7

    torch.library.register_autograd(lib + "schnet_filter_export", filter_backward, setup_context=filter_setup)

    @torch.library.register_fake(lib + "edge_conv_export")
    def _(p, q, ip, iq, key, n_out):
        return p.new_empty((n_out, p.shape[1]))

    def conv_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:5])

    def conv_backward(ctx, grad):
        # out[key] += p[ip] ∘ q[iq] is bilinear: each gradient is the same operator with the roles swapped
        p, q, ip, iq, key = ctx.saved_tensors
        gp = torch.ops.mlff.edge_conv_export(grad, q, key, iq, ip, p.shape[0]) if ctx.needs_input_grad[0] else None
        gq = torch.ops.mlff.edge_conv_export(grad, p, key, ip, iq, q.shape[0]) if ctx.needs_input_grad[1] else None
        return gp, gq, None, None, None, None

    torch.library.register_autograd(lib + "edge_conv_export", conv_backward, setup_context=conv_setup)

    @torch.library.register_fake(lib + "tp_uvw_export")
    def _(h, sh, weight, neighbour, group, paths, coeff_index, coeff, dim_out):
        return h.new_empty((sh.shape[0], dim_out))

    @torch.library.register_fake(lib + "tp_uvw_export_backward")
    def _(grad, h, sh, weight, *args):
        return torch.empty_like(h), torch.empty_like(sh), torch.empty_like(weight)

    def uvw_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:8])
        ctx.dim_out = inputs[8]

    def uvw_backward(ctx, grad):
        h, sh, weight, neighbour, group, paths, coeff_index, coeff = ctx.saved_tensors
        gh, gs, gw = torch.ops.mlff.tp_uvw_export_backward(grad, h, sh, weight, neighbour, group, paths, coeff_index,
                                                           coeff, ctx.dim_out)
        return (gh, gs, gw) + (None,) * 6

    torch.library.register_autograd(lib + "tp_uvw_export", uvw_backward, setup_context=uvw_setup)


def schnet_filter(r, centres, gamma, r_max, w1, b1, w2, b2) -> torch.Tensor:
    """SchNet's fused filter ``W(r)`` ``[U, F]`` in its export form (its ``dW/dr`` is the
    operator's second output, used only by the backward)."""
    return torch.ops.mlff.schnet_filter_export(r, centres, gamma, r_max, w1, b1, w2, b2)[0]
