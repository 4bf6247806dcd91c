// pair_style mlff: evaluates an mlff deployed TorchScript model inside LAMMPS.
//
// Model contract: docs/model_interface.md.  Per step the plugin builds the graph
// of the local atoms (edges i -> j with |x_j - x_i| < r_max from a full neighbour
// list), calls forward(species, edge_index, edge_vec) and turns the returned
// per-node energies and per-edge gradients dE/dr_ij into forces, energy and
// virial:  f_i += g_ij, f_j -= g_ij, W -= r_ij (x) g_ij.
//
// Parallel modes (chosen in init_style):
//  * one MPI rank ("owner" mode): every ghost atom is a periodic image of a local
//    atom; an edge to a ghost points at the owning local atom's node, with the
//    image's true r_ij.  Exact for any number of message-passing layers.
//  * several ranks, strictly local model (n_message_passing <= 1, "ghost-node"
//    mode): ghost neighbours become extra nodes after the local ones; their
//    energies are not counted, the forces on them go home through LAMMPS's
//    reverse communication (newton on).
//  * several ranks and a message-passing model: needs a per-layer halo exchange,
//    not implemented yet -> clean error.
//
// Threads: libtorch's intra-op threads per MPI rank = MLFF_NUM_THREADS if set,
// else OMP_NUM_THREADS if set, else 1 -- the same default LAMMPS uses for its
// own OpenMP threads.  Parallelise over MPI ranks first: for the graph sizes of
// one rank, extra torch threads gain little, and OpenMP threads that spin at
// barriers collapse when the cores are oversubscribed (measured: 2 threads on a
// busy 2-core machine were 20x slower than 1).

#include "pair_mlff.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "json.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>
#include <sstream>
#include <unordered_map>

using namespace LAMMPS_NS;

namespace LAMMPS_NS {

struct MLFFModel {
  torch::jit::Module module;
  json metadata;
  std::string kind;
  std::string dtype_name;
  torch::ScalarType dtype = torch::kFloat64;
  std::vector<std::string> species;
  int format_version = 0;
  std::string mlff_version;
  bool direct_forces = false;    // outputs {"forces"} instead of atomic_energy/edge_grad
};

}    // namespace LAMMPS_NS

