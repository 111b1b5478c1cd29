// DeviceModel (device.h): a GPT-2 on one GPU, the twin of native/model/gpt2.cc, in the mixed precision of
// llm.c: fp32 master weights, gradients and AdamW moments; a bf16 copy of the weights refreshed by the
// optimizer; bf16 activations; every reduction, softmax and normalisation in fp32 (native/cuda/kernels.cuh).
// The layer order, the loss normalisation, gradient clipping and the optimizer formula are gpt2.cc's, so a
// loss curve on the GPU follows the CPU's within bf16 rounding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/threads.h"
#include "../loss/align.h"
#include "device.h"
#include "kernels.cuh"

namespace minielm {
namespace cuda {

// ---- devices ----
bool built() { return true; }

int device_count(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = std::string("no usable CUDA device: ") + cudaGetErrorString(e) + " (is an NVIDIA GPU and its driver installed?)";
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device found (the driver reports 0 GPUs)";
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) return "";
  char mem[64];
  std::snprintf(mem, sizeof mem, "%.1f GiB", p.totalGlobalMem / 1073741824.0);
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + mem + ")";
}

void require_device() {
  std::string why;
  if (device_count(&why) <= 0) throw Error("MINIELM_NO_DEVICE", why);
}

namespace {

// Device allocation owned by the model; cudaMalloc failures become MINIELM_OUT_OF_MEMORY naming the size.
template <typename T>
class DevBuf {
 public:
  DevBuf() = default;
  ~DevBuf() { release(); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  void resize(int64_t n, const char* what) {
    if (n <= cap_) {
      n_ = n;
      return;
    }
    release();
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, sizeof(T) * static_cast<size_t>(std::max<int64_t>(n, 1)));
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error("MINIELM_OUT_OF_MEMORY", std::string("the GPU has no room for ") + what + " (" +
                                               std::to_string(static_cast<double>(sizeof(T) * n) / 1e6) + " MB): " +
                                               cudaGetErrorString(e) + "; use a smaller batch or model");
    }
    p_ = static_cast<T*>(p);
    cap_ = n_ = n;
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }
  void release() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    cap_ = n_ = 0;
  }

 private:
  T* p_ = nullptr;
  int64_t cap_ = 0, n_ = 0;
};

// Sets the device for the calling thread (N-API work runs on libuv's pool threads) for a scope.
struct OnDevice {
  explicit OnDevice(int d) { MINIELM_CUDA_CHECK(cudaSetDevice(d)); }
};

// ---- small kernels the model needs beyond kernels.cuh ----
// dst[i, 0:width] = src[idx[i] * src_stride + 0:width]
__global__ void gather_rows_kernel(bf16* dst, const bf16* src, const int32_t* idx, int64_t n, int64_t width,
                                   int64_t src_stride) {
  const int64_t i = blockIdx.x;
  if (i >= n) return;
  const bf16* s = src + static_cast<int64_t>(idx[i]) * src_stride;
  for (int64_t c = threadIdx.x; c < width; c += blockDim.x) dst[i * width + c] = s[c];
}
void gather_rows(bf16* dst, const bf16* src, const int32_t* idx, int64_t n, int64_t width, int64_t src_stride,
                 cudaStream_t st) {
  if (n == 0) return;
  gather_rows_kernel<<<static_cast<unsigned>(n), 256, 0, st>>>(dst, src, idx, n, width, src_stride);
  MINIELM_CUDA_LAUNCHED("gather_rows");
}
// The k and v parts of qkv row r [3C] go to cache row slot[r] of this layer's caches ([rows, C] each).
__global__ void kv_scatter_kernel(bf16* kc, bf16* vc, const bf16* qkv, const int32_t* slot, int64_t n, int64_t C) {
  const int64_t r = blockIdx.x;
  if (r >= n) return;
  const bf16* src = qkv + r * 3 * C;
  bf16* kd = kc + static_cast<int64_t>(slot[r]) * C;
  bf16* vd = vc + static_cast<int64_t>(slot[r]) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    kd[c] = src[C + c];
    vd[c] = src[2 * C + c];
  }
}
// Rows of qkv [n, 3C] -> q [n, C].
__global__ void take_q_kernel(bf16* q, const bf16* qkv, int64_t n, int64_t C) {
  const int64_t r = blockIdx.x;
  if (r >= n) return;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) q[r * C + c] = qkv[r * 3 * C + c];
}

struct Tensors {
  int64_t wte = 0, wpe = 0, lnfw = 0, lnfb = 0;
  struct Layer {
    int64_t ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
  };
  std::vector<Layer> layers;
};

}  // namespace

struct DeviceModel::Impl {
  Gpt2<float>& host;
  int dev;
  Config cfg;
  int64_t N;
  cudaStream_t stream = nullptr;
  Tensors t;
  DevBuf<float> master, grad, m, v;
  DevBuf<bf16> w16;
  // activations, sized for the largest B*T seen
  int64_t BT = 0, Bc = 0, Tc = 0;
  DevBuf<bf16> encoded, ln1, qkv, atty, res2, ln2, fch, fchg, res3, lnf, logits;
  DevBuf<float> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd, lnf_mean, lnf_rstd, lse;
  DevBuf<bf16> dres, dln, dqkv, dfch, tmp;
  DevBuf<float> att_scratch, logits_f32, losses;
  DevBuf<int32_t> tokens, targets, pos;
  DevBuf<uint8_t> mask;
  DevBuf<float> weights;
  DevBuf<double> sums, seq;          // loss sums; per-sequence log-probabilities (DPO)
  DevBuf<float> rlse, coef;          // DPO: row logsumexp, per-sequence gradient coefficients
  int64_t B_ = 0, T_ = 0;

