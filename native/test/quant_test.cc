// Unit checks of the quantized-weight code without Node: f16 conversion, the reference quantizers' grid
// property, repacking from checkpoint formats, dequantized rows, and every integer kernel this CPU runs against
// a float64 product of the dequantized weights and the int8 activations (exact but for fp32 rounding) and of
// the float activations (the activation quantization error). With --bench ROWS COLS: GEMV/GEMM timings.
// Usage: quant_test [--bench ROWS COLS | --bench1 ROWS COLS [TOKENS]]   exit 0 iff every check passes.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../src/kernels.h"
#include "../src/quant.h"
#include "../src/safetensors.h"
#include "../src/threadpool.h"

using namespace fc;

static int failures = 0;
#define CHECK(c, ...)                 \
  do {                                \
    if (!(c)) {                       \
      failures++;                     \
      std::printf("FAIL: " __VA_ARGS__); \
      std::printf("\n");              \
    }                                 \
  } while (0)

static TensorInfo f32_tensor(const std::vector<float>& v, int64_t rows, int64_t cols) {
  TensorInfo t;
  t.name = "w";
  t.dtype = DType::F32;
  t.dtype_str = "F32";
  t.shape = {rows, cols};
  t.data = reinterpret_cast<const uint8_t*>(v.data());
  t.nbytes = v.size() * 4;
  return t;
}

static void check_f16() {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;  // NaN payloads
    if (f32_to_f16(f16_to_f32(uint16_t(h))) != h) bad++;
  }
  CHECK(bad == 0, "f16 round trip: %d values differ", bad);
  // ties to even and overflow
  CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3C00, "tie rounds to even (down)");
  CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3C02, "tie rounds to even (up)");
  CHECK(f32_to_f16(65520.f) == 0x7C00, "65520 -> inf");
  CHECK(f32_to_f16(65504.f) == 0x7BFF, "65504 max half");
  CHECK(f32_to_f16(5.9604645e-8f) == 0x0001, "smallest subnormal");
}

static void check_quantizers(std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 0.05f);
  const int64_t n = 32 * 64;
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  x[5] = 0.f;
  for (int j = 32; j < 64; j++) x[size_t(j)] = 0.f;  // an all-zero block
  // q8_0
  std::vector<int8_t> q8(static_cast<size_t>(n)), q8b(static_cast<size_t>(n));
  std::vector<uint16_t> d(static_cast<size_t>(n / 32)), d2(static_cast<size_t>(n / 32));
  quantize_q8_0(x.data(), n, q8.data(), d.data());
  std::vector<float> deq(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) deq[size_t(i)] = float(q8[size_t(i)]) * f16_to_f32(d[size_t(i / 32)]);
  double err = 0;
  for (int64_t i = 0; i < n; i++) err = std::max(err, double(std::fabs(deq[size_t(i)] - x[size_t(i)])));
  CHECK(err < 0.3 * 0.05 * 4 / 127 * 2, "q8_0 error %g", err);
  quantize_q8_0(deq.data(), n, q8b.data(), d2.data());
  CHECK(q8 == q8b && d == d2, "q8_0 grid property");
  // q4_0
  std::vector<uint8_t> q4(static_cast<size_t>(n)), q4b(static_cast<size_t>(n));
  quantize_q4_0(x.data(), n, q4.data(), d.data());
  for (int64_t i = 0; i < n; i++) deq[size_t(i)] = float(int(q4[size_t(i)]) - 8) * f16_to_f32(d[size_t(i / 32)]);
  quantize_q4_0(deq.data(), n, q4b.data(), d2.data());
  CHECK(q4 == q4b && d == d2, "q4_0 grid property");
  int maxq = 0;
  for (auto v : q4) maxq = std::max(maxq, int(v));
  CHECK(maxq <= 15, "q4_0 values in 0..15");
  // hand vector: ggml reference values
  float h[32];
  for (int j = 0; j < 32; j++) h[j] = float(j - 16) / 16.f;  // max magnitude -1 at j=0
  uint8_t hq[32];
  uint16_t hd;
  quantize_q4_0(h, 32, hq, &hd);
  CHECK(f16_to_f32(hd) == 0.125f, "q4_0 d = m/-8 (got %g)", double(f16_to_f32(hd)));
  CHECK(hq[0] == 0 && hq[16] == 8 && hq[31] == 15, "q4_0 q values %d %d %d", hq[0], hq[16], hq[31]);
  int8_t h8[32];
  quantize_q8_0(h, 32, h8, &hd);
  CHECK(h8[0] == -127 && h8[16] == 0 && h8[24] == 64, "q8_0 round half away: %d %d %d", h8[0], h8[16], h8[24]);
}

