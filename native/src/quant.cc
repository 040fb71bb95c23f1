#include "quant.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
#include <immintrin.h>
#endif
#if defined(__unix__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "json.h"
#include "safetensors.h"
#include "threadpool.h"

namespace fc {

const char* qtype_name(QType t) {
  switch (t) {
    case QType::Q8_0: return "q8_0";
    case QType::Q4_0: return "q4_0";
    default: return "none";
  }
}

QType parse_qtype(const std::string& s) {
  if (s == "none" || s.empty()) return QType::None;
  if (s == "q8_0") return QType::Q8_0;
  if (s == "q4_0") return QType::Q4_0;
  throw std::invalid_argument("quantize must be none, q8_0 or q4_0, got \"" + s + "\"");
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7FFFFFFFu;
  if (x >= 0x7F800000u) return uint16_t(sign | 0x7C00u | (x > 0x7F800000u ? 0x200u : 0));  // inf / nan
  if (x >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // rounds to >= 65520: inf
  if (x < 0x38800000u) {  // subnormal half (or zero): round to a multiple of 2^-24
    float a;
    std::memcpy(&a, &x, 4);
    float r = std::nearbyint(a * 16777216.0f);  // exact scaling; nearbyint = ties to even
    return uint16_t(sign | uint32_t(r));
  }
  uint32_t mant = x & 0x7FFFFFu, exp = (x >> 23) - 112;  // rebias 127 -> 15
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;  // carries into the exponent correctly
  return uint16_t(sign | h);
}

float f16_to_f32(uint16_t h) {
  uint32_t s = uint32_t(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
  if (e == 0) {
    if (m == 0) u = s;
    else {
      float f = float(m) * (1.0f / 16777216.0f);
      std::memcpy(&u, &f, 4);
      u |= s;
    }
  } else if (e == 31) u = s | 0x7F800000u | (m << 13);
  else u = s | ((e + 112) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void quantize_q8_0(const float* x, int64_t n, int8_t* q, uint16_t* d) {
  for (int64_t b = 0; b < n / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    float amax = 0.f;
    for (int j = 0; j < kQBlock; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float dd = amax / 127.f;
    const float id = dd != 0.f ? 1.f / dd : 0.f;
    for (int j = 0; j < kQBlock; j++) {
      volatile float p = xb[j] * id;  // a float32 product (no contraction, no excess precision)
      q[b * kQBlock + j] = int8_t(std::roundf(p));
    }
    d[b] = f32_to_f16(dd);
  }
}

void quantize_q4_0(const float* x, int64_t n, uint8_t* q, uint16_t* d) {
  for (int64_t b = 0; b < n / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    float amax = 0.f, mx = 0.f;
    for (int j = 0; j < kQBlock; j++)
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        mx = xb[j];
      }
    const float dd = mx / -8.f;
    const float id = dd != 0.f ? 1.f / dd : 0.f;
    for (int j = 0; j < kQBlock; j++) {
      volatile float p = xb[j] * id;
      volatile float s = p + 8.5f;
      const int v = int(std::floor(float(s)));
      q[b * kQBlock + j] = uint8_t(std::min(15, v));
    }
    d[b] = f32_to_f16(dd);
  }
}

// ---------------------------------------------------------------- repacking

namespace {

uint8_t* aligned_bytes(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, n ? n : 64) != 0) throw std::bad_alloc();
  return static_cast<uint8_t*>(p);
}
void free_bytes(uint8_t* p) { std::free(p); }

std::shared_ptr<QMat> alloc_qmat(QType type, int64_t rows, int64_t cols) {
  auto m = std::make_shared<QMat>();
  m->type = type;
  m->rows = rows;
  m->cols = cols;
  m->nb = cols / kQBlock;
  m->panels = (rows + kQPanel - 1) / kQPanel;
  const size_t qbytes = size_t(m->panels * m->nb * m->block_bytes());
  const size_t dbytes = size_t(m->panels * m->nb * kQPanel) * 4;
  const size_t qpad = (qbytes + 63) / 64 * 64;
  uint8_t* mem = aligned_bytes(qpad + dbytes);
  m->mem = std::unique_ptr<uint8_t[], void (*)(uint8_t*)>(mem, free_bytes);
  m->q = mem;
  m->d = reinterpret_cast<const float*>(mem + qpad);
  m->bytes = qpad + dbytes;
  return m;
}

// Writes one panel: rows given as unsigned/signed byte values per element (q[r][k], r < nr) and f16 scales.
// `get(r, k)` the stored value of row r, input k (int8 for q8_0, 0..15 for q4_0); `scale(r, b)` the f16 bits.
template <typename Get, typename Scale>
void write_panel(QMat& m, int64_t p, int64_t nr, Get get, Scale scale) {
  uint8_t* qb = const_cast<uint8_t*>(m.q) + p * m.nb * m.block_bytes();
  float* db = const_cast<float*>(m.d) + p * m.nb * kQPanel;
  for (int64_t b = 0; b < m.nb; b++) {
    uint8_t blk[256];
    for (int g = 0; g < 8; g++)
      for (int r = 0; r < kQPanel; r++)
        for (int j = 0; j < 4; j++) {
          const int64_t k = b * kQBlock + g * 4 + j;
          uint8_t v = r < nr ? uint8_t(get(r, k)) : (m.type == QType::Q4_0 ? 8 : 0);
          blk[(g * 8 + r) * 4 + j] = v;
        }
    if (m.type == QType::Q8_0) std::memcpy(qb + b * 256, blk, 256);
    else
      for (int i = 0; i < 128; i++) qb[b * 128 + i] = uint8_t((blk[i] & 15) | ((blk[i + 128] & 15) << 4));
    for (int r = 0; r < kQPanel; r++) db[b * kQPanel + r] = r < nr ? f16_to_f32(scale(r, b)) : 0.f;
  }
}

template <typename F>
void parallel_panels(int64_t panels, int threads, F f) {
  int nt = std::max(1, std::min<int>(threads, int(std::min<int64_t>(panels / 16 + 1, 64))));
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (;;) {
      int64_t p0 = next.fetch_add(16);
      if (p0 >= panels) break;
      for (int64_t p = p0; p < std::min(panels, p0 + 16); p++) f(p);
    }
  };
  std::vector<std::thread> th;
  for (int i = 1; i < nt; i++) th.emplace_back(work);
  work();
  for (auto& t : th) t.join();
}

float elem_f32(const TensorInfo& t, int64_t i) {
  if (t.dtype == DType::F32) {
    float f;
    std::memcpy(&f, t.data + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, t.data + 2 * i, 2);
  if (t.dtype == DType::BF16) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  return f16_to_f32(h);
}

uint16_t u16_at(const uint8_t* p, int64_t i) {
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return h;
}

}  // namespace

std::shared_ptr<QMat> quantize_matrix(const TensorInfo& w, QType type, int threads) {
  const int64_t rows = w.shape[0], cols = w.shape[1];
  auto m = alloc_qmat(type, rows, cols);
  const int64_t nb = cols / kQBlock;
  parallel_panels(m->panels, threads, [&](int64_t p) {
    const int64_t r0 = p * kQPanel, nr = std::min<int64_t>(kQPanel, rows - r0);
    std::vector<float> x(static_cast<size_t>(cols));
    std::vector<uint8_t> q(static_cast<size_t>(nr * cols));
    std::vector<uint16_t> d(static_cast<size_t>(nr * nb));
    for (int64_t r = 0; r < nr; r++) {
      for (int64_t k = 0; k < cols; k++) x[size_t(k)] = elem_f32(w, (r0 + r) * cols + k);
      if (type == QType::Q8_0)
        quantize_q8_0(x.data(), cols, reinterpret_cast<int8_t*>(q.data() + r * cols), d.data() + r * nb);
      else quantize_q4_0(x.data(), cols, q.data() + r * cols, d.data() + r * nb);
    }
    write_panel(*m, p, nr, [&](int64_t r, int64_t k) { return q[size_t(r * cols + k)]; },
                [&](int64_t r, int64_t b) { return d[size_t(r * nb + b)]; });
  });
  return m;
}

std::shared_ptr<QMat> repack_quantized(const TensorInfo& qt, const TensorInfo& st, QType type, int threads) {
  const int64_t rows = qt.shape[0], cols = st.shape[1] * kQBlock, nb = st.shape[1];
  auto m = alloc_qmat(type, rows, cols);
  const uint8_t* qs = qt.data;
  const uint8_t* ds = st.data;
  parallel_panels(m->panels, threads, [&](int64_t p) {
    const int64_t r0 = p * kQPanel, nr = std::min<int64_t>(kQPanel, rows - r0);
    if (type == QType::Q8_0)
      write_panel(*m, p, nr, [&](int64_t r, int64_t k) { return qs[(r0 + r) * cols + k]; },
                  [&](int64_t r, int64_t b) { return u16_at(ds, (r0 + r) * nb + b); });
    else
      write_panel(
          *m, p, nr,
          [&](int64_t r, int64_t k) {
            // ggml block_q4_0: byte j of a block holds q_j (low nibble) and q_{j+16} (high nibble)
            const int64_t b = k / kQBlock, j = k % kQBlock;
            const uint8_t byte = qs[(r0 + r) * (cols / 2) + b * 16 + (j & 15)];
            return j < 16 ? (byte & 15) : (byte >> 4);
          },
          [&](int64_t r, int64_t b) { return u16_at(ds, (r0 + r) * nb + b); });
  });
  return m;
}

void release_mapped(const TensorInfo& t) {
#if defined(__unix__)
  const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(t.data) + page - 1) / page * page;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) / page * page;
  if (e > b) (void)madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
#else
  (void)t;
#endif
}

void dequant_row(const QMat& m, int64_t row, float* out) {
  const int64_t p = row / kQPanel, r = row % kQPanel;
  for (int64_t b = 0; b < m.nb; b++) {
    const uint8_t* blk = m.block(p, b);
    const float d = m.scales(p, b)[r];
    for (int g = 0; g < 8; g++)
      for (int j = 0; j < 4; j++) {
        const int pos = (g * 8 + int(r)) * 4 + j;
        int v;
        if (m.type == QType::Q8_0) v = int8_t(blk[pos]);
        else v = (pos < 128 ? (blk[pos] & 15) : (blk[pos - 128] >> 4)) - 8;
        out[b * kQBlock + g * 4 + j] = float(v) * d;
      }
  }
}

// ---------------------------------------------------------------- linear

namespace {
struct ActBuf {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> s;
  std::vector<int16_t> a16;
};

// One token's activations (K inputs) into the two planes of QAct: per block d = amax/127, v = x·(127/amax),
// q1 = nearest(v), q2 = nearest(256·(v − q1)) clamped to ±127 (v − q1 and the ·256 are exact in float), the
// planes' block sums, and when a16 is not null 256·q1 + q2. No FMA contraction: v − q1 must use the rounded v.
__attribute__((optimize("fp-contract=off"))) void quantize_act_row(const float* x, int64_t K, int8_t* q1, int8_t* q2, float* d1, float* d2, int32_t* s1,
                      int32_t* s2, int16_t* a16) {
#if defined(__SSE2__)
  // 4 lanes at a time (x86-64 always has SSE2): nearest-even rounding by adding and subtracting 1.5·2^23
  // (exact for |v| <= 2^22), so the planes are bit-identical to the scalar loop below.
  const __m128 sign = _mm_set1_ps(-0.f), magic = _mm_set1_ps(12582912.f), k256 = _mm_set1_ps(256.f);
  const __m128i lim = _mm_set1_epi32(127), nlim = _mm_set1_epi32(-127);
  for (int64_t b = 0; b < K / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    __m128 v[8], mx = _mm_setzero_ps();
    for (int i = 0; i < 8; i++) {
      v[i] = _mm_loadu_ps(xb + 4 * i);
      mx = _mm_max_ps(mx, _mm_andnot_ps(sign, v[i]));
    }
    mx = _mm_max_ps(mx, _mm_shuffle_ps(mx, mx, _MM_SHUFFLE(1, 0, 3, 2)));
    mx = _mm_max_ps(mx, _mm_shuffle_ps(mx, mx, _MM_SHUFFLE(2, 3, 0, 1)));
    const float amax = _mm_cvtss_f32(mx);
    const float dd = amax / 127.f, id = amax > 0.f ? 127.f / amax : 0.f;
    const __m128 idv = _mm_set1_ps(id);
    __m128i h[8], l[8], acc1 = _mm_setzero_si128(), acc2 = _mm_setzero_si128();
    for (int i = 0; i < 8; i++) {
      const __m128 vi = _mm_mul_ps(v[i], idv);
      const __m128 r1 = _mm_sub_ps(_mm_add_ps(vi, magic), magic);
      const __m128 r2 = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(_mm_sub_ps(vi, r1), k256), magic), magic);
      h[i] = _mm_cvtps_epi32(r1);
      __m128i lo = _mm_cvtps_epi32(r2);
      // clamp to ±127 with SSE2 compares (min/max_epi32 are SSE4.1)
      lo = _mm_or_si128(_mm_and_si128(_mm_cmpgt_epi32(lo, lim), lim), _mm_andnot_si128(_mm_cmpgt_epi32(lo, lim), lo));
      lo = _mm_or_si128(_mm_and_si128(_mm_cmplt_epi32(lo, nlim), nlim), _mm_andnot_si128(_mm_cmplt_epi32(lo, nlim), lo));
      l[i] = lo;
      acc1 = _mm_add_epi32(acc1, h[i]);
      acc2 = _mm_add_epi32(acc2, lo);
    }
    for (int i = 0; i < 8; i += 4) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q1 + b * kQBlock + 4 * i),
                       _mm_packs_epi16(_mm_packs_epi32(h[i], h[i + 1]), _mm_packs_epi32(h[i + 2], h[i + 3])));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q2 + b * kQBlock + 4 * i),
                       _mm_packs_epi16(_mm_packs_epi32(l[i], l[i + 1]), _mm_packs_epi32(l[i + 2], l[i + 3])));
    }
    if (a16)
      for (int i = 0; i < 8; i += 2) {
        const __m128i w0 = _mm_add_epi32(_mm_slli_epi32(h[i], 8), l[i]);
        const __m128i w1 = _mm_add_epi32(_mm_slli_epi32(h[i + 1], 8), l[i + 1]);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(a16 + b * kQBlock + 4 * i), _mm_packs_epi32(w0, w1));
      }
    acc1 = _mm_add_epi32(acc1, _mm_shuffle_epi32(acc1, _MM_SHUFFLE(1, 0, 3, 2)));
    acc1 = _mm_add_epi32(acc1, _mm_shuffle_epi32(acc1, _MM_SHUFFLE(2, 3, 0, 1)));
    acc2 = _mm_add_epi32(acc2, _mm_shuffle_epi32(acc2, _MM_SHUFFLE(1, 0, 3, 2)));
    acc2 = _mm_add_epi32(acc2, _mm_shuffle_epi32(acc2, _MM_SHUFFLE(2, 3, 0, 1)));
    d1[b] = dd;
    d2[b] = dd / 256.f;
    s1[b] = _mm_cvtsi128_si32(acc1);
    s2[b] = _mm_cvtsi128_si32(acc2);
  }
  return;
