// The AVX2 + FMA passes of loss/distill.h over float rows, 8 lanes at a time. Each handles the longest
// multiple-of-8 prefix of its row and returns its length; distill.h's dispatching overloads finish the tail
// with the scalar templates (compiled for the baseline in the including file). The file is compiled through a
// target pragma (standard headers and distill.h first) and only called after core/cpu.h found AVX2 + FMA.
#include "distill.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "../core/vmath_avx2.h"

namespace minielm {
namespace loss {
namespace detail {
namespace avx2 {

namespace {
inline double hsum_d(__m256 v) { return static_cast<double>(vmath::avx2::hsum8(v)); }

inline __m256 log1p_unit8(__m256 x) {
  __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(2.0f), x));
  __m256 s2 = _mm256_mul_ps(s, s);
  __m256 p = _mm256_set1_ps(1.0f / 13);
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 11));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 9));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 7));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 5));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f / 3));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(1.0f));
  return _mm256_mul_ps(_mm256_add_ps(s, s), p);
}

inline __m256 log_add_exp8(__m256 u, __m256 v) {
  __m256 hi = _mm256_max_ps(u, v), lo = _mm256_min_ps(u, v);
  return _mm256_add_ps(hi, log1p_unit8(vmath::avx2::exp8(_mm256_sub_ps(lo, hi))));
}
}  // namespace

int64_t kl_sums(KlSums* out, const float* s, const float* t, int64_t n, float it, float ma, float mb) {
  __m256 vit = _mm256_set1_ps(it), vma = _mm256_set1_ps(ma), vmb = _mm256_set1_ps(mb);
  __m256 sa = _mm256_setzero_ps(), sb = sa, xa = sa, xb = sa;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 da = _mm256_fmsub_ps(_mm256_loadu_ps(s + i), vit, vma);
    __m256 db = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vmb);
    __m256 ea = vmath::avx2::exp8(da), eb = vmath::avx2::exp8(db), d = _mm256_sub_ps(da, db);
    sa = _mm256_add_ps(sa, ea);
    sb = _mm256_add_ps(sb, eb);
    xa = _mm256_fmadd_ps(ea, d, xa);
    xb = _mm256_fnmadd_ps(eb, d, xb);
  }
  out->sa = hsum_d(sa);
  out->sb = hsum_d(sb);
  out->xa = hsum_d(xa);
  out->xb = hsum_d(xb);
  return i;
}

int64_t jsd_sums(const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa, float lsb,
                 float lb, float l1b, double* kt, double* ks) {
  __m256 vit = _mm256_set1_ps(it), va = _mm256_set1_ps(ma + lsa), vb = _mm256_set1_ps(mb + lsb);
  __m256 vlb = _mm256_set1_ps(lb), vl1b = _mm256_set1_ps(l1b);
  __m256 at = _mm256_setzero_ps(), as = at;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 ls = _mm256_fmsub_ps(_mm256_loadu_ps(s + i), vit, va);
    __m256 lt = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vb);
    __m256 lm = log_add_exp8(_mm256_add_ps(vlb, lt), _mm256_add_ps(vl1b, ls));
    at = _mm256_fmadd_ps(vmath::avx2::exp8(lt), _mm256_sub_ps(lt, lm), at);
    as = _mm256_fmadd_ps(vmath::avx2::exp8(ls), _mm256_sub_ps(ls, lm), as);
  }
  *kt = hsum_d(at);
  *ks = hsum_d(as);
  return i;
}

