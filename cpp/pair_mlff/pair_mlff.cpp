// pair_style mlff: evaluates an mlff deployed model inside LAMMPS.
//
// Model contract: docs/model_interface.md.  Per step the style builds the graph
// (edges i -> j with |x_j - x_i| < r_max from a full neighbour list; mlff_graph.*),
// calls forward(species, edge_index, edge_vec[, n_local]) (mlff_model.*) and turns
// the returned per-node energies and per-edge gradients dE/dr_ij into forces, energy
// and virial:  f_i += g_ij, f_j -= g_ij, W -= r_ij (x) g_ij.
//
// Parallel modes (chosen in choose_mode(); README.md has the full story):
//  * OWNER (one rank, default there): every ghost atom is a periodic image of a
//    local atom; an edge to a ghost points at the owning local atom's node, with
//    the image's true r_ij.  Exact for any number of message-passing layers.
//  * LOCAL (strictly local model, n_message_passing <= 1, several ranks): ghost
//    neighbours become extra nodes after the local ones; their energies are not
//    counted, the forces on them go home through LAMMPS's reverse communication.
//    Ghosts that are periodic images of this rank's own atoms point at those
//    atoms' nodes instead, as in OWNER mode.
//  * HALO (message-passing model, several ranks; `pair_style mlff halo`): as LOCAL,
//    and the model calls torch.ops.mlff.halo_exchange after each layer (mlff_halo.*).
//    Ghost cutoff stays r_max.
//  * REDUNDANT (`pair_style mlff redundant`, or models that do not exchange):
//    the ghost cutoff is raised to n_message_passing * r_max + skin; every ghost
//    is a node with its own edges (full neighbour list incl. ghosts); only local
//    energies are summed.  No per-layer communication; much more memory and work.
//
// Threads: libtorch's intra-op threads per MPI rank = MLFF_NUM_THREADS if set,
// else OMP_NUM_THREADS if set, else 1 -- the same default LAMMPS uses for its
// own OpenMP threads.  Parallelise over MPI ranks first: for the graph sizes of
// one rank, extra torch threads gain little, and OpenMP threads that spin at
// barriers collapse when the cores are oversubscribed (measured: 2 threads on a
// busy 2-core machine were 20x slower than 1).
//
// Devices: with a CUDA build of torch, each rank uses CUDA device
// (node-local rank mod device count), node-local rank from LAMMPS's world
// communicator split by node (MPI_COMM_TYPE_SHARED).  MLFF_DEVICE=cpu|cuda
// overrides.  Halo buffers are staged through the host (no CUDA-aware MPI needed).

#include "pair_mlff.h"

#include "mlff_halo.h"
#include "mlff_model.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "input.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"
#include "variable.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <malloc.h>

using namespace LAMMPS_NS;
using namespace LAMMPS_NS::MLFF;

