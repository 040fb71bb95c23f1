// Node-API binding. JS sees two classes, NativeModel and NativeState; daemon/model/kernel.ts wraps them.
// Async calls run on one executor thread per model (not libuv's pool); the compute itself fans out on
// the model's own worker pool. Results come back to the JS thread through a thread-safe function.
#include <chrono>
#include <napi.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "append_map.h"
#include "model.h"
#include "sched.h"
#include "sdnotify.h"

using namespace fc;

namespace {

// One thread running queued jobs in order.
class Executor {
 public:
  explicit Executor(int nice = 0) : th_([this, nice] {
    fc::lower_thread_priority(nice);
    loop();
  }) {}
  ~Executor() {
    {
      std::lock_guard<std::mutex> g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    th_.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> g(m_);
      q_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return stop_ || !q_.empty(); });
        if (q_.empty()) return;  // stop_ and drained
        f = std::move(q_.front());
        q_.pop_front();
      }
      f();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> q_;
  bool stop_ = false;
  std::thread th_;
};

Executor& loader_executor() {
  static Executor* e = new Executor();  // lives for the process
  return *e;
}

Napi::Error make_error(Napi::Env env, const std::string& msg, const char* code) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

// The JS error code of a C++ exception (call inside a catch block); msg gets its message.
const char* classify(std::exception_ptr ep, std::string& msg) {
  try {
    std::rethrow_exception(ep);
  } catch (const LoadError& e) {
    msg = e.what();
    return "E_MODEL_LOAD";
  } catch (const StatePoisoned& e) {
    msg = e.what();
    return "E_STATE_POISONED";
  } catch (const std::invalid_argument& e) {
    msg = e.what();
    return "E_INVALID_ARGUMENT";
  } catch (const std::exception& e) {
    msg = e.what();
    return "E_KERNEL";
  } catch (...) {
    msg = "unknown error in the kernel";
    return "E_KERNEL";
  }
}

// Runs f on the JS thread with every C++ exception turned into a JS error with a code: node-addon-api only
// converts Napi::Error, anything else thrown out of a callback would terminate the process.
template <class F>
auto guarded(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    std::string msg;
    const char* code = classify(std::current_exception(), msg);
    throw make_error(env, msg, code);
  }
}

// Runs `work` on `ex`, then settles the promise on the JS thread. `work` returns an error message or
// "" and fills whatever it captured; `done` builds the resolved value on the JS thread.
struct AsyncJob {
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction tsfn;
  std::string error;
  std::string code;
};

// `settle` (optional) runs on the JS thread just before the promise settles, whatever the outcome.
Napi::Promise run_async(Napi::Env env, Executor& ex, std::function<void(AsyncJob&)> work,
                        std::function<Napi::Value(Napi::Env)> done, std::function<void()> settle = nullptr) {
  auto job = std::make_shared<AsyncJob>(AsyncJob{Napi::Promise::Deferred::New(env), {}, {}, {}});
  job->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                            "flashcheck_kernel", 0, 1);
  Napi::Promise p = job->deferred.Promise();
  ex.post([job, work, done, settle]() {
    try {
      work(*job);
    } catch (...) {
      job->code = classify(std::current_exception(), job->error);
      if (job->error.empty()) job->error = "kernel error";
    }
    job->tsfn.BlockingCall([job, done, settle](Napi::Env env, Napi::Function) {
      if (settle) settle();
      if (!job->error.empty()) {
        job->deferred.Reject(make_error(env, job->error, job->code.c_str()).Value());
        return;
      }
      try {
        job->deferred.Resolve(done(env));
      } catch (const Napi::Error& e) {
        job->deferred.Reject(e.Value());
      } catch (const std::exception& e) {
        job->deferred.Reject(make_error(env, e.what(), "E_KERNEL").Value());
      }
    });
    job->tsfn.Release();
  });
  return p;
}

class NativeState;

// The classes' constructors, one set per environment: the addon is loaded by the main thread and may be by
// worker threads (each an environment of its own), and a static reference would hand one thread's
// constructor to another (and dangle once that thread exits).
struct Ctors {
  Napi::FunctionReference model;
  Napi::FunctionReference state;
  Napi::FunctionReference appendMap;
};
Ctors& ctors(Napi::Env env) { return *env.GetInstanceData<Ctors>(); }

