// SchNet's filter-generating network for one interaction block, fused per atom pair:
//
//   W(r) = ssp(ssp(rbf(r) W1ᵀ + b1) W2ᵀ + b2) · f_c(r),   rbf_k(r) = exp(−γ (r − μ_k)²),
//   ssp(x) = ln(½eˣ + ½),  f_c(r) = ½(cos(π r / r_max) + 1) for r < r_max, else 0
//
// (Schütt et al., J. Chem. Phys. 148, 241722 (2018), Eq. 5; thesis Eqs. 3.4, 4.6–4.8;
// mlff/models/schnet.py is the reference), together with dW/dr from the same pass
// (forward-mode: each layer's tangent goes through the same weights).  Pairs go in chunks
// of 256 whose activations stay in cache (the layers are two small GEMMs per chunk, by
// ATen's BLAS); only W [U, F] and dW/dr [U, F] are written to memory.
//
// This file is compiled once per instruction set (CMakeLists.txt: MLFF_ISA = avx512,
// avx2 and default, with ATen's matching CPU_CAPABILITY_*), so at::vec::Vectorized is
// 16/8/1 floats wide with SLEEF's log1p; schnet_filter.cpp picks one at run time.
#include "schnet_filter_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include <algorithm>
#include <cmath>
#include <memory>

#define MLFF_CONCAT2(a, b) a##b
#define MLFF_CONCAT(a, b) MLFF_CONCAT2(a, b)
#define MLFF_KERNEL_NAME MLFF_CONCAT(schnet_filter_cpu_, MLFF_ISA)

namespace mlff {
namespace {

using at::vec::Vectorized;

// ssp(x) and its derivative sigmoid(x), overflow-free: with e = exp(−|x|),
// softplus(x) = max(x, 0) + log1p(e), sigmoid(x) = 1/(1+e) for x ≥ 0 and e/(1+e) below.
template <typename S>
inline void ssp_and_sigmoid(const Vectorized<S> &x, Vectorized<S> &ssp, Vectorized<S> &sig)
{
  const Vectorized<S> zero(S(0)), one(S(1)), ln2(static_cast<S>(M_LN2));
  const Vectorized<S> e = x.abs().neg().exp_u20();    // float: 20 ulp (≈2e-6), double: exact exp
  ssp = at::vec::maximum(x, zero) + e.log1p() - ln2;
  const Vectorized<S> inv = one / (one + e);
  sig = Vectorized<S>::blendv(e * inv, inv, x >= zero);
}

// y[0:cnt] = op(x[0:cnt]) over a row of `n` values, whole vectors then the tail
template <typename S, typename Op>
inline void rowwise(int64_t n, Op op)
{
  constexpr int64_t L = Vectorized<S>::size();
  int64_t f = 0;
  for (; f + L <= n; f += L) op(f, L);
  if (f < n) op(f, n - f);
}

template <typename S>
void run(const SchnetFilterProblem &p)
{
  using Vec = Vectorized<S>;
  const int64_t U = p.n_pairs, K = p.n_rbf, F = p.n_filters;
  const S *r = static_cast<const S *>(p.r);
  const S *mu = static_cast<const S *>(p.centres);
  const S *b1 = static_cast<const S *>(p.b1), *b2 = static_cast<const S *>(p.b2);
  S *W = static_cast<S *>(p.out);
  S *dW = static_cast<S *>(p.out_dr);
  const bool tangent = dW != nullptr;
  const S gamma = static_cast<S>(p.gamma), r_max = static_cast<S>(p.r_max);
  const S k_cut = static_cast<S>(M_PI / p.r_max);
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<S>::value);
  // weights as [input, output] (for row-vector products), contiguous
  const at::Tensor w1t = at::from_blob(const_cast<void *>(p.w1), {F, K}, opts).t().contiguous();
  const at::Tensor w2t = at::from_blob(const_cast<void *>(p.w2), {F, F}, opts).t().contiguous();

