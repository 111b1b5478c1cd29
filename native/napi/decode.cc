// N-API bindings for batched decoding with a KV cache (greedy, sampling, beam search).
#include "common.h"

#include "../decode/decoder.h"
#include "../decode/kernels.h"

namespace minielm_napi {

namespace {

using minielm::decode::GenerateOptions;
using minielm::decode::Generated;
using minielm::decode::Strategy;

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
  exports.Set("generate", Napi::Function::New(env, guarded<Generate>));
  exports.Set("decodeIsa", Napi::Function::New(env, guarded<DecodeIsa>));
}

}  // namespace minielm_napi
