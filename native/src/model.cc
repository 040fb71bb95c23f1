#include "model.h"

#include <cstdlib>
#include <cstring>
#include <thread>

namespace fc {

std::shared_ptr<Model> Model::load(const std::string& dir, int threads, int nice) {
  std::string cfgp = dir + "/config.json";
  if (!file_exists(cfgp)) throw LoadError("no config.json in " + dir);
  std::shared_ptr<Model> m(new Model());
  m->cfg_ = parse_config(read_text_file(cfgp));
  bind_weights(dir, m->cfg_, m->w_);
  if (threads <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    threads = hc ? int(hc) : 1;
  }
  m->nice_ = nice;
  m->pool_ = std::make_unique<ThreadPool>(threads, nice);
  // Test hook for the failure paths: FLASHCHECK_KERNEL_FAULT=worker:N (read at load) makes the first chunk a
  // pool worker runs during or after this model's N-th forward call throw, once.
  if (const char* f = std::getenv("FLASHCHECK_KERNEL_FAULT")) {
    if (std::strncmp(f, "worker:", 7) == 0) m->fault_call_ = std::atoll(f + 7);
  }
  m->kern_ = &kernels();
  m->arena_ = std::make_unique<Arena>();
  return m;
}

Model::~Model() = default;

std::unique_ptr<State> Model::new_state() const {
  auto s = std::make_unique<State>();
  s->model = shared_from_this();
  s->init(cfg_);
  return s;
}

}  // namespace fc
