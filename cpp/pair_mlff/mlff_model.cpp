// Loading, validating and calling a deployed mlff model (mlff_model.h).
//
// Threads: libtorch's intra-op threads per MPI rank are set for the duration of each
// call and restored afterwards (process-wide setting; an embedding Python process
// keeps its own).
//
// TorchScript's profiling graph executor specialises the graph on input shapes.  In
// MD the edge count changes nearly every step, and on CPU (no fuser) the
// re-specialisation costs more than it gains: measured CPU time per step with the
// optimising executor vs plain interpretation: toluene SchNet 64x3 fp64 1.7 vs
// 1.3 ms, fp32 1.1 vs 0.86 ms; 864 Cu atoms 323 vs 200 ms.  So the model runs
// unoptimised unless MLFF_JIT_OPTIMIZE=1 (thread-local setting, restored per call).

#include "mlff_model.h"

#include "json.h"
#include "utils.h"

#include "mlff/ops.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>

using namespace LAMMPS_NS;
using namespace LAMMPS_NS::MLFF;

namespace {

// First lines of a (possibly multi-line, backtrace-carrying) exception text.
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
  return text.find("out of memory") != std::string::npos || text.find("not enough memory") != std::string::npos;
}

// An mlff training checkpoint is a torch.save zip archive whose pickle holds the
// record format "mlff-checkpoint" (python/mlff/train/checkpoint.py).
bool is_training_checkpoint(const std::string &path)
{
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("data.pkl")) return false;
    auto [data, size] = reader.getRecord("data.pkl");
    const char *bytes = static_cast<const char *>(data.get());
    static const std::string mark = "mlff-checkpoint";
    return std::search(bytes, bytes + size, mark.begin(), mark.end()) != bytes + size;
  } catch (const std::exception &) {
    return false;
  }
}

// An AOTInductor package is a zip archive holding <name>/data/aotinductor/...
bool is_aoti_package(const std::string &path)
{
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    for (const auto &name : reader.getAllRecords())
      if (name.rfind("data/aotinductor/", 0) == 0) return true;
  } catch (const std::exception &) {
  }
  return false;
}

// torch's intra-op thread count for the duration of one model call
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

}    // namespace

struct ModelRunner::Impl {
  torch::jit::Module module;
  // AOTInductor packages (mlff-deploy --format aoti): compiled energy and gradient
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti;
  std::vector<std::string> aoti_outputs;    // names of the package's outputs, in order
  std::string metadata_text;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat64;
  torch::Tensor atomic_energy, edge_grad, forces;    // last outputs (float64, host)
  torch::Tensor member_forces, member_atomic_energy, member_virial;
};

ModelRunner::ModelRunner() : impl_(std::make_unique<Impl>()) {}
ModelRunner::~ModelRunner() = default;

bool ModelRunner::jit_optimize()
{
  static const bool on = [] {
    const char *env = std::getenv("MLFF_JIT_OPTIMIZE");
    return env && *env && std::strcmp(env, "0") != 0;
  }();
  return on;
}

int ModelRunner::cuda_device_count()
{
  return torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
}

int ModelRunner::select_device(int node_local_rank, int device_count)
{
  return static_cast<int>(mlff::select_device_index(node_local_rank, device_count));
}

std::string ModelRunner::device_name() const
{
  return impl_->device.str();
}