int64_t grad_reverse_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb,
                            float ka, float c, float kz, float ms) {
  __m256 vit = _mm256_set1_ps(it), vma = _mm256_set1_ps(ma), vmb = _mm256_set1_ps(mb);
  __m256 vka = _mm256_set1_ps(ka), vc = _mm256_set1_ps(c), vkz = _mm256_set1_ps(kz), vms = _mm256_set1_ps(ms);
  int64_t i = 0;
  if (kz == 0.0f) {
    for (; i + 8 <= n; i += 8) {
      __m256 da = _mm256_fmsub_ps(_mm256_loadu_ps(s + i), vit, vma);
      __m256 db = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vmb);
      __m256 r = _mm256_mul_ps(_mm256_mul_ps(vka, vmath::avx2::exp8(da)), _mm256_sub_ps(_mm256_sub_ps(da, db), vc));
      _mm256_storeu_ps(g + i, r);
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      __m256 si = _mm256_loadu_ps(s + i);
      __m256 da = _mm256_fmsub_ps(si, vit, vma);
      __m256 db = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vmb);
      __m256 r = _mm256_mul_ps(_mm256_mul_ps(vka, vmath::avx2::exp8(da)), _mm256_sub_ps(_mm256_sub_ps(da, db), vc));
      r = _mm256_fmadd_ps(vkz, vmath::avx2::exp8(_mm256_sub_ps(si, vms)), r);
      _mm256_storeu_ps(g + i, r);
    }
  }
  return i;
}

int64_t grad_forward_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb,
                            float ka, float kb, float kz, float ms) {
  __m256 vit = _mm256_set1_ps(it), vma = _mm256_set1_ps(ma), vmb = _mm256_set1_ps(mb);
  __m256 vka = _mm256_set1_ps(ka), vkb = _mm256_set1_ps(kb), vkz = _mm256_set1_ps(kz), vms = _mm256_set1_ps(ms);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 si = _mm256_loadu_ps(s + i);
    __m256 da = _mm256_fmsub_ps(si, vit, vma);
    __m256 db = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vmb);
    __m256 r = _mm256_fmsub_ps(vka, vmath::avx2::exp8(da), _mm256_mul_ps(vkb, vmath::avx2::exp8(db)));
    if (kz != 0.0f) r = _mm256_fmadd_ps(vkz, vmath::avx2::exp8(_mm256_sub_ps(si, vms)), r);
    _mm256_storeu_ps(g + i, r);
  }
  return i;
}

int64_t grad_jsd(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa,
                     float lsb, float lb, float l1b, float kj, float ks, float kz, float ms) {
  __m256 vit = _mm256_set1_ps(it), va = _mm256_set1_ps(ma + lsa), vb = _mm256_set1_ps(mb + lsb);
  __m256 vlb = _mm256_set1_ps(lb), vl1b = _mm256_set1_ps(l1b), vkj = _mm256_set1_ps(kj), vks = _mm256_set1_ps(ks);
  __m256 vkz = _mm256_set1_ps(kz), vms = _mm256_set1_ps(ms);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 si = _mm256_loadu_ps(s + i);
    __m256 ls = _mm256_fmsub_ps(si, vit, va);
    __m256 lt = _mm256_fmsub_ps(_mm256_loadu_ps(t + i), vit, vb);
    __m256 lm = log_add_exp8(_mm256_add_ps(vlb, lt), _mm256_add_ps(vl1b, ls));
    __m256 r = _mm256_mul_ps(_mm256_mul_ps(vkj, vmath::avx2::exp8(ls)), _mm256_sub_ps(_mm256_sub_ps(ls, lm), vks));
    if (kz != 0.0f) r = _mm256_fmadd_ps(vkz, vmath::avx2::exp8(_mm256_sub_ps(si, vms)), r);
    _mm256_storeu_ps(g + i, r);
  }
  return i;
}

bool built() { return true; }

}  // namespace avx2
}  // namespace detail
}  // namespace loss
}  // namespace minielm

#pragma GCC pop_options
#else
namespace minielm {
namespace loss {
namespace detail {
namespace avx2 {
bool built() { return false; }
int64_t kl_sums(KlSums*, const float*, const float*, int64_t, float, float, float) { return 0; }
int64_t jsd_sums(const float*, const float*, int64_t, float, float, float, float, float, float, float, double*, double*) { return 0; }
int64_t grad_reverse_kl(float*, const float*, const float*, int64_t, float, float, float, float, float, float, float) { return 0; }
int64_t grad_forward_kl(float*, const float*, const float*, int64_t, float, float, float, float, float, float, float) { return 0; }
int64_t grad_jsd(float*, const float*, const float*, int64_t, float, float, float, float, float, float, float, float, float, float, float) { return 0; }
}  // namespace avx2
}  // namespace detail
}  // namespace loss
}  // namespace minielm
#endif
