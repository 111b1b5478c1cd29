// The engine's own checks behind forward / train / score / trainScore / distillStep / dpoStep /
// sequenceLogProbs, on tiny real models: a fuzzed batch (ids inside and outside the vocabulary, sequences
// longer than the context, NaN / negative / zero loss weights, all-padding rows) goes through args::parse_batch
// and then the model call the N-API worker would make. A call either succeeds or throws a coded error, and
// what succeeded must have been valid: ids inside the vocabulary, seq <= n_ctx, finite non-negative weights
// with a positive total, a real token in every scored row, 2B rows with a response token each for DPO,
// one vocabulary for distillation. The models are restored after every input, so inputs replay exactly.
#include <memory>

#include "../core/threads.h"
#include "../loss/align.h"
#include "../model/gpt2.h"
#include "fuzz_common.h"

namespace {

using minielm::Batch;
using minielm::Config;
using Model = minielm::Gpt2<float>;
using minielm::args::Value;

constexpr int64_t kVocab = 11, kCtx = 6;

struct Models {
  std::unique_ptr<Model> student, teacher, other;
  std::vector<float> snapshot;
  Models() {
    minielm::set_num_threads(1);
    Config c{kVocab, kCtx, 1, 2, 8, true};
    student = std::make_unique<Model>(c, 1);
    Config t = c;
    t.score_head = false;
    teacher = std::make_unique<Model>(t, 2);
    t.vocab_size = kVocab + 1;
    other = std::make_unique<Model>(t, 3);
    snapshot.assign(student->params(), student->params() + 4 * student->num_params());
  }
  void restore() {
    std::copy(snapshot.begin(), snapshot.end(), student->params());
    student->set_step(0);
  }
};

Models& models() {
  static Models m;
  return m;
}

float fuzz_weight(FuzzedDataProvider& p) {
  static const float kW[] = {0.0f, 1.0f, 1.0f, 1.0f, 0.5f, -1.0f, NAN, INFINITY, 1e30f, 2.0f};
  return kW[p.ConsumeIntegralInRange<int>(0, 9)];
}

int32_t fuzz_id(FuzzedDataProvider& p, int64_t V) {
  if (fuzz::one_in(p, 16)) {
    static const int32_t kBad[] = {-1, INT32_MIN, INT32_MAX, static_cast<int32_t>(kVocab), static_cast<int32_t>(kVocab + 1)};
    return kBad[p.ConsumeIntegralInRange<int>(0, 4)];
  }
  return static_cast<int32_t>(p.ConsumeIntegralInRange<int64_t>(0, V - 1));
}

// A batch object as JS would pass it: consistent shapes (parse_batch must accept it), fuzzed contents.
minielm::args::OwnedBatch fuzz_batch(FuzzedDataProvider& p, fuzz::Arena& arena, bool even_rows) {
  int64_t B = p.ConsumeIntegralInRange<int64_t>(1, 4), T = p.ConsumeIntegralInRange<int64_t>(1, kCtx + 1);
  if (even_rows) B = 2 * p.ConsumeIntegralInRange<int64_t>(1, 2) - (fuzz::one_in(p, 8) ? 1 : 0);
  const size_t n = static_cast<size_t>(B * T);
  std::vector<int32_t> tokens(n), targets(n);
  std::vector<float> weight(n);
  std::vector<uint8_t> mask(n);
  for (auto& t : tokens) t = fuzz_id(p, kVocab);
  for (auto& t : targets) t = fuzz_id(p, kVocab);
  for (auto& w : weight) w = p.ConsumeBool() ? 1.0f : fuzz_weight(p);
  for (auto& m : mask) m = fuzz::one_in(p, 4) ? 0 : static_cast<uint8_t>(p.ConsumeIntegralInRange<int>(1, 2));
  fuzz::Object o;
  o.props["batch"] = Value::of_number(static_cast<double>(B));
  o.props["seq"] = Value::of_number(static_cast<double>(T));
  o.props["tokens"] = arena.array_of(tokens);
  if (!fuzz::one_in(p, 5)) o.props["targets"] = arena.array_of(targets);
  if (p.ConsumeBool()) o.props["lossMask"] = arena.array_of(weight);
  if (fuzz::one_in(p, 3)) o.props["attentionMask"] = arena.array_of(mask);
  minielm::args::OwnedBatch b;
  const bool ok = fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { b = minielm::args::parse_batch(o); });
  FUZZ_CHECK(ok, "a well-formed batch object was refused");
  return b;
}

bool ids_ok(const std::vector<int32_t>& ids, int64_t V) {
  for (int32_t t : ids)
    if (t < 0 || t >= V) return false;
  return true;
}

