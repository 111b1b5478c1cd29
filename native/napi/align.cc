// N-API bindings for the distillation (reverse KL / forward KL / JSD) and preference (sequence log-prob, DPO) training steps.
#include "common.h"

namespace minielm_napi {

void InitAlign(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace minielm_napi
