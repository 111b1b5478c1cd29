// Alignment losses on bf16 logits: the CUDA twins of native/loss/distill.h (token-level distillation),
// dpo.h (sequence log-probabilities and their backward) and grpo.h (per-token log-probabilities).
// Semantics: native/cuda/kernels.cuh; the CPU headers are the references (same formulas, same order of the
// passes, sums relative to the row maxima).
//
// Each softmax row is handled by a "row group": a warp for V <= 1024, else a block of 256 or 1024 threads,
// grid-stride over the rows (a block's loss sums go to the device doubles with one atomic per group at the
// end). Element math is fp32; the per-row sums are reduced across the group in double. Loads are vectorised
// per row (scalar head up to the first 16-byte boundary, 16-byte body, scalar tail), so an odd V keeps the
// vector body on every row; when two rows (student / teacher / gradient) sit at different offsets modulo
// 16 bytes the row falls back to scalar loads. Gradients may overwrite the logits in place: every pass
// reading the row ends in a group barrier before the pass that writes it, and in that pass each element is
// read, then written, by one thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.cuh"
#include "rows.cuh"

namespace minielm {
namespace cuda {
namespace {

using namespace detail;  // rows.cuh: checks, sm_count, row groups, pack8 / unpack8

// ---------------------------------------------------------------------------------------------------------
// Row-group reductions and two-row passes used only here (the shared machinery: rows.cuh).

// Max of two values over the group (`sh` holds 64 floats); every member gets both.
template <int G>
__device__ __forceinline__ void group_max2(float& a, float& b, float* sh) {
  for (int o = 16; o > 0; o >>= 1) {
    a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    b = fmaxf(b, __shfl_xor_sync(0xffffffffu, b, o));
  }
  if (G > 32) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = a, sh[32 + warp] = b;
    __syncthreads();
    a = lane < G / 32 ? sh[lane] : kNegBig;
    b = lane < G / 32 ? sh[32 + lane] : kNegBig;
    for (int o = 16; o > 0; o >>= 1) {
      a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
      b = fmaxf(b, __shfl_xor_sync(0xffffffffu, b, o));
    }
  }
}
// Sums N doubles over the group (`sh` holds N * 32 doubles); every member gets the same sums.
template <int G, int N>
__device__ __forceinline__ void group_sum_d(double (&v)[N], double* sh) {
#pragma unroll
  for (int k = 0; k < N; ++k) v[k] = warp_sum(v[k]);
  if (G > 32) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) {
#pragma unroll
      for (int k = 0; k < N; ++k) sh[k * 32 + warp] = v[k];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < N; ++k) {
      v[k] = warp_sum(lane < G / 32 ? sh[k * 32 + lane] : 0.0);
    }
  }
}

// f(j, x[j], y[j]).
template <int G, class F>
__device__ __forceinline__ void row_visit2(const bf16* x, const bf16* y, int n, F&& f) {
  const int r = Grp<G>::rank();
  if (!same_phase(x, y)) {
    for (int j = r; j < n; j += G) f(j, to_f(x[j]), to_f(y[j]));
    return;
  }
  const int h = head_of(x, n);
  if (r < h) f(r, to_f(x[r]), to_f(y[r]));
  const int nv = (n - h) >> 3;
  const uint4* xv = reinterpret_cast<const uint4*>(x + h);
  const uint4* yv = reinterpret_cast<const uint4*>(y + h);
#pragma unroll 2
  for (int k = r; k < nv; k += G) {
    float a[8], b[8];
    unpack8(xv[k], a);
    unpack8(yv[k], b);
#pragma unroll
    for (int e = 0; e < 8; ++e) f(h + 8 * k + e, a[e], b[e]);
  }
  for (int j = h + 8 * nv + r; j < n; j += G) f(j, to_f(x[j]), to_f(y[j]));
}