  Impl(Gpt2<float>& h, int d) : host(h), dev(d), cfg(h.config()), N(h.num_params()) {
    // What the device kernels take (attention.cu: head sizes 32 / 64 / 128, 16-byte aligned rows).
    const int64_t hs = cfg.n_embd / cfg.n_head;
    if (hs != 32 && hs != 64 && hs != 128)
      throw Error("MINIELM_UNSUPPORTED", "the CUDA backend runs head sizes 32, 64 and 128 (n_embd / n_head); this model's is " +
                                             std::to_string(hs) + ": keep it on device 'cpu'");
    if (cfg.n_embd % 8 != 0)
      throw Error("MINIELM_UNSUPPORTED", "the CUDA backend needs n_embd to be a multiple of 8, got " + std::to_string(cfg.n_embd));
    if (cfg.score_head)
      throw Error("MINIELM_UNSUPPORTED", "the score head (relevance scorer) does not run on a CUDA device yet; keep the scorer on device 'cpu'");
    require_device();
    int n = 0;
    cudaGetDeviceCount(&n);
    if (d < 0 || d >= n)
      throw Error("MINIELM_NO_DEVICE", "CUDA device " + std::to_string(d) + " does not exist (" + std::to_string(n) + " found)");
    OnDevice on(dev);
    MINIELM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    auto off = [&](const std::string& name) {
      const TensorInfo* ti = h.find(name);
      if (!ti) throw Error("MINIELM_NATIVE", "tensor " + name + " missing from the model");
      return ti->offset;
    };
    t.wte = off("wte.weight");
    t.wpe = off("wpe.weight");
    t.lnfw = off("ln_f.weight");
    t.lnfb = off("ln_f.bias");
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
      const std::string p = "h." + std::to_string(l) + ".";
      t.layers.push_back({off(p + "ln_1.weight"), off(p + "ln_1.bias"), off(p + "attn.c_attn.weight"),
                          off(p + "attn.c_attn.bias"), off(p + "attn.c_proj.weight"), off(p + "attn.c_proj.bias"),
                          off(p + "ln_2.weight"), off(p + "ln_2.bias"), off(p + "mlp.c_fc.weight"), off(p + "mlp.c_fc.bias"),
                          off(p + "mlp.c_proj.weight"), off(p + "mlp.c_proj.bias")});
    }
    master.resize(N, "the fp32 master weights");
    grad.resize(N, "the gradients");
    m.resize(N, "the AdamW first moments");
    v.resize(N, "the AdamW second moments");
    w16.resize(N, "the bf16 weights");
    sums.resize(4, "loss sums");
  }
  ~Impl() {
    if (stream) {
      cudaSetDevice(dev);
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
  }

  void sync() { MINIELM_CUDA_CHECK(cudaStreamSynchronize(stream)); }

  void upload() {
    OnDevice on(dev);
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(master.get(), host.params(), sizeof(float) * N, cudaMemcpyHostToDevice, stream));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(m.get(), host.adam_m(), sizeof(float) * N, cudaMemcpyHostToDevice, stream));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(v.get(), host.adam_v(), sizeof(float) * N, cudaMemcpyHostToDevice, stream));
    to_bf16(w16.get(), master.get(), N, stream);
    sync();
  }
  void download() {
    OnDevice on(dev);
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(host.params(), master.get(), sizeof(float) * N, cudaMemcpyDeviceToHost, stream));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(host.adam_m(), m.get(), sizeof(float) * N, cudaMemcpyDeviceToHost, stream));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(host.adam_v(), v.get(), sizeof(float) * N, cudaMemcpyDeviceToHost, stream));
    sync();
  }

  const bf16* W(int64_t off) const { return w16.get() + off; }
  const float* Wf(int64_t off) const { return master.get() + off; }
  float* G(int64_t off) const { return grad.get() + off; }

  void ensure(int64_t B, int64_t Tn) {
    const int64_t bt = B * Tn, C = cfg.n_embd, L = cfg.n_layer, V = cfg.vocab_size, NH = cfg.n_head;
    if (bt > BT) {
      encoded.resize(bt * C, "activations");
      ln1.resize(L * bt * C, "activations");
      qkv.resize(L * bt * 3 * C, "activations");
      atty.resize(L * bt * C, "activations");
      res2.resize(L * bt * C, "activations");
      ln2.resize(L * bt * C, "activations");
      fch.resize(L * bt * 4 * C, "activations");
      fchg.resize(L * bt * 4 * C, "activations");
      res3.resize(L * bt * C, "activations");
      lnf.resize(bt * C, "activations");
      logits.resize(bt * V, "the logits");
      ln1_mean.resize(L * bt, "activations");
      ln1_rstd.resize(L * bt, "activations");
      ln2_mean.resize(L * bt, "activations");
      ln2_rstd.resize(L * bt, "activations");
      lnf_mean.resize(bt, "activations");
      lnf_rstd.resize(bt, "activations");
      lse.resize(L * B * NH * Tn, "attention statistics");
      dres.resize(bt * C, "backward buffers");
      dln.resize(bt * C, "backward buffers");
      dqkv.resize(bt * 3 * C, "backward buffers");
      dfch.resize(bt * 4 * C, "backward buffers");
      tmp.resize(bt * C, "backward buffers");
      // attention_backward's scratch: the row dots (B*NH*T) and an fp32 dQ accumulator (B*T*C).
      att_scratch.resize(B * NH * Tn + bt * C, "attention scratch");
      tokens.resize(bt, "the batch");
      targets.resize(bt, "the batch");
      pos.resize(bt, "the batch");
      mask.resize(bt, "the batch");
      weights.resize(bt, "the batch");
      BT = bt;
    }
    if (B * NH * Tn > lse.size() / std::max<int64_t>(L, 1)) lse.resize(L * B * NH * Tn, "attention statistics");
    if (B * NH * Tn + bt * C > att_scratch.size()) att_scratch.resize(B * NH * Tn + bt * C, "attention scratch");
  }

  void validate(const Batch& b, bool need_targets) const { host.validate_batch(b, need_targets); }

  // Uploads the batch (positions as gpt2.cc computes them).
  void put_batch(const Batch& b, bool with_targets) {
    const int64_t bt = b.B * b.T;
    std::vector<int32_t> p(static_cast<size_t>(bt));
    Gpt2<float>::positions(b, p.data());
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(tokens.get(), b.tokens, sizeof(int32_t) * bt, cudaMemcpyHostToDevice, stream));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(pos.get(), p.data(), sizeof(int32_t) * bt, cudaMemcpyHostToDevice, stream));
    if (b.attn_mask)
      MINIELM_CUDA_CHECK(cudaMemcpyAsync(mask.get(), b.attn_mask, bt, cudaMemcpyHostToDevice, stream));
    if (with_targets && b.targets)
      MINIELM_CUDA_CHECK(cudaMemcpyAsync(targets.get(), b.targets, sizeof(int32_t) * bt, cudaMemcpyHostToDevice, stream));
    if (with_targets && b.loss_weight)
      MINIELM_CUDA_CHECK(cudaMemcpyAsync(weights.get(), b.loss_weight, sizeof(float) * bt, cudaMemcpyHostToDevice, stream));
    // The pageable host vector p must stay alive until the copy has read it.
    sync();
  }

  // out = inp @ W + bias (W [IC, OC] row-major, bf16 copy; bias from the fp32 master).
  void linear(bf16* out, const bf16* inp, int64_t w, int64_t bias, int64_t rows, int64_t IC, int64_t OC) {
    gemm(false, false, rows, OC, IC, 1.f, inp, IC, W(w), OC, 0.f, out, OC, Wf(bias), stream);
  }
  // dinp = dout @ W^T (overwritten); dW += inp^T @ dout; dbias += colsum(dout).
  void linear_backward(bf16* dinp, int64_t w, int64_t bias, const bf16* dout, const bf16* inp, int64_t rows, int64_t IC,
                       int64_t OC) {
    gemm(false, true, rows, IC, OC, 1.f, dout, OC, W(w), OC, 0.f, dinp, IC, nullptr, stream);
    gemm(true, false, IC, OC, rows, 1.f, inp, IC, dout, OC, 1.f, G(w), OC, nullptr, stream);
    bias_backward(G(bias), dout, rows, OC, stream);
  }

  void forward(const Batch& b, bool compute_logits) {
    const int64_t B = b.B, Tn = b.T, bt = B * Tn;
    const int64_t C = cfg.n_embd, L = cfg.n_layer, NH = cfg.n_head, V = cfg.vocab_size;
    ensure(B, Tn);
    B_ = B;
    T_ = Tn;
    const uint8_t* km = b.attn_mask ? mask.get() : nullptr;
    embedding_forward(encoded.get(), tokens.get(), pos.get(), W(t.wte), W(t.wpe), bt, C, stream);
    const bf16* x = encoded.get();
    for (int64_t l = 0; l < L; ++l) {
      const Tensors::Layer& li = t.layers[l];
      bf16* l1 = ln1.get() + l * bt * C;
      bf16* q = qkv.get() + l * bt * 3 * C;
      bf16* ay = atty.get() + l * bt * C;
      bf16* r2 = res2.get() + l * bt * C;
      bf16* l2 = ln2.get() + l * bt * C;
      bf16* f = fch.get() + l * bt * 4 * C;
      bf16* fg = fchg.get() + l * bt * 4 * C;
      bf16* r3 = res3.get() + l * bt * C;
      layernorm_forward(l1, ln1_mean.get() + l * bt, ln1_rstd.get() + l * bt, x, W(li.ln1w), W(li.ln1b), bt, C, stream);
      linear(q, l1, li.qkvw, li.qkvb, bt, C, 3 * C);
      attention_forward(ay, lse.get() + l * B * NH * Tn, q, km, B, Tn, C, NH, stream);
      linear(tmp.get(), ay, li.projw, li.projb, bt, C, C);
      residual_forward(r2, x, tmp.get(), bt * C, stream);
      layernorm_forward(l2, ln2_mean.get() + l * bt, ln2_rstd.get() + l * bt, r2, W(li.ln2w), W(li.ln2b), bt, C, stream);
      linear(f, l2, li.fcw, li.fcb, bt, C, 4 * C);
      gelu_forward(fg, f, bt * 4 * C, stream);
      linear(tmp.get(), fg, li.fcprojw, li.fcprojb, bt, 4 * C, C);
      residual_forward(r3, r2, tmp.get(), bt * C, stream);
      x = r3;
    }
    layernorm_forward(lnf.get(), lnf_mean.get(), lnf_rstd.get(), x, W(t.lnfw), W(t.lnfb), bt, C, stream);
    if (!compute_logits) return;
    // Tied LM head: logits = lnf · wte^T.
    gemm(false, true, bt, V, C, 1.f, lnf.get(), C, W(t.wte), C, 0.f, logits.get(), V, nullptr, stream);
  }

  // Backward of the last forward(), dLoss/dlogits in logits.
  void backward(const Batch& b) {
    const int64_t B = B_, Tn = T_, bt = B * Tn;
    const int64_t C = cfg.n_embd, L = cfg.n_layer, NH = cfg.n_head, V = cfg.vocab_size;
    const uint8_t* km = b.attn_mask ? mask.get() : nullptr;
    // LM head: dlnf = dlogits · wte; dwte += dlogits^T · lnf.
    gemm(false, false, bt, C, V, 1.f, logits.get(), V, W(t.wte), C, 0.f, dln.get(), C, nullptr, stream);
    gemm(true, false, V, C, bt, 1.f, logits.get(), V, lnf.get(), C, 1.f, G(t.wte), C, nullptr, stream);
    MINIELM_CUDA_CHECK(cudaMemsetAsync(dres.get(), 0, sizeof(bf16) * bt * C, stream));
    const bf16* last = L > 0 ? res3.get() + (L - 1) * bt * C : encoded.get();
    layernorm_backward(dres.get(), G(t.lnfw), G(t.lnfb), dln.get(), last, W(t.lnfw), lnf_mean.get(), lnf_rstd.get(), bt, C,
                       stream);
    for (int64_t l = L - 1; l >= 0; --l) {
      const Tensors::Layer& li = t.layers[l];
      const bf16* x = l == 0 ? encoded.get() : res3.get() + (l - 1) * bt * C;
      const bf16* l1 = ln1.get() + l * bt * C;
      const bf16* q = qkv.get() + l * bt * 3 * C;
      const bf16* ay = atty.get() + l * bt * C;
      const bf16* r2 = res2.get() + l * bt * C;
      const bf16* l2 = ln2.get() + l * bt * C;
      const bf16* f = fch.get() + l * bt * 4 * C;
      const bf16* fg = fchg.get() + l * bt * 4 * C;
      // MLP: res3 = res2 + proj(gelu(fc(ln2(res2))))
      linear_backward(dfch.get(), li.fcprojw, li.fcprojb, dres.get(), fg, bt, 4 * C, C);
      gelu_backward(dfch.get(), f, dfch.get(), bt * 4 * C, stream);
      linear_backward(dln.get(), li.fcw, li.fcb, dfch.get(), l2, bt, C, 4 * C);
      layernorm_backward(dres.get(), G(li.ln2w), G(li.ln2b), dln.get(), r2, W(li.ln2w), ln2_mean.get() + l * bt,
                         ln2_rstd.get() + l * bt, bt, C, stream);
      // Attention: res2 = x + proj(attn(qkv(ln1(x))))
      linear_backward(dln.get(), li.projw, li.projb, dres.get(), ay, bt, C, C);
      attention_backward(dqkv.get(), att_scratch.get(), dln.get(), ay, lse.get() + l * B * NH * Tn, q, km, B, Tn, C, NH,
                         stream);
      linear_backward(dln.get(), li.qkvw, li.qkvb, dqkv.get(), l1, bt, C, 3 * C);
      layernorm_backward(dres.get(), G(li.ln1w), G(li.ln1b), dln.get(), x, W(li.ln1w), ln1_mean.get() + l * bt,
                         ln1_rstd.get() + l * bt, bt, C, stream);
    }
    embedding_backward(G(t.wte), G(t.wpe), dres.get(), tokens.get(), pos.get(), bt, C, stream);
  }

  double read_sum(int i) {
    double h = 0;
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(&h, sums.get() + i, sizeof(double), cudaMemcpyDeviceToHost, stream));
    sync();
    return h;
  }

  StepStats optimizer_step(const OptimConfig& o) {
    MINIELM_CUDA_CHECK(cudaMemsetAsync(sums.get() + 3, 0, sizeof(double), stream));
    sum_squares(sums.get() + 3, grad.get(), N, stream);
    const double norm = std::sqrt(read_sum(3));
    const int64_t step = host.step();
    if (!std::isfinite(norm))
      throw Error("MINIELM_NON_FINITE", "gradients are not finite at step " + std::to_string(step) +
                                            "; the parameters were left unchanged. Lower the learning rate or check the data");
    const double clip = (o.grad_clip > 0 && norm > o.grad_clip) ? o.grad_clip / (norm + 1e-6) : 1.0;
    const double lr = scheduled_lr(o, step);
    for (const TensorInfo& ti : host.tensors()) {
      const float wd = ti.decay ? static_cast<float>(o.weight_decay) : 0.f;
      adamw(master.get() + ti.offset, w16.get() + ti.offset, grad.get() + ti.offset, m.get() + ti.offset,
            v.get() + ti.offset, ti.size, static_cast<float>(lr), static_cast<float>(o.beta1), static_cast<float>(o.beta2),
            static_cast<float>(o.eps), wd, static_cast<float>(clip), step + 1, stream);
    }
    sync();
    host.set_step(step + 1);
    StepStats s;
    s.grad_norm = norm;
    s.lr = lr;
    s.step = step + 1;
    return s;
  }

  StepStats train_step(const std::vector<Batch>& micro, const OptimConfig& o) {
    OnDevice on(dev);
    require(!micro.empty(), "MINIELM_INVALID_ARGUMENT", "a training step needs at least one batch");
    double total = 0;
    for (const Batch& b : micro) {
      validate(b, true);
      const int64_t bt = b.B * b.T;
      if (b.loss_weight) {
        for (int64_t i = 0; i < bt; ++i) total += b.loss_weight[i];
      } else {
        total += static_cast<double>(bt);
      }
    }
    require(total > 0, "MINIELM_INVALID_ARGUMENT", "the loss mask selects no token in this step: nothing to learn from");
    MINIELM_CUDA_CHECK(cudaMemsetAsync(grad.get(), 0, sizeof(float) * N, stream));
    MINIELM_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double), stream));
    for (const Batch& b : micro) {
      ensure(b.B, b.T);
      put_batch(b, true);
      forward(b, true);
      cuda::cross_entropy(logits.get(), nullptr, sums.get(), logits.get(), targets.get(), b.loss_weight ? weights.get() : nullptr,
                    b.B * b.T, cfg.vocab_size, static_cast<float>(1.0 / total), stream);
      backward(b);
    }
    const double loss = read_sum(0) / total;
    if (!std::isfinite(loss))
      throw Error("MINIELM_NON_FINITE", "the loss is not finite at step " + std::to_string(host.step()) +
                                            "; the parameters were left unchanged");
    StepStats s = optimizer_step(o);
    s.loss = loss;
    s.tokens = total;
    return s;
  }

  // Token-level distillation from `teacher` (another device model on the same GPU), the twin of
  // loss::distill_step: teacher forward, student forward, the fused divergence writing the gradient over the
  // student's logits, student backward, AdamW. Loss normalised by the total loss weight.
  loss::DistillStepStats distill_step(Impl& teacher, const Batch& b, const loss::DistillOptions& o, const OptimConfig& opt) {
    loss::validate_distill_options(o);
    require(&teacher != this, "MINIELM_INVALID_ARGUMENT", "the student and the teacher must be different models");
    require(teacher.dev == dev, "MINIELM_INVALID_ARGUMENT",
            "the teacher lives on cuda:" + std::to_string(teacher.dev) + " and the student on cuda:" + std::to_string(dev) +
                ": distillation needs both on one device");
    require(teacher.cfg.vocab_size == cfg.vocab_size, "MINIELM_INVALID_ARGUMENT",
            "teacher vocab_size " + std::to_string(teacher.cfg.vocab_size) + " differs from student vocab_size " +
                std::to_string(cfg.vocab_size) + "; distillation needs one shared vocabulary");
    OnDevice on(dev);
    const bool ce = o.ce_weight > 0;
    validate(b, ce);
    const int64_t bt = b.B * b.T;
    double total = 0;
    for (int64_t i = 0; i < bt; ++i) {
      const float x = b.loss_weight ? b.loss_weight[i] : 1.0f;
      require(std::isfinite(x) && x >= 0, "MINIELM_INVALID_ARGUMENT", "loss weight at position " + std::to_string(i) + " must be finite and >= 0");
      total += x;
    }
    require(total > 0, "MINIELM_INVALID_ARGUMENT", "the loss mask selects no token in this batch: nothing to distil");
    teacher.validate(b, false);
    teacher.ensure(b.B, b.T);
    teacher.put_batch(b, false);
    teacher.forward(b, true);
    teacher.sync();  // the student's stream reads the teacher's logits next
    ensure(b.B, b.T);
    put_batch(b, true);
    MINIELM_CUDA_CHECK(cudaMemsetAsync(grad.get(), 0, sizeof(float) * N, stream));
    MINIELM_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, 3 * sizeof(double), stream));
    forward(b, true);
    cuda::distill(logits.get(), sums.get(), logits.get(), teacher.logits.get(), ce ? targets.get() : nullptr,
                  b.loss_weight ? weights.get() : nullptr, bt, cfg.vocab_size, static_cast<int>(o.divergence),
                  static_cast<float>(o.beta), static_cast<float>(o.temperature), static_cast<float>(o.ce_weight),
                  static_cast<float>(1.0 / total), stream);
    backward(b);
    double h[3];
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(h, sums.get(), sizeof h, cudaMemcpyDeviceToHost, stream));
    sync();
    const double loss = h[0] / total;
    if (!std::isfinite(loss))
      throw Error("MINIELM_NON_FINITE", "the loss is not finite at step " + std::to_string(host.step()) +
                                            "; the parameters were left unchanged");
    loss::DistillStepStats out;
    out.step = optimizer_step(opt);
    out.step.loss = loss;
    out.step.tokens = total;
    out.divergence = h[1] / total;
    out.ce = h[2] / total;
    return out;
  }

  // Summed log-probabilities of the batch's sequences under this model (after forward()), to the host.
  std::vector<double> sequence_logps_of(const Batch& b) {
    const int64_t n = b.B, Tn = b.T;
    seq.resize(n, "sequence log-probabilities");
    rlse.resize(n * Tn, "row statistics");
    cuda::sequence_logps(seq.get(), rlse.get(), logits.get(), targets.get(), b.loss_weight ? weights.get() : nullptr, n, Tn,
                         cfg.vocab_size, stream);
    std::vector<double> h(static_cast<size_t>(n));
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(h.data(), seq.get(), sizeof(double) * n, cudaMemcpyDeviceToHost, stream));
    sync();
    return h;
  }

  // One DPO step, the twin of loss::dpo_step: 2B sequences (chosen then rejected); the reference's log-probs
  // from `reference` (a device model on the same GPU), from `ref_logps`, or none (reference-free).
  loss::DpoStepStats dpo_step(Impl* reference, const double* ref_logps, const Batch& b, const loss::DpoOptions& o,
                              const OptimConfig& opt) {
    loss::validate_dpo_options(o);
    require(b.B >= 2 && b.B % 2 == 0, "MINIELM_INVALID_ARGUMENT",
            "a DPO batch holds 2B sequences (chosen then rejected), got " + std::to_string(b.B));
    require(reference != this, "MINIELM_INVALID_ARGUMENT", "the reference must be a different model from the policy");
    if (reference) {
      require(reference->dev == dev, "MINIELM_INVALID_ARGUMENT",
              "the reference lives on cuda:" + std::to_string(reference->dev) + " and the policy on cuda:" + std::to_string(dev) +
                  ": DPO needs both on one device");
      require(reference->cfg.vocab_size == cfg.vocab_size, "MINIELM_INVALID_ARGUMENT",
              "reference vocab_size " + std::to_string(reference->cfg.vocab_size) + " differs from policy vocab_size " +
                  std::to_string(cfg.vocab_size));
    }
    OnDevice on(dev);
    validate(b, true);
    const int64_t Bp = b.B / 2, Tn = b.T, n = b.B;
    double tokens = 0;
    for (int64_t s2 = 0; s2 < n; ++s2) {
      double sw = 0;
      for (int64_t t2 = 0; t2 < Tn; ++t2) sw += b.loss_weight ? b.loss_weight[s2 * Tn + t2] : 1.0;
      require(sw > 0, "MINIELM_INVALID_ARGUMENT",
              std::string(s2 < Bp ? "chosen" : "rejected") + " response " + std::to_string(s2 % Bp) + " has no token in the loss mask");
      tokens += sw;
    }
    std::vector<double> ref;
    if (reference) {
      reference->ensure(b.B, b.T);
      reference->put_batch(b, true);
      reference->forward(b, true);
      ref = reference->sequence_logps_of(b);
    } else if (ref_logps) {
      ref.assign(ref_logps, ref_logps + n);
    }
    const bool has_ref = !ref.empty();
    ensure(b.B, b.T);
    put_batch(b, true);
    MINIELM_CUDA_CHECK(cudaMemsetAsync(grad.get(), 0, sizeof(float) * N, stream));
    forward(b, true);
    std::vector<double> pol = sequence_logps_of(b);
    std::vector<double> dseq(static_cast<size_t>(n));
    loss::DpoStepStats out;
    out.metrics = loss::dpo_loss(pol.data(), pol.data() + Bp, has_ref ? ref.data() : nullptr, has_ref ? ref.data() + Bp : nullptr,
                                 Bp, o, dseq.data(), dseq.data() + Bp);
    if (!std::isfinite(out.metrics.loss))
      throw Error("MINIELM_NON_FINITE", "the loss is not finite at step " + std::to_string(host.step()) +
                                            "; the parameters were left unchanged");
    // sequence_logps_backward gives the gradient of sum_b coef[b] * logp[b]; dLoss/dlogp is dseq.
    std::vector<float> c(dseq.begin(), dseq.end());
    coef.resize(n, "DPO coefficients");
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(coef.get(), c.data(), sizeof(float) * n, cudaMemcpyHostToDevice, stream));
    cuda::sequence_logps_backward(logits.get(), logits.get(), targets.get(), b.loss_weight ? weights.get() : nullptr, rlse.get(),
                                  coef.get(), n, Tn, cfg.vocab_size, stream);
    backward(b);
    out.step = optimizer_step(opt);
    out.step.loss = out.metrics.loss;
    out.step.tokens = tokens;
    return out;
  }

  // fp32 copy of the logits of the last forward() [B*T, V] to host memory.
  void logits_to_host(const Batch& b, float* host_logits) {
    const int64_t n = b.B * b.T * cfg.vocab_size;
    logits_f32.resize(n, "the fp32 logits");
    to_f32(logits_f32.get(), logits.get(), n, stream);
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(host_logits, logits_f32.get(), sizeof(float) * n, cudaMemcpyDeviceToHost, stream));
  }

  void forward_to_host(const Batch& b, float* host_logits) {
    OnDevice on(dev);
    validate(b, false);
    ensure(b.B, b.T);
    put_batch(b, false);
    forward(b, host_logits != nullptr);
    if (host_logits) logits_to_host(b, host_logits);
    sync();
  }

  double cross_entropy_to_host(const Batch& b, float* host_losses, float* host_logits) {
    OnDevice on(dev);
    validate(b, true);
    ensure(b.B, b.T);
    put_batch(b, true);
    forward(b, true);
    if (host_logits) logits_to_host(b, host_logits);  // the loss below leaves the logits as they are
    const int64_t bt = b.B * b.T;
    losses.resize(bt, "the per-token losses");
    MINIELM_CUDA_CHECK(cudaMemsetAsync(sums.get(), 0, sizeof(double), stream));
    cuda::cross_entropy(nullptr, losses.get(), sums.get(), logits.get(), targets.get(), b.loss_weight ? weights.get() : nullptr, bt,
                  cfg.vocab_size, 1.f, stream);
    if (host_losses)
      MINIELM_CUDA_CHECK(cudaMemcpyAsync(host_losses, losses.get(), sizeof(float) * bt, cudaMemcpyDeviceToHost, stream));
    return read_sum(0);
  }
};

