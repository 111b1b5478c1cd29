// Correctness and throughput test for minielm::sgemm (both backends) and the roofline probes.
// Usage: gemm_test [--no-bench] [--bench-only] [--quick] [--threads N]
// --threads N runs the throughput part on N threads (default: all cores); on a shared machine the
// single-thread table (N = 1) is the one least disturbed by other processes.
// MINIELM_GEMM_ISA=avx2|generic forces a lower built-in kernel; the test first prints
//   gemm isa: kernel=<the kernel sgemm dispatches to> requested=<MINIELM_GEMM_ISA or (none)> cpu=<best kernel this CPU runs>
// and fails when the kernel is not the one asked for (or, unforced, not the best the CPU supports).
// Exit status is non-zero on any correctness failure (77 when the requested kernel cannot run on this
// CPU: nothing was tested); timings are informational.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../core/gemm.h"
#include "../core/peak.h"
#include "../core/threads.h"

using namespace minielm;

namespace {

int g_failures = 0;

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  int64_t pad;  // added to every leading dimension
  float alpha, beta;
};

// Workers of a freshly resized pool need a moment to start before the first job is posted.
void use_threads(int n) {
  set_num_threads(n);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void fill(std::vector<float>& v, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (float& x : v) x = d(rng);
}

struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0;
  std::vector<double> ref;
  std::vector<double> bound;  // per-element error bound
};

Operands make(const Case& c, std::mt19937& rng) {
  Operands o;
  const int64_t arows = c.ta ? c.K : c.M, acols = c.ta ? c.M : c.K;
  const int64_t brows = c.tb ? c.N : c.K, bcols = c.tb ? c.K : c.N;
  o.lda = acols + c.pad;
  o.ldb = bcols + c.pad;
  o.ldc = c.N + c.pad;
  o.A.resize(std::max<int64_t>(1, arows * o.lda));
  o.B.resize(std::max<int64_t>(1, brows * o.ldb));
  o.C0.resize(std::max<int64_t>(1, c.M * o.ldc));
  fill(o.A, rng);
  fill(o.B, rng);
  fill(o.C0, rng);
  if (c.beta == 0.0f) std::fill(o.C0.begin(), o.C0.end(), std::numeric_limits<float>::quiet_NaN());
  std::vector<double> Ad(o.A.begin(), o.A.end()), Bd(o.B.begin(), o.B.end());
  std::vector<double> Aa(Ad.size()), Ba(Bd.size());
  for (size_t i = 0; i < Ad.size(); ++i) Aa[i] = std::fabs(Ad[i]);
  for (size_t i = 0; i < Bd.size(); ++i) Ba[i] = std::fabs(Bd[i]);
  o.ref.assign(o.C0.begin(), o.C0.end());
  dgemm_reference(c.ta, c.tb, c.M, c.N, c.K, c.alpha, Ad.data(), o.lda, Bd.data(), o.ldb, c.beta, o.ref.data(),
                  o.ldc);
  o.bound.assign(o.C0.size(), 0.0);
  dgemm_reference(c.ta, c.tb, c.M, c.N, c.K, std::fabs(c.alpha), Aa.data(), o.lda, Ba.data(), o.ldb, 0.0,
                  o.bound.data(), o.ldc);
  const double eps = std::numeric_limits<float>::epsilon();
  for (int64_t i = 0; i < c.M; ++i)
    for (int64_t j = 0; j < c.N; ++j) {
      double& b = o.bound[i * o.ldc + j];
      double cterm = c.beta == 0.0f ? 0.0 : std::fabs(c.beta * o.C0[i * o.ldc + j]);
      b = 2.0 * (static_cast<double>(c.K) + 3.0) * eps * (b + cterm) + 1e-30;
    }
  return o;
}

std::string describe(const Case& c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%c%c %lldx%lldx%lld pad=%lld alpha=%g beta=%g", c.ta ? 'T' : 'N',
                c.tb ? 'T' : 'N', (long long)c.M, (long long)c.N, (long long)c.K, (long long)c.pad, c.alpha, c.beta);
  return buf;
}

std::vector<float> run_sgemm(const Case& c, const Operands& o) {
  std::vector<float> C = o.C0;
  sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, C.data(), o.ldc);
  return C;
}

