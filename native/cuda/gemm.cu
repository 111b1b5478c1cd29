// GEMM for the CUDA backend (declared in kernels.cuh). Row-major, like minielm::sgemm:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C (+ bias[N] broadcast over rows)
// A and B are bf16, C is fp32 or bf16, every product is accumulated in fp32.
//
// Backends
//   1. cuBLASLt, loaded at run time with dlopen (never linked; the few declarations it needs are below, their
//      values checked against cublasLt.h). Row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
//      so the operands are swapped instead of using CUBLASLT_ORDER_ROW: cuBLASLt's "A" is our B, its "B" is our
//      A, its m is our N and its n our M; a row-major matrix of ours read as column-major is its transpose, which
//      is what makes the swap work without moving any data. The bias (one per column of our C) is one per row
//      of cuBLASLt's D, which is what CUBLASLT_EPILOGUE_BIAS broadcasts. One handle per device, one 32 MiB
//      workspace per (device, stream), a cache of plans (descriptors + the heuristic's algorithm) per shape.
//      A plan that cannot be made or a matmul that fails sends that call, and later calls of the same shape,
//      to the built-in kernel; the reason is kept for gemm_cublaslt_note().
//   2. Built-in: a bf16 tensor-core kernel (mma.sync m16n8k16, sm_80+), see "Tiling" below, and a simple
//      one-thread-per-output kernel for tiny problems (and for GPUs older than sm_80).
// MINIELM_CUDA_GEMM=builtin|cublaslt (read once) forces a backend; gemm_force_backend (gemm_internal.cuh)
// lets the tests pick one.
//
// Tiling of the tensor-core kernel
//   A block of 256 threads (8 warps) computes a 128 x 128 tile of C; it walks K in steps of 32, keeping
//   STAGES = 4 steps of A and B in shared memory, filled with cp.async (16-byte copies, zero-filled past the
//   edges of the matrices) while the tensor cores work on older ones. The warps form a 2 (M) x 4 (N) grid;
//   each owns a 64 x 32 sub-tile = 4 x 4 mma tiles of 16 x 8 (64 fp32 accumulators per thread).
//   Transposes are handled by how the tiles are stored, never by copying the matrix: a tile is kept the way
//   it lies in global memory, either "K-major" (one shared-memory line per row m of A or column n of B, 32
//   contiguous k: A when not transposed, B when transposed) or "MN-major" (one line per k, 128 contiguous
//   m or n: A^T, B not transposed). ldmatrix reads K-major tiles as they are and MN-major tiles with .trans;
//   both give exactly the register fragments mma.sync wants (see load_frag). Lines are padded by 8 elements
//   (16 bytes) so that the 8 lines an ldmatrix phase reads fall in 8 different 16-byte bank groups.
//   Misaligned operands (a pointer not 16-byte aligned or a leading dimension not a multiple of 8) use the
//   same kernel with bounds-checked scalar loads instead of cp.async.
#include <dlfcn.h>
#include <library_types.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "gemm_internal.cuh"
#include "kernels.cuh"

namespace minielm {
namespace cuda {
namespace {

// =========================================================================================================
// Kernels
// =========================================================================================================

template <typename OutT>
struct GemmParams {
  const bf16* A;
  const bf16* B;
  OutT* C;
  const float* bias;  // may be null
  int M, N, K;
  int64_t lda, ldb, ldc;
  float alpha, beta;
};

__device__ __forceinline__ void store_out(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_out(bf16* p, float v) { *p = to_bf(v); }

// alpha * acc + beta * C[idx] + bias[col]; C is not read when beta == 0.
template <typename OutT>
__device__ __forceinline__ float epilogue_value(const GemmParams<OutT>& p, int64_t idx, int col, float acc) {
  float v = p.alpha * acc;
  if (p.beta != 0.0f) v = fmaf(p.beta, to_f(p.C[idx]), v);
  if (p.bias != nullptr) v += p.bias[col];
  return v;
}

// ---- Simple kernel: one thread per output, fp32 accumulation. Tiny problems, pre-sm_80 GPUs, test mode. ----
template <typename OutT>
__global__ void gemm_simple_kernel(bool trans_a, bool trans_b, GemmParams<OutT> p) {
  for (int i = blockIdx.y * blockDim.y + threadIdx.y; i < p.M; i += gridDim.y * blockDim.y) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < p.N; j += gridDim.x * blockDim.x) {
      float s = 0.0f;
      for (int k = 0; k < p.K; ++k) {
        const float a = to_f(trans_a ? p.A[(int64_t)k * p.lda + i] : p.A[(int64_t)i * p.lda + k]);
        const float b = to_f(trans_b ? p.B[(int64_t)j * p.ldb + k] : p.B[(int64_t)k * p.ldb + j]);
        s = fmaf(a, b, s);
      }
      const int64_t idx = (int64_t)i * p.ldc + j;
      store_out(p.C + idx, epilogue_value(p, idx, j, s));
    }
  }
}

// ---- C = beta * C + bias without a product (K == 0, alpha == 0, and the bias of unfused cuBLASLt calls). ----
template <typename OutT>
__global__ void gemm_scale_kernel(GemmParams<OutT> p) {
  for (int i = blockIdx.y * blockDim.y + threadIdx.y; i < p.M; i += gridDim.y * blockDim.y) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < p.N; j += gridDim.x * blockDim.x) {
      const int64_t idx = (int64_t)i * p.ldc + j;
      float v = p.beta != 0.0f ? p.beta * to_f(p.C[idx]) : 0.0f;
      if (p.bias != nullptr) v += p.bias[j];
      store_out(p.C + idx, v);
    }
  }
}

