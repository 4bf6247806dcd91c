// The vectorised CPU kernels of torch.ops.mlff.symmetry_functions (forward G, its
// directional derivative J u, and backward Jᵀg, on plain floats), one build per instruction set
// (symmetry_functions_kernel.cpp); plain pointers, so the kernel files need no ATen
// tensors.  The parameter tables are those of symmetry_functions.cpp's Spec.
#ifndef MLFF_SYMMETRY_FUNCTIONS_KERNEL_H
#define MLFF_SYMMETRY_FUNCTIONS_KERNEL_H

#include <cstdint>

namespace mlff {

struct SfTables {
  int64_t n_species = 0, R = 0, A = 0, F = 0, n_eta = 0, n_lz = 0;
  double r_c = 0, gamma = 0;
  int cutoff = 0, gamma_int = -1;                          // 0 cosine, 1 polynomial
  const double *rad_eta = nullptr, *rad_rs = nullptr;      // [R]
  const int *kind = nullptr, *eta_of = nullptr, *lz_of = nullptr;    // [A]
  const double *eta = nullptr;                             // [n_eta] unique angular η
  const double *lambda = nullptr, *zeta = nullptr, *prefactor = nullptr;    // [n_lz] unique (λ, ζ)
  const int *zeta_int = nullptr;                           // [n_lz] ζ as an integer, or -1
  bool has_g4 = false, has_g5 = false, eta_progression = false;
  double eta_step = 0;
};

struct SfProblem {
  SfTables t;
  int64_t n_atoms = 0;
  const int64_t *offset = nullptr, *order = nullptr;    // edges grouped by centre (kernel_util.h)
  const int64_t *nbr_species = nullptr;                 // [E]
  bool is_double = false;
  const void *vec = nullptr;     // [E, 3] edge vectors (Å)
  const void *grad = nullptr;       // backward: [n_atoms, F] ∂L/∂G; forward: nullptr
  const void *tangent = nullptr;    // Jacobian-vector product: [E, 3] u (then grad is nullptr)
  void *out = nullptr;              // forward: [n_atoms, F] G, or J u with a tangent;
                                    // backward: [E, 3] ∂L/∂v (all zero-filled)
};

void symmetry_functions_cpu_avx512(const SfProblem &p);
void symmetry_functions_cpu_avx2(const SfProblem &p);
void symmetry_functions_cpu_default(const SfProblem &p);

}    // namespace mlff

#endif
