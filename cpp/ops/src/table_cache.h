// Tables derived from a model's small constant tensors (the tensor products' path and
// Clebsch–Gordan tables), memoised per source tensor.  Without it every operator call
// re-reads, re-validates and (on a GPU) re-uploads them, and on a GPU each re-read is a
// device-to-host copy, i.e. a synchronisation: several per call.
//
// A key is, per source tensor, its data address, shape, strides, dtype, device and version
// counter (bumped by every in-place write, e.g. load_state_dict), plus integers the derived
// value depends on.  An entry holds its source tensors, so no other tensor can reuse a
// cached address while the entry lives, and an edited table misses.  Inference tensors keep
// no version counter: a small one on the CPU (an AOTInductor package's constants, which it
// passes as inference tensors when run in inference mode) is keyed by its contents instead,
// any other is never cached.  The least recently used entry is dropped once `capacity`
// entries exist.
#ifndef MLFF_TABLE_CACHE_H
#define MLFF_TABLE_CACHE_H

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace mlff {

template <class V>
class TableCache {
 public:
  explicit TableCache(size_t capacity = 64) : capacity_(capacity) {}

  // The value built by build() from `sources` (and `ints`), or the cached one.  Exceptions
  // from build() propagate and cache nothing.
  template <class Build>
  std::shared_ptr<const V> get(const std::vector<at::Tensor> &sources, const std::vector<int64_t> &ints, Build build)
  {
    std::vector<int64_t> key = ints;
    for (const at::Tensor &t : sources)
      if (!append_key(key, t)) return std::make_shared<const V>(build());
    const std::lock_guard<std::mutex> lock(mutex_);
    ++clock_;
    for (Entry &e : entries_)
      if (e.key == key) {
        e.last_use = clock_;
        return e.value;
      }
    auto value = std::make_shared<const V>(build());
    if (entries_.size() >= capacity_) {
      size_t oldest = 0;
      for (size_t i = 1; i < entries_.size(); ++i)
        if (entries_[i].last_use < entries_[oldest].last_use) oldest = i;
      entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(oldest));
    }
    entries_.push_back({std::move(key), sources, value, clock_});
    return value;
  }

 private:
  struct Entry {
    std::vector<int64_t> key;
    std::vector<at::Tensor> sources;    // kept alive: their addresses stay theirs
    std::shared_ptr<const V> value;
    uint64_t last_use;
  };

  // false: the tensor cannot be keyed (an inference tensor on a GPU or a large one)
  static bool append_key(std::vector<int64_t> &key, const at::Tensor &t)
  {
    if (!t.defined()) {
      key.push_back(-1);
      return true;
    }
    if (t.is_inference()) {
      if (!t.is_cpu() || t.numel() > kMaxContentKey) return false;
      const at::Tensor c = t.contiguous();
      const size_t bytes = static_cast<size_t>(c.numel()) * c.element_size();
      key.insert(key.end(), {-2, c.dim(), static_cast<int64_t>(c.scalar_type())});
      key.insert(key.end(), c.sizes().begin(), c.sizes().end());
      const size_t start = key.size();
      key.resize(start + (bytes + sizeof(int64_t) - 1) / sizeof(int64_t), 0);
      std::memcpy(key.data() + start, c.data_ptr(), bytes);
      return true;
    }
    key.insert(key.end(), {static_cast<int64_t>(reinterpret_cast<intptr_t>(t.data_ptr())), t.dim(),
                           static_cast<int64_t>(t.scalar_type()), static_cast<int64_t>(t.device().type()),
                           t.device().index(), static_cast<int64_t>(t._version())});
    key.insert(key.end(), t.sizes().begin(), t.sizes().end());
    key.insert(key.end(), t.strides().begin(), t.strides().end());
    return true;
  }

  static constexpr int64_t kMaxContentKey = 1 << 16;    // elements: tables, not feature arrays

  size_t capacity_;
  std::mutex mutex_;
  uint64_t clock_ = 0;
  std::vector<Entry> entries_;
};

}    // namespace mlff

#endif
