// Fully connected ("uvw") Clebsch–Gordan tensor product per edge, with the gather of
// neighbour features and of per-atom-pair weights fused in: the equivariant kernels
// W_K(r_ij) f_j and W_V(r_ij) f_j of the SE(3)-Transformer (Fuchs et al., NeurIPS 2020,
// Eq. 8; Hedelius thesis Eq. 2.2), where every (input channel u, output channel w, path)
// has its own radial weight:
//
//   out[e, (k, w, m3)] = Σ_u W[group(e), (k, u, w)] · Σ_{m1, m2} C_k[m1, m2, m3] · h[nbr(e), (k, u, m1)] · Y[e, (k, m2)]
//
// summed over the paths k that write the same output block.  C_k = e3nn's path weight ×
// Wigner-3j symbol, so the result equals e3nn.o3.TensorProduct(..., "uvw",
// shared_weights=False) on h[nbr] and W[group] (python/mlff/models/equivariant.py builds
// the tables from e3nn's own instructions).  Layouts are e3nn's: feature entry (u, m) of a
// block at offset + u·d + m; a path's weights [mul_in, mul_out] row-major at its offset.
//
// The weights are one row per atom pair (mlff.models.common.reverse_edge_groups): the
// per-edge weight tensor [E, n_W], which e3nn needs and which dominates its time and
// memory (thousands of weights per edge), is never formed.
//
// Kernels (the op is linear in each of h, Y and W; trilinear_autograd.h):
//   forward   per edge: t[u, m3] = Σ C h Y, then out[w, m3] += Σ_u W[u, w] t[u, m3]
//   backward  per neighbour node j (its edges): s[u, m3] = Σ_w W[u, w] g[w, m3], then
//             ∂h[j] += Σ C Y s and ∂Y[e] += Σ C h s;  per atom pair (its ≤ 2 edges):
//             ∂W[u, w] += Σ_m3 t[u, m3] g[w, m3]
//   double backward: F is linear in each input, so the forward's directional derivative
//             along the tangents (u_h, u_Y, u_W) is F(u_h, Y, W) + F(h, u_Y, W) + F(h, Y, u_W),
//             and the backward's is, term by term, the backward at those three points:
//             ∂h from the second and third, ∂Y from the first and third, ∂W from the first
//             and second.  The plain kernels, accumulating, give both exactly.
// Every output row is written by one task (zeroed first, while in cache, unless the
// kernels accumulate): no atomics, results independent of the thread count.  CUDA
// tensors go to the GPU kernels of cuda/src/tensor_product_uvw.cu (through cuda_glue.cpp)
// when the library has them.
#include "kernel_util.h"
#include "mlff/ops.h"
#include "table_cache.h"
#include "trilinear_autograd.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>

#ifdef MLFF_WITH_CUDA
#include "cuda_glue.h"
#endif

#include <algorithm>
#include <memory>
#include <vector>

