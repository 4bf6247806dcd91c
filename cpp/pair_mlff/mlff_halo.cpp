// Halo exchange through LAMMPS communication (mlff_halo.h).

#include "mlff_halo.h"

#include "mlff_graph.h"

#include "atom.h"
#include "comm.h"
#include "lammps.h"
#include "pair.h"
#include "utils.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

using namespace LAMMPS_NS;
using namespace LAMMPS_NS::MLFF;

namespace {
double wall_seconds()
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

at::Tensor features_on_cpu(const at::Tensor &x, const char *what)
{
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "torch.ops.mlff.", what,
              ": float32/float64 features expected, got ", x.scalar_type());
  return x.detach().to(at::kCPU).contiguous();
}

template <typename S>
void add_rows(double *dst, const int *list, const double *in, int n, int w_doubles)
{
  const int values = static_cast<int>(w_doubles * sizeof(double) / sizeof(S));
  for (int i = 0; i < n; ++i) {
    S *row = reinterpret_cast<S *>(dst + static_cast<size_t>(list[i]) * w_doubles);
    const S *add = reinterpret_cast<const S *>(in + static_cast<size_t>(i) * w_doubles);
    for (int c = 0; c < values; ++c) row[c] += add[c];    // fp32 padding values are 0 + 0
  }
}
}    // namespace

HaloExchange::HaloExchange(LAMMPS *lmp, Pair *pair, const GraphBuilder &graph, int max_width) :
    lmp_(lmp), pair_(pair), graph_(graph), max_width_(max_width)
{
  if (const char *env = std::getenv("MLFF_FAULT_INJECT_OOM_RANK")) fault_rank_ = std::atoi(env);
}

int64_t HaloExchange::width_of(const at::Tensor &x, const char *what) const
{
  if (x.dim() < 1 || x.size(0) != graph_.n_nodes())
    throw std::runtime_error(fmt::format("torch.ops.mlff.{} got a tensor with {} rows, but the "
                                         "graph has {} nodes",
                                         what, x.dim() < 1 ? 0 : x.size(0), graph_.n_nodes()));
  int64_t w = 1;
  for (int64_t d = 1; d < x.dim(); ++d) w *= x.size(d);
  if (w > max_width_)
    throw std::runtime_error(fmt::format("the model exchanges {} values per atom, more than the "
                                         "{} its metadata (halo_widths) declares",
                                         w, max_width_));
  return w;
}

// A row of w values of `elem_bytes` fills ceil(w·elem_bytes / 8) doubles of LAMMPS's buffers.
size_t HaloExchange::stage(size_t elem_bytes, int64_t w)
{
  const size_t row_bytes = static_cast<size_t>(w) * elem_bytes;
  float_ = elem_bytes == sizeof(float);
  width_ = static_cast<int>((row_bytes + sizeof(double) - 1) / sizeof(double));
  return row_bytes;
}

at::Tensor HaloExchange::forward(const at::Tensor &x)
{
  const int64_t w = width_of(x, "halo_exchange");
  ++n_forward;
  Comm *comm = lmp_->comm;
  // Test aid: one rank fails in the middle of the model while the others wait
  // in the exchange; the run must stop with the error, not hang.
  TORCH_CHECK_WITH(OutOfMemoryError, !(fault_rank_ == comm->me && n_forward == 2),
                   "out of memory injected by MLFF_FAULT_INJECT_OOM_RANK=", fault_rank_);
  const int nall = lmp_->atom->nlocal + lmp_->atom->nghost;
  const at::Tensor xc = features_on_cpu(x, "halo_exchange");
  if (w == 0) return xc.clone().view(x.sizes()).to(x.device());
  const size_t row = stage(xc.element_size(), w), stride = width_ * sizeof(double);
  const std::vector<int> &atom_of = graph_.node_atom();
  const int n_local = graph_.n_local_nodes();

  buf_.resize(static_cast<size_t>(nall) * width_);
  char *buf = reinterpret_cast<char *>(buf_.data());
  const char *in = static_cast<const char *>(xc.data_ptr());
  for (int k = 0; k < n_local; ++k) std::memcpy(buf + atom_of[k] * stride, in + k * row, row);
  const double t0 = wall_seconds();
  comm->forward_comm(pair_, width_);
  seconds += wall_seconds() - t0;
  width_ = 0;

  // out: the local rows as they were, then every ghost node's row from its owner
  at::Tensor out = at::empty_like(xc);
  char *o = static_cast<char *>(out.data_ptr());
  std::memcpy(o, in, row * n_local);
  for (size_t k = n_local; k < atom_of.size(); ++k)
    std::memcpy(o + k * row, buf + static_cast<size_t>(atom_of[k]) * stride, row);
  return out.view(x.sizes()).to(x.device());
}

at::Tensor HaloExchange::reverse(const at::Tensor &g)
{
  const int64_t w = width_of(g, "halo_reverse");
  ++n_reverse;
  const int nall = lmp_->atom->nlocal + lmp_->atom->nghost;
  const at::Tensor gc = features_on_cpu(g, "halo_reverse");
  at::Tensor out = at::zeros_like(gc);
  if (w == 0) return out.view(g.sizes()).to(g.device());
  const size_t row = stage(gc.element_size(), w), stride = width_ * sizeof(double);
  const std::vector<int> &atom_of = graph_.node_atom();
  const int n_local = graph_.n_local_nodes();

  buf_.assign(static_cast<size_t>(nall) * width_, 0.0);    // all-zero bits: 0 in fp32 too
  char *buf = reinterpret_cast<char *>(buf_.data());
  const char *in = static_cast<const char *>(gc.data_ptr());
  for (size_t k = 0; k < atom_of.size(); ++k)
    std::memcpy(buf + static_cast<size_t>(atom_of[k]) * stride, in + k * row, row);
  const double t0 = wall_seconds();
  lmp_->comm->reverse_comm(pair_, width_);
  seconds += wall_seconds() - t0;
  width_ = 0;
  char *o = static_cast<char *>(out.data_ptr());
  for (int k = 0; k < n_local; ++k) std::memcpy(o + k * row, buf + atom_of[k] * stride, row);
  return out.view(g.sizes()).to(g.device());
}

int HaloExchange::pack_forward(int n, const int *list, double *buf) const
{
  const int w = width_;
  if (w <= 0) return 0;
  const double *src = buf_.data();
  for (int i = 0; i < n; ++i)
    std::memcpy(buf + static_cast<size_t>(i) * w, src + static_cast<size_t>(list[i]) * w,
                sizeof(double) * w);
  return n * w;
}

void HaloExchange::unpack_forward(int n, int first, const double *buf)
{
  const int w = width_;
  if (w <= 0 || n <= 0) return;
  std::memcpy(buf_.data() + static_cast<size_t>(first) * w, buf, sizeof(double) * static_cast<size_t>(n) * w);
}

int HaloExchange::pack_reverse(int n, int first, double *buf) const
{
  const int w = width_;
  if (w <= 0) return 0;
  if (n > 0)
    std::memcpy(buf, buf_.data() + static_cast<size_t>(first) * w, sizeof(double) * static_cast<size_t>(n) * w);
  return n * w;
}

void HaloExchange::unpack_reverse(int n, const int *list, const double *buf)
{
  const int w = width_;
  if (w <= 0) return;
  if (float_)
    add_rows<float>(buf_.data(), list, buf, n, w);
  else
    add_rows<double>(buf_.data(), list, buf, n, w);
}
