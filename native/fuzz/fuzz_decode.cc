// generate() end to end on tiny real models: fuzzed prompts and options (every strategy, top-k / top-p,
// temperatures from tiny to huge, length penalties, the rewrite hygiene, bf16 weights, per-step logits)
// and sometimes a fuzzed word constraint over the model's vocabulary, through args::parse_prompts,
// args::parse_generate_options, validate_generate and decode::generate. Invariants of every result: one
// list per prompt of the promised size, ids inside the vocabulary, at most max_new_tokens tokens, EOS
// only at the end and flagged, per-token log-probs <= 0 and one per token, beam lists sorted by score,
// the word constraint obeyed (a token outside it only where the constraint leaves nothing to pick), and
// sampling reproducible from its seed.
#include <memory>

#include "../core/threads.h"
#include "../decode/constraint.h"
#include "../decode/decoder.h"
#include "fuzz_common.h"

namespace {

using minielm::Config;
using Model = minielm::Gpt2<float>;
using minielm::args::Value;
using minielm::decode::Generated;
using minielm::decode::GenerateOptions;
using minielm::decode::Strategy;
using minielm::decode::WordConstraint;

struct Models {
  std::unique_ptr<Model> small, wide;  // vocab 13, and 80 (> 64: top-p's growing candidate prefix)
  Models() {
    minielm::set_num_threads(1);
    small = std::make_unique<Model>(Config{13, 12, 1, 2, 8, false}, 7);
    wide = std::make_unique<Model>(Config{80, 10, 2, 2, 8, false}, 8);
  }
};

Models& models() {
  static Models m;
  return m;
}

std::shared_ptr<const WordConstraint> fuzz_constraint(FuzzedDataProvider& p, int64_t V) {
  static const char* kPieces[] = {"a", "b", "ab", " a", " b", "ba", " ", "abc", "c", "aa", "", " ab"};
  std::vector<std::string> tokens(static_cast<size_t>(V));
  std::vector<uint8_t> special(static_cast<size_t>(V), 0);
  for (int64_t t = 0; t < V; ++t) {
    tokens[t] = kPieces[p.ConsumeIntegralInRange<int>(0, 11)];
    special[t] = fuzz::one_in(p, 10);
  }
  std::vector<std::string> words(p.ConsumeIntegralInRange<size_t>(0, 6));
  static const char* kWords[] = {"a", "ab", "ba", "abc", "aab", "b", "cab"};
  for (auto& w : words) w = kWords[p.ConsumeIntegralInRange<int>(0, 6)];
  return std::make_shared<const WordConstraint>(tokens, special, words);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  Models& ms = models();
  Model& m = p.ConsumeBool() ? *ms.small : *ms.wide;
  const Config& c = m.config();
  const int64_t V = c.vocab_size;

  std::vector<std::vector<int32_t>> keep(p.ConsumeIntegralInRange<size_t>(1, 3));
  std::vector<Value> items;
  for (auto& ids : keep) {
    ids.resize(p.ConsumeIntegralInRange<size_t>(fuzz::one_in(p, 16) ? 0 : 1, 5));
    for (auto& t : ids) t = fuzz::one_in(p, 32) ? static_cast<int32_t>(V) : static_cast<int32_t>(p.ConsumeIntegralInRange<int64_t>(0, V - 1));
    items.push_back(arena.array_of(ids));
  }
  fuzz::Object o;
  o.props["strategy"] = Value::of_string(fuzz::one_of(p, {"greedy", "sample", "beam"}));
  auto num = [&](const char* key, double lo, double hi, bool whole) {
    if (!p.ConsumeBool()) return;
    if (fuzz::one_in(p, 10)) {
      o.props[key] = Value::of_number(fuzz::edge_double(p));
      return;
    }
    const double u = static_cast<double>(p.ConsumeIntegralInRange<uint32_t>(0, 1u << 16)) / 65536.0;
    const double d = lo + u * (hi - lo);
    o.props[key] = Value::of_number(whole ? std::round(d) : d);
  };
  num("maxNewTokens", 1, 8, true);
  num("eosTokenId", -1, static_cast<double>(V - 1), true);
  num("temperature", 0.01, 3, false);
  num("topK", 0, static_cast<double>(V + 2), true);
  num("topP", 0.01, 1, false);
  num("seed", 0, 1000, true);
  num("numBeams", 1, 6, true);
  num("numReturnSequences", 1, 6, true);
  num("lengthPenalty", -2, 2, false);
  num("noRepeatNgramSize", 0, 4, true);
  num("repetitionPenalty", 0.2, 3, false);
  num("minNewTokens", 0, 6, true);
  if (p.ConsumeBool()) o.props["tokenLogprobs"] = Value::other(true);
  if (fuzz::one_in(p, 4)) o.props["logits"] = Value::other(true);
  if (fuzz::one_in(p, 4)) o.props["weights"] = Value::of_string("bf16");
  const bool constrained = fuzz::one_in(p, 3);

  std::vector<std::vector<int32_t>> prompts;
  GenerateOptions opt;
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
        prompts = minielm::args::parse_prompts(items);
        opt = minielm::args::parse_generate_options(o, [&](GenerateOptions& g) {
          if (constrained) g.word_constraint = fuzz_constraint(p, V);
        });
        minielm::decode::validate_generate(c, prompts, opt);
      }))
    return 0;

  if (std::getenv("FUZZ_VERBOSE") != nullptr)  // triage: what a crashing input decodes
    std::fprintf(stderr, "V=%lld strategy=%d prompts=%zu max_new=%lld eos=%lld temperature=%g top_k=%lld top_p=%g beams=%lld n=%lld "
                         "length_penalty=%g no_repeat=%lld repetition=%g min_new=%lld constraint=%d logits=%d bf16=%d seed=%llu\n",
                 static_cast<long long>(V), static_cast<int>(opt.strategy), prompts.size(), static_cast<long long>(opt.max_new_tokens),
                 static_cast<long long>(opt.eos_token_id), opt.temperature, static_cast<long long>(opt.top_k), opt.top_p,
                 static_cast<long long>(opt.num_beams), static_cast<long long>(opt.num_return_sequences), opt.length_penalty,
                 static_cast<long long>(opt.no_repeat_ngram_size), opt.repetition_penalty, static_cast<long long>(opt.min_new_tokens),
                 opt.word_constraint != nullptr, opt.logits, opt.bf16_weights, static_cast<unsigned long long>(opt.seed));
  // An edge value can validly ask for tens of thousands of samples or a thousand beams: checked above,
  // but too slow to decode under the sanitizers many times a second.
  const int64_t per_prompt = opt.strategy == Strategy::Beam ? opt.num_beams : opt.strategy == Strategy::Greedy ? 1 : opt.num_return_sequences;
  if (per_prompt * static_cast<int64_t>(prompts.size()) * opt.max_new_tokens > 256) return 0;

  std::vector<std::vector<Generated>> out;
  FUZZ_CHECK(fuzz::accepts({}, [&] { out = minielm::decode::generate(m, prompts, opt); }), "generate refused a validated call");
  FUZZ_CHECK(out.size() == prompts.size(), "one list per prompt");
  const WordConstraint* wc = opt.word_constraint.get();
  for (const auto& list : out) {
    if (opt.strategy == Strategy::Greedy) FUZZ_CHECK(list.size() == 1, "greedy returns one sequence");
    if (opt.strategy == Strategy::Sample) FUZZ_CHECK(static_cast<int64_t>(list.size()) == opt.num_return_sequences, "samples");
    if (opt.strategy == Strategy::Beam) {
      FUZZ_CHECK(static_cast<int64_t>(list.size()) <= opt.num_return_sequences, "beam hypotheses");
      for (size_t j = 1; j < list.size(); ++j) FUZZ_CHECK(!(list[j].score > list[j - 1].score), "beam results sorted by score");
    }
    for (const Generated& g : list) {
      FUZZ_CHECK(!g.tokens.empty() && static_cast<int64_t>(g.tokens.size()) <= opt.max_new_tokens, "sequence length");
      for (size_t k = 0; k < g.tokens.size(); ++k) {
        const int32_t t = g.tokens[k];
        FUZZ_CHECK(t >= 0 && t < V, "a generated id outside the vocabulary");
        if (opt.eos_token_id >= 0 && t == opt.eos_token_id) FUZZ_CHECK(k + 1 == g.tokens.size() && g.eos, "EOS ends the sequence");
      }
      if (g.eos) FUZZ_CHECK(opt.eos_token_id >= 0 && g.tokens.back() == opt.eos_token_id, "eos flag");
      else if (opt.strategy != Strategy::Beam) FUZZ_CHECK(static_cast<int64_t>(g.tokens.size()) == opt.max_new_tokens, "stopped early without EOS");
      FUZZ_CHECK(!std::isnan(g.logprob) && g.logprob <= 1e-3, "sequence log-prob");
      if (opt.token_logprobs) {
        FUZZ_CHECK(g.token_logprobs.size() == g.tokens.size(), "one log-prob per token");
        for (float lp : g.token_logprobs) FUZZ_CHECK(!std::isnan(lp) && lp <= 1e-3f, "token log-prob");
      }
      if (opt.logits) FUZZ_CHECK(g.logits.size() == g.tokens.size() * static_cast<size_t>(V), "logits rows");
      if (wc != nullptr) {
        int32_t s = WordConstraint::kRoot;
        for (int32_t t : g.tokens) {
          const int32_t next = wc->step(s, t);
          if (next < 0 && t != opt.eos_token_id) {
            // Only where the constraint leaves no token to pick (the decoder then falls back).
            FUZZ_CHECK(wc->allowed(s).empty() && !(opt.eos_token_id >= 0 && wc->can_end(s)),
                       "a token outside the word constraint was generated");
          }
          s = std::max(WordConstraint::kRoot, next);
        }
      }
    }
  }
  if (opt.strategy == Strategy::Sample && fuzz::one_in(p, 4)) {
    const auto again = minielm::decode::generate(m, prompts, opt);
    for (size_t i = 0; i < out.size(); ++i)
      for (size_t j = 0; j < out[i].size(); ++j) FUZZ_CHECK(again[i][j].tokens == out[i][j].tokens, "sampling is reproducible from its seed");
  }
  return 0;
}
