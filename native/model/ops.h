// GPT-2 layers, each forward beside its backward (llm.c style). Templated on the scalar type: the engine
// runs float, the gradient checks run the very same code in double against finite differences.
// Backward functions ACCUMULATE (+=) into parameter gradients, so gradient accumulation is free, and
// into input gradients where the comment says so.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/gemm.h"
#include "../core/threads.h"
#include "../core/vmath.h"

// Reductions vectorise only when the compiler may reorder the sum; `omp simd reduction` grants that per loop
// (with -fopenmp-simd, no OpenMP runtime), keeping -ffast-math off everywhere else. The order is fixed at
// compile time, so results stay deterministic.
#define MINIELM_PRAGMA(x) _Pragma(#x)
#define MINIELM_SIMD_SUM(v) MINIELM_PRAGMA(omp simd reduction(+ : v))
#define MINIELM_SIMD_SUM2(a, b) MINIELM_PRAGMA(omp simd reduction(+ : a, b))

namespace minielm {
namespace ops {

// ---- GEMM dispatch: float goes to the fast kernel, double to the reference ----
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                 const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  dgemm_reference(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Rows per thread chunk for row-wise kernels: small enough to split a 1024-row batch across cores.
constexpr int64_t kRowChunk = 16;

// ---- row helpers: generic (double, used by gradient checks) and vectorised float overloads ----
template <typename T>
inline T row_max(const T* x, int64_t n) {
  T m = x[0];
  for (int64_t i = 1; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}
inline float row_max(const float* x, int64_t n) { return vmath::max_of(x, n); }

template <typename T>
inline T row_exp_shift_sum(const T* x, T shift, T* out, T scale, int64_t n) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    T e = std::exp(x[i] - shift);
    sum += e;
    if (out) out[i] = e * scale;
  }
  return sum;
}
inline float row_exp_shift_sum(const float* x, float shift, float* out, float scale, int64_t n) {
  return vmath::exp_shift_sum(x, shift, out, scale, n);
}

template <typename T>
inline T gelu_scalar(T x);
template <typename T>
inline void gelu_span(const T* x, T* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_scalar(x[i]);
}
inline void gelu_span(const float* x, float* out, int64_t n) { vmath::gelu(x, out, n); }

// ---- token + position embedding ----
// out[bt, :] = wte[tok[bt], :] + wpe[pos[bt], :]
template <typename T>
void embedding_forward(T* out, const int32_t* tok, const int32_t* pos, const T* wte, const T* wpe, int64_t BT,
                       int64_t C) {
  parallel_for(BT, kRowChunk, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      const T* e = wte + static_cast<int64_t>(tok[i]) * C;
      const T* p = wpe + static_cast<int64_t>(pos[i]) * C;
      T* o = out + i * C;
      for (int64_t c = 0; c < C; ++c) o[c] = e[c] + p[c];
    }
  });
}

// Serial on purpose: several rows may hit the same token id, and a fixed order keeps sums deterministic.
template <typename T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tok, const int32_t* pos, int64_t BT,
                        int64_t C) {
  for (int64_t i = 0; i < BT; ++i) {
    T* e = dwte + static_cast<int64_t>(tok[i]) * C;
    T* p = dwpe + static_cast<int64_t>(pos[i]) * C;
    const T* d = dout + i * C;
    for (int64_t c = 0; c < C; ++c) {
      e[c] += d[c];
      p[c] += d[c];
    }
  }
}

// ---- LayerNorm (eps 1e-5, as GPT-2) ----
template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* w, const T* b, int64_t BT, int64_t C) {
  parallel_for(BT, kRowChunk, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const T* x = inp + i * C;
      T m = 0;
      MINIELM_SIMD_SUM(m)
      for (int64_t c = 0; c < C; ++c) m += x[c];
      m /= static_cast<T>(C);
      T v = 0;
      MINIELM_SIMD_SUM(v)
      for (int64_t c = 0; c < C; ++c) {
        T d = x[c] - m;
        v += d * d;
      }
      v /= static_cast<T>(C);
      T s = static_cast<T>(1) / std::sqrt(v + static_cast<T>(1e-5));
      T* o = out + i * C;
      for (int64_t c = 0; c < C; ++c) o[c] = (x[c] - m) * s * w[c] + b[c];
      if (mean) mean[i] = m;
      if (rstd) rstd[i] = s;
    }
  });
}