namespace {

std::string join(const std::vector<std::string> &v, const std::string &sep = " ")
{
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

double wall_seconds()
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMLFF::PairMLFF(LAMMPS *lmp) : Pair(lmp)
{
  // libtorch allocates and frees its activation tensors on every call.  With
  // glibc's defaults, blocks above the mmap threshold (at most 32 MB) are mmap()ed
  // and unmapped again, and the heap top is trimmed, so every step pays page
  // faults for fresh pages.  For 4,000 Cu atoms (fp32 SchNet 64x3: ~40 MB per edge
  // tensor) that made a step 2.4x slower (3.5 vs 8.2 katom-step/s).  So: no mmap
  // for malloc at all (big blocks come from the heap and are reused) and never
  // trim the heap (-1; the largest positive threshold, 2 GB, still re-faulted
  // gigabytes per step for models that free more than that).  Process-wide;
  // MLFF_NO_MALLOPT=1 leaves glibc's defaults.
  static bool malloc_tuned = false;
  if (!malloc_tuned) {
    malloc_tuned = true;
    const char *env = std::getenv("MLFF_NO_MALLOPT");
    if (!(env && *env && strcmp(env, "0") != 0)) {
      mallopt(M_MMAP_MAX, 0);
      mallopt(M_TRIM_THRESHOLD, -1);
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
  // Halo buffers: sized from the model's widest exchange once it is loaded;
  // never 0 afterwards (LAMMPS sizes its comm buffers from these in Comm::init).
  comm_forward = comm_reverse = 0;
}

PairMLFF::~PairMLFF()
{
  committee_.close_file();
  if (saved_cutghostuser_ >= 0.0 && comm) comm->cutghostuser = saved_cutghostuser_;
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

/* ----------------------------------------------------------------------
   pair_style mlff [halo|redundant] [extrapolation warn|error|off] [tolerance D]
                   [devi FILE [every N]]
------------------------------------------------------------------------- */

void PairMLFF::settings(int narg, char **arg)
{
  requested_mode_ = Mode::AUTO;
  extrapolation_ = Extrapolation::WARN;
  extrapolation_tolerance_ = 0.1;
  devi_path_.clear();
  devi_every_ = 1;
  const std::string usage = "expected: pair_style mlff [halo|redundant] [extrapolation warn|error|off] "
                            "[tolerance D] [devi FILE [every N]]. Give the model with: pair_coeff * * model.pt "
                            "El1 El2 ...";
  for (int k = 0; k < narg; ++k) {
    const std::string word = arg[k];
    if (word == "halo" || word == "redundant") {
      requested_mode_ = word == "halo" ? Mode::HALO : Mode::REDUNDANT;
    } else if (word == "extrapolation" && k + 1 < narg) {
      const std::string value = arg[++k];
      if (value == "warn")
        extrapolation_ = Extrapolation::WARN;
      else if (value == "error")
        extrapolation_ = Extrapolation::ERROR;
      else if (value == "off")
        extrapolation_ = Extrapolation::OFF;
      else
        error->all(FLERR, "Illegal pair_style mlff command: extrapolation '{}' is not warn, error or off", value);
    } else if (word == "devi" && k + 1 < narg) {
      devi_path_ = arg[++k];
      if (k + 2 < narg && strcmp(arg[k + 1], "every") == 0) {
        devi_every_ = utils::bnumeric(FLERR, arg[k + 2], false, lmp);
        if (devi_every_ < 1) error->all(FLERR, "Illegal pair_style mlff command: devi ... every N needs N >= 1");
        k += 2;
      }
    } else if (word == "tolerance" && k + 1 < narg) {
      extrapolation_tolerance_ = utils::numeric(FLERR, arg[++k], false, lmp);
      if (!(extrapolation_tolerance_ >= 0.0))
        error->all(FLERR, "Illegal pair_style mlff command: tolerance must be >= 0 Angstrom, got {}",
                   extrapolation_tolerance_);
    } else {
      error->all(FLERR, "Illegal pair_style mlff command: unknown or incomplete argument '{}'; {}", word, usage);
    }
  }
}

/* ----------------------------------------------------------------------
   pair_coeff * * model.pt El_1 ... El_ntypes
------------------------------------------------------------------------- */

void PairMLFF::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  const bool from_labels = narg == 3 && atom->labelmapflag;
  if (narg < 3 || (narg != 3 + ntypes && !from_labels))
    error->all(FLERR,
               "Incorrect args for pair_coeff with pair_style mlff: expected "
               "'pair_coeff * * model.pt' followed by {} element symbol(s) or NULL, one per atom type "
               "(or none, when the atom types have labels that are element symbols), but got {} "
               "argument(s)",
               ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR,
               "Incorrect args for pair_coeff with pair_style mlff: the type range must be "
               "'* *' (got '{} {}')",
               arg[0], arg[1]);

  if (!allocated) allocate();

  select_device();
  load_model(arg[2]);

  const ModelInfo &info = model_->info();
  const auto &species = info.species;
  type2species_.assign(ntypes + 1, -1);
  type2element_.assign(ntypes + 1, "NULL");
  if (from_labels) {
    // types whose labels (labelmap, or a data file's Atom Type Labels) are model species
    for (size_t s = 0; s < species.size(); ++s) {
      // (asked first: expand_type logs an error for a label it does not know)
      if (input->variable->compute_equal(fmt::format("is_typelabel(atom,{})", species[s])) == 0.0) continue;
      char *type = utils::expand_type(FLERR, species[s], Atom::ATOM, lmp);
      if (!type) continue;
      const int t = std::atoi(type);
      delete[] type;
      type2species_[t] = static_cast<int64_t>(s);
      type2element_[t] = species[s];
    }
    for (int t = 1; t <= ntypes; ++t)
      if (type2species_[t] < 0)
        error->all(FLERR,
                   "pair_coeff * * {}: atom type {} has no type label among the model's species ({}); "
                   "list one element (or NULL) per type instead",
                   model_path_, t, join(species));
  } else {
    for (int t = 1; t <= ntypes; ++t) {
      const std::string el = arg[2 + t];
      if (el == "NULL") continue;    // a type left to other pair styles (hybrid)
      int idx = -1;
      for (size_t s = 0; s < species.size(); ++s)
        if (species[s] == el) idx = static_cast<int>(s);
      if (idx < 0)
        error->all(FLERR,
                   "pair_coeff mlff: element '{}' given for atom type {} is not in the model '{}'; "
                   "the model's species are: {} (NULL leaves a type to other pair styles)",
                   el, t, model_path_, join(species));
      type2species_[t] = idx;
      type2element_[t] = el;
    }
  }
  int n_mapped = 0;
  for (int i = 1; i <= ntypes; ++i) {
    if (type2species_[i] >= 0) ++n_mapped;
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = type2species_[i] >= 0 && type2species_[j] >= 0 ? 1 : 0;
  }
  if (n_mapped == 0) error->all(FLERR, "pair_coeff mlff: every atom type is NULL; nothing for the model to do");

  // Comm buffers for the halo exchange: the widest exchange of the model.  Set
  // here already (not only in init_style): LAMMPS sizes its buffers from these.
  max_halo_width_ = 0;
  for (int w : info.halo_widths) max_halo_width_ = std::max(max_halo_width_, w);
  committee_on_ = info.committee > 0;
  committee_.configure(info.committee, !info.direct_forces);
  comm_forward = max_halo_width_;
  comm_reverse = std::max(max_halo_width_, committee_on_ ? committee_.width() : 0);
  halo_ = std::make_unique<HaloExchange>(lmp, this, graph_, max_halo_width_);
  monitor_.configure(info, extrapolation_tolerance_, ENERGY_FRACTION);
  if (!devi_path_.empty() && !committee_on_)
    error->all(FLERR, "pair_style mlff devi {}: model '{}' is not a committee (mlff train --committee N, then "
               "mlff-deploy of the run directory)", devi_path_, model_path_);
  if (committee_on_ && !devi_path_.empty() && comm->me == 0) {
    try {
      committee_.open_file(devi_path_);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style mlff: cannot write the model-deviation file '{}': {}", devi_path_, e.what());
    }
  }

  if (comm->me == 0) {
    std::string msg = fmt::format("pair_style mlff: model '{}'\n", model_path_);
    msg += fmt::format("  kind {}, dtype {}, r_max {} Angstrom, n_message_passing {}{}\n", info.kind,
                       info.dtype_name, r_max_, n_message_passing_,
                       info.direct_forces ? ", direct forces (no energy)" : "");
    std::vector<std::string> widths;
    for (int w : info.halo_widths) widths.push_back(std::to_string(w));
    msg += fmt::format("  halo exchanges: {}\n",
                       info.has_halo_widths
                           ? (widths.empty() ? std::string("none (strictly local)")
                                             : fmt::format("{} x widths [{}]", widths.size(), join(widths, ", ")))
                           : std::string("not supported by this model (redundant ghosts on several ranks)"));
    if (committee_on_)
      msg += fmt::format("  committee of {} models: mean forces and energies; per-atom deviations for compute "
                         "mlff/uncertainty/atom{}\n",
                         info.committee,
                         devi_path_.empty() ? std::string()
                                            : fmt::format("; model deviation every {} steps to '{}'", devi_every_,
                                                          devi_path_));
    msg += fmt::format("  species ({}): {}\n", species.size(), join(species));
    msg += fmt::format("  format {} v{}, exported by mlff {}\n", info.format, info.format_version, info.mlff_version);
    msg += monitor_.has_range()
        ? fmt::format("  training range recorded: extrapolation {} (pairs closer than their training "
                      "minimum - {} Angstrom, atomic energies outside their range +- {}%)\n",
                      extrapolation_ == Extrapolation::WARN    ? "warnings"
                          : extrapolation_ == Extrapolation::ERROR ? "stops the run"
                                                                   : "checks off",
                      extrapolation_tolerance_, 100 * ENERGY_FRACTION)
        : std::string("  no training range in the metadata (exported before mlff recorded it): no "
                      "extrapolation warnings\n");
    msg += "  LAMMPS type -> element -> model species index\n";
    for (int t = 1; t <= ntypes; ++t)
      msg += type2species_[t] >= 0
          ? fmt::format("  {:>11d} -> {:<7s} -> {}\n", t, type2element_[t], type2species_[t])
          : fmt::format("  {:>11d} -> NULL    -> (not in the model's graph: left to other pair styles)\n", t);
    utils::logmesg(lmp, msg);
  }
}

/* ----------------------------------------------------------------------
   GPU per rank: device = node-local rank mod visible devices.  The node-local
   rank comes from LAMMPS's world communicator (not MPI_COMM_WORLD, so that
   -partition runs work) split by shared-memory node.  Collective over world.
------------------------------------------------------------------------- */

void PairMLFF::select_device()
{
  MPI_Comm node_comm;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node_comm);
  MPI_Comm_rank(node_comm, &node_rank_);
  MPI_Comm_size(node_comm, &node_size_);
  MPI_Comm_free(&node_comm);

  std::string want = "auto";
  if (const char *env = std::getenv("MLFF_DEVICE"))
    if (*env) want = env;
  if (want != "auto" && want != "cpu" && want != "cuda")
    error->all(FLERR, "pair_style mlff: MLFF_DEVICE='{}' is not one of auto, cpu, cuda", want);

  const int ndev = want != "cpu" ? ModelRunner::cuda_device_count() : 0;
  if (want == "cuda" && ndev == 0)
    error->all(FLERR, "pair_style mlff: MLFF_DEVICE=cuda but torch sees no CUDA device (torch {})",
               MLFF_TORCH_VERSION);
  device_index_ = ModelRunner::select_device(node_rank_, ndev);

  // one line per rank on rank 0 (at most 16, then a summary)
  int mine[4] = {node_rank_, node_size_, device_index_, ndev};
  std::vector<int> all(4 * comm->nprocs);
  MPI_Gather(mine, 4, MPI_INT, all.data(), 4, MPI_INT, 0, world);
  if (comm->me == 0) {
    std::string msg = "pair_style mlff: devices (rank: node-local rank of ranks on node -> device)\n";
    const int shown = std::min(comm->nprocs, 16);
    for (int r = 0; r < shown; ++r) {
      const int *a = &all[4 * r];
      msg += fmt::format("  rank {}: {} of {} -> {}\n", r, a[0], a[1],
                         a[2] >= 0 ? fmt::format("cuda:{} ({} visible)", a[2], a[3])
                                   : std::string(a[3] == 0 && want != "cpu" ? "cpu (torch sees no CUDA device)"
                                                                            : "cpu"));
    }
    if (comm->nprocs > shown) msg += fmt::format("  ... {} more ranks\n", comm->nprocs - shown);
    utils::logmesg(lmp, msg);
  }
}

/* ----------------------------------------------------------------------
   load the model and validate its metadata (all ranks)
------------------------------------------------------------------------- */

void PairMLFF::load_model(const std::string &path)
{
  model_path_ = path;
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe.good())
      error->all(FLERR, "pair_style mlff: cannot open model file '{}': {}", path, std::strerror(errno));
  }

  // Load on every rank; agree on failure so that no rank is left waiting.
  auto model = std::make_unique<ModelRunner>();
  std::string fail;
  try {
    model->load(path, device_index_);
  } catch (const ModelError &e) {
    fail = e.what();
  }
  int bad = fail.empty() ? 0 : 1, anybad = 0;
  MPI_Allreduce(&bad, &anybad, 1, MPI_INT, MPI_MAX, world);
  if (anybad)
    error->all(FLERR, "{}",
               bad ? fail : std::string("pair_style mlff: loading the model failed on another MPI rank"));

  // Metadata: identical on every rank (same file), so plain error->all is safe.
  try {
    model->read_metadata();
  } catch (const ModelError &e) {
    error->all(FLERR, "{}", e.what());
  }
  model_ = std::move(model);
  r_max_ = model_->info().r_max;
  n_message_passing_ = model_->info().n_message_passing;
  graph_.invalidate();
}

/* ---------------------------------------------------------------------- */

void PairMLFF::init_style()
{
  if (!model_) error->all(FLERR, "pair_style mlff: pair_coeff * * model.pt El1 ... was not given");

  if (force->newton_pair == 0)
    error->all(FLERR,
               "pair_style mlff requires newton pair on (the LAMMPS default): forces on ghost "
               "atoms are sent to their owners by reverse communication. Remove 'newton off'");

  // Models work in eV and Angstrom; the style converts at its boundary.  real: kcal/mol
  // (forces kcal/mol/Angstrom, the virial in kcal/mol); lengths are Angstrom in both.
  if (strcmp(update->unit_style, "metal") == 0)
    energy_unit_ = 1.0;
  else if (strcmp(update->unit_style, "real") == 0)
    energy_unit_ = utils::get_conversion_factor(utils::ENERGY, utils::METAL2REAL);
  else
    error->all(FLERR,
               "pair_style mlff supports 'units metal' (eV, Angstrom) and 'units real' (kcal/mol, "
               "Angstrom), not 'units {}'",
               update->unit_style);
  committee_.set_energy_unit(energy_unit_);

  choose_mode();

  // Ghost cutoff: r_max + skin (from init_one) except in redundant mode, where
  // every atom within n_message_passing hops must be present on the rank.
  if (mode_ == Mode::REDUNDANT) {
    if (comm->mode != Comm::SINGLE)
      error->all(FLERR,
                 "pair_style mlff redundant requires 'comm_modify mode single' (it sets the "
                 "ghost cutoff to n_message_passing * r_max + skin)");
    if (saved_cutghostuser_ < 0.0) saved_cutghostuser_ = comm->cutghostuser;
    const double need = n_message_passing_ * r_max_ + neighbor->skin;
    comm->cutghostuser = std::max(saved_cutghostuser_, need);
    neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);
  } else {
    if (saved_cutghostuser_ >= 0.0) {
      comm->cutghostuser = saved_cutghostuser_;
      saved_cutghostuser_ = -1.0;
    }
    neighbor->add_request(this, NeighConst::REQ_FULL);
  }
  comm_forward = max_halo_width_;
  comm_reverse = std::max(max_halo_width_, committee_on_ ? committee_.width() : 0);
  // As a sub-style of pair_style hybrid: LAMMPS sizes its communication buffers from the
  // top-level style, which took its sizes from the sub-styles at pair_style time, before
  // pair_coeff loaded the model.  Comm::init runs after this, so raise them here.
  if (force->pair && force->pair != this) {
    force->pair->comm_forward = std::max(force->pair->comm_forward, comm_forward);
    force->pair->comm_reverse = std::max(force->pair->comm_reverse, comm_reverse);
  }
  check_box();