void ModelRunner::load(const std::string &path, int device_index)
{
  info_ = ModelInfo();
  info_.path = path;
  torch::jit::ExtraFilesMap extra{{"metadata.json", ""}};
  impl_->device = device_index >= 0 ? torch::Device(torch::kCUDA, device_index) : torch::Device(torch::kCPU);
  impl_->aoti.reset();
  if (is_aoti_package(path)) {
    try {
      impl_->aoti = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model", false, 1,
                                                                              device_index);
      auto meta = impl_->aoti->get_metadata();
      impl_->metadata_text = meta.count("mlff_metadata") ? meta["mlff_metadata"] : std::string();
    } catch (const std::exception &e) {
      throw ModelError(fmt::format("pair_style mlff: '{}' is an AOTInductor package that cannot be loaded ({}); "
                                   "packages run only with the torch that compiled them: export it again "
                                   "(mlff-deploy --format aoti) or use a TorchScript export",
                                   path, exception_text(e)));
    }
    return;
  }
  try {
    impl_->module = torch::jit::load(path, impl_->device, extra);
    impl_->module.eval();
  } catch (const std::exception &e) {
    if (is_training_checkpoint(path))
      throw ModelError(fmt::format("pair_style mlff: '{}' is an mlff training checkpoint, not a deployed "
                                   "model: deploy it first with 'mlff-deploy {} -o model.pt' and give "
                                   "model.pt to pair_coeff",
                                   path, path));
    throw ModelError(fmt::format("pair_style mlff: '{}' is not an mlff deployed model: TorchScript "
                                 "loading failed ({})",
                                 path, exception_text(e)));
  }
  impl_->metadata_text = extra["metadata.json"];
}

