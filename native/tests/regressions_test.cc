// Regression tests for the native bugs the fuzzing work found (native/fuzz/, scripts/fuzz.js), each
// named after what it used to do. Built and run under ASan + UBSan by scripts/native-asan.js.
// Prints "ok <case>" or "FAIL <case>: <why>"; exit status 1 when any case failed.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../core/error.h"
#include "../core/peak.h"
#include "../decode/constraint.h"
#include "../decode/decoder.h"
#include "../model/gpt2.h"
#include "../napi/parse.h"

using namespace minielm;

namespace {

int g_failures = 0;

void check(bool ok, const std::string& name, const std::string& why = "") {
  std::printf("%s %s%s%s\n", ok ? "ok" : "FAIL", name.c_str(), ok || why.empty() ? "" : ": ", ok ? "" : why.c_str());
  if (!ok) ++g_failures;
}

template <typename F>
std::string code_of(F&& f) {
  try {
    f();
    return "none";
  } catch (const Error& e) {
    return e.code();
  }
}

// WordConstraint::walk recursed once per byte of a token; a 100 KB token of spaces (the root takes space
// after space) overflowed the stack of the libuv thread that built the constraint: a segfault of the
// whole process from createWordConstraint. It now walks with an explicit stack.
void deep_token_trie() {
  bool ok = false;
  std::string why;
  // On a thread of its own, as in the addon (300000 frames of the old recursion need far more than 8 MB).
  std::thread t([&] {
    try {
      std::vector<std::string> tokens{std::string(300000, ' '), "ab", std::string(200000, 'a')};
      decode::WordConstraint c(tokens, {0, 0, 0}, {"ab", std::string(200000, 'a')});
      const auto a = c.allowed(decode::WordConstraint::kRoot);
      ok = a == std::vector<int32_t>{0, 1, 2} && c.step(0, 0) == decode::WordConstraint::kRoot;
      why = "allowed(root) has " + std::to_string(a.size()) + " tokens";
    } catch (const std::exception& e) {
      why = e.what();
    }
  });
  t.join();
  check(ok, "a word constraint over a 300 KB token and a 200 KB word builds (no stack overflow)", why);
}

// validate_generate counted the KV cache and the logits only. Each sequence also copies its prompt's table
// of cache rows, so 2 prompts of 60000 tokens x 65536 samples (1 new token, a tiny model) passed with a
// ~16 MB estimate and then allocated 31 GB of tables: the OOM killer, not an error.
void generate_tables_counted() {
  const Config c{16, 65536, 1, 1, 8, false};
  std::vector<std::vector<int32_t>> prompts(2, std::vector<int32_t>(60000, 1));
  decode::GenerateOptions o;
  o.strategy = decode::Strategy::Sample;
  o.num_return_sequences = 65536;
  o.max_new_tokens = 1;
  const double mem = physical_memory_bytes();
  const std::string code = code_of([&] { decode::validate_generate(c, prompts, o); });
  if (mem > 0 && mem < 40e9)
    check(code == "MINIELM_OUT_OF_MEMORY", "a generate call whose sequence tables exceed memory is refused", "got " + code);
  else
    std::printf("ok (not applicable: %.0f GB of memory) sequence tables\n", mem / 1e9);
  // The same call with few samples is fine.
  o.num_return_sequences = 4;
  check(code_of([&] { decode::validate_generate(c, prompts, o); }) == "none", "the same prompts with 4 samples pass");
}

// Sampling at a temperature near 0 (1 / T = inf in float) or past float's range (1 / T = 0) made the token
// weights NaN (0 * inf, -inf * 0), and the inverse-CDF draw then fell through to its last candidate: a token
// the hygiene had masked, e.g. one spelling a word outside the word constraint (found by fuzz_decode).
void extreme_temperatures_keep_the_mask() {
  Gpt2<float> m(Config{80, 10, 2, 2, 8, false}, 8);
  std::vector<std::string> tokens(80);
  const char* pieces[] = {"a", "b", "ab", " a", " b", "ba", " ", "abc", "c", "aa"};
  for (int t = 0; t < 80; ++t) tokens[t] = pieces[t % 10];
  auto wc = std::make_shared<const decode::WordConstraint>(tokens, std::vector<uint8_t>(80, 0), std::vector<std::string>{"ab", "ba"});
  for (double temperature : {1.24359e-304, 1e-40, 1e-3, 1e39, 1e300}) {
    for (int64_t top_k : {0, 10}) {
      decode::GenerateOptions o;
      o.strategy = decode::Strategy::Sample;
      o.num_return_sequences = 8;
      o.max_new_tokens = 7;
      o.eos_token_id = 64;
      o.temperature = temperature;
      o.top_k = top_k;
      o.word_constraint = wc;
      bool ok = true;
      std::string why;
      for (const auto& list : decode::generate(m, {{1, 2}}, o))
        for (const auto& g : list) {
          int32_t st = decode::WordConstraint::kRoot;
          for (int32_t t : g.tokens) {
            const int32_t next = wc->step(st, t);
            if (next < 0 && t != o.eos_token_id) {
              ok = false;
              why = "token " + std::to_string(t) + " from state " + std::to_string(st);
            }
            st = std::max(decode::WordConstraint::kRoot, next);
          }
        }
      char name[96];
      std::snprintf(name, sizeof name, "sampling at temperature %g (top_k %lld) obeys the word constraint", temperature, static_cast<long long>(top_k));
      check(ok, name, why);
    }
  }
  // Near 0 the draw is the best token: the same as greedy.
  decode::GenerateOptions s;
  s.strategy = decode::Strategy::Sample;
  s.temperature = 1e-300;
  s.max_new_tokens = 6;
  decode::GenerateOptions g = s;
  g.strategy = decode::Strategy::Greedy;
  check(decode::generate(m, {{3, 4}}, s)[0][0].tokens == decode::generate(m, {{3, 4}}, g)[0][0].tokens,
        "sampling at temperature 1e-300 is greedy decoding");
}

// int_arg / int_field compared their bounds as doubles only, so a bound past 2^53 (rounded) or 2^63
// (outside int64 when converted back) let a value through that is outside [lo, hi], or converted a double
// past int64's range (undefined behaviour). No caller used such bounds; the parsers are now exact for any.
void integer_bounds() {
  using args::Value;
  const int64_t big = (int64_t{1} << 53) + 1;
  check(code_of([&] { args::int_arg(Value::of_number(9007199254740992.0), "x", big, big + 10); }) == "MINIELM_INVALID_ARGUMENT",
        "int_arg: 2^53 is below a lower bound of 2^53 + 1");
  check(code_of([&] { args::int_arg(Value::of_number(9223372036854775808.0), "x", 0, INT64_MAX); }) == "MINIELM_INVALID_ARGUMENT",
        "int_arg: 2^63 is refused with an upper bound of INT64_MAX");
  check(args::int_field(Value::of_number(1e300), "x", 0, 0, INT64_MAX) == INT64_MAX, "int_field: 1e300 clamps to INT64_MAX");
  check(args::int_field(Value::of_number(-1e300), "x", 0, INT64_MIN, 0) == INT64_MIN, "int_field: -1e300 clamps to INT64_MIN");
  check(args::int_field(Value::of_number(9007199254740992.0), "x", 0, 0, big - 2) == big - 2, "int_field: clamps to a rounded bound");
  check(args::seed_from(NAN) == 0 && args::seed_from(-1) == UINT64_MAX && args::seed_from(1e30) == 0 && args::seed_from(42.9) == 42,
        "seed_from: NaN, -1, 1e30 and 42.9 convert without undefined behaviour");
}

}  // namespace

int main() {
  deep_token_trie();
  generate_tables_counted();
  extreme_temperatures_keep_the_mask();
  integer_bounds();
  std::printf("%s: %d failures\n", g_failures ? "FAILED" : "regressions passed", g_failures);
  return g_failures ? 1 : 0;
}
