// libmlff_ops.so: mlff's torch operators (namespace `mlff`, `torch.ops.mlff.*`).
//
// The library is loaded by Python (mlff.ops, torch.ops.load_library) and linked by
// the LAMMPS pair style (libmlff_pair.so), so a deployed TorchScript model that
// calls `torch.ops.mlff.halo_exchange` runs in both.  This header is the C++ API
// the pair style uses; the operator schemas are registered in src/registration.cpp.
//
// Halo exchange
// -------------
// A message-passing model evaluated on one MPI rank sees "local" nodes (atoms this
// rank owns) and "ghost" nodes (copies of atoms owned by this or another rank).
// After each message-passing layer the features of ghost nodes are stale: only the
// owners computed the layer correctly.  `halo_exchange(x)` returns x with every
// ghost row replaced by its owner's row; its adjoint `halo_reverse(g)` sums every
// ghost row of g onto its owner's row and zeroes the ghost rows.  Each op's
// autograd backward is the other, so gradients (forces) are exact to any order.
//
// What "owner" means is supplied by whoever drives the model, through a
// HaloExchanger installed for the duration of the model call:
//  * LAMMPS: the pair style's exchanger calls comm->forward_comm / reverse_comm;
//  * tests: an index map (owner[k] = row that owns row k), see halo_set_owner_map;
//  * nobody (plain Python use): both ops are the identity (a copy).
#ifndef MLFF_OPS_H
#define MLFF_OPS_H

#include <ATen/core/Tensor.h>

#include <cstdint>

#define MLFF_OPS_API __attribute__((visibility("default")))

namespace mlff {

// Interface implemented by the code that knows the ghost -> owner relation.
// Both methods get a tensor with one row per graph node (any dtype, device and
// trailing shape) and return a new tensor of the same shape, dtype and device.
// They may throw (the exception propagates out of the model call).
class MLFF_OPS_API HaloExchanger {
 public:
  virtual ~HaloExchanger();
  virtual at::Tensor forward(const at::Tensor &x) = 0;    // ghost rows <- owner rows
  virtual at::Tensor reverse(const at::Tensor &g) = 0;    // owner rows += ghost rows; ghosts 0
};

// Install `exchanger` (nullptr: none, ops are the identity); returns the previous
// one.  Process-wide (not thread-local): autograd may run the backward pass on
// another thread (CUDA).  The caller keeps ownership.
MLFF_OPS_API HaloExchanger *set_halo_exchanger(HaloExchanger *exchanger);
MLFF_OPS_API HaloExchanger *halo_exchanger();

// Installs an exchanger for one scope and restores the previous one.
class HaloExchangerScope {
 public:
  explicit HaloExchangerScope(HaloExchanger *ex) : previous_(set_halo_exchanger(ex)) {}
  ~HaloExchangerScope() { set_halo_exchanger(previous_); }
  HaloExchangerScope(const HaloExchangerScope &) = delete;
  HaloExchangerScope &operator=(const HaloExchangerScope &) = delete;

