// Attention (the Attention section of kernels.cuh): flash-style causal multi-head attention with a key
// padding mask for training (forward + backward), and paged single-query attention for decoding.
//
// Design (FlashAttention-2 on bf16 tensor cores, mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, sm_80+):
//   - Every kernel runs 4 warps (128 threads). A warp owns 16 "row" positions of the tile (query rows in the
//     forward and dQ kernels, key rows in the dK/dV kernel) and streams the other operand through shared
//     memory in 64-wide (32 for hs = 128 where registers are tight) tiles, double-buffered with cp.async.
//   - Shared tiles are [rows][hs + 8] bf16 (the 8-element pad makes both the 32-bit fragment loads and the
//     ldmatrix row reads bank-conflict free). Operands whose MMA "k" dimension runs along the tile rows
//     (V in P·V, dO in P^T·dO, Q in dS^T·Q, K in dS·K) are read with ldmatrix.x4.trans; the others with plain
//     32-bit shared loads in the fragment layout of the PTX ISA ("Matrix Fragments for mma.m16n8k16 with
//     floating point type").
//   - The fp32 accumulator fragment of S (rows x 16 keys = two n8 tiles) is reused in registers as the bf16 A
//     fragment of the next MMA (P·V, P^T·dO, dS^T·Q, dS·K): C tile 2k holds A columns 0..7, tile 2k+1
//     columns 8..15, exactly the A layout.
//   - Softmax in fp32, base 2 (scores pre-multiplied by scale * log2(e)); masked scores are -inf before the
//     max; a row whose running max is still -inf uses 0 as its shift so no exp(-inf - -inf) = NaN arises.
//     The forward stores lse = ln(sum_j exp(s_j * scale)) per row, -inf for a row with no visible key (its
//     output is 0). The backward recomputes P = exp2(s * scale * log2e - lse * log2e); rows with lse = -inf
//     (or beyond T) get lse2 = +inf, hence P = exp2(-inf) = 0 exactly: they contribute nothing.
//   - Backward, three launches, no atomics (deterministic), no scratch beyond the contract's B*NH*T floats:
//       1. D[b,h,i] = dot(dout_i, out_i) over the head (fp32) into `scratch`;
//       2. dK/dV: one block per 64-key tile, loop over the query tiles that see it (S^T = K Q^T,
//          P^T, dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q), dK and dV in fp32
//          registers, written once as bf16;
//       3. dQ: one block per 64-query tile, loop over its causal key tiles (S, P, dP = dO V^T, dS, dQ += dS K),
//          written once as bf16. It recomputes S and dP (7 tile GEMMs in all instead of FA2's 5 with fp32 dQ
//          atomics), the price of determinism and of the small scratch.
//   - Decode: one warp per (row, head): lanes compute scores for keys lane, lane+32, ... gathered through the
//     ctx table (16-byte loads of each key row), scores in shared memory (max_len floats per warp), fp32
//     softmax, then lanes split the head dimension for the weighted sum of the gathered value rows.
// Pointers read with cp.async / 16-byte loads (qkv, dout, kcache, vcache) must be 16-byte aligned, those
// written 2 bf16 at a time (out, dqkv) 4-byte aligned (cudaMalloc gives 256); violations throw
// MINIELM_INVALID_ARGUMENT.
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.cuh"

