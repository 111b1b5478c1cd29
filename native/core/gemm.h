// Single-precision GEMM for the whole engine. Row-major:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// op(A) = A ([M,K], lda >= K) or A^T (A stored [K,M], lda >= M); likewise for B.
// Two backends: a system CBLAS (found at run time with dlopen; OpenBLAS, BLIS, MKL's cblas_sgemm) and the
// built-in blocked AVX-512/AVX2 kernel. Both are always compiled; set_gemm_backend picks one.
#pragma once
#include <cstdint>

namespace minielm {

enum class GemmBackend { Builtin = 0, Blas = 1 };

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Double-precision reference (naive, single-threaded): used by gradient checks and tests only.
void dgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                     const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C,
                     int64_t ldc);

bool blas_available();
// Library the BLAS backend loaded (e.g. "libopenblas.so.0"), or "" when none was found.
const char* blas_library();
// Current backend. Default: Builtin (it is what the bench targets); MINIELM_GEMM=blas selects BLAS.
GemmBackend gemm_backend();
// Returns false (and changes nothing) when Blas is asked for but unavailable.
bool set_gemm_backend(GemmBackend backend);
// Name of the instruction set the built-in kernel dispatched to ("avx512", "avx2", "generic").
const char* builtin_gemm_isa();

}  // namespace minielm