const ModelInfo &ModelRunner::read_metadata()
{
  ModelInfo &m = info_;
  const std::string &path = m.path;
  const std::string &text = impl_->metadata_text;
  if (text.empty())
    throw ModelError(fmt::format("pair_style mlff: '{}' is a TorchScript file without the 'metadata.json' "
                                 "extra file, so it is not an mlff deployed model (export models with "
                                 "mlff-deploy)",
                                 path));
  json meta;
  try {
    meta = json::parse(text);
  } catch (const std::exception &e) {
    throw ModelError(
        fmt::format("pair_style mlff: metadata.json in '{}' is not valid JSON: {}", path, first_lines(e.what(), 1)));
  }
  if (!meta.is_object() || !meta.contains("format") || !meta["format"].is_string() ||
      meta["format"].get<std::string>() != "mlff-deployed-model")
    throw ModelError(fmt::format("pair_style mlff: '{}' is not an mlff deployed model: metadata.json has no "
                                 "\"format\": \"mlff-deployed-model\"",
                                 path));
  m.format = meta["format"].get<std::string>();

  auto bad_key = [&](const std::string &key, const std::string &what) {
    return ModelError(fmt::format("pair_style mlff: metadata.json of '{}': '{}' {}", path, key, what));
  };

  // (only checked accessors below: a mistyped value must give an error, not a json exception)
  if (!meta.contains("format_version") || !meta["format_version"].is_number_integer())
    throw bad_key("format_version", "missing or not an integer");
  m.format_version = meta["format_version"].get<int>();
  if (m.format_version != 1 && m.format_version != 2)
    throw bad_key("format_version",
                  fmt::format("is {}; this plugin reads format versions 1 and 2 (rebuild the plugin with "
                              "scripts/build_plugin.sh from a matching mlff)",
                              m.format_version));
  m.takes_n_local = m.format_version >= 2;
  m.mlff_version = meta.contains("mlff_version") && meta["mlff_version"].is_string()
      ? meta["mlff_version"].get<std::string>()
      : std::string("?");
  m.kind = meta.contains("model_kind") && meta["model_kind"].is_string() ? meta["model_kind"].get<std::string>()
                                                                           : std::string("?");

  if (!meta.contains("r_max") || !meta["r_max"].is_number()) throw bad_key("r_max", "missing or not a number");
  m.r_max = meta["r_max"].get<double>();
  if (!(m.r_max > 0.0) || !std::isfinite(m.r_max)) throw bad_key("r_max", "must be a positive number");

  if (!meta.contains("species") || !meta["species"].is_array() || meta["species"].empty())
    throw bad_key("species", "missing or not a non-empty list of element symbols");
  for (const auto &s : meta["species"]) {
    if (!s.is_string()) throw bad_key("species", "contains a value that is not a string");
    m.species.push_back(s.get<std::string>());
  }

  if (!meta.contains("n_message_passing") || !meta["n_message_passing"].is_number_integer())
    throw bad_key("n_message_passing", "missing or not an integer");
  m.n_message_passing = meta["n_message_passing"].get<int>();
  if (m.n_message_passing < 0) throw bad_key("n_message_passing", "must be >= 0");

  m.dtype_name = meta.contains("dtype") && meta["dtype"].is_string() ? meta["dtype"].get<std::string>()
                                                                     : std::string();
  if (m.dtype_name == "float64")
    impl_->dtype = torch::kFloat64;
  else if (m.dtype_name == "float32")
    impl_->dtype = torch::kFloat32;
  else
    throw bad_key("dtype", fmt::format("is '{}'; expected float32 or float64", m.dtype_name));
  m.float32 = impl_->dtype == torch::kFloat32;

  if (meta.contains("direct_forces") && !meta["direct_forces"].is_boolean())
    throw bad_key("direct_forces", "is not true/false");
  m.direct_forces = meta.contains("direct_forces") && meta["direct_forces"].get<bool>();

  // "halo_widths": values per atom of each torch.ops.mlff.halo_exchange call the
  // model makes (format 2; [] = strictly local, null/absent = does not exchange)
  if (meta.contains("halo_widths") && !meta["halo_widths"].is_null()) {
    if (!meta["halo_widths"].is_array()) throw bad_key("halo_widths", "is neither null nor a list of positive integers");
    for (const auto &w : meta["halo_widths"]) {
      if (!w.is_number_integer() || w.get<int>() < 1)
        throw bad_key("halo_widths", "is neither null nor a list of positive integers");
      m.halo_widths.push_back(w.get<int>());
    }
    m.has_halo_widths = true;
  }

  if (impl_->aoti) {
    // "outputs": the package's outputs in order; "torch_version": the torch that compiled it
    if (!meta.contains("outputs") || !meta["outputs"].is_array()) throw bad_key("outputs", "missing (AOTI package)");
    impl_->aoti_outputs.clear();
    for (const auto &o : meta["outputs"]) impl_->aoti_outputs.push_back(o.get<std::string>());
    const std::string built = meta.value("torch_version", std::string("?"));
    if (built != MLFF_TORCH_VERSION)
      throw ModelError(fmt::format("pair_style mlff: '{}' was compiled by AOTInductor with torch {}, but this "
                                   "plugin runs torch {}: packages run only with the torch that compiled them; "
                                   "export it again (mlff-deploy --format aoti) or use a TorchScript export",
                                   path, built, MLFF_TORCH_VERSION));
    m.takes_n_local = true;    // local_weight input
  }

  // "committee" (optional): number of members of a committee file
  if (meta.contains("committee") && !meta["committee"].is_null()) {
    if (!meta["committee"].is_number_integer() || meta["committee"].get<int>() < 2)
      throw bad_key("committee", "is not an integer >= 2");
    m.committee = meta["committee"].get<int>();
  }

  // "training_range" (optional): {"pair_min_distance": {"A-B": Å}, "atomic_energy": {"A": [lo, hi]}}
  if (meta.contains("training_range") && meta["training_range"].is_object()) {
    const json &range = meta["training_range"];
    if (range.contains("pair_min_distance") && range["pair_min_distance"].is_object())
      for (const auto &item : range["pair_min_distance"].items()) {
        if (!item.value().is_number()) throw bad_key("training_range.pair_min_distance", "has a non-number value");
        m.pair_min_distance[item.key()] = item.value().get<double>();
      }
    if (range.contains("atomic_energy") && range["atomic_energy"].is_object())
      for (const auto &item : range["atomic_energy"].items()) {
        const json &v = item.value();
        if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
          throw bad_key("training_range.atomic_energy", "has a value that is not [low, high]");
        m.atomic_energy_range[item.key()] = {v[0].get<double>(), v[1].get<double>()};
      }
  }
  return m;
}

