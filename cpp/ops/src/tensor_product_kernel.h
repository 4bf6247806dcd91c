// The CPU kernels of torch.ops.mlff.tp_conv (tensor_product.cpp), one build per instruction
// set (tensor_product_kernel.cpp); plain pointers so the kernel files need no autograd.
#ifndef MLFF_TENSOR_PRODUCT_KERNEL_H
#define MLFF_TENSOR_PRODUCT_KERNEL_H

#include <cstdint>

namespace mlff {

// One path of the channel-wise product: blocks of h, Y, the output and the weights, and its
// n non-zero Clebsch–Gordan coefficients c[k] at (m1[k], m2[k], m3[k]).
struct TpPathView {
  int64_t off_h, dim_h, mul, off_y, off_out, dim_out, off_w;
  int64_t n;
  const int *m1, *m2, *m3;
  const double *c;
};

enum class TpKernel { forward, forward_tangent, backward, backward_tangent };

// Node features (h, u_h, the output, g, g_h) in the kernels' (m, u) block layout.  The edges
// grouped by row: by centre for the forward kernels (rows = output nodes), by neighbour for
// the backward ones (rows = input nodes); `other` is the neighbour (forward) or centre
// (backward) of each edge.  Every output row is written (zeroed first) by the kernel; the
// backward kernels' per-edge rows through the edge's neighbour.
struct TpConvProblem {
  TpKernel kind = TpKernel::forward;
  bool is_double = false;
  const TpPathView *paths = nullptr;
  int64_t n_paths = 0, dim_h = 0, dim_y = 0, dim_out = 0, n_w = 0;
  int64_t n_rows = 0;
  const int64_t *offset = nullptr, *order = nullptr, *other = nullptr;
  const void *h = nullptr, *y = nullptr, *w = nullptr;       // values
  const void *uh = nullptr, *uy = nullptr, *uw = nullptr;    // tangents (the *_tangent kernels)
  const void *g = nullptr;                                   // ∂L/∂out (backward kernels)
  void *out = nullptr;                                       // forward kernels [rows, dim_out]
  void *gh = nullptr, *gy = nullptr, *gw = nullptr;          // backward kernels
};

void tp_conv_cpu_avx512(const TpConvProblem &p);
void tp_conv_cpu_avx2(const TpConvProblem &p);
void tp_conv_cpu_default(const TpConvProblem &p);

}    // namespace mlff

#endif
