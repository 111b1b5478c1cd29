// GPU tests and benches of cuda::gemm (native/cuda/gemm.cu).
//
// Every backend the machine has is run through the same cases: cuBLASLt (when libcublasLt loads), the built-in
// routing ("builtin": tiny problems to the simple kernel), the tensor-core kernel forced on every size ("mma")
// and the one-thread-per-output kernel forced ("simple"). Cases: the 4 transpose combinations; sizes from 1x1x1
// to 1000x771x129 and a deep K (8192); four storage layouts per operand (tight leading dimensions, padded to a
// multiple of 8, padded by an odd amount, and padded with the pointer one element past an aligned address, which
// also misaligns the bias); (alpha, beta, bias) in {(1, 0, -), (0.5, 0, bias), (1, 1, -), (0.5, 1, bias)}; fp32
// and bf16 output. Padding of A and B holds NaN (no backend may use it) and with beta = 0 the valid part of C
// holds NaN too (never read); padding of C holds a sentinel that must survive (bounds-checked stores).
//
// Reference: op(A) op(B) in double on the host, from the bf16-rounded inputs (exactly what the GPU reads), then
// alpha * P + beta * C + bias. Tolerances (inputs N(0, 1), so |P| ~ sqrt(K)):
//   fp32 output: atol 2e-4 * sqrt(K) + 1e-5, rtol 1e-4. The only difference left is fp32 accumulation (products of
//                bf16 are exact in fp32), ~1e-6 relative; an indexing mistake, a lost k-step or a misplaced
//                fragment costs O(1).
//   bf16 output: atol 1e-3 * sqrt(K) + 1e-2, rtol 1e-2. One rounding to bf16 is <= 2^-9 (0.2%) of the value; a bias
//                added after the rounded product (the unfused cuBLASLt path) rounds a second time, by up to 0.2% of
//                (value - bias), which the 1e-2 absolute term covers for |bias| of a few units.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "../../core/rng.h"
#include "../gemm_internal.cuh"
#include "../kernels.cuh"
#include "harness.cuh"

namespace {

using minielm::cuda::bf16;
using minielm::cuda::test::Buf;
using minielm::cuda::test::Failure;
using minielm::cuda::test::round_bf16;

// H200 SXM dense (no sparsity) BF16 tensor-core peak from NVIDIA's datasheet: 989.4 TFLOP/s (1,979 with 2:4
// sparsity).
constexpr double kPeakTflops = 989.4;

// Forces a backend for the scope of a test and restores the default afterwards, also when a CHECK throws.
struct ForceBackend {
  bool ok;
  explicit ForceBackend(const char* name) : ok(minielm::cuda::gemm_force_backend(name)) {}
  ~ForceBackend() { minielm::cuda::gemm_force_backend(nullptr); }
  ForceBackend(const ForceBackend&) = delete;
  ForceBackend& operator=(const ForceBackend&) = delete;
};

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { MINIELM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
};

template <typename T>
T to_out(float v);
template <>
float to_out<float>(float v) {
  return v;
}
template <>
bf16 to_out<bf16>(float v) {
  return __float2bfloat16_rn(v);
}
inline float from_out(float v) { return v; }
inline float from_out(bf16 v) { return __bfloat162float(v); }
template <typename T>
const char* type_name();
template <>
const char* type_name<float>() {
  return "f32";
}
template <>
const char* type_name<bf16>() {
  return "bf16";
}

// The logical problem, shared by every layout and backend.
struct Problem {
  int64_t M, N, K;
  std::vector<float> a;     // op(A) [M, K], bf16 values
  std::vector<float> b;     // op(B) [K, N], bf16 values
  std::vector<float> bias;  // [N], fp32
  std::vector<float> c0;    // C before the call [M, N], bf16 values (the same C for both output types)
  std::vector<double> p;    // op(A) op(B) [M, N], double
};

const Problem& problem(int64_t M, int64_t N, int64_t K) {
  static std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Problem>> cache;
  auto& slot = cache[std::make_tuple(M, N, K)];
  if (slot) return *slot;
  auto P = std::make_unique<Problem>();
  P->M = M, P->N = N, P->K = K;
  minielm::Rng rng(static_cast<uint64_t>(M * 1000003 + N * 1009 + K));
  auto normal_bf16 = [&] { return round_bf16(static_cast<float>(rng.normal())); };
  P->a.resize(M * K);
  for (auto& v : P->a) v = normal_bf16();
  P->b.resize(K * N);
  for (auto& v : P->b) v = normal_bf16();
  P->bias.resize(N);
  for (auto& v : P->bias) v = static_cast<float>(rng.normal());
  P->c0.resize(M * N);
  for (auto& v : P->c0) v = normal_bf16();
  std::vector<double> bt(N * K);  // op(B)^T, so that the inner loop is contiguous
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j) bt[j * K + k] = P->b[k * N + j];
  std::vector<double> ar(K);
  P->p.assign(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t k = 0; k < K; ++k) ar[k] = P->a[i * K + k];
    for (int64_t j = 0; j < N; ++j) {
      const double* bj = &bt[j * K];
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += ar[k] * bj[k];
      P->p[i * N + j] = s;
    }
  }
  slot = std::move(P);
  return *slot;
}

