// Helpers shared by the operators (symmetry_functions.cpp, tensor_product.cpp, radial_table.cpp,
// tensor_product_uvw.cpp, edge_conv.cpp, schnet_filter.cpp).
#ifndef MLFF_KERNEL_UTIL_H
#define MLFF_KERNEL_UTIL_H

#include "mlff/dual.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace mlff {

// Edges grouped by a node index (counting sort, stable): the edges of node i are
// order[offset[i] .. offset[i+1]).  Every key must lie in [0, n_nodes); otherwise an error
// naming `op`, the edge and `what` the key is.
struct EdgeGroups {
  std::vector<int64_t> offset, order;
};

inline EdgeGroups group_edges(const int64_t *key, int64_t n_edges, int64_t n_nodes, const char *op,
                              const char *what)
{
  EdgeGroups g;
  g.offset.assign(n_nodes + 1, 0);
  for (int64_t e = 0; e < n_edges; ++e) {
    TORCH_CHECK(key[e] >= 0 && key[e] < n_nodes, op, ": edge ", e, " has ", what, " ", key[e], " outside [0, ",
                n_nodes, ")");
    ++g.offset[key[e] + 1];
  }
  for (int64_t i = 0; i < n_nodes; ++i) g.offset[i + 1] += g.offset[i];
  g.order.resize(n_edges);
  std::vector<int64_t> fill(g.offset.begin(), g.offset.end() - 1);
  for (int64_t e = 0; e < n_edges; ++e) g.order[fill[key[e]]++] = e;
  return g;
}

// Whether every entry of each index tensor lies in [0, n), for tensors on a GPU: one
// device-to-host read (one synchronisation) for all of them, instead of a min and a max each.
inline bool indices_in_range(const std::vector<std::pair<at::Tensor, int64_t>> &checks)
{
  at::Tensor bad;
  for (const auto &[index, n] : checks) {
    const at::Tensor b = index.lt(0).logical_or(index.ge(n)).any();
    bad = bad.defined() ? bad.logical_or(b) : b;
  }
  return !bad.defined() || !bad.item<bool>();
}

// The per-ISA kernel build (schnet_filter_kernel.cpp, symmetry_functions_kernel.cpp) to
// run: 2 = AVX-512 (F, BW, VL, DQ), 1 = AVX2 + FMA, 0 = baseline.  The widest this CPU
// runs, lowered like ATen's own kernels by ATEN_CPU_CAPABILITY=default|avx2 (tests run
// every build on one machine that way).
inline int cpu_level()
{
  static const int level = [] {
    int hw = 0;
#if defined(__x86_64__) || defined(__i386__)
    hw = (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
             ? 2
             : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
#endif
    const char *cap = std::getenv("ATEN_CPU_CAPABILITY");
    if (cap && std::strcmp(cap, "default") == 0) return 0;
    if (cap && std::strcmp(cap, "avx2") == 0) return std::min(hw, 1);
    return hw;
  }();
  return level;
}

// Runs the build of a per-ISA kernel that cpu_level() picks.
template <typename P>
void run_per_isa(const P &problem, void (*avx512)(const P &), void (*avx2)(const P &), void (*baseline)(const P &))
{
  switch (cpu_level()) {
    case 2: avx512(problem); break;
    case 1: avx2(problem); break;
    default: baseline(problem);
  }
}

// value + ε·tangent for every element of a contiguous CPU tensor (undefined tangent: 0)
template <typename S>
std::vector<Dual<S>> make_dual(const at::Tensor &v, const at::Tensor &u)
{
  const S *pv = v.data_ptr<S>();
  const S *pu = u.defined() ? u.data_ptr<S>() : nullptr;
  std::vector<Dual<S>> out(v.numel());
  for (int64_t k = 0; k < v.numel(); ++k) out[k] = {pv[k], pu ? pu[k] : S(0)};
  return out;
}

// the tangent parts into a tensor of the same size
template <typename S>
void copy_tangent(const std::vector<Dual<S>> &src, at::Tensor &dst)
{
  S *d = dst.data_ptr<S>();
  for (size_t k = 0; k < src.size(); ++k) d[k] = src[k].d;
}

}    // namespace mlff

#endif
