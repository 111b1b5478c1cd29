// N-API bindings for batched decoding with a KV cache (greedy, sampling, beam search).
#include "common.h"

#include "../decode/amx.h"
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
      info.This().As<Napi::Object>().TypeTag(&kWordConstraintTag);
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

// createWordConstraint(tokenBytes, tokenOffsets, special: Uint8Array, wordBytes, wordOffsets) -> Promise
Napi::Value CreateWordConstraint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throw_js(env, "MINIELM_INVALID_ARGUMENT", "createWordConstraint(tokenBytes, tokenOffsets, special, wordBytes, wordOffsets)");
  minielm::args::ConstraintInputs in = to_js(env, [&] {
    return minielm::args::constraint_inputs(read_value(info[0]), read_value(info[1]), read_value(info[2]), read_value(info[3]),
                                            read_value(info[4]));
  });
  auto* w = new ConstraintWorker(env, std::move(in.tokens), std::move(in.special), std::move(in.words));
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
  void Run() override {
    if (minielm::cuda::DeviceModel* d = owner_->device()) {
      owner_->before_device_job();
      out_ = d->generate(prompts_, opt_);
      return;
    }
    out_ = minielm::decode::generate(*owner_->raw(), prompts_, opt_);
  }

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

// generate(model, prompts: Int32Array[], options) -> Promise<Generation[][]>
Napi::Value Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[1].IsArray() || !info[2].IsObject())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "generate(model, prompts: Int32Array[], options)");
  Napi::Array arr = info[1].As<Napi::Array>();
  std::vector<minielm::args::Value> items;
  for (uint32_t i = 0; i < arr.Length(); ++i) items.push_back(read_value(arr.Get(i)));
  std::vector<std::vector<int32_t>> prompts = to_js(env, [&] { return minielm::args::parse_prompts(items); });
  items.clear();
  Napi::Object o = info[2].As<Napi::Object>();
  GenerateOptions opt = to_js(env, [&] {
    return minielm::args::parse_generate_options(fields(o), [&](GenerateOptions& g) {
      if (!o.Has("wordConstraint")) return;
      Napi::Value v = o.Get("wordConstraint");
      if (v.IsUndefined() || v.IsNull()) return;
      if (!has_tag(v, kWordConstraintTag))
        throw_js(env, "MINIELM_INVALID_ARGUMENT", "wordConstraint must be made by createWordConstraint()");
      g.word_constraint = NativeWordConstraint::Unwrap(v.As<Napi::Object>())->get();
    });
  });
  NativeModel* unwrapped = unwrap_model(env, info[0], "generate: model");
  to_js(env, [&] { minielm::decode::validate_generate(unwrapped->model(env).config(), prompts, opt); });
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

// The kernels of decoding with bf16 weights: "amx" when the matrix products run on AMX tiles.
Napi::Value DecodeBf16Isa(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), minielm::decode::using_amx() ? "amx" : minielm::decode::using_avx512() ? "avx512" : "generic");
}

}  // namespace

void InitDecode(Napi::Env env, Napi::Object exports) {
  Napi::Function wc = NativeWordConstraint::Init(env);
  addon_data(env).word_constraint_constructor = Napi::Persistent(wc);
  exports.Set("generate", Napi::Function::New(env, guarded<Generate>));
  exports.Set("createWordConstraint", Napi::Function::New(env, guarded<CreateWordConstraint>));
  exports.Set("decodeIsa", Napi::Function::New(env, guarded<DecodeIsa>));
  exports.Set("decodeBf16Isa", Napi::Function::New(env, guarded<DecodeBf16Isa>));
}

}  // namespace minielm_napi
