// Integer GEMM/GEMV over repacked q8_0 / q4_0 weights (layout in quant.h), one implementation per instruction
// set, picked at run time like the float kernels: scalar (any CPU), AVX2 (vpmaddubsw), AVX-VNNI and AVX-512
// VNNI (vpdpbusd), AMX-INT8 tiles for prefill, aarch64 dotprod (sdot, checked with getauxval). Activations come
// as int8 blocks (QAct).
//
// Per 32-input block b, output row n, token t: the exact int32 sum i = 256·(Σq1·w − off·s1) + (Σq2·w − off·s2)
// over the token's two activation planes (= Σa16·w, off = 8 for q4_0's unsigned values, 0 for q8_0), then
// C[t, n] += float(i) * (d_w[n, b] * d2[t, b]) in fp32, d2 = the plane-2 scale d/256. Every kernel computes
// these same integers and the same fp32 operations per output, so all give bit-identical results.
// Weights of a panel are loaded once per block and used for MR tokens (register tile MR x 8*NP).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "quant.h"

#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FC_X86_QUANT 1
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

namespace fc {

namespace {

inline int32_t ld32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Stores an 8-wide row slice of C (fewer columns at the matrix end), adding the bias when there is one.
inline void store_row(float* c, const float* v, int64_t n, const float* bias) {
  const int64_t m = n < 8 ? n : 8;
  if (bias)
    for (int64_t j = 0; j < m; j++) c[j] = v[j] + bias[j];
  else
    for (int64_t j = 0; j < m; j++) c[j] = v[j];
}

// ---------------------------------------------------------------- scalar

void gemm_scalar(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  const bool q4 = W.type == QType::Q4_0;
  const int64_t nb = W.nb, K = A.K;
  for (int64_t p = p0; p < p1; p++) {
    const int64_t n0 = p * kQPanel, nn = W.rows - n0;
    for (int64_t t = 0; t < A.T; t++) {
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int8_t* a1 = A.q + 2 * t * K;
      const int8_t* a2 = a1 + K;
      for (int64_t b = 0; b < nb; b++) {
        const uint8_t* blk = W.block(p, b);
        const float* ds = W.scales(p, b);
        const float d2 = A.d[(2 * t + 1) * nb + b];
        const int32_t off = q4 ? 8 * (256 * A.s[2 * t * nb + b] + A.s[(2 * t + 1) * nb + b]) : 0;
        for (int r = 0; r < 8; r++) {
          int32_t acc1 = 0, acc2 = 0;
          for (int g = 0; g < 8; g++)
            for (int j = 0; j < 4; j++) {
              const int pos = (g * 8 + r) * 4 + j;
              const int w = q4 ? (pos < 128 ? (blk[pos] & 15) : (blk[pos - 128] >> 4)) : int8_t(blk[pos]);
              acc1 += w * a1[b * kQBlock + g * 4 + j];
              acc2 += w * a2[b * kQBlock + g * 4 + j];
            }
          const int32_t i = acc1 * 256 + acc2 - off;
          f[r] += float(i) * (ds[r] * d2);
        }
      }
      store_row(C + t * ldc + n0, f, nn, bias ? bias + n0 : nullptr);
    }
  }
}

}  // namespace

const QKernels qk_scalar = {"int8-scalar", gemm_scalar};

// ---------------------------------------------------------------- x86 (256-bit integer dot products)

#ifdef FC_X86_QUANT

// Prefetch distance in bytes ahead of the block being read: panels of a thread are contiguous, so this runs
// ahead across page boundaries, where the hardware prefetchers stop. Into L2, not L1: a core has few L1 miss
// buffers (Zen 4: 24 lines in flight, ~11 GB/s at DRAM latency), and a decode GEMV streams 4 panels at once;
// prefetcht1 lifted a q8_0 GEMV from 10-12 to 15-18 GB/s per core and the model's decode by ~20 % (RESULTS).
// 4 KiB rather than 2: q4_0's records are half as long, and at 2 KiB its decode ran 6 % slower (Sapphire Rapids).
constexpr int64_t kQPrefetch = 4096;

// Prefetches the `bytes` of a block kQPrefetch ahead of it into L2, a line at a time.
static inline void prefetch_ahead(const uint8_t* blk, int64_t bytes) {
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(blk) + kQPrefetch + o, _MM_HINT_T1);
}

