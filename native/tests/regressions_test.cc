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
  integer_bounds();
  std::printf("%s: %d failures\n", g_failures ? "FAILED" : "regressions passed", g_failures);
  return g_failures ? 1 : 0;
}
