// N-API bindings for the distillation (reverse KL / forward KL / JSD) and preference (sequence log-prob, DPO)
// training steps. The math lives in native/loss/; this file parses arguments, marks the models busy for
// the job and turns the results into plain objects.
#include "common.h"

#include "../loss/align.h"
#include "../loss/selftest_align.h"

namespace minielm_napi {
namespace {

using minielm::loss::DistillOptions;
using minielm::loss::DpoOptions;

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) throw_js(info.Env(), "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

DistillOptions parse_distill(const Napi::Object& o) {
  return to_js(o.Env(), [&] { return minielm::args::parse_distill(fields(o)); });
}

DpoOptions parse_dpo(const Napi::Object& o) {
  return to_js(o.Env(), [&] { return minielm::args::parse_dpo(fields(o)); });
}

// The GRPO step and the log-prob entries run on the CPU engine only for now (native/cuda/loss.cu has their
// kernels, the steps are not wired to the device yet): say so rather than train a stale host copy. Distillation
// and DPO run on both.
inline void cpu_only(NativeModel* a, NativeModel* b, const char* what) {
  if ((a && a->device()) || (b && b->device()))
    throw minielm::Error("MINIELM_UNSUPPORTED", std::string(what) +
                                                    " does not run on a CUDA device yet; use models on device 'cpu' for it");
}

// Keeps up to two models busy (and their JS objects alive) until the job has finished.
class TwoModelWorker : public PromiseWorker {
 public:
  TwoModelWorker(Napi::Env env, NativeModel* a, Napi::Value va, NativeModel* b, Napi::Value vb)
      : PromiseWorker(env), a_(a), b_(b) {
    ra_ = Napi::Persistent(va.As<Napi::Object>());
    if (b_) rb_ = Napi::Persistent(vb.As<Napi::Object>());
  }

 protected:
  void Done() override {
    a_->release();
    if (b_) b_->release();
  }
  NativeModel* a_;
  NativeModel* b_;
  Napi::ObjectReference ra_, rb_;
};

// Acquires `first` then `second` (optional); releases `first` again when `second` is busy.
std::pair<NativeModel*, NativeModel*> acquire_two(Napi::Env env, Napi::Value first, const char* first_name,
                                                  Napi::Value second, const char* second_name) {
  if (!second.IsUndefined() && !second.IsNull() && second.IsObject() && first.IsObject() &&
      first.As<Napi::Object>().StrictEquals(second.As<Napi::Object>()))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string("the ") + first_name + " and the " + second_name + " must be different models");
  NativeModel* a = acquire_model(env, first, first_name);
  NativeModel* b = nullptr;
  if (!second.IsUndefined() && !second.IsNull()) {
    try {
      b = acquire_model(env, second, second_name);
    } catch (...) {
      a->release();
      throw;
    }
  }
  return {a, b};
}

class DistillWorker : public TwoModelWorker {
 public:
  DistillWorker(Napi::Env env, NativeModel* s, Napi::Value vs, NativeModel* t, Napi::Value vt, OwnedBatch b,
                DistillOptions o, OptimConfig opt)
      : TwoModelWorker(env, s, vs, t, vt), batch_(std::move(b)), o_(o), opt_(opt) {}

 protected:
  void Run() override {
    if (a_->device() && b_->device()) {
      a_->before_device_job();
      b_->before_device_job();
      a_->after_device_train();
      r_ = a_->device()->distill_step(*b_->device(), batch_.view(), o_, opt_);
      return;
    }
    if (a_->device() || b_->device())
      throw minielm::Error("MINIELM_UNSUPPORTED", std::string("distillStep: the student is on ") + (a_->device() ? "a CUDA device" : "the CPU") +
                                                      " and the teacher on " + (b_->device() ? "a CUDA device" : "the CPU") +
                                                      "; load both on the same device");
    r_ = minielm::loss::distill_step(*a_->raw(), *b_->raw(), batch_.view(), o_, opt_);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = stats_to_js(env, r_.step);
    o.Set("kl", r_.divergence);
    if (o_.ce_weight > 0) o.Set("ce", r_.ce);
    return o;
  }

 private:
  OwnedBatch batch_;
  DistillOptions o_;
  OptimConfig opt_;
  minielm::loss::DistillStepStats r_;
};

Napi::Value DistillStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5) throw_js(env, "MINIELM_INVALID_ARGUMENT", "distillStep(student, teacher, batch, options, optim)");
  OwnedBatch b = parse_batch(object_arg(info, 2, "batch"));
  DistillOptions o = parse_distill(object_arg(info, 3, "options"));
  OptimConfig opt = parse_optim(object_arg(info, 4, "optimizer options"));
  auto [s, t] = acquire_two(env, info[0], "student", info[1], "teacher");
  if (!t) {
    s->release();
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "teacher must be a model");
  }
  auto* w = new DistillWorker(env, s, info[0], t, info[1], std::move(b), o, opt);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

