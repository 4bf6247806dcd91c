// Halo-exchange operators: mlff::halo_exchange and its adjoint mlff::halo_reverse.
// See include/mlff/ops.h for the meaning; the schemas are in registration.cpp.

#include "mlff/ops.h"

#include <torch/autograd.h>
#include <torch/torch.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

namespace mlff {

namespace {

std::atomic<HaloExchanger *> g_exchanger{nullptr};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The raw exchanges (what the backend kernels run).
at::Tensor exchange_forward(const at::Tensor &x)
{
  HaloExchanger *ex = halo_exchanger();
  return ex ? ex->forward(x) : x.clone();
}

at::Tensor exchange_reverse(const at::Tensor &g)
{
  HaloExchanger *ex = halo_exchanger();
  return ex ? ex->reverse(g) : g.clone();
}

// The operators through the dispatcher, so that tracing (torch.export, make_fx) records
// them as calls instead of running them: TorchScript models, Python and AOTInductor
// packages all reach the exchanger through these.
at::Tensor call_op(const char *name, const at::Tensor &x)
{
  static const auto exchange = c10::Dispatcher::singleton()
                                   .findSchemaOrThrow("mlff::halo_exchange", "")
                                   .typed<at::Tensor(const at::Tensor &)>();
  static const auto reverse = c10::Dispatcher::singleton()
                                  .findSchemaOrThrow("mlff::halo_reverse", "")
                                  .typed<at::Tensor(const at::Tensor &)>();
  return std::strcmp(name, "halo_exchange") == 0 ? exchange.call(x) : reverse.call(x);
}

// Autograd: each operator's backward is the other (the adjoint), itself differentiable,
// so every derivative order is exact.  The forward redispatches below autograd.
struct HaloExchangeFn : public torch::autograd::Function<HaloExchangeFn> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &x)
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_op("halo_exchange", x);
  }
  static variable_list backward(AutogradContext *, variable_list grad)
  {
    return {call_op("halo_reverse", grad[0])};
  }
};

struct HaloReverseFn : public torch::autograd::Function<HaloReverseFn> {
  static at::Tensor forward(AutogradContext *, const at::Tensor &g)
  {
    at::AutoDispatchBelowADInplaceOrView guard;
    return call_op("halo_reverse", g);
  }
  static variable_list backward(AutogradContext *, variable_list grad)
  {
    return {call_op("halo_exchange", grad[0])};
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
  return call_op("halo_exchange", x);
}

at::Tensor halo_reverse(const at::Tensor &g)
{
  return call_op("halo_reverse", g);
}

// kernels registered in registration.cpp
at::Tensor halo_exchange_autograd(const at::Tensor &x)
{
  return HaloExchangeFn::apply(x);
}
at::Tensor halo_reverse_autograd(const at::Tensor &g)
{
  return HaloReverseFn::apply(g);
}
at::Tensor halo_exchange_kernel(const at::Tensor &x)
{
  return exchange_forward(x);
}
at::Tensor halo_reverse_kernel(const at::Tensor &g)
{
  return exchange_reverse(g);
}
at::Tensor halo_meta(const at::Tensor &x)
{
  return at::empty_like(x);
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
