// Continuous-filter convolution with filters shared by the two directions of an atom
// pair (SchNet's cfconv, Schütt et al., J. Chem. Phys. 148, 241722 (2018), Eq. 4;
// thesis Eq. 4.6), as two bilinear gather–multiply–scatter operators:
//
//   edge_conv(x, w, group, src, dst, n_out)[i, f]      = Σ_{k: dst_k = i}   x[src_k, f] · w[group_k, f]
//   edge_pair_product(a, b, ia, ib, group, n_out)[p, f] = Σ_{k: group_k = p} a[ia_k, f] · b[ib_k, f]
//
// The filter rows w are per atom pair (mlff.models.common.reverse_edge_groups), so the
// per-edge filter tensor [E, F], the gathered messages [E, F] and their gradients are
// never materialised: most of SchNet's memory traffic.
//
// Both operators are linear in each argument and their derivatives are again these two
// operators with the index roles swapped:
//   ∂/∂x of <g, edge_conv(x, w)>          = edge_conv(g, w, group, dst, src)
//   ∂/∂w of <g, edge_conv(x, w)>          = edge_pair_product(g, x, dst, src, group)
//   ∂/∂a of <g, edge_pair_product(a, b)>  = edge_conv(b, g, group, ib, ia)
//   ∂/∂b of <g, edge_pair_product(a, b)>  = edge_conv(a, g, group, ia, ib)
// so every backward is itself differentiable: derivatives of any order are exact.
//
// CPU: edges are grouped by output row (stable counting sort) and output rows are split
// over threads: no atomics, results independent of the thread count.  Other devices use
// ATen's index_select / index_add_ (same results up to summation order).
#include "edge_conv_kernel.h"
#include "kernel_util.h"
#include "mlff/ops.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/index_add.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/mul.h>
#include <ATen/ops/zeros.h>
#include <torch/autograd.h>

namespace mlff {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// out [n_out, F] = Σ_k p[ip_k] ∘ q[iq_k] onto row key_k (the common kernel of both ops; on the
// CPU in edge_conv_kernel.cpp, one build per instruction set)
at::Tensor product_scatter(const at::Tensor &p, const at::Tensor &q, const at::Tensor &ip, const at::Tensor &iq,
                           const at::Tensor &key, int64_t n_out)
{
  if (!p.is_cpu())
    return at::zeros({n_out, p.size(1)}, p.options())
        .index_add_(0, key, at::mul(p.index_select(0, ip), q.index_select(0, iq)));
  auto out = at::empty({n_out, p.size(1)}, p.options());    // every row written by the kernel
  auto pc = p.contiguous(), qc = q.contiguous();
  const EdgeGroups groups = group_edges(key.data_ptr<int64_t>(), key.numel(), n_out, "mlff::edge_conv", "output row");
  EdgeProductProblem problem;
  problem.n_out = n_out;
  problem.width = p.size(1);
  problem.is_double = p.scalar_type() == at::kDouble;
  problem.p = pc.data_ptr();
  problem.q = qc.data_ptr();
  problem.ip = ip.data_ptr<int64_t>();
  problem.iq = iq.data_ptr<int64_t>();
  problem.offset = groups.offset.data();
  problem.order = groups.order.data();
  problem.out = out.data_ptr();
  if (n_out > 0) run_per_isa(problem, edge_product_cpu_avx512, edge_product_cpu_avx2, edge_product_cpu_default);
  return out;
}

at::Tensor conv_impl(const at::Tensor &x, const at::Tensor &w, const at::Tensor &group, const at::Tensor &src,
                     const at::Tensor &dst, int64_t n_out);
at::Tensor pair_product_impl(const at::Tensor &a, const at::Tensor &b, const at::Tensor &ia, const at::Tensor &ib,
                             const at::Tensor &group, int64_t n_out);

struct ConvFn : public torch::autograd::Function<ConvFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &w, const at::Tensor &group,
                            const at::Tensor &src, const at::Tensor &dst, int64_t n_out)
  {
    ctx->save_for_backward({x, w, group, src, dst});
    return product_scatter(x, w, src, group, dst, n_out);
  }
  static variable_list backward(AutogradContext *ctx, variable_list g)
  {
    auto s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &w = s[1], &group = s[2], &src = s[3], &dst = s[4];
    at::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) gx = conv_impl(g[0], w, group, dst, src, x.size(0));
    if (ctx->needs_input_grad(1)) gw = pair_product_impl(g[0], x, dst, src, group, w.size(0));
    return {gx, gw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct PairProductFn : public torch::autograd::Function<PairProductFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &a, const at::Tensor &b, const at::Tensor &ia,
                            const at::Tensor &ib, const at::Tensor &group, int64_t n_out)
  {
    ctx->save_for_backward({a, b, ia, ib, group});
    return product_scatter(a, b, ia, ib, group, n_out);
  }
  static variable_list backward(AutogradContext *ctx, variable_list g)
  {
    auto s = ctx->get_saved_variables();
    const at::Tensor &a = s[0], &b = s[1], &ia = s[2], &ib = s[3], &group = s[4];
    at::Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = conv_impl(b, g[0], group, ib, ia, a.size(0));
    if (ctx->needs_input_grad(1)) gb = conv_impl(a, g[0], group, ia, ib, b.size(0));
    return {ga, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor conv_impl(const at::Tensor &x, const at::Tensor &w, const at::Tensor &group, const at::Tensor &src,
                     const at::Tensor &dst, int64_t n_out)
{
  return ConvFn::apply(x, w, group, src, dst, n_out);
}

at::Tensor pair_product_impl(const at::Tensor &a, const at::Tensor &b, const at::Tensor &ia, const at::Tensor &ib,
                             const at::Tensor &group, int64_t n_out)
{
  return PairProductFn::apply(a, b, ia, ib, group, n_out);
}

// Index tensors as contiguous int64 on the data's device, each entry checked against
// the number of rows it addresses (the kernels index without bounds checks).
at::Tensor checked_index(const at::Tensor &index, int64_t n_edges, int64_t n_rows, const at::Tensor &like,
                         const char *op, const char *name)
{
  TORCH_CHECK(index.dim() == 1 && index.size(0) == n_edges, op, ": ", name, " must have one entry per edge (",
              n_edges, "), got shape ", index.sizes());
  TORCH_CHECK(index.device() == like.device(), op, ": ", name, " must be on ", like.device());
  auto idx = index.to(at::kLong).contiguous();
  if (n_edges > 0) {
    const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < n_rows, op, ": ", name, " has entries in [", lo, ", ", hi, "], outside [0, ",
                n_rows, ")");
  }
  return idx;
}

void check_rows(const at::Tensor &p, const at::Tensor &q, const char *op)
{
  TORCH_CHECK(p.dim() == 2 && q.dim() == 2 && p.size(1) == q.size(1), op,
              ": the two feature tensors must be [rows, F] with one F, got ", p.sizes(), " and ", q.sizes());
  TORCH_CHECK(p.scalar_type() == q.scalar_type() && (p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble),
              op, ": the feature tensors must share a float32/float64 dtype");
  TORCH_CHECK(p.device() == q.device(), op, ": the feature tensors must be on one device");
}

}    // namespace