class DpoWorker : public TwoModelWorker {
 public:
  DpoWorker(Napi::Env env, NativeModel* pol, Napi::Value vp, NativeModel* ref, Napi::Value vr, OwnedBatch b,
            std::vector<double> ref_logps, DpoOptions o, OptimConfig opt)
      : TwoModelWorker(env, pol, vp, ref, vr), batch_(std::move(b)), ref_logps_(std::move(ref_logps)), o_(o), opt_(opt) {}

 protected:
  void Run() override {
    if (a_->device() && (!b_ || b_->device())) {
      a_->before_device_job();
      if (b_) b_->before_device_job();
      a_->after_device_train();
      r_ = a_->device()->dpo_step(b_ ? b_->device() : nullptr, ref_logps_.empty() ? nullptr : ref_logps_.data(), batch_.view(), o_, opt_);
      return;
    }
    if (a_->device() || (b_ && b_->device()))
      throw minielm::Error("MINIELM_UNSUPPORTED", std::string("dpoStep: the policy is on ") + (a_->device() ? "a CUDA device" : "the CPU") +
                                                      " and the reference on " + (b_->device() ? "a CUDA device" : "the CPU") +
                                                      "; load both on the same device");
    r_ = minielm::loss::dpo_step(*a_->raw(), b_ ? b_->raw() : nullptr, ref_logps_.empty() ? nullptr : ref_logps_.data(),
                                 batch_.view(), o_, opt_);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    const auto& m = r_.metrics;
    o.Set("loss", m.loss);
    o.Set("rewards/chosen", m.reward_chosen);
    o.Set("rewards/rejected", m.reward_rejected);
    o.Set("rewards/margins", m.margin);
    o.Set("rewards/accuracies", m.accuracy);
    o.Set("logps/chosen", m.logp_chosen);
    o.Set("logps/rejected", m.logp_rejected);
    o.Set("gradNorm", r_.step.grad_norm);
    o.Set("lr", r_.step.lr);
    o.Set("tokens", r_.step.tokens);
    o.Set("step", static_cast<double>(r_.step.step));
    return o;
  }

 private:
  OwnedBatch batch_;
  std::vector<double> ref_logps_;
  DpoOptions o_;
  OptimConfig opt_;
  minielm::loss::DpoStepStats r_;
};

// dpoStep(policy, reference | null, batch of 2B sequences, refLogps: Float64Array(2B) | null, options, optim)
Napi::Value DpoStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) throw_js(env, "MINIELM_INVALID_ARGUMENT", "dpoStep(policy, reference, batch, refLogps, options, optim)");
  OwnedBatch b = parse_batch(object_arg(info, 2, "batch"));
  std::vector<double> ref = to_js(env, [&] {
    minielm::args::check_dpo_batch(b);
    return minielm::args::parse_ref_logps(read_value(info[3]), b.B);
  });
  DpoOptions o = parse_dpo(object_arg(info, 4, "options"));
  OptimConfig opt = parse_optim(object_arg(info, 5, "optimizer options"));
  if (!ref.empty() && !info[1].IsNull() && !info[1].IsUndefined())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "give either a reference model or refLogps, not both");
  auto [p, r] = acquire_two(env, info[0], "policy", info[1], "reference");
  auto* w = new DpoWorker(env, p, info[0], r, info[1], std::move(b), std::move(ref), o, opt);
  Napi::Promise pr = w->promise();
  w->Queue();
  return pr;
}

// ---- GRPO ----
using minielm::loss::GrpoOptions;

