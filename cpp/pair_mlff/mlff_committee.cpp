// Committee deviations (mlff_committee.h).

#include "mlff_committee.h"

#include "mlff_graph.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

using namespace LAMMPS_NS::MLFF;

void CommitteeDeviation::scatter(const GraphBuilder &graph, const double *mf, int nall, bool only_local)
{
  const int w = width();
  forces_.assign(static_cast<size_t>(nall) * w, 0.0);
  if (!mf) return;
  const std::vector<int> &atom_of = graph.node_atom();
  const int n_nodes = only_local ? graph.n_local_nodes() : graph.n_nodes();
  for (int k = 0; k < n_nodes; ++k) {
    double *row = forces_.data() + static_cast<size_t>(atom_of[k]) * w;
    const double *in = mf + static_cast<size_t>(k) * w;
    for (int c = 0; c < w; ++c) row[c] += in[c];
  }
}

int CommitteeDeviation::pack_reverse(int n, int first, double *buf) const
{
  const int w = width();
  if (n > 0) std::memcpy(buf, forces_.data() + static_cast<size_t>(first) * w, sizeof(double) * size_t(n) * w);
  return n * w;
}

void CommitteeDeviation::unpack_reverse(int n, const int *list, const double *buf)
{
  const int w = width();
  for (int i = 0; i < n; ++i) {
    double *row = forces_.data() + static_cast<size_t>(list[i]) * w;
    const double *add = buf + static_cast<size_t>(i) * w;
    for (int c = 0; c < w; ++c) row[c] += add[c];
  }
}

namespace {
// population variance of x[0], x[stride], ..., x[(n-1) stride]
double variance(const double *x, int n, int stride)
{
  double mean = 0.0;
  for (int m = 0; m < n; ++m) mean += x[m * stride];
  mean /= n;
  double var = 0.0;
  for (int m = 0; m < n; ++m) var += (x[m * stride] - mean) * (x[m * stride] - mean);
  return var / n;
}
}    // namespace

void CommitteeDeviation::reduce(const GraphBuilder &graph, const double *member_forces, int nlocal, int nmax,
                                const double *member_energy, const double *member_virial, MPI_Comm world)
{
  const int n = n_;
  force_dev_.assign(std::max(nmax, nlocal), 0.0);
  force_dev_max_.assign(force_dev_.size(), 0.0);
  energy_dev_.assign(force_dev_.size(), 0.0);

  // forces of the local atoms the model handles
  const std::vector<int> &atom_of = graph.node_atom();
  const int n_local = member_forces ? graph.n_local_nodes() : 0;
  double lo = std::numeric_limits<double>::infinity(), hi = 0.0, sum = 0.0;
  for (int k = 0; k < n_local; ++k) {
    const int i = atom_of[k];
    const double *f = forces_.data() + static_cast<size_t>(i) * 3 * n;
    double total = 0.0, largest = 0.0;
    for (int c = 0; c < 3; ++c) {
      const double var = variance(f + c, n, 3);
      total += var;
      largest = std::max(largest, var);
    }
    force_dev_[i] = unit_ * std::sqrt(total);
    force_dev_max_[i] = unit_ * std::sqrt(largest);
    lo = std::min(lo, force_dev_[i]);
    hi = std::max(hi, force_dev_[i]);
    sum += force_dev_[i];
    if (member_energy) energy_dev_[i] = unit_ * std::sqrt(variance(member_energy + static_cast<size_t>(k) * n, n, 1));
  }

  // global: atoms, sums of member energies and virials over the ranks
  std::vector<double> sums(2 + n + 9 * n, 0.0);
  sums[0] = n_local;
  sums[1] = sum;
  if (member_energy)
    for (int k = 0; k < n_local; ++k)
      for (int m = 0; m < n; ++m) sums[2 + m] += member_energy[static_cast<size_t>(k) * n + m];
  if (member_virial)
    for (int v = 0; v < 9 * n; ++v) sums[2 + n + v] = member_virial[v];
  MPI_Allreduce(MPI_IN_PLACE, sums.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, world);
  MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, world);
  const double natoms = std::max(sums[0], 1.0);
  force_stats[0] = hi;
  force_stats[1] = std::isfinite(lo) ? lo : 0.0;
  force_stats[2] = sums[1] / natoms;
  energy_per_atom = energies_ ? unit_ * std::sqrt(variance(&sums[2], n, 1)) / natoms : 0.0;
  if (energies_) {
    double vlo = std::numeric_limits<double>::infinity(), vhi = 0.0, vsum = 0.0;
    for (int c = 0; c < 9; ++c) {
      const double dev = unit_ * std::sqrt(variance(&sums[2 + n + c], n, 9)) / natoms;
      vlo = std::min(vlo, dev);
      vhi = std::max(vhi, dev);
      vsum += dev;
    }
    virial_stats[0] = vhi, virial_stats[1] = vlo, virial_stats[2] = vsum / 9.0;
  }
}

double CommitteeDeviation::memory_usage() const
{
  return (forces_.capacity() + force_dev_.capacity() + force_dev_max_.capacity() + energy_dev_.capacity()) *
      sizeof(double);
}

void CommitteeDeviation::open_file(const std::string &path)
{
  close_file();
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw std::runtime_error(std::strerror(errno));
  std::fprintf(file_, "#%11s %18s %18s %18s %18s %18s %18s %18s\n", "step", "max_devi_v", "min_devi_v",
               "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e");
}

void CommitteeDeviation::write_line(long long step)
{
  if (!file_) return;
  std::fprintf(file_, "%12lld %18.6e %18.6e %18.6e %18.6e %18.6e %18.6e %18.6e\n", step, virial_stats[0],
               virial_stats[1], virial_stats[2], force_stats[0], force_stats[1], force_stats[2], energy_per_atom);
  std::fflush(file_);
}

void CommitteeDeviation::close_file()
{
  if (file_) std::fclose(file_);
  file_ = nullptr;
}