namespace mlff {
namespace {

constexpr const char *kOp = "mlff::tp_uvw";

struct Path {
  int64_t off_h, dim_h, mul_in, off_y, off_out, dim_out, mul_out, off_w;
  std::vector<int> m1, m2, m3;    // non-zero coefficients of this path
  std::vector<double> c;
};

struct Layout {
  std::vector<Path> paths;
  int64_t dim_h = 0, dim_y = 0, dim_out = 0, n_w = 0;
  int64_t scratch = 0;    // max over paths of mul_in·dim_out and mul_out·dim_out
};

// paths [K, 8] int64: off_h, dim_h, mul_in, off_y, off_out, dim_out, mul_out, off_w
// coeff_index [nnz, 4] int64: path, m1, m2, m3;  coeff [nnz] float64
Layout build_layout(const TpInputs &in, const TpTables &a)
{
  TORCH_CHECK(a.paths.dim() == 2 && a.paths.size(1) == 8, kOp, ": paths must be [K, 8], got ", a.paths.sizes());
  TORCH_CHECK(a.coeff_index.dim() == 2 && a.coeff_index.size(1) == 4 && a.coeff.dim() == 1 &&
                  a.coeff.size(0) == a.coeff_index.size(0),
              kOp, ": coeff_index must be [nnz, 4] and coeff [nnz]");
  auto p = a.paths.to(at::kCPU, at::kLong).contiguous();
  auto ci = a.coeff_index.to(at::kCPU, at::kLong).contiguous();
  auto cv = a.coeff.to(at::kCPU, at::kDouble).contiguous();
  Layout L;
  L.dim_h = in.h.size(1);
  L.dim_y = in.y.size(1);
  L.dim_out = a.size;
  L.n_w = in.w.size(1);
  const int64_t *pp = p.data_ptr<int64_t>();
  for (int64_t k = 0; k < p.size(0); ++k) {
    const int64_t *r = pp + 8 * k;
    Path path{r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], {}, {}, {}, {}};
    TORCH_CHECK(path.off_h >= 0 && path.off_y >= 0 && path.off_out >= 0 && path.off_w >= 0 && path.dim_h > 0 &&
                    path.dim_out > 0 && path.mul_in > 0 && path.mul_out > 0 &&
                    path.off_h + path.mul_in * path.dim_h <= L.dim_h &&
                    path.off_out + path.mul_out * path.dim_out <= L.dim_out &&
                    path.off_w + path.mul_in * path.mul_out <= L.n_w,
                kOp, ": path ", k, " reaches outside the feature, output or weight layout");
    L.scratch = std::max({L.scratch, path.mul_in * path.dim_out, path.mul_out * path.dim_out});
    L.paths.push_back(path);
  }
  const int64_t *ip = ci.data_ptr<int64_t>();
  const double *vp = cv.data_ptr<double>();
  for (int64_t n = 0; n < ci.size(0); ++n) {
    const int64_t k = ip[4 * n];
    TORCH_CHECK(k >= 0 && k < static_cast<int64_t>(L.paths.size()), kOp, ": coefficient ", n, " names path ", k);
    Path &path = L.paths[k];
    TORCH_CHECK(ip[4 * n + 1] >= 0 && ip[4 * n + 1] < path.dim_h && ip[4 * n + 2] >= 0 &&
                    path.off_y + ip[4 * n + 2] < L.dim_y && ip[4 * n + 3] >= 0 && ip[4 * n + 3] < path.dim_out,
                kOp, ": coefficient ", n, " has an index outside its path");
    path.m1.push_back(static_cast<int>(ip[4 * n + 1]));
    path.m2.push_back(static_cast<int>(ip[4 * n + 2]));
    path.m3.push_back(static_cast<int>(ip[4 * n + 3]));
    path.c.push_back(vp[n]);
  }
  return L;
}

// the validated layout, built once per table set, feature widths and output width
std::shared_ptr<const Layout> make_layout(const TpInputs &in, const TpTables &a)
{
  static TableCache<Layout> cache;
  return cache.get({a.paths, a.coeff_index, a.coeff}, {in.h.size(1), in.y.size(1), in.w.size(1), a.size},
                   [&] { return build_layout(in, a); });
}

// t[u·d3 + m3] = Σ_n c_n · Y[m2_n] · x[u·d1 + m1_n]: the path's CG product, no weights
template <typename T>
void cg_product(const Path &p, const T *x, const T *ye, T *t)
{
  std::fill(t, t + p.mul_in * p.dim_out, T(0));
  for (size_t n = 0; n < p.c.size(); ++n) {
    const T cy = static_cast<T>(p.c[n]) * ye[p.off_y + p.m2[n]];
    const T *xx = x + p.m1[n];
    T *tt = t + p.m3[n];
    for (int64_t u = 0; u < p.mul_in; ++u) tt[u * p.dim_out] += cy * xx[u * p.dim_h];
  }
}

// The three small contractions with a path's weights W [mul_in, mul_out] (per edge, so
// no batching into a GEMM is possible).  mul_out is the innermost, contiguous dimension;
// MO > 0 fixes it at compile time (the common widths), so that the loops over it become
// whole vector registers; MO = 0 reads it at run time.
//   tw:  acc[m, w] = Σ_u t[u, m] W[u, w]          (forward)
//   wg:  s[u, m]   = Σ_w W[u, w] gt[m, w]         (backward to h and Y)
//   tg:  gW[u, w] += Σ_m t[u, m] gt[m, w]         (backward to W)
template <int MO, typename T, typename TW>
void tw_fixed(int64_t mul_in, int64_t d3, int64_t mul_out, const T *t, const TW *W, T *acc)
{
  const int64_t mo = MO > 0 ? MO : mul_out;
  for (int64_t m = 0; m < d3; ++m) {
    T *am = acc + m * mo;
    for (int64_t v = 0; v < mo; ++v) am[v] = T(0);
    for (int64_t u = 0; u < mul_in; ++u) {
      const T tv = t[u * d3 + m];
      const TW *wu = W + u * mo;
      for (int64_t v = 0; v < mo; ++v) am[v] += tv * wu[v];
    }
  }
}

template <int MO, typename T, typename G>
void wg_fixed(int64_t mul_in, int64_t d3, int64_t mul_out, const T *W, const G *gt, T *s)
{
  const int64_t mo = MO > 0 ? MO : mul_out;
  for (int64_t u = 0; u < mul_in; ++u) {
    const T *wu = W + u * mo;
    for (int64_t m = 0; m < d3; ++m) {
      const G *gm = gt + m * mo;
      T acc(0);
      for (int64_t v = 0; v < mo; ++v) acc += wu[v] * gm[v];
      s[u * d3 + m] = acc;
    }
  }
}

template <int MO, typename T, typename G>
void tg_fixed(int64_t mul_in, int64_t d3, int64_t mul_out, const T *t, const G *gt, T *gW)
{
  const int64_t mo = MO > 0 ? MO : mul_out;
  for (int64_t u = 0; u < mul_in; ++u) {
    T *gu = gW + u * mo;
    for (int64_t m = 0; m < d3; ++m) {
      const T tv = t[u * d3 + m];
      const G *gm = gt + m * mo;
      for (int64_t v = 0; v < mo; ++v) gu[v] += tv * gm[v];
    }
  }
}

#define MLFF_UVW_DISPATCH(fn, p, ...)                                 \
  switch ((p).mul_out) {                                              \
    case 8: fn<8>((p).mul_in, (p).dim_out, 8, __VA_ARGS__); break;    \
    case 16: fn<16>((p).mul_in, (p).dim_out, 16, __VA_ARGS__); break; \
    case 32: fn<32>((p).mul_in, (p).dim_out, 32, __VA_ARGS__); break; \
    default: fn<0>((p).mul_in, (p).dim_out, (p).mul_out, __VA_ARGS__); \
  }

// ---------------------------------------------------------------------------- kernels
// `accumulate`: add to the output rows instead of overwriting them (all kernels below)
template <typename T>
void forward_edges(const Layout &L, const int64_t *nbr, const int64_t *group, const T *h, const T *y, const T *w,
                   T *out, bool accumulate, int64_t begin, int64_t end)
{
  std::vector<T> t(L.scratch), acc(L.scratch);
  for (int64_t e = begin; e < end; ++e) {
    const T *hj = h + nbr[e] * L.dim_h, *ye = y + e * L.dim_y, *wp = w + group[e] * L.n_w;
    T *oe = out + e * L.dim_out;
    if (!accumulate) std::fill(oe, oe + L.dim_out, T(0));
    for (const Path &p : L.paths) {
      cg_product(p, hj + p.off_h, ye, t.data());
      MLFF_UVW_DISPATCH(tw_fixed, p, t.data(), wp + p.off_w, acc.data());
      T *o = oe + p.off_out;
      for (int64_t m = 0; m < p.dim_out; ++m)
        for (int64_t v = 0; v < p.mul_out; ++v) o[v * p.dim_out + m] += acc[m * p.mul_out + v];
    }
  }
}

// gt[m3·mul_out + w] = g[w·d3 + m3]: a path's output-block gradient with w innermost, so the
// contractions over w below run over contiguous memory
template <typename T>
void transpose_block(const Path &p, const T *go, T *gt)
{
  for (int64_t v = 0; v < p.mul_out; ++v)
    for (int64_t m = 0; m < p.dim_out; ++m) gt[m * p.mul_out + v] = go[v * p.dim_out + m];
}

// ∂h (rows of neighbour nodes [begin, end); GH) and ∂Y (their edges; GY) of <g, F>
template <bool GH, bool GY, typename T>
void backward_nodes(const Layout &L, const EdgeGroups &by_nbr, const int64_t *group, const T *g, const T *h,
                    const T *y, const T *w, T *gh, T *gy, bool accumulate, int64_t begin, int64_t end)
{
  std::vector<T> s(L.scratch), gt(L.scratch);
  for (int64_t j = begin; j < end; ++j) {
    const T *hj = h + j * L.dim_h;
    T *ghj = GH ? gh + j * L.dim_h : nullptr;
    if (GH && !accumulate) std::fill(ghj, ghj + L.dim_h, T(0));
    for (int64_t q = by_nbr.offset[j]; q < by_nbr.offset[j + 1]; ++q) {
      const int64_t e = by_nbr.order[q];
      const T *ge = g + e * L.dim_out;
      const T *ye = y + e * L.dim_y, *wp = w + group[e] * L.n_w;
      T *gye = GY ? gy + e * L.dim_y : nullptr;
      if (GY && !accumulate) std::fill(gye, gye + L.dim_y, T(0));
      for (const Path &p : L.paths) {
        // s[u, m3] = Σ_w W[u, w] g[w, m3]
        transpose_block(p, ge + p.off_out, gt.data());
        MLFF_UVW_DISPATCH(wg_fixed, p, wp + p.off_w, gt.data(), s.data());
        for (size_t n = 0; n < p.c.size(); ++n) {
          const T c = static_cast<T>(p.c[n]);
          const T *ss = s.data() + p.m3[n];
          const T cy = c * ye[p.off_y + p.m2[n]];
          const T *x = hj + p.off_h + p.m1[n];
          T *gx = GH ? ghj + p.off_h + p.m1[n] : nullptr;
          T acc_y(0);
          for (int64_t u = 0; u < p.mul_in; ++u) {
            const T su = ss[u * p.dim_out];
            if constexpr (GH) gx[u * p.dim_h] += cy * su;
            if constexpr (GY) acc_y += x[u * p.dim_h] * su;
          }
          if constexpr (GY) gye[p.off_y + p.m2[n]] += c * acc_y;
        }
      }
    }
  }
}

// ∂W (rows of atom pairs [begin, end), from their edges) of <g, F>
template <typename T>
void backward_pairs(const Layout &L, const EdgeGroups &by_pair, const int64_t *nbr, const T *g, const T *h,
                    const T *y, T *gw, bool accumulate, int64_t begin, int64_t end)
{
  std::vector<T> t(L.scratch), gt(L.scratch);
  for (int64_t pr = begin; pr < end; ++pr) {
    T *gwp = gw + pr * L.n_w;
    if (!accumulate) std::fill(gwp, gwp + L.n_w, T(0));
    for (int64_t q = by_pair.offset[pr]; q < by_pair.offset[pr + 1]; ++q) {
      const int64_t e = by_pair.order[q];
      const T *hj = h + nbr[e] * L.dim_h, *ye = y + e * L.dim_y;
      const T *ge = g + e * L.dim_out;
      for (const Path &p : L.paths) {
        cg_product(p, hj + p.off_h, ye, t.data());
        transpose_block(p, ge + p.off_out, gt.data());
        MLFF_UVW_DISPATCH(tg_fixed, p, t.data(), gt.data(), gwp + p.off_w);
      }
    }
  }
}

// ---------------------------------------------------------------------------- drivers
// TpInputs: index0 = neighbour [E], index1 = group [E] (weight row); TpTables: size = output width
constexpr int64_t kGrain = 16;

// CUDA tensors: the kernels in cuda/ (grad undefined: {out}; defined: {gh, gy, gw}; with
// tangents their directional derivatives)
std::vector<at::Tensor> uvw_cuda(const TpInputs &in, const TpTables &a, const at::Tensor &uh, const at::Tensor &uy,
                                 const at::Tensor &uw, const at::Tensor &grad, bool tangents)
{
#ifdef MLFF_WITH_CUDA
  (void)make_layout(in, a);    // validates the tables
  // a tangent run with no tangent given is the zero tangent, not the plain kernel
  const at::Tensor zh = tangents && !uh.defined() && !uy.defined() && !uw.defined() ? at::zeros_like(in.h) : uh;
  return cuda_glue::tp_uvw(in.h, in.y, in.w, zh, uy, uw, grad, in.index0, in.index1, a.paths, a.coeff_index, a.coeff,
                           a.size);
#else
  TORCH_CHECK(false, kOp, ": libmlff_ops.so was built without CUDA kernels; got a tensor on ", in.h.device(),
              " (rebuild with scripts/build_plugin.sh where torch has CUDA)");
  return {};
#endif
}

template <typename S>
const S *ptr(const at::Tensor &t)
{
  return t.data_ptr<S>();
}

// The kernels at one point (h, Y, W) of the inputs, on contiguous tensors of one dtype.
// `accumulate` adds to the outputs (zeroed by the caller) instead of overwriting them.
template <typename T>
struct Run {
  const Layout &L;
  const TpInputs &in;
  const at::Tensor &h, &y, &w;
  bool accumulate = false;

