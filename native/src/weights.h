// The tensors of a checkpoint bound to the config's layer plan: shapes checked against the config, dtypes
// resolved (F32 and BF16 matrices used in place from the mapping, F16 and small vectors converted once).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "kernels.h"
#include "quant.h"
#include "safetensors.h"

namespace fc {

// A float32 vector (norm weights, biases, conv taps...): in the mapping or in Weights::owned.
struct Vec {
  const float* p = nullptr;
  int64_t n = 0;
};

// One layer's tensors; which ones are set depends on kind (see bind_weights).
struct LayerW {
  LayerKind kind;
  Vec ln_in_w, ln_in_b, ln_post_w, ln_post_b;  // input_layernorm, post_attention_layernorm
  Mat fc1, fc2;                                // MLP: fc1 [2I, H] (gate ‖ value), fc2 [H, I]
  // Mamba / GMU
  Mat in_proj, x_proj, dt_proj, out_proj;
  Vec conv_w, conv_b, dt_b, D;
  std::vector<float> A;        // -exp(A_log), [Di, N]
  std::vector<float> conv_wt;  // conv1d taps transposed to [K, Di] (vector loads over channels)
  // attention
  Mat wqkv, wo;
  Vec bqkv, bo, subln;
  float lambda = 0, lambda_init = 0;  // differential attention's λ and λ_init(i), computed at load
};

struct Weights {
  std::unique_ptr<Checkpoint> ckpt;        // the mapped files the matrices point into
  std::vector<std::vector<float>> owned;   // tensors converted or copied at load
  Mat embed, lm_head;                      // lm_head == embed when tied
  Vec final_w, final_b;                    // final_layernorm
  std::vector<LayerW> layers;
  int64_t param_count = 0;
  int64_t weight_bytes = 0;    // bytes of the used tensors as they run: as stored, or quantized (load-time)
  int64_t resident_extra = 0;  // bytes converted/copied at load (f16 -> f32, misaligned, small vectors)
  std::string dtype;           // the matrices' dtype: "F32", "BF16", "F16", "Q8_0", "Q4_0" or "mixed"
  QType quant = QType::None;   // the block type of the quantized projections (embedding: q8_0 either way)
};

// Maps DIR's safetensors and binds every tensor cfg's layer plan needs (throws LoadError naming the tensor,
// its shape and the config fields it should follow). Settles cfg.tied when config.json leaves it open.
// Tensors stored quantized (I8 / U8 + F16 `weight_scale`) are repacked; with `quantize` set, float projections
// and the embedding are quantized at load (quant.h's rules). `threads` bound the repacking threads.
void bind_weights(const std::string& dir, Config& cfg, Weights& w, QType quantize = QType::None, int threads = 1);

}  // namespace fc
