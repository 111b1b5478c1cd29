// Decoding kernels: portable versions first, then AVX-512 versions compiled through a target pragma
// (standard headers come before it, so none of their inline code is built for AVX-512), chosen at run
// time. Weights are read in place: decoding touches every weight once per step with few rows, so
// packing them would cost as much as using them.
#include "kernels.h"

#include "../core/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace minielm {
namespace decode {

namespace {

// ---- portable versions ----

inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

inline float widen(float x) { return x; }
// bf16 is the top half of a float: widening is a shift.
inline float widen(uint16_t x) {
  const uint32_t u = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename WT>
void linear_cols_generic(int64_t M, int64_t K, const float* A, int64_t lda, const WT* W, int64_t ldw,
                         const float* bias, float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  float acc[64];
  for (int64_t i = 0; i < M; ++i) {
    const float* a = A + i * lda;
    for (int64_t j = j0; j < j1; j += 64) {
      const int64_t n = std::min<int64_t>(64, j1 - j);
      for (int64_t c = 0; c < n; ++c) acc[c] = 0.0f;
      for (int64_t k = 0; k < K; ++k) {
        const float av = a[k];
        const WT* w = W + k * ldw + j;
        for (int64_t c = 0; c < n; ++c) acc[c] += av * widen(w[c]);
      }
      float* o = out[i] + j;
      for (int64_t c = 0; c < n; ++c) {
        float v = acc[c] + (bias ? bias[j + c] : 0.0f);
        if (epi == Epilogue::Gelu) v = gelu_tanh(v);
        if (epi == Epilogue::AddTo) v = o[c] + v;
        o[c] = v;
      }
    }
  }
}

template <typename WT>
void head_cols_generic(int64_t M, int64_t K, const float* A, int64_t lda, const WT* E, int64_t lde, float* out,
                       int64_t ldo, int64_t j0, int64_t j1) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      const float* a = A + i * lda;
      const WT* e = E + j * lde;
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k) s += a[k] * widen(e[k]);
      out[i * ldo + j] = s;
    }
}

void attend_generic(const float* q, const float* kbase, const float* vbase, int64_t stride, const int32_t* ctx,
                    int64_t n, int64_t hs, float scale, float* s, float* out) {
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const float* k = kbase + static_cast<int64_t>(ctx[t]) * stride;
    float d = 0.0f;
    for (int64_t i = 0; i < hs; ++i) d += q[i] * k[i];
    s[t] = d * scale;
    mx = std::max(mx, s[t]);
  }
  float sum = 0.0f;
  for (int64_t t = 0; t < n; ++t) {
    s[t] = std::exp(s[t] - mx);
    sum += s[t];
  }
  for (int64_t i = 0; i < hs; ++i) out[i] = 0.0f;
  for (int64_t t = 0; t < n; ++t) {
    const float* v = vbase + static_cast<int64_t>(ctx[t]) * stride;
    for (int64_t i = 0; i < hs; ++i) out[i] += s[t] * v[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < hs; ++i) out[i] *= inv;
}

void layernorm_row_generic(const float* x, const float* w, const float* b, int64_t C, float* out) {
  float m = 0;
  for (int64_t c = 0; c < C; ++c) m += x[c];
  m /= static_cast<float>(C);
  float v = 0;
  for (int64_t c = 0; c < C; ++c) {
    const float d = x[c] - m;
    v += d * d;
  }
  v /= static_cast<float>(C);
  const float s = 1.0f / std::sqrt(v + 1e-5f);
  for (int64_t c = 0; c < C; ++c) out[c] = (x[c] - m) * s * w[c] + b[c];
}

float log_sum_exp_generic(const float* x, int64_t n, float* max_out) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i] - mx));
  *max_out = mx;
  return mx + static_cast<float>(std::log(sum));
}

