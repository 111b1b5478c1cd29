// Gradient checks in double precision against central finite differences: each op on its own and a whole
// tiny model. Called by the test suite through the addon; no Node in here.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gpt2.h"

namespace minielm {

// {op name, max relative error between analytic and numeric gradients over all checked inputs}.
std::vector<std::pair<std::string, double>> gradcheck_ops(uint64_t seed);

// {tensor name, max relative error} for `samples` parameters per tensor of a double-precision model
// with a padding mask and a loss mask in the batch.
std::vector<std::pair<std::string, double>> gradcheck_model(const Config& config, uint64_t seed, int samples);

// Same for a model with a score head trained with binary cross-entropy on soft labels.
std::vector<std::pair<std::string, double>> gradcheck_score(const Config& config, uint64_t seed, int samples);

}  // namespace minielm