// out[j] = f(j, x[j], y[j]) (out may alias x or y).
template <int G, class F>
__device__ __forceinline__ void row_map2(const bf16* x, const bf16* y, bf16* out, int n, F&& f) {
  const int r = Grp<G>::rank();
  if (!same_phase(x, y) || !same_phase(x, out)) {
    for (int j = r; j < n; j += G) out[j] = to_bf(f(j, to_f(x[j]), to_f(y[j])));
    return;
  }
  const int h = head_of(x, n);
  if (r < h) out[r] = to_bf(f(r, to_f(x[r]), to_f(y[r])));
  const int nv = (n - h) >> 3;
  const uint4* xv = reinterpret_cast<const uint4*>(x + h);
  const uint4* yv = reinterpret_cast<const uint4*>(y + h);
  uint4* ov = reinterpret_cast<uint4*>(out + h);
  for (int k = r; k < nv; k += 2 * G) {
    const bool two = k + G < nv;
    const uint4 x0 = xv[k], y0 = yv[k];
    const uint4 x1 = two ? xv[k + G] : make_uint4(0u, 0u, 0u, 0u);
    const uint4 y1 = two ? yv[k + G] : make_uint4(0u, 0u, 0u, 0u);
    float a[8], b[8];
    unpack8(x0, a);
    unpack8(y0, b);
#pragma unroll
    for (int e = 0; e < 8; ++e) a[e] = f(h + 8 * k + e, a[e], b[e]);
    ov[k] = pack8(a);
    if (two) {
      unpack8(x1, a);
      unpack8(y1, b);
#pragma unroll
      for (int e = 0; e < 8; ++e) a[e] = f(h + 8 * (k + G) + e, a[e], b[e]);
      ov[k + G] = pack8(a);
    }
  }
  for (int j = h + 8 * nv + r; j < n; j += G) out[j] = to_bf(f(j, to_f(x[j]), to_f(y[j])));
}

// ---------------------------------------------------------------------------------------------------------
// Distillation (distill.h's distill_row, pass for pass).

enum Kind { kReverseKl = 0, kForwardKl = 1, kJsd = 2 };

struct DistillArgs {
  int kind;           // after the beta limits: JSD with beta 0 / 1 is forward / reverse KL
  float it;           // 1 / tau, in float as the CPU (T(1) / tau)
  float lb, l1b;      // log(beta), log(1 - beta) (JSD)
  float grad_scale;
  bool ce;            // ce_weight > 0
  double alpha, beta, tau;
};

// log(e^u + e^v) without overflow.
__device__ __forceinline__ float log_add_exp(float u, float v) {
  const float hi = fmaxf(u, v), lo = fminf(u, v);
  return hi + log1pf(__expf(lo - hi));
}