ModelRunner::Output ModelRunner::run(const std::vector<int64_t> &species, const std::vector<int64_t> &src,
                                     const std::vector<int64_t> &dst, const std::vector<double> &edge_vec,
                                     int64_t n_local, mlff::HaloExchanger *exchanger, int nthreads)
{
  const int64_t n_nodes = static_cast<int64_t>(species.size());
  const int64_t n_edges = static_cast<int64_t>(src.size());
  Impl &im = *impl_;
  Output out;
  try {
    torch::AutoGradMode grad_on(true);    // the model differentiates itself
    JitOptimizeGuard jit_mode(jit_optimize());
    ThreadsGuard threads(nthreads);
    std::optional<mlff::HaloExchangerScope> halo_scope;
    if (exchanger) halo_scope.emplace(exchanger);

    const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
    torch::Tensor species_t = torch::empty({n_nodes}, i64);
    if (n_nodes > 0) std::memcpy(species_t.data_ptr<int64_t>(), species.data(), n_nodes * sizeof(int64_t));
    torch::Tensor edge_index = torch::empty({2, n_edges}, i64);
    torch::Tensor edge_vec_t = torch::empty({n_edges, 3}, torch::TensorOptions().dtype(torch::kFloat64));
    if (n_edges > 0) {
      int64_t *ei = edge_index.data_ptr<int64_t>();
      std::memcpy(ei, src.data(), n_edges * sizeof(int64_t));
      std::memcpy(ei + n_edges, dst.data(), n_edges * sizeof(int64_t));
      std::memcpy(edge_vec_t.data_ptr<double>(), edge_vec.data(), 3 * n_edges * sizeof(double));
    }
    const torch::Device dev = im.device;
    c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
    if (im.aoti) {
      at::Tensor weight = torch::zeros({n_nodes}, torch::TensorOptions().dtype(im.dtype));
      weight.narrow(0, 0, n_local).fill_(1.0);
      auto outputs = im.aoti->run({species_t.to(dev), edge_index.to(dev), edge_vec_t.to(dev, im.dtype), weight.to(dev)});
      for (size_t k = 0; k < outputs.size() && k < im.aoti_outputs.size(); ++k)
        dict.insert(im.aoti_outputs[k], outputs[k]);
    } else {
      std::vector<torch::jit::IValue> inputs{species_t.to(dev), edge_index.to(dev), edge_vec_t.to(dev, im.dtype)};
      if (info_.takes_n_local) inputs.emplace_back(n_local);
      dict = im.module.forward(inputs).toGenericDict();
    }
    const auto cpu64 = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCPU);
    if (info_.committee) {
      if (!dict.contains("member_forces")) throw std::runtime_error("committee output lacks 'member_forces'");
      im.member_forces = dict.at("member_forces").toTensor().to(cpu64).contiguous();
      out.member_forces = im.member_forces.data_ptr<double>();
      out.n_member_forces = im.member_forces.numel();
      if (!info_.direct_forces) {
        if (!dict.contains("member_atomic_energy") || !dict.contains("member_virial"))
          throw std::runtime_error("committee output lacks 'member_atomic_energy' or 'member_virial'");
        im.member_atomic_energy = dict.at("member_atomic_energy").toTensor().to(cpu64).contiguous();
        im.member_virial = dict.at("member_virial").toTensor().to(cpu64).contiguous();
        out.member_atomic_energy = im.member_atomic_energy.data_ptr<double>();
        out.n_member_atomic_energy = im.member_atomic_energy.numel();
        out.member_virial = im.member_virial.data_ptr<double>();
        out.n_member_virial = im.member_virial.numel();
      }
    }
    if (info_.direct_forces) {
      if (!dict.contains("forces")) throw std::runtime_error("model output lacks 'forces'");
      im.forces = dict.at("forces").toTensor().to(cpu64).contiguous();
      out.forces = im.forces.data_ptr<double>();
      out.n_forces = im.forces.numel();
    } else {
      if (!dict.contains("atomic_energy") || !dict.contains("edge_grad"))
        throw std::runtime_error("model output lacks 'atomic_energy' or 'edge_grad'");
      im.atomic_energy = dict.at("atomic_energy").toTensor().to(cpu64).contiguous();
      im.edge_grad = dict.at("edge_grad").toTensor().to(cpu64).contiguous();
      out.atomic_energy = im.atomic_energy.data_ptr<double>();
      out.n_atomic_energy = im.atomic_energy.numel();
      out.edge_grad = im.edge_grad.data_ptr<double>();
      out.n_edge_grad = im.edge_grad.numel();
    }
  } catch (const ModelError &) {
    throw;
  } catch (const std::exception &e) {
    throw ModelError(exception_text(e), is_out_of_memory(e));
  }
  return out;
}