// dinp += LN'(dout); dw, db += per-column sums. Column sums are reduced per thread, then in thread order.
template <typename T>
void layernorm_backward(T* dinp, T* dw, T* db, const T* dout, const T* inp, const T* w, const T* mean,
                        const T* rstd, int64_t BT, int64_t C) {
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), std::max<int64_t>(1, BT / kRowChunk)));
  std::vector<T> partial(static_cast<size_t>(nt) * 2 * C, T(0));
  run_parallel(nt, [&](int tid, int n) {
    int64_t r0 = BT * tid / n, r1 = BT * (tid + 1) / n;
    T* pw = partial.data() + static_cast<size_t>(tid) * 2 * C;
    T* pb = pw + C;
    for (int64_t i = r0; i < r1; ++i) {
      const T* x = inp + i * C;
      const T* d = dout + i * C;
      T* dx = dinp + i * C;
      T m = mean[i], s = rstd[i];
      T dnorm_mean = 0, dnorm_norm_mean = 0;
      MINIELM_SIMD_SUM2(dnorm_mean, dnorm_norm_mean)
      for (int64_t c = 0; c < C; ++c) {
        T norm = (x[c] - m) * s;
        T dn = w[c] * d[c];
        dnorm_mean += dn;
        dnorm_norm_mean += dn * norm;
      }
      dnorm_mean /= static_cast<T>(C);
      dnorm_norm_mean /= static_cast<T>(C);
      for (int64_t c = 0; c < C; ++c) {
        T norm = (x[c] - m) * s;
        T dn = w[c] * d[c];
        pb[c] += d[c];
        pw[c] += norm * d[c];
        dx[c] += (dn - dnorm_mean - norm * dnorm_norm_mean) * s;
      }
    }
  });
  for (int t = 0; t < nt; ++t) {
    const T* pw = partial.data() + static_cast<size_t>(t) * 2 * C;
    const T* pb = pw + C;
    for (int64_t c = 0; c < C; ++c) {
      dw[c] += pw[c];
      db[c] += pb[c];
    }
  }
}

// ---- linear (HF Conv1D layout: W is [IC, OC]) ----
// out[BT, OC] = inp[BT, IC] · W + bias
template <typename T>
void linear_forward(T* out, const T* inp, const T* W, const T* bias, int64_t BT, int64_t IC, int64_t OC) {
  gemm(false, false, BT, OC, IC, T(1), inp, IC, W, OC, T(0), out, OC);
  if (bias) {
    parallel_for(BT, kRowChunk, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        T* o = out + i * OC;
        for (int64_t c = 0; c < OC; ++c) o[c] += bias[c];
      }
    });
  }
}

// dinp = dout · W^T (overwritten, beta 0); dW += inp^T · dout; dbias += column sums of dout.
template <typename T>
void linear_backward(T* dinp, T* dW, T* dbias, const T* dout, const T* inp, const T* W, int64_t BT, int64_t IC,
                     int64_t OC) {
  if (dinp) gemm(false, true, BT, IC, OC, T(1), dout, OC, W, OC, T(0), dinp, IC);
  gemm(true, false, IC, OC, BT, T(1), inp, IC, dout, OC, T(1), dW, OC);
  if (dbias) {
    // Split over columns: each thread owns a column range, rows summed in order (deterministic).
    parallel_for(OC, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t i = 0; i < BT; ++i) {
        const T* d = dout + i * OC;
        for (int64_t c = c0; c < c1; ++c) dbias[c] += d[c];
      }
    });
  }
}

// ---- GELU, tanh approximation (GPT-2's "gelu_new") ----
template <typename T>
inline T gelu_scalar(T x) {
  const T k = static_cast<T>(0.7978845608028654);  // sqrt(2/pi)
  T u = k * (x + static_cast<T>(0.044715) * x * x * x);
  return static_cast<T>(0.5) * x * (static_cast<T>(1) + std::tanh(u));
}

template <typename T>
void gelu_forward(T* out, const T* inp, int64_t n) {
  parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
    gelu_span(inp + i0, out + i0, i1 - i0);
  });
}

