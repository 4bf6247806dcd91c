// mlff's CUDA kernels: a torch-free API (raw device pointers, a CUDA stream).
//
// Built by cuda/CMakeLists.txt into the static library mlff_cuda_kernels with the CUDA
// toolkit alone, so CI proves that the kernels compile on machines whose torch is the CPU
// build.  The torch glue (cpp/ops/src/cuda_glue.cpp, built only when torch has CUDA) turns
// tensors into these arguments; the CPU twins are cpp/ops/src/symmetry_functions.cpp and
// cpp/ops/src/tensor_product.cpp, which define what every kernel computes.
//
// Value types T: float, double, Dual<float>, Dual<double> (mlff/dual.h); S is the matching
// scalar.  The Dual instantiations give the double-backward kernels (see the CPU files).
#ifndef MLFF_CUDA_KERNELS_H
#define MLFF_CUDA_KERNELS_H

#ifdef MLFF_CUDA_HOST_EMULATION
#include "mlff/cuda/host_emulation.h"
#else
#include <cuda_runtime_api.h>
#endif

#include <cstdint>

namespace mlff {
namespace cuda {

// ------------------------------------------------------------------ symmetry functions
// Edges grouped by centre: edges of atom i are order[offset[i] .. offset[i+1]).
struct SfArgs {
  int64_t n_atoms, n_species, R, A, F;    // F = n_species·R + n_species(n_species+1)/2·A
  double r_c, gamma;
  int cutoff;                             // 0 cosine, 1 polynomial(γ)
  const double *radial;                   // [R, 2] (η, r_s), device
  const double *angular;                  // [A, 4] (kind 4|5, η, ζ, λ), device
  const int64_t *offset, *order;          // CSR by centre, device
  const int64_t *neighbour_species;       // [E], device
};

// out [n_atoms, F] (zeroed by the caller) += G(vec)
template <typename T>
void sf_forward(const SfArgs &a, const T *vec, T *out, cudaStream_t stream);
// gvec [E, 3] (zeroed by the caller) = Σ grad · ∂G/∂vec ; grad [n_atoms, F] of the scalar type
template <typename T, typename S>
void sf_backward(const SfArgs &a, const T *vec, const S *grad, T *gvec, cudaStream_t stream);

// ------------------------------------------------------------------ tensor product
// Path k: h block at off_h (irrep dim dim_h, multiplicity mul), sh block at off_y, output
// block at off_out (dim_out), weights at off_w; its non-zero coefficients are
// coeff_m[n] / coeff[n] for n in [path_start[k], path_start[k+1]).
struct TpArgs {
  int64_t n_nodes, n_h_nodes, n_paths, dim_h, dim_y, dim_out, n_w, max_mul;
  const int64_t *paths;                   // [K, 7] off_h, dim_h, mul, off_y, off_out, dim_out, off_w (device)
  const int64_t *path_start;              // [K + 1] (device)
  const int32_t *coeff_m;                 // [nnz, 3] m1, m2, m3 (device)
  const double *coeff;                    // [nnz] (device)
  const int64_t *centre, *neighbour;      // [E] (device)
  const int64_t *by_centre_offset, *by_centre_order;   // CSR of edges by centre
  const int64_t *by_nbr_offset, *by_nbr_order;         // CSR of edges by neighbour
};

// out [n_nodes, dim_out] (zeroed by the caller) += Σ_edges TP(h[nbr], y, w)
template <typename T>
void tp_forward(const TpArgs &a, const T *h, const T *y, const T *w, T *out, cudaStream_t stream);
// gh, gy, gw (zeroed by the caller) += gradients of <g, TP>
template <typename T, typename S>
void tp_backward(const TpArgs &a, const S *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw,
                 cudaStream_t stream);

}    // namespace cuda
}    // namespace mlff

#endif
