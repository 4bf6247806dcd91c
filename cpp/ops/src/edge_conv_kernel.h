// The CPU kernel of torch.ops.mlff.edge_conv and edge_pair_product (edge_conv.cpp), one
// build per instruction set (edge_conv_kernel.cpp); plain pointers, no autograd.
#ifndef MLFF_EDGE_CONV_KERNEL_H
#define MLFF_EDGE_CONV_KERNEL_H

#include <cstdint>

namespace mlff {

// out[i] = Σ_{t in [offset[i], offset[i+1])} p[ip[k]] ∘ q[iq[k]], k = order[t]: rows of p, q and
// out have `width` entries; every output row is written (zeroed first).
struct EdgeProductProblem {
  int64_t n_out = 0, width = 0;
  bool is_double = false;
  const void *p = nullptr, *q = nullptr;
  const int64_t *ip = nullptr, *iq = nullptr;
  const int64_t *offset = nullptr, *order = nullptr;    // the edges grouped by output row
  void *out = nullptr;
};

void edge_product_cpu_avx512(const EdgeProductProblem &problem);
void edge_product_cpu_avx2(const EdgeProductProblem &problem);
void edge_product_cpu_default(const EdgeProductProblem &problem);

}    // namespace mlff

#endif
