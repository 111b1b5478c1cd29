// Checkpoint tensor I/O off the event loop. Saving GPT-2 small moves ~500 MB between the engine and a file
// buffer, and loading converts (F16 / BF16 / F64 -> F32) and checks every value for NaN / Inf: done on the
// main thread that is over a second of blocked event loop. Here both run in a worker; JavaScript only
// parses the safetensors header and does the file I/O through fs.promises.
//   readTensors(model, kinds[], names[], buffer, offsets) -> Promise<void>
//     copies each tensor's float32 values (little-endian) into buffer at offsets[i] bytes.
//   readTensorsFromFile(model, path, kinds[], names[], offsets, dtypes) -> Promise<string | null>
//     the same as writeTensors, reading each tensor from the file at offsets[i] with pread: no file-sized
//     buffer in JavaScript at all (Model.load uses this).
//   writeTensorsToFile(model, path, header, kinds[], names[]) -> Promise<void>
//     creates `path`, writes `header` then each tensor as float32 in order, fsyncs (Model.save uses this on
//     a temporary file it then renames).
//   writeTensors(model, kinds[], names[], buffer, offsets, dtypes) -> Promise<string | null>
//     converts the tensor stored at offsets[i] with dtypes[i] (0 F32, 1 F16, 2 BF16, 3 F64) into the model;
//     resolves to the name of the first tensor holding NaN or Inf (the model is then partly written, and
//     the caller discards it), or null.
// The buffer stays referenced until the job ends; the model is held busy like any other job.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "common.h"

namespace minielm_napi {
namespace {

enum class Dtype { F32 = 0, F16 = 1, Bf16 = 2, F64 = 3 };
constexpr int64_t kBytes[] = {4, 2, 2, 8};

struct Slot {
  float* data = nullptr;  // in the model
  int64_t size = 0;       // elements
  int64_t offset = 0;     // bytes into the buffer
  Dtype dtype = Dtype::F32;
  std::string name;
};

float half_to_float(uint16_t h) {
  const uint32_t s = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t f = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    if (f == 0) {
      bits = s;
    } else {  // subnormal half: normalise
      int shift = 0;
      uint32_t m = f;
      while ((m & 0x400u) == 0) {
        m <<= 1;
        ++shift;
      }
      bits = s | static_cast<uint32_t>(127 - 15 + 1 - shift) << 23 | (m & 0x3ffu) << 13;
    }
  } else if (e == 31) {
    bits = s | 0x7f800000u | f << 13;
  } else {
    bits = s | (e + 127 - 15) << 23 | f << 13;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// Resolves (kind, name) pairs to tensors of `model`, checking every byte range against the buffer.
std::vector<Slot> resolve(Napi::Env env, NativeModel* owner, const Napi::Array& kinds, const Napi::Array& names,
                          const Napi::Float64Array& offsets, const Napi::Uint8Array* dtypes, size_t buffer_bytes,
                          const char* fn) {
  const uint32_t n = names.Length();
  if (kinds.Length() != n || offsets.ElementLength() != n || (dtypes && dtypes->ElementLength() != n))
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": kinds, names, offsets (and dtypes) must have the same length");
  Model& m = *owner->raw();
  std::vector<Slot> slots;
  slots.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    Napi::Value kv = kinds[i], nv = names[i];
    if (!kv.IsString() || !nv.IsString()) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": kinds and names must be strings");
    const std::string kind = kv.As<Napi::String>().Utf8Value();
    Slot s;
    s.name = nv.As<Napi::String>().Utf8Value();
    const minielm::TensorInfo* t = m.find(s.name);
    if (!t) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": unknown tensor '" + s.name + "'");
    float* base = nullptr;
    if (kind == "param") base = m.params();
    else if (kind == "m") base = m.adam_m();
    else if (kind == "v") base = m.adam_v();
    else throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": tensor kind must be param, m or v");
    s.data = base + t->offset;
    s.size = t->size;
    if (dtypes) {
      const uint8_t d = (*dtypes)[i];
      if (d > 3) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": dtype code must be 0..3");
      s.dtype = static_cast<Dtype>(d);
    }
    const double off = offsets[i];
    const double bytes = static_cast<double>(s.size) * static_cast<double>(kBytes[static_cast<int>(s.dtype)]);
    if (!(off >= 0) || off != std::floor(off) || off + bytes > static_cast<double>(buffer_bytes))
      throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": tensor '" + s.name + "' does not fit in the buffer at offset " + std::to_string(off));
    s.offset = static_cast<int64_t>(off);
    slots.push_back(std::move(s));
  }
  return slots;
}

