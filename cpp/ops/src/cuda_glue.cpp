// Torch glue of the CUDA kernels (see cuda_glue.h and cuda/include/mlff/cuda/kernels.h):
// builds the edge groupings on the device, uploads the small parameter tables, packs
// value/tangent pairs as Dual numbers ([..., 2] tensors) and launches on the current stream.
//
// With MLFF_CUDA_HOST_EMULATION (cuda/host_emulation/) the same glue drives the kernels'
// host emulation on CPU tensors, which is how CI tests both without a GPU.
#include "cuda_glue.h"

#include "mlff/cuda/kernels.h"
#include "mlff/dual.h"
#include "table_cache.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>
#include <vector>
#ifndef MLFF_CUDA_HOST_EMULATION
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace mlff {
namespace cuda_glue {
namespace {

// the tensors' device made current, and the stream to launch on
#ifdef MLFF_CUDA_HOST_EMULATION
struct DeviceScope {
  explicit DeviceScope(const at::Device &) {}
  cudaStream_t stream() const { return nullptr; }
};
#else
struct DeviceScope {
  c10::cuda::CUDAGuard guard;
  explicit DeviceScope(const at::Device &device) : guard(device) {}
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream().stream(); }
};
#endif

struct Csr {
  at::Tensor offset, order;
};

// edges of node i: order[offset[i] .. offset[i+1]).  Offsets by binary search in the sorted
// keys, not bincount, which reads its size back to the host (a synchronisation).
Csr group(const at::Tensor &key, int64_t n)
{
  auto k = key.to(at::kLong);
  auto sorted = at::sort(k, /*stable=*/true, /*dim=*/0, /*descending=*/false);
  auto offset = at::searchsorted(std::get<0>(sorted), at::arange(n + 1, k.options()));
  return {offset.contiguous(), std::get<1>(sorted).contiguous()};
}

// The Clebsch–Gordan non-zeros sorted by path, on the device: those of path k are
// [start[k], start[k+1]) in m ([nnz, 3] int32: m1, m2, m3) and coeff (float64).
// coeff_index [nnz, 4] (path, m1, m2, m3) as the CPU operators take it.
struct PathCoefficients {
  at::Tensor start, m, coeff;
};

PathCoefficients coefficients_by_path(const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t n_paths,
                                      const at::Device &dev)
{
  auto ci = coeff_index.to(at::kCPU, at::kLong).contiguous();
  auto order = std::get<1>(at::sort(ci.select(1, 0), /*stable=*/true, 0, false));
  auto ci_sorted = ci.index_select(0, order);
  auto start = at::zeros({n_paths + 1}, at::kLong);
  start.narrow(0, 1, n_paths).copy_(at::cumsum(at::bincount(ci_sorted.select(1, 0), {}, n_paths), 0));
  return {start.to(dev), ci_sorted.narrow(1, 1, 3).to(at::kInt).contiguous().to(dev),
          coeff.to(at::kCPU, at::kDouble).index_select(0, order).contiguous().to(dev)};
}

at::Tensor int32_tensor(const std::vector<int32_t> &v, const at::Device &dev)
{
  auto t = at::empty({static_cast<int64_t>(v.size())}, at::kInt);
  std::copy(v.begin(), v.end(), t.data_ptr<int32_t>());
  return t.to(dev);
}

// value and tangent as a [..., 2] tensor whose memory is an array of Dual<S>
at::Tensor pack(const at::Tensor &v, const at::Tensor &u)
{
  return at::stack({v, u.defined() ? u.to(v.scalar_type()) : at::zeros_like(v)}, -1).contiguous();
}

template <typename S>
Dual<S> *dual_ptr(at::Tensor &t) { return reinterpret_cast<Dual<S> *>(t.data_ptr<S>()); }
template <typename S>
const Dual<S> *dual_ptr(const at::Tensor &t) { return reinterpret_cast<const Dual<S> *>(t.data_ptr<S>()); }

// The shared tail of the tensor-product glue (trilinear in h, Y, W): with grad undefined,
// {out} of shape out_shape from forward(h, y, w, out); with grad, {gh, gy, gw} from
// backward(g, h, y, w, gh, gy, gw).  With any tangent defined, both run on Dual numbers
// (undefined tangents are zero) and return the tangent parts.  Outputs start zeroed.
template <class Forward, class Backward>
std::vector<at::Tensor> run_trilinear(const at::Tensor &h, const at::Tensor &y, const at::Tensor &w,
                                      const at::Tensor &uh, const at::Tensor &uy, const at::Tensor &uw,
                                      const at::Tensor &grad, std::vector<int64_t> out_shape, Forward forward,
                                      Backward backward)
{
  const bool dual = uh.defined() || uy.defined() || uw.defined();
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "mlff_tensor_product_cuda", [&] {
    using S = scalar_t;
    if (!grad.defined()) {
      if (!dual) {
        auto out = at::zeros(out_shape, h.options());
        forward(h.data_ptr<S>(), y.data_ptr<S>(), w.data_ptr<S>(), out.data_ptr<S>());
        result = {out};
      } else {
        const auto dh = pack(h, uh), dy = pack(y, uy), dw = pack(w, uw);
        out_shape.push_back(2);
        auto out = at::zeros(out_shape, h.options());
        forward(dual_ptr<S>(dh), dual_ptr<S>(dy), dual_ptr<S>(dw), dual_ptr<S>(out));
        result = {out.select(-1, 1).contiguous()};
      }
    } else {
      auto g = grad.to(h.scalar_type()).contiguous();
      if (!dual) {
        auto gh = at::zeros_like(h), gy = at::zeros_like(y), gw = at::zeros_like(w);
        backward(g.data_ptr<S>(), h.data_ptr<S>(), y.data_ptr<S>(), w.data_ptr<S>(), gh.data_ptr<S>(),
                 gy.data_ptr<S>(), gw.data_ptr<S>());
        result = {gh, gy, gw};
      } else {
        const auto dh = pack(h, uh), dy = pack(y, uy), dw = pack(w, uw);
        auto gh = at::zeros({h.size(0), h.size(1), 2}, h.options());
        auto gy = at::zeros({y.size(0), y.size(1), 2}, h.options());
        auto gw = at::zeros({w.size(0), w.size(1), 2}, h.options());
        backward(static_cast<const S *>(g.data_ptr<S>()), dual_ptr<S>(dh), dual_ptr<S>(dy), dual_ptr<S>(dw),
                 dual_ptr<S>(gh), dual_ptr<S>(gy), dual_ptr<S>(gw));
        result = {gh.select(-1, 1).contiguous(), gy.select(-1, 1).contiguous(), gw.select(-1, 1).contiguous()};
      }
    }
  });
  return result;
}

// tp_conv's tables on the device: paths [K, 7] int64 and the coefficients by path
struct TpConvTables {
  at::Tensor paths;
  PathCoefficients pc;
  int64_t n_paths, max_mul, dim_out;
};

TpConvTables tp_conv_tables(const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff,
                            const at::Device &dev)
{
  auto pcpu = paths.to(at::kCPU, at::kLong).contiguous();
  const int64_t K = pcpu.size(0);
  int64_t max_mul = 1, dim_out = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t *r = pcpu.data_ptr<int64_t>() + 7 * k;
    max_mul = std::max(max_mul, r[2]);
    dim_out = std::max(dim_out, r[4] + r[2] * r[5]);
  }
  return {pcpu.to(dev), coefficients_by_path(coeff_index, coeff, K, dev), K, max_mul, dim_out};
}

