// The whole device model against the CPU engine (native/model/gpt2.cc, native/decode/decoder.cc) on the same
// weights and batches: forward logits, a training run's loss curve, greedy / beam / sampled decoding, and the
// host <-> device copies behind checkpoints. Plus the model-level GPU benches of issue 14: GPT-2 124M training
// tokens/s and MFU, decoding tokens/s at batch 1 and 64, 10 rewrites of one query with the `student` preset.
// No Node.js needed: this runs wherever minielm_cuda_tests builds.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "../../decode/decoder.h"
#include "../../model/gpt2.h"
#include "../device.h"
#include "harness.cuh"

using namespace minielm;
using namespace minielm::cuda;
using namespace minielm::cuda::test;

namespace {

// A learnable pattern (next token = token + 1 mod V) with some sequences padded at the end.
struct HostBatch {
  std::vector<int32_t> tokens, targets;
  std::vector<uint8_t> mask;
  std::vector<float> weight;
  Batch view(int64_t B, int64_t T) {
    Batch b;
    b.tokens = tokens.data();
    b.targets = targets.data();
    b.attn_mask = mask.data();
    b.loss_weight = weight.data();
    b.B = B;
    b.T = T;
    return b;
  }
};

HostBatch make_batch(uint32_t seed, int64_t B, int64_t T, int64_t V, int64_t pad_tail) {
  HostBatch h;
  h.tokens.resize(B * T);
  h.targets.resize(B * T);
  h.mask.resize(B * T);
  h.weight.resize(B * T);
  uint32_t s = seed;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      s = s * 1664525u + 1013904223u;
      h.tokens[i] = t == 0 ? static_cast<int32_t>(s % V) : (h.tokens[i - 1] + 1) % static_cast<int32_t>(V);
      h.targets[i] = (h.tokens[i] + 1) % static_cast<int32_t>(V);
      const bool real = b % 2 == 0 || t < T - pad_tail;
      h.mask[i] = real ? 1 : 0;
      h.weight[i] = real ? 1.f : 0.f;
    }
  return h;
}

const Config kSmall{97, 32, 2, 2, 64, false};

OptimConfig adam(double lr, int64_t total_steps, int64_t warmup = 0, double weight_decay = 0) {
  OptimConfig o;
  o.lr = lr;
  o.total_steps = total_steps;
  o.warmup_steps = warmup;
  o.weight_decay = weight_decay;
  return o;
}

// Trains `m` on the CPU for `steps` steps of the learnable pattern (batches seeded from seed0), then copies its
// weights into `copy` (a fresh host model for a DeviceModel), so the device starts from a trained model.
void train_cpu_and_copy(Gpt2<float>& m, Gpt2<float>& copy, int steps, uint32_t seed0) {
  const OptimConfig o = adam(5e-3, steps, 2);
  for (int s = 0; s < steps; ++s) {
    HostBatch h = make_batch(seed0 + s, 8, 24, m.config().vocab_size, 0);
    std::vector<Batch> micro{h.view(8, 24)};
    m.train_step(micro, o);
  }
  std::copy(m.params(), m.params() + m.num_params(), copy.params());
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// A model trained on the CPU (cpu) and its copy on the device (dev, through host): the frozen teacher or
// reference of the alignment tests, and the trained model of the decoding test.
struct Trained {
  Gpt2<float> cpu, host;
  std::unique_ptr<DeviceModel> dev;
  Trained(uint64_t seed, int steps, uint32_t seed0) : cpu(kSmall, seed), host(kSmall, 0) {
    train_cpu_and_copy(cpu, host, steps, seed0);
    dev = std::make_unique<DeviceModel>(host, 0);
  }
};

}  // namespace

