#!/usr/bin/env bash
# Builds and runs the native GEMM/peak test without node-gyp. Extra arguments go to the test binary
# (--no-bench, --bench-only, --quick). MINIELM_GEMM_ISA=avx2|generic forces a fallback kernel. CXXFLAGS_EXTRA adds compiler flags (e.g. tuning -D macros).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${root}/build/native-test"
mkdir -p "${out}"
arch_flags=""
if [ "$(uname -m)" = "x86_64" ]; then arch_flags="-mavx2 -mfma"; fi
# shellcheck disable=SC2086
g++ -O3 -std=c++17 ${arch_flags} -pthread -Wall -Wextra ${CXXFLAGS_EXTRA:-} \
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
    MINIELM_GEMM_ISA="${isa}" "${out}/gemm_test" --no-bench --quick
  done
  echo "[native ISA]"
fi
exec "${out}/gemm_test" "$@"