namespace {

// First line of a (possibly multi-line, backtrace-carrying) exception text.
std::string first_lines(const std::string &text, int nlines = 3)
{
  std::istringstream in(text);
  std::string line, out;
  int n = 0;
  while (n < nlines && std::getline(in, line)) {
    line = utils::trim(line);
    if (line.empty()) continue;
    if (!out.empty()) out += " | ";
    out += line;
    ++n;
  }
  return out.empty() ? std::string("(no message)") : out;
}

std::string exception_text(const std::exception &e)
{
  if (auto *ce = dynamic_cast<const c10::Error *>(&e)) return first_lines(ce->what_without_backtrace());
  return first_lines(e.what());
}

// TorchScript's profiling graph executor specialises the graph on input shapes.
// In MD the edge count changes nearly every step, and on CPU (no fuser) the
// re-specialisation costs more than it gains: measured CPU time per step with
// the optimising executor vs plain interpretation: toluene SchNet 64x3 fp64
// 1.7 vs 1.3 ms, fp32 1.1 vs 0.86 ms; 864 Cu atoms 323 vs 200 ms.  So the model
// runs unoptimised unless MLFF_JIT_OPTIMIZE=1.  The setting is thread-local
// and is restored after each call, so an embedding Python process keeps its own.
bool jit_optimize()
{
  static const bool on = [] {
    const char *env = std::getenv("MLFF_JIT_OPTIMIZE");
    return env && *env && std::strcmp(env, "0") != 0;
  }();
  return on;
}

// torch's intra-op thread count for the duration of one model call (restored
// afterwards: it is process-wide, and an embedding Python process keeps its own)
struct ThreadsGuard {
  int previous;
  explicit ThreadsGuard(int n) : previous(at::get_num_threads())
  {
    if (n != previous) at::set_num_threads(n);
  }
  ~ThreadsGuard()
  {
    if (at::get_num_threads() != previous) at::set_num_threads(previous);
  }
};

struct JitOptimizeGuard {
  bool previous;
  explicit JitOptimizeGuard(bool on) : previous(torch::jit::getGraphExecutorOptimize())
  {
    torch::jit::setGraphExecutorOptimize(on);
  }
  ~JitOptimizeGuard() { torch::jit::setGraphExecutorOptimize(previous); }
};

std::string join(const std::vector<std::string> &v, const std::string &sep = " ")
{
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMLFF::PairMLFF(LAMMPS *lmp) : Pair(lmp)
{
  // libtorch allocates and frees its activation tensors on every call.  With
  // glibc's default heuristics large blocks are mmap()ed and the heap top is
  // trimmed, so steps pay page faults for fresh pages.  Keep such blocks in the
  // heap instead (process-wide setting; measured ~7% faster toluene steps;
  // MLFF_NO_MALLOPT=1 leaves glibc's defaults).
  static bool malloc_tuned = false;
  if (!malloc_tuned) {
    malloc_tuned = true;
    const char *env = std::getenv("MLFF_NO_MALLOPT");
    if (!(env && *env && strcmp(env, "0") != 0)) {
      mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
      mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
    }
  }

  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // virial comes from the edge gradients
  // Per-atom virial is the half/half split of -r_ij (x) g_ij; a centroid
  // (heat-flux) stress for many-body models is a different quantity.
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMLFF::~PairMLFF()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMLFF::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

/* ---------------------------------------------------------------------- */

void PairMLFF::settings(int narg, char **arg)
{
  if (narg != 0)
    error->all(FLERR,
               "Illegal pair_style mlff command: it takes no arguments (got '{}'). "
               "Give the model with: pair_coeff * * model.pt El1 El2 ...",
               arg[0]);
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt El_1 ... El_ntypes
------------------------------------------------------------------------- */

void PairMLFF::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (narg < 3 || narg != 3 + ntypes)
    error->all(FLERR,
               "Incorrect args for pair_coeff with pair_style mlff: expected "
               "'pair_coeff * * model.pt' followed by {} element symbol(s), one per atom type, "
               "but got {} argument(s)",
               ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "Incorrect args for pair_coeff with pair_style mlff: the type range must be "
               "'* *' (got '{} {}')",
               arg[0], arg[1]);

  if (!allocated) allocate();

  load_model(arg[2]);

  const auto &species = model_->species;
  type2species_.assign(ntypes + 1, -1);
  type2element_.assign(ntypes + 1, "");
  for (int t = 1; t <= ntypes; ++t) {
    const std::string el = arg[2 + t];
    int idx = -1;
    for (size_t s = 0; s < species.size(); ++s)
      if (species[s] == el) idx = static_cast<int>(s);
    if (idx < 0)
      error->all(FLERR,
                 "pair_coeff mlff: element '{}' given for atom type {} is not in the model '{}'; "
                 "the model's species are: {}",
                 el, t, model_path_, join(species));
    type2species_[t] = idx;
    type2element_[t] = el;
  }

  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;

  if (comm->me == 0) {
    std::string msg = fmt::format("pair_style mlff: model '{}'\n", model_path_);
    msg += fmt::format("  kind {}, dtype {}, r_max {} Angstrom, n_message_passing {}{}\n",
                       model_->kind, model_->dtype_name, r_max_, n_message_passing_,
                       model_->direct_forces ? ", direct forces (no energy)" : "");
    msg += fmt::format("  species ({}): {}\n", species.size(), join(species));
    msg += fmt::format("  format {} v{}, exported by mlff {}\n",
                       model_->metadata.value("format", std::string("?")),
                       model_->format_version, model_->mlff_version);
    msg += "  LAMMPS type -> element -> model species index\n";
    for (int t = 1; t <= ntypes; ++t)
      msg += fmt::format("  {:>11d} -> {:<7s} -> {}\n", t, type2element_[t], type2species_[t]);
    utils::logmesg(lmp, msg);
  }
}

/* ----------------------------------------------------------------------
   load the TorchScript file and validate its metadata (all ranks)
------------------------------------------------------------------------- */

void PairMLFF::load_model(const std::string &path)
{
  model_path_ = path;
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good())
      error->all(FLERR, "pair_style mlff: cannot open model file '{}': {}", path,
                 std::strerror(errno));
  }

  // Load on every rank; agree on failure so that no rank is left waiting.
  auto model = std::make_unique<MLFFModel>();
  std::string fail;
  torch::jit::ExtraFilesMap extra{{"metadata.json", ""}};
  try {
    model->module = torch::jit::load(path, torch::kCPU, extra);
    model->module.eval();
  } catch (const std::exception &e) {
    fail = fmt::format("pair_style mlff: '{}' is not an mlff deployed model: TorchScript "
                       "loading failed ({})",
                       path, exception_text(e));
  }
  int bad = fail.empty() ? 0 : 1, anybad = 0;
  MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, world);
  if (anybad)
    error->all(FLERR, "{}", bad ? fail : std::string("pair_style mlff: loading the model failed "
                                                     "on another MPI rank"));

