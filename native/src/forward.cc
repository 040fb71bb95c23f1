// The forward graph: prefill chunks and decode steps through the layer plan, on the kernels of kernels.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "model.h"

namespace fc {

AlignedFloats aligned_floats(size_t n) {
  void* p = std::aligned_alloc(64, (n * 4 + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return AlignedFloats(static_cast<float*>(p));
}

namespace {
// Scratch buffer taken from the model's arena (best fit) and handed back on destruction, so chunks and
// steps reuse memory instead of faulting in fresh pages. Only the thread holding the compute lock uses it.
struct Buf {
  Arena& ar;
  size_t cap;
  AlignedFloats p;
  Buf(Arena& a, int64_t n) : ar(a) {
    size_t want = size_t(n > 0 ? n : 1), best = SIZE_MAX;
    for (size_t i = 0; i < ar.free.size(); i++)
      if (ar.free[i].first >= want && (best == SIZE_MAX || ar.free[i].first < ar.free[best].first)) best = i;
    if (best == SIZE_MAX) {
      cap = want;
      p = aligned_floats(want);
    } else {
      cap = ar.free[best].first;
      p = std::move(ar.free[best].second);
      ar.free.erase(ar.free.begin() + std::ptrdiff_t(best));
    }
  }
  ~Buf() { ar.free.emplace_back(cap, std::move(p)); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  float* get() { return p.get(); }
  float& operator[](int64_t i) { return p[size_t(i)]; }
};
// A per-thread scratch array that keeps its largest size (GEMM panels, attention blocks), 64-byte aligned.
struct ThreadScratch {
  AlignedFloats p;
  size_t n = 0;
  float* get(size_t want) {
    if (n < want) {
      p = aligned_floats(want);
      n = want;
    }
    return p.get();
  }
};
}  // namespace

void Model::linear(const float* A, int64_t lda, int64_t T, const Mat& W, const Vec* bias, float* C, int64_t ldc) {
  const Kernels& k = *kern_;
  const int64_t N = W.rows;
  const int64_t nt = pool_->size();
  if (W.q) qlinear(*pool_, *k.q, A, lda, T, *W.q, bias ? bias->p : nullptr, C, ldc);
  else if (T <= kGemvMaxT) {
    int64_t grain = std::max<int64_t>(16, N / (nt * 8));
    pool_->run(N, grain, [&](int64_t b, int64_t e) {
      k.gemv(A, lda, T, W, b, e, C, ldc);
      if (bias)
        for (int64_t t = 0; t < T; t++) k.add(C + t * ldc + b, bias->p + b, e - b);
    });
  } else {
    const int64_t nr = k.nr;
    int64_t panels = (N + nr - 1) / nr;
    int64_t grain = std::max<int64_t>(1, panels / (nt * 8));
    pool_->run(panels, grain, [&](int64_t b, int64_t e) {
      thread_local ThreadScratch pack;
      const int64_t n0 = b * nr, n1 = std::min(e * nr, N);
      k.gemm(A, lda, T, W, n0, n1, C, ldc, pack.get(size_t(gemm_pack_floats())));
      // the bias goes in while this thread's columns are still in cache
      if (bias)
        for (int64_t t = 0; t < T; t++) k.add(C + t * ldc + n0, bias->p + n0, n1 - n0);
    });
  }
}

static void layernorm(ThreadPool& pool, const Kernels& k, const float* x, int64_t R, int64_t H, const Vec& w,
                      const Vec& b, double eps, float* out) {
  pool.run(R, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) k.layernorm(x + r * H, H, w.p, b.p, eps, out + r * H);
  });
}

// x += o over R rows of H, split over the pool by rows.
static void residual(ThreadPool& pool, const Kernels& k, float* x, const float* o, int64_t R, int64_t H) {
  pool.run(R, 8, [&](int64_t r0, int64_t r1) { k.add(x + r0 * H, o + r0 * H, (r1 - r0) * H); });
}

void Model::mamba(LayerState& ls, const LayerW& w, const float* a, int64_t R, float* out, float* mem) {
  const Config& c = cfg_;
  const int64_t Di = c.Di, N = c.N, K = c.K, Rdt = c.R, ldb = c.R + 2 * c.N;
  Buf xz(*arena_, R * 2 * Di);
  linear(a, c.H, R, w.in_proj, nullptr, xz.get(), 2 * Di);
  // causal depthwise conv with the carried K-1 inputs
  Buf xc(*arena_, R * Di);
  float* xzp = xz.get();
  float* xcp = xc.get();
  const Kernels& k = *kern_;
  pool_->run(Di, 64, [&](int64_t c0, int64_t c1) {
    k.conv_silu(xzp, 2 * Di, R, c0, c1, w.conv_wt.data(), w.conv_b.p, ls.conv.data(), K, Di, xcp);
  });
  Buf dbc(*arena_, R * ldb);
  linear(xcp, Di, R, w.x_proj, nullptr, dbc.get(), ldb);
  Buf delta(*arena_, R * Di);
  linear(dbc.get(), ldb, R, w.dt_proj, &w.dt_b, delta.get(), Di);
  pool_->run(R * Di, 4096, [&](int64_t b, int64_t e) { k.softplus(delta.get() + b, e - b); });
  Buf y(*arena_, R * Di);
  pool_->run(Di, 16, [&](int64_t c0, int64_t c1) {
    k.scan(c0, c1, R, Di, N, xcp, delta.get(), dbc.get(), ldb, Rdt, w.A.data(), w.D.p, ls.ssm.data(), y.get());
  });
  if (mem) std::memcpy(mem, y.get(), size_t(R * Di) * 4);  // GMU memory = un-gated y (with the D term)
  pool_->run(R, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) k.gate(xzp + r * 2 * Di + Di, y.get() + r * Di, y.get() + r * Di, Di);
  });
  linear(y.get(), Di, R, w.out_proj, nullptr, out, c.H);
}