// Converts n values of `dtype` at src (little-endian) to float32 at dst; false when one is NaN or Inf.
bool convert(const uint8_t* src, Dtype dtype, float* dst, int64_t n) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    float v;
    switch (dtype) {
      case Dtype::F32: std::memcpy(&v, src + 4 * i, 4); break;
      case Dtype::F64: {
        double d;
        std::memcpy(&d, src + 8 * i, 8);
        v = static_cast<float>(d);
        break;
      }
      case Dtype::F16: {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        v = half_to_float(h);
        break;
      }
      default: {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(&v, &bits, 4);
      }
    }
    finite = finite && std::isfinite(v);
    dst[i] = v;
  }
  return finite;
}

// A file descriptor closed on scope exit; errors carry the path and errno's text.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void io_error(const std::string& path, const char* what) {
  throw minielm::Error(errno == ENOENT ? "MINIELM_NOT_FOUND" : "MINIELM_BAD_FILE", path + ": " + what + " (" + std::strerror(errno) + ")");
}

// Every tensor read from / written to a file in one worker: reads go through a staging buffer of at most
// 16 MiB so converting needs no file-sized memory.
class FileReadWorker : public ModelWorker {
 public:
  FileReadWorker(Napi::Env env, NativeModel* owner, Napi::Object self, std::string path, std::vector<Slot> slots)
      : ModelWorker(env, owner, self), path_(std::move(path)), slots_(std::move(slots)) {}

 protected:
  void Run() override {
    owner_->before_host_read();  // the tensors the file does not hold must not be lost to the next upload
    owner_->after_host_write();
    Fd f;
    f.fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) io_error(path_, "cannot open");
    struct stat st;
    if (::fstat(f.fd, &st) != 0) io_error(path_, "cannot stat");
    std::vector<uint8_t> stage;
    for (const Slot& s : slots_) {
      const int64_t width = kBytes[static_cast<int>(s.dtype)];
      if (s.offset + s.size * width > static_cast<int64_t>(st.st_size))
        throw minielm::Error("MINIELM_BAD_FILE", path_ + ": tensor '" + s.name + "' lies past the end of the file (changed while loading?)");
      const int64_t per = std::max<int64_t>(1, (int64_t{16} << 20) / width);
      for (int64_t i = 0; i < s.size; i += per) {
        const int64_t n = std::min(per, s.size - i);
        stage.resize(static_cast<size_t>(n * width));
        int64_t got = 0;
        while (got < n * width) {
          const ssize_t r = ::pread(f.fd, stage.data() + got, static_cast<size_t>(n * width - got), s.offset + (i * width) + got);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) io_error(path_, "read failed");
          got += r;
        }
        if (!convert(stage.data(), s.dtype, s.data + i, n)) {
          bad_ = s.name;
          return;
        }
      }
    }
  }
  Napi::Value Result(Napi::Env env) override { return bad_.empty() ? env.Null() : Napi::String::New(env, bad_); }

 private:
  std::string path_;
  std::vector<Slot> slots_;
  std::string bad_;
};

class FileWriteWorker : public ModelWorker {
 public:
  FileWriteWorker(Napi::Env env, NativeModel* owner, Napi::Object self, std::string path, std::vector<uint8_t> header,
                  std::vector<Slot> slots)
      : ModelWorker(env, owner, self), path_(std::move(path)), header_(std::move(header)), slots_(std::move(slots)) {}

