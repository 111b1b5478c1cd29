// GPU tests of the elementwise and row kernels (native/cuda/ops.cu) against the CPU engine
// (native/model/ops.h, run in double on the same bf16-rounded inputs; AdamW against gpt2.cc's float formula).
// Tolerances (|got - want| <= atol + rtol |want|):
//   - conversions, fill, embedding forward, residual / add: one bf16 rounding of an exact or fp32 value:
//     conversions and fill bit-exact, the others rtol 4e-3 (half a bf16 ulp is 2^-9 ~ 2e-3);
//   - other bf16 outputs (LayerNorm, GELU, cross-entropy gradient): rtol 1e-2 plus a small atol relative to
//     the row's scale (fp32 math on bf16 inputs, then one bf16 rounding);
//   - fp32 outputs accumulated with atomics (embedding / LayerNorm / bias gradients): rtol 1e-4..1e-5;
//   - fp32 statistics (mean, rstd, per-row losses): rtol 1e-5..1e-4;
//   - doubles (loss_sum, sum of squares): rtol 1e-5 (loss, fp32 rows) and 1e-10 (squares, double sums);
//   - AdamW: expected bit-exact (the kernel uses non-contracting IEEE intrinsics in gpt2.cc's order);
//     held to 1 float ulp in case the host reference compiler contracts.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

// The CPU headers carry `omp simd` pragmas: compile this file with -Xcompiler -fopenmp-simd (the engine's own
// flag), else -Wall warns about them (nvcc's host preprocessing pass ignores `#pragma GCC diagnostic`).
#include "../../core/rng.h"
#include "../../model/ops.h"
#include "../kernels.cuh"
#include "harness.cuh"
#include "util.cuh"

namespace {

using namespace minielm::cuda;
using namespace minielm::cuda::test;
using minielm::Rng;

std::vector<float> to_fl(const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); }

void sync() { MINIELM_CUDA_CHECK(cudaDeviceSynchronize()); }

