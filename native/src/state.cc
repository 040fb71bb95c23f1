#include "state.h"

#include <cstring>

namespace fc {

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

void State::init(const Config& c) {
  pos = 0;
  position.store(0);
  poisoned.store(false);
  error.clear();
  layers.clear();
  layers.resize(size_t(c.L));
  for (int64_t i = 0; i < c.L; i++) {
    LayerState& ls = layers[size_t(i)];
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
}

std::unique_ptr<State> State::clone() const {
  check_usable();
  auto s = std::make_unique<State>();
  s->model = model;
  s->pos = pos;
  s->position.store(pos);
  s->last_ms.store(last_ms.load());
  s->layers = layers;  // constant-size states copied; KV pages shared (shared_ptr copies)
  return s;
}

void State::poison(const std::string& why) {
  error = why;
  pos = position.load();
  poisoned.store(true);
}

void State::check_usable() const {
  if (poisoned.load())
    throw StatePoisoned("state is unusable: an earlier call on it failed part-way (" + error +
                        "); start a new state or clone one taken before that call");
}

}  // namespace fc