GrpoOptions parse_grpo(const Napi::Object& o) {
  Napi::Env env = o.Env();
  GrpoOptions g;
  g.group = get_int(o, "group", 8, 2, 4096);
  g.eps_low = get_number(o, "epsilonLow", 0.2);
  g.eps_high = get_number(o, "epsilonHigh", g.eps_low);
  g.beta = get_number(o, "beta", 0.0);
  g.adv_eps = get_number(o, "advantageEpsilon", 1e-4);
  g.max_completion_length = get_int(o, "maxCompletionLength", 0, 0, int64_t{1} << 30);
  auto str = [&](const char* key, const char* fallback) -> std::string {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsString()) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(key) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  };
  const std::string loss = str("lossType", "grpo");
  if (loss == "grpo") g.loss = minielm::loss::GrpoLossType::Grpo;
  else if (loss == "bnpo") g.loss = minielm::loss::GrpoLossType::Bnpo;
  else if (loss == "dr_grpo") g.loss = minielm::loss::GrpoLossType::DrGrpo;
  else throw_js(env, "MINIELM_INVALID_ARGUMENT", "lossType must be 'grpo', 'bnpo' or 'dr_grpo', got '" + loss + "'");
  const std::string scale = str("scaleRewards", "group");
  if (scale == "group") g.scale = minielm::loss::GrpoScale::Group;
  else if (scale == "batch") g.scale = minielm::loss::GrpoScale::Batch;
  else if (scale == "none") g.scale = minielm::loss::GrpoScale::None;
  else throw_js(env, "MINIELM_INVALID_ARGUMENT", "scaleRewards must be 'group', 'batch' or 'none', got '" + scale + "'");
  to_js(env, [&] {
    minielm::loss::validate_grpo_options(g);
    return 0;
  });
  return g;
}

// A Float64Array of exactly n values, or empty for null / undefined when optional.
std::vector<double> float64_values(Napi::Env env, Napi::Value v, size_t n, const char* what, bool optional) {
  if (optional && (v.IsNull() || v.IsUndefined())) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be a Float64Array" + (optional ? " or null" : ""));
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  if (a.ElementLength() != n)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(n));
  std::vector<double> out(a.Data(), a.Data() + n);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(out[i])) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + "[" + std::to_string(i) + "] is not finite");
  return out;
}

class GrpoWorker : public TwoModelWorker {
 public:
  GrpoWorker(Napi::Env env, NativeModel* pol, Napi::Value vp, NativeModel* ref, Napi::Value vr, OwnedBatch b,
             std::vector<double> rewards, std::vector<double> old_logps, std::vector<double> ref_logps, GrpoOptions o,
             OptimConfig opt)
      : TwoModelWorker(env, pol, vp, ref, vr), batch_(std::move(b)), rewards_(std::move(rewards)),
        old_(std::move(old_logps)), ref_(std::move(ref_logps)), o_(o), opt_(opt) {}

 protected:
  void Run() override {
    cpu_only(a_, b_, "grpoStep");
    r_ = minielm::loss::grpo_step(*a_->raw(), b_ ? b_->raw() : nullptr, ref_.empty() ? nullptr : ref_.data(),
                                  old_.empty() ? nullptr : old_.data(), batch_.view(), rewards_.data(), o_, opt_);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    const auto& m = r_.metrics;
    o.Set("loss", m.loss);
    o.Set("reward", m.reward);
    o.Set("reward_std", m.reward_std);
    o.Set("kl", m.kl);
    o.Set("clip_ratio/low_mean", m.clip_low);
    o.Set("clip_ratio/high_mean", m.clip_high);
    o.Set("clip_ratio/region_mean", m.clip_region);
    o.Set("completions/mean_length", m.mean_length);
    o.Set("frac_reward_zero_std", m.zero_std_groups);
    o.Set("gradNorm", r_.step.grad_norm);
    o.Set("lr", r_.step.lr);
    o.Set("tokens", r_.step.tokens);
    o.Set("step", static_cast<double>(r_.step.step));
    return o;
  }

 private:
  OwnedBatch batch_;
  std::vector<double> rewards_, old_, ref_;
  GrpoOptions o_;
  OptimConfig opt_;
  minielm::loss::GrpoStepStats r_;
};

// grpoStep(policy, reference | null, batch of P * G sequences, rewards: Float64Array(B),
//          oldLogps: Float64Array(B * T) | null, refLogps: Float64Array(B * T) | null, options, optim)
Napi::Value GrpoStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8) throw_js(env, "MINIELM_INVALID_ARGUMENT", "grpoStep(policy, reference, batch, rewards, oldLogps, refLogps, options, optim)");
  OwnedBatch b = parse_batch(object_arg(info, 2, "batch"));
  if (b.targets.empty()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "grpoStep needs batch.targets");
  const size_t rows = static_cast<size_t>(b.B) * static_cast<size_t>(b.T);
  std::vector<double> rewards = float64_values(env, info[3], static_cast<size_t>(b.B), "rewards", false);
  std::vector<double> old = float64_values(env, info[4], rows, "oldLogps", true);
  std::vector<double> ref = float64_values(env, info[5], rows, "refLogps", true);
  GrpoOptions o = parse_grpo(object_arg(info, 6, "options"));
  OptimConfig opt = parse_optim(object_arg(info, 7, "optimizer options"));
  if (!ref.empty() && !info[1].IsNull() && !info[1].IsUndefined())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "give either a reference model or refLogps, not both");
  auto [p, r] = acquire_two(env, info[0], "policy", info[1], "reference");
  auto* w = new GrpoWorker(env, p, info[0], r, info[1], std::move(b), std::move(rewards), std::move(old), std::move(ref), o, opt);
  Napi::Promise pr = w->promise();
  w->Queue();
  return pr;
}


