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

// Warp and block reductions (blockDim.x a multiple of 32, at most 1024): sums in float or double, max in float.
// One butterfly (`warp_reduce`) and one two-level block scheme (`block_reduce`) serve all of them.
namespace detail {
struct SumOp {
  template <class T>
  __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
// Every lane gets op over the 32 lanes' v.
template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// `shared` holds at least 32 T; every thread of the block gets the result. `identity` pads the warps that
// do not exist.
template <class T, class Op>
__device__ __forceinline__ T block_reduce(T v, T* shared, T identity, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nw ? shared[lane] : identity;
  return warp_reduce(v, op);
}
}  // namespace detail

__device__ __forceinline__ float warp_sum(float v) { return detail::warp_reduce(v, detail::SumOp()); }
__device__ __forceinline__ double warp_sum(double v) { return detail::warp_reduce(v, detail::SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return detail::warp_reduce(v, detail::MaxOp()); }
// `shared` holds at least 32 floats (doubles); every thread of the block gets the result.
__device__ __forceinline__ float block_sum(float v, float* shared) {
  return detail::block_reduce(v, shared, 0.f, detail::SumOp());
}
__device__ __forceinline__ double block_sum(double v, double* shared) {
  return detail::block_reduce(v, shared, 0.0, detail::SumOp());
}
__device__ __forceinline__ float block_max(float v, float* shared) {
  return detail::block_reduce(v, shared, -INFINITY, detail::MaxOp());
}

}  // namespace cuda
}  // namespace minielm
