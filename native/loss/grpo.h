// GRPO (Shao et al., DeepSeekMath; TRL's GRPOTrainer): a fused per-token clipped-ratio objective over the
// logits of G sampled completions per prompt, with group-normalised advantages and a k3 KL to a reference.
//
// Layout as dpo.h: nseq = P * G sequences (the G completions of a prompt are consecutive), Tn positions,
// row-major [nseq, Tn, V] logits; position t predicts targets[t] and counts where its mask w_t is 1 (the
// completion tokens), 0 elsewhere.
//
// Per sequence i with reward r_i, in group g(i):
//   A_i = (r_i - mean_g r) / (std_g r + eps)      (std unbiased over the G rewards, TRL's default; or the
//                                                  batch std, or no scaling: GrpoScale)
// Per completion token t of sequence i, logp_t = z_t[target_t] - logsumexp(z_t), old_t the log-prob when
// the completion was sampled (= logp_t, detached, on the first update of a batch: ratio 1), ref_t under the
// reference model:
//   rho_t = exp(logp_t - old_t),  clip(rho) = min(max(rho, 1 - eps_low), 1 + eps_high)
//   l_t   = -min(rho_t A_i, clip(rho_t) A_i) + beta (exp(ref_t - logp_t) - (ref_t - logp_t) - 1)   (k3)
// Aggregations (TRL's loss_type):
//   grpo     mean over sequences of (sum_t w_t l_t / sum_t w_t)
//   bnpo     sum_{i,t} w_t l_t / sum_{i,t} w_t
//   dr_grpo  sum_{i,t} w_t l_t / (nseq * max_completion_length)
// Gradient: dl_t / dlogp_t = -A_i rho_t where the unclipped term is the minimum (the clipped one has zero
// gradient), plus beta (1 - exp(ref_t - logp_t)); d logp_t / d z_t = onehot(target_t) - softmax(z_t).
// Each row is read three times (max, exp sum, gradient) while it stays in cache; the gradient overwrites
// the logits in place; O(1) scratch per row.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/threads.h"
#include "../model/ops.h"

namespace minielm {
namespace loss {

enum class GrpoLossType { Grpo = 0, Bnpo = 1, DrGrpo = 2 };
enum class GrpoScale { Group = 0, Batch = 1, None = 2 };

struct GrpoOptions {
  int64_t group = 8;                  // G completions per prompt
  double eps_low = 0.2, eps_high = 0.2;
  double beta = 0.0;                  // KL coefficient (TRL's default 0: no reference needed)
  GrpoLossType loss = GrpoLossType::Grpo;
  GrpoScale scale = GrpoScale::Group;
  double adv_eps = 1e-4;              // added to the std, as TRL does
  int64_t max_completion_length = 0;  // dr_grpo's constant; 0 = Tn
};

// Named after TRL's GRPO logs.
struct GrpoMetrics {
  double loss = 0;
  double reward = 0;          // mean reward
  double reward_std = 0;      // mean over groups of the within-group std (TRL's reward_std)
  double kl = 0;              // mean per-token k3 over completion tokens (when a reference is given)
  double clip_low = 0;        // clip_ratio/low_mean: share of tokens with rho < 1 - eps_low and A < 0
  double clip_high = 0;       // clip_ratio/high_mean: rho > 1 + eps_high and A > 0
  double clip_region = 0;     // clip_ratio/region_mean: either
  double mean_length = 0;     // completions/mean_length (tokens in the mask)
  double zero_std_groups = 0; // share of groups whose G rewards are all equal (no learning signal)
};

// Group-normalised advantages (adv[nseq]); returns the mean within-group std and the share of zero-std groups.
inline void grpo_advantages(const double* rewards, int64_t nseq, const GrpoOptions& o, double* adv, GrpoMetrics* m) {
  const int64_t G = o.group, P = nseq / G;
  double total = 0, std_sum = 0;
  int64_t flat = 0;
  for (int64_t i = 0; i < nseq; ++i) total += rewards[i];
  const double batch_mean = total / static_cast<double>(nseq);
  double batch_var = 0;
  for (int64_t i = 0; i < nseq; ++i) batch_var += (rewards[i] - batch_mean) * (rewards[i] - batch_mean);
  const double batch_std = nseq > 1 ? std::sqrt(batch_var / static_cast<double>(nseq - 1)) : 0.0;
  for (int64_t p = 0; p < P; ++p) {
    const double* r = rewards + p * G;
    double mean = 0;
    for (int64_t j = 0; j < G; ++j) mean += r[j];
    mean /= static_cast<double>(G);
    double var = 0;
    for (int64_t j = 0; j < G; ++j) var += (r[j] - mean) * (r[j] - mean);
    const double sd = G > 1 ? std::sqrt(var / static_cast<double>(G - 1)) : 0.0;
    std_sum += sd;
    if (sd == 0) ++flat;
    const double denom = o.scale == GrpoScale::Group ? sd + o.adv_eps : o.scale == GrpoScale::Batch ? batch_std + o.adv_eps : 1.0;
    for (int64_t j = 0; j < G; ++j) adv[p * G + j] = (r[j] - mean) / denom;
  }
  m->reward = batch_mean;
  m->reward_std = P > 0 ? std_sum / static_cast<double>(P) : 0.0;
  m->zero_std_groups = P > 0 ? static_cast<double>(flat) / static_cast<double>(P) : 0.0;
}

// Per-token log-probabilities of the targets (logp[nseq * Tn]; rows with mask 0 get 0).
template <typename T>
void token_logps(double* logp, const T* logits, const int32_t* targets, const T* weights, int64_t rows, int64_t V) {
  parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      if (weights && weights[i] == T(0)) {
        logp[i] = 0;
        continue;
      }
      const T* x = logits + i * V;
      T m = ops::row_max(x, V);
      T sum = ops::row_exp_shift_sum(x, m, static_cast<T*>(nullptr), T(1), V);
      logp[i] = static_cast<double>(x[targets[i]]) - static_cast<double>(m) - std::log(static_cast<double>(sum));
    }
  });
}

