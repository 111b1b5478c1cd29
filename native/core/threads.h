// A small persistent thread pool shared by every kernel. Work is split statically (the same thread count
// always gives the same partition), so threaded reductions are deterministic and resume is bit-exact.
#pragma once
#include <cstdint>
#include <functional>

namespace minielm {

constexpr int kMaxThreads = 256;

// Number of threads kernels use (>= 1). Default: all cores (std::thread::hardware_concurrency).
int num_threads();
// Changes the thread count; n <= 0 restores the default. Throws Error(MINIELM_BUSY) while any JobScope is
// alive (a job sized its per-thread buffers from the count it started with) and MINIELM_INVALID_ARGUMENT
// above kMaxThreads.
void set_num_threads(int n);

// Marks a native job in progress for its lifetime: the thread count stays fixed until it ends. Jobs may
// run concurrently (their parallel sections are serialised by the pool); do not nest on one thread.
class JobScope {
 public:
  JobScope();
  ~JobScope();
  JobScope(const JobScope&) = delete;
  JobScope& operator=(const JobScope&) = delete;
};

// Runs fn(tid, nthreads) once on each of `nthreads` threads (the caller is thread 0) and waits for all.
// nthreads is clamped to [1, num_threads()]. Calls from several host threads are serialised.
void run_parallel(int nthreads, const std::function<void(int tid, int nthreads)>& fn);

// Splits [0, n) into contiguous chunks, one per thread, and calls fn(begin, end) for each non-empty chunk.
// Uses at most ceil(n / min_chunk) threads so tiny loops stay on one thread.
void parallel_for(int64_t n, int64_t min_chunk, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace minielm