// ---- Tensor-core kernel ----
constexpr int kBM = 128;      // rows of C per block
constexpr int kBN = 128;      // columns of C per block
constexpr int kBK = 32;       // k per pipeline stage
constexpr int kStages = 4;    // pipeline depth
constexpr int kThreads = 256; // 8 warps: 2 along M x 4 along N, each 64 x 32
constexpr int kPad = 8;       // elements added to every shared-memory line (16 bytes)
constexpr int kGroupM = 8;    // block rasterisation: 8 tile-rows share the B tiles they read (L2 reuse)
static_assert(kBM == kBN, "both operand tiles have the same M/N extent (one TileShape for both)");

// Shared-memory shape of one stage of one operand. K-major: kBM lines (one per m or n) of kBK elements;
// MN-major: kBK lines (one per k) of kBM elements.
template <bool KMajor>
struct TileShape {
  static constexpr int kLines = KMajor ? kBM : kBK;
  static constexpr int kWidth = KMajor ? kBK : kBM;         // elements used per line
  static constexpr int kStride = kWidth + kPad;              // elements per line in shared memory
  static constexpr int kElems = kLines * kStride;            // one stage
  static constexpr int kChunksPerLine = kWidth / 8;          // 16-byte chunks
  static constexpr int kChunks = kLines * kChunksPerLine;    // 512 either way
  static_assert(kChunks % kThreads == 0, "every thread copies the same number of chunks");
  static_assert((kStride * 2) % 16 == 0 && (kElems * 2) % 16 == 0, "16-byte aligned lines and stages");
};

