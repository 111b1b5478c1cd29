// Bad inputs to the alignment steps fail before C++ with MINIELM_INVALID_ARGUMENT and a message naming
// the input; what slips past (raw addon calls) is still refused natively, without a crash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model } from '../lib/model/model.ts';
import { distillStep, dpoStep, sequenceLogProbs } from '../lib/model/align.ts';
import { native } from '../lib/native.ts';

const CONFIG = { vocab_size: 20, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };
const BATCH = { batch: 1, seq: 3, tokens: [1, 2, 3], targets: [2, 3, 4] };
const PAIRS = [{ prompt: [1, 2], chosen: [3, 4], rejected: [5] }];
const OPT = { lr: 1e-3 };

async function expectInvalid(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
    assert.unreachable('expected an error');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    assert.is(e.code, 'MINIELM_INVALID_ARGUMENT', `code for: ${e.message}`);
    assert.match(e.message!, pattern);
  }
}

test('distillStep: vocab mismatch, bad temperature / beta / ceWeight / loss, empty mask', async () => {
  const s = await Model.create(CONFIG, { seed: 1 });
  const t = await Model.create(CONFIG, { seed: 2 });
  const other = await Model.create({ ...CONFIG, vocab_size: 21 }, { seed: 2 });
  await expectInvalid(distillStep(s, other, BATCH, {}, OPT), /teacher vocab_size 21 differs from student vocab_size 20/);
  await expectInvalid(distillStep(s, s, BATCH, {}, OPT), /different models/);
  await expectInvalid(distillStep(s, t, BATCH, { temperature: 0 }, OPT), /options\.temperature/);
  await expectInvalid(distillStep(s, t, BATCH, { temperature: -1 }, OPT), /options\.temperature/);
  await expectInvalid(distillStep(s, t, BATCH, { loss: 'jsd', beta: NaN }, OPT), /options\.beta .*NaN/);
  await expectInvalid(distillStep(s, t, BATCH, { loss: 'jsd', beta: 1.5 }, OPT), /options\.beta/);
  await expectInvalid(distillStep(s, t, BATCH, { ceWeight: 2 }, OPT), /options\.ceWeight/);
  await expectInvalid(distillStep(s, t, BATCH, { loss: 'kl' as never }, OPT), /options\.loss/);
  await expectInvalid(distillStep(s, t, { ...BATCH, lossMask: [0, 0, 0] }, {}, OPT), /selects no token/);
  await expectInvalid(distillStep(s, t, { batch: 1, seq: 2, tokens: [1, 2] }, { ceWeight: 0.5 }, OPT), /targets is required/);
  const shortTeacher = await Model.create({ ...CONFIG, n_ctx: 2 }, { seed: 3 });
  await expectInvalid(distillStep(s, shortTeacher, BATCH, {}, OPT), /n_ctx = 2/);
  // Nothing was changed by the refused calls.
  assert.is(s.step, 0);
});