 protected:
  void Run() override {
    owner_->before_host_read();
    Fd f;
    f.fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) io_error(path_, "cannot create");
    auto put = [&](const uint8_t* p, int64_t n) {
      while (n > 0) {
        const ssize_t w = ::write(f.fd, p, static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 26)));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) io_error(path_, "write failed");
        p += w;
        n -= w;
      }
    };
    put(header_.data(), static_cast<int64_t>(header_.size()));
    for (const Slot& s : slots_) put(reinterpret_cast<const uint8_t*>(s.data), s.size * 4);
    if (::fsync(f.fd) != 0) io_error(path_, "fsync failed");
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  std::string path_;
  std::vector<uint8_t> header_;
  std::vector<Slot> slots_;
};

class ReadWorker : public ModelWorker {
 public:
  ReadWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Napi::Uint8Array buf, std::vector<Slot> slots)
      : ModelWorker(env, owner, self), bytes_(buf.Data()), slots_(std::move(slots)) {
    buffer_ = Napi::Persistent(buf.As<Napi::Object>());
  }

 protected:
  void Run() override {
    owner_->before_host_read();
    for (const Slot& s : slots_) std::memcpy(bytes_ + s.offset, s.data, static_cast<size_t>(s.size) * 4);
  }
  Napi::Value Result(Napi::Env env) override { return env.Undefined(); }

 private:
  uint8_t* bytes_;
  std::vector<Slot> slots_;
  Napi::ObjectReference buffer_;
};

class WriteWorker : public ModelWorker {
 public:
  WriteWorker(Napi::Env env, NativeModel* owner, Napi::Object self, Napi::Uint8Array buf, std::vector<Slot> slots)
      : ModelWorker(env, owner, self), bytes_(buf.Data()), slots_(std::move(slots)) {
    buffer_ = Napi::Persistent(buf.As<Napi::Object>());
  }

 protected:
  void Run() override {
    owner_->before_host_read();
    owner_->after_host_write();
    for (const Slot& s : slots_) {
      if (!convert(bytes_ + s.offset, s.dtype, s.data, s.size)) {
        bad_ = s.name;
        return;
      }
    }
  }
  Napi::Value Result(Napi::Env env) override { return bad_.empty() ? env.Null() : Napi::String::New(env, bad_); }

 private:
  uint8_t* bytes_;
  std::vector<Slot> slots_;
  std::string bad_;
  Napi::ObjectReference buffer_;
};

Napi::Uint8Array bytes_arg(Napi::Env env, Napi::Value v, const char* fn) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": buffer must be a Uint8Array / Buffer");
  return v.As<Napi::Uint8Array>();
}

Napi::Array array_arg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsArray()) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be an array");
  return v.As<Napi::Array>();
}

Napi::Float64Array offsets_arg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(what) + " must be a Float64Array");
  return v.As<Napi::Float64Array>();
}

// Acquires the model (busy until the job ends) and resolves its slots; releases it again when they are bad.
std::pair<NativeModel*, std::vector<Slot>> acquire_slots(Napi::Env env, Napi::Value model, const Napi::Array& kinds,
                                                         const Napi::Array& names, const Napi::Float64Array& offsets,
                                                         const Napi::Uint8Array* dtypes, size_t bytes, const char* fn) {
  NativeModel* m = acquire_model(env, model, "model");  // throws if disposed or busy
  try {
    return {m, resolve(env, m, kinds, names, offsets, dtypes, bytes, fn)};
  } catch (...) {
    m->release();
    throw;
  }
}

