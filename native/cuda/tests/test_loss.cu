// GPU tests of the alignment losses (native/cuda/loss.cu) against the CPU engine's references
// (native/loss/distill.h, dpo.h, grpo.h), run in double on the same bf16-rounded logits.
// Tolerances (|got - want| <= atol + rtol |want|):
//   - loss sums (device doubles): rtol 1e-4 plus 1e-4 per unit of row weight (each row's divergence / CE
//     comes from fp32 element math reduced in double: ~1e-5 absolute per row);
//   - per-row fp32 outputs (row_lse, token logp): rtol 1e-5, atol 1e-4; sequence log-probs: atol 1e-4 per row;
//   - bf16 gradients: rtol 1e-2 plus 1e-4 (distill: 2e-4) of the row's largest |gradient|; rows with weight 0
//     (or coefficient 0) must be exactly 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

// The CPU headers carry `omp simd` pragmas: compile this file with -Xcompiler -fopenmp-simd (the engine's own
// flag), else -Wall warns about them (nvcc's host preprocessing pass ignores `#pragma GCC diagnostic`).
#include "../../core/rng.h"
#include "../../loss/distill.h"
#include "../../loss/dpo.h"
#include "../../loss/grpo.h"
#include "../kernels.cuh"
#include "harness.cuh"
#include "util.cuh"

namespace {

using namespace minielm::cuda;
using namespace minielm::cuda::test;
using minielm::Rng;

std::string shape_tag(int64_t rows, int64_t V) { return " rows=" + std::to_string(rows) + " V=" + std::to_string(V); }

// ---- distillation ----

struct DistillCase {
  int divergence;  // 0 reverse KL, 1 forward KL, 2 JSD
  float beta, tau, ce;
};

// 20 configurations: {RKL, FKL, JSD(0.5), JSD(0) = FKL, JSD(1) = RKL} x tau {1, 2} x ce_weight {0, 0.3}.
DistillCase distill_case(int i) {
  static const int div[5] = {0, 1, 2, 2, 2};
  static const float beta[5] = {0.5f, 0.5f, 0.5f, 0.f, 1.f};
  const int k = i / 4;
  return {div[k], beta[k], (i / 2) % 2 ? 2.f : 1.f, i % 2 ? 0.3f : 0.f};
}

// One GPU run against distill_forward_backward<double>. Per-case variation, spread so that it does not follow
// the divergence / tau / ce pattern: weights with zeros (bit parity of i), in place (i % 3 == 0), grad_scale
// 0.37 (i % 5 >= 3), targets null when ce_weight == 0 and i % 4 == 0.
// teacher_offset shifts the teacher one element off the student's 16-byte phase (the scalar path).
void run_distill(int64_t rows, int64_t V, int i, uint64_t seed, int teacher_offset = 0) {
  const DistillCase c = distill_case(i);
  std::ostringstream t;
  t << shape_tag(rows, V) << " case " << i << " (div " << c.divergence << ", beta " << c.beta << ", tau " << c.tau
    << ", ce " << c.ce << (teacher_offset ? ", teacher off-phase" : "") << ")";
  const std::string tag = t.str();
  Rng rng(seed);
  std::vector<float> s = randn(rng, rows * V, 2.0);
  std::vector<float> te(rows * V);
  for (int64_t j = 0; j < rows * V; ++j) te[j] = round_bf16(static_cast<float>(0.8 * s[j] + 0.6 * rng.normal()));
  std::vector<int32_t> tgt(rows);
  for (auto& x : tgt) x = static_cast<int32_t>(rng.next_u64() % V);
  tgt[0] = 0;
  if (rows > 1) tgt[rows - 1] = static_cast<int32_t>(V - 1);
  const bool use_w = (((i >> 1) ^ i ^ (i >> 2)) & 1) != 0;
  std::vector<float> w(rows, 1.f);
  if (use_w)
    for (int64_t r = 0; r < rows; ++r) w[r] = (r % 3 == 1) ? 0.f : static_cast<float>(0.25 + 1.5 * rng.uniform());
  const bool inplace = i % 3 == 0;
  const float grad_scale = i % 5 >= 3 ? 0.37f : 1.f;
  const bool null_targets = c.ce == 0 && i % 4 == 0;

  Buf<bf16> bs(rows * V), bt(rows * V + 1), bg(rows * V);
  Buf<int32_t> btg(rows);
  Buf<float> bw(rows);
  Buf<double> bsum(3);
  upload_bf16(bs, s);
  upload_to(bt.p + teacher_offset, to_bf16_host(te));
  btg.upload(tgt.data());
  bw.upload(w.data());
  const double sum0[3] = {0.25, -1.0, 2.0};
  bsum.upload(sum0);
  bf16* dst = inplace ? bs.p : bg.p;
  distill(dst, bsum.p, bs.p, bt.p + teacher_offset, null_targets ? nullptr : btg.p, use_w ? bw.p : nullptr, rows, V,
          c.divergence, c.beta, c.tau, c.ce, grad_scale, 0);

  minielm::loss::DistillOptions o;
  o.divergence = static_cast<minielm::loss::Divergence>(c.divergence);
  o.beta = c.beta;
  o.temperature = c.tau;
  o.ce_weight = c.ce;  // the float value, widened: both sides see the same alpha
  std::vector<double> sd = to_d(s), td = to_d(te), wd = to_d(w), ref_g(rows * V);
  const minielm::loss::DistillSums ref = minielm::loss::distill_forward_backward<double>(
      ref_g.data(), sd.data(), td.data(), null_targets ? nullptr : tgt.data(), use_w ? wd.data() : nullptr, rows, V, o,
      static_cast<double>(grad_scale));
  double got[3];
  bsum.download(got);
  double wsum = 0;
  for (float x : w) wsum += use_w ? x : 1.0;
  const double atol = 1e-4 * std::max(1.0, wsum);
  CHECK_CLOSE(got[0], sum0[0] + ref.loss, atol, 1e-4, "distill loss sum" + tag);
  CHECK_CLOSE(got[1], sum0[1] + ref.divergence, atol, 1e-4, "distill divergence sum" + tag);
  CHECK_CLOSE(got[2], sum0[2] + ref.ce, atol, 1e-4, "distill ce sum" + tag);
  close_rows(from_bf16_host((inplace ? bs : bg).get()), ref_g, rows, V, 1e-2, 2e-4, 0, "distill gradient" + tag);
}

}  // namespace

