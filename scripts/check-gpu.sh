#!/usr/bin/env bash
# The GPU check without Node.js (a GPU machine with the CUDA toolkit, cmake and a C++ compiler, but no Node):
# builds minielm_cuda_tests alone (CMake, MINIELM_TESTS_ONLY=ON) into build-gpu/, runs every CUDA test (each op
# and the whole device model against the CPU engine) and the GPU benches (GEMM, attention and loss kernels;
# GPT-2 124M training tokens/s and MFU; decoding tokens/s at batch 1 and 64; 10 rewrites of one query).
# With Node.js, `npm run check:gpu` does this and the JavaScript device tests too.
# Logs go to build-gpu/check.log, and to $OUT/gpu-check.log when $OUT is set. Exit: 0 passed, 1 failed, 77 no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
log=build-gpu/check.log
mkdir -p build-gpu
: > "$log"
say() { echo "$@" | tee -a "$log"; }
copy_out() { if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then cp "$log" "${OUT}/gpu-check.log"; fi; }
started=$(date +%s)
gen=""
if command -v ninja >/dev/null 2>&1; then gen="-G Ninja"; fi
say "## configure + build (jobs: $(nproc))"
if ! { cmake -S . -B build-gpu $gen -DCMAKE_BUILD_TYPE=Release -DMINIELM_TESTS_ONLY=ON && cmake --build build-gpu --target minielm_cuda_tests -j "$(nproc)"; } >>"$log" 2>&1; then
  tail -40 "$log"; say "## build FAILED"; copy_out; exit 1
fi
say "## built in $(( $(date +%s) - started )) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || true
say "## CUDA tests"
timeout 300 ./build-gpu/minielm_cuda_tests 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
if [ "$status" = 77 ]; then say "## no GPU: SKIPPED"; copy_out; exit 77; fi
say "## GPU benches"
timeout 240 ./build-gpu/minielm_cuda_tests --bench 2>&1 | tee -a "$log"
bench=${PIPESTATUS[0]}
say "## check:gpu (shell) done in $(( $(date +%s) - started )) s: tests exit ${status}, benches exit ${bench}"
copy_out
[ "$status" = 0 ] && [ "$bench" = 0 ]
