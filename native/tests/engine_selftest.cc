// The engine's self-tests as one standalone program, for the sanitizer build (scripts/native-asan.js):
// the gradient checks of every op, a whole model and the score head (native/model/selftest.cc), the
// alignment kernels (native/loss/selftest_align.cc), and a tiny random model trained, distilled, DPO-stepped,
// scored and decoded with every strategy, the rewrite hygiene, a word constraint and bf16 weights.
// Prints "ok <check>" or "FAIL <check>: <why>" per check; exit status 1 when any check failed.
// Usage: engine_selftest [--quick]
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/threads.h"
#include "../decode/constraint.h"
#include "../decode/decoder.h"
#include "../loss/align.h"
#include "../loss/selftest_align.h"
#include "../model/gpt2.h"
#include "../model/selftest.h"

using namespace minielm;

namespace {

int g_failures = 0;

void check(bool ok, const std::string& name, const std::string& why = "") {
  std::printf("%s %s%s%s\n", ok ? "ok" : "FAIL", name.c_str(), ok || why.empty() ? "" : ": ", ok ? "" : why.c_str());
  if (!ok) ++g_failures;
}

// Every relative error of a gradient check below tol (the uvu suites use the same bound).
void errors_below(const std::string& what, const std::vector<std::pair<std::string, double>>& errs, double tol, size_t at_least) {
  check(errs.size() >= at_least, what + ": " + std::to_string(errs.size()) + " checks", "expected at least " + std::to_string(at_least));
  for (const auto& [k, e] : errs)
    if (!(e < tol)) check(false, what + "." + k, "relative error " + std::to_string(e) + " >= " + std::to_string(tol));
  std::printf("   %s: %zu errors below %g\n", what.c_str(), errs.size(), tol);
}

template <typename F>
void expect_code(const std::string& name, const char* code, F&& f) {
  try {
    f();
    check(false, name, std::string("no error, expected ") + code);
  } catch (const Error& e) {
    check(e.code() == code, name, "code " + e.code() + ": " + e.what());
  }
}

void gradchecks(bool quick) {
  errors_below("gradcheck_ops", gradcheck_ops(7), 1e-4, 6);
  const Config tiny{13, 8, 2, 2, 8, false};
  errors_below("gradcheck_model", gradcheck_model(tiny, 3, quick ? 3 : 6), 1e-4, 2 + 2 * 12 + 2);
  errors_below("gradcheck_score", gradcheck_score(tiny, 5, quick ? 3 : 6), 1e-4, 1);
  const auto align = loss::gradcheck_align(7);
  std::vector<std::pair<std::string, double>> errs;
  for (const auto& [k, e] : align)
    if (k.find(".in_place") != std::string::npos) check(e == 0, "gradcheck_align." + k, "in-place gradient differs by " + std::to_string(e));
    else errs.emplace_back(k, e);
  errors_below("gradcheck_align", errs, 1e-4, 20);
}

void training() {
  Gpt2<float> m(Config{17, 8, 2, 2, 16, true}, 1), teacher(Config{17, 8, 1, 2, 8, false}, 2);
  std::vector<int32_t> tokens(16), targets(16);
  for (int i = 0; i < 16; ++i) {
    tokens[i] = (i * 5) % 17;
    targets[i] = (i * 5 + 5) % 17;
  }
  std::vector<float> weight(16, 1.0f);
  std::vector<uint8_t> mask(16, 1);
  mask[8] = mask[9] = 0;  // left padding in the second row
  weight[0] = weight[8] = weight[9] = 0.0f;
  Batch b;
  b.tokens = tokens.data();
  b.targets = targets.data();
  b.loss_weight = weight.data();
  b.attn_mask = mask.data();
  b.B = 2;
  b.T = 8;
  OptimConfig opt;
  opt.lr = 1e-2;
  double first = 0, last = 0;
  for (int s = 0; s < 20; ++s) {
    const StepStats st = m.train_step({b, b}, opt);
    if (s == 0) first = st.loss;
    last = st.loss;
  }
  check(std::isfinite(first) && last < first, "train_step lowers the loss", std::to_string(first) + " -> " + std::to_string(last));
  std::vector<float> losses(16);
  m.forward(b);
  check(std::isfinite(m.cross_entropy(b, losses.data())), "forward + cross_entropy");
  std::vector<float> scores(2), labels{0.2f, 0.9f};
  m.score_forward(b, scores.data());
  check(std::isfinite(scores[0]) && std::isfinite(scores[1]), "score_forward");
  check(std::isfinite(m.train_score_step({b}, {labels.data()}, {nullptr}, opt).loss), "train_score_step");
  loss::DistillOptions d;
  d.divergence = loss::Divergence::Jsd;
  d.ce_weight = 0.3;
  check(std::isfinite(loss::distill_step(m, teacher, b, d, opt).step.loss), "distill_step (JSD + CE)");
  loss::DpoOptions p;
  const loss::DpoStepStats dpo = loss::dpo_step(m, &teacher, nullptr, b, p, opt);
  check(std::isfinite(dpo.metrics.loss), "dpo_step with a reference model");
  std::vector<double> logps(2);
  loss::model_sequence_logps(m, b, logps.data());
  check(std::isfinite(logps[0]) && std::isfinite(logps[1]), "sequence log-probs");
  // Refusals leave the model as it was.
  const int64_t step = m.step();
  std::vector<int32_t> bad = tokens;
  bad[3] = 17;
  Batch bb = b;
  bb.tokens = bad.data();
  expect_code("a token outside the vocabulary", "MINIELM_INVALID_ARGUMENT", [&] { m.train_step({bb}, opt); });
  expect_code("distillation across vocabularies", "MINIELM_INVALID_ARGUMENT", [&] {
    Gpt2<float> other(Config{18, 8, 1, 2, 8, false}, 3);
    loss::distill_step(m, other, b, d, opt);
  });
  check(m.step() == step, "refused steps leave the step count");
}

void decoding() {
  Gpt2<float> m(Config{24, 16, 2, 2, 16, false}, 4);
  const std::vector<std::vector<int32_t>> prompts{{1, 2, 3}, {4}, {5, 6}};
  decode::GenerateOptions o;
  o.max_new_tokens = 6;
  o.eos_token_id = 23;
  auto run = [&](const std::string& name, const decode::GenerateOptions& opt, size_t per_prompt) {
    try {
      const auto out = decode::generate(m, prompts, opt);
      bool ok = out.size() == prompts.size();
      for (const auto& list : out) {
        ok = ok && (opt.strategy == decode::Strategy::Beam ? list.size() <= per_prompt && !list.empty() : list.size() == per_prompt);
        for (const auto& g : list) {
          ok = ok && !g.tokens.empty() && static_cast<int64_t>(g.tokens.size()) <= opt.max_new_tokens;
          for (int32_t t : g.tokens) ok = ok && t >= 0 && t < 24;
        }
      }
      check(ok, "generate: " + name);
      return out;
    } catch (const std::exception& e) {
      check(false, "generate: " + name, e.what());
      return std::vector<std::vector<decode::Generated>>{};
    }
  };
  run("greedy", o, 1);
  decode::GenerateOptions s = o;
  s.strategy = decode::Strategy::Sample;
  s.num_return_sequences = 4;
  s.top_k = 8;
  s.top_p = 0.9;
  s.temperature = 0.8;
  s.seed = 11;
  s.token_logprobs = true;
  s.logits = true;
  const auto a = run("sampling (top-k, top-p, logits)", s, 4);
  const auto b = run("sampling again", s, 4);
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); ++i)
    for (size_t j = 0; same && j < a[i].size(); ++j) same = a[i][j].tokens == b[i][j].tokens;
  check(same, "sampling is reproducible from its seed");
  decode::GenerateOptions beam = o;
  beam.strategy = decode::Strategy::Beam;
  beam.num_beams = 4;
  beam.num_return_sequences = 3;
  beam.length_penalty = 0.7;
  run("beam search", beam, 3);
  decode::GenerateOptions hyg = beam;
  hyg.no_repeat_ngram_size = 2;
  hyg.repetition_penalty = 1.3;
  hyg.min_new_tokens = 2;
  std::vector<std::string> tokens(24);
  std::vector<uint8_t> special(24, 0);
  const char* pieces[] = {"a", "b", "c", " a", " b", "ab", "ba", "ca", " c", "bc", "cb", "abc"};
  for (int t = 0; t < 24; ++t) tokens[t] = pieces[t % 12];
  special[23] = 1;
  hyg.word_constraint = std::make_shared<const decode::WordConstraint>(tokens, special, std::vector<std::string>{"ab", "abc", "ba", "cab"});
  run("beam search with the hygiene and a word constraint", hyg, 3);
  decode::GenerateOptions bf = s;
  bf.bf16_weights = true;
  bf.word_constraint = hyg.word_constraint;
  bf.no_repeat_ngram_size = 1;
  run("sampling from bf16 weights under a word constraint", bf, 4);
  decode::GenerateOptions bad = o;
  bad.max_new_tokens = 16;
  expect_code("a prompt that overflows the context", "MINIELM_INVALID_ARGUMENT", [&] { decode::generate(m, prompts, bad); });
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    gradchecks(quick);
    training();
    set_num_threads(2);
    decoding();
    set_num_threads(1);
    decoding();
  } catch (const std::exception& e) {
    check(false, "uncaught exception", e.what());
  }
  std::printf("%s: %d failures\n", g_failures ? "FAILED" : "engine self-tests passed", g_failures);
  return g_failures ? 1 : 0;
}
