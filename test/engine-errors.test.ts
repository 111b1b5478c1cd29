// Bad inputs never crash the process: each gives an Error with a stable code and a message naming it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model } from '../lib/model/model.ts';
import { native } from '../lib/native.ts';

const CONFIG = { vocab_size: 20, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 8 };

async function expectCode(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
    assert.unreachable('expected an error');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    assert.instance(err, Error);
    assert.is(e.code, code, `code for: ${e.message}`);
    assert.match(e.message!, pattern);
  }
}

test('bad configs', async () => {
  await expectCode(Model.create({ ...CONFIG, n_head: 3 }), 'MINIELM_INVALID_ARGUMENT', /divisible/);
  await expectCode(Model.create({ ...CONFIG, vocab_size: 0 }), 'MINIELM_INVALID_ARGUMENT', /vocab_size/);
  await expectCode(Model.create({ ...CONFIG, n_layer: 1.5 }), 'MINIELM_INVALID_ARGUMENT', /n_layer/);
  await expectCode(Model.create(null as never), 'MINIELM_INVALID_ARGUMENT', /config/);
});

test('out-of-range token ids, long sequences and wrong shapes', async () => {
  const m = await Model.create(CONFIG);
  await expectCode(m.forward({ batch: 1, seq: 3, tokens: [1, 2, 20] }), 'MINIELM_INVALID_ARGUMENT', /tokens\[2\] = 20/);
  await expectCode(m.forward({ batch: 1, seq: 3, tokens: [1, -1, 2] }), 'MINIELM_INVALID_ARGUMENT', /tokens\[1\]/);
  await expectCode(m.forward({ batch: 1, seq: 3, tokens: [1, 2.5, 2] }), 'MINIELM_INVALID_ARGUMENT', /tokens\[1\]/);
  await expectCode(m.forward({ batch: 1, seq: 9, tokens: new Array(9).fill(1) }), 'MINIELM_INVALID_ARGUMENT', /n_ctx = 8/);
  await expectCode(m.forward({ batch: 2, seq: 3, tokens: [1, 2, 3] }), 'MINIELM_INVALID_ARGUMENT', /expected batch \* seq = 6/);
  await expectCode(m.trainStep({ batch: 1, seq: 2, tokens: [1, 2] }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /targets is required/);
  await expectCode(m.trainStep({ batch: 1, seq: 2, tokens: [1, 2], targets: [2, 99] }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /targets\[1\] = 99/);
  await expectCode(m.trainStep({ batch: 1, seq: 2, tokens: [1, 2], targets: [2, 3], lossMask: [0, 0] }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /selects no token/);
  await expectCode(m.trainStep({ batch: 1, seq: 2, tokens: [1, 2], targets: [2, 3], lossMask: [1, NaN] }, { lr: 1e-3 }), 'MINIELM_INVALID_ARGUMENT', /lossMask\[1\]/);
});

test('the native layer itself rejects what slips past the TypeScript checks', async () => {
  const raw = await native.createModel(CONFIG, 0);
  await expectCode(() => raw.forward({ batch: 1, seq: 2, tokens: Int32Array.from([1, 25]) }, false), 'MINIELM_INVALID_ARGUMENT', /outside the vocabulary/);
  await expectCode(() => raw.forward({ batch: 1, seq: 2, tokens: new Int32Array(3) }, false), 'MINIELM_INVALID_ARGUMENT', /expected batch \* seq/);
  await expectCode(() => raw.forward({ batch: 1, seq: 2, tokens: new Float32Array(2) as never }, false), 'MINIELM_INVALID_ARGUMENT', /wrong array type/);
  await expectCode(() => raw.train([[{ batch: 1, seq: 2, tokens: Int32Array.from([1, 2]), targets: Int32Array.from([1, 2]) }]], { lr: NaN }), 'MINIELM_INVALID_ARGUMENT', /lr must be finite/);
  await expectCode(() => raw.writeTensor('param', 'nope', new Float32Array(1)), 'MINIELM_INVALID_ARGUMENT', /unknown tensor/);
  // Two jobs at once on the raw handle: the second is refused, not raced.
  const tokens = Int32Array.from([1, 2]);
  const first = raw.forward({ batch: 1, seq: 2, tokens }, false);
  await expectCode(() => raw.forward({ batch: 1, seq: 2, tokens }, false), 'MINIELM_BUSY', /another job/);
  await first;
});

test('the typed Model queues concurrent calls instead of failing', async () => {
  const m = await Model.create(CONFIG);
  const b = { batch: 1, seq: 4, tokens: [1, 2, 3, 4], targets: [2, 3, 4, 5] };
  const results = await Promise.all([m.forward(b), m.trainStep(b, { lr: 1e-3 }), m.forward(b)]);
  assert.is(results.length, 3);
  assert.ok(Number.isFinite(results[2].loss!));
});

test('a disposed model gives a clear error', async () => {
  const m = await Model.create(CONFIG);
  await m.dispose();
  await expectCode(() => m.forward({ batch: 1, seq: 1, tokens: [1] }), 'MINIELM_INVALID_ARGUMENT', /disposed/);
});

test.run();
