// The argument checks of the N-API entry points as plain C++ (no napi.h): sizes, shapes, ranges, products,
// config / optimizer / decoding / alignment options and batch layouts. common.h reads each JS value once
// into an args::Value and calls these, so the checks that guard the kernels against untrusted sizes run
// the same under Node and in the libFuzzer targets of native/fuzz/. Errors are minielm::Error with the
// codes and messages the N-API layer has always thrown (guard() turns them into coded JS errors).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.h"
#include "../decode/decoder.h"
#include "../loss/align.h"
#include "../model/gpt2.h"

namespace minielm {
namespace args {

// The typed-array element types the parsers tell apart (every other kind is Other).
enum class ArrayType : uint8_t { Other = 0, Uint8, Int32, Float32, Float64 };

// What one JS value (an argument, or an object's property) holds, as far as the parsers care. `Missing`
// is an absent property, undefined or null: every parser treats those three alike. `data` points at the
// first element of a typed array (valid while the JS call runs); `truthy` is JS ToBoolean.
struct Value {
  enum class Kind : uint8_t { Missing = 0, Number, String, TypedArray, Other };
  Kind kind = Kind::Missing;
  double number = 0;
  std::string string;
  ArrayType array_type = ArrayType::Other;
  const void* data = nullptr;
  size_t length = 0;  // elements of a typed array
  bool truthy = false;

  static Value missing() { return Value(); }
  static Value of_number(double d) {
    Value v;
    v.kind = Kind::Number;
    v.number = d;
    v.truthy = d != 0 && !std::isnan(d);
    return v;
  }
  static Value of_string(std::string s) {
    Value v;
    v.kind = Kind::String;
    v.truthy = !s.empty();
    v.string = std::move(s);
    return v;
  }
  static Value of_array(ArrayType t, const void* data, size_t length) {
    Value v;
    v.kind = Kind::TypedArray;
    v.array_type = t;
    v.data = data;
    v.length = length;
    v.truthy = true;
    return v;
  }
  static Value other(bool truthy) {
    Value v;
    v.kind = Kind::Other;
    v.truthy = truthy;
    return v;
  }
};

[[noreturn]] inline void invalid(const std::string& message) { throw Error("MINIELM_INVALID_ARGUMENT", message); }

// a * b for sizes, or false when it overflows int64 (or either is negative).
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  return !__builtin_mul_overflow(a, b, out);
}

// The doubles whose conversion to int64 is defined: [-2^63, 2^63).
inline bool fits_int64(double d) { return d >= -9223372036854775808.0 && d < 9223372036854775808.0; }

// A whole number in [lo, hi] (`what` names it in the error).
inline int64_t int_arg(const Value& v, const std::string& what, int64_t lo, int64_t hi) {
  if (v.kind != Value::Kind::Number) invalid(what + " must be a number");
  const double d = v.number;
  // The range is checked again after the cast: a bound past 2^53 is rounded when compared as a double.
  const bool ok = std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi) &&
                  fits_int64(d) && static_cast<int64_t>(d) >= lo && static_cast<int64_t>(d) <= hi;
  if (!ok)
    invalid(what + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(d));
  return static_cast<int64_t>(d);
}

// An optional finite number: `fallback` when missing.
inline double number_field(const Value& v, const char* key, double fallback) {
  if (v.kind == Value::Kind::Missing) return fallback;
  if (v.kind != Value::Kind::Number) invalid(std::string(key) + " must be a number");
  const double d = v.number;
  if (!std::isfinite(d)) invalid(std::string(key) + " must be finite, got " + std::to_string(d));
  return d;
}

// number_field clamped into [lo, hi] and truncated (a double past int64's range is undefined behaviour to
// convert); callers validate the range with their own, more specific message.
inline int64_t int_field(const Value& v, const char* key, int64_t fallback, int64_t lo = -(int64_t{1} << 53),
                         int64_t hi = int64_t{1} << 53) {
  const double d = number_field(v, key, static_cast<double>(fallback));
  if (d <= static_cast<double>(lo)) return lo;
  if (d >= static_cast<double>(hi)) return hi;
  // lo < d < hi, so d is inside int64's range; the bounds again for those rounded as doubles.
  const int64_t r = static_cast<int64_t>(d);
  return r < lo ? lo : r > hi ? hi : r;
}

