// The addon's entry point: module-level functions and registration. Model jobs live in common.h,
// decoding and the alignment kernels in their own files beside this one.
#include "common.h"

#include "../core/cpu.h"
#include "../core/peak.h"
#include "../core/vmath.h"
#include "../decode/amx.h"
#include "../decode/kernels.h"
#include "../model/selftest.h"

namespace minielm_napi {

// ---- module-level functions ----

class CreateWorker : public PromiseWorker {
 public:
  CreateWorker(Napi::Env env, Config c, uint64_t seed) : PromiseWorker(env), c_(c), seed_(seed) {}

 protected:
  void Run() override { m_.reset(new Model(c_, seed_)); }
  Napi::Value Result(Napi::Env env) override {
    return addon_data(env).model_constructor.New({Napi::External<Model>::New(env, m_.release())});
  }

 private:
  Config c_;
  uint64_t seed_;
  std::unique_ptr<Model> m_;
};

Napi::Value CreateModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "createModel(config, seed)");
  Config c = parse_config(info[0].As<Napi::Object>());
  minielm::validate_config(c);
  double seed = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  auto* w = new CreateWorker(env, c, static_cast<uint64_t>(seed));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), minielm::num_threads()); }
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  minielm::set_num_threads(static_cast<int>(int_arg(info.Env(), info[0], "setThreads: n", -1, minielm::kMaxThreads)));
  return info.Env().Undefined();
}

Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("backend", minielm::gemm_backend() == minielm::GemmBackend::Blas ? "blas" : "builtin");
  o.Set("blasAvailable", minielm::blas_available());
  o.Set("blasLibrary", minielm::blas_library());
  o.Set("builtinIsa", minielm::builtin_gemm_isa());
  return o;
}

Napi::Value SetGemmBackend(const Napi::CallbackInfo& info) {
  std::string name = string_arg(info.Env(), info[0], "setGemmBackend: backend");
  if (name != "builtin" && name != "blas") throw_js(info.Env(), "MINIELM_INVALID_ARGUMENT", "GEMM backend must be 'builtin' or 'blas'");
  bool ok = minielm::set_gemm_backend(name == "blas" ? minielm::GemmBackend::Blas : minielm::GemmBackend::Builtin);
  return Napi::Boolean::New(info.Env(), ok);
}

Napi::Value PairsToJs(Napi::Env env, const std::vector<std::pair<std::string, double>>& v) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, e] : v) o.Set(k, e);
  return o;
}

Napi::Value GradcheckOps(const Napi::CallbackInfo& info) {
  return PairsToJs(info.Env(), minielm::gradcheck_ops(static_cast<uint64_t>(int_arg(info.Env(), info[0], "seed", 0, int64_t{1} << 53))));
}

Napi::Value GradcheckScore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "config must be an object");
  Config c = parse_config(info[0].As<Napi::Object>());
  return PairsToJs(env, minielm::gradcheck_score(c, static_cast<uint64_t>(int_arg(env, info[1], "seed", 0, int64_t{1} << 53)),
                                          static_cast<int>(int_arg(env, info[2], "samples", 1, 1 << 20))));
}

Napi::Value GradcheckModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw_js(env, "MINIELM_INVALID_ARGUMENT", "config must be an object");
  Config c = parse_config(info[0].As<Napi::Object>());
  return PairsToJs(env, minielm::gradcheck_model(c, static_cast<uint64_t>(int_arg(env, info[1], "seed", 0, int64_t{1} << 53)),
                                          static_cast<int>(int_arg(env, info[2], "samples", 1, 1 << 20))));
}

