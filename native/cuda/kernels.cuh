// The CUDA twins of the CPU engine's kernels (native/model/ops.h, native/loss/*.h), one declaration each.
// Conventions, the same for every function here:
//   - all pointers are device pointers unless named host_*; every call is asynchronous on `stream`;
//   - row-major layouts identical to the CPU engine's (HF GPT-2 Conv1D weights stored [in, out]);
//   - activations and weights read by the matrix units are bf16; parameter gradients, AdamW moments and
//     master weights are fp32; every reduction and softmax runs in fp32;
//   - "accumulate" means +=, like the CPU backward functions (gradient accumulation is free);
//   - sizes are int64_t but each dimension must fit int32 (callers check).
// Tolerances the GPU tests hold them to (against the CPU engine in fp32 on the same inputs) are stated in
// native/cuda/tests/; bf16 rounding of one operand is ~4e-3 relative.
#pragma once
#include <cstdint>

#include "common.cuh"

namespace minielm {
namespace cuda {

// ---------------------------------------------------------------------------------------------------------
// GEMM (gemm.cu). Row-major like minielm::sgemm:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C  (+ bias[N] broadcast over rows when bias != null)
// op(A) = A (stored [M,K], lda >= K) or A^T (stored [K,M], lda >= M); likewise B. fp32 accumulation.
// C is fp32 or bf16 (two overloads). beta = 0 never reads C (it may hold NaN).
// Backend: cuBLASLt when libcublasLt is found at run time (dlopen; never linked), else the built-in
// bf16 tensor-core kernel (mma.sync m16n8k16, sm_80+). MINIELM_CUDA_GEMM=builtin|cublaslt forces one.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, cudaStream_t stream);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
          const bf16* B, int64_t ldb, float beta, bf16* C, int64_t ldc, const float* bias, cudaStream_t stream);
// "cublaslt" or "builtin": what the next gemm call will use.
const char* gemm_backend();

// ---------------------------------------------------------------------------------------------------------
// Elementwise and row kernels (ops.cu).
// fp32 -> bf16 (round to nearest even) and back.
void to_bf16(bf16* dst, const float* src, int64_t n, cudaStream_t stream);
void to_f32(float* dst, const bf16* src, int64_t n, cudaStream_t stream);
// out[bt, :] = wte[tok[bt], :] + wpe[pos[bt], :]
void embedding_forward(bf16* out, const int32_t* tok, const int32_t* pos, const bf16* wte, const bf16* wpe,
                       int64_t BT, int64_t C, cudaStream_t stream);
// Accumulates dout into rows tok[bt] of dwte and pos[bt] of dwpe (fp32 atomics: order-dependent in the last
// bits, so not bitwise deterministic).
void embedding_backward(float* dwte, float* dwpe, const bf16* dout, const int32_t* tok, const int32_t* pos,
                        int64_t BT, int64_t C, cudaStream_t stream);
// LayerNorm over C (eps 1e-5, biased variance, like the CPU); mean / rstd [BT] kept for backward.
void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* w, const bf16* b,
                       int64_t BT, int64_t C, cudaStream_t stream);
// Accumulates into dinp (bf16), dw and db (fp32).
void layernorm_backward(bf16* dinp, float* dw, float* db, const bf16* dout, const bf16* inp, const bf16* w,
                        const float* mean, const float* rstd, int64_t BT, int64_t C, cudaStream_t stream);
// tanh-approximate GELU (GPT-2's), and its backward: dinp = gelu'(inp) * dout (overwrites dinp).
void gelu_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream);
void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream);
// out = a + b (out may alias a or b).
void residual_forward(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream);
// dst += src.
void add_inplace(bf16* dst, const bf16* src, int64_t n, cudaStream_t stream);
// Accumulates the column sums of dout [rows, cols] into dbias [cols] (fp32).
void bias_backward(float* dbias, const bf16* dout, int64_t rows, int64_t cols, cudaStream_t stream);
void fill(float* dst, float value, int64_t n, cudaStream_t stream);

// Fused softmax + cross-entropy with a per-token weight, the twin of ops::cross_entropy_forward_backward:
// for each row i with w_i != 0, loss_i = logsumexp(logits_i) - logits_i[target_i]. Adds sum_i w_i loss_i to
// *loss_sum (a device double, not zeroed here). When dlogits != null it receives
// (softmax - onehot) * w_i * grad_scale (it may alias logits); rows with weight 0 get zeros. losses [rows]
// receives loss_i when non-null (0 for weight-0 rows). weights == null: every row weighs 1.
void cross_entropy(bf16* dlogits, float* losses, double* loss_sum, const bf16* logits, const int32_t* targets,
                   const float* weights, int64_t rows, int64_t V, float grad_scale, cudaStream_t stream);