  // Metadata: identical on every rank (same file), so plain error->all is safe.
  const std::string &text = extra["metadata.json"];
  if (text.empty())
    error->all(FLERR,
               "pair_style mlff: '{}' is a TorchScript file without the 'metadata.json' extra "
               "file, so it is not an mlff deployed model (export models with mlff-deploy)",
               path);
  try {
    model->metadata = json::parse(text);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style mlff: metadata.json in '{}' is not valid JSON: {}", path,
               first_lines(e.what(), 1));
  }
  const json &meta = model->metadata;
  if (!meta.is_object() || !meta.contains("format") || !meta["format"].is_string() ||
      meta["format"].get<std::string>() != "mlff-deployed-model")
    error->all(FLERR,
               "pair_style mlff: '{}' is not an mlff deployed model: metadata.json has no "
               "\"format\": \"mlff-deployed-model\"",
               path);

  auto bad_key = [&](const std::string &key, const std::string &what) {
    error->all(FLERR, "pair_style mlff: metadata.json of '{}': '{}' {}", path, key, what);
  };

  // (only checked accessors below: a mistyped value must give an error, not a json exception)
  if (!meta.contains("format_version") || !meta["format_version"].is_number_integer())
    bad_key("format_version", "missing or not an integer");
  model->format_version = meta["format_version"].get<int>();
  if (model->format_version != 1)
    bad_key("format_version",
            fmt::format("is {}; this plugin reads format version 1 (rebuild the plugin with "
                        "scripts/build_plugin.sh from a matching mlff)",
                        model->format_version));
  model->mlff_version = meta.contains("mlff_version") && meta["mlff_version"].is_string()
      ? meta["mlff_version"].get<std::string>()
      : std::string("?");
  model->kind = meta.contains("model_kind") && meta["model_kind"].is_string()
      ? meta["model_kind"].get<std::string>()
      : std::string("?");

  if (!meta.contains("r_max") || !meta["r_max"].is_number()) bad_key("r_max", "missing or not a number");
  const double r_max = meta["r_max"].get<double>();
  if (!(r_max > 0.0) || !std::isfinite(r_max)) bad_key("r_max", "must be a positive number");

  if (!meta.contains("species") || !meta["species"].is_array() || meta["species"].empty())
    bad_key("species", "missing or not a non-empty list of element symbols");
  for (const auto &s : meta["species"]) {
    if (!s.is_string()) bad_key("species", "contains a value that is not a string");
    model->species.push_back(s.get<std::string>());
  }

  if (!meta.contains("n_message_passing") || !meta["n_message_passing"].is_number_integer())
    bad_key("n_message_passing", "missing or not an integer");
  const int n_mp = meta["n_message_passing"].get<int>();
  if (n_mp < 0) bad_key("n_message_passing", "must be >= 0");

  model->dtype_name = meta.contains("dtype") && meta["dtype"].is_string()
      ? meta["dtype"].get<std::string>()
      : std::string();
  if (model->dtype_name == "float64")
    model->dtype = torch::kFloat64;
  else if (model->dtype_name == "float32")
    model->dtype = torch::kFloat32;
  else
    bad_key("dtype", fmt::format("is '{}'; expected float32 or float64", model->dtype_name));

  if (meta.contains("direct_forces") && !meta["direct_forces"].is_boolean())
    bad_key("direct_forces", "is not true/false");
  model->direct_forces = meta.contains("direct_forces") && meta["direct_forces"].get<bool>();

  model_ = std::move(model);
  r_max_ = r_max;
  n_message_passing_ = n_mp;
  node_map_nall_ = -1;
}

/* ---------------------------------------------------------------------- */

