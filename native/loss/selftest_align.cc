#include "selftest_align.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>

#include "../core/error.h"
#include "../core/rng.h"
#include "distill.h"
#include "dpo.h"
#include "grpo.h"

namespace minielm {
namespace loss {
namespace {

// The 1e-6 floor keeps finite-difference noise on near-zero gradient entries (~1e-10 absolute) from
// reading as a relative error; a wrong term shows up on the large entries at order 1e-1..1.
double rel_err(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(a) + std::fabs(b), 1e-6); }

// ||a - b|| / ||b||: for float-vs-double comparisons, where single tiny entries carry rounding noise.
template <typename A>
double rel_l2(const std::vector<A>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

std::vector<double> randn(Rng& rng, int64_t n, double scale) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// Numeric gradient of f with respect to every x[i] (central differences).
std::vector<double> numeric_grad(std::vector<double>& x, const std::function<double()>& f) {
  const double h = 1e-5;
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double keep = x[i];
    x[i] = keep + h;
    double up = f();
    x[i] = keep - h;
    double down = f();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, rel_err(a[i], b[i]));
  return e;
}

// ---- naive references: the definitions written out with materialised distributions ----

std::vector<double> softmax(const double* z, int64_t V, double tau) {
  double m = -INFINITY;
  for (int64_t k = 0; k < V; ++k) m = std::max(m, z[k] / tau);
  std::vector<double> p(static_cast<size_t>(V));
  double s = 0;
  for (int64_t k = 0; k < V; ++k) s += p[k] = std::exp(z[k] / tau - m);
  for (auto& x : p) x /= s;
  return p;
}

double kl(const std::vector<double>& p, const std::vector<double>& q) {
  double s = 0;
  for (size_t k = 0; k < p.size(); ++k) s += p[k] * std::log(p[k] / q[k]);
  return s;
}

double naive_divergence(const double* zs, const double* zt, int64_t V, const DistillOptions& o) {
  auto ps = softmax(zs, V, o.temperature), pt = softmax(zt, V, o.temperature);
  switch (o.divergence) {
    case Divergence::ReverseKl: return kl(ps, pt);
    case Divergence::ForwardKl: return kl(pt, ps);
    case Divergence::Jsd: {
      if (o.beta == 0) return kl(pt, ps);
      if (o.beta == 1) return kl(ps, pt);
      std::vector<double> m(ps.size());
      for (size_t k = 0; k < m.size(); ++k) m[k] = o.beta * pt[k] + (1 - o.beta) * ps[k];
      return o.beta * kl(pt, m) + (1 - o.beta) * kl(ps, m);
    }
  }
  return NAN;
}

double naive_distill(const std::vector<double>& s, const std::vector<double>& t, const std::vector<int32_t>& tgt,
                     const std::vector<double>& w, int64_t R, int64_t V, const DistillOptions& o) {
  double total = 0;
  for (int64_t i = 0; i < R; ++i) {
    if (w[i] == 0) continue;
    double d = naive_divergence(s.data() + i * V, t.data() + i * V, V, o);
    double ce = 0;
    if (o.ce_weight > 0) ce = -std::log(softmax(s.data() + i * V, V, 1.0)[tgt[i]]);
    total += w[i] * ((1 - o.ce_weight) * d + o.ce_weight * ce);
  }
  return total;
}

std::vector<double> naive_seq_logps(const std::vector<double>& z, const std::vector<int32_t>& tgt,
                                    const std::vector<double>& w, int64_t nseq, int64_t Tn, int64_t V) {
  std::vector<double> out(static_cast<size_t>(nseq), 0.0);
  for (int64_t r = 0; r < nseq * Tn; ++r)
    if (w[r] != 0) out[r / Tn] += w[r] * std::log(softmax(z.data() + r * V, V, 1.0)[tgt[r]]);
  return out;
}

double naive_dpo(const std::vector<double>& lp, const std::vector<double>* ref, int64_t B, const DpoOptions& o) {
  double total = 0;
  for (int64_t i = 0; i < B; ++i) {
    double h = (lp[i] - (ref ? (*ref)[i] : 0)) - (lp[B + i] - (ref ? (*ref)[B + i] : 0));
    double x = o.beta * h, l = 0;
    if (o.loss == DpoLoss::Sigmoid)
      l = -(1 - o.label_smoothing) * std::log(1 / (1 + std::exp(-x))) - o.label_smoothing * std::log(1 / (1 + std::exp(x)));
    else if (o.loss == DpoLoss::Ipo)
      l = (h - 1 / (2 * o.beta)) * (h - 1 / (2 * o.beta));
    else
      l = std::max(0.0, 1 - x);
    total += l;
  }
  return total / static_cast<double>(B);
}

struct DistillCase {
  const char* name;
  Divergence div;
  double beta, tau, alpha;
};

void check_distill(Rng& rng, std::vector<std::pair<std::string, double>>& out) {
  const DistillCase cases[] = {
      {"reverse_kl", Divergence::ReverseKl, 0.5, 1.7, 0.0}, {"forward_kl", Divergence::ForwardKl, 0.5, 1.7, 0.0},
      {"jsd", Divergence::Jsd, 0.3, 1.7, 0.0},              {"jsd_beta0", Divergence::Jsd, 0.0, 0.6, 0.0},
      {"jsd_beta1", Divergence::Jsd, 1.0, 0.6, 0.0},        {"reverse_kl_ce", Divergence::ReverseKl, 0.5, 0.6, 0.3},
      {"jsd_ce", Divergence::Jsd, 0.7, 2.5, 0.4},
  };
  for (const DistillCase& c : cases) {
    DistillOptions o;
    o.divergence = c.div;
    o.beta = c.beta;
    o.temperature = c.tau;
    o.ce_weight = c.alpha;
    const std::string base = std::string("distill.") + c.name;
    {  // double: fused vs naive, analytic vs finite differences of the naive loss, in place vs separate
      const int64_t R = 6, V = 13;
      auto s = randn(rng, R * V, 2.0), t = randn(rng, R * V, 2.0);
      std::vector<int32_t> tgt(R);
      std::vector<double> w(R);
      for (int64_t i = 0; i < R; ++i) {
        tgt[i] = static_cast<int32_t>(rng.next_u64() % V);
        w[i] = i == 1 || i == 4 ? 0.0 : 0.5 + rng.uniform();  // two masked tokens
      }
      std::vector<double> g(R * V, 7.0);
      double fused = distill_forward_backward<double>(g.data(), s.data(), t.data(), tgt.data(), w.data(), R, V, o, 1.0).loss;
      double naive = naive_distill(s, t, tgt, w, R, V, o);
      out.emplace_back(base + ".loss", rel_err(fused, naive));
      auto num = numeric_grad(s, [&] { return naive_distill(s, t, tgt, w, R, V, o); });
      out.emplace_back(base + ".grad", max_rel(g, num));
      std::vector<double> inplace = s;
      distill_forward_backward<double>(inplace.data(), inplace.data(), t.data(), tgt.data(), w.data(), R, V, o, 1.0);
      double diff = 0;
      for (size_t k = 0; k < g.size(); ++k) diff = std::max(diff, std::fabs(inplace[k] - g[k]));
      out.emplace_back(base + ".in_place", diff);
    }
    {  // float (vectorised passes, a vocabulary that is not a multiple of 8) vs the naive double reference
      const int64_t R = 5, V = 1003;
      auto sd = randn(rng, R * V, 3.0), td = randn(rng, R * V, 3.0);
      std::vector<float> sf(sd.begin(), sd.end()), tf(td.begin(), td.end()), wf(R, 1.0f);
      for (int64_t k = 0; k < R * V; ++k) sd[k] = sf[k], td[k] = tf[k];
      std::vector<int32_t> tgt(R);
      std::vector<double> w(R, 1.0);
      for (int64_t i = 0; i < R; ++i) tgt[i] = static_cast<int32_t>(rng.next_u64() % V);
      wf[2] = 0.0f;
      w[2] = 0.0;
      float gs = 0.25f;
      double fl = distill_forward_backward<float>(sf.data(), sf.data(), tf.data(), tgt.data(), wf.data(), R, V, o, gs).loss;
      std::vector<double> ref(R * V);
      double dl = distill_forward_backward<double>(ref.data(), sd.data(), td.data(), tgt.data(), w.data(), R, V, o, gs).loss;
      double naive = naive_distill(sd, td, tgt, w, R, V, o);
      out.emplace_back(base + ".float_loss", std::max(rel_err(fl, naive), rel_err(dl, naive)));
      out.emplace_back(base + ".float_grad", rel_l2(sf, ref));
    }
  }
}

void check_dpo(Rng& rng, std::vector<std::pair<std::string, double>>& out) {
  const int64_t B = 2, nseq = 2 * B, Tn = 5, V = 11, rows = nseq * Tn;
  auto z = randn(rng, rows * V, 2.0);
  std::vector<int32_t> tgt(rows);
  std::vector<double> w(rows);
  for (int64_t r = 0; r < rows; ++r) {
    tgt[r] = static_cast<int32_t>(rng.next_u64() % V);
    int64_t t = r % Tn, seq = r / Tn;
    w[r] = t < 2 ? 0.0 : (seq == 1 && t == 4 ? 0.0 : 1.0);  // prompt of 2 tokens; sequence 1 right-padded
  }
  std::vector<double> lse(rows), lp(nseq);
  {  // sequence log-probs and their backward
    sequence_logps<double>(lp.data(), lse.data(), z.data(), tgt.data(), w.data(), nseq, Tn, V);
    out.emplace_back("dpo.logps", max_rel(lp, naive_seq_logps(z, tgt, w, nseq, Tn, V)));
    auto up = randn(rng, nseq, 1.0);
    std::vector<double> g(rows * V);
    sequence_logps_backward<double>(g.data(), z.data(), tgt.data(), w.data(), lse.data(), up.data(), nseq, Tn, V);
    auto num = numeric_grad(z, [&] {
      auto l = naive_seq_logps(z, tgt, w, nseq, Tn, V);
      double s = 0;
      for (int64_t b = 0; b < nseq; ++b) s += up[b] * l[b];
      return s;
    });
    out.emplace_back("dpo.logps_grad", max_rel(g, num));
  }
  auto ref = randn(rng, nseq, 3.0);
  struct Case {
    const char* name;
    DpoLoss loss;
    double beta, eps;
  };
  const Case cases[] = {{"sigmoid", DpoLoss::Sigmoid, 0.3, 0.0},
                        {"sigmoid_smoothed", DpoLoss::Sigmoid, 0.3, 0.2},
                        {"ipo", DpoLoss::Ipo, 0.4, 0.0},
                        {"hinge", DpoLoss::Hinge, 0.05, 0.0}};
  for (const Case& c : cases) {
    for (int with_ref = 0; with_ref < 2; ++with_ref) {
      DpoOptions o;
      o.loss = c.loss;
      o.beta = c.beta;
      o.label_smoothing = c.eps;
      const std::vector<double>* r = with_ref ? &ref : nullptr;
      const std::string base = std::string("dpo.") + c.name + (with_ref ? ".ref" : ".ref_free");
      // The fused chain: sequence log-probs -> DPO loss -> upstream -> in-place logit gradient.
      std::vector<double> g = z, dseq(nseq);
      sequence_logps<double>(lp.data(), lse.data(), g.data(), tgt.data(), w.data(), nseq, Tn, V);
      DpoMetrics m = dpo_loss(lp.data(), lp.data() + B, r ? r->data() : nullptr, r ? r->data() + B : nullptr, B, o,
                              dseq.data(), dseq.data() + B);
      sequence_logps_backward<double>(g.data(), g.data(), tgt.data(), w.data(), lse.data(), dseq.data(), nseq, Tn, V);
      auto naive = [&] { return naive_dpo(naive_seq_logps(z, tgt, w, nseq, Tn, V), r, B, o); };
      out.emplace_back(base + ".loss", rel_err(m.loss, naive()));
      out.emplace_back(base + ".grad", max_rel(g, numeric_grad(z, naive)));
    }
  }
  {  // float sequence log-probs and backward (vectorised exp) vs double, V not a multiple of 8
    const int64_t n2 = 4, T2 = 3, V2 = 1003, r2 = n2 * T2;
    auto zd = randn(rng, r2 * V2, 3.0);
    std::vector<float> zf(zd.begin(), zd.end()), wf(r2, 1.0f), lsef(r2);
    for (int64_t k = 0; k < r2 * V2; ++k) zd[k] = zf[k];
    std::vector<int32_t> t2(r2);
    for (auto& x : t2) x = static_cast<int32_t>(rng.next_u64() % V2);
    std::vector<double> wd(r2, 1.0), lsed(r2), lpf(n2), lpd(n2), up = randn(rng, n2, 1.0);
    sequence_logps<float>(lpf.data(), lsef.data(), zf.data(), t2.data(), wf.data(), n2, T2, V2);
    sequence_logps<double>(lpd.data(), lsed.data(), zd.data(), t2.data(), wd.data(), n2, T2, V2);
    std::vector<double> gd(r2 * V2);
    sequence_logps_backward<float>(zf.data(), zf.data(), t2.data(), wf.data(), lsef.data(), up.data(), n2, T2, V2);
    sequence_logps_backward<double>(gd.data(), zd.data(), t2.data(), wd.data(), lsed.data(), up.data(), n2, T2, V2);
    out.emplace_back("dpo.float_logps", max_rel(lpf, lpd));
    out.emplace_back("dpo.float_grad", rel_l2(zf, gd));
  }
}


// Naive GRPO in double: softmax per row, advantages, clipped surrogate, k3 KL, the three aggregations,
// written independently of grpo.h's fused pass.
double naive_grpo(const std::vector<double>& z, const std::vector<int32_t>& tgt, const std::vector<double>& w,
                  const std::vector<double>& rewards, const std::vector<double>* old, const std::vector<double>* ref,
                  int64_t nseq, int64_t Tn, int64_t V, const GrpoOptions& o) {
  const int64_t G = o.group;
  std::vector<double> adv(static_cast<size_t>(nseq));
  for (int64_t p = 0; p < nseq / G; ++p) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < G; ++j) mean += rewards[p * G + j] / G;
    for (int64_t j = 0; j < G; ++j) var += (rewards[p * G + j] - mean) * (rewards[p * G + j] - mean) / (G - 1);
    for (int64_t j = 0; j < G; ++j) adv[p * G + j] = (rewards[p * G + j] - mean) / (std::sqrt(var) + o.adv_eps);
  }
  double total = 0, tokens = 0;
  std::vector<double> seq_loss(static_cast<size_t>(nseq), 0.0), seq_tok(static_cast<size_t>(nseq), 0.0);
  for (int64_t r = 0; r < nseq * Tn; ++r) {
    if (w[r] == 0) continue;
    double m = -1e300;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, z[r * V + v]);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[r * V + v] - m);
    const double logp = z[r * V + tgt[r]] - m - std::log(s);
    // The old log-prob is the current one, detached: the ratio is 1 and its derivative still flows.
    const double oldp = old ? (*old)[r] : logp;
    const double rho = std::exp(logp - oldp);
    const double A = adv[r / Tn];
    const double clipped = std::min(std::max(rho, 1 - o.eps_low), 1 + o.eps_high);
    double l = -std::min(rho * A, clipped * A);
    if (ref && o.beta != 0) {
      const double d = (*ref)[r] - logp;
      l += o.beta * (std::exp(d) - d - 1);
    }
    seq_loss[r / Tn] += w[r] * l;
    seq_tok[r / Tn] += w[r];
    total += w[r] * l;
    tokens += w[r];
  }
  switch (o.loss) {
    case GrpoLossType::Grpo: {
      double sum = 0;
      for (int64_t i = 0; i < nseq; ++i) sum += seq_tok[i] > 0 ? seq_loss[i] / seq_tok[i] : 0.0;
      return sum / nseq;
    }
    case GrpoLossType::Bnpo: return total / tokens;
    default: return total / (nseq * static_cast<double>(o.max_completion_length > 0 ? o.max_completion_length : Tn));
  }
}

