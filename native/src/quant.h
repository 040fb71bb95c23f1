// Quantized weights (ggml's q8_0 and q4_0 block formats): the reference block quantizers, the repacked
// in-memory layout the integer kernels stream, and the quantized linear layer. Layouts in native/README.md.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace fc {

class ThreadPool;
struct TensorInfo;

enum class QType : uint8_t { None, Q8_0, Q4_0 };
const char* qtype_name(QType t);          // "none", "q8_0", "q4_0"
QType parse_qtype(const std::string& s);  // throws std::invalid_argument for anything else

constexpr int64_t kQBlock = 32;  // weights per block, along the input dimension
constexpr int64_t kQPanel = 8;   // output rows interleaved per panel

uint16_t f32_to_f16(float x);  // round to nearest even
float f16_to_f32(uint16_t h);

// ggml's reference quantizers over n (a multiple of 32) floats, all arithmetic in float32.
// q8_0: q[n] int8, d[n/32] f16.  q4_0: q[n] the unsigned 4-bit values 0..15 one per byte, d[n/32] f16.
void quantize_q8_0(const float* x, int64_t n, int8_t* q, uint16_t* d);
void quantize_q4_0(const float* x, int64_t n, uint8_t* q, uint16_t* d);

// A repacked quantized matrix [rows, cols] (cols a multiple of 32). Rows are grouped in panels of 8 (the last
// one zero-padded); panel p, block b holds the 8 rows' 32 values of that block interleaved in groups of 4
// consecutive inputs: value (row 8p+r, input 32b + 4g + j) at byte (g*8 + r)*4 + j of a 256-byte block (q8_0,
// int8), or, for q4_0, in a 128-byte block whose byte i holds position i in its low nibble and position i+128
// in its high nibble (unsigned 0..15, value q-8). Scales are f32, 8 per (panel, block), in their own array.
// Both arrays start 64-byte aligned; a thread streams its panels front to back.
struct QMat {
  QType type = QType::None;
  int64_t rows = 0, cols = 0, nb = 0, panels = 0;
  const uint8_t* q = nullptr;
  const float* d = nullptr;
  size_t bytes = 0;  // resident bytes (quants + scales)
  std::unique_ptr<uint8_t[], void (*)(uint8_t*)> mem{nullptr, nullptr};
  int64_t block_bytes() const { return type == QType::Q8_0 ? 256 : 128; }
  const uint8_t* block(int64_t p, int64_t b) const { return q + (p * nb + b) * block_bytes(); }
  const float* scales(int64_t p, int64_t b) const { return d + (p * nb + b) * kQPanel; }
};

// Builds a QMat from a float matrix (F32/BF16/F16 rows; load-time quantization with the reference quantizers)
// or from a checkpoint's quantized tensors (q: I8 [rows, cols] or U8 [rows, cols/2] in ggml's block_q4_0 nibble
// order; scale: F16 [rows, cols/32]). Shapes are checked by the caller. Uses up to `threads` threads.
std::shared_ptr<QMat> quantize_matrix(const TensorInfo& w, QType type, int threads);
std::shared_ptr<QMat> repack_quantized(const TensorInfo& q, const TensorInfo& scale, QType type, int threads);

// Drops the pages of a tensor's mapped bytes that were copied into a repacked matrix from the process's
// resident set (madvise DONTNEED on the read-only private mapping; the file is untouched, pages refault
// from it if read again).
void release_mapped(const TensorInfo& t);

// Row r of a quantized matrix, dequantized (the embedding lookup of a q8_0 tied embedding).
void dequant_row(const QMat& m, int64_t r, float* out);

// Activations of T tokens for the integer kernels, per block of 32 inputs: a 16-bit value per input,
// a16 = round(x·256/d) with d = absmax/127 (|a16| <= 32639), held as two int8 planes a16 = 256·q1 + q2
// (q1 = round(x/d), q2 the rounded rest in units of d/256, clamped to ±127). Plane rows are interleaved:
// row 2t is q1 of token t, row 2t+1 its q2. A kernel forms the exact int32 block sum
// 256·Σq1·w + Σq2·w (= Σa16·w) and scales it once by d/256 (= d[2t+1]).
struct QAct {
  const int8_t* q = nullptr;     // [2T, K] the planes (q8_0 on uact_q8 kernels: as unsigned bytes, q + 128)
  const float* d = nullptr;      // [2T, nb] d (plane 1) and d/256 (plane 2)
  const int32_t* s = nullptr;    // [2T, nb] sum of the block's q per plane (q4_0's offset of 8)
  const int16_t* a16 = nullptr;  // [T, K] 256·q1 + q2, only for kernels with a16_q8 and q8_0 weights
  int64_t T = 0, K = 0, nb = 0;  // T tokens
};

// One token's activations x[K] into its QAct rows: q[2K] (both planes), d[2nb], s[2nb], a16[K] when not null;
// `flip` stores the planes as unsigned bytes (uact_q8). `vector` uses AVX2 where the CPU has it (bit-identical
// to the portable loop; tests compare the two).
void quantize_act_planes(const float* x, int64_t K, int8_t* q, float* d, int32_t* s, int16_t* a16, bool flip,
                         bool vector);

// C[t, n] = sum_k A[t, k] W[n, k] (+ bias[n] when not null) over weight panels [p0, p1) (output rows
// 8*p0 .. min(8*p1, rows)), t < A.T.
// uact_q8: the kernel wants q8_0 activation planes as unsigned bytes (q + 128: vpdpbusd's u8 operand, no sign
// trick); it subtracts 128·Σw per block itself. a16_q8: the kernel multiplies q8_0 weights by A.a16.
// small / small_below: fewer than small_below tokens go to the `small` implementation instead (flags and all):
// AMX tiles hold 16 tokens, so a decode step is better served by the vector kernel.
struct QKernels {
  const char* name;
  void (*gemm)(const QAct& A, const QMat& W, int64_t p0, int64_t p1, const float* bias, float* C, int64_t ldc);
  bool uact_q8 = false;
  bool a16_q8 = false;
  const QKernels* small = nullptr;
  int64_t small_below = 0;
  // Split a call's panels into one chunk per thread instead of ~8: the AMX kernel's per-chunk set-up (tile
  // configuration, activation layout, weight repacking per group) made 16 chunks on 2 threads ~30 % slower.
  bool one_chunk_per_thread = false;
};

// Whether this CPU and kernel let the process use AMX-INT8 tiles (CPUID, XCR0, and Linux's per-process
// permission, requested on the first call).
bool amx_int8_usable();

// The integer implementations this CPU can run; qkernels_for(float ISA name) picks the one paired with it.
const QKernels& qkernels_for(const char* float_isa);

// C = A·Wᵀ (+ bias when not null) through the pool: activations quantized, then panels split over the threads.
void qlinear(ThreadPool& pool, const QKernels& k, const float* A, int64_t lda, int64_t T, const QMat& W,
             const float* bias, float* C, int64_t ldc);

// Which tensors the contract quantizes: 2-D `...Wqkv.weight`, `in_proj.weight`, `out_proj.weight`,
// `fc1.weight`, `fc2.weight` with cols % 32 == 0 (type as chosen), the embedding / LM head (q8_0 always).
QType quant_type_for(const std::string& name, int64_t cols, QType chosen);

// quantization_config.type of a config.json text, None when absent (throws LoadError when malformed).
QType config_quant_type(const std::string& config_text);

}  // namespace fc
