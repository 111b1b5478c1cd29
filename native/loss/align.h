// Training steps built on the alignment kernels: one distillation step (teacher forward, student
// forward, fused divergence written over the student's logits, student backward, AdamW) and one DPO step
// (reference forward or given reference log-probs, policy forward, sequence log-probs, DPO loss, backward,
// AdamW). Plain C++: the N-API layer (native/napi/align.cc) only parses arguments and calls these.
#pragma once
#include <cstdint>

#include "../model/gpt2.h"
#include "distill.h"
#include "dpo.h"
#include "grpo.h"

namespace minielm {
namespace loss {

struct DistillStepStats {
  StepStats step;          // loss = weighted mean of (1 - alpha) D + alpha CE
  double divergence = 0;   // weighted mean divergence (reverse KL by default)
  double ce = 0;           // weighted mean cross-entropy (only computed when ce_weight > 0)
};

// The batch needs targets only when ce_weight > 0; its loss_weight is the per-token distillation mask.
// Both models must share the vocabulary; the teacher gets no gradients and its parameters do not change.
template <typename T>
DistillStepStats distill_step(Gpt2<T>& student, Gpt2<T>& teacher, const Batch& batch, const DistillOptions& o,
                              const OptimConfig& opt);

struct DpoStepStats {
  DpoMetrics metrics;
  StepStats step;
};

// `pairs` holds 2B sequences: rows [0, B) prompt+chosen, rows [B, 2B) prompt+rejected (same B, T), targets
// and a loss_weight of 1 on response tokens. The reference is `reference` (a frozen model: forward only),
// else `ref_logps` (2B values, chosen first), else nothing (reference-free).
template <typename T>
DpoStepStats dpo_step(Gpt2<T>& policy, Gpt2<T>* reference, const double* ref_logps, const Batch& pairs,
                      const DpoOptions& o, const OptimConfig& opt);

struct GrpoStepStats {
  GrpoMetrics metrics;
  StepStats step;
};

// One GRPO update. `batch` holds P * G sequences (prompt + sampled completion, the G completions of a prompt
// consecutive), targets, and a loss_weight of 1 on completion tokens; rewards[P * G]. old_logps (per token,
// [B * T]) are the log-probs the completions were sampled with (null: the current ones, i.e. the first of
// mu updates); the reference is `reference` (forward only) or `ref_logps` (per token) or none (beta = 0).
template <typename T>
GrpoStepStats grpo_step(Gpt2<T>& policy, Gpt2<T>* reference, const double* ref_logps, const double* old_logps,
                        const Batch& batch, const double* rewards, const GrpoOptions& o, const OptimConfig& opt);

// Per-token log-probabilities of the targets where the loss mask is non-zero, 0 elsewhere (no gradients).
template <typename T>
void model_token_logps(Gpt2<T>& model, const Batch& batch, double* out);

// Summed log-probabilities of the masked target tokens of each sequence (no gradients).
template <typename T>
void model_sequence_logps(Gpt2<T>& model, const Batch& batch, double* out);

// Throws MINIELM_INVALID_ARGUMENT naming the bad option.
void validate_distill_options(const DistillOptions& o);
void validate_dpo_options(const DpoOptions& o);
void validate_grpo_options(const GrpoOptions& o);

extern template DistillStepStats distill_step<float>(Gpt2<float>&, Gpt2<float>&, const Batch&, const DistillOptions&,
                                                     const OptimConfig&);
extern template DistillStepStats distill_step<double>(Gpt2<double>&, Gpt2<double>&, const Batch&,
                                                      const DistillOptions&, const OptimConfig&);
extern template DpoStepStats dpo_step<float>(Gpt2<float>&, Gpt2<float>*, const double*, const Batch&,
                                             const DpoOptions&, const OptimConfig&);
extern template DpoStepStats dpo_step<double>(Gpt2<double>&, Gpt2<double>*, const double*, const Batch&,
                                              const DpoOptions&, const OptimConfig&);
extern template GrpoStepStats grpo_step<float>(Gpt2<float>&, Gpt2<float>*, const double*, const double*, const Batch&,
                                               const double*, const GrpoOptions&, const OptimConfig&);
extern template GrpoStepStats grpo_step<double>(Gpt2<double>&, Gpt2<double>*, const double*, const double*,
                                                const Batch&, const double*, const GrpoOptions&, const OptimConfig&);
extern template void model_token_logps<float>(Gpt2<float>&, const Batch&, double*);
extern template void model_token_logps<double>(Gpt2<double>&, const Batch&, double*);
extern template void model_sequence_logps<float>(Gpt2<float>&, const Batch&, double*);
extern template void model_sequence_logps<double>(Gpt2<double>&, const Batch&, double*);

}  // namespace loss
}  // namespace minielm
