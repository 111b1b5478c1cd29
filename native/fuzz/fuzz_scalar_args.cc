// The scalar argument parsers every entry point uses (parse.h): int_arg, number_field, int_field,
// string_field, checked_mul, seed_from. Invariants: an accepted integer is the input exactly and inside
// [lo, hi]; a clamped field lies in [lo, hi]; checked_mul agrees with 128-bit arithmetic.
#include "fuzz_common.h"

using minielm::args::Value;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  while (p.remaining_bytes() > 0) {
    switch (p.ConsumeIntegralInRange<int>(0, 5)) {
      case 0: {  // int_arg with any bounds lo <= hi
        int64_t lo = p.ConsumeBool() ? p.ConsumeIntegral<int64_t>() : p.ConsumeIntegralInRange<int64_t>(-2, 2);
        const int64_t span = p.ConsumeIntegralInRange<int64_t>(0, 1 << 20);
        int64_t hi = p.ConsumeBool() ? p.ConsumeIntegral<int64_t>() : lo > INT64_MAX - span ? INT64_MAX : lo + span;
        if (hi < lo) std::swap(lo, hi);
        const Value v = p.ConsumeBool() ? Value::of_number(fuzz::edge_double(p)) : fuzz::any_value(p, arena);
        int64_t r = 0;
        if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { r = minielm::args::int_arg(v, "x", lo, hi); })) {
          FUZZ_CHECK(v.kind == Value::Kind::Number, "a non-number was accepted");
          FUZZ_CHECK(r >= lo && r <= hi, std::to_string(r) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
          FUZZ_CHECK(static_cast<double>(r) == v.number, "the integer differs from the input");
        }
        break;
      }
      case 1: {  // number_field
        const Value v = fuzz::any_value(p, arena);
        const double fallback = fuzz::edge_double(p);
        double r = 0;
        if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { r = minielm::args::number_field(v, "x", fallback); })) {
          if (v.kind == Value::Kind::Missing) FUZZ_CHECK(std::memcmp(&r, &fallback, sizeof r) == 0, "missing gives the fallback");
          else FUZZ_CHECK(v.kind == Value::Kind::Number && std::isfinite(r) && r == v.number, "a number field is the finite input");
        }
        break;
      }
      case 2: {  // int_field with any bounds
        int64_t lo = p.ConsumeBool() ? p.ConsumeIntegral<int64_t>() : -(int64_t{1} << 53);
        int64_t hi = p.ConsumeBool() ? p.ConsumeIntegral<int64_t>() : int64_t{1} << 53;
        if (hi < lo) std::swap(lo, hi);
        const Value v = p.ConsumeBool() ? Value::of_number(fuzz::edge_double(p)) : fuzz::any_value(p, arena);
        const int64_t fallback = p.ConsumeIntegralInRange<int64_t>(-1, 16);
        int64_t r = 0;
        if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { r = minielm::args::int_field(v, "x", fallback, lo, hi); })) {
          FUZZ_CHECK(r >= lo && r <= hi, std::to_string(r) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
          if (v.kind == Value::Kind::Number && v.number > static_cast<double>(lo) && v.number < static_cast<double>(hi))
            FUZZ_CHECK(static_cast<double>(r) == std::trunc(v.number) || r == lo || r == hi, "an in-range value is truncated");
        }
        break;
      }
      case 3: {  // string_field
        const Value v = fuzz::any_value(p, arena);
        std::string r;
        if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { r = minielm::args::string_field(v, "x", "fallback"); }))
          FUZZ_CHECK(v.kind == Value::Kind::Missing ? r == "fallback" : v.kind == Value::Kind::String && r == v.string, "string field");
        break;
      }
      case 4: {  // checked_mul against 128-bit arithmetic
        const int64_t a = p.ConsumeIntegral<int64_t>(), b = p.ConsumeIntegral<int64_t>();
        int64_t out = 0;
        const bool ok = minielm::args::checked_mul(a, b, &out);
        const __int128 exact = static_cast<__int128>(a) * static_cast<__int128>(b);
        const bool fits = a >= 0 && b >= 0 && exact <= static_cast<__int128>(std::numeric_limits<int64_t>::max());
        FUZZ_CHECK(ok == fits, "checked_mul(" + std::to_string(a) + ", " + std::to_string(b) + ")");
        if (ok) FUZZ_CHECK(static_cast<__int128>(out) == exact, "checked_mul product");
        break;
      }
      default: {  // seed_from: defined for every double, exact for whole numbers in [0, 2^64)
        const double d = fuzz::edge_double(p);
        const uint64_t s = minielm::args::seed_from(d);
        if (std::isfinite(d) && d >= 0 && d < 18446744073709551616.0) FUZZ_CHECK(static_cast<double>(s) == std::trunc(d), "seed");
        break;
      }
    }
  }
  return 0;
}