#define FC_QTILE_BODY                                                                                         \
  /* WS (UA q8_0): 0 computes the blocks' 128·257·Σw, 1 also stores them to wc, 2 loads them from wc */     \
  template <int MR, int NP, bool Q4, int WS = 0>                                                              \
  static inline void qtile(const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias, float* C,  \
                           int64_t ldc, __m256i* wc = nullptr) {                                              \
    const int64_t nb = W.nb, K = A.K;                                                                         \
    const int64_t bb = W.block_bytes();                                                                       \
    __m256 f[MR][NP];                                                                                         \
    for (int t = 0; t < MR; t++)                                                                              \
      for (int q = 0; q < NP; q++) f[t][q] = _mm256_setzero_ps();                                             \
    const __m256i m4 = _mm256_set1_epi8(15), ones = _mm256_set1_epi8(1);                                     \
    (void)ones;                                                                                               \
    for (int64_t b = 0; b < nb; b++) {                                                                        \
      const uint8_t* blk[NP];                                                                                 \
      for (int q = 0; q < NP; q++) {                                                                          \
        blk[q] = W.q + ((p + q) * nb + b) * bb;                                                               \
        prefetch_ahead(blk[q], bb);                                                                           \
      }                                                                                                       \
      __m256i acc[2 * MR][NP], wsum[NP];                                                                      \
      for (int q = 0; q < NP; q++) wsum[q] = _mm256_setzero_si256();                                         \
      for (int t = 0; t < 2 * MR; t++)                                                                        \
        for (int q = 0; q < NP; q++) acc[t][q] = _mm256_setzero_si256();                                      \
      for (int g = 0; g < 8; g++) {                                                                           \
        __m256i w[NP], aw[NP] = {};                                                                           \
        for (int q = 0; q < NP; q++) {                                                                        \
          if (Q4) {                                                                                           \
            __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk[q] + (g & 3) * 32));         \
            w[q] = g < 4 ? _mm256_and_si256(raw, m4) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);      \
          } else {                                                                                            \
            w[q] = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk[q] + g * 32));                      \
            if constexpr (UA && WS < 2) wsum[q] = dot8(wsum[q], ones, w[q]);                                  \
            else aw[q] = _mm256_abs_epi8(w[q]);                                                               \
          }                                                                                                   \
        }                                                                                                     \
        for (int t = 0; t < 2 * MR; t++) {                                                                    \
          const __m256i a = _mm256_set1_epi32(ld32(A.q + (2 * t0 + t) * K + b * kQBlock + g * 4));            \
          for (int q = 0; q < NP; q++) {                                                                      \
            if constexpr (Q4) acc[t][q] = dot4(acc[t][q], w[q], a);                                           \
            else if constexpr (UA) acc[t][q] = dot8(acc[t][q], a, w[q]);                                      \
            else acc[t][q] = dot8(acc[t][q], aw[q], _mm256_sign_epi8(a, w[q]));                               \
          }                                                                                                   \
        }                                                                                                     \
        /* keeps each step's accumulators in registers (GCC otherwise reorders all 8 steps and spills) */   \
        for (int t = 0; t < 2 * MR; t++)                                                                      \
          for (int q = 0; q < NP; q++) __asm__("" : "+x"(acc[t][q]));                                         \
      }                                                                                                       \
      __m256 ds[NP];                                                                                          \
      __m256i corr[NP];                                                                                       \
      for (int q = 0; q < NP; q++) {                                                                          \
        ds[q] = _mm256_load_ps(W.d + ((p + q) * nb + b) * kQPanel);                                           \
        /* both planes' 128·Σw: 128·257·Σw */                                                                 \
        if constexpr (WS == 2) corr[q] = _mm256_load_si256(wc + b * NP + q);                                  \
        else {                                                                                                \
          corr[q] = _mm256_add_epi32(_mm256_slli_epi32(wsum[q], 15), _mm256_slli_epi32(wsum[q], 7));          \
          if constexpr (WS == 1) _mm256_store_si256(wc + b * NP + q, corr[q]);                                \
        }                                                                                                     \
      }                                                                                                       \
      for (int t = 0; t < MR; t++) {                                                                          \
        const int64_t r = (2 * (t0 + t)) * nb + b;                                                            \
        const __m256 d2 = _mm256_set1_ps(A.d[r + nb]);                                                        \
        const __m256i off = _mm256_set1_epi32(Q4 ? 8 * (256 * A.s[r] + A.s[r + nb]) : 0);                     \
        for (int q = 0; q < NP; q++) {                                                                        \
          __m256i i;                                                                                          \
          if constexpr (Q4) i = _mm256_sub_epi32(_mm256_add_epi32(_mm256_slli_epi32(fin4(acc[2 * t][q]), 8), fin4(acc[2 * t + 1][q])), off); \
          else {                                                                                              \
            i = _mm256_add_epi32(_mm256_slli_epi32(acc[2 * t][q], 8), acc[2 * t + 1][q]);                     \
            if constexpr (UA) i = _mm256_sub_epi32(i, corr[q]);                                               \
          }                                                                                                   \
          f[t][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(ds[q], d2), f[t][q]);                \
        }                                                                                                     \
      }                                                                                                       \
    }                                                                                                         \
    for (int t = 0; t < MR; t++)                                                                              \
      for (int q = 0; q < NP; q++) {                                                                          \
        alignas(32) float v[8];                                                                               \
        _mm256_store_ps(v, f[t][q]);                                                                          \
        const int64_t n0 = (p + q) * kQPanel;                                                                 \
        store_row(C + (t0 + t) * ldc + n0, v, W.rows - n0, bias ? bias + n0 : nullptr);                       \
      }                                                                                                       \
  }                                                                                                           \
  template <int R, int NP, bool Q4, int WS = 0>                                                               \
  static inline void rows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias, \
                          float* C, int64_t ldc, __m256i* wc = nullptr) {                                     \
    if constexpr (R > 0) {                                                                                    \
      if (rem == R) qtile<R, NP, Q4, WS>(A, t0, W, p, bias, C, ldc, wc);                                      \
      else rows<R - 1, NP, Q4, WS>(rem, A, t0, W, p, bias, C, ldc, wc);                                       \
    }                                                                                                         \
  }                                                                                                           \
  template <bool Q4>                                                                                          \
  static void gemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C,       \
                     int64_t ldc) {                                                                           \
    int64_t p = p0;                                                                                           \
    /* UA q8_0 with several token tiles: the first tile of a panel group keeps Σw for the others */          \
    const bool cache = UA && !Q4 && A.T > MRW;                                                                \
    thread_local struct WC {                                                                                  \
      __m256i* p = nullptr;                                                                                   \
      int64_t n = 0;                                                                                          \
      ~WC() { std::free(p); }                                                                                 \
    } wcb;                                                                                                    \
    if (cache && wcb.n < W.nb * NPW) {                                                                        \
      void* m = std::aligned_alloc(64, size_t((W.nb * NPW + 1) / 2) * 64);                                     \
      if (!m) throw std::bad_alloc();                                                                         \
      std::free(wcb.p);                                                                                       \
      wcb.p = static_cast<__m256i*>(m);                                                                       \
      wcb.n = W.nb * NPW;                                                                                     \
    }                                                                                                         \
    for (; p + NPW <= p1; p += NPW) {                                                                         \
      if (!cache) {                                                                                           \
        for (int64_t t0 = 0; t0 < A.T; t0 += MRW) {                                                           \
          const int64_t rem = A.T - t0 < MRW ? A.T - t0 : MRW;                                                \
          rows<MRW, NPW, Q4>(rem, A, t0, W, p, bias, C, ldc);                                                 \
        }                                                                                                     \
        continue;                                                                                             \
      }                                                                                                       \
      qtile<MRW, NPW, Q4, 1>(A, 0, W, p, bias, C, ldc, wcb.p);                                                \
      for (int64_t t0 = MRW; t0 < A.T; t0 += MRW) {                                                           \
        const int64_t rem = A.T - t0 < MRW ? A.T - t0 : MRW;                                                  \
        rows<MRW, NPW, Q4, 2>(rem, A, t0, W, p, bias, C, ldc, wcb.p);                                         \
      }                                                                                                       \
    }                                                                                                         \
    for (; p < p1; p++)                                                                                       \
      for (int64_t t0 = 0; t0 < A.T; t0 += MRW) {                                                             \
        const int64_t rem = A.T - t0 < MRW ? A.T - t0 : MRW;                                                  \
        rows<MRW, 1, Q4>(rem, A, t0, W, p, bias, C, ldc);                                                     \
      }                                                                                                       \
  }                                                                                                           \
  [[maybe_unused]] static void gemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias,   \
                                    float* C, int64_t ldc) {                                                  \
    if (W.type == QType::Q4_0) gemm_t<true>(A, W, p0, p1, bias, C, ldc);                                     \
    else gemm_t<false>(A, W, p0, p1, bias, C, ldc);                                                           \
  }

