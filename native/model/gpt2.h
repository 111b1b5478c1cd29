// A GPT-2 decoder (learned positions, pre-LayerNorm blocks, tanh-GELU MLP, causal attention with a key
// padding mask, tied LM head) whose parameters, gradients and AdamW moments live in one arena.
// Tensor names and layouts follow Hugging Face's GPT-2 (Conv1D weights stored [in, out]) so checkpoints
// map one to one. Templated on the scalar: float for the engine, double for gradient checks.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/rng.h"

namespace minielm {

struct Config {
  int64_t vocab_size = 0;
  int64_t n_ctx = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_embd = 0;
  // Adds "score.weight" [1, n_embd]: a scalar read from the final hidden state of each sequence's last real
  // token (Hugging Face's GPT2ForSequenceClassification with one label). Used by the relevance scorer.
  bool score_head = false;
};

// Throws minielm::Error(MINIELM_INVALID_ARGUMENT) naming the bad field.
void validate_config(const Config& c);

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in elements from the start of the parameter block
  int64_t size = 0;
  bool decay = false;  // weight decay applies (matrices), not to biases or LayerNorm
};

// One batch of B sequences of T positions, row-major [B, T]. Only `tokens` is required.
struct Batch {
  const int32_t* tokens = nullptr;
  const int32_t* targets = nullptr;     // next-token ids, required for losses
  const float* loss_weight = nullptr;   // per-token weight (0 = ignore); null = every position counts
  const uint8_t* attn_mask = nullptr;   // 1 = real token, 0 = padding; null = all real
  int64_t B = 0;
  int64_t T = 0;
};

enum class Schedule { Constant = 0, Cosine = 1, Linear = 2 };

struct OptimConfig {
  double lr = 3e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_clip = 1.0;  // <= 0 disables clipping
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // for the decay schedules
  double min_lr_ratio = 0.1;
  Schedule schedule = Schedule::Cosine;
};

// Learning rate at optimizer step `step` (0-based): linear warm-up, then constant / cosine / linear decay
// to min_lr_ratio * lr at total_steps.
double scheduled_lr(const OptimConfig& o, int64_t step);

struct StepStats {
  double loss = 0;       // weighted mean loss over the step's tokens
  double grad_norm = 0;  // global L2 norm before clipping
  double lr = 0;
  double tokens = 0;     // total loss weight (number of counted tokens when weights are 0/1)
  int64_t step = 0;      // optimizer steps taken after this one
};

template <typename T>
class Gpt2 {
 public:
  Gpt2(const Config& config, uint64_t seed);
  ~Gpt2();
  Gpt2(const Gpt2&) = delete;
  Gpt2& operator=(const Gpt2&) = delete;

  const Config& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  int64_t num_params() const { return num_params_; }

  // Every mutable access to the parameters counts as a write and moves params_version(), so a copy
  // derived from the weights (the decoder's AMX packing) can tell that it is stale. Readers use the
  // const overload.
  T* params() {
    params_version_.fetch_add(1, std::memory_order_relaxed);
    return arena_;
  }
  const T* params() const { return arena_; }
  uint64_t params_version() const { return params_version_.load(std::memory_order_relaxed); }
  // A copy of the weights another module derives and keeps with the model (dropped with it), stamped with
  // the params_version() it was made from.
  struct DerivedWeights {
    std::mutex mutex;
    uint64_t version = 0;
    std::shared_ptr<const void> data;
  };
  DerivedWeights& derived_weights() const { return derived_; }
  T* grads() { return arena_ + num_params_; }
  T* adam_m() { return arena_ + 2 * num_params_; }
  T* adam_v() { return arena_ + 3 * num_params_; }

  // Throws MINIELM_INVALID_ARGUMENT naming the first bad entry: token ids, T <= n_ctx, and with need_targets the
  // targets of counted positions and the loss weights (finite, >= 0).
  void validate_batch(const Batch& b, bool need_targets) const;
  // Position of every token [B*T]: real tokens count from 0, padding repeats the last real position (so a
  // left-padded prompt sees the same positions as an unpadded one).
  static void positions(const Batch& b, int32_t* out);

