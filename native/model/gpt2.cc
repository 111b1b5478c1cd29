#include "gpt2.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "../core/error.h"
#include "../core/peak.h"
#include "../core/threads.h"
#include "ops.h"

namespace minielm {

void validate_config(const Config& c) {
  auto positive = [](int64_t v, const char* name, int64_t max) {
    if (v <= 0 || v > max)
      throw Error("MINIELM_INVALID_ARGUMENT", std::string("config.") + name + " must be an integer in [1, " +
                                                  std::to_string(max) + "], got " + std::to_string(v));
  };
  positive(c.vocab_size, "vocab_size", 1 << 22);
  positive(c.n_ctx, "n_ctx", 1 << 16);
  positive(c.n_layer, "n_layer", 256);
  positive(c.n_head, "n_head", 1024);
  positive(c.n_embd, "n_embd", 1 << 16);
  if (c.n_embd % c.n_head != 0)
    throw Error("MINIELM_INVALID_ARGUMENT", "config.n_embd (" + std::to_string(c.n_embd) +
                                                ") must be divisible by config.n_head (" +
                                                std::to_string(c.n_head) + ")");
  // The arena holds params, grads and both AdamW moments: check it fits before anything is allocated
  // (each factor is bounded above, so the product in double is exact enough and cannot overflow).
  const double C = static_cast<double>(c.n_embd);
  const double params = (static_cast<double>(c.vocab_size) + static_cast<double>(c.n_ctx)) * C +
                        static_cast<double>(c.n_layer) * (12.0 * C * C + 13.0 * C) + 3.0 * C;
  const double bytes = 16.0 * params;
  const double mem = physical_memory_bytes();
  if (mem > 0 && bytes > 0.75 * mem)
    throw Error("MINIELM_OUT_OF_MEMORY", "a model with this config has " + std::to_string(static_cast<int64_t>(params)) +
                                             " parameters and needs about " + std::to_string(static_cast<int64_t>(bytes / 1e6)) +
                                             " MB (weights, gradients, AdamW moments), more than this machine's " +
                                             std::to_string(static_cast<int64_t>(mem / 1e6)) + " MB");
}

double scheduled_lr(const OptimConfig& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == Schedule::Constant || o.total_steps <= o.warmup_steps) return o.lr;
  double progress = static_cast<double>(step - o.warmup_steps) / static_cast<double>(o.total_steps - o.warmup_steps);
  if (progress > 1) progress = 1;
  double min_lr = o.lr * o.min_lr_ratio;
  if (o.schedule == Schedule::Linear) return o.lr + (min_lr - o.lr) * progress;
  return min_lr + 0.5 * (o.lr - min_lr) * (1.0 + std::cos(3.14159265358979323846 * progress));
}

template <typename T>
Gpt2<T>::Gpt2(const Config& config, uint64_t seed) : config_(config), rng_(seed) {
  validate_config(config);
  const int64_t C = config.n_embd, V = config.vocab_size, L = config.n_layer;
  int64_t offset = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay) {
    int64_t size = 1;
    for (int64_t d : shape) size *= d;
    tensors_.push_back(TensorInfo{name, std::move(shape), offset, size, decay});
    offset += (size + 15) / 16 * 16;  // 64-byte aligned starts for the float engine
    return static_cast<int64_t>(tensors_.size() - 1);
  };
  wte_ = add("wte.weight", {V, C}, true);
  wpe_ = add("wpe.weight", {config.n_ctx, C}, true);
  for (int64_t l = 0; l < L; ++l) {
    std::string p = "h." + std::to_string(l) + ".";
    LayerIdx li{};
    li.ln1w = add(p + "ln_1.weight", {C}, false);
    li.ln1b = add(p + "ln_1.bias", {C}, false);
    li.qkvw = add(p + "attn.c_attn.weight", {C, 3 * C}, true);
    li.qkvb = add(p + "attn.c_attn.bias", {3 * C}, false);
    li.attprojw = add(p + "attn.c_proj.weight", {C, C}, true);
    li.attprojb = add(p + "attn.c_proj.bias", {C}, false);
    li.ln2w = add(p + "ln_2.weight", {C}, false);
    li.ln2b = add(p + "ln_2.bias", {C}, false);
    li.fcw = add(p + "mlp.c_fc.weight", {C, 4 * C}, true);
    li.fcb = add(p + "mlp.c_fc.bias", {4 * C}, false);
    li.fcprojw = add(p + "mlp.c_proj.weight", {4 * C, C}, true);
    li.fcprojb = add(p + "mlp.c_proj.bias", {C}, false);
    layers_.push_back(li);
  }
  lnfw_ = add("ln_f.weight", {C}, false);
  lnfb_ = add("ln_f.bias", {C}, false);
  if (config.score_head) score_ = add("score.weight", {1, C}, true);
  num_params_ = offset;
  size_t bytes = static_cast<size_t>(4 * num_params_) * sizeof(T);
  bytes = (bytes + 63) / 64 * 64;
  arena_ = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (!arena_) throw Error("MINIELM_OUT_OF_MEMORY", "could not allocate " + std::to_string(bytes) + " bytes for the model");
  std::memset(arena_, 0, bytes);
  init_params();
}

