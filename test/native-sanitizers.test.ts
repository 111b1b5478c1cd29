// The native tests under AddressSanitizer + UndefinedBehaviorSanitizer (scripts/native-asan.js, the script
// behind `npm run test:native:asan`): the GEMM test on every kernel, the engine's self-tests (gradient
// checks, training, distillation, DPO, scoring, decoding with every strategy) and the regression tests of
// what fuzzing found, all built with g++ -fsanitize=address,undefined -fno-sanitize-recover=all; any
// sanitizer report or failed check fails. Then, when a clang with libFuzzer is installed (.ci/run installs
// clang-14), a short smoke run of every libFuzzer target (scripts/fuzz.js, 5 s each): each must execute
// and crash nothing. The first run builds into build-asan/ and build-fuzz/ (a few minutes on 2 cores);
// later runs reuse the objects.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { skipLoudly, testIf } from './helpers/skip.ts';

const root = join(import.meta.dirname, '..');
const cxx = process.env.CXX || 'g++';
const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });

if (probe.error || probe.status !== 0) {
  skipLoudly(test, 'native tests under ASan + UBSan (scripts/native-asan.js)', `no C++ compiler: "${cxx} --version" failed; set CXX or install g++`);
} else {
  test('native tests under ASan + UBSan: every run is clean (scripts/native-asan.js)', () => {
    const run = spawnSync(process.execPath, [join(root, 'scripts', 'native-asan.js'), '--quick'], { cwd: root, encoding: 'utf8', timeout: 900_000, maxBuffer: 64 << 20 });
    const out = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    assert.is(run.error, undefined, `could not run scripts/native-asan.js: ${run.error?.message}`);
    assert.not.match(out, /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/, `a sanitizer report:\n${out.slice(-8000)}`);
    assert.is(run.status, 0, `scripts/native-asan.js exited ${run.status ?? run.signal}:\n${out.slice(-8000)}`);
    assert.match(out, /^asan: \d+ runs clean/m, out.slice(-3000));
    for (const name of ['engine_selftest', 'engine_selftest (MINIELM_ISA=generic)', 'regressions_test', "gemm_test (the CPU's best kernel)"]) {
      const esc = name.replace(/[()[\]'.*+?^$|\\]/g, '\\$&');
      assert.match(out, new RegExp(`^\\[${esc}\\] clean`, 'm'), `${name} ran clean:\n${out.slice(-3000)}`);
    }
    assert.match(out, /^engine self-tests passed: 0 failures$/m);
    assert.match(out, /^regressions passed: 0 failures$/m);
    console.log(`# ${/^asan: .*$/m.exec(out)?.[0]}`);
  });
}

const fuzzProbe = spawnSync(process.execPath, [join(root, 'scripts', 'fuzz.js'), '--probe'], { cwd: root, encoding: 'utf8' });
testIf(
  test,
  fuzzProbe.status === 0,
  'libFuzzer smoke run: every native target executes and crashes nothing (scripts/fuzz.js --seconds 5)',
  `no clang with libFuzzer (${(fuzzProbe.stdout + fuzzProbe.stderr).trim()}); install clang-14 and libclang-rt-14-dev to fuzz`,
  () => {
    const run = spawnSync(process.execPath, [join(root, 'scripts', 'fuzz.js'), '--seconds', '5', '--no-js'], { cwd: root, encoding: 'utf8', timeout: 1_200_000, maxBuffer: 64 << 20 });
    const out = `${run.stdout ?? ''}${run.stderr ?? ''}`;
    assert.is(run.status, 0, `scripts/fuzz.js exited ${run.status ?? run.signal}:\n${out.slice(-8000)}`);
    const summary = JSON.parse(readFileSync(join(root, 'build-fuzz', 'summary.json'), 'utf8')) as {
      ok: boolean;
      targets: { target: string; executions: number; crashes: number }[];
    };
    assert.ok(summary.ok, 'summary.ok');
    assert.ok(summary.targets.length >= 8, `${summary.targets.length} targets`);
    for (const t of summary.targets) {
      assert.is(t.crashes, 0, `${t.target} crashed`);
      // A smoke run: every target runs (the slowest, the word-constraint builder, manages a few hundred inputs in 5 s on
      // a busy 2-core machine) and nothing crashes; the long runs are npm run fuzz.
      assert.ok(t.executions > 100, `${t.target}: ${t.executions} executions`);
    }
    console.log(`# fuzz smoke: ${summary.targets.map((t) => `${t.target} ${t.executions}`).join(', ')}`);
  },
);

test.run();