template <int G>
__global__ void __launch_bounds__(Grp<G>::kBlock) distill_kernel(bf16* dst, double* sums, const bf16* student,
                                                                 const bf16* teacher, const int32_t* targets,
                                                                 const float* weights, int64_t rows, int V,
                                                                 DistillArgs p) {
  __shared__ float shf[64];
  __shared__ double shd[5 * 32];
  const int r = Grp<G>::rank();
  const float it = p.it;
  double acc_loss = 0.0, acc_div = 0.0, acc_ce = 0.0;
  bool any = false;
  for (int64_t row = Grp<G>::first_row(); row < rows; row += Grp<G>::row_stride()) {
    const float w = weights ? weights[row] : 1.f;
    bf16* g = dst ? dst + row * V : nullptr;
    if (w == 0.f) {
      if (g) row_zero<G>(g, V);
      continue;
    }
    const bf16* s = student + row * V;
    const bf16* t = teacher + row * V;
    const int tgt = p.ce && targets ? targets[row] : 0;
    float st = 0.f;  // the student's untempered target logit (rank 0 only), read before any write
    if (p.ce && r == 0) st = tgt >= 0 && tgt < V ? to_f(s[tgt]) : NAN;

    // Pass 1: row maxima (a positive scale keeps the argmax: ma = ms / tau).
    float ms = kNegBig, mt = kNegBig;
    row_visit2<G>(s, t, V, [&](int, float a, float b) {
      ms = fmaxf(ms, a);
      mt = fmaxf(mt, b);
    });
    group_max2<G>(ms, mt, shf);
    const float ma = ms * it, mb = mt * it;

    // Pass 2: sums relative to the maxima (float per member, double across the group).
    float sa = 0.f, sb = 0.f, xa = 0.f, xb = 0.f, sz = 0.f;
    const bool ce = p.ce;
    row_visit2<G>(s, t, V, [&](int, float a, float b) {
      const float da = a * it - ma, db = b * it - mb;
      const float ea = __expf(da), eb = __expf(db);
      sa += ea;
      sb += eb;
      xa += ea * (da - db);
      xb += eb * (db - da);
      if (ce) sz += __expf(a - ms);
    });
    double red[5] = {sa, sb, xa, xb, sz};
    group_sum_d<G, 5>(red, shd);
    const double Sa = red[0], Sb = red[1], Xa = red[2], Xb = red[3], Sz = ce ? red[4] : 1.0;
    const double lsa = log(Sa), lsb = log(Sb);
    const float lsaf = static_cast<float>(lsa), lsbf = static_cast<float>(lsb);

    double D = 0.0, ks = 0.0;
    if (p.kind == kReverseKl) {
      D = Xa / Sa - lsa + lsb;
    } else if (p.kind == kForwardKl) {
      D = Xb / Sb - lsb + lsa;
    } else {
      // Pass 3 (JSD): kt = KL(p_T || m), ks = KL(p_S || m).
      const float lb = p.lb, l1b = p.l1b;
      float at = 0.f, as = 0.f;
      row_visit2<G>(s, t, V, [&](int, float a, float b) {
        const float ls = a * it - ma - lsaf, lt = b * it - mb - lsbf;
        const float lm = log_add_exp(lb + lt, l1b + ls);
        at += __expf(lt) * (lt - lm);
        as += __expf(ls) * (ls - lm);
      });
      double red2[2] = {at, as};
      group_sum_d<G, 2>(red2, shd);
      ks = red2[1];
      D = p.beta * red2[0] + (1 - p.beta) * ks;
    }
    Grp<G>::sync();  // all reads of the row (st included) before the gradient pass writes it

    if (r == 0) {
      const double ce_v = ce ? log(Sz) + static_cast<double>(ms) - static_cast<double>(st) : 0.0;
      const double wd = static_cast<double>(w);
      acc_div += wd * D;
      acc_ce += wd * ce_v;
      acc_loss += wd * ((1 - p.alpha) * D + p.alpha * ce_v);
      any = true;
    }
    if (!g) continue;

    // Gradient pass: d/dz_S of gw ((1 - alpha) D + alpha CE), gw = w * grad_scale.
    const float gw = w * p.grad_scale;
    const double kd = static_cast<double>(gw) * (1 - p.alpha) / p.tau;
    const float kz = ce ? static_cast<float>(static_cast<double>(gw) * p.alpha / Sz) : 0.f;
    const float kce = ce ? static_cast<float>(static_cast<double>(gw) * p.alpha) : 0.f;
    if (p.kind == kReverseKl) {
      const float ka = static_cast<float>(kd / Sa), c = static_cast<float>(Xa / Sa);
      row_map2<G>(s, t, g, V, [&](int j, float a, float b) {
        const float da = a * it - ma, db = b * it - mb;
        float v = ka * __expf(da) * (da - db - c);
        if (ce) {
          v += kz * __expf(a - ms);
          if (j == tgt) v -= kce;
        }
        return v;
      });
    } else if (p.kind == kForwardKl) {
      const float ka = static_cast<float>(kd / Sa), kb = static_cast<float>(kd / Sb);
      row_map2<G>(s, t, g, V, [&](int j, float a, float b) {
        const float da = a * it - ma, db = b * it - mb;
        float v = ka * __expf(da) - kb * __expf(db);
        if (ce) {
          v += kz * __expf(a - ms);
          if (j == tgt) v -= kce;
        }
        return v;
      });
    } else {
      const float kj = static_cast<float>(kd * (1 - p.beta)), ksf = static_cast<float>(ks);
      const float lb = p.lb, l1b = p.l1b;
      row_map2<G>(s, t, g, V, [&](int j, float a, float b) {
        const float ls = a * it - ma - lsaf, lt = b * it - mb - lsbf;
        const float lm = log_add_exp(lb + lt, l1b + ls);
        float v = kj * __expf(ls) * (ls - lm - ksf);
        if (ce) {
          v += kz * __expf(a - ms);
          if (j == tgt) v -= kce;
        }
        return v;
      });
    }
  }
  if (sums && r == 0 && any) {
    atomicAdd(sums + 0, acc_loss);
    atomicAdd(sums + 1, acc_div);
    atomicAdd(sums + 2, acc_ce);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Log-probabilities (dpo.h, grpo.h).

// Row logsumexp of rows with weight != 0. MODE 0 (sequence_logps): row_lse written on weighted rows only
// (left untouched elsewhere, as the CPU). MODE 1 (token_logps): also logp = z[target] - lse; weight-0 rows
// get logp = 0 and row_lse = 0.
template <int G, int MODE>
__global__ void __launch_bounds__(Grp<G>::kBlock) row_lse_kernel(float* logp, float* row_lse, const bf16* logits,
                                                                 const int32_t* targets, const float* weights,
                                                                 int64_t rows, int V) {
  __shared__ float shm[32], shs[32];
  const int r = Grp<G>::rank();
  for (int64_t row = Grp<G>::first_row(); row < rows; row += Grp<G>::row_stride()) {
    const float w = weights ? weights[row] : 1.f;
    if (w == 0.f) {
      if (MODE == 1 && r == 0) {
        logp[row] = 0.f;
        row_lse[row] = 0.f;
      }
      continue;
    }
    const bf16* x = logits + row * V;
    float xt = 0.f;
    if (MODE == 1 && r == 0) {
      const int tgt = targets[row];
      xt = tgt >= 0 && tgt < V ? to_f(x[tgt]) : NAN;
    }
    float m = kNegBig, s = 0.f;
    row_visit<G>(x, V, [&](int, float v) { online_add(m, s, v); });
    group_softmax<G>(m, s, shm, shs);
    if (r == 0) {
      row_lse[row] = m + logf(s);
      if (MODE == 1)
        logp[row] = static_cast<float>(static_cast<double>(xt) - static_cast<double>(m) - log(static_cast<double>(s)));
    }
  }
}

// seq_logp[b] = sum_t w[b,t] (z[b,t][target] - row_lse[b,t]), one block per sequence, summed in a fixed
// order (deterministic, written not accumulated).
__global__ void __launch_bounds__(256) seq_sum_kernel(double* seq_logp, const float* row_lse, const bf16* logits,
                                                      const int32_t* targets, const float* weights, int64_t B, int T,
                                                      int V) {
  __shared__ double sh[32];
  for (int64_t b = blockIdx.x; b < B; b += gridDim.x) {
    double acc = 0.0;
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
      const int64_t row = b * T + t;
      const float w = weights ? weights[row] : 1.f;
      if (w == 0.f) continue;
      const int tgt = targets[row];
      const double xt = tgt >= 0 && tgt < V ? static_cast<double>(to_f(logits[row * V + tgt])) : static_cast<double>(NAN);
      acc += static_cast<double>(w) * (xt - static_cast<double>(row_lse[row]));
    }
    double v[1] = {acc};
    group_sum_d<256, 1>(v, sh);
    if (threadIdx.x == 0) seq_logp[b] = v[0];
  }
}

// dlogits[row] = c (onehot(target) - softmax), c = w[row] * coef[row / T] (weights null: w = 1); rows with
// w == 0 or c == 0 get zeros without reading row_lse. One pass: read, write.
template <int G>
__global__ void __launch_bounds__(Grp<G>::kBlock) logps_backward_kernel(bf16* dlogits, const bf16* logits,
                                                                        const int32_t* targets, const float* weights,
                                                                        const float* row_lse, const float* coef,
                                                                        int64_t rows, int T, int V) {
  for (int64_t row = Grp<G>::first_row(); row < rows; row += Grp<G>::row_stride()) {
    bf16* g = dlogits + row * V;
    const float w = weights ? weights[row] : 1.f;
    const float c = w == 0.f ? 0.f : w * coef[row / T];
    if (c == 0.f) {
      row_zero<G>(g, V);
      continue;
    }
    const float lse = row_lse[row];
    const int tgt = targets[row];
    const float nc = -c;
    row_map<G>(logits + row * V, g, V, [&](int j, float v) {
      const float e = __expf(v - lse) * nc;
      return j == tgt ? e + c : e;
    });
  }
}

// The launch behind sequence_logps_backward and token_logps_backward (sizes already checked by the caller `fn`):
// the pointer checks, then one row group per row of the [rows / T, T, V] logits.
void launch_logps_backward(const char* fn, bf16* dlogits, const bf16* logits, const int32_t* targets,
                           const float* weights, const float* row_lse, const float* coef, int64_t rows, int64_t T,
                           int64_t V, cudaStream_t stream) {
  check_ptr(fn, "dlogits", dlogits);
  check_ptr(fn, "logits", logits);
  check_ptr(fn, "targets", targets);
  check_ptr(fn, "row_lse", row_lse);
  check_ptr(fn, "coef", coef);
  dispatch_group(V, [&](auto tag) {
    constexpr int G = decltype(tag)::value;
    logps_backward_kernel<G><<<row_grid<G>(rows), Grp<G>::kBlock, 0, stream>>>(
        dlogits, logits, targets, weights, row_lse, coef, rows, static_cast<int>(T), static_cast<int>(V));
  });
  MINIELM_CUDA_LAUNCHED(fn);
}

}  // namespace