  // Pairs in chunks of B: the chunk's values (rows 0..n-1) and r-tangents (rows n..2n-1)
  // go through both layers together as two small GEMMs that stay in cache.
  constexpr int64_t B = 256;
  const int64_t n_chunks = (U + B - 1) / B;
  at::parallel_for(0, n_chunks, 1, [&](int64_t c_begin, int64_t c_end) {
    // raw buffers, not std::vector: the out-of-line code of a standard container could be
    // shared between the per-ISA builds by the linker
    std::unique_ptr<S[]> x(new S[2 * B * K]), h(new S[2 * B * F]), a(new S[2 * B * F]);
    for (int64_t c = c_begin; c < c_end; ++c) {
      const int64_t u0 = c * B, n = std::min(B, U - u0), rows = tangent ? 2 * n : n;
      // Gaussians and their r-derivatives
      for (int64_t i = 0; i < n; ++i) {
        const Vec ru(r[u0 + i]), mg(-gamma), m2g(S(-2) * gamma);
        S *xv = x.get() + i * K, *xt = x.get() + (n + i) * K;
        rowwise<S>(K, [&](int64_t k, int64_t cnt) {
          const Vec d = ru - Vec::loadu(mu + k, cnt);
          const Vec e = (mg * d * d).exp();
          e.store(xv + k, cnt);
          if (tangent) (m2g * d * e).store(xt + k, cnt);
        });
      }
      at::Tensor X = at::from_blob(x.get(), {rows, K}, opts);
      at::Tensor H = at::from_blob(h.get(), {rows, F}, opts);
      at::Tensor A = at::from_blob(a.get(), {rows, F}, opts);
      at::mm_out(H, X, w1t);
      // layer 1 activation: a = ssp(h + b1), tangent σ(h + b1)·t
      for (int64_t i = 0; i < n; ++i) {
        const S *hv = h.get() + i * F, *ht = h.get() + (n + i) * F;
        S *av = a.get() + i * F, *at_ = a.get() + (n + i) * F;
        rowwise<S>(F, [&](int64_t f, int64_t cnt) {
          Vec act, sig;
          ssp_and_sigmoid(Vec::loadu(hv + f, cnt) + Vec::loadu(b1 + f, cnt), act, sig);
          act.store(av + f, cnt);
          if (tangent) (sig * Vec::loadu(ht + f, cnt)).store(at_ + f, cnt);
        });
      }
      at::mm_out(H, A, w2t);
      // layer 2 activation times the cutoff, and the r-derivative of the product
      for (int64_t i = 0; i < n; ++i) {
        const S ru = r[u0 + i];
        S *Wu = W + (u0 + i) * F;
        S *dWu = tangent ? dW + (u0 + i) * F : nullptr;
        const bool inside = ru < r_max;    // beyond: f_c = f_c' = 0 (the reference's torch.where)
        const Vec fc(inside ? S(0.5) * (std::cos(ru * k_cut) + S(1)) : S(0));
        const Vec dfc(inside ? S(-0.5) * k_cut * std::sin(ru * k_cut) : S(0));
        const S *hv = h.get() + i * F, *ht = h.get() + (n + i) * F;
        rowwise<S>(F, [&](int64_t f, int64_t cnt) {
          Vec act, sig;
          ssp_and_sigmoid(Vec::loadu(hv + f, cnt) + Vec::loadu(b2 + f, cnt), act, sig);
          (act * fc).store(Wu + f, cnt);
          if (tangent) (sig * Vec::loadu(ht + f, cnt) * fc + act * dfc).store(dWu + f, cnt);
        });
      }
    }
  });
}

}    // namespace

void MLFF_KERNEL_NAME(const SchnetFilterProblem &p)
{
  if (p.is_double)
    run<double>(p);
  else
    run<float>(p);
}

}    // namespace mlff
