// Elementwise and row kernels: the CUDA twins of native/model/ops.h (embedding, LayerNorm, GELU, residual,
// bias gradient, fused softmax cross-entropy) plus the optimizer's pieces (conversion, fill, sum of squares,
// AdamW). Semantics: native/cuda/kernels.cuh. Every reduction runs in fp32 (double where the contract hands
// back a double); bf16 only at the loads and stores.
//
// Layout of the work:
//   - elementwise kernels: grid-stride over 16-byte vectors (8 bf16 / 4 floats) when every pointer allows
//     it, else over scalars (odd sizes and offsets never fail, they only take the scalar path);
//   - per-row kernels over C (embedding, LayerNorm): one warp per row;
//   - softmax rows over V (cross_entropy): a "row group" per row, a warp for V <= 1024 else a block of 256
//     or 1024 threads; the row is read twice (online max + sum, then the gradient pass, from L2) and written
//     once. Loads are vectorised per row: a scalar head up to the first 16-byte boundary, 16-byte body, scalar
//     tail, so an odd V (GPT-2's 50257) keeps the vector body on every row. The row-group machinery and the
//     host checks are shared with loss.cu: native/cuda/rows.cuh.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "kernels.cuh"
#include "rows.cuh"

namespace minielm {
namespace cuda {
namespace {

using namespace detail;  // rows.cuh: checks, sm_count, row groups, pack8 / unpack8

// ---------------------------------------------------------------------------------------------------------
// Host helpers.

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
inline bool aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }

// Grid for a grid-stride loop over `work` items with 256-thread blocks: at most 8 blocks per SM (a full SM).
inline unsigned grid_for(int64_t work, int per_sm = 8) {
  int64_t cap = static_cast<int64_t>(sm_count()) * per_sm;
  int64_t g = ceil_div(work, 256);
  if (g > cap) g = cap;
  if (g < 1) g = 1;
  return static_cast<unsigned>(g);
}

constexpr int kThreads = 256;

// ---------------------------------------------------------------------------------------------------------
// Device helpers.

__device__ __forceinline__ uint2 pack4(const float (&v)[4]) {
  uint2 u;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
  h[0] = __floats2bfloat162_rn(v[0], v[1]);
  h[1] = __floats2bfloat162_rn(v[2], v[3]);
  return u;
}

__device__ __forceinline__ int64_t gtid() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t gstride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---------------------------------------------------------------------------------------------------------
// Conversions, fill.

template <bool VEC>
__global__ void __launch_bounds__(kThreads) to_bf16_kernel(bf16* dst, const float* src, int64_t n) {
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 3;
    for (int64_t k = gtid(); k < nv; k += gstride()) {
      const float4 a = reinterpret_cast<const float4*>(src)[2 * k], b = reinterpret_cast<const float4*>(src)[2 * k + 1];
      const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
      reinterpret_cast<uint4*>(dst)[k] = pack8(v);
    }
    done = nv << 3;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) dst[i] = to_bf(src[i]);
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads) to_f32_kernel(float* dst, const bf16* src, int64_t n) {
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 3;
    for (int64_t k = gtid(); k < nv; k += gstride()) {
      float v[8];
      unpack8(reinterpret_cast<const uint4*>(src)[k], v);
      reinterpret_cast<float4*>(dst)[2 * k] = make_float4(v[0], v[1], v[2], v[3]);
      reinterpret_cast<float4*>(dst)[2 * k + 1] = make_float4(v[4], v[5], v[6], v[7]);
    }
    done = nv << 3;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) dst[i] = to_f(src[i]);
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads) fill_kernel(float* dst, float value, int64_t n) {
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 2;
    const float4 q = make_float4(value, value, value, value);
    for (int64_t k = gtid(); k < nv; k += gstride()) reinterpret_cast<float4*>(dst)[k] = q;
    done = nv << 2;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) dst[i] = value;
}

// ---------------------------------------------------------------------------------------------------------
// bf16 elementwise maps: out = op(a, b) (b unused when !TWO). out may alias a or b.

