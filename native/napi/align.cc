// N-API bindings for the distillation (reverse KL / forward KL / JSD) and preference (sequence log-prob, DPO)
// training steps. The math lives in native/loss/; this file parses arguments, marks the models busy for
// the job and turns the results into plain objects.
#include "common.h"

#include "../loss/align.h"
#include "../loss/selftest_align.h"

namespace minielm_napi {
namespace {

using minielm::loss::Divergence;
using minielm::loss::DistillOptions;
using minielm::loss::DpoLoss;
using minielm::loss::DpoOptions;

std::string get_string(const Napi::Object& o, const char* key, const std::string& fallback) {
  if (!o.Has(key) || o.Get(key).IsUndefined() || o.Get(key).IsNull()) return fallback;
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw_js(o.Env(), "MINIELM_INVALID_ARGUMENT", std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsObject()) throw_js(info.Env(), "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be an object");
  return info[i].As<Napi::Object>();
}

// minielm::Error from option checks -> a synchronous JS throw with the same code.
template <typename F>
void rethrow_js(Napi::Env env, F&& f) {
  try {
    f();
  } catch (const minielm::Error& e) {
    throw_js(env, e.code(), e.what());
  }
}

DistillOptions parse_distill(const Napi::Object& o) {
  DistillOptions d;
  std::string loss = get_string(o, "loss", "reverse_kl");
  if (loss == "reverse_kl") d.divergence = Divergence::ReverseKl;
  else if (loss == "forward_kl") d.divergence = Divergence::ForwardKl;
  else if (loss == "jsd") d.divergence = Divergence::Jsd;
  else throw_js(o.Env(), "MINIELM_INVALID_ARGUMENT", "loss must be 'reverse_kl', 'forward_kl' or 'jsd', got '" + loss + "'");
  d.beta = get_number(o, "beta", d.beta);
  d.temperature = get_number(o, "temperature", d.temperature);
  d.ce_weight = get_number(o, "ceWeight", d.ce_weight);
  rethrow_js(o.Env(), [&] { minielm::loss::validate_distill_options(d); });
  return d;
}

DpoOptions parse_dpo(const Napi::Object& o) {
  DpoOptions d;
  std::string type = get_string(o, "lossType", "sigmoid");
  if (type == "sigmoid") d.loss = DpoLoss::Sigmoid;
  else if (type == "ipo") d.loss = DpoLoss::Ipo;
  else if (type == "hinge") d.loss = DpoLoss::Hinge;
  else throw_js(o.Env(), "MINIELM_INVALID_ARGUMENT", "lossType must be 'sigmoid', 'ipo' or 'hinge', got '" + type + "'");
  d.beta = get_number(o, "beta", d.beta);
  d.label_smoothing = get_number(o, "labelSmoothing", d.label_smoothing);
  rethrow_js(o.Env(), [&] { minielm::loss::validate_dpo_options(d); });
  return d;
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
  void Run() override { r_ = minielm::loss::distill_step(*a_->raw(), *b_->raw(), batch_.view(), o_, opt_); }
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
  if (b.targets.empty() || b.weight.empty())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "a DPO batch needs targets and a lossMask marking the response tokens");
  std::vector<double> ref;
  if (!info[3].IsUndefined() && !info[3].IsNull()) {
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "refLogps must be a Float64Array (chosen then rejected)");
    Napi::Float64Array a = info[3].As<Napi::Float64Array>();
    if (static_cast<int64_t>(a.ElementLength()) != b.B)
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "refLogps has " + std::to_string(a.ElementLength()) + " values, expected one per sequence (" + std::to_string(b.B) + ")");
    ref.assign(a.Data(), a.Data() + b.B);
    for (double x : ref)
      if (!std::isfinite(x)) throw_js(env, "MINIELM_INVALID_ARGUMENT", "refLogps must be finite");
  }
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

class SeqLogpWorker : public ModelWorker {
 public:
  SeqLogpWorker(Napi::Env env, NativeModel* owner, Napi::Object self, OwnedBatch b)
      : ModelWorker(env, owner, self), batch_(std::move(b)) {}

 protected:
  void Run() override {
    out_.resize(static_cast<size_t>(batch_.B));
    minielm::loss::model_sequence_logps(*owner_->raw(), batch_.view(), out_.data());
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
  auto* w = new SeqLogpWorker(env, m, info[0].As<Napi::Object>(), std::move(b));
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
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchAlignKernel(kind, rows, vocab, seconds)");
  const std::string kind = info[0].As<Napi::String>().Utf8Value();
  if (kind != "reverse_kl" && kind != "dpo") throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchAlignKernel: kind must be 'reverse_kl' or 'dpo'");
  // The kernel bench allocates a few rows x vocab buffers: at most 2^28 elements each.
  const int64_t rows = int_arg(env, info[1], "benchAlignKernel: rows", 1, int64_t{1} << 28);
  const int64_t vocab = int_arg(env, info[2], "benchAlignKernel: vocab", 1, int64_t{1} << 28);
  int64_t n = 0;
  if (!checked_mul(rows, vocab, &n) || n > (int64_t{1} << 28))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchAlignKernel: rows * vocab may be at most 2^28");
  const double seconds = info[3].As<Napi::Number>().DoubleValue();
  if (!(seconds >= 0 && seconds <= 600)) throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchAlignKernel: seconds must be in [0, 600]");
  auto* w = new KernelBenchWorker(env, kind, rows, vocab, seconds);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace

void InitAlign(Napi::Env env, Napi::Object exports) {
  exports.Set("distillStep", Napi::Function::New(env, guarded<DistillStep>));
  exports.Set("dpoStep", Napi::Function::New(env, guarded<DpoStep>));
  exports.Set("sequenceLogProbs", Napi::Function::New(env, guarded<SequenceLogProbs>));
  exports.Set("gradcheckAlign", Napi::Function::New(env, guarded_job<GradcheckAlign>));
  exports.Set("benchAlignKernel", Napi::Function::New(env, guarded<BenchAlignKernel>));
}

}  // namespace minielm_napi
