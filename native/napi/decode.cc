// N-API bindings for batched decoding with a KV cache (greedy, sampling, beam search).
#include "common.h"

#include "../decode/decoder.h"
#include "../decode/kernels.h"

namespace minielm_napi {

namespace {

using minielm::decode::GenerateOptions;
using minielm::decode::Generated;
using minielm::decode::Strategy;
using minielm::decode::WordConstraint;

// A built vocabulary constraint, shared (read-only) by every generate call that uses it.
class NativeWordConstraint : public Napi::ObjectWrap<NativeWordConstraint>, public GuardedMethods<NativeWordConstraint> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeWordConstraint",
                       {
                           InstanceMethod("vocabSize", &NativeWordConstraint::G<&NativeWordConstraint::VocabSize>),
                           InstanceMethod("numWords", &NativeWordConstraint::G<&NativeWordConstraint::NumWords>),
                           InstanceMethod("step", &NativeWordConstraint::G<&NativeWordConstraint::Step>),
                           InstanceMethod("allowed", &NativeWordConstraint::G<&NativeWordConstraint::Allowed>),
                       });
  }
  explicit NativeWordConstraint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeWordConstraint>(info) {
    guard(info.Env(), [&] {
      if (info.Length() < 1 || !info[0].IsExternal())
        throw_js(info.Env(), "MINIELM_INVALID_ARGUMENT", "word constraints are made by createWordConstraint()");
      c_ = *info[0].As<Napi::External<std::shared_ptr<const WordConstraint>>>().Data();
      return info.Env().Undefined();
    });
  }
  std::shared_ptr<const WordConstraint> get() const { return c_; }

 private:
  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(c_->vocab_size())); }
  Napi::Value NumWords(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(c_->num_words())); }
  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t s = int_arg(env, info[0], "step: state", -1, c_->num_nodes());
    const int64_t t = int_arg(env, info[1], "step: token", 0, c_->vocab_size() - 1);
    return Napi::Number::New(env, c_->step(static_cast<int32_t>(s), static_cast<int32_t>(t)));
  }
  Napi::Value Allowed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t s = int_arg(env, info[0], "allowed: state", 0, c_->num_nodes() - 1);
    const std::vector<int32_t> a = c_->allowed(static_cast<int32_t>(s));
    Napi::Int32Array out = Napi::Int32Array::New(env, a.size());
    std::copy(a.begin(), a.end(), out.Data());
    Napi::Object o = Napi::Object::New(env);
    o.Set("tokens", out);
    o.Set("canEnd", c_->can_end(static_cast<int32_t>(s)));
    return o;
  }
  std::shared_ptr<const WordConstraint> c_;
};

// Builds the tries off the main thread (a catalog's words make a few hundred thousand nodes).
class ConstraintWorker : public PromiseWorker {
 public:
  ConstraintWorker(Napi::Env env, std::vector<std::string> tokens, std::vector<uint8_t> special, std::vector<std::string> words)
      : PromiseWorker(env), tokens_(std::move(tokens)), special_(std::move(special)), words_(std::move(words)) {}

 protected:
  void Run() override { c_ = std::make_shared<const WordConstraint>(std::move(tokens_), std::move(special_), words_); }
  Napi::Value Result(Napi::Env env) override {
    std::shared_ptr<const WordConstraint> holder = c_;
    auto ext = Napi::External<std::shared_ptr<const WordConstraint>>::New(env, &holder);
    return addon_data(env).word_constraint_constructor.New({ext});
  }

 private:
  std::vector<std::string> tokens_;
  std::vector<uint8_t> special_;
  std::vector<std::string> words_;
  std::shared_ptr<const WordConstraint> c_;
};

