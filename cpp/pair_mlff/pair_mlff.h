// pair_style mlff: machine-learned force fields exported by mlff (TorchScript).
//
//   pair_style mlff [halo|redundant] [extrapolation warn|error|off] [tolerance D]
//                   [devi FILE [every N]]
//   pair_coeff * * model.pt El_1 El_2 ... El_ntypes   (NULL: a type left to other styles;
//                                                    no elements: taken from type labels)
//
// The model contract (inputs, outputs, metadata) is docs/model_interface.md; the
// parallel modes are described in README.md next to this file.  The parts:
//   pair_mlff.*   this class: the LAMMPS-facing side (settings, coeff, init_style,
//                 compute, comm callbacks), as in LAMMPS's own pair styles;
//   mlff_graph.*  neighbour list -> nodes and edges, for each parallel mode;
//   mlff_model.*  loading the model, its metadata, device, threads, the call itself;
//   mlff_halo.*   the per-layer halo exchange through LAMMPS communication;
//   mlff_extrapolation.*  the training-range checks (warnings, same-position atoms);
//   mlff_committee.*  deviations of a committee file's members (and the devi file);
//   compute_mlff_uncertainty.*  compute mlff/uncertainty/atom, which reads them.
// This header includes no torch headers: only the model runner compiles libtorch's.
#ifndef MLFF_PAIR_MLFF_H
#define MLFF_PAIR_MLFF_H

#include "pair.h"

#include "mlff_committee.h"
#include "mlff_extrapolation.h"
#include "mlff_graph.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {
namespace MLFF {
class ModelRunner;
class HaloExchange;
}    // namespace MLFF

class PairMLFF : public Pair {
 public:
  PairMLFF(class LAMMPS *);
  ~PairMLFF() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  void finish() override;    // per-run timing summary
  double memory_usage() override;

  // halo exchange of per-atom model features (comm->forward_comm/reverse_comm(this, width))
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

  using Mode = MLFF::Mode;

  // committee deviations of the last step (compute mlff/uncertainty/atom); null
  // when the model is not a committee
  const MLFF::CommitteeDeviation *committee() const { return committee_on_ ? &committee_ : nullptr; }
  bigint committee_step() const { return committee_step_; }

 protected:
  void allocate();
  void load_model(const std::string &path);
  void select_device();
  void choose_mode();
  void check_box() const;
  [[noreturn]] void model_call_failed(const std::string &what, bool out_of_memory);
  void check_same_position(const MLFF::Excursion &ex);
  void check_finite(const double *values, int64_t n, const char *what);
  void report_excursion(const MLFF::Excursion &ex);
  void committee_deviations(const double *member_forces, const double *member_atomic_energy,
                            const double *member_virial);
  void apply_direct_forces(const double *forces, int64_t n);
  void apply_energies_and_gradients(const double *atomic_energy, int64_t n_energy, const double *edge_grad,
                                    int64_t n_grad);

  std::unique_ptr<MLFF::ModelRunner> model_;
  std::unique_ptr<MLFF::HaloExchange> halo_;
  MLFF::GraphBuilder graph_;
  std::string model_path_;
  double r_max_ = 0.0;
  int n_message_passing_ = 0;
  int nthreads_ = 1;    // torch intra-op threads per rank during model calls
  double energy_unit_ = 1.0;    // model eV -> LAMMPS energy unit (metal 1, real 23.06 kcal/mol)

  Mode requested_mode_ = Mode::AUTO;
  Mode mode_ = Mode::AUTO;

  // LAMMPS type (1..ntypes) -> index into metadata["species"]; [0] unused
  std::vector<int64_t> type2species_;
  std::vector<std::string> type2element_;

  // Training-range checks (mlff_extrapolation.h): warn (the first max_warnings steps,
  // then a count in finish()), error, or off.
  enum class Extrapolation { WARN, ERROR, OFF };
  Extrapolation extrapolation_ = Extrapolation::WARN;
  double extrapolation_tolerance_ = 0.1;    // Å below the training minimum
  static constexpr double ENERGY_FRACTION = 0.1;
  static constexpr int MAX_WARNINGS = 10;
  MLFF::ExtrapolationMonitor monitor_;
  long steps_outside_ = 0, pairs_outside_ = 0, energies_outside_ = 0;
  bigint first_step_outside_ = -1, worst_step_ = -1;
  double worst_excess_ = 0.0, worst_distance_ = 0.0;
  int worst_pair_ = -1;

  // committee files: per-atom deviations every step, the devi file every devi_every_ steps
  MLFF::CommitteeDeviation committee_;
  bool committee_on_ = false;
  bigint committee_step_ = -1;
  std::string devi_path_;
  bigint devi_every_ = 1;
  bool reverse_committee_ = false;    // the reverse comm in progress carries committee forces

  int max_halo_width_ = 0;              // comm_forward
  double saved_cutghostuser_ = -1.0;    // user's comm cutoff before redundant mode raised it

  // Timing since the last finish(): seconds, summed over steps (per rank).
  double t_graph_ = 0.0, t_model_ = 0.0, t_forces_ = 0.0;
  double sum_nodes_ = 0.0, sum_edges_ = 0.0, sum_local_ = 0.0;
  long n_calls_ = 0;

  // Device (GPU per rank): node-local rank / size from LAMMPS's world split by node.
  int node_rank_ = 0, node_size_ = 1;
  int device_index_ = -1;    // CUDA device, -1 = CPU
};

}    // namespace LAMMPS_NS

#endif
