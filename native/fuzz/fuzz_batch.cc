// Batch layouts as forward / train / score / trainScore / distillStep / dpoStep / sequenceLogProbs read them:
// args::parse_batch, parse_score_step, check_dpo_batch, parse_ref_logps. Sizes come from the edges of
// the checks (batch * seq overflowing int64, 2^31, 2^40, fractions, NaN) with arrays whose lengths are
// right, off by one or of the wrong type. Invariants where a batch is accepted: B, T >= 1 and below 2^31,
// n = B * T exactly (checked in 128 bits) and at most 2^40, every array copied holds exactly n elements
// (labels and refLogps one per sequence) and equals its source.
#include "fuzz_common.h"

namespace {

using minielm::args::ArrayType;
using minielm::args::Value;

template <typename E>
void check_copy(const std::vector<E>& out, const Value& src, int64_t n, const char* what) {
  if (out.empty()) return;
  FUZZ_CHECK(static_cast<int64_t>(out.size()) == n, std::string(what) + " has the wrong length");
  FUZZ_CHECK(src.kind == Value::Kind::TypedArray && src.length == out.size(), std::string(what) + " source");
  FUZZ_CHECK(std::memcmp(out.data(), src.data, out.size() * sizeof(E)) == 0, std::string(what) + " differs from its source");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  fuzz::Object o;
  // Mostly small real shapes (so the arrays can exist), sometimes the edges.
  const bool edges = fuzz::one_in(p, 4);
  o.props["batch"] = edges ? fuzz::any_value(p, arena) : Value::of_number(p.ConsumeIntegralInRange<int>(0, 9));
  o.props["seq"] = edges ? fuzz::any_value(p, arena) : Value::of_number(p.ConsumeIntegralInRange<int>(0, 9));
  if (edges && p.ConsumeBool()) o.props["batch"] = Value::of_number(fuzz::edge_double(p));
  if (edges && p.ConsumeBool()) o.props["seq"] = Value::of_number(fuzz::edge_double(p));
  const Value Bv = o("batch"), Tv = o("seq");
  // The length the arrays should have when B and T are small whole numbers.
  size_t want = 0;
  if (Bv.kind == Value::Kind::Number && Tv.kind == Value::Kind::Number && Bv.number >= 0 && Bv.number <= 64 && Tv.number >= 0 &&
      Tv.number <= 64)
    want = static_cast<size_t>(Bv.number) * static_cast<size_t>(Tv.number);
  const size_t sequences = Bv.kind == Value::Kind::Number && Bv.number >= 0 && Bv.number <= 64 ? static_cast<size_t>(Bv.number) : 1;
  struct Field {
    const char* key;
    ArrayType type;
    bool per_sequence;
  };
  static const Field kFields[] = {{"tokens", ArrayType::Int32, false},       {"targets", ArrayType::Int32, false},
                                  {"lossMask", ArrayType::Float32, false},   {"attentionMask", ArrayType::Uint8, false},
                                  {"labels", ArrayType::Float32, true},      {"weights", ArrayType::Float32, true}};
  for (const Field& f : kFields) {
    switch (p.ConsumeIntegralInRange<int>(0, 5)) {
      case 0:
        break;  // absent
      case 1:
        o.props[f.key] = fuzz::any_value(p, arena, f.per_sequence ? sequences : want);
        break;
      case 2: {
        const int64_t len = static_cast<int64_t>(f.per_sequence ? sequences : want) + p.ConsumeIntegralInRange<int>(-1, 1);
        o.props[f.key] = arena.array(p, f.type, static_cast<size_t>(std::max<int64_t>(0, len)));
        break;
      }
      default:
        o.props[f.key] = arena.array(p, f.type, f.per_sequence ? sequences : want);
    }
  }
  const Value ref = p.ConsumeBool() ? arena.array(p, p.ConsumeBool() ? ArrayType::Float64 : fuzz::any_array_type(p),
                                                  sequences + static_cast<size_t>(p.ConsumeIntegralInRange<int>(0, 1)))
                                    : fuzz::any_value(p, arena, sequences);

  minielm::args::ScoreStep s;
  const bool score = p.ConsumeBool();
  bool ok = fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
    if (score) s = minielm::args::parse_score_step(o);
    else s.batch = minielm::args::parse_batch(o);
  });
  if (!ok) return 0;
  const minielm::args::OwnedBatch& b = s.batch;
  FUZZ_CHECK(b.B >= 1 && b.T >= 1 && b.B < (int64_t{1} << 31) && b.T < (int64_t{1} << 31), "batch dims");
  FUZZ_CHECK(static_cast<double>(b.B) == Bv.number && static_cast<double>(b.T) == Tv.number, "dims differ from the input");
  const __int128 n128 = static_cast<__int128>(b.B) * b.T;
  FUZZ_CHECK(n128 <= (static_cast<__int128>(1) << 40), "batch * seq above 2^40 passed");
  const int64_t n = static_cast<int64_t>(n128);
  FUZZ_CHECK(static_cast<int64_t>(b.tokens.size()) == n, "tokens are required and hold batch * seq ids");
  check_copy(b.tokens, o("tokens"), n, "tokens");
  check_copy(b.targets, o("targets"), n, "targets");
  check_copy(b.weight, o("lossMask"), n, "lossMask");
  check_copy(b.mask, o("attentionMask"), n, "attentionMask");
  if (score) {
    FUZZ_CHECK(static_cast<int64_t>(s.labels.size()) == b.B, "labels are required, one per sequence");
    check_copy(s.labels, o("labels"), b.B, "labels");
    check_copy(s.weights, o("weights"), b.B, "weights");
  }
  // The view the kernels get points at the copies.
  const minielm::Batch v = b.view();
  FUZZ_CHECK(v.tokens == b.tokens.data() && v.B == b.B && v.T == b.T, "view");
  FUZZ_CHECK((v.targets != nullptr) == !b.targets.empty() && (v.loss_weight != nullptr) == !b.weight.empty() &&
                 (v.attn_mask != nullptr) == !b.mask.empty(),
             "the view's optional arrays");
  // dpoStep's own checks on an accepted batch.
  std::vector<double> r;
  if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
        minielm::args::check_dpo_batch(b);
        r = minielm::args::parse_ref_logps(ref, b.B);
      })) {
    FUZZ_CHECK(!b.targets.empty() && !b.weight.empty(), "a DPO batch without targets or lossMask passed");
    if (ref.kind == Value::Kind::Missing) FUZZ_CHECK(r.empty(), "missing refLogps");
    else {
      FUZZ_CHECK(static_cast<int64_t>(r.size()) == b.B, "refLogps length");
      for (double x : r) FUZZ_CHECK(std::isfinite(x), "a non-finite refLogps passed");
    }
  }
  return 0;
}