struct GeluOp {
  __device__ float operator()(float x, float) const {
    const float k = 0.7978845608028654f;
    const float u = k * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.f + tanhf(u));
  }
};
// a = inp, b = dout.
struct GeluBackOp {
  __device__ float operator()(float x, float d) const {
    const float k = 0.7978845608028654f;
    const float u = k * (x + 0.044715f * x * x * x);
    const float th = tanhf(u);
    const float sech2 = 1.f - th * th;
    const float grad = 0.5f * (1.f + th) + 0.5f * x * sech2 * k * (1.f + 3.f * 0.044715f * x * x);
    return d * grad;
  }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <bool VEC, bool TWO, class Op>
__global__ void __launch_bounds__(kThreads) map_bf16_kernel(bf16* out, const bf16* a, const bf16* b, int64_t n, Op op) {
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 3;
    for (int64_t k = gtid(); k < nv; k += gstride()) {
      float x[8], y[8] = {};
      unpack8(reinterpret_cast<const uint4*>(a)[k], x);
      if (TWO) unpack8(reinterpret_cast<const uint4*>(b)[k], y);
#pragma unroll
      for (int e = 0; e < 8; ++e) x[e] = op(x[e], TWO ? y[e] : 0.f);
      reinterpret_cast<uint4*>(out)[k] = pack8(x);
    }
    done = nv << 3;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) out[i] = to_bf(op(to_f(a[i]), TWO ? to_f(b[i]) : 0.f));
}

template <bool TWO, class Op>
void launch_map(const char* fn, bf16* out, const bf16* a, const bf16* b, int64_t n, Op op, cudaStream_t stream) {
  check_size(fn, "n", n, false);
  if (n == 0) return;
  check_ptr(fn, "out", out);
  check_ptr(fn, "input", a);
  if (TWO) check_ptr(fn, "second input", b);
  const bool vec = aligned16(out) && aligned16(a) && (!TWO || aligned16(b));
  if (vec) {
    map_bf16_kernel<true, TWO, Op><<<grid_for(n >> 3), kThreads, 0, stream>>>(out, a, b, n, op);
  } else {
    map_bf16_kernel<false, TWO, Op><<<grid_for(n), kThreads, 0, stream>>>(out, a, b, n, op);
  }
  MINIELM_CUDA_LAUNCHED(fn);
}

// ---------------------------------------------------------------------------------------------------------
// Embedding: one warp per row.

template <bool VEC>
__global__ void __launch_bounds__(kThreads) embedding_forward_kernel(bf16* out, const int32_t* tok, const int32_t* pos,
                                                                     const bf16* wte, const bf16* wpe, int64_t BT, int C) {
  const int lane = threadIdx.x & 31;
  const int64_t wstride = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); i < BT; i += wstride) {
    const bf16* e = wte + static_cast<int64_t>(tok[i]) * C;
    const bf16* p = wpe + static_cast<int64_t>(pos[i]) * C;
    bf16* o = out + i * C;
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float x[8], y[8];
        unpack8(reinterpret_cast<const uint4*>(e)[k], x);
        unpack8(reinterpret_cast<const uint4*>(p)[k], y);
#pragma unroll
        for (int q = 0; q < 8; ++q) x[q] += y[q];
        reinterpret_cast<uint4*>(o)[k] = pack8(x);
      }
    } else {
      for (int c = lane; c < C; c += 32) o[c] = to_bf(to_f(e[c]) + to_f(p[c]));
    }
  }
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads) embedding_backward_kernel(float* dwte, float* dwpe, const bf16* dout,
                                                                      const int32_t* tok, const int32_t* pos, int64_t BT,
                                                                      int C) {
  const int lane = threadIdx.x & 31;
  const int64_t wstride = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); i < BT; i += wstride) {
    float* e = dwte + static_cast<int64_t>(tok[i]) * C;
    float* p = dwpe + static_cast<int64_t>(pos[i]) * C;
    const bf16* d = dout + i * C;
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float x[8];
        unpack8(reinterpret_cast<const uint4*>(d)[k], x);
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          atomicAdd(e + 8 * k + q, x[q]);
          atomicAdd(p + 8 * k + q, x[q]);
        }
      }
    } else {
      for (int c = lane; c < C; c += 32) {
        const float x = to_f(d[c]);
        atomicAdd(e + c, x);
        atomicAdd(p + c, x);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm: one warp per row; the row (C bf16) stays in L1 between the passes.

template <bool VEC>
__global__ void __launch_bounds__(kThreads) layernorm_forward_kernel(bf16* out, float* mean, float* rstd, const bf16* inp,
                                                                     const bf16* w, const bf16* b, int64_t BT, int C) {
  const int lane = threadIdx.x & 31;
  const int64_t wstride = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const float invC = 1.f / static_cast<float>(C);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); i < BT; i += wstride) {
    const bf16* x = inp + i * C;
    bf16* o = out + i * C;
    float sum = 0.f;
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float v[8];
        unpack8(reinterpret_cast<const uint4*>(x)[k], v);
#pragma unroll
        for (int q = 0; q < 8; ++q) sum += v[q];
      }
    } else {
      for (int c = lane; c < C; c += 32) sum += to_f(x[c]);
    }
    const float m = warp_sum(sum) * invC;
    float var = 0.f;
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float v[8];
        unpack8(reinterpret_cast<const uint4*>(x)[k], v);
