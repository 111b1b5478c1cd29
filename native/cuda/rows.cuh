// Softmax "row groups", shared by ops.cu (cross-entropy) and loss.cu (distillation, log-probabilities), and the
// host checks and launch sizing both files use.
//
// A row group handles one softmax row of V bf16 at a time, grid-stride over the rows: G = 32 is one warp per
// row (8 rows per 256-thread block), G >= 64 the whole block (blockDim.x == G) per row. Loads are vectorised
// per row: a scalar head up to the first 16-byte boundary, a 16-byte body, a scalar tail, so an odd V (GPT-2's
// 50257) keeps the vector body on every row; a row written through a pointer at another offset modulo 16
// bytes than the one it is read from falls back to scalar accesses.
//
// Everything lives in minielm::cuda::detail (the .cu files pull it into their own unnamed namespace with a
// using-directive); kernels.cuh's API is untouched.
#pragma once
#include <atomic>
#include <cfloat>
#include <cstdint>
#include <string>
#include <type_traits>

#include "common.cuh"

namespace minielm {
namespace cuda {
namespace detail {

// ---------------------------------------------------------------------------------------------------------
// Host helpers.

[[noreturn]] inline void bad_arg(const char* fn, const std::string& what) {
  throw Error("MINIELM_INVALID_ARGUMENT", std::string("cuda::") + fn + ": " + what);
}
// A size that must be >= 0 (and, when `dim`, fit int32).
inline void check_size(const char* fn, const char* name, int64_t v, bool dim = true) {
  if (v < 0) bad_arg(fn, std::string(name) + " must be >= 0, got " + std::to_string(v));
  if (dim && v > INT32_MAX) bad_arg(fn, std::string(name) + " must fit int32, got " + std::to_string(v));
}
inline void check_ptr(const char* fn, const char* name, const void* p) {
  if (!p) bad_arg(fn, std::string(name) + " is null");
}

// Multiprocessor count of the current device (cached per device).
inline int sm_count() {
  int dev = 0;
  MINIELM_CUDA_CHECK(cudaGetDevice(&dev));
  static std::atomic<int> cache[64];
  int c = dev >= 0 && dev < 64 ? cache[dev].load(std::memory_order_relaxed) : 0;
  if (c <= 0) {
    MINIELM_CUDA_CHECK(cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev));
    if (c <= 0) c = 1;
    if (dev >= 0 && dev < 64) cache[dev].store(c, std::memory_order_relaxed);
  }
  return c;
}

// The identity of the row max: finite, so exp(x - m) and the online rescaling never see inf - inf.
constexpr float kNegBig = -FLT_MAX;

// ---------------------------------------------------------------------------------------------------------
// 8 bf16 <-> 8 floats (one 16-byte vector).

__device__ __forceinline__ void unpack8(const uint4& u, float (&v)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(h[k]);
    v[2 * k] = f.x;
    v[2 * k + 1] = f.y;
  }
}
__device__ __forceinline__ uint4 pack8(const float (&v)[8]) {
  uint4 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
#pragma unroll
  for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
  return u;
}

// ---------------------------------------------------------------------------------------------------------
// The group.

template <int G>
struct Grp {
  static constexpr int kBlock = G == 32 ? 256 : G;
  static constexpr int kRowsPerBlock = G == 32 ? kBlock / 32 : 1;
  __device__ static int rank() { return G == 32 ? static_cast<int>(threadIdx.x & 31) : static_cast<int>(threadIdx.x); }
  __device__ static int64_t first_row() {
    return G == 32 ? static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + (threadIdx.x >> 5) : static_cast<int64_t>(blockIdx.x);
  }
  __device__ static int64_t row_stride() { return static_cast<int64_t>(gridDim.x) * kRowsPerBlock; }
  // Orders the group's reads of a row before its writes (the block reductions already hold barriers).
  __device__ static void sync() {
    if (G == 32) __syncwarp();
    else __syncthreads();
  }
};

// Online softmax accumulation: m running max, s = sum exp(x - m).
__device__ __forceinline__ void online_add(float& m, float& s, float v) {
  if (v > m) {
    s = s * __expf(m - v) + 1.f;
    m = v;
  } else {
    s += __expf(v - m);
  }
}
__device__ __forceinline__ void online_merge(float& m, float& s, float m2, float s2) {
  const float M = fmaxf(m, m2);
  s = s * __expf(m - M) + s2 * __expf(m2 - M);
  m = M;
}
// Reduces (m, s) over the group (`shm`, `shs` hold 32 floats each); every member gets the same pair.
template <int G>
__device__ __forceinline__ void group_softmax(float& m, float& s, float* shm, float* shs) {
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    online_merge(m, s, m2, s2);
  }
  if (G > 32) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) shm[warp] = m, shs[warp] = s;
    __syncthreads();
    m = lane < G / 32 ? shm[lane] : kNegBig;
    s = lane < G / 32 ? shs[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
      online_merge(m, s, m2, s2);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Row passes: head / 16-byte body / tail.

// Number of bf16 elements before the first 16-byte boundary of p (at most n).
__device__ __forceinline__ int head_of(const void* p, int n) {
  const int h = static_cast<int>(((16u - (static_cast<unsigned>(reinterpret_cast<uintptr_t>(p)) & 15u)) & 15u) >> 1);
  return h < n ? h : n;
}
// a and b sit at the same offset modulo 16 bytes (one head length serves both).
__device__ __forceinline__ bool same_phase(const void* a, const void* b) {
  return ((reinterpret_cast<uintptr_t>(a) ^ reinterpret_cast<uintptr_t>(b)) & 15u) == 0;
}

// Calls f(j, x[j]) for the row elements this group member owns.
template <int G, class F>
__device__ __forceinline__ void row_visit(const bf16* x, int n, F&& f) {
  const int r = Grp<G>::rank();
  const int h = head_of(x, n);
  if (r < h) f(r, to_f(x[r]));
  const int nv = (n - h) >> 3;
  const uint4* xv = reinterpret_cast<const uint4*>(x + h);
#pragma unroll 2
  for (int k = r; k < nv; k += G) {
    float v[8];
    unpack8(xv[k], v);
#pragma unroll
    for (int e = 0; e < 8; ++e) f(h + 8 * k + e, v[e]);
  }
  for (int j = h + 8 * nv + r; j < n; j += G) f(j, to_f(x[j]));
}

// out[j] = f(j, x[j]) over the row (out may alias x: each element is read, then written, by one thread).
template <int G, class F>
__device__ __forceinline__ void row_map(const bf16* x, bf16* out, int n, F&& f) {
  const int r = Grp<G>::rank();
  if (!same_phase(x, out)) {
    for (int j = r; j < n; j += G) out[j] = to_bf(f(j, to_f(x[j])));
    return;
  }
  const int h = head_of(x, n);
  if (r < h) out[r] = to_bf(f(r, to_f(x[r])));
  const int nv = (n - h) >> 3;
  const uint4* xv = reinterpret_cast<const uint4*>(x + h);
  uint4* ov = reinterpret_cast<uint4*>(out + h);
  for (int k = r; k < nv; k += 2 * G) {
    // Two loads in flight before the stores (the compiler may not hoist loads over possibly aliasing stores).
    const bool two = k + G < nv;
    const uint4 u0 = xv[k];
    const uint4 u1 = two ? xv[k + G] : make_uint4(0u, 0u, 0u, 0u);
    float v[8];
    unpack8(u0, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] = f(h + 8 * k + e, v[e]);
    ov[k] = pack8(v);
    if (two) {
      unpack8(u1, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = f(h + 8 * (k + G) + e, v[e]);
      ov[k + G] = pack8(v);
    }
  }
  for (int j = h + 8 * nv + r; j < n; j += G) out[j] = to_bf(f(j, to_f(x[j])));
}

// out[0..n) = 0.
template <int G>
__device__ __forceinline__ void row_zero(bf16* out, int n) {
  const int r = Grp<G>::rank();
  const int h = head_of(out, n);
  const bf16 z = to_bf(0.f);
  if (r < h) out[r] = z;
  const int nv = (n - h) >> 3;
  uint4* ov = reinterpret_cast<uint4*>(out + h);
  for (int k = r; k < nv; k += G) ov[k] = make_uint4(0u, 0u, 0u, 0u);
  for (int j = h + 8 * nv + r; j < n; j += G) out[j] = z;
}

// ---------------------------------------------------------------------------------------------------------
// Launch sizing.

// Group size for a softmax row of V elements.
inline int pick_group(int64_t V) { return V <= 1024 ? 32 : V <= 16384 ? 256 : 1024; }
// Blocks for `rows` rows: one group per row, at most a full SM's worth (2048 threads) per SM.
template <int G>
unsigned row_grid(int64_t rows) {
  const int64_t per_sm = 2048 / Grp<G>::kBlock;
  int64_t g = ceil_div(rows, Grp<G>::kRowsPerBlock);
  const int64_t cap = static_cast<int64_t>(sm_count()) * per_sm;
  if (g > cap) g = cap;
  if (g < 1) g = 1;
  return static_cast<unsigned>(g);
}
// Calls f(std::integral_constant<int, G>()) with the group size pick_group(V).
template <class F>
void dispatch_group(int64_t V, F&& f) {
  switch (pick_group(V)) {
    case 32: f(std::integral_constant<int, 32>()); break;
    case 256: f(std::integral_constant<int, 256>()); break;
    default: f(std::integral_constant<int, 1024>()); break;
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace minielm
