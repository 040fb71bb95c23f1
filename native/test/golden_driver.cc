// Runs golden case directories through the kernel without Node (used by scripts/sanitize.sh and for
// quick checks): full forward, prefill-then-step, clone-then-continue; prints max_rel_err per case.
// Usage: golden_driver [--threads N] [--quant q8_0|q4_0] CASE_DIR...   exit 0 iff every case passes (with
//        --quant: loaded with load-time quantization, against the case's own tolerance, e.g. a grid case's).
//        golden_driver --expect-load-error DIR...   exit 0 iff every DIR fails to load with a LoadError.
//        golden_driver --list-isa                   the kernel implementations this CPU can run.
//        golden_driver --elementwise                elementwise kernels of every ISA against float64.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../src/json.h"
#include "../src/model.h"

using namespace fc;

static std::vector<float> read_f32(const std::string& p) {
  std::string s = read_text_file(p);
  std::vector<float> v(s.size() / 4);
  std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

static double row_err(const float* got, const float* ref, int64_t V) {
  double md = 0, mr = 0;
  for (int64_t i = 0; i < V; i++) {
    md = std::max(md, std::fabs(double(got[i]) - ref[i]));
    mr = std::max(mr, std::fabs(double(ref[i])));
  }
  return md / mr;
}

static int argmax(const float* x, int64_t V) {
  int b = 0;
  for (int64_t i = 1; i < V; i++)
    if (x[i] > x[b]) b = int(i);
  return b;
}

static bool run_case(const std::string& dir, int threads, QType quant) {
  auto model = Model::load(dir, threads, 0, quant);
  const int64_t V = model->config().V;
  json::Value in = json::parse(read_text_file(dir + "/inputs.json"));
  json::Value ex = json::parse(read_text_file(dir + "/expected.json"));
  std::vector<int32_t> toks;
  for (auto& t : in.get("tokens")->arr) toks.push_back(int32_t(t.num));
  int steps = int(in.get("decode_steps")->num);
  std::vector<int> greedy;
  for (auto& t : ex.get("greedy_tokens")->arr) greedy.push_back(int(t.num));
  double tol = ex.get("tolerances")->get("max_rel_err")->num;
  auto full_ref = read_f32(dir + "/logits_full.f32");
  auto dec_ref = read_f32(dir + "/logits_decode.f32");
  const int64_t T = int64_t(toks.size());

  double e_full = 0, e_pre = 0, e_dec = 0, e_clone = 0;
  std::vector<float> full(size_t(T * V));
  auto s0 = model->new_state();
  model->forward(*s0, toks.data(), T, true, full.data());
  for (int64_t r = 0; r < T; r++) e_full = std::max(e_full, row_err(&full[size_t(r * V)], &full_ref[size_t(r * V)], V));

  std::vector<float> last(static_cast<size_t>(V));
  auto s = model->new_state();
  model->forward(*s, toks.data(), T, false, last.data());
  e_pre = row_err(last.data(), &full_ref[size_t((T - 1) * V)], V);
  std::vector<int> got{argmax(last.data(), V)};
  auto snap = s->clone();
  std::vector<std::vector<float>> dec;
  for (int i = 0; i < steps; i++) {
    int32_t tk = greedy[size_t(i)];
    model->forward(*s, &tk, 1, false, last.data());
    dec.push_back(last);
    e_dec = std::max(e_dec, row_err(last.data(), &dec_ref[size_t(i * V)], V));
    got.push_back(argmax(last.data(), V));
  }
  // continue the snapshot: must give exactly the same logits
  for (int i = 0; i < steps; i++) {
    int32_t tk = greedy[size_t(i)];
    model->forward(*snap, &tk, 1, false, last.data());
    for (int64_t k = 0; k < V; k++) e_clone = std::max(e_clone, double(std::fabs(last[size_t(k)] - dec[size_t(i)][size_t(k)])));
  }
  bool tok_ok = got == greedy;
  double mx = std::max(std::max(e_full, e_pre), e_dec);
  bool ok = mx <= tol && tok_ok && e_clone == 0;
  std::printf("%s: isa=%s threads=%d full=%.3g prefill=%.3g decode=%.3g clone_diff=%g greedy=%s max_rel_err=%.3g %s\n",
              dir.c_str(), model->isa().c_str(), model->threads(), e_full, e_pre, e_dec, e_clone,
              tok_ok ? "identical" : "DIFFERENT", mx, ok ? "PASS" : "FAIL");
  return ok;
}

// A directory that must fail to load with a clear LoadError (corrupt files under the sanitizers).
static bool expect_load_error(const std::string& dir) {
  try {
    auto m = Model::load(dir, 1);
    std::printf("%s: loaded, but a load error was expected FAIL\n", dir.c_str());
    return false;
  } catch (const LoadError& e) {
    std::printf("%s: load error as expected: %s\n", dir.c_str(), e.what());
    return true;
  }
}

// The elementwise kernels of every ISA this CPU has against double-precision references, over inputs the
// golden cases do not reach: softplus across [-100, 100] (both branches, tiny results), the causal conv +
// SiLU with channel and row counts that are not multiples of the vector width, layernorm of rows whose mean
// is large against their spread.
static bool check_elementwise() {
  const Kernels* all[4];
  const int nk = kernels_available(all, 4);
  bool ok = true;
  uint32_t seed = 12345;
  auto rnd = [&] {  // uniform in [-1, 1)
    seed = seed * 1664525u + 1013904223u;
    return float(seed >> 8) / float(1 << 23) - 1.f;
  };
  for (int ki = 0; ki < nk; ki++) {
    const Kernels& k = *all[ki];
    seed = 12345;  // the same inputs for every ISA
    // softplus
    std::vector<float> x(10007);
    for (size_t i = 0; i < x.size(); i++) x[i] = -100.f + 200.f * float(i) / float(x.size() - 1);
    std::vector<float> y = x;
    k.softplus(y.data(), int64_t(y.size()));
    double sp = 0;
    for (size_t i = 0; i < x.size(); i++) {
      const double r = x[i] > 20.f ? double(x[i]) : std::log1p(std::exp(double(x[i])));
      sp = std::max(sp, std::fabs(y[i] - r) / (std::fabs(r) + 1e-30 / 4e-7));
    }
    // conv + SiLU: R rows of Di channels, K taps, history carried in; twice to check the carried history
    const int64_t R = 37, Di = 53, K = 4;
    std::vector<float> in(static_cast<size_t>(2 * R * Di)), wt(static_cast<size_t>(K * Di)), b(static_cast<size_t>(Di)),
        hist(static_cast<size_t>(Di * (K - 1)));
    for (auto* v : {&in, &wt, &b, &hist})
      for (auto& e : *v) e = 3.f * rnd();
    std::vector<double> hd(hist.begin(), hist.end());
    std::vector<float> out(static_cast<size_t>(R * Di));
    double cv = 0;
    for (int pass = 0; pass < 2; pass++) {
      const float* xp = in.data() + pass * R * Di;
      k.conv_silu(xp, Di, R, 0, Di, wt.data(), b.data(), hist.data(), K, Di, out.data());
      for (int64_t ch = 0; ch < Di; ch++) {
        std::vector<double> cat(hd.begin() + ch * (K - 1), hd.begin() + (ch + 1) * (K - 1));
        for (int64_t r = 0; r < R; r++) cat.push_back(xp[r * Di + ch]);
        for (int64_t r = 0; r < R; r++) {
          double acc = b[size_t(ch)], mag = std::fabs(acc);
          for (int64_t j = 0; j < K; j++) {
            acc += double(wt[size_t(j * Di + ch)]) * cat[size_t(r + j)];
            mag += std::fabs(double(wt[size_t(j * Di + ch)]) * cat[size_t(r + j)]);
          }
          const double ref = acc / (1 + std::exp(-acc));
          // relative to the size of the summed terms: float sums of terms that cancel are only that exact
          cv = std::max(cv, std::fabs(out[size_t(r * Di + ch)] - ref) / mag);
        }
        for (int64_t j = 0; j < K - 1; j++) {
          hd[size_t(ch * (K - 1) + j)] = cat[size_t(R + j)];
          if (hist[size_t(ch * (K - 1) + j)] != float(cat[size_t(R + j)])) cv = 1;  // history must be exact
        }
      }
    }
    // layernorm: mean 1000, spread 1
    const int64_t n = 1003;
    std::vector<float> row(static_cast<size_t>(n)), w(row), bb(row), o(row);
    for (int64_t i = 0; i < n; i++) {
      row[size_t(i)] = 1000.f + rnd();
      w[size_t(i)] = 1.f + 0.5f * rnd();
      bb[size_t(i)] = 0.1f * rnd();
    }
    k.layernorm(row.data(), n, w.data(), bb.data(), 1e-5, o.data());
    double mean = 0, var = 0, ln = 0;
    for (float v : row) mean += v;
    mean /= double(n);
    for (float v : row) var += (v - mean) * (v - mean);
    var /= double(n);
    for (int64_t i = 0; i < n; i++) {
      const double ref = (row[size_t(i)] - mean) / std::sqrt(var + 1e-5) * w[size_t(i)] + bb[size_t(i)];
      ln = std::max(ln, std::fabs(o[size_t(i)] - ref));
    }
    // a few float ulps: softplus and SiLU go through the vectorised exp/log (~1 ulp each); the layernorm
    // output of a row at 1000 +- 1 is limited by the float input (ulp(1000) = 6e-5 of a unit spread)
    const bool pass = sp < 1e-6 && cv < 1e-6 && ln < 2e-4;
    std::printf("elementwise %s: softplus max_rel_err %.2e, conv+silu %.2e, layernorm (mean 1000) max_abs_err %.2e %s\n",
                k.name, sp, cv, ln, pass ? "ok" : "FAIL");
    ok = ok && pass;
  }
  return ok;
}

int main(int argc, char** argv) {
  int threads = 2;
  QType quant = QType::None;
  bool expect_error = false;
  bool all_ok = true;
  int n = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--list-isa") {
      const Kernels* all[8];
      int k = kernels_available(all, 8);
      for (int j = 0; j < k; j++) std::printf("%s\n", all[j]->name);
      return 0;
    }
    if (a == "--elementwise") return check_elementwise() ? 0 : 1;
    if (a == "--expect-load-error") {
      expect_error = true;
      continue;
    }
    if (a == "--quant" && i + 1 < argc) {
      quant = parse_qtype(argv[++i]);
      continue;
    }
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
      continue;
    }
    n++;
    try {
      if (!(expect_error ? expect_load_error(a) : run_case(a, threads, quant))) all_ok = false;
    } catch (const std::exception& e) {
      std::printf("%s: ERROR %s\n", a.c_str(), e.what());
      all_ok = false;
    }
  }
  if (n == 0) {
    std::fprintf(stderr, "usage: golden_driver [--threads N] [--quant q8_0|q4_0] CASE_DIR...\n");
    return 2;
  }
  return all_ok ? 0 : 1;
}