#pragma unroll
        for (int q = 0; q < 8; ++q) var += (v[q] - m) * (v[q] - m);
      }
    } else {
      for (int c = lane; c < C; c += 32) {
        const float d = to_f(x[c]) - m;
        var += d * d;
      }
    }
    const float s = 1.f / sqrtf(warp_sum(var) * invC + 1e-5f);
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float v[8], ww[8], bb[8];
        unpack8(reinterpret_cast<const uint4*>(x)[k], v);
        unpack8(reinterpret_cast<const uint4*>(w)[k], ww);
        unpack8(reinterpret_cast<const uint4*>(b)[k], bb);
#pragma unroll
        for (int q = 0; q < 8; ++q) v[q] = (v[q] - m) * s * ww[q] + bb[q];
        reinterpret_cast<uint4*>(o)[k] = pack8(v);
      }
    } else {
      for (int c = lane; c < C; c += 32) o[c] = to_bf((to_f(x[c]) - m) * s * to_f(w[c]) + to_f(b[c]));
    }
    if (lane == 0) {
      if (mean) mean[i] = m;
      if (rstd) rstd[i] = s;
    }
  }
}

// Warps of a block share dw / db partials in shared memory (SMEM, 2 C floats) or add straight to global
// memory (C too large for shared memory); the block adds its partials once at the end.
template <bool VEC, bool SMEM>
__global__ void __launch_bounds__(kThreads) layernorm_backward_kernel(bf16* dinp, float* dw, float* db, const bf16* dout,
                                                                      const bf16* inp, const bf16* w, const float* mean,
                                                                      const float* rstd, int64_t BT, int C) {
  extern __shared__ float sh[];
  float* pw = SMEM ? sh : dw;
  float* pb = SMEM ? sh + C : db;
  if (SMEM) {
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) sh[c] = 0.f;
    __syncthreads();
  }
  const int lane = threadIdx.x & 31;
  const int64_t wstride = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const float invC = 1.f / static_cast<float>(C);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5); i < BT; i += wstride) {
    const bf16* x = inp + i * C;
    const bf16* d = dout + i * C;
    const float m = mean[i], s = rstd[i];
    float a = 0.f, an = 0.f;  // sum dnorm, sum dnorm * norm
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float xv[8], dv[8], wv[8];
        unpack8(reinterpret_cast<const uint4*>(x)[k], xv);
        unpack8(reinterpret_cast<const uint4*>(d)[k], dv);
        unpack8(reinterpret_cast<const uint4*>(w)[k], wv);
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          const float norm = (xv[q] - m) * s, dn = wv[q] * dv[q];
          a += dn;
          an += dn * norm;
        }
      }
    } else {
      for (int c = lane; c < C; c += 32) {
        const float norm = (to_f(x[c]) - m) * s, dn = to_f(w[c]) * to_f(d[c]);
        a += dn;
        an += dn * norm;
      }
    }
    const float dnm = warp_sum(a) * invC, dnnm = warp_sum(an) * invC;
    if (VEC) {
      for (int k = lane; k < (C >> 3); k += 32) {
        float xv[8], dv[8], wv[8], gv[8] = {};
        unpack8(reinterpret_cast<const uint4*>(x)[k], xv);
        unpack8(reinterpret_cast<const uint4*>(d)[k], dv);
        unpack8(reinterpret_cast<const uint4*>(w)[k], wv);
        if (dinp) unpack8(reinterpret_cast<const uint4*>(dinp + i * C)[k], gv);
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          const float norm = (xv[q] - m) * s, dn = wv[q] * dv[q];
          if (pb) atomicAdd(pb + 8 * k + q, dv[q]);
          if (pw) atomicAdd(pw + 8 * k + q, norm * dv[q]);
          gv[q] += (dn - dnm - norm * dnnm) * s;
        }
        if (dinp) reinterpret_cast<uint4*>(dinp + i * C)[k] = pack8(gv);
      }
    } else {
      for (int c = lane; c < C; c += 32) {
        const float dc = to_f(d[c]);
        const float norm = (to_f(x[c]) - m) * s, dn = to_f(w[c]) * dc;
        if (pb) atomicAdd(pb + c, dc);
        if (pw) atomicAdd(pw + c, norm * dc);
        if (dinp) dinp[i * C + c] = to_bf(to_f(dinp[i * C + c]) + (dn - dnm - norm * dnnm) * s);
      }
    }
  }
  if (SMEM) {
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      if (dw) atomicAdd(dw + c, sh[c]);
      if (db) atomicAdd(db + c, sh[C + c]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Bias gradient: block = 32 column lanes x 8 row stripes; each lane owns VEC adjacent columns.

template <int VEC>
__global__ void __launch_bounds__(kThreads) bias_backward_kernel(float* dbias, const bf16* dout, int64_t rows, int cols) {
  __shared__ float part[8][32 * VEC];
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int64_t c0 = static_cast<int64_t>(blockIdx.x) * 32 * VEC + tx * VEC;
  float acc[VEC];
#pragma unroll
  for (int q = 0; q < VEC; ++q) acc[q] = 0.f;
  if (c0 < cols) {
    for (int64_t r = static_cast<int64_t>(blockIdx.y) * 8 + ty; r < rows; r += static_cast<int64_t>(gridDim.y) * 8) {
      const bf16* d = dout + r * cols + c0;
      if (VEC == 8) {
        float v[8];
        unpack8(*reinterpret_cast<const uint4*>(d), v);
#pragma unroll
        for (int q = 0; q < VEC; ++q) acc[q] += v[q];
      } else {
        acc[0] += to_f(d[0]);
      }
    }
  }
#pragma unroll
  for (int q = 0; q < VEC; ++q) part[ty][tx * VEC + q] = acc[q];
  __syncthreads();
  for (int j = threadIdx.x; j < 32 * VEC; j += blockDim.x) {
    const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 * VEC + j;
    if (c >= cols) continue;
    float s = 0.f;
#pragma unroll
    for (int y = 0; y < 8; ++y) s += part[y][j];
    atomicAdd(dbias + c, s);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Fused softmax cross-entropy, one row group per row.

template <int G>
__global__ void __launch_bounds__(Grp<G>::kBlock) cross_entropy_kernel(bf16* dlogits, float* losses, double* loss_sum,
                                                                       const bf16* logits, const int32_t* targets,
                                                                       const float* weights, int64_t rows, int V,
                                                                       float grad_scale) {
  __shared__ float shm[32], shs[32];
  const int r = Grp<G>::rank();
  double acc = 0.0;
  bool any = false;
  for (int64_t row = Grp<G>::first_row(); row < rows; row += Grp<G>::row_stride()) {
    const float w = weights ? weights[row] : 1.f;
    bf16* g = dlogits ? dlogits + row * V : nullptr;
    if (w == 0.f) {
      if (r == 0 && losses) losses[row] = 0.f;
      if (g) row_zero<G>(g, V);
      continue;
    }
    const bf16* x = logits + row * V;
    const int tgt = targets[row];
    // An out-of-range target (the caller's bug) gives a NaN loss instead of an out-of-bounds read.
    float xt = 0.f;
    if (r == 0) xt = tgt >= 0 && tgt < V ? to_f(x[tgt]) : NAN;
    float m = kNegBig, s = 0.f;
    row_visit<G>(x, V, [&](int, float v) { online_add(m, s, v); });
    group_softmax<G>(m, s, shm, shs);
    Grp<G>::sync();  // every read of the row (xt included) happens before the first write below
    if (r == 0) {
      const float loss = (m + logf(s)) - xt;
      if (losses) losses[row] = loss;
      acc += static_cast<double>(w) * static_cast<double>(loss);
      any = true;
    }
    if (g) {
      const float sc = w * grad_scale, k = sc / s;
      row_map<G>(x, g, V, [&](int j, float v) {
        const float p = __expf(v - m) * k;
        return j == tgt ? p - sc : p;
      });
    }
  }
  if (loss_sum && r == 0 && any) atomicAdd(loss_sum, acc);
}

// ---------------------------------------------------------------------------------------------------------
// Optimizer pieces.

template <bool VEC>
__global__ void __launch_bounds__(kThreads) sum_squares_kernel(double* sumsq, const float* g, int64_t n) {
  __shared__ double sh[32];
  double acc = 0.0;
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 2;
    for (int64_t k = gtid(); k < nv; k += gstride()) {
      const float4 q = reinterpret_cast<const float4*>(g)[k];
      acc += static_cast<double>(q.x) * q.x + static_cast<double>(q.y) * q.y + static_cast<double>(q.z) * q.z +
             static_cast<double>(q.w) * q.w;
    }
    done = nv << 2;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) acc += static_cast<double>(g[i]) * g[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) atomicAdd(sumsq, acc);
}

struct AdamArgs {
  float lr, b1, b2, omb1, omb2, eps, wd, grad_scale, inv_bc1, inv_bc2;
};

// gpt2.cc's optimizer_step, operation for operation; the _rn intrinsics keep nvcc from contracting into FMAs
// (and fast-math from approximating), so each element matches the CPU engine's float path bit for bit.
__device__ __forceinline__ float adam_one(float& p, float gr, float& m, float& v, const AdamArgs& a) {
  const float grad = __fmul_rn(gr, a.grad_scale);
  const float mi = __fadd_rn(__fmul_rn(a.b1, m), __fmul_rn(a.omb1, grad));
  const float vi = __fadd_rn(__fmul_rn(a.b2, v), __fmul_rn(__fmul_rn(a.omb2, grad), grad));
  m = mi;
  v = vi;
  const float upd = __fadd_rn(__fdiv_rn(__fmul_rn(mi, a.inv_bc1), __fadd_rn(__fsqrt_rn(__fmul_rn(vi, a.inv_bc2)), a.eps)),
                              __fmul_rn(a.wd, p));
  p = __fsub_rn(p, __fmul_rn(a.lr, upd));
  return p;
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads) adamw_kernel(float* master, bf16* copy, const float* grad, float* m, float* v,
                                                         int64_t n, AdamArgs a) {
  int64_t done = 0;
  if (VEC) {
    const int64_t nv = n >> 2;
    for (int64_t k = gtid(); k < nv; k += gstride()) {
      float4 p = reinterpret_cast<float4*>(master)[k];
      const float4 g = reinterpret_cast<const float4*>(grad)[k];
      float4 mm = reinterpret_cast<float4*>(m)[k];
      float4 vv = reinterpret_cast<float4*>(v)[k];
      float out[4];
      out[0] = adam_one(p.x, g.x, mm.x, vv.x, a);
      out[1] = adam_one(p.y, g.y, mm.y, vv.y, a);
      out[2] = adam_one(p.z, g.z, mm.z, vv.z, a);
      out[3] = adam_one(p.w, g.w, mm.w, vv.w, a);
      reinterpret_cast<float4*>(master)[k] = p;
      reinterpret_cast<float4*>(m)[k] = mm;
      reinterpret_cast<float4*>(v)[k] = vv;
      if (copy) reinterpret_cast<uint2*>(copy)[k] = pack4(out);
    }
    done = nv << 2;
  }
  for (int64_t i = done + gtid(); i < n; i += gstride()) {
    float p = master[i], mm = m[i], vv = v[i];
    adam_one(p, grad[i], mm, vv, a);
    master[i] = p;
    m[i] = mm;
    v[i] = vv;
    if (copy) copy[i] = to_bf(p);
  }
}

}  // namespace

// =========================================================================================================
// Launchers.

void to_bf16(bf16* dst, const float* src, int64_t n, cudaStream_t stream) {
  check_size("to_bf16", "n", n, false);
  if (n == 0) return;
  check_ptr("to_bf16", "dst", dst);
  check_ptr("to_bf16", "src", src);
  if (aligned16(dst) && aligned16(src)) to_bf16_kernel<true><<<grid_for(n >> 3), kThreads, 0, stream>>>(dst, src, n);
  else to_bf16_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(dst, src, n);
  MINIELM_CUDA_LAUNCHED("to_bf16");
}

void to_f32(float* dst, const bf16* src, int64_t n, cudaStream_t stream) {
  check_size("to_f32", "n", n, false);
  if (n == 0) return;
  check_ptr("to_f32", "dst", dst);
  check_ptr("to_f32", "src", src);
  if (aligned16(dst) && aligned16(src)) to_f32_kernel<true><<<grid_for(n >> 3), kThreads, 0, stream>>>(dst, src, n);
  else to_f32_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(dst, src, n);
  MINIELM_CUDA_LAUNCHED("to_f32");
}

void fill(float* dst, float value, int64_t n, cudaStream_t stream) {
  check_size("fill", "n", n, false);
  if (n == 0) return;
  check_ptr("fill", "dst", dst);
  if (aligned16(dst)) fill_kernel<true><<<grid_for(n >> 2), kThreads, 0, stream>>>(dst, value, n);
  else fill_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(dst, value, n);
  MINIELM_CUDA_LAUNCHED("fill");
}

void embedding_forward(bf16* out, const int32_t* tok, const int32_t* pos, const bf16* wte, const bf16* wpe, int64_t BT,
                       int64_t C, cudaStream_t stream) {
  check_size("embedding_forward", "BT", BT, true);
  check_size("embedding_forward", "C", C, true);
  if (BT == 0 || C == 0) return;
  check_ptr("embedding_forward", "out", out);
  check_ptr("embedding_forward", "tok", tok);
  check_ptr("embedding_forward", "pos", pos);
  check_ptr("embedding_forward", "wte", wte);
  check_ptr("embedding_forward", "wpe", wpe);
  const unsigned grid = grid_for(BT * 32);
  if (C % 8 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe))
    embedding_forward_kernel<true><<<grid, kThreads, 0, stream>>>(out, tok, pos, wte, wpe, BT, static_cast<int>(C));
  else
    embedding_forward_kernel<false><<<grid, kThreads, 0, stream>>>(out, tok, pos, wte, wpe, BT, static_cast<int>(C));
  MINIELM_CUDA_LAUNCHED("embedding_forward");
}

void embedding_backward(float* dwte, float* dwpe, const bf16* dout, const int32_t* tok, const int32_t* pos, int64_t BT,
                        int64_t C, cudaStream_t stream) {
  check_size("embedding_backward", "BT", BT, true);
  check_size("embedding_backward", "C", C, true);
  if (BT == 0 || C == 0) return;
  check_ptr("embedding_backward", "dwte", dwte);
  check_ptr("embedding_backward", "dwpe", dwpe);
  check_ptr("embedding_backward", "dout", dout);
  check_ptr("embedding_backward", "tok", tok);
  check_ptr("embedding_backward", "pos", pos);
  const unsigned grid = grid_for(BT * 32);
  if (C % 8 == 0 && aligned16(dout))
    embedding_backward_kernel<true><<<grid, kThreads, 0, stream>>>(dwte, dwpe, dout, tok, pos, BT, static_cast<int>(C));
  else
    embedding_backward_kernel<false><<<grid, kThreads, 0, stream>>>(dwte, dwpe, dout, tok, pos, BT, static_cast<int>(C));
  MINIELM_CUDA_LAUNCHED("embedding_backward");
}

void layernorm_forward(bf16* out, float* mean, float* rstd, const bf16* inp, const bf16* w, const bf16* b, int64_t BT,
                       int64_t C, cudaStream_t stream) {
  check_size("layernorm_forward", "BT", BT, true);
  check_size("layernorm_forward", "C", C, true);
  if (BT == 0) return;
  if (C == 0) bad_arg("layernorm_forward", "C must be >= 1");
  check_ptr("layernorm_forward", "out", out);
  check_ptr("layernorm_forward", "inp", inp);
  check_ptr("layernorm_forward", "w", w);
  check_ptr("layernorm_forward", "b", b);
  const unsigned grid = grid_for(BT * 32);
  const int c = static_cast<int>(C);
  if (C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(w) && aligned16(b))
    layernorm_forward_kernel<true><<<grid, kThreads, 0, stream>>>(out, mean, rstd, inp, w, b, BT, c);
  else
    layernorm_forward_kernel<false><<<grid, kThreads, 0, stream>>>(out, mean, rstd, inp, w, b, BT, c);
  MINIELM_CUDA_LAUNCHED("layernorm_forward");
}

void layernorm_backward(bf16* dinp, float* dw, float* db, const bf16* dout, const bf16* inp, const bf16* w,
                        const float* mean, const float* rstd, int64_t BT, int64_t C, cudaStream_t stream) {
  check_size("layernorm_backward", "BT", BT, true);
  check_size("layernorm_backward", "C", C, true);
  if (BT == 0) return;
  if (C == 0) bad_arg("layernorm_backward", "C must be >= 1");
  check_ptr("layernorm_backward", "dout", dout);
  check_ptr("layernorm_backward", "inp", inp);
  check_ptr("layernorm_backward", "w", w);
  check_ptr("layernorm_backward", "mean", mean);
  check_ptr("layernorm_backward", "rstd", rstd);
  const int c = static_cast<int>(C);
  const bool vec = C % 8 == 0 && aligned16(dout) && aligned16(inp) && aligned16(w) && (!dinp || aligned16(dinp));
  // Shared partials while 2 C floats fit the default 48 KiB (C <= 6144: every GPT-2 size).
  const size_t smem = 2 * static_cast<size_t>(C) * sizeof(float);
  const bool use_smem = smem <= 48 * 1024;
  // Enough blocks to fill the GPU, few enough that the per-block flush (2 C atomics) stays small.
  const unsigned grid = grid_for(BT * 32, 2);
  if (use_smem) {
    if (vec)
      layernorm_backward_kernel<true, true><<<grid, kThreads, smem, stream>>>(dinp, dw, db, dout, inp, w, mean, rstd, BT, c);
    else
      layernorm_backward_kernel<false, true><<<grid, kThreads, smem, stream>>>(dinp, dw, db, dout, inp, w, mean, rstd, BT, c);
  } else {
    if (vec)
      layernorm_backward_kernel<true, false><<<grid, kThreads, 0, stream>>>(dinp, dw, db, dout, inp, w, mean, rstd, BT, c);
    else
      layernorm_backward_kernel<false, false><<<grid, kThreads, 0, stream>>>(dinp, dw, db, dout, inp, w, mean, rstd, BT, c);
  }
  MINIELM_CUDA_LAUNCHED("layernorm_backward");
}

void gelu_forward(bf16* out, const bf16* inp, int64_t n, cudaStream_t stream) {
  launch_map<false>("gelu_forward", out, inp, nullptr, n, GeluOp(), stream);
}

void gelu_backward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, cudaStream_t stream) {
  launch_map<true>("gelu_backward", dinp, inp, dout, n, GeluBackOp(), stream);
}

