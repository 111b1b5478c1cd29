#!/usr/bin/env bash
# Builds and runs the native GEMM/peak test without node-gyp. Extra arguments go to the test binary
# (--no-bench, --bench-only, --quick). MINIELM_GEMM_ISA=avx2|generic forces a fallback kernel. CXXFLAGS_EXTRA adds compiler flags (e.g. tuning -D macros).
# CXX picks the compiler (default g++); MINIELM_NATIVE_TEST_OUT the build folder (default build/native-test).
# The binary prints "gemm isa: kernel=... requested=... cpu=..." and fails when the kernel is not the one
# asked for; test/engine-native-gemm.test.ts runs this script (with --no-bench --quick) under npm test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${MINIELM_NATIVE_TEST_OUT:-${root}/build/native-test}"
mkdir -p "${out}"
# Plain x86-64 like the addon: the AVX2 / AVX-512 kernels carry their own target pragmas.
# shellcheck disable=SC2086
"${CXX:-g++}" -O3 -std=c++17 -pthread -Wall -Wextra ${CXXFLAGS_EXTRA:-} \
  "${root}/native/core/cpu.cc" \
  "${root}/native/core/threads.cc" \
  "${root}/native/core/gemm.cc" \
  "${root}/native/core/gemm_kernels_avx512.cc" \
  "${root}/native/core/gemm_kernels_avx2.cc" \
  "${root}/native/core/peak.cc" \
  "${root}/native/tests/gemm_test.cc" \
  -ldl -o "${out}/gemm_test"
# The AVX2 and portable kernels are checked too (correctness only) by forcing them on this CPU.
if [ "${1:-}" != "--bench-only" ]; then
  for isa in avx2 generic; do
    echo "[MINIELM_GEMM_ISA=${isa}]"
    status=0
    MINIELM_GEMM_ISA="${isa}" "${out}/gemm_test" --no-bench --quick || status=$?
    # 77: this CPU cannot run that kernel (the binary said why); anything else non-zero is a failure.
    if [ "${status}" -ne 0 ] && [ "${status}" -ne 77 ]; then exit "${status}"; fi
  done
  echo "[native ISA]"
fi
# The last run keeps the caller's MINIELM_GEMM_ISA (unset: the CPU's best kernel).
exec "${out}/gemm_test" "$@"