void check_grpo(Rng& rng, std::vector<std::pair<std::string, double>>& out) {
  const int64_t G = 4, nseq = 2 * G, Tn = 5, V = 13, rows = nseq * Tn;
  auto z = randn(rng, rows * V, 2.0);
  std::vector<int32_t> tgt(rows);
  std::vector<double> w(rows);
  for (int64_t r = 0; r < rows; ++r) {
    tgt[r] = static_cast<int32_t>(rng.next_u64() % V);
    const int64_t t = r % Tn, seq = r / Tn;
    w[r] = t < 2 ? 0.0 : (seq % 3 == 1 && t == 4 ? 0.0 : 1.0);  // 2 prompt tokens; some completions shorter
  }
  std::vector<double> rewards = randn(rng, nseq, 1.0);
  std::vector<double> cur(rows);
  token_logps<double>(cur.data(), z.data(), tgt.data(), w.data(), rows, V);
  // Old log-probs off the current ones by up to +-0.5, so tokens clip on both sides; a reference further off.
  std::vector<double> old(rows), ref(rows);
  for (int64_t r = 0; r < rows; ++r) {
    old[r] = cur[r] + (rng.uniform() - 0.5);
    ref[r] = cur[r] + 2.0 * (rng.uniform() - 0.5);
  }
  double clip_seen = 0;
  struct Case {
    const char* name;
    GrpoLossType loss;
  };
  const Case cases[] = {{"grpo", GrpoLossType::Grpo}, {"bnpo", GrpoLossType::Bnpo}, {"dr_grpo", GrpoLossType::DrGrpo}};
  for (const Case& c : cases) {
    for (int variant = 0; variant < 3; ++variant) {  // 0: first update (old = current), 1: old given, 2: + KL
      GrpoOptions o;
      o.group = G;
      o.loss = c.loss;
      o.eps_low = 0.2;
      o.eps_high = 0.28;
      o.beta = variant == 2 ? 0.07 : 0.0;
      o.max_completion_length = c.loss == GrpoLossType::DrGrpo ? 4 : 0;
      const std::vector<double>* op = variant >= 1 ? &old : nullptr;
      const std::vector<double>* rp = variant == 2 ? &ref : nullptr;
      const std::string base = std::string("grpo.") + c.name + (variant == 0 ? ".first" : variant == 1 ? ".old" : ".kl");
      std::vector<double> adv(nseq);
      GrpoMetrics m;
      grpo_advantages(rewards.data(), nseq, o, adv.data(), &m);
      std::vector<double> g = z;
      GrpoMetrics k = grpo_forward_backward<double>(g.data(), g.data(), tgt.data(), w.data(), adv.data(),
                                                    op ? op->data() : nullptr, rp ? rp->data() : nullptr, nseq, Tn, V, o);
      clip_seen += k.clip_region;
      // On the first update the old log-probs are the current ones held fixed: the finite differences move
      // only the policy, so they use `cur` as the (constant) old log-probs.
      const std::vector<double>* fixed_old = op ? op : &cur;
      auto naive = [&] { return naive_grpo(z, tgt, w, rewards, fixed_old, rp, nseq, Tn, V, o); };
      out.emplace_back(base + ".loss", rel_err(k.loss, naive()));
      out.emplace_back(base + ".grad", max_rel(g, numeric_grad(z, naive)));
    }
  }
  // The cases above really exercised the clipped branches.
  out.emplace_back("grpo.clipped_tokens_seen", clip_seen > 0 ? 0.0 : 1.0);
  {  // float kernel vs double, V not a multiple of 8
    const int64_t n2 = 4, T2 = 3, V2 = 1003, r2 = n2 * T2;
    auto zd = randn(rng, r2 * V2, 3.0);
    std::vector<float> zf(zd.begin(), zd.end()), wf(r2, 1.0f);
    for (int64_t k = 0; k < r2 * V2; ++k) zd[k] = zf[k];
    std::vector<int32_t> t2(r2);
    for (auto& x : t2) x = static_cast<int32_t>(rng.next_u64() % V2);
    std::vector<double> wd(r2, 1.0), rw = randn(rng, n2, 1.0), a(n2), oldd(r2);
    GrpoOptions o;
    o.group = 2;
    GrpoMetrics m;
    grpo_advantages(rw.data(), n2, o, a.data(), &m);
    token_logps<double>(oldd.data(), zd.data(), t2.data(), wd.data(), r2, V2);
    for (auto& x : oldd) x += 0.1 * (rng.uniform() - 0.5);
    std::vector<double> gd(r2 * V2);
    GrpoMetrics kd = grpo_forward_backward<double>(gd.data(), zd.data(), t2.data(), wd.data(), a.data(), oldd.data(), nullptr, n2, T2, V2, o);
    GrpoMetrics kf = grpo_forward_backward<float>(zf.data(), zf.data(), t2.data(), wf.data(), a.data(), oldd.data(), nullptr, n2, T2, V2, o);
    out.emplace_back("grpo.float_loss", rel_err(kf.loss, kd.loss));
    out.emplace_back("grpo.float_grad", rel_l2(zf, gd));
  }
}

}  // namespace