template <typename T>
Gpt2<T>::~Gpt2() {
  std::free(arena_);
}

template <typename T>
const TensorInfo* Gpt2<T>::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

// GPT-2's initialisation: N(0, 0.02) for matrices, residual projections scaled by 1/sqrt(2 * n_layer),
// LayerNorm gain 1, biases 0.
template <typename T>
void Gpt2<T>::init_params() {
  T* p = params();
  const double resid_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (const auto& t : tensors_) {
    T* w = p + t.offset;
    bool is_ln_weight = t.name.find("ln_") != std::string::npos && t.name.find(".weight") != std::string::npos;
    if (is_ln_weight) {
      for (int64_t i = 0; i < t.size; ++i) w[i] = T(1);
    } else if (t.shape.size() == 2) {
      bool resid = t.name.find("c_proj.weight") != std::string::npos;
      double stdv = resid ? resid_std : 0.02;
      for (int64_t i = 0; i < t.size; ++i) w[i] = static_cast<T>(rng_.normal() * stdv);
    }
  }
}

template <typename T>
void Gpt2<T>::ensure_acts(int64_t B, int64_t Tn) {
  const int64_t BT = B * Tn;
  if (BT <= acts_BT_ && Tn == acts_T_ && acts_.att.size() >= static_cast<size_t>(config_.n_layer * B * config_.n_head * Tn * Tn)) return;
  const int64_t C = config_.n_embd, L = config_.n_layer, NH = config_.n_head, V = config_.vocab_size;
  {
    const double bt = static_cast<double>(BT), l = static_cast<double>(L), c = static_cast<double>(C);
    const double floats = l * bt * (16.0 * c + 4.0) + l * static_cast<double>(B) * static_cast<double>(NH) * static_cast<double>(Tn) * static_cast<double>(Tn) +
                          bt * (static_cast<double>(V) + 10.0 * c + 3.0);
    const double mem = physical_memory_bytes();
    if (mem > 0 && floats * sizeof(T) > 0.75 * mem)
      throw Error("MINIELM_OUT_OF_MEMORY", "the activations of a batch of " + std::to_string(B) + " x " + std::to_string(Tn) +
                                               " tokens need about " + std::to_string(static_cast<int64_t>(floats * sizeof(T) / 1e6)) +
                                               " MB, more than this machine has: use a smaller batch or gradient accumulation");
  }
  Acts a;
  try {
    a.pos.resize(BT);
    a.encoded.resize(BT * C);
    a.ln1.resize(L * BT * C);
    a.ln1_mean.resize(L * BT);
    a.ln1_rstd.resize(L * BT);
    a.qkv.resize(L * BT * 3 * C);
    a.atty.resize(L * BT * C);
    a.att.resize(L * B * NH * Tn * Tn);
    a.residual2.resize(L * BT * C);
    a.ln2.resize(L * BT * C);
    a.ln2_mean.resize(L * BT);
    a.ln2_rstd.resize(L * BT);
    a.fch.resize(L * BT * 4 * C);
    a.fch_gelu.resize(L * BT * 4 * C);
    a.residual3.resize(L * BT * C);
    a.lnf.resize(BT * C);
    a.lnf_mean.resize(BT);
    a.lnf_rstd.resize(BT);
    a.logits.resize(BT * V);
    a.dres.resize(BT * C);
    a.dbuf_c.resize(BT * C);
    a.dqkv.resize(BT * 3 * C);
    a.dfch.resize(BT * 4 * C);
  } catch (const std::bad_alloc&) {
    throw Error("MINIELM_OUT_OF_MEMORY", "not enough memory for the activations of a batch of " +
                                             std::to_string(B) + " x " + std::to_string(Tn) +
                                             " tokens: use a smaller batch or gradient accumulation");
  }
  acts_ = std::move(a);
  acts_BT_ = BT;
  acts_T_ = Tn;
}