static std::vector<float> dequant_all(const QMat& m) {
  std::vector<float> w(static_cast<size_t>(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; r++) dequant_row(m, r, w.data() + r * m.cols);
  return w;
}

static void check_repack(std::mt19937& rng, QType type) {
  const int64_t rows = 21, cols = 96;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (auto& v : w) v = nd(rng);
  auto qm = quantize_matrix(f32_tensor(w, rows, cols), type, 2);
  // checkpoint format: I8 [rows, cols] or U8 [rows, cols/2] (ggml nibble order) + F16 [rows, cols/32]
  std::vector<uint8_t> qs(static_cast<size_t>(type == QType::Q8_0 ? rows * cols : rows * cols / 2));
  std::vector<uint16_t> ds(static_cast<size_t>(rows * cols / 32));
  for (int64_t r = 0; r < rows; r++) {
    std::vector<uint8_t> q(static_cast<size_t>(cols));
    if (type == QType::Q8_0) quantize_q8_0(&w[size_t(r * cols)], cols, reinterpret_cast<int8_t*>(&qs[size_t(r * cols)]), &ds[size_t(r * cols / 32)]);
    else {
      quantize_q4_0(&w[size_t(r * cols)], cols, q.data(), &ds[size_t(r * cols / 32)]);
      for (int64_t b = 0; b < cols / 32; b++)
        for (int j = 0; j < 16; j++)
          qs[size_t(r * cols / 2 + b * 16 + j)] = uint8_t(q[size_t(b * 32 + j)] | (q[size_t(b * 32 + j + 16)] << 4));
    }
  }
  TensorInfo qt, st;
  qt.dtype_str = type == QType::Q8_0 ? "I8" : "U8";
  qt.shape = {rows, type == QType::Q8_0 ? cols : cols / 2};
  qt.data = qs.data();
  st.dtype = DType::F16;
  st.dtype_str = "F16";
  st.shape = {rows, cols / 32};
  st.data = reinterpret_cast<const uint8_t*>(ds.data());
  auto rp = repack_quantized(qt, st, type, 1);
  CHECK(std::memcmp(rp->q, qm->q, rp->bytes) == 0, "%s: repacked checkpoint tensors differ from load-time quantization",
        qtype_name(type));
  // dequantized rows are the grid values
  auto deq = dequant_all(*qm);
  auto qm2 = quantize_matrix(f32_tensor(deq, rows, cols), type, 1);
  CHECK(std::memcmp(qm2->q, qm->q, qm->bytes) == 0, "%s: dequantize -> quantize is not the identity", qtype_name(type));
}

// float64 reference of C = A · Wᵀ with W dequantized; `aq` true: A replaced by its two int8 block planes (what
// the kernels multiply), false: the float activations.
static std::vector<double> reference(const std::vector<float>& A, int64_t T, int64_t K, const std::vector<float>& W,
                                     int64_t N, bool aq) {
  // the 16-bit activations qlinear feeds the kernels (two int8 planes): per block d = amax/127, v = x/d,
  // q1 = nearest(v), q2 = nearest(256·(v - q1)) clamped to ±127, x ~ (256·q1 + q2)·d/256
  std::vector<double> a(A.begin(), A.end());
  if (aq)
    for (int64_t t = 0; t < T; t++)
      for (int64_t b = 0; b < K / 32; b++) {
        const float* x = &A[size_t(t * K + b * 32)];
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = amax > 0 ? 127.f / amax : 0.f;
        for (int j = 0; j < 32; j++) {
          const float v = x[j] * id, q1 = std::nearbyint(v);
          const volatile float rest = v - q1;  // the rounded v, as the planes use it
          const double q2 = std::clamp(double(std::nearbyint(rest * 256.f)), -127.0, 127.0);
          a[size_t(t * K + b * 32 + j)] = (256.0 * q1 + q2) * (double(d) / 256.0);
        }
      }
  std::vector<double> C(static_cast<size_t>(T * N));
  for (int64_t t = 0; t < T; t++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += a[size_t(t * K + k)] * W[size_t(n * K + k)];
      C[size_t(t * N + n)] = s;
    }
  return C;
}

// The vectorised activation planes equal the portable loop bit for bit (rounding ties, clamps, zero blocks,
// the unsigned flip and the 16-bit values), and the 16-bit values are 256·q1 + q2.
static void check_act_planes(std::mt19937& rng) {
  const int64_t K = 32 * 24, nb = K / 32;
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(K));
  for (auto& v : x) v = nd(rng);
  for (int j = 0; j < 32; j++) x[size_t(32 + j)] = 0.f;                  // all-zero block
  for (int j = 0; j < 32; j++) x[size_t(64 + j)] = float(j - 16) * 0.5f;  // ties of x/d at .5
  x[96] = 1e30f;                                                         // one huge value in a block
  for (int j = 0; j < 32; j++) x[size_t(128 + j)] = (j % 2 ? 1.f : -1.f) * (127.f + float(j) / 64.f) / 127.f;
  for (bool flip : {false, true}) {
    std::vector<int8_t> qa(static_cast<size_t>(2 * K)), qb(qa.size());
    std::vector<float> da(static_cast<size_t>(2 * nb)), db(da.size());
    std::vector<int32_t> sa(da.size()), sb(da.size());
    std::vector<int16_t> aa(static_cast<size_t>(K)), ab(aa.size());
    quantize_act_planes(x.data(), K, qa.data(), da.data(), sa.data(), aa.data(), flip, false);
    quantize_act_planes(x.data(), K, qb.data(), db.data(), sb.data(), ab.data(), flip, true);
    CHECK(qa == qb && sa == sb && aa == ab && std::memcmp(da.data(), db.data(), da.size() * 4) == 0,
          "activation planes (flip %d): vectorised and portable differ", int(flip));
    int bad = 0;
    for (int64_t k = 0; k < K; k++) {
      const int h = int8_t(uint8_t(qa[size_t(k)]) ^ (flip ? 0x80u : 0u));
      const int l = int8_t(uint8_t(qa[size_t(K + k)]) ^ (flip ? 0x80u : 0u));
      if (aa[size_t(k)] != 256 * h + l || l < -127 || l > 127) bad++;
    }
    CHECK(bad == 0, "a16 != 256*q1 + q2 at %d inputs", bad);
    CHECK(da[size_t(nb + 3)] == da[3] / 256.f, "plane 2 scale is d/256");
  }
}

