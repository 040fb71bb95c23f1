// Integer GEMM/GEMV over repacked q8_0 / q4_0 weights (layout in quant.h), one implementation per instruction
// set, picked at run time like the float kernels: scalar (any CPU), AVX2 (vpmaddubsw), AVX-VNNI and AVX-512
// VNNI (vpdpbusd), aarch64 dotprod (sdot, checked with getauxval). Activations come as int8 blocks (QAct).
//
// Per 32-input block b, output row n, activation row t: an exact int32 dot product of the int8 values,
// then C[t, n] += float(dot - off*sum_a) * (d_w[n, b] * d_a[t, b]) in fp32 (off = 8 for q4_0, 0 for q8_0).
// Weights of a panel are loaded once per block and used for MR activation rows (register tile MR x 8*NP).
#include <cstring>
#include <string>

#include "quant.h"

#if defined(__x86_64__) && !defined(FLASHCHECK_NO_DISPATCH)
#include <immintrin.h>
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

// Stores an 8-wide row slice of C (fewer columns at the matrix end).
inline void store_row(float* c, const float* v, int64_t n) {
  if (n >= 8) std::memcpy(c, v, 32);
  else
    for (int64_t j = 0; j < n; j++) c[j] = v[j];
}

// ---------------------------------------------------------------- scalar

void gemm_scalar(const QAct& A, const QMat& W, int64_t p0, int64_t p1, float* C, int64_t ldc) {
  const bool q4 = W.type == QType::Q4_0;
  const int64_t nb = W.nb, K = A.K;
  for (int64_t p = p0; p < p1; p++) {
    const int64_t n0 = p * kQPanel, nn = W.rows - n0;
    for (int64_t t = 0; t < A.T; t++) {
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int8_t* a = A.q + t * K;
      for (int64_t b = 0; b < nb; b++) {
        const uint8_t* blk = W.block(p, b);
        const float* ds = W.scales(p, b);
        const float da = A.d[t * nb + b];
        for (int r = 0; r < 8; r++) {
          int32_t acc = 0;
          for (int g = 0; g < 8; g++)
            for (int j = 0; j < 4; j++) {
              const int pos = (g * 8 + r) * 4 + j;
              const int w = q4 ? (pos < 128 ? (blk[pos] & 15) : (blk[pos - 128] >> 4)) : int8_t(blk[pos]);
              acc += w * a[b * kQBlock + g * 4 + j];
            }
          if (q4) acc -= 8 * A.s[t * nb + b];
          f[r] += float(acc) * (ds[r] * da);
        }
      }
      store_row(C + t * ldc + n0, f, nn);
    }
  }
}

}  // namespace

const QKernels qk_scalar = {"int8-scalar", gemm_scalar};

// ---------------------------------------------------------------- x86 (256-bit integer dot products)

#ifdef FC_X86_QUANT

// Prefetch distance in bytes ahead of the block being read: panels of a thread are contiguous, so this runs
// ahead across page boundaries, where the hardware prefetchers stop.
constexpr int64_t kQPrefetch = 2048;