// Sum of squares of g[0..n) added to *sumsq (device double, not zeroed here).
void sum_squares(double* sumsq, const float* g, int64_t n, cudaStream_t stream);
// AdamW on one tensor, fp32 master weights, bf16 working copy refreshed in the same pass:
//   g = grad * grad_scale (clipping folded in by the caller); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//   master -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * master); copy = bf16(master)
// t = step (1-based). The CPU engine's optimizer_step is the reference (same formula, same order).
void adamw(float* master, bf16* copy, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float grad_scale, int64_t step, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------------------
// Alignment losses (loss.cu), twins of native/loss/distill.h, dpo.h and grpo.h on bf16 logits.
// Token-level distillation: per row i with weight w_i (null: 1), divergence 0 reverse KL, 1 forward KL,
// 2 JSD(beta), at temperature tau, mixed with ce_weight * CE against targets (targets may be null when
// ce_weight == 0). Writes the gradient of sum_i w_i * row_loss_i times grad_scale over dstudent (may alias
// student). Adds sum_i w_i * loss_i, sum_i w_i * D_i, sum_i w_i * CE_i to sums[0..2] (device doubles).
void distill(bf16* dstudent, double* sums, const bf16* student, const bf16* teacher, const int32_t* targets,
             const float* weights, int64_t rows, int64_t V, int divergence, float beta, float temperature,
             float ce_weight, float grad_scale, cudaStream_t stream);
// Sequence log-probabilities: for B sequences of T rows, seq_logp[b] = sum_t w[b,t] * log_softmax(logits[b,t])
// [targets[b,t]] (written, not accumulated); row_lse [B*T] keeps each row's logsumexp for the backward.
void sequence_logps(double* seq_logp, float* row_lse, const bf16* logits, const int32_t* targets,
                    const float* weights, int64_t B, int64_t T, int64_t V, cudaStream_t stream);
// dlogits[b,t,:] = coef[b] * w[b,t] * (onehot(target) - softmax(logits[b,t])) (written; may alias logits):
// the gradient of sum_b coef[b] * seq_logp[b]. coef is a device array [B].
void sequence_logps_backward(bf16* dlogits, const bf16* logits, const int32_t* targets, const float* weights,
                             const float* row_lse, const float* coef, int64_t B, int64_t T, int64_t V,
                             cudaStream_t stream);
// Per-token log-probabilities logp[r] = log_softmax(logits[r])[targets[r]] for rows with weight != 0
// (0 elsewhere), and the row logsumexp.
void token_logps(float* logp, float* row_lse, const bf16* logits, const int32_t* targets, const float* weights,
                 int64_t rows, int64_t V, cudaStream_t stream);
// dlogits[r,:] = coef[r] * (onehot(target) - softmax(logits[r])) (written; may alias logits): the gradient of
// sum_r coef[r] * logp[r]. GRPO computes coef per token on the host side of the step (ratio, clipping, KL).
void token_logps_backward(bf16* dlogits, const bf16* logits, const int32_t* targets, const float* row_lse,
                          const float* coef, int64_t rows, int64_t V, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------------------
// Attention (attention.cu).
// Training: causal multi-head attention with a key padding mask, flash-style (no T x T matrix in memory).
// qkv [B, T, 3C] (q | k | v, heads contiguous inside each, like the CPU), out [B, T, C], lse [B, NH, T] the
// softmax log-normaliser of each query row (fp32) kept for backward. Key j is visible to query i when
// j <= i and key_mask[b, j] != 0 (key_mask may be null). A query with no visible key outputs zeros (and
// lse = -inf). Scale 1 / sqrt(C / NH). Head size C / NH in {32, 64, 128}.
void attention_forward(bf16* out, float* lse, const bf16* qkv, const uint8_t* key_mask, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream);
// dqkv [B, T, 3C] is overwritten. `scratch` holds at least B * NH * T floats (the row dot(dout, out)).
void attention_backward(bf16* dqkv, float* scratch, const bf16* dout, const bf16* out, const float* lse,
                        const bf16* qkv, const uint8_t* key_mask, int64_t B, int64_t T, int64_t C, int64_t NH,
                        cudaStream_t stream);
// Decoding with a paged KV cache: n query rows, row r's query q[r, :C] attends over the cache rows
// ctx[r][0..len[r]) (ctx_offset[r] indexes into ctx_rows; key t of row r lives at
// kcache[ctx_rows[ctx_offset[r] + t] * C + h * hs]). out [n, C]. max_len bounds len[r] (scratch sizing).
void attention_decode(bf16* out, const bf16* q, const bf16* kcache, const bf16* vcache, const int32_t* ctx_rows,
                      const int32_t* ctx_offset, const int32_t* len, int64_t n, int64_t C, int64_t NH,
                      int64_t max_len, cudaStream_t stream);

}  // namespace cuda
}  // namespace minielm