  if (model_->info().direct_forces && comm->me == 0)
    error->warning(FLERR,
                   "pair_style mlff: model '{}' predicts forces directly: it has no energy, so "
                   "its potential energy, per-atom energies and virial (pressure) are reported as "
                   "0, and its forces are not conservative (NVE energy drifts)",
                   model_path_);
  graph_.invalidate();

  nthreads_ = 1;
  if (const char *env = std::getenv("MLFF_NUM_THREADS"))
    nthreads_ = std::atoi(env);
  else if (const char *omp = std::getenv("OMP_NUM_THREADS"))
    nthreads_ = std::atoi(omp);
  if (nthreads_ < 1) nthreads_ = 1;
  if (comm->me == 0) {
    std::string extra;
    if (mode_ == Mode::HALO)
      extra = fmt::format(", {} exchange(s) of up to {} values per atom per step",
                          model_->info().halo_widths.size(), max_halo_width_);
    else if (mode_ == Mode::REDUNDANT)
      extra = fmt::format(", ghost cutoff {:.6g} Angstrom", comm->cutghostuser);
    utils::logmesg(lmp,
                   "pair_style mlff: {} MPI rank(s), {} mode{}, {} torch thread(s) per rank, "
                   "TorchScript graph optimisation {}\n",
                   comm->nprocs, mode_description(mode_), extra, nthreads_,
                   ModelRunner::jit_optimize() ? "on" : "off (MLFF_JIT_OPTIMIZE=1 enables)");
  }
}

