// Fully connected ("uvw") Clebsch–Gordan tensor product per edge on the GPU, with the
// neighbour-feature and per-pair-weight gathers fused in (definitions, layouts and the CPU
// twin: cpp/ops/src/tensor_product_uvw.cpp).  Four kernels, each writing every entry it
// owns exactly once (no atomics, no block synchronisation, results independent of
// scheduling):
//   forward  block per edge,          thread per (output block, channel w): out[e, w, :]
//   ∂h       block per neighbour node, thread per (input block, channel u): ∂h[j, u, :]
//   ∂Y       block per edge,          thread per harmonic component i:       ∂Y[e, i]
//   ∂W       block per atom pair,     thread per weight entry (k, u, w):      ∂W[pair, k, u, w]
// Each thread sums over the Clebsch–Gordan non-zeros of its paths and contracts the other
// channel index on the fly, so no [E, n_W] weight or [E, mul, dim] intermediate is formed.
#include "launch.cuh"
#include "mlff/cuda/kernels.h"

namespace mlff {
namespace cuda {
namespace {

// path k's row: off_h, dim_h, mul_in, off_y, off_out, dim_out, mul_out, off_w
struct UvwPath {
  int64_t off_h, d1, mul_in, off_y, off_out, d3, mul_out, off_w;
};
__device__ inline UvwPath path_of(const TpUvwArgs &a, int64_t k)
{
  const int64_t *p = a.paths + 8 * k;
  return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]};
}

template <typename S, typename T>
__global__ void uvw_forward_kernel(TpUvwArgs a, const T *h, const T *y, const T *w, T *out)
{
  const int64_t e = blockIdx.x;
  const T *hj = h + a.neighbour[e] * a.dim_h, *ye = y + e * a.dim_y, *we = w + a.group[e] * a.n_w;
  for (int64_t it = threadIdx.x; it < a.n_out_items; it += blockDim.x) {
    const int32_t *item = a.out_items + 3 * it;
    const int64_t v = item[2];
    const UvwPath blk = path_of(a, a.out_paths[item[0]]);
    T acc[kMaxIrrepDim];
    for (int64_t m = 0; m < blk.d3; ++m) acc[m] = T(0);
    for (int32_t q = item[0]; q < item[1]; ++q) {
      const int64_t k = a.out_paths[q];
      const UvwPath p = path_of(a, k);
      const T *wv = we + p.off_w + v;    // W[u, v] = wv[u · mul_out]
      for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
        const int32_t *m = a.coeff_m + 3 * n;
        const T *x = hj + p.off_h + m[0];    // h[u, m1] = x[u · d1]
        T s(0);
        for (int64_t u = 0; u < p.mul_in; ++u) s += wv[u * p.mul_out] * x[u * p.d1];
        acc[m[2]] += static_cast<S>(a.coeff[n]) * ye[p.off_y + m[1]] * s;
      }
    }
    T *o = out + e * a.dim_out + blk.off_out + v * blk.d3;
    for (int64_t m = 0; m < blk.d3; ++m) o[m] = acc[m];
  }
}

// r = Σ_w W[u, w] g[w, m3] for one (u, m3): wu = W[u, :], gm = g[:, m3] with stride d3
template <typename S, typename T>
__device__ inline T contract_out(const T *wu, const S *gm, int64_t mul_out, int64_t d3)
{
  T r(0);
  for (int64_t v = 0; v < mul_out; ++v) r += wu[v] * gm[v * d3];
  return r;
}

template <typename S, typename T>
__global__ void uvw_grad_h_kernel(TpUvwArgs a, const S *g, const T *y, const T *w, T *gh)
{
  const int64_t j = blockIdx.x;
  for (int64_t it = threadIdx.x; it < a.n_in_items; it += blockDim.x) {
    const int32_t *item = a.in_items + 3 * it;
    const int64_t u = item[2];
    const UvwPath blk = path_of(a, a.in_paths[item[0]]);
    T acc[kMaxIrrepDim];
    for (int64_t m = 0; m < blk.d1; ++m) acc[m] = T(0);
    for (int64_t t = a.by_nbr_offset[j]; t < a.by_nbr_offset[j + 1]; ++t) {
      const int64_t e = a.by_nbr_order[t];
      const S *ge = g + e * a.dim_out;
      const T *ye = y + e * a.dim_y, *we = w + a.group[e] * a.n_w;
      for (int32_t q = item[0]; q < item[1]; ++q) {
        const int64_t k = a.in_paths[q];
        const UvwPath p = path_of(a, k);
        const T *wu = we + p.off_w + u * p.mul_out;
        for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
          const int32_t *m = a.coeff_m + 3 * n;
          const T r = contract_out(wu, ge + p.off_out + m[2], p.mul_out, p.d3);
          acc[m[0]] += static_cast<S>(a.coeff[n]) * ye[p.off_y + m[1]] * r;
        }
      }
    }
    T *o = gh + j * a.dim_h + blk.off_h + u * blk.d1;
    for (int64_t m = 0; m < blk.d1; ++m) o[m] = acc[m];
  }
}

