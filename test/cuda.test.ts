// The device switch: Model.create / Model.load / Rewriter.load with { device }, `--device`, and the CUDA
// engine against the CPU engine on the same inputs.
// Without a CUDA build or a GPU (this project's CI and development machines): the switch must refuse with
// MINIELM_NO_DEVICE naming why, and the GPU comparisons are skipped loudly. With one (`npm run check:gpu`
// on a GPU machine): forward logits, a training run's loss curve, greedy decoding and checkpoints are
// compared with the CPU engine's. bf16 tolerances: logits within 0.05 + 2 % of the CPU's (GPT-2-like
// models with unit-scale activations; bf16 keeps 8 bits of mantissa, ~0.4 % per rounding, and a 2-layer
// model rounds each activation about a dozen times), loss curves within 2 % step by step.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Model, cudaInfo, resolveDevice, type ModelConfig } from '../lib/model/model.ts';
import { generate } from '../lib/model/generate.ts';
import { distillStep, dpoStep } from '../lib/model/align.ts';
import { Rewriter } from '../lib/serve/rewriter.ts';
import { MinielmError } from '../lib/errors.ts';
import { testIf } from './helpers/skip.ts';

const info = cudaInfo();
const hasGpu = info.devices > 0;
const noGpu = `no CUDA device (${info.built ? 'CUDA build' : 'CPU-only build'}: ${info.reason})`;
const CONFIG: ModelConfig = { vocab_size: 97, n_ctx: 32, n_layer: 2, n_head: 2, n_embd: 64 };

async function rejectsWith(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, MinielmError);
    assert.is((err as MinielmError).code, code, (err as Error).message);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('cudaInfo describes the backend of the loaded addon', () => {
  assert.type(info.built, 'boolean');
  assert.ok(Number.isInteger(info.devices) && info.devices >= 0);
  assert.is(info.names.length, info.devices);
  if (info.devices === 0) assert.ok(info.reason.length > 10, 'a reason is given when there is no device');
  if (!info.built) assert.match(info.reason, /build:cmake/);
});

test('device names are checked before anything is allocated', async () => {
  for (const bad of ['gpu', 'cuda:', 'cuda:-1', 'CUDA', 'cuda:x', 7, null]) {
    await rejectsWith(Model.create(CONFIG, { device: bad as never }), 'MINIELM_INVALID_ARGUMENT', /device must be 'cpu', 'cuda' or 'cuda:N'/);
  }
  assert.is(resolveDevice('cpu'), -1);
  assert.is(resolveDevice(undefined), -1);
  const m = await Model.create(CONFIG, { seed: 1, device: 'cpu' });
  assert.is(m.device, 'cpu');
  await m.dispose();
});

