// The model runner of pair_style mlff: loads a deployed mlff model (TorchScript file
// plus metadata.json, docs/model_interface.md), validates its metadata, chooses the
// device, and evaluates it on one graph with the configured threads.
//
// Torch-free header: the module and its output tensors live behind ModelRunner::Impl,
// so only mlff_model.cpp compiles libtorch's headers.  Errors are thrown as
// ModelError with a message for the user; the pair style turns them into
// error->all / error->one with the rank and graph sizes.
#ifndef MLFF_MODEL_H
#define MLFF_MODEL_H

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace mlff {
class HaloExchanger;
}

namespace LAMMPS_NS {
namespace MLFF {

struct ModelError : std::runtime_error {
  ModelError(const std::string &what, bool oom = false) : std::runtime_error(what), out_of_memory(oom) {}
  bool out_of_memory;    // the allocator failed (CPU or CUDA)
};

// What the metadata says (docs/model_interface.md, "Metadata").
struct ModelInfo {
  std::string path, kind, dtype_name, mlff_version, format;
  bool float32 = false;
  std::vector<std::string> species;
  int format_version = 0;
  double r_max = 0.0;
  int n_message_passing = 0;
  bool direct_forces = false;      // outputs {"forces"} instead of atomic_energy/edge_grad
  bool takes_n_local = false;      // format >= 2: forward(..., n_local) sums local energies only
  bool has_halo_widths = false;    // metadata lists the widths of its halo exchanges
  int committee = 0;               // members of a committee file (0: a single model)
  std::vector<int> halo_widths;    // values per atom of each halo_exchange call
  // training_range (absent in files exported before mlff recorded it)
  std::map<std::string, double> pair_min_distance;                         // "A-B" -> Å
  std::map<std::string, std::pair<double, double>> atomic_energy_range;    // species -> [lo, hi] eV
};

class ModelRunner {
 public:
  ModelRunner();
  ~ModelRunner();

  // Load the TorchScript file onto CUDA device `device_index` (-1: CPU).  Throws
  // ModelError if the file is not TorchScript (naming a training checkpoint as such).
  void load(const std::string &path, int device_index);
  // Parse and validate metadata.json of the loaded file; throws ModelError naming the key.
  const ModelInfo &read_metadata();
  const ModelInfo &info() const { return info_; }
  std::string device_name() const;

  // Per-node and per-edge results of one call, in float64 on the host; valid until the
  // next run().  Energy models fill atomic_energy [n_nodes] (eV) and edge_grad [3 n_edges]
  // (dE/dr_ij, eV/Å); direct-force models fill forces [3 n_nodes] (eV/Å).  A committee
  // of N (python/mlff/committee.py) gives their means and member_forces [n_nodes, N, 3]
  // (eV/Å, from this graph's edges), member_atomic_energy [n_nodes, N] (eV, energy
  // models) and member_virial [N, 3, 3] (eV, this graph's edges).
  struct Output {
    const double *atomic_energy = nullptr, *edge_grad = nullptr, *forces = nullptr;
    int64_t n_atomic_energy = 0, n_edge_grad = 0, n_forces = 0;
    const double *member_forces = nullptr, *member_atomic_energy = nullptr, *member_virial = nullptr;
    int64_t n_member_forces = 0, n_member_atomic_energy = 0, n_member_virial = 0;
  };

  // forward(species, edge_index, edge_vec[, n_local]) with `exchanger` installed for the
  // call (nullptr: none) and `nthreads` torch intra-op threads.  Throws ModelError.
  Output run(const std::vector<int64_t> &species, const std::vector<int64_t> &src, const std::vector<int64_t> &dst,
             const std::vector<double> &edge_vec, int64_t n_local, mlff::HaloExchanger *exchanger, int nthreads);

  static bool jit_optimize();    // MLFF_JIT_OPTIMIZE=1: TorchScript's profiling executor on
  static int cuda_device_count();    // 0 without a CUDA build of torch or without devices
  // CUDA device of a rank: node-local rank mod device count (-1: none)
  static int select_device(int node_local_rank, int device_count);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ModelInfo info_;
};

}    // namespace MLFF
}    // namespace LAMMPS_NS

#endif
