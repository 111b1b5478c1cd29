// Batched generation with a KV cache for Gpt2<float>: greedy, temperature / top-k / top-p sampling and
// beam search (n-best, length penalty, EOS), prompts of different lengths in one batch. Plain C++17; the
// N-API binding is native/napi/decode.cc.
//
// The cache is a pool of rows, one per (sequence position), and each sequence owns a table of row ids for
// its positions. Prompts are never padded (every token sits at the position it has alone), beams and
// samples of one prompt share the prompt's rows, and reordering beams copies row ids, not keys/values.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "../model/gpt2.h"
#include "constraint.h"

namespace minielm {
namespace decode {

enum class Strategy { Greedy = 0, Sample = 1, Beam = 2 };

struct GenerateOptions {
  Strategy strategy = Strategy::Greedy;
  int64_t max_new_tokens = 16;
  int64_t eos_token_id = -1;  // < 0: no end-of-sequence token
  // Sampling (HF order: temperature, then top-k, then top-p). top_k = 0 and top_p = 1 disable them.
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  // Beam search: score = sum_logprob / new_len^length_penalty (new_len counts the EOS token).
  int64_t num_beams = 1;
  // Sequences per prompt: samples (sampling), best hypotheses (beam, <= num_beams), 1 (greedy).
  int64_t num_return_sequences = 1;
  double length_penalty = 1.0;
  bool token_logprobs = false;
  bool logits = false;  // raw logits of every step [steps, vocab] (greedy and sampling only)
  // Inference-only: run the matrices from a bf16 copy made for this call (fp32 arithmetic, half the weight
  // traffic per step; logits move by about 1e-2 relative, so results are close to, not equal to, fp32).
  bool bf16_weights = false;
  // Rewrite hygiene, applied to each step's logits before the pick (all off by default). The history they
  // look at is the new tokens only, never the prompt: a rewrite may and usually should repeat query words.
  // Ban a token that would complete an n-gram already among the new tokens (HF's no_repeat_ngram_size).
  int64_t no_repeat_ngram_size = 0;
  // CTRL penalty on tokens already generated: logit / p when positive, logit * p otherwise (1 = off).
  double repetition_penalty = 1.0;
  // The EOS token is masked until this many tokens have been generated.
  int64_t min_new_tokens = 0;
  // Every generated word must be a word of this list (null = unconstrained).
  std::shared_ptr<const WordConstraint> word_constraint;
  // Sequence log-probabilities (logprob, token_logprobs) stay those of the raw model; sampling draws from
  // and beam search ranks by the processed distribution (renormalised over what the hygiene allows).

  // Checked between decoding steps: when it becomes true, generate throws Error(MINIELM_ABORTED).
  const std::atomic<bool>* cancel = nullptr;
};

// Upper bounds on the options (a beam or sample count past these is a mistake, and unbounded values
// would overflow the int32 cache row ids or exhaust memory before any check could run).
constexpr int64_t kMaxBeams = 1024;
constexpr int64_t kMaxReturnSequences = 65536;
constexpr int64_t kMaxSequences = int64_t{1} << 20;  // prompts x sequences per prompt in one call

struct Generated {
  std::vector<int32_t> tokens;          // new tokens, the EOS token included when it ended the sequence
  double logprob = 0;                   // sum of log p(token) under the model (log_softmax of raw logits)
  double score = 0;                     // beam search: logprob / len^length_penalty; otherwise logprob
  bool eos = false;                     // ended by eos_token_id (else by max_new_tokens)
  std::vector<float> token_logprobs;    // per token, when asked for
  std::vector<float> logits;            // [tokens, vocab], when asked for
};

// One input token of a forward step: its id, its position, and the cache rows of positions 0..pos of its
// sequence (ctx[pos] is where this token's keys and values go).
struct Row {
  int32_t token;
  int32_t pos;
  const int32_t* ctx;
};

// Work run after the logits are ready, split over the engine's threads: fn(item, tid) for item in [0, count).
struct Phase {
  int64_t count;
  std::function<void(int64_t, int)> fn;
};

// The incremental (KV-cache) forward pass the search runs on: the CPU one in decoder.cc, or a device one
// (native/cuda/) that keeps the cache and computes the logits on the GPU and hands them back to the host,
// where the search (sampling, beams, hygiene, word constraint) runs unchanged.
class StepForward {
 public:
  explicit StepForward(int64_t cache_rows) : cap_(cache_rows) {}
  virtual ~StepForward() = default;
  virtual int64_t vocab() const = 0;
  // Hands out n consecutive cache rows (the cache holds cache_rows()).
  int32_t alloc(int64_t n);
  int64_t cache_rows() const { return cap_; }
  // Runs rows[0..n) through the model (their keys/values land in the cache), writes the logits of the rows
  // listed in head[0..nh) to the host array logits [nh, V], then runs the phases (on the host).
  // `independent`: no row attends to another row of this call (true for every step after the prefill).
  virtual void run(const Row* rows, int64_t n, const int32_t* head, int64_t nh, float* logits,
                   const std::vector<Phase>& phases, bool independent) = 0;

 protected:
  const int64_t cap_;

 private:
  int64_t next_ = 0;
};
// Makes the forward pass of one generate call: (cache rows, max rows per step, max logits rows per step).
using StepFactory = std::function<std::unique_ptr<StepForward>(int64_t, int64_t, int64_t)>;

// Throws Error(MINIELM_INVALID_ARGUMENT) naming the prompt or option at fault, or
// Error(MINIELM_OUT_OF_MEMORY) when the cache and logits the call needs exceed the machine's memory.
void validate_generate(const Config& config, const std::vector<std::vector<int32_t>>& prompts,
                       const GenerateOptions& options);

// One list of num_return_sequences (or, for beam search, at most that many) sequences per prompt;
// beam results are sorted by score, best first.
// `factory`: the forward pass to use (null: the CPU engine's, on the model's parameters).
std::vector<std::vector<Generated>> generate(Gpt2<float>& model, const std::vector<std::vector<int32_t>>& prompts,
                                             const GenerateOptions& options, const StepFactory* factory = nullptr);

}  // namespace decode
}  // namespace minielm