testIf(test, !hasGpu, 'without a GPU, asking for CUDA is refused with MINIELM_NO_DEVICE and the reason', 'this machine has a CUDA device', async () => {
  await rejectsWith(Model.create(CONFIG, { device: 'cuda' }), 'MINIELM_NO_DEVICE', /cuda/);
  await rejectsWith(Model.create(CONFIG, { device: 'cuda:3' }), 'MINIELM_NO_DEVICE', new RegExp(info.reason.slice(0, 20).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  const dir = await mkdtemp(join(tmpdir(), 'minielm-cuda-'));
  try {
    const m = await Model.create(CONFIG, { seed: 1 });
    await m.save(dir);
    await m.dispose();
    await rejectsWith(Model.load(dir, { device: 'cuda' }), 'MINIELM_NO_DEVICE', /cuda/);
    await rejectsWith(Rewriter.load(dir, { device: 'cuda' }), 'MINIELM_NO_DEVICE', /cuda/);
    // The CLI says the same and exits non-zero (before any data is read or a tokenizer trained).
    const cli = spawnSync(process.execPath, ['bin/minielm.js', 'train', 'sft', '--out', join(dir, 'run'), '--pairs', join(dir, 'nowhere'), '--device', 'cuda'], {
      encoding: 'utf8',
    });
    assert.is.not(cli.status, 0);
    assert.match(`${cli.stdout}${cli.stderr}`, /MINIELM_NO_DEVICE|no CUDA|no usable CUDA|has no CUDA backend/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---- on a GPU ----

function batchOf(seed: number, B: number, T: number, padTail = 0): { tokens: Int32Array; targets: Int32Array; attentionMask: Uint8Array; lossWeight: Float32Array; batch: number; seq: number } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T), attentionMask = new Uint8Array(B * T), lossWeight = new Float32Array(B * T);
  for (let b = 0; b < B; ++b)
    for (let t = 0; t < T; ++t) {
      const i = b * T + t;
      // A learnable pattern (next token = token + 1 mod V, with noise) so loss curves move.
      tokens[i] = t === 0 ? next() % CONFIG.vocab_size : (tokens[i - 1] + 1) % CONFIG.vocab_size;
      targets[i] = (tokens[i] + 1) % CONFIG.vocab_size;
      const real = b % 2 === 0 || t < T - padTail;
      attentionMask[i] = real ? 1 : 0;
      lossWeight[i] = real ? 1 : 0;
    }
  return { tokens, targets, attentionMask, lossWeight, batch: B, seq: T };
}

testIf(test, hasGpu, 'forward logits on the GPU follow the CPU engine (bf16 tolerance), padding included', noGpu, async () => {
  const cpu = await Model.create(CONFIG, { seed: 5 });
  const gpu = await Model.create(CONFIG, { seed: 5, device: 'cuda' });
  assert.is(gpu.device, 'cuda:0');
  const b = batchOf(1, 3, 17, 5);
  const a = await cpu.forward(b, { logits: true });
  const g = await gpu.forward(b, { logits: true });
  let worst = 0;
  for (let i = 0; i < a.logits!.length; ++i) {
    const bt = Math.floor(i / CONFIG.vocab_size);
    if (!b.attentionMask[bt]) continue;
    worst = Math.max(worst, Math.abs(a.logits![i] - g.logits![i]) / (0.05 + 0.02 * Math.abs(a.logits![i])));
  }
  assert.ok(worst <= 1, `logits differ by ${worst.toFixed(2)}x the tolerance`);
  assert.ok(Math.abs(a.loss! - g.loss!) <= 0.02 * a.loss!, `loss ${g.loss} vs ${a.loss}`);
  await cpu.dispose();
  await gpu.dispose();
});

testIf(test, hasGpu, 'a short training run on the GPU follows the CPU loss curve; the checkpoint loads on the CPU', noGpu, async () => {
  const cpu = await Model.create(CONFIG, { seed: 9 });
  const gpu = await Model.create(CONFIG, { seed: 9, device: 'cuda' });
  const steps = Array.from({ length: 30 }, (_, i) => batchOf(100 + i, 8, 24, 3));
  const optim = { lr: 3e-3, warmupSteps: 2, totalSteps: 30, weightDecay: 0.1 };
  const rc = await cpu.train(steps, optim);
  const rg = await gpu.train(steps, optim);
  assert.is(rg.steps.length, 30);
  for (let i = 0; i < 30; ++i) {
    const lc = rc.steps[i].loss, lg = rg.steps[i].loss;
    assert.ok(Math.abs(lc - lg) <= 0.02 * lc + 0.01, `step ${i + 1}: GPU loss ${lg.toFixed(4)} vs CPU ${lc.toFixed(4)}`);
  }
  assert.ok(rg.steps[29].loss < rg.steps[0].loss * 0.8, 'the GPU run learns');
  assert.is(gpu.step, 30);
  const dir = await mkdtemp(join(tmpdir(), 'minielm-cuda-'));
  try {
    await gpu.save(dir, { trainingState: true });
    const back = await Model.load(dir, { trainingState: true });
    const probe = batchOf(7, 2, 12);
    const fg = await gpu.forward(probe);
    const fb = await back.forward(probe);
    assert.ok(Math.abs(fg.loss! - fb.loss!) <= 0.02 * fb.loss!, `saved from the GPU, loaded on the CPU: ${fb.loss} vs ${fg.loss}`);
    // And back onto the GPU: training resumes from the same step.
    const again = await Model.load(dir, { trainingState: true, device: 'cuda' });
    assert.is(again.step, 30);
    await again.train([batchOf(1, 4, 8)], optim);
    assert.is(again.step, 31);
    await back.dispose();
    await again.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await cpu.dispose();
  await gpu.dispose();
});

testIf(test, hasGpu, 'greedy, beam and seeded sampling on the GPU: greedy matches the CPU engine (bf16 weights) on a trained model', noGpu, async () => {
  const cpu = await Model.create(CONFIG, { seed: 11 });
  await cpu.train(Array.from({ length: 60 }, (_, i) => batchOf(300 + i, 8, 24)), { lr: 5e-3, warmupSteps: 2, totalSteps: 60 });
  const dir = await mkdtemp(join(tmpdir(), 'minielm-cuda-'));
  try {
    await cpu.save(dir);
    const gpu = await Model.load(dir, { device: 'cuda' });
    const prompts = [[3, 4, 5], [10], [50, 51, 52, 53, 54]];
    const c = await generate(cpu, prompts, { maxNewTokens: 8, weights: 'bf16' });
    const g = await generate(gpu, prompts, { maxNewTokens: 8 });
    assert.equal(g.map((r) => r[0].tokens), c.map((r) => r[0].tokens), 'greedy decoding equals the CPU engine');
    const beam = await generate(gpu, prompts, { strategy: 'beam', numBeams: 4, numReturnSequences: 4, maxNewTokens: 6 });
    assert.is(beam[0].length, 4);
    const s1 = await generate(gpu, prompts, { strategy: 'sample', numReturnSequences: 5, maxNewTokens: 6, seed: 3 });
    const s2 = await generate(gpu, prompts, { strategy: 'sample', numReturnSequences: 5, maxNewTokens: 6, seed: 3 });
    assert.equal(s1.map((r) => r.map((x) => x.tokens)), s2.map((r) => r.map((x) => x.tokens)), 'seeded sampling repeats');
    await gpu.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await cpu.dispose();
});

testIf(test, hasGpu, 'distillStep on the GPU follows the CPU step; a student and a teacher on different devices are refused', noGpu, async () => {
  const teacherCpu = await Model.create(CONFIG, { seed: 21 });
  await teacherCpu.train(Array.from({ length: 30 }, (_, i) => batchOf(500 + i, 8, 24)), { lr: 5e-3, totalSteps: 30 });
  const dir = await mkdtemp(join(tmpdir(), 'minielm-cuda-'));
  try {
    await teacherCpu.save(dir);
    const teacherGpu = await Model.load(dir, { device: 'cuda' });
    const sc = await Model.create(CONFIG, { seed: 23 });
    const sg = await Model.create(CONFIG, { seed: 23, device: 'cuda' });
    for (let i = 0; i < 10; i++) {
      const b = batchOf(700 + i, 8, 24, 4);
      const a = await distillStep(sc, teacherCpu, b, { loss: 'reverse_kl' }, { lr: 3e-3 });
      const g = await distillStep(sg, teacherGpu, b, { loss: 'reverse_kl' }, { lr: 3e-3 });
      assert.ok(Math.abs(a.loss - g.loss) <= 0.02 * a.loss + 0.01, `step ${i + 1}: GPU ${g.loss} vs CPU ${a.loss}`);
    }
    await rejectsWith(distillStep(sg, teacherCpu, batchOf(1, 2, 8), {}, { lr: 1e-3 }), 'MINIELM_UNSUPPORTED', /same device/);
    // DPO with the reference on the same GPU: the loss follows the CPU step's.
    const pairs = [{ prompt: [3, 4, 5], chosen: [6, 7, 8], rejected: [9, 1] }, { prompt: [20, 21], chosen: [22, 23, 24, 25], rejected: [60, 2, 90] }];
    const pc = await dpoStep(sc, pairs, { beta: 0.5, reference: teacherCpu }, { lr: 1e-3 });
    const pg = await dpoStep(sg, pairs, { beta: 0.5, reference: teacherGpu }, { lr: 1e-3 });
    assert.ok(Math.abs(pc.loss - pg.loss) <= 0.02 * pc.loss + 0.01, `DPO loss GPU ${pg.loss} vs CPU ${pc.loss}`);
    for (const m of [teacherGpu, sc, sg]) await m.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await teacherCpu.dispose();
});

test.run();
