// Channel-wise ("uvu") Clebsch–Gordan tensor-product convolution, fused with the gather
// of neighbour features and the scatter-sum onto the centre atom (NequIP's convolution,
// Batzner et al., Nat. Commun. 13, 2453 (2022), Eq. 3; Thomas et al., arXiv:1802.08219):
//
//   out[i, (k, u, m3)] = Σ_{e: centre(e) = i} W[e, (k, u)] · Σ_{m1, m2} C_k[m1, m2, m3] · h[j(e), (k, u, m1)] · Y[e, (k, m2)]
//
// for every path k = (irrep block of h) ⊗ (irrep block of Y) → (output block), with
// C_k = e3nn's path weight × Wigner-3j symbol, so that the result equals
// e3nn.o3.TensorProduct(..., "uvu", shared_weights=False) applied per edge and summed
// (python/mlff/models/equivariant.py builds the tables from e3nn's own instructions).
// Feature layout is e3nn's: inside a block of multiplicity `mul` and dimension d, entry
// (u, m) is at offset + u·d + m; weights are per path, `mul` each, in path order.
//
// Kernels (the op is linear in each of h, Y and W):
//   forward   out = F(h, Y, W)                               [N, D_out]
//   backward  (∂/∂h, ∂/∂Y, ∂/∂W) of <g, F>                    [N, D_h], [E, D_Y], [E, n_W]
//   double backward: w.r.t. g the forward's directional derivative along the tangents
//   (u_h, u_Y, u_W), w.r.t. (h, Y, W) the backward's (g fixed); both exact.  F is linear
//   in each input, so these are sums of product-rule terms, e.g.
//   F(u_h, Y, W) + F(h, u_Y, W) + F(h, Y, u_W), computed in one pass over plain arrays.
// The forward is split over centre atoms, the backward over neighbour atoms (each node's
// gradient row and each edge's gradients are written by one task): no atomics, results
// independent of the thread count.
//
// CPU layout: the kernels see node features (h, the output and its gradient) with each
// irrep block transposed from e3nn's (u, m) to (m, u), entry off + m·mul + u, so that
// their innermost loop over the channels u reads and writes contiguous memory and
// vectorises; the drivers permute the columns on the way in and out (O(nodes · D),
// against O(edges · D) for the product).
#include "kernel_util.h"
#include "mlff/ops.h"
#include "table_cache.h"
#include "tensor_product_kernel.h"
#include "trilinear_autograd.h"

#include <ATen/ops/zeros.h>

#ifdef MLFF_WITH_CUDA
#include "cuda_glue.h"
#endif

#include <algorithm>
#include <array>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace mlff {
namespace {

struct Path {
  int64_t off_h, dim_h, mul, off_y, off_out, dim_out, off_w;
  std::vector<int> m1, m2, m3;    // non-zero coefficients of this path
  std::vector<double> c;
};

struct Layout {
  std::vector<Path> paths;
  int64_t dim_h = 0, dim_y = 0, dim_out = 0, n_w = 0;
  // column permutations to the kernels' (m, u) block layout and back:
  // x_mu = x.index_select(1, to_mu_*), x = x_mu.index_select(1, from_mu_*)
  at::Tensor to_mu_h, from_mu_h, to_mu_out, from_mu_out;
};

// (m, u) position t of every column of blocks (off, mul, dim) -> its e3nn (u, m) column;
// columns outside the blocks stay where they are.  Raises if two blocks overlap differently.
std::pair<at::Tensor, at::Tensor> block_permutation(const std::vector<std::array<int64_t, 3>> &blocks, int64_t width,
                                                    const char *what)
{
  std::vector<int64_t> to(width), owner(width, -1);
  for (int64_t c = 0; c < width; ++c) to[c] = c;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const auto [off, mul, dim] = blocks[b];
    for (int64_t u = 0; u < mul; ++u)
      for (int64_t m = 0; m < dim; ++m) {
        const int64_t t = off + m * mul + u;
        TORCH_CHECK(owner[t] < 0 || (blocks[owner[t]][0] == off && blocks[owner[t]][1] == mul &&
                                     blocks[owner[t]][2] == dim),
                    "mlff::tp_conv: paths give the ", what, " blocks that overlap differently");
        owner[t] = static_cast<int64_t>(b);
        to[t] = off + u * dim + m;
      }
  }
  std::vector<int64_t> from(width);
  for (int64_t t = 0; t < width; ++t) from[to[t]] = t;
  const auto opts = at::TensorOptions().dtype(at::kLong);
  return {at::tensor(to, opts), at::tensor(from, opts)};
}

