// The score head learns a separable relevance signal, saves/loads as GPT2ForSequenceClassification, and
// scores padded batches the same as one sequence at a time.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../lib/model/model.ts';

const CONFIG = { vocab_size: 40, n_ctx: 12, n_layer: 1, n_head: 2, n_embd: 16, score_head: true };

// "Relevant" sequences contain token 7 somewhere; label 1, else 0. Lengths vary (right padding).
function data(seed: number, n: number): { tokens: number[][]; labels: number[] } {
  let s = seed;
  const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const tokens: number[][] = [], labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rnd() * 8);
    const seq = Array.from({ length: len }, () => 8 + Math.floor(rnd() * 32));
    const rel = i % 2 === 0;
    if (rel) seq[Math.floor(rnd() * len)] = 7;
    tokens.push(seq);
    labels.push(rel ? 1 : 0);
  }
  return { tokens, labels };
}

function pad(seqs: number[][]): { tokens: number[]; attentionMask: number[]; batch: number; seq: number } {
  const T = Math.max(...seqs.map((s) => s.length));
  const tokens: number[] = [], attentionMask: number[] = [];
  for (const s of seqs) for (let t = 0; t < T; t++) {
    tokens.push(t < s.length ? s[t] : 0);
    attentionMask.push(t < s.length ? 1 : 0);
  }
  return { tokens, attentionMask, batch: seqs.length, seq: T };
}

test('the score head learns "contains token 7" (held-out accuracy > 0.9)', async () => {
  const model = await Model.create(CONFIG, { seed: 3 });
  const train = data(1, 256);
  for (let step = 0; step < 150; step++) {
    const i = (step * 32) % 256;
    await model.trainScoreStep(pad(train.tokens.slice(i, i + 32)), train.labels.slice(i, i + 32), { lr: 3e-3, weightDecay: 0 });
  }
  const test_ = data(99, 200);
  const scores = await model.score(pad(test_.tokens));
  let correct = 0;
  scores.forEach((s, i) => (correct += (s > 0 ? 1 : 0) === test_.labels[i] ? 1 : 0));
  assert.ok(correct / 200 > 0.9, `held-out accuracy ${correct / 200}`);
});

test('padded batch scores equal one-at-a-time scores; save/load keeps them', async () => {
  const model = await Model.create(CONFIG, { seed: 4 });
  const { tokens } = data(5, 6);
  const together = await model.score(pad(tokens));
  for (let i = 0; i < tokens.length; i++) {
    const alone = await model.score(pad([tokens[i]]));
    assert.ok(Math.abs(alone[0] - together[i]) < 1e-5, `sequence ${i}: ${alone[0]} vs ${together[i]}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'minielm-score-'));
  try {
    await model.save(dir);
    const cfg = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { architectures: string[]; num_labels: number };
    assert.equal(cfg.architectures, ['GPT2ForSequenceClassification']);
    assert.is(cfg.num_labels, 1);
    const loaded = await Model.load(dir);
    assert.ok(loaded.config.score_head);
    const again = await loaded.score(pad(tokens));
    assert.equal(Array.from(again), Array.from(together));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad score inputs give clear errors', async () => {
  const lm = await Model.create({ ...CONFIG, score_head: false });
  try {
    await lm.score(pad([[1, 2]]));
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /no score head/);
  }
  const model = await Model.create(CONFIG);
  for (const labels of [[1.5], [NaN], [0, 1]]) {
    try {
      await model.trainScoreStep(pad([[1, 2]]), labels, { lr: 1e-3 });
      assert.unreachable(`accepted labels ${labels}`);
    } catch (err) {
      assert.is((err as { code?: string }).code, 'MINIELM_INVALID_ARGUMENT');
    }
  }
});

test.run();
