// The CUDA backend as the rest of the engine sees it: plain C++ (no CUDA header), so the N-API layer compiles
// with or without it. With nvcc (the CMake build) native/cuda/*.cu implement it; without (the node-gyp build,
// npm install) native/cuda/none.cc does, and every entry says MINIELM_NO_DEVICE.
//
// A DeviceModel mirrors a host Gpt2<float> on one GPU: fp32 master weights, AdamW moments and gradients, a
// bf16 working copy of the weights for the matrix units, bf16 activations. The host model stays the
// source of truth for everything the rest of minielm reads (tensor names, checkpoints, tensors read and
// written from JS): the binding calls download() before the host model is read and upload() after it is
// written, so checkpoints are identical in format whichever device trained them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../decode/decoder.h"
#include "../loss/align.h"
#include "../model/gpt2.h"

namespace minielm {
namespace cuda {

// True when this build contains the CUDA backend.
bool built();
// Number of usable CUDA devices; 0 with the reason in *why (no CUDA in this build, no driver, no GPU).
int device_count(std::string* why);
// "NVIDIA H200 (sm_90, 139.8 GiB)" for device `index`.
std::string device_name(int index);

// Throws Error(MINIELM_NO_DEVICE) naming the reason unless device_count() > 0.
void require_device();

class DeviceModel {
 public:
  // Allocates the device copy of `host` on GPU `device` and uploads its parameters, AdamW moments and step.
  // `host` must outlive this object. Throws MINIELM_NO_DEVICE or MINIELM_OUT_OF_MEMORY (device memory).
  DeviceModel(Gpt2<float>& host, int device);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  int device() const;
  // Host -> device: parameters (master and bf16 copy), AdamW moments, step. After the host was written.
  void upload();
  // Device -> host: parameters, AdamW moments, step (gradients are not kept between steps).
  void download();

  // Forward pass; logits [B, T, V] as fp32 to host memory (host_logits), or none when null.
  void forward(const Batch& batch, float* host_logits);
  // Forward pass and per-token cross-entropy of the batch (losses [B*T] to host when non-null, and the logits
  // like forward() when host_logits is non-null); returns the weighted loss sum.
  double cross_entropy(const Batch& batch, float* host_losses, float* host_logits = nullptr);
  // One training step over micro-batches, the same contract as Gpt2<float>::train_step.
  StepStats train_step(const std::vector<Batch>& micro, const OptimConfig& opt);

  // One token-level distillation step (loss::distill_step's contract) from `teacher`, a device model on the same
  // GPU; the teacher's parameters do not change.
  loss::DistillStepStats distill_step(DeviceModel& teacher, const Batch& batch, const loss::DistillOptions& o,
                                      const OptimConfig& opt);

  // One DPO step (loss::dpo_step's contract): the reference's log-probs from `reference` (a device model on the
  // same GPU), else from ref_logps [2B], else none (reference-free).
  loss::DpoStepStats dpo_step(DeviceModel* reference, const double* ref_logps, const Batch& pairs, const loss::DpoOptions& o,
                              const OptimConfig& opt);

  // Batched generation: the search of native/decode/ on the host, the KV cache and every forward step on the
  // device. Same options and results as decode::generate (bf16_weights is implied: the device always runs
  // the bf16 copy).
  std::vector<std::vector<decode::Generated>> generate(const std::vector<std::vector<int32_t>>& prompts,
                                                       const decode::GenerateOptions& options);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace minielm