// C = op(A) op(B) with the chosen backend, for tests and the bench (sync: callers keep shapes small, or
// use benchGemm).
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  const int64_t kMax = int64_t{1} << 31;
  int64_t M = int_arg(env, info[2], "gemm: M", 1, kMax), N = int_arg(env, info[3], "gemm: N", 1, kMax),
          K = int_arg(env, info[4], "gemm: K", 1, kMax);
  Napi::Float32Array A = float32_arg(env, info[5], "gemm: A"), B = float32_arg(env, info[6], "gemm: B");
  int64_t mk = 0, kn = 0, mn = 0;
  if (!checked_mul(M, K, &mk) || !checked_mul(K, N, &kn) || !checked_mul(M, N, &mn) || mn > (int64_t{1} << 32))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "gemm: M*K, K*N or M*N is too large");
  if (static_cast<int64_t>(A.ElementLength()) != mk || static_cast<int64_t>(B.ElementLength()) != kn)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "gemm: A must have M*K and B K*N elements");
  Napi::Float32Array Cm = Napi::Float32Array::New(env, static_cast<size_t>(M * N));
  minielm::sgemm(ta, tb, M, N, K, 1.0f, A.Data(), ta ? M : K, B.Data(), tb ? K : N, 0.0f, Cm.Data(), N);
  return Cm;
}

class BenchGemmWorker : public PromiseWorker {
 public:
  BenchGemmWorker(Napi::Env env, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double seconds)
      : PromiseWorker(env), ta_(ta), tb_(tb), M_(M), N_(N), K_(K), seconds_(seconds) {}

 protected:
  void Run() override {
    std::vector<float> A(static_cast<size_t>(M_ * K_), 0.01f), B(static_cast<size_t>(K_ * N_), 0.02f), C(static_cast<size_t>(M_ * N_));
    auto once = [&] { minielm::sgemm(ta_, tb_, M_, N_, K_, 1.0f, A.data(), ta_ ? M_ : K_, B.data(), tb_ ? K_ : N_, 0.0f, C.data(), N_); };
    once();
    auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    best_ = 1e30;
    int reps = 0;
    while (elapsed < seconds_ || reps < 3) {
      auto t0 = std::chrono::steady_clock::now();
      once();
      double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best_ = std::min(best_, dt);
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ++reps;
    }
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, 2.0 * M_ * N_ * K_ / best_ / 1e9); }

 private:
  bool ta_, tb_;
  int64_t M_, N_, K_;
  double seconds_, best_ = 0;
};

Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // Each matrix at most 2^28 floats (1 GiB): the bench allocates all three.
  const int64_t kMax = int64_t{1} << 28;
  int64_t M = int_arg(env, info[2], "benchGemm: M", 1, kMax), N = int_arg(env, info[3], "benchGemm: N", 1, kMax),
          K = int_arg(env, info[4], "benchGemm: K", 1, kMax);
  int64_t mk = 0, kn = 0, mn = 0;
  if (!checked_mul(M, K, &mk) || !checked_mul(K, N, &kn) || !checked_mul(M, N, &mn) || mk > kMax || kn > kMax || mn > kMax)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchGemm: each matrix may hold at most 2^28 elements");
  if (!info[5].IsNumber() || !(info[5].As<Napi::Number>().DoubleValue() >= 0 && info[5].As<Napi::Number>().DoubleValue() <= 600))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "benchGemm: seconds must be in [0, 600]");
  auto* w = new BenchGemmWorker(env, info[0].ToBoolean(), info[1].ToBoolean(), M, N, K, info[5].As<Napi::Number>().DoubleValue());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

class MachineWorker : public PromiseWorker {
 public:
  MachineWorker(Napi::Env env, std::string what, int threads, double seconds)
      : PromiseWorker(env), what_(std::move(what)), threads_(threads), seconds_(seconds) {}

 protected:
  void Run() override {
    value_ = what_ == "fma" ? minielm::measure_fma_peak_gflops(threads_, seconds_)
                            : minielm::measure_copy_bandwidth_gbs(threads_, seconds_);
  }
  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, value_); }

 private:
  std::string what_;
  int threads_;
  double seconds_, value_ = 0;
};

