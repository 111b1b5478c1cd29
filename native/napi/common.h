// Shared N-API plumbing: reading JS arguments for the pure checks of parse.h, Promise workers that map minielm::Error to JS errors with a
// stable `code`, and the NativeModel wrapper. Included by every file under native/napi/.
#pragma once
#include <napi.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <system_error>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/gemm.h"
#include "../core/threads.h"
#include "../cuda/device.h"
#include "../model/gpt2.h"
#include "parse.h"

namespace minielm_napi {

using minielm::Batch;
using minielm::Config;
using minielm::Gpt2;
using minielm::OptimConfig;
using minielm::StepStats;
using Model = Gpt2<float>;

inline Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

[[noreturn]] inline void throw_js(Napi::Env env, const std::string& code, const std::string& message) {
  throw make_error(env, code, message);
}

// Runs f() and turns every C++ exception into a coded JS error, so nothing thrown below the N-API boundary
// (minielm::Error, bad_alloc, system_error from thread creation, ...) can terminate the process.
template <typename F>
Napi::Value guard(Napi::Env env, F&& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const minielm::Error& e) {
    throw_js(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw_js(env, "MINIELM_OUT_OF_MEMORY", "out of memory: use a smaller model, batch or beam");
  } catch (const std::exception& e) {
    throw_js(env, "MINIELM_NATIVE", std::string("native error: ") + e.what());
  } catch (...) {
    throw_js(env, "MINIELM_NATIVE", "unknown native error");
  }
}

// A module-level function wrapped by guard(); every exported function is registered through this.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

// Sync entry points that run kernels hold a JobScope too, so setThreads cannot resize the pool under them
// (a Worker thread may call one while the main thread calls setThreads).
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded_job(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    minielm::JobScope job;
    return F(info);
  });
}

// Type tags of the wrapped classes, set by their constructors. napi_unwrap accepts an object wrapped by any
// class, so an argument holding another class's object (or one whose prototype was swapped to pass an
// instanceof test) would have that object's C++ instance reinterpreted; arguments are checked by tag.
// (Methods need no check: V8 refuses a receiver of another class with "Illegal invocation".)
inline constexpr napi_type_tag kNativeModelTag = {0x9d1c4f7a6b2e4c01ULL, 0x8a3f5e6d7c2b1a01ULL};
inline constexpr napi_type_tag kWordConstraintTag = {0x9d1c4f7a6b2e4c02ULL, 0x8a3f5e6d7c2b1a02ULL};

// True when v is an object constructed by the class that `tag` marks.
inline bool has_tag(Napi::Value v, const napi_type_tag& tag) { return v.IsObject() && v.As<Napi::Object>().CheckTypeTag(&tag); }

// Instance methods of an ObjectWrap class T go through guard() too: register them as &T::G<&T::Method>.
template <typename T>
struct GuardedMethods {
  template <Napi::Value (T::*M)(const Napi::CallbackInfo&)>
  Napi::Value G(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (static_cast<T*>(this)->*M)(info); });
  }
};

// Per-environment state (the main thread and every Worker that loads the addon get their own).
struct AddonData {
  Napi::FunctionReference model_constructor;
  Napi::FunctionReference word_constraint_constructor;
};

inline AddonData& addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) throw_js(env, "MINIELM_NATIVE", "the minielm addon is not initialised in this environment");
  return *d;
}

using minielm::args::checked_mul;
using minielm::args::OwnedBatch;

// Runs f() and rethrows a minielm::Error from the pure parsers of parse.h as the coded JS error.
template <typename F>
auto to_js(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const minielm::Error& e) {
    throw_js(env, e.code(), e.what());
  }
}

// One JS value as parse.h sees it (each property is read once, so a getter cannot answer the checks and
// the copy differently). A typed array is passed by pointer, valid while this call runs.
inline minielm::args::Value read_value(Napi::Value v) {
  using minielm::args::ArrayType;
  using minielm::args::Value;
  if (v.IsUndefined() || v.IsNull()) return Value::missing();
  if (v.IsNumber()) return Value::of_number(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return Value::of_string(v.As<Napi::String>().Utf8Value());
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_value buffer;
    size_t byte_offset = 0;
    napi_status status = napi_get_typedarray_info(v.Env(), v, &type, &length, &data, &buffer, &byte_offset);
    NAPI_THROW_IF_FAILED(v.Env(), status, Value::missing());
    const ArrayType t = type == napi_uint8_array     ? ArrayType::Uint8
                        : type == napi_int32_array   ? ArrayType::Int32
                        : type == napi_float32_array ? ArrayType::Float32
                        : type == napi_float64_array ? ArrayType::Float64
                                                     : ArrayType::Other;
    // A detached buffer reads as an empty array.
    return Value::of_array(t, data, data == nullptr ? 0 : length);
  }
  return Value::other(v.ToBoolean().Value());
}