// Query rows per blocked attention item, and the chunk size from which prefill uses the blocked path.
constexpr int64_t kAttnBlock = 32, kAttnBlockMin = 16;

void Model::attention(State& s, int64_t li, const LayerW& w, const float* a, int64_t R, int64_t p0, float* out) {
  const Config& c = cfg_;
  const int64_t hd = c.hd, qd = c.qdim(), kvd = c.kvdim();
  const bool cross = w.kind == LayerKind::Cross;
  const int64_t ldq = cross ? qd : qd + 2 * kvd;
  Buf q(*arena_, R * ldq);
  linear(a, c.H, R, w.wqkv, &w.bqkv, q.get(), ldq);
  std::vector<const float*> kp, vp;
  std::vector<int64_t> lo(static_cast<size_t>(R)), hi(static_cast<size_t>(R));
  LayerState& ls = s.layers[size_t(li)];
  if (w.kind == LayerKind::SWA) {
    const int64_t W = c.W;
    int64_t prev = std::min<int64_t>(p0, W - 1);
    int64_t kbase = p0 - prev;
    for (int64_t j = 0; j < prev; j++) {
      int64_t slot = (kbase + j) % W;
      kp.push_back(ls.k.data() + slot * kvd);
      vp.push_back(ls.v.data() + slot * kvd);
    }
    for (int64_t r = 0; r < R; r++) {
      kp.push_back(q.get() + r * ldq + qd);
      vp.push_back(q.get() + r * ldq + qd + kvd);
    }
    for (int64_t r = 0; r < R; r++) {
      lo[size_t(r)] = std::max<int64_t>(0, p0 + r - W + 1) - kbase;
      hi[size_t(r)] = prev + r;
    }
  } else {
    KVStore* st;
    if (cross) {
      st = &s.layers[size_t(c.h() + 1)].kv;
    } else {
      st = &ls.kv;
      st->append(q.get() + qd, q.get() + qd + kvd, ldq, R, kvd);
    }
    for (int64_t j = 0; j < p0 + R; j++) {
      kp.push_back(st->k(j, kvd));
      vp.push_back(st->v(j, kvd));
    }
    for (int64_t r = 0; r < R; r++) {
      lo[size_t(r)] = 0;
      hi[size_t(r)] = p0 + r;
    }
  }
  const int64_t pairs = c.nh / 2, rr = c.nh / c.nkv;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  const float lam = w.lambda, post = 1.f - w.lambda_init;
  Buf att(*arena_, R * qd);
  const Kernels& k = *kern_;
  // normalises A1 - λ·A2 of one (row, pair) into the head pair's output slot
  auto finish = [&](int64_t r, int64_t j, const float* A1, const float* A2) {
    float* o = att.get() + r * qd + j * 2 * hd;
    double ms = 0;
    for (int64_t d = 0; d < 2 * hd; d++) {
      o[d] = A1[d] - lam * A2[d];
      ms += double(o[d]) * o[d];
    }
    float inv = float(1.0 / std::sqrt(ms / double(2 * hd) + 1e-5));
    for (int64_t d = 0; d < 2 * hd; d++) o[d] = o[d] * inv * w.subln.p[d] * post;
  };
  if (R >= kAttnBlockMin) {
    // prefill: blocks of query rows per head pair on the GEMM tiles (keys packed once per block)
    const int64_t nblk = (R + kAttnBlock - 1) / kAttnBlock;
    pool_->run(pairs * nblk, 1, [&](int64_t b, int64_t e) {
      thread_local ThreadScratch S, Ab, Bp;
      std::vector<int64_t> klo, khi;
      for (int64_t it = b; it < e; it++) {
        const int64_t j = it / nblk, r0 = (it % nblk) * kAttnBlock, r1 = std::min(R, r0 + kAttnBlock), nb = r1 - r0;
        const int64_t g = j / rr, L0 = lo[size_t(r0)], n = hi[size_t(r1 - 1)] - L0 + 1;
        klo.resize(size_t(nb));
        khi.resize(size_t(nb));
        for (int64_t i = 0; i < nb; i++) {
          klo[size_t(i)] = lo[size_t(r0 + i)] - L0;
          khi[size_t(i)] = hi[size_t(r0 + i)] - L0;
        }
        float* Sp = S.get(size_t(2 * nb * n));
        float* Ap = Ab.get(size_t(4 * nb * hd));
        float* Bpp = Bp.get(size_t(gemm_pack_floats()));
        const float* q1 = q.get() + r0 * ldq + (2 * j) * hd;
        k.attend_block(q1, q1 + hd, ldq, nb, kp.data() + L0, vp.data() + L0, n, klo.data(), khi.data(), (2 * g) * hd,
                       (2 * g + 1) * hd, hd, scale, Sp, Ap, Bpp);
        for (int64_t i = 0; i < nb; i++) finish(r0 + i, j, Ap + i * 2 * hd, Ap + (nb + i) * 2 * hd);
      }
    });
  } else pool_->run(R * pairs, 1, [&](int64_t b, int64_t e) {
    std::vector<float> s1, s2, A1(size_t(2 * hd)), A2(size_t(2 * hd));
    for (int64_t it = b; it < e; it++) {
      int64_t r = it / pairs, j = it % pairs, g = j / rr;
      const float* q1 = q.get() + r * ldq + (2 * j) * hd;
      const float* q2 = q1 + hd;
      const int64_t o1 = (2 * g) * hd, o2 = (2 * g + 1) * hd;
      int64_t l0 = lo[size_t(r)], n = hi[size_t(r)] - l0 + 1;
      s1.resize(size_t(n));
      s2.resize(size_t(n));
      k.attend(q1, q2, kp.data() + l0, vp.data() + l0, n, o1, o2, hd, scale, s1.data(), s2.data(), A1.data(), A2.data());
      finish(r, j, A1.data(), A2.data());
    }
  });
  if (w.kind == LayerKind::SWA) {
    const int64_t W = c.W;
    for (int64_t r = std::max<int64_t>(0, R - W); r < R; r++) {
      int64_t slot = (p0 + r) % W;
      std::memcpy(ls.k.data() + slot * kvd, q.get() + r * ldq + qd, size_t(kvd) * 4);
      std::memcpy(ls.v.data() + slot * kvd, q.get() + r * ldq + qd + kvd, size_t(kvd) * 4);
    }
  }
  linear(att.get(), qd, R, w.wo, &w.bo, out, c.H);
}

