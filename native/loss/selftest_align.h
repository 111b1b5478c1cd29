// Self-checks of the alignment kernels against naive double-precision references and finite differences,
// and a timing probe of the kernels alone. Called through the addon by the tests and the bench.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace minielm {
namespace loss {

// {check name, error}: relative errors of losses and gradients (fused vs naive, analytic vs finite
// differences, float vs double) for every divergence, temperature != 1, masked rows, CE mix, sequence
// log-probs and every DPO loss type with and without a reference.
std::vector<std::pair<std::string, double>> gradcheck_align(uint64_t seed);

struct KernelTiming {
  double best_seconds = 0;  // fastest call
  double bytes = 0;         // logit bytes read + written by one call
  int64_t calls = 0;
};

// Times one kernel on buffers it allocates: "reverse_kl" (fused reverse KL + gradient over rows x V student
// and teacher logits) or "dpo" (sequence log-probs + DPO loss + gradient over rows x V policy logits, as
// sequences of 16 response tokens). Runs for about `seconds`, at least 3 calls.
KernelTiming time_alignment_kernel(const std::string& kind, int64_t rows, int64_t V, double seconds);

}  // namespace loss
}  // namespace minielm
