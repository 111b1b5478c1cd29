// Fused token-level distillation loss: student and teacher logits -> tempered softmaxes -> divergence ->
// gradient with respect to the student's logits, written over the student's logits in place. Templated on
// the scalar like ops.h: float runs the AVX2 passes (on CPUs with AVX2, else the scalar ones), double runs the
// scalar passes for the gradient checks.
//
// Per row (token) i with weight w_i and temperature tau: a = z_S / tau, b = z_T / tau, p_S = softmax(a),
// p_T = softmax(b), and the divergence D_i is one of
//   reverse KL  KL(p_S || p_T)            (the paper's equation 1, the default)
//   forward KL  KL(p_T || p_S)
//   JSD(beta)   beta KL(p_T || m) + (1 - beta) KL(p_S || m),  m = beta p_T + (1 - beta) p_S   (TRL's GKD form)
// JSD(beta) itself tends to 0 at both ends; divided by beta (resp. 1 - beta) it tends to the forward
// (resp. reverse) KL, so beta = 0 and beta = 1 are defined as those two limits, like TRL does.
// The loss is the divergence at temperature tau, not multiplied by tau^2: callers who want Hinton's
// scaling raise the learning rate instead. With ce_weight alpha the row loss is
// (1 - alpha) D_i + alpha CE_i, CE_i = the untempered cross-entropy against the ground-truth target.
//
// Memory: the kernel keeps O(1) scalars per row. Each row is read three times (max, sums, gradient), but
// a row of 8192 floats stays in L1/L2 between the passes, so DRAM sees one read of each buffer and one
// write of the student's. All sums are taken relative to the row maxima so that the divergence, which
// is small near convergence, is not the difference of two large numbers.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/threads.h"
#include "../core/vmath.h"
#include "../model/ops.h"