namespace minielm {
namespace cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps per block in every attention kernel
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFull = 0xffffffffu;

// Query-tile width of the dK/dV kernel and key-tile width of the dQ kernel (register pressure at hs 128).
template <int HS>
constexpr int bwd_inner_tile() {
  return HS == 128 ? 32 : 64;
}

// ---- PTX wrappers ---------------------------------------------------------------------------------------
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16-byte async copy global -> shared; pred false zero-fills the 16 bytes (src-size 0, nothing is read).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool pred) {
  const int n = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(n)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// Four 8x8 b16 matrices, transposed: lane l addresses row (l & 7) of matrix (l >> 3); register i of lane
// (g = l / 4, t = l % 4) receives elements (rows 2t, 2t+1; column g) of matrix i (lower row in the low half).
__device__ __forceinline__ void ldsm_x4_trans(uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3,
                                              const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p))
               : "memory");
}
// D += A * B, A 16x16 (row), B 16x8 (col), bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two floats -> packed bf16x2 (round to nearest even), `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
// 2^x (approximate, ~2 ulp); 2^-inf = +0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ uint32_t lds32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ void stg32(bf16* p, uint32_t v) { *reinterpret_cast<uint32_t*>(p) = v; }
__device__ __forceinline__ float bf_lo(uint32_t u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

// ---- masking and normalisers ---------------------------------------------------------------------------
// Additive bias of key j: 0 when visible by the padding mask (and < T), -inf otherwise.
__device__ __forceinline__ float key_bias(const uint8_t* km, int j, int T) {
  return (j < T && (km == nullptr || km[j] != 0)) ? 0.f : -INFINITY;
}
// A score scaled to base 2 (sl2 = scale * log2e) plus the key bias; -inf where the key is causally hidden.
__device__ __forceinline__ float masked_score(bool visible, float s, float sl2, float bias) {
  return visible ? fmaf(s, sl2, bias) : -INFINITY;
}
// The backward's base-2 normaliser of a query row from its lse: +inf for a row with no visible key (lse =
// -inf), so that exp2(s - lse2) = 0 there.
__device__ __forceinline__ float lse2_of(float l) { return l > -INFINITY ? l * kLog2e : INFINITY; }

// ---- tile loaders ---------------------------------------------------------------------------------------
// Rows [row0, row0 + ROWS) of a [T, stride] bf16 matrix (HS columns from `src`) into dst [ROWS][HS + 8];
// rows >= T are zero-filled. Issues cp.async only (the caller commits).
template <int HS, int ROWS>
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, int64_t stride, int row0, int T) {
  constexpr int kChunks = HS / 8, kTotal = ROWS * kChunks, LD = HS + 8;
  static_assert(kTotal % kThreads == 0, "tile chunks must divide among the threads");
#pragma unroll
  for (int i = 0; i < kTotal / kThreads; ++i) {
    const int c = i * kThreads + static_cast<int>(threadIdx.x);
    const int r = c / kChunks, k = c % kChunks;
    const int gr = row0 + r;
    const bool ok = gr < T;
    cp_async16(dst + r * LD + k * 8, src + static_cast<int64_t>(ok ? gr : 0) * stride + k * 8, ok);
  }
}
// key_bias of keys [k0, k0 + n) into dst. (Spelled out rather than calling key_bias: as a call it compiles to
// equivalent but different code in the forward and dQ kernels.)
__device__ __forceinline__ void load_key_bias(float* dst, const uint8_t* km, int k0, int n, int T) {
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const int j = k0 + i;
    dst[i] = (j < T && (km == nullptr || km[j] != 0)) ? 0.f : -INFINITY;
  }
}
// Key tile [k0, k0 + BK) of the forward and dQ kernels into buffer `buf` of their double-buffered Ks, Vs
// ([2][BK][HS + 8]) and kbias ([2][BK]): K and V rows by cp.async (not committed), the key biases.
template <int HS, int BK>
__device__ __forceinline__ void load_kv_tile(bf16* Ks, bf16* Vs, float* kbias, int buf, const bf16* kg,
                                             const bf16* vg, int64_t C3, const uint8_t* km, int k0, int T) {
  constexpr int LD = HS + 8;
  load_rows<HS, BK>(Ks + buf * BK * LD, kg, C3, k0, T);
  load_rows<HS, BK>(Vs + buf * BK * LD, vg, C3, k0, T);
  load_key_bias(kbias + buf * BK, km, k0, BK, T);
}
// One step of the double-buffered tile loop: issues the next tile's loads (`load_next`, when `more`) as a new
// cp.async group, waits for the current tile's group, then a block barrier.
template <class F>
__device__ __forceinline__ void prefetch_and_wait(bool more, F&& load_next) {
  if (more) {
    load_next();
    cp_async_commit();
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}

// ---- warp-level tile GEMMs (mma.m16n8k16; g = lane / 4, t = lane % 4) -----------------------------------
template <int N>
__device__ __forceinline__ void zero_frags(float (&f)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) f[i][0] = f[i][1] = f[i][2] = f[i][3] = 0.f;
}
// A fragment of a 16 x 16 block of a shared [rows][LD] tile, p at (row g, column 2t) of the block.
template <int LD>
__device__ __forceinline__ void lds_a_frag(uint32_t (&a)[4], const bf16* p) {
  a[0] = lds32(p);
  a[1] = lds32(p + 8 * LD);
  a[2] = lds32(p + 8);
  a[3] = lds32(p + 8 * LD + 8);
}
// acc = A B^T over k = HS (acc [N / 8][4] is zeroed first): A the warp's 16 rows of a shared tile (a_rows at
// row g, column 2t), B rows [0, N) of a shared tile (b_cols at row 0, column 2t). k steps outer, n tiles inner.
template <int HS, int N, int LD>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], const bf16* a_rows, const bf16* b_cols, int g) {
  zero_frags(acc);
#pragma unroll
  for (int ks = 0; ks < HS / 16; ++ks) {
    uint32_t a[4];
    lds_a_frag<LD>(a, a_rows + ks * 16);
#pragma unroll
    for (int nt = 0; nt < N / 8; ++nt) {
      const bf16* br = b_cols + (nt * 8 + g) * LD + ks * 16;
      mma_bf16(acc[nt], a, lds32(br), lds32(br + 8));
    }
  }
}
// acc [HS / 8][4] += P B over k = N: P the warp's 16 x N fp32 accumulators (C tiles 2kk and 2kk + 1 become the
// bf16 A fragment of k step kk), B rows [0, N) x HS columns of the shared tile b_tile (k runs along its rows:
// ldmatrix.trans).
template <int HS, int N, int LD>
__device__ __forceinline__ void mma_pb(float (&acc)[HS / 8][4], const float (&p)[N / 8][4], const bf16* b_tile,
                                       int lane) {
#pragma unroll
  for (int kk = 0; kk < N / 16; ++kk) {
    const uint32_t a[4] = {pack_bf16(p[2 * kk][0], p[2 * kk][1]), pack_bf16(p[2 * kk][2], p[2 * kk][3]),
                           pack_bf16(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                           pack_bf16(p[2 * kk + 1][2], p[2 * kk + 1][3])};
    const bf16* brow = b_tile + (kk * 16 + (lane & 15)) * LD + (lane >> 4) * 8;
#pragma unroll
    for (int dp = 0; dp < HS / 16; ++dp) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_trans(b0, b1, b2, b3, brow + dp * 16);
      mma_bf16(acc[2 * dp], a, b0, b1);
      mma_bf16(acc[2 * dp + 1], a, b2, b3);
    }
  }
}
// Stores row g (R = 0) or g + 8 (R = 2) of the accumulators f [HS / 8][4], times mul, as bf16 pairs at `row`
// (already at column 2t).
template <int HS, int R>
__device__ __forceinline__ void store_frag_row(bf16* row, const float (&f)[HS / 8][4], float mul) {
#pragma unroll
  for (int nd = 0; nd < HS / 8; ++nd) stg32(row + nd * 8, pack_bf16(f[nd][R] * mul, f[nd][R + 1] * mul));
}

