// The CUDA backend's entry points in a build without CUDA (node-gyp, npm install): every one says
// MINIELM_NO_DEVICE and how to get a build with the backend. The CMake build with nvcc compiles
// native/cuda/*.cu instead of this file.
#include "../core/error.h"
#include "device.h"

namespace minielm {
namespace cuda {

namespace {
const char* kWhy =
    "this build of minielm has no CUDA backend (it was built by node-gyp, as npm install does); "
    "build it with `npm run build:cmake` on a machine with nvcc (CUDA 12 or later) and an NVIDIA driver";
}

bool built() { return false; }

int device_count(std::string* why) {
  if (why) *why = kWhy;
  return 0;
}

std::string device_name(int) { return ""; }

[[noreturn]] void no_device() { throw Error("MINIELM_NO_DEVICE", kWhy); }
void require_device() { no_device(); }

struct DeviceModel::Impl {};

DeviceModel::DeviceModel(Gpt2<float>&, int) { no_device(); }
DeviceModel::~DeviceModel() = default;
int DeviceModel::device() const { return -1; }
void DeviceModel::upload() { no_device(); }
void DeviceModel::download() { no_device(); }
void DeviceModel::forward(const Batch&, float*) { no_device(); }
double DeviceModel::cross_entropy(const Batch&, float*, float*) { no_device(); }
StepStats DeviceModel::train_step(const std::vector<Batch>&, const OptimConfig&) { no_device(); }
loss::DpoStepStats DeviceModel::dpo_step(DeviceModel*, const double*, const Batch&, const loss::DpoOptions&, const OptimConfig&) {
  no_device();
}
loss::DistillStepStats DeviceModel::distill_step(DeviceModel&, const Batch&, const loss::DistillOptions&, const OptimConfig&) {
  no_device();
}
std::vector<std::vector<decode::Generated>> DeviceModel::generate(const std::vector<std::vector<int32_t>>&,
                                                                  const decode::GenerateOptions&) {
  no_device();
}

}  // namespace cuda
}  // namespace minielm
