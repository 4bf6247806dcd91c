// The kernels of cuda/src/tensor_product.cu, compiled for the host emulation (mlff/cuda/host_emulation.h).
#include "../src/tensor_product.cu"