void residual_forward(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  launch_map<true>("residual_forward", out, a, b, n, AddOp(), stream);
}

void add_inplace(bf16* dst, const bf16* src, int64_t n, cudaStream_t stream) {
  launch_map<true>("add_inplace", dst, dst, src, n, AddOp(), stream);
}

void bias_backward(float* dbias, const bf16* dout, int64_t rows, int64_t cols, cudaStream_t stream) {
  check_size("bias_backward", "rows", rows, true);
  check_size("bias_backward", "cols", cols, true);
  if (rows == 0 || cols == 0) return;
  check_ptr("bias_backward", "dbias", dbias);
  check_ptr("bias_backward", "dout", dout);
  const bool vec = cols % 8 == 0 && aligned16(dout);
  const int64_t tile = vec ? 256 : 32;
  const int64_t gx = ceil_div(cols, tile);
  int64_t gy = ceil_div(rows, 8);
  const int64_t want = std::max<int64_t>(1, static_cast<int64_t>(sm_count()) * 8 / gx);
  if (gy > want) gy = want;
  if (gy > 65535) gy = 65535;
  const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  if (vec) bias_backward_kernel<8><<<grid, kThreads, 0, stream>>>(dbias, dout, rows, static_cast<int>(cols));
  else bias_backward_kernel<1><<<grid, kThreads, 0, stream>>>(dbias, dout, rows, static_cast<int>(cols));
  MINIELM_CUDA_LAUNCHED("bias_backward");
}

