{
  "targets": [
    {
      "target_name": "minielm",
      "sources": [
        "native/core/cpu.cc",
        "native/core/threads.cc",
        "native/core/gemm.cc",
        "native/core/gemm_kernels_avx2.cc",
        "native/core/gemm_kernels_avx512.cc",
        "native/core/peak.cc",
        "native/core/vmath.cc",
        "native/core/vmath_avx2.cc",
        "native/model/gpt2.cc",
        "native/model/selftest.cc",
        "native/decode/decoder.cc",
        "native/decode/kernels.cc",
        "native/decode/amx.cc",
        "native/decode/constraint.cc",
        "native/napi/addon.cc",
        "native/napi/decode.cc",
        "native/napi/align.cc",
        "native/napi/io.cc",
        "native/loss/align.cc",
        "native/loss/distill_avx2.cc",
        "native/loss/selftest_align.cc",
        "native/cuda/none.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fno-math-errno", "-fopenmp-simd"],
      "libraries": ["-ldl", "-lpthread"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-O3"]
          }
        }]
      ]
    }
  ]
}
