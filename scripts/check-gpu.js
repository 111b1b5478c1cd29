#!/usr/bin/env node
// `npm run check:gpu`: everything a short run on a borrowed GPU machine should verify, in one command
// (about 8 minutes at most on an H200 with 16 cores):
//   1. the CMake build with the CUDA backend (build-cmake/: the addon and minielm_cuda_tests);
//   2. the CUDA kernel tests (every op against the CPU engine on the same inputs);
//   3. the JavaScript device tests (test/cuda.test.ts: logits, a training run's loss curve, greedy decoding
//      and checkpoints against the CPU engine) on the CMake-built addon;
//   4. the GPU benches of minielm_cuda_tests --bench: GEMM TFLOP/s per backend, attention, losses, GPT-2 124M
//      training tokens/s and MFU, decoding tokens/s at batch 1 and 64, 10 rewrites of one query.
// Writes bench/results/gpu-check.log and bench/results/gpu-latest.json, and copies both into $OUT when that
// is set (the device tool brings $OUT back). Exit status: 0 all passed, 1 something failed, 77 no GPU.
// Usage: npm run check:gpu [-- --skip-build]
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
const logFile = join(results, 'gpu-check.log');
writeFileSync(logFile, `# npm run check:gpu ${new Date().toISOString()}\n`);
const started = Date.now();
const log = (line) => {
  process.stdout.write(`${line}\n`);
  appendFileSync(logFile, `${line}\n`);
};

function step(name, cmd, args, options = {}) {
  const t0 = Date.now();
  log(`\n## ${name}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: (options.timeoutS ?? 300) * 1000,
    env: { ...process.env, ...(options.env ?? {}) },
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  appendFileSync(logFile, out);
  process.stdout.write(options.quiet ? out.split('\n').slice(-30).join('\n') + '\n' : out);
  const status = r.error ? `error ${r.error.message}` : r.status === null ? `signal ${r.signal}` : `exit ${r.status}`;
  log(`## ${name}: ${status} after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { status: r.status, out };
}

function finish(code) {
  log(`\n# check:gpu ${code === 0 ? 'PASSED' : code === 77 ? 'SKIPPED (no GPU)' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (process.env.OUT && existsSync(process.env.OUT)) {
    copyFileSync(logFile, join(process.env.OUT, 'gpu-check.log'));
    const json = join(results, 'gpu-latest.json');
    if (existsSync(json)) copyFileSync(json, join(process.env.OUT, 'gpu-latest.json'));
  }
  process.exit(code);
}

const addon = join(root, 'build-cmake', 'Release', 'minielm.node');
const testsBin = join(root, 'build-cmake', 'minielm_cuda_tests');
if (!argv.includes('--skip-build')) {
  const b = step('build', process.execPath, [join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), 'rebuild', '--out', 'build-cmake'], {
    timeoutS: 330,
    quiet: true,
    env: { CMAKE_BUILD_PARALLEL_LEVEL: String(cpus().length) },
  });
  if (b.status !== 0) finish(1);
}
if (!existsSync(testsBin)) {
  log(`no ${testsBin}: the CMake build found no nvcc, so there is no CUDA backend to check`);
  finish(1);
}
let failed = false;
const t = step('CUDA kernel tests', testsBin, [], { timeoutS: 120 });
if (t.status === 77) finish(77);
if (t.status !== 0) failed = true;
const env = { MINIELM_ADDON: addon };
const js = step('device tests (JavaScript)', process.execPath, ['scripts/test.js', 'cuda.test'], { timeoutS: 120, env });
if (js.status !== 0) failed = true;
const kb = step('GPU benches', testsBin, ['--bench'], { timeoutS: 240 });
if (kb.status !== 0) failed = true;
// Every BENCH line of the benches, as one flat object of named figures.
const figures = { date: new Date().toISOString() };
for (const line of kb.out.split('\n')) {
  const m = /^BENCH (\{.*\})$/.exec(line.trim());
  if (!m) continue;
  const b = JSON.parse(m[1]);
  figures[`gpu.${b.name}.${b.metric}`] = b.value;
}
writeFileSync(join(results, 'gpu-latest.json'), `${JSON.stringify(figures, null, 2)}\n`);
finish(failed ? 1 : 0);
