// Kernels of the incremental (KV-cache) forward pass. They work on a caller-chosen column range and
// never start threads themselves: the decoder runs a whole step as one thread-pool job and hands each
// thread its columns or rows, so a step costs one dispatch instead of one per layer op.
//
// Every output element is computed by the same sequence of operations whatever the number of rows in
// the call, the column range or the thread count (rows are never split along K, sums run in a fixed
// order), so a sequence decoded in a batch of 64 gets the very same floats as decoded alone.
#pragma once
#include <cstdint>

namespace minielm {
namespace decode {

enum class Epilogue {
  Store,  // out = acc + bias
  Gelu,   // out = gelu_tanh(acc + bias)
  AddTo,  // out = out + (acc + bias): the residual add of the projection layers
};

// Conv1D layout (HF GPT-2): W is row-major [K, ldw]. For rows i < M and columns j in [j0, j1):
//   out[i][j] <- epilogue(sum_k A[i*lda + k] * W[k*ldw + j] + bias[j])
// out[i] is the output row of input row i (rows may live anywhere, e.g. in KV-cache slots).
void linear_cols(int64_t M, int64_t K, const float* A, int64_t lda, const float* W, int64_t ldw, const float* bias,
                 float* const* out, int64_t j0, int64_t j1, Epilogue epi);

// The same with bf16 weights (inference-only path: half the weight traffic, fp32 arithmetic).
void linear_cols(int64_t M, int64_t K, const float* A, int64_t lda, const uint16_t* W, int64_t ldw, const float* bias,
                 float* const* out, int64_t j0, int64_t j1, Epilogue epi);

// Tied LM head: out[i*ldo + j] = dot(A[i, 0:K], E[j, 0:K]) for j in [j0, j1); E is the token embedding
// [V, lde]. j0 must be a multiple of 16 (the kernel reduces 16 vocabulary rows at a time).
void head_cols(int64_t M, int64_t K, const float* A, int64_t lda, const float* E, int64_t lde, float* out,
               int64_t ldo, int64_t j0, int64_t j1);

void head_cols(int64_t M, int64_t K, const float* A, int64_t lda, const uint16_t* E, int64_t lde, float* out,
               int64_t ldo, int64_t j0, int64_t j1);

// LayerNorm of one row of C values (eps 1e-5, biased variance): out = (x - mean) / sd * w + b.
void layernorm_row(const float* x, const float* w, const float* b, int64_t C, float* out);

// float -> bf16 (round to nearest even) over n values.
void to_bf16(const float* src, uint16_t* dst, int64_t n);

// One query row, one head: softmax(q · K^T * scale) · V over the n cached positions whose rows are
// ctx[0..n). Key t lives at kbase + ctx[t] * stride (same for values). scratch holds n floats.
void attend(const float* q, const float* kbase, const float* vbase, int64_t stride, const int32_t* ctx, int64_t n,
            int64_t hs, float scale, float* scratch, float* out);

// log(sum_j exp(x[j])) computed stably; *max_out receives max_j x[j].
float log_sum_exp(const float* x, int64_t n, float* max_out);

// The log-sum-exps of a row x and of p, a copy of it with some entries lowered or set to -inf (p[j] <= x[j],
// at least one p[j] finite), with one exp per entry instead of two where p equals x.
void log_sum_exp_pair(const float* x, const float* p, int64_t n, float* lse_x, float* lse_p);

// out[j] = exp((x[j] - shift) * inv_temp); returns the sum (fixed summation order for a given n).
float exp_scaled(const float* x, int64_t n, float shift, float inv_temp, float* out);

// Index of the largest x (lowest index among ties).
int64_t arg_max(const float* x, int64_t n);

// The m largest entries of x, sorted by value descending then index ascending; returns how many were
// written (min(m, n)).
int64_t top_m(const float* x, int64_t n, int64_t m, int32_t* idx, float* val);
// Above this m, top_m switches from insertion (fast for a handful) to the O(n log m) heap.
constexpr int64_t kTopMInsertionMax = 32;

// True when the AVX-512 kernels are in use (false: portable fallbacks). MINIELM_DECODE_ISA=generic
// forces the fallbacks, so tests can check them on any machine.
bool using_avx512();

}  // namespace decode
}  // namespace minielm