static void check_kernels(std::mt19937& rng) {
  const Kernels* all[8];
  const int nk = kernels_available(all, 8);
  std::normal_distribution<float> nd(0.f, 1.f);
  ThreadPool pool(2);
  for (QType type : {QType::Q8_0, QType::Q4_0})
    for (int64_t T : {1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 40})
      for (int64_t N : {8, 19, 64}) {
        const int64_t K = 96;
        std::vector<float> w(static_cast<size_t>(N * K)), A(static_cast<size_t>(T * K));
        for (auto& v : w) v = nd(rng);
        for (auto& v : A) v = nd(rng);
        auto qm = quantize_matrix(f32_tensor(w, N, K), type, 1);
        auto wd = dequant_all(*qm);
        auto exact = reference(A, T, K, wd, N, true);
        auto fl = reference(A, T, K, wd, N, false);
        std::vector<float> first;
        for (int i = 0; i < nk; i++) {
          const QKernels& qk = qkernels_for(all[i]->name);
          std::vector<float> C(static_cast<size_t>(T * N), -1.f);
          qlinear(pool, qk, A.data(), K, T, *qm, nullptr, C.data(), N);
          // the vector kernels: the same int32 block sums and fp32 operations (FMA) per output (the portable
          // scalar loop on a baseline x86-64 build has no FMA)
          if (std::strcmp(qk.name, "int8-scalar") != 0) {
            if (first.empty()) first = C;
            CHECK(std::memcmp(C.data(), first.data(), C.size() * 4) == 0, "%s %s T=%lld N=%lld: not bit-identical to the first vector kernel",
                  qk.name, qtype_name(type), (long long)T, (long long)N);
          }
          double e1 = 0, e2 = 0, scale = 0;
          for (size_t j = 0; j < C.size(); j++) {
            e1 = std::max(e1, std::fabs(C[j] - exact[j]));
            e2 = std::max(e2, std::fabs(C[j] - fl[j]));
            scale = std::max(scale, std::fabs(fl[j]));
          }
          CHECK(e1 <= 1e-5 * scale, "%s %s T=%lld N=%lld: |C - exact int8 product| = %g (scale %g)", qk.name,
                qtype_name(type), (long long)T, (long long)N, e1, scale);
          CHECK(e2 <= 2e-4 * scale, "%s %s T=%lld N=%lld: activation quantization error %g (scale %g)", qk.name,
                qtype_name(type), (long long)T, (long long)N, e2, scale);
        }
      }
  std::printf("integer kernels checked:");
  for (int i = 0; i < nk; i++) std::printf(" %s->%s", all[i]->name, qkernels_for(all[i]->name).name);
  std::printf("\n");
}