class NativeModel : public Napi::ObjectWrap<NativeModel> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "NativeModel",
                                   {
                                       InstanceMethod("config", &NativeModel::Config),
                                       InstanceMethod("newState", &NativeModel::NewState),
                                       InstanceMethod("forward", &NativeModel::Forward),
                                       InstanceMethod("forwardAsync", &NativeModel::ForwardAsync),
                                       InstanceMethod("dispose", &NativeModel::Dispose),
                                   });
    ctors(env).model = Napi::Persistent(f);
    exports.Set("NativeModel", f);
    return exports;
  }
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Model> m) {
    Napi::Object o = ctors(env).model.New({});
    NativeModel* w = Unwrap(o);
    w->model_ = std::move(m);
    return o;
  }
  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {}

  std::shared_ptr<Model> model(Napi::Env env) {
    if (!model_) throw make_error(env, "model is disposed", "E_DISPOSED");
    return model_;
  }

 private:
  Napi::Value Config(const Napi::CallbackInfo& info);
  Napi::Value NewState(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value ForwardAsync(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    // queued async work keeps its own reference and finishes; the executor joins after draining
    executor_.reset();
    model_.reset();
    return info.Env().Undefined();
  }
  Executor& executor() {
    if (!executor_) executor_ = std::make_unique<Executor>(model_ ? model_->nice() : 0);
    return *executor_;
  }
  std::shared_ptr<Model> model_;
  std::unique_ptr<Executor> executor_;
};

class NativeState : public Napi::ObjectWrap<NativeState> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "NativeState",
                                   {
                                       InstanceMethod("clone", &NativeState::Clone),
                                       InstanceMethod("position", &NativeState::Position),
                                       InstanceMethod("dispose", &NativeState::Dispose),
                                       InstanceMethod("busy", &NativeState::Busy),
                                       InstanceMethod("lastMs", &NativeState::LastMs),
                                   });
    ctors(env).state = Napi::Persistent(f);
    exports.Set("NativeState", f);
    return exports;
  }
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<State> s) {
    Napi::Object o = ctors(env).state.New({});
    Unwrap(o)->state_ = std::move(s);
    return o;
  }
  explicit NativeState(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeState>(info) {}

  std::shared_ptr<State> state(Napi::Env env) {
    if (!state_) throw make_error(env, "state is disposed", "E_DISPOSED");
    return state_;
  }
  static std::shared_ptr<State> from(Napi::Env env, Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctors(env).state.Value()))
      throw Napi::TypeError::New(env, "expected a State");
    return Unwrap(v.As<Napi::Object>())->state(env);
  }

 private:
  Napi::Value Clone(const Napi::CallbackInfo& info) {
    auto s = state(info.Env());
    if (s->busy.load()) throw make_error(info.Env(), "state is in use by a running call; clone it after that call settles", "E_STATE_BUSY");
    if (!s->model || s->model->threads() == 0) throw make_error(info.Env(), "model is disposed", "E_DISPOSED");
    return guarded(info.Env(), [&] { return Wrap(info.Env(), std::shared_ptr<State>(s->clone())); });
  }
  Napi::Value Position(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(state(info.Env())->position.load()));
  }
  Napi::Value LastMs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), state(info.Env())->last_ms.load());
  }
  Napi::Value Busy(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), state_ && state_->busy.load());
  }
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (state_ && state_->busy.load())
      throw make_error(info.Env(), "state is in use by a running call; dispose it after that call settles", "E_STATE_BUSY");
    state_.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<State> state_;
};

