// Autograd for the Clebsch–Gordan tensor-product operators (tensor_product.cpp: tp_conv,
// tensor_product_uvw.cpp: tp_uvw).  Both are linear in each of their three inputs
// (features h, spherical harmonics Y, weights W) and take two integer index tensors and the
// path tables, so one scaffold gives both exact first and second derivatives:
//
//   forward   out = F(h, Y, W)
//   backward  (∂/∂h, ∂/∂Y, ∂/∂W) of <g, F>
//   double backward  w.r.t. g: the forward's directional derivative (jvp) along the
//                    incoming tangents (u_h, u_Y, u_W); w.r.t. (h, Y, W): the backward's
//                    directional derivative (hvp) along them, g fixed.
//
// An operator supplies a kernel class K with static members
//   const char *name;
//   at::Tensor forward(const TpInputs &, const TpTables &);
//   std::vector<at::Tensor> backward(const at::Tensor &g, const TpInputs &, const TpTables &);
//   at::Tensor jvp(uh, uy, uw, const TpInputs &, const TpTables &);
//   std::vector<at::Tensor> hvp(g, uh, uy, uw, const TpInputs &, const TpTables &);
// and calls TpForwardFn<K>::apply(h, y, w, index0, index1, tables).
#ifndef MLFF_TRILINEAR_AUTOGRAD_H
#define MLFF_TRILINEAR_AUTOGRAD_H

#include <ATen/ops/zeros.h>
#include <torch/autograd.h>

#include <vector>

namespace mlff {

// the differentiable inputs and the two index tensors (their meaning is the operator's)
struct TpInputs {
  at::Tensor h, y, w, index0, index1;
};

// path tables and one size argument (tp_conv: number of output nodes; tp_uvw: output width)
struct TpTables {
  at::Tensor paths, coeff_index, coeff;
  int64_t size;
};

// A tangent of the double backward as a contiguous tensor of x's dtype; an undefined
// tangent (a zero one: its input needs no gradient) stays undefined.
inline at::Tensor tangent_like(const at::Tensor &u, const at::Tensor &x)
{
  return u.defined() ? u.to(x.scalar_type()).contiguous() : u;
}

namespace trilinear_detail {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline void save_tables(AutogradContext *ctx, const TpTables &a)
{
  ctx->saved_data["paths"] = a.paths;
  ctx->saved_data["coeff_index"] = a.coeff_index;
  ctx->saved_data["coeff"] = a.coeff;
  ctx->saved_data["size"] = a.size;
}

inline TpTables load_tables(AutogradContext *ctx)
{
  auto &d = ctx->saved_data;
  return {d["paths"].toTensor(), d["coeff_index"].toTensor(), d["coeff"].toTensor(), d["size"].toInt()};
}

// the second-order kernels, as a node that refuses a third derivative
template <class K>
struct SecondOrderFn : public torch::autograd::Function<SecondOrderFn<K>> {
  static variable_list forward(AutogradContext *, const at::Tensor &grad, const at::Tensor &uh, const at::Tensor &uy,
                               const at::Tensor &uw, const at::Tensor &h, const at::Tensor &y, const at::Tensor &w,
                               const at::Tensor &index0, const at::Tensor &index1, const TpTables &a, bool need_g,
                               bool need_hvp)
  {
    const TpInputs in{h, y, w, index0, index1};
    variable_list out;
    out.push_back(need_g ? K::jvp(uh, uy, uw, in, a) : at::zeros({0}, h.options()));
    if (need_hvp) {
      auto r = K::hvp(grad, uh, uy, uw, in, a);
      out.insert(out.end(), r.begin(), r.end());
    } else {
      for (int k = 0; k < 3; ++k) out.push_back(at::zeros({0}, h.options()));
    }
    return out;
  }
  static variable_list backward(AutogradContext *, variable_list)
  {
    TORCH_CHECK(false, K::name, ": derivatives beyond the second order are not implemented");
    return {};
  }
};

template <class K>
struct BackwardFn : public torch::autograd::Function<BackwardFn<K>> {
  static variable_list forward(AutogradContext *ctx, const at::Tensor &grad, const at::Tensor &h, const at::Tensor &y,
                               const at::Tensor &w, const at::Tensor &index0, const at::Tensor &index1,
                               const TpTables &a)
  {
    ctx->save_for_backward({grad, h, y, w, index0, index1});
    save_tables(ctx, a);
    return K::backward(grad, {h, y, w, index0, index1}, a);
  }
  static variable_list backward(AutogradContext *ctx, variable_list u)
  {
    auto s = ctx->get_saved_variables();
    const bool need_g = ctx->needs_input_grad(0);
    const bool need_hvp = ctx->needs_input_grad(1) || ctx->needs_input_grad(2) || ctx->needs_input_grad(3);
    auto r = SecondOrderFn<K>::apply(s[0], u[0], u[1], u[2], s[1], s[2], s[3], s[4], s[5], load_tables(ctx), need_g,
                                     need_hvp);
    auto pick = [&](size_t k, bool need) { return need ? r[k] : at::Tensor(); };
    return {pick(0, need_g), pick(1, need_hvp), pick(2, need_hvp), pick(3, need_hvp), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}    // namespace trilinear_detail

template <class K>
struct TpForwardFn : public torch::autograd::Function<TpForwardFn<K>> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &h, const at::Tensor &y,
                            const at::Tensor &w, const at::Tensor &index0, const at::Tensor &index1,
                            const TpTables &a)
  {
    ctx->save_for_backward({h, y, w, index0, index1});
    trilinear_detail::save_tables(ctx, a);
    return K::forward({h, y, w, index0, index1}, a);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list g)
  {
    auto s = ctx->get_saved_variables();
    auto r = trilinear_detail::BackwardFn<K>::apply(g[0], s[0], s[1], s[2], s[3], s[4],
                                                    trilinear_detail::load_tables(ctx));
    return {r[0], r[1], r[2], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}    // namespace mlff

#endif
