// Runs golden case directories through the kernel without Node (used by scripts/sanitize.sh and for
// quick checks): full forward, prefill-then-step, clone-then-continue; prints max_rel_err per case.
// Usage: golden_driver [--threads N] [--quant q8_0|q4_0] CASE_DIR...   exit 0 iff every case passes (with
//        --quant: loaded with load-time quantization, against the case's own tolerance, e.g. a grid case's).
//        golden_driver --expect-load-error DIR...   exit 0 iff every DIR fails to load with a LoadError.
//        golden_driver --list-isa                   the kernel implementations this CPU can run.
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