// Two separate passes: the portable reference of log_sum_exp_pair.
void log_sum_exp_pair_generic(const float* x, const float* p, int64_t n, float* lse_x, float* lse_p) {
  float mx;
  *lse_x = log_sum_exp_generic(x, n, &mx);
  *lse_p = log_sum_exp_generic(p, n, &mx);
}

float exp_scaled_generic(const float* x, int64_t n, float shift, float inv_temp, float* out) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float e = std::exp((x[i] - shift) * inv_temp);
    if (out) out[i] = e;
    sum += e;
  }
  return sum;
}

void to_bf16_generic(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, sizeof u);
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
    dst[i] = static_cast<uint16_t>(u >> 16);
  }
}

int64_t arg_max_generic(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// Keeps (val, idx) sorted by value descending; a newcomer has the highest index seen so far, so it goes
// after equal values, which makes ties resolve to the lower index.
inline void insert_sorted(int64_t& count, int64_t m, int32_t* idx, float* val, float v, int32_t i) {
  int64_t pos = count < m ? count : m - 1;
  if (count >= m && !(v > val[m - 1])) return;
  while (pos > 0 && val[pos - 1] < v) {
    val[pos] = val[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  val[pos] = v;
  idx[pos] = i;
  if (count < m) ++count;
}

int64_t top_m_generic(const float* x, int64_t n, int64_t m, int32_t* idx, float* val) {
  int64_t count = 0;
  if (m <= 0) return 0;
  for (int64_t i = 0; i < n; ++i)
    if (count < m || x[i] > val[m - 1]) insert_sorted(count, m, idx, val, x[i], static_cast<int32_t>(i));
  return count;
}

}  // namespace
}  // namespace decode
}  // namespace minielm

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")
// GCC 12's own AVX-512 headers trip -Wuninitialized in their 512->256 casts (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "avx512_inline.h"


namespace minielm {
namespace decode {
namespace {

using simd::exp16;
using simd::gelu16;
using simd::tail_mask;

inline __m512 load_w(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load_w(__mmask16 m, const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

inline float hsum(__m512 v) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

// Weights stream from L3 or DRAM at every step, so they are read the way prefetchers like: a block of KB
// weight rows at a time, each row left to right (KB sequential streams), while the partial sums of the
// R x (column chunk) output wait in an L1 buffer between blocks. Every accumulator still runs k = 0..K-1
// in order with one FMA per k, so the result does not depend on R, the chunking or the thread split.
#ifndef MINIELM_DECODE_KB
#define MINIELM_DECODE_KB 16
#endif
#ifndef MINIELM_DECODE_PF
#define MINIELM_DECODE_PF MINIELM_DECODE_KB
#endif
constexpr int64_t kChunk = 512;  // columns per pass: R x 512 floats of partial sums stay in L1
constexpr int kMaxRows = 14;

template <int R, int NV, typename WT>
inline void linear_strip(int64_t k0, int64_t k1, bool first, bool last, const float* A, int64_t lda, const WT* W,
                         int64_t ldw, const float* bias, float* const* out, int64_t j, int64_t ncols, float* part,
                         Epilogue epi) {
  __m512 acc[R][NV];
  __mmask16 mask[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) mask[v] = tail_mask(ncols - 16 * v);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = first ? _mm512_setzero_ps() : _mm512_load_ps(part + r * kChunk + 16 * v);
  const WT* w = W + k0 * ldw + j;
  // The same strip of the next row block is needed one pass over the chunk later: request it now so the
  // miss overlaps this pass (prefetches past the end of W are harmless, they never fault).
  const int64_t ahead = MINIELM_DECODE_PF * ldw;
  for (int64_t k = k0; k < k1; ++k) {
    if (MINIELM_DECODE_PF > 0) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(w + ahead + 16 * v), _MM_HINT_T0);
    }
    __m512 b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) b[v] = load_w(mask[v], w + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
    w += ldw;
  }
  if (!last) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) _mm512_store_ps(part + r * kChunk + 16 * v, acc[r][v]);
    return;
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) {
    if (ncols - 16 * v <= 0) break;
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask[v], bias + j + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* o = out[r] + j + 16 * v;
      __m512 x = _mm512_add_ps(acc[r][v], bv);
      if (epi == Epilogue::Gelu) x = gelu16(x);
      else if (epi == Epilogue::AddTo) x = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], o), x);
      _mm512_mask_storeu_ps(o, mask[v], x);
    }
  }
}

