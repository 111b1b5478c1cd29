// AVX-512 kernels. The whole file is compiled for AVX-512 through a target pragma, so no global -mavx512
// flag is needed and the rest of the project stays runnable on older CPUs; gemm.cc only calls in here
// after __builtin_cpu_supports said yes. Standard headers are included before the pragma so none of
// their inline functions get AVX-512 code that the linker could pick for other files.
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")
// GCC 12's AVX-512 headers use deliberately undefined pass-through operands (_mm512_undefined_ps) that
// trip -W(maybe-)uninitialized once inlined (GCC bug 105593); the warnings are about the headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "gemm_driver.h"

#ifndef MINIELM_AVX512_MR
#define MINIELM_AVX512_MR 14
#endif
#ifndef MINIELM_AVX512_NV
#define MINIELM_AVX512_NV 2
#endif
#ifndef MINIELM_AVX512_KC
#define MINIELM_AVX512_KC 256
#endif
#ifndef MINIELM_AVX512_MC
#define MINIELM_AVX512_MC 336
#endif
#ifndef MINIELM_AVX512_NC
#define MINIELM_AVX512_NC 1024
#endif

namespace minielm {
namespace gemm_detail {
namespace {

inline __mmask16 tail_mask(int n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1u);
}

// Writes alpha*acc (+ beta*C) to 16 columns. beta == 0 never reads C, so garbage (NaN) there is
// overwritten rather than propagated.
inline void store_tile(float* c, __m512 acc, __mmask16 mask, bool full, __m512 va, float beta, __m512 vb) {
  __m512 v = _mm512_mul_ps(va, acc);
  if (full) {
    if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c), v);
    _mm512_storeu_ps(c, v);
  } else {
    if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, c), v);
    _mm512_mask_storeu_ps(c, mask, v);
  }
}

// Fixed pairwise order, so the result does not depend on anything but the input vector.
inline float hsum(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// In-register 16x16 transpose: r[i] holds row i on entry and column i on exit. Three rounds of
// shuffles (64 in all) instead of 256 scalar moves, which keeps packing the transposed operands
// (A row-major, B^T) far below the cost of the kernel even for N = 256.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  // Now r[4g+q], 128-bit lane L = rows 4g..4g+3 of column 4L+q: a 4x4 transpose of lanes remains.
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const __m512 u0 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44);
    const __m512 u1 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xEE);
    const __m512 u2 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44);
    const __m512 u3 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xEE);
    t[q] = _mm512_shuffle_f32x4(u0, u2, 0x88);
    t[4 + q] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
    t[8 + q] = _mm512_shuffle_f32x4(u1, u3, 0x88);
    t[12 + q] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// Packs `rows` (<= 16) source rows, each contiguous over k (element k of row r at src[r*ld + k]), into
// dst[k*stride + r] for k < kc, zero-filling rows >= rows up to `width` (<= 16) lanes.
inline void pack_transposed(const float* src, int64_t ld, int rows, int64_t kc, float* dst, int64_t stride,
                            int width) {
  const __mmask16 wmask = tail_mask(width);
  for (int64_t k = 0; k < kc; k += 16) {
    const int kk = static_cast<int>(imin(16, kc - k));
    const __mmask16 kmask = tail_mask(kk);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(kmask, src + i * ld + k) : _mm512_setzero_ps();
    transpose16(r);
    if (kk == 16) {
#pragma GCC unroll 16
      for (int t = 0; t < 16; ++t) _mm512_mask_storeu_ps(dst + (k + t) * stride, wmask, r[t]);
    } else {
      for (int t = 0; t < kk; ++t) _mm512_mask_storeu_ps(dst + (k + t) * stride, wmask, r[t]);
    }
  }
}

template <int MR>
void pack_a_avx512(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  static_assert(MR <= 16, "one zmm per packed column");
  const __mmask16 full = tail_mask(MR);
  if (p.ta) {
    // op(A) = A^T: row k of A holds op(A)(i0.., k) contiguously. Walking k outermost reads each row
    // segment once, sequentially, and hands it out to the panels; panel-outer order would revisit the
    // same rows once per panel at a stride of lda, which for lda = 8192 floats (32 KiB, a multiple of
    // 4 KiB) maps every row to one L1 set and one TLB entry per row.
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = p.A + (k0 + k) * p.lda + i0;
      for (int64_t ir = 0; ir < mc; ir += MR) {
        const __mmask16 m = tail_mask(static_cast<int>(imin(MR, mc - ir)));
        _mm512_mask_storeu_ps(dst + ir * kc + k * MR, full, _mm512_maskz_loadu_ps(m, s + ir));
      }
    }
    return;
  }
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int rows = static_cast<int>(imin(MR, mc - ir));
    pack_transposed(p.A + (i0 + ir) * p.lda + k0, p.lda, rows, kc, dst + ir * kc, MR, MR);
  }
}