void PairMLFF::init_style()
{
  if (!model_) error->all(FLERR, "pair_style mlff: pair_coeff * * model.pt El1 ... was not given");

  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style mlff requires newton pair on (the LAMMPS default): forces on ghost "
               "atoms are sent to their owners by reverse communication. Remove 'newton off'");

  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR,
               "pair_style mlff requires 'units metal' (models use eV and Angstrom), "
               "got 'units {}'",
               update->unit_style);

  if (comm->nprocs > 1 && n_message_passing_ > 1)
    error->all(FLERR,
               "pair_style mlff: model '{}' passes messages over {} layers; multi-rank runs of "
               "message-passing models are not yet supported (they need a per-layer halo "
               "exchange). Run it on 1 MPI rank, or use a strictly local model "
               "(n_message_passing = 1) on several ranks",
               model_path_, n_message_passing_);

  ghosts_as_nodes_ = comm->nprocs > 1;
  if (!ghosts_as_nodes_ && !atom->tag_enable) {
    // owner mapping needs atom IDs; local models can use ghost nodes instead
    if (n_message_passing_ > 1)
      error->all(FLERR,
                 "pair_style mlff with a message-passing model requires atom IDs "
                 "(do not use 'atom_modify id no')");
    ghosts_as_nodes_ = true;
  }

  neighbor->add_request(this, NeighConst::REQ_FULL);
  check_box();

  if (model_->direct_forces && comm->me == 0)
    error->warning(FLERR,
                   "pair_style mlff: model '{}' predicts forces directly: it has no energy, so "
                   "its potential energy, per-atom energies and virial (pressure) are reported as "
                   "0, and its forces are not conservative (NVE energy drifts)",
                   model_path_);
  node_map_nall_ = -1;

  nthreads_ = 1;
  if (const char *env = std::getenv("MLFF_NUM_THREADS"))
    nthreads_ = std::atoi(env);
  else if (const char *omp = std::getenv("OMP_NUM_THREADS"))
    nthreads_ = std::atoi(omp);
  if (nthreads_ < 1) nthreads_ = 1;
  if (comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style mlff: {} MPI rank(s), {} mode, {} torch thread(s) per rank, "
                   "TorchScript graph optimisation {}\n",
                   comm->nprocs,
                   ghosts_as_nodes_ ? "ghost-node (local model)" : "owner-mapped (single rank)",
                   nthreads_, jit_optimize() ? "on" : "off (MLFF_JIT_OPTIMIZE=1 enables)");
}

/* ---------------------------------------------------------------------- */

double PairMLFF::init_one(int /*i*/, int /*j*/)
{
  return r_max_;
}

/* ----------------------------------------------------------------------
   stop when a periodic box is thinner than r_max
   (perpendicular widths of the restricted-triclinic cell)
------------------------------------------------------------------------- */

void PairMLFF::check_box() const
{
  if (!domain->xperiodic && !domain->yperiodic && !domain->zperiodic) return;
  double width[3];
  if (!domain->triclinic) {
    width[0] = domain->xprd;
    width[1] = domain->yprd;
    width[2] = domain->zprd;
  } else {
    // a = (lx,0,0), b = (xy,ly,0), c = (xz,yz,lz); width_k = V / |other two crossed|
    const double *h = domain->h;
    const double lx = h[0], ly = h[1], lz = h[2], yz = h[3], xz = h[4], xy = h[5];
    const double vol = lx * ly * lz;
    const double bxc = std::sqrt(ly * lz * ly * lz + xy * lz * xy * lz +
                                 (xy * yz - ly * xz) * (xy * yz - ly * xz));
    const double cxa = lx * std::sqrt(lz * lz + yz * yz);
    width[0] = vol / bxc;
    width[1] = vol / cxa;
    width[2] = lz;
  }
  static const char *axis[3] = {"x", "y", "z"};
  for (int d = 0; d < 3; ++d)
    if (domain->periodicity[d] && width[d] < r_max_)
      error->all(FLERR,
                 "pair_style mlff: the periodic box is {:.6g} Angstrom wide along {}, less than "
                 "the cutoff r_max = {:.6g} Angstrom of model '{}'; use a larger periodic cell "
                 "(e.g. replicate)",
                 width[d], axis[d], r_max_, model_path_);
}

/* ----------------------------------------------------------------------
   node index of every local + ghost atom (rebuilt when neighbour lists are)
------------------------------------------------------------------------- */