// Byte strings packed as (bytes, offsets[n + 1]).
std::vector<std::string> unpack_strings(Napi::Env env, Napi::Value bytes_v, Napi::Value offsets_v, const char* what) {
  if (!bytes_v.IsTypedArray() || bytes_v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      !offsets_v.IsTypedArray() || offsets_v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + ": expected a Uint8Array of bytes and an Int32Array of offsets");
  Napi::Uint8Array bytes = bytes_v.As<Napi::Uint8Array>();
  Napi::Int32Array off = offsets_v.As<Napi::Int32Array>();
  if (off.ElementLength() < 1) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + ": offsets needs n + 1 entries");
  std::vector<std::string> out;
  out.reserve(off.ElementLength() - 1);
  const int64_t total = static_cast<int64_t>(bytes.ElementLength());
  for (size_t i = 0; i + 1 < off.ElementLength(); ++i) {
    const int64_t a = off[i], b = off[i + 1];
    if (a < 0 || b < a || b > total) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + ": offsets must be ascending within the bytes");
    out.emplace_back(reinterpret_cast<const char*>(bytes.Data()) + a, static_cast<size_t>(b - a));
  }
  return out;
}

// createWordConstraint(tokenBytes, tokenOffsets, special: Uint8Array, wordBytes, wordOffsets) -> Promise
Napi::Value CreateWordConstraint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throw_js(env, "MINIELM_INVALID_ARGUMENT", "createWordConstraint(tokenBytes, tokenOffsets, special, wordBytes, wordOffsets)");
  std::vector<std::string> tokens = unpack_strings(env, info[0], info[1], "tokens");
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[2].As<Napi::Uint8Array>().ElementLength() != tokens.size())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "special must be a Uint8Array with one flag per token");
  Napi::Uint8Array sp = info[2].As<Napi::Uint8Array>();
  std::vector<uint8_t> special(sp.Data(), sp.Data() + sp.ElementLength());
  std::vector<std::string> words = unpack_strings(env, info[3], info[4], "words");
  auto* w = new ConstraintWorker(env, std::move(tokens), std::move(special), std::move(words));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Generation runs on the libuv pool with the model marked busy (acquire_model), so it cannot overlap a
// training step on the same weights.
class GenerateWorker : public ModelWorker {
 public:
  GenerateWorker(Napi::Env env, NativeModel* owner, Napi::Object self, std::vector<std::vector<int32_t>> prompts,
                 GenerateOptions opt)
      : ModelWorker(env, owner, self), prompts_(std::move(prompts)), opt_(opt) {}

 protected:
  void Run() override { out_ = minielm::decode::generate(*owner_->raw(), prompts_, opt_); }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array all = Napi::Array::New(env, out_.size());
    for (size_t i = 0; i < out_.size(); ++i) {
      Napi::Array list = Napi::Array::New(env, out_[i].size());
      for (size_t j = 0; j < out_[i].size(); ++j) {
        const Generated& g = out_[i][j];
        Napi::Object o = Napi::Object::New(env);
        Napi::Int32Array tokens = Napi::Int32Array::New(env, g.tokens.size());
        std::copy(g.tokens.begin(), g.tokens.end(), tokens.Data());
        o.Set("tokens", tokens);
        o.Set("logprob", g.logprob);
        o.Set("score", g.score);
        o.Set("eos", g.eos);
        if (opt_.token_logprobs) {
          Napi::Float32Array lp = Napi::Float32Array::New(env, g.token_logprobs.size());
          std::copy(g.token_logprobs.begin(), g.token_logprobs.end(), lp.Data());
          o.Set("tokenLogprobs", lp);
        }
        if (opt_.logits) {
          Napi::Float32Array lg = Napi::Float32Array::New(env, g.logits.size());
          std::copy(g.logits.begin(), g.logits.end(), lg.Data());
          o.Set("logits", lg);
        }
        list.Set(static_cast<uint32_t>(j), o);
      }
      all.Set(static_cast<uint32_t>(i), list);
    }
    return all;
  }

 private:
  std::vector<std::vector<int32_t>> prompts_;
  GenerateOptions opt_;
  std::vector<std::vector<Generated>> out_;
};

bool get_bool(const Napi::Object& o, const char* key) {
  return o.Has(key) && o.Get(key).ToBoolean().Value();
}

