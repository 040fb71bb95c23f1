// SambaY (phi4flash) model: config, weights (memory-mapped), decode state and forward pass.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels.h"
#include "safetensors.h"
#include "threadpool.h"

namespace fc {

enum class LayerKind { Mamba, MambaMem, SWA, FullKV, GMU, Cross, Full };
const char* layer_kind_name(LayerKind k);

struct Config {
  std::string model_type;
  std::string layout;  // "sambay" | "all-attention"
  int64_t H = 0, L = 0, nh = 0, nkv = 0, hd = 0, I = 0, V = 0, W = 0, mb = 0;
  int64_t N = 16, K = 4, E = 2, R = 0, Di = 0;
  double eps = 1e-5;
  bool tied = true;
  bool tied_explicit = false;
  std::vector<LayerKind> kinds;
  int64_t h() const { return L / 2; }
  int64_t qdim() const { return nh * hd; }
  int64_t kvdim() const { return nkv * hd; }
};

// Parses and validates config.json (throws LoadError).
Config parse_config(const std::string& text);

struct Vec {
  const float* p = nullptr;
  int64_t n = 0;
};

struct LayerW {
  LayerKind kind;
  Vec ln_in_w, ln_in_b, ln_post_w, ln_post_b;
  Mat fc1, fc2;
  // Mamba / GMU
  Mat in_proj, x_proj, dt_proj, out_proj;
  Vec conv_w, conv_b, dt_b, D;
  std::vector<float> A;  // -exp(A_log), [Di, N]
  // attention
  Mat wqkv, wo;
  Vec bqkv, bo, subln;
  float lambda = 0, lambda_init = 0;
};

// Paged, append-only K/V of a full-attention layer. Pages are shared between a state and its clones;
// a page that is shared and still being filled is copied before the first write (copy-on-write).
struct KVPage {
  std::vector<float> k, v;
};
constexpr int64_t kKVPage = 64;

struct KVStore {
  std::vector<std::shared_ptr<KVPage>> pages;
  int64_t len = 0;
  const float* k(int64_t pos, int64_t kvdim) const { return pages[pos / kKVPage]->k.data() + (pos % kKVPage) * kvdim; }
  const float* v(int64_t pos, int64_t kvdim) const { return pages[pos / kKVPage]->v.data() + (pos % kKVPage) * kvdim; }
  void append(const float* krow, const float* vrow, int64_t ld, int64_t n, int64_t kvdim);
};

struct LayerState {
  std::vector<float> conv;  // Mamba: [Di, K-1] last pre-conv inputs, oldest first
  std::vector<float> ssm;   // Mamba: [Di, N]
  std::vector<float> k, v;  // SWA ring buffer: [W, kvdim], slot = pos % W
  KVStore kv;               // full attention
};

class Model;
struct Arena;

struct State {
  std::shared_ptr<const Model> model;
  int64_t pos = 0;
  std::vector<LayerState> layers;
  std::atomic<bool> busy{false};
  // Wall time of the last forward on this state, measured on the thread that ran it: what the call cost,
  // without the wait for the JS thread to pick up its result (schedulers learn from this).
  double last_ms = 0;
  std::unique_ptr<State> clone() const;
};

class Model : public std::enable_shared_from_this<Model> {
 public:
  // nice > 0 lowers the pool threads' priority by that much (see lower_thread_priority).
  static std::shared_ptr<Model> load(const std::string& dir, int threads, int nice = 0);
  int nice() const { return nice_; }
  ~Model();

  const Config& config() const { return cfg_; }
  std::unique_ptr<State> new_state() const;
  // Runs tokens through the model, updating the state. Writes logits of every position (all=true, [T, V])
  // or of the last one ([V]). Throws std::invalid_argument for bad token ids.
  void forward(State& s, const int32_t* tokens, int64_t T, bool all, float* logits);
  // Logits of the last `tail` positions ([tail * V]); tail 1 is a plain prefill, tail T the all-logits one.
  void forward_tail(State& s, const int32_t* tokens, int64_t T, int64_t tail, float* logits);
  int threads() const { return pool_->size(); }

  int64_t param_count = 0;
  int64_t weight_bytes = 0;    // bytes of the used tensors as stored in the checkpoint
  int64_t resident_extra = 0;  // bytes converted/copied at load (f16 -> f32, misaligned, small vectors)
  std::string weight_dtype;    // "F32", "BF16", "F16" or "mixed"
  std::string isa() const { return kern_->name; }


 private:
  Model() = default;
  void bind_weights(const std::string& dir);
  void run_chunk(State& s, const int32_t* tokens, int64_t R, bool all, bool last_chunk, int64_t tail, float* logits);
  void linear(const float* A, int64_t lda, int64_t T, const Mat& W, const Vec* bias, float* C, int64_t ldc);
  void mamba(LayerState& ls, const LayerW& w, const float* a, int64_t R, float* out, float* mem);
  void attention(State& s, int64_t li, const LayerW& w, const float* a, int64_t R, int64_t p0, float* out);

  Config cfg_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::vector<std::vector<float>> owned_;
  Mat embed_, lm_head_;
  Vec final_w_, final_b_;
  std::vector<LayerW> layers_;
  std::unique_ptr<ThreadPool> pool_;
  int nice_ = 0;
  std::unique_ptr<Arena> arena_;  // scratch buffers reused across chunks and steps
  const Kernels* kern_ = nullptr;
  std::mutex compute_mu_;
  friend struct State;
};

}  // namespace fc
