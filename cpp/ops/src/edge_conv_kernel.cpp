// CPU kernel of SchNet's pair convolution operators (edge_conv.cpp has the operators and
// their derivatives): gather two rows per edge, multiply, sum onto the edge's output row.
// Compiled once per instruction set, like schnet_filter_kernel.cpp, so that the feature
// loop uses the CPU's widest registers.  Output rows are split over threads: no atomics,
// results independent of the thread count.  (No standard-library templates here, see
// tensor_product_kernel.cpp.)
#include "edge_conv_kernel.h"

#include <ATen/Parallel.h>

#define MLFF_CONCAT2(a, b) a##b
#define MLFF_CONCAT(a, b) MLFF_CONCAT2(a, b)
#define MLFF_KERNEL_NAME MLFF_CONCAT(edge_product_cpu_, MLFF_ISA)

namespace mlff {
namespace {

template <typename S>
void run(const EdgeProductProblem &q)
{
  const S *p = static_cast<const S *>(q.p), *r = static_cast<const S *>(q.q);
  S *out = static_cast<S *>(q.out);
  const int64_t F = q.width;
  at::parallel_for(0, q.n_out, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      S *__restrict__ o = out + i * F;
      for (int64_t f = 0; f < F; ++f) o[f] = S(0);
      for (int64_t t = q.offset[i]; t < q.offset[i + 1]; ++t) {
        const int64_t k = q.order[t];
        const S *__restrict__ pr = p + q.ip[k] * F;
        const S *__restrict__ qr = r + q.iq[k] * F;
        for (int64_t f = 0; f < F; ++f) o[f] += pr[f] * qr[f];
      }
    }
  });
}

}    // namespace

void MLFF_KERNEL_NAME(const EdgeProductProblem &problem)
{
  if (problem.is_double)
    run<double>(problem);
  else
    run<float>(problem);
}

}    // namespace mlff
