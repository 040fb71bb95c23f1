// Hot loops, compiled several times for different instruction sets and picked at run time.
#pragma once
#include <cstdint>

#include "quant.h"
#include "safetensors.h"

namespace fc {

// A weight matrix as stored: row-major [rows, cols] (torch Linear: [out, in]), F32 or BF16.
// When `q` is set the matrix is quantized (q8_0/q4_0, repacked) and `data` is unused.
struct Mat {
  const void* data = nullptr;
  DType dt = DType::F32;
  int64_t rows = 0, cols = 0;
  std::shared_ptr<const QMat> q;
};

struct Kernels {
  const char* name;
  int nr;  // columns of C per GEMM panel
  // C[t, n] = sum_k A[t, k] * W[n, k] for t < T, n0 <= n < n1 (n0 a multiple of nr). Cache-blocked,
  // register-tiled; pack = scratch of at least kc*nr floats (see gemm_pack_floats).
  void (*gemm)(const float* A, int64_t lda, int64_t T, const Mat& W, int64_t n0, int64_t n1, float* C, int64_t ldc,
               float* pack);
  // Same contract for small T (<= 4): streams each weight row once (decode).
  void (*gemv)(const float* A, int64_t lda, int64_t T, const Mat& W, int64_t n0, int64_t n1, float* C, int64_t ldc);
  // Selective scan for channels [c0, c1): see Model::mamba in forward.cc for the arguments.
  void (*scan)(int64_t c0, int64_t c1, int64_t T, int64_t Di, int64_t N, const float* xc, const float* delta,
               const float* dbc, int64_t ldbc, int64_t boff, const float* A, const float* D, float* h, float* y);
  // One differential-attention head pair over n keys (see kernels_impl.inc).
  void (*attend)(const float* q1, const float* q2, const float* const* kp, const float* const* vp, int64_t n,
                 int64_t o1, int64_t o2, int64_t hd, float scale, float* s1, float* s2, float* A1, float* A2);
  // Blocked differential attention of several query rows of one head pair (prefill; see kernels_impl.inc).
  void (*attend_block)(const float* q1, const float* q2, int64_t ldq, int64_t nb, const float* const* kp,
                       const float* const* vp, int64_t n, const int64_t* klo, const int64_t* khi, int64_t o1,
                       int64_t o2, int64_t hd, float scale, float* S, float* A, float* Bp);
  // out = u * silu(g), elementwise.
  void (*gate)(const float* g, const float* u, float* out, int64_t n);
  // Widen a row of F32/BF16 weights into f32.
  void (*widen)(const void* src, DType dt, int64_t n, float* dst);
  // x = softplus(x) in place (the Mamba step size).
  void (*softplus)(float* x, int64_t n);
  // Mamba's causal depthwise conv + SiLU for channels [c0, c1) of R rows (see kernels_impl.inc).
  void (*conv_silu)(const float* x, int64_t ldx, int64_t R, int64_t c0, int64_t c1, const float* wt, const float* b,
                    float* hist, int64_t K, int64_t Di, float* out);
  // LayerNorm of one row.
  void (*layernorm)(const float* x, int64_t n, const float* w, const float* b, double eps, float* out);
  // y += x, elementwise (residual adds).
  void (*add)(float* y, const float* x, int64_t n);
  // log Σ exp over n logits, in float64 (max-shifted): a row's log-softmax normaliser (see kernels_impl.inc).
  double (*lse)(const float* x, int64_t n);
  // Integer kernels for quantized weights paired with this table (see qkernels_for).
  const QKernels* q = nullptr;
};

// Size of the GEMM's packed B panel scratch: kc x nr floats (see KC in kernels_impl.inc), at most 32 KiB.
constexpr int64_t kGemmPanelFloats = 8192;
constexpr int64_t kGemvMaxT = 4;
inline int64_t gemm_pack_floats() { return kGemmPanelFloats; }

// Picks the best implementation for this CPU once (env FLASHCHECK_ISA=generic|avx2|avx2-vnni|avx512|avx512-amx on x86-64,
// neon|dotprod on aarch64 overrides).
const Kernels& kernels();
// All implementations usable on this CPU (for tests).
int kernels_available(const Kernels** out, int max);

}  // namespace fc
