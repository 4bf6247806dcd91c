// pair_style mlff: evaluates an mlff deployed TorchScript model inside LAMMPS.
//
// Model contract: docs/model_interface.md.  Per step the plugin builds the graph
// (edges i -> j with |x_j - x_i| < r_max from a full neighbour list), calls
// forward(species, edge_index, edge_vec[, n_local]) and turns the returned
// per-node energies and per-edge gradients dE/dr_ij into forces, energy and
// virial:  f_i += g_ij, f_j -= g_ij, W -= r_ij (x) g_ij.
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
//    and the model calls torch.ops.mlff.halo_exchange after each layer.  The pair
//    style installs an exchanger (libmlff_ops.so) for the duration of the call:
//    the op's forward copies owner features to ghosts with
//    comm->forward_comm(this, width), its backward sums ghost gradients onto the
//    owners with comm->reverse_comm(this, width).  Ghost cutoff stays r_max.
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

#include "mlff/ops.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <malloc.h>
#include <optional>
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
  bool takes_n_local = false;    // format >= 2: forward(..., n_local) sums local energies only
  bool has_halo_widths = false;  // metadata lists the widths of its halo exchanges
  std::vector<int> halo_widths;  // values per atom of each halo_exchange call
  torch::Device device = torch::kCPU;
};

// The exchanger installed in libmlff_ops.so while the model runs in HALO mode.
struct MLFFHaloExchanger : public mlff::HaloExchanger {
  explicit MLFFHaloExchanger(PairMLFF *p) : pair(p) {}
  at::Tensor forward(const at::Tensor &x) override;
  at::Tensor reverse(const at::Tensor &g) override;