inline minielm::args::Value read_field(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return minielm::args::Value::missing();
  return read_value(o.Get(key));
}

// The property reader the parse.h templates take.
inline auto fields(const Napi::Object& o) {
  return [o](const char* key) { return read_field(o, key); };
}

// An object argument, or a coded error naming `what`.
inline Napi::Object object_arg(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", what + " must be an object");
  return v.As<Napi::Object>();
}

// A whole number in [lo, hi] read from a JS value, or a coded error naming `what`.
inline int64_t int_arg(Napi::Env env, Napi::Value v, const std::string& what, int64_t lo, int64_t hi) {
  return to_js(env, [&] { return minielm::args::int_arg(read_value(v), what, lo, hi); });
}

inline Napi::Float32Array float32_arg(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", what + " must be a Float32Array");
  return v.As<Napi::Float32Array>();
}

inline std::string string_arg(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsString()) throw_js(env, "MINIELM_INVALID_ARGUMENT", what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline double get_number(const Napi::Object& o, const char* key, double fallback) {
  return to_js(o.Env(), [&] { return minielm::args::number_field(read_field(o, key), key, fallback); });
}

inline int64_t get_int(const Napi::Object& o, const char* key, int64_t fallback, int64_t lo = -(int64_t{1} << 53), int64_t hi = int64_t{1} << 53) {
  return to_js(o.Env(), [&] { return minielm::args::int_field(read_field(o, key), key, fallback, lo, hi); });
}

inline Config parse_config(const Napi::Object& o) {
  return to_js(o.Env(), [&] { return minielm::args::parse_config(fields(o)); });
}

inline OptimConfig parse_optim(const Napi::Object& o) {
  return to_js(o.Env(), [&] { return minielm::args::parse_optim(fields(o)); });
}

inline OwnedBatch parse_batch(const Napi::Object& o) {
  return to_js(o.Env(), [&] { return minielm::args::parse_batch(fields(o)); });
}

inline Napi::Object stats_to_js(Napi::Env env, const StepStats& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", s.loss);
  o.Set("gradNorm", s.grad_norm);
  o.Set("lr", s.lr);
  o.Set("tokens", s.tokens);
  o.Set("step", static_cast<double>(s.step));
  return o;
}

// {steps: StepStats[], aborted} for multi-step jobs.
inline Napi::Object steps_to_js(Napi::Env env, const std::vector<StepStats>& results, bool aborted) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Array arr = Napi::Array::New(env, results.size());
  for (size_t i = 0; i < results.size(); ++i) arr.Set(static_cast<uint32_t>(i), stats_to_js(env, results[i]));
  o.Set("steps", arr);
  o.Set("aborted", aborted);
  return o;
}

