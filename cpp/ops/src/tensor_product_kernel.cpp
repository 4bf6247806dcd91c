// CPU kernels of the channel-wise ("uvu") tensor-product convolution (tensor_product.cpp
// has the operator, its derivation and the drivers).  Compiled once per instruction set,
// like schnet_filter_kernel.cpp: the channel loops vectorise to the CPU's widest registers
// (with FMA).  Each kernel is also instantiated for the usual channel counts (8, 16, 32,
// 64) as compile-time constants, so that those loops are unrolled, and for any other count.
//
// No standard-library templates here: an inline function instantiated in this file and in
// a baseline file would be one symbol, and the linker might keep the AVX-512 copy for both.
#include "tensor_product_kernel.h"

#include <ATen/Parallel.h>

#define MLFF_CONCAT2(a, b) a##b
#define MLFF_CONCAT(a, b) MLFF_CONCAT2(a, b)
#define MLFF_KERNEL_NAME MLFF_CONCAT(tp_conv_cpu_, MLFF_ISA)

namespace mlff {
namespace {

constexpr int64_t kGrain = 8;

template <typename T>
inline void zero(T *x, int64_t n)
{
  for (int64_t k = 0; k < n; ++k) x[k] = T(0);
}

inline void prefetch_row(const void *row, int64_t bytes)
{
  const char *p = static_cast<const char *>(row);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
}

// the channel count: MUL when given at compile time, else the path's
template <int MUL>
inline int64_t channels(const TpPathView &p)
{
  return MUL > 0 ? MUL : p.mul;
}

// (The loops are written out in each kernel: a shared loop taking the per-coefficient work
// as a lambda, or the prefetches as a helper over an array of rows, made the backward 15 %
// slower.)

// out[i] = Σ_{e: centre(e) = i} Σ_paths Σ_coefficients W[e] · c · Y[e, m2] · h[j(e), m1]
template <typename T, int MUL>
void forward_rows(const TpConvProblem &q, const T *h, const T *y, const T *w, T *out, int64_t begin, int64_t end)
{
  for (int64_t i = begin; i < end; ++i) {
    T *o = out + i * q.dim_out;
    zero(o, q.dim_out);
    for (int64_t t = q.offset[i]; t < q.offset[i + 1]; ++t) {
      const int64_t e = q.order[t];
      const T *hj = h + q.other[e] * q.dim_h, *ye = y + e * q.dim_y, *we = w + e * q.n_w;
      for (int64_t k = 0; k < q.n_paths; ++k) {
        const TpPathView &p = q.paths[k];
        const int64_t mul = channels<MUL>(p);
        const T *ww = we + p.off_w;
        for (int64_t n = 0; n < p.n; ++n) {
          const T cy = static_cast<T>(p.c[n]) * ye[p.off_y + p.m2[n]];
          const T *x = hj + p.off_h + p.m1[n] * mul;
          T *oo = o + p.off_out + p.m3[n] * mul;
#pragma omp simd
          for (int64_t u = 0; u < mul; ++u) oo[u] += ww[u] * cy * x[u];
        }
      }
    }
  }
}

// d/dε F(h + ε u_h, Y + ε u_Y, W + ε u_W) = F(u_h, Y, W) + F(h, u_Y, W) + F(h, Y, u_W)
template <typename T, int MUL>
void forward_tangent_rows(const TpConvProblem &q, const T *h, const T *uh, const T *y, const T *uy, const T *w,
                          const T *uw, T *out, int64_t begin, int64_t end)
{
  for (int64_t i = begin; i < end; ++i) {
    T *o = out + i * q.dim_out;
    zero(o, q.dim_out);
    for (int64_t t = q.offset[i]; t < q.offset[i + 1]; ++t) {
      const int64_t e = q.order[t], kh = q.other[e] * q.dim_h, ky = e * q.dim_y, kw = e * q.n_w;
      for (int64_t k = 0; k < q.n_paths; ++k) {
        const TpPathView &p = q.paths[k];
        const int64_t mul = channels<MUL>(p);
        const T *ww = w + kw + p.off_w, *uww = uw + kw + p.off_w;
        for (int64_t n = 0; n < p.n; ++n) {
          const T c = static_cast<T>(p.c[n]);
          const T cy = c * y[ky + p.off_y + p.m2[n]], cuy = c * uy[ky + p.off_y + p.m2[n]];
          const int64_t kx = kh + p.off_h + p.m1[n] * mul;
          const T *x = h + kx, *ux = uh + kx;
          T *oo = o + p.off_out + p.m3[n] * mul;
#pragma omp simd
          for (int64_t u = 0; u < mul; ++u) oo[u] += cy * (uww[u] * x[u] + ww[u] * ux[u]) + cuy * ww[u] * x[u];
        }
      }
    }
  }
}

// gradients of <g, F(h, Y, W)>: rows of gh per neighbour node j, gy and gw per edge (each
// edge has one neighbour, so each edge row is written by one task)
template <typename T, int MUL>
void backward_rows(const TpConvProblem &q, const T *g, const T *h, const T *y, const T *w, T *gh, T *gy, T *gw,
                   int64_t begin, int64_t end)
{
  for (int64_t j = begin; j < end; ++j) {
    const T *hj = h + j * q.dim_h;
    T *ghj = gh + j * q.dim_h;
    zero(ghj, q.dim_h);
    for (int64_t t = q.offset[j]; t < q.offset[j + 1]; ++t) {
      const int64_t e = q.order[t];
      // the edges of a neighbour are scattered over the per-edge rows: fetch the rows of
      // the edge after next while this one is computed
      if (t + 2 < q.offset[end]) {
        const int64_t ahead = q.order[t + 2];
        prefetch_row(w + ahead * q.n_w, q.n_w * static_cast<int64_t>(sizeof(T)));
        prefetch_row(gw + ahead * q.n_w, q.n_w * static_cast<int64_t>(sizeof(T)));
        prefetch_row(g + q.other[ahead] * q.dim_out, q.dim_out * static_cast<int64_t>(sizeof(T)));
      }
      const T *gi = g + q.other[e] * q.dim_out, *ye = y + e * q.dim_y, *we = w + e * q.n_w;
      T *gye = gy + e * q.dim_y, *gwe = gw + e * q.n_w;
      zero(gye, q.dim_y);
      zero(gwe, q.n_w);
      for (int64_t k = 0; k < q.n_paths; ++k) {
        const TpPathView &p = q.paths[k];
        const int64_t mul = channels<MUL>(p);
        const T *ww = we + p.off_w;
        T *gww = gwe + p.off_w;
        for (int64_t n = 0; n < p.n; ++n) {
          const int64_t kx = p.off_h + p.m1[n] * mul, ky = p.off_y + p.m2[n];
          const T c = static_cast<T>(p.c[n]), yv = ye[ky];
          const T *x = hj + kx, *go = gi + p.off_out + p.m3[n] * mul;
          T *gx = ghj + kx;
          // the channel sum may be reassociated (omp simd), so the loop vectorises
          T acc(0);
#pragma omp simd reduction(+ : acc)
          for (int64_t u = 0; u < mul; ++u) {
            const T gcu = c * go[u];    // c · g[i, u, m3]
            const T xw = x[u] * gcu;
            gww[u] += xw * yv;
            gx[u] += gcu * ww[u] * yv;
            acc += xw * ww[u];
          }
          gye[ky] += acc;
        }
      }
    }
  }
}

// d/dε of the backward at (h + ε u_h, Y + ε u_Y, W + ε u_W), g fixed; accumulates into
// outputs the caller zeroed.  Each gradient is bilinear in the two inputs it is not taken
// for, so each has two terms.
template <typename T, int MUL>
void backward_tangent_rows(const TpConvProblem &q, const T *g, const T *h, const T *uh, const T *y, const T *uy,
                           const T *w, const T *uw, T *gh, T *gy, T *gw, int64_t begin, int64_t end)
{
  for (int64_t j = begin; j < end; ++j) {
    const int64_t kh = j * q.dim_h;
    for (int64_t t = q.offset[j]; t < q.offset[j + 1]; ++t) {
      const int64_t e = q.order[t], ky = e * q.dim_y, kw = e * q.n_w;
      if (t + 2 < q.offset[end]) {    // as in backward_rows
        const int64_t ahead = q.order[t + 2];
        prefetch_row(w + ahead * q.n_w, q.n_w * static_cast<int64_t>(sizeof(T)));
        prefetch_row(uw + ahead * q.n_w, q.n_w * static_cast<int64_t>(sizeof(T)));
        prefetch_row(gw + ahead * q.n_w, q.n_w * static_cast<int64_t>(sizeof(T)));
        prefetch_row(g + q.other[ahead] * q.dim_out, q.dim_out * static_cast<int64_t>(sizeof(T)));
      }
      const T *gi = g + q.other[e] * q.dim_out;
      for (int64_t k = 0; k < q.n_paths; ++k) {
        const TpPathView &p = q.paths[k];
        const int64_t mul = channels<MUL>(p);
        const int64_t kwp = kw + p.off_w;
        for (int64_t n = 0; n < p.n; ++n) {
          const int64_t kx = kh + p.off_h + p.m1[n] * mul, kyn = ky + p.off_y + p.m2[n];
          const T c = static_cast<T>(p.c[n]), yv = y[kyn], uyv = uy[kyn];
          const T *x = h + kx, *ux = uh + kx, *go = gi + p.off_out + p.m3[n] * mul, *ww = w + kwp, *uww = uw + kwp;
          T *gx = gh + kx, *gww = gw + kwp;
          T acc(0);
#pragma omp simd reduction(+ : acc)
          for (int64_t u = 0; u < mul; ++u) {
            const T gcu = c * go[u];
            gww[u] += gcu * (ux[u] * yv + x[u] * uyv);
            gx[u] += gcu * (uww[u] * yv + ww[u] * uyv);
            acc += gcu * (ux[u] * ww[u] + x[u] * uww[u]);
          }
          gy[kyn] += acc;
        }
      }
    }
  }
}

template <typename T, int MUL>
void run(const TpConvProblem &q)
{
  const T *h = static_cast<const T *>(q.h), *y = static_cast<const T *>(q.y), *w = static_cast<const T *>(q.w);
  const T *uh = static_cast<const T *>(q.uh), *uy = static_cast<const T *>(q.uy), *uw = static_cast<const T *>(q.uw);
  const T *g = static_cast<const T *>(q.g);
  T *out = static_cast<T *>(q.out), *gh = static_cast<T *>(q.gh), *gy = static_cast<T *>(q.gy),
    *gw = static_cast<T *>(q.gw);
  at::parallel_for(0, q.n_rows, kGrain, [&](int64_t b, int64_t e) {
    switch (q.kind) {
      case TpKernel::forward: forward_rows<T, MUL>(q, h, y, w, out, b, e); break;
      case TpKernel::forward_tangent: forward_tangent_rows<T, MUL>(q, h, uh, y, uy, w, uw, out, b, e); break;
      case TpKernel::backward: backward_rows<T, MUL>(q, g, h, y, w, gh, gy, gw, b, e); break;
      case TpKernel::backward_tangent:
        backward_tangent_rows<T, MUL>(q, g, h, uh, y, uy, w, uw, gh, gy, gw, b, e);
        break;
    }
  });
}

// the compile-time channel count when every path has it, else the run-time loops
template <typename T>
void run_channels(const TpConvProblem &q)
{
  int64_t mul = q.n_paths > 0 ? q.paths[0].mul : 0;
  for (int64_t k = 1; k < q.n_paths; ++k)
    if (q.paths[k].mul != mul) mul = 0;
  switch (mul) {
    case 8: run<T, 8>(q); break;
    case 16: run<T, 16>(q); break;
    case 32: run<T, 32>(q); break;
    case 64: run<T, 64>(q); break;
    default: run<T, 0>(q);
  }
}

}    // namespace

void MLFF_KERNEL_NAME(const TpConvProblem &q)
{
  if (q.is_double)
    run_channels<double>(q);
  else
    run_channels<float>(q);
}

}    // namespace mlff