Napi::Value ReadTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array kinds = array_arg(env, info[1], "readTensors: kinds");
  Napi::Array names = array_arg(env, info[2], "readTensors: names");
  Napi::Uint8Array buf = bytes_arg(env, info[3], "readTensors");
  Napi::Float64Array offsets = offsets_arg(env, info[4], "readTensors: offsets");
  auto [m, slots] = acquire_slots(env, info[0], kinds, names, offsets, nullptr, buf.ByteLength(), "readTensors");
  auto* w = new ReadWorker(env, m, info[0].As<Napi::Object>(), buf, std::move(slots));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// The dtype code of each tensor (0 f32, 1 f16, 2 bf16, 3 f64), as a Uint8Array.
Napi::Uint8Array dtypes_arg(Napi::Env env, Napi::Value v, const char* fn) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": dtypes must be a Uint8Array");
  return v.As<Napi::Uint8Array>();
}

Napi::Value WriteTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array kinds = array_arg(env, info[1], "writeTensors: kinds");
  Napi::Array names = array_arg(env, info[2], "writeTensors: names");
  Napi::Uint8Array buf = bytes_arg(env, info[3], "writeTensors");
  Napi::Float64Array offsets = offsets_arg(env, info[4], "writeTensors: offsets");
  Napi::Uint8Array dtypes = dtypes_arg(env, info[5], "writeTensors");
  auto [m, slots] = acquire_slots(env, info[0], kinds, names, offsets, &dtypes, buf.ByteLength(), "writeTensors");
  auto* w = new WriteWorker(env, m, info[0].As<Napi::Object>(), buf, std::move(slots));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}


std::string path_arg(Napi::Env env, Napi::Value v, const char* fn) {
  if (!v.IsString()) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": path must be a string");
  std::string p = v.As<Napi::String>().Utf8Value();
  if (p.empty() || p.find('\0') != std::string::npos) throw_js(env, "MINIELM_INVALID_ARGUMENT", std::string(fn) + ": path must be a non-empty string without NUL");
  return p;
}

Napi::Value ReadTensorsFromFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = path_arg(env, info[1], "readTensorsFromFile");
  Napi::Array kinds = array_arg(env, info[2], "readTensorsFromFile: kinds");
  Napi::Array names = array_arg(env, info[3], "readTensorsFromFile: names");
  Napi::Float64Array offsets = offsets_arg(env, info[4], "readTensorsFromFile: offsets");
  Napi::Uint8Array dtypes = dtypes_arg(env, info[5], "readTensorsFromFile");
  auto [m, slots] = acquire_slots(env, info[0], kinds, names, offsets, &dtypes, static_cast<size_t>(int64_t{1} << 53), "readTensorsFromFile");
  auto* w = new FileReadWorker(env, m, info[0].As<Napi::Object>(), std::move(path), std::move(slots));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value WriteTensorsToFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = path_arg(env, info[1], "writeTensorsToFile");
  Napi::Uint8Array header = bytes_arg(env, info[2], "writeTensorsToFile");
  Napi::Array kinds = array_arg(env, info[3], "writeTensorsToFile: kinds");
  Napi::Array names = array_arg(env, info[4], "writeTensorsToFile: names");
  Napi::Float64Array offsets = Napi::Float64Array::New(env, names.Length());
  auto [m, slots] = acquire_slots(env, info[0], kinds, names, offsets, nullptr, static_cast<size_t>(int64_t{1} << 53), "writeTensorsToFile");
  std::vector<uint8_t> h(header.Data(), header.Data() + header.ByteLength());
  auto* w = new FileWriteWorker(env, m, info[0].As<Napi::Object>(), std::move(path), std::move(h), std::move(slots));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}
}  // namespace

void InitIo(Napi::Env env, Napi::Object exports) {
  exports.Set("readTensors", Napi::Function::New(env, guarded<ReadTensors>));
  exports.Set("writeTensors", Napi::Function::New(env, guarded<WriteTensors>));
  exports.Set("readTensorsFromFile", Napi::Function::New(env, guarded<ReadTensorsFromFile>));
  exports.Set("writeTensorsToFile", Napi::Function::New(env, guarded<WriteTensorsToFile>));
}

}  // namespace minielm_napi