// Base worker: runs `work` on the pool, rejects with {code, message} on minielm::Error.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  virtual Napi::Value Result(Napi::Env env) = 0;
  virtual void Done() {}

  void Execute() override {
    try {
      minielm::JobScope job;
      Run();
    } catch (const minielm::Error& e) {
      code_ = e.code();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      code_ = "MINIELM_OUT_OF_MEMORY";
      SetError("out of memory");
    } catch (const std::exception& e) {
      code_ = "MINIELM_NATIVE";
      SetError(e.what());
    } catch (...) {
      code_ = "MINIELM_NATIVE";
      SetError("unknown native error");
    }
  }
  void OnOK() override {
    Done();
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(Result(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::bad_alloc&) {
      deferred_.Reject(make_error(Env(), "MINIELM_OUT_OF_MEMORY", "out of memory while returning the result").Value());
    } catch (const std::exception& e) {
      deferred_.Reject(make_error(Env(), "MINIELM_NATIVE", std::string("native error: ") + e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Done();
    Napi::HandleScope scope(Env());
    deferred_.Reject(make_error(Env(), code_.empty() ? "MINIELM_NATIVE" : code_, e.Message()).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string code_;
};

class NativeModel : public Napi::ObjectWrap<NativeModel>, public GuardedMethods<NativeModel> {
 public:
  static Napi::Function Init(Napi::Env env) {
    // Writable so lib/native.ts can wrap each method to rethrow its errors as MinielmError.
    constexpr auto kMethodAttrs = static_cast<napi_property_attributes>(napi_writable | napi_configurable);
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod("tensors", &NativeModel::G<&NativeModel::Tensors>, kMethodAttrs),
                           InstanceMethod("numParams", &NativeModel::G<&NativeModel::NumParams>, kMethodAttrs),
                           InstanceMethod("readTensor", &NativeModel::G<&NativeModel::ReadTensor>, kMethodAttrs),
                           InstanceMethod("writeTensor", &NativeModel::G<&NativeModel::WriteTensor>, kMethodAttrs),
                           InstanceMethod("getStep", &NativeModel::G<&NativeModel::GetStep>, kMethodAttrs),
                           InstanceMethod("setStep", &NativeModel::G<&NativeModel::SetStep>, kMethodAttrs),
                           InstanceMethod("getRngState", &NativeModel::G<&NativeModel::GetRngState>, kMethodAttrs),
                           InstanceMethod("setRngState", &NativeModel::G<&NativeModel::SetRngState>, kMethodAttrs),
                           InstanceMethod("forward", &NativeModel::G<&NativeModel::Forward>, kMethodAttrs),
                           InstanceMethod("train", &NativeModel::G<&NativeModel::Train>, kMethodAttrs),
                           InstanceMethod("score", &NativeModel::G<&NativeModel::Score>, kMethodAttrs),
                           InstanceMethod("trainScore", &NativeModel::G<&NativeModel::TrainScore>, kMethodAttrs),
                           InstanceMethod("cancel", &NativeModel::G<&NativeModel::Cancel>, kMethodAttrs),
                           InstanceMethod("dispose", &NativeModel::G<&NativeModel::Dispose>, kMethodAttrs),
                           InstanceMethod("toDevice", &NativeModel::G<&NativeModel::ToDevice>, kMethodAttrs),
                           InstanceMethod("device", &NativeModel::G<&NativeModel::Device>, kMethodAttrs),
                       });
  }

  explicit NativeModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModel>(info) {
    guard(info.Env(), [&] {
      info.This().As<Napi::Object>().TypeTag(&kNativeModelTag);
      construct(info);
      return info.Env().Undefined();
    });
  }

  // The finalizer of a model dropped without dispose() frees it the same way as dispose().
  ~NativeModel() override {
    device_.reset();
    free_off_thread(std::move(model_));
  }

  void construct(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() >= 1 && info[0].IsExternal()) {
      model_.reset(info[0].As<Napi::External<Model>>().Data());
      return;
    }
    if (info.Length() < 1 || !info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "new NativeModel(config, seed): config must be an object");
    Config c = parse_config(info[0].As<Napi::Object>());
    double seed = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
    minielm::JobScope job;
    model_ = std::make_unique<Model>(c, minielm::args::seed_from(seed));
  }

  Model& model(Napi::Env env) {
    if (!model_) throw_js(env, "MINIELM_DISPOSED", "this model was disposed");
    return *model_;
  }
  void acquire(Napi::Env env) {
    model(env);
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true))
      throw_js(env, "MINIELM_BUSY", "the model is running another job; await it before starting the next");
  }
  void release() { busy_.store(false); }
  // A job clears the cancel flag when it is submitted, on the JS thread, so a cancel() issued after
  // submission is never lost (clearing it when the job starts running would drop an early cancel).
  void arm_cancel() { cancel_.store(false); }
  std::atomic<bool>& cancel_flag() { return cancel_; }
  Model* raw() { return model_.get(); }

  // ---- the device copy (native/cuda/device.h) ----
  // With a device copy the host model stays the source of truth for reads and writes from JS and for
  // checkpoints: a device training job marks the host stale (downloaded before the next host read), a host
  // write marks the device stale (uploaded before the next device job). Both run inside a job (the model is
  // busy) or on the JS thread while no job runs, so they never race.
  minielm::cuda::DeviceModel* device() { return device_.get(); }
  void set_device(std::unique_ptr<minielm::cuda::DeviceModel> d) {
    device_ = std::move(d);
    host_stale_ = device_stale_ = false;
  }
  void before_host_read() {
    if (device_ && host_stale_) {
      device_->download();
      host_stale_ = false;
    }
  }
  void after_host_write() {
    if (device_) device_stale_ = true;
  }
  void before_device_job() {
    if (device_ && device_stale_) {
      device_->upload();
      device_stale_ = false;
    }
  }
  void after_device_train() { host_stale_ = true; }

 private:
  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& ts = model(env).tensors();
    Napi::Array arr = Napi::Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", ts[i].name);
      Napi::Array shape = Napi::Array::New(env, ts[i].shape.size());
      for (size_t d = 0; d < ts[i].shape.size(); ++d) shape.Set(static_cast<uint32_t>(d), static_cast<double>(ts[i].shape[d]));
      o.Set("shape", shape);
      o.Set("size", static_cast<double>(ts[i].size));
      o.Set("decay", ts[i].decay);
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return arr;
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) {
    int64_t n = 0;
    for (const auto& t : model(info.Env()).tensors()) n += t.size;
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }

  float* tensor_ptr(Napi::Env env, const std::string& kind, const std::string& name, int64_t* size) {
    Model& m = model(env);
    const minielm::TensorInfo* t = m.find(name);
    if (!t) throw_js(env, "MINIELM_INVALID_ARGUMENT", "unknown tensor '" + name + "'");
    float* base = nullptr;
    if (kind == "param") base = m.params();
    else if (kind == "grad") base = m.grads();
    else if (kind == "m") base = m.adam_m();
    else if (kind == "v") base = m.adam_v();
    else throw_js(env, "MINIELM_INVALID_ARGUMENT", "tensor kind must be param, grad, m or v");
    *size = t->size;
    return base + t->offset;
  }

  Napi::Value ReadTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw_js(env, "MINIELM_BUSY", "the model is running a job; await it before reading tensors");
    int64_t size = 0;
    float* p = tensor_ptr(env, string_arg(env, info[0], "readTensor: kind"), string_arg(env, info[1], "readTensor: name"), &size);
    to_js(env, [&] {
      before_host_read();
      return 0;
    });
    Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(size));
    std::copy(p, p + size, out.Data());
    return out;
  }

  Napi::Value WriteTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw_js(env, "MINIELM_BUSY", "the model is running a job; await it before writing tensors");
    int64_t size = 0;
    std::string name = string_arg(env, info[1], "writeTensor: name");
    float* p = tensor_ptr(env, string_arg(env, info[0], "writeTensor: kind"), name, &size);
    Napi::Float32Array src = float32_arg(env, info[2], "writeTensor: data for '" + name + "'");
    if (static_cast<int64_t>(src.ElementLength()) != size)
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "tensor '" + name + "' has " + std::to_string(size) + " elements, got " + std::to_string(src.ElementLength()));
    to_js(env, [&] {
      before_host_read();  // the tensors not written here must not be lost to a later upload
      return 0;
    });
    std::copy(src.Data(), src.Data() + size, p);
    after_host_write();
    return env.Undefined();
  }

  Napi::Value GetStep(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(model(info.Env()).step())); }
  Napi::Value SetStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw_js(env, "MINIELM_BUSY", "the model is running a job; await it before setting the step");
    model(env).set_step(int_arg(env, info[0], "setStep: step", 0, int64_t{1} << 53));
    return info.Env().Undefined();
  }
  Napi::Value GetRngState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto s = model(env).rng().state();
    Napi::Array arr = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; ++i) arr.Set(i, Napi::BigInt::New(env, static_cast<uint64_t>(s[i])));
    return arr;
  }
  Napi::Value SetRngState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_.load()) throw_js(env, "MINIELM_BUSY", "the model is running a job; await it before setting the RNG state");
    if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() != 4)
      throw_js(env, "MINIELM_INVALID_ARGUMENT", "setRngState needs an array of 4 BigInts");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::array<uint64_t, 4> s{};
    for (uint32_t i = 0; i < 4; ++i) {
      Napi::Value v = arr.Get(i);
      if (!v.IsBigInt()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "setRngState needs an array of 4 BigInts");
      bool lossless = false;
      s[i] = v.As<Napi::BigInt>().Uint64Value(&lossless);
      if (!lossless) throw_js(env, "MINIELM_INVALID_ARGUMENT", "setRngState: each word must be an unsigned 64-bit BigInt");
    }
    model(env).rng().set_state(s);
    return env.Undefined();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    cancel_.store(true);
    return info.Env().Undefined();
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (busy_.load()) throw_js(info.Env(), "MINIELM_BUSY", "cannot dispose a model while a job runs");
    device_.reset();
    free_off_thread(std::move(model_));
    return info.Env().Undefined();
  }

  // Returning a large arena to the system (munmap of gigabytes, one page at a time) takes the freeing thread
  // ~100 ms for GPT-2 small: a large model is freed on a short-lived thread of its own, not on the event
  // loop; a small one at once.
  static void free_off_thread(std::unique_ptr<Model> m) {
    if (!m) return;
    if (m->num_params() < (int64_t{1} << 22)) return;  // < 4 M parameters (64 MB with gradients and moments)
    try {
      std::thread([p = m.release()] { delete p; }).detach();
    } catch (const std::system_error&) {
      // No thread to be had: free it here after all.
    }
  }

  Napi::Value Device(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    model(env);
    return Napi::String::New(env, device_ ? "cuda:" + std::to_string(device_->device()) : std::string("cpu"));
  }
  Napi::Value ToDevice(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value Score(const Napi::CallbackInfo& info);
  Napi::Value TrainScore(const Napi::CallbackInfo& info);

  std::unique_ptr<Model> model_;
  std::unique_ptr<minielm::cuda::DeviceModel> device_;  // declared after model_: it refers to it
  bool host_stale_ = false, device_stale_ = false;
  std::atomic<bool> busy_{false};
  std::atomic<bool> cancel_{false};
};


