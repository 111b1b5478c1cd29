// Shared pieces of the libFuzzer targets: structured values decoded from the fuzzer's bytes (numbers that
// sit on the edges the parsers care about, strings, typed arrays backed by real memory, JS "objects" as
// maps of properties), and the checks every target makes: a call either returns or throws minielm::Error
// with one of the codes it is allowed to, and what it returns satisfies the invariants the target states.
// Built by scripts/fuzz.js (clang -fsanitize=fuzzer,address,undefined); never part of the addon.
#pragma once
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../napi/parse.h"

namespace fuzz {

using minielm::args::ArrayType;
using minielm::args::Value;

// A failed invariant: print it and abort, so libFuzzer records the input as a crash.
[[noreturn]] inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "\nFUZZ INVARIANT FAILED at %s:%d: %s\n", file, line, what.c_str());
  std::abort();
}
#define FUZZ_CHECK(cond, msg)                                              \
  do {                                                                     \
    if (!(cond)) ::fuzz::fail(__FILE__, __LINE__, std::string(#cond) + ": " + (msg)); \
  } while (0)

// Runs f(); a minielm::Error whose code is one of `codes` (and whose message is not empty) is an accepted
// refusal, returned as false; any other exception aborts. True when f() returned normally.
template <typename F>
bool accepts(std::initializer_list<const char*> codes, F&& f) {
  try {
    f();
    return true;
  } catch (const minielm::Error& e) {
    bool known = false;
    for (const char* c : codes) known = known || e.code() == c;
    if (!known) fail(__FILE__, __LINE__, "unexpected error code " + e.code() + ": " + e.what());
    if (std::strlen(e.what()) == 0) fail(__FILE__, __LINE__, "an error without a message (code " + e.code() + ")");
    return false;
  } catch (const std::bad_alloc&) {
    fail(__FILE__, __LINE__, "std::bad_alloc escaped (a size was not checked before allocating)");
  } catch (const std::exception& e) {
    fail(__FILE__, __LINE__, std::string("unexpected exception: ") + e.what());
  }
}

// True one time in n. Written so that an input that has run out of bytes (FuzzedDataProvider then returns
// the low end of every range) makes the rare choice never, not always: `ConsumeIntegralInRange(0, n-1) == 0`
// turned every string of a drained input into a 50 KB one.
inline bool one_in(FuzzedDataProvider& p, int n) { return p.ConsumeIntegralInRange<int>(1, n) == n; }

// Doubles on the edges of the checks: signs, integers around 2^31 / 2^53 / 2^63 / 2^64, fractions,
// non-finite values, subnormals.
inline double edge_double(FuzzedDataProvider& p) {
  static const double kEdges[] = {0.0,
                                  -0.0,
                                  1.0,
                                  -1.0,
                                  0.5,
                                  -0.5,
                                  1.5,
                                  2.0,
                                  3.0,
                                  7.0,
                                  16.0,
                                  255.0,
                                  256.0,
                                  65535.0,
                                  65536.0,
                                  2147483647.0,
                                  2147483648.0,
                                  4294967296.0,
                                  1099511627776.0,      // 2^40
                                  1099511627777.0,
                                  9007199254740992.0,   // 2^53
                                  9007199254740994.0,
                                  -9007199254740992.0,
                                  9223372036854775807.0,  // rounds to 2^63
                                  -9223372036854775808.0,
                                  18446744073709551616.0,  // 2^64
                                  -18446744073709551616.0,
                                  1e300,
                                  -1e300,
                                  std::numeric_limits<double>::max(),
                                  std::numeric_limits<double>::lowest(),
                                  std::numeric_limits<double>::denorm_min(),
                                  std::numeric_limits<double>::epsilon(),
                                  std::numeric_limits<double>::infinity(),
                                  -std::numeric_limits<double>::infinity(),
                                  std::numeric_limits<double>::quiet_NaN()};
  constexpr int kN = static_cast<int>(sizeof(kEdges) / sizeof(kEdges[0]));
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return kEdges[p.ConsumeIntegralInRange<int>(0, kN - 1)];
    case 1:
      return static_cast<double>(p.ConsumeIntegralInRange<int64_t>(-4, 70));
    case 2: {
      const uint64_t bits = p.ConsumeIntegral<uint64_t>();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return d;
    }
    default:
      return kEdges[p.ConsumeIntegralInRange<int>(0, kN - 1)] + static_cast<double>(p.ConsumeIntegralInRange<int>(-2, 2));
  }
}

// Owns the memory behind typed-array Values for one input.
class Arena {
 public:
  // A typed array of `length` elements of type t (element bytes from the fuzzer, zero once it runs dry).
  Value array(FuzzedDataProvider& p, ArrayType t, size_t length) {
    const size_t elem = t == ArrayType::Uint8 || t == ArrayType::Other ? 1 : t == ArrayType::Float64 ? 8 : 4;
    bufs_.emplace_back(length * elem + 1, 0);  // +1: data() is never null, as for a real (attached) array
    std::vector<uint8_t>& b = bufs_.back();
    const std::vector<uint8_t> src = p.ConsumeBytes<uint8_t>(length * elem);
    if (!src.empty()) std::memcpy(b.data(), src.data(), src.size());
    return Value::of_array(t, b.data(), length);
  }
  // A typed array filled from values (for arrays whose contents must be meaningful, e.g. token ids).
  template <typename E>
  Value array_of(const std::vector<E>& v) {
    bufs_.emplace_back(v.size() * sizeof(E) + 1, 0);
    if (!v.empty()) std::memcpy(bufs_.back().data(), v.data(), v.size() * sizeof(E));
    return Value::of_array(minielm::args::array_type_of<E>(), bufs_.back().data(), v.size());
  }

 private:
  std::deque<std::vector<uint8_t>> bufs_;
};

inline ArrayType any_array_type(FuzzedDataProvider& p) {
  return static_cast<ArrayType>(p.ConsumeIntegralInRange<int>(0, 4));
}

// A JS value of any kind the parsers distinguish; typed arrays of length around `length_hint`.
inline Value any_value(FuzzedDataProvider& p, Arena& arena, size_t length_hint = 4) {
  switch (p.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      return Value::missing();
    case 1:
    case 2:
      return Value::of_number(edge_double(p));
    case 3:
      return Value::of_string(p.ConsumeRandomLengthString(24));
    case 4: {
      const int64_t d = p.ConsumeIntegralInRange<int64_t>(-1, 1);
      const size_t len = static_cast<size_t>(std::max<int64_t>(0, static_cast<int64_t>(length_hint) + d));
      return arena.array(p, any_array_type(p), p.ConsumeBool() ? len : p.ConsumeIntegralInRange<size_t>(0, 64));
    }
    default:
      return Value::other(p.ConsumeBool());
  }
}

// A JS object: property name -> value (absent names read as missing).
struct Object {
  std::map<std::string, Value> props;
  Value operator()(const char* key) const {
    auto it = props.find(key);
    return it == props.end() ? Value::missing() : it->second;
  }
};

// One of the strings a parser accepts, or something close to one (wrong case, a suffix), or junk.
inline std::string one_of(FuzzedDataProvider& p, std::initializer_list<const char*> names) {
  std::vector<std::string> v(names.begin(), names.end());
  const int pick = p.ConsumeIntegralInRange<int>(0, static_cast<int>(v.size()) + 1);
  if (pick < static_cast<int>(v.size())) return v[static_cast<size_t>(pick)];
  if (pick == static_cast<int>(v.size())) return v[0] + "x";
  return p.ConsumeRandomLengthString(12);
}

// A number field that is usually a plain small value, sometimes an edge, sometimes not a number at all.
inline Value number_or_other(FuzzedDataProvider& p, Arena& arena, double typical_lo, double typical_hi) {
  switch (p.ConsumeIntegralInRange<int>(0, 7)) {
    case 0:
      return Value::missing();
    case 1:
      return any_value(p, arena);
    case 2:
    case 3:
      return Value::of_number(edge_double(p));
    default: {
      const double u = static_cast<double>(p.ConsumeIntegralInRange<uint32_t>(0, 1u << 20)) / static_cast<double>(1u << 20);
      double d = typical_lo + u * (typical_hi - typical_lo);
      if (p.ConsumeBool()) d = std::round(d);
      return Value::of_number(d);
    }
  }
}

}  // namespace fuzz