#define FC_QTILE_BODY                                                                                         \
  template <int MR, int NP, bool Q4>                                                                          \
  static inline void qtile(const QAct& A, int64_t t0, const QMat& W, int64_t p, float* C, int64_t ldc) {      \
    const int64_t nb = W.nb, K = A.K;                                                                         \
    const int64_t bb = W.block_bytes();                                                                       \
    __m256 f[MR][NP];                                                                                         \
    for (int t = 0; t < MR; t++)                                                                              \
      for (int q = 0; q < NP; q++) f[t][q] = _mm256_setzero_ps();                                             \
    const __m256i m4 = _mm256_set1_epi8(15);                                                                  \
    for (int64_t b = 0; b < nb; b++) {                                                                        \
      const uint8_t* blk[NP];                                                                                 \
      for (int q = 0; q < NP; q++) {                                                                          \
        blk[q] = W.q + ((p + q) * nb + b) * bb;                                                               \
        for (int64_t o = 0; o < bb; o += 64) _mm_prefetch(reinterpret_cast<const char*>(blk[q]) + kQPrefetch + o, _MM_HINT_T0); \
      }                                                                                                       \
      __m256i acc[MR][NP];                                                                                    \
      for (int t = 0; t < MR; t++)                                                                            \
        for (int q = 0; q < NP; q++) acc[t][q] = _mm256_setzero_si256();                                      \
      for (int g = 0; g < 8; g++) {                                                                           \
        __m256i w[NP], aw[NP] = {};                                                                           \
        for (int q = 0; q < NP; q++) {                                                                        \
          if (Q4) {                                                                                           \
            __m256i raw = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk[q] + (g & 3) * 32));         \
            w[q] = g < 4 ? _mm256_and_si256(raw, m4) : _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);      \
          } else {                                                                                            \
            w[q] = _mm256_load_si256(reinterpret_cast<const __m256i*>(blk[q] + g * 32));                      \
            aw[q] = _mm256_abs_epi8(w[q]);                                                                    \
          }                                                                                                   \
        }                                                                                                     \
        for (int t = 0; t < MR; t++) {                                                                        \
          const __m256i a = _mm256_set1_epi32(ld32(A.q + (t0 + t) * K + b * kQBlock + g * 4));                \
          for (int q = 0; q < NP; q++) {                                                                      \
            if constexpr (Q4) acc[t][q] = dot4(acc[t][q], w[q], a);                                           \
            else acc[t][q] = dot8(acc[t][q], aw[q], _mm256_sign_epi8(a, w[q]));                               \
          }                                                                                                   \
        }                                                                                                     \
        /* keeps each step's accumulators in registers (GCC otherwise reorders all 8 steps and spills) */   \
        for (int t = 0; t < MR; t++)                                                                          \
          for (int q = 0; q < NP; q++) __asm__("" : "+x"(acc[t][q]));                                         \
      }                                                                                                       \
      __m256 ds[NP];                                                                                          \
      for (int q = 0; q < NP; q++) ds[q] = _mm256_load_ps(W.d + ((p + q) * nb + b) * kQPanel);               \
      for (int t = 0; t < MR; t++) {                                                                          \
        const __m256 da = _mm256_set1_ps(A.d[(t0 + t) * nb + b]);                                             \
        const __m256i off = _mm256_set1_epi32(Q4 ? 8 * A.s[(t0 + t) * nb + b] : 0);                           \
        for (int q = 0; q < NP; q++) {                                                                        \
          __m256i i = Q4 ? _mm256_sub_epi32(fin4(acc[t][q]), off) : acc[t][q];                                \
          f[t][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(ds[q], da), f[t][q]);                \
        }                                                                                                     \
      }                                                                                                       \
    }                                                                                                         \
    for (int t = 0; t < MR; t++)                                                                              \
      for (int q = 0; q < NP; q++) {                                                                          \
        alignas(32) float v[8];                                                                               \
        _mm256_store_ps(v, f[t][q]);                                                                          \
        const int64_t n0 = (p + q) * kQPanel;                                                                 \
        store_row(C + (t0 + t) * ldc + n0, v, W.rows - n0);                                                   \
      }                                                                                                       \
  }                                                                                                           \
  template <int R, int NP, bool Q4>                                                                           \
  static inline void rows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, float* C, int64_t ldc) { \
    if constexpr (R > 0) {                                                                                    \
      if (rem == R) qtile<R, NP, Q4>(A, t0, W, p, C, ldc);                                                    \
      else rows<R - 1, NP, Q4>(rem, A, t0, W, p, C, ldc);                                                     \
    }                                                                                                         \
  }                                                                                                           \
  template <bool Q4>                                                                                          \
  static void gemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, float* C, int64_t ldc) {           \
    int64_t p = p0;                                                                                           \
    for (; p + NPW <= p1; p += NPW)                                                                           \
      for (int64_t t0 = 0; t0 < A.T; t0 += MRW) {                                                             \
        const int64_t rem = A.T - t0 < MRW ? A.T - t0 : MRW;                                                  \
        rows<MRW, NPW, Q4>(rem, A, t0, W, p, C, ldc);                                                         \
      }                                                                                                       \
    for (; p < p1; p++)                                                                                       \
      for (int64_t t0 = 0; t0 < A.T; t0 += MRW) {                                                             \
        const int64_t rem = A.T - t0 < MRW ? A.T - t0 : MRW;                                                  \
        rows<MRW, 1, Q4>(rem, A, t0, W, p, C, ldc);                                                           \
      }                                                                                                       \
  }                                                                                                           \
  static void gemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, float* C, int64_t ldc) {             \
    if (W.type == QType::Q4_0) gemm_t<true>(A, W, p0, p1, C, ldc);                                           \
    else gemm_t<false>(A, W, p0, p1, C, ldc);                                                                 \
  }

// AVX2: vpmaddubsw (u8 x s8 -> pairs summed in int16). q4_0 values are 0..15, so a whole block's pair sums
// (8 x 2 x 15 x 127 = 30480) stay in int16 and are widened once per block; q8_0 uses |w| x sign(a, w) and
// widens every step (two products reach 2 x 127 x 127).
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace q_avx2 {
constexpr int MRW = 4, NPW = 1;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, a)); }
static inline __m256i fin4(__m256i acc) { return _mm256_madd_epi16(acc, _mm256_set1_epi16(1)); }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sa), _mm256_set1_epi16(1)));
}
FC_QTILE_BODY
}  // namespace q_avx2
#pragma GCC pop_options
const QKernels qk_avx2 = {"int8-avx2", q_avx2::gemm};

