// Halo-exchange operators: mlff::halo_exchange and its adjoint mlff::halo_reverse.
// See include/mlff/ops.h for the meaning; the schemas are in registration.cpp.

#include "mlff/ops.h"

#include <torch/autograd.h>
#include <torch/torch.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace mlff {

namespace {

std::atomic<HaloExchanger *> g_exchanger{nullptr};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Forward: refresh ghost rows; backward: the adjoint (halo_reverse), itself
// differentiable, so double backward is exact too.
struct HaloExchangeFn : public torch::autograd::Function<HaloExchangeFn> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &x)
  {
    HaloExchanger *ex = halo_exchanger();
    return ex ? ex->forward(x) : x.clone();
  }
  static variable_list backward(AutogradContext *, variable_list grad)
  {
    return {halo_reverse(grad[0])};
  }
};

struct HaloReverseFn : public torch::autograd::Function<HaloReverseFn> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &g)
  {
    HaloExchanger *ex = halo_exchanger();
    return ex ? ex->reverse(g) : g.clone();
  }
  static variable_list backward(AutogradContext *, variable_list grad)
  {
    return {halo_exchange(grad[0])};
  }
};

// Exchanger defined by an index map, for tests and single-process checks:
// owner[k] is the row that owns row k (owner[k] == k for owned rows).
class OwnerMapExchanger : public HaloExchanger {
 public:
  explicit OwnerMapExchanger(at::Tensor owner) : owner_(std::move(owner)) {}
  at::Tensor forward(const at::Tensor &x) override
  {
    check(x);
    return x.index_select(0, owner_.to(x.device()));
  }
  at::Tensor reverse(const at::Tensor &g) override
  {
    check(g);
    return torch::zeros_like(g).index_add_(0, owner_.to(g.device()), g);
  }

 private:
  void check(const at::Tensor &x) const
  {
    TORCH_CHECK(x.dim() >= 1 && x.size(0) == owner_.size(0), "mlff::halo_exchange: tensor with ",
                x.dim() >= 1 ? x.size(0) : 0, " rows, but the installed owner map has ",
                owner_.size(0), " rows");
  }
  at::Tensor owner_;
};

std::mutex g_owner_map_mutex;
std::unique_ptr<OwnerMapExchanger> g_owner_map;

}    // namespace

HaloExchanger::~HaloExchanger() = default;

HaloExchanger *set_halo_exchanger(HaloExchanger *exchanger)
{
  return g_exchanger.exchange(exchanger);
}

HaloExchanger *halo_exchanger()
{
  return g_exchanger.load();
}

at::Tensor halo_exchange(const at::Tensor &x)
{
  return HaloExchangeFn::apply(x);
}

at::Tensor halo_reverse(const at::Tensor &g)
{
  return HaloReverseFn::apply(g);
}

// ---- test helpers exposed as ops (mlff::halo_set_owner_map / halo_clear) ----

void halo_set_owner_map(const at::Tensor &owner)
{
  TORCH_CHECK(owner.dim() == 1 && owner.scalar_type() == at::kLong,
              "mlff::halo_set_owner_map: owner must be a 1-D int64 tensor");
  const int64_t n = owner.size(0);
  if (n > 0) {
    TORCH_CHECK(owner.min().item<int64_t>() >= 0 && owner.max().item<int64_t>() < n,
                "mlff::halo_set_owner_map: owner indices must lie in [0, ", n, ")");
    TORCH_CHECK(owner.index_select(0, owner).equal(owner),
                "mlff::halo_set_owner_map: an owner must own itself (owner[owner[k]] == owner[k])");
  }
  std::lock_guard<std::mutex> lock(g_owner_map_mutex);
  auto fresh = std::make_unique<OwnerMapExchanger>(owner.clone());
  HaloExchanger *previous = set_halo_exchanger(fresh.get());
  TORCH_CHECK(previous == nullptr || previous == g_owner_map.get(),
              "mlff::halo_set_owner_map: another halo exchanger (LAMMPS?) is installed");
  g_owner_map = std::move(fresh);
}

void halo_clear()
{
  std::lock_guard<std::mutex> lock(g_owner_map_mutex);
  if (g_owner_map && halo_exchanger() == g_owner_map.get()) set_halo_exchanger(nullptr);
  g_owner_map.reset();
}

bool halo_active()
{
  return halo_exchanger() != nullptr;
}

}    // namespace mlff
