#include "peak.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cpu.h"
#include "threads.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace minielm {
namespace {

using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

using cpu::Isa;

Isa detect() { return cpu::detected(); }

Isa isa() {
  static const Isa v = detect();
  return v;
}

// The chains converge to a fixed point (x -> x*m + a with |m| < 1), so values never overflow or
// become denormal however long it runs; the final sum is returned so nothing is optimised away.
#if defined(__x86_64__)
__attribute__((target("avx512f,fma"), noinline)) float fma_loop_avx512(int64_t iters) {
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
  // 12 chains: 2 FMA ports x 4-cycle latency needs 8 in flight; 12 leaves slack for the loop overhead.
  __m512 x0 = _mm512_set1_ps(0.1f), x1 = _mm512_set1_ps(0.2f), x2 = _mm512_set1_ps(0.3f);
  __m512 x3 = _mm512_set1_ps(0.4f), x4 = _mm512_set1_ps(0.5f), x5 = _mm512_set1_ps(0.6f);
  __m512 x6 = _mm512_set1_ps(0.7f), x7 = _mm512_set1_ps(0.8f), x8 = _mm512_set1_ps(0.9f);
  __m512 x9 = _mm512_set1_ps(1.0f), x10 = _mm512_set1_ps(1.1f), x11 = _mm512_set1_ps(1.2f);
  for (int64_t i = 0; i < iters; ++i) {
    x0 = _mm512_fmadd_ps(x0, m, a);
    x1 = _mm512_fmadd_ps(x1, m, a);
    x2 = _mm512_fmadd_ps(x2, m, a);
    x3 = _mm512_fmadd_ps(x3, m, a);
    x4 = _mm512_fmadd_ps(x4, m, a);
    x5 = _mm512_fmadd_ps(x5, m, a);
    x6 = _mm512_fmadd_ps(x6, m, a);
    x7 = _mm512_fmadd_ps(x7, m, a);
    x8 = _mm512_fmadd_ps(x8, m, a);
    x9 = _mm512_fmadd_ps(x9, m, a);
    x10 = _mm512_fmadd_ps(x10, m, a);
    x11 = _mm512_fmadd_ps(x11, m, a);
  }
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(x0, x1), _mm512_add_ps(x2, x3)),
                           _mm512_add_ps(_mm512_add_ps(x4, x5), _mm512_add_ps(x6, x7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(x8, x9), _mm512_add_ps(x10, x11)));
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0] + out[15];
}

__attribute__((target("avx2,fma"), noinline)) float fma_loop_avx2(int64_t iters) {
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
  __m256 x[12];
  for (int i = 0; i < 12; ++i) x[i] = _mm256_set1_ps(0.1f * static_cast<float>(i + 1));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) x[j] = _mm256_fmadd_ps(x[j], m, a);
  }
  __m256 s = x[0];
  for (int j = 1; j < 12; ++j) s = _mm256_add_ps(s, x[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0] + out[7];
}
#endif

__attribute__((noinline)) float fma_loop_generic(int64_t iters) {
  float x[12];
  for (int i = 0; i < 12; ++i) x[i] = 0.1f * static_cast<float>(i + 1);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 12; ++j) x[j] = x[j] * 0.999999f + 1e-6f;
  float s = 0;
  for (float v : x) s += v;
  return s;
}

// Flops per loop iteration: 12 FMAs x lanes x 2.
double run_fma(int64_t iters, float* sink) {
  switch (isa()) {
#if defined(__x86_64__)
    case Isa::Avx512: *sink += fma_loop_avx512(iters); return 12.0 * 16 * 2;
    case Isa::Avx2: *sink += fma_loop_avx2(iters); return 12.0 * 8 * 2;
#endif
    default: *sink += fma_loop_generic(iters); return 12.0 * 2;
  }
}

volatile float g_sink = 0;

}  // namespace