// AVX2: vpmaddubsw (u8 x s8 -> pairs summed in int16). q4_0 values are 0..15, so a whole block's pair sums
// (8 x 2 x 15 x 127 = 30480) stay in int16 and are widened once per block; q8_0 uses |w| x sign(a, w) and
// widens every step (two products reach 2 x 127 x 127).
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace q_avx2 {
constexpr int MRW = 2, NPW = 1;
constexpr bool UA = false;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, a)); }
static inline __m256i fin4(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), _mm256_set1_epi16(1)));
}
FC_QTILE_BODY

// q8_0 against the 16-bit activations (A.a16) with vpmaddwd: weights sign-extended to int16 once per load and
// shared by the tile's MR tokens, 2 vpmaddwd + 2 vpaddd per token, 8 rows and 4 inputs, where the two int8 planes
// cost 2 x (vpsignb + vpmaddubsw + vpmaddwd + vpaddd). The int32 block sums are the planes' 256·Σq1·w + Σq2·w.
inline int64_t ld64(const int16_t* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
template <int MR>
static inline void wtile(const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias, float* C,
                         int64_t ldc) {
  const int64_t nb = W.nb, K = A.K;
  // hadd of the (rows 0-3, rows 4-7) accumulators gives rows in the order 0 1 4 5 2 3 6 7 (its own inverse)
  const __m256i perm = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  __m256 f[MR];
  for (int t = 0; t < MR; t++) f[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = W.q + (p * nb + b) * 256;
    prefetch_ahead(blk, 256);
    __m256i lo[MR], hi[MR];
    for (int t = 0; t < MR; t++) lo[t] = hi[t] = _mm256_setzero_si256();
    for (int g = 0; g < 8; g++) {
      const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + g * 32));
      const __m256i wl = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(raw));
      const __m256i wh = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(raw, 1));
      for (int t = 0; t < MR; t++) {
        const __m256i a = _mm256_set1_epi64x(ld64(A.a16 + (t0 + t) * K + b * kQBlock + g * 4));
        lo[t] = _mm256_add_epi32(lo[t], _mm256_madd_epi16(wl, a));
        hi[t] = _mm256_add_epi32(hi[t], _mm256_madd_epi16(wh, a));
      }
      for (int t = 0; t < MR; t++) __asm__("" : "+x"(lo[t]), "+x"(hi[t]));
    }
    const __m256 ds = _mm256_permutevar8x32_ps(_mm256_load_ps(W.d + (p * nb + b) * kQPanel), perm);
    for (int t = 0; t < MR; t++) {
      const __m256 d2 = _mm256_set1_ps(A.d[(2 * (t0 + t) + 1) * nb + b]);
      f[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_hadd_epi32(lo[t], hi[t])), _mm256_mul_ps(ds, d2), f[t]);
    }
  }
  for (int t = 0; t < MR; t++) {
    alignas(32) float v[8];
    _mm256_store_ps(v, _mm256_permutevar8x32_ps(f[t], perm));
    const int64_t n0 = p * kQPanel;
    store_row(C + (t0 + t) * ldc + n0, v, W.rows - n0, bias ? bias + n0 : nullptr);
  }
}
template <int R>
static inline void wrows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias,
                         float* C, int64_t ldc) {
  if constexpr (R > 0) {
    if (rem == R) wtile<R>(A, t0, W, p, bias, C, ldc);
    else wrows<R - 1>(rem, A, t0, W, p, bias, C, ldc);
  }
}
#ifndef FC_MR16
#define FC_MR16 4
#endif
constexpr int MR16 = FC_MR16;
static void gemm16(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  for (int64_t p = p0; p < p1; p++)
    for (int64_t t0 = 0; t0 < A.T; t0 += MR16) wrows<MR16>(A.T - t0 < MR16 ? A.T - t0 : MR16, A, t0, W, p, bias, C, ldc);
}
static void gemm_a(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  if (W.type == QType::Q8_0 && A.a16) gemm16(A, W, p0, p1, bias, C, ldc);
  else gemm(A, W, p0, p1, bias, C, ldc);
}
}  // namespace q_avx2
#pragma GCC pop_options
const QKernels qk_avx2 = {"int8-avx2", q_avx2::gemm_a, false, true};

