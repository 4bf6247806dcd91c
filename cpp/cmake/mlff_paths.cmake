# Paths shared by the C++ targets (included from the top-level CMakeLists.txt).
#
# Paths are auto-detected with the Python interpreter of the environment that
# holds torch + lammps[mpi] + mpich (default: <repo>/.venv/bin/python; override
# with -DPython_EXECUTABLE=... or the PYTHON environment variable).  Each can be
# overridden on the command line:
#   LAMMPS_INCLUDE_DIR  folder with pair.h, atom.h, ... (lammps/include/lammps)
#   LAMMPS_LIBRARY      liblammps.so(.0) of the same LAMMPS
#   LAMMPS_VERSION      version string LAMMPS checks plugins against ("22 Jul 2025")
#   MPI_INCLUDE_DIR     folder with mpi.h matching LAMMPS's MPI (mpich wheel)
#   MPI_LIBRARY         libmpi.so.12 (optional; LAMMPS already links it)
#   Torch_DIR           libtorch CMake config (torch.utils.cmake_prefix_path)
# The wheel's own LAMMPSConfig.cmake is not used: it references a missing tool.
#
# Defines: MLFF_REPO_ROOT, MLFF_PLUGIN_OUTPUT_DIR, MLFF_INSTALL_DIR, the variables above,
# torch's targets (find_package(Torch)), _torch_lib_dir, MLFF_TORCH_VERSION,
# MLFF_TORCH_CXX11_ABI, and
# mlff_set_rpath(<target> <dir>...) which gives a target absolute and
# $ORIGIN-relative RPATH entries for the listed folders.

set(MLFF_REPO_ROOT "${CMAKE_CURRENT_LIST_DIR}/../..")
get_filename_component(MLFF_REPO_ROOT "${MLFF_REPO_ROOT}" ABSOLUTE)

if(NOT Python_EXECUTABLE)
  if(DEFINED ENV{PYTHON} AND NOT "$ENV{PYTHON}" STREQUAL "")
    set(Python_EXECUTABLE "$ENV{PYTHON}")
  elseif(EXISTS "${MLFF_REPO_ROOT}/.venv/bin/python")
    set(Python_EXECUTABLE "${MLFF_REPO_ROOT}/.venv/bin/python")
  else()
    find_package(Python COMPONENTS Interpreter REQUIRED)
  endif()
endif()
set(Python_EXECUTABLE "${Python_EXECUTABLE}" CACHE FILEPATH "Python of the mlff environment")

execute_process(
  COMMAND "${Python_EXECUTABLE}" "${MLFF_REPO_ROOT}/cpp/cmake/mlff_detect.py"
  OUTPUT_VARIABLE _mlff_detect_out
  ERROR_VARIABLE _mlff_detect_err
  RESULT_VARIABLE _mlff_detect_rc)
if(NOT _mlff_detect_rc EQUAL 0)
  message(FATAL_ERROR "Path detection with ${Python_EXECUTABLE} failed:\n${_mlff_detect_err}")
