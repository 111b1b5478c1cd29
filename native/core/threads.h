// A small persistent thread pool shared by every kernel. Work is split statically (the same thread count
// always gives the same partition), so threaded reductions are deterministic and resume is bit-exact.
#pragma once
#include <cstdint>
#include <functional>

namespace minielm {

// Number of threads kernels use (>= 1). Default: all cores (std::thread::hardware_concurrency).
int num_threads();
// Changes the thread count; n <= 0 restores the default. Not to be called while a kernel runs.
void set_num_threads(int n);

// Runs fn(tid, nthreads) once on each of `nthreads` threads (the caller is thread 0) and waits for all.
// nthreads is clamped to [1, num_threads()]. Calls from several host threads are serialised.
void run_parallel(int nthreads, const std::function<void(int tid, int nthreads)>& fn);

// Splits [0, n) into contiguous chunks, one per thread, and calls fn(begin, end) for each non-empty chunk.
// Uses at most ceil(n / min_chunk) threads so tiny loops stay on one thread.
void parallel_for(int64_t n, int64_t min_chunk, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace minielm
