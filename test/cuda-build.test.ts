// The CUDA sources must never rot: wherever nvcc is installed (this project's CI machine has it), the CMake
// build (`npm run build:cmake`'s configuration, into build-cuda-ci/ so the addon the other suites load is
// left alone) compiles the CUDA backend for sm_80 and sm_90 without a warning in our sources, links the
// CUDA runtime statically (the addon loads where no CUDA library is installed), and the GPU test program
// runs: it passes on a GPU, or says SKIP and exits 77 without one. The node-gyp addon (npm install) stays
// CUDA-free. Skipped loudly where nvcc is missing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { testIf } from './helpers/skip.ts';

const root = join(import.meta.dirname, '..');
const out = join(root, 'build-cuda-ci');
const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
const hasNvcc = nvcc.status === 0;
const require = createRequire(import.meta.url);

testIf(test, hasNvcc, 'the CMake build compiles the CUDA backend and its GPU tests (sm_80, sm_90)', 'nvcc not found', () => {
  rmSync(out, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js'), 'build', '--out', 'build-cuda-ci'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, CMAKE_BUILD_PARALLEL_LEVEL: String(cpus().length) },
    timeout: 900_000,
  });
  const log = `${r.stdout}${r.stderr}`;
  assert.is(r.status, 0, `cmake-js build failed:\n${log.split('\n').slice(-60).join('\n')}`);
  assert.match(log, /minielm: CUDA backend with/, 'CMake found nvcc and configured the CUDA backend');
  // Warnings in our own CUDA sources (nvcc's and the host compiler's), not in system headers.
  const ours = log.split('\n').filter((l) => /native\/cuda\/.*(warning|Warning)/.test(l));
  assert.equal(ours, [], 'the CUDA sources compile without warnings');
  assert.ok(existsSync(join(out, 'Release', 'minielm.node')), 'the addon was built');
  assert.ok(existsSync(join(out, 'minielm_cuda_tests')), 'the GPU test program was built');
});

testIf(test, hasNvcc, 'the CUDA build links the runtime statically and still loads without a GPU', 'nvcc not found', () => {
  const addon = join(out, 'Release', 'minielm.node');
  const ldd = spawnSync('ldd', [addon], { encoding: 'utf8' });
  assert.not.match(ldd.stdout, /libcudart/, 'no dynamic libcudart dependency');
  assert.not.match(ldd.stdout, /libcublas/, 'cuBLASLt is found at run time (dlopen), never linked');
  const native = require(addon) as { cudaInfo(): { built: boolean; devices: number; reason: string } };
  const info = native.cudaInfo();
  assert.is(info.built, true);
  if (info.devices === 0) assert.ok(info.reason.length > 0, 'the reason there is no device is given');
});

testIf(test, hasNvcc, 'the GPU test program passes on a GPU, or skips with exit status 77 without one', 'nvcc not found', () => {
  const r = spawnSync(join(out, 'minielm_cuda_tests'), [], { encoding: 'utf8', timeout: 300_000 });
  const log = `${r.stdout}${r.stderr}`;
  assert.ok(r.status === 0 || r.status === 77, `minielm_cuda_tests exited ${r.status}:\n${log}`);
  if (r.status === 77) assert.match(log, /^SKIP: no CUDA device/m);
  else assert.match(log, / 0 failed/);
});

test('the node-gyp addon (npm install) is CUDA-free', () => {
  const gyp = join(root, 'build', 'Release', 'minielm.node');
  assert.ok(existsSync(gyp), 'npm install built build/Release/minielm.node');
  const ldd = spawnSync('ldd', [gyp], { encoding: 'utf8' });
  assert.not.match(ldd.stdout, /libcuda/);
  const nm = spawnSync('nm', ['-D', gyp], { encoding: 'utf8' });
  assert.not.match(nm.stdout, /\bcuda[A-Z]\w*/, 'no CUDA runtime symbol in the CPU addon');
});

test.run();
