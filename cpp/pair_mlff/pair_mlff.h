// pair_style mlff: machine-learned force fields exported by mlff (TorchScript).
//
//   pair_style mlff [halo|redundant]
//   pair_coeff * * model.pt El_1 El_2 ... El_ntypes
//
// The model contract (inputs, outputs, metadata) is docs/model_interface.md; the
// parallel modes are described in README.md next to this file.
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

struct MLFFModel;            // torch::jit::Module + parsed metadata (pair_mlff.cpp)
struct MLFFHaloExchanger;    // forward/reverse halo exchange through comm (pair_mlff.cpp)

class PairMLFF : public Pair {
  friend struct MLFFHaloExchanger;

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

  // How ghost atoms enter the model's graph (README.md, "Parallel modes").
  enum class Mode {
    AUTO,         // pair_style mlff: chosen in init_style
    OWNER,        // one rank: ghosts are mapped to their owning local atom's node
    LOCAL,        // strictly local model: ghost neighbours are extra nodes, no exchange
    HALO,         // message passing: ghost neighbours are nodes, refreshed after each layer
    REDUNDANT,    // message passing: ghosts out to n_mp*r_max are nodes with their own edges
  };

 protected:
  void allocate();
  void load_model(const std::string &path);
  void select_device();
  void choose_mode();
  void check_box() const;
  void build_node_map();

  std::unique_ptr<MLFFModel> model_;
  std::string model_path_;
  double r_max_ = 0.0;
  int n_message_passing_ = 0;
  int nthreads_ = 1;    // torch intra-op threads per rank during model calls

  Mode requested_mode_ = Mode::AUTO;
  Mode mode_ = Mode::AUTO;

  // LAMMPS type (1..ntypes) -> index into metadata["species"]; [0] unused
  std::vector<int64_t> type2species_;
  std::vector<std::string> type2element_;

  // Graph nodes.  Local atoms are nodes 0..nlocal-1 in every mode.
  //  OWNER:     an edge to a ghost points at the owning local atom's node;
  //  LOCAL/HALO: each ghost within r_max of a local atom this step is an extra
  //             node (ghost_node_atoms_[k] = LAMMPS index of node nlocal + k);
  //  REDUNDANT: node index = LAMMPS index for all nlocal + nghost atoms.
  // node_of_[j] for every local + ghost atom j; -1 = not a node.
  std::vector<int> node_of_;
  std::vector<int> ghost_node_atoms_;
  int n_nodes_ = 0;
  int node_map_nall_ = -1;    // nlocal + nghost the map was built for

  // Per-step edge buffers, kept between steps to avoid re-allocation.
  std::vector<int64_t> edge_src_, edge_dst_;    // node indices
  std::vector<int> edge_j_;                     // LAMMPS index of the neighbour
  std::vector<double> edge_vec_;                // r_ij = x_j - x_i, 3 per edge
  std::vector<int64_t> node_species_;
  std::vector<int> tag_lookup_;                 // scratch for build_node_map

  // Halo exchange: staging buffer of nlocal + nghost rows x halo_width_ doubles,
  // the buffer pack/unpack_*_comm read and write.  A row holds the features in the
  // model's dtype (halo_float_: float32, two per double), padded to whole doubles.
  std::vector<double> halo_buf_;
  int halo_width_ = 0;
  bool halo_float_ = false;
  size_t halo_stage(size_t elem_bytes, int64_t w);    // sets both above; returns the row's bytes
  int max_halo_width_ = 0;           // comm_forward = comm_reverse
  int n_halo_forward_ = 0;           // exchanges during the current model call
  int n_halo_reverse_ = 0;
  int fault_rank_ = -1;              // MLFF_FAULT_INJECT_OOM_RANK (tests)
  double saved_cutghostuser_ = -1.0; // user's comm cutoff before redundant mode raised it

  // Timing since the last finish(): seconds, summed over steps (per rank).
  double t_graph_ = 0.0, t_model_ = 0.0, t_halo_ = 0.0, t_forces_ = 0.0;
  double sum_nodes_ = 0.0, sum_edges_ = 0.0, sum_local_ = 0.0;
  long n_calls_ = 0;

  // Device (GPU per rank): node-local rank / size from LAMMPS's world split by node.
  int node_rank_ = 0, node_size_ = 1;
  int device_index_ = -1;    // CUDA device, -1 = CPU
};

}    // namespace LAMMPS_NS

#endif