template <int R, typename WT>
void linear_rows(int64_t K, const float* A, int64_t lda, const WT* W, int64_t ldw, const float* bias,
                 float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  // Few rows: wider strips give the FMA units enough independent chains.
  constexpr int NV = R <= 6 ? 4 : 2;
  constexpr int64_t SW = 16 * NV;
  alignas(64) static thread_local float part[kMaxRows * kChunk];
  const int64_t KB = MINIELM_DECODE_KB;
  for (int64_t jc = j0; jc < j1; jc += kChunk) {
    const int64_t cw = std::min<int64_t>(kChunk, j1 - jc);
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t k1 = std::min<int64_t>(K, k0 + KB);
      for (int64_t s = 0; s < cw; s += SW)
        linear_strip<R, NV, WT>(k0, k1, k0 == 0, k1 == K, A, lda, W, ldw, bias, out, jc + s, std::min<int64_t>(SW, cw - s),
                            part + s, epi);
    }
  }
}

template <typename WT>
void linear_cols_avx512(int64_t M, int64_t K, const float* A, int64_t lda, const WT* W, int64_t ldw,
                        const float* bias, float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  constexpr int RMAX = kMaxRows;
  for (int64_t i = 0; i < M;) {
    const int64_t r = std::min<int64_t>(RMAX, M - i);
    const float* a = A + i * lda;
    float* const* o = out + i;
    switch (r) {
#define MINIELM_CASE(n) \
  case n: linear_rows<n, WT>(K, a, lda, W, ldw, bias, o, j0, j1, epi); break;
      MINIELM_CASE(1) MINIELM_CASE(2) MINIELM_CASE(3) MINIELM_CASE(4) MINIELM_CASE(5) MINIELM_CASE(6)
      MINIELM_CASE(7) MINIELM_CASE(8) MINIELM_CASE(9) MINIELM_CASE(10) MINIELM_CASE(11) MINIELM_CASE(12)
      MINIELM_CASE(13) MINIELM_CASE(14)
#undef MINIELM_CASE
      default: break;
    }
    i += r;
  }
}

// Sums of 16 vectors: result lane t = sum of the 16 lanes of v[t]. A fixed tree (lane l with l+8, then
// l+4, l+2, l+1), so every logit gets the same operations wherever it sits.
inline __m512 reduce16(const __m512* v) {
  __m512 w[8], x[4], y[2];
  for (int p = 0; p < 8; ++p)
    w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
  for (int q = 0; q < 4; ++q)
    x[q] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0x88),
                         _mm512_shuffle_f32x4(w[2 * q], w[2 * q + 1], 0xDD));
  for (int r = 0; r < 2; ++r)
    y[r] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * r], x[2 * r + 1], 0x44), _mm512_shuffle_ps(x[2 * r], x[2 * r + 1], 0xEE));
  __m512 z = _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
  // z lane 4k+m holds the sum of v[4m+k]: a 4x4 transpose of the lane index puts it back in order.
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_ps(idx, z);
}