void Model::run_chunk(State& s, const int32_t* tokens, int64_t R, bool all, bool last_chunk, int64_t tail, float* logits) {
  const Config& c = cfg_;
  const int64_t H = c.H;
  const bool sambay = c.layout == Layout::SambaY;
  Buf x(*arena_, R * H), a(*arena_, R * H), o(*arena_, R * H);
  for (int64_t r = 0; r < R; r++) {
    const Mat& E = w_.embed;
    if (E.q) {
      dequant_row(*E.q, tokens[r], x.get() + r * H);
      continue;
    }
    const uint8_t* row = static_cast<const uint8_t*>(E.data) + size_t(tokens[r]) * size_t(H) * (E.dt == DType::F32 ? 4 : 2);
    kern_->widen(row, E.dt, H, x.get() + r * H);
  }
  Buf mem(*arena_, sambay ? R * c.Di : 1);
  Buf u(*arena_, R * 2 * c.I);
  Buf gm(*arena_, R * c.I);
  int64_t rows = R, p0 = s.pos;
  bool head = true;
  for (int64_t li = 0; li < c.L; li++) {
    const LayerW& w = w_.layers[size_t(li)];
    if (sambay && li == c.h() + 2 && !all) {
      // the cross-decoder only feeds the logits: run it on the last `tail` positions only (spec section 4)
      if (!last_chunk) {
        head = false;
        break;
      }
      const int64_t keep = std::min(rows, tail);
      if (rows > keep) {
        std::memmove(x.get(), x.get() + (rows - keep) * H, size_t(keep * H) * 4);
        std::memmove(mem.get(), mem.get() + (rows - keep) * c.Di, size_t(keep * c.Di) * 4);
        p0 += rows - keep;
        rows = keep;
      }
    }
    layernorm(*pool_, *kern_, x.get(), rows, H, w.ln_in_w, w.ln_in_b, c.eps, a.get());
    switch (w.kind) {
      case LayerKind::Mamba:
      case LayerKind::MambaMem:
        mamba(s.layers[size_t(li)], w, a.get(), rows, o.get(), w.kind == LayerKind::MambaMem ? mem.get() : nullptr);
        break;
      case LayerKind::GMU: {
        Buf t(*arena_, rows * c.Di);
        linear(a.get(), H, rows, w.in_proj, nullptr, t.get(), c.Di);
        pool_->run(rows, 8, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) kern_->gate(t.get() + r * c.Di, mem.get() + r * c.Di, t.get() + r * c.Di, c.Di);
        });
        linear(t.get(), c.Di, rows, w.out_proj, nullptr, o.get(), H);
        break;
      }
      default: attention(s, li, w, a.get(), rows, p0, o.get()); break;
    }
    residual(*pool_, *kern_, x.get(), o.get(), rows, H);
    layernorm(*pool_, *kern_, x.get(), rows, H, w.ln_post_w, w.ln_post_b, c.eps, a.get());
    linear(a.get(), H, rows, w.fc1, nullptr, u.get(), 2 * c.I);
    pool_->run(rows, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++)
        kern_->gate(u.get() + r * 2 * c.I, u.get() + r * 2 * c.I + c.I, gm.get() + r * c.I, c.I);
    });
    linear(gm.get(), c.I, rows, w.fc2, nullptr, o.get(), H);
    residual(*pool_, *kern_, x.get(), o.get(), rows, H);
  }
  s.pos += R;
  if (!head) return;
  if (all) {
    layernorm(*pool_, *kern_, x.get(), rows, H, w_.final_w, w_.final_b, c.eps, a.get());
    linear(a.get(), H, rows, w_.lm_head, nullptr, logits, c.V);
  } else if (last_chunk) {
    const int64_t keep = std::min(rows, tail);
    layernorm(*pool_, *kern_, x.get() + (rows - keep) * H, keep, H, w_.final_w, w_.final_b, c.eps, a.get());
    linear(a.get(), H, keep, w_.lm_head, nullptr, logits, c.V);
  }
}

