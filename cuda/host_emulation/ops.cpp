// torch.ops.mlff_cuda_emulation.*: the torch glue of the CUDA kernels (cpp/ops/src/cuda_glue.cpp)
// driving their host emulation on CPU tensors, one operator per glue function, with the
// glue's own arguments.  Loaded only by tests/test_cuda_emulation.py, which compares them
// with the CPU operators; models never call them.
#include "../../cpp/ops/src/cuda_glue.h"

#include <torch/library.h>

#include <optional>

namespace {

at::Tensor or_undefined(const std::optional<at::Tensor> &t) { return t.has_value() ? *t : at::Tensor(); }

at::Tensor symmetry_functions(const at::Tensor &vec, const std::optional<at::Tensor> &tangent,
                              const std::optional<at::Tensor> &grad, const at::Tensor &centre,
                              const at::Tensor &species, int64_t n_atoms, int64_t n_species, const at::Tensor &radial,
                              const at::Tensor &angular, double r_c, int64_t cutoff, double gamma)
{
  return mlff::cuda_glue::symmetry_functions(vec, or_undefined(tangent), or_undefined(grad), centre, species, n_atoms,
                                             n_species, radial, angular, r_c, cutoff, gamma);
}

std::vector<at::Tensor> tp_conv(const at::Tensor &h, const at::Tensor &y, const at::Tensor &w,
                                const std::optional<at::Tensor> &uh, const std::optional<at::Tensor> &uy,
                                const std::optional<at::Tensor> &uw, const std::optional<at::Tensor> &grad,
                                const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                                const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff)
{
  return mlff::cuda_glue::tp_conv(h, y, w, or_undefined(uh), or_undefined(uy), or_undefined(uw), or_undefined(grad),
                                  centre, neighbour, n_nodes, paths, coeff_index, coeff);
}

std::vector<at::Tensor> tp_uvw(const at::Tensor &h, const at::Tensor &y, const at::Tensor &w,
                               const std::optional<at::Tensor> &uh, const std::optional<at::Tensor> &uy,
                               const std::optional<at::Tensor> &uw, const std::optional<at::Tensor> &grad,
                               const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths,
                               const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out)
{
  return mlff::cuda_glue::tp_uvw(h, y, w, or_undefined(uh), or_undefined(uy), or_undefined(uw), or_undefined(grad),
                                 neighbour, group, paths, coeff_index, coeff, dim_out);
}

}    // namespace

TORCH_LIBRARY(mlff_cuda_emulation, m)
{
  m.def("symmetry_functions(Tensor vec, Tensor? tangent, Tensor? grad, Tensor centre, Tensor species, int n_atoms, "
        "int n_species, Tensor radial, Tensor angular, float r_c, int cutoff, float gamma) -> Tensor",
        &symmetry_functions);
  m.def("tp_conv(Tensor h, Tensor y, Tensor w, Tensor? uh, Tensor? uy, Tensor? uw, Tensor? grad, Tensor centre, "
        "Tensor neighbour, int n_nodes, Tensor paths, Tensor coeff_index, Tensor coeff) -> Tensor[]",
        &tp_conv);
  m.def("tp_uvw(Tensor h, Tensor y, Tensor w, Tensor? uh, Tensor? uy, Tensor? uw, Tensor? grad, Tensor neighbour, "
        "Tensor group, Tensor paths, Tensor coeff_index, Tensor coeff, int dim_out) -> Tensor[]",
        &tp_uvw);
}