// ---- KV-cache decoding on the device ----
namespace {

class DeviceStep final : public decode::StepForward {
 public:
  DeviceStep(DeviceModel::Impl& m, int64_t cache_rows, int64_t max_rows, int64_t max_head)
      : StepForward(cache_rows), m_(m), cfg_(m.cfg), max_rows_(max_rows), max_head_(max_head) {
    const int64_t C = cfg_.n_embd, L = cfg_.n_layer;
    kc_.resize(L * cap_ * C, "the KV cache");
    vc_.resize(L * cap_ * C, "the KV cache");
    x_.resize(max_rows * C, "decode buffers");
    xn_.resize(max_rows * C, "decode buffers");
    qkv_.resize(max_rows * 3 * C, "decode buffers");
    q_.resize(max_rows * C, "decode buffers");
    att_.resize(max_rows * C, "decode buffers");
    h_.resize(max_rows * 4 * C, "decode buffers");
    tmp_.resize(max_rows * C, "decode buffers");
    xf_.resize(max_head * C, "decode buffers");
    xh_.resize(max_head * C, "decode buffers");
    lnm_.resize(max_rows, "decode buffers");
    lnr_.resize(max_rows, "decode buffers");
    logits_.resize(max_head * cfg_.vocab_size, "the decode logits");
    tok_.resize(max_rows, "decode buffers");
    pos_.resize(max_rows, "decode buffers");
    slot_.resize(max_rows, "decode buffers");
    len_.resize(max_rows, "decode buffers");
    off_.resize(max_rows, "decode buffers");
    head_.resize(max_head, "decode buffers");
  }