/* ----------------------------------------------------------------------
   choose how ghost atoms enter the graph (README.md, "Parallel modes")
------------------------------------------------------------------------- */

void PairMLFF::choose_mode()
{
  const ModelInfo &info = model_->info();
  const bool local_model = n_message_passing_ <= 1;
  const bool can_halo = info.has_halo_widths;
  const bool can_redundant = info.takes_n_local;
  const bool one_rank = comm->nprocs == 1;

  if (local_model) {
    // halo and redundant coincide for a strictly local model: no exchange needed
    mode_ = (one_rank && atom->tag_enable && requested_mode_ == Mode::AUTO) ? Mode::OWNER : Mode::LOCAL;
    return;
  }

  if (requested_mode_ == Mode::HALO) {
    if (!can_halo)
      error->all(FLERR,
                 "pair_style mlff halo: model '{}' ({}, {} message-passing layers) does not "
                 "exchange its features between layers (no 'halo_widths' in its metadata); use "
                 "'pair_style mlff redundant' or plain 'pair_style mlff'",
                 model_path_, info.kind, n_message_passing_);
    mode_ = Mode::HALO;
  } else if (requested_mode_ == Mode::REDUNDANT) {
    if (!can_redundant)
      error->all(FLERR,
                 "pair_style mlff redundant: model '{}' has format version {}, which cannot "
                 "restrict its energy to local atoms; re-export it with this mlff (mlff-deploy)",
                 model_path_, info.format_version);
    mode_ = Mode::REDUNDANT;
  } else if (one_rank && atom->tag_enable) {
    mode_ = Mode::OWNER;
  } else if (can_halo) {
    mode_ = Mode::HALO;
  } else if (can_redundant) {
    mode_ = Mode::REDUNDANT;
  } else {
    error->all(FLERR,
               "pair_style mlff: model '{}' passes messages over {} layers and has format "
               "version {}, which supports neither the halo exchange nor redundant ghosts on "
               "several MPI ranks; re-export it with this mlff (mlff-deploy), or run it on "
               "1 MPI rank with atom IDs",
               model_path_, n_message_passing_, info.format_version);
  }
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
    const double bxc =
        std::sqrt(ly * lz * ly * lz + xy * lz * xy * lz + (xy * yz - ly * xz) * (xy * yz - ly * xz));
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

/* ---------------------------------------------------------------------- */

void PairMLFF::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);

  const int nlocal = atom->nlocal;
  const double t0 = wall_seconds();
  check_box();    // the box may shrink during NPT

  // In halo mode every rank takes part in every exchange, also one that owns no
  // atoms (an empty subdomain may still relay ghosts between its neighbours).
  // The other modes communicate nothing inside the model call (but every rank takes
  // part in the sum of training-range excursions).
  const bool check_range = extrapolation_ != Extrapolation::OFF && monitor_.has_range();
  if (nlocal == 0 && mode_ != Mode::HALO) {
    if (check_range) report_excursion(Excursion());
    if (committee_on_) committee_deviations(nullptr, nullptr, nullptr);    // collective
    return;
  }

  if (!graph_.build(atom, list, mode_, r_max_, type2species_, neighbor->ago == 0))
    error->one(FLERR,
               "pair_style mlff: ghost atom ID {} has no graph node (its owner is not on this "
               "MPI rank in {} mode)",
               atom->tag_enable ? static_cast<bigint>(atom->tag[graph_.unmapped_atom()]) : -1,
               mode_description(mode_));

  Excursion excursion = monitor_.check_edges(graph_);
  check_same_position(excursion);

  // ---- model call ----------------------------------------------------------
  const double t1 = wall_seconds();
  const double halo_before = halo_->seconds;
  halo_->start_call();
  ModelRunner::Output out;
  try {
    out = model_->run(graph_.node_species(), graph_.edge_src(), graph_.edge_dst(), graph_.edge_vec(),
                      graph_.n_local_nodes(), mode_ == Mode::HALO ? halo_.get() : nullptr, nthreads_);
  } catch (const ModelError &e) {
    model_call_failed(e.what(), e.out_of_memory);
  }

  const double t2 = wall_seconds();
  t_graph_ += t1 - t0;
  t_model_ += (t2 - t1) - (halo_->seconds - halo_before);
  sum_nodes_ += graph_.n_nodes();
  sum_edges_ += static_cast<double>(graph_.n_edges());
  sum_local_ += nlocal;
  ++n_calls_;

  const ModelInfo &info = model_->info();
  if (mode_ == Mode::HALO) {
    const int expected = static_cast<int>(info.halo_widths.size());
    if (halo_->n_forward != expected || (!info.direct_forces && halo_->n_reverse != expected))
      error->one(FLERR,
                 "pair_style mlff: model '{}' made {} forward and {} reverse halo exchanges, but "
                 "its metadata (halo_widths) declares {}",
                 model_path_, halo_->n_forward, halo_->n_reverse, expected);
  }

  if (info.direct_forces) {
    check_finite(out.forces, out.n_forces, "forces");
    apply_direct_forces(out.forces, out.n_forces);
  } else {
    check_finite(out.atomic_energy, out.n_atomic_energy, "atomic energies");
    check_finite(out.edge_grad, out.n_edge_grad, "energy gradients (forces)");
    apply_energies_and_gradients(out.atomic_energy, out.n_atomic_energy, out.edge_grad, out.n_edge_grad);
    monitor_.check_energies(graph_, out.atomic_energy, excursion);
  }
  if (check_range) report_excursion(excursion);
  if (committee_on_) committee_deviations(out.member_forces, out.member_atomic_energy, out.member_virial);
  t_forces_ += wall_seconds() - t2;
}

