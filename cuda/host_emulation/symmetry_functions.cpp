// The kernels of cuda/src/symmetry_functions.cu, compiled for the host emulation (mlff/cuda/host_emulation.h).
#include "../src/symmetry_functions.cu"
