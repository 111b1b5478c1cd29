#include "align.h"

#include <cmath>
#include <string>
#include <vector>

#include "../core/error.h"

namespace minielm {
namespace loss {
namespace {

// The loss mask as T, checked (finite, >= 0), with the targets of counted rows inside the vocabulary.
// Returns the total weight.
template <typename T>
double checked_weights(const Batch& b, int64_t V, bool need_targets, std::vector<T>& w) {
  const int64_t n = b.B * b.T;
  w.assign(static_cast<size_t>(n), T(1));
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    float x = b.loss_weight ? b.loss_weight[i] : 1.0f;
    require(std::isfinite(x) && x >= 0, "MINIELM_INVALID_ARGUMENT",
            "loss weight at position " + std::to_string(i) + " must be finite and >= 0");
    w[i] = static_cast<T>(x);
    total += x;
    if (need_targets && x != 0) {
      require(b.targets != nullptr, "MINIELM_INVALID_ARGUMENT", "batch.targets is required for this loss");
      require(b.targets[i] >= 0 && b.targets[i] < V, "MINIELM_INVALID_ARGUMENT",
              "target id " + std::to_string(b.targets[i]) + " at position " + std::to_string(i) +
                  " is outside the vocabulary [0, " + std::to_string(V) + ")");
    }
  }
  return total;
}

template <typename T>
void finish_step(Gpt2<T>& model, double loss, StepStats* s, const OptimConfig& opt) {
  if (!std::isfinite(loss))
    throw Error("MINIELM_NON_FINITE", "the loss is not finite at step " + std::to_string(model.step()) +
                                          "; the parameters were left unchanged");
  *s = model.optimizer_step(opt);
  s->loss = loss;
}

}  // namespace

void validate_distill_options(const DistillOptions& o) {
  require(std::isfinite(o.temperature) && o.temperature > 0, "MINIELM_INVALID_ARGUMENT",
          "temperature must be a finite number > 0, got " + std::to_string(o.temperature));
  require(std::isfinite(o.beta) && o.beta >= 0 && o.beta <= 1, "MINIELM_INVALID_ARGUMENT",
          "beta (the JSD mixture weight) must be in [0, 1], got " + std::to_string(o.beta));
  require(std::isfinite(o.ce_weight) && o.ce_weight >= 0 && o.ce_weight <= 1, "MINIELM_INVALID_ARGUMENT",
          "ceWeight must be in [0, 1], got " + std::to_string(o.ce_weight));
}

void validate_dpo_options(const DpoOptions& o) {
  require(std::isfinite(o.beta) && o.beta > 0, "MINIELM_INVALID_ARGUMENT",
          "beta must be a finite number > 0, got " + std::to_string(o.beta));
  require(std::isfinite(o.label_smoothing) && o.label_smoothing >= 0 && o.label_smoothing < 0.5,
          "MINIELM_INVALID_ARGUMENT", "labelSmoothing must be in [0, 0.5), got " + std::to_string(o.label_smoothing));
}

template <typename T>
DistillStepStats distill_step(Gpt2<T>& student, Gpt2<T>& teacher, const Batch& batch, const DistillOptions& o,
                              const OptimConfig& opt) {
  validate_distill_options(o);
  const int64_t V = student.config().vocab_size;
  require(&student != &teacher, "MINIELM_INVALID_ARGUMENT", "the student and the teacher must be different models");
  require(teacher.config().vocab_size == V, "MINIELM_INVALID_ARGUMENT",
          "teacher vocab_size " + std::to_string(teacher.config().vocab_size) + " differs from student vocab_size " +
              std::to_string(V) + "; distillation needs one shared vocabulary");
  std::vector<T> w;
  const double total = checked_weights<T>(batch, V, o.ce_weight > 0, w);
  require(total > 0, "MINIELM_INVALID_ARGUMENT", "the loss mask selects no token in this batch: nothing to distil");
  // Teacher first: its logits stay in its own buffer while the student's pass overwrites the student's.
  teacher.forward(batch);
  student.zero_grad();
  student.forward(batch);
  const int64_t rows = batch.B * batch.T;
  DistillSums sums = distill_forward_backward<T>(student.logits(), student.logits(), teacher.logits(), batch.targets,
                                                 w.data(), rows, V, o, static_cast<T>(1.0 / total));
  student.backward(batch);
  DistillStepStats out;
  finish_step(student, sums.loss / total, &out.step, opt);
  out.step.tokens = total;
  out.divergence = sums.divergence / total;
  out.ce = sums.ce / total;
  return out;
}

template <typename T>
DpoStepStats dpo_step(Gpt2<T>& policy, Gpt2<T>* reference, const double* ref_logps, const Batch& pairs,
                      const DpoOptions& o, const OptimConfig& opt) {
  validate_dpo_options(o);
  const int64_t V = policy.config().vocab_size;
  require(pairs.B >= 2 && pairs.B % 2 == 0, "MINIELM_INVALID_ARGUMENT",
          "a DPO batch holds 2B sequences (chosen then rejected), got " + std::to_string(pairs.B));
  require(reference != &policy, "MINIELM_INVALID_ARGUMENT", "the reference must be a different model from the policy");
  if (reference)
    require(reference->config().vocab_size == V, "MINIELM_INVALID_ARGUMENT",
            "reference vocab_size " + std::to_string(reference->config().vocab_size) + " differs from policy vocab_size " +
                std::to_string(V));
  const int64_t B = pairs.B / 2, Tn = pairs.T, n = pairs.B;
  std::vector<T> w;
  checked_weights<T>(pairs, V, true, w);
  for (int64_t s = 0; s < n; ++s) {
    double sw = 0;
    for (int64_t t = 0; t < Tn; ++t) sw += static_cast<double>(w[s * Tn + t]);
    require(sw > 0, "MINIELM_INVALID_ARGUMENT",
            std::string(s < B ? "chosen" : "rejected") + " response " + std::to_string(s % B) + " has no token in the loss mask");
  }
  std::vector<T> lse(static_cast<size_t>(n * Tn));
  std::vector<double> ref(static_cast<size_t>(n), 0.0), pol(static_cast<size_t>(n));
  const bool has_ref = reference != nullptr || ref_logps != nullptr;
  if (reference) {
    reference->forward(pairs);
    sequence_logps<T>(ref.data(), lse.data(), reference->logits(), pairs.targets, w.data(), n, Tn, V);
  } else if (ref_logps) {
    ref.assign(ref_logps, ref_logps + n);
  }
  policy.zero_grad();
  policy.forward(pairs);
  sequence_logps<T>(pol.data(), lse.data(), policy.logits(), pairs.targets, w.data(), n, Tn, V);
  std::vector<double> dseq(static_cast<size_t>(n));
  DpoStepStats out;
  out.metrics = dpo_loss(pol.data(), pol.data() + B, has_ref ? ref.data() : nullptr, has_ref ? ref.data() + B : nullptr,
                         B, o, dseq.data(), dseq.data() + B);
  sequence_logps_backward<T>(policy.logits(), policy.logits(), pairs.targets, w.data(), lse.data(), dseq.data(), n, Tn, V);
  policy.backward(pairs);
  finish_step(policy, out.metrics.loss, &out.step, opt);
  out.step.tokens = 0;
  for (T x : w) out.step.tokens += static_cast<double>(x);
  return out;
}

void validate_grpo_options(const GrpoOptions& o) {
  require(o.group >= 2 && o.group <= 4096, "MINIELM_INVALID_ARGUMENT",
          "group (completions per prompt) must be in [2, 4096], got " + std::to_string(o.group));
  require(std::isfinite(o.eps_low) && o.eps_low >= 0 && o.eps_low < 1, "MINIELM_INVALID_ARGUMENT",
          "epsilonLow must be in [0, 1), got " + std::to_string(o.eps_low));
  require(std::isfinite(o.eps_high) && o.eps_high >= 0 && o.eps_high <= 1e3, "MINIELM_INVALID_ARGUMENT",
          "epsilonHigh must be a finite number >= 0, got " + std::to_string(o.eps_high));
  require(std::isfinite(o.beta) && o.beta >= 0, "MINIELM_INVALID_ARGUMENT",
          "beta (the KL coefficient) must be a finite number >= 0, got " + std::to_string(o.beta));
  require(std::isfinite(o.adv_eps) && o.adv_eps > 0, "MINIELM_INVALID_ARGUMENT", "the advantage epsilon must be > 0");
  require(o.max_completion_length >= 0, "MINIELM_INVALID_ARGUMENT", "maxCompletionLength must be >= 0");
}

template <typename T>
GrpoStepStats grpo_step(Gpt2<T>& policy, Gpt2<T>* reference, const double* ref_logps, const double* old_logps,
                        const Batch& batch, const double* rewards, const GrpoOptions& o, const OptimConfig& opt) {
  validate_grpo_options(o);
  const int64_t V = policy.config().vocab_size, n = batch.B, Tn = batch.T;
  require(n % o.group == 0, "MINIELM_INVALID_ARGUMENT",
          "a GRPO batch holds P groups of " + std::to_string(o.group) + " completions, got " + std::to_string(n) + " sequences");
  require(reference != &policy, "MINIELM_INVALID_ARGUMENT", "the reference must be a different model from the policy");
  if (reference)
    require(reference->config().vocab_size == V, "MINIELM_INVALID_ARGUMENT",
            "reference vocab_size " + std::to_string(reference->config().vocab_size) + " differs from policy vocab_size " +
                std::to_string(V));
  require(o.beta == 0 || reference || ref_logps, "MINIELM_INVALID_ARGUMENT",
          "beta > 0 needs a reference model or reference log-probs");
  for (int64_t i = 0; i < n; ++i)
    require(std::isfinite(rewards[i]), "MINIELM_INVALID_ARGUMENT", "reward " + std::to_string(i) + " is not finite");
  std::vector<T> w;
  const double total = checked_weights<T>(batch, V, true, w);
  require(total > 0, "MINIELM_INVALID_ARGUMENT", "the loss mask selects no completion token in this batch");
  if (o.max_completion_length > 0)
    for (int64_t s = 0; s < n; ++s) {
      double c = 0;
      for (int64_t t = 0; t < Tn; ++t) c += static_cast<double>(w[s * Tn + t]);
      require(c <= static_cast<double>(o.max_completion_length), "MINIELM_INVALID_ARGUMENT",
              "completion " + std::to_string(s) + " has more tokens than maxCompletionLength");
    }
  std::vector<double> ref;
  if (reference) {
    ref.resize(static_cast<size_t>(n * Tn));
    reference->forward(batch);
    token_logps<T>(ref.data(), reference->logits(), batch.targets, w.data(), n * Tn, V);
  }
  std::vector<double> adv(static_cast<size_t>(n));
  GrpoMetrics m;
  grpo_advantages(rewards, n, o, adv.data(), &m);
  policy.zero_grad();
  policy.forward(batch);
  GrpoMetrics k = grpo_forward_backward<T>(policy.logits(), policy.logits(), batch.targets, w.data(), adv.data(), old_logps,
                                           reference ? ref.data() : ref_logps, n, Tn, V, o);
  policy.backward(batch);
  GrpoStepStats out;
  k.reward = m.reward;
  k.reward_std = m.reward_std;
  k.zero_std_groups = m.zero_std_groups;
  out.metrics = k;
  finish_step(policy, k.loss, &out.step, opt);
  out.step.tokens = total;
  return out;
}

template <typename T>
void model_token_logps(Gpt2<T>& model, const Batch& batch, double* out) {
  const int64_t V = model.config().vocab_size;
  std::vector<T> w;
  checked_weights<T>(batch, V, true, w);
  model.forward(batch);
  token_logps<T>(out, model.logits(), batch.targets, w.data(), batch.B * batch.T, V);
}

template <typename T>
void model_sequence_logps(Gpt2<T>& model, const Batch& batch, double* out) {
  const int64_t V = model.config().vocab_size;
  std::vector<T> w;
  checked_weights<T>(batch, V, true, w);
  std::vector<T> lse(static_cast<size_t>(batch.B * batch.T));
  model.forward(batch);
  sequence_logps<T>(out, lse.data(), model.logits(), batch.targets, w.data(), batch.B, batch.T, V);
}

template DistillStepStats distill_step<float>(Gpt2<float>&, Gpt2<float>&, const Batch&, const DistillOptions&,
                                              const OptimConfig&);
template DistillStepStats distill_step<double>(Gpt2<double>&, Gpt2<double>&, const Batch&, const DistillOptions&,
                                               const OptimConfig&);
template DpoStepStats dpo_step<float>(Gpt2<float>&, Gpt2<float>*, const double*, const Batch&, const DpoOptions&,
                                      const OptimConfig&);
template DpoStepStats dpo_step<double>(Gpt2<double>&, Gpt2<double>*, const double*, const Batch&, const DpoOptions&,
                                       const OptimConfig&);
template GrpoStepStats grpo_step<float>(Gpt2<float>&, Gpt2<float>*, const double*, const double*, const Batch&,
                                        const double*, const GrpoOptions&, const OptimConfig&);
template GrpoStepStats grpo_step<double>(Gpt2<double>&, Gpt2<double>*, const double*, const double*, const Batch&,
                                         const double*, const GrpoOptions&, const OptimConfig&);
template void model_token_logps<float>(Gpt2<float>&, const Batch&, double*);
template void model_token_logps<double>(Gpt2<double>&, const Batch&, double*);
template void model_sequence_logps<float>(Gpt2<float>&, const Batch&, double*);
template void model_sequence_logps<double>(Gpt2<double>&, const Batch&, double*);

}  // namespace loss
}  // namespace minielm