// dinp = dout * gelu'(inp) (overwritten; may alias dout).
template <typename T>
void gelu_backward_span(T* dinp, const T* inp, const T* dout, int64_t n) {
  const T k = static_cast<T>(0.7978845608028654);
  for (int64_t i = 0; i < n; ++i) {
    T x = inp[i];
    T u = k * (x + static_cast<T>(0.044715) * x * x * x);
    T th = std::tanh(u);
    T sech2 = static_cast<T>(1) - th * th;
    T grad = static_cast<T>(0.5) * (static_cast<T>(1) + th) +
             static_cast<T>(0.5) * x * sech2 * k * (static_cast<T>(1) + static_cast<T>(3 * 0.044715) * x * x);
    dinp[i] = dout[i] * grad;
  }
}
inline void gelu_backward_span(float* dinp, const float* inp, const float* dout, int64_t n) {
  vmath::gelu_backward(inp, dout, dinp, n);
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, int64_t n) {
  parallel_for(n, 4096, [&](int64_t i0, int64_t i1) { gelu_backward_span(dinp + i0, inp + i0, dout + i0, i1 - i0); });
}

// ---- residual ----
template <typename T>
void residual_forward(T* out, const T* a, const T* b, int64_t n) {
  parallel_for(n, 4096, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
  });
}

// ---- causal multi-head attention with a key padding mask ----
// qkv: [B, T, 3C] (q | k | v, heads contiguous inside each), out: [B, T, C], att: [B, NH, T, T] softmax
// probabilities. Key j is visible to query i when j <= i and key_mask[b, j] != 0 (key_mask may be null).
// A query with no visible key outputs zeros.
template <typename T>
void attention_forward(T* out, T* att, const T* qkv, const uint8_t* key_mask, int64_t B, int64_t Tn, int64_t C,
                       int64_t NH) {
  const int64_t hs = C / NH;
  const T scale = static_cast<T>(1) / std::sqrt(static_cast<T>(hs));
  const int64_t C3 = 3 * C;
  parallel_for(B * NH, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t bh = j0; bh < j1; ++bh) {
      int64_t b = bh / NH, h = bh % NH;
      const uint8_t* km = key_mask ? key_mask + b * Tn : nullptr;
      for (int64_t t = 0; t < Tn; ++t) {
        const T* q = qkv + (b * Tn + t) * C3 + h * hs;
        T* arow = att + (bh * Tn + t) * Tn;
        T maxv = -INFINITY;
        for (int64_t t2 = 0; t2 <= t; ++t2) {
          if (km && !km[t2]) {
            arow[t2] = -INFINITY;
            continue;
          }
          const T* k = qkv + (b * Tn + t2) * C3 + C + h * hs;
          T s = 0;
          MINIELM_SIMD_SUM(s)
          for (int64_t i = 0; i < hs; ++i) s += q[i] * k[i];
          s *= scale;
          arow[t2] = s;
          if (s > maxv) maxv = s;
        }
        T* o = out + (b * Tn + t) * C + h * hs;
        for (int64_t i = 0; i < hs; ++i) o[i] = 0;
        if (maxv == -INFINITY) {
          for (int64_t t2 = 0; t2 < Tn; ++t2) arow[t2] = 0;
          continue;
        }
        T sum = 0;
        for (int64_t t2 = 0; t2 <= t; ++t2) {
          T e = arow[t2] == -INFINITY ? T(0) : std::exp(arow[t2] - maxv);
          arow[t2] = e;
          sum += e;
        }
        T inv = static_cast<T>(1) / sum;
        for (int64_t t2 = 0; t2 <= t; ++t2) arow[t2] *= inv;
        for (int64_t t2 = t + 1; t2 < Tn; ++t2) arow[t2] = 0;
        for (int64_t t2 = 0; t2 <= t; ++t2) {
          T p = arow[t2];
          if (p == T(0)) continue;
          const T* v = qkv + (b * Tn + t2) * C3 + 2 * C + h * hs;
          for (int64_t i = 0; i < hs; ++i) o[i] += p * v[i];
        }
      }
    }
  });
}

