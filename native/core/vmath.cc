#include "vmath.h"

#include "cpu.h"

namespace minielm {
namespace vmath {

namespace avx2 {
// Defined in vmath_avx2.cc (AVX2 + FMA code); null on targets that do not build it.
const Kernels* kernels_avx2();
}  // namespace avx2

namespace {
float max_of_generic(const float* x, int64_t n) { return max_of_scalar(x, n); }

const Kernels kGeneric = {max_of_generic, exp_shift_sum_scalar, gelu_scalar, gelu_backward_scalar};

const Kernels* select() {
  if (cpu::isa() >= cpu::Isa::Avx2) {
    if (const Kernels* k = avx2::kernels_avx2()) return k;
  }
  return &kGeneric;
}
}  // namespace

const Kernels& kernels() {
  static const Kernels* k = select();
  return *k;
}

bool using_avx2() { return &kernels() != &kGeneric; }

}  // namespace vmath
}  // namespace minielm
