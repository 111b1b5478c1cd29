#include "decoder.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "../core/error.h"
#include "../core/peak.h"
#include "../core/rng.h"
#include "../core/threads.h"
#include "amx.h"
#include "kernels.h"

#ifndef MINIELM_DECODE_SPIN
#define MINIELM_DECODE_SPIN 200
#endif

namespace minielm {
namespace decode {

namespace {

// All threads of one step job meet here between phases. Spinning (then yielding) because a phase lasts
// microseconds: a futex sleep would cost more than the work.
class SpinBarrier {
 public:
  void reset(int n) {
    n_ = n;
    count_.store(0, std::memory_order_relaxed);
  }
  void wait() {
    if (n_ <= 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      // Cores are shared with other processes: stop burning a descheduled peer's time slice.
      if (spins > MINIELM_DECODE_SPIN) std::this_thread::yield();
    }
  }

 private:
  int n_ = 1;
  std::atomic<int> count_{0};
  std::atomic<int> gen_{0};
};

// [begin, end) of `units` units of `unit` columns for thread tid of nt, clamped to n.
inline void split_cols(int64_t n, int64_t unit, int tid, int nt, int64_t* j0, int64_t* j1) {
  const int64_t units = (n + unit - 1) / unit;
  *j0 = std::min(n, units * tid / nt * unit);
  *j1 = std::min(n, units * (tid + 1) / nt * unit);
}

// MINIELM_DECODE_SPLIT=cols|rows|single pins how steps use the threads (for measurements); unset: timed.
int forced_split() {
  static const int v = [] {
    const char* e = std::getenv("MINIELM_DECODE_SPLIT");
    if (e == nullptr) return 0;
    const std::string m(e);
    return m == "cols" ? 1 : m == "rows" ? 2 : m == "single" ? 3 : 0;
  }();
  return v;
}

// Step timings per (model shape, rows, threads) and threading mode, kept for the whole process so that
// later generations start with the mode that won before. A moving average follows changes in how busy
// the cores are, and every 16th step re-times another mode.
struct ModeKey {
  int64_t c, l, v, n, threads;
  bool operator<(const ModeKey& o) const {
    return std::tie(c, l, v, n, threads) < std::tie(o.c, o.l, o.v, o.n, o.threads);
  }
};
struct ModeStats {
  double avg_us[3] = {0, 0, 0};
  int64_t samples[3] = {0, 0, 0};
  int64_t steps = 0;
};
std::mutex g_mode_mu;
std::map<ModeKey, ModeStats> g_modes;

int choose_mode(const ModeKey& key) {
  std::lock_guard<std::mutex> lock(g_mode_mu);
  ModeStats& s = g_modes[key];
  for (int m = 0; m < 3; ++m)
    if (s.samples[m] < 2) return m;
  if (s.steps % 16 == 15) return static_cast<int>((s.steps / 16) % 3);
  return static_cast<int>(std::min_element(s.avg_us, s.avg_us + 3) - s.avg_us);
}

void record_mode(const ModeKey& key, int mode, double us) {
  std::lock_guard<std::mutex> lock(g_mode_mu);
  ModeStats& s = g_modes[key];
  s.avg_us[mode] = s.samples[mode] == 0 ? us : 0.7 * s.avg_us[mode] + 0.3 * us;
  ++s.samples[mode];
  ++s.steps;
}

inline void split_rows(int64_t n, int tid, int nt, int64_t* r0, int64_t* r1) {
  *r0 = n * tid / nt;
  *r1 = n * (tid + 1) / nt;
}


// The matrices of a model repacked for AMX tile products (amx.h), 6 per layer (q, k, v, attention
// projection, MLP in, MLP out) then the LM head: bf16 weights and activations, fp32 sums.
struct AmxWeights {
  std::vector<AmxMatrix> m;
};

// A parameter tensor of the model, read in place.
const float* param_of(const Gpt2<float>& model, const std::string& name) {
  const TensorInfo* t = model.find(name);
  if (!t) throw Error("MINIELM_NATIVE", "tensor " + name + " missing from the model");
  return model.params() + t->offset;
}

// The model's AMX packing, made once per version of the weights and kept with the model: a server's
// generations reuse it, and any write to the parameters (a training step, a load) makes the next
// generation pack again.
std::shared_ptr<const AmxWeights> amx_weights(const Gpt2<float>& model) {
  Gpt2<float>::DerivedWeights& slot = model.derived_weights();
  std::lock_guard<std::mutex> lock(slot.mutex);
  const uint64_t version = model.params_version();
  if (slot.data && slot.version == version) return std::static_pointer_cast<const AmxWeights>(slot.data);
  slot.data.reset();  // the stale packing's memory goes before the new one is allocated
  const Config& c = model.config();
  const int64_t C = c.n_embd;
  auto at = [&](const std::string& name) { return param_of(model, name); };
  auto w = std::make_shared<AmxWeights>();
  w->m.resize(static_cast<size_t>(6 * c.n_layer + 1));
  auto pack = [&](AmxMatrix* m, const float* src, int64_t K, int64_t N, int64_t sk, int64_t sn) {
    amx_alloc(K, N, m);
    parallel_for(m->Np / 16, 4, [&](int64_t b0, int64_t b1) { amx_pack(src, sk, sn, m, b0, b1); });
  };
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const std::string h = "h." + std::to_string(l) + ".";
    AmxMatrix* t = w->m.data() + 6 * l;
    const float* qkv = at(h + "attn.c_attn.weight");
    pack(t, qkv, C, C, 3 * C, 1);
    pack(t + 1, qkv + C, C, C, 3 * C, 1);
    pack(t + 2, qkv + 2 * C, C, C, 3 * C, 1);
    pack(t + 3, at(h + "attn.c_proj.weight"), C, C, C, 1);
    pack(t + 4, at(h + "mlp.c_fc.weight"), C, 4 * C, 4 * C, 1);
    pack(t + 5, at(h + "mlp.c_proj.weight"), 4 * C, C, C, 1);
  }
  pack(&w->m.back(), at("wte.weight"), C, c.vocab_size, 1, C);
  slot.data = w;
  slot.version = version;
  return w;
}

// The incremental forward pass over the model's parameters (read in place, never copied).
class KvForward final : public StepForward {
 public:
  KvForward(Gpt2<float>& m, int64_t cache_rows, int64_t max_rows, int64_t max_head_rows, bool bf16 = false)
      : StepForward(cache_rows), cfg_(m.config()) {
    const int64_t C = cfg_.n_embd, L = cfg_.n_layer;
    auto at = [&](const std::string& name) { return param_of(m, name); };
    wte_ = at("wte.weight");
    wpe_ = at("wpe.weight");
    lnfw_ = at("ln_f.weight");
    lnfb_ = at("ln_f.bias");
    for (int64_t l = 0; l < L; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      layers_.push_back(Layer{at(h + "ln_1.weight"), at(h + "ln_1.bias"), at(h + "attn.c_attn.weight"),
                              at(h + "attn.c_attn.bias"), at(h + "attn.c_proj.weight"), at(h + "attn.c_proj.bias"),
                              at(h + "ln_2.weight"), at(h + "ln_2.bias"), at(h + "mlp.c_fc.weight"),
                              at(h + "mlp.c_fc.bias"), at(h + "mlp.c_proj.weight"), at(h + "mlp.c_proj.bias")});
    }
    if (bf16 && using_amx()) {
      amx_ = amx_weights(m);
      for (int64_t l = 0; l < L; ++l) {
        const AmxMatrix* t = amx_->m.data() + 6 * l;
        Layer& w = layers_[static_cast<size_t>(l)];
        w.q = t;
        w.k = t + 1;
        w.v = t + 2;
        w.proj = t + 3;
        w.fc = t + 4;
        w.fcproj = t + 5;
      }
      head_amx_ = &amx_->m.back();
    } else if (bf16) {
      // Inference-only copy of the matrices in bf16: half the bytes to stream at every step.
      auto narrow = [&](const float* src, int64_t count) {
        bf16_.emplace_back(static_cast<size_t>(count));
        uint16_t* dst = bf16_.back().data();
        parallel_for(count, 1 << 16, [&](int64_t i0, int64_t i1) { to_bf16(src + i0, dst + i0, i1 - i0); });
        return static_cast<const uint16_t*>(dst);
      };
      for (Layer& w : layers_) {
        w.qkvw16 = narrow(w.qkvw, 3 * C * C);
        w.projw16 = narrow(w.projw, C * C);
        w.fcw16 = narrow(w.fcw, 4 * C * C);
        w.fcprojw16 = narrow(w.fcprojw, 4 * C * C);
      }
      wte16_ = narrow(wte_, cfg_.vocab_size * C);
    }
    kc_.resize(static_cast<size_t>(L * cap_ * C));
    vc_.resize(static_cast<size_t>(L * cap_ * C));
    x_.resize(static_cast<size_t>(max_rows * C));
    xn_.resize(static_cast<size_t>(max_rows * C));
    q_.resize(static_cast<size_t>(max_rows * C));
    att_.resize(static_cast<size_t>(max_rows * C));
    h_.resize(static_cast<size_t>(max_rows * 4 * C));
    xf_.resize(static_cast<size_t>(max_head_rows * C));
    qrow_.resize(max_rows);
    xrow_.resize(max_rows);
    hrow_.resize(max_rows);
    krow_.resize(static_cast<size_t>(L * max_rows));
    vrow_.resize(static_cast<size_t>(L * max_rows));
    scores_.resize(static_cast<size_t>(num_threads() * cfg_.n_ctx));
    max_rows_ = max_rows;
    max_head_ = max_head_rows;
  }