std::vector<std::pair<std::string, double>> gradcheck_align(uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<std::string, double>> out;
  check_distill(rng, out);
  check_dpo(rng, out);
  check_grpo(rng, out);
  return out;
}

KernelTiming time_alignment_kernel(const std::string& kind, int64_t rows, int64_t V, double seconds) {
  require(kind == "reverse_kl" || kind == "dpo" || kind == "grpo", "MINIELM_INVALID_ARGUMENT",
          "kernel must be 'reverse_kl', 'dpo' or 'grpo', got '" + kind + "'");
  require(rows > 0 && V > 0 && rows * V <= (int64_t(1) << 30), "MINIELM_INVALID_ARGUMENT", "rows * vocab must be in [1, 2^30]");
  const int64_t Tn = 16;
  require(kind != "dpo" || (rows % (2 * Tn) == 0), "MINIELM_INVALID_ARGUMENT", "the dpo kernel needs rows to be a multiple of 32");
  require(kind != "grpo" || (rows % (8 * Tn) == 0), "MINIELM_INVALID_ARGUMENT", "the grpo kernel needs rows to be a multiple of 128");
  const size_t n = static_cast<size_t>(rows * V);
  Rng rng(1234);
  // Logits of a realistic spread (a few units) so the exp passes see ordinary values.
  std::vector<float> pristine(n), work(n), teacher;
  for (auto& x : pristine) x = static_cast<float>(rng.normal() * 2.0);
  if (kind == "reverse_kl") {
    teacher.resize(n);
    for (auto& x : teacher) x = static_cast<float>(rng.normal() * 2.0);
  }
  std::vector<int32_t> targets(static_cast<size_t>(rows));
  for (auto& t : targets) t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(V));
  std::vector<float> weights(static_cast<size_t>(rows), 1.0f), lse(static_cast<size_t>(rows));
  const int64_t nseq = rows / Tn;
  std::vector<double> lp(static_cast<size_t>(std::max<int64_t>(nseq, 1))), dseq(lp.size());
  DistillOptions dopt;
  DpoOptions popt;
  GrpoOptions gopt;  // G = 8, TRL's defaults
  std::vector<double> rewards(static_cast<size_t>(std::max<int64_t>(nseq, 1))), adv(rewards.size()), old_lp;
  if (kind == "grpo") {
    for (auto& x : rewards) x = rng.uniform();
    GrpoMetrics gm;
    grpo_advantages(rewards.data(), nseq, gopt, adv.data(), &gm);
    old_lp.resize(static_cast<size_t>(rows));
    token_logps<float>(old_lp.data(), pristine.data(), targets.data(), weights.data(), rows, V);
    for (auto& x : old_lp) x += 0.2 * (rng.uniform() - 0.5);
  }
  auto once = [&] {
    if (kind == "grpo") {
      grpo_forward_backward<float>(work.data(), work.data(), targets.data(), weights.data(), adv.data(), old_lp.data(),
                                   nullptr, nseq, Tn, V, gopt);
    } else if (kind == "reverse_kl") {
      distill_forward_backward<float>(work.data(), work.data(), teacher.data(), targets.data(), weights.data(), rows, V,
                                      dopt, 1.0f / static_cast<float>(rows));
    } else {
      const int64_t B = nseq / 2;
      sequence_logps<float>(lp.data(), lse.data(), work.data(), targets.data(), weights.data(), nseq, Tn, V);
      dpo_loss(lp.data(), lp.data() + B, nullptr, nullptr, B, popt, dseq.data(), dseq.data() + B);
      sequence_logps_backward<float>(work.data(), work.data(), targets.data(), weights.data(), lse.data(), dseq.data(),
                                     nseq, Tn, V);
    }
  };
  KernelTiming r;
  // reverse KL: read student + teacher, write student. DPO: read the logits twice (log-probs, then the
  // backward after every other row went through) and write them once.
  // GRPO: one fused pass per row (max, exp sum, gradient while the row is in cache): one read, one write.
  r.bytes = (kind == "grpo" ? 2.0 : 3.0) * static_cast<double>(n) * sizeof(float);
  r.best_seconds = 1e30;
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds || r.calls < 3) {
    std::memcpy(work.data(), pristine.data(), n * sizeof(float));  // untimed: each call sees fresh logits
    auto t0 = std::chrono::steady_clock::now();
    once();
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.best_seconds = std::min(r.best_seconds, dt);
    ++r.calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return r;
}

}  // namespace loss
}  // namespace minielm