template <int NR>
void pack_b_avx512(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  constexpr int NV = NR / 16;
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int cols = static_cast<int>(imin(NR, nc - jr));
    float* d = dst + jr * kc;
    if (!p.tb) {
      __mmask16 m[NV];
      for (int v = 0; v < NV; ++v) m[v] = tail_mask(cols - 16 * v);
      const float* s = p.B + k0 * p.ldb + j0 + jr;
      for (int64_t k = 0; k < kc; ++k) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          _mm512_store_ps(d + k * NR + 16 * v, _mm512_maskz_loadu_ps(m[v], s + k * p.ldb + 16 * v));
      }
    } else {
      for (int v = 0; v < NV; ++v) {
        const int c = cols - 16 * v;
        const int rows = c < 0 ? 0 : (c > 16 ? 16 : c);
        pack_transposed(p.B + (j0 + jr + 16 * v) * p.ldb + k0, p.ldb, rows, kc, d + 16 * v, NR, 16);
      }
    }
  }
}

// MR x (16*NV) register tile: MR*NV accumulators plus NV B vectors; A is broadcast straight from
// memory (folded into the FMA as an embedded broadcast). 14x32 uses 28 + 2 of the 32 zmm registers.
template <int MR, int NV>
struct Avx512Kernel {
  static constexpr int kMR = MR;
  static constexpr int kNR = 16 * NV;

  static void kernel(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C,
                     int64_t ldc, int m, int n, float alpha, float beta) {
    __m512 acc[MR][NV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
    // The C tile is touched only after the k loop (thousands of cycles away), so requesting its lines
    // now hides the L2/L3 miss of the final read-modify-write.
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i < m) {
        _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + kNR - 1), _MM_HINT_T0);
      }
    }
    for (int64_t k = 0; k < kc; ++k) {
      __m512 b[NV];
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) b[j] = _mm512_load_ps(Bp + 16 * j);
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i) {
        const __m512 a = _mm512_set1_ps(Ap[i]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
      }
      Ap += MR;
      Bp += kNR;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (m == MR && n == kNR) {
#pragma GCC unroll 32
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) store_tile(C + i * ldc + 16 * j, acc[i][j], 0xFFFF, true, va, beta, vb);
      return;
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      if (i >= m) break;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        const int cols = n - 16 * j;
        if (cols <= 0) break;
        store_tile(C + i * ldc + 16 * j, acc[i][j], tail_mask(cols), cols >= 16, va, beta, vb);
      }
    }
  }
};

struct Traits {
  using Kern = Avx512Kernel<MINIELM_AVX512_MR, MINIELM_AVX512_NV>;
  static constexpr int MR = Kern::kMR;
  static constexpr int NR = Kern::kNR;
  static constexpr int64_t KC = MINIELM_AVX512_KC;
  static constexpr int64_t MC = (MINIELM_AVX512_MC / MR) * MR;
  static constexpr int64_t NC = (MINIELM_AVX512_NC / NR) * NR;
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    pack_a_avx512<MR>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    pack_b_avx512<NR>(p, k0, kc, j0, nc, dst);
  }
  static void kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int m, int n,
                     float alpha, float beta) {
    Kern::kernel(kc, Ap, Bp, C, ldc, m, n, alpha, beta);
  }
};

// ---- small M (decoding) ----
// R rows of op(A) read in place (element (i,k) at A[i*ars + k*acs]) times a 64-column strip of B read
// in place row by row. With one or two rows the FMA chains alone would be latency bound, so KS
// independent partial sums over interleaved k are kept and added at the end.
template <int R>
void small_nn_strip(int64_t K, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb,
                    float* C, int64_t ldc, int n, float alpha, float beta) {
  constexpr int NV = 4;
  constexpr int KS = R == 1 ? 3 : (R == 2 ? 2 : 1);
  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) mask[j] = tail_mask(n - 16 * j);
  __m512 acc[KS][R][NV];
