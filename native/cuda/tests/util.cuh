// Helpers shared by the GPU tests that check row kernels against the CPU engine on random bf16-representable
// inputs (test_ops.cu, test_loss.cu): inputs, row-wise comparison, argument checks, the benches' device fill.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "../../core/error.h"
#include "../../core/rng.h"
#include "harness.cuh"

namespace minielm {
namespace cuda {
namespace test {

// bf16-representable normals: scale * N(0, 1) + mean, rounded once.
inline std::vector<float> randn(Rng& r, size_t n, double scale, double mean = 0) {
  std::vector<float> x(n);
  for (auto& v : x) v = round_bf16(static_cast<float>(mean + scale * r.normal()));
  return x;
}
inline std::vector<double> to_d(const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); }

// Compares rows of `got` with `want`: |g - w| <= rtol |w| + arel * max_row |w| + aabs; reports the worst.
inline void close_rows(const std::vector<float>& got, const std::vector<double>& want, int64_t rows, int64_t V,
                       double rtol, double arel, double aabs, const std::string& what) {
  CHECK(static_cast<int64_t>(got.size()) >= rows * V && static_cast<int64_t>(want.size()) >= rows * V, what + ": sizes");
  double worst = 0;
  int64_t at = -1;
  double at_tol = 0;
  for (int64_t i = 0; i < rows; ++i) {
    double mx = 0;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, std::fabs(want[i * V + j]));
    for (int64_t j = 0; j < V; ++j) {
      const double g = got[i * V + j], w = want[i * V + j];
      const double tol = rtol * std::fabs(w) + arel * mx + aabs;
      const double e = std::isfinite(g) ? std::fabs(g - w) / (tol > 0 ? tol : 1e-300) : 1e300;
      if (e > worst) worst = e, at = i * V + j, at_tol = tol;
    }
  }
  if (worst > 1) {
    std::ostringstream s;
    s << what << ": element " << at << " (row " << at / V << ", col " << at % V << ") is " << got[at] << ", expected "
      << want[at] << " (tolerance " << at_tol << ")";
    throw Failure(s.str());
  }
}
// close_rows over one row: |g - w| <= rtol |w| + atol.
inline void close_vec(const std::vector<float>& got, const std::vector<double>& want, double rtol, double atol,
                      const std::string& what) {
  close_rows(got, want, 1, static_cast<int64_t>(want.size()), rtol, 0, atol, what);
}

// f() must throw a minielm::Error with the code MINIELM_INVALID_ARGUMENT.
template <class F>
void expect_invalid(F&& f, const std::string& what) {
  try {
    f();
  } catch (const minielm::Error& e) {
    CHECK(e.code() == "MINIELM_INVALID_ARGUMENT", what + ": code " + e.code());
    return;
  }
  throw Failure(what + ": no MINIELM_INVALID_ARGUMENT thrown");
}

// Bench inputs: p[i] uniform in [-scale, scale) from a hash of (seed, i) (bf16-rounded), grid-stride.
// (Internal linkage: every test file that includes this header gets its own kernel.)
static __global__ void bench_init_bf16(bf16* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.f / 16777216.f);
    p[i] = __float2bfloat16_rn((2.f * u - 1.f) * scale);
  }
}

}  // namespace test
}  // namespace cuda
}  // namespace minielm