MINIELM_GPU_TEST(loss_distill) {
  const int64_t shapes[][2] = {{1, 50}, {7, 50}, {64, 50}, {1, 8192}, {7, 8192}, {64, 8192}, {1, 50257}, {7, 50257}, {64, 50257}};
  // The big shapes run a subset covering every divergence, both temperatures, both ce weights, weights null
  // and not, in place and not (keeps the double-precision reference under a few seconds).
  const int subset[] = {1, 6, 9, 11, 12, 19};
  uint64_t seed = 1000;
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], V = sh[1];
    if (rows * V <= 100000) {
      for (int i = 0; i < 20; ++i) run_distill(rows, V, i, seed++);
    } else {
      for (int i : subset) run_distill(rows, V, i, seed++);
    }
  }
  // Teacher rows off the student's 16-byte phase: the scalar passes.
  run_distill(7, 50, 11, seed++, 1);
  run_distill(7, 8192, 1, seed++, 1);
  run_distill(3, 50257, 9, seed++, 1);
}

MINIELM_GPU_TEST(loss_distill_invalid) {
  Buf<bf16> b(64);
  Buf<double> d(3);
  Buf<int32_t> t(1);
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, t.p, nullptr, 1, 64, 3, 0.5f, 1.f, 0.f, 1.f, 0); }, "divergence 3");
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, t.p, nullptr, 1, 64, 0, 0.5f, 0.f, 0.f, 1.f, 0); }, "temperature 0");
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, t.p, nullptr, 1, 64, 2, 1.5f, 1.f, 0.f, 1.f, 0); }, "beta 1.5");
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, t.p, nullptr, 1, 64, 0, 0.5f, 1.f, 1.5f, 1.f, 0); }, "ce_weight 1.5");
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, nullptr, nullptr, 1, 64, 0, 0.5f, 1.f, 0.3f, 1.f, 0); },
                 "ce_weight > 0 without targets");
  expect_invalid([&] { distill(b.p, d.p, b.p, b.p, t.p, nullptr, -1, 64, 0, 0.5f, 1.f, 0.f, 1.f, 0); }, "rows < 0");
  distill(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 64, 0, 0.5f, 1.f, 0.f, 1.f, 0);  // no work: no-op
}