bool verify(const Case& c, const Operands& o, const std::vector<float>& C, const char* what) {
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < o.ldc; ++j) {
      const size_t idx = i * o.ldc + j;
      if (j >= c.N) {
        // Padding between rows must be untouched (NaN compares unequal, so compare bits).
        if (std::memcmp(&C[idx], &o.C0[idx], sizeof(float)) != 0) ++bad;
        continue;
      }
      const double err = std::fabs(static_cast<double>(C[idx]) - o.ref[idx]);
      if (!(err <= o.bound[idx])) ++bad;
      if (o.bound[idx] > 0) worst = std::max(worst, err / o.bound[idx]);
    }
  }
  if (bad != 0) {
    std::printf("FAIL %-8s %s: %lld bad elements (worst err/bound %.3g)\n", what, describe(c).c_str(),
                (long long)bad, worst);
    ++g_failures;
    return false;
  }
  return true;
}

void correctness(bool quick) {
  std::mt19937 rng(1234);
  struct Dims {
    int64_t M, N, K, pad;
  };
  std::vector<Dims> dims = {{1, 1, 1, 0},    {7, 13, 5, 0},    {33, 65, 17, 3}, {1, 8192, 256, 0},
                            {1, 1, 0, 0},    {2, 100, 37, 1},  {3, 70, 300, 0}, {5, 129, 64, 2},
                            {8, 64, 33, 0},  {9, 31, 32, 0},   {16, 768, 256, 0}, {64, 200, 64, 5},
                            {15, 33, 513, 0}, {24, 50, 20, 1}, {100, 1, 7, 0},  {29, 47, 1, 4},  {1, 17, 1000, 0}};
  if (!quick) dims.push_back({1024, 768, 256, 0});
  struct AB {
    float alpha, beta;
  };
  const AB abs[] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 0.75f}};
  const bool have_blas = blas_available();
  std::vector<Case> cases;
  for (const Dims& d : dims)
    for (int t = 0; t < 4; ++t)
      for (const AB& ab : abs) {
        // The big shape only with beta = 0 and 1: the reference costs seconds.
        if (d.M * d.N * d.K > 1e8 && ab.alpha != 1.0f) continue;
        cases.push_back(Case{(t & 2) != 0, (t & 1) != 0, d.M, d.N, d.K, d.pad, ab.alpha, ab.beta});
      }
  std::vector<Operands> ops;
  for (const Case& c : cases) ops.push_back(make(c, rng));
  // Thread count changes once per phase (not per case): resizing the pool is not meant to be hot.
  std::vector<std::vector<float>> one(cases.size());
  set_gemm_backend(GemmBackend::Builtin);
  use_threads(1);
  for (size_t i = 0; i < cases.size(); ++i) {
    one[i] = run_sgemm(cases[i], ops[i]);
    verify(cases[i], ops[i], one[i], "builtin1");
  }
  use_threads(2);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    std::vector<float> c2 = run_sgemm(c, ops[i]);
    verify(c, ops[i], c2, "builtin2");
    if (std::memcmp(one[i].data(), c2.data(), c2.size() * sizeof(float)) != 0) {
      std::printf("FAIL builtin 1 vs 2 threads not bit-identical: %s\n", describe(c).c_str());
      ++g_failures;
    }
    // Repeating a call must give the same bits (no state leaks between calls).
    std::vector<float> c3 = run_sgemm(c, ops[i]);
    if (std::memcmp(c2.data(), c3.data(), c2.size() * sizeof(float)) != 0) {
      std::printf("FAIL builtin repeat not bit-identical: %s\n", describe(c).c_str());
      ++g_failures;
    }
    if (have_blas) {
      set_gemm_backend(GemmBackend::Blas);
      verify(c, ops[i], run_sgemm(c, ops[i]), "blas");
      set_gemm_backend(GemmBackend::Builtin);
    }
  }
  const size_t checked = cases.size();
  use_threads(0);
  std::printf("correctness (builtin isa %s): %zu cases x {builtin 1t, builtin 2t%s}: %s\n", builtin_gemm_isa(),
              checked, have_blas ? ", blas" : "",
              g_failures == 0 ? "OK" : "FAILED");
}

// Best single-call time over repetitions lasting at least `budget` seconds.
double time_gemm(const Case& c, std::vector<float>& A, std::vector<float>& B, std::vector<float>& C, double budget) {
  const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  auto call = [&] {
    sgemm(c.ta, c.tb, c.M, c.N, c.K, 1.0f, A.data(), lda, B.data(), ldb, c.beta, C.data(), c.N);
  };
  call();
  double best = 1e30, start = now_s();
  int reps = 0;
  while (reps < 3 || now_s() - start < budget) {
    double t0 = now_s();
    call();
    best = std::min(best, now_s() - t0);
    if (++reps > 20000) break;
  }
  return best;
}