// The export form (export_ops.cpp): out[key_k] += p[ip_k] ∘ q[iq_k], no autograd, for
// AOTInductor packages, whose traced backward calls it again with the index roles
// swapped (see the header comment). Every index is checked against its rows in one pass.
at::Tensor edge_product_scatter_raw(const at::Tensor &p, const at::Tensor &q, const at::Tensor &ip,
                                    const at::Tensor &iq, const at::Tensor &key, int64_t n_out)
{
  const char *op = "mlff::edge_conv_export";
  check_rows(p, q, op);
  TORCH_CHECK(p.is_cpu(), op, ": CPU only, got a tensor on ", p.device());
  const int64_t E = key.numel();
  TORCH_CHECK(ip.numel() == E && iq.numel() == E && ip.scalar_type() == at::kLong && iq.scalar_type() == at::kLong &&
                  key.scalar_type() == at::kLong,
              op, ": the three index tensors must be int64 with one entry per edge");
  auto ipc = ip.contiguous(), iqc = iq.contiguous(), keyc = key.contiguous();
  const int64_t *a = ipc.data_ptr<int64_t>(), *b = iqc.data_ptr<int64_t>();
  const int64_t np = p.size(0), nq = q.size(0);
  for (int64_t k = 0; k < E; ++k)
    TORCH_CHECK(a[k] >= 0 && a[k] < np && b[k] >= 0 && b[k] < nq, op, ": edge ", k, " indexes rows ", a[k], " and ",
                b[k], ", outside [0, ", np, ") and [0, ", nq, ")");
  return product_scatter(p, q, ipc, iqc, keyc, n_out);    // the key is checked while grouping
}

at::Tensor edge_conv(const at::Tensor &x, const at::Tensor &w, const at::Tensor &group, const at::Tensor &src,
                     const at::Tensor &dst, int64_t n_out)
{
  const char *op = "mlff::edge_conv";
  check_rows(x, w, op);
  TORCH_CHECK(n_out >= 0, op, ": n_out must be >= 0, got ", n_out);
  const int64_t E = src.numel();
  auto s = checked_index(src, E, x.size(0), x, op, "src");
  auto d = checked_index(dst, E, n_out, x, op, "dst");
  auto g = checked_index(group, E, w.size(0), x, op, "group");
  return conv_impl(x, w, g, s, d, n_out);
}

at::Tensor edge_pair_product(const at::Tensor &a, const at::Tensor &b, const at::Tensor &ia, const at::Tensor &ib,
                             const at::Tensor &group, int64_t n_out)
{
  const char *op = "mlff::edge_pair_product";
  check_rows(a, b, op);
  TORCH_CHECK(n_out >= 0, op, ": n_out must be >= 0, got ", n_out);
  const int64_t E = ia.numel();
  auto i = checked_index(ia, E, a.size(0), a, op, "ia");
  auto j = checked_index(ib, E, b.size(0), a, op, "ib");
  auto g = checked_index(group, E, n_out, a, op, "group");
  return pair_product_impl(a, b, i, j, g, n_out);
}

}    // namespace mlff
