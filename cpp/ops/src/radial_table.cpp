// torch.ops.mlff.radial_table: a radial function y(r) [U, F] tabulated at equally spaced
// knots, by quintic Hermite interpolation (radial_table_kernel.cpp), for deployed models
// whose radial networks were tabulated (mlff.models.radial_table, mlff-deploy --tabulate).
//
// Autograd: the backward is ∂L/∂r = Σ_f ∂L/∂y_f · dy_f/dr, with dy/dr recomputed from the
// table (no [U, F] tensor is kept between the passes).  Gradients w.r.t. the table and
// second derivatives w.r.t. r raise; the Python models have them.
#include "kernel_util.h"
#include "radial_table_kernel.h"

#include "mlff/ops.h"

#include <ATen/ops/empty.h>
#include <torch/autograd.h>

namespace mlff {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

RadialTableProblem problem(const at::Tensor &r, const at::Tensor &table, double r_max)
{
  RadialTableProblem p;
  p.n_pairs = r.size(0);
  p.n_intervals = table.size(0) - 1;
  p.width = table.size(2);
  p.is_double = r.scalar_type() == at::kDouble;
  p.r = r.data_ptr();
  p.table = table.data_ptr();
  p.r_max = r_max;
  return p;
}

void run(const RadialTableProblem &p)
{
  if (p.n_pairs > 0 && p.width > 0)
    run_per_isa(p, radial_table_cpu_avx512, radial_table_cpu_avx2, radial_table_cpu_default);
}

// ∂L/∂r [U] = Σ_f ∂L/∂y_f · dy_f/dr, dy/dr recomputed from the table; differentiating it
// again would need d²y/dr² and table gradients, which a deployed model does not use.
struct RadialTableGradFn : public torch::autograd::Function<RadialTableGradFn> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &grad, const at::Tensor &r, const at::Tensor &table,
                            double r_max)
  {
    const at::Tensor g = grad.contiguous();
    at::Tensor out = at::empty({r.size(0)}, r.options());    // the kernel writes every entry
    RadialTableProblem p = problem(r, table, r_max);
    p.grad_out = g.data_ptr();
    p.out = out.data_ptr();
    run(p);
    return out;
  }
  static variable_list backward(AutogradContext *, variable_list)
  {
    TORCH_CHECK(false, "mlff::radial_table: second derivatives (Hessians, force training) are not available from a "
                       "tabulated radial function; use the Python model for them");
    return {};
  }
};

struct RadialTableFn : public torch::autograd::Function<RadialTableFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &r, const at::Tensor &table, double r_max)
  {
    at::Tensor out = at::empty({r.size(0), table.size(2)}, r.options());
    RadialTableProblem p = problem(r, table, r_max);
    p.out = out.data_ptr();
    run(p);
    ctx->save_for_backward({r, table});
    ctx->saved_data["r_max"] = r_max;
    return out;
  }
  static variable_list backward(AutogradContext *ctx, variable_list g)
  {
    TORCH_CHECK(!ctx->needs_input_grad(1),
                "mlff::radial_table: gradients w.r.t. the table are not available (a tabulated radial network "
                "is for deployed models; train the Python model)");
    at::Tensor gr;
    if (ctx->needs_input_grad(0)) {
      const auto saved = ctx->get_saved_variables();
      gr = RadialTableGradFn::apply(g[0], saved[0], saved[1], ctx->saved_data["r_max"].toDouble());
    }
    return {gr, at::Tensor(), at::Tensor()};
  }
};

}    // namespace

// the kernels without autograd (export_ops.cpp)
at::Tensor radial_table_forward_raw(const at::Tensor &r, const at::Tensor &table, double r_max)
{
  const at::Tensor rc = r.contiguous(), tc = table.contiguous();
  at::Tensor out = at::empty({rc.size(0), tc.size(2)}, rc.options());
  RadialTableProblem p = problem(rc, tc, r_max);
  p.out = out.data_ptr();
  run(p);
  return out;
}

at::Tensor radial_table_backward_raw(const at::Tensor &grad, const at::Tensor &r, const at::Tensor &table,
                                     double r_max)
{
  const at::Tensor g = grad.contiguous(), rc = r.contiguous(), tc = table.contiguous();
  at::Tensor out = at::empty({rc.size(0)}, rc.options());
  RadialTableProblem p = problem(rc, tc, r_max);
  p.grad_out = g.data_ptr();
  p.out = out.data_ptr();
  run(p);
  return out;
}

at::Tensor radial_table(const at::Tensor &r, const at::Tensor &table, double r_max)
{
  const char *op = "mlff::radial_table";
  TORCH_CHECK(r.dim() == 1, op, ": r must be 1-D [U], got ", r.sizes());
  TORCH_CHECK(table.dim() == 3 && table.size(0) >= 2 && table.size(1) == 3, op,
              ": table must be [N + 1, 3, F] with N >= 1 intervals (value, h*derivative, h^2*second derivative "
              "at each knot), got ",
              table.sizes());
  TORCH_CHECK(r_max > 0, op, ": r_max must be > 0, got ", r_max);
  for (const at::Tensor *t : {&r, &table}) {
    TORCH_CHECK(t->device().is_cpu(), op, ": CPU only (the models use the PyTorch interpolation on other devices), "
                "got a tensor on ", t->device());
    TORCH_CHECK(t->scalar_type() == r.scalar_type() &&
                    (r.scalar_type() == at::kFloat || r.scalar_type() == at::kDouble),
                op, ": r and table must share a float32/float64 dtype, got ", r.scalar_type(), " and ",
                table.scalar_type());
  }
  return RadialTableFn::apply(r.contiguous(), table.contiguous(), r_max);
}

}    // namespace mlff