  void forward(at::Tensor &out) const
  {
    const int64_t *nbr = ptr<int64_t>(in.index0), *group = ptr<int64_t>(in.index1);
    at::parallel_for(0, in.y.size(0), kGrain, [&](int64_t b, int64_t e) {
      forward_edges<T>(L, nbr, group, ptr<T>(h), ptr<T>(y), ptr<T>(w), out.data_ptr<T>(), accumulate, b, e);
    });
  }
  // the gradients whose tensor is defined (each of gh, gy, gw may be left undefined)
  void backward(const at::Tensor &g, at::Tensor &gh, at::Tensor &gy, at::Tensor &gw) const
  {
    const int64_t E = in.y.size(0);
    const int64_t *nbr = ptr<int64_t>(in.index0), *group = ptr<int64_t>(in.index1);
    if (gh.defined() || gy.defined()) {
      const EdgeGroups by_nbr = group_edges(nbr, E, in.h.size(0), kOp, "neighbour");
      at::parallel_for(0, in.h.size(0), kGrain, [&](int64_t b, int64_t e) {
        const auto nodes = [&](auto kernel) {
          kernel(L, by_nbr, group, ptr<T>(g), ptr<T>(h), ptr<T>(y), ptr<T>(w),
                 gh.defined() ? gh.data_ptr<T>() : nullptr, gy.defined() ? gy.data_ptr<T>() : nullptr, accumulate, b,
                 e);
        };
        if (gh.defined() && gy.defined()) nodes(backward_nodes<true, true, T>);
        else if (gh.defined()) nodes(backward_nodes<true, false, T>);
        else nodes(backward_nodes<false, true, T>);
      });
    }
    if (gw.defined()) {
      const EdgeGroups by_pair = group_edges(group, E, in.w.size(0), kOp, "weight row");
      at::parallel_for(0, in.w.size(0), kGrain, [&](int64_t b, int64_t e) {
        backward_pairs<T>(L, by_pair, nbr, ptr<T>(g), ptr<T>(h), ptr<T>(y), gw.data_ptr<T>(), accumulate, b, e);
      });
    }
  }
};

struct TpUvwKernels {
  static constexpr const char *name = kOp;