Napi::Value NativeModel::Config(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  const fc::Config& c = m->config();
  Napi::Object o = Napi::Object::New(env);
  o.Set("model_type", c.model_type);
  o.Set("layout", layout_name(c.layout));
  o.Set("hidden_size", double(c.H));
  o.Set("num_hidden_layers", double(c.L));
  o.Set("num_attention_heads", double(c.nh));
  o.Set("num_key_value_heads", double(c.nkv));
  o.Set("head_dim", double(c.hd));
  o.Set("intermediate_size", double(c.I));
  o.Set("vocab_size", double(c.V));
  o.Set("sliding_window", double(c.W));
  o.Set("mb_per_layer", double(c.mb));
  o.Set("mamba_d_state", double(c.N));
  o.Set("mamba_d_conv", double(c.K));
  o.Set("mamba_expand", double(c.E));
  o.Set("dt_rank", double(c.R));
  o.Set("d_inner", double(c.Di));
  o.Set("layer_norm_eps", c.eps);
  o.Set("tie_word_embeddings", c.tied);
  Napi::Array layers = Napi::Array::New(env, size_t(c.L));
  for (int64_t i = 0; i < c.L; i++) layers.Set(uint32_t(i), layer_kind_name(c.kinds[size_t(i)]));
  o.Set("layers", layers);
  o.Set("weight_dtype", m->weights().dtype);
  o.Set("param_count", double(m->weights().param_count));
  o.Set("weight_bytes", double(m->weights().weight_bytes));
  o.Set("converted_bytes", double(m->weights().resident_extra));
  o.Set("threads", double(m->threads()));
  o.Set("isa", m->isa());
  o.Set("quant", qtype_name(m->weights().quant));
  return o;
}

Napi::Value NativeModel::NewState(const Napi::CallbackInfo& info) {
  auto m = model(info.Env());
  return guarded(info.Env(), [&] { return NativeState::Wrap(info.Env(), std::shared_ptr<State>(m->new_state())); });
}

static std::vector<int32_t> tokens_arg(Napi::Env env, Napi::Value v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "tokens must be an Int32Array");
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// Third argument of forward: true = logits of every position, a number k = of the last k, else the last one.
static int64_t tail_arg(Napi::Env env, Napi::Value v, int64_t T) {
  if (v.IsNumber()) {
    double k = v.As<Napi::Number>().DoubleValue();
    if (!(k >= 1 && k <= double(T)) || k != double(int64_t(k)))
      throw make_error(env, "logits rows must be an integer from 1 to the number of tokens", "E_INVALID_ARGUMENT");
    return int64_t(k);
  }
  return v.ToBoolean() ? T : 1;
}

// Marks the state busy for the duration of a call; throws if it already is.
static void acquire(Napi::Env env, State& s) {
  bool expected = false;
  if (!s.busy.compare_exchange_strong(expected, true))
    throw make_error(env, "state is in use by another call (await it before using the state again)", "E_STATE_BUSY");
}

// forward(state, Int32Array tokens, allLogits) -> Float32Array
Napi::Value NativeModel::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  auto s = NativeState::from(env, info[0]);
  std::vector<int32_t> toks = tokens_arg(env, info[1]);
  if (toks.empty()) throw make_error(env, "at least one token is needed", "E_INVALID_ARGUMENT");
  if (s->model != m) throw make_error(env, "state belongs to another model", "E_INVALID_ARGUMENT");
  const int64_t tail = tail_arg(env, info[2], int64_t(toks.size()));
  const int64_t V = m->config().V;
  size_t n = size_t(tail * V);
  Napi::Float32Array out = Napi::Float32Array::New(env, n);
  acquire(env, *s);
  try {
    auto t0 = std::chrono::steady_clock::now();
    m->forward_tail(*s, toks.data(), int64_t(toks.size()), tail, out.Data());
    s->last_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  } catch (...) {
    s->busy = false;
    std::string msg;
    const char* code = classify(std::current_exception(), msg);
    throw make_error(env, msg, code);
  }
  s->busy = false;
  return out;
}