// ---- forward --------------------------------------------------------------------------------------------
template <int HS>
constexpr size_t fwd_smem_bytes() {
  return static_cast<size_t>(64 * (HS + 8) + 4 * 64 * (HS + 8)) * sizeof(bf16) + 2 * 64 * sizeof(float);
}

// grid (ceil(T / 64), NH, B): block x handles query tile gridDim.x - 1 - x (longest first).
template <int HS>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(bf16* out, float* lse, const bf16* qkv,
                                                            const uint8_t* key_mask, int T, int C, int NH,
                                                            float sl2) {
  constexpr int BQ = 64, BK = 64, LD = HS + 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);                     // [BQ][LD]
  bf16* Ks = Qs + BQ * LD;                                      // [2][BK][LD]
  bf16* Vs = Ks + 2 * BK * LD;                                  // [2][BK][LD]
  float* kbias = reinterpret_cast<float*>(Vs + 2 * BK * LD);    // [2][BK]

  const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * BQ;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const bf16* qg = qkv + static_cast<int64_t>(b) * T * C3 + static_cast<int64_t>(h) * HS;
  const bf16* kg = qg + C;
  const bf16* vg = qg + 2 * static_cast<int64_t>(C);
  const uint8_t* km = key_mask ? key_mask + static_cast<int64_t>(b) * T : nullptr;
  const int nkt = (min(T, q0 + BQ) + BK - 1) / BK;

  load_rows<HS, BQ>(Qs, qg, C3, q0, T);
  cp_async_commit();
  load_kv_tile<HS, BK>(Ks, Vs, kbias, 0, kg, vg, C3, km, 0, T);
  cp_async_commit();
  cp_async_wait<1>();  // the Q group is complete
  __syncthreads();

  // Q fragments (A operand, 16 rows of this warp x HS), kept in registers for the whole key loop.
  uint32_t qf[HS / 16][4];
  {
    const bf16* r0 = Qs + (warp * 16 + g) * LD + 2 * t;
#pragma unroll
    for (int ks = 0; ks < HS / 16; ++ks) lds_a_frag<LD>(qf[ks], r0 + ks * 16);
  }
  const int qi0 = q0 + warp * 16 + g, qi1 = qi0 + 8;  // this thread's two query rows
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  float o[HS / 8][4];
  zero_frags(o);

  for (int kt = 0; kt < nkt; ++kt) {
    const int buf = kt & 1;
    prefetch_and_wait(kt + 1 < nkt,
                      [&] { load_kv_tile<HS, BK>(Ks, Vs, kbias, buf ^ 1, kg, vg, C3, km, (kt + 1) * BK, T); });
    const bf16* Kb = Ks + buf * BK * LD;
    const bf16* Vb = Vs + buf * BK * LD;
    const float* kb = kbias + buf * BK;

    // S = Q K^T (16 x BK per warp).
    float s[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
      const bf16* kr = Kb + (nt * 8 + g) * LD + 2 * t;
#pragma unroll
      for (int ks = 0; ks < HS / 16; ++ks) mma_bf16(s[nt], qf[ks], lds32(kr + ks * 16), lds32(kr + ks * 16 + 8));
    }
    // Scale (base 2), causal + padding mask, row max over the tile (the 4 threads of a quad share a row).
    const int k0 = kt * BK;
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = nt * 8 + 2 * t + e, j = k0 + c;
        const float bias = kb[c];
        s[nt][e] = masked_score(j <= qi0, s[nt][e], sl2, bias);
        s[nt][2 + e] = masked_score(j <= qi1, s[nt][2 + e], sl2, bias);
        mx0 = fmaxf(mx0, s[nt][e]);
        mx1 = fmaxf(mx1, s[nt][2 + e]);
      }
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(kFull, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(kFull, mx1, 2));
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    // Shift used in the exponentials: 0 while a row has seen no visible key (all its terms are exp2(-inf)).
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    const float a0 = fast_exp2(m0 - mu0), a1 = fast_exp2(m1 - mu1);  // m = -inf: 0 (l, o are 0 anyway)
    m0 = mn0;
    m1 = mn1;
    l0 *= a0;
    l1 *= a1;
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd) {
      o[nd][0] *= a0;
      o[nd][1] *= a0;
      o[nd][2] *= a1;
      o[nd][3] *= a1;
    }
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] = fast_exp2(s[nt][0] - mu0);
      s[nt][1] = fast_exp2(s[nt][1] - mu0);
      s[nt][2] = fast_exp2(s[nt][2] - mu1);
      s[nt][3] = fast_exp2(s[nt][3] - mu1);
      l0 += s[nt][0] + s[nt][1];
      l1 += s[nt][2] + s[nt][3];
    }
    // O += P V: P from the S accumulators (bf16), V via ldmatrix.trans (k = key rows, n = head dims).
    mma_pb<HS, BK, LD>(o, s, Vb, lane);
    __syncthreads();  // everyone is done with this buffer before it is refilled
  }

  // Epilogue: full row sums across the quad, normalise, store (rows >= T are dropped).
  l0 += __shfl_xor_sync(kFull, l0, 1);
  l0 += __shfl_xor_sync(kFull, l0, 2);
  l1 += __shfl_xor_sync(kFull, l1, 1);
  l1 += __shfl_xor_sync(kFull, l1, 2);
  const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  const int64_t obase = static_cast<int64_t>(b) * T;
  if (qi0 < T) {
    store_frag_row<HS, 0>(out + (obase + qi0) * C + static_cast<int64_t>(h) * HS + 2 * t, o, inv0);
    if (t == 0)
      lse[(static_cast<int64_t>(b) * NH + h) * T + qi0] = l0 > 0.f ? (m0 + log2f(l0)) * kLn2 : -INFINITY;
  }
  if (qi1 < T) {
    store_frag_row<HS, 2>(out + (obase + qi1) * C + static_cast<int64_t>(h) * HS + 2 * t, o, inv1);
    if (t == 0)
      lse[(static_cast<int64_t>(b) * NH + h) * T + qi1] = l1 > 0.f ? (m1 + log2f(l1)) * kLn2 : -INFINITY;
  }
}