// generate(model, prompts: Int32Array[], options) -> Promise<Generation[][]>
Napi::Value Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsObject())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "generate(model, prompts: Int32Array[], options)");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<std::vector<int32_t>> prompts;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value v = arr.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "prompt " + std::to_string(i) + " must be an Int32Array of token ids");
    Napi::Int32Array t = v.As<Napi::Int32Array>();
    prompts.emplace_back(t.Data(), t.Data() + t.ElementLength());
  }
  Napi::Object o = info[2].As<Napi::Object>();
  GenerateOptions opt;
  std::string strategy = o.Has("strategy") && o.Get("strategy").IsString() ? o.Get("strategy").As<Napi::String>().Utf8Value() : "greedy";
  if (strategy == "greedy") opt.strategy = Strategy::Greedy;
  else if (strategy == "sample") opt.strategy = Strategy::Sample;
  else if (strategy == "beam") opt.strategy = Strategy::Beam;
  else throw_js(env, "MINIELM_INVALID_ARGUMENT", "strategy must be 'greedy', 'sample' or 'beam', got '" + strategy + "'");
  opt.max_new_tokens = get_int(o, "maxNewTokens", 16);
  opt.eos_token_id = get_int(o, "eosTokenId", -1);
  opt.temperature = get_number(o, "temperature", 1.0);
  opt.top_k = get_int(o, "topK", 0);
  opt.top_p = get_number(o, "topP", 1.0);
  opt.seed = static_cast<uint64_t>(get_int(o, "seed", 0, 0));
  opt.num_beams = get_int(o, "numBeams", 1);
  opt.num_return_sequences = get_int(o, "numReturnSequences", 1);
  opt.length_penalty = get_number(o, "lengthPenalty", 1.0);
  opt.no_repeat_ngram_size = get_int(o, "noRepeatNgramSize", 0);
  opt.repetition_penalty = get_number(o, "repetitionPenalty", 1.0);
  opt.min_new_tokens = get_int(o, "minNewTokens", 0);
  if (o.Has("wordConstraint") && !o.Get("wordConstraint").IsUndefined() && !o.Get("wordConstraint").IsNull()) {
    Napi::Value v = o.Get("wordConstraint");
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).word_constraint_constructor.Value()))
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "wordConstraint must be made by createWordConstraint()");
    opt.word_constraint = NativeWordConstraint::Unwrap(v.As<Napi::Object>())->get();
  }
  opt.token_logprobs = get_bool(o, "tokenLogprobs");
  opt.logits = get_bool(o, "logits");
  if (o.Has("weights") && o.Get("weights").IsString()) {
    const std::string w = o.Get("weights").As<Napi::String>().Utf8Value();
    if (w != "fp32" && w != "bf16") throw_js(env, "MINIELM_INVALID_ARGUMENT", "weights must be 'fp32' or 'bf16', got '" + w + "'");
    opt.bf16_weights = w == "bf16";
  }
  if (!info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "generate: model must be a model");
  NativeModel* unwrapped = NativeModel::Unwrap(info[0].As<Napi::Object>());
  minielm::decode::validate_generate(unwrapped->model(env).config(), prompts, opt);
  NativeModel* m = acquire_model(env, info[0], "generate: model");
  // model.cancel() stops the decode between steps (MINIELM_ABORTED).
  m->arm_cancel();
  opt.cancel = &m->cancel_flag();
  auto* w = new GenerateWorker(env, m, info[0].As<Napi::Object>(), std::move(prompts), opt);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value DecodeIsa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), minielm::decode::using_avx512() ? "avx512" : "generic");
}

}  // namespace

void InitDecode(Napi::Env env, Napi::Object exports) {
  Napi::Function wc = NativeWordConstraint::Init(env);
  addon_data(env).word_constraint_constructor = Napi::Persistent(wc);
  exports.Set("generate", Napi::Function::New(env, guarded<Generate>));
  exports.Set("createWordConstraint", Napi::Function::New(env, guarded<CreateWordConstraint>));
  exports.Set("decodeIsa", Napi::Function::New(env, guarded<DecodeIsa>));
}

}  // namespace minielm_napi