constexpr int64_t kPrefillChunk = 256;

void Model::forward(State& s, const int32_t* tokens, int64_t T, bool all, float* logits) {
  forward_tail(s, tokens, T, all ? T : 1, logits);
}

void Model::forward_tail(State& s, const int32_t* tokens, int64_t T, int64_t tail, float* logits) {
  const Config& c = cfg_;
  if (T <= 0) throw std::invalid_argument("at least one token is needed");
  if (tail < 1 || tail > T || (tail != T && tail > kPrefillChunk))
    throw std::invalid_argument("logits rows must be from 1 to the number of tokens (and at most " + std::to_string(kPrefillChunk) + " unless all)");
  const bool all = tail == T && T > 1;
  for (int64_t i = 0; i < T; i++)
    if (tokens[i] < 0 || tokens[i] >= c.V)
      throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                  " is out of range [0, " + std::to_string(c.V) + ")");
  if (s.model.get() != this) throw std::invalid_argument("state belongs to another model");
  s.check_usable();
  std::lock_guard<std::mutex> g(compute_mu_);
  ThreadPool::Session busy(*pool_);
  if (++calls_ == fault_call_) pool_->fail_worker_chunk(1);
  // From here on the state changes layer by layer: a failure leaves it half-advanced, so it is poisoned.
  try {
    // The rows that need logits must lie in the last chunk: end the chunk before it early if needed.
    for (int64_t c0 = 0; c0 < T;) {
      int64_t R = std::min(kPrefillChunk, T - c0);
      if (!all && c0 + R < T && T - (c0 + R) < tail) R = T - tail > c0 ? T - tail - c0 : T - c0;
      bool last = c0 + R == T;
      run_chunk(s, tokens + c0, R, all, last, tail, all ? logits + c0 * c.V : logits);
      c0 += R;
    }
  } catch (const std::exception& e) {
    s.poison(e.what());
    throw;
  } catch (...) {
    s.poison("unknown error");
    throw;
  }
  s.position.store(s.pos);
}

}  // namespace fc