template <typename T>
void Gpt2<T>::validate_batch(const Batch& b, bool need_targets) const {
  require(b.tokens != nullptr, "MINIELM_INVALID_ARGUMENT", "batch.tokens is required");
  require(b.B > 0 && b.T > 0, "MINIELM_INVALID_ARGUMENT", "batch size and sequence length must be positive");
  require(b.T <= config_.n_ctx, "MINIELM_INVALID_ARGUMENT",
          "sequence length " + std::to_string(b.T) + " exceeds the model context n_ctx = " + std::to_string(config_.n_ctx));
  const int64_t BT = b.B * b.T;
  for (int64_t i = 0; i < BT; ++i)
    require(b.tokens[i] >= 0 && b.tokens[i] < config_.vocab_size, "MINIELM_INVALID_ARGUMENT",
            "token id " + std::to_string(b.tokens[i]) + " at position " + std::to_string(i) +
                " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  if (need_targets) {
    require(b.targets != nullptr, "MINIELM_INVALID_ARGUMENT", "batch.targets is required for a loss");
    for (int64_t i = 0; i < BT; ++i) {
      bool counted = b.loss_weight == nullptr || b.loss_weight[i] != 0.0f;
      if (counted)
        require(b.targets[i] >= 0 && b.targets[i] < config_.vocab_size, "MINIELM_INVALID_ARGUMENT",
                "target id " + std::to_string(b.targets[i]) + " at position " + std::to_string(i) +
                    " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
    }
    if (b.loss_weight)
      for (int64_t i = 0; i < BT; ++i)
        require(std::isfinite(b.loss_weight[i]) && b.loss_weight[i] >= 0, "MINIELM_INVALID_ARGUMENT",
                "loss weight at position " + std::to_string(i) + " must be finite and >= 0");
  }
}

template <typename T>
void Gpt2<T>::positions(const Batch& b, int32_t* out) {
  for (int64_t s = 0; s < b.B; ++s) {
    int32_t seen = 0;
    for (int64_t t = 0; t < b.T; ++t) {
      const bool real = b.attn_mask == nullptr || b.attn_mask[s * b.T + t] != 0;
      out[s * b.T + t] = real ? seen : (seen > 0 ? seen - 1 : 0);
      if (real) ++seen;
    }
  }
}

template <typename T>
void Gpt2<T>::forward(const Batch& batch, bool compute_logits) {
  validate_batch(batch, false);
  const int64_t B = batch.B, Tn = batch.T, BT = B * Tn;
  const int64_t C = config_.n_embd, L = config_.n_layer, NH = config_.n_head, V = config_.vocab_size;
  ensure_acts(B, Tn);
  B_ = B;
  T_ = Tn;
  Acts& a = acts_;
  T* p = params();
  positions(batch, a.pos.data());
  ops::embedding_forward(a.encoded.data(), batch.tokens, a.pos.data(), p + tensors_[wte_].offset,
                         p + tensors_[wpe_].offset, BT, C);
  const T* x = a.encoded.data();
  for (int64_t l = 0; l < L; ++l) {
    const LayerIdx& li = layers_[l];
    T* ln1 = a.ln1.data() + l * BT * C;
    T* qkv = a.qkv.data() + l * BT * 3 * C;
    T* atty = a.atty.data() + l * BT * C;
    T* att = a.att.data() + l * B * NH * Tn * Tn;
    T* res2 = a.residual2.data() + l * BT * C;
    T* ln2 = a.ln2.data() + l * BT * C;
    T* fch = a.fch.data() + l * BT * 4 * C;
    T* fchg = a.fch_gelu.data() + l * BT * 4 * C;
    T* res3 = a.residual3.data() + l * BT * C;
    T* tmp = a.dbuf_c.data();  // attention / MLP projection output before the residual add
    ops::layernorm_forward(ln1, a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT, x,
                           p + tensors_[li.ln1w].offset, p + tensors_[li.ln1b].offset, BT, C);
    ops::linear_forward(qkv, ln1, p + tensors_[li.qkvw].offset, p + tensors_[li.qkvb].offset, BT, C, 3 * C);
    ops::attention_forward(atty, att, qkv, batch.attn_mask, B, Tn, C, NH);
    ops::linear_forward(tmp, atty, p + tensors_[li.attprojw].offset, p + tensors_[li.attprojb].offset, BT, C, C);
    ops::residual_forward(res2, x, tmp, BT * C);
    ops::layernorm_forward(ln2, a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT, res2,
                           p + tensors_[li.ln2w].offset, p + tensors_[li.ln2b].offset, BT, C);
    ops::linear_forward(fch, ln2, p + tensors_[li.fcw].offset, p + tensors_[li.fcb].offset, BT, C, 4 * C);
    ops::gelu_forward(fchg, fch, BT * 4 * C);
    ops::linear_forward(tmp, fchg, p + tensors_[li.fcprojw].offset, p + tensors_[li.fcprojb].offset, BT, 4 * C, C);
    ops::residual_forward(res3, res2, tmp, BT * C);
    x = res3;
  }
  ops::layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), x, p + tensors_[lnfw_].offset,
                         p + tensors_[lnfb_].offset, BT, C);
  if (!compute_logits) return;
  // Tied LM head: logits = lnf · wte^T
  ops::gemm(false, true, BT, V, C, T(1), a.lnf.data(), C, p + tensors_[wte_].offset, C, T(0), a.logits.data(), V);
}