Napi::Value NativeModel::ForwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto m = model(env);
  auto s = NativeState::from(env, info[0]);
  auto toks = std::make_shared<std::vector<int32_t>>(tokens_arg(env, info[1]));
  if (toks->empty()) throw make_error(env, "at least one token is needed", "E_INVALID_ARGUMENT");
  if (s->model != m) throw make_error(env, "state belongs to another model", "E_INVALID_ARGUMENT");
  const int64_t tail = tail_arg(env, info[2], int64_t(toks->size()));
  acquire(env, *s);
  const int64_t V = m->config().V;
  auto out = std::make_shared<std::vector<float>>();
  return run_async(
      env, executor(),
      [m, s, toks, tail, out, V](AsyncJob&) {
        out->resize(size_t(tail * V));
        auto t0 = std::chrono::steady_clock::now();
        m->forward_tail(*s, toks->data(), int64_t(toks->size()), tail, out->data());
        s->last_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      },
      [out](Napi::Env env) -> Napi::Value {
        Napi::Float32Array a = Napi::Float32Array::New(env, out->size());
        std::memcpy(a.Data(), out->data(), out->size() * 4);
        return a;
      },
      // the state stays busy until the promise settles (on the JS thread), so a call made before that
      // is always rejected, never racing the end of the computation
      [s]() { s->busy = false; });
}

// Optional load argument: "none" | "q8_0" | "q4_0" (undefined = none).
QType quantize_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return QType::None;
  if (!info[i].IsString()) throw std::invalid_argument("quantize must be \"none\", \"q8_0\" or \"q4_0\"");
  return parse_qtype(info[i].As<Napi::String>());
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "load(dir, threads): dir must be a string");
  std::string dir = info[0].As<Napi::String>();
  int threads = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  int nice = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  try {
    const QType quantize = quantize_arg(info, 3);
    return NativeModel::Wrap(env, Model::load(dir, threads, nice, quantize));
  } catch (const LoadError& e) {
    throw make_error(env, e.what(), "E_MODEL_LOAD");
  } catch (const std::exception& e) {
    throw make_error(env, std::string("loading ") + dir + ": " + e.what(), "E_MODEL_LOAD");
  }
}

Napi::Value LoadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "loadAsync(dir, threads): dir must be a string");
  std::string dir = info[0].As<Napi::String>();
  int threads = info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  int nice = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
  QType quantize;
  try {
    quantize = quantize_arg(info, 3);
  } catch (const std::exception& e) {
    throw make_error(env, e.what(), "E_MODEL_LOAD");
  }
  auto result = std::make_shared<std::shared_ptr<Model>>();
  return run_async(
      env, loader_executor(),
      [dir, threads, nice, quantize, result](AsyncJob&) {
        try {
          *result = Model::load(dir, threads, nice, quantize);
        } catch (const LoadError&) {
          throw;
        } catch (const std::exception& e) {
          throw LoadError(std::string("loading ") + dir + ": " + e.what());
        }
      },
      [result](Napi::Env env) -> Napi::Value { return NativeModel::Wrap(env, *result); });
}

Napi::Value Isa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), kernels().name); }

// logSumExp(logits: Float32Array, offset, n) -> log Σ exp(logits[offset .. offset+n)) in float64: a logits row's
// log-softmax normaliser for label scoring (daemon/verdict/score.ts). Synchronous: 200k logits take ~0.1 ms.
Napi::Value LogSumExp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
      !info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "logSumExp(logits: Float32Array, offset: number, n: number)");
  Napi::Float32Array a = info[0].As<Napi::Float32Array>();
  const double off = info[1].As<Napi::Number>().DoubleValue(), n = info[2].As<Napi::Number>().DoubleValue();
  if (!(off >= 0 && n >= 0 && off == double(int64_t(off)) && n == double(int64_t(n)) && off + n <= double(a.ElementLength())))
    throw Napi::RangeError::New(env, "logSumExp: offset and n must be integers within the array");
  return Napi::Number::New(env, kernels().lse(a.Data() + int64_t(off), int64_t(n)));
}

// sdNotify(socketPath, state) -> 0 or errno; daemon/systemd/notify.ts is the caller.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "sdNotify(socketPath: string, state: string)");
  std::string path = info[0].As<Napi::String>();
  std::string state = info[1].As<Napi::String>();
  return Napi::Number::New(env, sd_notify_send(path.c_str(), state.data(), state.size()));
}

// schedIdle() -> 0 or errno: the calling thread to SCHED_IDLE (daemon/audit/ingest-worker.ts is the caller).
Napi::Value SchedIdle(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sched_idle_self()); }

