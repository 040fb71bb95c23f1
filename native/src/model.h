// SambaY (phi4flash) model: hyperparameters (config.h), mapped weights (weights.h), decode state (state.h)
// and the forward graph (forward.cc) behind one object.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "config.h"
#include "kernels.h"
#include "safetensors.h"
#include "state.h"
#include "threadpool.h"
#include "weights.h"

namespace fc {

// 64-byte aligned float arrays: a vector load or store that straddles two cache lines costs two.
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFree>;
AlignedFloats aligned_floats(size_t n);  // throws std::bad_alloc

// Free scratch buffers of a model, reused across chunks and steps (see Buf in forward.cc).
struct Arena {
  std::vector<std::pair<size_t, AlignedFloats>> free;
};

class Model : public std::enable_shared_from_this<Model> {
 public:
  // nice > 0 lowers the pool threads' priority by that much (see lower_thread_priority).
  // quantize: load-time quantization of a float checkpoint's projections (quant.h); a checkpoint already
  // quantized loads as it is with None or its own type and is refused with another.
  static std::shared_ptr<Model> load(const std::string& dir, int threads, int nice = 0, QType quantize = QType::None);
  int nice() const { return nice_; }
  ~Model();

  const Config& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  std::unique_ptr<State> new_state() const;
  // Runs tokens through the model, updating the state. Writes logits of every position (all=true, [T, V])
  // or of the last one ([V]). Throws std::invalid_argument for bad token ids.
  void forward(State& s, const int32_t* tokens, int64_t T, bool all, float* logits);
  // Logits of the last `tail` positions ([tail * V]); tail 1 is a plain prefill, tail T the all-logits one.
  void forward_tail(State& s, const int32_t* tokens, int64_t T, int64_t tail, float* logits);
  int threads() const { return pool_->size(); }
  // The float kernels' ISA, plus the integer kernels' when weights are quantized ("avx512+int8-avx512vnni").
  std::string isa() const {
    return w_.quant == QType::None ? std::string(kern_->name) : std::string(kern_->name) + "+" + kern_->q->name;
  }

 private:
  Model() = default;
  void run_chunk(State& s, const int32_t* tokens, int64_t R, bool all, bool last_chunk, int64_t tail, float* logits);
  void linear(const float* A, int64_t lda, int64_t T, const Mat& W, const Vec* bias, float* C, int64_t ldc);
  void mamba(LayerState& ls, const LayerW& w, const float* a, int64_t R, float* out, float* mem);
  void attention(State& s, int64_t li, const LayerW& w, const float* a, int64_t R, int64_t p0, float* out);

  Config cfg_;
  Weights w_;
  std::unique_ptr<ThreadPool> pool_;
  int nice_ = 0;
  std::unique_ptr<Arena> arena_;  // scratch buffers reused across chunks and steps
  const Kernels* kern_ = nullptr;
  std::mutex compute_mu_;
  int64_t calls_ = 0, fault_call_ = 0;  // forward calls so far; FLASHCHECK_KERNEL_FAULT's call (0: none)
};

}  // namespace fc