constexpr const char* kNoScoreOnDevice =
    "the score head (relevance scorer) does not run on a CUDA device yet; keep the scorer on device 'cpu'";

// Holds a reference to the JS model object so it cannot be collected while the job runs.
class ModelWorker : public PromiseWorker {
 public:
  ModelWorker(Napi::Env env, NativeModel* owner, Napi::Object self) : PromiseWorker(env), owner_(owner) {
    self_ = Napi::Persistent(self);
  }

 protected:
  void Done() override { owner_->release(); }
  NativeModel* owner_;
  Napi::ObjectReference self_;
};

class ForwardWorker : public ModelWorker {
 public:
  ForwardWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Model* m, OwnedBatch b, bool want_logits)
      : ModelWorker(env, owner, self), m_(m), b_(std::move(b)), want_logits_(want_logits) {}

 protected:
  void Run() override {
    Batch batch = b_.view();
    if (minielm::cuda::DeviceModel* d = owner_->device()) {
      owner_->before_device_job();
      const int64_t BT = b_.B * b_.T;
      if (want_logits_) logits_.resize(static_cast<size_t>(BT * m_->config().vocab_size));
      float* logits = want_logits_ ? logits_.data() : nullptr;
      if (!batch.targets) {
        d->forward(batch, logits);
        return;
      }
      // One forward pass for both the losses and the logits.
      losses_.resize(static_cast<size_t>(BT));
      loss_sum_ = d->cross_entropy(batch, losses_.data(), logits);
      weight_ = 0;
      for (int64_t i = 0; i < BT; ++i) weight_ += batch.loss_weight ? batch.loss_weight[i] : 1.0;
      return;
    }
    m_->forward(batch);
    if (want_logits_) {
      const float* l = m_->logits();
      logits_.assign(l, l + b_.B * b_.T * m_->config().vocab_size);
    }
    if (batch.targets) {
      losses_.resize(static_cast<size_t>(b_.B * b_.T));
      loss_sum_ = m_->cross_entropy(batch, losses_.data());
      weight_ = 0;
      for (int64_t i = 0; i < b_.B * b_.T; ++i) weight_ += batch.loss_weight ? batch.loss_weight[i] : 1.0;
    }
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    if (!losses_.empty()) {
      o.Set("loss", weight_ > 0 ? loss_sum_ / weight_ : NAN);
      o.Set("lossSum", loss_sum_);
      o.Set("tokens", weight_);
      Napi::Float32Array per = Napi::Float32Array::New(env, losses_.size());
      std::copy(losses_.begin(), losses_.end(), per.Data());
      o.Set("losses", per);
    }
    if (want_logits_) {
      Napi::Float32Array arr = Napi::Float32Array::New(env, logits_.size());
      std::copy(logits_.begin(), logits_.end(), arr.Data());
      o.Set("logits", arr);
    }
    return o;
  }

 private:
  Model* m_;
  OwnedBatch b_;
  bool want_logits_;
  std::vector<float> logits_, losses_;
  double loss_sum_ = 0, weight_ = 0;
};

