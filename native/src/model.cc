#include "model.h"

#include <cstdlib>
#include <cstring>
#include <thread>

namespace fc {

std::shared_ptr<Model> Model::load(const std::string& dir, int threads, int nice, QType quantize) {
  std::string cfgp = dir + "/config.json";
  if (!file_exists(cfgp)) throw LoadError("no config.json in " + dir);
  std::shared_ptr<Model> m(new Model());
  const std::string text = read_text_file(cfgp);
  m->cfg_ = parse_config(text);
  const QType stored = config_quant_type(text);
  if (stored != QType::None && quantize != QType::None && stored != quantize)
    throw LoadError(std::string("the checkpoint is quantized as ") + qtype_name(stored) +
                    " (config.json quantization_config) and cannot be loaded with quantize=" + qtype_name(quantize) +
                    ": use quantize=none or " + qtype_name(stored) + ", or quantize the float checkpoint");
  if (threads <= 0) {
    unsigned hc = std::thread::hardware_concurrency();
    threads = hc ? int(hc) : 1;
  }
  bind_weights(dir, m->cfg_, m->w_, stored != QType::None ? QType::None : quantize, threads);
  if (stored != QType::None && m->w_.quant != stored)
    throw LoadError(std::string("config.json names quantization type ") + qtype_name(stored) +
                    " but the checkpoint's projections are " +
                    (m->w_.quant == QType::None ? std::string("not quantized") : std::string(qtype_name(m->w_.quant))));
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