MINIELM_GPU_TEST(loss_sequence_logps) {
  const int64_t seqs[][2] = {{1, 1}, {3, 7}, {2, 16}};
  uint64_t seed = 2000;
  for (int64_t V : {50, 8192, 50257}) {
    for (const auto& bt : seqs) {
      const int64_t B = bt[0], T = bt[1], rows = B * T;
      for (int variant = 0; variant < 2; ++variant) {
        // variant 0: no weights, separate gradient; variant 1: weights with zeros (a whole sequence masked when
        // B > 1, prompt-like leading zeros), in place.
        const std::string tag = " B=" + std::to_string(B) + " T=" + std::to_string(T) + " V=" + std::to_string(V) +
                                " variant " + std::to_string(variant);
        Rng rng(seed++);
        std::vector<float> logits = randn(rng, rows * V, 2.0);
        std::vector<int32_t> tgt(rows);
        for (auto& x : tgt) x = static_cast<int32_t>(rng.next_u64() % V);
        tgt[0] = static_cast<int32_t>(V - 1);
        if (rows > 1) tgt[rows - 1] = 0;
        std::vector<float> w(rows, 1.f);
        if (variant == 1) {
          for (int64_t b = 0; b < B; ++b)
            for (int64_t t = 0; t < T; ++t) w[b * T + t] = (B > 1 && b == 1) || (T > 1 && t < T / 3) ? 0.f : 1.f;
          if (rows > 2) w[rows - 1] = 0.5f;
        }
        const bool use_w = variant == 1;
        std::vector<float> coef(B);
        for (auto& x : coef) x = static_cast<float>(rng.normal());
        if (B > 2) coef[2] = 0.f;

        Buf<bf16> bl(rows * V), bg(rows * V);
        Buf<int32_t> btg(rows);
        Buf<float> bw(rows), blse(rows), bcoef(B);
        Buf<double> bseq(B);
        upload_bf16(bl, logits);
        btg.upload(tgt.data());
        bw.upload(w.data());
        bcoef.upload(coef.data());
        // NaN in row_lse: rows with weight 0 must neither be written (CPU semantics) nor read by the backward.
        fill(blse.p, std::numeric_limits<float>::quiet_NaN(), rows, 0);
        sequence_logps(bseq.p, blse.p, bl.p, btg.p, use_w ? bw.p : nullptr, B, T, V, 0);

        std::vector<double> ld = to_d(logits), wd = to_d(w), ref_seq(B), ref_lse(rows, 0.0);
        minielm::loss::sequence_logps<double>(ref_seq.data(), ref_lse.data(), ld.data(), tgt.data(),
                                              use_w ? wd.data() : nullptr, B, T, V);
        std::vector<double> got_seq(B);
        bseq.download(got_seq.data());
        for (int64_t b = 0; b < B; ++b)
          CHECK_CLOSE(got_seq[b], ref_seq[b], 1e-4 * static_cast<double>(T), 1e-5, "sequence_logps seq " + std::to_string(b) + tag);
        std::vector<float> got_lse = blse.get();
        for (int64_t r = 0; r < rows; ++r) {
          if (use_w && w[r] == 0.f) {
            CHECK(std::isnan(got_lse[r]), "sequence_logps wrote row_lse of a weight-0 row" + tag);
          } else {
            CHECK_CLOSE(got_lse[r], ref_lse[r], 1e-4, 1e-5, "sequence_logps row_lse " + std::to_string(r) + tag);
          }
        }

        bf16* dl = variant == 1 ? bl.p : bg.p;
        sequence_logps_backward(dl, bl.p, btg.p, use_w ? bw.p : nullptr, blse.p, bcoef.p, B, T, V, 0);
        std::vector<double> dseq(coef.begin(), coef.end()), ref_g(rows * V);
        minielm::loss::sequence_logps_backward<double>(ref_g.data(), ld.data(), tgt.data(), use_w ? wd.data() : nullptr,
                                                       ref_lse.data(), dseq.data(), B, T, V);
        close_rows(from_bf16_host((variant == 1 ? bl : bg).get()), ref_g, rows, V, 1e-2, 1e-4, 0,
                   "sequence_logps_backward" + tag);
      }
    }
  }
}