namespace minielm {
namespace loss {

enum class Divergence { ReverseKl = 0, ForwardKl = 1, Jsd = 2 };

struct DistillOptions {
  Divergence divergence = Divergence::ReverseKl;
  double beta = 0.5;         // JSD mixture weight of the teacher, in [0, 1]
  double temperature = 1.0;  // > 0
  double ce_weight = 0.0;    // alpha in [0, 1]
};

// Weighted sums over the rows (divide by the total weight for means).
struct DistillSums {
  double loss = 0;        // sum_i w_i ((1 - alpha) D_i + alpha CE_i)
  double divergence = 0;  // sum_i w_i D_i
  double ce = 0;          // sum_i w_i CE_i (0 unless alpha > 0)
};

namespace detail {

struct KlSums {
  double sa = 0, sb = 0;  // sum e^{a - ma}, sum e^{b - mb}
  double xa = 0;          // sum e^{a - ma} (da - db), da = a - ma, db = b - mb
  double xb = 0;          // sum e^{b - mb} (db - da)
};

// log(1 + x) for x in [0, 1] through 2 atanh(x / (2 + x)); the odd series up to the 13th power is exact
// to ~1e-8 there, enough for float and it avoids a general log (the JSD mixture only needs this range).
template <typename T>
inline T log1p_unit(T x) {
  T s = x / (T(2) + x), s2 = s * s;
  T p = T(1) / T(13);
  p = p * s2 + T(1) / T(11);
  p = p * s2 + T(1) / T(9);
  p = p * s2 + T(1) / T(7);
  p = p * s2 + T(1) / T(5);
  p = p * s2 + T(1) / T(3);
  p = p * s2 + T(1);
  return T(2) * s * p;
}
inline double log1p_unit(double x) { return std::log1p(x); }

// log(e^u + e^v) without overflow or underflow to -inf.
template <typename T>
inline T log_add_exp(T u, T v) {
  T hi = u > v ? u : v, lo = u > v ? v : u;
  return hi + log1p_unit(static_cast<T>(std::exp(lo - hi)));
}

// ---- generic scalar passes (double for the checks; float tails) ----

template <typename T>
KlSums kl_sums(const T* s, const T* t, int64_t n, T it, T ma, T mb) {
  KlSums r;
  for (int64_t i = 0; i < n; ++i) {
    T da = s[i] * it - ma, db = t[i] * it - mb;
    T ea = std::exp(da), eb = std::exp(db);
    r.sa += ea;
    r.sb += eb;
    r.xa += ea * (da - db);
    r.xb += eb * (db - da);
  }
  return r;
}

// JSD sums: kt = KL(p_T || m), ks = KL(p_S || m). lsa, lsb are log of the row sums; lb, l1b = log(beta),
// log(1 - beta).
template <typename T>
void jsd_sums(const T* s, const T* t, int64_t n, T it, T ma, T mb, T lsa, T lsb, T lb, T l1b, double* kt,
              double* ks) {
  double at = 0, as = 0;
  for (int64_t i = 0; i < n; ++i) {
    T ls = s[i] * it - ma - lsa, lt = t[i] * it - mb - lsb;
    T lm = log_add_exp(lb + lt, l1b + ls);
    at += std::exp(lt) * (lt - lm);
    as += std::exp(ls) * (ls - lm);
  }
  *kt = at;
  *ks = as;
}

// g = ka e^{da} (da - db - c) + kz e^{s - ms}   (reverse KL plus the optional CE softmax term)
template <typename T>
void grad_reverse_kl(T* g, const T* s, const T* t, int64_t n, T it, T ma, T mb, T ka, T c, T kz, T ms) {
  for (int64_t i = 0; i < n; ++i) {
    T si = s[i], da = si * it - ma, db = t[i] * it - mb;
    T r = ka * std::exp(da) * (da - db - c);
    if (kz != T(0)) r += kz * std::exp(si - ms);
    g[i] = r;
  }
}

// g = ka e^{da} - kb e^{db} + kz e^{s - ms}   (forward KL: (p_S - p_T) / tau)
template <typename T>
void grad_forward_kl(T* g, const T* s, const T* t, int64_t n, T it, T ma, T mb, T ka, T kb, T kz, T ms) {
  for (int64_t i = 0; i < n; ++i) {
    T si = s[i], da = si * it - ma, db = t[i] * it - mb;
    T r = ka * std::exp(da) - kb * std::exp(db);
    if (kz != T(0)) r += kz * std::exp(si - ms);
    g[i] = r;
  }
}

// g = kj p_S (log p_S - log m - ks) + kz e^{s - ms}   (JSD: d/da of (1 - beta) KL(p_S||m) + beta KL(p_T||m))
template <typename T>
void grad_jsd(T* g, const T* s, const T* t, int64_t n, T it, T ma, T mb, T lsa, T lsb, T lb, T l1b, T kj, T ks,
              T kz, T ms) {
  for (int64_t i = 0; i < n; ++i) {
    T si = s[i], ls = si * it - ma - lsa, lt = t[i] * it - mb - lsb;
    T lm = log_add_exp(lb + lt, l1b + ls);
    T r = kj * std::exp(ls) * (ls - lm - ks);
    if (kz != T(0)) r += kz * std::exp(si - ms);
    g[i] = r;
  }
}

// ---- float rows: the AVX2 passes (loss/distill_avx2.cc) when the CPU has them, then the scalar tail ----
namespace avx2 {
bool built();
int64_t kl_sums(KlSums* out, const float* s, const float* t, int64_t n, float it, float ma, float mb);
int64_t jsd_sums(const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa, float lsb,
                 float lb, float l1b, double* kt, double* ks);
int64_t grad_reverse_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb, float ka,
                        float c, float kz, float ms);
int64_t grad_forward_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb, float ka,
                        float kb, float kz, float ms);
int64_t grad_jsd(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa,
                 float lsb, float lb, float l1b, float kj, float ks, float kz, float ms);
}  // namespace avx2

inline bool use_avx2() { return vmath::using_avx2() && avx2::built(); }

inline KlSums kl_sums(const float* s, const float* t, int64_t n, float it, float ma, float mb) {
  KlSums v;
  const int64_t i = use_avx2() ? avx2::kl_sums(&v, s, t, n, it, ma, mb) : 0;
  KlSums tail = kl_sums<float>(s + i, t + i, n - i, it, ma, mb);
  tail.sa += v.sa;
  tail.sb += v.sb;
  tail.xa += v.xa;
  tail.xb += v.xb;
  return tail;
}

inline void jsd_sums(const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa, float lsb,
                     float lb, float l1b, double* kt, double* ks) {
  double vt = 0, vs = 0;
  const int64_t i = use_avx2() ? avx2::jsd_sums(s, t, n, it, ma, mb, lsa, lsb, lb, l1b, &vt, &vs) : 0;
  jsd_sums<float>(s + i, t + i, n - i, it, ma, mb, lsa, lsb, lb, l1b, kt, ks);
  *kt += vt;
  *ks += vs;
}

inline void grad_reverse_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb,
                            float ka, float c, float kz, float ms) {
  const int64_t i = use_avx2() ? avx2::grad_reverse_kl(g, s, t, n, it, ma, mb, ka, c, kz, ms) : 0;
  grad_reverse_kl<float>(g + i, s + i, t + i, n - i, it, ma, mb, ka, c, kz, ms);
}

