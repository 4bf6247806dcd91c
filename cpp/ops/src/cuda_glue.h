// Torch glue of the CUDA kernels (cuda/): tensors in, tensors out.  Implemented in
// cuda_glue.cpp, compiled only when torch has CUDA (MLFF_WITH_CUDA); the CPU files
// (symmetry_functions.cpp, tensor_product.cpp, tensor_product_uvw.cpp) call it for CUDA tensors.
#ifndef MLFF_CUDA_GLUE_H
#define MLFF_CUDA_GLUE_H

#include <ATen/core/Tensor.h>

#include <vector>

namespace mlff {
namespace cuda_glue {

// Symmetry functions.  `grad` undefined: G (forward) or, with `tangent`, J·tangent;
// `grad` defined: Jᵀ·grad (backward) or, with `tangent`, H_grad·tangent.
at::Tensor symmetry_functions(const at::Tensor &vec, const at::Tensor &tangent, const at::Tensor &grad,
                              const at::Tensor &centre, const at::Tensor &species, int64_t n_atoms, int64_t n_species,
                              const at::Tensor &radial, const at::Tensor &angular, double r_c, int64_t cutoff,
                              double gamma);

// Tensor-product convolution.  `grad` undefined: {out} (forward, or with tangents its
// directional derivative); defined: {gh, gy, gw} (backward, or with tangents their
// directional derivatives).  Undefined tangents count as zero; all undefined: no tangent.
std::vector<at::Tensor> tp_conv(const at::Tensor &h, const at::Tensor &y, const at::Tensor &w, const at::Tensor &uh,
                                const at::Tensor &uy, const at::Tensor &uw, const at::Tensor &grad,
                                const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                                const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff);

// uvw tensor product per edge (tensor_product_uvw.cpp), with the same conventions as
// tp_conv: {out [E, dim_out]} or {gh, gy, gw}.
std::vector<at::Tensor> tp_uvw(const at::Tensor &h, const at::Tensor &y, const at::Tensor &w, const at::Tensor &uh,
                               const at::Tensor &uy, const at::Tensor &uw, const at::Tensor &grad,
                               const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths,
                               const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out);

}    // namespace cuda_glue
}    // namespace mlff

#endif
