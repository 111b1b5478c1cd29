// Private interface between gemm.cc (dispatch, threading, workspace) and the per-ISA kernel files.
// Each ISA file is compiled with its own target pragma; only plain-C-style entry points cross the
// boundary so no inline/template code compiled for AVX-512 can be merged into code that runs elsewhere.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minielm {
namespace gemm_detail {

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

// Register-tile shape and cache blocking of one ISA's packed path; gemm.cc uses mr/nr to split work.
struct Shape {
  int mr, nr;
};

// 64-byte aligned scratch owned by the calling thread; slot 0 holds packed A, slot 1 packed B.
// Grows on demand and is kept for the thread's lifetime, so steady-state calls never allocate.
float* workspace(int slot, size_t floats);

// Computes C[m0:m1, n0:n1] completely (every K block) on the calling thread.
// The arithmetic for one element never depends on the tile bounds, which keeps results identical
// for any thread count.
void tile_avx512(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void tile_avx2(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
void tile_generic(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
Shape shape_avx512();
Shape shape_avx2();
Shape shape_generic();

// Small-M path (decoding, M <= small_m_max_avx512()): no packing, operands read in place. NN and TN
// stream rows of B; NT (op(A) = A) uses dot products of contiguous rows; TT is not handled here.
// Computes columns [n0, n1) of all M rows.
void small_avx512(const Problem& p, int64_t n0, int64_t n1);
int64_t small_m_max_avx512();

}  // namespace gemm_detail
}  // namespace minielm