// dqkv is overwritten. Each (b, h) touches only its own slice, so threads never race.
template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* att, const T* qkv, int64_t B, int64_t Tn, int64_t C,
                        int64_t NH) {
  const int64_t hs = C / NH;
  const T scale = static_cast<T>(1) / std::sqrt(static_cast<T>(hs));
  const int64_t C3 = 3 * C;
  parallel_for(B * NH, 1, [&](int64_t j0, int64_t j1) {
    std::vector<T> dp(static_cast<size_t>(Tn));
    for (int64_t bh = j0; bh < j1; ++bh) {
      int64_t b = bh / NH, h = bh % NH;
      for (int64_t t = 0; t < Tn; ++t)
        for (int64_t i = 0; i < hs; ++i) {
          T* base = dqkv + (b * Tn + t) * C3 + h * hs;
          base[i] = 0;
          base[C + i] = 0;
          base[2 * C + i] = 0;
        }
      for (int64_t t = 0; t < Tn; ++t) {
        const T* arow = att + (bh * Tn + t) * Tn;
        const T* d = dout + (b * Tn + t) * C + h * hs;
        const T* q = qkv + (b * Tn + t) * C3 + h * hs;
        T* dq = dqkv + (b * Tn + t) * C3 + h * hs;
        T dot = 0;
        for (int64_t t2 = 0; t2 <= t; ++t2) {
          T p = arow[t2];
          if (p == T(0)) {
            dp[t2] = 0;
            continue;
          }
          const T* v = qkv + (b * Tn + t2) * C3 + 2 * C + h * hs;
          T* dv = dqkv + (b * Tn + t2) * C3 + 2 * C + h * hs;
          T s = 0;
          MINIELM_SIMD_SUM(s)
          for (int64_t i = 0; i < hs; ++i) {
            s += d[i] * v[i];
            dv[i] += p * d[i];
          }
          dp[t2] = s;
          dot += p * s;
        }
        for (int64_t t2 = 0; t2 <= t; ++t2) {
          T p = arow[t2];
          if (p == T(0)) continue;
          T ds = p * (dp[t2] - dot) * scale;
          const T* k = qkv + (b * Tn + t2) * C3 + C + h * hs;
          T* dk = dqkv + (b * Tn + t2) * C3 + C + h * hs;
          for (int64_t i = 0; i < hs; ++i) {
            dq[i] += ds * k[i];
            dk[i] += ds * q[i];
          }
        }
      }
    }
  });
}

// ---- fused softmax + cross-entropy with a per-token loss weight ----
// For each row with weight w != 0: loss_i = logsumexp(logits_i) - logits_i[target_i].
// Returns sum_i w_i * loss_i. When dlogits is non-null it receives (softmax - onehot) * w_i * grad_scale
// (it may alias logits: the row is read fully before it is written). Rows with weight 0 get zero gradient.
template <typename T>
double cross_entropy_forward_backward(T* dlogits, T* losses, const T* logits, const int32_t* targets,
                                      const T* weights, int64_t BT, int64_t V, T grad_scale) {
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), std::max<int64_t>(1, BT / 4)));
  std::vector<double> partial(static_cast<size_t>(nt), 0.0);
  run_parallel(nt, [&](int tid, int n) {
    int64_t r0 = BT * tid / n, r1 = BT * (tid + 1) / n;
    double acc = 0;
    for (int64_t i = r0; i < r1; ++i) {
      const T* x = logits + i * V;
      T w = weights ? weights[i] : T(1);
      if (w == T(0)) {
        if (losses) losses[i] = 0;
        if (dlogits) std::fill(dlogits + i * V, dlogits + (i + 1) * V, T(0));
        continue;
      }
      T maxv = row_max(x, V);
      T sum = row_exp_shift_sum(x, maxv, static_cast<T*>(nullptr), T(1), V);
      T lse = maxv + std::log(sum);
      T loss = lse - x[targets[i]];
      if (losses) losses[i] = loss;
      acc += static_cast<double>(w) * static_cast<double>(loss);
      if (dlogits) {
        T* g = dlogits + i * V;
        T sc = w * grad_scale;
        int32_t tgt = targets[i];
        row_exp_shift_sum(x, maxv, g, sc / sum, V);
        g[tgt] -= sc;
      }
    }
    partial[tid] = acc;
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace ops
}  // namespace minielm