  static at::Tensor forward(const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return uvw_cuda(in, a, {}, {}, {}, {}, false)[0];
    const auto cached = make_layout(in, a);
    auto out = at::empty({in.y.size(0), cached->dim_out}, in.h.options());
    AT_DISPATCH_FLOATING_TYPES(in.h.scalar_type(), "mlff_tp_uvw_forward", [&] {
      Run<scalar_t>{*cached, in, in.h, in.y, in.w}.forward(out);
    });
    return out;
  }

  static std::vector<at::Tensor> backward(const at::Tensor &grad, const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return uvw_cuda(in, a, {}, {}, {}, grad, false);
    const auto cached = make_layout(in, a);
    const Layout &L = *cached;
    auto g = grad.to(in.h.scalar_type()).contiguous();
    TORCH_CHECK(g.dim() == 2 && g.size(0) == in.y.size(0) && g.size(1) == L.dim_out, kOp, ": gradient must be [",
                in.y.size(0), ", ", L.dim_out, "], got ", g.sizes());
    auto gh = at::empty_like(in.h), gy = at::empty_like(in.y), gw = at::empty_like(in.w);
    AT_DISPATCH_FLOATING_TYPES(in.h.scalar_type(), "mlff_tp_uvw_backward", [&] {
      Run<scalar_t>{L, in, in.h, in.y, in.w}.backward(g, gh, gy, gw);
    });
    return {gh, gy, gw};
  }