// An optional string: `fallback` when missing.
inline std::string string_field(const Value& v, const char* key, const std::string& fallback) {
  if (v.kind == Value::Kind::Missing) return fallback;
  if (v.kind != Value::Kind::String) invalid(std::string(key) + " must be a string");
  return v.string;
}

// A model seed from a JS number: whole numbers in [0, 2^64) as they are, negative ones modulo 2^64 (what
// the x86-64 conversion always gave), everything else (NaN, infinities, |x| >= 2^64) 0.
inline uint64_t seed_from(double d) {
  if (!std::isfinite(d)) return 0;
  d = std::trunc(d);
  if (d >= 0 && d < 18446744073709551616.0) return static_cast<uint64_t>(d);
  if (d < 0 && d >= -9223372036854775808.0) return static_cast<uint64_t>(static_cast<int64_t>(d));
  return 0;
}

// ---- model config and optimizer ----

// The fields of a config object (minielm::validate_config checks the values).
template <typename Get>
Config parse_config(Get&& get) {
  Config c;
  c.vocab_size = int_field(get("vocab_size"), "vocab_size", 0);
  c.n_ctx = int_field(get("n_ctx"), "n_ctx", 0);
  c.n_layer = int_field(get("n_layer"), "n_layer", 0);
  c.n_head = int_field(get("n_head"), "n_head", 0);
  c.n_embd = int_field(get("n_embd"), "n_embd", 0);
  c.score_head = get("score_head").truthy;
  return c;
}

template <typename Get>
OptimConfig parse_optim(Get&& get) {
  OptimConfig c;
  c.lr = number_field(get("lr"), "lr", c.lr);
  c.beta1 = number_field(get("beta1"), "beta1", c.beta1);
  c.beta2 = number_field(get("beta2"), "beta2", c.beta2);
  c.eps = number_field(get("eps"), "eps", c.eps);
  c.weight_decay = number_field(get("weightDecay"), "weightDecay", c.weight_decay);
  c.grad_clip = number_field(get("gradClip"), "gradClip", c.grad_clip);
  c.warmup_steps = int_field(get("warmupSteps"), "warmupSteps", 0, 0);
  c.total_steps = int_field(get("totalSteps"), "totalSteps", 0, 0);
  c.min_lr_ratio = number_field(get("minLrRatio"), "minLrRatio", c.min_lr_ratio);
  const Value s = get("schedule");
  const std::string sched = s.kind == Value::Kind::String ? s.string : "cosine";
  if (sched == "cosine") c.schedule = Schedule::Cosine;
  else if (sched == "linear") c.schedule = Schedule::Linear;
  else if (sched == "constant") c.schedule = Schedule::Constant;
  else invalid("schedule must be 'cosine', 'linear' or 'constant', got '" + sched + "'");
  return c;
}

// ---- batches ----

// A batch whose arrays are owned copies (the worker must not read JS memory off the main thread).
struct OwnedBatch {
  std::vector<int32_t> tokens, targets;
  std::vector<float> weight;
  std::vector<uint8_t> mask;
  int64_t B = 0, T = 0;
  Batch view() const {
    Batch b;
    b.tokens = tokens.data();
    b.targets = targets.empty() ? nullptr : targets.data();
    b.loss_weight = weight.empty() ? nullptr : weight.data();
    b.attn_mask = mask.empty() ? nullptr : mask.data();
    b.B = B;
    b.T = T;
    return b;
  }
};

// The largest batch * seq a batch may have (its arrays are copied, and the activations sized from it).
constexpr int64_t kMaxBatchElements = int64_t{1} << 40;

struct BatchShape {
  int64_t B = 0, T = 0, n = 0;  // n = B * T
};