void cross_entropy(bf16* dlogits, float* losses, double* loss_sum, const bf16* logits, const int32_t* targets,
                   const float* weights, int64_t rows, int64_t V, float grad_scale, cudaStream_t stream) {
  check_size("cross_entropy", "rows", rows, true);
  check_size("cross_entropy", "V", V, true);
  if (rows == 0) return;
  if (V == 0) bad_arg("cross_entropy", "V must be >= 1");
  check_ptr("cross_entropy", "logits", logits);
  check_ptr("cross_entropy", "targets", targets);
  dispatch_group(V, [&](auto tag) {
    constexpr int G = decltype(tag)::value;
    cross_entropy_kernel<G><<<row_grid<G>(rows), Grp<G>::kBlock, 0, stream>>>(dlogits, losses, loss_sum, logits, targets,
                                                                            weights, rows, static_cast<int>(V), grad_scale);
  });
  MINIELM_CUDA_LAUNCHED("cross_entropy");
}

void sum_squares(double* sumsq, const float* g, int64_t n, cudaStream_t stream) {
  check_size("sum_squares", "n", n, false);
  if (n == 0) return;
  check_ptr("sum_squares", "sumsq", sumsq);
  check_ptr("sum_squares", "g", g);
  if (aligned16(g)) sum_squares_kernel<true><<<grid_for(n >> 2), kThreads, 0, stream>>>(sumsq, g, n);
  else sum_squares_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(sumsq, g, n);
  MINIELM_CUDA_LAUNCHED("sum_squares");
}