#pragma GCC unroll 8
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[s][i][j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + KS <= K; k += KS) {
#pragma GCC unroll 8
    for (int s = 0; s < KS; ++s) {
      const float* bk = B + (k + s) * ldb;
      __m512 b[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) b[j] = _mm512_maskz_loadu_ps(mask[j], bk + 16 * j);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m512 a = _mm512_set1_ps(A[i * ars + (k + s) * acs]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[s][i][j] = _mm512_fmadd_ps(a, b[j], acc[s][i][j]);
      }
    }
  }
  for (; k < K; ++k) {
    const float* bk = B + k * ldb;
    __m512 b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = _mm512_maskz_loadu_ps(mask[j], bk + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(A[i * ars + k * acs]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[0][i][j] = _mm512_fmadd_ps(a, b[j], acc[0][i][j]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      if (n - 16 * j <= 0) break;
      __m512 sum = acc[0][i][j];
#pragma GCC unroll 8
      for (int s = 1; s < KS; ++s) sum = _mm512_add_ps(sum, acc[s][i][j]);
      store_tile(C + i * ldc + 16 * j, sum, mask[j], n - 16 * j >= 16, va, beta, vb);
    }
}

// op(B) = B^T with B stored [N,K]: every output is a dot product of two contiguous rows. R rows of A
// against S rows of B at a time; each (r,s) pair has its own accumulator, reduced at the end.
template <int R, int S>
void small_nt_block(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                    int64_t ldc, int s_valid, float alpha, float beta) {
  __m512 acc[R][S];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) acc[r][s] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k < K; k += 16) {
    const __mmask16 mask = tail_mask(static_cast<int>(K - k < 16 ? K - k : 16));
    __m512 a[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) a[r] = _mm512_maskz_loadu_ps(mask, A + r * lda + k);
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      // Rows past s_valid repeat the last valid row: always in bounds, result discarded.
      const int srow = s < s_valid ? s : s_valid - 1;
      const __m512 b = _mm512_maskz_loadu_ps(mask, B + srow * ldb + k);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][s] = _mm512_fmadd_ps(a[r], b, acc[r][s]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int s = 0; s < S; ++s) {
      if (s >= s_valid) break;
      float v = alpha * hsum(acc[r][s]);
      float* c = C + r * ldc + s;
      if (beta != 0.0f) v += beta * *c;
      *c = v;
    }
}

// Row blocking depends on M only, so every element's arithmetic is independent of the column range.
// Column blocks are the outer loop: each block of B is fetched from memory once and then re-read
// from cache by every row block.
template <int R>
void small_nt_call(const Problem& p, int64_t i0, int64_t j, int sv) {
  constexpr int S = R == 1 ? 8 : 4;
  small_nt_block<R, S>(p.K, p.A + i0 * p.lda, p.lda, p.B + j * p.ldb, p.ldb, p.C + i0 * p.ldc + j, p.ldc, sv,
                       p.alpha, p.beta);
}

void small_nt(const Problem& p, int64_t n0, int64_t n1) {
  // S differs between R = 1 (8) and R > 1 (4); an 8-wide column block serves both.
  for (int64_t j = n0; j < n1; j += 8) {
    const int w = static_cast<int>(imin(8, n1 - j));
    for (int64_t i = 0; i < p.M;) {
      const int64_t r = imin(4, p.M - i);
      switch (r) {
        case 4: small_nt_call<4>(p, i, j, w < 4 ? w : 4); if (w > 4) small_nt_call<4>(p, i, j + 4, w - 4); break;
        case 3: small_nt_call<3>(p, i, j, w < 4 ? w : 4); if (w > 4) small_nt_call<3>(p, i, j + 4, w - 4); break;
        case 2: small_nt_call<2>(p, i, j, w < 4 ? w : 4); if (w > 4) small_nt_call<2>(p, i, j + 4, w - 4); break;
        default: small_nt_call<1>(p, i, j, w); break;
      }
      i += r;
    }
  }
}

template <int R>
void small_nn_call(const Problem& p, int64_t i0, int64_t j, int n) {
  const int64_t ars = p.ta ? 1 : p.lda, acs = p.ta ? p.lda : 1;
  small_nn_strip<R>(p.K, p.A + i0 * ars, ars, acs, p.B + j, p.ldb, p.C + i0 * p.ldc + j, p.ldc, n, p.alpha,
                    p.beta);
}

void small_nn(const Problem& p, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; j += 64) {
    const int n = static_cast<int>(imin(64, n1 - j));
    for (int64_t i = 0; i < p.M;) {
      const int64_t r = imin(6, p.M - i);
      switch (r) {
        case 6: small_nn_call<6>(p, i, j, n); break;
        case 5: small_nn_call<5>(p, i, j, n); break;
        case 4: small_nn_call<4>(p, i, j, n); break;
        case 3: small_nn_call<3>(p, i, j, n); break;
        case 2: small_nn_call<2>(p, i, j, n); break;
        default: small_nn_call<1>(p, i, j, n); break;
      }
      i += r;
    }
  }
}

}  // namespace

void tile_avx512(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run_tile<Traits>(p, m0, m1, n0, n1);
}

Shape shape_avx512() { return Shape{Traits::MR, Traits::NR}; }

#ifndef MINIELM_AVX512_SMALL_M
#define MINIELM_AVX512_SMALL_M 24
#endif
int64_t small_m_max_avx512() { return MINIELM_AVX512_SMALL_M; }

void small_avx512(const Problem& p, int64_t n0, int64_t n1) {
  if (p.tb) {
    small_nt(p, n0, n1);
  } else {
    small_nn(p, n0, n1);
  }
}

}  // namespace gemm_detail
}  // namespace minielm

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else  // not x86-64: never dispatched to, present so the link succeeds everywhere.

namespace minielm {
namespace gemm_detail {
void tile_avx512(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  tile_generic(p, m0, m1, n0, n1);
}
Shape shape_avx512() { return shape_generic(); }
int64_t small_m_max_avx512() { return 0; }
void small_avx512(const Problem&, int64_t, int64_t) {}
}  // namespace gemm_detail
}  // namespace minielm

#endif
