// torch.ops.mlff.schnet_filter: SchNet's filter-generating network W(r) [U, F] for a list
// of pair distances, fused (schnet_filter_kernel.cpp), for deployed models.
//
// Autograd: dW/dr is computed in the forward pass (when r requires grad), so the backward
// is ∂L/∂r = Σ_f ∂L/∂W_f · dW_f/dr, with no stored activations: what a force call needs.
// Gradients w.r.t. the weights (training) and second derivatives w.r.t. r (Hessians)
// are not provided and raise; the PyTorch path of mlff.models.schnet has them.
#include "kernel_util.h"
#include "schnet_filter_kernel.h"

#include "mlff/ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/sum.h>
#include <torch/autograd.h>

#include <tuple>

namespace mlff {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// ∂L/∂r = Σ_f g_f dW_f/dr; differentiating it once more would need d²W/dr².  r is an
// input only so that, under create_graph, the result always has this node as grad_fn
// and a second derivative raises instead of silently missing the d²W/dr² term.
struct FirstOrderOnly : public torch::autograd::Function<FirstOrderOnly> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &grad, const at::Tensor &dw_dr, const at::Tensor &)
  {
    return at::sum(at::mul(grad, dw_dr), {1});
  }
  static variable_list backward(AutogradContext *, variable_list)
  {
    TORCH_CHECK(false,
                "mlff::schnet_filter: second derivatives (Hessians, force training) are not available in the "
                "fused filter of a deployed SchNet; use the Python model (mlff.models.SchNet) for them");
    return {};
  }
};

// W(r) [U, F] and, if out_dr is defined, dW/dr into it (the fused kernel, any ISA).
at::Tensor run_filter(const at::Tensor &r, const at::Tensor &centres, double gamma, double r_max, const at::Tensor &w1,
                    const at::Tensor &b1, const at::Tensor &w2, const at::Tensor &b2, const at::Tensor &out_dr)
{
  const int64_t U = r.size(0), K = centres.size(0), F = w2.size(0);
  at::Tensor out = at::empty({U, F}, r.options());
  SchnetFilterProblem p;
  p.n_pairs = U;
  p.n_rbf = K;
  p.n_filters = F;
  p.is_double = r.scalar_type() == at::kDouble;
  p.r = r.data_ptr();
  p.centres = centres.data_ptr();
  p.gamma = gamma;
  p.r_max = r_max;
  p.w1 = w1.data_ptr();
  p.b1 = b1.data_ptr();
  p.w2 = w2.data_ptr();
  p.b2 = b2.data_ptr();
  p.out = out.data_ptr();
  p.out_dr = out_dr.defined() ? out_dr.data_ptr() : nullptr;
  if (U > 0) {
    run_per_isa(p, schnet_filter_cpu_avx512, schnet_filter_cpu_avx2, schnet_filter_cpu_default);
  }
  return out;
}

struct FilterFn : public torch::autograd::Function<FilterFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &r, const at::Tensor &centres, double gamma,
                            double r_max, const at::Tensor &w1, const at::Tensor &b1, const at::Tensor &w2,
                            const at::Tensor &b2)
  {
    at::Tensor out_dr = r.requires_grad() ? at::empty({r.size(0), w2.size(0)}, r.options()) : at::Tensor();
    at::Tensor out = run_filter(r, centres, gamma, r_max, w1, b1, w2, b2, out_dr);
    ctx->save_for_backward({out_dr, r});
    return out;
  }
  static variable_list backward(AutogradContext *ctx, variable_list g)
  {
    for (int i = 2; i <= 5; ++i)    // needs_input_grad counts tensor inputs only: w1, b1, w2, b2
      TORCH_CHECK(!ctx->needs_input_grad(i),
                  "mlff::schnet_filter: gradients w.r.t. the filter weights are not available in the fused filter "
                  "of a deployed SchNet; train the Python model (mlff.models.SchNet), which uses PyTorch's path");
    at::Tensor gr;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      TORCH_CHECK(saved[0].defined(), "mlff::schnet_filter: r did not require grad in the forward pass");
      gr = FirstOrderOnly::apply(g[0], saved[0], saved[1]);
    }
    return {gr, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check_filter_inputs(const at::Tensor &r, const at::Tensor &centres, double gamma, double r_max,
                         const at::Tensor &w1, const at::Tensor &b1, const at::Tensor &w2, const at::Tensor &b2,
                         const char *op)
{
  TORCH_CHECK(r.dim() == 1 && centres.dim() == 1, op, ": r [U] and centres [K] must be 1-D, got ", r.sizes(), " and ",
              centres.sizes());
  const int64_t K = centres.size(0);
  TORCH_CHECK(w1.dim() == 2 && w1.size(1) == K && b1.dim() == 1 && b1.size(0) == w1.size(0), op,
              ": w1 must be [F, K=", K, "] and b1 [F], got ", w1.sizes(), " and ", b1.sizes());
  const int64_t F = w1.size(0);
  TORCH_CHECK(w2.dim() == 2 && w2.size(0) == F && w2.size(1) == F && b2.dim() == 1 && b2.size(0) == F, op,
              ": w2 must be [F, F] and b2 [F] with F = ", F, ", got ", w2.sizes(), " and ", b2.sizes());
  TORCH_CHECK(r_max > 0 && gamma > 0, op, ": r_max and gamma must be > 0, got ", r_max, " and ", gamma);
  for (const at::Tensor *t : {&r, &centres, &w1, &b1, &w2, &b2}) {
    TORCH_CHECK(t->device().is_cpu(), op, ": CPU only (the models call it on the CPU), got a tensor on ",
                t->device());
    TORCH_CHECK(t->scalar_type() == r.scalar_type() && (r.scalar_type() == at::kFloat || r.scalar_type() == at::kDouble),
                op, ": all tensors must share a float32/float64 dtype");
  }
}

}    // namespace

// The export form (export_ops.cpp): W(r) and dW/dr [U, F] each, no autograd; an
// AOTInductor package's traced backward is Σ_f ∂L/∂W_f · dW_f/dr in plain operations.
std::tuple<at::Tensor, at::Tensor> schnet_filter_export_raw(const at::Tensor &r, const at::Tensor &centres,
                                                            double gamma, double r_max, const at::Tensor &w1,
                                                            const at::Tensor &b1, const at::Tensor &w2,
                                                            const at::Tensor &b2)
{
  check_filter_inputs(r, centres, gamma, r_max, w1, b1, w2, b2, "mlff::schnet_filter_export");
  auto rc = r.contiguous();
  at::Tensor out_dr = at::empty({r.size(0), w2.size(0)}, r.options());
  at::Tensor out = run_filter(rc, centres.contiguous(), gamma, r_max, w1.contiguous(), b1.contiguous(),
                              w2.contiguous(), b2.contiguous(), out_dr);
  return {out, out_dr};
}

at::Tensor schnet_filter(const at::Tensor &r, const at::Tensor &centres, double gamma, double r_max,
                         const at::Tensor &w1, const at::Tensor &b1, const at::Tensor &w2, const at::Tensor &b2)
{
  check_filter_inputs(r, centres, gamma, r_max, w1, b1, w2, b2, "mlff::schnet_filter");
  return FilterFn::apply(r.contiguous(), centres.contiguous(), gamma, r_max, w1.contiguous(), b1.contiguous(),
                         w2.contiguous(), b2.contiguous());
}

}    // namespace mlff
