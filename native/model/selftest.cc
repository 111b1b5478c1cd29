#include "selftest.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "../core/rng.h"
#include "ops.h"

namespace minielm {
namespace {

double rel_err(double a, double n) {
  // Floor: gradients that are exactly zero in theory (a key bias under softmax) leave only FD noise.
  double denom = std::max(std::fabs(a) + std::fabs(n), 1e-5);
  return std::fabs(a - n) / denom;
}

std::vector<double> randn(Rng& rng, int64_t n, double scale = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// Checks d(objective)/d(x[i]) for every i against central differences of `objective`.
double check_input(std::vector<double>& x, const std::vector<double>& analytic,
                   const std::function<double()>& objective) {
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    double keep = x[i];
    x[i] = keep + h;
    double up = objective();
    x[i] = keep - h;
    double down = objective();
    x[i] = keep;
    worst = std::max(worst, rel_err(analytic[i], (up - down) / (2 * h)));
  }
  return worst;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// For `samples` random entries of every tensor: the analytic gradient already in model.grads() against a
// central difference of `loss` (which must recompute from the parameters).
std::vector<std::pair<std::string, double>> compare_params(Gpt2<double>& model, Rng& rng, int samples,
                                                           const std::function<double()>& loss) {
  std::vector<double> analytic(model.grads(), model.grads() + model.num_params());
  std::vector<std::pair<std::string, double>> out;
  const double h = 1e-5;
  for (const auto& t : model.tensors()) {
    double worst = 0;
    for (int s = 0; s < samples; ++s) {
      int64_t idx = t.offset + static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(t.size));
      double keep = model.params()[idx];
      model.params()[idx] = keep + h;
      double up = loss();
      model.params()[idx] = keep - h;
      double down = loss();
      model.params()[idx] = keep;
      worst = std::max(worst, rel_err(analytic[idx], (up - down) / (2 * h)));
    }
    out.emplace_back(t.name, worst);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, double>> gradcheck_ops(uint64_t seed) {
  Rng rng(seed);
  std::vector<std::pair<std::string, double>> out;
  const int64_t B = 2, Tn = 5, C = 8, NH = 2, BT = B * Tn, OC = 6, V = 11;

  {  // LayerNorm: input, weight and bias
    auto x = randn(rng, BT * C), w = randn(rng, C), b = randn(rng, C), R = randn(rng, BT * C);
    std::vector<double> y(BT * C), mean(BT), rstd(BT);
    auto obj = [&] {
      ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), BT, C);
      return dot(y, R);
    };
    obj();
    std::vector<double> dx(BT * C, 0.0), dw(C, 0.0), db(C, 0.0);
    ops::layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(), rstd.data(), BT, C);
    double e = std::max({check_input(x, dx, obj), check_input(w, dw, obj), check_input(b, db, obj)});
    out.emplace_back("layernorm", e);
  }
  {  // Linear (Conv1D layout)
    auto x = randn(rng, BT * C), W = randn(rng, C * OC), b = randn(rng, OC), R = randn(rng, BT * OC);
    std::vector<double> y(BT * OC);
    auto obj = [&] {
      ops::linear_forward(y.data(), x.data(), W.data(), b.data(), BT, C, OC);
      return dot(y, R);
    };
    obj();
    std::vector<double> dx(BT * C, 0.0), dW(C * OC, 0.0), db(OC, 0.0);
    ops::linear_backward(dx.data(), dW.data(), db.data(), R.data(), x.data(), W.data(), BT, C, OC);
    double e = std::max({check_input(x, dx, obj), check_input(W, dW, obj), check_input(b, db, obj)});
    out.emplace_back("linear", e);
  }
  {  // GELU
    auto x = randn(rng, 64, 2.0), R = randn(rng, 64);
    std::vector<double> y(64);
    auto obj = [&] {
      ops::gelu_forward(y.data(), x.data(), 64);
      return dot(y, R);
    };
    obj();
    std::vector<double> dx(64);
    ops::gelu_backward(dx.data(), x.data(), R.data(), 64);
    out.emplace_back("gelu", check_input(x, dx, obj));
  }
  {  // Causal attention with a padding mask (left padding in sequence 1)
    auto qkv = randn(rng, BT * 3 * C), R = randn(rng, BT * C);
    std::vector<uint8_t> mask(BT, 1);
    mask[Tn + 0] = 0;
    mask[Tn + 1] = 0;
    std::vector<double> y(BT * C), att(B * NH * Tn * Tn);
    auto obj = [&] {
      ops::attention_forward(y.data(), att.data(), qkv.data(), mask.data(), B, Tn, C, NH);
      return dot(y, R);
    };
    obj();
    std::vector<double> dqkv(BT * 3 * C);
    ops::attention_backward(dqkv.data(), R.data(), att.data(), qkv.data(), B, Tn, C, NH);
    out.emplace_back("attention", check_input(qkv, dqkv, obj));
  }
  {  // Fused softmax + cross-entropy with weights
    auto logits = randn(rng, BT * V, 2.0);
    std::vector<int32_t> targets(BT);
    std::vector<double> weights(BT);
    for (int64_t i = 0; i < BT; ++i) {
      targets[i] = static_cast<int32_t>(rng.next_u64() % V);
      weights[i] = (i % 3 == 0) ? 0.0 : 0.5 + rng.uniform();
    }
    auto obj = [&] {
      return ops::cross_entropy_forward_backward<double>(nullptr, nullptr, logits.data(), targets.data(), weights.data(), BT, V, 1.0);
    };
    std::vector<double> g(BT * V);
    ops::cross_entropy_forward_backward<double>(g.data(), nullptr, logits.data(), targets.data(), weights.data(), BT, V, 1.0);
    out.emplace_back("cross_entropy", check_input(logits, g, obj));
  }
  {  // Embedding (repeated token ids accumulate)
    const int64_t Vv = 5, P = Tn;
    auto wte = randn(rng, Vv * C), wpe = randn(rng, P * C), R = randn(rng, BT * C);
    std::vector<int32_t> tok(BT), pos(BT);
    for (int64_t i = 0; i < BT; ++i) {
      tok[i] = static_cast<int32_t>(i % 3);
      pos[i] = static_cast<int32_t>(i % Tn);
    }
    std::vector<double> y(BT * C);
    auto obj = [&] {
      ops::embedding_forward(y.data(), tok.data(), pos.data(), wte.data(), wpe.data(), BT, C);
      return dot(y, R);
    };
    obj();
    std::vector<double> dwte(Vv * C, 0.0), dwpe(P * C, 0.0);
    ops::embedding_backward(dwte.data(), dwpe.data(), R.data(), tok.data(), pos.data(), BT, C);
    out.emplace_back("embedding", std::max(check_input(wte, dwte, obj), check_input(wpe, dwpe, obj)));
  }
  return out;
}

std::vector<std::pair<std::string, double>> gradcheck_model(const Config& config, uint64_t seed, int samples) {
  Gpt2<double> model(config, seed);
  Rng rng(seed ^ 0x5eed);
  // Larger-than-default weights so every path carries signal the check can see.
  for (int64_t i = 0; i < model.num_params(); ++i)
    if (model.params()[i] != 0.0 && model.params()[i] != 1.0) model.params()[i] *= 5.0;
  const int64_t B = 2, Tn = std::min<int64_t>(6, config.n_ctx), BT = B * Tn;
  std::vector<int32_t> tokens(BT), targets(BT);
  std::vector<float> weight(BT);
  std::vector<uint8_t> mask(BT, 1);
  for (int64_t i = 0; i < BT; ++i) {
    tokens[i] = static_cast<int32_t>(rng.next_u64() % config.vocab_size);
    targets[i] = static_cast<int32_t>(rng.next_u64() % config.vocab_size);
    weight[i] = (i % 4 == 1) ? 0.0f : 1.0f;
  }
  mask[Tn] = 0;  // left padding in the second sequence
  weight[Tn] = 0.0f;
  Batch batch;
  batch.tokens = tokens.data();
  batch.targets = targets.data();
  batch.loss_weight = weight.data();
  batch.attn_mask = mask.data();
  batch.B = B;
  batch.T = Tn;
  auto loss = [&] {
    model.forward(batch);
    return model.cross_entropy(batch, nullptr);
  };
  model.zero_grad();
  model.forward(batch);
  model.cross_entropy_in_place(batch, 1.0);
  model.backward(batch);
  return compare_params(model, rng, samples, loss);
}

std::vector<std::pair<std::string, double>> gradcheck_score(const Config& config_in, uint64_t seed, int samples) {
  Config config = config_in;
  config.score_head = true;
  Gpt2<double> model(config, seed);
  Rng rng(seed ^ 0xabc);
  for (int64_t i = 0; i < model.num_params(); ++i)
    if (model.params()[i] != 0.0 && model.params()[i] != 1.0) model.params()[i] *= 5.0;
  const int64_t B = 3, Tn = std::min<int64_t>(5, config.n_ctx), BT = B * Tn;
  std::vector<int32_t> tokens(BT);
  std::vector<uint8_t> mask(BT, 1);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.next_u64() % config.vocab_size);
  mask[Tn - 1] = 0;          // right padding: sequence 0 is scored at position Tn - 2
  mask[2 * Tn - 2] = 0;      // a hole in sequence 1
  mask[2 * Tn - 1] = 0;
  std::vector<double> labels = {0.9, 0.1, 0.5};
  Batch batch;
  batch.tokens = tokens.data();
  batch.attn_mask = mask.data();
  batch.B = B;
  batch.T = Tn;
  auto loss = [&] {
    std::vector<double> s(B);
    model.score_forward(batch, s.data());
    double l = 0;
    for (int64_t b = 0; b < B; ++b) l += std::max(s[b], 0.0) - s[b] * labels[b] + std::log1p(std::exp(-std::fabs(s[b])));
    return l;
  };
  model.zero_grad();
  std::vector<double> s(B), ds(B);
  model.score_forward(batch, s.data());
  for (int64_t b = 0; b < B; ++b) ds[b] = 1.0 / (1.0 + std::exp(-s[b])) - labels[b];
  model.score_backward(batch, ds.data());
  return compare_params(model, rng, samples, loss);
}

}  // namespace minielm