// Log-probabilities without gradients: per sequence (sequenceLogProbs) or per token (tokenLogProbs).
template <bool PerToken>
class LogpWorker : public ModelWorker {
 public:
  LogpWorker(Napi::Env env, NativeModel* owner, Napi::Object self, OwnedBatch b)
      : ModelWorker(env, owner, self), batch_(std::move(b)) {}

 protected:
  void Run() override {
    cpu_only(owner_, nullptr, PerToken ? "tokenLogProbs" : "sequenceLogProbs");
    if (PerToken) {
      out_.resize(static_cast<size_t>(batch_.B * batch_.T));
      minielm::loss::model_token_logps(*owner_->raw(), batch_.view(), out_.data());
    } else {
      out_.resize(static_cast<size_t>(batch_.B));
      minielm::loss::model_sequence_logps(*owner_->raw(), batch_.view(), out_.data());
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Float64Array a = Napi::Float64Array::New(env, out_.size());
    std::copy(out_.begin(), out_.end(), a.Data());
    return a;
  }

 private:
  OwnedBatch batch_;
  std::vector<double> out_;
};

Napi::Value SequenceLogProbs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OwnedBatch b = parse_batch(object_arg(info, 1, "batch"));
  if (b.targets.empty()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "sequenceLogProbs needs batch.targets");
  NativeModel* m = acquire_model(env, info[0], "model");
  auto* w = new LogpWorker<false>(env, m, info[0].As<Napi::Object>(), std::move(b));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// tokenLogProbs(model, batch): log-probability of each masked target token (0 where the mask is 0).
Napi::Value TokenLogProbs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OwnedBatch b = parse_batch(object_arg(info, 1, "batch"));
  if (b.targets.empty()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "tokenLogProbs needs batch.targets");
  NativeModel* m = acquire_model(env, info[0], "model");
  auto* w = new LogpWorker<true>(env, m, info[0].As<Napi::Object>(), std::move(b));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value GradcheckAlign(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t seed = info.Length() > 0 ? int_arg(env, info[0], "gradcheckAlign: seed", 0, int64_t{1} << 53) : 0;
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, v] : minielm::loss::gradcheck_align(static_cast<uint64_t>(seed))) o.Set(k, v);
  return o;
}

class KernelBenchWorker : public PromiseWorker {
 public:
  KernelBenchWorker(Napi::Env env, std::string kind, int64_t rows, int64_t vocab, double seconds)
      : PromiseWorker(env), kind_(std::move(kind)), rows_(rows), vocab_(vocab), seconds_(seconds) {}

 protected:
  void Run() override { t_ = minielm::loss::time_alignment_kernel(kind_, rows_, vocab_, seconds_); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("seconds", t_.best_seconds);
    o.Set("bytes", t_.bytes);
    o.Set("gbs", t_.bytes / t_.best_seconds / 1e9);
    o.Set("calls", static_cast<double>(t_.calls));
    return o;
  }

 private:
  std::string kind_;
  int64_t rows_, vocab_;
  double seconds_;
  minielm::loss::KernelTiming t_;
};

// benchAlignKernel(kind, rows, vocab, seconds): times the kernel alone on buffers it allocates.
Napi::Value BenchAlignKernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  minielm::args::BenchAlignArgs a = to_js(env, [&] {
    return minielm::args::parse_bench_align(read_value(info[0]), read_value(info[1]), read_value(info[2]), read_value(info[3]));
  });
  auto* w = new KernelBenchWorker(env, a.kind, a.rows, a.vocab, a.seconds);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void InitAlign(Napi::Env env, Napi::Object exports) {
  exports.Set("distillStep", Napi::Function::New(env, guarded<DistillStep>));
  exports.Set("dpoStep", Napi::Function::New(env, guarded<DpoStep>));
  exports.Set("sequenceLogProbs", Napi::Function::New(env, guarded<SequenceLogProbs>));
  exports.Set("grpoStep", Napi::Function::New(env, guarded<GrpoStep>));
  exports.Set("tokenLogProbs", Napi::Function::New(env, guarded<TokenLogProbs>));
  exports.Set("gradcheckAlign", Napi::Function::New(env, guarded_job<GradcheckAlign>));
  exports.Set("benchAlignKernel", Napi::Function::New(env, guarded<BenchAlignKernel>));
}

}  // namespace minielm_napi
