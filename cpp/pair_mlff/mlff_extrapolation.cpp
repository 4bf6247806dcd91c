// Training-range checks of one rank's graph (mlff_extrapolation.h).

#include "mlff_extrapolation.h"

#include "mlff_graph.h"
#include "mlff_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace LAMMPS_NS::MLFF;

void ExtrapolationMonitor::configure(const ModelInfo &info, double tolerance, double energy_fraction)
{
  species_ = info.species;
  const size_t n = species_.size();
  auto index = [&](const std::string &s) {
    return static_cast<int>(std::find(species_.begin(), species_.end(), s) - species_.begin());
  };
  min_distance_.assign(n * n, info.r_max);
  has_distances_ = !info.pair_min_distance.empty();
  for (const auto &[key, d] : info.pair_min_distance) {
    const auto dash = key.find('-');
    const int a = index(key.substr(0, dash)), b = index(key.substr(dash + 1));
    if (dash == std::string::npos || a >= static_cast<int>(n) || b >= static_cast<int>(n)) continue;
    min_distance_[a * n + b] = min_distance_[b * n + a] = d;
  }
  limit_sq_.resize(n * n);
  for (size_t k = 0; k < n * n; ++k) {
    const double limit = std::max(0.0, min_distance_[k] - tolerance);
    limit_sq_[k] = limit * limit;
  }
  energy_lo_.assign(n, -std::numeric_limits<double>::infinity());
  energy_hi_.assign(n, std::numeric_limits<double>::infinity());
  has_energies_ = !info.atomic_energy_range.empty();
  for (const auto &[s, range] : info.atomic_energy_range) {
    const int a = index(s);
    if (a >= static_cast<int>(n)) continue;
    const double pad = energy_fraction * (range.second - range.first);
    energy_lo_[a] = range.first - pad;
    energy_hi_[a] = range.second + pad;
  }
}

Excursion ExtrapolationMonitor::check_edges(const GraphBuilder &graph) const
{
  Excursion ex;
  const int64_t n = static_cast<int64_t>(species_.size());
  const auto &src = graph.edge_src();
  const auto &dst = graph.edge_dst();
  const auto &ei = graph.edge_i();
  const auto &ej = graph.edge_j();
  const auto &sp = graph.node_species();
  const double *r = graph.edge_vec().data();
  const double same_sq = SAME_POSITION * SAME_POSITION;
  for (int64_t k = 0; k < graph.n_edges(); ++k) {
    if (ei[k] > ej[k]) continue;    // each pair once (its other direction, if any, is the same distance)
    const double rsq = r[3 * k] * r[3 * k] + r[3 * k + 1] * r[3 * k + 1] + r[3 * k + 2] * r[3 * k + 2];
    const int pair = static_cast<int>(sp[src[k]] * n + sp[dst[k]]);
    if (rsq < same_sq && ex.same_i < 0) {
      ex.same_i = ei[k];
      ex.same_j = ej[k];
      ex.same_distance = std::sqrt(rsq);
    }
    if (has_distances_ && rsq < limit_sq_[pair]) {
      ++ex.n_pairs;
      const double d = std::sqrt(rsq), excess = min_distance_[pair] - d;
      if (excess > ex.worst_excess) {
        ex.worst_excess = excess;
        ex.worst_pair = pair;
        ex.worst_distance = d;
      }
    }
  }
  return ex;
}

void ExtrapolationMonitor::check_energies(const GraphBuilder &graph, const double *e, Excursion &ex) const
{
  if (!has_energies_ || !e) return;
  const auto &sp = graph.node_species();
  for (int k = 0; k < graph.n_local_nodes(); ++k)
    if (e[k] < energy_lo_[sp[k]] || e[k] > energy_hi_[sp[k]]) ++ex.n_energies;
}

std::string ExtrapolationMonitor::pair_name(int pair) const
{
  const int n = static_cast<int>(species_.size());
  if (pair < 0 || pair >= n * n) return "?";
  const int a = std::min(pair / n, pair % n), b = std::max(pair / n, pair % n);
  return species_[a] + "-" + species_[b];
}