// Path-table rows grouped by a block offset (column off_col: all paths with the same value
// write, or read, one irrep block), and one work item (first row, end row, channel) per
// channel of each block (multiplicity column mul_col).  Every path of a block must have
// the same irrep dimension (dim_col) and multiplicity.
struct BlockItems {
  std::vector<int32_t> rows, items;
};

BlockItems block_items(const int64_t *paths, int64_t n_paths, int off_col, int dim_col, int mul_col)
{
  auto col = [&](int32_t k, int c) { return paths[8 * k + c]; };
  BlockItems b;
  b.rows.resize(n_paths);
  for (int32_t k = 0; k < n_paths; ++k) b.rows[k] = k;
  std::stable_sort(b.rows.begin(), b.rows.end(), [&](int32_t x, int32_t y) { return col(x, off_col) < col(y, off_col); });
  for (int32_t first = 0; first < n_paths;) {
    int32_t end = first;
    const int32_t k0 = b.rows[first];
    while (end < n_paths && col(b.rows[end], off_col) == col(k0, off_col)) {
      TORCH_CHECK(col(b.rows[end], dim_col) == col(k0, dim_col) && col(b.rows[end], mul_col) == col(k0, mul_col),
                  "mlff::tp_uvw: paths ", k0, " and ", b.rows[end], " share a block but not its shape");
      ++end;
    }
    for (int64_t c = 0; c < col(k0, mul_col); ++c) b.items.insert(b.items.end(), {first, end, static_cast<int32_t>(c)});
    first = end;
  }
  return b;
}

// tp_uvw's tables on the device: paths [K, 8] int64, the coefficients by path, the output
// and input block items and the path of each of the n_w weight entries
struct TpUvwTables {
  at::Tensor paths;
  PathCoefficients pc;
  at::Tensor out_rows, out_items, in_rows, in_items, w_path;
  int64_t n_paths, n_out_items, n_in_items;
};

