// Option objects and size arguments of the alignment steps and the kernel entry points: args::parse_distill
// and parse_dpo (with loss::validate_distill_options / validate_dpo_options), parse_bench_align,
// parse_gemm and parse_bench_gemm. Invariants where accepted: every option inside its documented range,
// every dimension and product inside the bound its allocation relies on (checked in 128 bits), and the
// array lengths equal to the products.
#include "fuzz_common.h"

namespace {

using minielm::args::ArrayType;
using minielm::args::Value;

Value dim(FuzzedDataProvider& p, fuzz::Arena& arena) {
  switch (p.ConsumeIntegralInRange<int>(0, 4)) {
    case 0:
      return fuzz::any_value(p, arena);
    case 1:
      return Value::of_number(fuzz::edge_double(p));
    case 2:
      return Value::of_number(std::ldexp(1.0, p.ConsumeIntegralInRange<int>(0, 40)) + p.ConsumeIntegralInRange<int>(-1, 1));
    default:
      return Value::of_number(p.ConsumeIntegralInRange<int>(0, 12));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  switch (p.ConsumeIntegralInRange<int>(0, 4)) {
    case 0: {
      fuzz::Object o;
      if (p.ConsumeBool()) o.props["loss"] = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"reverse_kl", "forward_kl", "jsd"})) : fuzz::any_value(p, arena);
      if (p.ConsumeBool()) o.props["beta"] = fuzz::number_or_other(p, arena, -0.5, 1.5);
      if (p.ConsumeBool()) o.props["temperature"] = fuzz::number_or_other(p, arena, -1, 4);
      if (p.ConsumeBool()) o.props["ceWeight"] = fuzz::number_or_other(p, arena, -0.5, 1.5);
      minielm::loss::DistillOptions d;
      if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { d = minielm::args::parse_distill(o); })) {
        FUZZ_CHECK(std::isfinite(d.temperature) && d.temperature > 0, "temperature");
        FUZZ_CHECK(d.beta >= 0 && d.beta <= 1 && d.ce_weight >= 0 && d.ce_weight <= 1, "beta / ceWeight");
      }
      break;
    }
    case 1: {
      fuzz::Object o;
      if (p.ConsumeBool()) o.props["lossType"] = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"sigmoid", "ipo", "hinge"})) : fuzz::any_value(p, arena);
      if (p.ConsumeBool()) o.props["beta"] = fuzz::number_or_other(p, arena, -0.5, 2);
      if (p.ConsumeBool()) o.props["labelSmoothing"] = fuzz::number_or_other(p, arena, -0.1, 0.7);
      minielm::loss::DpoOptions d;
      if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { d = minielm::args::parse_dpo(o); }))
        FUZZ_CHECK(std::isfinite(d.beta) && d.beta > 0 && d.label_smoothing >= 0 && d.label_smoothing < 0.5, "DPO options");
      break;
    }
    case 2: {
      const Value kind = p.ConsumeBool() ? Value::of_string(fuzz::one_of(p, {"reverse_kl", "dpo"})) : fuzz::any_value(p, arena);
      const Value rows = dim(p, arena), vocab = dim(p, arena), seconds = fuzz::number_or_other(p, arena, 0, 700);
      minielm::args::BenchAlignArgs a;
      if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { a = minielm::args::parse_bench_align(kind, rows, vocab, seconds); })) {
        FUZZ_CHECK(a.kind == "reverse_kl" || a.kind == "dpo", "kind");
        FUZZ_CHECK(a.rows >= 1 && a.vocab >= 1 && static_cast<__int128>(a.rows) * a.vocab <= (1 << 28), "rows * vocab");
        FUZZ_CHECK(a.seconds >= 0 && a.seconds <= 600, "seconds");
      }
      break;
    }
    case 3: {
      const Value M = dim(p, arena), N = dim(p, arena), K = dim(p, arena);
      // A and B: usually the right lengths for small dims, sometimes off by one or of another type.
      auto len = [&](const Value& x, const Value& y) -> size_t {
        if (x.kind != Value::Kind::Number || y.kind != Value::Kind::Number || !(x.number >= 0 && x.number <= 64 && y.number >= 0 && y.number <= 64))
          return p.ConsumeIntegralInRange<size_t>(0, 16);
        return static_cast<size_t>(x.number) * static_cast<size_t>(y.number) + (fuzz::one_in(p, 8) ? 1 : 0);
      };
      const size_t la = len(M, K), lb = len(K, N);
      const Value A = arena.array(p, fuzz::one_in(p, 8) ? fuzz::any_array_type(p) : ArrayType::Float32, la);
      const Value B = arena.array(p, fuzz::one_in(p, 8) ? fuzz::any_array_type(p) : ArrayType::Float32, lb);
      minielm::args::GemmShape s;
      if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { s = minielm::args::parse_gemm(M, N, K, A, B); })) {
        FUZZ_CHECK(s.M >= 1 && s.N >= 1 && s.K >= 1 && s.M <= (int64_t{1} << 31) && s.N <= (int64_t{1} << 31) && s.K <= (int64_t{1} << 31), "dims");
        FUZZ_CHECK(static_cast<__int128>(s.M) * s.N <= (static_cast<__int128>(1) << 32), "M * N");
        FUZZ_CHECK(static_cast<__int128>(A.length) == static_cast<__int128>(s.M) * s.K && static_cast<__int128>(B.length) == static_cast<__int128>(s.K) * s.N,
                   "the arrays hold M*K and K*N floats");
        FUZZ_CHECK(A.array_type == ArrayType::Float32 && B.array_type == ArrayType::Float32, "array types");
      }
      break;
    }
    default: {
      const Value M = dim(p, arena), N = dim(p, arena), K = dim(p, arena), seconds = fuzz::number_or_other(p, arena, 0, 700);
      minielm::args::GemmShape s;
      if (fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { s = minielm::args::parse_bench_gemm(M, N, K, seconds); })) {
        const __int128 lim = static_cast<__int128>(1) << 28;
        FUZZ_CHECK(s.M >= 1 && s.N >= 1 && s.K >= 1, "dims");
        FUZZ_CHECK(static_cast<__int128>(s.M) * s.K <= lim && static_cast<__int128>(s.K) * s.N <= lim && static_cast<__int128>(s.M) * s.N <= lim,
                   "each matrix at most 2^28 floats");
      }
      break;
    }
  }
  return 0;
}