test('dpoStep: NaN beta, label smoothing, empty prompt / response, too long, bad reference', async () => {
  const p = await Model.create(CONFIG, { seed: 1 });
  await expectInvalid(dpoStep(p, PAIRS, { beta: NaN }, OPT), /options\.beta .*NaN/);
  await expectInvalid(dpoStep(p, PAIRS, { beta: 0 }, OPT), /options\.beta/);
  await expectInvalid(dpoStep(p, PAIRS, { labelSmoothing: 0.5 }, OPT), /options\.labelSmoothing .*\[0, 0\.5\)/);
  await expectInvalid(dpoStep(p, PAIRS, { lossType: 'ipo', labelSmoothing: 0.1 }, OPT), /sigmoid loss only/);
  await expectInvalid(dpoStep(p, PAIRS, { lossType: 'kto' as never }, OPT), /options\.lossType/);
  await expectInvalid(dpoStep(p, [], {}, OPT), /non-empty/);
  await expectInvalid(dpoStep(p, [{ prompt: [], chosen: [1], rejected: [2] }], {}, OPT), /pairs\[0\]\.prompt is empty/);
  await expectInvalid(dpoStep(p, [{ prompt: [1], chosen: [], rejected: [2] }], {}, OPT), /pairs\[0\]\.chosen is empty/);
  await expectInvalid(dpoStep(p, [{ prompt: [1], chosen: [2], rejected: [25] }], {}, OPT), /pairs\[0\]\.rejected\[0\] = 25/);
  await expectInvalid(dpoStep(p, [{ prompt: [1, 2, 3, 4, 5, 6], chosen: [1, 2, 3, 4], rejected: [2] }], {}, OPT), /prompt \+ chosen has 10 tokens, more than n_ctx \+ 1 = 9/);
  await expectInvalid(dpoStep(p, PAIRS, { reference: p }, OPT), /different model/);
  const other = await Model.create({ ...CONFIG, vocab_size: 30 }, { seed: 1 });
  await expectInvalid(dpoStep(p, PAIRS, { reference: other }, OPT), /vocab_size 30/);
  await expectInvalid(dpoStep(p, PAIRS, { reference: { chosen: [1, 2], rejected: [1] } }, OPT), /reference\.chosen must hold one log-prob per pair/);
  await expectInvalid(dpoStep(p, PAIRS, { reference: { chosen: [NaN], rejected: [1] } }, OPT), /reference\.chosen\[0\]/);
  assert.is(p.step, 0);
});

test('sequenceLogProbs: masks must match and skip the first token', async () => {
  const m = await Model.create(CONFIG, { seed: 1 });
  await expectInvalid(sequenceLogProbs(m, [[1, 2, 3]], [[1, 1, 1]]), /masks\[0\]\[0\] must be 0/);
  await expectInvalid(sequenceLogProbs(m, [[1, 2, 3]], [[0, 1]]), /masks\[0\] must have one weight per token/);
  await expectInvalid(sequenceLogProbs(m, [[1]], [[0]]), /sequences\[0\] is empty: it needs at least 2 tokens/);
  await expectInvalid(sequenceLogProbs(m, [[1, 2]], [[0, -1]]), /masks\[0\]\[1\]/);
});

test('the native layer refuses what bypasses the TypeScript checks', async () => {
  const a = await native.createModel(CONFIG, 0);
  const b = await native.createModel({ ...CONFIG, vocab_size: 21 }, 0);
  const batch = { batch: 1, seq: 3, tokens: Int32Array.from([1, 2, 3]), targets: Int32Array.from([2, 3, 4]) };
  await expectInvalid(() => native.distillStep(a, b, batch, {}, OPT), /teacher vocab_size 21 differs/);
  await expectInvalid(() => native.distillStep(a, a, batch, {}, OPT), /different models/);
  await expectInvalid(() => native.distillStep(a, b, batch, { temperature: 0 }, OPT), /temperature/);
  await expectInvalid(() => native.distillStep(a, b, batch, { beta: NaN }, OPT), /beta must be finite/);
  const pairs = { batch: 2, seq: 3, tokens: Int32Array.from([1, 2, 3, 1, 2, 4]), targets: Int32Array.from([2, 3, 4, 2, 4, 5]), lossMask: Float32Array.from([0, 1, 1, 0, 0, 0]) };
  await expectInvalid(() => native.dpoStep(a, null, pairs, null, { beta: 0.1 }, OPT), /rejected response 0 has no token/);
  await expectInvalid(() => native.dpoStep(a, null, pairs, null, { labelSmoothing: 0.7 }, OPT), /labelSmoothing/);
  await expectInvalid(() => native.dpoStep(a, a, pairs, null, {}, OPT), /different models/);
  // The refused calls released both models: a valid job runs now.
  const ok = await native.dpoStep(a, null, { ...pairs, lossMask: Float32Array.from([0, 1, 1, 0, 1, 1]) }, null, {}, OPT);
  assert.ok(Number.isFinite(ok.loss));
});

test.run();
