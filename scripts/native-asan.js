#!/usr/bin/env node
// The native tests under AddressSanitizer + UndefinedBehaviorSanitizer: builds the engine (every
// native/**/*.cc but the N-API layer, see scripts/native-build.js) and the programs of native/tests/ with
// -fsanitize=address,undefined -fno-sanitize-recover=all -O1 into build-asan/, then runs
//   gemm_test --no-bench --quick     with the AVX2, the portable and the CPU's best GEMM kernel
//   engine_selftest [--quick]        gradient checks, training / distillation / DPO / scoring, decoding
//   regressions_test                 the native bugs fuzzing found
// and fails on any sanitizer report or failed check. Compiler: $CXX, else g++, else clang++.
// Usage: npm run test:native:asan [-- --quick] [--jobs N]
// Last line: "asan: N runs clean" or "asan: FAILED: ..."; exit status 0 only when every run was clean.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { compileAll, engineSources, findCompiler, link, root } from './native-build.js';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const jobsArg = argv.indexOf('--jobs');
const jobs = jobsArg >= 0 ? Number(argv[jobsArg + 1]) : 2;
const cxx = process.env.CXX || findCompiler(['g++', 'clang++', 'clang++-14']);
if (!cxx) {
  console.log('asan: FAILED: no C++ compiler (install g++ or set CXX)');
  process.exit(1);
}
const out = join(root, 'build-asan');
const flags = [
  '-std=c++17', '-O1', '-g', '-fno-omit-frame-pointer', '-pthread', '-fopenmp-simd',
  '-fsanitize=address,undefined', '-fsanitize=float-cast-overflow', '-fno-sanitize-recover=all',
  '-Wall', '-Wextra', '-Wno-unknown-pragmas', ...(/clang/.test(cxx) ? ['-Wno-unknown-warning-option'] : []),
];
const programs = ['gemm_test', 'engine_selftest', 'regressions_test'];

const started = Date.now();
console.log(`# asan: building the engine and ${programs.length} native tests with ${cxx} into build-asan/`);
let exes;
try {
  const engine = await compileAll({ compiler: cxx, flags, sources: engineSources(), outDir: out, jobs });
  const mains = await compileAll({ compiler: cxx, flags, sources: programs.map((p) => `native/tests/${p}.cc`), outDir: out, jobs });
  exes = [];
  for (let i = 0; i < programs.length; i++) exes.push(await link({ compiler: cxx, flags, inputs: [mains[i], ...engine], output: join(out, programs[i]) }));
} catch (err) {
  console.log(`asan: FAILED: build: ${err.message}`);
  process.exit(1);
}
console.log(`# asan: built in ${((Date.now() - started) / 1000).toFixed(1)} s`);

// A sanitizer report, wherever the program printed it.
const REPORT = /(ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer)/;

function runOne(name, exe, args, env = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(exe, args, {
      cwd: root,
      env: {
        ...process.env,
        ...env,
        ASAN_OPTIONS: 'abort_on_error=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1',
        UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    child.on('close', (code, signal) => resolve({ name, code, signal, log, seconds: (Date.now() - t0) / 1000 }));
  });
}

const runs = [];
for (const isa of ['avx2', 'generic', '']) {
  const env = isa ? { MINIELM_GEMM_ISA: isa, MINIELM_ISA: isa } : {};
  runs.push(['gemm_test', `gemm_test ${isa ? `(MINIELM_GEMM_ISA=${isa})` : "(the CPU's best kernel)"}`, ['--no-bench', '--quick'], env]);
}
runs.push(['engine_selftest', 'engine_selftest', quick ? ['--quick'] : [], {}]);
runs.push(['engine_selftest', 'engine_selftest (MINIELM_ISA=generic)', ['--quick'], { MINIELM_ISA: 'generic' }]);
runs.push(['regressions_test', 'regressions_test', [], {}]);

let clean = 0;
const failures = [];
for (const [program, name, args, env] of runs) {
  const r = await runOne(name, exes[programs.indexOf(program)], args, env);
  const report = REPORT.exec(r.log);
  // 77: this CPU cannot run the kernel asked for (gemm_test says why); nothing ran, nothing to report.
  const skipped = r.code === 77 && !report;
  const ok = (r.code === 0 || skipped) && !report;
  process.stdout.write(r.log.endsWith('\n') || r.log === '' ? r.log : `${r.log}\n`);
  console.log(`[${name}] ${skipped ? 'SKIP (this CPU cannot run it)' : ok ? 'clean' : `FAILED (exit ${r.code ?? r.signal}${report ? `, ${report[0]}` : ''})`} in ${r.seconds.toFixed(1)} s`);
  if (ok && !skipped) clean++;
  if (!ok) failures.push(name);
}
const total = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) {
  console.log(`asan: FAILED: ${failures.join(', ')} (${total} s)`);
  process.exit(1);
}
console.log(`asan: ${clean} runs clean (${total} s)`);