// AVX-VNNI (VEX vpdpbusd: u8 x s8, four products summed into int32 lanes), 16 registers: 2 tokens (4 plane rows)
// x 16 output rows, which fits once Σw of later token tiles comes from the first one.
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
namespace q_avxvnni {
constexpr int MRW = 2, NPW = 2;
constexpr bool UA = true;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_dpbusd_avx_epi32(acc, w, a); }
static inline __m256i fin4(__m256i acc) { return acc; }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) { return _mm256_dpbusd_avx_epi32(acc, aw, sa); }
FC_QTILE_BODY
}  // namespace q_avxvnni
#pragma GCC pop_options
const QKernels qk_avxvnni = {"int8-avxvnni", q_avxvnni::gemm, true};

// AVX-512 VNNI on 256-bit vectors (EVEX vpdpbusd): 32 registers allow a 4 x 16 tile (two panels).
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")
#pragma GCC diagnostic push
// GCC 12 flags the undefined upper half inside _mm512_inserti64x4 / _mm512_cvtepi32_ps' own definitions
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace q_avx512vnni {
constexpr int MRW = 2, NPW = 1;
constexpr bool UA = true;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_dpbusd_epi32(acc, w, a); }
static inline __m256i fin4(__m256i acc) { return acc; }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) { return _mm256_dpbusd_epi32(acc, aw, sa); }
FC_QTILE_BODY