  // Forward pass over a batch; keeps the activations for backward(). Logits [B, T, V] are then in logits()
  // unless compute_logits is false (the score head does not need the LM head's large product).
  void forward(const Batch& batch, bool compute_logits = true);
  T* logits() { return acts_.logits.data(); }
  int64_t last_B() const { return B_; }
  int64_t last_T() const { return T_; }

  // Backward pass of the last forward(), reading dLoss/dlogits from logits() (written there by a fused loss
  // kernel). Accumulates into grads().
  void backward(const Batch& batch);

  // Fused softmax + cross-entropy on the current logits, overwriting them with the gradient scaled by
  // grad_scale. Returns the weighted loss sum.
  double cross_entropy_in_place(const Batch& batch, T grad_scale);

  // Loss only (no gradient): the weighted loss sum; per-token losses written to `losses` when non-null.
  double cross_entropy(const Batch& batch, T* losses);

  // Score head: forward (no logits) and one scalar per sequence, read at its last real token.
  void score_forward(const Batch& batch, T* scores);
  // Backward of the last score_forward() given dLoss/dscore per sequence; accumulates into grads().
  void score_backward(const Batch& batch, const T* dscores);
  // One training step of the score head with binary cross-entropy on soft labels in [0, 1]
  // (label = relevance gain) and optional per-sequence weights; loss averaged over the weight sum.
  StepStats train_score_step(const std::vector<Batch>& micro, const std::vector<const float*>& labels,
                             const std::vector<const float*>& weights, const OptimConfig& opt);

  void zero_grad();
  // Global gradient norm, optional clipping, AdamW; advances step(). Throws MINIELM_NON_FINITE (and changes
  // nothing) when the gradients are not finite.
  StepStats optimizer_step(const OptimConfig& opt);

  // One training step over micro-batches (gradient accumulation): the loss is normalised by the total loss
  // weight of all micro-batches, so k micro-batches give the same update as one big batch.
  StepStats train_step(const std::vector<Batch>& micro, const OptimConfig& opt);

  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  Rng& rng() { return rng_; }

 private:
  struct Acts {
    std::vector<int32_t> pos;
    std::vector<T> encoded;                               // [BT, C]
    std::vector<T> ln1, ln1_mean, ln1_rstd;               // per layer
    std::vector<T> qkv, atty, att;                        // per layer
    std::vector<T> residual2, ln2, ln2_mean, ln2_rstd;    // per layer
    std::vector<T> fch, fch_gelu, residual3;              // per layer
    std::vector<T> lnf, lnf_mean, lnf_rstd;
    std::vector<T> logits;                                // [BT, V]
    // backward scratch
    std::vector<T> dres, dbuf_c, dqkv, dfch;
  };
  void ensure_acts(int64_t B, int64_t Tn);
  void init_params();
  // Backward through ln_f and the blocks, starting from dLoss/d(ln_f output) held in acts_.dbuf_c.
  void backward_from_final_hidden(const Batch& batch);
  double cross_entropy_impl(const Batch& batch, T* dlogits, T* losses, T grad_scale);
  std::vector<int64_t> last_index_;  // last real position of each sequence (score head)

  Config config_;
  std::vector<TensorInfo> tensors_;
  int64_t num_params_ = 0;
  T* arena_ = nullptr;
  std::atomic<uint64_t> params_version_{1};
  mutable DerivedWeights derived_;
  Acts acts_;
  int64_t acts_BT_ = 0;
  int64_t acts_T_ = 0;
  int64_t B_ = 0, T_ = 0;
  int64_t step_ = 0;
  Rng rng_;
  // offsets of each layer's tensors, in tensors_ order
  struct LayerIdx {
    int64_t ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
  };
  std::vector<LayerIdx> layers_;
  int64_t wte_ = 0, wpe_ = 0, lnfw_ = 0, lnfb_ = 0, score_ = -1;
};

extern template class Gpt2<float>;
extern template class Gpt2<double>;

}  // namespace minielm
