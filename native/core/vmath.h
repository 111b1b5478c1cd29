// Vectorised float math for the row-wise kernels (softmax, GELU). Scalar libm exp/tanh would cost more than
// the matrix products for an 8192-word vocabulary, so on CPUs with AVX2 + FMA the hot loops run a
// Cephes-style exp (max relative error ~2e-7 over the clamped range; core/vmath_avx2.h) from
// core/vmath_avx2.cc, a file compiled through a target pragma; everywhere else they run the scalar loops
// below. The choice is made once at run time (core/cpu.h), so this header itself is plain x86-64 code.
#pragma once
#include <cmath>
#include <cstdint>

namespace minielm {
namespace vmath {

// ---- scalar versions: the generic path and the tails of the vector ones ----
inline float max_of_scalar(const float* x, int64_t n, float m = -INFINITY) {
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

inline float exp_shift_sum_scalar(const float* x, float shift, float* out, float scale, int64_t n) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    float e = std::exp(x[i] - shift);
    sum += e;
    if (out) out[i] = e * scale;
  }
  return sum;
}

inline void gelu_scalar(const float* x, float* out, int64_t n) {
  const float k = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    out[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

inline void gelu_backward_scalar(const float* x, const float* dout, float* dinp, int64_t n) {
  const float k = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    float u = k * (v + 0.044715f * v * v * v);
    float t = std::tanh(u);
    float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * v * v);
    dinp[i] = dout[i] * g;
  }
}

// ---- the dispatched kernels ----
struct Kernels {
  float (*max_of)(const float* x, int64_t n);
  float (*exp_shift_sum)(const float* x, float shift, float* out, float scale, int64_t n);
  void (*gelu)(const float* x, float* out, int64_t n);
  void (*gelu_backward)(const float* x, const float* dout, float* dinp, int64_t n);
};

// The kernels for this CPU (AVX2 when cpu::isa() allows it, scalar otherwise).
const Kernels& kernels();
// True when kernels() are the AVX2 ones.
bool using_avx2();

inline float max_of(const float* x, int64_t n) { return kernels().max_of(x, n); }

// out[i] = exp(x[i] - shift) * scale when out is non-null; returns sum_i exp(x[i] - shift) (in float; the
// AVX2 version accumulates in 8 lanes then reduces: deterministic for a given n and CPU level).
inline float exp_shift_sum(const float* x, float shift, float* out, float scale, int64_t n) {
  return kernels().exp_shift_sum(x, shift, out, scale, n);
}

inline void gelu(const float* x, float* out, int64_t n) { kernels().gelu(x, out, n); }

// dinp[i] = dout[i] * gelu'(x[i]); dinp may alias dout.
inline void gelu_backward(const float* x, const float* dout, float* dinp, int64_t n) {
  kernels().gelu_backward(x, dout, dinp, n);
}

}  // namespace vmath
}  // namespace minielm