  int64_t vocab() const override { return cfg_.vocab_size; }

  void run(const decode::Row* rows, int64_t n, const int32_t* head, int64_t nh, float* logits,
           const std::vector<decode::Phase>& phases, bool) override {
    if (n > max_rows_ || nh > max_head_) throw Error("MINIELM_NATIVE", "decode step larger than planned (internal sizing error)");
    OnDevice on(m_.dev);
    cudaStream_t st = m_.stream;
    const int64_t C = cfg_.n_embd, L = cfg_.n_layer, NH = cfg_.n_head, V = cfg_.vocab_size;
    // Host side of the step: token ids, positions, cache slots and the flattened context tables.
    htok_.resize(n);
    hpos_.resize(n);
    hslot_.resize(n);
    hlen_.resize(n);
    hoff_.resize(n);
    hctx_.clear();
    int64_t max_len = 0;
    for (int64_t r = 0; r < n; ++r) {
      htok_[r] = rows[r].token;
      hpos_[r] = rows[r].pos;
      hslot_[r] = rows[r].ctx[rows[r].pos];
      hlen_[r] = rows[r].pos + 1;
      hoff_[r] = static_cast<int32_t>(hctx_.size());
      hctx_.insert(hctx_.end(), rows[r].ctx, rows[r].ctx + rows[r].pos + 1);
      max_len = std::max<int64_t>(max_len, rows[r].pos + 1);
    }
    ctx_.resize(static_cast<int64_t>(hctx_.size()), "decode context tables");
    auto put = [&](int32_t* dst, const std::vector<int32_t>& src) {
      MINIELM_CUDA_CHECK(cudaMemcpyAsync(dst, src.data(), sizeof(int32_t) * src.size(), cudaMemcpyHostToDevice, st));
    };
    put(tok_.get(), htok_);
    put(pos_.get(), hpos_);
    put(slot_.get(), hslot_);
    put(len_.get(), hlen_);
    put(off_.get(), hoff_);
    put(ctx_.get(), hctx_);
    std::vector<int32_t> hhead(head, head + nh);
    put(head_.get(), hhead);

    const Tensors& t = m_.t;
    embedding_forward(x_.get(), tok_.get(), pos_.get(), m_.W(t.wte), m_.W(t.wpe), n, C, st);
    for (int64_t l = 0; l < L; ++l) {
      const Tensors::Layer& li = t.layers[l];
      bf16* kc = kc_.get() + l * cap_ * C;
      bf16* vc = vc_.get() + l * cap_ * C;
      layernorm_forward(xn_.get(), lnm_.get(), lnr_.get(), x_.get(), m_.W(li.ln1w), m_.W(li.ln1b), n, C, st);
      m_.linear(qkv_.get(), xn_.get(), li.qkvw, li.qkvb, n, C, 3 * C);
      kv_scatter_kernel<<<static_cast<unsigned>(n), 256, 0, st>>>(kc, vc, qkv_.get(), slot_.get(), n, C);
      MINIELM_CUDA_LAUNCHED("kv_scatter");
      take_q_kernel<<<static_cast<unsigned>(n), 256, 0, st>>>(q_.get(), qkv_.get(), n, C);
      MINIELM_CUDA_LAUNCHED("take_q");
      attention_decode(att_.get(), q_.get(), kc, vc, ctx_.get(), off_.get(), len_.get(), n, C, NH, max_len, st);
      m_.linear(tmp_.get(), att_.get(), li.projw, li.projb, n, C, C);
      residual_forward(x_.get(), x_.get(), tmp_.get(), n * C, st);
      layernorm_forward(xn_.get(), lnm_.get(), lnr_.get(), x_.get(), m_.W(li.ln2w), m_.W(li.ln2b), n, C, st);
      m_.linear(h_.get(), xn_.get(), li.fcw, li.fcb, n, C, 4 * C);
      gelu_forward(h_.get(), h_.get(), n * 4 * C, st);
      m_.linear(tmp_.get(), h_.get(), li.fcprojw, li.fcprojb, n, 4 * C, C);
      residual_forward(x_.get(), x_.get(), tmp_.get(), n * C, st);
    }
    // Final LayerNorm and the LM head for the rows whose next token is wanted; fp32 logits to the host.
    gather_rows(xh_.get(), x_.get(), head_.get(), nh, C, C, st);
    layernorm_forward(xf_.get(), lnm_.get(), lnr_.get(), xh_.get(), m_.W(t.lnfw), m_.W(t.lnfb), nh, C, st);
    gemm(false, true, nh, V, C, 1.f, xf_.get(), C, m_.W(t.wte), C, 0.f, logits_.get(), V, nullptr, st);
    MINIELM_CUDA_CHECK(cudaMemcpyAsync(logits, logits_.get(), sizeof(float) * nh * V, cudaMemcpyDeviceToHost, st));
    MINIELM_CUDA_CHECK(cudaStreamSynchronize(st));
    // The search's phases run on the host threads, as after a CPU step.
    for (const decode::Phase& ph : phases)
      run_parallel(num_threads(), [&](int tid, int nt) {
        const int64_t i0 = ph.count * tid / nt, i1 = ph.count * (tid + 1) / nt;
        for (int64_t i = i0; i < i1; ++i) ph.fn(i, tid);
      });
  }