endif()
string(REPLACE "\n" ";" _mlff_detect_lines "${_mlff_detect_out}")
foreach(_line IN LISTS _mlff_detect_lines)
  if(_line MATCHES "^([A-Z0-9_]+)=(.*)$")
    set(_MLFF_DETECTED_${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
  endif()
endforeach()

foreach(_var LAMMPS_INCLUDE_DIR LAMMPS_LIBRARY LAMMPS_VERSION MPI_INCLUDE_DIR MPI_LIBRARY)
  if(NOT ${_var})
    set(${_var} "${_MLFF_DETECTED_${_var}}")
  endif()
  set(${_var} "${${_var}}" CACHE STRING "see cpp/cmake/mlff_paths.cmake" FORCE)
endforeach()
if(NOT Torch_DIR AND _MLFF_DETECTED_TORCH_CMAKE_PREFIX)
  list(APPEND CMAKE_PREFIX_PATH "${_MLFF_DETECTED_TORCH_CMAKE_PREFIX}")
endif()

# LAMMPS and MPI are needed for the plugin only (MLFF_PLUGIN=OFF builds the operator
# libraries alone, e.g. on a GPU machine without the lammps wheel)
if(MLFF_PLUGIN)
  if(NOT LAMMPS_INCLUDE_DIR OR NOT EXISTS "${LAMMPS_INCLUDE_DIR}/pair.h")
    message(FATAL_ERROR "LAMMPS headers not found (LAMMPS_INCLUDE_DIR='${LAMMPS_INCLUDE_DIR}'); "
                        "install lammps[mpi] into the venv or pass -DLAMMPS_INCLUDE_DIR")
  endif()
  if(NOT LAMMPS_LIBRARY OR NOT EXISTS "${LAMMPS_LIBRARY}")
    message(FATAL_ERROR "liblammps not found (LAMMPS_LIBRARY='${LAMMPS_LIBRARY}')")
  endif()
  if(NOT MPI_INCLUDE_DIR OR NOT EXISTS "${MPI_INCLUDE_DIR}/mpi.h")
    message(FATAL_ERROR "mpi.h not found (MPI_INCLUDE_DIR='${MPI_INCLUDE_DIR}'); "
                        "install the mpich wheel (lammps[mpi]) or pass -DMPI_INCLUDE_DIR")
  endif()
  if(NOT LAMMPS_VERSION)
    message(FATAL_ERROR "LAMMPS version string unknown; pass e.g. -DLAMMPS_VERSION=\"22 Jul 2025\"")
  endif()
endif()

find_package(Torch REQUIRED)
if(MLFF_PLUGIN AND _MLFF_DETECTED_TORCH_CXX11_ABI STREQUAL "0")
  message(FATAL_ERROR "torch was built with the pre-C++11 std::string ABI; the lammps wheel uses "
                      "the C++11 ABI, so the plugin cannot link both")
endif()

if(MLFF_PLUGIN)
  get_filename_component(_lammps_lib_dir "${LAMMPS_LIBRARY}" DIRECTORY)
endif()
get_filename_component(_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
set(_mpi_lib_dir "")
if(MPI_LIBRARY)
  get_filename_component(_mpi_lib_dir "${MPI_LIBRARY}" DIRECTORY)
endif()

set(MLFF_PLUGIN_OUTPUT_DIR "${MLFF_REPO_ROOT}/python/mlff/lib"
    CACHE PATH "Where mlffplugin.so, libmlff_pair.so, libmlff_ops.so go (mlff.plugin:plugin_dir)")

# Where the libraries are installed, and where they will live for their relative RPATHs:
#  * a wheel (pip install . / pip wheel ., scikit-build-core): mlff/lib inside the wheel,
#    i.e. SITE_PACKAGES/mlff/lib next to site-packages' torch/ and lammps/;
#  * an editable install (pip install -e .) and scripts/build_plugin.sh: the source tree's
#    python/mlff/lib, which the editable package imports from.
if(SKBUILD AND NOT SKBUILD_STATE STREQUAL "editable")
  set(MLFF_INSTALL_DIR "mlff/lib")
  set(_mlff_layout_dir "${_MLFF_DETECTED_SITE_PACKAGES}/mlff/lib")
else()
  set(MLFF_INSTALL_DIR "${MLFF_PLUGIN_OUTPUT_DIR}")
  set(_mlff_layout_dir "${MLFF_PLUGIN_OUTPUT_DIR}")
endif()
file(RELATIVE_PATH _torch_lib_dir_rel "${_mlff_layout_dir}" "${_torch_lib_dir}")

set(MLFF_TORCH_VERSION "${_MLFF_DETECTED_TORCH_VERSION}")
set(MLFF_TORCH_CXX11_ABI "${_MLFF_DETECTED_TORCH_CXX11_ABI}")
# tests only: a loader that claims to be built against another torch (the version guard)
if(MLFF_FAKE_TORCH_VERSION)
  set(MLFF_TORCH_VERSION "${MLFF_FAKE_TORCH_VERSION}")
endif()

# RPATH: $ORIGIN-relative folders (a wheel installed into any environment with the same
# site-packages layout; a checkout moved together with its venv), absolute ones (this
# build's environment), plus $ORIGIN itself.
function(mlff_set_rpath target)
  set(_abs "")
  set(_rel "$ORIGIN")
  foreach(_dir IN LISTS ARGN)
    list(APPEND _abs "${_dir}")
    file(RELATIVE_PATH _r "${_mlff_layout_dir}" "${_dir}")
    list(APPEND _rel "$ORIGIN/${_r}")
  endforeach()
  set_target_properties(${target} PROPERTIES
    BUILD_RPATH "${CMAKE_BINARY_DIR}/cpp/ops;${_abs}"
    INSTALL_RPATH "${_rel};${_abs}")
endfunction()
