// createWordConstraint: args::constraint_inputs (packed byte strings with fuzzed offsets, one special flag
// per token) and the WordConstraint trie builder (native/decode/constraint.cc), then step / allowed /
// can_end from fuzzed states, as NativeWordConstraint's methods and the decoder call them. Invariants:
// the unpacked strings are the bytes between their offsets; a whitespace-free word list builds; states
// stay in [-1, num_nodes); allowed(s) is sorted, unique, never holds a special or empty token, and is
// exactly the tokens t with step(s, t) >= 0 (for non-special, non-empty t); the root can always end.
#include <algorithm>

#include "../decode/constraint.h"
#include "fuzz_common.h"

namespace {

using minielm::args::ArrayType;
using minielm::args::Value;
using minielm::decode::WordConstraint;

bool is_space(unsigned char b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'; }

// Packs strings as (bytes, offsets), then maybe damages the offsets or the array types.
void pack(FuzzedDataProvider& p, fuzz::Arena& arena, const std::vector<std::string>& strs, Value* bytes, Value* offsets) {
  std::string all;
  std::vector<int32_t> off{0};
  for (const std::string& s : strs) {
    all += s;
    off.push_back(static_cast<int32_t>(all.size()));
  }
  if (fuzz::one_in(p, 8) && !off.empty()) {
    const size_t i = p.ConsumeIntegralInRange<size_t>(0, off.size() - 1);
    off[i] = p.ConsumeBool() ? p.ConsumeIntegral<int32_t>() : off[i] + p.ConsumeIntegralInRange<int32_t>(-2, 2);
  }
  if (fuzz::one_in(p, 32)) off.clear();
  std::vector<uint8_t> b(all.begin(), all.end());
  *bytes = fuzz::one_in(p, 32) ? fuzz::any_value(p, arena) : arena.array_of(b);
  *offsets = fuzz::one_in(p, 32) ? fuzz::any_value(p, arena) : arena.array_of(off);
}

std::string fuzz_bytes(FuzzedDataProvider& p, size_t max_len, bool allow_space) {
  // A small alphabet (so tokens and words share prefixes), spaces, and now and then any byte; rarely long.
  static const char kAlpha[] = "abc ab";
  size_t len = p.ConsumeIntegralInRange<size_t>(0, max_len);
  // Long strings cost a trie node per byte (tens of microseconds each under ASan, and the corpus collects
  // them): now and then 300 bytes; the deep tries of a 100 KB token are the input's `deep` mode instead.
  if (fuzz::one_in(p, 64)) len = p.ConsumeIntegralInRange<size_t>(0, 300);
  std::string s;
  const char fill = kAlpha[p.ConsumeIntegralInRange<int>(0, 5)];
  for (size_t i = 0; i < len; ++i) {
    char ch = i >= 16 ? fill : fuzz::one_in(p, 8) ? static_cast<char>(p.ConsumeIntegral<uint8_t>()) : kAlpha[p.ConsumeIntegralInRange<int>(0, 5)];
    if (!allow_space && is_space(static_cast<unsigned char>(ch)) && !fuzz::one_in(p, 16)) ch = 'a';
    s += ch;
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  std::vector<std::string> tokens(p.ConsumeIntegralInRange<size_t>(0, 24)), words(p.ConsumeIntegralInRange<size_t>(0, 24));
  for (auto& t : tokens) t = fuzz_bytes(p, 6, true);
  for (auto& w : words) w = fuzz_bytes(p, 8, false);
  // One input in 1024: a 20-40 KB token or word, a trie as deep as that (the walk used to recurse per byte
  // and overflowed the stack at ~100 KB; native/tests/regressions_test.cc checks 300 KB). Rare, because the
  // corpus keeps such inputs and each costs tens of milliseconds under ASan.
  if (fuzz::one_in(p, 1024)) {
    std::string deep(p.ConsumeIntegralInRange<size_t>(20000, 40000), p.ConsumeBool() ? ' ' : 'a');
    if (p.ConsumeBool() || words.empty()) tokens.push_back(deep);
    else words.back() = deep;
  }
  if (std::getenv("FUZZ_VERBOSE") != nullptr) {  // triage: the sizes an input decodes to
    size_t bytes = 0;
    for (const auto& t : tokens) bytes += t.size();
    for (const auto& w : words) bytes += w.size();
    std::fprintf(stderr, "tokens=%zu words=%zu bytes=%zu\n", tokens.size(), words.size(), bytes);
  }
  Value tb, to, wb, wo;
  pack(p, arena, tokens, &tb, &to);
  pack(p, arena, words, &wb, &wo);
  std::vector<uint8_t> flags(tokens.size());
  for (auto& f : flags) f = fuzz::one_in(p, 6);
  if (fuzz::one_in(p, 16)) flags.resize(p.ConsumeIntegralInRange<size_t>(0, 30));
  const Value special = fuzz::one_in(p, 32) ? fuzz::any_value(p, arena, tokens.size()) : arena.array_of(flags);

  minielm::args::ConstraintInputs in;
  if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { in = minielm::args::constraint_inputs(tb, to, special, wb, wo); })) return 0;
  // Accepted offsets: each string is its bytes, ascending within the buffer.
  FUZZ_CHECK(to.kind == Value::Kind::TypedArray && to.length >= 1 && in.tokens.size() == to.length - 1, "token count");
  FUZZ_CHECK(in.special.size() == in.tokens.size(), "one flag per token");
  for (size_t i = 0; i < in.tokens.size(); ++i) {
    const int32_t* off = static_cast<const int32_t*>(to.data);
    FUZZ_CHECK(off[i] >= 0 && off[i] <= off[i + 1] && static_cast<size_t>(off[i + 1]) <= tb.length, "token offsets");
    FUZZ_CHECK(in.tokens[i] == std::string(static_cast<const char*>(tb.data) + off[i], static_cast<size_t>(off[i + 1] - off[i])), "token bytes");
  }
  bool spaced = false;
  for (const std::string& w : in.words)
    for (unsigned char ch : w) spaced = spaced || is_space(ch);

  std::unique_ptr<WordConstraint> c;
  const std::vector<std::string> toks = in.tokens;
  const std::vector<uint8_t> sp = in.special;
  const bool built = fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
    c = std::make_unique<WordConstraint>(std::move(in.tokens), std::move(in.special), in.words);
  });
  FUZZ_CHECK(built == !spaced, built ? "a word with whitespace was accepted" : "a whitespace-free word list was refused");
  if (!built) return 0;
  FUZZ_CHECK(c->vocab_size() == static_cast<int64_t>(toks.size()), "vocab_size");
  FUZZ_CHECK(c->num_words() <= static_cast<int64_t>(in.words.size()), "num_words");
  FUZZ_CHECK(c->num_nodes() >= 1 && c->can_end(WordConstraint::kRoot), "the root");
  const int64_t V = c->vocab_size(), N = c->num_nodes();
  // States the JS methods accept (step: [-1, num_nodes], allowed: [0, num_nodes - 1]) plus some beyond.
  for (int k = 0; k < 6 && p.remaining_bytes() > 0; ++k) {
    const int32_t s = k == 0 ? WordConstraint::kRoot : p.ConsumeIntegralInRange<int32_t>(-2, static_cast<int32_t>(std::min<int64_t>(N + 1, 1 << 30)));
    const std::vector<int32_t> a = c->allowed(s);
    FUZZ_CHECK(std::is_sorted(a.begin(), a.end()) && std::adjacent_find(a.begin(), a.end()) == a.end(), "allowed() is sorted and unique");
    if (s < 0 || s >= N) {
      FUZZ_CHECK(a.empty(), "allowed() of an invalid state");
      for (int64_t t = 0; t < std::min<int64_t>(V, 8); ++t) FUZZ_CHECK(c->step(s, static_cast<int32_t>(t)) == -1, "step() from an invalid state");
      continue;
    }
    if (s == WordConstraint::kRoot) FUZZ_CHECK(a == c->root_allowed(), "root_allowed()");
    size_t j = 0;
    for (int64_t t = 0; t < V; ++t) {
      const int32_t next = c->step(s, static_cast<int32_t>(t));
      FUZZ_CHECK(next >= -1 && next < N, "step() result outside the states");
      const bool listed = j < a.size() && a[j] == t;
      if (listed) ++j;
      if (sp[static_cast<size_t>(t)]) {
        FUZZ_CHECK(!listed, "a special token is allowed");
        FUZZ_CHECK(next == (c->can_end(s) ? WordConstraint::kRoot : -1), "a special token's step");
      } else if (toks[static_cast<size_t>(t)].empty()) {
        FUZZ_CHECK(!listed && next == s, "an empty token");
      } else {
        FUZZ_CHECK(listed == (next >= 0), "allowed() and step() disagree on token " + std::to_string(t));
      }
    }
    FUZZ_CHECK(j == a.size(), "allowed() lists a token outside the vocabulary");
    // Out-of-range tokens are refused.
    FUZZ_CHECK(c->step(s, -1) == -1 && c->step(s, static_cast<int32_t>(V)) == -1, "step() of an out-of-range token");
  }
  return 0;
}