// Logits within 0.05 + 2 % of the CPU engine's (bf16 weights and activations; a 2-layer model rounds each
// activation about a dozen times at ~0.4 % each).
MINIELM_GPU_TEST(model_forward_matches_cpu) {
  Gpt2<float> cpu(kSmall, 5);
  Gpt2<float> host(kSmall, 5);
  DeviceModel dev(host, 0);
  HostBatch h = make_batch(1, 3, 17, kSmall.vocab_size, 5);
  Batch b = h.view(3, 17);
  cpu.forward(b);
  std::vector<float> got(3 * 17 * kSmall.vocab_size);
  dev.forward(b, got.data());
  const float* want = cpu.logits();
  for (int64_t i = 0; i < 3 * 17; ++i) {
    if (!h.mask[i]) continue;
    check_close(got.data() + i * kSmall.vocab_size, want + i * kSmall.vocab_size, kSmall.vocab_size, 0.05, 0.02,
                "logits of row " + std::to_string(i));
  }
  std::vector<float> lc(3 * 17), lg(3 * 17);
  const double sc = cpu.cross_entropy(b, lc.data());
  const double sg = dev.cross_entropy(b, lg.data());
  CHECK_CLOSE(sg, sc, 0.0, 0.02, "weighted loss sum");
}

// 30 AdamW steps from the same initialisation: the GPU loss within 2 % + 0.01 of the CPU's at every step.
MINIELM_GPU_TEST(model_training_follows_cpu_loss_curve) {
  Gpt2<float> cpu(kSmall, 9);
  Gpt2<float> host(kSmall, 9);
  DeviceModel dev(host, 0);
  const OptimConfig o = adam(3e-3, 30, 2, 0.1);
  double first = 0, last = 0;
  for (int s = 0; s < 30; ++s) {
    HostBatch h = make_batch(100 + s, 8, 24, kSmall.vocab_size, 3);
    std::vector<Batch> micro{h.view(8, 24)};
    StepStats a = cpu.train_step(micro, o);
    StepStats g = dev.train_step(micro, o);
    CHECK_CLOSE(g.loss, a.loss, 0.01, 0.02, "loss at step " + std::to_string(s + 1));
    CHECK_CLOSE(g.grad_norm, a.grad_norm, 0.0, 0.05, "gradient norm at step " + std::to_string(s + 1));
    if (s == 0) first = g.loss;
    last = g.loss;
  }
  CHECK(last < 0.8 * first, "the GPU run learns");
  CHECK(host.step() == 30, "the host model's step follows the device's");
  // Device -> host: the downloaded weights are the device's, and near the CPU run's.
  dev.download();
  const int64_t n = host.num_params();
  check_close(host.params(), cpu.params(), static_cast<size_t>(n), 2e-3, 0.05, "weights after 30 steps");
  // Host -> device round trip: upload what was downloaded, the forward pass is unchanged.
  HostBatch p = make_batch(7, 2, 12, kSmall.vocab_size, 0);
  std::vector<float> l1(2 * 12 * kSmall.vocab_size), l2(l1.size());
  dev.forward(p.view(2, 12), l1.data());
  dev.upload();
  dev.forward(p.view(2, 12), l2.data());
  check_close(l2.data(), l1.data(), l1.size(), 1e-6, 0.0, "logits after download + upload");
}

// Greedy decoding equals the CPU engine's bf16-weight decoding on a trained model (large margins between the
// top tokens); beam search returns its n-best sorted; seeded sampling repeats.
MINIELM_GPU_TEST(model_decoding_matches_cpu) {
  Trained t(11, 60, 300);
  Gpt2<float>& cpu = t.cpu;
  DeviceModel& dev = *t.dev;
  const std::vector<std::vector<int32_t>> prompts{{3, 4, 5}, {10}, {50, 51, 52, 53, 54}};
  decode::GenerateOptions g;
  g.max_new_tokens = 8;
  g.bf16_weights = true;
  auto c = decode::generate(cpu, prompts, g);
  auto d = dev.generate(prompts, g);
  for (size_t i = 0; i < prompts.size(); ++i) CHECK(c[i][0].tokens == d[i][0].tokens, "greedy decode of prompt " + std::to_string(i));
  decode::GenerateOptions beam;
  beam.strategy = decode::Strategy::Beam;
  beam.num_beams = 4;
  beam.num_return_sequences = 4;
  beam.max_new_tokens = 6;
  auto bd = dev.generate(prompts, beam);
  auto bc = decode::generate(cpu, prompts, beam);
  for (size_t i = 0; i < prompts.size(); ++i) {
    CHECK(bd[i].size() == 4, "4 beams returned");
    for (size_t k = 1; k < bd[i].size(); ++k) CHECK(bd[i][k - 1].score >= bd[i][k].score, "beams sorted by score");
    CHECK(bd[i][0].tokens == bc[i][0].tokens, "the best beam equals the CPU engine's");
  }
  decode::GenerateOptions smp;
  smp.strategy = decode::Strategy::Sample;
  smp.num_return_sequences = 5;
  smp.max_new_tokens = 6;
  smp.seed = 3;
  auto s1 = dev.generate(prompts, smp);
  auto s2 = dev.generate(prompts, smp);
  for (size_t i = 0; i < prompts.size(); ++i)
    for (size_t k = 0; k < 5; ++k) CHECK(s1[i][k].tokens == s2[i][k].tokens, "seeded sampling repeats");
}