#endif
  for (int64_t b = 0; b < K / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    float amax = 0.f;
    for (int j = 0; j < kQBlock; j++) amax = std::max(amax, std::fabs(xb[j]));
    const float dd = amax / 127.f, id = amax > 0.f ? 127.f / amax : 0.f;
    int32_t sum1 = 0, sum2 = 0;
    for (int j = 0; j < kQBlock; j++) {
      const float v = xb[j] * id, r1 = std::nearbyint(v);
      const int h = int(r1), l = std::clamp(int(std::nearbyint((v - r1) * 256.f)), -127, 127);
      q1[b * kQBlock + j] = int8_t(h);
      q2[b * kQBlock + j] = int8_t(l);
      if (a16) a16[b * kQBlock + j] = int16_t(256 * h + l);
      sum1 += h;
      sum2 += l;
    }
    d1[b] = dd;
    d2[b] = dd / 256.f;
    s1[b] = sum1;
    s2[b] = sum2;
  }
}

#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
// The same arithmetic 8 lanes at a time (no FMA in the target, so nothing is contracted: bit-identical planes),
// with the unsigned-activation offset (xor 0x80) applied at the store when `flip`.
__attribute__((target("avx2"))) void quantize_act_row_avx2(const float* x, int64_t K, int8_t* q1, int8_t* q2,
                                                           float* d1, float* d2, int32_t* s1, int32_t* s2,
                                                           int16_t* a16, bool flip) {
  const __m256 sign = _mm256_set1_ps(-0.f), magic = _mm256_set1_ps(12582912.f), k256 = _mm256_set1_ps(256.f);
  const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const __m256i fl = _mm256_set1_epi8(flip ? char(0x80) : 0);
  for (int64_t b = 0; b < K / kQBlock; b++) {
    const float* xb = x + b * kQBlock;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < 4; i++) {
      v[i] = _mm256_loadu_ps(xb + 8 * i);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_ps(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
    const float amax = _mm_cvtss_f32(m);
    const float dd = amax / 127.f, id = amax > 0.f ? 127.f / amax : 0.f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i h[4], l[4], acc1 = _mm256_setzero_si256(), acc2 = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
      const __m256 vi = _mm256_mul_ps(v[i], idv);
      const __m256 r1 = _mm256_sub_ps(_mm256_add_ps(vi, magic), magic);
      const __m256 r2 = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(vi, r1), k256), magic), magic);
      h[i] = _mm256_cvtps_epi32(r1);
      l[i] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(r2), lim), nlim);
      acc1 = _mm256_add_epi32(acc1, h[i]);
      acc2 = _mm256_add_epi32(acc2, l[i]);
    }
    const __m256i p1 = _mm256_packs_epi16(_mm256_packs_epi32(h[0], h[1]), _mm256_packs_epi32(h[2], h[3]));
    const __m256i p2 = _mm256_packs_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q1 + b * kQBlock), _mm256_xor_si256(_mm256_permutevar8x32_epi32(p1, order), fl));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q2 + b * kQBlock), _mm256_xor_si256(_mm256_permutevar8x32_epi32(p2, order), fl));
    if (a16)
      for (int i = 0; i < 4; i += 2) {
        const __m256i w0 = _mm256_add_epi32(_mm256_slli_epi32(h[i], 8), l[i]);
        const __m256i w1 = _mm256_add_epi32(_mm256_slli_epi32(h[i + 1], 8), l[i + 1]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(a16 + b * kQBlock + 8 * i),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(w0, w1), 0xD8));
      }
    __m128i c1 = _mm_add_epi32(_mm256_castsi256_si128(acc1), _mm256_extracti128_si256(acc1, 1));
    __m128i c2 = _mm_add_epi32(_mm256_castsi256_si128(acc2), _mm256_extracti128_si256(acc2, 1));
    c1 = _mm_add_epi32(c1, _mm_shuffle_epi32(c1, _MM_SHUFFLE(1, 0, 3, 2)));
    c1 = _mm_add_epi32(c1, _mm_shuffle_epi32(c1, _MM_SHUFFLE(2, 3, 0, 1)));
    c2 = _mm_add_epi32(c2, _mm_shuffle_epi32(c2, _MM_SHUFFLE(1, 0, 3, 2)));
    c2 = _mm_add_epi32(c2, _mm_shuffle_epi32(c2, _MM_SHUFFLE(2, 3, 0, 1)));
    d1[b] = dd;
    d2[b] = dd / 256.f;
    s1[b] = _mm_cvtsi128_si32(c1);
    s2[b] = _mm_cvtsi128_si32(c2);
  }
}
#define FC_ACT_AVX2 1
#endif
}  // namespace