// Storage layouts: 0 tight, 1 padded to a multiple of 8 (+8), 2 padded by 3 (misaligned rows),
// 3 as 1 with the pointer one element past an aligned address.
constexpr int kLayouts = 4;
const char* const kLayoutNames[kLayouts] = {"tight", "pad8", "odd", "offset"};
int64_t lead(int64_t min, int layout) {
  switch (layout) {
    case 0: return min;
    case 2: return min + 3;
    default: return (min + 7) / 8 * 8 + 8;
  }
}
int64_t offset_of(int layout) { return layout == 3 ? 1 : 0; }

// The device image of a GEMM operand op(X) = x [R, Cc] (row-major): X = x stored [R, Cc], or (trans) X = x^T
// stored [Cc, R]; leading dimension ld, `off` elements into the buffer, NaN everywhere else.
std::vector<bf16> store_op(const std::vector<float>& x, int64_t R, int64_t Cc, bool trans, int64_t ld, int64_t off) {
  const int64_t rows = trans ? Cc : R;
  std::vector<bf16> s(off + rows * ld, __float2bfloat16(NAN));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t k = 0; k < Cc; ++k)
      s[off + (trans ? k * ld + i : i * ld + k)] = __float2bfloat16(x[i * Cc + k]);
  return s;
}
std::vector<bf16> store_a(const Problem& P, bool ta, int64_t lda, int64_t off) {
  return store_op(P.a, P.M, P.K, ta, lda, off);
}
std::vector<bf16> store_b(const Problem& P, bool tb, int64_t ldb, int64_t off) {
  return store_op(P.b, P.K, P.N, tb, ldb, off);
}

struct Scalars {
  float alpha, beta;
  bool bias;
};
const Scalars kScalars[] = {{1.0f, 0.0f, false}, {0.5f, 0.0f, true}, {1.0f, 1.0f, false}, {0.5f, 1.0f, true}};

template <typename OutT>
void tolerances(int64_t K, double& atol, double& rtol) {
  const double sk = std::sqrt(static_cast<double>(K));
  if (sizeof(OutT) == 4)
    atol = 2e-4 * sk + 1e-5, rtol = 1e-4;
  else
    atol = 1e-3 * sk + 1e-2, rtol = 1e-2;
}

constexpr float kSentinel = 1536.0f;  // exact in bf16