// batch.batch and batch.seq as doubles (already known to be finite numbers).
inline BatchShape batch_shape(double B, double T) {
  // Sizes are checked here, in C++, whatever the caller validated: a product that overflows could pass
  // the length checks and let the kernels write past the arrays.
  constexpr double kMaxDim = 2147483647.0;
  if (!(B >= 1 && T >= 1 && B <= kMaxDim && T <= kMaxDim) || B != std::floor(B) || T != std::floor(T))
    invalid("batch.batch and batch.seq must be positive integers below 2^31");
  BatchShape s;
  s.B = static_cast<int64_t>(B);
  s.T = static_cast<int64_t>(T);
  if (!checked_mul(s.B, s.T, &s.n) || s.n > kMaxBatchElements) invalid("batch.batch * batch.seq is too large");
  return s;
}

template <typename E>
constexpr ArrayType array_type_of();
template <>
constexpr ArrayType array_type_of<uint8_t>() { return ArrayType::Uint8; }
template <>
constexpr ArrayType array_type_of<int32_t>() { return ArrayType::Int32; }
template <>
constexpr ArrayType array_type_of<float>() { return ArrayType::Float32; }
template <>
constexpr ArrayType array_type_of<double>() { return ArrayType::Float64; }

// batch.<key>: a typed array of E with exactly `expect` elements, copied; empty when missing and optional.
template <typename E>
std::vector<E> copy_array(const Value& v, const char* key, int64_t expect, bool required) {
  std::vector<E> out;
  if (v.kind == Value::Kind::Missing) {
    if (required) invalid(std::string("batch.") + key + " is required");
    return out;
  }
  if (v.kind != Value::Kind::TypedArray || v.array_type != array_type_of<E>())
    invalid(std::string("batch.") + key + " has the wrong array type");
  if (expect < 0 || static_cast<int64_t>(v.length) != expect)
    invalid(std::string("batch.") + key + " has " + std::to_string(v.length) + " elements, expected batch * seq = " +
            std::to_string(expect));
  out.resize(static_cast<size_t>(expect));
  if (expect > 0) std::memcpy(out.data(), v.data, static_cast<size_t>(expect) * sizeof(E));
  return out;
}

// {batch, seq, tokens: Int32Array, targets?: Int32Array, lossMask?: Float32Array, attentionMask?: Uint8Array}.
template <typename Get>
OwnedBatch parse_batch(Get&& get) {
  const double B = number_field(get("batch"), "batch", 0);
  const double T = number_field(get("seq"), "seq", 0);
  const BatchShape s = batch_shape(B, T);
  OwnedBatch b;
  b.B = s.B;
  b.T = s.T;
  b.tokens = copy_array<int32_t>(get("tokens"), "tokens", s.n, true);
  b.targets = copy_array<int32_t>(get("targets"), "targets", s.n, false);
  b.weight = copy_array<float>(get("lossMask"), "lossMask", s.n, false);
  b.mask = copy_array<uint8_t>(get("attentionMask"), "attentionMask", s.n, false);
  return b;
}

// One score-head training step {…batch, labels: Float32Array(batch), weights?: Float32Array(batch)}.
struct ScoreStep {
  OwnedBatch batch;
  std::vector<float> labels, weights;
};

template <typename Get>
ScoreStep parse_score_step(Get&& get) {
  ScoreStep s;
  s.batch = parse_batch(get);
  s.labels = copy_array<float>(get("labels"), "labels", s.batch.B, true);
  s.weights = copy_array<float>(get("weights"), "weights", s.batch.B, false);
  return s;
}

// ---- byte strings, prompts, word constraints ----