// 512-bit tile: a zmm holds two panels' group of 4 inputs (16 output rows; two aligned 32-byte loads), MR
// activation rows x NZ such vectors. Per lane the arithmetic is the 256-bit tile's (exact int32 dot, then the
// same convert / scale / FMA), so a panel gives bit-identical results whichever tile computed it.
static inline __m512i load2(const uint8_t* lo, const uint8_t* hi) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_load_si256(reinterpret_cast<const __m256i*>(lo))),
                            _mm256_load_si256(reinterpret_cast<const __m256i*>(hi)), 1);
}
// WS (q8_0): 0 computes each block's 128·257·Σw with one more vpdpbusd per weight vector, 1 also stores it
// to wc, 2 loads it from wc (a panel group's later token tiles: the weights are the same).
template <int MR, int NZ, bool Q4, int WS = 0>
static inline void ztile(const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias, float* C,
                         int64_t ldc, __m512i* wc = nullptr) {
  const int64_t nb = W.nb, K = A.K, bb = W.block_bytes();
  __m512 f[MR][NZ];
  for (int t = 0; t < MR; t++)
    for (int z = 0; z < NZ; z++) f[t][z] = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(15), ones = _mm512_set1_epi8(1);
  const __m512i shl8 = _mm512_set4_epi32(0x0E0D0C80, 0x0A090880, 0x06050480, 0x02010080);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk[2 * NZ];
    for (int q = 0; q < 2 * NZ; q++) {
      blk[q] = W.q + ((p + q) * nb + b) * bb;
      prefetch_ahead(blk[q], bb);
    }
    __m512i acc[2 * MR][NZ], wsum[NZ];
    for (int z = 0; z < NZ; z++) wsum[z] = _mm512_setzero_si512();
    for (int t = 0; t < 2 * MR; t++)
      for (int z = 0; z < NZ; z++) acc[t][z] = _mm512_setzero_si512();
    for (int g = 0; g < 8; g++) {
      __m512i w[NZ];
      for (int z = 0; z < NZ; z++) {
        if constexpr (Q4) {
          const __m512i raw = load2(blk[2 * z] + (g & 3) * 32, blk[2 * z + 1] + (g & 3) * 32);
          w[z] = g < 4 ? _mm512_and_si512(raw, m4) : _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        } else {
          w[z] = load2(blk[2 * z] + g * 32, blk[2 * z + 1] + g * 32);
          if constexpr (WS < 2) wsum[z] = _mm512_dpbusd_epi32(wsum[z], ones, w[z]);
        }
      }
      for (int t = 0; t < 2 * MR; t++) {
        const __m512i a = _mm512_set1_epi32(ld32(A.q + (2 * t0 + t) * K + b * kQBlock + g * 4));
        for (int z = 0; z < NZ; z++)
          acc[t][z] = Q4 ? _mm512_dpbusd_epi32(acc[t][z], w[z], a) : _mm512_dpbusd_epi32(acc[t][z], a, w[z]);
      }
      for (int t = 0; t < 2 * MR; t++)
        for (int z = 0; z < NZ; z++) __asm__("" : "+v"(acc[t][z]));
    }
    __m512 ds[NZ];
    __m512i corr[NZ];
    for (int z = 0; z < NZ; z++) {
      ds[z] = _mm512_castsi512_ps(load2(reinterpret_cast<const uint8_t*>(W.d + ((p + 2 * z) * nb + b) * kQPanel),
                                        reinterpret_cast<const uint8_t*>(W.d + ((p + 2 * z + 1) * nb + b) * kQPanel)));
      if constexpr (Q4) corr[z] = _mm512_setzero_si512();
      else if constexpr (WS == 2) corr[z] = _mm512_load_si512(wc + b * NZ + z);
      else {
        corr[z] = _mm512_add_epi32(_mm512_slli_epi32(wsum[z], 15), _mm512_slli_epi32(wsum[z], 7));
        if constexpr (WS == 1) _mm512_store_si512(wc + b * NZ + z, corr[z]);
      }
    }
    for (int t = 0; t < MR; t++) {
      const int64_t r = (2 * (t0 + t)) * nb + b;
      const __m512 d2 = _mm512_set1_ps(A.d[r + nb]);
      const __m512i off = _mm512_set1_epi32(Q4 ? 8 * (256 * A.s[r] + A.s[r + nb]) : 0);
      for (int z = 0; z < NZ; z++) {
        // acc << 8 as a byte shuffle (port 5) rather than a shift (port 0, where vpdpbusd runs)
        const __m512i i = _mm512_sub_epi32(_mm512_add_epi32(_mm512_shuffle_epi8(acc[2 * t][z], shl8), acc[2 * t + 1][z]),
                                           Q4 ? off : corr[z]);
        f[t][z] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(ds[z], d2), f[t][z]);
      }
    }
  }
  for (int t = 0; t < MR; t++)
    for (int z = 0; z < NZ; z++) {
      alignas(64) float v[16];
      _mm512_store_ps(v, f[t][z]);
      for (int h = 0; h < 2; h++) {
        const int64_t n0 = (p + 2 * z + h) * kQPanel;
        store_row(C + (t0 + t) * ldc + n0, v + 8 * h, W.rows - n0, bias ? bias + n0 : nullptr);
      }
    }
}
template <int R, int NZ, bool Q4, int WS = 0>
static inline void zrows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias,
                         float* C, int64_t ldc, __m512i* wc = nullptr) {
  if constexpr (R > 0) {
    if (rem == R) ztile<R, NZ, Q4, WS>(A, t0, W, p, bias, C, ldc, wc);
    else zrows<R - 1, NZ, Q4, WS>(rem, A, t0, W, p, bias, C, ldc, wc);
  }
}
#ifndef FC_MRZ
#define FC_MRZ 3
#endif
constexpr int MRZ = FC_MRZ;  // tokens per tile (two plane rows each)
template <bool Q4>
static void zgemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  int64_t p = p0;
  // per thread, 64-byte aligned: 2 vectors per block of the current panel group
  thread_local struct WC {
    __m512i* p = nullptr;
    int64_t n = 0;
    ~WC() { std::free(p); }
  } wcb;
  if (!Q4 && A.T > MRZ && wcb.n < W.nb * 2) {
    void* m = std::aligned_alloc(64, size_t(W.nb * 2) * 64);
    if (!m) throw std::bad_alloc();
    std::free(wcb.p);
    wcb.p = static_cast<__m512i*>(m);
    wcb.n = W.nb * 2;
  }
  const int64_t gbytes = 4 * W.nb * W.block_bytes(), ntiles = (A.T + MRZ - 1) / MRZ;
  const int64_t per = (gbytes / 64 + ntiles - 2) / std::max<int64_t>(1, ntiles - 1);  // lines per tile
  for (; p + 4 <= p1; p += 4) {
    // Across the token tiles of a panel group, the next group's weights are prefetched into L2 a slice per
    // tile, so its first tile does not wait on memory (later tiles find the weights in cache anyway).
    const uint8_t* next = p + 8 <= p1 && ntiles > 1 ? W.q + (p + 4) * W.nb * W.block_bytes() : nullptr;
    auto ahead = [&](int64_t i) {
      if (next)
        for (int64_t l = i * per, e = std::min((i + 1) * per, gbytes / 64); l < e; l++)
          _mm_prefetch(reinterpret_cast<const char*>(next) + l * 64, _MM_HINT_T1);
    };
    if (Q4 || A.T <= MRZ) {
      for (int64_t t0 = 0; t0 < A.T; t0 += MRZ) {
        ahead(t0 / MRZ);
        zrows<MRZ, 2, Q4>(A.T - t0 < MRZ ? A.T - t0 : MRZ, A, t0, W, p, bias, C, ldc);
      }
      continue;
    }
    ztile<MRZ, 2, Q4, 1>(A, 0, W, p, bias, C, ldc, wcb.p);
    for (int64_t t0 = MRZ; t0 < A.T; t0 += MRZ) {
      ahead(t0 / MRZ - 1);
      zrows<MRZ, 2, Q4, 2>(A.T - t0 < MRZ ? A.T - t0 : MRZ, A, t0, W, p, bias, C, ldc, wcb.p);
    }
  }
  for (; p + 2 <= p1; p += 2)
    for (int64_t t0 = 0; t0 < A.T; t0 += MRZ)
      zrows<MRZ, 1, Q4>(A.T - t0 < MRZ ? A.T - t0 : MRZ, A, t0, W, p, bias, C, ldc);
  gemm_t<Q4>(A, W, p, p1, bias, C, ldc);
}
static void zgemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  if (W.type == QType::Q4_0) zgemm_t<true>(A, W, p0, p1, bias, C, ldc);
  else zgemm_t<false>(A, W, p0, p1, bias, C, ldc);
}
}  // namespace q_avx512vnni
#pragma GCC diagnostic pop
#pragma GCC pop_options
const QKernels qk_avx512vnni = {"int8-avx512vnni", q_avx512vnni::zgemm, true};

