// mlff's CUDA kernels: a torch-free API (raw device pointers, a CUDA stream).
//
// Built by cuda/CMakeLists.txt into the static library mlff_cuda_kernels with the CUDA
// toolkit alone, so CI proves that the kernels compile on machines whose torch is the CPU
// build.  The torch glue (cpp/ops/src/cuda_glue.cpp, built only when torch has CUDA) turns
// tensors into these arguments; the CPU twins are cpp/ops/src/symmetry_functions.cpp and
// cpp/ops/src/tensor_product.cpp and tensor_product_uvw.cpp, which define what every kernel
// computes.  cuda/host_emulation/ runs them on the host for tests.
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

// ------------------------------------------------------------------ uvw tensor product
// out[e] = TP_uvw(h[neighbour(e)], Y[e], W[group(e)]) per edge (cpp/ops/src/tensor_product_uvw.cpp).
// Path k: paths[8k..] = off_h, dim_h, mul_in, off_y, off_out, dim_out, mul_out, off_w; its
// coefficients as for TpArgs.  The paths that write one output block (same off_out) are
// out_paths[b .. e); a forward work item (b, e, w) computes output channel w of that block
// for one edge.  Likewise in_paths / in_items (b, e, u) group the paths that read one input
// block, for ∂h.  w_path[i] is the path of weight entry i (-1: none).
constexpr int kMaxIrrepDim = 15;          // l ≤ 7: the per-thread accumulators' size
struct TpUvwArgs {
  int64_t n_edges, n_nodes, n_pairs, n_paths, dim_h, dim_y, dim_out, n_w;
  const int64_t *paths;                   // [K, 8] (device)
  const int64_t *path_start;              // [K + 1] (device)
  const int32_t *coeff_m;                 // [nnz, 3] m1, m2, m3 (device)
  const double *coeff;                    // [nnz] (device)
  const int64_t *neighbour, *group;       // [E] (device)
  const int64_t *by_nbr_offset, *by_nbr_order;     // CSR of edges by neighbour node
  const int64_t *by_pair_offset, *by_pair_order;   // CSR of edges by weight row
  int64_t n_out_items, n_in_items;
  const int32_t *out_paths, *out_items;   // [K], [n_out_items, 3] (device)
  const int32_t *in_paths, *in_items;     // [K], [n_in_items, 3] (device)
  const int32_t *w_path;                  // [n_w] (device)
};

// out [E, dim_out] (zeroed by the caller) = TP_uvw per edge
template <typename T>
void tp_uvw_forward(const TpUvwArgs &a, const T *h, const T *y, const T *w, T *out, cudaStream_t stream);
// gh, gy, gw (zeroed by the caller) = gradients of <g, out>
template <typename T, typename S>
void tp_uvw_backward(const TpUvwArgs &a, const S *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw,
                     cudaStream_t stream);

}    // namespace cuda
}    // namespace mlff

#endif
