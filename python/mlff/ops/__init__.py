"""mlff's torch operators, ``torch.ops.mlff.*`` (C++ library ``libmlff_ops.so``).

Importing this module registers the operators, so that models can be scripted and
deployed models loaded. The operators live in ``python/mlff/lib/libmlff_ops.so``
(built by ``scripts/build_plugin.sh`` from ``cpp/ops/``); the LAMMPS plugin links
the same library, so a deployed model calls the same code in Python and in LAMMPS.

Halo exchange (``docs/model_interface.md``): message-passing models call
``torch.ops.mlff.halo_exchange(x)`` on their node features after each layer but the
last. In LAMMPS the pair style installs an exchanger that copies the features of
owned atoms to their ghost copies on other MPI ranks (and sums ghost gradients back
onto the owners in the backward pass). In plain Python use nothing is installed and
the operator is the identity, so it does not change training or ``mlff eval``.

If the C++ library has not been built, this module registers the same operator
schemas with pure-torch identity kernels (:data:`NATIVE` is then ``False``): models
still train, deploy and evaluate in Python, and the deployed files are identical.
The test helpers (:func:`owner_map_exchange`) need the C++ library.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

LIBRARY_NAME = "libmlff_ops.so"
OPS_VERSION = 8  # must match mlff::kOpsVersion (cpp/ops/include/mlff/ops.h)


def library_path() -> str:
    """Where ``scripts/build_plugin.sh`` installs ``libmlff_ops.so``."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib", LIBRARY_NAME)


def _already_registered() -> bool:
    try:
        torch.ops.mlff.halo_exchange  # noqa: B018 - raises if the namespace lacks the op
        return True
    except (AttributeError, RuntimeError):
        return False


_fallback_lib = None
_why = ""


def _register_fallback() -> None:
    """Identity kernels with the C++ library's schemas (no exchanger can be installed)."""
    global _fallback_lib
    lib = torch.library.Library("mlff", "DEF")
    lib.define("halo_exchange(Tensor x) -> Tensor")
    lib.define("halo_reverse(Tensor g) -> Tensor")
    # clone is differentiable, so autograd through the identity is exact
    lib.impl("halo_exchange", lambda x: x.clone(), "CompositeImplicitAutograd")
    lib.impl("halo_reverse", lambda g: g.clone(), "CompositeImplicitAutograd")
    # schema only, so that models can still be scripted; their "auto" choice avoids calling it
    lib.define("symmetry_functions(Tensor edge_vec, Tensor centre, Tensor neighbour_species, int n_atoms, "
               "int n_species, Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor")

    def _not_built(*args):
        raise RuntimeError(f"this torch.ops.mlff operator needs the C++ operator library: {_why}")

    lib.impl("symmetry_functions", _not_built, "CompositeImplicitAutograd")
    lib.define("tp_conv(Tensor h, Tensor sh, Tensor weight, Tensor centre, Tensor neighbour, int n_nodes, "
               "Tensor paths, Tensor coeff_index, Tensor coeff) -> Tensor")
    lib.impl("tp_conv", _not_built, "CompositeImplicitAutograd")
    lib.define("tp_uvw(Tensor h, Tensor sh, Tensor weight, Tensor neighbour, Tensor group, Tensor paths, "
               "Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor")
    lib.impl("tp_uvw", _not_built, "CompositeImplicitAutograd")
    lib.define("edge_conv(Tensor x, Tensor w, Tensor group, Tensor src, Tensor dst, int n_out) -> Tensor")
    lib.impl("edge_conv", _not_built, "CompositeImplicitAutograd")
    lib.define("edge_pair_product(Tensor a, Tensor b, Tensor ia, Tensor ib, Tensor group, int n_out) -> Tensor")
    lib.impl("edge_pair_product", _not_built, "CompositeImplicitAutograd")
    lib.define("schnet_filter(Tensor r, Tensor centres, float gamma, float r_max, Tensor w1, Tensor b1, "
               "Tensor w2, Tensor b2) -> Tensor")
    lib.impl("schnet_filter", _not_built, "CompositeImplicitAutograd")
    lib.define("radial_table(Tensor r, Tensor table, float r_max) -> Tensor")
    lib.impl("radial_table", _not_built, "CompositeImplicitAutograd")
    lib.define("halo_active() -> bool")
    lib.impl("halo_active", lambda: False, "CompositeImplicitAutograd")
    lib.define("cuda_built() -> bool")
    lib.impl("cuda_built", lambda: False, "CompositeImplicitAutograd")
    lib.define("cpu_kernel_level() -> int")
    lib.impl("cpu_kernel_level", _not_built, "CompositeImplicitAutograd")
    _fallback_lib = lib


