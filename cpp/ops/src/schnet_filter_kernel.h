// The CPU kernel of torch.ops.mlff.schnet_filter, one build per instruction set
// (schnet_filter_kernel.cpp); plain pointers so the kernel files need no autograd.
#ifndef MLFF_SCHNET_FILTER_KERNEL_H
#define MLFF_SCHNET_FILTER_KERNEL_H

#include <cstdint>

namespace mlff {

struct SchnetFilterProblem {
  int64_t n_pairs = 0, n_rbf = 0, n_filters = 0;
  bool is_double = false;
  const void *r = nullptr;          // [U] distances (Å)
  const void *centres = nullptr;    // [K] Gaussian centres μ_k (Å)
  double gamma = 0, r_max = 0;      // Å⁻², Å
  const void *w1 = nullptr, *b1 = nullptr;    // [F, K], [F] (torch.nn.Linear layout)
  const void *w2 = nullptr, *b2 = nullptr;    // [F, F], [F]
  void *out = nullptr;              // [U, F] W(r)
  void *out_dr = nullptr;           // [U, F] dW/dr, or nullptr
};

void schnet_filter_cpu_avx512(const SchnetFilterProblem &p);
void schnet_filter_cpu_avx2(const SchnetFilterProblem &p);
void schnet_filter_cpu_default(const SchnetFilterProblem &p);

}    // namespace mlff

#endif
