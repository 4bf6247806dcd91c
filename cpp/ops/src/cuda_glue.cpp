// Torch glue of the CUDA kernels (see cuda_glue.h and cuda/include/mlff/cuda/kernels.h):
// builds the edge groupings on the device, uploads the small parameter tables, packs
// value/tangent pairs as Dual numbers ([..., 2] tensors) and launches on the current stream.
//
// With MLFF_CUDA_HOST_EMULATION (cuda/host_emulation/) the same glue drives the kernels'
// host emulation on CPU tensors, which is how CI tests both without a GPU.
#include "cuda_glue.h"

#include "mlff/cuda/kernels.h"
#include "mlff/dual.h"

#include <ATen/ATen.h>
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

Csr group(const at::Tensor &key, int64_t n)    // edges of node i: order[offset[i] .. offset[i+1])
{
  auto k = key.to(at::kLong);
  auto order = std::get<1>(at::sort(k, /*stable=*/true, /*dim=*/0, /*descending=*/false));
  auto counts = at::bincount(k, /*weights=*/{}, /*minlength=*/n);
  auto offset = at::cat({at::zeros({1}, k.options()), at::cumsum(counts, 0)});
  return {offset.contiguous(), order.contiguous()};
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
  auto rad = radial.to(dev, at::kDouble).contiguous();
  auto ang = angular.to(dev, at::kDouble).contiguous();
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
  // tables: per-path ranges of the (path-sorted) coefficients, computed on the host
  auto ci = coeff_index.to(at::kCPU, at::kLong).contiguous();
  auto pcpu = paths.to(at::kCPU, at::kLong).contiguous();
  const int64_t K = pcpu.size(0), nnz = ci.size(0);
  auto order = std::get<1>(at::sort(ci.select(1, 0), /*stable=*/true, 0, false));
  auto ci_sorted = ci.index_select(0, order);
  auto start = at::zeros({K + 1}, at::kLong);
  auto counts = at::bincount(ci_sorted.select(1, 0), {}, K);
  start.narrow(0, 1, K).copy_(at::cumsum(counts, 0));
  int64_t max_mul = 1, dim_out = 0;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t *r = pcpu.data_ptr<int64_t>() + 7 * k;
    max_mul = std::max(max_mul, r[2]);
    dim_out = std::max(dim_out, r[4] + r[2] * r[5]);
  }
  auto d_paths = pcpu.to(dev), d_start = start.to(dev);
  auto d_m = ci_sorted.narrow(1, 1, 3).to(at::kInt).contiguous().to(dev);
  auto d_coeff = coeff.to(at::kCPU, at::kDouble).index_select(0, order).contiguous().to(dev);
  auto c = centre.to(dev, at::kLong).contiguous(), nb = neighbour.to(dev, at::kLong).contiguous();
  Csr by_c = group(c, n_nodes), by_n = group(nb, h.size(0));
  cuda::TpArgs a{n_nodes, h.size(0), K, h.size(1), y.size(1), dim_out, w.size(1), max_mul,
                 d_paths.data_ptr<int64_t>(), d_start.data_ptr<int64_t>(), d_m.data_ptr<int32_t>(),
                 d_coeff.data_ptr<double>(), c.data_ptr<int64_t>(), nb.data_ptr<int64_t>(),
                 by_c.offset.data_ptr<int64_t>(), by_c.order.data_ptr<int64_t>(), by_n.offset.data_ptr<int64_t>(),
                 by_n.order.data_ptr<int64_t>()};
  (void)nnz;
  const bool dual = uh.defined() || uy.defined() || uw.defined();
  std::vector<at::Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "mlff_tp_cuda", [&] {
    using S = scalar_t;
    if (!grad_in.defined()) {
      if (!dual) {
        auto out = at::zeros({n_nodes, dim_out}, h.options());
        cuda::tp_forward<S>(a, h.data_ptr<S>(), y.data_ptr<S>(), w.data_ptr<S>(), out.data_ptr<S>(), stream);
        result = {out};
      } else {
        const auto dh = pack(h, uh), dy = pack(y, uy), dw = pack(w, uw);
        auto out = at::zeros({n_nodes, dim_out, 2}, h.options());
        cuda::tp_forward<Dual<S>>(a, dual_ptr<S>(dh), dual_ptr<S>(dy), dual_ptr<S>(dw), dual_ptr<S>(out), stream);
        result = {out.select(-1, 1).contiguous()};
      }
    } else {
      auto g = grad_in.to(h.scalar_type()).contiguous();
      if (!dual) {
        auto gh = at::zeros_like(h), gy = at::zeros_like(y), gw = at::zeros_like(w);
        cuda::tp_backward<S, S>(a, g.data_ptr<S>(), h.data_ptr<S>(), y.data_ptr<S>(), w.data_ptr<S>(),
                                gh.data_ptr<S>(), gy.data_ptr<S>(), gw.data_ptr<S>(), stream);
        result = {gh, gy, gw};
      } else {
        const auto dh = pack(h, uh), dy = pack(y, uy), dw = pack(w, uw);
        auto gh = at::zeros({h.size(0), h.size(1), 2}, h.options());
        auto gy = at::zeros({y.size(0), y.size(1), 2}, h.options());
        auto gw = at::zeros({w.size(0), w.size(1), 2}, h.options());
        cuda::tp_backward<Dual<S>, S>(a, g.data_ptr<S>(), dual_ptr<S>(dh), dual_ptr<S>(dy), dual_ptr<S>(dw),
                                      dual_ptr<S>(gh), dual_ptr<S>(gy), dual_ptr<S>(gw), stream);
        result = {gh.select(-1, 1).contiguous(), gy.select(-1, 1).contiguous(), gw.select(-1, 1).contiguous()};
      }
    }
  });
  return result;
}

}    // namespace cuda_glue
}    // namespace mlff