// paths [K, 7] int64: off_h, dim_h, mul, off_y, off_out, dim_out, off_w
// coeff_index [nnz, 4] int64: path, m1, m2, m3;  coeff [nnz] float64
Layout make_layout(const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff,
                   int64_t dim_h, int64_t dim_y, int64_t n_w)
{
  TORCH_CHECK(paths.dim() == 2 && paths.size(1) == 7, "mlff::tp_conv: paths must be [K, 7], got ", paths.sizes());
  TORCH_CHECK(coeff_index.dim() == 2 && coeff_index.size(1) == 4 && coeff.dim() == 1 &&
                  coeff.size(0) == coeff_index.size(0),
              "mlff::tp_conv: coeff_index must be [nnz, 4] and coeff [nnz]");
  auto p = paths.to(at::kCPU, at::kLong).contiguous();
  auto ci = coeff_index.to(at::kCPU, at::kLong).contiguous();
  auto cv = coeff.to(at::kCPU, at::kDouble).contiguous();
  Layout L;
  L.dim_h = dim_h;
  L.dim_y = dim_y;
  L.n_w = n_w;
  const int64_t *pp = p.data_ptr<int64_t>();
  for (int64_t k = 0; k < p.size(0); ++k) {
    const int64_t *r = pp + 7 * k;
    Path path{r[0], r[1], r[2], r[3], r[4], r[5], r[6], {}, {}, {}, {}};
    TORCH_CHECK(path.off_h + path.mul * path.dim_h <= dim_h && path.off_w + path.mul <= n_w,
                "mlff::tp_conv: path ", k, " reaches outside the feature or weight layout");
    L.dim_out = std::max(L.dim_out, path.off_out + path.mul * path.dim_out);    // the output ends with its last block
    L.paths.push_back(path);
  }
  const int64_t *ip = ci.data_ptr<int64_t>();
  const double *vp = cv.data_ptr<double>();
  for (int64_t n = 0; n < ci.size(0); ++n) {
    const int64_t k = ip[4 * n];
    TORCH_CHECK(k >= 0 && k < static_cast<int64_t>(L.paths.size()), "mlff::tp_conv: coefficient ", n,
                " names path ", k);
    Path &path = L.paths[k];
    TORCH_CHECK(ip[4 * n + 1] < path.dim_h && path.off_y + ip[4 * n + 2] < dim_y && ip[4 * n + 3] < path.dim_out,
                "mlff::tp_conv: coefficient ", n, " has an index outside its path");
    path.m1.push_back(static_cast<int>(ip[4 * n + 1]));
    path.m2.push_back(static_cast<int>(ip[4 * n + 2]));
    path.m3.push_back(static_cast<int>(ip[4 * n + 3]));
    path.c.push_back(vp[n]);
  }
  std::vector<std::array<int64_t, 3>> h_blocks, out_blocks;
  for (const Path &path : L.paths) {
    h_blocks.push_back({path.off_h, path.mul, path.dim_h});
    out_blocks.push_back({path.off_out, path.mul, path.dim_out});
  }
  std::tie(L.to_mu_h, L.from_mu_h) = block_permutation(h_blocks, dim_h, "input");
  std::tie(L.to_mu_out, L.from_mu_out) = block_permutation(out_blocks, L.dim_out, "output");
  return L;
}

at::Tensor to_mu(const at::Tensor &x, const at::Tensor &perm) { return x.index_select(1, perm); }

using Csr = EdgeGroups;

Csr group(const int64_t *key, int64_t n_edges, int64_t n_nodes, const char *what)
{
  return group_edges(key, n_edges, n_nodes, "mlff::tp_conv", what);
}

// ---------------------------------------------------------------------------- kernels
// in tensor_product_kernel.cpp, one build per instruction set; the problem they solve:
TpConvProblem kernel_problem(TpKernel kind, const Layout &L, const std::vector<TpPathView> &views, const Csr &rows,
                             const at::Tensor &other, const at::Tensor &h)
{
  TpConvProblem q;
  q.kind = kind;
  q.is_double = h.scalar_type() == at::kDouble;
  q.paths = views.data();
  q.n_paths = static_cast<int64_t>(views.size());
  q.dim_h = L.dim_h;
  q.dim_y = L.dim_y;
  q.dim_out = L.dim_out;
  q.n_w = L.n_w;
  q.n_rows = static_cast<int64_t>(rows.offset.size()) - 1;
  q.offset = rows.offset.data();
  q.order = rows.order.data();
  q.other = other.data_ptr<int64_t>();
  return q;
}

