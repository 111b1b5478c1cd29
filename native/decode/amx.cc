// The AMX tile path of the decoder's matrix products (see amx.h). Compiled for AMX through a target
// pragma after the standard headers, used only when using_amx() says the CPU and the OS allow it.
#include "amx.h"

#include "../core/cpu.h"
#include "../core/error.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define MINIELM_HAVE_AMX 1
#endif

namespace minielm {
namespace decode {

namespace {
constexpr int64_t kTileRows = 16;  // rows of A (and C) per tile
constexpr int64_t kTileK = 32;     // bf16 values of k per tile product
constexpr int64_t kBlock = 32;     // columns per output block (two C tiles wide)
constexpr int64_t kPadN = 64;      // N is padded to this (decoder column splits are multiples of 64)

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

#if defined(MINIELM_HAVE_AMX)
bool detect_amx() {
  // AMX sits above AVX-512 in the decoder's ISA ladder: MINIELM_DECODE_ISA=avx512 (or lower) turns it off.
  const char* cap = std::getenv("MINIELM_DECODE_ISA");
  if (cap != nullptr && std::strcmp(cap, "amx") != 0) return false;
  if (cpu::cap_by_env(cpu::isa(), "MINIELM_DECODE_ISA") != cpu::Isa::Avx512) return false;
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
  if (!amx_bf16 || !amx_tile) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1u)) return false;  // OSXSAVE
  uint32_t xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  if ((xlo & (3u << 17)) != (3u << 17)) return false;  // XTILECFG and XTILEDATA enabled by the OS
  // Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); the
  // permission covers every thread of the process, the thread pool's included.
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}
#endif
}  // namespace

bool using_amx() {
#if defined(MINIELM_HAVE_AMX)
  static const bool v = detect_amx();
  return v;
#else
  return false;
#endif
}

void amx_alloc(int64_t K, int64_t N, AmxMatrix* m) {
  m->K = K;
  m->N = N;
  m->Kp = round_up(std::max<int64_t>(K, 1), kTileK);
  m->Np = round_up(std::max<int64_t>(N, 1), kPadN);
  const size_t count = static_cast<size_t>(m->Kp * m->Np);
  m->data.reset(new uint16_t[count]);
  std::memset(m->data.get(), 0, count * sizeof(uint16_t));
}

void amx_pack(const float* src, int64_t sk, int64_t sn, AmxMatrix* m, int64_t b0, int64_t b1) {
  const int64_t half = m->Kp / 2;
  std::vector<float> col(static_cast<size_t>(m->K));
  std::vector<uint16_t> col16(static_cast<size_t>(m->K));
  for (int64_t b = b0; b < b1; ++b) {
    uint16_t* blk = m->data.get() + b * half * 32;
    for (int64_t c = 0; c < 16; ++c) {
      const int64_t n = b * 16 + c;
      if (n >= m->N) break;
      // One source column at a time: for the LM head (sn = lde) that is one embedding row, read in order.
      for (int64_t k = 0; k < m->K; ++k) col[static_cast<size_t>(k)] = src[k * sk + n * sn];
      to_bf16(col.data(), col16.data(), m->K);
      for (int64_t k = 0; k < m->K; ++k) blk[(k / 2) * 32 + c * 2 + (k & 1)] = col16[static_cast<size_t>(k)];
    }
  }
}

}  // namespace decode
}  // namespace minielm

#if defined(MINIELM_HAVE_AMX)
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512vl,avx512bw,avx512dq,fma,avx2")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "avx512_inline.h"