// Reverse-KL distillation (and JSD with a CE mix) from a trained teacher: every step's loss, divergence and
// gradient norm within 2 % + 0.01 of loss::distill_step on the CPU; the teacher's weights do not move.
MINIELM_GPU_TEST(model_distillation_follows_cpu) {
  Trained t(21, 40, 500);
  Gpt2<float>& teacher_cpu = t.cpu;
  DeviceModel& teacher = *t.dev;
  for (int variant = 0; variant < 2; ++variant) {
    loss::DistillOptions d;
    if (variant == 1) {
      d.divergence = loss::Divergence::Jsd;
      d.beta = 0.5;
      d.temperature = 2.0;
      d.ce_weight = 0.3;
    }
    Gpt2<float> student_cpu(kSmall, 23);
    Gpt2<float> student_host(kSmall, 23);
    DeviceModel student(student_host, 0);
    const OptimConfig so = adam(3e-3, 15);
    for (int s = 0; s < 15; ++s) {
      HostBatch h = make_batch(700 + s, 8, 24, kSmall.vocab_size, 4);
      Batch b = h.view(8, 24);
      loss::DistillStepStats a = loss::distill_step(student_cpu, teacher_cpu, b, d, so);
      loss::DistillStepStats g = student.distill_step(teacher, b, d, so);
      const std::string at = (variant ? "JSD + CE" : "reverse KL") + std::string(", step ") + std::to_string(s + 1);
      CHECK_CLOSE(g.step.loss, a.step.loss, 0.01, 0.02, "distillation loss, " + at);
      CHECK_CLOSE(g.divergence, a.divergence, 0.01, 0.02, "divergence, " + at);
      CHECK_CLOSE(g.step.grad_norm, a.step.grad_norm, 0.0, 0.05, "gradient norm, " + at);
      if (variant == 1) CHECK_CLOSE(g.ce, a.ce, 0.01, 0.02, "cross-entropy term, " + at);
    }
  }
  teacher.download();
  check_close(t.host.params(), teacher_cpu.params(), static_cast<size_t>(teacher_cpu.num_params()), 0.0, 0.0,
              "the teacher's weights after distillation");
}

// DPO on 2B sequences (chosen then rejected) with a reference model, and reference-free: the loss, the reward
// margin and the gradient norm within 2 % + 0.01 of loss::dpo_step at every step.
MINIELM_GPU_TEST(model_dpo_follows_cpu) {
  Trained r(31, 30, 900);
  Gpt2<float>& ref_cpu = r.cpu;
  DeviceModel& reference = *r.dev;
  for (int with_ref = 0; with_ref < 2; ++with_ref) {
    Gpt2<float> pol_cpu(kSmall, 0), pol_host(kSmall, 0);
    std::copy(ref_cpu.params(), ref_cpu.params() + ref_cpu.num_params(), pol_cpu.params());
    std::copy(ref_cpu.params(), ref_cpu.params() + ref_cpu.num_params(), pol_host.params());
    DeviceModel policy(pol_host, 0);
    loss::DpoOptions d;
    d.beta = 0.5;
    const OptimConfig o = adam(1e-3, 10);
    for (int s = 0; s < 10; ++s) {
      // Chosen: the learnable pattern; rejected: the same prompts with shuffled targets (4 pairs, T = 16).
      HostBatch h = make_batch(1100 + s, 8, 16, kSmall.vocab_size, 3);
      for (int64_t i = 4 * 16; i < 8 * 16; ++i) h.targets[i] = (h.targets[i] * 7 + 3) % static_cast<int32_t>(kSmall.vocab_size);
      for (int64_t i = 0; i < 8 * 16; ++i) h.weight[i] = (i % 16) >= 8 && h.mask[i] ? 1.f : 0.f;  // the response half
      Batch b = h.view(8, 16);
      loss::DpoStepStats a = loss::dpo_step(pol_cpu, with_ref ? &ref_cpu : nullptr, nullptr, b, d, o);
      loss::DpoStepStats g = policy.dpo_step(with_ref ? &reference : nullptr, nullptr, b, d, o);
      const std::string at = std::string(with_ref ? "with" : "without") + " a reference, step " + std::to_string(s + 1);
      CHECK_CLOSE(g.metrics.loss, a.metrics.loss, 0.01, 0.02, "DPO loss " + at);
      CHECK_CLOSE(g.metrics.margin, a.metrics.margin, 0.02, 0.05, "reward margin " + at);
      CHECK_CLOSE(g.step.grad_norm, a.step.grad_norm, 0.0, 0.05, "gradient norm " + at);
    }
  }
}

