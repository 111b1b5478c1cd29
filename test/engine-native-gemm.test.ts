// The native GEMM test (native/tests/gemm_test.cc, built and run by scripts/native-test.sh without
// node-gyp): the built-in kernels against a float64 reference on odd shapes, transposes, padding and
// alpha/beta, on 1 and 2 threads, with the AVX2 and the portable kernels forced and with the CPU's best
// kernel, checking each time that the kernel that ran is the one asked for.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { skipLoudly, testIf } from './helpers/skip.ts';

const script = join(import.meta.dirname, '..', 'scripts', 'native-test.sh');
const cxx = process.env.CXX || 'g++';
const probe = spawnSync(cxx, ['--version'], { encoding: 'utf8' });

/** The best kernel this CPU runs, from /proc/cpuinfo (the kernels' requirements), or undefined off Linux. */
function cpuKernel(): string | undefined {
  if (!existsSync('/proc/cpuinfo')) return undefined;
  const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^flags\s*:/.test(l));
  if (!line) return undefined;
  const flags = new Set(line.split(':')[1].trim().split(/\s+/));
  if (['avx512f', 'avx512vl', 'avx512bw', 'avx512dq', 'fma'].every((f) => flags.has(f))) return 'avx512';
  if (flags.has('avx2') && flags.has('fma')) return 'avx2';
  return 'generic';
}

interface Section {
  heading: string;
  text: string;
  isa?: { kernel: string; requested: string; cpu: string };
  skip?: string;
}

if (probe.error || probe.status !== 0) {
  skipLoudly(test, 'native GEMM test (scripts/native-test.sh)', `no C++ compiler: "${cxx} --version" failed (${probe.error?.message ?? probe.stderr.trim()}); set CXX or install g++`);
} else {
  // Built and run once, at load time, so that a kernel this CPU cannot run is registered as a real skip.
  const out = mkdtempSync(join(tmpdir(), 'minielm-native-gemm-'));
  const env: NodeJS.ProcessEnv = { ...process.env, MINIELM_NATIVE_TEST_OUT: out };
  delete env.MINIELM_GEMM_ISA; // the last run must be the CPU's own best kernel
  const run = spawnSync('bash', [script, '--no-bench', '--quick'], { env, encoding: 'utf8', timeout: 600_000, maxBuffer: 16 << 20 });
  rmSync(out, { recursive: true, force: true });
  const output = `${run.stdout ?? ''}${run.stderr ?? ''}`;
  const sections: Section[] = [];
  for (const line of output.split('\n')) {
    const h = /^\[(.+)\]$/.exec(line);
    if (h) sections.push({ heading: h[1], text: '' });
    else if (sections.length) sections[sections.length - 1].text += `${line}\n`;
  }
  for (const s of sections) {
    const m = /^gemm isa: kernel=(\S+) requested=(\S+) cpu=(\S+)$/m.exec(s.text);
    if (m) s.isa = { kernel: m[1], requested: m[2], cpu: m[3] };
    s.skip = /^SKIP: (.*)$/m.exec(s.text)?.[1];
  }

  test('scripts/native-test.sh builds the GEMM test and every kernel run passes', () => {
    assert.is(run.error, undefined, `could not run bash ${script}: ${run.error?.message}`);
    assert.is(run.status, 0, `scripts/native-test.sh exited ${run.status ?? run.signal}:\n${output.slice(-6000)}`);
    assert.equal(sections.map((s) => s.heading), ['MINIELM_GEMM_ISA=avx2', 'MINIELM_GEMM_ISA=generic', 'native ISA'], `the three kernel runs:\n${output.slice(-3000)}`);
  });

  const expectedCpu = cpuKernel();
  const kernels: [string, string, string | undefined][] = [
    ['MINIELM_GEMM_ISA=avx2', 'the AVX2 kernel (forced)', 'avx2'],
    ['MINIELM_GEMM_ISA=generic', 'the portable kernel (forced)', 'generic'],
    ['native ISA', "the CPU's best kernel", undefined],
  ];
  for (const [heading, what, forced] of kernels) {
    const s = sections.find((x) => x.heading === heading);
    const name = `native GEMM test: ${what} is the one that ran, and it is correct`;
    testIf(test, !s?.skip, name, `${s?.skip ?? ''} (the ${forced} kernel was NOT tested)`, () => {
      assert.ok(s, `no "[${heading}]" run in the output of scripts/native-test.sh:\n${output.slice(-3000)}`);
      assert.ok(s.isa, `the run did not report its kernel:\n${s.text}`);
      assert.is(s.isa.requested, forced ?? '(none)', 'the kernel asked for');
      if (expectedCpu !== undefined) assert.is(s.isa.cpu, expectedCpu, `gemm_test's CPU detection agrees with /proc/cpuinfo`);
      const want = forced ?? s.isa.cpu;
      assert.is(s.isa.kernel, want, `sgemm dispatched to the ${s.isa.kernel} kernel, not ${want}`);
      const c = /^correctness \(builtin isa (\S+)\): (\d+) cases .*: (\S+)$/m.exec(s.text);
      assert.ok(c, `no correctness summary:\n${s.text}`);
      assert.is(c[1], want, 'the correctness cases ran on that kernel');
      assert.ok(Number(c[2]) >= 100, `${c[2]} cases`);
      assert.is(c[3], 'OK', s.text);
      assert.not.match(s.text, /^FAIL/m, s.text);
    });
  }
}

test.run();