inline void grad_forward_kl(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb,
                            float ka, float kb, float kz, float ms) {
  const int64_t i = use_avx2() ? avx2::grad_forward_kl(g, s, t, n, it, ma, mb, ka, kb, kz, ms) : 0;
  grad_forward_kl<float>(g + i, s + i, t + i, n - i, it, ma, mb, ka, kb, kz, ms);
}

inline void grad_jsd(float* g, const float* s, const float* t, int64_t n, float it, float ma, float mb, float lsa,
                     float lsb, float lb, float l1b, float kj, float ks, float kz, float ms) {
  const int64_t i = use_avx2() ? avx2::grad_jsd(g, s, t, n, it, ma, mb, lsa, lsb, lb, l1b, kj, ks, kz, ms) : 0;
  grad_jsd<float>(g + i, s + i, t + i, n - i, it, ma, mb, lsa, lsb, lb, l1b, kj, ks, kz, ms);
}

struct RowOut {
  double divergence = 0, ce = 0;
};

// One row. g may alias s (in place: every pass reads the row before the last one writes it) or be null
// (loss only). gw = w * grad_scale, the factor on this row's gradient.
template <typename T>
RowOut distill_row(T* g, const T* s, const T* t, int32_t target, T gw, int64_t V, const DistillOptions& o) {
  RowOut out;
  Divergence kind = o.divergence;
  if (kind == Divergence::Jsd && o.beta <= 0) kind = Divergence::ForwardKl;
  if (kind == Divergence::Jsd && o.beta >= 1) kind = Divergence::ReverseKl;
  const T tau = static_cast<T>(o.temperature), it = T(1) / tau;
  const double alpha = o.ce_weight;
  const T ms = ops::row_max(s, V), mt = ops::row_max(t, V);
  const T ma = ms * it, mb = mt * it;  // a positive scale keeps the argmax
  KlSums k = kl_sums(s, t, V, it, ma, mb);
  const double lsa = std::log(k.sa), lsb = std::log(k.sb);
  double kt = 0, ks = 0;
  const T lb = static_cast<T>(std::log(o.beta)), l1b = static_cast<T>(std::log1p(-o.beta));
  switch (kind) {
    case Divergence::ReverseKl: out.divergence = k.xa / k.sa - lsa + lsb; break;
    case Divergence::ForwardKl: out.divergence = k.xb / k.sb - lsb + lsa; break;
    case Divergence::Jsd:
      jsd_sums(s, t, V, it, ma, mb, static_cast<T>(lsa), static_cast<T>(lsb), lb, l1b, &kt, &ks);
      out.divergence = o.beta * kt + (1 - o.beta) * ks;
      break;
  }
  double sz = 1;
  if (alpha > 0) {
    sz = ops::row_exp_shift_sum(s, ms, static_cast<T*>(nullptr), T(1), V);
    out.ce = std::log(sz) + static_cast<double>(ms) - static_cast<double>(s[target]);
  }
  if (!g) return out;
  const double kd = static_cast<double>(gw) * (1 - alpha) / static_cast<double>(tau);
  const T kz = static_cast<T>(alpha > 0 ? static_cast<double>(gw) * alpha / sz : 0.0);
  switch (kind) {
    case Divergence::ReverseKl:
      grad_reverse_kl(g, s, t, V, it, ma, mb, static_cast<T>(kd / k.sa), static_cast<T>(k.xa / k.sa), kz, ms);
      break;
    case Divergence::ForwardKl:
      grad_forward_kl(g, s, t, V, it, ma, mb, static_cast<T>(kd / k.sa), static_cast<T>(kd / k.sb), kz, ms);
      break;
    case Divergence::Jsd:
      grad_jsd(g, s, t, V, it, ma, mb, static_cast<T>(lsa), static_cast<T>(lsb), lb, l1b,
               static_cast<T>(kd * (1 - o.beta)), static_cast<T>(ks), kz, ms);
      break;
  }
  if (alpha > 0) g[target] -= static_cast<T>(static_cast<double>(gw) * alpha);
  return out;
}

}  // namespace detail