// AMX-INT8 (Sapphire Rapids and later): tile dot products of 16 tokens x 32 inputs (one block) by 32 inputs x 16
// outputs (two panels) into int32, per plane, 256 products per instruction row. Each block's two int32 tiles are
// stored and combined with AVX-512 into the same fp32 accumulation as the vector kernels (exact int32 block sum,
// convert, scale, FMA in block order), so results stay bit-identical. Activation planes are signed (tdpbssd;
// q4_0's unsigned weights: tdpbsud). Fewer than kAmxMinT tokens run on the AVX-512 VNNI kernel.
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni,amx-tile,amx-int8")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace q_amx {
constexpr int64_t kAmxMinT = 16;  // a tile's tokens: fewer waste the tile unit (VNNI is faster below)
constexpr int MT = 16;        // tokens per tile
constexpr int AB = MT * 32;   // bytes of a plane's tile per block
constexpr int NG = 4;         // panels per group: two weight tiles of 16 outputs

struct alignas(64) TileCfg {
  uint8_t palette = 1, start = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
// tmm0/1: the token tile's planes 1 and 2 (16 rows x 32 bytes: one block); tmm2/3: the block's weights of two
// panels each in VNNI order (8 rows of 4 inputs x 16 outputs); tmm4-7: the int32 sums of plane 1 and 2 against
// either weight tile. The four products of a block are independent, so they overlap in the tile unit.
static void configure() {
  TileCfg c;
  for (int i = 0; i < 8; i++) {
    c.rows[i] = i == 2 || i == 3 ? 8 : MT;
    c.colsb[i] = i < 2 ? 32 : 64;
  }
  _tile_loadconfig(&c);
}

// Per-thread scratch, 64-byte aligned, grown on demand.
struct Scratch {
  uint8_t* p = nullptr;
  size_t n = 0;
  ~Scratch() { std::free(p); }
  uint8_t* get(size_t bytes) {
    if (bytes > n) {
      void* m = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (!m) throw std::bad_alloc();
      std::free(p);
      p = static_cast<uint8_t*>(m);
      n = bytes;
    }
    return p;
  }
};

// Panels p .. p+np-1 (np <= 4, the rest zero) of every block into two weight tiles: tile h, row g = panel
// p+2h's group g (8 outputs x 4 inputs, 32 bytes) then panel p+2h+1's; q4_0 unpacked to one value per byte.
template <bool Q4>
static void repack_group(const QMat& W, int64_t p, int64_t np, uint8_t* out) {
  const int64_t nb = W.nb, bb = W.block_bytes();
  const __m256i m4 = _mm256_set1_epi8(15);
  for (int64_t b = 0; b < nb; b++) {
    uint8_t* o = out + b * 1024;
    for (int q = 0; q < NG; q++) {
      uint8_t* dst = o + (q >> 1) * 512 + (q & 1) * 32;
      if (q >= np) {
        for (int g = 0; g < 8; g++) _mm256_store_si256(reinterpret_cast<__m256i*>(dst + g * 64), _mm256_setzero_si256());
        continue;
      }
      const uint8_t* blk = W.q + ((p + q) * nb + b) * bb;
      _mm_prefetch(reinterpret_cast<const char*>(blk) + 2048, _MM_HINT_T1);
      if (bb > 128) _mm_prefetch(reinterpret_cast<const char*>(blk) + 2048 + 128, _MM_HINT_T1);
      for (int g = 0; g < 8; g++) {
        __m256i v;
        if constexpr (Q4) {
          const __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + (g & 3) * 32));
          v = g < 4 ? _mm256_and_si256(raw, m4) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        } else {
          v = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + g * 32));
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + g * 64), v);
      }
    }
  }
}

// Block b's four products: the token tile's planes at `a` (per block 1 KiB: plane 1 of the 16 tokens, 32 bytes
// each, then plane 2) against the two weight tiles at wb.
template <bool Q4>
static inline void products(const int8_t* a, const uint8_t* wb, int64_t b) {
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  _tile_loadd(0, a + b * 2 * AB, 32);
  _tile_loadd(1, a + b * 2 * AB + AB, 32);
  _tile_loadd(2, wb + b * 1024, 64);
  _tile_loadd(3, wb + b * 1024 + 512, 64);
  if constexpr (Q4) {
    _tile_dpbsud(4, 0, 2);
    _tile_dpbsud(5, 1, 2);
    _tile_dpbsud(6, 0, 3);
    _tile_dpbsud(7, 1, 3);
  } else {
    _tile_dpbssd(4, 0, 2);
    _tile_dpbssd(5, 1, 2);
    _tile_dpbssd(6, 0, 3);
    _tile_dpbssd(7, 1, 3);
  }
}

