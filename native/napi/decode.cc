// N-API bindings for batched decoding with a KV cache (greedy, sampling, beam search).
#include "common.h"

namespace minielm_napi {

void InitDecode(Napi::Env env, Napi::Object exports) {
  (void)env;
  (void)exports;
}

}  // namespace minielm_napi
