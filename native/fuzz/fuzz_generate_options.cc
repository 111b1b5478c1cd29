// generate()'s arguments: args::parse_prompts + args::parse_generate_options, then
// minielm::decode::validate_generate (native/decode/decoder.cc) against a model config. Where a call is
// accepted, every bound the decoder relies on must hold (ids inside the vocabulary, prompt + new tokens
// inside the context, beams / sequences / cache rows inside their int32-safe limits), and the memory the
// decoder will allocate for it, counted here buffer by buffer from decoder.cc, must fit in 90% of this
// machine's memory (validate_generate refuses above 75% of its own estimate).
#include <algorithm>
#include <memory>

#include "../core/peak.h"
#include "../core/threads.h"
#include "../decode/constraint.h"
#include "../decode/decoder.h"
#include "fuzz_common.h"

namespace {

using minielm::args::ArrayType;
using minielm::args::Value;
using minielm::decode::GenerateOptions;
using minielm::decode::Strategy;

// Upper bound on the bytes generate() allocates for this call (decoder.cc: KvForward, run_sampling, run_beam),
// plus the copies the N-API layer makes of the outputs.
double decode_bytes(const minielm::Config& c, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
                    int threads) {
  const double L = static_cast<double>(c.n_layer), C = static_cast<double>(c.n_embd), V = static_cast<double>(c.vocab_size);
  const double np = static_cast<double>(prompts.size()), steps = static_cast<double>(o.max_new_tokens);
  double P = 0;
  for (const auto& p : prompts) P += static_cast<double>(p.size());
  const bool beam = o.strategy == Strategy::Beam;
  const double per_prompt = beam ? static_cast<double>(o.num_beams) : o.strategy == Strategy::Greedy ? 1.0 : static_cast<double>(o.num_return_sequences);
  const double seqs = np * per_prompt;
  const double cap = P + seqs * (steps - 1);
  const double max_rows = std::max(P, seqs), max_head = beam ? seqs : std::max(np, seqs);
  const double T = threads;
  // KvForward: K and V caches, the step buffers (x, xn, q, att: C each; h: 4C), head rows, scores.
  double b = 4.0 * (2.0 * L * cap * C + max_rows * 8.0 * C + max_head * C + T * static_cast<double>(c.n_ctx));
  b += max_rows * (16.0 + 4.0) + 2.0 * L * max_rows * 8.0 + 3.0 * max_rows * 8.0;  // rows, head, k/v row pointers
  if (o.bf16_weights) b += 2.0 * (12.0 * C * C * L + V * C);
  b += 4.0 * max_head * V;  // logits of a step
  // Each sequence's cache-row table (its prompt's rows + one per new token), new tokens, log-probs.
  double tables = 0;
  for (const auto& p : prompts) tables += per_prompt * 4.0 * (static_cast<double>(p.size()) + steps);
  if (beam) {
    const double w = std::min(2.0 * per_prompt, V);
    b += 12.0 * seqs * w + 16.0 * seqs;                          // candidates, counts, row -> beam
    b += 2.0 * tables + 2.0 * seqs * steps * 8.0;                // live beams and the next ones (tokens + log-probs)
    b += (seqs + np) * steps * 8.0 + seqs * 24.0;                // finished hypotheses
    b += T * V * 4.0;                                            // processed rows (hygiene)
  } else {
    b += tables + seqs * steps * 8.0 + seqs * 64.0;
    b += T * V * 12.0;  // per-thread sampling scratch
    if (o.logits) b += 2.0 * seqs * steps * V * 4.0;  // per-step logits, and their JS copy
  }
  b += 2.0 * seqs * steps * 8.0;  // the JS copies of tokens and log-probs
  return b;
}

minielm::Config fuzz_config(FuzzedDataProvider& p) {
  minielm::Config c;
  auto dim = [&](int64_t hi) {
    switch (p.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
        return hi;
      case 1:
        return p.ConsumeIntegralInRange<int64_t>(1, hi);
      default:
        return p.ConsumeIntegralInRange<int64_t>(1, std::min<int64_t>(hi, 64));
    }
  };
  // One input in four: a long context (where per-sequence tables of a long prompt get large).
  const bool long_ctx = fuzz::one_in(p, 4);
  c.vocab_size = dim(1 << 22);
  c.n_ctx = long_ctx ? (1 << 16) - p.ConsumeIntegralInRange<int64_t>(0, 1 << 12) : dim(1 << 16);
  c.n_layer = dim(256);
  c.n_head = dim(64);
  c.n_embd = c.n_head * dim(std::max<int64_t>(1, (1 << 16) / c.n_head));
  return c;
}

// A prompt: mostly short, sometimes as long as the context (filled with one id, then a few fuzzed ones).
Value fuzz_prompt(FuzzedDataProvider& p, fuzz::Arena& arena, const minielm::Config& c, std::vector<std::vector<int32_t>>& keep) {
  if (fuzz::one_in(p, 16)) return fuzz::any_value(p, arena);
  size_t len;
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      len = static_cast<size_t>(std::max<int64_t>(0, c.n_ctx - p.ConsumeIntegralInRange<int64_t>(0, 2)));
      break;
    case 1:
      len = 0;
      break;
    default:
      len = p.ConsumeIntegralInRange<size_t>(1, 8);
  }
  std::vector<int32_t> ids(len, static_cast<int32_t>(p.ConsumeIntegralInRange<int64_t>(0, c.vocab_size - 1)));
  for (size_t i = 0; i < std::min<size_t>(len, 8); ++i)
    ids[i] = fuzz::one_in(p, 16) ? p.ConsumeIntegral<int32_t>()
                                                       : static_cast<int32_t>(p.ConsumeIntegralInRange<int64_t>(0, c.vocab_size - 1));
  keep.push_back(ids);
  return arena.array_of(keep.back());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  const minielm::Config c = fuzz_config(p);
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT", "MINIELM_OUT_OF_MEMORY"}, [&] { minielm::validate_config(c); })) return 0;