// ---- backward -------------------------------------------------------------------------------------------
// D[b, h, i] = sum over the head of dout * out (fp32). One warp per (b, i, h).
__global__ void attn_bwd_dot_kernel(float* D, const bf16* dout, const bf16* out, int64_t BT, int T, int C, int NH,
                                    int hs) {
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= BT * NH) return;  // uniform per warp
  const int64_t bt = w / NH;
  const int h = static_cast<int>(w % NH);
  const int64_t b = bt / T, i = bt % T;
  const bf16* d = dout + bt * C + static_cast<int64_t>(h) * hs;
  const bf16* o = out + bt * C + static_cast<int64_t>(h) * hs;
  float acc = 0.f;
  for (int k = lane; k < hs; k += 32) acc += to_f(d[k]) * to_f(o[k]);
  acc = warp_sum(acc);
  if (lane == 0) D[(b * NH + h) * T + i] = acc;
}

// Loads query tile qt of the dK/dV kernel into buffer `buf`: Q and dO rows by cp.async (not committed),
// lse2 (+inf for rows with no visible key or beyond T) and D by plain stores.
template <int HS, int BQ>
__device__ __forceinline__ void load_q_tile(bf16* Qs, bf16* Os, float* L2, float* Dd, const bf16* qg,
                                            const bf16* dog, const float* lg, const float* dg, int64_t C3,
                                            int64_t C, int qt, int T) {
  load_rows<HS, BQ>(Qs, qg, C3, qt * BQ, T);
  load_rows<HS, BQ>(Os, dog, C, qt * BQ, T);
  for (int i = threadIdx.x; i < BQ; i += kThreads) {
    const int q = qt * BQ + i;
    L2[i] = lse2_of(q < T ? lg[q] : -INFINITY);
    Dd[i] = q < T ? dg[q] : 0.f;
  }
}

template <int HS>
constexpr size_t dkdv_smem_bytes() {
  constexpr int BQ = bwd_inner_tile<HS>();
  return static_cast<size_t>(2 * 64 * (HS + 8) + 4 * BQ * (HS + 8)) * sizeof(bf16) + 4 * BQ * sizeof(float);
}