void bench(bool quick) {
  const int nt = num_threads();
  std::printf("\nthreads=%d  builtin isa=%s  cpu isa=%s  blas=%s\n", nt, builtin_gemm_isa(), cpu_isa(),
              blas_available() ? blas_library() : "(none)");
  // Measured before and after the GEMMs and the best kept: other processes share these cores and a
  // peak taken while they ran would flatter every fraction below.
  double peak = measure_fma_peak_gflops(nt, quick ? 0.5 : 1.5);
  double peak1 = measure_fma_peak_gflops(1, quick ? 0.3 : 1.0);
  const double bw = measure_copy_bandwidth_gbs(nt, quick ? 1.0 : 3.0);

  struct Shape {
    const char* name;
    bool ta, tb;
    int64_t M, N, K;
  };
  const Shape shapes[] = {
      {"square 1024^3", false, false, 1024, 1024, 1024},
      {"qkv/fc NN", false, false, 1024, 768, 256},
      {"proj NN", false, false, 1024, 256, 256},
      {"fc NN", false, false, 1024, 1024, 256},
      {"fcproj NN", false, false, 1024, 256, 1024},
      {"logits NT", false, true, 1024, 8192, 256},
      {"dX lm-head NN", false, false, 1024, 256, 8192},
      {"dX qkv NT", false, true, 1024, 256, 768},
      {"dX fc NT", false, true, 1024, 256, 1024},
      {"dX fcproj NT", false, true, 1024, 1024, 256},
      {"dW fc TN", true, false, 256, 1024, 1024},
      {"dW qkv TN", true, false, 256, 768, 1024},
      {"dWTE TN", true, false, 8192, 256, 1024},
      {"dW fcproj TN", true, false, 1024, 256, 1024},
      {"attn QK^T NT", false, true, 256, 256, 64},
      {"attn PV NN", false, false, 256, 64, 256},
      {"decode NN", false, false, 1, 768, 256},
      {"decode NN", false, false, 16, 768, 256},
      {"decode NN", false, false, 64, 768, 256},
      {"decode NN", false, false, 1, 8192, 256},
      {"decode NN", false, false, 16, 8192, 256},
      {"decode NN", false, false, 64, 8192, 256},
      {"decode NT", false, true, 1, 8192, 256},
      {"decode NT", false, true, 16, 8192, 256},
      {"decode NT", false, true, 64, 8192, 256},
  };
  // Backends run in separate phases with a pause between them: OpenBLAS worker threads keep spinning
  // for a while after each call, and the pool's workers do too, so interleaving the two would make
  // each backend compete with the other's idle spinners for the two cores. Each phase runs twice and
  // the best is kept, because other processes share these cores.
  const size_t ns = sizeof(shapes) / sizeof(shapes[0]);
  std::vector<double> g_builtin(ns, 0.0), g_blas(ns, 0.0);
  std::vector<std::vector<float>> As(ns), Bs(ns), Cs(ns);
  std::mt19937 rng(7);
  for (size_t i = 0; i < ns; ++i) {
    As[i].resize(shapes[i].M * shapes[i].K);
    Bs[i].resize(shapes[i].K * shapes[i].N);
    Cs[i].resize(shapes[i].M * shapes[i].N);
    fill(As[i], rng);
    fill(Bs[i], rng);
  }
  const double budget = quick ? 0.15 : 0.4;
  const int passes = quick ? 1 : 2;
  for (int pass = 0; pass < passes; ++pass) {
    for (int backend = 0; backend < 2; ++backend) {
      if (backend == 1 && !blas_available()) continue;
      set_gemm_backend(backend == 0 ? GemmBackend::Builtin : GemmBackend::Blas);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      for (size_t i = 0; i < ns; ++i) {
        const Shape& s = shapes[i];
        Case c{s.ta, s.tb, s.M, s.N, s.K, 0, 1.0f, 0.0f};
        const double g = 2.0 * s.M * s.N * s.K / time_gemm(c, As[i], Bs[i], Cs[i], budget) / 1e9;
        double& slot = backend == 0 ? g_builtin[i] : g_blas[i];
        slot = std::max(slot, g);
      }
    }
  }
  set_gemm_backend(GemmBackend::Builtin);
  peak = std::max(peak, measure_fma_peak_gflops(nt, quick ? 0.5 : 1.5));
  peak1 = std::max(peak1, measure_fma_peak_gflops(1, quick ? 0.3 : 1.0));
  std::printf("FMA peak: %.1f GFLOP/s (%d threads), %.1f GFLOP/s (1 thread)\n", peak, nt, peak1);
  std::printf("copy bandwidth: %.1f GB/s (read+write, %d threads)\n\n", bw, nt);
  std::printf("%-15s %2s %17s | %9s %6s | %9s %6s\n", "shape", "op", "MxNxK", "builtin", "%peak", "blas", "%peak");
  for (size_t i = 0; i < ns; ++i) {
    const Shape& s = shapes[i];
    char dims[48];
    std::snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s.M, (long long)s.N, (long long)s.K);
    std::printf("%-15s %c%c %17s | %9.1f %5.1f%% | %9.1f %5.1f%%\n", s.name, s.ta ? 'T' : 'N', s.tb ? 'T' : 'N',
                dims, g_builtin[i], 100 * g_builtin[i] / peak, g_blas[i], 100 * g_blas[i] / peak);
  }
  // Single-thread square, against the single-thread peak.
  {
    use_threads(1);
    Case c{false, false, 1024, 1024, 1024, 0, 1.0f, 0.0f};
    std::vector<float> A(1 << 20), B(1 << 20), C(1 << 20);
    fill(A, rng);
    fill(B, rng);
    const double gb = 2e9 / 1e9 * 1.073741824 / time_gemm(c, A, B, C, quick ? 0.3 : 1.0);
    double gblas = 0;
    if (blas_available()) {
      set_gemm_backend(GemmBackend::Blas);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      gblas = 2.0 * 1.073741824 / time_gemm(c, A, B, C, quick ? 0.3 : 1.0);
      set_gemm_backend(GemmBackend::Builtin);
    }
    std::printf("%-15s %2s %17s | %9.1f %5.1f%% | %9.1f %5.1f%%   (1 thread vs 1-thread peak)\n", "square 1t", "NN",
                "1024x1024x1024", gb, 100 * gb / peak1, gblas, 100 * gblas / peak1);
    use_threads(nt);
  }
}