// the layout's paths as the kernels read them (pointers into L, which outlives the call)
std::vector<TpPathView> path_views(const Layout &L)
{
  std::vector<TpPathView> views;
  views.reserve(L.paths.size());
  for (const Path &p : L.paths)
    views.push_back({p.off_h, p.dim_h, p.mul, p.off_y, p.off_out, p.dim_out, p.off_w,
                     static_cast<int64_t>(p.c.size()), p.m1.data(), p.m2.data(), p.m3.data(), p.c.data()});
  return views;
}

void run_kernel(const TpConvProblem &q)
{
  if (q.n_rows > 0) run_per_isa(q, tp_conv_cpu_avx512, tp_conv_cpu_avx2, tp_conv_cpu_default);
}

// ---------------------------------------------------------------------------- drivers
// TpInputs: index0 = centre, index1 = neighbour; TpTables: size = number of output nodes
const at::Tensor &centre_of(const TpInputs &in) { return in.index0; }
const at::Tensor &nbr_of(const TpInputs &in) { return in.index1; }

// the validated layout, built once per table set and feature widths
std::shared_ptr<const Layout> layout(const TpInputs &in, const TpTables &a)
{
  static TableCache<Layout> cache;
  const int64_t dim_h = in.h.size(1), dim_y = in.y.size(1), n_w = in.w.size(1);
  return cache.get({a.paths, a.coeff_index, a.coeff}, {dim_h, dim_y, n_w},
                   [&] { return make_layout(a.paths, a.coeff_index, a.coeff, dim_h, dim_y, n_w); });
}

// CUDA tensors: the kernels in cuda/ (grad undefined: {out}; defined: {gh, gy, gw}; with
// tangents their directional derivatives)
std::vector<at::Tensor> tp_cuda(const TpInputs &in, const TpTables &a, const at::Tensor &uh, const at::Tensor &uy,
                                const at::Tensor &uw, const at::Tensor &grad, bool tangents)
{
#ifdef MLFF_WITH_CUDA
  (void)layout(in, a);    // validates the tables
  // a tangent run with no tangent given is the zero tangent, not the plain kernel
  const at::Tensor zh = tangents && !uh.defined() && !uy.defined() && !uw.defined() ? at::zeros_like(in.h) : uh;
  return cuda_glue::tp_conv(in.h, in.y, in.w, zh, uy, uw, grad, centre_of(in), nbr_of(in), a.size, a.paths,
                            a.coeff_index, a.coeff);
#else
  TORCH_CHECK(false, "mlff::tp_conv: libmlff_ops.so was built without CUDA kernels; got a tensor on ", in.h.device(),
              " (rebuild with scripts/build_plugin.sh where torch has CUDA)");
  return {};
#endif
}

// The inputs and their tangents for the second-order kernels: contiguous, in the inputs'
// dtype, node features in the (m, u) layout; an undefined tangent is zero.
struct TangentInputs {
  at::Tensor h, uh, y, uy, w, uw;
  TangentInputs(const TpInputs &in, const Layout &L, const at::Tensor &uh_, const at::Tensor &uy_,
                const at::Tensor &uw_)
      : h(to_mu(in.h, L.to_mu_h)), uh(to_mu(tangent(uh_, in.h), L.to_mu_h)), y(in.y), uy(tangent(uy_, in.y)),
        w(in.w), uw(tangent(uw_, in.w))
  {
  }
  // the single-pass kernels read every tangent: an undefined one becomes zeros
  static at::Tensor tangent(const at::Tensor &u, const at::Tensor &x)
  {
    return u.defined() ? tangent_like(u, x) : at::zeros_like(x);
  }
  void set(TpConvProblem &q) const
  {
    q.h = h.data_ptr();
    q.uh = uh.data_ptr();
    q.y = y.data_ptr();
    q.uy = uy.data_ptr();
    q.w = w.data_ptr();
    q.uw = uw.data_ptr();
  }
};