template <bool TA, bool TB>
constexpr int mma_smem_bytes() {
  return kStages * (TileShape<!TA>::kElems + TileShape<TB>::kElems) * 2;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous copy global -> shared; only the first src_bytes are read, the rest of the 16 bytes is
// zero-filled (src_bytes = 0: nothing is read, src must still be a valid address).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the addresses of the 8 lines (16 bytes each) of matrix i, which
// lands in r[i]. Without .trans lane l gets (line l/4, elements 2(l%4), 2(l%4)+1) of each matrix; with .trans
// it gets (lines 2(l%4) and 2(l%4)+1, element l/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// d += a * b for one 16x8x16 tile. Fragments (PTX ISA "Matrix Fragments for mma.m16n8k16 with floating point
// type"), g = lane / 4, t = lane % 4, the lower-indexed element in the low half of each register:
//   a[0] = A(g, 2t..2t+1), a[1] = A(g+8, 2t..2t+1), a[2] = A(g, 2t+8..2t+9), a[3] = A(g+8, 2t+8..2t+9)
//   b0 = B(2t..2t+1, g), b1 = B(2t+8..2t+9, g)
//   d[0..1] = C(g, 2t..2t+1), d[2..3] = C(g+8, 2t..2t+1)
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies one stage of one operand into shared memory. The operand's element (mn, k) (mn = m for A, n for B)
// lives at g[mn * ld + k] when K-major and at g[k * ld + mn] when MN-major; mn_total x k_total is its logical
// size; (mn0, k0) the tile's corner. Elements past the edges are zero-filled, so they add nothing to C.
template <bool KMajor, bool Vec>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* __restrict__ g, int64_t ld, int mn0, int mn_total,
                                          int k0, int k_total, int tid) {
  using T = TileShape<KMajor>;
  const int line0 = KMajor ? mn0 : k0, line_total = KMajor ? mn_total : k_total;
  const int inner0 = KMajor ? k0 : mn0, inner_total = KMajor ? k_total : mn_total;
#pragma unroll
  for (int i = 0; i < T::kChunks / kThreads; ++i) {
    const int c = tid + i * kThreads;
    const int line = c / T::kChunksPerLine;           // shared-memory line
    const int inner = (c % T::kChunksPerLine) * 8;    // first element of the chunk along the line
    const int gl = line0 + line, gi = inner0 + inner; // the same in the operand's coordinates
    int valid = 0;                                    // elements of the chunk inside the matrix
    if (gl < line_total) valid = min(8, max(0, inner_total - gi));
    bf16* dst = s + line * T::kStride + inner;
    if (Vec) {
      // Vec: g 16-byte aligned, ld % 8 == 0 and gi % 8 == 0, so the chunk's source is 16-byte aligned.
      const bf16* src = valid > 0 ? g + (int64_t)gl * ld + gi : g;
      cp_async_16(smem_addr(dst), src, valid * 2);
    } else {
      uint32_t w[4] = {0u, 0u, 0u, 0u};
      if (valid > 0) {
        const unsigned short* src = reinterpret_cast<const unsigned short*>(g + (int64_t)gl * ld + gi);
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (e < valid) w[e >> 1] |= static_cast<uint32_t>(src[e]) << ((e & 1) * 16);
      }
      *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

// One A fragment (16 rows x 16 k, for mma) or two B fragments (16 n x 16 k, i.e. two n8 tiles) from a stage in
// shared memory, at element offset `off` of this lane (see the lane offsets in the kernel). K-major lines are
// (m or n) rows of k and ldmatrix reads them as they are; MN-major lines are k rows of (m or n) and ldmatrix
// .trans hands each lane the pair of consecutive k at a fixed m or n, which is again what mma wants.
template <bool KMajor>
__device__ __forceinline__ void load_frag(uint32_t (&r)[4], uint32_t base, int off) {
  if (KMajor)
    ldmatrix_x4(r, base + off * 2);
  else
    ldmatrix_x4_trans(r, base + off * 2);
}

template <typename OutT>
__device__ __forceinline__ void store_pair(const GemmParams<OutT>& p, int row, int col, float v0, float v1) {
  if (row >= p.M || col >= p.N) return;
  const int64_t idx = (int64_t)row * p.ldc + col;
  OutT* c = p.C + idx;
  const bool pair = col + 1 < p.N && (reinterpret_cast<uintptr_t>(c) % (2 * sizeof(OutT))) == 0;
  if (pair) {
    float c0 = 0.0f, c1 = 0.0f;
    if (p.beta != 0.0f) {
      if constexpr (sizeof(OutT) == 4) {
        const float2 cv = *reinterpret_cast<const float2*>(c);
        c0 = cv.x, c1 = cv.y;
      } else {
        const __nv_bfloat162 cv = *reinterpret_cast<const __nv_bfloat162*>(c);
        c0 = __low2float(cv), c1 = __high2float(cv);
      }
    }
    float r0 = p.alpha * v0, r1 = p.alpha * v1;
    if (p.beta != 0.0f) r0 = fmaf(p.beta, c0, r0), r1 = fmaf(p.beta, c1, r1);
    if (p.bias != nullptr) r0 += p.bias[col], r1 += p.bias[col + 1];
    if constexpr (sizeof(OutT) == 4) {
      *reinterpret_cast<float2*>(c) = make_float2(r0, r1);
    } else {
      *reinterpret_cast<__nv_bfloat162*>(c) = __floats2bfloat162_rn(r0, r1);  // .x = r0 (low), .y = r1
    }
  } else {
    store_out(c, epilogue_value(p, idx, col, v0));
    if (col + 1 < p.N) store_out(c + 1, epilogue_value(p, idx + 1, col + 1, v1));
  }
}

template <bool TA, bool TB, bool Vec, typename OutT>
__global__ void __launch_bounds__(kThreads, 2) gemm_mma_kernel(GemmParams<OutT> p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr bool kAK = !TA;  // A stored [M,K]: K-major; A^T stored [K,M]: MN-major
  constexpr bool kBKm = TB;  // B^T stored [N,K]: K-major; B stored [K,N]: MN-major
  using SA = TileShape<kAK>;
  using SB = TileShape<kBKm>;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sA = reinterpret_cast<bf16*>(smem_raw);  // kStages x SA::kElems
  bf16* sB = sA + kStages * SA::kElems;          // kStages x SB::kElems
  const uint32_t sA_addr = smem_addr(sA), sB_addr = smem_addr(sB);

  // Grouped rasterisation (as in Triton's matmul tutorial): consecutive blocks walk down kGroupM tile-rows
  // before moving to the next tile-column, so a group reuses its A rows and B columns from L2.
  const int tiles_m = (p.M + kBM - 1) / kBM, tiles_n = (p.N + kBN - 1) / kBN;
  const int pid = blockIdx.x;
  const int per_group = kGroupM * tiles_n;
  const int first_m = (pid / per_group) * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int in_group = pid % per_group;
  const int m0 = (first_m + in_group % group_rows) * kBM;
  const int n0 = (in_group / group_rows) * kBN;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int wm = (warp >> 2) * 64;  // this warp's rows within the block tile
  const int wn = (warp & 3) * 32;   // and columns

  // Lane offsets for ldmatrix.x4: lane l addresses line l % 8 of matrix j = l / 8.
  //   A fragment: matrix j covers rows (j & 1) * 8 .. +7 and k (j >> 1) * 8 .. +7, giving a[0..3] in the order
  //               mma wants (rows 0-7/k 0-7, rows 8-15/k 0-7, rows 0-7/k 8-15, rows 8-15/k 8-15).
  //   B fragments: matrix j covers n (j >> 1) * 8 .. +7 and k (j & 1) * 8 .. +7: r[0], r[1] are (b0, b1) of the
  //               first n8 tile, r[2], r[3] of the second.
  // K-major: the lane's line is its m/n row, the k offset is along the line; MN-major: the other way round.
  const int j = lane >> 3, r = lane & 7;
  const int a_mn = wm + (j & 1) * 8, a_k = (j >> 1) * 8;
  const int b_mn = wn + (j >> 1) * 8, b_k = (j & 1) * 8;
  const int a_off = kAK ? (a_mn + r) * SA::kStride + a_k : (a_k + r) * SA::kStride + a_mn;
  const int b_off = kBKm ? (b_mn + r) * SB::kStride + b_k : (b_k + r) * SB::kStride + b_mn;
  // Steps from one fragment to the next: 16 rows (A) / 16 columns (B) along mn, 16 along k.
  constexpr int a_step_mn = kAK ? 16 * SA::kStride : 16, a_step_k = kAK ? 16 : 16 * SA::kStride;
  constexpr int b_step_mn = kBKm ? 16 * SB::kStride : 16, b_step_k = kBKm ? 16 : 16 * SB::kStride;

  float acc[4][4][4];  // [m16 tile][n8 tile][fragment]
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;

  const int ktiles = (p.K + kBK - 1) / kBK;
  auto load_stage = [&](int stage, int kt) {
    load_tile<kAK, Vec>(sA + stage * SA::kElems, p.A, p.lda, m0, p.M, kt * kBK, p.K, tid);
    load_tile<kBKm, Vec>(sB + stage * SB::kElems, p.B, p.ldb, n0, p.N, kt * kBK, p.K, tid);
  };

  // Prologue: stages 0 .. kStages-2 in flight. One commit group per k-step, empty ones included, so that
  // "group kt is complete" is always "at most kStages-2 groups pending" below.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<kStages - 2>();  // this thread's copies of step kt have landed
    __syncthreads();               // everyone's have, and everyone is done with step kt-1's slot
    const int next = kt + kStages - 1;  // refill the slot step kt-1 used
    if (next < ktiles) load_stage(next % kStages, next);
    cp_async_commit();

    const int slot = kt % kStages;
    const uint32_t a_base = sA_addr + slot * SA::kElems * 2;
    const uint32_t b_base = sB_addr + slot * SB::kElems * 2;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[4][4], bfr[2][4];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) load_frag<kAK>(af[mi], a_base, a_off + mi * a_step_mn + kk * a_step_k);
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) load_frag<kBKm>(bfr[nj], b_base, b_off + nj * b_step_mn + kk * b_step_k);
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          mma_16816(acc[mi][ni], af[mi], bfr[ni >> 1][(ni & 1) * 2], bfr[ni >> 1][(ni & 1) * 2 + 1]);
    }
  }
  cp_async_wait<0>();  // only empty groups can be left; drain them before the block exits

  // Epilogue from registers: d[0..1] are row g, columns 2t, 2t+1 of the 16x8 tile; d[2..3] row g + 8.
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int row = m0 + wm + mi * 16 + g;
      const int col = n0 + wn + ni * 8 + 2 * t;
      store_pair(p, row, col, acc[mi][ni][0], acc[mi][ni][1]);
      store_pair(p, row + 8, col, acc[mi][ni][2], acc[mi][ni][3]);
    }