// grid (ceil(T / 64), NH, B): block x owns keys [64x, 64x + 64) of head (b, h).
template <int HS>
__global__ void __launch_bounds__(kThreads) attn_bwd_dkdv_kernel(bf16* dqkv, const bf16* dout, const float* lse,
                                                                 const float* Dsc, const bf16* qkv,
                                                                 const uint8_t* key_mask, int T, int C, int NH,
                                                                 float sl2, float scale) {
  constexpr int BK = 64, BQ = bwd_inner_tile<HS>(), LD = HS + 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);                 // [BK][LD]
  bf16* Vs = Ks + BK * LD;                                  // [BK][LD]
  bf16* Qs = Vs + BK * LD;                                  // [2][BQ][LD]
  bf16* Os = Qs + 2 * BQ * LD;                              // [2][BQ][LD] (dO)
  float* L2 = reinterpret_cast<float*>(Os + 2 * BQ * LD);   // [2][BQ]
  float* Dd = L2 + 2 * BQ;                                  // [2][BQ]

  const int k0 = blockIdx.x * BK;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const bf16* qg = qkv + static_cast<int64_t>(b) * T * C3 + static_cast<int64_t>(h) * HS;
  const bf16* kg = qg + C;
  const bf16* vg = qg + 2 * static_cast<int64_t>(C);
  const bf16* dog = dout + static_cast<int64_t>(b) * T * C + static_cast<int64_t>(h) * HS;
  const float* lg = lse + (static_cast<int64_t>(b) * NH + h) * T;
  const float* dg = Dsc + (static_cast<int64_t>(b) * NH + h) * T;
  const uint8_t* km = key_mask ? key_mask + static_cast<int64_t>(b) * T : nullptr;
  const int qt0 = k0 / BQ, nqt = (T + BQ - 1) / BQ;  // the first query tile that sees key k0, the last one

  load_rows<HS, BK>(Ks, kg, C3, k0, T);
  load_rows<HS, BK>(Vs, vg, C3, k0, T);
  cp_async_commit();
  load_q_tile<HS, BQ>(Qs, Os, L2, Dd, qg, dog, lg, dg, C3, C, qt0, T);
  cp_async_commit();

  const int j0 = k0 + warp * 16 + g, j1 = j0 + 8;  // this thread's two key rows
  const float kb0 = key_bias(km, j0, T), kb1 = key_bias(km, j1, T);
  float dk[HS / 8][4], dv[HS / 8][4];
  zero_frags(dk);
  zero_frags(dv);
  const bf16* kr0 = Ks + (warp * 16 + g) * LD + 2 * t;
  const bf16* vr0 = Vs + (warp * 16 + g) * LD + 2 * t;

  for (int qt = qt0; qt < nqt; ++qt) {
    const int buf = (qt - qt0) & 1;
    prefetch_and_wait(qt + 1 < nqt, [&] {
      const int nb = buf ^ 1;
      load_q_tile<HS, BQ>(Qs + nb * BQ * LD, Os + nb * BQ * LD, L2 + nb * BQ, Dd + nb * BQ, qg, dog, lg, dg, C3, C,
                          qt + 1, T);
    });
    const bf16* Qb = Qs + buf * BQ * LD;
    const bf16* Ob = Os + buf * BQ * LD;
    const float* Lb = L2 + buf * BQ;
    const float* Db = Dd + buf * BQ;
    const int q0 = qt * BQ;

    // S^T = K Q^T (16 keys x BQ queries per warp).
    float s[BQ / 8][4];
    mma_abt<HS, BQ, LD>(s, kr0, Qb + 2 * t, g);
    // P^T = exp2(S^T * scale * log2e - lse2[q]), 0 where masked (-inf) or lse2 = +inf.
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = nt * 8 + 2 * t + e, q = q0 + c;
        const float L = Lb[c];
        s[nt][e] = fast_exp2(masked_score(j0 <= q, s[nt][e], sl2, kb0) - L);
        s[nt][2 + e] = fast_exp2(masked_score(j1 <= q, s[nt][2 + e], sl2, kb1) - L);
      }
    }
    // dV += P^T dO (k = query rows of dO: ldmatrix.trans).
    mma_pb<HS, BQ, LD>(dv, s, Ob, lane);
    // dP^T = V dO^T.
    float dpt[BQ / 8][4];
    mma_abt<HS, BQ, LD>(dpt, vr0, Ob + 2 * t, g);
    // dS^T = P^T (dP^T - D[q]) (unscaled; the softmax scale is applied to dK at the end).
#pragma unroll
    for (int nt = 0; nt < BQ / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float Dq = Db[nt * 8 + 2 * t + e];
        s[nt][e] *= dpt[nt][e] - Dq;
        s[nt][2 + e] *= dpt[nt][2 + e] - Dq;
      }
    }
    // dK += dS^T Q (k = query rows of Q: ldmatrix.trans).
    mma_pb<HS, BQ, LD>(dk, s, Qb, lane);
    __syncthreads();
  }

  const int64_t rbase = static_cast<int64_t>(b) * T;
  if (j0 < T) {
    bf16* row = dqkv + (rbase + j0) * C3 + static_cast<int64_t>(h) * HS + 2 * t;
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd) {
      stg32(row + C + nd * 8, pack_bf16(dk[nd][0] * scale, dk[nd][1] * scale));
      stg32(row + 2 * static_cast<int64_t>(C) + nd * 8, pack_bf16(dv[nd][0], dv[nd][1]));
    }
  }
  if (j1 < T) {
    bf16* row = dqkv + (rbase + j1) * C3 + static_cast<int64_t>(h) * HS + 2 * t;
#pragma unroll
    for (int nd = 0; nd < HS / 8; ++nd) {
      stg32(row + C + nd * 8, pack_bf16(dk[nd][2] * scale, dk[nd][3] * scale));
      stg32(row + 2 * static_cast<int64_t>(C) + nd * 8, pack_bf16(dv[nd][2], dv[nd][3]));
    }
  }
}

template <int HS>
constexpr size_t dq_smem_bytes() {
  constexpr int BK = bwd_inner_tile<HS>();
  return static_cast<size_t>(2 * 64 * (HS + 8) + 4 * BK * (HS + 8)) * sizeof(bf16) + 2 * BK * sizeof(float);
}