inline Napi::Value NativeModel::Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "forward(batch, wantLogits)");
  OwnedBatch b = parse_batch(info[0].As<Napi::Object>());
  bool want = info.Length() >= 2 && info[1].ToBoolean();
  acquire(env);
  auto* w = new ForwardWorker(env, this, info.This().As<Napi::Object>(), model_.get(), std::move(b), want);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Runs several optimizer steps; checks the cancellation flag between steps (never inside one), so an
// aborted job leaves the model at a step boundary.
class TrainWorker : public ModelWorker {
 public:
  TrainWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Model* m, std::vector<std::vector<OwnedBatch>> steps,
              OptimConfig opt)
      : ModelWorker(env, owner, self), m_(m), steps_(std::move(steps)), opt_(opt) {}

 protected:
  void Run() override {
    for (auto& step : steps_) {
      if (owner_->cancel_flag().load()) {
        aborted_ = true;
        break;
      }
      std::vector<Batch> views;
      for (auto& b : step) views.push_back(b.view());
      if (minielm::cuda::DeviceModel* d = owner_->device()) {
        owner_->before_device_job();
        owner_->after_device_train();  // before the step: a step that throws half-way may have moved the weights
        results_.push_back(d->train_step(views, opt_));
      } else {
        results_.push_back(m_->train_step(views, opt_));
      }
    }
  }
  Napi::Value Result(Napi::Env env) override { return steps_to_js(env, results_, aborted_); }

 private:
  Model* m_;
  std::vector<std::vector<OwnedBatch>> steps_;
  OptimConfig opt_;
  std::vector<StepStats> results_;
  bool aborted_ = false;
};

