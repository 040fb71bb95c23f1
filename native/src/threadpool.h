// Persistent worker pool with a blocking parallel-for. The calling thread takes part.
// Work is handed out in chunks from an atomic counter; every output element is
// computed by exactly one thread with the same code, so results do not depend on
// the number of threads.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__linux__)
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace fc {

// Lowers the calling thread's scheduling priority by `nice` (Linux: per-thread nice values). Compute threads
// run below the JS event loop so that timers and MQTT I/O preempt them when every core is busy. Raising a
// nice value needs no privilege; failure is ignored (priority is an optimisation, not a requirement).
inline void lower_thread_priority(int nice) {
#if defined(__linux__)
  if (nice > 0) {
    pid_t tid = pid_t(syscall(SYS_gettid));
    int cur = getpriority(PRIO_PROCESS, id_t(tid));
    (void)setpriority(PRIO_PROCESS, id_t(tid), cur + nice > 19 ? 19 : cur + nice);
  }
#else
  (void)nice;
#endif
}

class ThreadPool {
 public:
  explicit ThreadPool(int nthreads, int nice = 0) : n_(nthreads < 1 ? 1 : nthreads) {
    for (int i = 1; i < n_; i++) th_.emplace_back([this, nice] {
      lower_thread_priority(nice);
      worker();
    });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : th_) t.join();
  }
  int size() const { return n_; }

  // fn(begin, end) over [0, n) in chunks of `grain`.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (n_ == 1 || n <= grain) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> g(m_);
      fn_ = &fn;
      total_ = n;
      grain_ = grain;
      next_.store(0, std::memory_order_relaxed);
      active_.store(n_ - 1, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    // wait for the workers to leave this job
    int spins = 0;
    while (active_.load(std::memory_order_acquire) != 0) {
      if (++spins > 2000) std::this_thread::yield();
    }
    fn_ = nullptr;
  }

 private:
  void work() {
    const auto& fn = *fn_;
    for (;;) {
      int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
      if (b >= total_) break;
      int64_t e = b + grain_ < total_ ? b + grain_ : total_;
      fn(b, e);
    }
  }
  void worker() {
    uint64_t seen = 0;  // the generation at construction: a job posted before this thread runs is not missed
    for (;;) {
      // brief spin (decode issues many small jobs back to back), then sleep
      int spins = 0;
      while (gen_.load(std::memory_order_acquire) == seen && spins < 20000) spins++;
      if (gen_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
      }
      seen = gen_.load(std::memory_order_acquire);
      if (stop_) return;
      work();
      active_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  int n_;
  std::vector<std::thread> th_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> active_{0};
  std::atomic<int64_t> next_{0};
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t total_ = 0, grain_ = 1;
  bool stop_ = false;
};

}  // namespace fc
