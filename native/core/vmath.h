// Vectorised float math for the row-wise kernels (softmax, GELU). Scalar libm exp/tanh would cost more than
// the matrix products for an 8192-word vocabulary, so the hot loops use an AVX2 Cephes-style exp
// (max relative error ~2e-7 over the clamped range) and fall back to libm elsewhere.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MINIELM_VMATH_AVX2 1
#endif

namespace minielm {
namespace vmath {

#ifdef MINIELM_VMATH_AVX2
inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  // n = round(x / ln2); r = x - n ln2 with ln2 split in two for accuracy.
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

inline __m256 tanh8(__m256 u) {
  // tanh(u) = 1 - 2 / (exp(2u) + 1); exp8's clamping keeps it finite for large |u|.
  __m256 e = exp8(_mm256_add_ps(u, u));
  return _mm256_sub_ps(_mm256_set1_ps(1.0f),
                       _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
}
#endif

inline float max_of(const float* x, int64_t n) {
  int64_t i = 0;
  float m = -INFINITY;
#ifdef MINIELM_VMATH_AVX2
  if (n >= 8) {
    __m256 vm = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, vm);
    for (float t : tmp) m = t > m ? t : m;
  }
#endif
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// out[i] = exp(x[i] - shift) * scale when out is non-null; returns sum_i exp(x[i] - shift) (in float,
// accumulated in 8 lanes then reduced: deterministic for a given n).
inline float exp_shift_sum(const float* x, float shift, float* out, float scale, int64_t n) {
  int64_t i = 0;
  float sum = 0;
#ifdef MINIELM_VMATH_AVX2
  __m256 vs = _mm256_set1_ps(shift), acc = _mm256_setzero_ps(), sc = _mm256_set1_ps(scale);
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    acc = _mm256_add_ps(acc, e);
    if (out) _mm256_storeu_ps(out + i, _mm256_mul_ps(e, sc));
  }
  sum = hsum8(acc);
#endif
  for (; i < n; ++i) {
    float e = std::exp(x[i] - shift);
    sum += e;
    if (out) out[i] = e * scale;
  }
  return sum;
}

inline void gelu(const float* x, float* out, int64_t n) {
  const float k = 0.7978845608028654f;
  int64_t i = 0;
#ifdef MINIELM_VMATH_AVX2
  const __m256 vk = _mm256_set1_ps(k), c = _mm256_set1_ps(0.044715f), half = _mm256_set1_ps(0.5f),
               one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 u = _mm256_mul_ps(vk, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
    __m256 t = tanh8(u);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, t)));
  }
#endif
  for (; i < n; ++i) {
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

// dinp[i] = dout[i] * gelu'(x[i]); dinp may alias dout.
inline void gelu_backward(const float* x, const float* dout, float* dinp, int64_t n) {
  const float k = 0.7978845608028654f;
  int64_t i = 0;
#ifdef MINIELM_VMATH_AVX2
  const __m256 vk = _mm256_set1_ps(k), c = _mm256_set1_ps(0.044715f), c3 = _mm256_set1_ps(3.0f * 0.044715f),
               half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 v2 = _mm256_mul_ps(v, v);
    __m256 u = _mm256_mul_ps(vk, _mm256_fmadd_ps(_mm256_mul_ps(c, v), v2, v));
    __m256 t = tanh8(u);
    __m256 sech2 = _mm256_fnmadd_ps(t, t, one);
    __m256 left = _mm256_mul_ps(half, _mm256_add_ps(one, t));
    __m256 right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, v), sech2),
                                 _mm256_mul_ps(vk, _mm256_fmadd_ps(c3, v2, one)));
    _mm256_storeu_ps(dinp + i, _mm256_mul_ps(_mm256_loadu_ps(dout + i), _mm256_add_ps(left, right)));
  }
#endif
  for (; i < n; ++i) {
    float v = x[i];
    float u = k * (v + 0.044715f * v * v * v);
    float t = std::tanh(u);
    float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * v * v);
    dinp[i] = dout[i] * g;
  }
}

}  // namespace vmath
}  // namespace minielm