// Shared by the training and the evaluation entry points: with dlogits == logits() the gradient replaces
// the logits in place; with dlogits == nullptr only the losses are computed.
template <typename T>
double Gpt2<T>::cross_entropy_impl(const Batch& batch, T* dlogits, T* losses, T grad_scale) {
  validate_batch(batch, true);
  require(batch.B == B_ && batch.T == T_, "MINIELM_INVALID_ARGUMENT", "cross_entropy needs the batch of the last forward()");
  const int64_t BT = B_ * T_;
  std::vector<T> w;
  if (batch.loss_weight) {
    w.resize(BT);
    for (int64_t i = 0; i < BT; ++i) w[i] = static_cast<T>(batch.loss_weight[i]);
  }
  return ops::cross_entropy_forward_backward(dlogits, losses, logits(), batch.targets, batch.loss_weight ? w.data() : nullptr,
                                             BT, config_.vocab_size, grad_scale);
}

template <typename T>
double Gpt2<T>::cross_entropy_in_place(const Batch& batch, T grad_scale) {
  return cross_entropy_impl(batch, logits(), nullptr, grad_scale);
}

template <typename T>
double Gpt2<T>::cross_entropy(const Batch& batch, T* losses) {
  return cross_entropy_impl(batch, nullptr, losses, T(1));
}

template <typename T>
void Gpt2<T>::backward(const Batch& batch) {
  require(batch.B == B_ && batch.T == T_, "MINIELM_INVALID_ARGUMENT", "backward needs the batch of the last forward()");
  const int64_t B = B_, Tn = T_, BT = B * Tn;
  const int64_t C = config_.n_embd, V = config_.vocab_size;
  Acts& a = acts_;
  T* p = params();
  T* g = grads();
  T* dln = a.dbuf_c.data();
  // LM head: dlnf = dlogits · wte ; dwte += dlogits^T · lnf
  ops::gemm(false, false, BT, C, V, T(1), a.logits.data(), V, p + tensors_[wte_].offset, C, T(0), dln, C);
  ops::gemm(true, false, V, C, BT, T(1), a.logits.data(), V, a.lnf.data(), C, T(1), g + tensors_[wte_].offset, C);
  backward_from_final_hidden(batch);
}

