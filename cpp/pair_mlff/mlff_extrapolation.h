// Is the structure inside what the model was trained on?  (python/mlff/extrapolation.py
// is the same rule for the ASE calculator.)
//
// The deployed model's metadata training_range records, per species pair, the shortest
// distance seen in training within r_max, and per species the range of atomic
// energies.  Per step this class checks the graph's edges (a pair closer than its
// training minimum by more than `tolerance` Å; a pair of species never seen within
// r_max counts as having the minimum r_max) and the local atoms' energies (outside
// [lo - f (hi - lo), hi + f (hi - lo)], f = energy_fraction).  It also finds pairs at
// the same position (closer than same_position Å), which are an error, not a warning.
//
// Torch-free; the pair style reduces the per-rank counts over MPI and reports them.
#ifndef MLFF_EXTRAPOLATION_H
#define MLFF_EXTRAPOLATION_H

#include <cstdint>
#include <string>
#include <vector>

namespace LAMMPS_NS {
namespace MLFF {

class GraphBuilder;
struct ModelInfo;

struct Excursion {
  long n_pairs = 0;              // edges i<j (each pair once, by LAMMPS index) closer than allowed
  double worst_excess = 0.0;     // largest (training minimum - distance), Å
  int worst_pair = -1;           // species a * n_species + b of that pair
  double worst_distance = 0.0;   // its distance, Å
  long n_energies = 0;           // local atoms with energies outside the range
  int same_i = -1, same_j = -1;  // LAMMPS indices of a pair at the same position (-1: none)
  double same_distance = 0.0;
};

class ExtrapolationMonitor {
 public:
  static constexpr double SAME_POSITION = 0.01;    // Å

  void configure(const ModelInfo &info, double tolerance, double energy_fraction);
  bool has_range() const { return has_distances_ || has_energies_; }
  // pair distances (before the model call)
  Excursion check_edges(const GraphBuilder &graph) const;
  // local atomic energies (after the call), added to `ex`
  void check_energies(const GraphBuilder &graph, const double *atomic_energy, Excursion &ex) const;
  std::string pair_name(int pair) const;
  double min_distance(int pair) const { return min_distance_[pair]; }

 private:
  std::vector<std::string> species_;
  std::vector<double> min_distance_;    // [a * n + b], Å
  std::vector<double> limit_sq_;        // (min_distance - tolerance)^2, Å^2
  std::vector<double> energy_lo_, energy_hi_;
  bool has_distances_ = false, has_energies_ = false;
};

}    // namespace MLFF
}    // namespace LAMMPS_NS

#endif