void PairMLFF::build_node_map()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  node_of_.assign(nall, -1);
  for (int i = 0; i < nlocal; ++i) node_of_[i] = i;
  n_nodes_ = nlocal;

  if (ghosts_as_nodes_) {
    // one extra node per ghost that some local atom has as a neighbour
    const int inum = list->inum;
    const int *ilist = list->ilist;
    const int *numneigh = list->numneigh;
    int **firstneigh = list->firstneigh;
    for (int ii = 0; ii < inum; ++ii) {
      const int i = ilist[ii];
      const int *jlist = firstneigh[i];
      for (int jj = 0; jj < numneigh[i]; ++jj) {
        const int j = jlist[jj] & NEIGHMASK;
        if (j >= nlocal && node_of_[j] < 0) node_of_[j] = n_nodes_++;
      }
    }
  } else if (nall > nlocal) {
    // ghost -> owning local atom, through the atom IDs
    const tagint *tag = atom->tag;
    tagint maxtag = 0;
    for (int i = 0; i < nall; ++i) maxtag = std::max(maxtag, tag[i]);
    if (maxtag <= 4 * static_cast<tagint>(nall) + 1024) {
      tag_lookup_.assign(maxtag + 1, -1);
      for (int i = 0; i < nlocal; ++i) tag_lookup_[tag[i]] = i;
      for (int j = nlocal; j < nall; ++j) node_of_[j] = tag_lookup_[tag[j]];
    } else {
      std::unordered_map<tagint, int> lookup;
      lookup.reserve(nlocal);
      for (int i = 0; i < nlocal; ++i) lookup[tag[i]] = i;
      for (int j = nlocal; j < nall; ++j) {
        auto it = lookup.find(tag[j]);
        if (it != lookup.end()) node_of_[j] = it->second;
      }
    }
  }
  node_map_nall_ = nall;
}

/* ---------------------------------------------------------------------- */

