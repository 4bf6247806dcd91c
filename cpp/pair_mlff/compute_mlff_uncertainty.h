// compute ID group mlff/uncertainty/atom
//
// The spread of a committee model's members (pair_style mlff with a file from
// mlff-deploy of a committee run), as computed by the pair style at the current step:
//  * per-atom array, 3 columns: [1] force deviation sigma_F = sqrt(sum_c Var_m F_c^m)
//    (eV/Å; DP-GEN's devi_f; the per-atom quantity for dump and variables), [2] the
//    largest per-component standard deviation (eV/Å), [3] the atomic-energy standard
//    deviation (eV; 0 for direct-force models);
//  * global vector, 4 values: max, min and mean of [1] over all atoms the model handles
//    (not only the group), and the total-energy standard deviation per atom (eV/atom).
// E.g. stop when any atom's deviation exceeds 0.3 eV/Å:
//   compute u all mlff/uncertainty/atom
//   variable maxdev equal c_u[1]
//   fix stop all halt 10 v_maxdev > 0.3 error continue
#ifndef MLFF_COMPUTE_UNCERTAINTY_H
#define MLFF_COMPUTE_UNCERTAINTY_H

#include "compute.h"

namespace LAMMPS_NS {
class PairMLFF;

class ComputeMLFFUncertainty : public Compute {
 public:
  ComputeMLFFUncertainty(class LAMMPS *, int, char **);
  ~ComputeMLFFUncertainty() override;
  void init() override;
  void compute_vector() override;
  void compute_peratom() override;
  double memory_usage() override;

 private:
  const PairMLFF *pair() const;
  void check_current() const;
  int nmax_ = 0;
  double **values_ = nullptr;
};

}    // namespace LAMMPS_NS

#endif