def _load() -> tuple[bool, str]:
    if _already_registered():
        return True, "already registered"
    path = library_path()
    if os.path.isfile(path):
        try:
            torch.ops.load_library(path)
        except OSError as exc:
            why = f"{path} could not be loaded ({exc}); rebuild with scripts/build_plugin.sh"
        else:
            version = int(torch.ops.mlff.ops_version())
            if version != OPS_VERSION:
                raise ImportError(f"{path} has operator set version {version}, this mlff expects "
                                  f"{OPS_VERSION}; rebuild it with scripts/build_plugin.sh")
            return True, path
    else:
        why = f"{path} is not built (scripts/build_plugin.sh)"
    global _why
    _why = why
    _register_fallback()
    return False, why


NATIVE, WHERE = _load()
"""``NATIVE``: whether the C++ operators are loaded; ``WHERE``: their file, or why not."""

if NATIVE:
    from . import export as _export

    _export.register()


def halo_exchange(x: torch.Tensor) -> torch.Tensor:
    """``torch.ops.mlff.halo_exchange``: ghost rows of ``x`` replaced by their owners' rows
    (the identity unless an exchanger is installed)."""
    return torch.ops.mlff.halo_exchange(x)


def cuda_built() -> bool:
    """Whether ``libmlff_ops.so`` contains the CUDA kernels of ``cuda/`` (built where torch has CUDA)."""
    return bool(torch.ops.mlff.cuda_built())


def cpu_kernel_level() -> int:
    """Which per-instruction-set build of the vectorised CPU kernels runs: 2 = AVX-512,
    1 = AVX2 + FMA, 0 = baseline. The widest the CPU supports, lowered by the environment
    variable ``ATEN_CPU_CAPABILITY=default|avx2`` (read once, as ATen does)."""
    _require_native("cpu_kernel_level")
    return int(torch.ops.mlff.cpu_kernel_level())


def select_device_index(node_local_rank: int, device_count: int) -> int:
    """The CUDA device the LAMMPS plugin gives a rank: ``node_local_rank % device_count``,
    or -1 without devices (same C++ function the plugin calls)."""
    _require_native("select_device_index")
    return int(torch.ops.mlff.select_device_index(node_local_rank, device_count))


def _require_native(what: str) -> None:
    if not NATIVE:
        raise RuntimeError(f"mlff.ops.{what} needs the C++ operator library: {WHERE}")


@contextlib.contextmanager
def owner_map_exchange(owner: torch.Tensor) -> Iterator[None]:
    """Within the block, halo exchanges follow the index map ``owner`` (int64 ``[n]``):
    row ``k`` of an exchanged tensor is replaced by row ``owner[k]``, and the adjoint
    sums rows onto their owners. ``owner[k] == k`` for owned rows.

    This is what LAMMPS does across MPI ranks, in one process: a graph with explicit
    ghost nodes plus this map reproduces the model on the full structure (tests).
    """
    _require_native("owner_map_exchange")
    torch.ops.mlff.halo_set_owner_map(owner.to(torch.int64))
    try:
        yield
    finally:
        torch.ops.mlff.halo_clear()


__all__ = ["NATIVE", "WHERE", "cpu_kernel_level", "cuda_built", "halo_exchange", "library_path", "owner_map_exchange", "select_device_index"]