TpUvwTables tp_uvw_tables(const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff,
                          int64_t n_w, const at::Device &dev)
{
  auto pcpu = paths.to(at::kCPU, at::kLong).contiguous();
  const int64_t K = pcpu.size(0);
  const int64_t *P = pcpu.data_ptr<int64_t>();
  std::vector<int32_t> w_path(n_w, -1);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t *r = P + 8 * k;
    TORCH_CHECK(r[1] <= cuda::kMaxIrrepDim && r[5] <= cuda::kMaxIrrepDim, "mlff::tp_uvw: path ", k,
                " has an irrep of dimension > ", cuda::kMaxIrrepDim, " (l > 7), which the CUDA kernels do not support");
    for (int64_t i = r[7]; i < r[7] + r[2] * r[6]; ++i) {
      TORCH_CHECK(w_path[i] < 0, "mlff::tp_uvw: weight entry ", i, " belongs to paths ", w_path[i], " and ", k);
      w_path[i] = static_cast<int32_t>(k);
    }
  }
  const BlockItems outs = block_items(P, K, /*off_out*/ 4, /*dim_out*/ 5, /*mul_out*/ 6);
  const BlockItems ins = block_items(P, K, /*off_h*/ 0, /*dim_h*/ 1, /*mul_in*/ 2);
  return {pcpu.to(dev),
          coefficients_by_path(coeff_index, coeff, K, dev),
          int32_tensor(outs.rows, dev),
          int32_tensor(outs.items, dev),
          int32_tensor(ins.rows, dev),
          int32_tensor(ins.items, dev),
          int32_tensor(w_path, dev),
          K,
          static_cast<int64_t>(outs.items.size() / 3),
          static_cast<int64_t>(ins.items.size() / 3)};
}

std::vector<int64_t> device_key(const at::Device &dev)
{
  return {static_cast<int64_t>(dev.type()), dev.index()};
}

}    // namespace

at::Tensor symmetry_functions(const at::Tensor &vec_in, const at::Tensor &tangent, const at::Tensor &grad_in,
                              const at::Tensor &centre, const at::Tensor &species, int64_t n_atoms, int64_t n_species,
                              const at::Tensor &radial, const at::Tensor &angular, double r_c, int64_t cutoff,
                              double gamma)
{
  const DeviceScope scope(vec_in.device());
  auto stream = scope.stream();
  auto vec = vec_in.contiguous();
  const auto dev = vec.device();
  static TableCache<std::pair<at::Tensor, at::Tensor>> cache;    // the parameter tables on the device
  const auto tables = cache.get({radial, angular}, device_key(dev), [&] {
    return std::make_pair(radial.to(dev, at::kDouble).contiguous(), angular.to(dev, at::kDouble).contiguous());
  });
  const at::Tensor &rad = tables->first, &ang = tables->second;
  auto sp = species.to(dev, at::kLong).contiguous();
  Csr g = group(centre.to(dev), n_atoms);
  const int64_t R = rad.size(0), A = ang.size(0);
  cuda::SfArgs a{n_atoms, n_species, R, A, n_species * R + n_species * (n_species + 1) / 2 * A, r_c, gamma,
                 static_cast<int>(cutoff), rad.data_ptr<double>(), ang.data_ptr<double>(),
                 g.offset.data_ptr<int64_t>(), g.order.data_ptr<int64_t>(), sp.data_ptr<int64_t>()};
  const bool dual = tangent.defined();
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES(vec.scalar_type(), "mlff_sf_cuda", [&] {
    using S = scalar_t;
    if (!grad_in.defined()) {
      if (!dual) {
        result = at::zeros({n_atoms, a.F}, vec.options());
        cuda::sf_forward<S>(a, vec.data_ptr<S>(), result.data_ptr<S>(), stream);
      } else {
        auto v = pack(vec, tangent);
        auto out = at::zeros({n_atoms, a.F, 2}, vec.options());
        cuda::sf_forward<Dual<S>>(a, dual_ptr<S>(static_cast<const at::Tensor &>(v)), dual_ptr<S>(out), stream);
        result = out.select(-1, 1).contiguous();
      }
    } else {
      auto grad = grad_in.to(vec.scalar_type()).contiguous();
      if (!dual) {
        result = at::zeros_like(vec);
        cuda::sf_backward<S, S>(a, vec.data_ptr<S>(), grad.data_ptr<S>(), result.data_ptr<S>(), stream);
      } else {
        auto v = pack(vec, tangent);
        auto out = at::zeros({vec.size(0), 3, 2}, vec.options());
        cuda::sf_backward<Dual<S>, S>(a, dual_ptr<S>(static_cast<const at::Tensor &>(v)), grad.data_ptr<S>(),
                                      dual_ptr<S>(out), stream);
        result = out.select(-1, 1).contiguous();
      }
    }
  });
  return result;
}