const char* cpu_isa() {
  switch (isa()) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

double measure_fma_peak_gflops(int threads, double seconds) {
  threads = std::max(1, std::min(threads, num_threads()));
  float sink = 0;
  // Short repetitions (~40 ms) and many of them: on a shared machine the best one is the one that
  // ran while no other process held the cores, which is the number wanted.
  int64_t iters = 1 << 16;
  for (;;) {
    double t0 = now_s();
    run_fma(iters, &sink);
    double dt = now_s() - t0;
    if (dt > 0.01 || iters > (int64_t(1) << 34)) {
      iters = std::max<int64_t>(1024, static_cast<int64_t>(static_cast<double>(iters) * 0.04 / dt));
      break;
    }
    iters *= 4;
  }
  double best = 0;
  const double t_end = now_s() + seconds;
  for (int rep = 0; rep < 5 || now_s() < t_end; ++rep) {
    std::vector<float> sinks(threads, 0.0f);
    double flops_per_iter = 0;
    double t0 = now_s();
    run_parallel(threads, [&](int tid, int) {
      double f = run_fma(iters, &sinks[tid]);
      if (tid == 0) flops_per_iter = f;
    });
    double dt = now_s() - t0;
    best = std::max(best, flops_per_iter * static_cast<double>(iters) * threads / dt / 1e9);
    for (float v : sinks) sink += v;
  }
  g_sink = sink;
  return best;
}

namespace {

#if defined(__x86_64__)
// Streaming (non-temporal) stores skip the read-for-ownership of the destination lines, which is
// what a copy kernel should measure: bytes the program needs to move, not extra coherence traffic.
__attribute__((target("avx512f"), noinline)) void copy_avx512(float* __restrict dst, const float* __restrict src,
                                                              size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512 a = _mm512_load_ps(src + i), b = _mm512_load_ps(src + i + 16);
    __m512 c = _mm512_load_ps(src + i + 32), d = _mm512_load_ps(src + i + 48);
    _mm512_stream_ps(dst + i, a);
    _mm512_stream_ps(dst + i + 16, b);
    _mm512_stream_ps(dst + i + 32, c);
    _mm512_stream_ps(dst + i + 48, d);
  }
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}

__attribute__((target("avx2"), noinline)) void copy_avx2(float* __restrict dst, const float* __restrict src,
                                                         size_t n) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 a = _mm256_load_ps(src + i), b = _mm256_load_ps(src + i + 8);
    __m256 c = _mm256_load_ps(src + i + 16), d = _mm256_load_ps(src + i + 24);
    _mm256_stream_ps(dst + i, a);
    _mm256_stream_ps(dst + i + 8, b);
    _mm256_stream_ps(dst + i + 16, c);
    _mm256_stream_ps(dst + i + 24, d);
  }
  for (; i < n; ++i) dst[i] = src[i];
  _mm_sfence();
}
#endif

void copy_any(float* dst, const float* src, size_t n) {
  switch (isa()) {
#if defined(__x86_64__)
    case Isa::Avx512: copy_avx512(dst, src, n); return;
    case Isa::Avx2: copy_avx2(dst, src, n); return;
#endif
    default: std::memcpy(dst, src, n * sizeof(float)); return;
  }
}

}  // namespace

double measure_copy_bandwidth_gbs(int threads, double seconds, size_t bytes_per_array) {
  threads = std::max(1, std::min(threads, num_threads()));
  const size_t n = std::max<size_t>(bytes_per_array / sizeof(float), 4096) / 64 * 64;
  float* src = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  float* dst = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  if (src == nullptr || dst == nullptr) {
    std::free(src);
    std::free(dst);
    return 0;
  }
  // Each thread's chunk is 64-float aligned and first touched by the thread that copies it.
  auto chunk = [&](int tid, int nt, size_t* b, size_t* e) {
    *b = n / 64 * tid / nt * 64;
    *e = n / 64 * (tid + 1) / nt * 64;
  };
  run_parallel(threads, [&](int tid, int nt) {
    size_t b, e;
    chunk(tid, nt, &b, &e);
    for (size_t i = b; i < e; ++i) src[i] = static_cast<float>(i & 1023);
    std::memset(dst + b, 0, (e - b) * sizeof(float));
  });
  double best = 0;
  const double t_end = now_s() + seconds;
  for (int rep = 0; rep < 3 || (rep < 50 && now_s() < t_end); ++rep) {
    double t0 = now_s();
    run_parallel(threads, [&](int tid, int nt) {
      size_t b, e;
      chunk(tid, nt, &b, &e);
      copy_any(dst + b, src + b, e - b);
    });
    double dt = now_s() - t0;
    best = std::max(best, 2.0 * static_cast<double>(n) * sizeof(float) / dt / 1e9);
  }
  g_sink = dst[n / 2];
  std::free(src);
  std::free(dst);
  return best;
}

double physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * static_cast<double>(size) : 0.0;
}

}  // namespace minielm
