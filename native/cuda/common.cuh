// Shared by every CUDA source of minielm: error checking, bf16 helpers, launch arithmetic.
// Errors become minielm::Error with the code MINIELM_CUDA (a failed CUDA call) so the N-API layer reports
// them like every other engine error; nothing here aborts the process.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../core/error.h"

namespace minielm {
namespace cuda {

using bf16 = __nv_bfloat16;

[[noreturn]] inline void fail(cudaError_t e, const char* what, const char* file, int line) {
  throw Error("MINIELM_CUDA", std::string(what) + " failed: " + cudaGetErrorString(e) + " (" + file + ":" +
                                  std::to_string(line) + ")");
}

#define MINIELM_CUDA_CHECK(call)                                                \
  do {                                                                          \
    cudaError_t minielm_err_ = (call);                                          \
    if (minielm_err_ != cudaSuccess) ::minielm::cuda::fail(minielm_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once (execution errors surface at the next
// synchronising call).
#define MINIELM_CUDA_LAUNCHED(name) MINIELM_CUDA_CHECK(cudaGetLastError())

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ bf16 to_bf(float x) { return __float2bfloat16_rn(x); }

// Warp and block reductions (blockDim.x a multiple of 32, at most 1024).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// `shared` holds at least 32 floats; every thread of the block gets the result.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : 0.f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace cuda
}  // namespace minielm