#ifndef MINIELM_HEAD_PF
#define MINIELM_HEAD_PF 16
#endif
// R rows against a group of 16 vocabulary rows [j, j + jn): 4 vocabulary rows at a time in registers,
// their 16-lane partial sums parked in L1 and reduced together.
template <int R, typename WT>
void head_group(int64_t K, const float* A, int64_t lda, const WT* E, int64_t lde, float* out, int64_t ldo,
                int64_t j, int64_t jn, bool prefetch) {
  alignas(64) __m512 part[R][16];
  for (int s0 = 0; s0 < 16; s0 += 4) {
    const WT* e[4];
    for (int s = 0; s < 4; ++s) e[s] = E + (j + std::min<int64_t>(s0 + s, jn - 1)) * lde;
    __m512 acc[R][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) acc[r][s] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = tail_mask(K - k);
      __m512 a[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) a[r] = _mm512_maskz_loadu_ps(m, A + r * lda + k);
      if (prefetch) {
        // The next group of 16 vocabulary rows follows these in memory: fetch it while this one computes.
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) _mm_prefetch(reinterpret_cast<const char*>(e[s] + MINIELM_HEAD_PF * lde + k), _MM_HINT_T0);
      }
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) {
        const __m512 b = load_w(m, e[s] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r][s] = _mm512_fmadd_ps(a[r], b, acc[r][s]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int s = 0; s < 4; ++s) part[r][s0 + s] = acc[r][s];
  }
  const __mmask16 om = tail_mask(jn);
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(out + r * ldo + j, om, reduce16(part[r]));
}

#ifndef MINIELM_HEAD_R
#define MINIELM_HEAD_R 5
#endif
template <typename WT>
void head_cols_avx512(int64_t M, int64_t K, const float* A, int64_t lda, const WT* E, int64_t lde, float* out,
                      int64_t ldo, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 16) {
    const int64_t jn = std::min<int64_t>(16, j1 - j);
    for (int64_t i = 0; i < M;) {
      const int64_t r = std::min<int64_t>(MINIELM_HEAD_R, M - i);
      const float* a = A + i * lda;
      float* o = out + i * ldo;
      switch (r) {
        case 6: head_group<6, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
        case 5: head_group<5, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
        case 4: head_group<4, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
        case 3: head_group<3, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
        case 2: head_group<2, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
        default: head_group<1, WT>(K, a, lda, E, lde, o, ldo, j, jn, i == 0); break;
      }
      i += r;
    }
  }
}

void attend_avx512(const float* q, const float* kbase, const float* vbase, int64_t stride, const int32_t* ctx,
                   int64_t n, int64_t hs, float scale, float* s, float* out) {
  if (hs % 16 != 0 || hs > 256) {
    attend_generic(q, kbase, vbase, stride, ctx, n, hs, scale, s, out);
    return;
  }
  const int64_t nv = hs / 16;
  __m512 qv[16];
  for (int64_t v = 0; v < nv; ++v) qv[v] = _mm512_loadu_ps(q + 16 * v);
  float mx = -INFINITY;
  for (int64_t t = 0; t < n; ++t) {
    const float* k = kbase + static_cast<int64_t>(ctx[t]) * stride;
    __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
    for (int64_t v = 1; v < nv; ++v) acc = _mm512_fmadd_ps(qv[v], _mm512_loadu_ps(k + 16 * v), acc);
    s[t] = hsum(acc) * scale;
    mx = std::max(mx, s[t]);
  }
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; t += 16) {
    const __mmask16 m = tail_mask(n - t);
    __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + t), vmx)));
    vsum = _mm512_add_ps(vsum, e);
    _mm512_mask_storeu_ps(s + t, m, e);
  }
  const float inv = 1.0f / hsum(vsum);
  __m512 o[16];
  for (int64_t v = 0; v < nv; ++v) o[v] = _mm512_setzero_ps();
  for (int64_t t = 0; t < n; ++t) {
    const float* vr = vbase + static_cast<int64_t>(ctx[t]) * stride;
    const __m512 p = _mm512_set1_ps(s[t]);
    for (int64_t v = 0; v < nv; ++v) o[v] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vr + 16 * v), o[v]);
  }
  const __m512 vi = _mm512_set1_ps(inv);
  for (int64_t v = 0; v < nv; ++v) _mm512_storeu_ps(out + 16 * v, _mm512_mul_ps(o[v], vi));
}