void quantize_act_planes(const float* x, int64_t K, int8_t* q, float* d, int32_t* s, int16_t* a16, bool flip,
                         bool vector) {
  const int64_t nb = K / kQBlock;
#ifdef FC_ACT_AVX2
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  if (vector && avx2) return quantize_act_row_avx2(x, K, q, q + K, d, d + nb, s, s + nb, a16, flip);
#else
  (void)vector;
#endif
  quantize_act_row(x, K, q, q + K, d, d + nb, s, s + nb, a16);
  if (flip)
    for (int64_t i = 0; i < 2 * K; i++) q[i] = int8_t(uint8_t(q[i]) ^ 0x80u);
}

/** Activation elements from which their planes are computed by the pool (below: ~50 µs of single-threaded work). */
constexpr int64_t kParallelPlanesMin = int64_t(1) << 17;

void qlinear(ThreadPool& pool, const QKernels& kk, const float* A, int64_t lda, int64_t T, const QMat& W,
             const float* bias, float* C, int64_t ldc) {
  const QKernels& k = kk.small && T < kk.small_below ? *kk.small : kk;
  // Two int8 planes per token (≈ 16-bit activations, see QAct); both sit in one register tile, so the weights
  // are still streamed once, and the kernels combine them in int32 before the one fp32 scale per block.
  thread_local ActBuf buf;
  const int64_t K = W.cols, nb = W.nb, R = 2 * T;
  const bool use16 = k.a16_q8 && W.type == QType::Q8_0;
  if (buf.q.size() < size_t(R * K)) buf.q.resize(size_t(R * K));
  if (buf.d.size() < size_t(R * nb)) {
    buf.d.resize(size_t(R * nb));
    buf.s.resize(size_t(R * nb));
  }
  if (use16 && buf.a16.size() < size_t(T * K)) buf.a16.resize(size_t(T * K));
  ActBuf& ab = buf;
  const bool ubias = k.uact_q8 && W.type == QType::Q8_0;
  auto planes = [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int8_t* q = ab.q.data() + 2 * t * K;
      float* d = ab.d.data() + 2 * t * nb;
      int32_t* s = ab.s.data() + 2 * t * nb;
      quantize_act_planes(A + t * lda, K, q, d, s, use16 ? ab.a16.data() + t * K : nullptr, ubias, true);
    }
  };
  // Small activations are quantized on the calling thread: a pool round costs a wake-up and a barrier, which on
  // cores shared with other processes (a 2-core gateway) can exceed the whole step's work.
  if (T > 1 && T * K >= kParallelPlanesMin) pool.run(T, 1, planes);
  else planes(0, T);
  QAct act{ab.q.data(), ab.d.data(), ab.s.data(), use16 ? ab.a16.data() : nullptr, T, K, nb};
  const int64_t nt = pool.size();
  // multiples of 4 panels: the widest register tiles span 4 panels
  const int64_t per = k.one_chunk_per_thread ? (W.panels + nt - 1) / nt : W.panels / (nt * 8);
  const int64_t grain = (std::max<int64_t>(T > 4 ? 1 : 2, per) + 3) / 4 * 4;
  pool.run(W.panels, grain, [&](int64_t p0, int64_t p1) { k.gemm(act, W, p0, p1, bias, C, ldc); });
}