template <bool Q4>
static void gemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  const int64_t nb = W.nb, K = A.K, T = A.T, ntile = (T + MT - 1) / MT;
  // wb: a panel group's weights; at: the activation planes in tile order (token tile, block, plane, token;
  // contiguous tile loads), padded to whole tiles with zeros; dd / off: per token tile, block and token the
  // plane-2 scale and q4_0's offset (zero for padding tokens); cb: two buffers of a block's int32 sums per
  // plane, 16 tokens x 32 outputs.
  const size_t wbytes = size_t(nb) * 1024, abytes = size_t(ntile * nb) * 2 * AB, sbytes = size_t(ntile * nb * MT) * 4;
  thread_local Scratch scratch;
  uint8_t* base = scratch.get(wbytes + abytes + 2 * sbytes + size_t(MT) * 512);
  uint8_t* wb = base;
  int8_t* at = reinterpret_cast<int8_t*>(base + wbytes);
  float* dd = reinterpret_cast<float*>(base + wbytes + abytes);
  int32_t* off = reinterpret_cast<int32_t*>(base + wbytes + abytes + sbytes);
  int32_t* cb = reinterpret_cast<int32_t*>(base + wbytes + abytes + 2 * sbytes);
  for (int64_t i = 0; i < ntile; i++)
    for (int64_t b = 0; b < nb; b++)
      for (int t = 0; t < MT; t++) {
        const int64_t tok = i * MT + t, j = (i * nb + b) * MT + t;
        const int64_t r = 2 * tok * nb + b;
        dd[j] = tok < T ? A.d[r + nb] : 0.f;
        off[j] = tok < T && Q4 ? 8 * (256 * A.s[r] + A.s[r + nb]) : 0;
      }
  for (int64_t tok = 0; tok < ntile * MT; tok++)
    for (int pl = 0; pl < 2; pl++) {
      const int8_t* src = A.q + (2 * tok + pl) * K;
      int8_t* dst = at + (tok / MT) * nb * 2 * AB + pl * AB + (tok % MT) * 32;
      for (int64_t b = 0; b < nb; b++) {
        const __m256i v = tok < T ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + b * 32)) : _mm256_setzero_si256();
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + b * 2 * AB), v);
      }
    }
  const __m512i shl8 = _mm512_set4_epi32(0x0E0D0C80, 0x0A090880, 0x06050480, 0x02010080);
  configure();
  for (int64_t p = p0; p < p1; p += NG) {
    const int64_t np = std::min<int64_t>(NG, p1 - p);
    repack_group<Q4>(W, p, np, wb);
    for (int64_t i = 0; i < ntile; i++) {
      const int64_t t0 = i * MT;
      // The tile's real tokens: a call's last tile is padded with zero tokens, whose sums are not scaled.
      const int m = int(T - t0 < MT ? T - t0 : MT);
      const int8_t* a = at + i * nb * 2 * AB;
      __m512 f[MT * 2];
      for (int j = 0; j < MT * 2; j++) f[j] = _mm512_setzero_ps();
      // One block behind the tile unit: block b-1's stored sums are scaled after block b's products are issued.
      auto scale = [&](int64_t b, const int32_t* c1, const int32_t* c2) {
        __m512 ds[2];
        for (int h = 0; h < 2; h++) {
          const int64_t q0 = p + 2 * h, q1 = q0 + 1;
          const __m256 d0 = q0 - p < np ? _mm256_load_ps(W.d + (q0 * nb + b) * kQPanel) : _mm256_setzero_ps();
          const __m256 d1 = q1 - p < np ? _mm256_load_ps(W.d + (q1 * nb + b) * kQPanel) : _mm256_setzero_ps();
          ds[h] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(d0)), _mm256_castps_pd(d1), 1));
        }
        const float* d2 = dd + (i * nb + b) * MT;
        const int32_t* o = off + (i * nb + b) * MT;
        for (int t = 0; t < m; t++) {
          const __m512 s2 = _mm512_set1_ps(d2[t]);
          for (int h = 0; h < 2; h++) {
            const int j = t * 32 + h * 16;
            __m512i v = _mm512_add_epi32(_mm512_shuffle_epi8(_mm512_load_si512(c1 + j), shl8), _mm512_load_si512(c2 + j));
            if constexpr (Q4) v = _mm512_sub_epi32(v, _mm512_set1_epi32(o[t]));
            f[2 * t + h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(ds[h], s2), f[2 * t + h]);
          }
        }
      };
      products<Q4>(a, wb, 0);
      for (int64_t b = 0; b < nb; b++) {
        int32_t* c = cb + (b & 1) * MT * 64;
        _tile_stored(4, c, 128);
        _tile_stored(6, c + 16, 128);
        _tile_stored(5, c + MT * 32, 128);
        _tile_stored(7, c + MT * 32 + 16, 128);
        if (b + 1 < nb) products<Q4>(a, wb, b + 1);
        if (b > 0) scale(b - 1, cb + ((b - 1) & 1) * MT * 64, cb + ((b - 1) & 1) * MT * 64 + MT * 32);
      }
      scale(nb - 1, cb + ((nb - 1) & 1) * MT * 64, cb + ((nb - 1) & 1) * MT * 64 + MT * 32);
      for (int t = 0; t < m; t++) {
        alignas(64) float v[32];
        _mm512_store_ps(v, f[2 * t]);
        _mm512_store_ps(v + 16, f[2 * t + 1]);
        for (int q = 0; q < np; q++) {
          const int64_t n0 = (p + q) * kQPanel;
          store_row(C + (t0 + t) * ldc + n0, v + q * 8, W.rows - n0, bias ? bias + n0 : nullptr);
        }
      }
    }
  }
  _tile_release();
}
static void gemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  if (W.type == QType::Q4_0) gemm_t<true>(A, W, p0, p1, bias, C, ldc);
  else gemm_t<false>(A, W, p0, p1, bias, C, ldc);
}
}  // namespace q_amx
#pragma GCC diagnostic pop
#pragma GCC pop_options
const QKernels qk_amx = {"int8-amx", q_amx::gemm, false, false, &qk_avx512vnni, q_amx::kAmxMinT, true};