struct TpConvKernels {
  static constexpr const char *name = "mlff::tp_conv";

  static at::Tensor forward(const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return tp_cuda(in, a, {}, {}, {}, {}, false)[0];
    const auto cached = layout(in, a);
    const Layout &L = *cached;
    const Csr by_centre = group(centre_of(in).data_ptr<int64_t>(), centre_of(in).size(0), a.size, "centre");
    const at::Tensor h = to_mu(in.h, L.to_mu_h);
    auto out = at::empty({a.size, L.dim_out}, in.h.options());    // every row written by the kernel
    const auto views = path_views(L);
    TpConvProblem q = kernel_problem(TpKernel::forward, L, views, by_centre, nbr_of(in), in.h);
    q.h = h.data_ptr();
    q.y = in.y.data_ptr();
    q.w = in.w.data_ptr();
    q.out = out.data_ptr();
    run_kernel(q);
    return to_mu(out, L.from_mu_out);
  }

  static std::vector<at::Tensor> backward(const at::Tensor &grad, const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return tp_cuda(in, a, {}, {}, {}, grad, false);
    const auto cached = layout(in, a);
    const Layout &L = *cached;
    const Csr by_nbr = group(nbr_of(in).data_ptr<int64_t>(), nbr_of(in).size(0), in.h.size(0), "neighbour");
    TORCH_CHECK(grad.dim() == 2 && grad.size(0) == a.size && grad.size(1) == L.dim_out,
                "mlff::tp_conv: gradient must be [", a.size, ", ", L.dim_out, "]");
    const at::Tensor g = to_mu(grad.to(in.h.scalar_type()), L.to_mu_out), h = to_mu(in.h, L.to_mu_h);
    // every row written by the kernel (every node, and every edge through its neighbour)
    auto gh = at::empty_like(in.h), gy = at::empty_like(in.y), gw = at::empty_like(in.w);
    const auto views = path_views(L);
    TpConvProblem q = kernel_problem(TpKernel::backward, L, views, by_nbr, centre_of(in), in.h);
    q.g = g.data_ptr();
    q.h = h.data_ptr();
    q.y = in.y.data_ptr();
    q.w = in.w.data_ptr();
    q.gh = gh.data_ptr();
    q.gy = gy.data_ptr();
    q.gw = gw.data_ptr();
    run_kernel(q);
    return {to_mu(gh, L.from_mu_h), gy, gw};
  }

  // d/dε F(h + ε u_h, Y + ε u_y, W + ε u_w): the gradient w.r.t. g of the backward's outputs
  static at::Tensor jvp(const at::Tensor &uh, const at::Tensor &uy, const at::Tensor &uw, const TpInputs &in,
                        const TpTables &a)
  {
    if (in.h.is_cuda()) return tp_cuda(in, a, uh, uy, uw, {}, true)[0];
    const auto cached = layout(in, a);
    const Layout &L = *cached;
    const Csr by_centre = group(centre_of(in).data_ptr<int64_t>(), centre_of(in).size(0), a.size, "centre");
    const TangentInputs t(in, L, uh, uy, uw);
    auto out = at::empty({a.size, L.dim_out}, in.h.options());    // every row written by the kernel
    const auto views = path_views(L);
    TpConvProblem q = kernel_problem(TpKernel::forward_tangent, L, views, by_centre, nbr_of(in), in.h);
    t.set(q);
    q.out = out.data_ptr();
    run_kernel(q);
    return to_mu(out, L.from_mu_out);
  }

  // d/dε of the backward at (h + ε u_h, Y + ε u_y, W + ε u_w), g fixed: the gradients w.r.t. (h, Y, W)
  static std::vector<at::Tensor> hvp(const at::Tensor &grad, const at::Tensor &uh, const at::Tensor &uy,
                                     const at::Tensor &uw, const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return tp_cuda(in, a, uh, uy, uw, grad, true);
    const auto cached = layout(in, a);
    const Layout &L = *cached;
    const Csr by_nbr = group(nbr_of(in).data_ptr<int64_t>(), nbr_of(in).size(0), in.h.size(0), "neighbour");
    const at::Tensor g = to_mu(grad.to(in.h.scalar_type()), L.to_mu_out);
    const TangentInputs t(in, L, uh, uy, uw);
    auto gh = at::zeros_like(in.h), gy = at::zeros_like(in.y), gw = at::zeros_like(in.w);    // accumulated into
    const auto views = path_views(L);
    TpConvProblem q = kernel_problem(TpKernel::backward_tangent, L, views, by_nbr, centre_of(in), in.h);
    t.set(q);
    q.g = g.data_ptr();
    q.gh = gh.data_ptr();
    q.gy = gy.data_ptr();
    q.gw = gw.data_ptr();
    run_kernel(q);
    return {to_mu(gh, L.from_mu_h), gy, gw};
  }
};


}    // namespace

