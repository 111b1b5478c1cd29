// AVX2 + FMA kernels for x86-64 CPUs without AVX-512. Compiled through a target pragma so it does not
// depend on the project's -mavx2 flag; standard headers come before the pragma (see the AVX-512 file).
#include "gemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx2,fma")

#include "gemm_driver.h"

namespace minielm {
namespace gemm_detail {
namespace {

// 6x16 tile: 12 accumulators + 2 B vectors + 1 broadcast = 15 of the 16 ymm registers.
struct Traits {
  static constexpr int MR = 6;
  static constexpr int NR = 16;
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = 144;
  static constexpr int64_t NC = 3072;

  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    gemm_detail::pack_a<MR>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    gemm_detail::pack_b<NR>(p, k0, kc, j0, nc, dst);
  }
  static void kernel(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C,
                     int64_t ldc, int m, int n, float alpha, float beta) {
    __m256 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 a = _mm256_broadcast_ss(Ap + i);
        acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
      }
      Ap += MR;
      Bp += NR;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (m == MR && n == NR) {
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
        for (int j = 0; j < 2; ++j) {
          float* c = C + i * ldc + 8 * j;
          __m256 v = _mm256_mul_ps(va, acc[i][j]);
          // beta == 0 must not read C (it may hold NaN).
          if (beta != 0.0f) v = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), v);
          _mm256_storeu_ps(c, v);
        }
      return;
    }
    // Edge tile: the same multiply then fused multiply-add per element, done in scalar form, so an
    // element gives the same bits whether it falls in a full or an edge tile.
    alignas(32) float t[MR][NR];
    for (int i = 0; i < MR; ++i) {
      _mm256_store_ps(t[i], _mm256_mul_ps(va, acc[i][0]));
      _mm256_store_ps(t[i] + 8, _mm256_mul_ps(va, acc[i][1]));
    }
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        float v = t[i][j];
        if (beta != 0.0f) v = __builtin_fmaf(beta, C[i * ldc + j], v);
        C[i * ldc + j] = v;
      }
  }
};

}  // namespace

void tile_avx2(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run_tile<Traits>(p, m0, m1, n0, n1);
}

Shape shape_avx2() { return Shape{Traits::MR, Traits::NR}; }

}  // namespace gemm_detail
}  // namespace minielm

#pragma GCC pop_options

#else

namespace minielm {
namespace gemm_detail {
void tile_avx2(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  tile_generic(p, m0, m1, n0, n1);
}
Shape shape_avx2() { return shape_generic(); }
}  // namespace gemm_detail
}  // namespace minielm

#endif
