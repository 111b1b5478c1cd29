// GEMM front end: argument handling, ISA dispatch, the static thread split, per-thread packing
// buffers, the run-time CBLAS backend and the double-precision reference.
#include "gemm.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cpu.h"
#include "gemm_internal.h"
#include "threads.h"

// Included last and without any target pragma: this copy of the driver is the portable fallback.
#include "gemm_driver.h"

namespace minielm {
namespace gemm_detail {

namespace {

struct Workspace {
  float* ptr[2] = {nullptr, nullptr};
  size_t cap[2] = {0, 0};
  ~Workspace() {
    for (float* p : ptr) std::free(p);
  }
};

thread_local Workspace t_ws;

// Portable 4x16 kernel for CPUs without AVX2: plain x86-64 code (SSE2), which the compiler vectorises.
struct GenericTraits {
  static constexpr int MR = 4;
  static constexpr int NR = 16;
  static constexpr int64_t KC = 256;
  static constexpr int64_t MC = 128;
  static constexpr int64_t NC = 2048;
  static void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
    gemm_detail::pack_a<MR>(p, i0, mc, k0, kc, dst);
  }
  static void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    gemm_detail::pack_b<NR>(p, k0, kc, j0, nc, dst);
  }
  static void kernel(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C,
                     int64_t ldc, int m, int n, float alpha, float beta) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k) {
      for (int i = 0; i < MR; ++i) {
        const float a = Ap[i];
        for (int j = 0; j < NR; ++j) acc[i][j] += a * Bp[j];
      }
      Ap += MR;
      Bp += NR;
    }
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        float v = alpha * acc[i][j];
        if (beta != 0.0f) v = std::fma(beta, C[i * ldc + j], v);
        C[i * ldc + j] = v;
      }
  }
};

}  // namespace

float* workspace(int slot, size_t floats) {
  if (t_ws.cap[slot] < floats) {
    std::free(t_ws.ptr[slot]);
    // Round up to whole cache lines; aligned_alloc wants a multiple of the alignment.
    size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    t_ws.ptr[slot] = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (t_ws.ptr[slot] == nullptr) std::abort();
    t_ws.cap[slot] = bytes / sizeof(float);
  }
  return t_ws.ptr[slot];
}

void tile_generic(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  run_tile<GenericTraits>(p, m0, m1, n0, n1);
}

Shape shape_generic() { return Shape{GenericTraits::MR, GenericTraits::NR}; }

}  // namespace gemm_detail

namespace {

using gemm_detail::Problem;
using gemm_detail::Shape;

using cpu::Isa;

// cpu::isa() (the CPU's level, capped by MINIELM_ISA), further capped by MINIELM_GEMM_ISA=avx2|generic, so
// the GEMM fallbacks alone can be tested on an AVX-512 machine.
Isa select_isa() { return cpu::cap_by_env(cpu::isa(), "MINIELM_GEMM_ISA"); }

Isa isa() {
  static const Isa v = select_isa();
  return v;
}

// ---- CBLAS loaded at run time ----
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                         float*, int);
using SetIntFn = void (*)(int);
using SetI64Fn = void (*)(int64_t);

struct Blas {
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  SetIntFn openblas_threads = nullptr;
  SetI64Fn blis_threads = nullptr;
  SetIntFn mkl_threads = nullptr;
  const char* name = "";
  std::atomic<int> threads_set{-1};
};

Blas& blas() {
  static Blas* b = [] {
    Blas* r = new Blas();  // never freed: the library stays loaded for the process lifetime
    static const char* const kNames[] = {"libopenblas.so.0", "libopenblas.so", "libblis.so.4", "libmkl_rt.so",
                                         "libcblas.so.3",    "libblas.so.3"};
    for (const char* name : kNames) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) continue;
      void* f = dlsym(h, "cblas_sgemm");
      if (f == nullptr) {
        dlclose(h);
        continue;
      }
      r->handle = h;
      r->sgemm = reinterpret_cast<SgemmFn>(f);
      r->openblas_threads = reinterpret_cast<SetIntFn>(dlsym(h, "openblas_set_num_threads"));
      r->blis_threads = reinterpret_cast<SetI64Fn>(dlsym(h, "bli_thread_set_num_threads"));
      r->mkl_threads = reinterpret_cast<SetIntFn>(dlsym(h, "MKL_Set_Num_Threads"));
      r->name = name;
      break;
    }
    return r;
  }();
  return *b;
}

std::atomic<int> g_backend{-1};

GemmBackend initial_backend() {
  const char* env = std::getenv("MINIELM_GEMM");
  if (env != nullptr && (std::strcmp(env, "blas") == 0 || std::strcmp(env, "BLAS") == 0) &&
      blas().sgemm != nullptr)
    return GemmBackend::Blas;
  return GemmBackend::Builtin;
}

void blas_call(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  Blas& b = blas();
  const int nt = num_threads();
  if (b.threads_set.load(std::memory_order_relaxed) != nt) {
    if (b.openblas_threads != nullptr) b.openblas_threads(nt);
    if (b.blis_threads != nullptr) b.blis_threads(nt);
    if (b.mkl_threads != nullptr) b.mkl_threads(nt);
    b.threads_set.store(nt, std::memory_order_relaxed);
  }
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  b.sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(M), static_cast<int>(N),
          static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
          static_cast<int>(ldc));
}

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(c, c + N, 0.0f);
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// Below this many flops per thread, waking another thread costs more than it saves.
constexpr double kMinFlopsPerThread = 4.0e6;