// What a loss over the batch may accept: weights finite and >= 0, and targets inside the vocabulary where
// the weight is not 0 (targets may be missing only where every weight is 0: nothing reads them then).
bool loss_inputs_ok(const minielm::args::OwnedBatch& b, int64_t V, double* total) {
  *total = 0;
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    const float w = b.weight.empty() ? 1.0f : b.weight[i];
    if (!std::isfinite(w) || w < 0) return false;
    if (w != 0 && (b.targets.empty() || b.targets[i] < 0 || b.targets[i] >= V)) return false;
    *total += w;
  }
  return true;
}

minielm::OptimConfig fuzz_optim(FuzzedDataProvider& p, fuzz::Arena& arena) {
  fuzz::Object o;
  if (p.ConsumeBool()) o.props["lr"] = fuzz::number_or_other(p, arena, 0, 0.1);
  if (p.ConsumeBool()) o.props["gradClip"] = fuzz::number_or_other(p, arena, 0, 2);
  if (p.ConsumeBool()) o.props["weightDecay"] = fuzz::number_or_other(p, arena, 0, 0.1);
  minielm::OptimConfig c;
  fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { c = minielm::args::parse_optim(o); });
  return c;
}

constexpr std::initializer_list<const char*> kCodes = {"MINIELM_INVALID_ARGUMENT", "MINIELM_NON_FINITE"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  fuzz::Arena arena;
  Models& m = models();
  m.restore();
  Model& s = *m.student;
  const int op = p.ConsumeIntegralInRange<int>(0, 6);
  const minielm::args::OwnedBatch b = fuzz_batch(p, arena, op == 5);
  const Batch v = b.view();
  const bool shape_ok = b.T <= kCtx && ids_ok(b.tokens, kVocab);
  double total = 0;
  const bool loss_ok = loss_inputs_ok(b, kVocab, &total);
  switch (op) {
    case 0: {  // forward (+ per-token losses when there are targets), as ForwardWorker
      std::vector<float> losses(b.tokens.size());
      if (fuzz::accepts(kCodes, [&] {
            s.forward(v);
            if (v.targets) s.cross_entropy(v, losses.data());
          })) {
        FUZZ_CHECK(shape_ok, "forward accepted ids outside the vocabulary or seq > n_ctx");
        if (v.targets) FUZZ_CHECK(loss_ok, "cross_entropy accepted a bad target or weight");
      }
      break;
    }
    case 1: {  // train: one or two micro-batches
      std::vector<minielm::args::OwnedBatch> micro{b};
      if (p.ConsumeBool()) micro.push_back(fuzz_batch(p, arena, false));
      std::vector<Batch> views;
      bool all_ok = true;
      double sum = 0;
      for (const auto& mb : micro) {
        views.push_back(mb.view());
        double t = 0;
        all_ok = all_ok && mb.T <= kCtx && ids_ok(mb.tokens, kVocab) && !mb.targets.empty() && loss_inputs_ok(mb, kVocab, &t);
        sum += t;
      }
      const minielm::OptimConfig opt = fuzz_optim(p, arena);
      minielm::StepStats st;
      if (fuzz::accepts(kCodes, [&] { st = s.train_step(views, opt); })) {
        FUZZ_CHECK(all_ok && sum > 0, "train_step accepted a bad batch or an empty loss mask");
        FUZZ_CHECK(std::isfinite(st.loss) && st.step == 1, "train_step result");
      } else {
        FUZZ_CHECK(s.step() == 0, "a refused train_step advanced the step");
      }
      break;
    }
    case 2:
    case 3: {  // score / trainScore
      bool rows_real = true;
      for (int64_t r = 0; r < b.B; ++r) {
        bool any = b.mask.empty();
        for (int64_t t = 0; t < b.T && !any; ++t) any = b.mask[static_cast<size_t>(r * b.T + t)] != 0;
        rows_real = rows_real && any;
      }
      if (op == 2) {
        std::vector<float> scores(static_cast<size_t>(b.B));
        if (fuzz::accepts(kCodes, [&] { s.score_forward(v, scores.data()); }))
          FUZZ_CHECK(shape_ok && rows_real, "score_forward accepted a bad batch or a row without a real token");
      } else {
        std::vector<float> labels(static_cast<size_t>(b.B)), weights(static_cast<size_t>(b.B));
        for (auto& l : labels) l = p.ConsumeBool() ? 0.5f : fuzz_weight(p);
        for (auto& w : weights) w = fuzz_weight(p);
        const bool use_w = p.ConsumeBool();
        const minielm::OptimConfig opt = fuzz_optim(p, arena);
        bool labels_ok = true;
        double wsum = 0;
        for (int64_t r = 0; r < b.B; ++r) {
          labels_ok = labels_ok && std::isfinite(labels[r]) && labels[r] >= 0 && labels[r] <= 1;
          const double w = use_w ? weights[r] : 1.0;
          labels_ok = labels_ok && std::isfinite(w) && w >= 0;
          wsum += w;
        }
        if (fuzz::accepts(kCodes, [&] { s.train_score_step({v}, {labels.data()}, {use_w ? weights.data() : nullptr}, opt); }))
          FUZZ_CHECK(shape_ok && rows_real && labels_ok && wsum > 0, "train_score_step accepted a bad batch, label or weight");
      }
      break;
    }
    case 4: {  // distillStep
      fuzz::Object o;
      if (p.ConsumeBool()) o.props["loss"] = Value::of_string(fuzz::one_of(p, {"reverse_kl", "forward_kl", "jsd"}));
      if (p.ConsumeBool()) o.props["beta"] = fuzz::number_or_other(p, arena, 0, 1);
      if (p.ConsumeBool()) o.props["temperature"] = fuzz::number_or_other(p, arena, 0, 3);
      if (p.ConsumeBool()) o.props["ceWeight"] = fuzz::number_or_other(p, arena, 0, 1);
      minielm::loss::DistillOptions d;
      if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] { d = minielm::args::parse_distill(o); })) break;
      const bool same_vocab = !fuzz::one_in(p, 6);
      Model& t = same_vocab ? *m.teacher : *m.other;
      const minielm::OptimConfig opt = fuzz_optim(p, arena);
      // Distillation needs targets only for its CE part; its weights are the mask either way.
      bool w_ok = true;
      double wsum = 0;
      for (size_t i = 0; i < b.tokens.size(); ++i) {
        const float w = b.weight.empty() ? 1.0f : b.weight[i];
        w_ok = w_ok && std::isfinite(w) && w >= 0;
        if (d.ce_weight > 0 && w != 0) w_ok = w_ok && !b.targets.empty() && b.targets[i] >= 0 && b.targets[i] < kVocab;
        wsum += w;
      }
      if (fuzz::accepts(kCodes, [&] { minielm::loss::distill_step(s, t, v, d, opt); })) {
        FUZZ_CHECK(same_vocab, "distillation accepted two vocabularies");
        FUZZ_CHECK(shape_ok && w_ok && wsum > 0, "distill_step accepted a bad batch or weight");
      }
      break;
    }
    case 5: {  // dpoStep: 2B rows, optional reference model or reference log-probs
      fuzz::Object o;
      if (p.ConsumeBool()) o.props["lossType"] = Value::of_string(fuzz::one_of(p, {"sigmoid", "ipo", "hinge"}));
      if (p.ConsumeBool()) o.props["beta"] = fuzz::number_or_other(p, arena, 0, 1);
      if (p.ConsumeBool()) o.props["labelSmoothing"] = fuzz::number_or_other(p, arena, 0, 0.6);
      minielm::loss::DpoOptions d;
      std::vector<double> ref;
      std::vector<double> raw(static_cast<size_t>(b.B));
      for (auto& x : raw) x = p.ConsumeBool() ? -1.0 : fuzz::edge_double(p);
      const Value refv = p.ConsumeBool() ? arena.array_of(raw) : Value::missing();
      if (!fuzz::accepts({"MINIELM_INVALID_ARGUMENT"}, [&] {
            d = minielm::args::parse_dpo(o);
            minielm::args::check_dpo_batch(b);
            ref = minielm::args::parse_ref_logps(refv, b.B);
          }))
        break;
      const int which = p.ConsumeIntegralInRange<int>(0, 2);
      Model* reference = ref.empty() && which == 1 ? m.teacher.get() : ref.empty() && which == 2 ? m.other.get() : nullptr;
      const minielm::OptimConfig opt = fuzz_optim(p, arena);
      bool rows_ok = b.B >= 2 && b.B % 2 == 0;
      for (int64_t r = 0; r < b.B && rows_ok; ++r) {
        double w = 0;
        for (int64_t t = 0; t < b.T; ++t) w += b.weight[static_cast<size_t>(r * b.T + t)];
        rows_ok = w > 0;
      }
      if (fuzz::accepts(kCodes, [&] { minielm::loss::dpo_step(s, reference, ref.empty() ? nullptr : ref.data(), v, d, opt); })) {
        FUZZ_CHECK(reference != m.other.get(), "DPO accepted a reference with another vocabulary");
        FUZZ_CHECK(shape_ok && loss_ok && rows_ok, "dpo_step accepted a bad batch, odd rows or a row without a response token");
      }
      break;
    }
    default: {  // sequenceLogProbs
      std::vector<double> out(static_cast<size_t>(b.B));
      if (fuzz::accepts(kCodes, [&] { minielm::loss::model_sequence_logps(s, v, out.data()); }))
        FUZZ_CHECK(shape_ok && loss_ok, "sequence log-probs accepted a bad batch");
      break;
    }
  }
  return 0;
}