// grid (ceil(T / 64), NH, B): block x owns query tile gridDim.x - 1 - x of head (b, h).
template <int HS>
__global__ void __launch_bounds__(kThreads) attn_bwd_dq_kernel(bf16* dqkv, const bf16* dout, const float* lse,
                                                               const float* Dsc, const bf16* qkv,
                                                               const uint8_t* key_mask, int T, int C, int NH,
                                                               float sl2, float scale) {
  constexpr int BQ = 64, BK = bwd_inner_tile<HS>(), LD = HS + 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);                  // [BQ][LD]
  bf16* Os = Qs + BQ * LD;                                   // [BQ][LD] (dO)
  bf16* Ks = Os + BQ * LD;                                   // [2][BK][LD]
  bf16* Vs = Ks + 2 * BK * LD;                               // [2][BK][LD]
  float* kbias = reinterpret_cast<float*>(Vs + 2 * BK * LD); // [2][BK]

  const int q0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * BQ;
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int64_t C3 = 3 * static_cast<int64_t>(C);
  const bf16* qg = qkv + static_cast<int64_t>(b) * T * C3 + static_cast<int64_t>(h) * HS;
  const bf16* kg = qg + C;
  const bf16* vg = qg + 2 * static_cast<int64_t>(C);
  const bf16* dog = dout + static_cast<int64_t>(b) * T * C + static_cast<int64_t>(h) * HS;
  const float* lg = lse + (static_cast<int64_t>(b) * NH + h) * T;
  const float* dg = Dsc + (static_cast<int64_t>(b) * NH + h) * T;
  const uint8_t* km = key_mask ? key_mask + static_cast<int64_t>(b) * T : nullptr;
  const int nkt = (min(T, q0 + BQ) + BK - 1) / BK;

  load_rows<HS, BQ>(Qs, qg, C3, q0, T);
  load_rows<HS, BQ>(Os, dog, C, q0, T);
  cp_async_commit();
  load_kv_tile<HS, BK>(Ks, Vs, kbias, 0, kg, vg, C3, km, 0, T);
  cp_async_commit();

  const int qi0 = q0 + warp * 16 + g, qi1 = qi0 + 8;
  float L0 = INFINITY, L1 = INFINITY, D0 = 0.f, D1 = 0.f;
  if (qi0 < T) {
    L0 = lse2_of(lg[qi0]);
    D0 = dg[qi0];
  }
  if (qi1 < T) {
    L1 = lse2_of(lg[qi1]);
    D1 = dg[qi1];
  }
  float dq[HS / 8][4];
  zero_frags(dq);
  const bf16* qr0 = Qs + (warp * 16 + g) * LD + 2 * t;
  const bf16* or0 = Os + (warp * 16 + g) * LD + 2 * t;

  for (int kt = 0; kt < nkt; ++kt) {
    const int buf = kt & 1;
    prefetch_and_wait(kt + 1 < nkt,
                      [&] { load_kv_tile<HS, BK>(Ks, Vs, kbias, buf ^ 1, kg, vg, C3, km, (kt + 1) * BK, T); });
    const bf16* Kb = Ks + buf * BK * LD;
    const bf16* Vb = Vs + buf * BK * LD;
    const float* kb = kbias + buf * BK;
    const int k0 = kt * BK;

    // S = Q K^T.
    float s[BK / 8][4];
    mma_abt<HS, BK, LD>(s, qr0, Kb + 2 * t, g);
    // P.
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int c = nt * 8 + 2 * t + e, j = k0 + c;
        const float bias = kb[c];
        s[nt][e] = fast_exp2(masked_score(j <= qi0, s[nt][e], sl2, bias) - L0);
        s[nt][2 + e] = fast_exp2(masked_score(j <= qi1, s[nt][2 + e], sl2, bias) - L1);
      }
    }
    // dP = dO V^T.
    float dpv[BK / 8][4];
    mma_abt<HS, BK, LD>(dpv, or0, Vb + 2 * t, g);
    // dS = P (dP - D), then dQ += dS K (k = key rows of K: ldmatrix.trans).
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] *= dpv[nt][0] - D0;
      s[nt][1] *= dpv[nt][1] - D0;
      s[nt][2] *= dpv[nt][2] - D1;
      s[nt][3] *= dpv[nt][3] - D1;
    }
    mma_pb<HS, BK, LD>(dq, s, Kb, lane);
    __syncthreads();
  }

  const int64_t rbase = static_cast<int64_t>(b) * T;
  if (qi0 < T) store_frag_row<HS, 0>(dqkv + (rbase + qi0) * C3 + static_cast<int64_t>(h) * HS + 2 * t, dq, scale);
  if (qi1 < T) store_frag_row<HS, 2>(dqkv + (rbase + qi1) * C3 + static_cast<int64_t>(h) * HS + 2 * t, dq, scale);
}

// ---- decode ---------------------------------------------------------------------------------------------
constexpr int kDecodeWarps = kThreads / 32;
constexpr int64_t kDecodeMaxLen = 12288;  // shared scores: 4 warps x max_len floats must fit one SM

