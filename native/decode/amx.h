// bf16 matrix products of the incremental forward pass on Intel AMX tiles (Sapphire Rapids and later).
//
// With `weights: 'bf16'`, on a CPU with AMX-TILE and AMX-BF16 whose kernel lets the process use the tile
// registers, the decoder runs its matrix products on tiles: the weights are repacked once per generation
// into tile order, each step's activations are rounded to bf16 (nearest even), and the products are
// accumulated in fp32. One tile product is 16 x 16 x 32 multiply-adds, about 14x the fp32 FMA peak of
// a core, so these are what makes a batch of many beams cheap.
//
// The same guarantee as kernels.h: an output element gets the same operations whatever the number of
// rows in the call (rows are padded to the tile height with zeros, never mixed), the column range or the
// thread split, so a sequence decoded in a batch gets the very floats it gets alone.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels.h"

namespace minielm {
namespace decode {

// True when the tile path is usable here: x86-64 Linux, CPUID reports AMX-TILE and AMX-BF16, the OS
// enables the tile state (XCR0) and grants it to this process (arch_prctl ARCH_REQ_XCOMP_PERM), and the
// decoder's ISA is not capped (MINIELM_DECODE_ISA=avx512 or lower turns AMX off, e.g. to compare).
bool using_amx();

// A K x N matrix in tile order: k padded to a multiple of 32, n to a multiple of 64, bf16 pairs along k.
// Element (k, n) lives at data[((n / 16) * (Kp / 2) + k / 2) * 32 + (n % 16) * 2 + k % 2], so the
// 16 (k pairs) x 16 (columns) B operand of one tile product is 1 KiB of consecutive memory.
struct AmxMatrix {
  int64_t K = 0, N = 0, Kp = 0, Np = 0;
  std::unique_ptr<uint16_t[]> data;
};

// Allocates m for a K x N matrix (zero-filled, so the padding multiplies as zero).
void amx_alloc(int64_t K, int64_t N, AmxMatrix* m);

// Fills the column blocks [b0, b1) of 16 columns of m with element (k, n) = src[k * sk + n * sn], rounded
// to bf16 (nearest even): sk = ldw, sn = 1 for a Conv1D weight [K, ldw]; sk = 1, sn = lde for the
// transposed token embedding of the LM head. Disjoint block ranges may be filled by different threads.
void amx_pack(const float* src, int64_t sk, int64_t sn, AmxMatrix* m, int64_t b0, int64_t b1);

// out[i][j] <- epilogue(sum_k bf16(A[i * lda + k]) * W(k, j) + bias[j]) for i < M, j in [j0, j1); j0 must
// be a multiple of 64 (decoder column splits are). bias may be null.
void linear_cols_amx(int64_t M, const float* A, int64_t lda, const AmxMatrix& W, const float* bias,
                     float* const* out, int64_t j0, int64_t j1, Epilogue epi);

// out[i * ldo + j] = sum_k bf16(A[i * lda + k]) * E(k, j) for j in [j0, j1), j0 a multiple of 64.
void head_cols_amx(int64_t M, const float* A, int64_t lda, const AmxMatrix& E, float* out, int64_t ldo, int64_t j0,
                   int64_t j1);

}  // namespace decode
}  // namespace minielm