inline Napi::Value NativeModel::Train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "train(steps: Batch[][], optim)");
  Napi::Array steps = info[0].As<Napi::Array>();
  std::vector<std::vector<OwnedBatch>> owned;
  for (uint32_t i = 0; i < steps.Length(); ++i) {
    Napi::Value s = steps.Get(i);
    if (!s.IsArray()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "each training step must be an array of micro-batches");
    Napi::Array micro = s.As<Napi::Array>();
    std::vector<OwnedBatch> mb;
    for (uint32_t j = 0; j < micro.Length(); ++j)
      mb.push_back(parse_batch(object_arg(env, micro.Get(j), "each micro-batch {batch, seq, tokens, ...}")));
    owned.push_back(std::move(mb));
  }
  OptimConfig opt = parse_optim(info[1].As<Napi::Object>());
  acquire(env);
  arm_cancel();
  auto* w = new TrainWorker(env, this, info.This().As<Napi::Object>(), model_.get(), std::move(owned), opt);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Makes the model's device copy (allocation and upload run off the JS thread).
class ToDeviceWorker : public ModelWorker {
 public:
  ToDeviceWorker(Napi::Env env, NativeModel* owner, Napi::Object self, int index)
      : ModelWorker(env, owner, self), index_(index) {}

 protected:
  void Run() override {
    if (owner_->device()) {
      if (owner_->device()->device() == index_) return;
      throw minielm::Error("MINIELM_INVALID_ARGUMENT", "this model already lives on cuda:" + std::to_string(owner_->device()->device()));
    }
    made_ = std::make_unique<minielm::cuda::DeviceModel>(*owner_->raw(), index_);
  }
  Napi::Value Result(Napi::Env env) override {
    if (made_) owner_->set_device(std::move(made_));
    return env.Undefined();
  }

 private:
  int index_;
  std::unique_ptr<minielm::cuda::DeviceModel> made_;
};

inline Napi::Value NativeModel::ToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int index = static_cast<int>(int_arg(env, info[0], "toDevice: index", 0, 1023));
  acquire(env);
  auto* w = new ToDeviceWorker(env, this, info.This().As<Napi::Object>(), index);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Score head: one scalar per sequence (relevance scorer), off the main thread.