bool amx_int8_usable() {
  static const bool ok = [] {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return false;  // XTILECFG and XTILEDATA enabled by the OS
    // Linux: tile data is off per process until asked for (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return ok;
}

#else
bool amx_int8_usable() { return false; }
#endif  // FC_X86_QUANT

// ---------------------------------------------------------------- aarch64 dotprod (Armv8.2 sdot)

#if defined(__aarch64__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
namespace q_dotprod {
constexpr int MRW = 2;  // tokens per tile (two plane rows each)
template <int MR, bool Q4>
static inline void qtile(const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias, float* C,
                         int64_t ldc) {
  const int64_t nb = W.nb, K = A.K, bb = W.block_bytes();
  float32x4_t f[MR][2];
  for (int t = 0; t < MR; t++) f[t][0] = f[t][1] = vdupq_n_f32(0.f);
  const uint8x16_t m4 = vdupq_n_u8(15);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = W.q + (p * nb + b) * bb;
    for (int64_t o = 0; o < bb; o += 64) __builtin_prefetch(blk + 2048 + o);
    int32x4_t acc[2 * MR][2];
    for (int t = 0; t < 2 * MR; t++) acc[t][0] = acc[t][1] = vdupq_n_s32(0);
    for (int g = 0; g < 8; g++) {
      int8x16_t w0, w1;
      if (Q4) {
        const uint8x16_t r0 = vld1q_u8(blk + (g & 3) * 32), r1 = vld1q_u8(blk + (g & 3) * 32 + 16);
        w0 = vreinterpretq_s8_u8(g < 4 ? vandq_u8(r0, m4) : vshrq_n_u8(r0, 4));
        w1 = vreinterpretq_s8_u8(g < 4 ? vandq_u8(r1, m4) : vshrq_n_u8(r1, 4));
      } else {
        w0 = vld1q_s8(reinterpret_cast<const int8_t*>(blk) + g * 32);
        w1 = vld1q_s8(reinterpret_cast<const int8_t*>(blk) + g * 32 + 16);
      }
      for (int t = 0; t < 2 * MR; t++) {
        const int8x16_t a = vreinterpretq_s8_s32(vdupq_n_s32(ld32(A.q + (2 * t0 + t) * K + b * kQBlock + g * 4)));
        acc[t][0] = vdotq_s32(acc[t][0], w0, a);
        acc[t][1] = vdotq_s32(acc[t][1], w1, a);
      }
    }
    const float* dsp = W.d + (p * nb + b) * kQPanel;
    const float32x4_t ds0 = vld1q_f32(dsp), ds1 = vld1q_f32(dsp + 4);
    for (int t = 0; t < MR; t++) {
      const int64_t r = (2 * (t0 + t)) * nb + b;
      const float32x4_t d2 = vdupq_n_f32(A.d[r + nb]);
      const int32x4_t off = vdupq_n_s32(Q4 ? 8 * (256 * A.s[r] + A.s[r + nb]) : 0);
      for (int h = 0; h < 2; h++) {
        const int32x4_t i = vsubq_s32(vaddq_s32(vshlq_n_s32(acc[2 * t][h], 8), acc[2 * t + 1][h]), off);
        f[t][h] = vfmaq_f32(f[t][h], vcvtq_f32_s32(i), vmulq_f32(h ? ds1 : ds0, d2));
      }
    }
  }
  for (int t = 0; t < MR; t++) {
    float v[8];
    vst1q_f32(v, f[t][0]);
    vst1q_f32(v + 4, f[t][1]);
    const int64_t n0 = p * kQPanel;
    store_row(C + (t0 + t) * ldc + n0, v, W.rows - n0, bias ? bias + n0 : nullptr);
  }
}
template <int R, bool Q4>
static inline void rows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, const float* bias,
                        float* C, int64_t ldc) {
  if constexpr (R > 0) {
    if (rem == R) qtile<R, Q4>(A, t0, W, p, bias, C, ldc);
    else rows<R - 1, Q4>(rem, A, t0, W, p, bias, C, ldc);
  }
}
template <bool Q4>
static void gemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  for (int64_t p = p0; p < p1; p++)
    for (int64_t t0 = 0; t0 < A.T; t0 += MRW)
      rows<MRW, Q4>(A.T - t0 < MRW ? A.T - t0 : MRW, A, t0, W, p, bias, C, ldc);
}
static void gemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc) {
  if (W.type == QType::Q4_0) gemm_t<true>(A, W, p0, p1, bias, C, ldc);
  else gemm_t<false>(A, W, p0, p1, bias, C, ldc);
}
}  // namespace q_dotprod
#pragma GCC pop_options
const QKernels qk_dotprod = {"int8-dotprod", q_dotprod::gemm};
#endif

// Which integer kernels go with a float kernel table (FLASHCHECK_ISA picks the float table; see kernels.cc).
const QKernels& qkernels_for(const char* isa) {
  const std::string s = isa ? isa : "";
#ifdef FC_X86_QUANT
  __builtin_cpu_init();
  const bool vnni512 = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") &&
                       __builtin_cpu_supports("avx512bw");
  const bool avxvnni = __builtin_cpu_supports("avxvnni");
  if (s == "avx512-amx" && vnni512 && amx_int8_usable()) return qk_amx;
  if (s == "avx512") return vnni512 ? qk_avx512vnni : avxvnni ? qk_avxvnni : qk_avx2;
  if (s == "avx2-vnni") return avxvnni ? qk_avxvnni : vnni512 ? qk_avx512vnni : qk_avx2;
  if (s == "avx2") return qk_avx2;
#endif
#if defined(__aarch64__)
  if (s == "dotprod" && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP)) return qk_dotprod;
#endif
  return qk_scalar;
}

}  // namespace fc