void adamw(float* master, bf16* copy, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float grad_scale, int64_t step, cudaStream_t stream) {
  check_size("adamw", "n", n, false);
  if (step < 1) bad_arg("adamw", "step must be >= 1 (1-based), got " + std::to_string(step));
  if (n == 0) return;
  check_ptr("adamw", "master", master);
  check_ptr("adamw", "grad", grad);
  check_ptr("adamw", "m", m);
  check_ptr("adamw", "v", v);
  AdamArgs a;
  a.lr = lr;
  a.b1 = beta1;
  a.b2 = beta2;
  a.omb1 = 1.f - beta1;
  a.omb2 = 1.f - beta2;
  a.eps = eps;
  a.wd = weight_decay;
  a.grad_scale = grad_scale;
  // As gpt2.cc: the corrections in double, then rounded once to float.
  a.inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step))));
  a.inv_bc2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step))));
  const bool vec = aligned16(master) && aligned16(grad) && aligned16(m) && aligned16(v) && (!copy || aligned8(copy));
  if (vec) adamw_kernel<true><<<grid_for(n >> 2), kThreads, 0, stream>>>(master, copy, grad, m, v, n, a);
  else adamw_kernel<false><<<grid_for(n), kThreads, 0, stream>>>(master, copy, grad, m, v, n, a);
  MINIELM_CUDA_LAUNCHED("adamw");
}

}  // namespace cuda
}  // namespace minielm