// The benches' baseline matrix: `w` truncated to BF16 (kept in `store`), as a float kernel reads it.
static Mat bf16_matrix(const std::vector<float>& w, int64_t N, int64_t K, std::vector<uint16_t>& store) {
  store.resize(w.size());
  for (size_t i = 0; i < w.size(); i++) {
    uint32_t u;
    std::memcpy(&u, &w[i], 4);
    store[i] = uint16_t(u >> 16);
  }
  Mat m;
  m.data = store.data();
  m.dt = DType::BF16;
  m.rows = N;
  m.cols = K;
  return m;
}

// The best of `reps` runs of `fn`, in seconds.
template <class F>
static double best_of(int reps, F fn) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// GEMV (T=1) and GEMM (T=128) of every integer kernel against the BF16 float kernels of the picked ISA on the
// same matrix, alternating, best of 5 each: ratios within one run.
static void bench(int64_t N, int64_t K) {
  const Kernels* all[8];
  const int nk = kernels_available(all, 8);
  const Kernels& fk = kernels();
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(N * K));
  for (auto& v : w) v = nd(rng);
  std::vector<uint16_t> wb;
  const Mat bm = bf16_matrix(w, N, K, wb);
  ThreadPool pool(int(std::thread::hardware_concurrency()));
  auto time = [](auto fn) { return best_of(5, fn); };
  for (int64_t T : {1, 128}) {
    std::vector<float> A(static_cast<size_t>(T * K)), C(static_cast<size_t>(T * N));
    for (auto& v : A) v = nd(rng);
    const double bf = time([&] {
      if (T <= kGemvMaxT)
        pool.run(N, 64, [&](int64_t b, int64_t e) { fk.gemv(A.data(), K, T, bm, b, e, C.data(), N); });
      else
        pool.run((N + fk.nr - 1) / fk.nr, 1, [&](int64_t b, int64_t e) {
          std::vector<float> pack(static_cast<size_t>(gemm_pack_floats()));
          fk.gemm(A.data(), K, T, bm, b * fk.nr, std::min(e * fk.nr, N), C.data(), N, pack.data());
        });
    });
    std::printf("bf16 %-18s T=%-4lld %8.3f ms  %7.1f GMAC/s (baseline)\n", fk.name, (long long)T, bf * 1e3, double(T * N * K) / bf / 1e9);
    for (QType type : {QType::Q8_0, QType::Q4_0}) {
      auto qm = quantize_matrix(f32_tensor(w, N, K), type, 2);
      for (int i = 0; i < nk; i++) {
        const QKernels& qk = qkernels_for(all[i]->name);
        if (std::strcmp(qk.name, "int8-scalar") == 0 && T > 1) continue;
        const double q = time([&] { qlinear(pool, qk, A.data(), K, T, *qm, nullptr, C.data(), N); });
        std::printf("%s %-18s T=%-4lld %8.3f ms  %7.1f GMAC/s  %.2fx bf16\n", qtype_name(type), qk.name, (long long)T, q * 1e3,
                    double(T * N * K) / q / 1e9, bf / q);
      }
    }
  }
}