// The same sums in 16 lanes (mean, then the variance around it), reduced in a fixed order.
void layernorm_row_avx512(const float* x, const float* w, const float* b, int64_t C, float* out) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(C - c), x + c));
  const float m = hsum(acc) / static_cast<float>(C);
  const __m512 mv = _mm512_set1_ps(m);
  acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 k = tail_mask(C - c);
    const __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + c), mv);
    acc = _mm512_fmadd_ps(d, d, acc);
  }
  const __m512 sv = _mm512_set1_ps(1.0f / std::sqrt(hsum(acc) / static_cast<float>(C) + 1e-5f));
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 k = tail_mask(C - c);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), mv), sv);
    _mm512_mask_storeu_ps(out + c, k, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(k, w + c), _mm512_maskz_loadu_ps(k, b + c)));
  }
}

void to_bf16_avx512(const float* src, uint16_t* dst, int64_t n) {
  const __m512i round = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + i));
    u = _mm512_add_epi32(u, _mm512_add_epi32(round, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
  }
}

float max_avx512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_mask_max_ps(m, tail_mask(n - i), m, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
  return _mm512_reduce_max_ps(m);
}

float exp_scaled_avx512(const float* x, int64_t n, float shift, float inv_temp, float* out) {
  const __m512 vs = _mm512_set1_ps(shift), vt = _mm512_set1_ps(inv_temp);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs), vt)));
    acc = _mm512_add_ps(acc, e);
    if (out) _mm512_mask_storeu_ps(out + i, m, e);
  }
  return hsum(acc);
}

float log_sum_exp_avx512(const float* x, int64_t n, float* max_out) {
  const float mx = max_avx512(x, n);
  *max_out = mx;
  return mx + std::log(exp_scaled_avx512(x, n, mx, 1.0f, nullptr));
}

// One pass of exps for both rows: where p equals x, p's term is x's term times exp(mx - mp); -inf entries of
// p add nothing; only the entries the hygiene changed get an exp of their own. p <= x entrywise (penalties
// and masks only lower logits), so the factor is >= 1; when p's best sits far below x's (a word constraint
// that leaves only unlikely tokens), x's terms would have underflowed where p's matter, so p gets a pass.
void log_sum_exp_pair_avx512(const float* x, const float* p, int64_t n, float* lse_x, float* lse_p) {
  const float mx = max_avx512(x, n), mp = max_avx512(p, n);
  if (!(mx - mp <= 20.0f)) {
    *lse_x = mx + std::log(exp_scaled_avx512(x, n, mx, 1.0f, nullptr));
    *lse_p = mp + std::log(exp_scaled_avx512(p, n, mp, 1.0f, nullptr));
    return;
  }
  const __m512 vx = _mm512_set1_ps(mx), vp = _mm512_set1_ps(mp), ninf = _mm512_set1_ps(-INFINITY);
  __m512 all = _mm512_setzero_ps(), same = _mm512_setzero_ps(), other = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + i), pv = _mm512_maskz_loadu_ps(m, p + i);
    const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(xv, vx)));
    all = _mm512_add_ps(all, e);
    const __mmask16 eq = _mm512_mask_cmp_ps_mask(m, pv, xv, _CMP_EQ_OQ);
    same = _mm512_add_ps(same, _mm512_maskz_mov_ps(eq, e));
    const __mmask16 changed = _mm512_mask_cmp_ps_mask(static_cast<__mmask16>(m & ~eq), pv, ninf, _CMP_GT_OQ);
    if (changed) other = _mm512_add_ps(other, _mm512_maskz_mov_ps(changed, exp16(_mm512_sub_ps(pv, vp))));
  }
  *lse_x = mx + std::log(hsum(all));
  *lse_p = mp + std::log(std::exp(mx - mp) * hsum(same) + hsum(other));
}