namespace minielm {
namespace decode {
namespace {

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-1: two A tiles (rows r0..r0+15 and r0+16..r0+31, 32 bf16 of k each); 6-7: two B tiles (16 k
// pairs x 16 columns); 2-5: the four fp32 C tiles of a 32 x 32 output block (C[a][b] in tile 2 + 2a + b).
// Every tile is 16 rows of 64 bytes.
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

struct Scratch {
  std::vector<uint16_t> a;  // the call's A rows in bf16, [Mp, Kp], zero padded
  alignas(64) float c[2 * kTileRows * kBlock];
};
Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

// A [M, K] (row stride lda) -> bf16 in tile order: the A operand of rows [16 t, 16 t + 16) and k in
// [32 c, 32 c + 32) is the 1 KiB at ((t * Kp / 32) + c) * 512, 16 rows of 32; rows past M and k past K are 0.
const uint16_t* stage_a(int64_t M, const float* A, int64_t lda, int64_t K, int64_t Kp, int64_t Mp) {
  std::vector<uint16_t>& a = scratch().a;
  if (a.size() < static_cast<size_t>(Mp * Kp)) a.resize(static_cast<size_t>(Mp * Kp));
  for (int64_t i = 0; i < Mp; ++i) {
    uint16_t* dst = a.data() + (i / kTileRows) * kTileRows * Kp + (i % kTileRows) * kTileK;
    // Chunk k / 32 of the row is 32 consecutive bf16; the next chunk is one tile (16 rows) further.
    for (int64_t k = 0; k < Kp; k += kTileK) {
      uint16_t* d = dst + k * kTileRows;
      const int64_t n = i < M ? std::min<int64_t>(kTileK, K - k) : 0;
      if (n > 0) to_bf16(A + i * lda + k, d, n);
      if (n < kTileK) std::memset(d + std::max<int64_t>(n, 0), 0, static_cast<size_t>(kTileK - std::max<int64_t>(n, 0)) * sizeof(uint16_t));
    }
  }
  return a.data();
}

// The 32 x 32 block of C at rows [r0, r0 + 32) and columns [j, j + 32) into c (row stride kBlock): each
// A and B tile feeds two products, so a batch of beams reads every weight tile half as often as with 16
// rows. `two` = false computes the first 16 rows only (the tail of a call, or a call of <= 16 rows); the
// products an element gets are the same either way.
inline void block_product(const uint16_t* a, int64_t Kp, const AmxMatrix& W, int64_t r0, int64_t j, bool two, float* c) {
  const int64_t half = Kp / 2;
  const uint16_t* b = W.data.get() + (j / 16) * half * 32;
  const int64_t bstride = half * 32;  // elements from one 16-column block to the next
  const uint16_t* a0 = a + r0 * Kp;  // tile order (stage_a): k chunk c of this row block at a0 + c * 512
  const uint16_t* a1 = a0 + 16 * Kp;
  _tile_zero(2);
  _tile_zero(3);
  if (two) {
    _tile_zero(4);
    _tile_zero(5);
    for (int64_t k = 0; k < Kp; k += kTileK) {
      const uint16_t* bk = b + (k / 2) * 32;
      _tile_loadd(0, a0 + k * kTileRows, 64);
      _tile_loadd(6, bk, 64);
      _tile_dpbf16ps(2, 0, 6);
      _tile_loadd(1, a1 + k * kTileRows, 64);
      _tile_dpbf16ps(4, 1, 6);
      _tile_loadd(7, bk + bstride, 64);
      _tile_dpbf16ps(3, 0, 7);
      _tile_dpbf16ps(5, 1, 7);
    }
  } else {
    for (int64_t k = 0; k < Kp; k += kTileK) {
      const uint16_t* bk = b + (k / 2) * 32;
      _tile_loadd(0, a0 + k * kTileRows, 64);
      _tile_loadd(6, bk, 64);
      _tile_dpbf16ps(2, 0, 6);
      _tile_loadd(7, bk + bstride, 64);
      _tile_dpbf16ps(3, 0, 7);
    }
  }
  _tile_stored(2, c, kBlock * 4);
  _tile_stored(3, c + 16, kBlock * 4);
  if (two) {
    _tile_stored(4, c + 16 * kBlock, kBlock * 4);
    _tile_stored(5, c + 16 * kBlock + 16, kBlock * 4);
  }
}

// Runs every 32 x 32 block of rows [0, M) x columns [j0, j1), handing each finished block to emit(r0, rows,
// j, cols, c).
template <typename Emit>
void run_blocks(int64_t M, const float* A, int64_t lda, const AmxMatrix& W, int64_t j0, int64_t j1, Emit emit) {
  if (M <= 0 || j0 >= j1) return;
  const int64_t Mp = round_up(M, 2 * kTileRows);
  const uint16_t* a = stage_a(M, A, lda, W.K, W.Kp, Mp);
  float* c = scratch().c;
  configure_tiles();
  // Column blocks outside, row blocks inside: the block's weights (Kp x 32 bf16: 16 KiB for K = 256) stay
  // in L1 while every row block passes over them.
  for (int64_t j = j0; j < j1; j += kBlock)
    for (int64_t r0 = 0; r0 < M; r0 += 2 * kTileRows) {
      const int64_t rows = std::min<int64_t>(2 * kTileRows, M - r0);
      block_product(a, W.Kp, W, r0, j, rows > kTileRows, c);
      emit(r0, rows, j, std::min<int64_t>(kBlock, j1 - j), c);
    }
  _tile_release();
}

}  // namespace

void linear_cols_amx(int64_t M, const float* A, int64_t lda, const AmxMatrix& W, const float* bias,
                     float* const* out, int64_t j0, int64_t j1, Epilogue epi) {
  run_blocks(M, A, lda, W, j0, j1, [&](int64_t r0, int64_t rows, int64_t j, int64_t cols, const float* c) {
    for (int64_t v = 0; v < cols; v += 16) {
      const __mmask16 m = simd::tail_mask(cols - v);
      const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + j + v) : _mm512_setzero_ps();
      for (int64_t r = 0; r < rows; ++r) {
        float* o = out[r0 + r] + j + v;
        __m512 x = _mm512_add_ps(_mm512_load_ps(c + r * kBlock + v), bv);
        if (epi == Epilogue::Gelu) x = simd::gelu16(x);
        else if (epi == Epilogue::AddTo) x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), x);
        _mm512_mask_storeu_ps(o, m, x);
      }
    }
  });
}

void head_cols_amx(int64_t M, const float* A, int64_t lda, const AmxMatrix& E, float* out, int64_t ldo, int64_t j0,
                   int64_t j1) {
  run_blocks(M, A, lda, E, j0, j1, [&](int64_t r0, int64_t rows, int64_t j, int64_t cols, const float* c) {
    for (int64_t r = 0; r < rows; ++r) {
      float* o = out + (r0 + r) * ldo + j;
      for (int64_t v = 0; v < cols; v += 16)
        _mm512_mask_storeu_ps(o + v, simd::tail_mask(cols - v), _mm512_load_ps(c + r * kBlock + v));
    }
  });
}

}  // namespace decode
}  // namespace minielm

#pragma GCC diagnostic pop
#pragma GCC pop_options

#else

namespace minielm {
namespace decode {

// Unreachable: using_amx() is false on this build, so the decoder never calls these.
[[noreturn]] static void no_amx() { throw Error("MINIELM_NATIVE", "the AMX kernels are not built for this platform"); }

void linear_cols_amx(int64_t, const float*, int64_t, const AmxMatrix&, const float*, float* const*, int64_t, int64_t,
                     Epilogue) {
  no_amx();
}
void head_cols_amx(int64_t, const float*, int64_t, const AmxMatrix&, float*, int64_t, int64_t, int64_t) { no_amx(); }

}  // namespace decode
}  // namespace minielm

#endif
