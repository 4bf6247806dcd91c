// Launch helpers shared by the CUDA kernel files.
#ifndef MLFF_CUDA_LAUNCH_CUH
#define MLFF_CUDA_LAUNCH_CUH

#include "mlff/dual.h"

#ifdef MLFF_CUDA_HOST_EMULATION
#include "mlff/cuda/host_emulation.h"
#else
#include <cuda_runtime.h>
#endif

#include <stdexcept>
#include <string>

// MLFF_LAUNCH(grid, block, stream, kernel<...>)(args...): a kernel launch on `stream`,
// or its host emulation (mlff/cuda/host_emulation.h)
#ifdef MLFF_CUDA_HOST_EMULATION
#define MLFF_LAUNCH(grid, block, stream, ...) ::mlff::cuda::emulation::launch(grid, block, __VA_ARGS__)
#else
#define MLFF_LAUNCH(grid, block, stream, ...) __VA_ARGS__<<<grid, block, 0, stream>>>
#endif

namespace mlff {
namespace cuda {

// a failed launch becomes a C++ exception (the torch glue turns it into a Python error)
inline void check(cudaError_t err, const char *what)
{
  if (err != cudaSuccess) throw std::runtime_error(std::string("mlff CUDA kernel ") + what + ": " + cudaGetErrorString(err));
}

// the scalar type of a value type (float, double, or their Dual)
template <typename T> struct ScalarOf { using type = T; };
template <typename S> struct ScalarOf<Dual<S>> { using type = S; };

// threads per block: whole warps covering n work items, at most 256
inline unsigned threads_for(int64_t n)
{
  const int64_t warps = (n + 31) / 32;
  return static_cast<unsigned>(32 * (warps < 1 ? 1 : warps > 8 ? 8 : warps));
}

}    // namespace cuda
}    // namespace mlff

#endif