int64_t arg_max_avx512(const float* x, int64_t n) {
  const float mx = max_avx512(x, n);
  const __m512 v = _mm512_set1_ps(mx);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = _mm512_mask_cmp_ps_mask(tail_mask(n - i), _mm512_maskz_loadu_ps(tail_mask(n - i), x + i), v, _CMP_EQ_OQ);
    if (m) return i + __builtin_ctz(m);
  }
  return arg_max_generic(x, n);  // only reached when every entry is NaN
}

// Most of an 8192-word row falls below the running threshold: test 16 at a time, insert the rare hits.
int64_t top_m_avx512(const float* x, int64_t n, int64_t m, int32_t* idx, float* val) {
  if (m <= 0) return 0;
  int64_t count = 0;
  int64_t i = 0;
  for (; i < n && count < m; ++i) insert_sorted(count, m, idx, val, x[i], static_cast<int32_t>(i));
  for (; i < n && (i & 15); ++i)
    if (x[i] > val[m - 1]) insert_sorted(count, m, idx, val, x[i], static_cast<int32_t>(i));
  for (; i < n; i += 16) {
    const __mmask16 lm = tail_mask(n - i);
    __mmask16 hit = _mm512_mask_cmp_ps_mask(lm, _mm512_maskz_loadu_ps(lm, x + i), _mm512_set1_ps(val[m - 1]), _CMP_GT_OQ);
    while (hit) {
      const int b = __builtin_ctz(hit);
      hit &= static_cast<__mmask16>(hit - 1);
      if (x[i + b] > val[m - 1]) insert_sorted(count, m, idx, val, x[i + b], static_cast<int32_t>(i + b));
    }
  }
  return count;
}

}  // namespace
}  // namespace decode
}  // namespace minielm