 private:
  HaloExchanger *previous_;
};

// The two operators (what torch.ops.mlff.halo_exchange / halo_reverse call).
MLFF_OPS_API at::Tensor halo_exchange(const at::Tensor &x);
MLFF_OPS_API at::Tensor halo_reverse(const at::Tensor &g);

// GPU per MPI rank: the CUDA device a rank uses, from its rank among the ranks
// of its node (node_local_rank, 0-based) and the number of visible devices.
// -1 when there is no device.  Round-robin: node_local_rank mod device_count.
MLFF_OPS_API int64_t select_device_index(int64_t node_local_rank, int64_t device_count);

// Atom-centred symmetry functions G2/G4/G5 of every centre atom from its edges
// (src/symmetry_functions.cpp; layout and conventions of mlff.models.symmetry_functions).
// edge_vec [E, 3] (Å, x_j − x_i; float32/float64), centre [E] and neighbour_species [E]
// int64, radial [R, 2] = (η Å⁻², r_s Å), angular [A, 4] = (4|5, η Å⁻², ζ, λ), cutoff 0 = cosine,
// 1 = polynomial(γ).  Returns [n_atoms, S·R + S(S+1)/2·A]; differentiable twice w.r.t. edge_vec.
MLFF_OPS_API at::Tensor symmetry_functions(const at::Tensor &edge_vec, const at::Tensor &centre,
                                           const at::Tensor &neighbour_species, int64_t n_atoms, int64_t n_species,
                                           const at::Tensor &radial, const at::Tensor &angular, double r_c,
                                           int64_t cutoff, double gamma);

// Channel-wise ("uvu") Clebsch–Gordan tensor-product convolution fused with the gather of
// neighbour features and the scatter onto centres (src/tensor_product.cpp):
// out[i] = Σ_{e: centre(e)=i} TP(h[neighbour(e)], sh[e], weight[e]) in e3nn's layout.
// paths [K, 7] int64 (off_h, dim_h, mul, off_y, off_out, dim_out, off_w), coeff_index [nnz, 4]
// (path, m1, m2, m3), coeff [nnz] (path weight × Wigner-3j).  Differentiable twice.
MLFF_OPS_API at::Tensor tp_conv(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                                const at::Tensor &centre, const at::Tensor &neighbour, int64_t n_nodes,
                                const at::Tensor &paths, const at::Tensor &coeff_index, const at::Tensor &coeff);

// Fully connected ("uvw") Clebsch–Gordan tensor product per edge with the neighbour
// gather and per-atom-pair weights fused in (src/tensor_product_uvw.cpp):
// out[e] = TP(h[neighbour(e)], sh[e], weight[group(e)]) [E, dim_out] in e3nn's layout.
// paths [K, 8] int64 (off_h, dim_h, mul_in, off_y, off_out, dim_out, mul_out, off_w), weights
// of a path [mul_in, mul_out] row-major; coeff_index/coeff as for tp_conv.  CPU,
// float32/float64, differentiable twice.
MLFF_OPS_API at::Tensor tp_uvw(const at::Tensor &h, const at::Tensor &sh, const at::Tensor &weight,
                               const at::Tensor &neighbour, const at::Tensor &group, const at::Tensor &paths,
                               const at::Tensor &coeff_index, const at::Tensor &coeff, int64_t dim_out);

// Continuous-filter convolution with one filter row per atom pair (src/edge_conv.cpp):
//   edge_conv(x, w, group, src, dst, n_out)[i]        = Σ_{k: dst_k = i}   x[src_k] ∘ w[group_k]
//   edge_pair_product(a, b, ia, ib, group, n_out)[p]  = Σ_{k: group_k = p} a[ia_k] ∘ b[ib_k]
// Feature tensors [rows, F] float32/float64, index tensors [E] int64.  Each is the other's
// derivative, so both are differentiable to any order.
MLFF_OPS_API at::Tensor edge_conv(const at::Tensor &x, const at::Tensor &w, const at::Tensor &group,
                                  const at::Tensor &src, const at::Tensor &dst, int64_t n_out);
MLFF_OPS_API at::Tensor edge_pair_product(const at::Tensor &a, const at::Tensor &b, const at::Tensor &ia,
                                          const at::Tensor &ib, const at::Tensor &group, int64_t n_out);

// SchNet's filter-generating network for pair distances r [U] (src/schnet_filter.cpp):
// W = ssp(ssp(rbf(r) w1ᵀ + b1) w2ᵀ + b2) · f_c(r) [U, F], rbf_k = exp(−γ (r − centres_k)²),
// cosine cutoff at r_max.  CPU, float32/float64; first derivative w.r.t. r only (deployed
// models): weight gradients and second derivatives raise.
MLFF_OPS_API at::Tensor schnet_filter(const at::Tensor &r, const at::Tensor &centres, double gamma, double r_max,
                                      const at::Tensor &w1, const at::Tensor &b1, const at::Tensor &w2,
                                      const at::Tensor &b2);

// A tabulated radial function y(r) [U, F] of pair distances r [U] (src/radial_table.cpp):
// quintic Hermite interpolation in table [N + 1, 3, F] = (y, h·y', h²·y'') at the knots
// r_k = k·h, h = r_max / N; 0 for r outside [0, r_max).  CPU, float32/float64; first
// derivative w.r.t. r only (deployed models): table gradients and second derivatives raise.
MLFF_OPS_API at::Tensor radial_table(const at::Tensor &r, const at::Tensor &table, double r_max);

// Version of the operator set; bumped when an op's schema or meaning changes.
constexpr int64_t kOpsVersion = 8;

}    // namespace mlff

#endif