// One gemm call against the reference; A, B and the bias are on the device already (dA + offa etc.).
template <typename OutT>
void run_case(const std::string& tag, const Problem& P, bool ta, bool tb, int layout, const Scalars& sc,
              const bf16* A, int64_t lda, const bf16* B, int64_t ldb, const float* bias, cudaStream_t stream) {
  const int64_t M = P.M, N = P.N, K = P.K;
  const int64_t ldc = lead(N, layout), offc = offset_of(layout);
  std::vector<OutT> hc(offc + M * ldc, to_out<OutT>(kSentinel));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      hc[offc + i * ldc + j] = to_out<OutT>(sc.beta == 0.0f ? NAN : P.c0[i * N + j]);
  Buf<OutT> dC(hc.size());
  dC.upload(hc.data());
  minielm::cuda::gemm(ta, tb, M, N, K, sc.alpha, A, lda, B, ldb, sc.beta, dC.p + offc, ldc, sc.bias ? bias : nullptr,
                      stream);
  MINIELM_CUDA_CHECK(cudaStreamSynchronize(stream));
  const std::vector<OutT> out = dC.get();

  char what[256];
  std::snprintf(what, sizeof what, "%s %dx%dx%d op(A)=%s op(B)=%s %s alpha=%g beta=%g bias=%d out=%s", tag.c_str(),
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), ta ? "A^T" : "A", tb ? "B^T" : "B",
                kLayoutNames[layout], sc.alpha, sc.beta, sc.bias ? 1 : 0, type_name<OutT>());
  // Everything outside the M x N window is the sentinel still.
  for (int64_t idx = 0; idx < static_cast<int64_t>(out.size()); ++idx) {
    const int64_t rel = idx - offc;
    const bool inside = rel >= 0 && rel / ldc < M && rel % ldc < N;
    if (!inside && std::memcmp(&out[idx], &hc[idx], sizeof(OutT)) != 0)
      throw Failure(std::string(what) + ": wrote outside C (storage element " + std::to_string(idx) + ")");
  }
  std::vector<float> got(M * N), want(M * N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      got[i * N + j] = from_out(out[offc + i * ldc + j]);
      double w = sc.alpha * P.p[i * N + j];
      if (sc.beta != 0.0f) w += static_cast<double>(sc.beta) * P.c0[i * N + j];
      if (sc.bias) w += P.bias[j];
      want[i * N + j] = static_cast<float>(w);
    }
  double atol, rtol;
  tolerances<OutT>(K, atol, rtol);
  minielm::cuda::test::check_close(got.data(), want.data(), got.size(), atol, rtol, what);
}

struct Size {
  int64_t M, N, K;
};
const Size kSizes[] = {{1, 1, 1}, {17, 33, 65}, {128, 128, 32}, {2, 300, 40}, {192, 160, 8192}, {1000, 771, 129}};

void run_backend(const char* backend) {
  ForceBackend force(backend);
  CHECK(force.ok, std::string("gemm_force_backend(") + backend + ")");
  Stream stream;
  for (const Size& sz : kSizes) {
    const Problem& P = problem(sz.M, sz.N, sz.K);
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      for (int layout = 0; layout < kLayouts; ++layout) {
        const int64_t off = offset_of(layout);
        const int64_t lda = lead(ta ? P.M : P.K, layout), ldb = lead(tb ? P.K : P.N, layout);
        const std::vector<bf16> ha = store_a(P, ta, lda, off), hb = store_b(P, tb, ldb, off);
        Buf<bf16> dA(ha.size()), dB(hb.size());
        dA.upload(ha.data());
        dB.upload(hb.data());
        std::vector<float> hbias(off + P.N, NAN);
        std::memcpy(hbias.data() + off, P.bias.data(), sizeof(float) * P.N);
        Buf<float> dbias(hbias.size());
        dbias.upload(hbias.data());
        for (const Scalars& sc : kScalars) {
          run_case<float>(backend, P, ta, tb, layout, sc, dA.p + off, lda, dB.p + off, ldb, dbias.p + off, stream.s);
          run_case<bf16>(backend, P, ta, tb, layout, sc, dA.p + off, lda, dB.p + off, ldb, dbias.p + off, stream.s);
        }
      }
    }
  }
}

