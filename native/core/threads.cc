#include "threads.h"

#include "error.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace minielm {
namespace {

int default_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : std::min(static_cast<int>(n), kMaxThreads);
}

thread_local bool t_in_parallel = false;

struct InParallel {
  InParallel() { t_in_parallel = true; }
  ~InParallel() { t_in_parallel = false; }
};

// Workers spin briefly on a generation counter before sleeping, so back-to-back small kernels
// (decoding) do not pay a futex wake-up each time.
class Pool {
 public:
  ~Pool() { resize(0); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Waits for a parallel section in progress (run_mu_), so no worker leaves in the middle of a job.
  void resize(int total) {
    std::lock_guard<std::mutex> serial(run_mu_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    stop_ = false;
    // The baseline generation is taken here, not in the new thread: a job published before the thread
    // first runs must still be seen as new.
    const uint64_t start = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < total; ++i) workers_.emplace_back([this, i, start] { loop(i, start); });
  }

  void run(int nthreads, const std::function<void(int, int)>& fn) {
    // A kernel that calls another parallel kernel from inside a worker runs the inner one inline: the pool
    // is busy with the outer job, and waiting for it would deadlock.
    if (t_in_parallel || nthreads <= 1 || workers_.empty()) {
      fn(0, 1);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);
    InParallel mark;
    nthreads = std::min(nthreads, size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &fn;
      job_threads_ = nthreads;
      pending_.store(nthreads - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    fn(0, nthreads);
    while (pending_.load(std::memory_order_acquire) != 0) {
      std::this_thread::yield();
    }
    job_ = nullptr;
  }

 private:
  void loop(int tid, uint64_t seen) {
    for (;;) {
      uint64_t gen = seen;
      for (int spin = 0; spin < 20000; ++spin) {
        gen = generation_.load(std::memory_order_acquire);
        if (gen != seen) break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        gen = generation_.load(std::memory_order_acquire);
      }
      seen = gen;
      if (stop_.load()) return;
      const std::function<void(int, int)>* job = job_;
      int n = job_threads_;
      if (job != nullptr && tid < n) {
        InParallel mark;
        (*job)(tid, n);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::mutex run_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::atomic<bool> stop_{false};
};

std::mutex g_config_mu;
int g_threads = 0;
// Held shared by every native job for its whole duration (jobs size per-thread buffers at their start),
// exclusively by set_num_threads.
std::shared_mutex g_jobs_mu;

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int num_threads() {
  std::lock_guard<std::mutex> lock(g_config_mu);
  if (g_threads <= 0) {
    g_threads = default_threads();
    try {
      pool().resize(g_threads);
    } catch (const std::system_error&) {
      g_threads = pool().size();  // fewer threads than cores could be started: run with those
    }
  }
  return g_threads;
}

void set_num_threads(int n) {
  if (n > kMaxThreads)
    throw Error("MINIELM_INVALID_ARGUMENT", "the thread count must be at most " + std::to_string(kMaxThreads) + ", got " +
                                                std::to_string(n) + " (0 or less restores the default, one per core)");
  std::unique_lock<std::shared_mutex> jobs(g_jobs_mu, std::try_to_lock);
  if (!jobs.owns_lock())
    throw Error("MINIELM_BUSY", "the thread count cannot change while a native job (training, decoding, a kernel) runs; "
                                "await the running jobs, then call setThreads again");
  std::lock_guard<std::mutex> lock(g_config_mu);
  int want = n <= 0 ? default_threads() : n;
  if (want == g_threads) return;
  try {
    pool().resize(want);
  } catch (const std::system_error& e) {
    // The threads started before the failure keep running; the count says how many there are.
    g_threads = pool().size();
    throw Error("MINIELM_NATIVE", "could not start " + std::to_string(want) + " threads (" + e.what() + "); running with " +
                                      std::to_string(g_threads));
  }
  g_threads = want;
}

JobScope::JobScope() { g_jobs_mu.lock_shared(); }
JobScope::~JobScope() { g_jobs_mu.unlock_shared(); }

void run_parallel(int nthreads, const std::function<void(int, int)>& fn) {
  int avail = num_threads();
  pool().run(std::max(1, std::min(nthreads, avail)), fn);
}

void parallel_for(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (min_chunk < 1) min_chunk = 1;
  int64_t max_useful = (n + min_chunk - 1) / min_chunk;
  int nt = static_cast<int>(std::min<int64_t>(num_threads(), max_useful));
  if (nt <= 1) {
    fn(0, n);
    return;
  }
  run_parallel(nt, [&](int tid, int nthreads) {
    int64_t begin = n * tid / nthreads;
    int64_t end = n * (tid + 1) / nthreads;
    if (begin < end) fn(begin, end);
  });
}

}  // namespace minielm