  std::vector<std::vector<int32_t>> keep;
  std::vector<Value> items(p.ConsumeIntegralInRange<size_t>(0, 6));
  for (Value& v : items) v = fuzz_prompt(p, arena, c, keep);

  fuzz::Object o;
  if (p.ConsumeBool()) o.props["strategy"] = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"greedy", "sample", "beam"})) : fuzz::any_value(p, arena);
  struct Num {
    const char* key;
    double lo, hi;
  };
  static const Num kNums[] = {{"maxNewTokens", 1, 64},     {"eosTokenId", -1, 64},       {"temperature", 0, 2},
                              {"topK", 0, 64},             {"topP", 0, 1},               {"seed", 0, 1e6},
                              {"numBeams", 1, 1100},       {"numReturnSequences", 1, 70000}, {"lengthPenalty", -2, 2},
                              {"noRepeatNgramSize", 0, 8}, {"repetitionPenalty", 0, 3},  {"minNewTokens", 0, 16}};
  for (const Num& n : kNums)
    if (p.ConsumeBool()) o.props[n.key] = fuzz::number_or_other(p, arena, n.lo, n.hi);
  if (p.ConsumeBool()) o.props["tokenLogprobs"] = fuzz::any_value(p, arena);
  if (p.ConsumeBool()) o.props["logits"] = fuzz::any_value(p, arena);
  if (p.ConsumeBool()) o.props["weights"] = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"fp32", "bf16"})) : fuzz::any_value(p, arena);
  // A word constraint over a vocabulary of the model's size or another (only built when small).
  const bool constrained = c.vocab_size <= 64 && fuzz::one_in(p, 4);
  const int64_t wc_vocab = p.ConsumeBool() ? c.vocab_size : p.ConsumeIntegralInRange<int64_t>(1, 64);

  std::vector<std::vector<int32_t>> prompts;
  GenerateOptions opt;
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
        prompts = minielm::args::parse_prompts(items);
        opt = minielm::args::parse_generate_options(o, [&](GenerateOptions& g) {
          if (!constrained) return;
          std::vector<std::string> tokens(static_cast<size_t>(wc_vocab), "a");
          g.word_constraint = std::make_shared<const minielm::decode::WordConstraint>(tokens, std::vector<uint8_t>(tokens.size(), 0),
                                                                                     std::vector<std::string>{"a"});
        });
      }))
    return 0;
  for (size_t i = 0; i < items.size(); ++i)
    FUZZ_CHECK(items[i].kind == Value::Kind::TypedArray && items[i].array_type == ArrayType::Int32 && prompts[i].size() == items[i].length,
               "prompt " + std::to_string(i));
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT", "MINIELM_OUT_OF_MEMORY"}, [&] { minielm::decode::validate_generate(c, prompts, opt); }))
    return 0;

  // Accepted: the decoder's assumptions.
  FUZZ_CHECK(!prompts.empty(), "no prompt");
  FUZZ_CHECK(opt.max_new_tokens >= 1 && opt.max_new_tokens <= c.n_ctx, "max_new_tokens");
  __int128 prompt_tokens = 0;
  for (const auto& pr : prompts) {
    FUZZ_CHECK(!pr.empty(), "an empty prompt passed");
    FUZZ_CHECK(static_cast<int64_t>(pr.size()) + opt.max_new_tokens <= c.n_ctx, "a prompt that overflows the context passed");
    for (int32_t t : pr) FUZZ_CHECK(t >= 0 && t < c.vocab_size, "a token outside the vocabulary passed");
    prompt_tokens += static_cast<__int128>(pr.size());
  }
  FUZZ_CHECK(opt.eos_token_id < c.vocab_size, "eos outside the vocabulary");
  FUZZ_CHECK(std::isfinite(opt.temperature) && opt.temperature > 0, "temperature");
  FUZZ_CHECK(opt.top_p > 0 && opt.top_p <= 1 && opt.top_k >= 0, "top_p / top_k");
  FUZZ_CHECK(opt.num_return_sequences >= 1 && opt.num_return_sequences <= minielm::decode::kMaxReturnSequences, "num_return_sequences");
  FUZZ_CHECK(opt.min_new_tokens >= 0 && opt.min_new_tokens <= opt.max_new_tokens, "min_new_tokens");
  FUZZ_CHECK(opt.no_repeat_ngram_size >= 0 && opt.no_repeat_ngram_size <= c.n_ctx, "no_repeat_ngram_size");
  FUZZ_CHECK(std::isfinite(opt.repetition_penalty) && opt.repetition_penalty > 0, "repetition_penalty");
  FUZZ_CHECK(!opt.word_constraint || opt.word_constraint->vocab_size() == c.vocab_size, "a constraint for another vocabulary passed");
  if (opt.strategy == Strategy::Greedy) FUZZ_CHECK(opt.num_return_sequences == 1, "greedy with several sequences");
  if (opt.strategy == Strategy::Beam) {
    FUZZ_CHECK(opt.num_beams >= 1 && opt.num_beams <= minielm::decode::kMaxBeams, "num_beams");
    FUZZ_CHECK(opt.num_return_sequences <= opt.num_beams && !opt.logits, "beam options");
  }
  const __int128 per_prompt = opt.strategy == Strategy::Beam ? opt.num_beams : opt.strategy == Strategy::Greedy ? 1 : opt.num_return_sequences;
  const __int128 seqs = static_cast<__int128>(prompts.size()) * per_prompt;
  FUZZ_CHECK(seqs <= minielm::decode::kMaxSequences, "more sequences than the per-call bound");
  const __int128 cache_rows = prompt_tokens + seqs * (opt.max_new_tokens - 1);
  FUZZ_CHECK(cache_rows <= 2147483647, "cache rows overflow the int32 row ids");
  const double mem = minielm::physical_memory_bytes();
  const double need = decode_bytes(c, prompts, opt, minielm::num_threads());
  if (mem > 0)
    FUZZ_CHECK(need <= 0.9 * mem, "an accepted generate call allocates about " + std::to_string(static_cast<int64_t>(need / 1e6)) +
                                      " MB, more than 90% of this machine's " + std::to_string(static_cast<int64_t>(mem / 1e6)) + " MB");
  return 0;
}