  // d/dε F(h + ε u_h, Y + ε u_y, W + ε u_w) = F(u_h, Y, W) + F(h, u_Y, W) + F(h, Y, u_W)
  static at::Tensor jvp(const at::Tensor &uh, const at::Tensor &uy, const at::Tensor &uw, const TpInputs &in,
                        const TpTables &a)
  {
    if (in.h.is_cuda()) return uvw_cuda(in, a, uh, uy, uw, {}, true)[0];
    const auto cached = make_layout(in, a);
    const at::Tensor th = tangent_like(uh, in.h), ty = tangent_like(uy, in.y), tw = tangent_like(uw, in.w);
    auto out = at::zeros({in.y.size(0), cached->dim_out}, in.h.options());
    AT_DISPATCH_FLOATING_TYPES(in.h.scalar_type(), "mlff_tp_uvw_jvp", [&] {
      using R = Run<scalar_t>;
      if (th.defined()) R{*cached, in, th, in.y, in.w, true}.forward(out);
      if (ty.defined()) R{*cached, in, in.h, ty, in.w, true}.forward(out);
      if (tw.defined()) R{*cached, in, in.h, in.y, tw, true}.forward(out);
    });
    return out;
  }

  // d/dε of the backward at (h + ε u_h, Y + ε u_y, W + ε u_w), g fixed: ∂h is bilinear in
  // (Y, W), ∂Y in (h, W) and ∂W in (h, Y), so each is a sum of two backward terms
  static std::vector<at::Tensor> hvp(const at::Tensor &grad, const at::Tensor &uh, const at::Tensor &uy,
                                     const at::Tensor &uw, const TpInputs &in, const TpTables &a)
  {
    if (in.h.is_cuda()) return uvw_cuda(in, a, uh, uy, uw, grad, true);
    const auto cached = make_layout(in, a);
    auto g = grad.to(in.h.scalar_type()).contiguous();
    const at::Tensor th = tangent_like(uh, in.h), ty = tangent_like(uy, in.y), tw = tangent_like(uw, in.w);
    auto gh = at::zeros_like(in.h), gy = at::zeros_like(in.y), gw = at::zeros_like(in.w);
    at::Tensor none;
    AT_DISPATCH_FLOATING_TYPES(in.h.scalar_type(), "mlff_tp_uvw_hvp", [&] {
      using R = Run<scalar_t>;
      if (th.defined()) R{*cached, in, th, in.y, in.w, true}.backward(g, none, gy, gw);
      if (ty.defined()) R{*cached, in, in.h, ty, in.w, true}.backward(g, gh, none, gw);
      if (tw.defined()) R{*cached, in, in.h, in.y, tw, true}.backward(g, gh, gy, none);
    });
    return {gh, gy, gw};
  }
};

#undef MLFF_UVW_DISPATCH

}    // namespace