// Per-atom committee deviations: the members' node forces go onto LAMMPS atoms, ghost
// rows are summed onto their owners (energy models; a direct-force model's ghost rows
// belong to their owners' own predictions and are dropped), then the deviations and
// their sums over the ranks; the devi file every devi_every_ steps.
void PairMLFF::committee_deviations(const double *member_forces, const double *member_energy,
                                    const double *member_virial)
{
  const int nall = atom->nlocal + atom->nghost;
  const bool direct = model_->info().direct_forces;
  committee_.scatter(graph_, member_forces, nall, direct);
  if (!direct && mode_ != Mode::OWNER) {
    reverse_committee_ = true;
    comm->reverse_comm(this, committee_.width());
    reverse_committee_ = false;
  }
  committee_.reduce(graph_, member_forces, atom->nlocal, atom->nmax, member_energy, member_virial, world);
  committee_step_ = update->ntimestep;
  if (comm->me == 0 && !devi_path_.empty() && update->ntimestep % devi_every_ == 0)
    committee_.write_line(update->ntimestep);
}

// Two atoms at (nearly) the same position: no potential is defined there.
void PairMLFF::check_same_position(const Excursion &ex)
{
  if (ex.same_i < 0) return;
  const auto id = [&](int i) { return atom->tag_enable ? static_cast<bigint>(atom->tag[i]) : bigint(i); };
  error->one(FLERR,
             "pair_style mlff: atoms {} and {} are at the same position ({:.3g} Angstrom apart) at step {}: "
             "no potential is defined there (overlapping atoms in the data file, or a blown-up run)",
             id(ex.same_i), id(ex.same_j), ex.same_distance, update->ntimestep);
}

