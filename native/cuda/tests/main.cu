// Runs the registered GPU tests (and, with --bench, the benches). Exit status: 0 all passed, 1 a test failed,
// 77 no CUDA device (the tests are skipped, loudly).
//   minielm_cuda_tests [--bench] [--only substring]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "harness.cuh"

int main(int argc, char** argv) {
  bool bench = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--bench")) bench = true;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device (%s): the GPU tests did not run\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("# device 0: %s, sm_%d%d, %.1f GiB\n", prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0);
  int passed = 0, failed = 0;
  for (auto& t : minielm::cuda::test::registry()) {
    if (t.bench != bench) continue;
    if (!only.empty() && t.name.find(only) == std::string::npos) continue;
    auto t0 = std::chrono::steady_clock::now();
    try {
      t.fn();
      MINIELM_CUDA_CHECK(cudaDeviceSynchronize());
      ++passed;
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::printf("ok   %s (%.1f ms)\n", t.name.c_str(), ms);
    } catch (const std::exception& ex) {
      ++failed;
      std::printf("FAIL %s: %s\n", t.name.c_str(), ex.what());
      cudaGetLastError();  // clear a sticky launch error where possible
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