#else
  // Never launched below sm_80 (the host checks the device); this branch only keeps other targets compiling.
  (void)p;
  __trap();
#endif
}

// =========================================================================================================
// Host side: launches
// =========================================================================================================

struct DeviceInfo {
  int major = 0;
};

DeviceInfo device_info(int dev) {
  static std::mutex mu;
  static std::unordered_map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(dev);
  if (it != cache.end()) return it->second;
  DeviceInfo d;
  MINIELM_CUDA_CHECK(cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, dev));
  cache[dev] = d;
  return d;
}

int current_device() {
  int dev = 0;
  MINIELM_CUDA_CHECK(cudaGetDevice(&dev));
  return dev;
}

// Grid for the 2D grid-stride kernels (32 x 8 threads).
void grid_2d(int64_t M, int64_t N, dim3& grid, dim3& block) {
  block = dim3(32, 8);
  grid = dim3(static_cast<unsigned>(std::min<int64_t>(ceil_div(N, 32), 65535)),
              static_cast<unsigned>(std::min<int64_t>(ceil_div(M, 8), 65535)));
}

template <typename OutT>
void launch_scale(const GemmParams<OutT>& p, cudaStream_t stream) {
  dim3 grid, block;
  grid_2d(p.M, p.N, grid, block);
  gemm_scale_kernel<OutT><<<grid, block, 0, stream>>>(p);
  MINIELM_CUDA_LAUNCHED("gemm_scale_kernel");
}

template <typename OutT>
void launch_simple(bool ta, bool tb, const GemmParams<OutT>& p, cudaStream_t stream) {
  dim3 grid, block;
  grid_2d(p.M, p.N, grid, block);
  gemm_simple_kernel<OutT><<<grid, block, 0, stream>>>(ta, tb, p);
  MINIELM_CUDA_LAUNCHED("gemm_simple_kernel");
}

template <bool TA, bool TB, bool Vec, typename OutT>
void launch_mma_t(const GemmParams<OutT>& p, cudaStream_t stream, int dev) {
  constexpr int smem = mma_smem_bytes<TA, TB>();
  auto kernel = gemm_mma_kernel<TA, TB, Vec, OutT>;
  // The dynamic shared-memory limit (above the default 48 KiB) is a per-device attribute of the kernel: set
  // once per device (devices past 63 set it every time).
  static std::atomic<uint64_t> attr_set{0};
  const uint64_t bit = dev < 64 ? (uint64_t{1} << dev) : 0;
  if (bit == 0 || (attr_set.load(std::memory_order_acquire) & bit) == 0) {
    MINIELM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    attr_set.fetch_or(bit, std::memory_order_acq_rel);
  }
  const int64_t blocks = ceil_div(p.M, kBM) * ceil_div(p.N, kBN);
  require(blocks <= INT_MAX, "MINIELM_INVALID_ARGUMENT", "gemm: M x N is too large for one launch");
  kernel<<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(p);
  MINIELM_CUDA_LAUNCHED("gemm_mma_kernel");
}

bool aligned16(const void* ptr, int64_t ld) {
  return (reinterpret_cast<uintptr_t>(ptr) % 16) == 0 && ld % 8 == 0;
}

template <typename OutT>
void launch_mma(bool ta, bool tb, const GemmParams<OutT>& p, cudaStream_t stream, int dev) {
  const bool vec = aligned16(p.A, p.lda) && aligned16(p.B, p.ldb);
  const int which = (ta ? 4 : 0) | (tb ? 2 : 0) | (vec ? 1 : 0);
  switch (which) {
    case 0: launch_mma_t<false, false, false>(p, stream, dev); break;
    case 1: launch_mma_t<false, false, true>(p, stream, dev); break;
    case 2: launch_mma_t<false, true, false>(p, stream, dev); break;
    case 3: launch_mma_t<false, true, true>(p, stream, dev); break;
    case 4: launch_mma_t<true, false, false>(p, stream, dev); break;
    case 5: launch_mma_t<true, false, true>(p, stream, dev); break;
    case 6: launch_mma_t<true, true, false>(p, stream, dev); break;
    default: launch_mma_t<true, true, true>(p, stream, dev); break;
  }
}

// =========================================================================================================
// Backend selection
// =========================================================================================================

enum Mode : int { kAuto = 0, kBuiltin = 1, kMma = 2, kSimple = 3 };
std::atomic<int> g_mode{-1};

int mode_from_env() {
  const char* env = std::getenv("MINIELM_CUDA_GEMM");
  if (env != nullptr && std::strcmp(env, "builtin") == 0) return kBuiltin;
  return kAuto;  // "cublaslt", unset or anything else: cuBLASLt when available
}

int current_mode() {
  int v = g_mode.load(std::memory_order_acquire);
  if (v < 0) {
    int expected = -1;
    g_mode.compare_exchange_strong(expected, mode_from_env(), std::memory_order_acq_rel);
    v = g_mode.load(std::memory_order_acquire);
  }
  return v;
}

// =========================================================================================================
// cuBLASLt, loaded at run time. Values from cublasLt.h / cublas_api.h / library_types.h (CUDA 12.x-13.x):
// =========================================================================================================