namespace {

// h, sh, weight contiguous and the two index tensors int64, every index checked once
// (the kernels index without bounds checks)
TpInputs checked_inputs(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                        const at::Tensor &neighbour, const at::Tensor &group, int64_t dim_out)
{
  TORCH_CHECK(sh.device() == h.device() && weight.device() == h.device() && neighbour.device() == h.device() &&
                  group.device() == h.device(),
              kOp, ": h, sh, weight, neighbour and group must be on one device");
  TORCH_CHECK(h.is_cpu() || h.is_cuda(), kOp, ": only CPU and CUDA tensors are supported, got ", h.device());
  TORCH_CHECK(h.dim() == 2 && sh.dim() == 2 && weight.dim() == 2, kOp, ": h, sh and weight must be 2-D");
  TORCH_CHECK(h.scalar_type() == sh.scalar_type() && h.scalar_type() == weight.scalar_type() &&
                  (h.scalar_type() == at::kFloat || h.scalar_type() == at::kDouble),
              kOp, ": h, sh and weight must share a float32/float64 dtype");
  TORCH_CHECK(dim_out >= 0, kOp, ": dim_out must be >= 0, got ", dim_out);
  const int64_t E = sh.size(0);
  TORCH_CHECK(neighbour.dim() == 1 && group.dim() == 1 && neighbour.size(0) == E && group.size(0) == E, kOp,
              ": neighbour and group must have one entry per row of sh (", E, ")");
  auto nb = neighbour.to(at::kLong).contiguous(), gr = group.to(at::kLong).contiguous();
  if (h.is_cuda()) {
    TORCH_CHECK(indices_in_range({{nb, h.size(0)}, {gr, weight.size(0)}}),
                kOp, ": an edge has a neighbour outside [0, ", h.size(0), ") or a weight row outside [0, ",
                weight.size(0), ")");
  } else {
    const int64_t *pn = nb.data_ptr<int64_t>(), *pg = gr.data_ptr<int64_t>();
    for (int64_t e = 0; e < E; ++e)
      TORCH_CHECK(pn[e] >= 0 && pn[e] < h.size(0) && pg[e] >= 0 && pg[e] < weight.size(0), kOp, ": edge ", e,
                  " has neighbour ", pn[e], " (of ", h.size(0), " nodes) or weight row ", pg[e], " (of ",
                  weight.size(0), ") out of range");
  }
  return {h.contiguous(), sh.contiguous(), weight.contiguous(), nb, gr};
}

}    // namespace