// NaN or inf from the model: stop instead of integrating them.
void PairMLFF::check_finite(const double *values, int64_t n, const char *what)
{
  for (int64_t k = 0; k < n; ++k)
    if (!std::isfinite(values[k]))
      error->one(FLERR,
                 "pair_style mlff: model '{}' returned non-finite {} at step {} on MPI rank {} (value {} "
                 "of {}); the structure is probably far outside its training data (see the "
                 "extrapolation warnings, if any)",
                 model_path_, what, update->ntimestep, comm->me, k, n);
}

// Sum this step's training-range excursions over the ranks; warn (rate-limited),
// stop (extrapolation error), and keep totals for finish().
void PairMLFF::report_excursion(const Excursion &ex)
{
  double counts[2] = {static_cast<double>(ex.n_pairs), static_cast<double>(ex.n_energies)};
  MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_DOUBLE, MPI_SUM, world);
  if (counts[0] == 0.0 && counts[1] == 0.0) return;

  struct {
    double value;
    int rank;
  } worst{ex.worst_excess, comm->me};
  MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE_INT, MPI_MAXLOC, world);
  double detail[2] = {static_cast<double>(ex.worst_pair), ex.worst_distance};
  MPI_Bcast(detail, 2, MPI_DOUBLE, worst.rank, world);
  const int pair = static_cast<int>(detail[0]);

  ++steps_outside_;
  pairs_outside_ += static_cast<long>(counts[0]);
  energies_outside_ += static_cast<long>(counts[1]);
  if (first_step_outside_ < 0) first_step_outside_ = update->ntimestep;
  if (pair >= 0 && worst.value > worst_excess_) {
    worst_excess_ = worst.value;
    worst_pair_ = pair;
    worst_distance_ = detail[1];
    worst_step_ = update->ntimestep;
  }
  std::string what;
  if (counts[0] > 0)
    what = fmt::format("{:.0f} pair(s) closer than in training (closest {} at {:.3f} Angstrom, training "
                       "minimum {:.3f})",
                       counts[0], monitor_.pair_name(pair), detail[1], monitor_.min_distance(pair));
  if (counts[1] > 0)
    what += fmt::format("{}{:.0f} atomic energies outside the training range", what.empty() ? "" : "; ",
                        counts[1]);
  if (extrapolation_ == Extrapolation::ERROR)
    error->all(FLERR, "pair_style mlff: step {}: model '{}' outside its training range: {} (extrapolation error)",
               update->ntimestep, model_path_, what);
  if (comm->me == 0 && steps_outside_ <= MAX_WARNINGS)
    error->warning(FLERR, "pair_style mlff: step {}: outside the training range: {}{}", update->ntimestep, what,
                   steps_outside_ == MAX_WARNINGS ? " (further warnings suppressed; totals at the end of the run)"
                                                  : "");
}