using LtHandle = void*;  // cublasLtHandle_t
using LtDesc = void*;    // cublasLtMatmulDesc_t
using LtLayout = void*;  // cublasLtMatrixLayout_t
using LtPref = void*;    // cublasLtMatmulPreference_t
struct LtAlgo {          // cublasLtMatmulAlgo_t
  uint64_t data[8];
};
struct LtHeuristic {  // cublasLtMatmulHeuristicResult_t
  LtAlgo algo;
  size_t workspaceSize;
  int state;  // cublasStatus_t
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(LtHeuristic) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

constexpr int kLtSuccess = 0;          // CUBLAS_STATUS_SUCCESS
constexpr int kComputeF32 = 68;        // CUBLAS_COMPUTE_32F (cublasComputeType_t)
constexpr int32_t kOpN = 0;            // CUBLAS_OP_N
constexpr int32_t kOpT = 1;            // CUBLAS_OP_T
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3;         // CUBLASLT_MATMUL_DESC_TRANSA, int32_t
constexpr int kDescTransB = 4;         // CUBLASLT_MATMUL_DESC_TRANSB, int32_t
constexpr int kDescEpilogue = 7;       // CUBLASLT_MATMUL_DESC_EPILOGUE, uint32_t
constexpr int kDescBiasPointer = 8;    // CUBLASLT_MATMUL_DESC_BIAS_POINTER, const void*
constexpr int kDescBiasDataType = 26;  // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t (cudaDataType)
// cublasLtEpilogue_t
constexpr uint32_t kEpilogueBias = 4;  // CUBLASLT_EPILOGUE_BIAS
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspace = 1;   // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t
constexpr int kPrefReduction = 3;      // CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, uint32_t
constexpr int kPrefAlignA = 5;         // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t (also B, C, D)
constexpr int kPrefAlignB = 6;
constexpr int kPrefAlignC = 7;
constexpr int kPrefAlignD = 8;
constexpr uint32_t kReductionComputeType = 2;  // CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr size_t kMaxPlans = 4096;

using FnCreate = int (*)(LtHandle*);
using FnDescCreate = int (*)(LtDesc*, int /*cublasComputeType_t*/, cudaDataType_t /*scale type*/);
using FnDescSet = int (*)(LtDesc, int /*attribute*/, const void*, size_t);
using FnDescDestroy = int (*)(LtDesc);
using FnLayoutCreate = int (*)(LtLayout*, cudaDataType_t, uint64_t rows, uint64_t cols, int64_t ld);
using FnLayoutDestroy = int (*)(LtLayout);
using FnPrefCreate = int (*)(LtPref*);
using FnPrefSet = int (*)(LtPref, int /*attribute*/, const void*, size_t);
using FnPrefDestroy = int (*)(LtPref);
using FnHeuristic = int (*)(LtHandle, LtDesc, LtLayout, LtLayout, LtLayout, LtLayout, LtPref, int, LtHeuristic*,
                            int*);
using FnMatmul = int (*)(LtHandle, LtDesc, const void* alpha, const void* A, LtLayout, const void* B, LtLayout,
                         const void* beta, const void* C, LtLayout, void* D, LtLayout, const LtAlgo*,
                         void* workspace, size_t workspace_bytes, cudaStream_t);

struct LtApi {
  bool ok = false;
  const char* library = "";
  std::string note;
  FnCreate create = nullptr;
  FnDescCreate desc_create = nullptr;
  FnDescSet desc_set = nullptr;
  FnDescDestroy desc_destroy = nullptr;
  FnLayoutCreate layout_create = nullptr;
  FnLayoutDestroy layout_destroy = nullptr;
  FnPrefCreate pref_create = nullptr;
  FnPrefSet pref_set = nullptr;
  FnPrefDestroy pref_destroy = nullptr;
  FnHeuristic heuristic = nullptr;
  FnMatmul matmul = nullptr;
};

// Loaded once, never unloaded (nor are the handles destroyed: at exit the CUDA runtime may already be gone).
const LtApi& lt_api() {
  static LtApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    static const char* const names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    void* h = nullptr;
    for (const char* name : names) {
      h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (h != nullptr) {
        api.library = name;
        break;
      }
    }
    if (h == nullptr) {
      api.note = "libcublasLt not found (tried libcublasLt.so.13, .so.12, .so)";
      return;
    }
    bool all = true;
    auto sym = [&](auto& fn, const char* name) {
      void* f = dlsym(h, name);
      if (f == nullptr) {
        all = false;
        if (api.note.empty()) api.note = std::string(api.library) + " lacks " + name;
      }
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(f);
    };
    sym(api.create, "cublasLtCreate");
    sym(api.desc_create, "cublasLtMatmulDescCreate");
    sym(api.desc_set, "cublasLtMatmulDescSetAttribute");
    sym(api.desc_destroy, "cublasLtMatmulDescDestroy");
    sym(api.layout_create, "cublasLtMatrixLayoutCreate");
    sym(api.layout_destroy, "cublasLtMatrixLayoutDestroy");
    sym(api.pref_create, "cublasLtMatmulPreferenceCreate");
    sym(api.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    sym(api.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    sym(api.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    sym(api.matmul, "cublasLtMatmul");
    api.ok = all;
  });
  return api;
}

// Everything a plan depends on. Alignments are those the pointers and leading dimensions guarantee (bytes,
// at most 256): the heuristic is told them, so it never picks an algorithm that needs more.
struct LtKey {
  bool ta, tb, out_bf16, fuse_bias;
  int M, N, K;
  int64_t lda, ldb, ldc;
  uint32_t align_a, align_b, align_c, align_bias;
  size_t workspace;
  bool operator==(const LtKey& o) const {
    return ta == o.ta && tb == o.tb && out_bf16 == o.out_bf16 && fuse_bias == o.fuse_bias && M == o.M &&
           N == o.N && K == o.K && lda == o.lda && ldb == o.ldb && ldc == o.ldc && align_a == o.align_a &&
           align_b == o.align_b && align_c == o.align_c && align_bias == o.align_bias &&
           workspace == o.workspace;
  }
};
struct LtKeyHash {
  size_t operator()(const LtKey& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix((k.ta ? 1u : 0u) | (k.tb ? 2u : 0u) | (k.out_bf16 ? 4u : 0u) | (k.fuse_bias ? 8u : 0u));
    mix(static_cast<uint64_t>(k.M));
    mix(static_cast<uint64_t>(k.N));
    mix(static_cast<uint64_t>(k.K));
    mix(static_cast<uint64_t>(k.lda));
    mix(static_cast<uint64_t>(k.ldb));
    mix(static_cast<uint64_t>(k.ldc));
    mix((uint64_t{k.align_a} << 48) ^ (uint64_t{k.align_b} << 32) ^ (uint64_t{k.align_c} << 16) ^ k.align_bias);
    mix(k.workspace);
    return static_cast<size_t>(h);
  }
};

struct LtPlan {
  bool ok = false;          // false: this shape goes to the built-in kernel
  bool fused_bias = false;  // bias added by the epilogue (else by gemm_scale_kernel afterwards)
  LtDesc desc = nullptr;
  LtLayout a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A (our B), B (our A), C = D (our C)
  LtAlgo algo{};
};

struct LtDevice {
  std::mutex mu;  // held for the whole of a cuBLASLt call on this device (plans, workspaces, the handle)
  bool initialised = false;
  bool ok = false;
  LtHandle handle = nullptr;
  std::unordered_map<cudaStream_t, void*> workspace;  // nullptr: allocation failed, run without workspace
  std::unordered_map<LtKey, LtPlan, LtKeyHash> plans;
};

std::mutex g_lt_mu;  // guards the device table and the note
std::vector<std::unique_ptr<LtDevice>> g_lt_devices;
std::string g_lt_note;
std::atomic<int64_t> g_lt_fallbacks{0};

void lt_set_note(const std::string& s) {
  std::lock_guard<std::mutex> lock(g_lt_mu);
  g_lt_note = s;
}

LtDevice& lt_device(int dev) {
  std::lock_guard<std::mutex> lock(g_lt_mu);
  if (static_cast<size_t>(dev) >= g_lt_devices.size()) g_lt_devices.resize(dev + 1);
  if (!g_lt_devices[dev]) g_lt_devices[dev] = std::make_unique<LtDevice>();
  return *g_lt_devices[dev];
}

// Creates the device's handle on first use (caller holds d.mu).
bool lt_ready_locked(LtDevice& d, int dev) {
  if (d.initialised) return d.ok;
  d.initialised = true;
  const LtApi& api = lt_api();
  if (!api.ok) return false;
  const int st = api.create(&d.handle);
  if (st != kLtSuccess) {
    lt_set_note("cublasLtCreate failed on device " + std::to_string(dev) + " (status " + std::to_string(st) + ")");
    cudaGetLastError();
    return false;
  }
  d.ok = true;
  return true;
}

bool lt_ready(int dev) {
  if (!lt_api().ok) return false;
  LtDevice& d = lt_device(dev);
  std::lock_guard<std::mutex> lock(d.mu);
  return lt_ready_locked(d, dev);
}

void lt_destroy_plan(const LtApi& api, LtPlan& p) {
  if (p.desc) api.desc_destroy(p.desc);
  if (p.a) api.layout_destroy(p.a);
  if (p.b) api.layout_destroy(p.b);
  if (p.c) api.layout_destroy(p.c);
  p = LtPlan{};
}

// Largest power of two (<= 256) dividing the address and the row stride in bytes: what every row start is
// aligned to.
uint32_t alignment_of(const void* ptr, int64_t ld, size_t elem) {
  uint64_t v = reinterpret_cast<uintptr_t>(ptr) | (static_cast<uint64_t>(ld) * elem) | 256u;
  return static_cast<uint32_t>(v & (~v + 1));
}

// Builds descriptors and asks the heuristic for an algorithm. fuse: try the bias epilogue (with an fp32
// bias vector; cuBLASLt's default bias type is D's type, so bf16 output needs BIAS_DATA_TYPE = 32F, which
// some versions may refuse: then the plan is made without it). Returns a plan with ok = false (and a note)
// when there is no usable algorithm.
LtPlan lt_build_plan(const LtApi& api, LtHandle handle, const LtKey& k, bool fuse, const void* bias) {
  LtPlan p;
  auto fail = [&](const std::string& what, int st) {
    lt_set_note("cuBLASLt: " + what + " failed (status " + std::to_string(st) + ") for M=" + std::to_string(k.M) +
                " N=" + std::to_string(k.N) + " K=" + std::to_string(k.K) + "; using the built-in kernel");
    lt_destroy_plan(api, p);
    return p;
  };
  const cudaDataType_t out_t = k.out_bf16 ? CUDA_R_16BF : CUDA_R_32F;
  int st = api.desc_create(&p.desc, kComputeF32, CUDA_R_32F);
  if (st != kLtSuccess) return fail("cublasLtMatmulDescCreate", st);
  // cuBLASLt's A is our B: op = T exactly when ours is transposed (see the header comment); B is our A.
  const int32_t opa = k.tb ? kOpT : kOpN, opb = k.ta ? kOpT : kOpN;
  if ((st = api.desc_set(p.desc, kDescTransA, &opa, sizeof(opa))) != kLtSuccess) return fail("TRANSA", st);
  if ((st = api.desc_set(p.desc, kDescTransB, &opb, sizeof(opb))) != kLtSuccess) return fail("TRANSB", st);
  if (fuse) {
    const uint32_t epi = kEpilogueBias;
    const int32_t bias_t = CUDA_R_32F;
    const void* bias_ptr = bias;
    if (api.desc_set(p.desc, kDescEpilogue, &epi, sizeof(epi)) != kLtSuccess ||
        api.desc_set(p.desc, kDescBiasDataType, &bias_t, sizeof(bias_t)) != kLtSuccess ||
        api.desc_set(p.desc, kDescBiasPointer, &bias_ptr, sizeof(bias_ptr)) != kLtSuccess) {
      lt_destroy_plan(api, p);
      return lt_build_plan(api, handle, k, false, nullptr);
    }
  }
  // Column-major views: our B (rows x cols as stored, read column-major) is N x K (or K x N when transposed).
  const uint64_t a_rows = k.tb ? k.K : k.N, a_cols = k.tb ? k.N : k.K;
  const uint64_t b_rows = k.ta ? k.M : k.K, b_cols = k.ta ? k.K : k.M;
  if ((st = api.layout_create(&p.a, CUDA_R_16BF, a_rows, a_cols, k.ldb)) != kLtSuccess) return fail("layout A", st);
  if ((st = api.layout_create(&p.b, CUDA_R_16BF, b_rows, b_cols, k.lda)) != kLtSuccess) return fail("layout B", st);
  if ((st = api.layout_create(&p.c, out_t, k.N, k.M, k.ldc)) != kLtSuccess) return fail("layout C", st);

  LtPref pref = nullptr;
  if ((st = api.pref_create(&pref)) != kLtSuccess) return fail("cublasLtMatmulPreferenceCreate", st);
  const uint64_t ws = k.workspace;
  // cuBLASLt's A is our B, its B our A.
  const uint32_t al_a = k.align_b, al_b = k.align_a, al_c = k.align_c;
  bool pref_ok = api.pref_set(pref, kPrefMaxWorkspace, &ws, sizeof(ws)) == kLtSuccess &&
                 api.pref_set(pref, kPrefAlignA, &al_a, sizeof(al_a)) == kLtSuccess &&
                 api.pref_set(pref, kPrefAlignB, &al_b, sizeof(al_b)) == kLtSuccess &&
                 api.pref_set(pref, kPrefAlignC, &al_c, sizeof(al_c)) == kLtSuccess &&
                 api.pref_set(pref, kPrefAlignD, &al_c, sizeof(al_c)) == kLtSuccess;
  if (pref_ok && k.out_bf16) {
    // Split-K partial sums reduced in the output type (bf16) would lose precision: allow only no split or a
    // reduction in the compute type (fp32).
    const uint32_t mask = kReductionComputeType;
    pref_ok = api.pref_set(pref, kPrefReduction, &mask, sizeof(mask)) == kLtSuccess;
  }
  if (!pref_ok) {
    api.pref_destroy(pref);
    return fail("cublasLtMatmulPreferenceSetAttribute", -1);
  }
  LtHeuristic result{};
  int found = 0;
  st = api.heuristic(handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  api.pref_destroy(pref);
  if (st != kLtSuccess || found < 1 || result.state != kLtSuccess) {
    if (fuse) {  // maybe only the fused bias is unsupported: try without it
      lt_destroy_plan(api, p);
      return lt_build_plan(api, handle, k, false, nullptr);
    }
    return fail("cublasLtMatmulAlgoGetHeuristic (no algorithm)", st != kLtSuccess ? st : result.state);
  }
  p.algo = result.algo;
  p.fused_bias = fuse;
  p.ok = true;
  return p;
}

template <typename OutT>
bool lt_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const bf16* A, int64_t lda, const bf16* B,
             int64_t ldb, float beta, OutT* C, int64_t ldc, const float* bias, cudaStream_t stream, int dev) {
  const LtApi& api = lt_api();
  if (!api.ok) return false;
  LtDevice& d = lt_device(dev);
  std::lock_guard<std::mutex> lock(d.mu);
  if (!lt_ready_locked(d, dev)) return false;

  auto ws_it = d.workspace.find(stream);
  if (ws_it == d.workspace.end()) {
    void* w = nullptr;
    if (cudaMalloc(&w, kWorkspaceBytes) != cudaSuccess) {
      cudaGetLastError();  // clear it: running without workspace is fine
      w = nullptr;
    }
    ws_it = d.workspace.emplace(stream, w).first;
  }
  void* ws = ws_it->second;
  const size_t ws_bytes = ws != nullptr ? kWorkspaceBytes : 0;

  constexpr bool out_bf16 = sizeof(OutT) == 2;
  // The epilogue adds the bias after alpha * AB + beta * C; with alpha == 1 there is no question whether it
  // is scaled by alpha. 16-byte alignment of the bias vector is asked for the fused path (some versions
  // need it); otherwise a separate pass adds it.
  const bool want_fuse = bias != nullptr && alpha == 1.0f && (reinterpret_cast<uintptr_t>(bias) % 16) == 0;
  LtKey key{ta,
            tb,
            out_bf16,
            want_fuse,
            M,
            N,
            K,
            lda,
            ldb,
            ldc,
            alignment_of(A, lda, 2),
            alignment_of(B, ldb, 2),
            alignment_of(C, ldc, sizeof(OutT)),
            want_fuse ? alignment_of(bias, 0, 4) : 0u,
            ws_bytes};
  auto it = d.plans.find(key);
  if (it == d.plans.end()) {
    if (d.plans.size() >= kMaxPlans) {
      for (auto& kv : d.plans) lt_destroy_plan(api, kv.second);
      d.plans.clear();
    }
    it = d.plans.emplace(key, lt_build_plan(api, d.handle, key, want_fuse, bias)).first;
  }
  LtPlan& plan = it->second;
  if (!plan.ok) {
    g_lt_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (plan.fused_bias) {
    const void* bias_ptr = bias;
    const int st = api.desc_set(plan.desc, kDescBiasPointer, &bias_ptr, sizeof(bias_ptr));
    if (st != kLtSuccess) {
      lt_set_note("cuBLASLt: setting the bias pointer failed (status " + std::to_string(st) + ")");
      lt_destroy_plan(api, plan);
      g_lt_fallbacks.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  // Swapped operands: cuBLASLt computes D (N x M, column-major) = op(B') op(A') with A' = our B, B' = our A.
  const int st = api.matmul(d.handle, plan.desc, &alpha, B, plan.a, A, plan.b, &beta, C, plan.c, C, plan.c,
                            &plan.algo, ws, ws_bytes, stream);
  if (st != kLtSuccess) {
    lt_set_note("cuBLASLt: cublasLtMatmul failed (status " + std::to_string(st) + ") for M=" + std::to_string(M) +
                " N=" + std::to_string(N) + " K=" + std::to_string(K) + "; this shape now uses the built-in kernel");
    lt_destroy_plan(api, plan);  // leaves ok = false: remembered for this shape
    g_lt_fallbacks.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (bias != nullptr && !plan.fused_bias) {
    GemmParams<OutT> p{nullptr, nullptr, C, bias, M, N, K, 0, 0, ldc, 1.0f, 1.0f};
    launch_scale(p, stream);  // C = 1 * C + bias
  }
  return true;
}

// =========================================================================================================
// Front end
// =========================================================================================================

void check_args(int64_t M, int64_t N, int64_t K, bool ta, bool tb, int64_t lda, int64_t ldb, int64_t ldc,
                const void* A, const void* B, const void* C, float alpha) {
  auto dim = [](int64_t v, const char* name) {
    require(v >= 0, "MINIELM_INVALID_ARGUMENT", std::string("gemm: ") + name + " is negative (" + std::to_string(v) + ")");
    require(v <= INT_MAX, "MINIELM_INVALID_ARGUMENT",
            std::string("gemm: ") + name + " does not fit int32 (" + std::to_string(v) + ")");
  };
  dim(M, "M");
  dim(N, "N");
  dim(K, "K");
  auto ld = [](int64_t v, int64_t min, const char* name, const char* what) {
    require(v >= min, "MINIELM_INVALID_ARGUMENT",
            std::string("gemm: ") + name + " (" + std::to_string(v) + ") is smaller than " + what + " (" +
                std::to_string(min) + ")");
  };
  ld(lda, ta ? M : K, "lda", ta ? "M (A is transposed, stored [K, M])" : "K (A stored [M, K])");
  ld(ldb, tb ? K : N, "ldb", tb ? "K (B is transposed, stored [N, K])" : "N (B stored [K, N])");
  ld(ldc, N, "ldc", "N");
  if (M > 0 && N > 0) {
    require(C != nullptr, "MINIELM_INVALID_ARGUMENT", "gemm: C is null");
    if (K > 0 && alpha != 0.0f) {
      require(A != nullptr, "MINIELM_INVALID_ARGUMENT", "gemm: A is null");
      require(B != nullptr, "MINIELM_INVALID_ARGUMENT", "gemm: B is null");
    }
  }
}

template <typename OutT>
void gemm_impl(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, OutT* C, int64_t ldc, const float* bias, cudaStream_t stream) {
  check_args(M, N, K, ta, tb, lda, ldb, ldc, A, B, C, alpha);
  if (M == 0 || N == 0) return;
  GemmParams<OutT> p{A, B, C, bias, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), lda, ldb, ldc,
                     alpha, beta};
  if (K == 0 || alpha == 0.0f) {  // no product: C = beta * C + bias, A and B untouched
    launch_scale(p, stream);
    return;
  }
  const int dev = current_device();
  const int mode = current_mode();
  if (mode == kAuto && lt_gemm(ta, tb, p.M, p.N, p.K, alpha, A, lda, B, ldb, beta, C, ldc, bias, stream, dev))
    return;
  const bool has_mma = device_info(dev).major >= 8;
  bool simple;
  if (mode == kSimple || !has_mma)
    simple = true;
  else if (mode == kMma)
    simple = false;
  else  // tiny problems: one launch of the simple kernel beats a mostly empty 128 x 128 tile
    simple = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K) <= 64.0 * 64.0 * 64.0;
  if (simple)
    launch_simple(ta, tb, p, stream);
  else
    launch_mma(ta, tb, p, stream, dev);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, cudaStream_t stream) {
  gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, stream);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc, const float* bias, cudaStream_t stream) {
  gemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, stream);
}

const char* gemm_backend() {
  if (current_mode() != kAuto) return "builtin";
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return "builtin";
  }
  return lt_ready(dev) ? "cublaslt" : "builtin";
}

bool gemm_force_backend(const char* name) {
  if (name == nullptr || std::strcmp(name, "auto") == 0) {
    g_mode.store(mode_from_env(), std::memory_order_release);
    return true;
  }
  if (std::strcmp(name, "cublaslt") == 0) {
    if (!gemm_cublaslt_available()) return false;
    g_mode.store(kAuto, std::memory_order_release);
    return true;
  }
  int m;
  if (std::strcmp(name, "builtin") == 0)
    m = kBuiltin;
  else if (std::strcmp(name, "mma") == 0)
    m = kMma;
  else if (std::strcmp(name, "simple") == 0)
    m = kSimple;
  else
    return false;
  g_mode.store(m, std::memory_order_release);
  return true;
}

bool gemm_cublaslt_available() {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return lt_ready(dev);
}

const char* gemm_cublaslt_library() { return lt_api().library; }

int64_t gemm_cublaslt_fallbacks() { return g_lt_fallbacks.load(std::memory_order_relaxed); }

std::string gemm_cublaslt_note() {
  const LtApi& api = lt_api();
  std::lock_guard<std::mutex> lock(g_lt_mu);
  if (!g_lt_note.empty()) return g_lt_note;
  return api.note;
}

}  // namespace cuda
}  // namespace minielm
