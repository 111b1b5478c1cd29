// Portable builds: every source is compiled for plain x86-64, the AVX2 / AVX-512 kernels sit in files (or
// functions) compiled through target pragmas and are chosen at run time, and MINIELM_ISA=generic forces the
// portable path everywhere. An addon built with a global -mavx2 would die with SIGILL on an x86-64 CPU
// without AVX2; these tests fail as soon as such code reaches a baseline object file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { testIf } from './helpers/skip.ts';

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const objDir = join(root, 'build', 'Release', 'obj.target', 'minielm');
const haveObjdump = spawnSync('objdump', ['--version']).status === 0 && spawnSync('nm', ['--version']).status === 0;
const onX64 = process.arch === 'x64';

// Object files allowed to hold AVX2 / AVX-512 code (pragma-compiled kernels, or target-attributed functions).
const ISA_OBJECTS = new Set([
  'native/core/gemm_kernels_avx2.o',
  'native/core/gemm_kernels_avx512.o',
  'native/core/vmath_avx2.o',
  'native/loss/distill_avx2.o',
  'native/decode/kernels.o',
  'native/decode/amx.o',
  'native/core/peak.o',
]);

function objects(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...objects(p));
    else if (name.endsWith('.o')) out.push(p);
  }
  return out;
}

/** Functions (mangled names) of an object file that contain a VEX / EVEX instruction (v* or ymm / zmm). */
function vexFunctions(file: string): Map<string, number> {
  const dis = spawnSync('objdump', ['-d', '--no-show-raw-insn', file], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  assert.is(dis.status, 0, `objdump ${file}: ${dis.stderr}`);
  const out = new Map<string, number>();
  let fn = '';
  for (const line of dis.stdout.split('\n')) {
    const label = /^[0-9a-f]+ <(.+)>:$/.exec(line);
    if (label) {
      fn = label[1]!;
      continue;
    }
    const parts = line.split('\t');
    if (parts.length < 2) continue;
    const ins = parts[1]!.trim();
    const mnemonic = ins.split(/\s+/)[0] ?? '';
    if (mnemonic.startsWith('v') || /%[yz]mm/.test(ins)) out.set(fn, (out.get(fn) ?? 0) + 1);
  }
  return out;
}

testIf(test, onX64 && haveObjdump && existsSync(objDir), 'no AVX instruction in a baseline object file, and no AVX code in a symbol the linker could share', 'needs an x86-64 node-gyp build in build/Release and binutils (objdump, nm)', () => {
  const files = objects(objDir);
  assert.ok(files.length >= 15, `found ${files.length} object files under ${objDir}`);
  const seen = new Set<string>();
  for (const file of files) {
    const rel = relative(objDir, file);
    seen.add(rel);
    const vex = vexFunctions(file);
    if (!ISA_OBJECTS.has(rel)) {
      assert.is(vex.size, 0, `${rel} is compiled for the x86-64 baseline but holds AVX code in ${[...vex.keys()].slice(0, 3).join(', ')}`);
      continue;
    }
    // An AVX function that is a weak (COMDAT) symbol, e.g. an inline function from a shared header, could be
    // picked by the linker for baseline callers too: each one must be local or strong with its own name.
    const nm = spawnSync('nm', [file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    const kind = new Map<string, string>();
    for (const line of nm.stdout.split('\n')) {
      const m = /^\s*[0-9a-f]*\s+([A-Za-z])\s+(\S+)$/.exec(line);
      if (m) kind.set(m[2]!, m[1]!);
    }
    for (const fn of vex.keys()) {
      const k = kind.get(fn) ?? 't';
      assert.ok(/^[tT]$/.test(k), `${rel}: AVX function ${fn} is a weak symbol (${k}) the linker may share with baseline code`);
    }
  }
  for (const want of ISA_OBJECTS) assert.ok(seen.has(want), `expected object ${want} (the allow-list is stale)`);
});

test('binding.gyp and CMakeLists.txt compile no source with -mavx*, -mfma, -mf16c or -march', () => {
  for (const file of ['binding.gyp', 'CMakeLists.txt']) {
    const text = readFileSync(join(root, file), 'utf8').replace(/#.*$/gm, '');
    assert.not.match(text, /-m(avx|fma|f16c|arch)/, `${file} sets a global ISA flag`);
  }
});

// A child computes forward logits, a training step, a distillation loss, a DPO loss and greedy / beam
// decoding on a tiny model; run once as the CPU allows and once with MINIELM_ISA=generic.
const CHILD = `
import { Model } from './lib/model/model.ts';
import { generate } from './lib/model/generate.ts';
import { distillStep, dpoStep } from './lib/model/align.ts';
import { isaInfo } from './lib/index.ts';
const config = { vocab_size: 301, n_ctx: 32, n_embd: 48, n_layer: 2, n_head: 4 };
const B = 3, T = 12;
const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % config.vocab_size);
const targets = Int32Array.from({ length: B * T }, (_, i) => (i * 104729 + 5) % config.vocab_size);
const batch = { batch: B, seq: T, tokens, targets };
const student = await Model.create(config, { seed: 3 });
const teacher = await Model.create(config, { seed: 4 });
const logits = await student.forward({ batch: B, seq: T, tokens }, { logits: true });
const step = await student.trainStep(batch, { lr: 1e-3 });
const distill = await distillStep(student, teacher, batch, {}, { lr: 1e-3 });
const prompts = [[5, 6, 7], [9, 10]];
const greedy = await generate(student, prompts, { maxNewTokens: 8 });
const beams = await generate(student, prompts, { maxNewTokens: 6, numBeams: 4, numReturnSequences: 2 });
console.log(JSON.stringify({ isa: isaInfo(), logits: Array.from(logits.logits).slice(0, 2000), loss: step.loss, distill: distill.loss,
  greedy: greedy.map((g) => g.map((s) => s.tokens)), beams: beams.map((g) => g.map((s) => s.tokens)) }));
`;

function runChild(env: Record<string, string | undefined>): Record<string, unknown> {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env } });
  assert.is(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

test('MINIELM_ISA=generic forces the portable kernels everywhere, and they agree with the vector ones', () => {
  const fast = runChild({ MINIELM_ISA: undefined, MINIELM_GEMM_ISA: undefined, MINIELM_DECODE_ISA: undefined });
  const generic = runChild({ MINIELM_ISA: 'generic' });
  assert.equal(generic.isa, { ...(generic.isa as object), selected: 'generic', gemm: 'generic', rowKernels: 'generic', decode: 'generic' });
  assert.is((generic.isa as { cpu: string }).cpu, (fast.isa as { cpu: string }).cpu, 'the detected CPU level does not depend on MINIELM_ISA');
  const a = fast.logits as number[], b = generic.logits as number[];
  assert.ok(a.length > 100 && a.length === b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1 + Math.abs(a[i]!)));
  assert.ok(worst < 1e-4, `logits differ by ${worst} (relative) between the vector and the portable kernels`);
  assert.ok(Math.abs((fast.loss as number) - (generic.loss as number)) < 1e-4 * Math.abs(fast.loss as number), `training loss ${fast.loss} vs ${generic.loss}`);
  assert.ok(Math.abs((fast.distill as number) - (generic.distill as number)) < 1e-3 * (1e-3 + Math.abs(fast.distill as number)), `distillation loss ${fast.distill} vs ${generic.distill}`);
  assert.equal(generic.greedy, fast.greedy, 'greedy decoding is the same on both paths');
  assert.equal(generic.beams, fast.beams, 'beam search returns the same sequences on both paths');
});

test.run();