bool same_bits(bf16 a, bf16 b) {
  uint16_t x, y;
  std::memcpy(&x, &a, 2);
  std::memcpy(&y, &b, 2);
  return x == y;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------

MINIELM_GPU_TEST(ops_convert_fill) {
  Rng rng(11);
  for (int64_t n : {1, 7, 8, 1000, 100003}) {
    for (int off : {0, 1}) {
      std::vector<float> x(n);
      for (auto& v : x) v = static_cast<float>(3 * rng.normal());
      if (n > 4) x[1] = INFINITY, x[2] = -INFINITY, x[3] = 3.0e38f, x[4] = 1e-30f;
      Buf<float> src(n + 1);
      Buf<bf16> mid(n + 1);
      Buf<float> back(n + 1);
      upload_to(src.p + off, x);
      to_bf16(mid.p + off, src.p + off, n, 0);
      to_f32(back.p + off, mid.p + off, n, 0);
      std::vector<bf16> h(n);
      std::vector<float> f(n);
      MINIELM_CUDA_CHECK(cudaMemcpy(h.data(), mid.p + off, 2 * n, cudaMemcpyDeviceToHost));
      MINIELM_CUDA_CHECK(cudaMemcpy(f.data(), back.p + off, 4 * n, cudaMemcpyDeviceToHost));
      for (int64_t i = 0; i < n; ++i) {
        const bf16 want = __float2bfloat16_rn(x[i]);
        CHECK(same_bits(h[i], want), "to_bf16 n=" + std::to_string(n) + " off=" + std::to_string(off) + " i=" +
                                         std::to_string(i) + " x=" + std::to_string(x[i]));
        const float wf = __bfloat162float(want);
        CHECK(f[i] == wf, "to_f32 n=" + std::to_string(n) + " i=" + std::to_string(i));
      }
      fill(back.p + off, -2.75f, n, 0);
      MINIELM_CUDA_CHECK(cudaMemcpy(f.data(), back.p + off, 4 * n, cudaMemcpyDeviceToHost));
      for (int64_t i = 0; i < n; ++i) CHECK(f[i] == -2.75f, "fill n=" + std::to_string(n) + " i=" + std::to_string(i));
    }
  }
}

MINIELM_GPU_TEST(ops_embedding) {
  Rng rng(12);
  const int64_t vocab = 257, maxpos = 64;
  for (int64_t BT : {1, 7, 64}) {
    for (int64_t C : {64, 768, 1000, 77}) {
      const std::string tag = " BT=" + std::to_string(BT) + " C=" + std::to_string(C);
      std::vector<float> wte = randn(rng, vocab * C, 0.5), wpe = randn(rng, maxpos * C, 0.2);
      std::vector<int32_t> tok(BT), pos(BT);
      for (int64_t i = 0; i < BT; ++i) {
        tok[i] = static_cast<int32_t>(i % 3 == 2 ? tok[i - 1] : rng.next_u64() % vocab);  // repeats: atomics collide
        pos[i] = static_cast<int32_t>(i % maxpos);
      }
      tok[0] = vocab - 1;
      Buf<bf16> dwte(vocab * C), dwpe(maxpos * C), dout_b(BT * C), out(BT * C);
      Buf<int32_t> dtok(BT), dpos(BT);
      upload_bf16(dwte, wte);
      upload_bf16(dwpe, wpe);
      dtok.upload(tok.data());
      dpos.upload(pos.data());
      embedding_forward(out.p, dtok.p, dpos.p, dwte.p, dwpe.p, BT, C, 0);
      std::vector<double> ref(BT * C), wte_d = to_d(wte), wpe_d = to_d(wpe);
      minielm::ops::embedding_forward<double>(ref.data(), tok.data(), pos.data(), wte_d.data(), wpe_d.data(), BT, C);
      close_vec(from_bf16_host(out.get()), ref, 4e-3, 1e-30, "embedding_forward" + tag);

      // Backward accumulates into fp32 gradients that start non-zero.
      std::vector<float> gte = randn(rng, vocab * C, 0.1), gpe = randn(rng, maxpos * C, 0.1), dout = randn(rng, BT * C, 1.0);
      Buf<float> ggte(vocab * C), ggpe(maxpos * C);
      ggte.upload(gte.data());
      ggpe.upload(gpe.data());
      upload_bf16(dout_b, dout);
      embedding_backward(ggte.p, ggpe.p, dout_b.p, dtok.p, dpos.p, BT, C, 0);
      std::vector<double> rte = to_d(gte), rpe = to_d(gpe), dd = to_d(dout);
      minielm::ops::embedding_backward<double>(rte.data(), rpe.data(), dd.data(), tok.data(), pos.data(), BT, C);
      close_vec(ggte.get(), rte, 1e-5, 1e-5, "embedding_backward dwte" + tag);
      close_vec(ggpe.get(), rpe, 1e-5, 1e-5, "embedding_backward dwpe" + tag);
    }
  }
}

MINIELM_GPU_TEST(ops_layernorm) {
  Rng rng(13);
  for (int64_t BT : {1, 7, 64}) {
    for (int64_t C : {64, 768, 1000, 77}) {
      const std::string tag = " BT=" + std::to_string(BT) + " C=" + std::to_string(C);
      std::vector<float> inp = randn(rng, BT * C, 2.0, 0.5), w = randn(rng, C, 0.1, 1.0), b = randn(rng, C, 0.1);
      Buf<bf16> dinp_in(BT * C), dw_b(C), db_b(C), out(BT * C);
      Buf<float> mean(BT), rstd(BT);
      upload_bf16(dinp_in, inp);
      upload_bf16(dw_b, w);
      upload_bf16(db_b, b);
      layernorm_forward(out.p, mean.p, rstd.p, dinp_in.p, dw_b.p, db_b.p, BT, C, 0);
      std::vector<double> inp_d = to_d(inp), w_d = to_d(w), b_d = to_d(b), ref(BT * C), rm(BT), rs(BT);
      minielm::ops::layernorm_forward<double>(ref.data(), rm.data(), rs.data(), inp_d.data(), w_d.data(), b_d.data(), BT, C);
      close_vec(from_bf16_host(out.get()), ref, 1e-2, 1e-4, "layernorm_forward out" + tag);
      close_vec(mean.get(), rm, 1e-5, 1e-5, "layernorm_forward mean" + tag);
      close_vec(rstd.get(), rs, 1e-5, 1e-6, "layernorm_forward rstd" + tag);

      // Backward: the statistics both sides use are the reference's, rounded to float.
      std::vector<float> mf = to_fl(rm), sf = to_fl(rs);
      std::vector<float> dout = randn(rng, BT * C, 1.0), dinp0 = randn(rng, BT * C, 0.5);
      std::vector<float> dw0 = randn(rng, C, 0.3), db0 = randn(rng, C, 0.3);
      Buf<bf16> dout_b(BT * C), dinp(BT * C);
      Buf<float> dmean(BT), drstd(BT), gw(C), gb(C);
      upload_bf16(dout_b, dout);
      upload_bf16(dinp, dinp0);
      dmean.upload(mf.data());
      drstd.upload(sf.data());
      gw.upload(dw0.data());
      gb.upload(db0.data());
      layernorm_backward(dinp.p, gw.p, gb.p, dout_b.p, dinp_in.p, dw_b.p, dmean.p, drstd.p, BT, C, 0);
      std::vector<double> rdinp = to_d(dinp0), rdw = to_d(dw0), rdb = to_d(db0), dout_d = to_d(dout);
      std::vector<double> md = to_d(mf), sd = to_d(sf);
      minielm::ops::layernorm_backward<double>(rdinp.data(), rdw.data(), rdb.data(), dout_d.data(), inp_d.data(), w_d.data(),
                                               md.data(), sd.data(), BT, C);
      close_rows(from_bf16_host(dinp.get()), rdinp, BT, C, 1e-2, 1e-3, 1e-6, "layernorm_backward dinp" + tag);
      close_vec(gw.get(), rdw, 1e-4, 1e-4, "layernorm_backward dw" + tag);
      close_vec(gb.get(), rdb, 1e-4, 1e-4, "layernorm_backward db" + tag);
    }
  }
}

MINIELM_GPU_TEST(ops_gelu_residual) {
  Rng rng(14);
  for (int64_t n : {1, 7, 1000, 4099}) {
    for (int off : {0, 1}) {
      const std::string tag = " n=" + std::to_string(n) + " off=" + std::to_string(off);
      std::vector<float> x = randn(rng, n, 3.0), d = randn(rng, n, 1.0);
      Buf<bf16> bx(n + 1), bd(n + 1), bo(n + 1);
      upload_to(bx.p + off, to_bf16_host(x));
      upload_to(bd.p + off, to_bf16_host(d));
      auto get = [&](const bf16* p) {
        std::vector<bf16> h(n);
        MINIELM_CUDA_CHECK(cudaMemcpy(h.data(), p, 2 * n, cudaMemcpyDeviceToHost));
        return from_bf16_host(h);
      };
      std::vector<double> xd = to_d(x), dd = to_d(d), ref(n);
      gelu_forward(bo.p + off, bx.p + off, n, 0);
      for (int64_t i = 0; i < n; ++i) ref[i] = minielm::ops::gelu_scalar<double>(xd[i]);
      close_vec(get(bo.p + off), ref, 1e-2, 1e-5, "gelu_forward" + tag);

      minielm::ops::gelu_backward_span<double>(ref.data(), xd.data(), dd.data(), n);
      gelu_backward(bo.p + off, bx.p + off, bd.p + off, n, 0);
      close_vec(get(bo.p + off), ref, 1e-2, 1e-5, "gelu_backward" + tag);
      // In place over dout (the CPU allows it).
      Buf<bf16> bd2(n + 1);
      MINIELM_CUDA_CHECK(cudaMemcpy(bd2.p + off, bd.p + off, 2 * n, cudaMemcpyDeviceToDevice));
      gelu_backward(bd2.p + off, bx.p + off, bd2.p + off, n, 0);
      close_vec(get(bd2.p + off), ref, 1e-2, 1e-5, "gelu_backward in place" + tag);

      // residual_forward into a separate buffer, then in place over a; add_inplace.
      for (int64_t i = 0; i < n; ++i) ref[i] = xd[i] + dd[i];
      residual_forward(bo.p + off, bx.p + off, bd.p + off, n, 0);
      close_vec(get(bo.p + off), ref, 4e-3, 1e-30, "residual_forward" + tag);
      Buf<bf16> bx2(n + 1);
      MINIELM_CUDA_CHECK(cudaMemcpy(bx2.p + off, bx.p + off, 2 * n, cudaMemcpyDeviceToDevice));
      residual_forward(bx2.p + off, bx2.p + off, bd.p + off, n, 0);
      close_vec(get(bx2.p + off), ref, 4e-3, 1e-30, "residual_forward out == a" + tag);
      add_inplace(bd.p + off, bx.p + off, n, 0);
      close_vec(get(bd.p + off), ref, 4e-3, 1e-30, "add_inplace" + tag);
    }
  }
}

MINIELM_GPU_TEST(ops_bias_backward) {
  Rng rng(15);
  for (int64_t rows : {1, 7, 64, 1000}) {
    for (int64_t cols : {64, 768, 1000, 77}) {
      const std::string tag = " rows=" + std::to_string(rows) + " cols=" + std::to_string(cols);
      std::vector<float> d = randn(rng, rows * cols, 1.0), b0 = randn(rng, cols, 0.5);
      Buf<bf16> bd(rows * cols);
      Buf<float> bb(cols);
      upload_bf16(bd, d);
      bb.upload(b0.data());
      bias_backward(bb.p, bd.p, rows, cols, 0);
      std::vector<double> ref = to_d(b0);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t c = 0; c < cols; ++c) ref[c] += d[i * cols + c];
      close_vec(bb.get(), ref, 1e-5, 1e-5 * std::sqrt(static_cast<double>(rows)), "bias_backward" + tag);
    }
  }
}