Napi::Value MeasureMachine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string what = string_arg(env, info[0], "measureMachine: what");
  if (what != "fma" && what != "copy") throw_js(env, "MINIELM_INVALID_ARGUMENT", "measureMachine: what must be 'fma' or 'copy'");
  int threads = static_cast<int>(int_arg(env, info[1], "measureMachine: threads", 1, minielm::kMaxThreads));
  if (!info[2].IsNumber() || !(info[2].As<Napi::Number>().DoubleValue() > 0 && info[2].As<Napi::Number>().DoubleValue() <= 600))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", "measureMachine: seconds must be in (0, 600]");
  auto* w = new MachineWorker(env, what, threads, info[2].As<Napi::Number>().DoubleValue());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value CpuIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), minielm::cpu_isa()); }

// Which instruction-set level each kernel family runs at (the build itself is plain x86-64).
Napi::Value IsaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpu", minielm::cpu::name(minielm::cpu::detected()));
  o.Set("selected", minielm::cpu::name(minielm::cpu::isa()));
  o.Set("gemm", minielm::builtin_gemm_isa());
  o.Set("rowKernels", minielm::vmath::using_avx2() ? "avx2" : "generic");
  o.Set("decode", minielm::decode::using_avx512() ? "avx512" : "generic");
  // Decoding with bf16 weights: AMX tile products (bf16 activations too) or the fp32 kernels above.
  o.Set("decodeBf16", minielm::decode::using_amx() ? "amx" : minielm::decode::using_avx512() ? "avx512" : "generic");
  return o;
}

// The CUDA backend: whether this build has it, how many devices it sees (and why none), their names.
// Asking the driver can take a moment the first time (it initialises); a JS caller asks once and caches.
Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  std::string why;
  const int n = minielm::cuda::device_count(&why);
  o.Set("built", minielm::cuda::built());
  o.Set("devices", n);
  o.Set("reason", n > 0 ? std::string() : why);
  Napi::Array names = Napi::Array::New(env, static_cast<size_t>(std::max(n, 0)));
  for (int i = 0; i < n; ++i) names.Set(static_cast<uint32_t>(i), minielm::cuda::device_name(i));
  o.Set("names", names);
  return o;
}

void InitIo(Napi::Env env, Napi::Object exports);  // io.cc: checkpoint tensor I/O off the event loop

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The constructor reference lives in this environment's instance data: the main thread and each Worker
  // that loads the addon have their own (one static shared by all would be overwritten by each Init).
  Napi::Function ctor = NativeModel::Init(env);
  auto* data = new AddonData();
  data->model_constructor = Napi::Persistent(ctor);
  env.SetInstanceData<AddonData>(data);
  exports.Set("NativeModel", ctor);
  exports.Set("createModel", Napi::Function::New(env, guarded<CreateModel>));
  exports.Set("numThreads", Napi::Function::New(env, guarded<NumThreads>));
  exports.Set("setNumThreads", Napi::Function::New(env, guarded<SetNumThreads>));
  exports.Set("gemmInfo", Napi::Function::New(env, guarded<GemmInfo>));
  exports.Set("setGemmBackend", Napi::Function::New(env, guarded_job<SetGemmBackend>));
  exports.Set("gemm", Napi::Function::New(env, guarded_job<Gemm>));
  exports.Set("benchGemm", Napi::Function::New(env, guarded<BenchGemm>));
  exports.Set("measureMachine", Napi::Function::New(env, guarded<MeasureMachine>));
  exports.Set("gradcheckOps", Napi::Function::New(env, guarded_job<GradcheckOps>));
  exports.Set("gradcheckModel", Napi::Function::New(env, guarded_job<GradcheckModel>));
  exports.Set("gradcheckScore", Napi::Function::New(env, guarded_job<GradcheckScore>));
  exports.Set("cpuIsa", Napi::Function::New(env, guarded<CpuIsa>));
  exports.Set("isaInfo", Napi::Function::New(env, guarded<IsaInfo>));
  exports.Set("cudaInfo", Napi::Function::New(env, guarded<CudaInfo>));
  InitDecode(env, exports);
  InitAlign(env, exports);
  InitIo(env, exports);
  return exports;
}

}  // namespace minielm_napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return minielm_napi::Init(env, exports); }

NODE_API_MODULE(minielm, InitAddon)
