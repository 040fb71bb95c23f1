// Decode state of one sequence: what each layer carries from one position to the next.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "config.h"

namespace fc {

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

struct State {
  std::shared_ptr<const Model> model;
  int64_t pos = 0;
  std::vector<LayerState> layers;
  std::atomic<bool> busy{false};
  // Wall time of the last forward on this state, measured on the thread that ran it: what the call cost,
  // without the wait for the JS thread to pick up its result (schedulers learn from this).
  double last_ms = 0;
  // Sizes every layer's buffers for c's layer plan, zeroed: the state before the first token.
  void init(const Config& c);
  std::unique_ptr<State> clone() const;
};

}  // namespace fc