// Byte strings packed as (bytes: Uint8Array, offsets: Int32Array of n + 1 ascending offsets).
inline std::vector<std::string> unpack_strings(const Value& bytes, const Value& offsets, const char* what) {
  if (bytes.kind != Value::Kind::TypedArray || bytes.array_type != ArrayType::Uint8 ||
      offsets.kind != Value::Kind::TypedArray || offsets.array_type != ArrayType::Int32)
    invalid(std::string(what) + ": expected a Uint8Array of bytes and an Int32Array of offsets");
  if (offsets.length < 1) invalid(std::string(what) + ": offsets needs n + 1 entries");
  const char* base = static_cast<const char*>(bytes.data);
  const int32_t* off = static_cast<const int32_t*>(offsets.data);
  const int64_t total = static_cast<int64_t>(bytes.length);
  std::vector<std::string> out;
  out.reserve(offsets.length - 1);
  for (size_t i = 0; i + 1 < offsets.length; ++i) {
    int32_t a32, b32;
    std::memcpy(&a32, off + i, sizeof a32);
    std::memcpy(&b32, off + i + 1, sizeof b32);
    const int64_t a = a32, b = b32;
    if (a < 0 || b < a || b > total) invalid(std::string(what) + ": offsets must be ascending within the bytes");
    out.emplace_back(base + a, static_cast<size_t>(b - a));
  }
  return out;
}

struct ConstraintInputs {
  std::vector<std::string> tokens;
  std::vector<uint8_t> special;
  std::vector<std::string> words;
};

// createWordConstraint(tokenBytes, tokenOffsets, special, wordBytes, wordOffsets).
inline ConstraintInputs constraint_inputs(const Value& token_bytes, const Value& token_offsets, const Value& special,
                                          const Value& word_bytes, const Value& word_offsets) {
  ConstraintInputs in;
  in.tokens = unpack_strings(token_bytes, token_offsets, "tokens");
  if (special.kind != Value::Kind::TypedArray || special.array_type != ArrayType::Uint8 || special.length != in.tokens.size())
    invalid("special must be a Uint8Array with one flag per token");
  const uint8_t* sp = static_cast<const uint8_t*>(special.data);
  in.special.assign(sp, sp + special.length);
  in.words = unpack_strings(word_bytes, word_offsets, "words");
  return in;
}