// =========================================================================================================
// Launchers.

void distill(bf16* dstudent, double* sums, const bf16* student, const bf16* teacher, const int32_t* targets,
             const float* weights, int64_t rows, int64_t V, int divergence, float beta, float temperature,
             float ce_weight, float grad_scale, cudaStream_t stream) {
  check_size("distill", "rows", rows);
  check_size("distill", "V", V);
  if (divergence < 0 || divergence > 2)
    bad_arg("distill", "divergence must be 0 (reverse KL), 1 (forward KL) or 2 (JSD), got " + std::to_string(divergence));
  // As loss/align.cc's validate_distill_options.
  if (!(std::isfinite(temperature) && temperature > 0))
    bad_arg("distill", "temperature must be a finite number > 0, got " + std::to_string(temperature));
  if (!(std::isfinite(beta) && beta >= 0 && beta <= 1))
    bad_arg("distill", "beta must be in [0, 1], got " + std::to_string(beta));
  if (!(std::isfinite(ce_weight) && ce_weight >= 0 && ce_weight <= 1))
    bad_arg("distill", "ce_weight must be in [0, 1], got " + std::to_string(ce_weight));
  if (rows == 0) return;
  if (V == 0) bad_arg("distill", "V must be >= 1");
  check_ptr("distill", "student", student);
  check_ptr("distill", "teacher", teacher);
  if (ce_weight > 0) check_ptr("distill", "targets (ce_weight > 0)", targets);
  DistillArgs a;
  a.kind = divergence;
  if (a.kind == kJsd && beta <= 0) a.kind = kForwardKl;
  if (a.kind == kJsd && beta >= 1) a.kind = kReverseKl;
  a.it = 1.f / temperature;
  a.lb = static_cast<float>(std::log(static_cast<double>(beta)));
  a.l1b = static_cast<float>(std::log1p(-static_cast<double>(beta)));
  a.grad_scale = grad_scale;
  a.ce = ce_weight > 0;
  a.alpha = ce_weight;
  a.beta = beta;
  a.tau = temperature;
  dispatch_group(V, [&](auto tag) {
    constexpr int G = decltype(tag)::value;
    distill_kernel<G><<<row_grid<G>(rows), Grp<G>::kBlock, 0, stream>>>(dstudent, sums, student, teacher, targets,
                                                                      weights, rows, static_cast<int>(V), a);
  });
  MINIELM_CUDA_LAUNCHED("distill");
}