// beta == 0: C is never read, NaN in it must not leak into the result (both output types).
template <typename OutT>
void nan_case(const char* backend, int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  const Problem& P = problem(M, N, K);
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  const std::vector<bf16> ha = store_a(P, ta, lda, 0), hb = store_b(P, tb, ldb, 0);
  Buf<bf16> dA(ha.size()), dB(hb.size());
  dA.upload(ha.data());
  dB.upload(hb.data());
  std::vector<OutT> hc(M * N, to_out<OutT>(NAN));
  Buf<OutT> dC(hc.size());
  dC.upload(hc.data());
  minielm::cuda::gemm(ta, tb, M, N, K, 1.0f, dA.p, lda, dB.p, ldb, 0.0f, dC.p, N, nullptr, 0);
  MINIELM_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<OutT> out = dC.get();
  std::vector<float> got(M * N), want(M * N);
  for (int64_t i = 0; i < M * N; ++i) got[i] = from_out(out[i]), want[i] = static_cast<float>(P.p[i]);
  double atol, rtol;
  tolerances<OutT>(K, atol, rtol);
  minielm::cuda::test::check_close(got.data(), want.data(), got.size(), atol, rtol,
              std::string(backend) + " beta=0 with NaN in C, out=" + type_name<OutT>());
}

std::vector<const char*> backends() {
  std::vector<const char*> r;
  if (minielm::cuda::gemm_cublaslt_available()) r.push_back("cublaslt");
  r.push_back("builtin");
  r.push_back("mma");
  r.push_back("simple");
  return r;
}

void print_cublaslt_state(const char* when) {
  std::printf("#   cuBLASLt %s: library '%s', available %d, fallbacks to the built-in kernel %lld, note: %s\n", when,
              minielm::cuda::gemm_cublaslt_library(), minielm::cuda::gemm_cublaslt_available() ? 1 : 0,
              static_cast<long long>(minielm::cuda::gemm_cublaslt_fallbacks()),
              minielm::cuda::gemm_cublaslt_note().c_str());
  std::fflush(stdout);
}

