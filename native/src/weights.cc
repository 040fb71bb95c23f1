#include "weights.h"

#include <cmath>
#include <cstring>
#include <set>

namespace fc {

static float half_to_float(uint16_t h) {
  uint32_t s = uint32_t(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, u;
  if (e == 0) {
    if (m == 0) u = s;
    else {
      int ex = -1;
      do {
        ex++;
        m <<= 1;
      } while (!(m & 1024));
      u = s | (uint32_t(127 - 15 - ex) << 23) | ((m & 1023) << 13);
    }
  } else if (e == 31) u = s | 0x7F800000u | (m << 13);
  else u = s | ((e + 127 - 15) << 23) | (m << 13);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static float to_f32(const uint8_t* p, DType dt, int64_t i) {
  if (dt == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  if (dt == DType::BF16) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  return half_to_float(h);
}

static std::string ii(int64_t x) { return std::to_string(x); }

namespace {
struct Binder {
  const Checkpoint& ck;
  std::vector<std::vector<float>>& owned;
  int64_t& params;
  int64_t& bytes;
  int64_t& extra;
  std::set<std::string> mat_dtypes;
  QType quantize = QType::None;
  int threads = 1;
  std::set<QType> qtypes;  // block types of the quantized projections seen

  const TensorInfo& need(const std::string& name, const std::vector<int64_t>& shape, const std::string& formula) {
    const TensorInfo* t = ck.find(name);
    if (!t) throw LoadError("tensor " + name + " is missing from the checkpoint (expected shape " + shape_str(shape) + ")");
    if (t->shape != shape)
      throw LoadError("tensor " + name + " has shape " + shape_str(t->shape) + " in " + t->file +
                      " but the config implies " + shape_str(shape) + " = " + formula);
    if (t->dtype == DType::Other)
      throw LoadError("tensor " + name + " has unsupported dtype " + t->dtype_str + " (supported: F32, BF16, F16)");
    params += t->numel();
    bytes += int64_t(t->nbytes);
    return *t;
  }
  Vec vec(const std::string& name, const std::vector<int64_t>& shape, const std::string& formula) {
    const TensorInfo& t = need(name, shape, formula);
    Vec v;
    v.n = t.numel();
    if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % 4 == 0) {
      v.p = reinterpret_cast<const float*>(t.data);
    } else {
      owned.emplace_back(size_t(v.n));
      for (int64_t i = 0; i < v.n; i++) owned.back()[size_t(i)] = to_f32(t.data, t.dtype, i);
      extra += v.n * 4;
      v.p = owned.back().data();
    }
    return v;
  }
  // A tensor stored quantized: q8_0 as I8 [rows, cols], q4_0 as U8 [rows, cols/2], with F16 scales
  // NAME_scale [rows, cols/32] (NAME ends in ".weight": "...weight_scale").
  Mat quantized(const std::string& name, const TensorInfo& t, int64_t rows, int64_t cols, const std::string& formula) {
    const bool q8 = t.dtype_str == "I8";
    const QType type = q8 ? QType::Q8_0 : QType::Q4_0;
    const std::string tn = std::string(qtype_name(type));
    if (cols % kQBlock != 0)
      throw LoadError("tensor " + name + " is stored as " + tn + " (" + t.dtype_str + ") but its input dimension " +
                      ii(cols) + " (" + formula + ") is not a multiple of 32");
    const std::vector<int64_t> want = {rows, q8 ? cols : cols / 2};
    if (t.shape != want)
      throw LoadError("tensor " + name + " (" + tn + ", " + t.dtype_str + ") has shape " + shape_str(t.shape) + " in " +
                      t.file + " but the config implies " + shape_str(want) + " = " + formula +
                      (q8 ? "" : " with two 4-bit values per byte"));
    const std::string sn = name + "_scale";
    const TensorInfo* s = ck.find(sn);
    const std::vector<int64_t> sw = {rows, cols / kQBlock};
    if (!s)
      throw LoadError("tensor " + sn + " (the block scales of the " + tn + " tensor " + name +
                      ") is missing from the checkpoint (expected F16 " + shape_str(sw) + ")");
    if (s->dtype != DType::F16 || s->shape != sw)
      throw LoadError("tensor " + sn + " has dtype " + s->dtype_str + " shape " + shape_str(s->shape) + " in " + s->file +
                      " but must be F16 " + shape_str(sw) + " (one scale per block of 32 inputs)");
    params += rows * cols;
    bytes += int64_t(t.nbytes + s->nbytes);
    Mat m;
    m.rows = rows;
    m.cols = cols;
    m.q = repack_quantized(t, *s, type, threads);
    extra += int64_t(m.q->bytes);
    release_mapped(t);
    release_mapped(*s);
    mat_dtypes.insert(q8 ? "Q8_0" : "Q4_0");
    if (name != "model.embed_tokens.weight" && name != "lm_head.weight") qtypes.insert(type);
    return m;
  }
  Mat mat(const std::string& name, int64_t rows, int64_t cols, const std::string& formula) {
    if (const TensorInfo* qt = ck.find(name); qt && (qt->dtype_str == "I8" || qt->dtype_str == "U8"))
      return quantized(name, *qt, rows, cols, formula);
    const TensorInfo& t = need(name, {rows, cols}, formula);
    Mat m;
    m.rows = rows;
    m.cols = cols;
    if (const QType qt = quant_type_for(name, cols, quantize); qt != QType::None) {
      m.q = quantize_matrix(t, qt, threads);
      extra += int64_t(m.q->bytes);
      bytes += int64_t(m.q->bytes) - int64_t(t.nbytes);  // what runs (and is streamed), not the float source
      release_mapped(t);
      mat_dtypes.insert(qt == QType::Q8_0 ? "Q8_0" : "Q4_0");
      if (name != "model.embed_tokens.weight" && name != "lm_head.weight") qtypes.insert(qt);
      return m;
    }
    mat_dtypes.insert(t.dtype_str);
    size_t al = t.dtype == DType::F32 ? 4 : 2;
    if (t.dtype == DType::F16) {  // converted once to f32
      owned.emplace_back(size_t(rows * cols));
      for (int64_t i = 0; i < rows * cols; i++) owned.back()[size_t(i)] = to_f32(t.data, t.dtype, i);
      extra += rows * cols * 4;
      m.data = owned.back().data();
      m.dt = DType::F32;
    } else if (reinterpret_cast<uintptr_t>(t.data) % al != 0) {  // misaligned: copy once
      owned.emplace_back((t.nbytes + 3) / 4);
      std::memcpy(owned.back().data(), t.data, t.nbytes);
      extra += int64_t(t.nbytes);
      m.data = owned.back().data();
      m.dt = t.dtype;
    } else {
      m.data = t.data;
      m.dt = t.dtype;
    }
    return m;
  }
};
}  // namespace


void bind_weights(const std::string& dir, Config& cfg, Weights& out, QType quantize, int threads) {
  out.ckpt = std::make_unique<Checkpoint>(dir);
  const Config& c = cfg;
  Binder b{*out.ckpt, out.owned, out.param_count, out.weight_bytes, out.resident_extra, {}, quantize, threads, {}};
  const std::string Hs = "hidden_size " + ii(c.H);
  out.embed = b.mat("model.embed_tokens.weight", c.V, c.H, "[vocab_size " + ii(c.V) + ", " + Hs + "]");
  out.final_w = b.vec("model.final_layernorm.weight", {c.H}, "[" + Hs + "]");
  out.final_b = b.vec("model.final_layernorm.bias", {c.H}, "[" + Hs + "]");
  bool has_head = out.ckpt->find("lm_head.weight") != nullptr;
  if (!cfg.tied_explicit) cfg.tied = !has_head;
  if (cfg.tied) out.lm_head = out.embed;
  else {
    if (!has_head)
      throw LoadError("tensor lm_head.weight is missing from the checkpoint (config.json has tie_word_embeddings = false)");
    out.lm_head = b.mat("lm_head.weight", c.V, c.H, "[vocab_size " + ii(c.V) + ", " + Hs + "]");
  }
  const std::string qd = "num_attention_heads*head_dim " + ii(c.qdim());
  const std::string qkvd = "(num_attention_heads + 2*num_key_value_heads)*head_dim " + ii(c.qdim() + 2 * c.kvdim());
  const std::string Dis = "d_inner = mamba_expand*hidden_size " + ii(c.Di);
  for (int64_t i = 0; i < c.L; i++) {
    LayerW w;
    w.kind = c.kinds[size_t(i)];
    std::string p = "model.layers." + ii(i) + ".";
    w.ln_in_w = b.vec(p + "input_layernorm.weight", {c.H}, "[" + Hs + "]");
    w.ln_in_b = b.vec(p + "input_layernorm.bias", {c.H}, "[" + Hs + "]");
    w.ln_post_w = b.vec(p + "post_attention_layernorm.weight", {c.H}, "[" + Hs + "]");
    w.ln_post_b = b.vec(p + "post_attention_layernorm.bias", {c.H}, "[" + Hs + "]");
    w.fc1 = b.mat(p + "mlp.fc1.weight", 2 * c.I, c.H, "[2*intermediate_size " + ii(2 * c.I) + ", " + Hs + "]");
    w.fc2 = b.mat(p + "mlp.fc2.weight", c.H, c.I, "[" + Hs + ", intermediate_size " + ii(c.I) + "]");
    std::string a = p + "attn.";
    switch (w.kind) {
      case LayerKind::Mamba:
      case LayerKind::MambaMem: {
        w.in_proj = b.mat(a + "in_proj.weight", 2 * c.Di, c.H, "[2*" + Dis + ", " + Hs + "]");
        w.conv_w = b.vec(a + "conv1d.weight", {c.Di, 1, c.K}, "[" + Dis + ", 1, mamba_d_conv " + ii(c.K) + "]");
        w.conv_b = b.vec(a + "conv1d.bias", {c.Di}, "[" + Dis + "]");
        w.conv_wt.resize(size_t(c.K * c.Di));
        for (int64_t ch = 0; ch < c.Di; ch++)
          for (int64_t k = 0; k < c.K; k++) w.conv_wt[size_t(k * c.Di + ch)] = w.conv_w.p[ch * c.K + k];
        w.x_proj = b.mat(a + "x_proj.weight", c.R + 2 * c.N, c.Di,
                         "[dt_rank + 2*mamba_d_state " + ii(c.R + 2 * c.N) + ", " + Dis + "]");
        w.dt_proj = b.mat(a + "dt_proj.weight", c.Di, c.R, "[" + Dis + ", dt_rank = ceil(hidden_size/16) " + ii(c.R) + "]");
        w.dt_b = b.vec(a + "dt_proj.bias", {c.Di}, "[" + Dis + "]");
        Vec alog = b.vec(a + "A_log", {c.Di, c.N}, "[" + Dis + ", mamba_d_state " + ii(c.N) + "]");
        w.A.resize(size_t(c.Di * c.N));
        for (int64_t k = 0; k < c.Di * c.N; k++) w.A[size_t(k)] = -std::exp(alog.p[k]);
        w.D = b.vec(a + "D", {c.Di}, "[" + Dis + "]");
        w.out_proj = b.mat(a + "out_proj.weight", c.H, c.Di, "[" + Hs + ", " + Dis + "]");
        break;
      }
      case LayerKind::GMU:
        w.in_proj = b.mat(a + "in_proj.weight", c.Di, c.H, "[" + Dis + ", " + Hs + "]");
        w.out_proj = b.mat(a + "out_proj.weight", c.H, c.Di, "[" + Hs + ", " + Dis + "]");
        break;
      case LayerKind::SWA:
      case LayerKind::FullKV:
      case LayerKind::Full:
      case LayerKind::Cross: {
        bool cross = w.kind == LayerKind::Cross;
        int64_t rows = cross ? c.qdim() : c.qdim() + 2 * c.kvdim();
        const std::string& f = cross ? qd : qkvd;
        w.wqkv = b.mat(a + "Wqkv.weight", rows, c.H, "[" + f + ", " + Hs + "]");
        w.bqkv = b.vec(a + "Wqkv.bias", {rows}, "[" + f + "]");
        w.wo = b.mat(a + "out_proj.weight", c.H, c.qdim(), "[" + Hs + ", " + qd + "]");
        w.bo = b.vec(a + "out_proj.bias", {c.H}, "[" + Hs + "]");
        std::string ic = a + "inner_cross_attn.";
        std::string hds = "[head_dim " + ii(c.hd) + "]";
        Vec q1 = b.vec(ic + "lambda_q1", {c.hd}, hds), k1 = b.vec(ic + "lambda_k1", {c.hd}, hds);
        Vec q2 = b.vec(ic + "lambda_q2", {c.hd}, hds), k2 = b.vec(ic + "lambda_k2", {c.hd}, hds);
        w.subln = b.vec(ic + "subln.weight", {2 * c.hd}, "[2*head_dim " + ii(2 * c.hd) + "]");
        double s1 = 0, s2 = 0;
        for (int64_t k = 0; k < c.hd; k++) {
          s1 += double(q1.p[k]) * k1.p[k];
          s2 += double(q2.p[k]) * k2.p[k];
        }
        double li = 0.8 - 0.6 * std::exp(-0.3 * double(i));
        w.lambda_init = float(li);
        w.lambda = float(std::exp(s1) - std::exp(s2) + li);
        break;
      }
    }
    out.layers.push_back(std::move(w));
  }
  if (b.qtypes.size() > 1)
    throw LoadError("checkpoint " + dir + " mixes q8_0 and q4_0 projections (one block type per checkpoint)");
  out.quant = b.qtypes.empty() ? (b.mat_dtypes.count("Q8_0") ? QType::Q8_0 : QType::None) : *b.qtypes.begin();
  if (out.quant != QType::None) out.dtype = out.quant == QType::Q8_0 ? "Q8_0" : "Q4_0";
  else if (b.mat_dtypes.size() == 1) out.dtype = *b.mat_dtypes.begin();
  else out.dtype = "mixed";
}

}  // namespace fc