MINIELM_GPU_TEST(ops_cross_entropy) {
  const int64_t shapes[][2] = {{1, 50}, {7, 50}, {64, 50}, {1, 8192}, {7, 8192}, {64, 8192}, {1, 50257}, {7, 50257}, {64, 50257}};
  uint64_t seed = 100;
  for (const auto& sh : shapes) {
    const int64_t rows = sh[0], V = sh[1];
    // variant 0: no weights, separate dlogits, losses, grad_scale 1, targets 0 / V-1 at the ends;
    // variant 1: weights with zeros, in place, losses, grad_scale 0.37, targets V-1 / 0;
    // variant 2: weights (row 0 weight 0), loss only (dlogits and losses null), grad_scale 2.5.
    for (int variant = 0; variant < 3; ++variant) {
      const std::string tag = " rows=" + std::to_string(rows) + " V=" + std::to_string(V) + " variant " + std::to_string(variant);
      Rng rng(seed++);
      std::vector<float> logits = randn(rng, rows * V, 2.0);
      std::vector<int32_t> tgt(rows);
      for (auto& t : tgt) t = static_cast<int32_t>(rng.next_u64() % V);
      tgt[0] = variant == 1 ? static_cast<int32_t>(V - 1) : 0;
      if (rows > 1) tgt[rows - 1] = variant == 1 ? 0 : static_cast<int32_t>(V - 1);
      std::vector<float> w(rows, 1.f);
      if (variant == 1)
        for (int64_t i = 0; i < rows; ++i) w[i] = (i % 3 == 1) ? 0.f : static_cast<float>(0.5 + rng.uniform());
      if (variant == 2)
        for (int64_t i = 0; i < rows; ++i) w[i] = i == 0 ? 0.f : 1.25f;
      const float grad_scale = variant == 0 ? 1.f : variant == 1 ? 0.37f : 2.5f;
      const bool use_w = variant != 0;

      Buf<bf16> bl(rows * V), bg(rows * V);
      Buf<int32_t> bt(rows);
      Buf<float> bw(rows), bloss(rows);
      Buf<double> bsum(1);
      upload_bf16(bl, logits);
      bt.upload(tgt.data());
      bw.upload(w.data());
      const double sum0 = 1.5;
      bsum.upload(&sum0);
      fill(bloss.p, -7.f, rows, 0);
      bf16* dl = variant == 0 ? bg.p : variant == 1 ? bl.p : nullptr;
      cross_entropy(dl, variant == 2 ? nullptr : bloss.p, bsum.p, bl.p, bt.p, use_w ? bw.p : nullptr, rows, V, grad_scale, 0);

      std::vector<double> ld = to_d(logits), wd = to_d(w), ref_g(rows * V), ref_loss(rows);
      const double ref_sum = sum0 + minielm::ops::cross_entropy_forward_backward<double>(
                                        variant == 2 ? nullptr : ref_g.data(), ref_loss.data(), ld.data(), tgt.data(),
                                        use_w ? wd.data() : nullptr, rows, V, grad_scale);
      double got_sum = 0;
      bsum.download(&got_sum);
      CHECK_CLOSE(got_sum, ref_sum, 1e-4 * static_cast<double>(rows), 1e-5, "cross_entropy loss_sum" + tag);
      if (variant != 2) {
        close_vec(bloss.get(), ref_loss, 1e-5, 1e-4, "cross_entropy losses" + tag);
        // bf16 gradient: rtol 1e-2 plus 1e-4 of the row's largest |gradient| (weight-0 rows must be exactly 0).
        close_rows(from_bf16_host((variant == 0 ? bg : bl).get()), ref_g, rows, V, 1e-2, 1e-4, 0, "cross_entropy dlogits" + tag);
      } else {
        std::vector<float> untouched = bloss.get();
        for (float v : untouched) CHECK(v == -7.f, "cross_entropy with losses == null wrote losses" + tag);
      }
    }
  }
}