// The fused kernel over `rows` rows of V logits. dstudent receives the gradient of
// grad_scale * sum_i w_i ((1 - alpha) D_i + alpha CE_i) with respect to the student logits; it may alias
// student (the engine's in-place use) or be null (loss only). Rows with weight 0 get a zero gradient and
// no loss. targets is read only when ce_weight > 0 (and then only for rows with weight != 0).
// Per-row divergences go to row_div when non-null. Rows are split statically over the pool: deterministic.
template <typename T>
DistillSums distill_forward_backward(T* dstudent, const T* student, const T* teacher, const int32_t* targets,
                                     const T* weights, int64_t rows, int64_t V, const DistillOptions& o, T grad_scale,
                                     double* row_div = nullptr) {
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), std::max<int64_t>(1, rows / 4)));
  std::vector<DistillSums> partial(static_cast<size_t>(nt));
  run_parallel(nt, [&](int tid, int n) {
    int64_t r0 = rows * tid / n, r1 = rows * (tid + 1) / n;
    DistillSums acc;
    for (int64_t i = r0; i < r1; ++i) {
      T w = weights ? weights[i] : T(1);
      if (w == T(0)) {
        if (dstudent) std::fill(dstudent + i * V, dstudent + (i + 1) * V, T(0));
        if (row_div) row_div[i] = 0;
        continue;
      }
      int32_t tgt = (o.ce_weight > 0 && targets) ? targets[i] : 0;
      detail::RowOut r = detail::distill_row(dstudent ? dstudent + i * V : static_cast<T*>(nullptr), student + i * V,
                                             teacher + i * V, tgt, w * grad_scale, V, o);
      const double wd = static_cast<double>(w);
      acc.divergence += wd * r.divergence;
      acc.ce += wd * r.ce;
      acc.loss += wd * ((1 - o.ce_weight) * r.divergence + o.ce_weight * r.ce);
      if (row_div) row_div[i] = r.divergence;
    }
    partial[tid] = acc;
  });
  DistillSums total;
  for (const auto& p : partial) {
    total.loss += p.loss;
    total.divergence += p.divergence;
    total.ce += p.ce;
  }
  return total;
}

}  // namespace loss
}  // namespace minielm
