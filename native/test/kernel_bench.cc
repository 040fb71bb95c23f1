// Quick kernel measurements without Node: memory bandwidth (multi-threaded streaming read), FMA peak,
// GEMM GFLOP/s, and a checkpoint's prefill tokens/s and decode ms/token.
// Usage: kernel_bench [--threads N] [--model DIR] [--prefill T] [--steps S]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../src/model.h"

using namespace fc;
using clk = std::chrono::steady_clock;
static double secs(clk::time_point a) { return std::chrono::duration<double>(clk::now() - a).count(); }

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
typedef float v16 __attribute__((vector_size(64)));
static double fma_loop512(long iters) {
  v16 a[12];
  for (int i = 0; i < 12; i++) a[i] = v16{} + float(i) * 1e-3f;
  v16 m = v16{} + 0.999999f, c = v16{} + 1e-7f;
  for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = a[i] * m + c;
  float s = 0;
  for (int i = 0; i < 12; i++) s += a[i][0];
  return s;
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
typedef float v8 __attribute__((vector_size(32)));
static double fma_loop256(long iters) {
  v8 a[12];
  for (int i = 0; i < 12; i++) a[i] = v8{} + float(i) * 1e-3f;
  v8 m = v8{} + 0.999999f, c = v8{} + 1e-7f;
  for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) a[i] = a[i] * m + c;
  float s = 0;
  for (int i = 0; i < 12; i++) s += a[i][0];
  return s;
}
#pragma GCC pop_options
#endif

int main(int argc, char** argv) {
  int threads = 0, prefill = 256, steps = 32;
  std::string model_dir;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[++i]);
    else if (a == "--model") model_dir = argv[++i];
    else if (a == "--prefill") prefill = std::atoi(argv[++i]);
    else if (a == "--steps") steps = std::atoi(argv[++i]);
  }
  if (threads <= 0) threads = int(std::thread::hardware_concurrency());
  ThreadPool pool(threads);
  const Kernels& k = kernels();
  std::printf("isa=%s threads=%d\n", k.name, threads);

  const bool synth = model_dir.empty() || !std::getenv("BENCH_MODEL_ONLY");
  // memory bandwidth: streaming read of 1 GiB (OR of every 64-bit word, 4 accumulators), 1 and N threads
  if (synth) {
    size_t n = (1ull << 30) / 8;
    std::vector<uint64_t> buf(n, 1);
    std::vector<uint64_t> sink(64);
    for (int nt : {1, threads}) {
      double best = 0;
      for (int rep = 0; rep < 5; rep++) {
        auto t0 = clk::now();
        pool.run(nt, 1, [&](int64_t b, int64_t e) {
          for (int64_t part = b; part < e; part++) {
            const uint64_t* p = buf.data() + n / size_t(nt) * size_t(part);
            uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (size_t i = 0; i < n / size_t(nt); i += 4) {
              a0 |= p[i];
              a1 |= p[i + 1];
              a2 |= p[i + 2];
              a3 |= p[i + 3];
            }
            sink[size_t(part)] = a0 | a1 | a2 | a3;
          }
        });
        best = std::max(best, double(n) * 8 / secs(t0) / 1e9);
      }
      std::printf("membw: %.2f GB/s (1 GiB streaming read, %d thread%s, best of 5)\n", best, nt, nt > 1 ? "s" : "");
    }
  }
#if defined(__x86_64__)
  if (synth) {
    long iters = 20000000;
    bool avx512 = std::strcmp(k.name, "avx512") == 0;
    auto t0 = clk::now();
    std::vector<double> sink(static_cast<size_t>(threads));
    pool.run(threads, 1, [&](int64_t b, int64_t) { sink[size_t(b)] = avx512 ? fma_loop512(iters) : fma_loop256(iters); });
    double dt = secs(t0);
    double flops = double(threads) * double(iters) * 12 * (avx512 ? 16 : 8) * 2;
    std::printf("fma peak: %.1f GFLOP/s (%s, %d threads)\n", flops / dt / 1e9, avx512 ? "zmm" : "ymm", threads);
  }
#endif
  // GEMM
  for (int64_t sz : {1024, 2048}) {
    if (!synth) break;
    int64_t T = std::getenv("BENCH_T") ? std::atoi(std::getenv("BENCH_T")) : 128, N = sz, K = sz;
    std::vector<float> A(size_t(T * K), 0.5f), W(size_t(N * K), 0.25f), C(size_t(T * N));
    Mat m{W.data(), DType::F32, N, K};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
      auto t0 = clk::now();
      int64_t panels = (N + k.nr - 1) / k.nr;
      pool.run(panels, std::max<int64_t>(1, panels / (threads * 8)), [&](int64_t b, int64_t e) {
        thread_local std::vector<float> pack(static_cast<size_t>(gemm_pack_floats()));
        k.gemm(A.data(), K, T, m, b * k.nr, std::min(e * k.nr, N), C.data(), N, pack.data());
      });
      best = std::max(best, 2.0 * T * N * K / secs(t0) / 1e9);
    }
    std::printf("gemm T=%ld N=K=%ld: %.1f GFLOP/s\n", long(T), long(sz), best);
  }
  // GEMV over a 1 GiB f32 matrix (anonymous memory)
  if (synth) {
    int64_t K = 2048, N = (1ll << 30) / 4 / K;
    std::vector<float> W(static_cast<size_t>(N * K), 0.5f), x(static_cast<size_t>(K), 1.f), y(static_cast<size_t>(N));
    Mat m{W.data(), DType::F32, N, K};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
      auto t0 = clk::now();
      pool.run(N, std::max<int64_t>(16, N / (threads * 8)), [&](int64_t b, int64_t e) { k.gemv(x.data(), K, 1, m, b, e, y.data(), N); });
      best = std::max(best, double(N * K * 4) / secs(t0) / 1e9);
    }
    std::printf("gemv 1 GiB f32 (anonymous memory): %.2f GB/s\n", best);
  }
  if (!model_dir.empty()) {
    auto t0 = clk::now();
    auto model = Model::load(model_dir, threads);
    std::printf("load: %.2fs, %lld params, %.1f MiB weights (%s)\n", secs(t0), (long long)model->weights().param_count,
                double(model->weights().weight_bytes) / 1048576.0, model->weights().dtype.c_str());
    const Config& c = model->config();
    std::vector<int32_t> toks(static_cast<size_t>(prefill));
    for (int i = 0; i < prefill; i++) toks[size_t(i)] = int32_t((i * 7919) % c.V);
    std::vector<float> logits(static_cast<size_t>(c.V));
    // warm-up (page in the mapping)
    {
      auto s = model->new_state();
      model->forward(*s, toks.data(), 1, false, logits.data());
    }
    auto s = model->new_state();
    t0 = clk::now();
    model->forward(*s, toks.data(), prefill, false, logits.data());
    double pt = secs(t0);
    // matmul flops per token ~ 2 * params (embedding lookup excluded, head included when tied)
    double flops_tok = 2.0 * double(model->weights().param_count);
    std::printf("prefill %d tokens: %.2fs, %.1f tokens/s, ~%.1f GFLOP/s\n", prefill, pt, prefill / pt,
                flops_tok * prefill / pt / 1e9);
    t0 = clk::now();
    for (int i = 0; i < steps; i++) {
      int32_t tk = int32_t((i * 31) % c.V);
      model->forward(*s, &tk, 1, false, logits.data());
    }
    double dt = secs(t0) / steps;
    std::printf("decode: %.2f ms/token, %.2f GB/s of weights\n", dt * 1e3, double(model->weights().weight_bytes) / dt / 1e9);
  }
  return 0;
}