MINIELM_GPU_TEST(ops_sum_squares) {
  Rng rng(16);
  for (int64_t n : {1, 7, 1000003}) {
    for (int off : {0, 1}) {
      std::vector<float> g(n);
      for (auto& v : g) v = static_cast<float>(rng.normal() * 1e-2);
      Buf<float> bg(n + 1);
      Buf<double> s(1);
      upload_to(bg.p + off, g);
      const double s0 = 2.0;
      s.upload(&s0);
      sum_squares(s.p, bg.p + off, n, 0);
      double want = s0, got = 0;
      for (float v : g) want += static_cast<double>(v) * v;
      s.download(&got);
      CHECK_CLOSE(got, want, 0.0, 1e-10, "sum_squares n=" + std::to_string(n) + " off=" + std::to_string(off));
    }
  }
}

MINIELM_GPU_TEST(ops_adamw) {
  Rng rng(17);
  const float lr = 3e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
  for (int64_t n : {1, 7, 4099}) {
    for (int off : {0, 1}) {
      std::vector<float> p(n), m(n, 0.f), v(n, 0.f);
      for (auto& x : p) x = static_cast<float>(rng.normal() * 0.02);
      Buf<float> bp(n + 1), bgr(n + 1), bm(n + 1), bv(n + 1);
      Buf<bf16> bc(n + 1);
      upload_to(bp.p + off, p);
      upload_to(bm.p + off, m);
      upload_to(bv.p + off, v);
      for (int64_t step = 1; step <= 3; ++step) {
        std::vector<float> g(n);
        for (auto& x : g) x = static_cast<float>(rng.normal() * (step == 2 ? 10.0 : 1e-3));
        upload_to(bgr.p + off, g);
        adamw(bp.p + off, bc.p + off, bgr.p + off, bm.p + off, bv.p + off, n, lr, b1, b2, eps, wd, gs, step, 0);
        // gpt2.cc's optimizer_step in float, statement for statement.
        const float inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(b1), static_cast<double>(step))));
        const float inv_bc2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(b2), static_cast<double>(step))));
        for (int64_t i = 0; i < n; ++i) {
          const float grad = g[i] * gs;
          const float mi = b1 * m[i] + (1.f - b1) * grad;
          const float vi = b2 * v[i] + (1.f - b2) * grad * grad;
          m[i] = mi;
          v[i] = vi;
          p[i] -= lr * ((mi * inv_bc1) / (std::sqrt(vi * inv_bc2) + eps) + wd * p[i]);
        }
        std::vector<float> gp(n), gm(n), gv(n);
        std::vector<bf16> gc(n);
        MINIELM_CUDA_CHECK(cudaMemcpy(gp.data(), bp.p + off, 4 * n, cudaMemcpyDeviceToHost));
        MINIELM_CUDA_CHECK(cudaMemcpy(gm.data(), bm.p + off, 4 * n, cudaMemcpyDeviceToHost));
        MINIELM_CUDA_CHECK(cudaMemcpy(gv.data(), bv.p + off, 4 * n, cudaMemcpyDeviceToHost));
        MINIELM_CUDA_CHECK(cudaMemcpy(gc.data(), bc.p + off, 2 * n, cudaMemcpyDeviceToHost));
        const std::string tag = " n=" + std::to_string(n) + " off=" + std::to_string(off) + " step=" + std::to_string(step);
        check_close(gp.data(), p.data(), n, 0.0, 1.2e-7, "adamw master" + tag);
        check_close(gm.data(), m.data(), n, 0.0, 1.2e-7, "adamw m" + tag);
        check_close(gv.data(), v.data(), n, 0.0, 1.2e-7, "adamw v" + tag);
        std::vector<float> cf = from_bf16_host(gc);
        check_close(cf.data(), p.data(), n, 0.0, 4e-3, "adamw bf16 copy" + tag);
      }
    }
  }
}

