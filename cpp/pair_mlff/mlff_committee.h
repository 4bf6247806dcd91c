// Committee deviations in pair_style mlff (python/mlff/committee.py has the
// definitions): per local atom the spread of the members' forces, sigma_F,i =
// sqrt(sum_c Var_m F_ic^m) (eV/Å, DP-GEN's devi_f) and max_c sqrt(Var_m F_ic^m), and
// of their atomic energies; per step the maximum, minimum and mean of sigma_F over
// the atoms, the spread of the total energy per atom, and of the virial per atom
// (max/min/mean over its 9 components, DP-GEN's devi_v).  Population variances.
//
// The members' forces come per graph node from the model (this rank's edges only);
// scatter() puts them on LAMMPS atoms, and the pair style sums the ghost rows onto
// their owners with comm->reverse_comm (pack_reverse/unpack_reverse below) before
// reduce().  Torch-free.
#ifndef MLFF_COMMITTEE_H
#define MLFF_COMMITTEE_H

#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace LAMMPS_NS {
namespace MLFF {

class GraphBuilder;

class CommitteeDeviation {
 public:
  void configure(int n_members, bool energies) { n_ = n_members, energies_ = energies; }
  // results in LAMMPS units: forces, energies and virials times `unit` (eV -> kcal/mol in real)
  void set_energy_unit(double unit) { unit_ = unit; }
  int n_members() const { return n_; }
  int width() const { return 3 * n_; }    // values per atom of the reverse sum

  // member_forces [n_nodes, N, 3]; only_local: drop ghost rows (direct-force members).
  // A rank that did not call the model (no local atoms) passes null: all rows 0.
  void scatter(const GraphBuilder &graph, const double *member_forces, int nall, bool only_local);
  int pack_reverse(int n, int first, double *buf) const;
  void unpack_reverse(int n, const int *list, const double *buf);
  // per-atom deviations of the local atoms and the global reductions over `world`
  // (collective); member_atomic_energy [n_nodes, N] and member_virial [N, 9] are null for
  // direct-force members, and everything is null on a rank that did not call the model
  void reduce(const GraphBuilder &graph, const double *member_forces, int nlocal, int nmax,
              const double *member_atomic_energy, const double *member_virial, MPI_Comm world);

  // per local atom (index = LAMMPS local index; 0 for atoms the model does not handle)
  const double *force_deviation() const { return force_dev_.data(); }
  const double *force_deviation_max() const { return force_dev_max_.data(); }
  const double *energy_deviation_atom() const { return energy_dev_.data(); }
  // over all atoms: [max, min, mean] of force_deviation (eV/Å), energy deviation per atom
  // (eV/atom), [max, min, mean] of the virial deviation per atom (eV)
  double force_stats[3] = {0, 0, 0};
  double energy_per_atom = 0.0;
  double virial_stats[3] = {0, 0, 0};
  double memory_usage() const;

  // DP-GEN-style model-deviation file (as DeePMD-kit's model_devi.out)
  void open_file(const std::string &path);    // rank 0 only; throws std::runtime_error
  void write_line(long long step);
  void close_file();

 private:
  int n_ = 0;
  bool energies_ = true;
  double unit_ = 1.0;
  std::vector<double> forces_;    // [nall, N, 3]
  std::vector<double> force_dev_, force_dev_max_, energy_dev_;
  FILE *file_ = nullptr;
};

}    // namespace MLFF
}    // namespace LAMMPS_NS

#endif