template <typename T>
void Gpt2<T>::backward_from_final_hidden(const Batch& batch) {
  const int64_t B = B_, Tn = T_, BT = B * Tn;
  const int64_t C = config_.n_embd, L = config_.n_layer, NH = config_.n_head;
  Acts& a = acts_;
  T* p = params();
  T* g = grads();
  T* dres = a.dres.data();
  T* dln = a.dbuf_c.data();
  std::fill(dres, dres + BT * C, T(0));
  const T* last = L > 0 ? a.residual3.data() + (L - 1) * BT * C : a.encoded.data();
  ops::layernorm_backward(dres, g + tensors_[lnfw_].offset, g + tensors_[lnfb_].offset, dln, last,
                          p + tensors_[lnfw_].offset, a.lnf_mean.data(), a.lnf_rstd.data(), BT, C);
  for (int64_t l = L - 1; l >= 0; --l) {
    const LayerIdx& li = layers_[l];
    const T* x = l == 0 ? a.encoded.data() : a.residual3.data() + (l - 1) * BT * C;
    const T* ln1 = a.ln1.data() + l * BT * C;
    const T* qkv = a.qkv.data() + l * BT * 3 * C;
    const T* atty = a.atty.data() + l * BT * C;
    const T* att = a.att.data() + l * B * NH * Tn * Tn;
    const T* res2 = a.residual2.data() + l * BT * C;
    const T* ln2 = a.ln2.data() + l * BT * C;
    const T* fch = a.fch.data() + l * BT * 4 * C;
    const T* fchg = a.fch_gelu.data() + l * BT * 4 * C;
    T* dfch = a.dfch.data();
    T* dqkv = a.dqkv.data();
    // MLP: res3 = res2 + proj(gelu(fc(ln2(res2))))
    ops::linear_backward(dfch, g + tensors_[li.fcprojw].offset, g + tensors_[li.fcprojb].offset, dres, fchg,
                         p + tensors_[li.fcprojw].offset, BT, 4 * C, C);
    ops::gelu_backward(dfch, fch, dfch, BT * 4 * C);
    ops::linear_backward(dln, g + tensors_[li.fcw].offset, g + tensors_[li.fcb].offset, dfch, ln2,
                         p + tensors_[li.fcw].offset, BT, C, 4 * C);
    ops::layernorm_backward(dres, g + tensors_[li.ln2w].offset, g + tensors_[li.ln2b].offset, dln, res2,
                            p + tensors_[li.ln2w].offset, a.ln2_mean.data() + l * BT, a.ln2_rstd.data() + l * BT,
                            BT, C);
    // Attention: res2 = x + proj(attn(qkv(ln1(x))))
    ops::linear_backward(dln, g + tensors_[li.attprojw].offset, g + tensors_[li.attprojb].offset, dres, atty,
                         p + tensors_[li.attprojw].offset, BT, C, C);
    ops::attention_backward(dqkv, dln, att, qkv, B, Tn, C, NH);
    ops::linear_backward(dln, g + tensors_[li.qkvw].offset, g + tensors_[li.qkvb].offset, dqkv, ln1,
                         p + tensors_[li.qkvw].offset, BT, C, 3 * C);
    ops::layernorm_backward(dres, g + tensors_[li.ln1w].offset, g + tensors_[li.ln1b].offset, dln, x,
                            p + tensors_[li.ln1w].offset, a.ln1_mean.data() + l * BT, a.ln1_rstd.data() + l * BT,
                            BT, C);
  }
  ops::embedding_backward(g + tensors_[wte_].offset, g + tensors_[wpe_].offset, dres, batch.tokens, a.pos.data(), BT, C);
}

template <typename T>
void Gpt2<T>::score_forward(const Batch& batch, T* scores) {
  require(score_ >= 0, "MINIELM_INVALID_ARGUMENT", "this model has no score head (create it with score_head: true)");
  forward(batch, false);
  const int64_t C = config_.n_embd;
  last_index_.assign(static_cast<size_t>(batch.B), batch.T - 1);
  const T* w = params() + tensors_[score_].offset;
  for (int64_t b = 0; b < batch.B; ++b) {
    int64_t last = -1;
    for (int64_t t = 0; t < batch.T; ++t)
      if (batch.attn_mask == nullptr || batch.attn_mask[b * batch.T + t]) last = t;
    require(last >= 0, "MINIELM_INVALID_ARGUMENT", "sequence " + std::to_string(b) + " has no real token to score");
    last_index_[b] = last;
    const T* h = acts_.lnf.data() + (b * batch.T + last) * C;
    T s = 0;
    for (int64_t c = 0; c < C; ++c) s += h[c] * w[c];
    scores[b] = s;
  }
}