MINIELM_GPU_TEST(ops_invalid_arguments) {
  Buf<float> f(16);
  Buf<bf16> b(16);
  Buf<int32_t> t(16);
  Buf<double> d(1);
  expect_invalid([&] { to_bf16(b.p, f.p, -1, 0); }, "to_bf16 n < 0");
  expect_invalid([&] { layernorm_forward(b.p, f.p, f.p, b.p, b.p, b.p, 2, 0, 0); }, "layernorm C = 0");
  expect_invalid([&] { layernorm_forward(b.p, f.p, f.p, b.p, b.p, b.p, -2, 8, 0); }, "layernorm BT < 0");
  expect_invalid([&] { cross_entropy(b.p, f.p, d.p, b.p, t.p, nullptr, 1, int64_t(1) << 32, 1.f, 0); }, "cross_entropy V > int32");
  expect_invalid([&] { cross_entropy(b.p, f.p, d.p, b.p, t.p, nullptr, 2, 0, 1.f, 0); }, "cross_entropy V = 0");
  expect_invalid([&] { adamw(f.p, b.p, f.p, f.p, f.p, 16, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.f, 1.f, 0, 0); }, "adamw step 0");
  expect_invalid([&] { bias_backward(f.p, b.p, -1, 4, 0); }, "bias_backward rows < 0");
  // Empty work is a no-op, not an error.
  cross_entropy(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 50257, 1.f, 0);
  gelu_forward(b.p, b.p, 0, 0);
  layernorm_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, 768, 0);
  sync();
}

