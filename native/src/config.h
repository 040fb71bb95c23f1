// Hyperparameters of a phi4flash (SambaY) checkpoint: config.json parsed and validated into a Config, and
// the layer plan that follows from it. Symbols as in ../shared/spec/sambay-architecture.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "safetensors.h"  // LoadError

namespace fc {

// What one decoder layer computes (the spec's layer plan).
enum class LayerKind {
  Mamba,     // self-decoder Mamba
  MambaMem,  // layer h = L/2: Mamba whose un-gated output is also the GMU memory
  SWA,       // self-decoder sliding-window differential attention
  FullKV,    // layer h+1: full differential attention; its K/V is what every cross layer reads
  GMU,       // cross-decoder gated memory unit over layer h's memory
  Cross,     // cross-decoder attention: own queries, layer h+1's K/V
  Full,      // all-attention baseline: full causal differential attention with its own K/V
};
const char* layer_kind_name(LayerKind k);  // the names model.config.layers lists

// Which layer plan a checkpoint uses (config.json "flashcheck_layout").
enum class Layout {
  SambaY,        // "sambay", the default: the released phi4flash plan
  AllAttention,  // "all-attention": this project's Transformer baseline
};
const char* layout_name(Layout l);

struct Config {
  std::string model_type;          // "phi4flash", the only type this kernel runs
  Layout layout = Layout::SambaY;  // flashcheck_layout
  int64_t H = 0;     // hidden_size: width of the residual stream
  int64_t L = 0;     // num_hidden_layers
  int64_t nh = 0;    // num_attention_heads: query heads (even: differential attention pairs them)
  int64_t nkv = 0;   // num_key_value_heads (even, divides nh; defaults to nh)
  int64_t hd = 0;    // head_dim = H / nh
  int64_t I = 0;     // intermediate_size: MLP width (fc1 emits 2*I, gate and value)
  int64_t V = 0;     // vocab_size
  int64_t W = 0;     // sliding_window of the SWA layers, in tokens (0 in the all-attention layout)
  int64_t mb = 0;    // mb_per_layer: a Mamba every mb layers of the self-decoder (2; 0 in all-attention)
  int64_t N = 16;    // mamba_d_state: SSM state size per channel
  int64_t K = 4;     // mamba_d_conv: width of the causal depthwise conv
  int64_t E = 2;     // mamba_expand: Di = E * H
  int64_t R = 0;     // dt_rank = ceil(H / 16) (config.json's mamba_dt_rank is ignored, as upstream does)
  int64_t Di = 0;    // d_inner = E * H: inner width of the Mamba and GMU layers
  double eps = 1e-5;           // layer_norm_eps of every LayerNorm
  bool tied = true;            // the LM head is embed_tokens (tie_word_embeddings)
  bool tied_explicit = false;  // config.json sets tie_word_embeddings; otherwise lm_head.weight's presence decides
  std::vector<LayerKind> kinds;  // the layer plan: kinds[i] is layer i's kind
  int64_t h() const { return L / 2; }  // the MambaMem layer; h+1 is FullKV, the cross-decoder starts at h+2
  int64_t qdim() const { return nh * hd; }
  int64_t kvdim() const { return nkv * hd; }
};

// Parses and validates config.json (throws LoadError naming the field).
Config parse_config(const std::string& text);

}  // namespace fc