// The best built-in kernel this CPU can run, from the kernels' own requirements (the target pragma of
// gemm_kernels_avx512.cc; the AVX2 kernel needs AVX2 and FMA), checked here independently of gemm.cc.
const char* best_kernel_for_cpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"))
    return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
  return "generic";
}

// Checks that sgemm dispatches to the kernel MINIELM_GEMM_ISA asks for. Returns an exit status to stop
// with (1: another kernel runs; 77: the requested kernel cannot run on this CPU; 2: an unknown request),
// or 0 to go on.
int check_isa() {
  const char* env = std::getenv("MINIELM_GEMM_ISA");
  const std::string requested = env != nullptr ? env : "";
  const std::string best = best_kernel_for_cpu();
  const std::string kernel = builtin_gemm_isa();
  std::printf("gemm isa: kernel=%s requested=%s cpu=%s\n", kernel.c_str(), requested.empty() ? "(none)" : requested.c_str(),
              best.c_str());
  std::string expected;
  if (requested.empty()) {
    expected = best;
  } else if (requested == "generic") {
    expected = "generic";
  } else if (requested == "avx2") {
    if (best == "generic") {
      std::printf("SKIP: MINIELM_GEMM_ISA=avx2 but this CPU has no AVX2+FMA: the AVX2 kernel cannot be tested here\n");
      return 77;
    }
    expected = "avx2";
  } else {
    std::printf("FAIL MINIELM_GEMM_ISA=%s: only avx2 and generic can be forced\n", requested.c_str());
    return 2;
  }
  if (kernel != expected) {
    std::printf("FAIL the built-in GEMM runs the %s kernel, expected %s: nothing else was tested\n", kernel.c_str(),
                expected.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (const int status = check_isa()) return status;
  bool do_bench = true, do_check = true, quick = false;
  int bench_threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) bench_threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--no-bench")) do_bench = false;
    if (!std::strcmp(argv[i], "--bench-only")) do_check = false;
    if (!std::strcmp(argv[i], "--quick")) quick = true;
  }
  if (do_check) correctness(quick);
  if (do_bench) {
    use_threads(bench_threads);
    bench(quick);
  }
  if (g_failures != 0) {
    std::printf("\n%d correctness failures\n", g_failures);
    return 1;
  }
  return 0;
}