// One warp per (row, head); block = 4 warps. Shared: q [4][HS] (pre-scaled fp32), scores [4][max_len].
template <int HS>
__global__ void __launch_bounds__(kThreads) attn_decode_kernel(bf16* out, const bf16* q, const bf16* kc,
                                                               const bf16* vc, const int32_t* ctx_rows,
                                                               const int32_t* ctx_offset, const int32_t* len,
                                                               int64_t n, int C, int NH, int max_len,
                                                               float scale) {
  extern __shared__ __align__(16) float dsm[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t item = static_cast<int64_t>(blockIdx.x) * kDecodeWarps + warp;
  if (item >= n * NH) return;  // uniform per warp; only __syncwarp below
  float* qs = dsm + warp * HS;
  float* sc = dsm + kDecodeWarps * HS + static_cast<int64_t>(warp) * max_len;
  const int64_t r = item / NH;
  const int h = static_cast<int>(item % NH);
  int L = len[r];
  L = L < 0 ? 0 : (L > max_len ? max_len : L);
  const int32_t* rows = ctx_rows + ctx_offset[r];
  const int64_t hoff = static_cast<int64_t>(h) * HS;
  for (int d = lane; d < HS; d += 32) qs[d] = to_f(q[r * C + hoff + d]) * scale;
  __syncwarp();

  float mx = -INFINITY;
  for (int tt = lane; tt < L; tt += 32) {
    const uint4* k = reinterpret_cast<const uint4*>(kc + static_cast<int64_t>(rows[tt]) * C + hoff);
    float acc = 0.f;
#pragma unroll
    for (int c = 0; c < HS / 8; ++c) {
      const uint4 u = __ldg(k + c);
      const float4 qa = *reinterpret_cast<const float4*>(qs + 8 * c);
      const float4 qb = *reinterpret_cast<const float4*>(qs + 8 * c + 4);
      acc = fmaf(qa.x, bf_lo(u.x), acc);
      acc = fmaf(qa.y, bf_hi(u.x), acc);
      acc = fmaf(qa.z, bf_lo(u.y), acc);
      acc = fmaf(qa.w, bf_hi(u.y), acc);
      acc = fmaf(qb.x, bf_lo(u.z), acc);
      acc = fmaf(qb.y, bf_hi(u.z), acc);
      acc = fmaf(qb.z, bf_lo(u.w), acc);
      acc = fmaf(qb.w, bf_hi(u.w), acc);
    }
    sc[tt] = acc;
    mx = fmaxf(mx, acc);
  }
  mx = warp_max(mx);
  float sum = 0.f;
  for (int tt = lane; tt < L; tt += 32) {
    const float e = expf(sc[tt] - mx);
    sc[tt] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  __syncwarp();

  // Weighted sum of values: lane owns head dims [lane * DPL, lane * DPL + DPL).
  constexpr int DPL = HS / 32;
  float o[DPL];
#pragma unroll
  for (int i = 0; i < DPL; ++i) o[i] = 0.f;
  const int64_t voff = hoff + lane * DPL;
#pragma unroll 4
  for (int tt = 0; tt < L; ++tt) {
    const float p = sc[tt];
    const bf16* v = vc + static_cast<int64_t>(rows[tt]) * C + voff;
    if constexpr (DPL == 4) {
      const uint2 u = __ldg(reinterpret_cast<const uint2*>(v));
      o[0] = fmaf(p, bf_lo(u.x), o[0]);
      o[1] = fmaf(p, bf_hi(u.x), o[1]);
      o[2] = fmaf(p, bf_lo(u.y), o[2]);
      o[3] = fmaf(p, bf_hi(u.y), o[3]);
    } else if constexpr (DPL == 2) {
      const uint32_t u = __ldg(reinterpret_cast<const unsigned int*>(v));
      o[0] = fmaf(p, bf_lo(u), o[0]);
      o[1] = fmaf(p, bf_hi(u), o[1]);
    } else {
      o[0] = fmaf(p, to_f(v[0]), o[0]);
    }
  }
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  bf16* orow = out + r * C + voff;
#pragma unroll
  for (int i = 0; i < DPL; ++i) orow[i] = to_bf(o[i] * inv);
}

// ---- host helpers ---------------------------------------------------------------------------------------
[[noreturn]] void bad_arg(const char* fn, const std::string& what) {
  throw Error("MINIELM_INVALID_ARGUMENT", std::string(fn) + ": " + what);
}

int head_size(const char* fn, int64_t C, int64_t NH) {
  if (NH <= 0 || C <= 0 || C % NH != 0)
    bad_arg(fn, "C (" + std::to_string(C) + ") must be a positive multiple of NH (" + std::to_string(NH) + ")");
  const int64_t hs = C / NH;
  if (hs != 32 && hs != 64 && hs != 128)
    bad_arg(fn, "head size C / NH = " + std::to_string(hs) + " is not supported (32, 64 or 128)");
  if (NH > 65535) bad_arg(fn, "NH must be <= 65535");
  return static_cast<int>(hs);
}

void check_align(const char* fn, const void* p, int bytes, const char* name) {
  if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) != 0)
    bad_arg(fn, std::string(name) + " must be " + std::to_string(bytes) + "-byte aligned");
}

void check_bt(const char* fn, int64_t B, int64_t T) {
  if (B < 0 || T < 0) bad_arg(fn, "B and T must be >= 0");
  if (B > 65535) bad_arg(fn, "B must be <= 65535");
  if (T > (int64_t{1} << 30)) bad_arg(fn, "T is too large");
}