// ---------------------------------------------------------------------------------------------------------
// Benches: bytes read + written once (logits in, gradient out; the small per-row arrays ignored) per second.

namespace {

void bench_cross_entropy(int64_t rows, int64_t V) {
  Buf<bf16> logits(rows * V), grad(rows * V);
  Buf<int32_t> tgt(rows);
  Buf<double> sum(1);
  bench_init_bf16<<<1024, 256>>>(logits.p, rows * V, 7, 4.f);
  MINIELM_CUDA_LAUNCHED("bench_init_bf16");
  std::vector<int32_t> t(rows);
  for (int64_t i = 0; i < rows; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
  tgt.upload(t.data());
  MINIELM_CUDA_CHECK(cudaMemset(sum.p, 0, sizeof(double)));
  const double ms =
      time_ms([&] { cross_entropy(grad.p, nullptr, sum.p, logits.p, tgt.p, nullptr, rows, V, 1.f, 0); }, 2, 10);
  const double bytes = 2.0 * 2.0 * static_cast<double>(rows) * static_cast<double>(V);
  const std::string name = "cuda_cross_entropy_" + std::to_string(rows) + "x" + std::to_string(V);
  bench_report(name, "bandwidth", bytes / (ms * 1e6), "GB/s");
  bench_report(name, "time", ms, "ms");
}

}  // namespace

MINIELM_GPU_BENCH(bench_cross_entropy_1024x8192) { bench_cross_entropy(1024, 8192); }
MINIELM_GPU_BENCH(bench_cross_entropy_8192x50257) { bench_cross_entropy(8192, 50257); }
