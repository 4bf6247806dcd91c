// Graph of one rank from the LAMMPS neighbour list (mlff_graph.h).

#include "mlff_graph.h"

#include "atom.h"
#include "neigh_list.h"
#include "neighbor.h"

#include <algorithm>
#include <unordered_map>

using namespace LAMMPS_NS;
using namespace LAMMPS_NS::MLFF;

const char *LAMMPS_NS::MLFF::mode_description(Mode mode)
{
  switch (mode) {
    case Mode::OWNER:
      return "owner-mapped (single rank: ghosts are images of local atoms)";
    case Mode::LOCAL:
      return "ghost-node (local model: ghost neighbours are nodes, no exchange)";
    case Mode::HALO:
      return "halo (ghost cutoff r_max, per-layer feature exchange)";
    case Mode::REDUNDANT:
      return "redundant (ghost cutoff n_message_passing*r_max, no exchange)";
    default:
      return "auto";
  }
}

/* ----------------------------------------------------------------------
   node index of every local + ghost atom (rebuilt when neighbour lists are)
------------------------------------------------------------------------- */

void GraphBuilder::build_node_map(const Atom *atom, Mode mode, const std::vector<int64_t> &type2species)
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int *type = atom->type;
  node_of_.assign(nall, -1);
  node_atom_.clear();
  for (int i = 0; i < nlocal; ++i)
    if (type2species[type[i]] >= 0) {
      node_of_[i] = static_cast<int>(node_atom_.size());
      node_atom_.push_back(i);
    }
  n_local_nodes_ = static_cast<int>(node_atom_.size());

  if (mode == Mode::REDUNDANT) {
    // every atom is a node with its own edges
    for (int j = nlocal; j < nall; ++j)
      if (type2species[type[j]] >= 0) {
        node_of_[j] = static_cast<int>(node_atom_.size());
        node_atom_.push_back(j);
      }
  } else if (nall > nlocal && atom->tag_enable) {
    // ghost -> owning local atom's node, through the atom IDs.  OWNER: every ghost is
    // such an image.  LOCAL/HALO: the periodic images of this rank's own atoms are
    // mapped too (exact, as in OWNER mode; the pair then needs no exchange); the other
    // ghosts become ghost nodes per step in build().
    const tagint *tag = atom->tag;
    tagint maxtag = 0;
    for (int i = 0; i < nall; ++i) maxtag = std::max(maxtag, tag[i]);
    if (maxtag <= 4 * static_cast<tagint>(nall) + 1024) {
      tag_lookup_.assign(maxtag + 1, -1);
      for (int i = 0; i < nlocal; ++i) tag_lookup_[tag[i]] = node_of_[i];
      for (int j = nlocal; j < nall; ++j) node_of_[j] = tag_lookup_[tag[j]];
    } else {
      // sparse IDs (e.g. after delete_atoms): hash map instead of a table
      std::unordered_map<tagint, int> lookup;
      lookup.reserve(nlocal);
      for (int i = 0; i < nlocal; ++i) lookup[tag[i]] = node_of_[i];
      for (int j = nlocal; j < nall; ++j) {
        auto it = lookup.find(tag[j]);
        if (it != lookup.end()) node_of_[j] = it->second;
      }
    }
  }
  n_fixed_nodes_ = static_cast<int>(node_atom_.size());
  node_map_nall_ = nall;
}

/* ---------------------------------------------------------------------- */

bool GraphBuilder::build(const Atom *atom, const NeighList *list, Mode mode, double r_max,
                         const std::vector<int64_t> &type2species, bool new_neighbours)
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  if (new_neighbours || node_map_nall_ != nall) build_node_map(atom, mode, type2species);
  unmapped_ = -1;

  // LOCAL/HALO: ghost nodes are the ghosts within r_max of a local atom this step,
  // numbered after the map's nodes in the order the edges reach them
  const bool ghost_nodes_per_step = mode == Mode::LOCAL || mode == Mode::HALO;
  if (ghost_nodes_per_step) {
    for (size_t k = n_fixed_nodes_; k < node_atom_.size(); ++k) node_of_[node_atom_[k]] = -1;
    node_atom_.resize(n_fixed_nodes_);
  }

  double *const *x = atom->x;
  const int *type = atom->type;
  const int ncentres = mode == Mode::REDUNDANT ? list->inum + list->gnum : list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int *const *firstneigh = list->firstneigh;

  const double cutsq = r_max * r_max;
  edge_src_.clear();
  edge_dst_.clear();
  edge_i_.clear();
  edge_j_.clear();
  edge_vec_.clear();
  for (int ii = 0; ii < ncentres; ++ii) {
    const int i = ilist[ii];
    if (type2species[type[i]] < 0) continue;
    const int ni = node_of_[i];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      if (type2species[type[j]] < 0) continue;
      const double dx = x[j][0] - xi;
      const double dy = x[j][1] - yi;
      const double dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq) continue;
      int nj = node_of_[j];
      if (nj < 0) {
        if (!ghost_nodes_per_step) {
          unmapped_ = j;
          continue;
        }
        nj = node_of_[j] = static_cast<int>(node_atom_.size());
        node_atom_.push_back(j);
      }
      edge_src_.push_back(ni);
      edge_dst_.push_back(nj);
      edge_i_.push_back(i);
      edge_j_.push_back(j);
      edge_vec_.push_back(dx);
      edge_vec_.push_back(dy);
      edge_vec_.push_back(dz);
    }
  }

  node_species_.resize(node_atom_.size());
  for (size_t k = 0; k < node_atom_.size(); ++k) node_species_[k] = type2species[type[node_atom_[k]]];
  return unmapped_ < 0;
}

double GraphBuilder::memory_usage() const
{
  double bytes = (edge_src_.capacity() + edge_dst_.capacity() + node_species_.capacity()) * sizeof(int64_t);
  bytes += (edge_i_.capacity() + edge_j_.capacity() + node_of_.capacity() + node_atom_.capacity() +
            tag_lookup_.capacity()) * sizeof(int);
  bytes += edge_vec_.capacity() * sizeof(double);
  return bytes;
}