// The prompts of generate(): each an Int32Array of token ids (validate_generate checks the ids).
inline std::vector<std::vector<int32_t>> parse_prompts(const std::vector<Value>& items) {
  std::vector<std::vector<int32_t>> prompts;
  prompts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const Value& v = items[i];
    if (v.kind != Value::Kind::TypedArray || v.array_type != ArrayType::Int32)
      invalid("prompt " + std::to_string(i) + " must be an Int32Array of token ids");
    std::vector<int32_t> p(v.length);
    if (v.length > 0) std::memcpy(p.data(), v.data, v.length * sizeof(int32_t));
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// generate()'s options object; `word_constraint(options)` sets options.word_constraint (it needs the JS
// object, so the N-API layer does it), at the point where the property has always been read.
template <typename Get, typename WordConstraintFn>
decode::GenerateOptions parse_generate_options(Get&& get, WordConstraintFn&& word_constraint) {
  using decode::Strategy;
  decode::GenerateOptions opt;
  const Value s = get("strategy");
  const std::string strategy = s.kind == Value::Kind::String ? s.string : "greedy";
  if (strategy == "greedy") opt.strategy = Strategy::Greedy;
  else if (strategy == "sample") opt.strategy = Strategy::Sample;
  else if (strategy == "beam") opt.strategy = Strategy::Beam;
  else invalid("strategy must be 'greedy', 'sample' or 'beam', got '" + strategy + "'");
  opt.max_new_tokens = int_field(get("maxNewTokens"), "maxNewTokens", 16);
  opt.eos_token_id = int_field(get("eosTokenId"), "eosTokenId", -1);
  opt.temperature = number_field(get("temperature"), "temperature", 1.0);
  opt.top_k = int_field(get("topK"), "topK", 0);
  opt.top_p = number_field(get("topP"), "topP", 1.0);
  opt.seed = static_cast<uint64_t>(int_field(get("seed"), "seed", 0, 0));
  opt.num_beams = int_field(get("numBeams"), "numBeams", 1);
  opt.num_return_sequences = int_field(get("numReturnSequences"), "numReturnSequences", 1);
  opt.length_penalty = number_field(get("lengthPenalty"), "lengthPenalty", 1.0);
  opt.no_repeat_ngram_size = int_field(get("noRepeatNgramSize"), "noRepeatNgramSize", 0);
  opt.repetition_penalty = number_field(get("repetitionPenalty"), "repetitionPenalty", 1.0);
  opt.min_new_tokens = int_field(get("minNewTokens"), "minNewTokens", 0);
  word_constraint(opt);
  opt.token_logprobs = get("tokenLogprobs").truthy;
  opt.logits = get("logits").truthy;
  const Value w = get("weights");
  if (w.kind == Value::Kind::String) {
    if (w.string != "fp32" && w.string != "bf16") invalid("weights must be 'fp32' or 'bf16', got '" + w.string + "'");
    opt.bf16_weights = w.string == "bf16";
  }
  return opt;
}

// ---- distillation and preference steps ----

template <typename Get>
loss::DistillOptions parse_distill(Get&& get) {
  using loss::Divergence;
  loss::DistillOptions d;
  const std::string l = string_field(get("loss"), "loss", "reverse_kl");
  if (l == "reverse_kl") d.divergence = Divergence::ReverseKl;
  else if (l == "forward_kl") d.divergence = Divergence::ForwardKl;
  else if (l == "jsd") d.divergence = Divergence::Jsd;
  else invalid("loss must be 'reverse_kl', 'forward_kl' or 'jsd', got '" + l + "'");
  d.beta = number_field(get("beta"), "beta", d.beta);
  d.temperature = number_field(get("temperature"), "temperature", d.temperature);
  d.ce_weight = number_field(get("ceWeight"), "ceWeight", d.ce_weight);
  loss::validate_distill_options(d);
  return d;
}

template <typename Get>
loss::DpoOptions parse_dpo(Get&& get) {
  using loss::DpoLoss;
  loss::DpoOptions d;
  const std::string type = string_field(get("lossType"), "lossType", "sigmoid");
  if (type == "sigmoid") d.loss = DpoLoss::Sigmoid;
  else if (type == "ipo") d.loss = DpoLoss::Ipo;
  else if (type == "hinge") d.loss = DpoLoss::Hinge;
  else invalid("lossType must be 'sigmoid', 'ipo' or 'hinge', got '" + type + "'");
  d.beta = number_field(get("beta"), "beta", d.beta);
  d.label_smoothing = number_field(get("labelSmoothing"), "labelSmoothing", d.label_smoothing);
  loss::validate_dpo_options(d);
  return d;
}

// A DPO batch's own layout needs (dpo_step checks the rest: 2B rows, a response token in every row).
inline void check_dpo_batch(const OwnedBatch& b) {
  if (b.targets.empty() || b.weight.empty()) invalid("a DPO batch needs targets and a lossMask marking the response tokens");
}

// dpoStep's refLogps: missing, or a Float64Array of one finite value per sequence (chosen then rejected).
inline std::vector<double> parse_ref_logps(const Value& v, int64_t sequences) {
  std::vector<double> ref;
  if (v.kind == Value::Kind::Missing) return ref;
  if (v.kind != Value::Kind::TypedArray || v.array_type != ArrayType::Float64)
    invalid("refLogps must be a Float64Array (chosen then rejected)");
  if (static_cast<int64_t>(v.length) != sequences)
    invalid("refLogps has " + std::to_string(v.length) + " values, expected one per sequence (" + std::to_string(sequences) + ")");
  ref.resize(v.length);
  if (v.length > 0) std::memcpy(ref.data(), v.data, v.length * sizeof(double));
  for (double x : ref)
    if (!std::isfinite(x)) invalid("refLogps must be finite");
  return ref;
}

// ---- kernel benches and GEMM ----

struct BenchAlignArgs {
  std::string kind;
  int64_t rows = 0, vocab = 0;
  double seconds = 0;
};

// benchAlignKernel(kind, rows, vocab, seconds): it allocates a few rows x vocab buffers, at most 2^28
// elements each.
inline BenchAlignArgs parse_bench_align(const Value& kind, const Value& rows, const Value& vocab, const Value& seconds) {
  if (kind.kind != Value::Kind::String || rows.kind != Value::Kind::Number || vocab.kind != Value::Kind::Number ||
      seconds.kind != Value::Kind::Number)
    invalid("benchAlignKernel(kind, rows, vocab, seconds)");
  BenchAlignArgs a;
  a.kind = kind.string;
  if (a.kind != "reverse_kl" && a.kind != "dpo" && a.kind != "grpo") invalid("benchAlignKernel: kind must be 'reverse_kl', 'dpo' or 'grpo'");
  a.rows = int_arg(rows, "benchAlignKernel: rows", 1, int64_t{1} << 28);
  a.vocab = int_arg(vocab, "benchAlignKernel: vocab", 1, int64_t{1} << 28);
  int64_t n = 0;
  if (!checked_mul(a.rows, a.vocab, &n) || n > (int64_t{1} << 28))
    invalid("benchAlignKernel: rows * vocab may be at most 2^28");
  a.seconds = seconds.number;
  if (!(a.seconds >= 0 && a.seconds <= 600)) invalid("benchAlignKernel: seconds must be in [0, 600]");
  return a;
}

struct GemmShape {
  int64_t M = 0, N = 0, K = 0;
};

// gemm(ta, tb, M, N, K, A, B): dims in [1, 2^31], M*N at most 2^32, A of M*K and B of K*N elements.
inline GemmShape parse_gemm(const Value& M, const Value& N, const Value& K, const Value& A, const Value& B) {
  const int64_t kMax = int64_t{1} << 31;
  GemmShape s;
  s.M = int_arg(M, "gemm: M", 1, kMax);
  s.N = int_arg(N, "gemm: N", 1, kMax);
  s.K = int_arg(K, "gemm: K", 1, kMax);
  if (A.kind != Value::Kind::TypedArray || A.array_type != ArrayType::Float32) invalid("gemm: A must be a Float32Array");
  if (B.kind != Value::Kind::TypedArray || B.array_type != ArrayType::Float32) invalid("gemm: B must be a Float32Array");
  int64_t mk = 0, kn = 0, mn = 0;
  if (!checked_mul(s.M, s.K, &mk) || !checked_mul(s.K, s.N, &kn) || !checked_mul(s.M, s.N, &mn) || mn > (int64_t{1} << 32))
    invalid("gemm: M*K, K*N or M*N is too large");
  if (static_cast<int64_t>(A.length) != mk || static_cast<int64_t>(B.length) != kn)
    invalid("gemm: A must have M*K and B K*N elements");
  return s;
}

// benchGemm(ta, tb, M, N, K, seconds): it allocates all three matrices, each at most 2^28 floats (1 GiB).
inline GemmShape parse_bench_gemm(const Value& M, const Value& N, const Value& K, const Value& seconds) {
  const int64_t kMax = int64_t{1} << 28;
  GemmShape s;
  s.M = int_arg(M, "benchGemm: M", 1, kMax);
  s.N = int_arg(N, "benchGemm: N", 1, kMax);
  s.K = int_arg(K, "benchGemm: K", 1, kMax);
  int64_t mk = 0, kn = 0, mn = 0;
  if (!checked_mul(s.M, s.K, &mk) || !checked_mul(s.K, s.N, &kn) || !checked_mul(s.M, s.N, &mn) || mk > kMax || kn > kMax || mn > kMax)
    invalid("benchGemm: each matrix may hold at most 2^28 elements");
  if (seconds.kind != Value::Kind::Number || !(seconds.number >= 0 && seconds.number <= 600))
    invalid("benchGemm: seconds must be in [0, 600]");
  return s;
}

}  // namespace args
}  // namespace minielm