template <typename S, typename T>
__global__ void uvw_grad_y_kernel(TpUvwArgs a, const S *g, const T *h, const T *w, T *gy)
{
  const int64_t e = blockIdx.x;
  const T *hj = h + a.neighbour[e] * a.dim_h, *we = w + a.group[e] * a.n_w;
  const S *ge = g + e * a.dim_out;
  for (int64_t i = threadIdx.x; i < a.dim_y; i += blockDim.x) {
    T acc(0);
    for (int64_t k = 0; k < a.n_paths; ++k) {
      const UvwPath p = path_of(a, k);
      for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
        const int32_t *m = a.coeff_m + 3 * n;
        if (p.off_y + m[1] != i) continue;
        const T *x = hj + p.off_h + m[0];
        T s(0);
        for (int64_t u = 0; u < p.mul_in; ++u)
          s += x[u * p.d1] * contract_out(we + p.off_w + u * p.mul_out, ge + p.off_out + m[2], p.mul_out, p.d3);
        acc += static_cast<S>(a.coeff[n]) * s;
      }
    }
    gy[e * a.dim_y + i] = acc;
  }
}

template <typename S, typename T>
__global__ void uvw_grad_w_kernel(TpUvwArgs a, const S *g, const T *h, const T *y, T *gw)
{
  const int64_t pair = blockIdx.x;
  for (int64_t i = threadIdx.x; i < a.n_w; i += blockDim.x) {
    T acc(0);
    const int64_t k = a.w_path[i];
    if (k >= 0) {
      const UvwPath p = path_of(a, k);
      const int64_t u = (i - p.off_w) / p.mul_out, v = (i - p.off_w) % p.mul_out;
      for (int64_t t = a.by_pair_offset[pair]; t < a.by_pair_offset[pair + 1]; ++t) {
        const int64_t e = a.by_pair_order[t];
        const T *x = h + a.neighbour[e] * a.dim_h + p.off_h + u * p.d1, *ye = y + e * a.dim_y + p.off_y;
        const S *gv = g + e * a.dim_out + p.off_out + v * p.d3;
        for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
          const int32_t *m = a.coeff_m + 3 * n;
          acc += (static_cast<S>(a.coeff[n]) * gv[m[2]]) * ye[m[1]] * x[m[0]];
        }
      }
    }
    gw[pair * a.n_w + i] = acc;
  }
}

inline unsigned grid(int64_t n) { return static_cast<unsigned>(n); }

}    // namespace

template <typename T>
void tp_uvw_forward(const TpUvwArgs &a, const T *h, const T *y, const T *w, T *out, cudaStream_t stream)
{
  if (a.n_edges == 0 || a.n_out_items == 0) return;
  MLFF_LAUNCH(grid(a.n_edges), threads_for(a.n_out_items), stream,
              uvw_forward_kernel<typename ScalarOf<T>::type, T>)(a, h, y, w, out);
  check(cudaGetLastError(), "tp_uvw forward");
}

template <typename T, typename S>
void tp_uvw_backward(const TpUvwArgs &a, const S *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw,
                     cudaStream_t stream)
{
  if (a.n_edges == 0) return;
  if (a.n_nodes > 0 && a.n_in_items > 0)
    MLFF_LAUNCH(grid(a.n_nodes), threads_for(a.n_in_items), stream, uvw_grad_h_kernel<S, T>)(a, g, y, w, gh);
  if (a.dim_y > 0) MLFF_LAUNCH(grid(a.n_edges), threads_for(a.dim_y), stream, uvw_grad_y_kernel<S, T>)(a, g, h, w, gy);
  if (a.n_pairs > 0 && a.n_w > 0)
    MLFF_LAUNCH(grid(a.n_pairs), threads_for(a.n_w), stream, uvw_grad_w_kernel<S, T>)(a, g, h, y, gw);
  check(cudaGetLastError(), "tp_uvw backward");
}

template void tp_uvw_forward<float>(const TpUvwArgs &, const float *, const float *, const float *, float *,
                                    cudaStream_t);
template void tp_uvw_forward<double>(const TpUvwArgs &, const double *, const double *, const double *, double *,
                                     cudaStream_t);
template void tp_uvw_forward<Dual<float>>(const TpUvwArgs &, const Dual<float> *, const Dual<float> *,
                                          const Dual<float> *, Dual<float> *, cudaStream_t);
template void tp_uvw_forward<Dual<double>>(const TpUvwArgs &, const Dual<double> *, const Dual<double> *,
                                           const Dual<double> *, Dual<double> *, cudaStream_t);
template void tp_uvw_backward<float, float>(const TpUvwArgs &, const float *, const float *, const float *,
                                            const float *, float *, float *, float *, cudaStream_t);
template void tp_uvw_backward<double, double>(const TpUvwArgs &, const double *, const double *, const double *,
                                              const double *, double *, double *, double *, cudaStream_t);
template void tp_uvw_backward<Dual<float>, float>(const TpUvwArgs &, const float *, const Dual<float> *,
                                                  const Dual<float> *, const Dual<float> *, Dual<float> *,
                                                  Dual<float> *, Dual<float> *, cudaStream_t);
template void tp_uvw_backward<Dual<double>, double>(const TpUvwArgs &, const double *, const Dual<double> *,
                                                    const Dual<double> *, const Dual<double> *, Dual<double> *,
                                                    Dual<double> *, Dual<double> *, cudaStream_t);

}    // namespace cuda
}    // namespace mlff