template <typename T>
void Gpt2<T>::score_backward(const Batch& batch, const T* dscores) {
  require(score_ >= 0, "MINIELM_INVALID_ARGUMENT", "this model has no score head");
  require(batch.B == B_ && batch.T == T_ && last_index_.size() == static_cast<size_t>(B_), "MINIELM_INVALID_ARGUMENT",
          "score_backward needs the batch of the last score_forward()");
  const int64_t C = config_.n_embd, BT = B_ * T_;
  T* dln = acts_.dbuf_c.data();
  std::fill(dln, dln + BT * C, T(0));
  const T* w = params() + tensors_[score_].offset;
  T* dw = grads() + tensors_[score_].offset;
  for (int64_t b = 0; b < B_; ++b) {
    const int64_t row = b * T_ + last_index_[b];
    const T* h = acts_.lnf.data() + row * C;
    for (int64_t c = 0; c < C; ++c) {
      dln[row * C + c] = dscores[b] * w[c];
      dw[c] += dscores[b] * h[c];
    }
  }
  backward_from_final_hidden(batch);
}

template <typename T>
StepStats Gpt2<T>::train_score_step(const std::vector<Batch>& micro, const std::vector<const float*>& labels,
                                    const std::vector<const float*>& weights, const OptimConfig& opt) {
  require(!micro.empty() && labels.size() == micro.size(), "MINIELM_INVALID_ARGUMENT", "each micro-batch needs its labels");
  double total = 0;
  for (size_t i = 0; i < micro.size(); ++i) {
    validate_batch(micro[i], false);
    for (int64_t b = 0; b < micro[i].B; ++b) {
      double y = labels[i][b];
      require(std::isfinite(y) && y >= 0 && y <= 1, "MINIELM_INVALID_ARGUMENT", "score labels must lie in [0, 1]");
      double w = weights.size() > i && weights[i] ? weights[i][b] : 1.0;
      require(std::isfinite(w) && w >= 0, "MINIELM_INVALID_ARGUMENT", "score weights must be finite and >= 0");
      total += w;
    }
  }
  require(total > 0, "MINIELM_INVALID_ARGUMENT", "the score weights sum to zero: nothing to learn from");
  zero_grad();
  double loss_sum = 0;
  for (size_t i = 0; i < micro.size(); ++i) {
    const Batch& b = micro[i];
    std::vector<T> s(static_cast<size_t>(b.B)), ds(static_cast<size_t>(b.B));
    score_forward(b, s.data());
    for (int64_t j = 0; j < b.B; ++j) {
      double w = weights.size() > i && weights[i] ? weights[i][j] : 1.0;
      double y = labels[i][j], z = static_cast<double>(s[j]);
      // Numerically stable BCE with logits: max(z, 0) - z y + log(1 + exp(-|z|)).
      loss_sum += w * (std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z))));
      double sig = 1.0 / (1.0 + std::exp(-z));
      ds[j] = static_cast<T>(w * (sig - y) / total);
    }
    score_backward(b, ds.data());
  }
  double loss = loss_sum / total;
  if (!std::isfinite(loss)) throw Error("MINIELM_NON_FINITE", "the score loss is not finite at step " + std::to_string(step_));
  StepStats st = optimizer_step(opt);
  st.loss = loss;
  st.tokens = total;
  return st;
}

template <typename T>
void Gpt2<T>::zero_grad() {
  T* g = grads();
  parallel_for(num_params_, 1 << 16, [&](int64_t i0, int64_t i1) { std::fill(g + i0, g + i1, T(0)); });
}