std::vector<at::Tensor> tp_conv(const at::Tensor &h_in, const at::Tensor &y_in, const at::Tensor &w_in,
                                const at::Tensor &uh, const at::Tensor &uy, const at::Tensor &uw,
                                const at::Tensor &grad_in, const at::Tensor &centre, const at::Tensor &neighbour,
                                int64_t n_nodes, const at::Tensor &paths, const at::Tensor &coeff_index,
                                const at::Tensor &coeff)
{
  const DeviceScope scope(h_in.device());
  auto stream = scope.stream();
  auto h = h_in.contiguous(), y = y_in.contiguous(), w = w_in.contiguous();
  const auto dev = h.device();
  static TableCache<TpConvTables> cache;
  const auto t = cache.get({paths, coeff_index, coeff}, device_key(dev),
                           [&] { return tp_conv_tables(paths, coeff_index, coeff, dev); });
  const int64_t dim_out = t->dim_out;
  auto c = centre.to(dev, at::kLong).contiguous(), nb = neighbour.to(dev, at::kLong).contiguous();
  Csr by_c = group(c, n_nodes), by_n = group(nb, h.size(0));
  cuda::TpArgs a{n_nodes, h.size(0), t->n_paths, h.size(1), y.size(1), dim_out, w.size(1), t->max_mul,
                 t->paths.data_ptr<int64_t>(), t->pc.start.data_ptr<int64_t>(), t->pc.m.data_ptr<int32_t>(),
                 t->pc.coeff.data_ptr<double>(), c.data_ptr<int64_t>(), nb.data_ptr<int64_t>(),
                 by_c.offset.data_ptr<int64_t>(), by_c.order.data_ptr<int64_t>(), by_n.offset.data_ptr<int64_t>(),
                 by_n.order.data_ptr<int64_t>()};
  return run_trilinear(
      h, y, w, uh, uy, uw, grad_in, {n_nodes, dim_out},
      [&](const auto *ph, const auto *py, const auto *pw, auto *out) { cuda::tp_forward(a, ph, py, pw, out, stream); },
      [&](const auto *g, const auto *ph, const auto *py, const auto *pw, auto *gh, auto *gy, auto *gw) {
        cuda::tp_backward(a, g, ph, py, pw, gh, gy, gw, stream);
      });
}

std::vector<at::Tensor> tp_uvw(const at::Tensor &h_in, const at::Tensor &y_in, const at::Tensor &w_in,
                               const at::Tensor &uh, const at::Tensor &uy, const at::Tensor &uw,
                               const at::Tensor &grad_in, const at::Tensor &neighbour, const at::Tensor &group_in,
                               const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff,
                               int64_t dim_out)
{
  const DeviceScope scope(h_in.device());
  auto stream = scope.stream();
  auto h = h_in.contiguous(), y = y_in.contiguous(), w = w_in.contiguous();
  const auto dev = h.device();
  const int64_t n_w = w.size(1);
  static TableCache<TpUvwTables> cache;
  std::vector<int64_t> key = device_key(dev);
  key.push_back(n_w);
  const auto t =
      cache.get({paths, coeff_index, coeff}, key, [&] { return tp_uvw_tables(paths, coeff_index, coeff, n_w, dev); });
  auto nb = neighbour.to(dev, at::kLong).contiguous(), gr = group_in.to(dev, at::kLong).contiguous();
  Csr by_n = group(nb, h.size(0)), by_p = group(gr, w.size(0));
  cuda::TpUvwArgs a{y.size(0), h.size(0), w.size(0), t->n_paths, h.size(1), y.size(1), dim_out, n_w,
                    t->paths.data_ptr<int64_t>(), t->pc.start.data_ptr<int64_t>(), t->pc.m.data_ptr<int32_t>(),
                    t->pc.coeff.data_ptr<double>(), nb.data_ptr<int64_t>(), gr.data_ptr<int64_t>(),
                    by_n.offset.data_ptr<int64_t>(), by_n.order.data_ptr<int64_t>(),
                    by_p.offset.data_ptr<int64_t>(), by_p.order.data_ptr<int64_t>(), t->n_out_items, t->n_in_items,
                    t->out_rows.data_ptr<int32_t>(), t->out_items.data_ptr<int32_t>(), t->in_rows.data_ptr<int32_t>(),
                    t->in_items.data_ptr<int32_t>(), t->w_path.data_ptr<int32_t>()};
  return run_trilinear(
      h, y, w, uh, uy, uw, grad_in, {y.size(0), dim_out},
      [&](const auto *ph, const auto *py, const auto *pw, auto *out) { cuda::tp_uvw_forward(a, ph, py, pw, out, stream); },
      [&](const auto *g, const auto *ph, const auto *py, const auto *pw, auto *gh, auto *gy, auto *gw) {
        cuda::tp_uvw_backward(a, g, ph, py, pw, gh, gy, gw, stream);
      });
}

}    // namespace cuda_glue
}    // namespace mlff