// error->one aborts the whole run (MPI_Abort): ranks waiting in a halo exchange for
// this one do not hang.
void PairMLFF::model_call_failed(const std::string &what, bool out_of_memory)
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  std::string msg;
  if (out_of_memory)
    msg = fmt::format("pair_style mlff: out of memory on MPI rank {} ({}) evaluating model '{}' for {} "
                      "local + {} ghost atoms ({} graph nodes, {} edges, {} mode): {}. Use more MPI "
                      "ranks or GPUs, a float32 model, or halo instead of redundant mode",
                      comm->me, device_index_ >= 0 ? fmt::format("cuda:{}", device_index_) : "cpu", model_path_,
                      nlocal, nall - nlocal, graph_.n_nodes(), graph_.n_edges(), mode_description(mode_), what);
  else
    msg = fmt::format("pair_style mlff: evaluating model '{}' failed on MPI rank {}: {}", model_path_, comm->me,
                      what);
  // On several ranks the abort can kill this process before LAMMPS's own (buffered)
  // report of the error is out: say it on unbuffered stderr first.
  if (comm->nprocs > 1) {
    std::fprintf(stderr, "ERROR on proc %d: %s\n", comm->me, msg.c_str());
    std::fflush(stderr);
  }
  error->one(FLERR, msg);
}

// forces on the local atoms only: a ghost node's prediction belongs to its owner
void PairMLFF::apply_direct_forces(const double *fn, int64_t n)
{
  if (n != 3 * static_cast<int64_t>(graph_.n_nodes()))
    error->one(FLERR, "pair_style mlff: model '{}' returned forces with {} values for {} nodes", model_path_, n,
               graph_.n_nodes());
  double **f = atom->f;
  const std::vector<int> &atom_of = graph_.node_atom();
  for (int k = 0; k < graph_.n_local_nodes(); ++k) {
    const int i = atom_of[k];
    f[i][0] += energy_unit_ * fn[3 * k];
    f[i][1] += energy_unit_ * fn[3 * k + 1];
    f[i][2] += energy_unit_ * fn[3 * k + 2];
  }
}