QType quant_type_for(const std::string& name, int64_t cols, QType chosen) {
  auto ends = [&](const char* suf) {
    const size_t n = std::strlen(suf);
    return name.size() >= n && name.compare(name.size() - n, n, suf) == 0;
  };
  if (chosen == QType::None || cols % kQBlock != 0) return QType::None;
  if (name == "model.embed_tokens.weight" || name == "lm_head.weight") return QType::Q8_0;
  if (ends("Wqkv.weight") || ends("in_proj.weight") || ends("out_proj.weight") || ends("fc1.weight") ||
      ends("fc2.weight"))
    return chosen;
  return QType::None;
}

QType config_quant_type(const std::string& text) {
  json::Value j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw LoadError(std::string("config.json: ") + e.what());
  }
  const json::Value* qc = j.get("quantization_config");
  if (!qc || qc->is_null()) return QType::None;
  const json::Value* t = qc->get("type");
  if (!qc->is_object() || !t || !t->is_string() || (t->str != "q8_0" && t->str != "q4_0"))
    throw LoadError("config.json: quantization_config.type must be \"q8_0\" or \"q4_0\"");
  const json::Value* bs = qc->get("block_size");
  if (bs && !(bs->is_number() && bs->num == 32))
    throw LoadError("config.json: quantization_config.block_size must be 32");
  return t->str == "q8_0" ? QType::Q8_0 : QType::Q4_0;
}

}  // namespace fc
