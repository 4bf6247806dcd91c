// The one place where mlff's operators are declared (TORCH_LIBRARY for namespace mlff).
// Python: torch.ops.mlff.<name> after mlff.ops is imported; TorchScript models
// serialise the calls by name, and LAMMPS resolves them in this same library.
//
// Operator set (kOpsVersion = 8):
//   halo_exchange(Tensor x) -> Tensor     ghost rows <- owner rows (identity without exchanger)
//   halo_reverse(Tensor g) -> Tensor      adjoint: owner rows += ghost rows, ghost rows = 0
//   halo_set_owner_map(Tensor owner) -> ()  install an index-map exchanger (tests)
//   halo_clear() -> ()                    remove it
//   halo_active() -> bool                 whether some exchanger is installed
//   select_device_index(int node_local_rank, int device_count) -> int
//   ops_version() -> int
//   cuda_built() -> bool                  whether the CUDA kernels (cuda/) are in this library
//   cpu_kernel_level() -> int             the per-ISA CPU kernel build in use: 2 AVX-512, 1 AVX2, 0 baseline
//   symmetry_functions(Tensor edge_vec, Tensor centre, Tensor neighbour_species, int n_atoms,
//       int n_species, Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor
//                                         G2/G4/G5 [n_atoms, F], differentiable twice (src/symmetry_functions.cpp)
//   tp_conv(Tensor h, Tensor sh, Tensor weight, Tensor centre, Tensor neighbour, int n_nodes,
//       Tensor paths, Tensor coeff_index, Tensor coeff) -> Tensor
//                                         uvu CG tensor-product convolution, gather + scatter fused,
//                                         differentiable twice (src/tensor_product.cpp)
//   tp_uvw(Tensor h, Tensor sh, Tensor weight, Tensor neighbour, Tensor group, Tensor paths,
//       Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor
//                                         fully connected CG tensor product per edge, per-pair
//                                         weights, differentiable twice (src/tensor_product_uvw.cpp)
//   edge_conv(Tensor x, Tensor w, Tensor group, Tensor src, Tensor dst, int n_out) -> Tensor
//   edge_pair_product(Tensor a, Tensor b, Tensor ia, Tensor ib, Tensor group, int n_out) -> Tensor
//                                         SchNet's cfconv with per-pair filters, differentiable to
//                                         any order (src/edge_conv.cpp)
//   schnet_filter(Tensor r, Tensor centres, float gamma, float r_max, Tensor w1, Tensor b1,
//       Tensor w2, Tensor b2) -> Tensor   SchNet's fused filter network, first derivative in r
//                                         only (src/schnet_filter.cpp)
//   radial_table(Tensor r, Tensor table, float r_max) -> Tensor
//                                         tabulated radial function (quintic Hermite), first
//                                         derivative in r only (src/radial_table.cpp)
// Kernels for the models (symmetry functions, tensor products, ...) go into
// further src/*.cpp files and are declared here.

#include "mlff/ops.h"

#include "kernel_util.h"

#include <torch/library.h>

namespace mlff {
at::Tensor halo_exchange_autograd(const at::Tensor &x);
at::Tensor halo_reverse_autograd(const at::Tensor &g);
at::Tensor halo_exchange_kernel(const at::Tensor &x);
at::Tensor halo_reverse_kernel(const at::Tensor &g);
at::Tensor halo_meta(const at::Tensor &x);
void halo_set_owner_map(const at::Tensor &owner);
void halo_clear();
bool halo_active();
}    // namespace mlff

namespace {
int64_t ops_version()
{
  return mlff::kOpsVersion;
}
bool cuda_built()
{
#ifdef MLFF_WITH_CUDA
  return true;
#else
  return false;
#endif
}
int64_t cpu_kernel_level()
{
  return mlff::cpu_level();
}
}    // namespace

TORCH_LIBRARY(mlff, m)
{
  // autograd-aware operators (kernels below)
  m.def("halo_exchange(Tensor x) -> Tensor");
  m.def("halo_reverse(Tensor g) -> Tensor");
  // plain functions (catch-all kernels)
  m.def("halo_set_owner_map(Tensor owner) -> ()", &mlff::halo_set_owner_map);
  m.def("halo_clear() -> ()", &mlff::halo_clear);
  m.def("halo_active() -> bool", &mlff::halo_active);
  m.def("select_device_index(int node_local_rank, int device_count) -> int",
        &mlff::select_device_index);
  m.def("ops_version() -> int", &ops_version);
  m.def("cuda_built() -> bool", &cuda_built);
  m.def("cpu_kernel_level() -> int", &cpu_kernel_level);
  m.def("symmetry_functions(Tensor edge_vec, Tensor centre, Tensor neighbour_species, int n_atoms, int n_species, "
        "Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor");
  m.def("tp_conv(Tensor h, Tensor sh, Tensor weight, Tensor centre, Tensor neighbour, int n_nodes, Tensor paths, "
        "Tensor coeff_index, Tensor coeff) -> Tensor");
  m.def("tp_uvw(Tensor h, Tensor sh, Tensor weight, Tensor neighbour, Tensor group, Tensor paths, "
        "Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor");
  m.def("edge_conv(Tensor x, Tensor w, Tensor group, Tensor src, Tensor dst, int n_out) -> Tensor");
  m.def("edge_pair_product(Tensor a, Tensor b, Tensor ia, Tensor ib, Tensor group, int n_out) -> Tensor");
  m.def("schnet_filter(Tensor r, Tensor centres, float gamma, float r_max, Tensor w1, Tensor b1, Tensor w2, "
        "Tensor b2) -> Tensor");
  m.def("radial_table(Tensor r, Tensor table, float r_max) -> Tensor");
}

// The halo exchange at every dispatcher level: a backend kernel for all devices
// (CompositeExplicitAutograd: not decomposed when traced), an Autograd kernel (each op's
// backward is the other) and a Meta kernel (shapes, for torch.export and AOTInductor).
TORCH_LIBRARY_IMPL(mlff, CompositeExplicitAutograd, m)
{
  m.impl("halo_exchange", &mlff::halo_exchange_kernel);
  m.impl("halo_reverse", &mlff::halo_reverse_kernel);
}
TORCH_LIBRARY_IMPL(mlff, Autograd, m)
{
  m.impl("halo_exchange", &mlff::halo_exchange_autograd);
  m.impl("halo_reverse", &mlff::halo_reverse_autograd);
}
TORCH_LIBRARY_IMPL(mlff, Meta, m)
{
  m.impl("halo_exchange", &mlff::halo_meta);
  m.impl("halo_reverse", &mlff::halo_meta);
}

// CompositeImplicitAutograd: the kernel is an autograd::Function, which records
// its own backward; it runs for every backend (CPU, CUDA).
TORCH_LIBRARY_IMPL(mlff, CompositeImplicitAutograd, m)
{
  m.impl("symmetry_functions", &mlff::symmetry_functions);
  m.impl("tp_conv", &mlff::tp_conv);
  m.impl("tp_uvw", &mlff::tp_uvw);
  m.impl("edge_conv", &mlff::edge_conv);
  m.impl("edge_pair_product", &mlff::edge_pair_product);
  m.impl("schnet_filter", &mlff::schnet_filter);
  m.impl("radial_table", &mlff::radial_table);
}