namespace {
TpInputs checked_inputs(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight, const at::Tensor &centre,
                        const at::Tensor &neighbour, int64_t n_nodes);
}

// the kernels without autograd (export_ops.cpp)
at::Tensor tp_conv_forward_raw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                               const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                               const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff)
{
  return TpConvKernels::forward(checked_inputs(h, sh, weight, centre, neighbour, n_nodes),
                                TpTables{paths, coeff_index, coeff, n_nodes});
}

std::vector<at::Tensor> tp_conv_backward_raw(const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh,
                                             const at::Tensor &weight, const at::Tensor &centre,
                                             const at::Tensor &neighbour, int64_t n_nodes, const at::Tensor &paths,
                                             const at::Tensor &coeff_index, const at::Tensor &coeff)
{
  return TpConvKernels::backward(grad.contiguous(), checked_inputs(h, sh, weight, centre, neighbour, n_nodes),
                                 TpTables{paths, coeff_index, coeff, n_nodes});
}

at::Tensor tp_conv(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight, const at::Tensor &centre,
                   const at::Tensor &neighbour, int64_t n_nodes, const at::Tensor &paths,
                   const at::Tensor &coeff_index, const at::Tensor &coeff)
{
  const TpInputs in = checked_inputs(h, sh, weight, centre, neighbour, n_nodes);
  return TpForwardFn<TpConvKernels>::apply(in.h, in.y, in.w, in.index0, in.index1,
                                           TpTables{paths, coeff_index, coeff, n_nodes});
}

namespace {
TpInputs checked_inputs(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight, const at::Tensor &centre,
                        const at::Tensor &neighbour, int64_t n_nodes)
{
  TORCH_CHECK(sh.device() == h.device() && weight.device() == h.device() && centre.device() == h.device() &&
                  neighbour.device() == h.device(),
              "mlff::tp_conv: h, sh, weight, centre and neighbour must be on one device");
  TORCH_CHECK(h.is_cpu() || h.is_cuda(), "mlff::tp_conv: only CPU and CUDA tensors are supported, got ", h.device());
  TORCH_CHECK(h.dim() == 2 && sh.dim() == 2 && weight.dim() == 2, "mlff::tp_conv: h, sh and weight must be 2-D");
  TORCH_CHECK(h.scalar_type() == sh.scalar_type() && h.scalar_type() == weight.scalar_type() &&
                  (h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble),
              "mlff::tp_conv: h, sh and weight must share a float32/float64 dtype");
  const int64_t E = sh.size(0);
  TORCH_CHECK(weight.size(0) == E && centre.dim() == 1 && neighbour.dim() == 1 && centre.size(0) == E &&
                  neighbour.size(0) == E,
              "mlff::tp_conv: sh, weight, centre and neighbour must have one row per edge (", E, ")");
  auto c = centre.to(at::kLong).contiguous(), nb = neighbour.to(at::kLong).contiguous();
  // checked once here: the kernels index without bounds checks
  if (h.is_cuda()) {
    TORCH_CHECK(indices_in_range({{c, n_nodes}, {nb, h.size(0)}}),
                "mlff::tp_conv: an edge has a node outside [0, ", n_nodes, ") / [0, ", h.size(0), ")");
  } else {
    const int64_t *pc = c.data_ptr<int64_t>(), *pn = nb.data_ptr<int64_t>();
    for (int64_t e = 0; e < E; ++e)
      TORCH_CHECK(pc[e] >= 0 && pc[e] < n_nodes && pn[e] >= 0 && pn[e] < h.size(0), "mlff::tp_conv: edge ", e, " (",
                  pc[e], ", ", pn[e], ") has a node outside [0, ", n_nodes, ") / [0, ", h.size(0), ")");
  }
  return TpInputs{h.contiguous(), sh.contiguous(), weight.contiguous(), c, nb};
}
}    // namespace

}    // namespace mlff
