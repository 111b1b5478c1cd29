// Blocked GEMM driver shared by the ISA files. It is included once per ISA file, after that file's
// target pragma, and everything lives in an anonymous namespace: each file gets its own copy compiled
// for its own instruction set and nothing is merged across files by the linker.
//
// KT (kernel traits) provides MR, NR, KC, MC, NC and
//   static void kernel(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc,
//                      int m, int n, float alpha, float beta);
// computing the m x n corner of an MR x NR tile from packed panels (Ap[k*MR + i], Bp[k*NR + j]), and
//   static void pack_a(const Problem&, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst);
//   static void pack_b(const Problem&, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst);
// (pack_a<MR> / pack_b<NR> below are the portable versions).
#pragma once
#include "gemm_internal.h"

namespace minielm {
namespace gemm_detail {
namespace {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// K blocking depends on K only (never on the thread split) so the summation order of every element
// is the same whatever the partition. Balanced blocks avoid a thin last block (e.g. K = 300).
inline int64_t k_block(int64_t K, int64_t kc_max) {
  int64_t nb = (K + kc_max - 1) / kc_max;
  return (K + nb - 1) / nb;
}

template <int MR>
void pack_a(const Problem& p, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* __restrict dst) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const int64_t rows = imin(MR, mc - ir);
    float* __restrict d = dst + ir * kc;
    if (p.ta) {
      // op(A)(i,k) = A[k*lda + i]: each k gives MR contiguous floats.
      const float* s = p.A + k0 * p.lda + i0 + ir;
      if (rows == MR) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* sk = s + k * p.lda;
          for (int i = 0; i < MR; ++i) d[k * MR + i] = sk[i];
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* sk = s + k * p.lda;
          for (int i = 0; i < MR; ++i) d[k * MR + i] = i < rows ? sk[i] : 0.0f;
        }
      }
    } else {
      // op(A)(i,k) = A[i*lda + k]: read rows contiguously, scatter with stride MR (L1-resident).
      for (int i = 0; i < MR; ++i) {
        if (i < rows) {
          const float* s = p.A + (i0 + ir + i) * p.lda + k0;
          for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = s[k];
        } else {
          for (int64_t k = 0; k < kc; ++k) d[k * MR + i] = 0.0f;
        }
      }
    }
  }
}

template <int NR>
void pack_b(const Problem& p, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* __restrict dst) {
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int64_t cols = imin(NR, nc - jr);
    float* __restrict d = dst + jr * kc;
    if (!p.tb) {
      const float* s = p.B + k0 * p.ldb + j0 + jr;
      if (cols == NR) {
        for (int64_t k = 0; k < kc; ++k) {
          const float* sk = s + k * p.ldb;
          for (int j = 0; j < NR; ++j) d[k * NR + j] = sk[j];
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* sk = s + k * p.ldb;
          for (int j = 0; j < NR; ++j) d[k * NR + j] = j < cols ? sk[j] : 0.0f;
        }
      }
    } else {
      // op(B)(k,j) = B[j*ldb + k]: transpose while packing.
      for (int j = 0; j < NR; ++j) {
        if (j < cols) {
          const float* s = p.B + (j0 + jr + j) * p.ldb + k0;
          for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = s[k];
        } else {
          for (int64_t k = 0; k < kc; ++k) d[k * NR + j] = 0.0f;
        }
      }
    }
  }
}

// When this thread's part of C is larger than kCInL2 floats (1 MiB, half the L2) it cannot stay
// in cache between K blocks, and re-reading it per K block from L3/DRAM is what limits K >> KC shapes
// such as 8192x256x1024 weight gradients. Then packed B for every K block of a column block is kept
// (when it fits kMaxPackedB floats, 16 MiB) and the K loop runs innermost, so each C block is read and
// written once. When C does fit, the classic order is better: one K block of B stays in L2 for all rows.
constexpr int64_t kCInL2 = int64_t(256) << 10;
constexpr int64_t kMaxPackedB = int64_t(4) << 20;

template <class KT>
void run_tile(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int MR = KT::MR, NR = KT::NR;
  const int64_t kcb = k_block(p.K, KT::KC);
  const int64_t nkb = (p.K + kcb - 1) / kcb;
  const int64_t mcb = imin(KT::MC, ((m1 - m0 + MR - 1) / MR) * MR);
  const int64_t ncb = imin(KT::NC, ((n1 - n0 + NR - 1) / NR) * NR);
  const int64_t slab = kcb * ncb;  // one packed K block of one column block (ncb is a multiple of NR)
#ifdef MINIELM_GEMM_NO_K_INNER
  const bool k_inner = false;
#else
  const bool k_inner = nkb > 1 && (m1 - m0) * (n1 - n0) > kCInL2 && nkb * slab <= kMaxPackedB;
#endif
  float* Ap = workspace(0, static_cast<size_t>(mcb * kcb));
  float* Bp = workspace(1, static_cast<size_t>(k_inner ? nkb * slab : slab));

  auto macro = [&](int64_t ic, int64_t mc, int64_t jc, int64_t nc, int64_t pc, int64_t kc, const float* B) {
    const float beta = pc == 0 ? p.beta : 1.0f;
    KT::pack_a(p, ic, mc, pc, kc, Ap);
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const int n = static_cast<int>(imin(NR, nc - jr));
      for (int64_t ir = 0; ir < mc; ir += MR) {
        const int m = static_cast<int>(imin(MR, mc - ir));
        KT::kernel(kc, Ap + ir * kc, B + jr * kc, p.C + (ic + ir) * p.ldc + jc + jr, p.ldc, m, n, p.alpha,
                   beta);
      }
    }
  };

  for (int64_t jc = n0; jc < n1; jc += ncb) {
    const int64_t nc = imin(ncb, n1 - jc);
    if (k_inner) {
      for (int64_t kb = 0; kb < nkb; ++kb) {
        const int64_t pc = kb * kcb;
        KT::pack_b(p, pc, imin(kcb, p.K - pc), jc, nc, Bp + kb * slab);
      }
      for (int64_t ic = m0; ic < m1; ic += mcb) {
        const int64_t mc = imin(mcb, m1 - ic);
        for (int64_t kb = 0; kb < nkb; ++kb) {
          const int64_t pc = kb * kcb;
          macro(ic, mc, jc, nc, pc, imin(kcb, p.K - pc), Bp + kb * slab);
        }
      }
    } else {
      for (int64_t pc = 0; pc < p.K; pc += kcb) {
        const int64_t kc = imin(kcb, p.K - pc);
        KT::pack_b(p, pc, kc, jc, nc, Bp);
        for (int64_t ic = m0; ic < m1; ic += mcb) macro(ic, imin(mcb, m1 - ic), jc, nc, pc, kc, Bp);
      }
    }
  }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace minielm
