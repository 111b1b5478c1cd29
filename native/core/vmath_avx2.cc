// The AVX2 + FMA versions of core/vmath.h's kernels. The file is compiled through a target pragma (standard
// headers first, so none of their inline code is built for AVX2) and only called after core/cpu.h found
// AVX2 and FMA on the CPU.
#include <cmath>
#include <cstdint>

#include "vmath.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "vmath_avx2.h"

namespace minielm {
namespace vmath {
namespace avx2 {

namespace {
float max_of(const float* x, int64_t n) {
  int64_t i = 0;
  float m = -INFINITY;
  if (n >= 8) {
    __m256 vm = _mm256_loadu_ps(x);
    for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
    alignas(32) float tmp[8];
    _mm256_store_ps(tmp, vm);
    for (float t : tmp) m = t > m ? t : m;
  }
  return max_of_scalar(x + i, n - i, m);
}

float exp_shift_sum(const float* x, float shift, float* out, float scale, int64_t n) {
  int64_t i = 0;
  __m256 vs = _mm256_set1_ps(shift), acc = _mm256_setzero_ps(), sc = _mm256_set1_ps(scale);
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    acc = _mm256_add_ps(acc, e);
    if (out) _mm256_storeu_ps(out + i, _mm256_mul_ps(e, sc));
  }
  return hsum8(acc) + exp_shift_sum_scalar(x + i, shift, out ? out + i : nullptr, scale, n - i);
}

void gelu(const float* x, float* out, int64_t n) {
  const float k = 0.7978845608028654f;
  int64_t i = 0;
  const __m256 vk = _mm256_set1_ps(k), c = _mm256_set1_ps(0.044715f), half = _mm256_set1_ps(0.5f),
               one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 u = _mm256_mul_ps(vk, _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v));
    __m256 t = tanh8(u);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, t)));
  }
  gelu_scalar(x + i, out + i, n - i);
}

void gelu_backward(const float* x, const float* dout, float* dinp, int64_t n) {
  const float k = 0.7978845608028654f;
  int64_t i = 0;
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
  gelu_backward_scalar(x + i, dout + i, dinp + i, n - i);
}

const Kernels kAvx2 = {max_of, exp_shift_sum, gelu, gelu_backward};
}  // namespace

const Kernels* kernels_avx2() { return &kAvx2; }

}  // namespace avx2
}  // namespace vmath
}  // namespace minielm

#pragma GCC pop_options
#else
namespace minielm {
namespace vmath {
namespace avx2 {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace avx2
}  // namespace vmath
}  // namespace minielm
#endif
