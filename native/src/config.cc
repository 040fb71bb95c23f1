#include "config.h"

#include <cmath>

#include "json.h"

namespace fc {

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Mamba: return "mamba";
    case LayerKind::MambaMem: return "mamba_mem";
    case LayerKind::SWA: return "swa";
    case LayerKind::FullKV: return "attn_kv";
    case LayerKind::GMU: return "gmu";
    case LayerKind::Cross: return "cross";
    case LayerKind::Full: return "attn";
  }
  return "?";
}

const char* layout_name(Layout l) { return l == Layout::SambaY ? "sambay" : "all-attention"; }

Config parse_config(const std::string& text) {
  json::Value j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw LoadError(std::string("config.json: ") + e.what());
  }
  if (!j.is_object()) throw LoadError("config.json: not a JSON object");
  Config c;
  const json::Value* mt = j.get("model_type");
  if (!mt || !mt->is_string()) throw LoadError("config.json: missing \"model_type\" (expected \"phi4flash\")");
  if (mt->str != "phi4flash")
    throw LoadError("config.json: unknown model_type \"" + mt->str + "\" (this kernel runs \"phi4flash\" only)");
  c.model_type = mt->str;

  auto get_int = [&](const char* key, bool required, int64_t def, int64_t min) -> int64_t {
    const json::Value* v = j.get(key);
    if (!v || v->is_null()) {
      if (required) throw LoadError(std::string("config.json: missing required field \"") + key + "\"");
      return def;
    }
    if (!v->is_number() || v->num != std::floor(v->num) || std::fabs(v->num) > 9e15)
      throw LoadError(std::string("config.json: field \"") + key + "\" must be an integer");
    int64_t x = int64_t(v->num);
    if (x < min)
      throw LoadError(std::string("config.json: field \"") + key + "\" = " + std::to_string(x) + " must be >= " +
                      std::to_string(min));
    return x;
  };

  const json::Value* lay = j.get("flashcheck_layout");
  if (!lay || lay->is_null() || (lay->is_string() && lay->str == "sambay")) c.layout = Layout::SambaY;
  else if (lay->is_string() && lay->str == "all-attention") c.layout = Layout::AllAttention;
  else
    throw LoadError("config.json: flashcheck_layout must be \"sambay\" or \"all-attention\", got " +
                    (lay->is_string() ? "\"" + lay->str + "\"" : std::string("a non-string")));
  const bool sambay = c.layout == Layout::SambaY;

  c.H = get_int("hidden_size", true, 0, 1);
  c.L = get_int("num_hidden_layers", true, 0, 1);
  c.nh = get_int("num_attention_heads", true, 0, 1);
  c.nkv = get_int("num_key_value_heads", false, c.nh, 1);
  c.I = get_int("intermediate_size", true, 0, 1);
  c.V = get_int("vocab_size", true, 0, 1);
  c.N = get_int("mamba_d_state", false, 16, 1);
  c.K = get_int("mamba_d_conv", false, 4, 1);
  c.E = get_int("mamba_expand", false, 2, 1);
  if (const json::Value* e = j.get("layer_norm_eps")) {
    if (!e->is_number() || !(e->num > 0)) throw LoadError("config.json: layer_norm_eps must be a positive number");
    c.eps = e->num;
  }
  if (const json::Value* a = j.get("hidden_act")) {
    if (!a->is_string() || a->str != "silu")
      throw LoadError("config.json: hidden_act must be \"silu\" (the phi4flash MLP gate)");
  }
  if (const json::Value* t = j.get("tie_word_embeddings")) {
    if (!t->is_bool()) throw LoadError("config.json: tie_word_embeddings must be true or false");
    c.tied = t->b;
    c.tied_explicit = true;
  }
  if (c.H % c.nh != 0)
    throw LoadError("config.json: hidden_size " + std::to_string(c.H) + " is not divisible by num_attention_heads " +
                    std::to_string(c.nh));
  c.hd = c.H / c.nh;
  if (const json::Value* hdv = j.get("head_dim")) {
    if (!hdv->is_null() && (!hdv->is_number() || int64_t(hdv->num) != c.hd))
      throw LoadError("config.json: head_dim is inconsistent with hidden_size / num_attention_heads = " +
                      std::to_string(c.hd));
  }
  if (c.nh % 2 || c.nkv % 2)
    throw LoadError("config.json: differential attention needs even num_attention_heads and num_key_value_heads (got " +
                    std::to_string(c.nh) + " and " + std::to_string(c.nkv) + ")");
  if (c.nh % c.nkv)
    throw LoadError("config.json: num_attention_heads " + std::to_string(c.nh) +
                    " is not a multiple of num_key_value_heads " + std::to_string(c.nkv));
  c.R = (c.H + 15) / 16;
  c.Di = c.E * c.H;

  if (sambay) {
    c.mb = get_int("mb_per_layer", false, 2, 0);
    c.W = get_int("sliding_window", true, 0, 1);
    if (c.mb != 2)
      throw LoadError("config.json: mb_per_layer = " + std::to_string(c.mb) +
                      " is not supported: the phi4flash layout needs mb_per_layer = 2 (the project's baseline layout "
                      "is selected with \"flashcheck_layout\": \"all-attention\")");
    if (c.L % 4 != 0)
      throw LoadError("config.json: num_hidden_layers = " + std::to_string(c.L) +
                      " is not supported: the phi4flash layout needs a multiple of 4 layers");
    int64_t h = c.L / 2;
    for (int64_t i = 0; i < c.L; i++) {
      LayerKind k;
      if (i < h) k = (i % 2 == 0) ? LayerKind::Mamba : LayerKind::SWA;
      else if (i == h) k = LayerKind::MambaMem;
      else if (i == h + 1) k = LayerKind::FullKV;
      else k = (i % 2 == 0) ? LayerKind::GMU : LayerKind::Cross;
      c.kinds.push_back(k);
    }
  } else {
    c.mb = 0;
    c.W = 0;
    for (int64_t i = 0; i < c.L; i++) c.kinds.push_back(LayerKind::Full);
  }
  return c;
}

}  // namespace fc