void builtin_call(const Problem& p) {
  const Isa which = isa();
  const double flops = 2.0 * static_cast<double>(p.M) * static_cast<double>(p.N) * static_cast<double>(p.K);
  int nt = num_threads();
  nt = static_cast<int>(std::max<double>(1.0, std::min<double>(nt, flops / kMinFlopsPerThread)));

  if (which == Isa::Avx512 && p.M <= gemm_detail::small_m_max_avx512() && !(p.ta && p.tb)) {
    // Decoding: split columns only, in units that keep each thread's strip whole for the kernels.
    // These shapes are bound by streaming B, so a second thread pays off much earlier: gate on the
    // bytes of B rather than on flops.
    nt = static_cast<int>(std::max<double>(
        1.0, std::min<double>(num_threads(), static_cast<double>(p.N) * static_cast<double>(p.K) / 16384.0)));
    const int64_t unit = p.tb ? 8 : 64;
    const int64_t units = (p.N + unit - 1) / unit;
    nt = static_cast<int>(std::min<int64_t>(nt, units));
    if (nt <= 1) {
      gemm_detail::small_avx512(p, 0, p.N);
      return;
    }
    run_parallel(nt, [&](int tid, int n) {
      const int64_t n0 = std::min(p.N, units * tid / n * unit);
      const int64_t n1 = std::min(p.N, units * (tid + 1) / n * unit);
      if (n0 < n1) gemm_detail::small_avx512(p, n0, n1);
    });
    return;
  }

  Shape s;
  void (*tile)(const Problem&, int64_t, int64_t, int64_t, int64_t);
  switch (which) {
    case Isa::Avx512: s = gemm_detail::shape_avx512(); tile = gemm_detail::tile_avx512; break;
    case Isa::Avx2: s = gemm_detail::shape_avx2(); tile = gemm_detail::tile_avx2; break;
    default: s = gemm_detail::shape_generic(); tile = gemm_detail::tile_generic; break;
  }
  const int64_t mt = (p.M + s.mr - 1) / s.mr, ntl = (p.N + s.nr - 1) / s.nr;
  nt = static_cast<int>(std::min<int64_t>(nt, mt * ntl));
  if (nt <= 1) {
    tile(p, 0, p.M, 0, p.N);
    return;
  }
  // Choose a tm x tn grid of output blocks (one per thread). Cost per thread in units of K cycles:
  // compute (rows*cols/32 with 2 FMA ports x 16 lanes) plus packing its rows of A and columns of B.
  int best_tm = 1;
  double best = 1e300;
  for (int tm = 1; tm <= nt; ++tm) {
    if (nt % tm != 0) continue;
    const int tn = nt / tm;
    if (tm > mt || tn > ntl) continue;
    const double rows = static_cast<double>((mt + tm - 1) / tm * s.mr);
    const double cols = static_cast<double>((ntl + tn - 1) / tn * s.nr);
    const double cost = rows * cols / 32.0 + rows + cols;
    if (cost < best) {
      best = cost;
      best_tm = tm;
    }
  }
  const int tm = best_tm, tn = nt / tm;
  run_parallel(nt, [&](int tid, int n) {
    if (n != tm * tn) {
      // The pool gave fewer threads than asked (it never should); stay correct on one thread.
      if (tid == 0) tile(p, 0, p.M, 0, p.N);
      return;
    }
    const int ti = tid / tn, tj = tid % tn;
    const int64_t m0 = std::min(p.M, mt * ti / tm * s.mr), m1 = std::min(p.M, mt * (ti + 1) / tm * s.mr);
    const int64_t n0 = std::min(p.N, ntl * tj / tn * s.nr), n1 = std::min(p.N, ntl * (tj + 1) / tn * s.nr);
    if (m0 < m1 && n0 < n1) tile(p, m0, m1, n0, n1);
  });
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  if (gemm_backend() == GemmBackend::Blas) {
    const int64_t biggest = std::max({M, N, K, lda, ldb, ldc});
    if (biggest <= INT_MAX) {
      blas_call(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
  builtin_call(Problem{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc});
}

void dgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                     const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
                     int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const double b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      double& c = C[i * ldc + j];
      c = beta == 0.0 ? alpha * s : alpha * s + beta * c;
    }
}

bool blas_available() { return blas().sgemm != nullptr; }

const char* blas_library() { return blas().name; }

GemmBackend gemm_backend() {
  int v = g_backend.load(std::memory_order_acquire);
  if (v < 0) {
    int want = static_cast<int>(initial_backend());
    int expected = -1;
    g_backend.compare_exchange_strong(expected, want, std::memory_order_acq_rel);
    v = g_backend.load(std::memory_order_acquire);
  }
  return static_cast<GemmBackend>(v);
}

bool set_gemm_backend(GemmBackend backend) {
  if (backend == GemmBackend::Blas && !blas_available()) return false;
  g_backend.store(static_cast<int>(backend), std::memory_order_release);
  return true;
}

const char* builtin_gemm_isa() {
  switch (isa()) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace minielm