  int64_t vocab() const override { return cfg_.vocab_size; }


  // Runs rows[0..n) through the model (their keys/values land in the cache), writes the logits of the
  // rows listed in head[0..nh) to logits [nh, V], then runs the phases. One thread-pool job in all.
  // `independent`: no row attends to another row of this call (true for every step after the prefill).
  void run(const Row* rows, int64_t n, const int32_t* head, int64_t nh, float* logits, const std::vector<Phase>& phases,
           bool independent) override {
    if (n > max_rows_ || nh > max_head_) throw Error("MINIELM_NATIVE", "decode step larger than planned (internal sizing error)");
    const int64_t C = cfg_.n_embd, L = cfg_.n_layer;
    for (int64_t r = 0; r < n; ++r) {
      qrow_[r] = q_.data() + r * C;
      xrow_[r] = x_.data() + r * C;
      hrow_[r] = h_.data() + r * 4 * C;
      const int64_t slot = rows[r].ctx[rows[r].pos];
      for (int64_t l = 0; l < L; ++l) {
        krow_[l * n + r] = kc_.data() + (l * cap_ + slot) * C;
        vrow_[l * n + r] = vc_.data() + (l * cap_ + slot) * C;
      }
    }
    // Three ways to run a step, with bitwise identical results (every kernel output is independent of how
    // rows and columns are split): split the columns of every layer among the threads (half the weight
    // traffic per thread, but ~6 barriers per layer), give each thread whole rows (no barrier until the LM
    // head, but every thread reads all the weights), or one thread alone (no synchronisation at all).
    // Which is fastest depends on how busy the shared cores are, so steps are timed and the fastest mode
    // so far is used (see choose_mode).
    int mode = 0;  // 0: columns, 1: rows, 2: one thread
    const bool tunable = independent && num_threads() > 1 && n >= 2;
    const ModeKey key{cfg_.n_embd, cfg_.n_layer, cfg_.vocab_size * (wte16_ || head_amx_ ? -1 : 1), n, num_threads()};
    if (tunable) mode = forced_split() != 0 ? forced_split() - 1 : choose_mode(key);
    const bool by_rows = mode == 1;
    const int nt_want = mode == 2 ? 1 : num_threads();
    const auto t0 = std::chrono::steady_clock::now();
    barrier_.reset(nt_want);
    run_parallel(nt_want, [&](int tid, int nt) {
      if (nt != nt_want && tid == 0) barrier_.reset(nt);  // never happens with the pool as written
      if (by_rows) {
        int64_t r0, r1;
        split_rows(n, tid, nt, &r0, &r1);
        body(rows, n, r0, r1, 0, 1, nullptr, tid);
      } else {
        body(rows, n, 0, n, tid, nt, &barrier_, tid);
      }
      int64_t r0, r1, j0, j1;
      // Final LayerNorm and the LM head only for the rows whose next token is wanted.
      if (by_rows) {
        // Each thread normalises the head rows it computed, so the barrier below is the first one.
        split_rows(n, tid, nt, &r0, &r1);
        for (int64_t i = 0; i < nh; ++i)
          if (head[i] >= r0 && head[i] < r1) layernorm_row(x_.data() + head[i] * C, lnfw_, lnfb_, C, xf_.data() + i * C);
      } else {
        split_rows(nh, tid, nt, &r0, &r1);
        for (int64_t i = r0; i < r1; ++i) layernorm_row(x_.data() + head[i] * C, lnfw_, lnfb_, C, xf_.data() + i * C);
      }
      barrier_.wait();
      split_cols(cfg_.vocab_size, 64, tid, nt, &j0, &j1);
      if (head_amx_) head_cols_amx(nh, xf_.data(), C, *head_amx_, logits, cfg_.vocab_size, j0, j1);
      else if (wte16_) head_cols(nh, C, xf_.data(), C, wte16_, C, logits, cfg_.vocab_size, j0, j1);
      else head_cols(nh, C, xf_.data(), C, wte_, C, logits, cfg_.vocab_size, j0, j1);
      for (const Phase& ph : phases) {
        barrier_.wait();
        split_rows(ph.count, tid, nt, &r0, &r1);
        for (int64_t i = r0; i < r1; ++i) ph.fn(i, tid);
      }
    });
    if (tunable) record_mode(key, mode, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }

 private:
  // Layers for rows [r0, r1), columns shared among nt threads (this is thread tid); bar synchronises the
  // threads sharing columns (null when one thread owns the rows alone); slot picks the pool thread's scratch.
  void body(const Row* rows, int64_t n, int64_t r0, int64_t r1, int tid, int nt, SpinBarrier* bar, int slot) {
    const int64_t C = cfg_.n_embd, L = cfg_.n_layer, NH = cfg_.n_head, hs = C / NH;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
    auto sync = [&] {
      if (bar) bar->wait();
    };
    const int64_t m = r1 - r0;
    int64_t a0, a1, j0, j1;
    split_rows(m, tid, nt, &a0, &a1);
    a0 += r0;
    a1 += r0;
    for (int64_t r = a0; r < a1; ++r) {
      const float* e = wte_ + static_cast<int64_t>(rows[r].token) * C;
      const float* pe = wpe_ + static_cast<int64_t>(rows[r].pos) * C;
      float* x = x_.data() + r * C;
      for (int64_t c = 0; c < C; ++c) x[c] = e[c] + pe[c];
      if (L > 0) layernorm_row(x, layers_[0].ln1w, layers_[0].ln1b, C, xn_.data() + r * C);
    }
    sync();
    const float* xn = xn_.data() + r0 * C;
    for (int64_t l = 0; l < L; ++l) {
      const Layer& w = layers_[l];
      // q | k | v: q to the step buffer, k and v straight into this token's cache row.
      split_cols(C, 64, tid, nt, &j0, &j1);
      lin(m, C, xn, C, w.q, w.qkvw, w.qkvw16, 0, 3 * C, w.qkvb, qrow_.data() + r0, j0, j1, Epilogue::Store);
      lin(m, C, xn, C, w.k, w.qkvw, w.qkvw16, C, 3 * C, w.qkvb + C, krow_.data() + l * n + r0, j0, j1, Epilogue::Store);
      lin(m, C, xn, C, w.v, w.qkvw, w.qkvw16, 2 * C, 3 * C, w.qkvb + 2 * C, vrow_.data() + l * n + r0, j0, j1, Epilogue::Store);
      sync();
      const float* kb = kc_.data() + l * cap_ * C;
      const float* vb = vc_.data() + l * cap_ * C;
      float* sc = scores_.data() + static_cast<size_t>(slot) * cfg_.n_ctx;
      int64_t i0, i1;
      split_rows(m * NH, tid, nt, &i0, &i1);
      for (int64_t it = i0; it < i1; ++it) {
        const int64_t r = r0 + it / NH, h = it % NH;
        attend(q_.data() + r * C + h * hs, kb + h * hs, vb + h * hs, C, rows[r].ctx, rows[r].pos + 1, hs, scale, sc,
               att_.data() + r * C + h * hs);
      }
      sync();
      lin(m, C, att_.data() + r0 * C, C, w.proj, w.projw, w.projw16, 0, C, w.projb, xrow_.data() + r0, j0, j1, Epilogue::AddTo);
      sync();
      for (int64_t r = a0; r < a1; ++r) layernorm_row(x_.data() + r * C, w.ln2w, w.ln2b, C, xn_.data() + r * C);
      sync();
      split_cols(4 * C, 64, tid, nt, &j0, &j1);
      lin(m, C, xn, C, w.fc, w.fcw, w.fcw16, 0, 4 * C, w.fcb, hrow_.data() + r0, j0, j1, Epilogue::Gelu);
      sync();
      split_cols(C, 64, tid, nt, &j0, &j1);
      lin(m, 4 * C, h_.data() + r0 * 4 * C, 4 * C, w.fcproj, w.fcprojw, w.fcprojw16, 0, C, w.fcprojb, xrow_.data() + r0, j0, j1, Epilogue::AddTo);
      sync();
      if (l + 1 < L) {
        for (int64_t r = a0; r < a1; ++r)
          layernorm_row(x_.data() + r * C, layers_[l + 1].ln1w, layers_[l + 1].ln1b, C, xn_.data() + r * C);
        sync();
      }
    }
  }

  struct Layer {
    const float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
    const uint16_t *qkvw16 = nullptr, *projw16 = nullptr, *fcw16 = nullptr, *fcprojw16 = nullptr;
    const AmxMatrix *q = nullptr, *k = nullptr, *v = nullptr, *proj = nullptr, *fc = nullptr, *fcproj = nullptr;
  };
  std::vector<std::vector<uint16_t>> bf16_;
  const uint16_t* wte16_ = nullptr;
  std::shared_ptr<const AmxWeights> amx_;
  const AmxMatrix* head_amx_ = nullptr;
  // The matrix product with whichever copy of the weights this generation uses.
  static void lin(int64_t M, int64_t K, const float* A, int64_t lda, const AmxMatrix* T, const float* W,
                  const uint16_t* W16, int64_t off, int64_t ldw, const float* bias, float* const* out, int64_t j0,
                  int64_t j1, Epilogue epi) {
    if (T) linear_cols_amx(M, A, lda, *T, bias, out, j0, j1, epi);
    else if (W16) linear_cols(M, K, A, lda, W16 + off, ldw, bias, out, j0, j1, epi);
    else linear_cols(M, K, A, lda, W + off, ldw, bias, out, j0, j1, epi);
  }
  Config cfg_;
  int64_t max_rows_ = 0, max_head_ = 0;
  const float *wte_, *wpe_, *lnfw_, *lnfb_;
  std::vector<Layer> layers_;
  // Every element is written before it is read, so the buffers skip std::vector's zero fill (a megabyte
  // or more of memset and page clearing per generation).
  struct Buffer {
    std::unique_ptr<float[]> p;
    void resize(size_t n) { p.reset(new float[n]); }
    float* data() { return p.get(); }
    const float* data() const { return p.get(); }
  };
  Buffer kc_, vc_;  // [L, cache rows, C]
  Buffer x_, xn_, q_, att_, h_, xf_;
  std::vector<float*> qrow_, xrow_, hrow_, krow_, vrow_;
  std::vector<float> scores_;
  SpinBarrier barrier_;
};

// Per-thread buffers for sampling over the whole vocabulary.
struct SampleScratch {
  std::vector<float> val;
  std::vector<int32_t> idx;
  std::vector<float> proc;  // the processed logits row (rewrite hygiene)
};

// One draw from softmax(logits / T) restricted by top-k then top-p (HF's warper order). u in [0, 1).
// Tokens the hygiene masked (logit -inf) are never drawn: the vector exp gives them a tiny positive weight,
// not 0, and a temperature near 0 or past float's range made the weights NaN (0 * inf, -inf * 0), after
// which the draw fell through to the last candidate, a masked token: a word outside the word constraint.
// So 1 / T is kept inside [1e-30, 1e30] (T -> 0 still picks the best token, T -> inf draws uniformly).
int32_t sample_token(const float* logits, int64_t V, const GenerateOptions& o, double u, SampleScratch& s) {
  const float inv_t = static_cast<float>(std::min(std::max(1.0 / o.temperature, 1e-30), 1e30));
  const bool use_k = o.top_k > 0 && o.top_k < V;
  const bool use_p = o.top_p < 1.0;
  if (!use_k && !use_p) {
    // Inverse CDF in token order over the full vocabulary.
    float mx;
    log_sum_exp(logits, V, &mx);
    float* p = s.val.data();
    const float total = exp_scaled(logits, V, mx, inv_t, p);
    const double target = u * static_cast<double>(total);
    double cum = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < V; ++i) {
      if (!(p[i] > 0) || !(logits[i] > -INFINITY)) continue;
      cum += p[i];
      last = i;
      if (cum > target) return static_cast<int32_t>(i);
    }
    // Rounding left the target just above the sum (or every weight underflowed: take the best token).
    return static_cast<int32_t>(last >= 0 ? last : arg_max(logits, V));
  }
  // Candidates sorted by logit, best first: the top k, or for top-p alone a growing prefix until it
  // holds top_p of the mass (a full sort of the vocabulary only when the distribution is very flat).
  int64_t m = use_k ? o.top_k : std::min<int64_t>(64, V);
  int64_t count = 0, keep = 0;
  double kept_mass = 0;
  double total = 0;
  float mx = 0;
  if (!use_k) {
    log_sum_exp(logits, V, &mx);
    total = exp_scaled(logits, V, mx, inv_t, nullptr);
  }
  for (;;) {
    count = top_m(logits, V, m, s.idx.data(), s.val.data());
    while (count > 1 && !(s.val[count - 1] > -INFINITY)) --count;  // masked candidates (the best one is finite)
    const float shift = use_k ? s.val[0] : mx;
    float* p = s.val.data();
    const float sum = exp_scaled(p, count, shift, inv_t, p);
    if (use_k) total = sum;
    kept_mass = 0;
    keep = 0;
    for (int64_t i = 0; i < count; ++i) {
      // HF keeps a token while the mass strictly before it is below top_p.
      if (use_p && i > 0 && kept_mass >= o.top_p * total) break;
      kept_mass += p[i];
      keep = i + 1;
    }
    // Enough mass, or a cut inside the candidates, or every unmasked token is a candidate already.
    const bool enough = !use_p || kept_mass >= o.top_p * total || keep < count || count < std::min(m, V);
    if (use_k || enough || m >= V) break;
    m = std::min<int64_t>(V, m * 4);
  }
  const double target = u * kept_mass;
  double cum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cum += s.val[i];
    if (cum > target) return s.idx[i];
  }
  return s.idx[keep - 1];
}

uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

bool hygiene_on(const GenerateOptions& o) {
  return o.no_repeat_ngram_size > 0 || o.repetition_penalty != 1.0 || o.min_new_tokens > 0 || o.word_constraint != nullptr;
}

// Allowed-token lists of the vocabulary constraint per state, filled single-threaded before a step so the
// parallel phases only read it.
class AllowedCache {
 public:
  explicit AllowedCache(const WordConstraint* c) : c_(c) {}
  const std::vector<int32_t>* get(int32_t state) {
    if (c_ == nullptr) return nullptr;
    if (state == WordConstraint::kRoot) return &c_->root_allowed();
    auto it = cache_.find(state);
    if (it == cache_.end()) it = cache_.emplace(state, c_->allowed(state)).first;
    return &it->second;
  }

