// Halo exchange of per-node model features between MPI ranks, through LAMMPS's
// forward/reverse communication (comm->forward_comm / reverse_comm of the pair style).
//
// The model calls torch.ops.mlff.halo_exchange(x) after each message-passing layer
// (docs/model_interface.md); while the model runs, the pair style installs this
// exchanger in libmlff_ops.so (mlff::HaloExchangerScope).
//
// Staging: one row per local + ghost atom in LAMMPS atom order, each the `width`
// feature values in the model's dtype, padded to whole doubles (fp32: two values per
// double, so fp32 models move half the bytes).
//  * forward: the local nodes' rows -> their atoms' rows; forward_comm fills every
//    ghost row from its owner (relayed ghosts included); ghost nodes read theirs back.
//  * reverse (the adjoint): local and ghost-node rows <- gradient rows, other ghost
//    rows 0; reverse_comm adds every ghost row onto its owner's row; the result is the
//    local nodes' rows, ghost-node rows 0.
#ifndef MLFF_HALO_H
#define MLFF_HALO_H

#include "mlff/ops.h"

#include <cstddef>
#include <vector>

namespace LAMMPS_NS {
class LAMMPS;
class Pair;

namespace MLFF {
class GraphBuilder;

class HaloExchange : public mlff::HaloExchanger {
 public:
  // `max_width`: the widest exchange the model declares (metadata halo_widths)
  HaloExchange(LAMMPS *lmp, Pair *pair, const GraphBuilder &graph, int max_width);

  at::Tensor forward(const at::Tensor &x) override;
  at::Tensor reverse(const at::Tensor &g) override;

  // LAMMPS's comm callbacks (the pair style forwards its pack/unpack_*_comm here)
  int pack_forward(int n, const int *list, double *buf) const;
  void unpack_forward(int n, int first, const double *buf);
  int pack_reverse(int n, int first, double *buf) const;
  void unpack_reverse(int n, const int *list, const double *buf);

  void start_call() { n_forward = n_reverse = 0; }
  int n_forward = 0, n_reverse = 0;    // exchanges during the current model call
  double seconds = 0.0;                // time in comm calls since the last reset
  double memory_usage() const { return buf_.capacity() * sizeof(double); }

 private:
  int64_t width_of(const at::Tensor &x, const char *what) const;
  size_t stage(size_t elem_bytes, int64_t w);    // sets width_, float_; returns a row's bytes

  LAMMPS *lmp_;
  Pair *pair_;
  const GraphBuilder &graph_;
  int max_width_;
  int fault_rank_ = -1;    // MLFF_FAULT_INJECT_OOM_RANK (tests)
  std::vector<double> buf_;
  int width_ = 0;          // doubles per row of the exchange in progress (0: none)
  bool float_ = false;     // rows hold float32 values
};

}    // namespace MLFF
}    // namespace LAMMPS_NS

#endif