void sequence_logps(double* seq_logp, float* row_lse, const bf16* logits, const int32_t* targets,
                    const float* weights, int64_t B, int64_t T, int64_t V, cudaStream_t stream) {
  check_size("sequence_logps", "B", B);
  check_size("sequence_logps", "T", T);
  check_size("sequence_logps", "V", V);
  if (B == 0) return;
  check_ptr("sequence_logps", "seq_logp", seq_logp);
  if (T == 0) {
    MINIELM_CUDA_CHECK(cudaMemsetAsync(seq_logp, 0, sizeof(double) * static_cast<size_t>(B), stream));
    return;
  }
  if (V == 0) bad_arg("sequence_logps", "V must be >= 1");
  check_ptr("sequence_logps", "row_lse", row_lse);
  check_ptr("sequence_logps", "logits", logits);
  check_ptr("sequence_logps", "targets", targets);
  const int64_t rows = B * T;
  dispatch_group(V, [&](auto tag) {
    constexpr int G = decltype(tag)::value;
    row_lse_kernel<G, 0><<<row_grid<G>(rows), Grp<G>::kBlock, 0, stream>>>(nullptr, row_lse, logits, targets, weights,
                                                                          rows, static_cast<int>(V));
  });
  MINIELM_CUDA_LAUNCHED("sequence_logps");
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(B, static_cast<int64_t>(sm_count()) * 8));
  seq_sum_kernel<<<grid, 256, 0, stream>>>(seq_logp, row_lse, logits, targets, weights, B, static_cast<int>(T),
                                           static_cast<int>(V));
  MINIELM_CUDA_LAUNCHED("sequence_logps");
}

