// Machine roofline probes: the single-precision FMA peak and the DRAM copy bandwidth, so GEMM and
// whole-model throughput can be reported as a fraction of what this CPU can actually do.
#pragma once
#include <cstddef>

namespace minielm {

// Single-precision GFLOP/s of independent FMA chains on `threads` threads (2 flops per lane per FMA),
// AVX-512 when present, else AVX2, else scalar. Best of a few repetitions lasting ~`seconds` in total.
double measure_fma_peak_gflops(int threads, double seconds);

// STREAM-like copy bandwidth in GB/s (1e9 bytes; read + written bytes both counted) over two arrays of
// `bytes_per_array` each, far larger than the L3 by default. Best of repetitions within ~`seconds`.
double measure_copy_bandwidth_gbs(int threads, double seconds, size_t bytes_per_array = size_t(512) << 20);

// Best instruction set this CPU supports: "avx512", "avx2" or "generic".
const char* cpu_isa();

// Physical memory of the machine in bytes (0 when unknown). Allocations sized from user input are checked
// against it, so an absurd size gets MINIELM_OUT_OF_MEMORY instead of the kernel's OOM killer.
double physical_memory_bytes();

}  // namespace minielm