class ScoreWorker : public ModelWorker {
 public:
  ScoreWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Model* m, OwnedBatch b)
      : ModelWorker(env, owner, self), m_(m), b_(std::move(b)) {}

 protected:
  void Run() override {
    if (owner_->device()) throw minielm::Error("MINIELM_UNSUPPORTED", kNoScoreOnDevice);
    scores_.resize(static_cast<size_t>(b_.B));
    m_->score_forward(b_.view(), scores_.data());
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Float32Array out = Napi::Float32Array::New(env, scores_.size());
    std::copy(scores_.begin(), scores_.end(), out.Data());
    return out;
  }

 private:
  Model* m_;
  OwnedBatch b_;
  std::vector<float> scores_;
};

inline Napi::Value NativeModel::Score(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "score(batch)");
  OwnedBatch b = parse_batch(info[0].As<Napi::Object>());
  acquire(env);
  auto* w = new ScoreWorker(env, this, info.This().As<Napi::Object>(), model_.get(), std::move(b));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// Several score-head training steps (one micro-batch each); cancellation is checked between steps.
class TrainScoreWorker : public ModelWorker {
 public:
  TrainScoreWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Model* m, std::vector<OwnedBatch> batches,
                   std::vector<std::vector<float>> labels, std::vector<std::vector<float>> weights, OptimConfig opt)
      : ModelWorker(env, owner, self), m_(m), batches_(std::move(batches)), labels_(std::move(labels)),
        weights_(std::move(weights)), opt_(opt) {}

 protected:
  void Run() override {
    if (owner_->device()) throw minielm::Error("MINIELM_UNSUPPORTED", kNoScoreOnDevice);
    for (size_t i = 0; i < batches_.size(); ++i) {
      if (owner_->cancel_flag().load()) {
        aborted_ = true;
        break;
      }
      std::vector<Batch> views{batches_[i].view()};
      std::vector<const float*> l{labels_[i].data()};
      std::vector<const float*> w{weights_[i].empty() ? nullptr : weights_[i].data()};
      results_.push_back(m_->train_score_step(views, l, w, opt_));
    }
  }
  Napi::Value Result(Napi::Env env) override { return steps_to_js(env, results_, aborted_); }

 private:
  Model* m_;
  std::vector<OwnedBatch> batches_;
  std::vector<std::vector<float>> labels_, weights_;
  OptimConfig opt_;
  std::vector<StepStats> results_;
  bool aborted_ = false;
};

inline Napi::Value NativeModel::TrainScore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsObject())
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "trainScore(steps: {batch, labels, weights?}[], optim)");
  Napi::Array steps = info[0].As<Napi::Array>();
  std::vector<OwnedBatch> batches;
  std::vector<std::vector<float>> labels, weights;
  for (uint32_t i = 0; i < steps.Length(); ++i) {
    Napi::Object st = object_arg(env, steps.Get(i), "each score step {batch, seq, tokens, labels, ...}");
    minielm::args::ScoreStep s = to_js(env, [&] { return minielm::args::parse_score_step(fields(st)); });
    labels.push_back(std::move(s.labels));
    weights.push_back(std::move(s.weights));
    batches.push_back(std::move(s.batch));
  }
  OptimConfig opt = parse_optim(info[1].As<Napi::Object>());
  acquire(env);
  arm_cancel();
  auto* w = new TrainScoreWorker(env, this, info.This().As<Napi::Object>(), model_.get(), std::move(batches),
                                 std::move(labels), std::move(weights), opt);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// A NativeModel passed from JS (checked by its type tag before it is unwrapped).
inline NativeModel* unwrap_model(Napi::Env env, Napi::Value v, const char* what) {
  if (!has_tag(v, kNativeModelTag)) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be a model");
  NativeModel* m = NativeModel::Unwrap(v.As<Napi::Object>());
  if (!m) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be a model");
  return m;
}

// Unwraps a NativeModel passed from JS and marks it busy for the duration of a job (released by ModelWorker).
inline NativeModel* acquire_model(Napi::Env env, Napi::Value v, const char* what) {
  NativeModel* m = unwrap_model(env, v, what);
  m->acquire(env);
  return m;
}

// Registration hooks of the other N-API files (decoding; distillation and preference kernels).
void InitDecode(Napi::Env env, Napi::Object exports);
void InitAlign(Napi::Env env, Napi::Object exports);

}  // namespace minielm_napi
