// Hooks into gemm.cu for the GPU tests and benches (native/cuda/tests/test_gemm.cu); not part of the engine's
// API (kernels.cuh is).
#pragma once
#include <cstdint>
#include <string>

namespace minielm {
namespace cuda {

// Forces the backend of the following gemm calls (process-wide, not thread-safe against concurrent gemm calls):
//   "cublaslt" cuBLASLt (returns false and changes nothing when it cannot be loaded or initialised);
//   "builtin"  the built-in kernels, routed as usual (tiny problems to the one-thread-per-output kernel);
//   "mma"      always the tensor-core kernel (sm_80+), whatever the size;
//   "simple"   always the one-thread-per-output fp32 kernel;
//   nullptr or "auto": back to the default (MINIELM_CUDA_GEMM, read again, else cuBLASLt when available).
// Returns false for an unknown name.
bool gemm_force_backend(const char* name);

// Whether libcublasLt was loaded and a handle created on the current device; the library's file name ("" when
// none); a note on why it is not used or on the last call that fell back to the built-in kernel ("" if none).
bool gemm_cublaslt_available();
const char* gemm_cublaslt_library();
std::string gemm_cublaslt_note();
// Calls that cuBLASLt was meant to run (default backend, library loaded) but that went to the built-in kernel
// (no algorithm for the shape or alignment, or a failed matmul), since the process started.
int64_t gemm_cublaslt_fallbacks();

}  // namespace cuda
}  // namespace minielm