// the kernels without autograd (export_ops.cpp)
at::Tensor tp_uvw_forward_raw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                              const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths,
                              const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out)
{
  return TpUvwKernels::forward(checked_inputs(h, sh, weight, neighbour, group, dim_out),
                               TpTables{paths, coeff_index, coeff, dim_out});
}

std::vector<at::Tensor> tp_uvw_backward_raw(const at::Tensor &grad, const at::Tensor &h, const at::Tensor &sh,
                                            const at::Tensor &weight, const at::Tensor &neighbour,
                                            const at::Tensor &group, const at::Tensor &paths,
                                            const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out)
{
  return TpUvwKernels::backward(grad.contiguous(), checked_inputs(h, sh, weight, neighbour, group, dim_out),
                                TpTables{paths, coeff_index, coeff, dim_out});
}

at::Tensor tp_uvw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight, const at::Tensor &neighbour,
                  const at::Tensor &group, const at::Tensor &paths, const at::Tensor &coeff_index,
                  const at::Tensor &coeff, int64_t dim_out)
{
  const TpInputs in = checked_inputs(h, sh, weight, neighbour, group, dim_out);
  const TpTables a{paths, coeff_index, coeff, dim_out};
  return TpForwardFn<TpUvwKernels>::apply(in.h, in.y, in.w, in.index0, in.index1, a);
}

}    // namespace mlff
