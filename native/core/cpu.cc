#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace minielm {
namespace cpu {

namespace {
Isa detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool fma = __builtin_cpu_supports("fma");
  if (fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return Isa::Avx512;
  if (fma && __builtin_cpu_supports("avx2")) return Isa::Avx2;
#endif
  return Isa::Generic;
}
}  // namespace

Isa detected() {
  static const Isa v = detect();
  return v;
}

Isa cap_by_env(Isa v, const char* env) {
  const char* s = std::getenv(env);
  if (s == nullptr) return v;
  Isa cap = v;
  if (std::strcmp(s, "generic") == 0) cap = Isa::Generic;
  if (std::strcmp(s, "avx2") == 0) cap = Isa::Avx2;
  if (std::strcmp(s, "avx512") == 0) cap = Isa::Avx512;
  return static_cast<int>(cap) < static_cast<int>(v) ? cap : v;
}

Isa isa() {
  static const Isa v = cap_by_env(detected(), "MINIELM_ISA");
  return v;
}

const char* name(Isa v) {
  switch (v) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace cpu
}  // namespace minielm