template <typename T>
StepStats Gpt2<T>::optimizer_step(const OptimConfig& o) {
  const int64_t N = num_params_;
  T* p = params();
  T* g = grads();
  T* m = adam_m();
  T* v = adam_v();
  // Deterministic norm: fixed chunks reduced in double, then summed in chunk order.
  const int nt = num_threads();
  std::vector<double> partial(static_cast<size_t>(nt), 0.0);
  run_parallel(nt, [&](int tid, int n) {
    int64_t i0 = N * tid / n, i1 = N * (tid + 1) / n;
    double s = 0;
    MINIELM_SIMD_SUM(s)
    for (int64_t i = i0; i < i1; ++i) s += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    partial[tid] = s;
  });
  double sq = 0;
  for (double s : partial) sq += s;
  double norm = std::sqrt(sq);
  if (!std::isfinite(norm))
    throw Error("MINIELM_NON_FINITE", "gradients are not finite at step " + std::to_string(step_) +
                                          "; the parameters were left unchanged. Lower the learning rate or check the data");
  double clip = (o.grad_clip > 0 && norm > o.grad_clip) ? o.grad_clip / (norm + 1e-6) : 1.0;
  double lr = scheduled_lr(o, step_);
  int64_t t = step_ + 1;
  const T b1 = static_cast<T>(o.beta1), b2 = static_cast<T>(o.beta2);
  const T inv_bc1 = static_cast<T>(1.0 / (1.0 - std::pow(o.beta1, static_cast<double>(t))));
  const T inv_bc2 = static_cast<T>(1.0 / (1.0 - std::pow(o.beta2, static_cast<double>(t))));
  const T lr_t = static_cast<T>(lr), eps = static_cast<T>(o.eps), clip_t = static_cast<T>(clip);
  // One pass over the whole arena split statically across threads (memory-bound: p, g, m, v are each read
  // once and p, m, v written once); each thread walks the tensors its range overlaps for their decay.
  parallel_for(N, 16384, [&](int64_t i0, int64_t i1) {
    for (const auto& ti : tensors_) {
      const int64_t a = std::max(i0, ti.offset), b = std::min(i1, ti.offset + ti.size);
      if (a >= b) continue;
      const T wd = ti.decay ? static_cast<T>(o.weight_decay) : T(0);
      T* __restrict__ pp = p + a;
      const T* __restrict__ gg = g + a;
      T* __restrict__ mm = m + a;
      T* __restrict__ vv = v + a;
      const int64_t n = b - a;
      for (int64_t i = 0; i < n; ++i) {
        const T grad = gg[i] * clip_t;
        const T mi = b1 * mm[i] + (T(1) - b1) * grad;
        const T vi = b2 * vv[i] + (T(1) - b2) * grad * grad;
        mm[i] = mi;
        vv[i] = vi;
        // Decoupled weight decay (Loshchilov & Hutter): shrink the weight, not the gradient.
        pp[i] -= lr_t * ((mi * inv_bc1) / (std::sqrt(vi * inv_bc2) + eps) + wd * pp[i]);
      }
    }
  });
  step_ = t;
  StepStats s;
  s.grad_norm = norm;
  s.lr = lr;
  s.step = step_;
  return s;
}

template <typename T>
StepStats Gpt2<T>::train_step(const std::vector<Batch>& micro, const OptimConfig& opt) {
  require(!micro.empty(), "MINIELM_INVALID_ARGUMENT", "a training step needs at least one batch");
  double total_weight = 0;
  for (const Batch& b : micro) {
    validate_batch(b, true);
    const int64_t BT = b.B * b.T;
    if (b.loss_weight) {
      for (int64_t i = 0; i < BT; ++i) total_weight += b.loss_weight[i];
    } else {
      total_weight += static_cast<double>(BT);
    }
  }
  require(total_weight > 0, "MINIELM_INVALID_ARGUMENT", "the loss mask selects no token in this step: nothing to learn from");
  zero_grad();
  double loss_sum = 0;
  for (const Batch& b : micro) {
    forward(b);
    loss_sum += cross_entropy_in_place(b, static_cast<T>(1.0 / total_weight));
    backward(b);
  }
  double loss = loss_sum / total_weight;
  if (!std::isfinite(loss))
    throw Error("MINIELM_NON_FINITE", "the loss is not finite at step " + std::to_string(step_) +
                                          "; the parameters were left unchanged");
  StepStats s = optimizer_step(opt);
  s.loss = loss;
  s.tokens = total_weight;
  return s;
}

template class Gpt2<float>;
template class Gpt2<double>;

}  // namespace minielm
