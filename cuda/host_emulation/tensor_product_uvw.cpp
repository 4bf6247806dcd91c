// The kernels of cuda/src/tensor_product_uvw.cu, compiled for the host emulation (mlff/cuda/host_emulation.h).
#include "../src/tensor_product_uvw.cu"
