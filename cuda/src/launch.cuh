// Launch helpers shared by the CUDA kernel files.
#ifndef MLFF_CUDA_LAUNCH_CUH
#define MLFF_CUDA_LAUNCH_CUH

#include "mlff/dual.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

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

}    // namespace cuda
}    // namespace mlff

#endif