// Prefill of T tokens (128 unless given) on one thread, best of 30 (steadier than two threads on a shared machine): the BF16 float
// GEMM of the picked ISA, then per type the integer GEMM alone (activation planes given) and the whole qlinear.
static void bench1(int64_t N, int64_t K, int64_t T) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(static_cast<size_t>(N * K)), A(static_cast<size_t>(T * K)), C(static_cast<size_t>(T * N));
  for (auto& v : w) v = nd(rng);
  for (auto& v : A) v = nd(rng);
  std::vector<uint16_t> wb;
  const Mat bm = bf16_matrix(w, N, K, wb);
  const Kernels& fk = kernels();
  auto best = [](auto fn) { return best_of(30, fn) * 1e3; };
  std::vector<float> pack(static_cast<size_t>(gemm_pack_floats()));
  const double bf = best([&] { fk.gemm(A.data(), K, T, bm, 0, N, C.data(), N, pack.data()); });
  std::printf("bf16 %s T=%lld 1 thread: %.3f ms (baseline)\n", fk.name, (long long)T, bf);
  ThreadPool pool(1);
  const QKernels& qk = qkernels_for(fk.name);
  for (QType type : {QType::Q8_0, QType::Q4_0}) {
    auto qm = quantize_matrix(f32_tensor(w, N, K), type, 1);
    std::vector<int8_t> q(static_cast<size_t>(2 * T * K));
    std::vector<float> d(static_cast<size_t>(2 * T * K / 32), 0.01f);
    std::vector<int32_t> s(d.size(), 3);
    std::vector<int16_t> a16(static_cast<size_t>(T * K));
    for (auto& v : q) v = int8_t(int(rng() % 200) - 100);
    for (int64_t t = 0; t < T; t++)
      for (int64_t k = 0; k < K; k++) a16[size_t(t * K + k)] = int16_t(256 * q[size_t(2 * t * K + k)] + q[size_t((2 * t + 1) * K + k)]);
    const QAct act{q.data(), d.data(), s.data(), qk.a16_q8 && type == QType::Q8_0 ? a16.data() : nullptr, T, K, K / 32};
    const double g = best([&] { qk.gemm(act, *qm, 0, qm->panels, nullptr, C.data(), N); });
    const double l = best([&] { qlinear(pool, qk, A.data(), K, T, *qm, nullptr, C.data(), N); });
    std::printf("%s %s: integer GEMM %.3f ms (%.2fx bf16), qlinear %.3f ms (%.2fx bf16)\n", qtype_name(type), qk.name, g,
                bf / g, l, bf / l);
  }
}

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "--bench") == 0) {
    bench(std::atoll(argv[2]), std::atoll(argv[3]));
    return 0;
  }
  if ((argc == 4 || argc == 5) && std::strcmp(argv[1], "--bench1") == 0) {
    bench1(std::atoll(argv[2]), std::atoll(argv[3]), argc == 5 ? std::atoll(argv[4]) : 128);
    return 0;
  }
  std::mt19937 rng(42);
  check_f16();
  check_quantizers(rng);
  check_repack(rng, QType::Q8_0);
  check_repack(rng, QType::Q4_0);
  check_act_planes(rng);
  check_kernels(rng);
  if (failures) {
    std::printf("quant_test: %d FAILED\n", failures);
    return 1;
  }
  std::printf("quant_test: all checks pass\n");
  return 0;
}
