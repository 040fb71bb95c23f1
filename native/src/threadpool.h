// Persistent worker pool with a blocking parallel-for. The calling thread takes part.
// Work is handed out in chunks from an atomic counter; every output element is
// computed by exactly one thread with the same code, so results do not depend on
// the number of threads. An exception thrown by a chunk (on any thread) ends the job
// and is rethrown by run() on the calling thread: it never reaches a worker's top
// level, where it would terminate the process.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
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

  // The n-th chunk run on a worker thread from now on throws (once): how the tests reach the error path of a
  // failing worker (armed by Model from FLASHCHECK_KERNEL_FAULT). 0 disarms.
  void fail_worker_chunk(int64_t n) { fault_.store(n, std::memory_order_relaxed); }

  // A run of jobs issued back to back (one forward call): while it is open the workers wait for the next job
  // spinning instead of asleep. A worker that sleeps between two jobs is woken by the next one, and on a VM whose
  // idle vCPU halts that wake-up can take longer than the job: the caller then does nearly all the chunks alone
  // (measured: a verdict-shaped prefill arriving every 100 ms took the 1-thread time on 2 threads). Opening one
  // also wakes sleeping workers, so they come up while the caller does its serial start.
  class Session {
   public:
    explicit Session(ThreadPool& p) : p_(p) {
      if (p_.n_ == 1) return;
      p_.sessions_.fetch_add(1, std::memory_order_relaxed);
      { std::lock_guard<std::mutex> g(p_.m_); }  // a worker between its predicate check and its wait sees the count
      p_.cv_.notify_all();
    }
    ~Session() {
      if (p_.n_ != 1) p_.sessions_.fetch_sub(1, std::memory_order_relaxed);
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

   private:
    ThreadPool& p_;
  };

  // fn(begin, end) over [0, n) in chunks of `grain`; rethrows the first exception a chunk threw.
  //
  // Chunks are claimed from one 64-bit counter that carries the job's generation in its top bits, so a
  // worker can only ever claim chunks of the job that is current. The caller waits only for workers that are
  // running a chunk, never for one that has not woken up yet: on a busy machine (or with the pool below the
  // event loop's priority) a descheduled worker costs nothing; the caller simply does its chunks.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (n_ == 1 || n <= grain) {
      fn(0, n);
      return;
    }
    {
      std::lock_guard<std::mutex> g(m_);
      const uint64_t gen = gen_.load(std::memory_order_relaxed) + 1;
      // Close the counter under the new generation first: a worker still looking at the previous job can
      // then never claim a chunk against the new job's size and function (it would run a chunk twice, and
      // the selective scan updates its state in place).
      next_.store(((gen & kGenMask) << kIdxBits) | kIdxMask, std::memory_order_seq_cst);
      fn_.store(&fn, std::memory_order_relaxed);
      failed_.store(false, std::memory_order_relaxed);
      error_ = nullptr;
      total_ = n;
      grain_ = grain;
      next_.store((gen & kGenMask) << kIdxBits, std::memory_order_seq_cst);
      gen_.store(gen, std::memory_order_release);
    }
    cv_.notify_all();
    while (claim_and_run()) {
    }
    // Every chunk is claimed; wait for the workers still running one.
    int spins = 0;
    while (busy_.load(std::memory_order_acquire) != 0) {
      if (++spins > 2000) std::this_thread::yield();
    }
    if (failed_.load(std::memory_order_acquire)) {
      std::exception_ptr e;
      {
        std::lock_guard<std::mutex> g(err_mu_);
        e = error_;
        error_ = nullptr;
      }
      std::rethrow_exception(e);
    }
  }

 private:
  static constexpr int kIdxBits = 40;
  static constexpr int kLingerUs = 300;  // spin this long after the last job outside a Session, then sleep
  static constexpr uint64_t kIdxMask = (uint64_t(1) << kIdxBits) - 1;
  static constexpr uint64_t kGenMask = (uint64_t(1) << (64 - kIdxBits)) - 1;

  // Claims one chunk of the current job and runs it; false when none is left (or the job is over).
  bool claim_and_run() {
    busy_.fetch_add(1, std::memory_order_seq_cst);
    uint64_t v = next_.load(std::memory_order_seq_cst);
    for (;;) {
      const uint64_t gen = v >> kIdxBits;
      const int64_t b = int64_t(v & kIdxMask);
      // total_/grain_ may belong to a newer job when this worker is late; then the CAS below fails.
      const int64_t total = total_, grain = grain_;
      if (gen != (gen_.load(std::memory_order_acquire) & kGenMask) || b >= total) {
        busy_.fetch_sub(1, std::memory_order_release);
        return false;
      }
      const int64_t e = b + grain < total ? b + grain : total;
      if (next_.compare_exchange_weak(v, (gen << kIdxBits) | uint64_t(e), std::memory_order_seq_cst)) {
        // after a failure the remaining chunks are claimed (so the job ends) but not run
        if (!failed_.load(std::memory_order_relaxed)) {
          try {
            if (tl_worker() && fault_.load(std::memory_order_relaxed) > 0 && fault_.fetch_sub(1) == 1)
              throw std::runtime_error("injected fault in a compute worker (FLASHCHECK_KERNEL_FAULT)");
            (*fn_.load(std::memory_order_relaxed))(b, e);
          } catch (...) {
            std::lock_guard<std::mutex> g(err_mu_);
            if (!error_) error_ = std::current_exception();
            failed_.store(true, std::memory_order_release);
          }
        }
        busy_.fetch_sub(1, std::memory_order_release);
        return true;
      }
    }
  }
  static bool& tl_worker() {
    thread_local bool w = false;
    return w;
  }
  void worker() {
    tl_worker() = true;
    uint64_t seen = 0;  // the generation at construction: a job posted before this thread runs is not missed
    for (;;) {
      wait_for_job(seen);
      seen = gen_.load(std::memory_order_acquire);
      if (stop_) return;
      while (claim_and_run()) {
      }
    }
  }

  // Returns once a job newer than `seen` is posted. The wait is a spin (pause, and a yield to other threads on
  // this core every 256 rounds): for as long as a Session is open, and for kLingerUs after that (decode steps and
  // chunked prefills come back to back from JavaScript); then sleep on the condition variable, which a Session's
  // start also ends.
  void wait_for_job(uint64_t seen) {
    for (;;) {
      int spins = 0;
      auto until = std::chrono::steady_clock::time_point::min();
      while (gen_.load(std::memory_order_acquire) == seen) {
        cpu_relax();
        if ((++spins & 255) != 0) continue;
        std::this_thread::yield();
        if (sessions_.load(std::memory_order_relaxed) > 0) {
          until = std::chrono::steady_clock::time_point::min();
          continue;
        }
        const auto now = std::chrono::steady_clock::now();
        if (until == std::chrono::steady_clock::time_point::min()) until = now + std::chrono::microseconds(kLingerUs);
        else if (now >= until) break;
      }
      if (gen_.load(std::memory_order_acquire) != seen) return;
      std::unique_lock<std::mutex> lk(m_);
      cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen || sessions_.load(std::memory_order_relaxed) > 0; });
      if (gen_.load(std::memory_order_acquire) != seen) return;
    }
  }

  static inline void cpu_relax() {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  int n_;
  std::vector<std::thread> th_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> busy_{0};
  std::atomic<uint64_t> next_{0};
  // Published by the release store of next_ that starts a job; read after a successful claim of that job.
  std::atomic<const std::function<void(int64_t, int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> total_{0}, grain_{1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};  // a chunk of the current job threw
  std::mutex err_mu_;
  std::exception_ptr error_;  // the first exception of the current job
  std::atomic<int64_t> fault_{0};
  std::atomic<int> sessions_{0};  // open Sessions: workers spin between jobs instead of sleeping
};

}  // namespace fc
