// Tabulated radial functions y(r) [F] by quintic Hermite interpolation: on the knot
// interval [r_k, r_k + h] with t = (r − r_k)/h,
//
//   y(r) = H₀(t) y_k + H₁(t) h y'_k + H₂(t) h² y''_k + H₃(t) y_{k+1} + H₄(t) h y'_{k+1} + H₅(t) h² y''_{k+1}
//
// with the quintic Hermite basis (H₀ = 1 − 10t³ + 15t⁴ − 6t⁵, H₁ = t − 6t³ + 8t⁴ − 3t⁵,
// H₂ = ½t² − 3⁄2 t³ + 3⁄2 t⁴ − ½t⁵, H₃ = 1 − H₀, H₄ = −4t³ + 7t⁴ − 3t⁵, H₅ = ½t³ − t⁴ + ½t⁵),
// which matches value, first and second derivative at both knots: the interpolant is C²
// (continuous forces and force derivatives in MD), with errors O(h⁶) in y and O(h⁵) in
// y' (Burden & Faires, Numerical Analysis, §3.4, Hermite interpolation).  Per pair: 6
// table rows of F values, 6 FMAs per value.  The backward pass recomputes dy/dr from the
// table instead of storing it, so the only [U, F] arrays are y and its gradient.
//
// Compiled once per instruction set, like schnet_filter_kernel.cpp.
#include "radial_table_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstring>

#define MLFF_CONCAT2(a, b) a##b
#define MLFF_CONCAT(a, b) MLFF_CONCAT2(a, b)
#define MLFF_KERNEL_NAME MLFF_CONCAT(radial_table_cpu_, MLFF_ISA)

namespace mlff {
namespace {

using at::vec::Vectorized;

// Quintic Hermite basis at t ∈ [0, 1] in the table's row order (y_k, h·y'_k, h²·y''_k,
// y_k+1, h·y'_k+1, h²·y''_k+1): the values, or their r-derivatives (1/h) d/dt.
template <typename S>
inline void basis(S t, S inv_h, bool derivative, S c[6])
{
  const S t2 = t * t, t3 = t2 * t, t4 = t3 * t;
  if (!derivative) {
    const S t5 = t4 * t;
    c[0] = S(1) - S(10) * t3 + S(15) * t4 - S(6) * t5;
    c[1] = t - S(6) * t3 + S(8) * t4 - S(3) * t5;
    c[2] = S(0.5) * t2 - S(1.5) * t3 + S(1.5) * t4 - S(0.5) * t5;
    c[3] = S(1) - c[0];
    c[4] = S(-4) * t3 + S(7) * t4 - S(3) * t5;
    c[5] = S(0.5) * t3 - t4 + S(0.5) * t5;
  } else {
    c[0] = inv_h * (S(-30) * t2 + S(60) * t3 - S(30) * t4);
    c[1] = inv_h * (S(1) - S(18) * t2 + S(32) * t3 - S(15) * t4);
    c[2] = inv_h * (t - S(4.5) * t2 + S(6) * t3 - S(2.5) * t4);
    c[3] = -c[0];
    c[4] = inv_h * (S(-12) * t2 + S(28) * t3 - S(15) * t4);
    c[5] = inv_h * (S(1.5) * t2 - S(4) * t3 + S(2.5) * t4);
  }
}

template <typename S>
void run(const RadialTableProblem &p)
{
  using Vec = Vectorized<S>;
  constexpr int64_t L = Vec::size();
  const int64_t U = p.n_pairs, N = p.n_intervals, F = p.width;
  const S *r = static_cast<const S *>(p.r);
  const S *table = static_cast<const S *>(p.table);
  const S *G = static_cast<const S *>(p.grad_out);
  const bool backward = G != nullptr;
  S *out = static_cast<S *>(p.out);
  const S r_max = static_cast<S>(p.r_max);
  const S inv_h = static_cast<S>(N / p.r_max);

  at::parallel_for(0, U, 512, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const S ru = r[u];
      if (!(ru < r_max) || ru < S(0)) {    // outside the table (and NaN): the function is 0 there
        if (backward)
          out[u] = S(0);
        else
          std::memset(out + u * F, 0, sizeof(S) * F);
        continue;
      }
      const S x = ru * inv_h;
      const int64_t k = std::min<int64_t>(static_cast<int64_t>(x), N - 1);
      S c[6];
      basis(x - static_cast<S>(k), inv_h, backward, c);
      const S *rows = table + k * 3 * F;    // the six rows of knots k and k + 1 are contiguous
      // Σ_j c_j row_j[f .. f + cnt) (partial vectors are loaded zero-filled)
      auto combine = [&](int64_t f, int64_t cnt) {
        Vec acc(S(0));
        for (int j = 0; j < 6; ++j) acc = at::vec::fmadd(Vec(c[j]), Vec::loadu(rows + j * F + f, cnt), acc);
        return acc;
      };
      if (!backward) {
        S *y = out + u * F;
        for (int64_t f = 0; f < F; f += L) {
          const int64_t cnt = std::min(L, F - f);
          combine(f, cnt).store(y + f, cnt);
        }
      } else {
        // Σ_f g_f dy_f/dr in one pass over the gradient row (lanes past F are 0 in both)
        const S *g = G + u * F;
        Vec acc(S(0));
        for (int64_t f = 0; f < F; f += L) {
          const int64_t cnt = std::min(L, F - f);
          acc = at::vec::fmadd(combine(f, cnt), Vec::loadu(g + f, cnt), acc);
        }
        out[u] = at::vec::vec_reduce_all<S>([](Vec &a, Vec &b) { return a + b; }, acc);
      }
    }
  });
}

}    // namespace

void MLFF_KERNEL_NAME(const RadialTableProblem &p)
{
  if (p.is_double)
    run<double>(p);
  else
    run<float>(p);
}

}    // namespace mlff