void sequence_logps_backward(bf16* dlogits, const bf16* logits, const int32_t* targets, const float* weights,
                             const float* row_lse, const float* coef, int64_t B, int64_t T, int64_t V,
                             cudaStream_t stream) {
  check_size("sequence_logps_backward", "B", B);
  check_size("sequence_logps_backward", "T", T);
  check_size("sequence_logps_backward", "V", V);
  if (B == 0 || T == 0 || V == 0) return;
  launch_logps_backward("sequence_logps_backward", dlogits, logits, targets, weights, row_lse, coef, B * T, T, V,
                        stream);
}

void token_logps(float* logp, float* row_lse, const bf16* logits, const int32_t* targets, const float* weights,
                 int64_t rows, int64_t V, cudaStream_t stream) {
  check_size("token_logps", "rows", rows);
  check_size("token_logps", "V", V);
  if (rows == 0) return;
  if (V == 0) bad_arg("token_logps", "V must be >= 1");
  check_ptr("token_logps", "logp", logp);
  check_ptr("token_logps", "row_lse", row_lse);
  check_ptr("token_logps", "logits", logits);
  check_ptr("token_logps", "targets", targets);
  dispatch_group(V, [&](auto tag) {
    constexpr int G = decltype(tag)::value;
    row_lse_kernel<G, 1><<<row_grid<G>(rows), Grp<G>::kBlock, 0, stream>>>(logp, row_lse, logits, targets, weights, rows,
                                                                          static_cast<int>(V));
  });
  MINIELM_CUDA_LAUNCHED("token_logps");
}

void token_logps_backward(bf16* dlogits, const bf16* logits, const int32_t* targets, const float* row_lse,
                          const float* coef, int64_t rows, int64_t V, cudaStream_t stream) {
  check_size("token_logps_backward", "rows", rows);
  check_size("token_logps_backward", "V", V);
  if (rows == 0 || V == 0) return;
  // Sequences of one token without weights.
  launch_logps_backward("token_logps_backward", dlogits, logits, targets, nullptr, row_lse, coef, rows, 1, V, stream);
}

}  // namespace cuda
}  // namespace minielm