 private:
  int64_t width_of(const at::Tensor &x, const char *what) const;
  PairMLFF *pair;
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

// Last `nlines` non-empty lines of a text.
std::string last_lines(const std::string &text, int nlines)
{
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> kept;
  while (std::getline(in, line)) {
    line = utils::trim(line);
    if (!line.empty()) kept.push_back(line);
  }
  std::string out;
  for (size_t k = kept.size() > size_t(nlines) ? kept.size() - nlines : 0; k < kept.size(); ++k)
    out += (out.empty() ? "" : " | ") + kept[k];
  return out.empty() ? std::string("(no message)") : out;
}

std::string raw_text(const std::exception &e)
{
  if (auto *ce = dynamic_cast<const c10::Error *>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// Short message of an exception.  Errors raised inside a TorchScript model come
// wrapped: a TorchScript traceback first, the original message last.
std::string exception_text(const std::exception &e)
{
  const std::string text = raw_text(e);
  if (text.find("TorchScript interpreter") != std::string::npos) {
    // from the last line that reads "SomethingError: ..." on
    std::istringstream in(text);
    std::string line, tail;
    while (std::getline(in, line)) {
      const std::string t = utils::trim(line);
      const auto colon = t.find("Error: ");
      if (colon != std::string::npos && t.find(' ') > colon) tail.clear();
      if (!t.empty()) tail += t + "\n";
    }
    return tail.empty() ? last_lines(text, 2) : first_lines(tail);
  }
  return first_lines(text);
}

// Out of memory, also when the TorchScript interpreter has re-thrown the allocator's
// error as a plain runtime error (the exception type is lost then, the text is not).
bool is_out_of_memory(const std::exception &e)
{
  if (dynamic_cast<const c10::OutOfMemoryError *>(&e)) return true;
  const std::string text = raw_text(e);
  return text.find("out of memory") != std::string::npos ||
      text.find("not enough memory") != std::string::npos;
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

double wall_seconds()
{
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const char *mode_description(PairMLFF::Mode mode)
{
  switch (mode) {
    case PairMLFF::Mode::OWNER:
      return "owner-mapped (single rank: ghosts are images of local atoms)";
    case PairMLFF::Mode::LOCAL:
      return "ghost-node (local model: ghost neighbours are nodes, no exchange)";
    case PairMLFF::Mode::HALO:
      return "halo (ghost cutoff r_max, per-layer feature exchange)";
    case PairMLFF::Mode::REDUNDANT:
      return "redundant (ghost cutoff n_message_passing*r_max, no exchange)";
    default:
      return "auto";
  }
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
  // for malloc at all (big blocks come from the heap and are reused) and trim the
  // heap only when more than 2 GB are free at its top.  Process-wide;
  // MLFF_NO_MALLOPT=1 leaves glibc's defaults.
  static bool malloc_tuned = false;
  if (!malloc_tuned) {
    malloc_tuned = true;
    const char *env = std::getenv("MLFF_NO_MALLOPT");
    if (!(env && *env && strcmp(env, "0") != 0)) {
      mallopt(M_MMAP_MAX, 0);
      mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
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

  if (const char *env = std::getenv("MLFF_FAULT_INJECT_OOM_RANK")) fault_rank_ = std::atoi(env);
}

PairMLFF::~PairMLFF()
{
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
   pair_style mlff [halo|redundant]
------------------------------------------------------------------------- */

void PairMLFF::settings(int narg, char **arg)
{
  requested_mode_ = Mode::AUTO;
  if (narg > 1 || (narg == 1 && strcmp(arg[0], "halo") != 0 && strcmp(arg[0], "redundant") != 0))
    error->all(FLERR,
               "Illegal pair_style mlff command: expected no argument or one of 'halo', "
               "'redundant' (got '{}'). Give the model with: pair_coeff * * model.pt El1 El2 ...",
               narg ? arg[0] : "");
  if (narg == 1) requested_mode_ = strcmp(arg[0], "halo") == 0 ? Mode::HALO : Mode::REDUNDANT;
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

  select_device();
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

  // Comm buffers for the halo exchange: the widest exchange of the model.  Set
  // here already (not only in init_style): LAMMPS sizes its buffers from these.
  max_halo_width_ = 0;
  for (int w : model_->halo_widths) max_halo_width_ = std::max(max_halo_width_, w);
  comm_forward = comm_reverse = max_halo_width_;

  if (comm->me == 0) {
    std::string msg = fmt::format("pair_style mlff: model '{}'\n", model_path_);
    msg += fmt::format("  kind {}, dtype {}, r_max {} Angstrom, n_message_passing {}{}\n",
                       model_->kind, model_->dtype_name, r_max_, n_message_passing_,
                       model_->direct_forces ? ", direct forces (no energy)" : "");
    std::vector<std::string> widths;
    for (int w : model_->halo_widths) widths.push_back(std::to_string(w));
    msg += fmt::format("  halo exchanges: {}\n",
                       model_->has_halo_widths
                           ? (widths.empty() ? std::string("none (strictly local)")
                                             : fmt::format("{} x widths [{}]", widths.size(),
                                                           join(widths, ", ")))
                           : std::string("not supported by this model (redundant ghosts on "
                                         "several ranks)"));
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

  int ndev = 0;
  if (want != "cpu" && torch::cuda::is_available())
    ndev = static_cast<int>(torch::cuda::device_count());
  if (want == "cuda" && ndev == 0)
    error->all(FLERR,
               "pair_style mlff: MLFF_DEVICE=cuda but torch sees no CUDA device (torch {} {})",
               MLFF_TORCH_VERSION, torch::cuda::is_available() ? "" : "without CUDA support");
  device_index_ = static_cast<int>(mlff::select_device_index(node_rank_, ndev));

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
                                   : std::string(a[3] == 0 && want != "cpu"
                                                     ? "cpu (torch sees no CUDA device)"
                                                     : "cpu"));
    }
    if (comm->nprocs > shown) msg += fmt::format("  ... {} more ranks\n", comm->nprocs - shown);
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
    model->device = device_index_ >= 0 ? torch::Device(torch::kCUDA, device_index_)
                                       : torch::Device(torch::kCPU);
    model->module = torch::jit::load(path, model->device, extra);
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
  if (model->format_version != 1 && model->format_version != 2)
    bad_key("format_version",
            fmt::format("is {}; this plugin reads format versions 1 and 2 (rebuild the plugin "
                        "with scripts/build_plugin.sh from a matching mlff)",
                        model->format_version));
  model->takes_n_local = model->format_version >= 2;
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

  // "halo_widths": values per atom of each torch.ops.mlff.halo_exchange call the
  // model makes (format 2; [] = strictly local, null/absent = does not exchange)
  if (meta.contains("halo_widths") && !meta["halo_widths"].is_null()) {
    if (!meta["halo_widths"].is_array())
      bad_key("halo_widths", "is neither null nor a list of positive integers");
    for (const auto &w : meta["halo_widths"]) {
      if (!w.is_number_integer() || w.get<int>() < 1)
        bad_key("halo_widths", "is neither null nor a list of positive integers");
      model->halo_widths.push_back(w.get<int>());
    }
    model->has_halo_widths = true;
  }

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
  comm_forward = comm_reverse = max_halo_width_;
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
  if (comm->me == 0) {
    std::string extra;
    if (mode_ == Mode::HALO)
      extra = fmt::format(", {} exchange(s) of up to {} values per atom per step",
                          model_->halo_widths.size(), max_halo_width_);
    else if (mode_ == Mode::REDUNDANT)
      extra = fmt::format(", ghost cutoff {:.6g} Angstrom", comm->cutghostuser);
    utils::logmesg(lmp,
                   "pair_style mlff: {} MPI rank(s), {} mode{}, {} torch thread(s) per rank, "
                   "TorchScript graph optimisation {}\n",
                   comm->nprocs, mode_description(mode_), extra, nthreads_,
                   jit_optimize() ? "on" : "off (MLFF_JIT_OPTIMIZE=1 enables)");
  }
}

/* ----------------------------------------------------------------------
   choose how ghost atoms enter the graph (README.md, "Parallel modes")
------------------------------------------------------------------------- */

void PairMLFF::choose_mode()
{
  const bool local_model = n_message_passing_ <= 1;
  const bool can_halo = model_->has_halo_widths;
  const bool can_redundant = model_->takes_n_local;
  const bool one_rank = comm->nprocs == 1;

  if (local_model) {
    // halo and redundant coincide for a strictly local model: no exchange needed
    mode_ = (one_rank && atom->tag_enable && requested_mode_ == Mode::AUTO) ? Mode::OWNER
                                                                             : Mode::LOCAL;
    return;
  }

  if (requested_mode_ == Mode::HALO) {
    if (!can_halo)
      error->all(FLERR,
                 "pair_style mlff halo: model '{}' ({}, {} message-passing layers) does not "
                 "exchange its features between layers (no 'halo_widths' in its metadata); use "
                 "'pair_style mlff redundant' or plain 'pair_style mlff'",
                 model_path_, model_->kind, n_message_passing_);
    mode_ = Mode::HALO;
  } else if (requested_mode_ == Mode::REDUNDANT) {
    if (!can_redundant)
      error->all(FLERR,
                 "pair_style mlff redundant: model '{}' has format version {}, which cannot "
                 "restrict its energy to local atoms; re-export it with this mlff (mlff-deploy)",
                 model_path_, model_->format_version);
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
               model_path_, n_message_passing_, model_->format_version);
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
  ghost_node_atoms_.clear();
  for (int i = 0; i < nlocal; ++i) node_of_[i] = i;
  n_nodes_ = nlocal;

  if (mode_ == Mode::REDUNDANT) {
    // every atom is a node with its own edges; node index = LAMMPS index
    for (int j = nlocal; j < nall; ++j) node_of_[j] = j;
    n_nodes_ = nall;
  } else if (nall > nlocal && atom->tag_enable) {
    // ghost -> owning local atom, through the atom IDs.  OWNER: every ghost is such
    // an image.  LOCAL/HALO: the periodic images of this rank's own atoms are mapped
    // too (exact, as in OWNER mode; the pair then shares one filter evaluation and
    // needs no exchange); the other ghosts become ghost nodes per step in compute().
    const tagint *tag = atom->tag;
    tagint maxtag = 0;
    for (int i = 0; i < nall; ++i) maxtag = std::max(maxtag, tag[i]);
    if (maxtag <= 4 * static_cast<tagint>(nall) + 1024) {
      tag_lookup_.assign(maxtag + 1, -1);
      for (int i = 0; i < nlocal; ++i) tag_lookup_[tag[i]] = i;
      for (int j = nlocal; j < nall; ++j) node_of_[j] = tag_lookup_[tag[j]];
    } else {
      // sparse IDs (e.g. after delete_atoms): hash map instead of a table
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

  const double t0 = wall_seconds();
  check_box();    // the box may shrink during NPT
  if (neighbor->ago == 0 || node_map_nall_ != nall) build_node_map();

  // In halo mode every rank takes part in every exchange, also one that owns no
  // atoms (an empty subdomain may still relay ghosts between its neighbours).
  // The other modes communicate nothing inside the model call.
  if (nlocal == 0 && mode_ != Mode::HALO) return;

  // LOCAL/HALO: ghost nodes are the ghosts within r_max of a local atom this step,
  // numbered nlocal, nlocal+1, ... in the order the edges reach them
  const bool ghost_nodes_per_step = mode_ == Mode::LOCAL || mode_ == Mode::HALO;
  if (ghost_nodes_per_step) {
    for (int j : ghost_node_atoms_) node_of_[j] = -1;
    ghost_node_atoms_.clear();
    n_nodes_ = nlocal;
  }

  const int inum = list->inum;
  const int ncentres = mode_ == Mode::REDUNDANT ? inum + list->gnum : inum;
  const int *ilist = list->ilist;
  const int *numneigh = list->numneigh;
  int **firstneigh = list->firstneigh;

  // ---- edges, one pass over the full list ---------------------------------
  // The centre's node index equals its LAMMPS index in every mode.
  const double cutsq_model = r_max_ * r_max_;
  edge_src_.clear();
  edge_dst_.clear();
  edge_j_.clear();
  edge_vec_.clear();
  int unmapped = -1;
  for (int ii = 0; ii < ncentres; ++ii) {
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
      int nj = node_of_[j];
      if (nj < 0) {
        if (!ghost_nodes_per_step) {
          unmapped = j;
          continue;
        }
        nj = node_of_[j] = n_nodes_++;
        ghost_node_atoms_.push_back(j);
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
               "pair_style mlff: ghost atom ID {} has no graph node (its owner is not on this "
               "MPI rank in {} mode)",
               atom->tag_enable ? static_cast<bigint>(atom->tag[unmapped]) : -1,
               mode_description(mode_));
  const int64_t nedges = static_cast<int64_t>(edge_src_.size());

  // ---- node species --------------------------------------------------------
  node_species_.resize(n_nodes_);
  for (int i = 0; i < nlocal; ++i) node_species_[i] = type2species_[type[i]];
  if (mode_ == Mode::REDUNDANT) {
    for (int j = nlocal; j < nall; ++j) node_species_[j] = type2species_[type[j]];
  } else {
    for (size_t k = 0; k < ghost_node_atoms_.size(); ++k)
      node_species_[nlocal + k] = type2species_[type[ghost_node_atoms_[k]]];
  }

  // ---- model call ----------------------------------------------------------
  const double t1 = wall_seconds();
  const double halo_before = t_halo_;
  torch::Tensor atomic_energy, edge_grad, node_forces;
  MLFFHaloExchanger exchanger(this);
  n_halo_forward_ = n_halo_reverse_ = 0;
  try {
    torch::AutoGradMode grad_on(true);    // the model differentiates itself
    JitOptimizeGuard jit_mode(jit_optimize());
    ThreadsGuard threads(nthreads_);
    std::optional<mlff::HaloExchangerScope> halo_scope;
    if (mode_ == Mode::HALO) halo_scope.emplace(&exchanger);

    const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
    torch::Tensor species = torch::empty({n_nodes_}, i64);
    if (n_nodes_ > 0)
      std::memcpy(species.data_ptr<int64_t>(), node_species_.data(), n_nodes_ * sizeof(int64_t));
    torch::Tensor edge_index = torch::empty({2, nedges}, i64);
    torch::Tensor edge_vec = torch::empty({nedges, 3}, torch::TensorOptions().dtype(torch::kFloat64));
    if (nedges > 0) {
      int64_t *ei = edge_index.data_ptr<int64_t>();
      std::memcpy(ei, edge_src_.data(), nedges * sizeof(int64_t));
      std::memcpy(ei + nedges, edge_dst_.data(), nedges * sizeof(int64_t));
      std::memcpy(edge_vec.data_ptr<double>(), edge_vec_.data(), 3 * nedges * sizeof(double));
    }
    const torch::Device dev = model_->device;
    std::vector<torch::jit::IValue> inputs{species.to(dev), edge_index.to(dev),
                                           edge_vec.to(dev, model_->dtype)};
    if (model_->takes_n_local) inputs.emplace_back(static_cast<int64_t>(nlocal));

    auto out = model_->module.forward(inputs);
    auto dict = out.toGenericDict();
    const auto cpu64 = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCPU);
    if (model_->direct_forces) {
      if (!dict.contains("forces")) throw std::runtime_error("model output lacks 'forces'");
      node_forces = dict.at("forces").toTensor().to(cpu64).contiguous();
    } else {
      if (!dict.contains("atomic_energy") || !dict.contains("edge_grad"))
        throw std::runtime_error("model output lacks 'atomic_energy' or 'edge_grad'");
      atomic_energy = dict.at("atomic_energy").toTensor().to(cpu64).contiguous();
      edge_grad = dict.at("edge_grad").toTensor().to(cpu64).contiguous();
    }
  } catch (const std::exception &e) {
    // error->one aborts the whole run (MPI_Abort): ranks waiting in a halo
    // exchange for this one do not hang.
    std::string msg;
    if (is_out_of_memory(e))
      msg = fmt::format("pair_style mlff: out of memory on MPI rank {} ({}) evaluating model '{}' for {} "
                        "local + {} ghost atoms ({} graph nodes, {} edges, {} mode): {}. Use more MPI "
                        "ranks or GPUs, a float32 model, or halo instead of redundant mode",
                        comm->me, device_index_ >= 0 ? fmt::format("cuda:{}", device_index_) : "cpu",
                        model_path_, nlocal, nall - nlocal, n_nodes_, nedges, mode_description(mode_),
                        exception_text(e));
    else
      msg = fmt::format("pair_style mlff: evaluating model '{}' failed on MPI rank {}: {}", model_path_,
                        comm->me, exception_text(e));
    // On several ranks the abort can kill this process before LAMMPS's own (buffered)
    // report of the error is out: say it on unbuffered stderr first.
    if (comm->nprocs > 1) {
      std::fprintf(stderr, "ERROR on proc %d: %s\n", comm->me, msg.c_str());
      std::fflush(stderr);
    }
    error->one(FLERR, msg);
  }

  const double t2 = wall_seconds();
  t_graph_ += t1 - t0;
  t_model_ += (t2 - t1) - (t_halo_ - halo_before);
  sum_nodes_ += n_nodes_;
  sum_edges_ += static_cast<double>(nedges);
  sum_local_ += nlocal;
  ++n_calls_;

  if (mode_ == Mode::HALO) {
    const int expected = static_cast<int>(model_->halo_widths.size());
    if (n_halo_forward_ != expected || (!model_->direct_forces && n_halo_reverse_ != expected))
      error->one(FLERR,
                 "pair_style mlff: model '{}' made {} forward and {} reverse halo exchanges, but "
                 "its metadata (halo_widths) declares {}",
                 model_path_, n_halo_forward_, n_halo_reverse_, expected);
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
    t_forces_ += wall_seconds() - t2;
    return;
  }

  if (atomic_energy.numel() != n_nodes_ || edge_grad.numel() != 3 * nedges)
    error->one(FLERR,
               "pair_style mlff: model '{}' returned atomic_energy with {} values for {} nodes "
               "and edge_grad with {} values for {} edges",
               model_path_, atomic_energy.numel(), n_nodes_, edge_grad.numel(), nedges);

  // ---- energies (local atoms = nodes 0..nlocal-1) --------------------------
  const double *e = atomic_energy.data_ptr<double>();
  if (eflag_global) {
    double esum = 0.0;
    for (int i = 0; i < nlocal; ++i) esum += e[i];
    eng_vdwl += esum;
  }
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += e[i];

  // ---- forces and virial ---------------------------------------------------
  // Ghost entries (neighbours, and centres in redundant mode) go home through
  // LAMMPS's reverse communication (newton on).
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
  t_forces_ += wall_seconds() - t2;
}

/* ----------------------------------------------------------------------
   end of a run: where this style's time went, min/avg/max over ranks
------------------------------------------------------------------------- */

void PairMLFF::finish()
{
  long calls = n_calls_;
  MPI_Allreduce(MPI_IN_PLACE, &calls, 1, MPI_LONG, MPI_MAX, world);
  if (calls > 0) {
    double mine[7] = {t_graph_, t_model_, t_halo_, t_forces_, sum_local_, sum_nodes_, sum_edges_};
    double lo[7], hi[7], sum[7];
    MPI_Allreduce(mine, lo, 7, MPI_DOUBLE, MPI_MIN, world);
    MPI_Allreduce(mine, hi, 7, MPI_DOUBLE, MPI_MAX, world);
    MPI_Allreduce(mine, sum, 7, MPI_DOUBLE, MPI_SUM, world);
    if (comm->me == 0) {
      const int np = comm->nprocs;
      std::string msg = fmt::format("pair_style mlff time per rank over {} model calls "
                                    "(seconds: min avg max):\n", calls);
      const char *names[4] = {"graph (edges, species)", "model (excl. halo comm)",
                              "halo exchange (comm)", "forces, virial"};
      for (int k = 0; k < 4; ++k)
        msg += fmt::format("  {:<24s} {:10.4g} {:10.4g} {:10.4g}\n", names[k], lo[k], sum[k] / np,
                           hi[k]);
      msg += fmt::format("  per call and rank: {:.0f} local atoms, {:.0f} graph nodes, {:.0f} edges "
                         "(avg; max rank {:.0f} edges)\n",
                         sum[4] / np / calls, sum[5] / np / calls, sum[6] / np / calls,
                         hi[6] / calls);
      utils::logmesg(lmp, msg);
    }
  }
  t_graph_ = t_model_ = t_halo_ = t_forces_ = 0.0;
  sum_nodes_ = sum_edges_ = sum_local_ = 0.0;
  n_calls_ = 0;
}

/* ----------------------------------------------------------------------
   halo exchange of model features (called from inside the model, through
   torch.ops.mlff.halo_exchange / halo_reverse, on every rank in step)

   Staging: halo_buf_ holds nlocal + nghost rows in LAMMPS atom order, each the
   `width` feature values in the model's dtype, padded to whole doubles.
   Forward: local rows <- the nodes' rows; forward_comm fills every ghost row
   from its owner (relayed ghosts included); ghost nodes read their rows back.
   Reverse (the adjoint): local and ghost-node rows <- gradient rows, other
   ghost rows 0; reverse_comm adds every ghost row onto its owner's row; the
   result is the local rows, ghost-node rows 0.
------------------------------------------------------------------------- */

int64_t MLFFHaloExchanger::width_of(const at::Tensor &x, const char *what) const
{
  if (x.dim() < 1 || x.size(0) != pair->n_nodes_)
    throw std::runtime_error(fmt::format("torch.ops.mlff.{} got a tensor with {} rows, but the "
                                         "graph has {} nodes",
                                         what, x.dim() < 1 ? 0 : x.size(0), pair->n_nodes_));
  int64_t w = 1;
  for (int64_t d = 1; d < x.dim(); ++d) w *= x.size(d);
  if (w > pair->max_halo_width_)
    throw std::runtime_error(fmt::format("the model exchanges {} values per atom, more than the "
                                         "{} its metadata (halo_widths) declares",
                                         w, pair->max_halo_width_));
  return w;
}

// Rows travel in the model's own precision: a row of w values of `elem` bytes fills
// ceil(w·elem / 8) doubles of LAMMPS's buffers (fp32: two values per double), so fp32
// models move half the bytes of fp64 ones and skip the conversion to double.
size_t PairMLFF::halo_stage(size_t elem_bytes, int64_t w)
{
  const size_t row_bytes = static_cast<size_t>(w) * elem_bytes;
  halo_float_ = elem_bytes == sizeof(float);
  halo_width_ = static_cast<int>((row_bytes + sizeof(double) - 1) / sizeof(double));
  return row_bytes;
}

namespace {
at::Tensor features_on_cpu(const at::Tensor &x, const char *what)
{
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, "torch.ops.mlff.", what,
              ": float32/float64 features expected, got ", x.scalar_type());
  return x.detach().to(torch::kCPU).contiguous();
}
}    // namespace

at::Tensor MLFFHaloExchanger::forward(const at::Tensor &x)
{
  PairMLFF &p = *pair;
  const int64_t w = width_of(x, "halo_exchange");
  ++p.n_halo_forward_;
  // Test aid: one rank fails in the middle of the model while the others wait
  // in the exchange; the run must stop with the error, not hang.
  TORCH_CHECK_WITH(OutOfMemoryError, !(p.fault_rank_ == p.comm->me && p.n_halo_forward_ == 2),
                   "out of memory injected by MLFF_FAULT_INJECT_OOM_RANK=", p.fault_rank_);
  const int nlocal = p.atom->nlocal;
  const int nall = nlocal + p.atom->nghost;
  const at::Tensor xc = features_on_cpu(x, "halo_exchange");
  if (w == 0) return xc.clone().view(x.sizes()).to(x.device());
  const size_t row = p.halo_stage(xc.element_size(), w), stride = p.halo_width_ * sizeof(double);

  p.halo_buf_.resize(static_cast<size_t>(nall) * p.halo_width_);
  char *buf = reinterpret_cast<char *>(p.halo_buf_.data());
  const char *in = static_cast<const char *>(xc.data_ptr());
  for (int i = 0; i < nlocal; ++i) std::memcpy(buf + i * stride, in + i * row, row);
  const double t0 = wall_seconds();
  p.comm->forward_comm(&p, p.halo_width_);
  p.t_halo_ += wall_seconds() - t0;
  p.halo_width_ = 0;

  // out: the local rows as they were, then every ghost node's row from its owner
  at::Tensor out = at::empty_like(xc);
  char *o = static_cast<char *>(out.data_ptr());
  std::memcpy(o, in, row * nlocal);
  for (size_t k = 0; k < p.ghost_node_atoms_.size(); ++k)
    std::memcpy(o + (nlocal + k) * row, buf + static_cast<size_t>(p.ghost_node_atoms_[k]) * stride, row);
  return out.view(x.sizes()).to(x.device());
}

at::Tensor MLFFHaloExchanger::reverse(const at::Tensor &g)
{
  PairMLFF &p = *pair;
  const int64_t w = width_of(g, "halo_reverse");
  ++p.n_halo_reverse_;
  const int nlocal = p.atom->nlocal;
  const int nall = nlocal + p.atom->nghost;
  const at::Tensor gc = features_on_cpu(g, "halo_reverse");
  at::Tensor out = at::zeros_like(gc);
  if (w == 0) return out.view(g.sizes()).to(g.device());
  const size_t row = p.halo_stage(gc.element_size(), w), stride = p.halo_width_ * sizeof(double);

  p.halo_buf_.assign(static_cast<size_t>(nall) * p.halo_width_, 0.0);    // all-zero bits: 0 in fp32 too
  char *buf = reinterpret_cast<char *>(p.halo_buf_.data());
  const char *in = static_cast<const char *>(gc.data_ptr());
  for (int i = 0; i < nlocal; ++i) std::memcpy(buf + i * stride, in + i * row, row);
  for (size_t k = 0; k < p.ghost_node_atoms_.size(); ++k)
    std::memcpy(buf + static_cast<size_t>(p.ghost_node_atoms_[k]) * stride, in + (nlocal + k) * row, row);
  const double t0 = wall_seconds();
  p.comm->reverse_comm(&p, p.halo_width_);
  p.t_halo_ += wall_seconds() - t0;
  p.halo_width_ = 0;
  char *o = static_cast<char *>(out.data_ptr());
  for (int i = 0; i < nlocal; ++i) std::memcpy(o + i * row, buf + i * stride, row);
  return out.view(g.sizes()).to(g.device());
}

int PairMLFF::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  const int w = halo_width_;
  if (w <= 0) return 0;
  const double *src = halo_buf_.data();
  for (int i = 0; i < n; ++i)
    std::memcpy(buf + static_cast<size_t>(i) * w, src + static_cast<size_t>(list[i]) * w,
                sizeof(double) * w);
  return n * w;
}

void PairMLFF::unpack_forward_comm(int n, int first, double *buf)
{
  const int w = halo_width_;
  if (w <= 0 || n <= 0) return;
  std::memcpy(halo_buf_.data() + static_cast<size_t>(first) * w, buf,
              sizeof(double) * static_cast<size_t>(n) * w);
}

int PairMLFF::pack_reverse_comm(int n, int first, double *buf)
{
  const int w = halo_width_;
  if (w <= 0) return 0;
  if (n > 0)
    std::memcpy(buf, halo_buf_.data() + static_cast<size_t>(first) * w,
                sizeof(double) * static_cast<size_t>(n) * w);
  return n * w;
}

namespace {
template <typename S>
void add_rows(double *dst, const int *list, const double *in, int n, int w_doubles)
{
  const int values = static_cast<int>(w_doubles * sizeof(double) / sizeof(S));
  for (int i = 0; i < n; ++i) {
    S *row = reinterpret_cast<S *>(dst + static_cast<size_t>(list[i]) * w_doubles);
    const S *add = reinterpret_cast<const S *>(in + static_cast<size_t>(i) * w_doubles);
    for (int c = 0; c < values; ++c) row[c] += add[c];    // fp32 padding values are 0 + 0
  }
}
}    // namespace

void PairMLFF::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int w = halo_width_;
  if (w <= 0) return;
  if (halo_float_)
    add_rows<float>(halo_buf_.data(), list, buf, n, w);
  else
    add_rows<double>(halo_buf_.data(), list, buf, n, w);
}

/* ---------------------------------------------------------------------- */

double PairMLFF::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (edge_src_.capacity() + edge_dst_.capacity() + node_species_.capacity()) * sizeof(int64_t);
  bytes += (edge_j_.capacity() + node_of_.capacity() + tag_lookup_.capacity() +
            ghost_node_atoms_.capacity()) * sizeof(int);
  bytes += (edge_vec_.capacity() + halo_buf_.capacity()) * sizeof(double);
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
