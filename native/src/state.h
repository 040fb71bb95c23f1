// Decode state of one sequence: what each layer carries from one position to the next.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
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

// A state that a call left half-advanced (an exception in the middle of a forward): every later use is
// refused with this error instead of computing on inconsistent layers.
struct StatePoisoned : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One call at a time owns a state (busy, taken with a compare-exchange by the caller); only that call touches
// pos, layers and error. What other threads may read while a call runs is atomic: position and last_ms
// change once, when a call completes, so a reader sees the state before or after a call, never in between.
struct State {
  std::shared_ptr<const Model> model;
  int64_t pos = 0;  // tokens consumed, advanced chunk by chunk during a call
  std::vector<LayerState> layers;
  std::atomic<bool> busy{false};
  std::atomic<int64_t> position{0};  // pos as of the last completed call
  // Wall time of the last forward on this state, measured on the thread that ran it: what the call cost,
  // without the wait for the JS thread to pick up its result (schedulers learn from this).
  std::atomic<double> last_ms{0};
  std::atomic<bool> poisoned{false};
  std::string error;  // why it is poisoned

  // Sizes every layer's buffers for c's layer plan, zeroed: the state before the first token.
  void init(const Config& c);
  std::unique_ptr<State> clone() const;  // throws StatePoisoned
  // Marks the state unusable after a call failed part-way; pos goes back to the last completed call.
  void poison(const std::string& why);
  // Throws StatePoisoned when an earlier call failed part-way.
  void check_usable() const;
};

}  // namespace fc
