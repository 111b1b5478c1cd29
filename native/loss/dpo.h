// Preference kernels: masked sequence log-probabilities of response tokens with their backward, and the
// DPO family of losses on those sums (Rafailov et al.; TRL's `loss_type` names).
//
// Layout: nseq sequences of Tn positions, row-major [nseq, Tn, V] logits; position t predicts targets[t]
// and counts with weight w_t (1 on response tokens, 0 on the prompt and on padding).
//   logp(seq) = sum_t w_t (z_t[target_t] - logsumexp(z_t))
//   d logp / d z_t = w_t (onehot(target_t) - softmax(z_t))
// The forward keeps one logsumexp per row (O(1) scratch per row) so the backward is a single exp pass that
// can overwrite the logits in place: no full-vocabulary tensor besides the logits themselves.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/threads.h"
#include "../model/ops.h"

namespace minielm {
namespace loss {

// Sequence log-probabilities. seq_logp[nseq] receives the sums; row_lse[nseq * Tn] the per-row logsumexp
// the backward needs (left untouched on rows with weight 0).
template <typename T>
void sequence_logps(double* seq_logp, T* row_lse, const T* logits, const int32_t* targets, const T* weights,
                    int64_t nseq, int64_t Tn, int64_t V) {
  const int64_t rows = nseq * Tn;
  std::vector<double> row_lp(static_cast<size_t>(rows), 0.0);
  parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T w = weights ? weights[i] : T(1);
      if (w == T(0)) continue;
      const T* x = logits + i * V;
      T m = ops::row_max(x, V);
      T sum = ops::row_exp_shift_sum(x, m, static_cast<T*>(nullptr), T(1), V);
      T lse = m + static_cast<T>(std::log(sum));
      row_lse[i] = lse;
      row_lp[i] = static_cast<double>(w) * (static_cast<double>(x[targets[i]]) - static_cast<double>(lse));
    }
  });
  // Summed per sequence in position order, whatever the thread split: deterministic.
  for (int64_t b = 0; b < nseq; ++b) {
    double s = 0;
    for (int64_t t = 0; t < Tn; ++t) s += row_lp[b * Tn + t];
    seq_logp[b] = s;
  }
}

// dlogits = dseq[b] * w_t * (onehot - softmax) for every row of sequence b; zero on rows with weight 0.
// dlogits may alias logits (each row is read by the exp pass before it is written).
template <typename T>
void sequence_logps_backward(T* dlogits, const T* logits, const int32_t* targets, const T* weights, const T* row_lse,
                             const double* dseq, int64_t nseq, int64_t Tn, int64_t V) {
  const int64_t rows = nseq * Tn;
  parallel_for(rows, 4, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      T w = weights ? weights[i] : T(1);
      T c = static_cast<T>(static_cast<double>(w) * dseq[i / Tn]);
      T* g = dlogits + i * V;
      if (w == T(0) || c == T(0)) {
        std::fill(g, g + V, T(0));
        continue;
      }
      // g = -c * exp(x - lse), then + c at the target.
      ops::row_exp_shift_sum(logits + i * V, row_lse[i], g, -c, V);
      g[targets[i]] += c;
    }
  });
}

enum class DpoLoss { Sigmoid = 0, Ipo = 1, Hinge = 2 };

struct DpoOptions {
  DpoLoss loss = DpoLoss::Sigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // sigmoid only: the probability that a preference label is flipped
};

// Means over the B pairs, named after TRL's logs.
struct DpoMetrics {
  double loss = 0;
  double reward_chosen = 0;    // rewards/chosen   = beta (logp(y+) - ref(y+))
  double reward_rejected = 0;  // rewards/rejected = beta (logp(y-) - ref(y-))
  double margin = 0;           // rewards/margins
  double accuracy = 0;         // rewards/accuracies: fraction with reward_chosen > reward_rejected
  double logp_chosen = 0;      // logps/chosen
  double logp_rejected = 0;    // logps/rejected
};

// log(sigmoid(x)) without overflow.
inline double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
inline double sigmoid(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

// The DPO loss of B pairs, h_i = (pc_i - rc_i) - (pr_i - rr_i) (ref_* null = reference-free, the paper's
// equation 2):
//   sigmoid  -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)
//   ipo      (h - 1 / (2 beta))^2            (on summed log-probs; TRL averages them per token for IPO)
//   hinge    max(0, 1 - beta h)
// loss = mean over pairs; d_chosen / d_rejected (may be null) receive dloss / dpc_i and dloss / dpr_i.
inline DpoMetrics dpo_loss(const double* pc, const double* pr, const double* rc, const double* rr, int64_t B,
                           const DpoOptions& o, double* d_chosen, double* d_rejected) {
  DpoMetrics m;
  const double beta = o.beta, eps = o.label_smoothing, inv_b = 1.0 / static_cast<double>(B);
  int64_t correct = 0;
  for (int64_t i = 0; i < B; ++i) {
    double c = pc[i] - (rc ? rc[i] : 0.0), r = pr[i] - (rr ? rr[i] : 0.0);
    double h = c - r, bh = beta * h;
    double l = 0, dh = 0;
    switch (o.loss) {
      case DpoLoss::Sigmoid:
        l = -(1 - eps) * log_sigmoid(bh) - eps * log_sigmoid(-bh);
        dh = beta * (-(1 - eps) * sigmoid(-bh) + eps * sigmoid(bh));
        break;
      case DpoLoss::Ipo: {
        double d = h - 1 / (2 * beta);
        l = d * d;
        dh = 2 * d;
        break;
      }
      case DpoLoss::Hinge:
        l = std::max(0.0, 1 - bh);
        dh = bh < 1 ? -beta : 0.0;
        break;
    }
    // Sums first, one division at the end: an accuracy of 1 reads exactly 1.
    m.loss += l;
    m.reward_chosen += beta * c;
    m.reward_rejected += beta * r;
    if (beta * c > beta * r) ++correct;
    m.logp_chosen += pc[i];
    m.logp_rejected += pr[i];
    if (d_chosen) d_chosen[i] = dh * inv_b;
    if (d_rejected) d_rejected[i] = -dh * inv_b;
  }
  const double Bd = static_cast<double>(B);
  m.loss /= Bd;
  m.reward_chosen /= Bd;
  m.reward_rejected /= Bd;
  m.accuracy = static_cast<double>(correct) / Bd;
  m.logp_chosen /= Bd;
  m.logp_rejected /= Bd;
  m.margin = m.reward_chosen - m.reward_rejected;
  return m;
}

}  // namespace loss
}  // namespace minielm
