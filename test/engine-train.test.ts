// Training behaviour: a tiny model memorises a small fixed corpus; gradient accumulation equals one big
// batch; the event loop keeps running during training; an AbortSignal stops between steps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Model, type Batch } from '../lib/model/model.ts';

const CONFIG = { vocab_size: 32, n_ctx: 16, n_layer: 2, n_head: 2, n_embd: 32 };

// Eight fixed sequences of 12 tokens: token t+1 follows t along a per-sequence stride.
function corpus(): Batch {
  const B = 8, T = 12;
  const seqs: number[][] = [];
  for (let b = 0; b < B; b++) seqs.push(Array.from({ length: T + 1 }, (_, t) => (3 + b * 5 + t * (b + 1)) % 32));
  return {
    batch: B,
    seq: T,
    tokens: seqs.flatMap((s) => s.slice(0, T)),
    targets: seqs.flatMap((s) => s.slice(1)),
  };
}

test('a tiny model overfits a fixed corpus: loss < 0.05 within 300 steps', async () => {
  const model = await Model.create(CONFIG, { seed: 1 });
  const data = corpus();
  const first = (await model.forward(data)).loss!;
  assert.ok(first > 3, `initial loss ${first} should be near ln(32) = 3.47`);
  let last = Infinity;
  for (let i = 0; i < 300 && last >= 0.05; i++) last = (await model.trainStep(data, { lr: 1e-2, warmupSteps: 10, totalSteps: 300, weightDecay: 0 })).loss;
  assert.ok(last < 0.05, `loss after training ${last}`);
  const evalLoss = (await model.forward(data)).loss!;
  assert.ok(evalLoss < 0.05, `eval loss ${evalLoss}`);
});

test('loss mask: only masked-in tokens count', async () => {
  const model = await Model.create(CONFIG, { seed: 2 });
  const data = corpus();
  const n = data.batch * data.seq;
  const mask = Float32Array.from({ length: n }, (_, i) => (i % 12 >= 6 ? 1 : 0));
  const full = await model.forward(data);
  const masked = await model.forward({ ...data, lossMask: mask });
  let want = 0;
  for (let i = 0; i < n; i++) if (mask[i]) want += full.losses![i];
  assert.ok(Math.abs(masked.loss! - want / 48) < 1e-5, `masked loss ${masked.loss} vs ${want / 48}`);
});

test('gradient accumulation over 2 micro-batches equals one step on the whole batch', async () => {
  const data = corpus();
  const half = (b: Batch, part: number): Batch => {
    const n = (b.batch / 2) * b.seq;
    const sl = (a: ArrayLike<number>) => Array.from(a).slice(part * n, (part + 1) * n);
    return { batch: b.batch / 2, seq: b.seq, tokens: sl(b.tokens), targets: sl(b.targets!) };
  };
  const a = await Model.create(CONFIG, { seed: 3 });
  const b = await Model.create(CONFIG, { seed: 3 });
  const opt = { lr: 1e-3 };
  const ra = await a.trainStep(data, opt);
  const rb = await b.trainStep([half(data, 0), half(data, 1)], opt);
  assert.ok(Math.abs(ra.loss - rb.loss) < 1e-5, `loss ${ra.loss} vs ${rb.loss}`);
  assert.ok(Math.abs(ra.gradNorm - rb.gradNorm) / ra.gradNorm < 1e-4, `grad norm ${ra.gradNorm} vs ${rb.gradNorm}`);
  const wa = a.readTensor('h.0.mlp.c_fc.weight'), wb = b.readTensor('h.0.mlp.c_fc.weight');
  let worst = 0;
  for (let i = 0; i < wa.length; i++) worst = Math.max(worst, Math.abs(wa[i] - wb[i]));
  assert.ok(worst < 1e-6, `parameters differ by ${worst}`);
});

test('a timer keeps firing on the event loop while a long training job runs', async () => {
  const model = await Model.create({ vocab_size: 512, n_ctx: 64, n_layer: 4, n_head: 4, n_embd: 128 }, { seed: 4 });
  const B = 16, T = 64;
  const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 31) % 512);
  const batch = { batch: B, seq: T, tokens, targets: tokens };
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = Date.now();
  await model.train(Array.from({ length: 6 }, () => batch), { lr: 1e-3 });
  const elapsed = Date.now() - started;
  clearInterval(timer);
  // The interval fires about elapsed/5 times if the loop is free; a blocked loop gives ~0-6 ticks.
  assert.ok(ticks >= Math.min(20, elapsed / 20), `only ${ticks} ticks in ${elapsed} ms of training`);
});

test('an AbortSignal stops a multi-step job between steps, leaving a usable model', async () => {
  const model = await Model.create(CONFIG, { seed: 5 });
  const data = corpus();
  const controller = new AbortController();
  const result = await model.train(Array.from({ length: 50 }, () => data), { lr: 1e-3 }, {
    signal: controller.signal,
    onStep: (_r, i) => {
      if (i === 2) controller.abort();
    },
  });
  assert.ok(result.aborted);
  assert.is(result.steps.length, 3);
  assert.is(model.step, 3);
  const after = await model.forward(data);
  assert.ok(Number.isFinite(after.loss!));
});

test('NaN hyper-parameters and non-finite training are refused without touching the model', async () => {
  const model = await Model.create(CONFIG, { seed: 6 });
  const data = corpus();
  const before = model.readTensor('wte.weight');
  for (const opt of [{ lr: NaN }, { lr: 1e-3, beta1: NaN }, { lr: 1e-3, weightDecay: Infinity }, { lr: 1e-3, gradClip: -1 }]) {
    try {
      await model.trainStep(data, opt);
      assert.unreachable(`accepted ${JSON.stringify(opt)}`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'MINIELM_INVALID_ARGUMENT');
    }
  }
  // A weight that became NaN (e.g. loaded from a broken source) makes the gradients non-finite: the step
  // must refuse with MINIELM_NON_FINITE and leave every parameter as it was.
  const w = model.readTensor('h.0.mlp.c_fc.weight');
  w[5] = NaN;
  model.writeTensor('h.0.mlp.c_fc.weight', w);
  const wpe = model.readTensor('wpe.weight');
  try {
    await model.trainStep(data, { lr: 1e-3 });
    assert.unreachable('trained through NaN');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    assert.is(e.code, 'MINIELM_NON_FINITE');
    assert.match(e.message!, /not finite/);
  }
  assert.equal(Array.from(model.readTensor('wpe.weight')), Array.from(wpe), 'parameters unchanged');
  assert.is(model.step, 0);
  assert.ok(before.length > 0);
});

test.run();