 private:
  const WordConstraint* c_;
  std::map<int32_t, std::vector<int32_t>> cache_;
};

// The vocabulary mask alone (or a plain copy without a constraint).
void mask_row(const GenerateOptions& o, const float* raw, int64_t V, const std::vector<int32_t>* allowed, bool can_end, float* out) {
  if (o.word_constraint) {
    std::fill(out, out + V, -INFINITY);
    for (int32_t t : *allowed) out[t] = raw[t];
    if (o.eos_token_id >= 0 && can_end) out[o.eos_token_id] = raw[o.eos_token_id];
  } else {
    std::copy(raw, raw + V, out);
  }
}

bool any_finite(const float* x, int64_t V) {
  for (int64_t t = 0; t < V; ++t)
    if (x[t] > -INFINITY) return true;
  return false;
}

// The processed logits of one sequence: vocabulary mask, repetition penalty, no-repeat n-grams, minimum
// length, in that order. `gen` is the sequence's new tokens so far; `allowed`/`can_end` its constraint
// state. The vocabulary mask is hard, the rest soft: when they leave nothing to pick (a banned n-gram was
// the only way to finish a word), they are dropped for this step; with nothing at all, only EOS remains.
void process_row(const GenerateOptions& o, const float* raw, int64_t V, const std::vector<int32_t>& gen,
                 const std::vector<int32_t>* allowed, bool can_end, float* out) {
  const float neg = -INFINITY;
  const int64_t eos = o.eos_token_id;
  mask_row(o, raw, V, allowed, can_end, out);
  if (o.repetition_penalty != 1.0) {
    const float p = static_cast<float>(o.repetition_penalty);
    for (size_t i = 0; i < gen.size(); ++i) {
      const int32_t t = gen[i];
      if (t == eos || std::find(gen.begin(), gen.begin() + static_cast<std::ptrdiff_t>(i), t) != gen.begin() + static_cast<std::ptrdiff_t>(i)) continue;
      float& v = out[t];
      if (std::isfinite(v)) v = v > 0 ? v / p : v * p;
    }
  }
  const int64_t n = o.no_repeat_ngram_size, L = static_cast<int64_t>(gen.size());
  if (n > 0 && L >= n - 1) {
    for (int64_t i = 0; i + n <= L; ++i) {
      bool same = true;
      for (int64_t k = 0; k < n - 1 && same; ++k) same = gen[i + k] == gen[L - (n - 1) + k];
      if (same) out[gen[i + n - 1]] = neg;
    }
  }
  if (o.min_new_tokens > 0 && eos >= 0 && L < o.min_new_tokens) out[eos] = neg;
  if (any_finite(out, V)) return;
  mask_row(o, raw, V, allowed, can_end, out);
  if (any_finite(out, V)) return;
  if (eos >= 0) out[eos] = raw[eos];
  else std::copy(raw, raw + V, out);
}

void check_cancel(const GenerateOptions& o) {
  if (o.cancel != nullptr && o.cancel->load(std::memory_order_relaxed))
    throw Error("MINIELM_ABORTED", "generation was aborted");
}

// The CPU forward pass, or the one a device backend supplies.
std::unique_ptr<StepForward> make_forward(Gpt2<float>& model, const StepFactory* factory, int64_t cache_rows,
                                          int64_t max_rows, int64_t max_head_rows, bool bf16) {
  if (factory != nullptr && *factory) return (*factory)(cache_rows, max_rows, max_head_rows);
  return std::make_unique<KvForward>(model, cache_rows, max_rows, max_head_rows, bf16);
}

struct Plan {
  int64_t prompt_tokens = 0;
  std::vector<int32_t> prompt_base;  // first cache row of each prompt
};

// ---- greedy and sampling ----
std::vector<std::vector<Generated>> run_sampling(Gpt2<float>& model, const std::vector<std::vector<int32_t>>& prompts,
                                                 const GenerateOptions& o, const StepFactory* factory) {
  const int64_t np = static_cast<int64_t>(prompts.size());
  const int64_t n = o.strategy == Strategy::Greedy ? 1 : o.num_return_sequences;
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int64_t>(p.size());
  const int64_t seqs = np * n;
  std::unique_ptr<StepForward> fwp = make_forward(model, factory, prompt_tokens + seqs * (o.max_new_tokens - 1),
                                                 std::max(prompt_tokens, seqs), std::max(np, seqs), o.bf16_weights);
  StepForward& fw = *fwp;
  const int64_t V = fw.vocab();

  struct Seq {
    int64_t prompt;
    std::vector<int32_t> table;
    Generated out;
    Rng rng;
    int64_t head = 0;  // logits row this sequence reads at the current step
    bool done = false;
    int32_t wstate = WordConstraint::kRoot;  // vocabulary-constraint state
    const std::vector<int32_t>* allowed = nullptr;
  };
  std::vector<Seq> all(static_cast<size_t>(seqs));
  std::vector<Row> rows;
  std::vector<int32_t> head;
  rows.reserve(static_cast<size_t>(std::max(prompt_tokens, seqs)));
  // Prefill: every prompt token at its own position; logits of each prompt's last token.
  std::vector<std::vector<int32_t>> prompt_table(static_cast<size_t>(np));
  for (int64_t i = 0; i < np; ++i) {
    const int64_t P = static_cast<int64_t>(prompts[i].size());
    const int32_t base = fw.alloc(P);
    auto& t = prompt_table[i];
    for (int64_t k = 0; k < P; ++k) t.push_back(base + static_cast<int32_t>(k));
  }
  for (int64_t i = 0; i < np; ++i) {
    const int64_t P = static_cast<int64_t>(prompts[i].size());
    for (int64_t k = 0; k < P; ++k) rows.push_back(Row{prompts[i][k], static_cast<int32_t>(k), prompt_table[i].data()});
    head.push_back(static_cast<int32_t>(rows.size() - 1));
  }
  for (int64_t i = 0; i < np; ++i)
    for (int64_t s = 0; s < n; ++s) {
      Seq& q = all[i * n + s];
      q.prompt = i;
      q.table = prompt_table[i];
      q.table.reserve(prompts[i].size() + o.max_new_tokens);
      // One random stream per sample index (not per prompt), so a prompt sampled in a batch gets the same
      // samples as sampled alone, and no draw depends on thread timing.
      q.rng.reseed(mix_seed(o.seed, static_cast<uint64_t>(s)));
      q.head = i;
    }

  std::vector<float> logits(static_cast<size_t>(std::max(np, seqs) * V));
  const bool hygiene = hygiene_on(o);
  const WordConstraint* wc = o.word_constraint.get();
  AllowedCache allowed(wc);
  std::vector<SampleScratch> scratch(static_cast<size_t>(num_threads()));
  for (auto& s : scratch) {
    s.val.resize(static_cast<size_t>(V));
    s.idx.resize(static_cast<size_t>(V));
    if (hygiene) s.proc.resize(static_cast<size_t>(V));
  }
  std::vector<int64_t> active;  // sequences consuming logits this step
  for (int64_t s = 0; s < seqs; ++s) active.push_back(s);
  std::vector<int32_t> picked(static_cast<size_t>(seqs));
  std::vector<float> picked_lp(static_cast<size_t>(seqs));

  std::vector<Phase> phases;
  phases.push_back(Phase{0, [&](int64_t a, int tid) {
                           Seq& q = all[active[a]];
                           const float* row = logits.data() + q.head * V;
                           float mx;
                           const float lse = log_sum_exp(row, V, &mx);
                           const float* use = row;
                           if (hygiene) {
                             float* p = scratch[tid].proc.data();
                             process_row(o, row, V, q.out.tokens, q.allowed, wc == nullptr || wc->can_end(q.wstate), p);
                             use = p;
                           }
                           int32_t tok;
                           if (o.strategy == Strategy::Greedy) {
                             tok = static_cast<int32_t>(arg_max(use, V));
                           } else {
                             tok = sample_token(use, V, o, q.rng.uniform(), scratch[tid]);
                           }
                           picked[active[a]] = tok;
                           picked_lp[active[a]] = row[tok] - lse;
                         }});

  for (int64_t step = 0;; ++step) {
    check_cancel(o);
    if (wc != nullptr)
      for (int64_t s : active) all[s].allowed = allowed.get(all[s].wstate);
    phases[0].count = static_cast<int64_t>(active.size());
    fw.run(rows.data(), static_cast<int64_t>(rows.size()), head.data(), static_cast<int64_t>(head.size()),
           logits.data(), phases, step > 0);
    rows.clear();
    head.clear();
    std::vector<int64_t> next;
    for (int64_t s : active) {
      Seq& q = all[s];
      const int32_t tok = picked[s];
      q.out.tokens.push_back(tok);
      q.out.logprob += picked_lp[s];
      if (wc != nullptr) q.wstate = std::max(WordConstraint::kRoot, wc->step(q.wstate, tok));
      if (o.token_logprobs) q.out.token_logprobs.push_back(picked_lp[s]);
      if (o.logits) {
        const float* row = logits.data() + q.head * V;
        q.out.logits.insert(q.out.logits.end(), row, row + V);
      }
      if (o.eos_token_id >= 0 && tok == o.eos_token_id) {
        q.out.eos = true;
        q.done = true;
      } else if (static_cast<int64_t>(q.out.tokens.size()) >= o.max_new_tokens) {
        q.done = true;
      }
      if (q.done) continue;
      const int32_t pos = static_cast<int32_t>(q.table.size());
      q.table.push_back(fw.alloc(1));
      q.head = static_cast<int64_t>(rows.size());
      head.push_back(static_cast<int32_t>(rows.size()));
      rows.push_back(Row{tok, pos, q.table.data()});
      next.push_back(s);
    }
    active.swap(next);
    if (active.empty()) break;
  }
  std::vector<std::vector<Generated>> result(static_cast<size_t>(np));
  for (int64_t s = 0; s < seqs; ++s) {
    all[s].out.score = all[s].out.logprob;
    result[all[s].prompt].push_back(std::move(all[s].out));
  }
  return result;
}

// ---- beam search ----
// Beam sums rank by the processed log-probs (equal to the raw ones without hygiene); raw_sum and lps are
// the raw model's.
struct Hyp {
  double score;
  double sum;
  std::vector<int32_t> tokens;
  std::vector<float> lps;
  bool eos;
  double raw_sum;
};

struct Beam {
  std::vector<int32_t> tokens;
  std::vector<float> lps;
  double sum = 0;
  std::vector<int32_t> table;
  double raw_sum = 0;
  int32_t wstate = WordConstraint::kRoot;
  const std::vector<int32_t>* allowed = nullptr;
};

struct Cand {
  double total;
  float lp;
  int32_t beam;
  int32_t token;
  float raw_lp;
};

std::vector<std::vector<Generated>> run_beam(Gpt2<float>& model, const std::vector<std::vector<int32_t>>& prompts,
                                             const GenerateOptions& o, const StepFactory* factory) {
  const int64_t np = static_cast<int64_t>(prompts.size());
  const int64_t B = o.num_beams;
  const int64_t width = 2 * B;  // candidates per beam: enough to refill B live beams after EOS picks
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int64_t>(p.size());
  std::unique_ptr<StepForward> fwp = make_forward(model, factory, prompt_tokens + np * B * (o.max_new_tokens - 1),
                                                 std::max(prompt_tokens, np * B), np * B, o.bf16_weights);
  StepForward& fw = *fwp;
  const int64_t V = fw.vocab();
  const int64_t w = std::min(width, V);
  const double lp_pow = o.length_penalty;

  struct PromptState {
    std::vector<Beam> live;
    std::vector<Hyp> hyps;  // best B finished hypotheses, unsorted
    bool done = false;
    int64_t first_head = 0;  // logits row of live[0] this step
  };
  std::vector<PromptState> st(static_cast<size_t>(np));
  std::vector<Row> rows;
  std::vector<int32_t> head;
  for (int64_t i = 0; i < np; ++i) {
    const int64_t P = static_cast<int64_t>(prompts[i].size());
    const int32_t base = fw.alloc(P);
    Beam root;
    for (int64_t k = 0; k < P; ++k) root.table.push_back(base + static_cast<int32_t>(k));
    st[i].live.push_back(std::move(root));
  }
  for (int64_t i = 0; i < np; ++i) {
    const int64_t P = static_cast<int64_t>(prompts[i].size());
    for (int64_t k = 0; k < P; ++k) rows.push_back(Row{prompts[i][k], static_cast<int32_t>(k), st[i].live[0].table.data()});
    st[i].first_head = static_cast<int64_t>(head.size());
    head.push_back(static_cast<int32_t>(rows.size() - 1));
  }

  std::vector<float> logits(static_cast<size_t>(np * B * V));
  std::vector<int32_t> cidx(static_cast<size_t>(np * B * w));
  std::vector<float> cval(static_cast<size_t>(np * B * w));
  std::vector<float> craw(static_cast<size_t>(np * B * w));
  std::vector<int64_t> ccount(static_cast<size_t>(np * B));
  const bool hygiene = hygiene_on(o);
  const WordConstraint* wc = o.word_constraint.get();
  AllowedCache allowed(wc);
  std::vector<const Beam*> row_beam(static_cast<size_t>(np * B), nullptr);  // the beam each logits row belongs to
  std::vector<std::vector<float>> proc(hygiene ? static_cast<size_t>(num_threads()) : 0, std::vector<float>(static_cast<size_t>(V)));
  std::vector<Phase> phases;
  phases.push_back(Phase{0, [&](int64_t r, int tid) {
                           const float* row = logits.data() + r * V;
                           float mx, lse, plse;
                           const float* use = row;
                           if (hygiene) {
                             const Beam& b = *row_beam[static_cast<size_t>(r)];
                             float* p = proc[static_cast<size_t>(tid)].data();
                             process_row(o, row, V, b.tokens, b.allowed, wc == nullptr || wc->can_end(b.wstate), p);
                             use = p;
                             log_sum_exp_pair(row, p, V, &lse, &plse);
                           } else {
                             lse = plse = log_sum_exp(row, V, &mx);
                           }
                           int32_t* idx = cidx.data() + r * w;
                           float* val = cval.data() + r * w;
                           ccount[r] = top_m(use, V, w, idx, val);
                           for (int64_t k = 0; k < ccount[r]; ++k) {
                             val[k] -= plse;
                             craw[r * w + k] = row[idx[k]] - lse;
                           }
                         }});
  // Points each head row at its beam (and the beam at its allowed tokens) before a step.
  auto bind_rows = [&] {
    for (int64_t i = 0; i < np; ++i) {
      PromptState& s = st[i];
      if (s.done) continue;
      for (int64_t b = 0; b < static_cast<int64_t>(s.live.size()); ++b) {
        Beam& beam = s.live[b];
        if (wc != nullptr) beam.allowed = allowed.get(beam.wstate);
        row_beam[static_cast<size_t>(s.first_head + b)] = &beam;
      }
    }
  };

  auto add_hyp = [&](PromptState& s, Hyp h) {
    s.hyps.push_back(std::move(h));
    if (static_cast<int64_t>(s.hyps.size()) > B) {
      auto worst = std::min_element(s.hyps.begin(), s.hyps.end(), [](const Hyp& a, const Hyp& b) { return a.score < b.score; });
      s.hyps.erase(worst);
    }
  };
  auto len_score = [&](double sum, int64_t len) { return sum / std::pow(static_cast<double>(len), lp_pow); };

  std::vector<Cand> cands;
  for (int64_t g = 0;; ++g) {  // g tokens generated so far by every live beam
    check_cancel(o);
    if (hygiene) bind_rows();
    phases[0].count = static_cast<int64_t>(head.size());
    fw.run(rows.data(), static_cast<int64_t>(rows.size()), head.data(), static_cast<int64_t>(head.size()),
           logits.data(), phases, g > 0);
    rows.clear();
    head.clear();
    bool any_live = false;
    for (int64_t i = 0; i < np; ++i) {
      PromptState& s = st[i];
      if (s.done) continue;
      cands.clear();
      for (int64_t b = 0; b < static_cast<int64_t>(s.live.size()); ++b) {
        const int64_t r = s.first_head + b;
        for (int64_t k = 0; k < ccount[r]; ++k) {
          const float lp = cval[r * w + k];
          if (!(lp > -INFINITY)) continue;  // masked by the hygiene
          cands.push_back(Cand{s.live[b].sum + lp, lp, static_cast<int32_t>(b), cidx[r * w + k], craw[r * w + k]});
        }
      }
      const int64_t take = std::min<int64_t>(width, static_cast<int64_t>(cands.size()));
      std::partial_sort(cands.begin(), cands.begin() + take, cands.end(), [](const Cand& a, const Cand& b) {
        if (a.total != b.total) return a.total > b.total;
        if (a.beam != b.beam) return a.beam < b.beam;
        return a.token < b.token;
      });
      const int64_t len = g + 1;
      std::vector<Beam> next;
      for (int64_t rank = 0; rank < take && static_cast<int64_t>(next.size()) < B; ++rank) {
        const Cand& c = cands[rank];
        const Beam& parent = s.live[c.beam];
        if (o.eos_token_id >= 0 && c.token == o.eos_token_id) {
          // As HF: an EOS candidate counts only when it ranks among the best num_beams.
          if (rank >= B) continue;
          Hyp h{len_score(c.total, len), c.total, parent.tokens, parent.lps, true, parent.raw_sum + c.raw_lp};
          h.tokens.push_back(c.token);
          h.lps.push_back(c.raw_lp);
          add_hyp(s, std::move(h));
          continue;
        }
        Beam nb;
        nb.tokens = parent.tokens;
        nb.tokens.push_back(c.token);
        nb.lps = parent.lps;
        nb.lps.push_back(c.raw_lp);
        nb.sum = c.total;
        nb.raw_sum = parent.raw_sum + c.raw_lp;
        if (wc != nullptr) nb.wstate = std::max(WordConstraint::kRoot, wc->step(parent.wstate, c.token));
        nb.table.reserve(prompts[i].size() + o.max_new_tokens);
        nb.table = parent.table;
        next.push_back(std::move(nb));
      }
      if (len >= o.max_new_tokens) {
        for (Beam& b : next) add_hyp(s, Hyp{len_score(b.sum, len), b.sum, std::move(b.tokens), std::move(b.lps), false, b.raw_sum});
        s.live.clear();
        s.done = true;
        continue;
      }
      if (next.empty()) {
        s.live.clear();
        s.done = true;
        continue;
      }
      // Done when B hypotheses are finished and no live beam can still beat the worst of them: log-probs
      // only fall, so a beam's best reachable score is its sum at the most favourable length.
      if (static_cast<int64_t>(s.hyps.size()) >= B) {
        double best_sum = -INFINITY;
        for (const Beam& b : next) best_sum = std::max(best_sum, b.sum);
        const int64_t best_len = lp_pow > 0 ? o.max_new_tokens : len + 1;
        const double attainable = len_score(best_sum, best_len);
        double worst = INFINITY;
        for (const Hyp& h : s.hyps) worst = std::min(worst, h.score);
        if (worst >= attainable) {
          s.live.clear();
          s.done = true;
          continue;
        }
      }
      s.live.swap(next);
      any_live = true;
      s.first_head = static_cast<int64_t>(head.size());
      const int32_t pos = static_cast<int32_t>(prompts[i].size() + g);
      for (Beam& b : s.live) {
        b.table.push_back(fw.alloc(1));
        head.push_back(static_cast<int32_t>(rows.size()));
        rows.push_back(Row{b.tokens.back(), pos, b.table.data()});
      }
    }
    if (!any_live) break;
  }
  std::vector<std::vector<Generated>> result(static_cast<size_t>(np));
  for (int64_t i = 0; i < np; ++i) {
    auto& hyps = st[i].hyps;
    std::stable_sort(hyps.begin(), hyps.end(), [](const Hyp& a, const Hyp& b) { return a.score > b.score; });
    const int64_t k = std::min<int64_t>(o.num_return_sequences, static_cast<int64_t>(hyps.size()));
    for (int64_t j = 0; j < k; ++j) {
      Generated gen;
      gen.tokens = std::move(hyps[j].tokens);
      gen.logprob = hyps[j].raw_sum;
      gen.score = hyps[j].score;
      gen.eos = hyps[j].eos;
      if (o.token_logprobs) gen.token_logprobs = std::move(hyps[j].lps);
      result[i].push_back(std::move(gen));
    }
  }
  return result;
}

}  // namespace