 private:
  DeviceModel::Impl& m_;
  Config cfg_;
  int64_t max_rows_, max_head_;
  DevBuf<bf16> kc_, vc_, x_, xn_, qkv_, q_, att_, h_, tmp_, xf_, xh_;
  DevBuf<float> lnm_, lnr_, logits_;
  DevBuf<int32_t> tok_, pos_, slot_, len_, off_, ctx_, head_;
  std::vector<int32_t> htok_, hpos_, hslot_, hlen_, hoff_, hctx_;
};

}  // namespace

// ---- DeviceModel ----
DeviceModel::DeviceModel(Gpt2<float>& host, int device) : impl_(std::make_unique<Impl>(host, device)) { impl_->upload(); }
DeviceModel::~DeviceModel() = default;
int DeviceModel::device() const { return impl_->dev; }
void DeviceModel::upload() { impl_->upload(); }
void DeviceModel::download() { impl_->download(); }
void DeviceModel::forward(const Batch& batch, float* host_logits) { impl_->forward_to_host(batch, host_logits); }
double DeviceModel::cross_entropy(const Batch& batch, float* host_losses, float* host_logits) {
  return impl_->cross_entropy_to_host(batch, host_losses, host_logits);
}
StepStats DeviceModel::train_step(const std::vector<Batch>& micro, const OptimConfig& opt) { return impl_->train_step(micro, opt); }
loss::DpoStepStats DeviceModel::dpo_step(DeviceModel* reference, const double* ref_logps, const Batch& pairs,
                                         const loss::DpoOptions& o, const OptimConfig& opt) {
  return impl_->dpo_step(reference ? reference->impl_.get() : nullptr, ref_logps, pairs, o, opt);
}
loss::DistillStepStats DeviceModel::distill_step(DeviceModel& teacher, const Batch& batch, const loss::DistillOptions& o,
                                                 const OptimConfig& opt) {
  return impl_->distill_step(*teacher.impl_, batch, o, opt);
}

std::vector<std::vector<decode::Generated>> DeviceModel::generate(const std::vector<std::vector<int32_t>>& prompts,
                                                                  const decode::GenerateOptions& options) {
  Impl& m = *impl_;
  decode::StepFactory factory = [&m](int64_t cache_rows, int64_t max_rows, int64_t max_head) {
    return std::unique_ptr<decode::StepForward>(new DeviceStep(m, cache_rows, max_rows, max_head));
  };
  return decode::generate(m.host, prompts, options, &factory);
}

}  // namespace cuda
}  // namespace minielm
