// The model's graph of one MPI rank, built from a LAMMPS full neighbour list.
//
// Nodes: first the local atoms the model handles (in LAMMPS index order: without
// NULL types, node k is local atom k), then, depending on the parallel mode
// (README.md, "Parallel modes"), ghost atoms.  Edges i -> j with |x_j - x_i| < r_max;
// edge_vec = x_j - x_i of the actual (ghost) image.
//
//  * OWNER:     an edge to a ghost points at the owning local atom's node;
//  * LOCAL/HALO: each ghost within r_max of a local atom this step is an extra node;
//               periodic images of this rank's own atoms point at those atoms, as in OWNER;
//  * REDUNDANT: every local and ghost atom is a node, and ghosts are centres too
//               (full list including ghosts).
//
// Atoms of LAMMPS types that the model does not handle (species -1: `NULL` in
// pair_coeff) are neither nodes, centres nor neighbours.
//
// Torch-free: only LAMMPS and the standard library.
#ifndef MLFF_GRAPH_H
#define MLFF_GRAPH_H

#include <cstdint>
#include <vector>

namespace LAMMPS_NS {
class Atom;
class NeighList;

namespace MLFF {

// How ghost atoms enter the model's graph.
enum class Mode {
  AUTO,         // pair_style mlff: chosen in init_style
  OWNER,        // one rank: ghosts are mapped to their owning local atom's node
  LOCAL,        // strictly local model: ghost neighbours are extra nodes, no exchange
  HALO,         // message passing: ghost neighbours are nodes, refreshed after each layer
  REDUNDANT,    // message passing: ghosts out to n_mp*r_max are nodes with their own edges
};

const char *mode_description(Mode mode);

class GraphBuilder {
 public:
  // Build this step's graph.  type2species[t] is the model species of LAMMPS type t
  // (-1: not handled by the model).  The node map is rebuilt when `new_neighbours`
  // or the atom count changed.  Returns false (and sets unmapped_atom) if an edge
  // reaches a ghost without a node in OWNER mode.
  bool build(const Atom *atom, const NeighList *list, Mode mode, double r_max,
             const std::vector<int64_t> &type2species, bool new_neighbours);
  void invalidate() { node_map_nall_ = -1; }

  int n_nodes() const { return static_cast<int>(node_atom_.size()); }
  int n_local_nodes() const { return n_local_nodes_; }
  // LAMMPS index of each node (local nodes first, then ghost nodes)
  const std::vector<int> &node_atom() const { return node_atom_; }
  const std::vector<int64_t> &node_species() const { return node_species_; }

  int64_t n_edges() const { return static_cast<int64_t>(edge_src_.size()); }
  const std::vector<int64_t> &edge_src() const { return edge_src_; }    // centre node
  const std::vector<int64_t> &edge_dst() const { return edge_dst_; }    // neighbour node
  const std::vector<int> &edge_i() const { return edge_i_; }            // LAMMPS index of the centre
  const std::vector<int> &edge_j() const { return edge_j_; }            // LAMMPS index of the neighbour
  const std::vector<double> &edge_vec() const { return edge_vec_; }     // r_ij, 3 per edge (Å)

  int unmapped_atom() const { return unmapped_; }
  double memory_usage() const;

 private:
  void build_node_map(const Atom *atom, Mode mode, const std::vector<int64_t> &type2species);

  std::vector<int> node_of_;      // node of every local + ghost atom; -1 = not a node
  std::vector<int> node_atom_;    // inverse of node_of_
  std::vector<int> tag_lookup_;
  int n_local_nodes_ = 0;
  int n_fixed_nodes_ = 0;         // nodes of the map (before this step's ghost nodes)
  int node_map_nall_ = -1;        // nlocal + nghost the map was built for
  int unmapped_ = -1;

  // kept between steps to avoid re-allocation
  std::vector<int64_t> edge_src_, edge_dst_;
  std::vector<int> edge_i_, edge_j_;
  std::vector<double> edge_vec_;
  std::vector<int64_t> node_species_;
};

}    // namespace MLFF
}    // namespace LAMMPS_NS

#endif