int32_t StepForward::alloc(int64_t n) {
  if (next_ + n > cap_) throw Error("MINIELM_NATIVE", "KV cache overflow (internal sizing error)");
  const int32_t first = static_cast<int32_t>(next_);
  next_ += n;
  return first;
}

void validate_generate(const Config& c, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  auto bad = [](const std::string& m) { throw Error("MINIELM_INVALID_ARGUMENT", m); };
  if (prompts.empty()) bad("generate needs at least one prompt");
  if (o.max_new_tokens < 1) bad("max_new_tokens must be >= 1, got " + std::to_string(o.max_new_tokens));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    if (p.empty()) bad("prompt " + std::to_string(i) + " is empty: every prompt needs at least one token");
    if (static_cast<int64_t>(p.size()) + o.max_new_tokens > c.n_ctx)
      bad("prompt " + std::to_string(i) + " has " + std::to_string(p.size()) + " tokens; with max_new_tokens = " +
          std::to_string(o.max_new_tokens) + " it needs " + std::to_string(p.size() + o.max_new_tokens) +
          " positions but the model context n_ctx is " + std::to_string(c.n_ctx));
    for (size_t k = 0; k < p.size(); ++k)
      if (p[k] < 0 || p[k] >= c.vocab_size)
        bad("prompt " + std::to_string(i) + " token " + std::to_string(k) + " = " + std::to_string(p[k]) +
            " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
  }
  if (o.eos_token_id >= c.vocab_size) bad("eos_token_id " + std::to_string(o.eos_token_id) + " is outside the vocabulary");
  if (!(o.temperature > 0) || !std::isfinite(o.temperature)) bad("temperature must be a finite number > 0");
  if (!(o.top_p > 0 && o.top_p <= 1)) bad("top_p must be in (0, 1]");
  if (o.top_k < 0) bad("top_k must be >= 0");
  if (o.num_return_sequences < 1 || o.num_return_sequences > kMaxReturnSequences)
    bad("num_return_sequences must be in [1, " + std::to_string(kMaxReturnSequences) + "], got " + std::to_string(o.num_return_sequences));
  if (o.max_new_tokens > c.n_ctx) bad("max_new_tokens must be <= n_ctx");
  if (!std::isfinite(o.length_penalty)) bad("length_penalty must be finite");
  if (o.no_repeat_ngram_size < 0 || o.no_repeat_ngram_size > c.n_ctx)
    bad("no_repeat_ngram_size must be in [0, n_ctx], got " + std::to_string(o.no_repeat_ngram_size));
  if (!(o.repetition_penalty > 0) || !std::isfinite(o.repetition_penalty))
    bad("repetition_penalty must be a finite number > 0 (1 = off)");
  if (o.min_new_tokens < 0 || o.min_new_tokens > o.max_new_tokens)
    bad("min_new_tokens must be in [0, max_new_tokens], got " + std::to_string(o.min_new_tokens));
  if (o.word_constraint && o.word_constraint->vocab_size() != c.vocab_size)
    bad("the word constraint was built for " + std::to_string(o.word_constraint->vocab_size()) +
        " tokens but the model's vocabulary has " + std::to_string(c.vocab_size));
  if (o.strategy == Strategy::Greedy && o.num_return_sequences != 1)
    bad("greedy decoding returns one sequence per prompt; use sampling or beam search for num_return_sequences > 1");
  if (o.strategy == Strategy::Beam) {
    if (o.num_beams < 1 || o.num_beams > kMaxBeams)
      bad("num_beams must be in [1, " + std::to_string(kMaxBeams) + "], got " + std::to_string(o.num_beams));
    if (o.num_return_sequences > o.num_beams)
      bad("num_return_sequences (" + std::to_string(o.num_return_sequences) + ") must be <= num_beams (" +
          std::to_string(o.num_beams) + ")");
    if (o.logits) bad("per-step logits are available for greedy decoding and sampling only");
  }
  // Sizes of the call, in int64 (every factor is bounded above, so none of these overflow).
  const int64_t np = static_cast<int64_t>(prompts.size());
  const int64_t per_prompt = o.strategy == Strategy::Beam ? o.num_beams : o.strategy == Strategy::Greedy ? 1 : o.num_return_sequences;
  if (np > kMaxSequences || np * per_prompt > kMaxSequences)
    bad("one generate call may decode at most " + std::to_string(kMaxSequences) + " sequences (prompts x " +
        (o.strategy == Strategy::Beam ? std::string("num_beams") : std::string("num_return_sequences")) + "); split the prompts");
  int64_t prompt_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += static_cast<int64_t>(p.size());
  const int64_t seqs = np * per_prompt;
  const int64_t cache_rows = prompt_tokens + seqs * (o.max_new_tokens - 1);
  if (cache_rows > int64_t{2147483647})
    bad("the call needs " + std::to_string(cache_rows) + " cache rows, more than 2^31 - 1; decode fewer sequences at once");
  // What the call allocates, in bytes, against physical memory: the KV cache, the step buffers (x, xn, q,
  // att: C floats per row; h: 4C), the logits of a step (and, when asked for, every step's logits, held
  // twice while they are copied out), the beam candidates, the bf16 copy of the weights, and every
  // sequence's table of cache rows (a copy of its prompt's rows plus one per new token, twice for beams
  // while the next beams are built): with a long prompt and many samples the tables alone can be
  // gigabytes while the cache stays small.
  const double L = static_cast<double>(c.n_layer), C = static_cast<double>(c.n_embd), V = static_cast<double>(c.vocab_size);
  const double steps = static_cast<double>(o.max_new_tokens);
  const bool beam = o.strategy == Strategy::Beam;
  double bytes = 2.0 * L * static_cast<double>(cache_rows) * C * 4.0;
  bytes += static_cast<double>(std::max(prompt_tokens, seqs)) * (8.0 * C * 4.0 + 24.0 + 16.0 * L);
  bytes += static_cast<double>(std::max(np, seqs)) * V * 4.0 * (o.logits ? 1.0 + 2.0 * steps : 1.0);
  if (beam) bytes += 12.0 * static_cast<double>(seqs) * std::min(2.0 * static_cast<double>(o.num_beams), V);
  if (o.bf16_weights) bytes += 2.0 * (12.0 * C * C * L + V * C);
  double tables = 0;
  for (const auto& p : prompts) tables += static_cast<double>(per_prompt) * 4.0 * (static_cast<double>(p.size()) + steps);
  bytes += (beam ? 2.0 : 1.0) * tables + static_cast<double>(seqs) * steps * 16.0;
  const double mem = physical_memory_bytes();
  if (mem > 0 && bytes > 0.75 * mem)
    throw Error("MINIELM_OUT_OF_MEMORY", "this generate call needs about " + std::to_string(static_cast<int64_t>(bytes / 1e6)) +
                                             " MB for its cache, logits and sequence tables, more than this machine has (" +
                                             std::to_string(static_cast<int64_t>(mem / 1e6)) + " MB): decode fewer sequences at once");
}

std::vector<std::vector<Generated>> generate(Gpt2<float>& model, const std::vector<std::vector<int32_t>>& prompts,
                                             const GenerateOptions& o, const StepFactory* factory) {
  validate_generate(model.config(), prompts, o);
  if (o.strategy == Strategy::Beam) return run_beam(model, prompts, o, factory);
  return run_sampling(model, prompts, o, factory);
}

}  // namespace decode
}  // namespace minielm
