// The CPU kernel of torch.ops.mlff.radial_table, one build per instruction set
// (radial_table_kernel.cpp); plain pointers so the kernel files need no autograd.
#ifndef MLFF_RADIAL_TABLE_KERNEL_H
#define MLFF_RADIAL_TABLE_KERNEL_H

#include <cstdint>

namespace mlff {

struct RadialTableProblem {
  int64_t n_pairs = 0, n_intervals = 0, width = 0;
  bool is_double = false;
  const void *r = nullptr;        // [U] distances (Å)
  const void *table = nullptr;    // [N + 1, 3, F]: y, h·y', h²·y'' at the knots r_k = k·h
  double r_max = 0;               // Å; h = r_max / N
  // forward (grad_out == nullptr): out [U, F] = y(r)
  // backward: out [U] = Σ_f grad_out[u, f] · dy_f/dr(r_u), dy/dr never stored
  const void *grad_out = nullptr;    // [U, F] ∂L/∂y
  void *out = nullptr;
};

void radial_table_cpu_avx512(const RadialTableProblem &p);
void radial_table_cpu_avx2(const RadialTableProblem &p);
void radial_table_cpu_default(const RadialTableProblem &p);

}    // namespace mlff

#endif
