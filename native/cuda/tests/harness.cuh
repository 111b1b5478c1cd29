// A tiny GPU test harness: tests and benches register themselves; native/cuda/tests/main.cu runs them.
//   MINIELM_GPU_TEST(name) { ... CHECK(cond, "what"); CHECK_CLOSE(got, want, atol, rtol, "what"); ... }
//   MINIELM_GPU_BENCH(name) { ... bench_report("name", "metric", value, "unit"); }  (time_ms times a call)
// A failed CHECK throws; the runner reports the test as failed and goes on. Tests compare against the CPU
// engine (native/model/ops.h, native/loss/*.h) on the same inputs; inputs are made with a seeded Rng.
#pragma once
#include <cmath>
#include <cstring>
#include <cstdio>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common.cuh"

namespace minielm {
namespace cuda {
namespace test {

struct Entry {
  std::string name;
  std::function<void()> fn;
  bool bench;
};
inline std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}
struct Register {
  Register(const char* name, std::function<void()> fn, bool bench) { registry().push_back({name, std::move(fn), bench}); }
};

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Max |got - want| / (atol + rtol * |want|) over the arrays must be <= 1; reports the worst element.
inline void check_close(const float* got, const float* want, size_t n, double atol, double rtol, const std::string& what) {
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    double g = got[i], w = want[i];
    double e = std::isfinite(g) == std::isfinite(w) && !(std::isnan(g) || std::isnan(w))
                   ? (std::isfinite(w) ? std::fabs(g - w) / (atol + rtol * std::fabs(w)) : (g == w ? 0.0 : 1e30))
                   : 1e30;
    if (e > worst) worst = e, at = i;
  }
  if (worst > 1) {
    std::ostringstream s;
    s << what << ": element " << at << " of " << n << " is " << got[at] << ", expected " << want[at] << " (atol "
      << atol << ", rtol " << rtol << ")";
    throw Failure(s.str());
  }
}
inline void check_close(double got, double want, double atol, double rtol, const std::string& what) {
  float g = static_cast<float>(got), w = static_cast<float>(want);
  if (!(std::fabs(got - want) <= atol + rtol * std::fabs(want))) {
    std::ostringstream s;
    s << what << ": " << got << ", expected " << want << " (atol " << atol << ", rtol " << rtol << ")";
    throw Failure(s.str());
  }
  (void)g, (void)w;
}

// One line of JSON per figure, collected by scripts/check-gpu.js into the bench results.
inline void bench_report(const std::string& name, const std::string& metric, double value, const std::string& unit) {
  std::printf("BENCH {\"name\":\"%s\",\"metric\":\"%s\",\"value\":%.6g,\"unit\":\"%s\"}\n", name.c_str(), metric.c_str(),
              value, unit.c_str());
  std::fflush(stdout);
}

// Mean milliseconds of one f() on stream 0 (cudaEvent timing of `iters` calls after `warmup` untimed ones).
template <class F>
double time_ms(F&& f, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t a, b;
  MINIELM_CUDA_CHECK(cudaEventCreate(&a));
  MINIELM_CUDA_CHECK(cudaEventCreate(&b));
  MINIELM_CUDA_CHECK(cudaEventRecord(a, 0));
  for (int i = 0; i < iters; ++i) f();
  MINIELM_CUDA_CHECK(cudaEventRecord(b, 0));
  MINIELM_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  MINIELM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

// Device buffer owned by a test (freed on scope exit, also when a CHECK throws).
template <typename T>
struct Buf {
  T* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t count) : n(count) { MINIELM_CUDA_CHECK(cudaMalloc(&p, sizeof(T) * (count ? count : 1))); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  void upload(const T* host) { MINIELM_CUDA_CHECK(cudaMemcpy(p, host, sizeof(T) * n, cudaMemcpyHostToDevice)); }
  void download(T* host) const { MINIELM_CUDA_CHECK(cudaMemcpy(host, p, sizeof(T) * n, cudaMemcpyDeviceToHost)); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    download(h.data());
    return h;
  }
};

// Host-side bf16 rounding (round to nearest even), to build CPU reference inputs equal to what the GPU reads.
inline float round_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}
inline std::vector<bf16> to_bf16_host(const std::vector<float>& x) {
  std::vector<bf16> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = __float2bfloat16_rn(x[i]);
  return r;
}
inline std::vector<float> from_bf16_host(const std::vector<bf16>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = __bfloat162float(x[i]);
  return r;
}

// Uploads: x to device memory at dst (x.size() elements, any offset); x rounded to bf16 into b (x holds at
// least b.n elements).
template <typename T>
void upload_to(T* dst, const std::vector<T>& x) {
  MINIELM_CUDA_CHECK(cudaMemcpy(dst, x.data(), sizeof(T) * x.size(), cudaMemcpyHostToDevice));
}
inline void upload_bf16(Buf<bf16>& b, const std::vector<float>& x) { b.upload(to_bf16_host(x).data()); }

}  // namespace test
}  // namespace cuda
}  // namespace minielm

#define MINIELM_TEST_CAT2(a, b) a##b
#define MINIELM_TEST_CAT(a, b) MINIELM_TEST_CAT2(a, b)
#define MINIELM_GPU_TEST(name)                                                                        \
  static void name();                                                                                 \
  static ::minielm::cuda::test::Register MINIELM_TEST_CAT(reg_, name)(#name, name, false);             \
  static void name()
#define MINIELM_GPU_BENCH(name)                                                                       \
  static void name();                                                                                 \
  static ::minielm::cuda::test::Register MINIELM_TEST_CAT(reg_, name)(#name, name, true);              \
  static void name()
#define CHECK(cond, what)                                                                             \
  do {                                                                                                \
    if (!(cond)) throw ::minielm::cuda::test::Failure(std::string(what) + " (" #cond ")");           \
  } while (0)
#define CHECK_CLOSE(got, want, atol, rtol, what) ::minielm::cuda::test::check_close(got, want, atol, rtol, what)