// mapAppendFile(path, capacity) -> NativeAppendMap, or an errno value: a preallocated file appended to through a
// shared mapping (append_map.h). daemon/audit/spool.ts is the caller.
class NativeAppendMap : public Napi::ObjectWrap<NativeAppendMap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function f = DefineClass(env, "NativeAppendMap",
                                   {
                                       InstanceMethod("append", &NativeAppendMap::Append),
                                       InstanceMethod("sync", &NativeAppendMap::Sync),
                                       InstanceMethod("close", &NativeAppendMap::Close),
                                       InstanceMethod("closeInBackground", &NativeAppendMap::CloseInBackground),
                                   });
    ctors(env).appendMap = Napi::Persistent(f);
  }
  static Napi::Object Wrap(Napi::Env env, AppendMap* m) {
    Napi::Object o = ctors(env).appendMap.New({});
    Unwrap(o)->map_.reset(m);
    return o;
  }
  explicit NativeAppendMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeAppendMap>(info) {}

 private:
  // append(text) -> the data's size after it, or -1 when it does not fit (nothing is written then). The UTF-8
  // is encoded straight into the mapping.
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "append(text: string)");
    if (!map_) throw Napi::Error::New(env, "append after close");
    const size_t room = map_->room();
    size_t units = 0;
    if (napi_get_value_string_utf16(env, info[0], nullptr, 0, &units) != napi_ok) throw Napi::Error::New(env, "append: not a string");
    // A UTF-16 unit is at most 3 bytes of UTF-8; only a text near the end of the room is measured first, since
    // a copy that is cut short would leave part of it behind the data.
    if (room <= units * 3) {
      size_t bytes = 0;
      napi_get_value_string_utf8(env, info[0], nullptr, 0, &bytes);
      if (bytes >= room) return Napi::Number::New(env, -1);
    }
    size_t copied = 0;
    // Writes a NUL after the text too: the mapping is zero there already.
    napi_get_value_string_utf8(env, info[0], map_->tail(), room, &copied);
    map_->advance(copied);
    return Napi::Number::New(env, static_cast<double>(map_->size()));
  }
  Napi::Value Sync(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), map_ ? map_->sync() : 0); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    int err = map_ ? map_->close() : 0;
    map_.reset();
    return Napi::Number::New(info.Env(), err);
  }
  // closeInBackground(): close() on a thread of its own. Unmapping a written 16 MiB segment and cutting the file
  // take milliseconds that the event loop should not wait for; the data is in the page cache already, and a
  // process that exits first leaves the file uncut, which readers handle (zeros past the data).
  Napi::Value CloseInBackground(const Napi::CallbackInfo& info) {
    if (AppendMap* m = map_.release()) {
      std::thread([m] {
        m->close();
        delete m;
      }).detach();
    }
    return info.Env().Undefined();
  }
  std::unique_ptr<AppendMap> map_;
};

Napi::Value MapAppendFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "mapAppendFile(path: string, capacity: number)");
  std::string path = info[0].As<Napi::String>();
  const double cap = info[1].As<Napi::Number>().DoubleValue();
  if (!(cap >= 1 && cap <= 1e12)) throw Napi::RangeError::New(env, "mapAppendFile: capacity out of range");
  AppendMap* m = nullptr;
  int err = AppendMap::create(path.c_str(), static_cast<size_t>(cap), &m);
  if (err != 0) return Napi::Number::New(env, err);
  return NativeAppendMap::Wrap(env, m);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new Ctors());
  NativeModel::Init(env, exports);
  NativeState::Init(env, exports);
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("loadAsync", Napi::Function::New(env, LoadAsync));
  exports.Set("isa", Napi::Function::New(env, Isa));
  exports.Set("logSumExp", Napi::Function::New(env, LogSumExp));
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("schedIdle", Napi::Function::New(env, SchedIdle));
  NativeAppendMap::Init(env, exports);
  exports.Set("mapAppendFile", Napi::Function::New(env, MapAppendFile));
  return exports;
}

}  // namespace

NODE_API_MODULE(flashcheck_kernel, Init)
