// compute mlff/uncertainty/atom (compute_mlff_uncertainty.h).

#include "compute_mlff_uncertainty.h"

#include "pair_mlff.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "update.h"

#include <cstring>

using namespace LAMMPS_NS;

ComputeMLFFUncertainty::ComputeMLFFUncertainty(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  if (narg != 3) error->all(FLERR, "Illegal compute mlff/uncertainty/atom command: expected 'compute ID group "
                                   "mlff/uncertainty/atom' (no further arguments)");
  peratom_flag = 1;
  size_peratom_cols = 3;
  vector_flag = 1;
  size_vector = 4;
  extvector = 0;
  timeflag = 1;
  memory->create(vector, size_vector, "mlff/uncertainty/atom:vector");
}

ComputeMLFFUncertainty::~ComputeMLFFUncertainty()
{
  memory->destroy(values_);
  memory->destroy(vector);
}

const PairMLFF *ComputeMLFFUncertainty::pair() const
{
  auto *p = dynamic_cast<PairMLFF *>(force->pair_match("mlff", 1, 0));
  if (!p)
    error->all(FLERR, "compute mlff/uncertainty/atom needs pair_style mlff (alone or in a hybrid style) with a "
                      "committee model");
  return p;
}

void ComputeMLFFUncertainty::init()
{
  if (!pair()->committee())
    error->all(FLERR, "compute mlff/uncertainty/atom: the pair_style mlff model is not a committee; deploy a "
                      "committee run (mlff train --committee N, then mlff-deploy of its directory)");
}

void ComputeMLFFUncertainty::check_current() const
{
  if (pair()->committee_step() != update->ntimestep)
    error->all(FLERR, "compute mlff/uncertainty/atom: the deviations were computed at step {}, not at the current "
                      "step {} (use it where forces are current: thermo, dump, fix halt, variables at output "
                      "steps)",
               pair()->committee_step(), update->ntimestep);
}

void ComputeMLFFUncertainty::compute_vector()
{
  invoked_vector = update->ntimestep;
  check_current();
  const auto *c = pair()->committee();
  vector[0] = c->force_stats[0];
  vector[1] = c->force_stats[1];
  vector[2] = c->force_stats[2];
  vector[3] = c->energy_per_atom;
}

void ComputeMLFFUncertainty::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  check_current();
  if (atom->nmax > nmax_) {
    memory->destroy(values_);
    nmax_ = atom->nmax;
    memory->create(values_, nmax_, 3, "mlff/uncertainty/atom:values");
    array_atom = values_;
  }
  const auto *c = pair()->committee();
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; ++i) {
    const bool in = mask[i] & groupbit;
    values_[i][0] = in ? c->force_deviation()[i] : 0.0;
    values_[i][1] = in ? c->force_deviation_max()[i] : 0.0;
    values_[i][2] = in ? c->energy_deviation_atom()[i] : 0.0;
  }
}

double ComputeMLFFUncertainty::memory_usage()
{
  return 3.0 * nmax_ * sizeof(double);
}

extern "C" __attribute__((visibility("default"))) LAMMPS_NS::Compute *
mlff_create_compute_uncertainty(LAMMPS_NS::LAMMPS *lmp, int narg, char **arg)
{
  return new LAMMPS_NS::ComputeMLFFUncertainty(lmp, narg, arg);
}
