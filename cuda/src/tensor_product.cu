// uvu Clebsch–Gordan tensor-product convolution on the GPU (definitions and layout:
// cpp/ops/src/tensor_product.cpp).  One block per node, its threads over the channel u:
// the forward pass runs over the edges of a centre node, the backward pass over the edges
// of a neighbour node.  Every (node, channel) and (edge, channel) entry has one writing
// thread; only the gradient of the spherical harmonics, a sum over channels, uses atomics.
#include "launch.cuh"
#include "mlff/cuda/kernels.h"

namespace mlff {
namespace cuda {
namespace {

__device__ inline void atomic_add(float *p, float v) { atomicAdd(p, v); }
__device__ inline void atomic_add(double *p, double v) { atomicAdd(p, v); }
template <typename S>
__device__ inline void atomic_add(Dual<S> *p, const Dual<S> &v)    // componentwise, as Dual addition
{
  atomicAdd(&p->v, v.v);
  atomicAdd(&p->d, v.d);
}

template <typename S, typename T>
__global__ void forward_kernel(TpArgs a, const T *h, const T *y, const T *w, T *out)
{
  const int64_t i = blockIdx.x;
  T *o = out + i * a.dim_out;
  for (int64_t t = a.by_centre_offset[i]; t < a.by_centre_offset[i + 1]; ++t) {
    const int64_t e = a.by_centre_order[t];
    const T *hj = h + a.neighbour[e] * a.dim_h, *ye = y + e * a.dim_y, *we = w + e * a.n_w;
    for (int64_t k = 0; k < a.n_paths; ++k) {
      const int64_t *p = a.paths + 7 * k;
      const int64_t off_h = p[0], dim_h = p[1], mul = p[2], off_y = p[3], off_out = p[4], dim_out = p[5], off_w = p[6];
      for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
        const int32_t *m = a.coeff_m + 3 * n;
        const T cy = static_cast<S>(a.coeff[n]) * ye[off_y + m[1]];
        for (int64_t u = threadIdx.x; u < mul; u += blockDim.x)
          o[off_out + u * dim_out + m[2]] += we[off_w + u] * cy * hj[off_h + u * dim_h + m[0]];
      }
    }
  }
}

template <typename S, typename T>
__global__ void backward_kernel(TpArgs a, const S *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw)
{
  const int64_t j = blockIdx.x;
  const T *hj = h + j * a.dim_h;
  T *ghj = gh + j * a.dim_h;
  for (int64_t t = a.by_nbr_offset[j]; t < a.by_nbr_offset[j + 1]; ++t) {
    const int64_t e = a.by_nbr_order[t];
    const S *gi = g + a.centre[e] * a.dim_out;
    const T *ye = y + e * a.dim_y, *we = w + e * a.n_w;
    T *gwe = gw + e * a.n_w;
    for (int64_t k = 0; k < a.n_paths; ++k) {
      const int64_t *p = a.paths + 7 * k;
      const int64_t off_h = p[0], dim_h = p[1], mul = p[2], off_y = p[3], off_out = p[4], dim_out = p[5], off_w = p[6];
      for (int64_t n = a.path_start[k]; n < a.path_start[k + 1]; ++n) {
        const int32_t *m = a.coeff_m + 3 * n;
        const S c = static_cast<S>(a.coeff[n]);
        const T yv = ye[off_y + m[1]];
        T acc_y(0);
        for (int64_t u = threadIdx.x; u < mul; u += blockDim.x) {
          const T gcu = c * gi[off_out + u * dim_out + m[2]];
          const T xw = hj[off_h + u * dim_h + m[0]] * gcu;
          gwe[off_w + u] += xw * yv;
          acc_y += xw * we[off_w + u];
          ghj[off_h + u * dim_h + m[0]] += gcu * we[off_w + u] * yv;
        }
        atomic_add(gy + e * a.dim_y + off_y + m[1], acc_y);
      }
    }
  }
}


}    // namespace

template <typename T>
void tp_forward(const TpArgs &a, const T *h, const T *y, const T *w, T *out, cudaStream_t stream)
{
  if (a.n_nodes == 0) return;
  MLFF_LAUNCH(static_cast<unsigned>(a.n_nodes), threads_for(a.max_mul), stream,
              forward_kernel<typename ScalarOf<T>::type, T>)(a, h, y, w, out);
  check(cudaGetLastError(), "tp_conv forward");
}

template <typename T, typename S>
void tp_backward(const TpArgs &a, const S *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw,
                 cudaStream_t stream)
{
  if (a.n_h_nodes == 0) return;
  MLFF_LAUNCH(static_cast<unsigned>(a.n_h_nodes), threads_for(a.max_mul), stream, backward_kernel<S, T>)(a, g, h, y, w,
                                                                                                     gh, gy, gw);
  check(cudaGetLastError(), "tp_conv backward");
}

template void tp_forward<float>(const TpArgs &, const float *, const float *, const float *, float *, cudaStream_t);
template void tp_forward<double>(const TpArgs &, const double *, const double *, const double *, double *,
                                 cudaStream_t);
template void tp_forward<Dual<float>>(const TpArgs &, const Dual<float> *, const Dual<float> *, const Dual<float> *,
                                      Dual<float> *, cudaStream_t);
template void tp_forward<Dual<double>>(const TpArgs &, const Dual<double> *, const Dual<double> *,
                                       const Dual<double> *, Dual<double> *, cudaStream_t);
template void tp_backward<float, float>(const TpArgs &, const float *, const float *, const float *, const float *,
                                        float *, float *, float *, cudaStream_t);
template void tp_backward<double, double>(const TpArgs &, const double *, const double *, const double *,
                                          const double *, double *, double *, double *, cudaStream_t);
template void tp_backward<Dual<float>, float>(const TpArgs &, const float *, const Dual<float> *, const Dual<float> *,
                                              const Dual<float> *, Dual<float> *, Dual<float> *, Dual<float> *,
                                              cudaStream_t);
template void tp_backward<Dual<double>, double>(const TpArgs &, const double *, const Dual<double> *,
                                                const Dual<double> *, const Dual<double> *, Dual<double> *,
                                                Dual<double> *, Dual<double> *, cudaStream_t);

}    // namespace cuda
}    // namespace mlff