// ---- benches ----

// GPT-2 124M (random weights), B x T = 8 x 1024. FLOPs per token: 6 N for the matrices plus causal
// attention's 6 L T C (forward 2 L T C with T/2 keys on average, backward twice that). MFU against the
// dense bf16 peak of an H100 / H200 SXM, 989.4 TFLOP/s (datasheet).
MINIELM_GPU_BENCH(bench_train_gpt2_124m) {
  const Config c{50257, 1024, 12, 12, 768, false};
  Gpt2<float> host(c, 1);
  DeviceModel dev(host, 0);
  const int64_t B = 8, T = 1024;
  HostBatch h = make_batch(7, B, T, c.vocab_size, 0);
  std::vector<Batch> micro{h.view(B, T)};
  OptimConfig o;
  o.lr = 1e-4;
  for (int i = 0; i < 2; ++i) dev.train_step(micro, o);
  const int steps = 10;
  const double t0 = now_s();
  for (int i = 0; i < steps; ++i) dev.train_step(micro, o);
  const double s = now_s() - t0;
  const double tps = steps * B * T / s;
  const double flops = 6.0 * host.num_params() + 6.0 * c.n_layer * T * c.n_embd;
  bench_report("train.gpt2_124m", "tokens_per_s", tps, "tok/s");
  bench_report("train.gpt2_124m", "mfu", tps * flops / 989.4e12, "fraction");
}

// The `student` preset (random weights): greedy decoding of 32 tokens at batch 1 and 64, and 10 beam rewrites
// of one 6-token query (16 new tokens), p50 / p95 over repeated calls.
MINIELM_GPU_BENCH(bench_decode_student) {
  const Config c{8192, 64, 4, 4, 256, false};
  Gpt2<float> host(c, 1);
  DeviceModel dev(host, 0);
  for (int batch : {1, 64}) {
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < batch; ++i) prompts.push_back({11 + i % 50, 200, 300 + i % 7, 400, 500, 600});
    decode::GenerateOptions g;
    g.max_new_tokens = 32;
    dev.generate(prompts, g);
    int64_t tokens = 0;
    const double t0 = now_s();
    int calls = 0;
    while (now_s() - t0 < 2.0 || calls < 5) {
      auto r = dev.generate(prompts, g);
      for (auto& x : r) tokens += static_cast<int64_t>(x[0].tokens.size());
      ++calls;
    }
    bench_report("decode.student.batch" + std::to_string(batch), "tokens_per_s", tokens / (now_s() - t0), "tok/s");
  }
  decode::GenerateOptions beam;
  beam.strategy = decode::Strategy::Beam;
  beam.num_beams = 10;
  beam.num_return_sequences = 10;
  beam.max_new_tokens = 16;
  const std::vector<std::vector<int32_t>> q{{14, 200, 303, 400, 500, 600}};
  for (int i = 0; i < 5; ++i) dev.generate(q, beam);
  std::vector<double> ms;
  const double t0 = now_s();
  while (now_s() - t0 < 2.0 || ms.size() < 20) {
    const double a = now_s();
    dev.generate(q, beam);
    ms.push_back(1e3 * (now_s() - a));
  }
  std::sort(ms.begin(), ms.end());
  bench_report("rewrite10.student.beam", "p50_ms", ms[ms.size() / 2], "ms");
  bench_report("rewrite10.student.beam", "p95_ms", ms[static_cast<size_t>(ms.size() * 0.95)], "ms");
}