void PairMLFF::apply_energies_and_gradients(const double *e, int64_t n_energy, const double *g, int64_t n_grad)
{
  const int64_t nedges = graph_.n_edges();
  if (n_energy != graph_.n_nodes() || n_grad != 3 * nedges)
    error->one(FLERR,
               "pair_style mlff: model '{}' returned atomic_energy with {} values for {} nodes "
               "and edge_grad with {} values for {} edges",
               model_path_, n_energy, graph_.n_nodes(), n_grad, nedges);

  // ---- energies (local nodes first) ----------------------------------------
  const std::vector<int> &atom_of = graph_.node_atom();
  const int n_local = graph_.n_local_nodes();
  const double u = energy_unit_;    // model eV -> LAMMPS energy unit (1 in metal units)
  if (eflag_global) {
    double esum = 0.0;
    for (int k = 0; k < n_local; ++k) esum += e[k];
    eng_vdwl += u * esum;
  }
  if (eflag_atom)
    for (int k = 0; k < n_local; ++k) eatom[atom_of[k]] += u * e[k];

  // ---- forces and virial ---------------------------------------------------
  // Ghost entries (neighbours, and centres in redundant mode) go home through
  // LAMMPS's reverse communication (newton on).
  double **f = atom->f;
  const int *ei = graph_.edge_i().data();
  const int *ej = graph_.edge_j().data();
  const double *r = graph_.edge_vec().data();
  for (int64_t k = 0; k < nedges; ++k) {
    const int i = ei[k];
    const int j = ej[k];
    const double gx = u * g[3 * k], gy = u * g[3 * k + 1], gz = u * g[3 * k + 2];
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

/* ----------------------------------------------------------------------
   end of a run: where this style's time went, min/avg/max over ranks
------------------------------------------------------------------------- */

void PairMLFF::finish()
{
  long calls = n_calls_;
  MPI_Allreduce(MPI_IN_PLACE, &calls, 1, MPI_LONG, MPI_MAX, world);
  const double t_halo = halo_ ? halo_->seconds : 0.0;
  if (calls > 0) {
    double mine[7] = {t_graph_, t_model_, t_halo, t_forces_, sum_local_, sum_nodes_, sum_edges_};
    double lo[7], hi[7], sum[7];
    MPI_Allreduce(mine, lo, 7, MPI_DOUBLE, MPI_MIN, world);
    MPI_Allreduce(mine, hi, 7, MPI_DOUBLE, MPI_MAX, world);
    MPI_Allreduce(mine, sum, 7, MPI_DOUBLE, MPI_SUM, world);
    if (comm->me == 0) {
      const int np = comm->nprocs;
      std::string msg =
          fmt::format("pair_style mlff time per rank over {} model calls (seconds: min avg max):\n", calls);
      const char *names[4] = {"graph (edges, species)", "model (excl. halo comm)", "halo exchange (comm)",
                              "forces, virial"};
      for (int k = 0; k < 4; ++k)
        msg += fmt::format("  {:<24s} {:10.4g} {:10.4g} {:10.4g}\n", names[k], lo[k], sum[k] / np, hi[k]);
      msg += fmt::format("  per call and rank: {:.0f} local atoms, {:.0f} graph nodes, {:.0f} edges "
                         "(avg; max rank {:.0f} edges)\n",
                         sum[4] / np / calls, sum[5] / np / calls, sum[6] / np / calls, hi[6] / calls);
      utils::logmesg(lmp, msg);
    }
  }
  if (steps_outside_ > 0 && comm->me == 0)
    utils::logmesg(lmp,
                   "pair_style mlff: outside the training range in {} of {} model calls (first at step {}): {} "
                   "pair(s) closer than their training minimum - {} Angstrom{}, {} atomic energies outside "
                   "the training range\n",
                   steps_outside_, calls, first_step_outside_, pairs_outside_, extrapolation_tolerance_,
                   worst_pair_ >= 0 ? fmt::format(" (closest {} at {:.3f} Angstrom vs {:.3f}, step {})",
                                                  monitor_.pair_name(worst_pair_), worst_distance_,
                                                  monitor_.min_distance(worst_pair_), worst_step_)
                                    : std::string(),
                   energies_outside_);
  steps_outside_ = pairs_outside_ = energies_outside_ = 0;
  first_step_outside_ = worst_step_ = -1;
  worst_excess_ = worst_distance_ = 0.0;
  worst_pair_ = -1;
  t_graph_ = t_model_ = t_forces_ = 0.0;
  if (halo_) halo_->seconds = 0.0;
  sum_nodes_ = sum_edges_ = sum_local_ = 0.0;
  n_calls_ = 0;
}

/* ----------------------------------------------------------------------
   comm callbacks: the halo exchange's staging buffer (mlff_halo.cpp)
------------------------------------------------------------------------- */

int PairMLFF::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  return halo_->pack_forward(n, list, buf);
}

void PairMLFF::unpack_forward_comm(int n, int first, double *buf)
{
  halo_->unpack_forward(n, first, buf);
}

int PairMLFF::pack_reverse_comm(int n, int first, double *buf)
{
  return reverse_committee_ ? committee_.pack_reverse(n, first, buf) : halo_->pack_reverse(n, first, buf);
}

void PairMLFF::unpack_reverse_comm(int n, int *list, double *buf)
{
  if (reverse_committee_)
    committee_.unpack_reverse(n, list, buf);
  else
    halo_->unpack_reverse(n, list, buf);
}

/* ---------------------------------------------------------------------- */

double PairMLFF::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += graph_.memory_usage();
  if (halo_) bytes += halo_->memory_usage();
  bytes += committee_.memory_usage();
  return bytes;
}

/* ----------------------------------------------------------------------
   factory called by the loader mlffplugin.so (mlff_plugin.cpp)
------------------------------------------------------------------------- */

extern "C" __attribute__((visibility("default"))) LAMMPS_NS::Pair *mlff_create_pair(LAMMPS_NS::LAMMPS *lmp)
{
  return new LAMMPS_NS::PairMLFF(lmp);
}