MINIELM_GPU_TEST(loss_token_logps) {
  uint64_t seed = 3000;
  for (int64_t V : {50, 8192, 50257}) {
    for (int64_t rows : {1, 7, 64}) {
      for (int variant = 0; variant < 2; ++variant) {
        // variant 0: no weights, separate gradient; variant 1: weights with zeros (coef 0 there, as GRPO), in place.
        const std::string tag = shape_tag(rows, V) + " variant " + std::to_string(variant);
        Rng rng(seed++);
        std::vector<float> logits = randn(rng, rows * V, 2.0);
        std::vector<int32_t> tgt(rows);
        for (auto& x : tgt) x = static_cast<int32_t>(rng.next_u64() % V);
        tgt[0] = 0;
        if (rows > 1) tgt[rows - 1] = static_cast<int32_t>(V - 1);
        const bool use_w = variant == 1;
        std::vector<float> w(rows, 1.f), coef(rows);
        for (int64_t r = 0; r < rows; ++r) {
          if (use_w && r % 4 == 1) w[r] = 0.f;
          coef[r] = w[r] == 0.f ? 0.f : static_cast<float>(rng.normal() * 0.1);
        }
        if (rows > 3) coef[3] = 0.f;

        Buf<bf16> bl(rows * V), bg(rows * V);
        Buf<int32_t> btg(rows);
        Buf<float> bw(rows), blp(rows), blse(rows), bcoef(rows);
        upload_bf16(bl, logits);
        btg.upload(tgt.data());
        bw.upload(w.data());
        bcoef.upload(coef.data());
        token_logps(blp.p, blse.p, bl.p, btg.p, use_w ? bw.p : nullptr, rows, V, 0);

        std::vector<double> ld = to_d(logits), wd = to_d(w), ref_lp(rows), ref_lse(rows, 0.0);
        minielm::loss::token_logps<double>(ref_lp.data(), ld.data(), tgt.data(), use_w ? wd.data() : nullptr, rows, V);
        for (int64_t r = 0; r < rows; ++r) {
          if (w[r] == 0.f) continue;
          const double* x = ld.data() + r * V;
          double m = x[0], s = 0;
          for (int64_t j = 1; j < V; ++j) m = std::max(m, x[j]);
          for (int64_t j = 0; j < V; ++j) s += std::exp(x[j] - m);
          ref_lse[r] = m + std::log(s);
        }
        std::vector<float> got_lp = blp.get(), got_lse = blse.get();
        for (int64_t r = 0; r < rows; ++r) {
          if (w[r] == 0.f) {
            CHECK(got_lp[r] == 0.f && got_lse[r] == 0.f, "token_logps weight-0 row not zeroed" + tag);
            continue;
          }
          CHECK_CLOSE(got_lp[r], ref_lp[r], 1e-4, 1e-5, "token_logps logp " + std::to_string(r) + tag);
          CHECK_CLOSE(got_lse[r], ref_lse[r], 1e-4, 1e-5, "token_logps row_lse " + std::to_string(r) + tag);
        }

        bf16* dl = variant == 1 ? bl.p : bg.p;
        token_logps_backward(dl, bl.p, btg.p, blse.p, bcoef.p, rows, V, 0);
        // The reference: sequences of one token, no weights, dseq = coef.
        std::vector<double> cd(coef.begin(), coef.end()), ref_g(rows * V);
        minielm::loss::sequence_logps_backward<double>(ref_g.data(), ld.data(), tgt.data(), nullptr, ref_lse.data(),
                                                       cd.data(), rows, 1, V);
        close_rows(from_bf16_host((variant == 1 ? bl : bg).get()), ref_g, rows, V, 1e-2, 1e-4, 0,
                   "token_logps_backward" + tag);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Benches: distillation reads student and teacher once and writes the gradient once (logical bytes / s).

namespace {

void bench_distill(int64_t rows, int64_t V) {
  Buf<bf16> s(rows * V), t(rows * V), g(rows * V);
  Buf<int32_t> tgt(rows);
  Buf<double> sums(3);
  bench_init_bf16<<<1024, 256>>>(s.p, rows * V, 11, 4.f);
  bench_init_bf16<<<1024, 256>>>(t.p, rows * V, 12, 4.f);
  MINIELM_CUDA_LAUNCHED("bench_init_bf16");
  std::vector<int32_t> h(rows);
  for (int64_t i = 0; i < rows; ++i) h[i] = static_cast<int32_t>((i * 7919) % V);
  tgt.upload(h.data());
  MINIELM_CUDA_CHECK(cudaMemset(sums.p, 0, 3 * sizeof(double)));
  const double bytes = 3.0 * 2.0 * static_cast<double>(rows) * static_cast<double>(V);
  struct Cfg {
    const char* name;
    int div;
    float beta, tau, ce;
  };
  const Cfg cfgs[] = {{"rkl", 0, 0.5f, 2.f, 0.f}, {"jsd", 2, 0.5f, 2.f, 0.3f}};
  for (const Cfg& c : cfgs) {
    const double ms = time_ms(
        [&] { distill(g.p, sums.p, s.p, t.p, tgt.p, nullptr, rows, V, c.div, c.beta, c.tau, c.ce, 1.f, 0); }, 2, 10);
    const std::string name = std::string("cuda_distill_") + c.name + "_" + std::to_string(rows) + "x" + std::to_string(V);
    bench_report(name, "bandwidth", bytes / (ms * 1e6), "GB/s");
    bench_report(name, "time", ms, "ms");
  }
}

}  // namespace

MINIELM_GPU_BENCH(bench_distill_1024x8192) { bench_distill(1024, 8192); }
MINIELM_GPU_BENCH(bench_distill_8192x50257) { bench_distill(8192, 50257); }
