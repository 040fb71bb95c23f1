#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>
#include <thread>

#include "json.h"

namespace fc {

// Free scratch buffers of a model (see Buf below).
struct Arena {
  std::vector<std::pair<size_t, std::unique_ptr<float[]>>> free;
};

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

// ---------------------------------------------------------------- config

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
  if (!lay || lay->is_null()) c.layout = "sambay";
  else if (lay->is_string() && (lay->str == "sambay" || lay->str == "all-attention")) c.layout = lay->str;
  else
    throw LoadError("config.json: flashcheck_layout must be \"sambay\" or \"all-attention\", got " +
                    (lay->is_string() ? "\"" + lay->str + "\"" : std::string("a non-string")));
  const bool sambay = c.layout == "sambay";

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

// ---------------------------------------------------------------- weights

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

namespace {
struct Binder {
  const Checkpoint& ck;
  std::vector<std::vector<float>>& owned;
  int64_t& params;
  int64_t& bytes;
  int64_t& extra;
  std::set<std::string> mat_dtypes;

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
  Mat mat(const std::string& name, int64_t rows, int64_t cols, const std::string& formula) {
    const TensorInfo& t = need(name, {rows, cols}, formula);
    mat_dtypes.insert(t.dtype_str);
    Mat m;
    m.rows = rows;
    m.cols = cols;
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

static std::string ii(int64_t x) { return std::to_string(x); }

void Model::bind_weights(const std::string& dir) {
  ckpt_ = std::make_unique<Checkpoint>(dir);
  const Config& c = cfg_;
  Binder b{*ckpt_, owned_, param_count, weight_bytes, resident_extra, {}};
  const std::string Hs = "hidden_size " + ii(c.H);
  embed_ = b.mat("model.embed_tokens.weight", c.V, c.H, "[vocab_size " + ii(c.V) + ", " + Hs + "]");
  final_w_ = b.vec("model.final_layernorm.weight", {c.H}, "[" + Hs + "]");
  final_b_ = b.vec("model.final_layernorm.bias", {c.H}, "[" + Hs + "]");
  bool has_head = ckpt_->find("lm_head.weight") != nullptr;
  if (!cfg_.tied_explicit) cfg_.tied = !has_head;
  if (cfg_.tied) lm_head_ = embed_;
  else {
    if (!has_head)
      throw LoadError("tensor lm_head.weight is missing from the checkpoint (config.json has tie_word_embeddings = false)");
    lm_head_ = b.mat("lm_head.weight", c.V, c.H, "[vocab_size " + ii(c.V) + ", " + Hs + "]");
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
    layers_.push_back(std::move(w));
  }
  if (b.mat_dtypes.size() == 1) weight_dtype = *b.mat_dtypes.begin();
  else weight_dtype = "mixed";
}

std::shared_ptr<Model> Model::load(const std::string& dir, int threads, int nice) {
  std::string cfgp = dir + "/config.json";
  if (!file_exists(cfgp)) throw LoadError("no config.json in " + dir);
  std::shared_ptr<Model> m(new Model());
  m->cfg_ = parse_config(read_text_file(cfgp));
  m->bind_weights(dir);
  if (threads <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    threads = hc ? int(hc) : 1;
  }
  m->nice_ = nice;
  m->pool_ = std::make_unique<ThreadPool>(threads, nice);
  m->kern_ = &kernels();
  m->arena_ = std::make_unique<Arena>();
  return m;
}

Model::~Model() = default;

// ---------------------------------------------------------------- state

void KVStore::append(const float* krow, const float* vrow, int64_t ld, int64_t n, int64_t kvdim) {
  for (int64_t i = 0; i < n; i++, len++) {
    size_t pg = size_t(len / kKVPage);
    int64_t off = len % kKVPage;
    if (pg == pages.size()) {
      auto p = std::make_shared<KVPage>();
      p->k.resize(size_t(kKVPage * kvdim));
      p->v.resize(size_t(kKVPage * kvdim));
      pages.push_back(std::move(p));
    } else if (pages[pg].use_count() > 1) {
      // a partly filled page shared with a clone: copy it before writing (copy-on-write)
      pages[pg] = std::make_shared<KVPage>(*pages[pg]);
    }
    std::memcpy(pages[pg]->k.data() + off * kvdim, krow + i * ld, size_t(kvdim) * 4);
    std::memcpy(pages[pg]->v.data() + off * kvdim, vrow + i * ld, size_t(kvdim) * 4);
  }
}

std::unique_ptr<State> Model::new_state() const {
  auto s = std::make_unique<State>();
  s->model = shared_from_this();
  const Config& c = cfg_;
  s->layers.resize(size_t(c.L));
  for (int64_t i = 0; i < c.L; i++) {
    LayerState& ls = s->layers[size_t(i)];
    switch (c.kinds[size_t(i)]) {
      case LayerKind::Mamba:
      case LayerKind::MambaMem:
        ls.conv.assign(size_t(c.Di * (c.K - 1)), 0.f);
        ls.ssm.assign(size_t(c.Di * c.N), 0.f);
        break;
      case LayerKind::SWA:
        ls.k.assign(size_t(c.W * c.kvdim()), 0.f);
        ls.v.assign(size_t(c.W * c.kvdim()), 0.f);
        break;
      default: break;
    }
  }
  return s;
}

std::unique_ptr<State> State::clone() const {
  auto s = std::make_unique<State>();
  s->model = model;
  s->pos = pos;
  s->layers = layers;  // constant-size states copied; KV pages shared (shared_ptr copies)
  return s;
}

// ---------------------------------------------------------------- forward


namespace {
// Scratch buffer taken from the model's arena (best fit) and handed back on destruction, so chunks and
// steps reuse memory instead of faulting in fresh pages. Only the thread holding the compute lock uses it.
struct Buf {
  Arena& ar;
  size_t cap;
  std::unique_ptr<float[]> p;
  Buf(Arena& a, int64_t n) : ar(a) {
    size_t want = size_t(n > 0 ? n : 1), best = SIZE_MAX;
    for (size_t i = 0; i < ar.free.size(); i++)
      if (ar.free[i].first >= want && (best == SIZE_MAX || ar.free[i].first < ar.free[best].first)) best = i;
    if (best == SIZE_MAX) {
      cap = want;
      p.reset(new float[want]);
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
inline float silu(float x) { return x / (1.f + std::exp(-x)); }
inline float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
}  // namespace

void Model::linear(const float* A, int64_t lda, int64_t T, const Mat& W, const Vec* bias, float* C, int64_t ldc) {
  const Kernels& k = *kern_;
  const int64_t N = W.rows;
  const int64_t nt = pool_->size();
  if (T <= kGemvMaxT) {
    int64_t grain = std::max<int64_t>(16, N / (nt * 8));
    pool_->run(N, grain, [&](int64_t b, int64_t e) { k.gemv(A, lda, T, W, b, e, C, ldc); });
  } else {
    const int64_t nr = k.nr;
    int64_t panels = (N + nr - 1) / nr;
    int64_t grain = std::max<int64_t>(1, panels / (nt * 8));
    pool_->run(panels, grain, [&](int64_t b, int64_t e) {
      thread_local std::vector<float> pack;
      if (pack.size() < size_t(gemm_pack_floats())) pack.resize(size_t(gemm_pack_floats()));
      k.gemm(A, lda, T, W, b * nr, std::min(e * nr, N), C, ldc, pack.data());
    });
  }
  if (bias)
    for (int64_t t = 0; t < T; t++)
      for (int64_t n = 0; n < N; n++) C[t * ldc + n] += bias->p[n];
}

static void layernorm(ThreadPool& pool, const float* x, int64_t R, int64_t H, const Vec& w, const Vec& b, double eps,
                      float* out) {
  pool.run(R, 8, [&](int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * H;
    double mean = 0;
    for (int64_t i = 0; i < H; i++) mean += xr[i];
    mean /= double(H);
    double var = 0;
    for (int64_t i = 0; i < H; i++) {
      double d = xr[i] - mean;
      var += d * d;
    }
    var /= double(H);
    float inv = float(1.0 / std::sqrt(var + eps));
    float mf = float(mean);
    float* o = out + r * H;
    for (int64_t i = 0; i < H; i++) o[i] = (xr[i] - mf) * inv * w.p[i] + b.p[i];
  }
  });
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
  pool_->run(Di, 64, [&](int64_t c0, int64_t c1) {
    std::vector<float> cat(size_t(K - 1 + R));
    for (int64_t ch = c0; ch < c1; ch++) {
      float* hist = ls.conv.data() + ch * (K - 1);
      for (int64_t j = 0; j < K - 1; j++) cat[size_t(j)] = hist[j];
      for (int64_t r = 0; r < R; r++) cat[size_t(K - 1 + r)] = xzp[r * 2 * Di + ch];
      const float* wc = w.conv_w.p + ch * K;
      for (int64_t r = 0; r < R; r++) {
        float acc = w.conv_b.p[ch];
        for (int64_t k = 0; k < K; k++) acc += wc[k] * cat[size_t(r + k)];
        xcp[r * Di + ch] = silu(acc);
      }
      for (int64_t j = 0; j < K - 1; j++) hist[j] = cat[size_t(R + j)];
    }
  });
  Buf dbc(*arena_, R * ldb);
  linear(xcp, Di, R, w.x_proj, nullptr, dbc.get(), ldb);
  Buf delta(*arena_, R * Di);
  linear(dbc.get(), ldb, R, w.dt_proj, &w.dt_b, delta.get(), Di);
  pool_->run(R * Di, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) delta[i] = softplus(delta[i]);
  });
  Buf y(*arena_, R * Di);
  const Kernels& k = *kern_;
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
      thread_local std::vector<float> S, Ab, Bp;
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
        if (S.size() < size_t(2 * nb * n)) S.resize(size_t(2 * nb * n));
        if (Ab.size() < size_t(4 * nb * hd)) Ab.resize(size_t(4 * nb * hd));
        if (Bp.size() < size_t(gemm_pack_floats())) Bp.resize(size_t(gemm_pack_floats()));
        const float* q1 = q.get() + r0 * ldq + (2 * j) * hd;
        k.attend_block(q1, q1 + hd, ldq, nb, kp.data() + L0, vp.data() + L0, n, klo.data(), khi.data(), (2 * g) * hd,
                       (2 * g + 1) * hd, hd, scale, S.data(), Ab.data(), Bp.data());
        for (int64_t i = 0; i < nb; i++) finish(r0 + i, j, Ab.data() + i * 2 * hd, Ab.data() + (nb + i) * 2 * hd);
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
  const bool sambay = c.layout == "sambay";
  Buf x(*arena_, R * H), a(*arena_, R * H), o(*arena_, R * H);
  for (int64_t r = 0; r < R; r++) {
    const Mat& E = embed_;
    const uint8_t* row = static_cast<const uint8_t*>(E.data) + size_t(tokens[r]) * size_t(H) * (E.dt == DType::F32 ? 4 : 2);
    kern_->widen(row, E.dt, H, x.get() + r * H);
  }
  Buf mem(*arena_, sambay ? R * c.Di : 1);
  Buf u(*arena_, R * 2 * c.I);
  Buf gm(*arena_, R * c.I);
  int64_t rows = R, p0 = s.pos;
  bool head = true;
  for (int64_t li = 0; li < c.L; li++) {
    const LayerW& w = layers_[size_t(li)];
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
    layernorm(*pool_, x.get(), rows, H, w.ln_in_w, w.ln_in_b, c.eps, a.get());
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
    for (int64_t i = 0; i < rows * H; i++) x[i] += o[i];
    layernorm(*pool_, x.get(), rows, H, w.ln_post_w, w.ln_post_b, c.eps, a.get());
    linear(a.get(), H, rows, w.fc1, nullptr, u.get(), 2 * c.I);
    pool_->run(rows, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++)
        kern_->gate(u.get() + r * 2 * c.I, u.get() + r * 2 * c.I + c.I, gm.get() + r * c.I, c.I);
    });
    linear(gm.get(), c.I, rows, w.fc2, nullptr, o.get(), H);
    for (int64_t i = 0; i < rows * H; i++) x[i] += o[i];
  }
  s.pos += R;
  if (!head) return;
  if (all) {
    layernorm(*pool_, x.get(), rows, H, final_w_, final_b_, c.eps, a.get());
    linear(a.get(), H, rows, lm_head_, nullptr, logits, c.V);
  } else if (last_chunk) {
    const int64_t keep = std::min(rows, tail);
    layernorm(*pool_, x.get() + (rows - keep) * H, keep, H, final_w_, final_b_, c.eps, a.get());
    linear(a.get(), H, keep, lm_head_, nullptr, logits, c.V);
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
  std::lock_guard<std::mutex> g(compute_mu_);
  // The rows that need logits must lie in the last chunk: end the chunk before it early if needed.
  for (int64_t c0 = 0; c0 < T;) {
    int64_t R = std::min(kPrefillChunk, T - c0);
    if (!all && c0 + R < T && T - (c0 + R) < tail) R = T - tail > c0 ? T - tail - c0 : T - c0;
    bool last = c0 + R == T;
    run_chunk(s, tokens + c0, R, all, last, tail, all ? logits + c0 * c.V : logits);
    c0 += R;
  }
}

}  // namespace fc