// The fused loss and gradient. old_logp / ref_logp are per-token [nseq * Tn] (null: old = the current
// log-probs, detached; no reference, so beta must be 0). dlogits may alias logits or be null (loss only).
// adv[nseq] from grpo_advantages. Returns the metrics (loss, kl, clip ratios, mean length).
template <typename T>
GrpoMetrics grpo_forward_backward(T* dlogits, const T* logits, const int32_t* targets, const T* weights,
                                  const double* adv, const double* old_logp, const double* ref_logp, int64_t nseq,
                                  int64_t Tn, int64_t V, const GrpoOptions& o) {
  const int64_t rows = nseq * Tn;
  // Aggregation weight of each sequence's tokens.
  std::vector<double> seq_tokens(static_cast<size_t>(nseq), 0.0);
  double total_tokens = 0;
  for (int64_t s = 0; s < nseq; ++s) {
    double n = 0;
    for (int64_t t = 0; t < Tn; ++t) n += weights ? static_cast<double>(weights[s * Tn + t]) : 1.0;
    seq_tokens[s] = n;
    total_tokens += n;
  }
  const double Lmax = static_cast<double>(o.max_completion_length > 0 ? o.max_completion_length : Tn);
  auto agg = [&](int64_t s) -> double {
    switch (o.loss) {
      case GrpoLossType::Grpo: return seq_tokens[s] > 0 ? 1.0 / (static_cast<double>(nseq) * seq_tokens[s]) : 0.0;
      case GrpoLossType::Bnpo: return total_tokens > 0 ? 1.0 / total_tokens : 0.0;
      default: return 1.0 / (static_cast<double>(nseq) * Lmax);
    }
  };
  struct Acc {
    double loss = 0, kl = 0, low = 0, high = 0, region = 0;
  };
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), std::max<int64_t>(1, rows / 4)));
  std::vector<Acc> partial(static_cast<size_t>(nt));
  const double lo = 1 - o.eps_low, hi = 1 + o.eps_high;
  run_parallel(nt, [&](int tid, int n) {
    const int64_t r0 = rows * tid / n, r1 = rows * (tid + 1) / n;
    Acc acc;
    for (int64_t i = r0; i < r1; ++i) {
      const T w = weights ? weights[i] : T(1);
      T* g = dlogits ? dlogits + i * V : nullptr;
      if (w == T(0)) {
        if (g) std::fill(g, g + V, T(0));
        continue;
      }
      const int64_t s = i / Tn;
      const T* x = logits + i * V;
      const T m = ops::row_max(x, V);
      const T sum = ops::row_exp_shift_sum(x, m, static_cast<T*>(nullptr), T(1), V);
      const double lse = static_cast<double>(m) + std::log(static_cast<double>(sum));
      const double logp = static_cast<double>(x[targets[i]]) - lse;
      const double A = adv[s];
      const double old = old_logp ? old_logp[i] : logp;
      const double rho = std::exp(logp - old);
      const double clipped = std::min(std::max(rho, lo), hi);
      const double u = rho * A, c = clipped * A;
      double l = -std::min(u, c);
      // The unclipped term carries the gradient when it is the minimum (ties: both have slope rho A).
      double dl = u <= c ? -A * rho : 0.0;
      if (rho < lo && A < 0) acc.low += static_cast<double>(w);
      if (rho > hi && A > 0) acc.high += static_cast<double>(w);
      if ((rho < lo && A < 0) || (rho > hi && A > 0)) acc.region += static_cast<double>(w);
      if (ref_logp && o.beta != 0) {
        const double d = ref_logp[i] - logp, e = std::exp(d);
        const double k3 = e - d - 1;
        l += o.beta * k3;
        dl += o.beta * (1 - e);
        acc.kl += static_cast<double>(w) * k3;
      } else if (ref_logp) {
        const double d = ref_logp[i] - logp;
        acc.kl += static_cast<double>(w) * (std::exp(d) - d - 1);
      }
      const double a = agg(s) * static_cast<double>(w);
      acc.loss += a * l;
      if (g) {
        // g = coef * (onehot - softmax): -coef exp(x - lse) everywhere, + coef at the target.
        const T coef = static_cast<T>(a * dl);
        ops::row_exp_shift_sum(x, static_cast<T>(lse), g, -coef, V);
        g[targets[i]] += coef;
      }
    }
    partial[static_cast<size_t>(tid)] = acc;
  });
  GrpoMetrics out;
  Acc total;
  for (const Acc& a : partial) {
    total.loss += a.loss;
    total.kl += a.kl;
    total.low += a.low;
    total.high += a.high;
    total.region += a.region;
  }
  out.loss = total.loss;
  const double tok = total_tokens > 0 ? total_tokens : 1.0;
  out.kl = total.kl / tok;
  out.clip_low = total.low / tok;
  out.clip_high = total.high / tok;
  out.clip_region = total.region / tok;
  out.mean_length = total_tokens / static_cast<double>(nseq);
  return out;
}

}  // namespace loss
}  // namespace minielm
