// Which x86-64 instruction-set level the engine may use, decided once at run time. Every source is compiled
// for the plain x86-64 baseline; the AVX2 and AVX-512 kernels live in files (or functions) compiled through a
// target pragma and are only called after this says the CPU has the instructions, so the addon loads and
// runs on any x86-64 CPU.
// MINIELM_ISA=generic|avx2 lowers the level for every kernel (never raises it above the CPU's), so the
// portable paths can be tested on a machine with AVX-512.
#pragma once

namespace minielm {
namespace cpu {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2 };

// What the CPU supports (AVX2 means AVX2 + FMA; AVX-512 means F, VL, BW, DQ + FMA).
Isa detected();
// detected(), capped by MINIELM_ISA.
Isa isa();
// Caps `v` by the level named in environment variable `env` ("generic", "avx2", "avx512"); unknown names
// and an unset variable leave it unchanged.
Isa cap_by_env(Isa v, const char* env);
const char* name(Isa v);

}  // namespace cpu
}  // namespace minielm
