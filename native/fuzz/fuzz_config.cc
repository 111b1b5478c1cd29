// Model configs and optimizer options as createModel / train read them: args::parse_config +
// minielm::validate_config (native/model/gpt2.cc), args::parse_optim + scheduled_lr. Where a config is
// accepted, the arena the Gpt2 constructor would allocate is computed exactly (its tensor list, 16-float
// aligned) and must fit int64 and size_t, and its bytes the memory check validate_config made; a config
// refused for memory must really be too big. Where an optimizer config is accepted, the learning rate
// schedule must stay finite over every step the model can reach.
#include "../core/peak.h"
#include "fuzz_common.h"

namespace {

using minielm::args::Value;

// The Gpt2 constructor's arena (params only), in 128-bit arithmetic so nothing can overflow here.
__int128 arena_params(const minielm::Config& c) {
  const __int128 C = c.n_embd, V = c.vocab_size, P = c.n_ctx, L = c.n_layer;
  auto aligned = [](__int128 n) { return (n + 15) / 16 * 16; };
  __int128 n = aligned(V * C) + aligned(P * C);
  const __int128 layer = aligned(C) * 4 + aligned(C * 3 * C) + aligned(3 * C) + aligned(C * C) + aligned(C) * 2 +
                         aligned(C * 4 * C) + aligned(4 * C) + aligned(4 * C * C);
  n += L * layer + aligned(C) * 2;
  if (c.score_head) n += aligned(C);
  return n;
}

void config_case(FuzzedDataProvider& p, fuzz::Arena& arena) {
  fuzz::Object o;
  static const char* kKeys[] = {"vocab_size", "n_ctx", "n_layer", "n_head", "n_embd"};
  static const double kHi[] = {1 << 23, 1 << 17, 512, 2048, 1 << 17};
  for (int i = 0; i < 5; ++i) o.props[kKeys[i]] = fuzz::number_or_other(p, arena, 1, kHi[i]);
  if (p.ConsumeBool()) o.props["score_head"] = fuzz::any_value(p, arena);
  minielm::Config c;
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { c = minielm::args::parse_config(o); })) return;
  // The fields are clamped to +-2^53 and truncated: never undefined behaviour, whatever the doubles.
  for (int64_t v : {c.vocab_size, c.n_ctx, c.n_layer, c.n_head, c.n_embd})
    FUZZ_CHECK(v >= -(int64_t{1} << 53) && v <= (int64_t{1} << 53), "a config field outside +-2^53");
  bool too_big = false;
  const bool ok = [&] {
    try {
      minielm::validate_config(c);
      return true;
    } catch (const minielm::Error& e) {
      FUZZ_CHECK(e.code() == "MINIELM_INVALID_ARGUMENT" || e.code() == "MINIELM_OUT_OF_MEMORY", e.code());
      too_big = e.code() == "MINIELM_OUT_OF_MEMORY";
      return false;
    }
  }();
  if (!ok && !too_big) return;
  FUZZ_CHECK(c.vocab_size >= 1 && c.n_ctx >= 1 && c.n_layer >= 1 && c.n_head >= 1 && c.n_embd >= 1, "a non-positive size passed");
  FUZZ_CHECK(c.vocab_size <= (1 << 22) && c.n_ctx <= (1 << 16) && c.n_layer <= 256 && c.n_head <= 1024 && c.n_embd <= (1 << 16),
             "a size above its bound passed");
  FUZZ_CHECK(c.n_embd % c.n_head == 0, "n_embd not divisible by n_head passed");
  const __int128 params = arena_params(c);
  const __int128 bytes = params * 4 * static_cast<__int128>(sizeof(float));
  FUZZ_CHECK(params < (static_cast<__int128>(1) << 62), "the arena size overflows int64 arithmetic");
  FUZZ_CHECK(bytes < static_cast<__int128>(std::numeric_limits<size_t>::max()), "the arena bytes overflow size_t");
  const double mem = minielm::physical_memory_bytes();
  // validate_config estimates without the 16-float alignment of each tensor (at most 15 floats each) and
  // counts the score head's C always: allow that slack (16 bytes per parameter: weights, grads, 2 moments).
  const double exact = static_cast<double>(bytes);
  const double slack = 16.0 * (15.0 * (12.0 * static_cast<double>(c.n_layer) + 5.0) + static_cast<double>(c.n_embd)) + 64.0;
  if (ok && mem > 0) FUZZ_CHECK(exact <= 0.75 * mem + slack, "an accepted config needs more than 3/4 of memory");
  if (too_big) FUZZ_CHECK(mem > 0 && exact + slack > 0.75 * mem, "a config that fits was refused for memory");
}

void optim_case(FuzzedDataProvider& p, fuzz::Arena& arena) {
  fuzz::Object o;
  static const char* kNum[] = {"lr", "beta1", "beta2", "eps", "weightDecay", "gradClip", "minLrRatio"};
  for (const char* k : kNum)
    if (p.ConsumeBool()) o.props[k] = fuzz::number_or_other(p, arena, 0, 1);
  if (p.ConsumeBool()) o.props["warmupSteps"] = fuzz::number_or_other(p, arena, 0, 1000);
  if (p.ConsumeBool()) o.props["totalSteps"] = fuzz::number_or_other(p, arena, 0, 100000);
  if (p.ConsumeBool())
    o.props["schedule"] = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"cosine", "linear", "constant"})) : fuzz::any_value(p, arena);
  minielm::OptimConfig c;
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { c = minielm::args::parse_optim(o); })) return;
  for (double v : {c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.grad_clip, c.min_lr_ratio})
    FUZZ_CHECK(std::isfinite(v), "a non-finite optimizer field passed");
  FUZZ_CHECK(c.warmup_steps >= 0 && c.total_steps >= 0, "negative step counts passed");
  FUZZ_CHECK(c.warmup_steps <= (int64_t{1} << 53) && c.total_steps <= (int64_t{1} << 53), "step counts above 2^53");
  // The model's step counter is at most 2^53 (setStep); the schedule is finite wherever lr * min_lr_ratio is.
  for (int i = 0; i < 4; ++i) {
    const int64_t step = i == 0 ? 0 : i == 1 ? int64_t{1} << 53 : p.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 53);
    const double lr = minielm::scheduled_lr(c, step);
    if (std::fabs(c.lr) <= 1e150 && std::fabs(c.min_lr_ratio) <= 1e150)
      FUZZ_CHECK(std::isfinite(lr), "scheduled_lr(" + std::to_string(step) + ") = " + std::to_string(lr));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  if (p.ConsumeBool()) config_case(p, arena);
  else optim_case(p, arena);
  return 0;
}