#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace minielm {
namespace decode {

namespace {
// cpu::isa() (capped by MINIELM_ISA), further capped by MINIELM_DECODE_ISA=generic for the decoder alone.
bool detect_avx512() { return cpu::cap_by_env(cpu::isa(), "MINIELM_DECODE_ISA") == cpu::Isa::Avx512; }
}  // namespace

bool using_avx512() {
  static const bool v = detect_avx512();
  return v;
}

#if defined(__x86_64__)
#define MINIELM_DISPATCH(name, ...) return using_avx512() ? name##_avx512(__VA_ARGS__) : name##_generic(__VA_ARGS__)
#else
#define MINIELM_DISPATCH(name, ...) return name##_generic(__VA_ARGS__)
#endif

namespace {
template <typename WT>
void linear_cols_any(int64_t M, int64_t K, const float* A, int64_t lda, const WT* W, int64_t ldw, const float* bias,
                     float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  if (M <= 0 || j0 >= j1) return;
  MINIELM_DISPATCH(linear_cols, M, K, A, lda, W, ldw, bias, out, j0, j1, epi);
}
template <typename WT>
void head_cols_any(int64_t M, int64_t K, const float* A, int64_t lda, const WT* E, int64_t lde, float* out, int64_t ldo,
                   int64_t j0, int64_t j1) {
  if (M <= 0 || j0 >= j1) return;
  MINIELM_DISPATCH(head_cols, M, K, A, lda, E, lde, out, ldo, j0, j1);
}
}  // namespace

void linear_cols(int64_t M, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias,
                 float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  linear_cols_any(M, K, A, lda, W, ldw, bias, out, j0, j1, epi);
}
void linear_cols(int64_t M, int64_t K, const float* A, int64_t lda, const uint16_t* W, int64_t ldw, const float* bias,
                 float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  linear_cols_any(M, K, A, lda, W, ldw, bias, out, j0, j1, epi);
}
void head_cols(int64_t M, int64_t K, const float* A, int64_t lda, const float* E, int64_t lde, float* out,
               int64_t ldo, int64_t j0, int64_t j1) {
  head_cols_any(M, K, A, lda, E, lde, out, ldo, j0, j1);
}
void head_cols(int64_t M, int64_t K, const float* A, int64_t lda, const uint16_t* E, int64_t lde, float* out,
               int64_t ldo, int64_t j0, int64_t j1) {
  head_cols_any(M, K, A, lda, E, lde, out, ldo, j0, j1);
}

void to_bf16(const float* src, uint16_t* dst, int64_t n) { MINIELM_DISPATCH(to_bf16, src, dst, n); }

void layernorm_row(const float* x, const float* w, const float* b, int64_t C, float* out) {
  MINIELM_DISPATCH(layernorm_row, x, w, b, C, out);
}

void attend(const float* q, const float* kbase, const float* vbase, int64_t stride, const int32_t* ctx, int64_t n,
            int64_t hs, float scale, float* scratch, float* out) {
  MINIELM_DISPATCH(attend, q, kbase, vbase, stride, ctx, n, hs, scale, scratch, out);
}

float log_sum_exp(const float* x, int64_t n, float* max_out) { MINIELM_DISPATCH(log_sum_exp, x, n, max_out); }
void log_sum_exp_pair(const float* x, const float* p, int64_t n, float* lse_x, float* lse_p) {
  MINIELM_DISPATCH(log_sum_exp_pair, x, p, n, lse_x, lse_p);
}

float exp_scaled(const float* x, int64_t n, float shift, float inv_temp, float* out) {
  MINIELM_DISPATCH(exp_scaled, x, n, shift, inv_temp, out);
}

int64_t arg_max(const float* x, int64_t n) { MINIELM_DISPATCH(arg_max, x, n); }

namespace {
// Ordering of top_m: larger value first, then lower index.
inline bool ranks_before(float va, int32_t ia, float vb, int32_t ib) { return va > vb || (va == vb && ia < ib); }

// Restores the heap property below `pos` in a heap whose root is the worst-ranked entry.
inline void sift_down(int32_t* idx, float* val, int64_t size, int64_t pos) {
  for (;;) {
    int64_t worst = pos;
    const int64_t l = 2 * pos + 1, r = l + 1;
    if (l < size && ranks_before(val[worst], idx[worst], val[l], idx[l])) worst = l;
    if (r < size && ranks_before(val[worst], idx[worst], val[r], idx[r])) worst = r;
    if (worst == pos) return;
    std::swap(val[pos], val[worst]);
    std::swap(idx[pos], idx[worst]);
    pos = worst;
  }
}

// O(n log m) selection for wide beams or flat top-p: a heap of the m best so far with the worst at its
// root (a newcomer is compared with the root only), then heapsort into best-first order. Same result as
// the insertion-based kernels, whose O(n m) cost is only worth it for small m.
int64_t top_m_heap(const float* x, int64_t n, int64_t m, int32_t* idx, float* val) {
  const int64_t size = std::min(n, m);
  if (size <= 0) return 0;
  for (int64_t i = 0; i < size; ++i) {
    val[i] = x[i];
    idx[i] = static_cast<int32_t>(i);
  }
  for (int64_t i = size / 2 - 1; i >= 0; --i) sift_down(idx, val, size, i);
  for (int64_t i = size; i < n; ++i) {
    if (!ranks_before(x[i], static_cast<int32_t>(i), val[0], idx[0])) continue;
    val[0] = x[i];
    idx[0] = static_cast<int32_t>(i);
    sift_down(idx, val, size, 0);
  }
  // Heapsort: moving the worst to the end each time leaves the array best first.
  for (int64_t end = size - 1; end > 0; --end) {
    std::swap(val[0], val[end]);
    std::swap(idx[0], idx[end]);
    sift_down(idx, val, end, 0);
  }
  return size;
}
}  // namespace

int64_t top_m(const float* x, int64_t n, int64_t m, int32_t* idx, float* val) {
  if (m > kTopMInsertionMax) return top_m_heap(x, n, m, idx, val);
  MINIELM_DISPATCH(top_m, x, n, m, idx, val);
}

#undef MINIELM_DISPATCH

}  // namespace decode
}  // namespace minielm
