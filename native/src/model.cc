#include "model.h"

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