template <typename Kernel>
void set_smem(Kernel* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    MINIELM_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int HS>
void launch_forward(bf16* out, float* lse, const bf16* qkv, const uint8_t* key_mask, int64_t B, int64_t T,
                    int64_t C, int64_t NH, cudaStream_t stream) {
  const size_t smem = fwd_smem_bytes<HS>();
  set_smem(attn_fwd_kernel<HS>, smem);
  const float sl2 = (1.f / std::sqrt(static_cast<float>(HS))) * kLog2e;
  const dim3 grid(static_cast<unsigned>(ceil_div(T, 64)), static_cast<unsigned>(NH), static_cast<unsigned>(B));
  attn_fwd_kernel<HS><<<grid, kThreads, smem, stream>>>(out, lse, qkv, key_mask, static_cast<int>(T),
                                                         static_cast<int>(C), static_cast<int>(NH), sl2);
  MINIELM_CUDA_LAUNCHED("attention_forward");
}

template <int HS>
void launch_backward(bf16* dqkv, const float* D, const bf16* dout, const float* lse, const bf16* qkv,
                     const uint8_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream) {
  const float scale = 1.f / std::sqrt(static_cast<float>(HS));
  const float sl2 = scale * kLog2e;
  const dim3 grid(static_cast<unsigned>(ceil_div(T, 64)), static_cast<unsigned>(NH), static_cast<unsigned>(B));
  const size_t smem_kv = dkdv_smem_bytes<HS>();
  set_smem(attn_bwd_dkdv_kernel<HS>, smem_kv);
  attn_bwd_dkdv_kernel<HS><<<grid, kThreads, smem_kv, stream>>>(dqkv, dout, lse, D, qkv, key_mask,
                                                                 static_cast<int>(T), static_cast<int>(C),
                                                                 static_cast<int>(NH), sl2, scale);
  MINIELM_CUDA_LAUNCHED("attention_backward (dk, dv)");
  const size_t smem_q = dq_smem_bytes<HS>();
  set_smem(attn_bwd_dq_kernel<HS>, smem_q);
  attn_bwd_dq_kernel<HS><<<grid, kThreads, smem_q, stream>>>(dqkv, dout, lse, D, qkv, key_mask,
                                                             static_cast<int>(T), static_cast<int>(C),
                                                             static_cast<int>(NH), sl2, scale);
  MINIELM_CUDA_LAUNCHED("attention_backward (dq)");
}

template <int HS>
void launch_decode(bf16* out, const bf16* q, const bf16* kcache, const bf16* vcache, const int32_t* ctx_rows,
                   const int32_t* ctx_offset, const int32_t* len, int64_t n, int64_t C, int64_t NH, int64_t max_len,
                   cudaStream_t stream) {
  const size_t smem = static_cast<size_t>(kDecodeWarps) * (HS + max_len) * sizeof(float);
  set_smem(attn_decode_kernel<HS>, smem);
  const int64_t blocks = ceil_div(n * NH, kDecodeWarps);
  if (blocks > 0x7fffffff) bad_arg("attention_decode", "n * NH is too large");
  attn_decode_kernel<HS><<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(
      out, q, kcache, vcache, ctx_rows, ctx_offset, len, n, static_cast<int>(C), static_cast<int>(NH),
      static_cast<int>(max_len), 1.f / std::sqrt(static_cast<float>(HS)));
  MINIELM_CUDA_LAUNCHED("attention_decode");
}

}  // namespace

void attention_forward(bf16* out, float* lse, const bf16* qkv, const uint8_t* key_mask, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream) {
  const char* fn = "attention_forward";
  const int hs = head_size(fn, C, NH);
  check_bt(fn, B, T);
  if (B == 0 || T == 0) return;
  check_align(fn, qkv, 16, "qkv");
  check_align(fn, out, 4, "out");
  check_align(fn, lse, 4, "lse");
  switch (hs) {
    case 32: launch_forward<32>(out, lse, qkv, key_mask, B, T, C, NH, stream); break;
    case 64: launch_forward<64>(out, lse, qkv, key_mask, B, T, C, NH, stream); break;
    default: launch_forward<128>(out, lse, qkv, key_mask, B, T, C, NH, stream); break;
  }
}

void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* out, const float* lse,
                        const bf16* qkv, const uint8_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t NH,
                        cudaStream_t stream) {
  const char* fn = "attention_backward";
  const int hs = head_size(fn, C, NH);
  check_bt(fn, B, T);
  if (B == 0 || T == 0) return;
  check_align(fn, qkv, 16, "qkv");
  check_align(fn, dout, 16, "dout");
  check_align(fn, dqkv, 4, "dqkv");
  check_align(fn, scratch, 4, "scratch");
  check_align(fn, lse, 4, "lse");
  const int64_t warps = B * T * NH;
  const int64_t blocks = ceil_div(warps, 8);
  if (blocks > 0x7fffffff) bad_arg(fn, "B * T * NH is too large");
  attn_bwd_dot_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(
      scratch, dout, out, B * T, static_cast<int>(T), static_cast<int>(C), static_cast<int>(NH), hs);
  MINIELM_CUDA_LAUNCHED("attention_backward (D)");
  switch (hs) {
    case 32: launch_backward<32>(dqkv, scratch, dout, lse, qkv, key_mask, B, T, C, NH, stream); break;
    case 64: launch_backward<64>(dqkv, scratch, dout, lse, qkv, key_mask, B, T, C, NH, stream); break;
    default: launch_backward<128>(dqkv, scratch, dout, lse, qkv, key_mask, B, T, C, NH, stream); break;
  }
}

void attention_decode(bf16* out, const bf16* q, const bf16* kcache, const bf16* vcache, const int32_t* ctx_rows,
                      const int32_t* ctx_offset, const int32_t* len, int64_t n, int64_t C, int64_t NH,
                      int64_t max_len, cudaStream_t stream) {
  const char* fn = "attention_decode";
  const int hs = head_size(fn, C, NH);
  if (n < 0) bad_arg(fn, "n must be >= 0");
  if (max_len < 0 || max_len > kDecodeMaxLen)
    bad_arg(fn, "max_len must be in [0, " + std::to_string(kDecodeMaxLen) + "], got " + std::to_string(max_len));
  if (n == 0) return;
  check_align(fn, kcache, 16, "kcache");
  check_align(fn, vcache, 16, "vcache");
  switch (hs) {
    case 32: launch_decode<32>(out, q, kcache, vcache, ctx_rows, ctx_offset, len, n, C, NH, max_len, stream); break;
    case 64: launch_decode<64>(out, q, kcache, vcache, ctx_rows, ctx_offset, len, n, C, NH, max_len, stream); break;
    default:
      launch_decode<128>(out, q, kcache, vcache, ctx_rows, ctx_offset, len, n, C, NH, max_len, stream);
      break;
  }
}

}  // namespace cuda
}  // namespace minielm
