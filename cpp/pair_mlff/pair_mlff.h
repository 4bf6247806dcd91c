// pair_style mlff: machine-learned force fields exported by mlff (TorchScript).
//
//   pair_style mlff
//   pair_coeff * * model.pt El_1 El_2 ... El_ntypes
//
// The model contract (inputs, outputs, metadata) is docs/model_interface.md.
// This header deliberately includes no torch headers: the model lives behind
// the opaque `MLFFModel` so only pair_mlff.cpp pays for compiling libtorch's.
#ifndef MLFF_PAIR_MLFF_H
#define MLFF_PAIR_MLFF_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct MLFFModel;    // torch::jit::Module + parsed metadata (pair_mlff.cpp)

class PairMLFF : public Pair {
 public:
  PairMLFF(class LAMMPS *);
  ~PairMLFF() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  double memory_usage() override;

 protected:
  void allocate();
  void load_model(const std::string &path);
  void check_box() const;
  void build_node_map();

  std::unique_ptr<MLFFModel> model_;
  std::string model_path_;
  double r_max_ = 0.0;
  int n_message_passing_ = 0;
  int nthreads_ = 1;    // torch intra-op threads per rank during model calls

  // LAMMPS type (1..ntypes) -> index into metadata["species"]; [0] unused
  std::vector<int64_t> type2species_;
  std::vector<std::string> type2element_;

  // Graph nodes.  Local atoms are nodes 0..nlocal-1.  A ghost atom is either
  // mapped to its owning local atom (one rank: every ghost is a periodic image
  // of a local atom) or, for strictly local models on several ranks, becomes
  // an extra node after the local ones.  node_of_[j] for every local + ghost
  // atom j; -1 = not a node (ghost never seen as a neighbour).
  bool ghosts_as_nodes_ = false;
  std::vector<int> node_of_;
  int n_nodes_ = 0;
  int node_map_nall_ = -1;    // nlocal + nghost the map was built for

  // Per-step edge buffers, kept between steps to avoid re-allocation.
  std::vector<int64_t> edge_src_, edge_dst_;    // node indices
  std::vector<int> edge_j_;                     // LAMMPS index of the neighbour
  std::vector<double> edge_vec_;                // r_ij = x_j - x_i, 3 per edge
  std::vector<int64_t> node_species_;
  std::vector<int> tag_lookup_;                 // scratch for build_node_map
};

}    // namespace LAMMPS_NS

#endif