// Device-side random bf16 in [-1, 1) for the benches (a host Rng would take seconds at 8192^2).
__global__ void fill_random_bf16(bf16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 0x9e3779b9u ^ seed ^ static_cast<uint32_t>(i >> 32) * 0x85ebca6bu;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    p[i] = __float2bfloat16_rn(static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

}  // namespace

MINIELM_GPU_TEST(gemm_backend_name) {
  const std::string def = minielm::cuda::gemm_backend();
  CHECK(def == "cublaslt" || def == "builtin", "gemm_backend() is cublaslt or builtin, got " + def);
  std::printf("#   default backend: %s\n", def.c_str());
  print_cublaslt_state("at start");
  {
    ForceBackend force("builtin");
    CHECK(force.ok, "gemm_force_backend(builtin)");
    CHECK(std::string(minielm::cuda::gemm_backend()) == "builtin", "forced builtin reads back as builtin");
  }
  CHECK(std::string(minielm::cuda::gemm_backend()) == def, "the default comes back after forcing");
  CHECK(!minielm::cuda::gemm_force_backend("no-such-backend"), "unknown backend names are refused");
  if (minielm::cuda::gemm_cublaslt_available()) {
    ForceBackend force("cublaslt");
    CHECK(force.ok, "gemm_force_backend(cublaslt) when available");
    CHECK(std::string(minielm::cuda::gemm_backend()) == "cublaslt", "forced cublaslt reads back as cublaslt");
  }
}

MINIELM_GPU_TEST(gemm_cublaslt) {
  if (!minielm::cuda::gemm_cublaslt_available()) {
    std::printf("#   SKIPPED gemm_cublaslt: %s\n", minielm::cuda::gemm_cublaslt_note().c_str());
    return;
  }
  run_backend("cublaslt");
  print_cublaslt_state("after the cuBLASLt cases");
}
MINIELM_GPU_TEST(gemm_builtin) { run_backend("builtin"); }
MINIELM_GPU_TEST(gemm_builtin_mma) { run_backend("mma"); }
MINIELM_GPU_TEST(gemm_builtin_simple) { run_backend("simple"); }

MINIELM_GPU_TEST(gemm_beta0_ignores_nan) {
  for (const char* be : backends()) {
    ForceBackend force(be);
    CHECK(force.ok, std::string("gemm_force_backend(") + be + ")");
    for (int t = 0; t < 4; ++t) {
      nan_case<float>(be, 64, 64, 64, t & 1, t & 2);
      nan_case<bf16>(be, 64, 64, 64, t & 1, t & 2);
      nan_case<float>(be, 300, 200, 50, t & 1, t & 2);
      nan_case<bf16>(be, 300, 200, 50, t & 1, t & 2);
    }
  }
}

// K == 0 and alpha == 0: C = beta * C + bias, A and B are not read (null, or full of NaN); M or N == 0: nothing.
MINIELM_GPU_TEST(gemm_no_product) {
  const int64_t M = 37, N = 45;
  minielm::Rng rng(7);
  std::vector<float> c0(M * N), bias(N);
  for (auto& v : c0) v = round_bf16(static_cast<float>(rng.normal()));
  for (auto& v : bias) v = static_cast<float>(rng.normal());
  Buf<float> dbias(N);
  dbias.upload(bias.data());
  std::vector<bf16> nans(std::max(M, N) * 8, __float2bfloat16(NAN));  // holds A [M, 8] or B [8, N]
  Buf<bf16> dnan(nans.size());
  dnan.upload(nans.data());
  for (const char* be : backends()) {
    ForceBackend force(be);
    CHECK(force.ok, std::string("gemm_force_backend(") + be + ")");
    for (int use_bias = 0; use_bias < 2; ++use_bias)
      for (float beta : {0.0f, 0.5f, 1.0f}) {
        for (int k_zero = 0; k_zero < 2; ++k_zero) {
          Buf<float> dC(M * N);
          std::vector<float> hc = c0;
          if (beta == 0.0f)
            for (auto& v : hc) v = NAN;
          dC.upload(hc.data());
          const int64_t K = k_zero ? 0 : 8;
          const bf16* A = k_zero ? nullptr : dnan.p;  // alpha == 0 case: NaN operands that must not be read
          minielm::cuda::gemm(false, false, M, N, K, k_zero ? 1.0f : 0.0f, A, K, A, N, beta, dC.p, N,
                              use_bias ? dbias.p : nullptr, 0);
          MINIELM_CUDA_CHECK(cudaDeviceSynchronize());
          const std::vector<float> got = dC.get();
          std::vector<float> want(M * N);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
              want[i * N + j] = beta * c0[i * N + j] * (beta != 0.0f) + (use_bias ? bias[j] : 0.0f);
          minielm::cuda::test::check_close(got.data(), want.data(), got.size(), 1e-6, 1e-6,
                      std::string(be) + (k_zero ? " K=0" : " alpha=0") + " beta=" + std::to_string(beta) +
                          " bias=" + std::to_string(use_bias));
        }
      }
    // M == 0 / N == 0: nothing happens, not even with null pointers.
    minielm::cuda::gemm(false, false, 0, N, 8, 1.0f, nullptr, 8, nullptr, N, 0.0f, static_cast<float*>(nullptr), N,
                        nullptr, 0);
    minielm::cuda::gemm(false, false, M, 0, 8, 1.0f, nullptr, 8, nullptr, 0, 0.0f, static_cast<bf16*>(nullptr), 0,
                        nullptr, 0);
    MINIELM_CUDA_CHECK(cudaDeviceSynchronize());
  }
}

MINIELM_GPU_TEST(gemm_invalid_arguments) {
  Buf<bf16> a(64 * 64), b(64 * 64);
  Buf<float> c(64 * 64);
  auto expect = [&](const char* arg, auto&& call) {
    try {
      call();
    } catch (const minielm::Error& e) {
      CHECK(e.code() == "MINIELM_INVALID_ARGUMENT", std::string(arg) + ": code " + e.code());
      CHECK(std::string(e.what()).find(arg) != std::string::npos,
            std::string("the message names ") + arg + ": " + e.what());
      return;
    }
    throw Failure(std::string("no error for a bad ") + arg);
  };
  using minielm::cuda::gemm;
  expect("M", [&] { gemm(false, false, -1, 8, 8, 1.0f, a.p, 8, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("N", [&] { gemm(false, false, 8, -2, 8, 1.0f, a.p, 8, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("K", [&] { gemm(false, false, 8, 8, -3, 1.0f, a.p, 8, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("lda", [&] { gemm(false, false, 8, 8, 16, 1.0f, a.p, 15, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("lda", [&] { gemm(true, false, 16, 8, 8, 1.0f, a.p, 8, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("ldb", [&] { gemm(false, false, 8, 16, 8, 1.0f, a.p, 8, b.p, 8, 0.0f, c.p, 16, nullptr, 0); });
  expect("ldb", [&] { gemm(false, true, 8, 8, 16, 1.0f, a.p, 16, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
  expect("ldc", [&] { gemm(false, false, 8, 16, 8, 1.0f, a.p, 8, b.p, 16, 0.0f, c.p, 15, nullptr, 0); });
  expect("C", [&] { gemm(false, false, 8, 8, 8, 1.0f, a.p, 8, b.p, 8, 0.0f, static_cast<float*>(nullptr), 8, nullptr, 0); });
  expect("A", [&] { gemm(false, false, 8, 8, 8, 1.0f, nullptr, 8, b.p, 8, 0.0f, c.p, 8, nullptr, 0); });
}

// ---------------------------------------------------------------------------------------------------------
// Benches: bf16 x bf16 -> bf16, beta = 0, no bias, TFLOP/s (2 M N K per call) from cudaEvent timing after 3
// warm-up calls, and the fraction of the H200's dense bf16 peak (kPeakTflops).
MINIELM_GPU_BENCH(gemm_bf16_tflops) {
  struct Shape {
    bool ta, tb;
    int64_t M, N, K;
    const char* what;
  };
  const Shape shapes[] = {
      {false, false, 4096, 4096, 4096, "square"},
      {false, false, 8192, 8192, 8192, "square"},
      // GPT-2 124M training, B*T = 8192: forward out = inp @ W (W stored [in, out]) ...
      {false, false, 8192, 2304, 768, "gpt2_qkv_fwd"},
      {false, false, 8192, 768, 768, "gpt2_attnproj_fwd"},
      {false, false, 8192, 3072, 768, "gpt2_fc_fwd"},
      {false, false, 8192, 768, 3072, "gpt2_fcproj_fwd"},
      // ... and backward: dinp = dout @ W^T, dW = inp^T @ dout.
      {false, true, 8192, 768, 3072, "gpt2_fc_dinp"},
      {true, false, 768, 3072, 8192, "gpt2_fc_dweight"},
  };
  std::vector<std::pair<const char*, const char*>> bes;  // (force name, report name)
  if (minielm::cuda::gemm_cublaslt_available()) bes.push_back({"cublaslt", "cublaslt"});
  bes.push_back({"mma", "builtin"});
  for (const Shape& s : shapes) {
    Buf<bf16> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
    fill_random_bf16<<<1024, 256>>>(A.p, A.n, 1u);
    fill_random_bf16<<<1024, 256>>>(B.p, B.n, 2u);
    MINIELM_CUDA_LAUNCHED("fill_random_bf16");
    const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    const double flops = 2.0 * s.M * s.N * s.K;
    const int iters = static_cast<int>(std::max(5.0, std::min(200.0, 5e13 / flops)));
    for (auto& be : bes) {
      ForceBackend force(be.first);
      CHECK(force.ok, std::string("gemm_force_backend(") + be.first + ")");
      const double ms = minielm::cuda::test::time_ms(
          [&] { minielm::cuda::gemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.p, lda, B.p, ldb, 0.0f, C.p, s.N, nullptr, 0); },
          3, iters);
      const double tflops = flops / (ms * 1e-3) / 1e12;
      char name[160];
      std::snprintf(name, sizeof name, "gemm_bf16_%s%s_%lldx%lldx%lld_%s_%s", s.ta ? "T" : "N", s.tb ? "T" : "N",
                    static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K), s.what,
                    be.second);
      minielm::cuda::test::bench_report(name, "tflops", tflops, "TFLOP/s");
      minielm::cuda::test::bench_report(name, "peak_fraction", tflops / kPeakTflops, "fraction of 989.4 TFLOP/s");
    }
  }
  print_cublaslt_state("after the benches");
}
