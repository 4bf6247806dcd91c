// Host emulation of the CUDA execution model, so that the kernels in cuda/src/ run (and
// are tested, tests/test_cuda_emulation.py) on machines without a GPU.
//
// Compiling a .cu file with a C++ compiler and MLFF_CUDA_HOST_EMULATION defined (see
// cuda/host_emulation/) turns every kernel into a plain function; MLFF_LAUNCH
// (src/launch.cuh) runs it once per (block, thread) of the launch grid, one after the
// other, setting blockIdx/threadIdx.  This checks what a kernel computes: the indexing,
// the division of work between threads, the dual-number instantiations and the torch glue.
// It cannot check what needs real concurrency or device memory (data races, the memory
// model, out-of-bounds device accesses): those need the GPU and compute-sanitizer.
//
// Only kernels without block-level synchronisation are emulable: __syncthreads, shared
// memory and warp intrinsics are deliberately not defined, so a kernel using them fails to
// compile here instead of being emulated wrongly.
#ifndef MLFF_CUDA_HOST_EMULATION_H
#define MLFF_CUDA_HOST_EMULATION_H

#ifdef __CUDACC__
#error "mlff/cuda/host_emulation.h is for host C++ compilers, not nvcc"
#endif

#define __global__
#define __device__
#define __host__

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}    // NOLINT
};

// the built-in index variables of the (emulated) thread that is running
inline thread_local dim3 threadIdx{0, 0, 0}, blockIdx{0, 0, 0}, blockDim, gridDim;

using cudaStream_t = struct CUstream_st *;
enum cudaError_t { cudaSuccess = 0 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char *cudaGetErrorString(cudaError_t) { return "no error"; }

// threads run one at a time, so a plain read-modify-write is atomic
template <typename T>
inline T atomicAdd(T *address, T value)
{
  const T old = *address;
  *address = old + value;
  return old;
}

namespace mlff {
namespace cuda {
namespace emulation {

template <typename... P>
struct Launch {
  dim3 grid, block;
  void (*kernel)(P...);

  // Blocks and threads run last to first: a schedule CUDA may choose, and not the one the
  // source order suggests, so a kernel relying on ascending order shows it.
  template <typename... A>
  void operator()(A &&...args) const
  {
    gridDim = grid;
    blockDim = block;
    for (unsigned bz = grid.z; bz-- > 0;)
      for (unsigned by = grid.y; by-- > 0;)
        for (unsigned bx = grid.x; bx-- > 0;)
          for (unsigned tz = block.z; tz-- > 0;)
            for (unsigned ty = block.y; ty-- > 0;)
              for (unsigned tx = block.x; tx-- > 0;) {
                blockIdx = dim3(bx, by, bz);
                threadIdx = dim3(tx, ty, tz);
                kernel(args...);
              }
  }
};

template <typename... P>
Launch<P...> launch(dim3 grid, dim3 block, void (*kernel)(P...))
{
  return {grid, block, kernel};
}

}    // namespace emulation
}    // namespace cuda
}    // namespace mlff

#endif