void PairMLFF::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;

  check_box();    // the box may shrink during NPT
  if (neighbor->ago == 0 || node_map_nall_ != nall) build_node_map();

  const int inum = list->inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;
  if (inum == 0) return;    // nothing owned here (empty subdomain)

  // ---- edges, one pass over the full list ---------------------------------
  const double cutsq_model = r_max_ * r_max_;
  edge_src_.clear();
  edge_dst_.clear();
  edge_j_.clear();
  edge_vec_.clear();
  int unmapped = -1;
  for (int ii = 0; ii < inum; ++ii) {
    const int i = ilist[ii];
    const double xi = x[i][0], yi = x[i][1], zi = x[i][2];
    const int *jlist = firstneigh[i];
    const int jnum = numneigh[i];
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - xi;
      const double dy = x[j][1] - yi;
      const double dz = x[j][2] - zi;
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq >= cutsq_model) continue;
      const int nj = node_of_[j];
      if (nj < 0) {
        unmapped = j;
        continue;
      }
      edge_src_.push_back(i);
      edge_dst_.push_back(nj);
      edge_j_.push_back(j);
      edge_vec_.push_back(dx);
      edge_vec_.push_back(dy);
      edge_vec_.push_back(dz);
    }
  }
  if (unmapped >= 0)
    error->one(FLERR,
               "pair_style mlff: the owner of ghost atom ID {} is not on this MPI rank; "
               "multi-rank runs of message-passing models are not yet supported",
               atom->tag_enable ? static_cast<bigint>(atom->tag[unmapped]) : -1);
  const int64_t nedges = static_cast<int64_t>(edge_src_.size());

  // ---- node species --------------------------------------------------------
  node_species_.resize(n_nodes_);
  for (int i = 0; i < nlocal; ++i) node_species_[i] = type2species_[type[i]];
  if (n_nodes_ > nlocal)
    for (int j = nlocal; j < nall; ++j)
      if (node_of_[j] >= nlocal) node_species_[node_of_[j]] = type2species_[type[j]];

  // ---- model call ----------------------------------------------------------
  torch::Tensor atomic_energy, edge_grad, node_forces;
  try {
    torch::AutoGradMode grad_on(true);    // the model differentiates itself
    JitOptimizeGuard jit_mode(jit_optimize());
    ThreadsGuard threads(nthreads_);
    const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
    torch::Tensor species = torch::from_blob(node_species_.data(), {n_nodes_}, i64);
    torch::Tensor edge_index = torch::empty({2, nedges}, i64);
    if (nedges > 0) {
      int64_t *ei = edge_index.data_ptr<int64_t>();
      std::memcpy(ei, edge_src_.data(), nedges * sizeof(int64_t));
      std::memcpy(ei + nedges, edge_dst_.data(), nedges * sizeof(int64_t));
    }
    torch::Tensor edge_vec =
        torch::from_blob(edge_vec_.data(), {nedges, 3}, torch::TensorOptions().dtype(torch::kFloat64));
    edge_vec = (model_->dtype == torch::kFloat64) ? edge_vec.clone() : edge_vec.to(model_->dtype);

    auto out = model_->module.forward({species, edge_index, edge_vec});
    auto dict = out.toGenericDict();
    if (model_->direct_forces) {
      if (!dict.contains("forces")) throw std::runtime_error("model output lacks 'forces'");
      node_forces = dict.at("forces").toTensor().to(torch::kFloat64).contiguous();
    } else {
      if (!dict.contains("atomic_energy") || !dict.contains("edge_grad"))
        throw std::runtime_error("model output lacks 'atomic_energy' or 'edge_grad'");
      atomic_energy = dict.at("atomic_energy").toTensor().to(torch::kFloat64).contiguous();
      edge_grad = dict.at("edge_grad").toTensor().to(torch::kFloat64).contiguous();
    }
  } catch (const std::exception &e) {
    error->one(FLERR, "pair_style mlff: evaluating model '{}' failed: {}", model_path_,
               exception_text(e));
  }

  if (model_->direct_forces) {
    // forces on the local atoms only: a ghost node's prediction belongs to its owner
    if (node_forces.numel() != 3 * static_cast<int64_t>(n_nodes_))
      error->one(FLERR, "pair_style mlff: model '{}' returned forces with {} values for {} nodes",
                 model_path_, node_forces.numel(), n_nodes_);
    const double *fn = node_forces.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i) {
      f[i][0] += fn[3 * i];
      f[i][1] += fn[3 * i + 1];
      f[i][2] += fn[3 * i + 2];
    }
    return;
  }

  if (atomic_energy.numel() != n_nodes_ || edge_grad.numel() != 3 * nedges)
    error->one(FLERR,
               "pair_style mlff: model '{}' returned atomic_energy with {} values for {} nodes "
               "and edge_grad with {} values for {} edges",
               model_path_, atomic_energy.numel(), n_nodes_, edge_grad.numel(), nedges);

  // ---- energies ------------------------------------------------------------
  const double *e = atomic_energy.data_ptr<double>();
  if (eflag_global) {
    double esum = 0.0;
    for (int i = 0; i < nlocal; ++i) esum += e[i];
    eng_vdwl += esum;
  }
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += e[i];

  // ---- forces and virial ---------------------------------------------------
  const double *g = edge_grad.data_ptr<double>();
  const double *r = edge_vec_.data();
  for (int64_t k = 0; k < nedges; ++k) {
    const int i = static_cast<int>(edge_src_[k]);
    const int j = edge_j_[k];
    const double gx = g[3 * k], gy = g[3 * k + 1], gz = g[3 * k + 2];
    f[i][0] += gx;
    f[i][1] += gy;
    f[i][2] += gz;
    f[j][0] -= gx;
    f[j][1] -= gy;
    f[j][2] -= gz;
    if (vflag_either) {
      const double rx = r[3 * k], ry = r[3 * k + 1], rz = r[3 * k + 2];
      double v[6];
      v[0] = -rx * gx;
      v[1] = -ry * gy;
      v[2] = -rz * gz;
      v[3] = -0.5 * (rx * gy + ry * gx);
      v[4] = -0.5 * (rx * gz + rz * gx);
      v[5] = -0.5 * (ry * gz + rz * gy);
      if (vflag_global)
        for (int c = 0; c < 6; ++c) virial[c] += v[c];
      if (vflag_atom)
        for (int c = 0; c < 6; ++c) {
          vatom[i][c] += 0.5 * v[c];
          vatom[j][c] += 0.5 * v[c];
        }
    }
  }
}

/* ---------------------------------------------------------------------- */

double PairMLFF::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (edge_src_.capacity() + edge_dst_.capacity() + node_species_.capacity()) * sizeof(int64_t);
  bytes += (edge_j_.capacity() + node_of_.capacity() + tag_lookup_.capacity()) * sizeof(int);
  bytes += edge_vec_.capacity() * sizeof(double);
  return bytes;
}

/* ----------------------------------------------------------------------
   factory called by the loader mlffplugin.so (mlff_plugin.cpp)
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) LAMMPS_NS::Pair *
mlff_create_pair(LAMMPS_NS::LAMMPS *lmp)
{
  return new LAMMPS_NS::PairMLFF(lmp);
}