// AVX-VNNI (VEX vpdpbusd: u8 x s8, four products summed into int32 lanes), 16 registers.
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
namespace q_avxvnni {
constexpr int MRW = 4, NPW = 1;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_dpbusd_avx_epi32(acc, w, a); }
static inline __m256i fin4(__m256i acc) { return acc; }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) { return _mm256_dpbusd_avx_epi32(acc, aw, sa); }
FC_QTILE_BODY
}  // namespace q_avxvnni
#pragma GCC pop_options
const QKernels qk_avxvnni = {"int8-avxvnni", q_avxvnni::gemm};

// AVX-512 VNNI on 256-bit vectors (EVEX vpdpbusd): 32 registers allow a 4 x 16 tile (two panels).
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512vl,avx512bw,avx512vnni")
namespace q_avx512vnni {
constexpr int MRW = 4, NPW = 2;
static inline __m256i dot4(__m256i acc, __m256i w, __m256i a) { return _mm256_dpbusd_epi32(acc, w, a); }
static inline __m256i fin4(__m256i acc) { return acc; }
static inline __m256i dot8(__m256i acc, __m256i aw, __m256i sa) { return _mm256_dpbusd_epi32(acc, aw, sa); }
FC_QTILE_BODY
}  // namespace q_avx512vnni
#pragma GCC pop_options
const QKernels qk_avx512vnni = {"int8-avx512vnni", q_avx512vnni::gemm};

#endif  // FC_X86_QUANT

// ---------------------------------------------------------------- aarch64 dotprod (Armv8.2 sdot)

#if defined(__aarch64__)
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
namespace q_dotprod {
constexpr int MRW = 4;
template <int MR, bool Q4>
static inline void qtile(const QAct& A, int64_t t0, const QMat& W, int64_t p, float* C, int64_t ldc) {
  const int64_t nb = W.nb, K = A.K, bb = W.block_bytes();
  float32x4_t f[MR][2];
  for (int t = 0; t < MR; t++) f[t][0] = f[t][1] = vdupq_n_f32(0.f);
  const uint8x16_t m4 = vdupq_n_u8(15);
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* blk = W.q + (p * nb + b) * bb;
    for (int64_t o = 0; o < bb; o += 64) __builtin_prefetch(blk + 2048 + o);
    int32x4_t acc[MR][2];
    for (int t = 0; t < MR; t++) acc[t][0] = acc[t][1] = vdupq_n_s32(0);
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
      for (int t = 0; t < MR; t++) {
        const int8x16_t a = vreinterpretq_s8_s32(vdupq_n_s32(ld32(A.q + (t0 + t) * K + b * kQBlock + g * 4)));
        acc[t][0] = vdotq_s32(acc[t][0], w0, a);
        acc[t][1] = vdotq_s32(acc[t][1], w1, a);
      }
    }
    const float* dsp = W.d + (p * nb + b) * kQPanel;
    const float32x4_t ds0 = vld1q_f32(dsp), ds1 = vld1q_f32(dsp + 4);
    for (int t = 0; t < MR; t++) {
      const float32x4_t da = vdupq_n_f32(A.d[(t0 + t) * nb + b]);
      const int32x4_t off = vdupq_n_s32(Q4 ? 8 * A.s[(t0 + t) * nb + b] : 0);
      f[t][0] = vfmaq_f32(f[t][0], vcvtq_f32_s32(vsubq_s32(acc[t][0], off)), vmulq_f32(ds0, da));
      f[t][1] = vfmaq_f32(f[t][1], vcvtq_f32_s32(vsubq_s32(acc[t][1], off)), vmulq_f32(ds1, da));
    }
  }
  for (int t = 0; t < MR; t++) {
    float v[8];
    vst1q_f32(v, f[t][0]);
    vst1q_f32(v + 4, f[t][1]);
    const int64_t n0 = p * kQPanel;
    store_row(C + (t0 + t) * ldc + n0, v, W.rows - n0);
  }
}
template <int R, bool Q4>
static inline void rows(int64_t rem, const QAct& A, int64_t t0, const QMat& W, int64_t p, float* C, int64_t ldc) {
  if constexpr (R > 0) {
    if (rem == R) qtile<R, Q4>(A, t0, W, p, C, ldc);
    else rows<R - 1, Q4>(rem, A, t0, W, p, C, ldc);
  }
}
template <bool Q4>
static void gemm_t(const QAct& A, const QMat& W, int64_t p0, int64_t p1, float* C, int64_t ldc) {
  for (int64_t p = p0; p < p1; p++)
    for (int64_t t0 = 0; t0 < A.T; t0 += MRW) rows<MRW, Q4>(A.T - t0 < MRW ? A.T - t0 : MRW, A, t0, W, p, C, ldc);
}
static void gemm(const QAct& A, const QMat& W, int64_t p0, int64_t p1, float* C, int64_t ldc) {
  if (W.type == QType::Q4_0) gemm_t<true>(A, W, p0, p1, C, ldc);
  else gemm_t<false>(A, W, p0, p1, C, ldc);
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
