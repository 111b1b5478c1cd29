// The SFT trainer on a tiny preset: loss goes down; best/ holds the model of the lowest held-out loss;
// stop + resume gives the same model as an uninterrupted run; an AbortSignal leaves a loadable checkpoint;
// a model that overflows stops cleanly without saving.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tokenizer } from '../lib/tokenizer/index.ts';
import { trainSft, evalLoss, type RewritePair, type SftResult } from '../lib/train/sft.ts';
import { encodePairs } from '../lib/train/batches.ts';
import { Model, type ModelConfig } from '../lib/model/model.ts';
import { trainDistill } from '../lib/train/distill.ts';
import { abortAfterLoggedSteps, assertSameWeights, saveDivergingModel, trainedSteps, trainerFixture } from './helpers/train-runs.ts';

let root = '';
let tokenizer: Tokenizer;
let train: RewritePair[] = [];
let testPairs: RewritePair[] = [];
let tiny: ModelConfig;
const config = (): ModelConfig => ({ ...tiny });
const base = { batchSize: 16, optimizer: { lr: 3e-3, warmupSteps: 2 }, evalEvery: 5, seed: 3, progress: false };

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-sft-'));
  ({ train, test: testPairs, tokenizer, config: tiny } = await trainerFixture());
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * The run in `out` kept, in best/, the model of the evaluation with the lowest held-out loss (evaluations
 * after training steps; the step-0 one is of the untrained model), and recorded it. Returns that step.
 */
async function checkBest(out: string, r: SftResult): Promise<number> {
  const log = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const evals = log.filter((l) => typeof l.eval_loss === 'number' && l.step > 0);
  const best = evals.reduce((a, b) => (b.eval_loss < a.eval_loss ? b : a));
  const state = JSON.parse(await readFile(join(out, 'best', 'trainer_state.json'), 'utf8')) as { step: number; eval_loss: number };
  assert.is(state.step, best.step, `best/ holds step ${state.step}; the lowest eval loss was at step ${best.step} (${evals.map((e) => `${e.step}: ${e.eval_loss.toFixed(4)}`).join(', ')})`);
  assert.is(state.eval_loss, best.eval_loss, 'best/trainer_state.json records that eval loss');
  assert.is(r.bestEvalLoss, best.eval_loss, 'the result reports it');
  const ckpt = JSON.parse(await readFile(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')) as { bestEvalLoss: number };
  assert.is(ckpt.bestEvalLoss, best.eval_loss, 'the resumable checkpoint remembers it');
  // The kept weights are that model's: they reproduce its eval loss exactly.
  const kept = await Model.load(join(out, 'best'));
  const again = await evalLoss(kept, encodePairs(tokenizer, testPairs, kept.config.n_ctx + 1).examples, tokenizer.padId);
  assert.is(again, best.eval_loss, 'the best/ weights give the recorded eval loss');
  return best.step;
}

test('training lowers the held-out loss and keeps the best checkpoint', async () => {
  const out = join(root, 'basic');
  const r = await trainSft({ ...base, out, train, test: testPairs, tokenizer, config: config(), steps: 40, optimizer: { lr: 1e-2, warmupSteps: 2 } });
  assert.is(r.steps, 40);
  const log = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const evals = log.filter((l) => l.eval_loss !== undefined).map((l) => l.eval_loss);
  assert.ok(evals.length >= 5);
  assert.is(evals[0], log.find((l) => l.step === 0 && l.eval_loss !== undefined)!.eval_loss, 'an eval before training');
  assert.ok(evals.at(-1)! < evals[0] * 0.75, `eval loss ${evals[0]} -> ${evals.at(-1)}`);
  assert.ok(log.some((l) => 'grad_norm' in l && 'learning_rate' in l));
  const best = await Model.load(join(out, 'best'));
  assert.is(best.config.vocab_size, tokenizer.vocabSize);
  assert.ok((await readdir(join(out, 'best'))).includes('tokenizer.json'));
  await checkBest(out, r);
});

test('the kept checkpoint is the one with the best validation loss, not the last one', async () => {
  // 32 training pairs: the model overfits, so the held-out loss rises again before the end.
  const out = join(root, 'overfit');
  const r = await trainSft({ ...base, out, train: train.slice(0, 32), test: testPairs, tokenizer, config: config(), steps: 40, optimizer: { lr: 1e-2, warmupSteps: 2 } });
  assert.is(r.steps, 40);
  const step = await checkBest(out, r);
  assert.ok(step < 40, `the best evaluation should come before the last one here (it was at step ${step})`);
  assert.ok(r.lastEvalLoss > r.bestEvalLoss, `last eval ${r.lastEvalLoss} is worse than the best ${r.bestEvalLoss}`);
  const kept = await Model.load(join(out, 'best'));
  assert.not.equal(Array.from(kept.readTensor('wte.weight')), Array.from(r.model.readTensor('wte.weight')), 'best/ is not the final model');
});

test('interrupt (AbortSignal) -> checkpoint -> resume equals an uninterrupted run, bit for bit', async () => {
  const straight = await trainSft({ ...base, out: join(root, 'straight'), train, test: testPairs, tokenizer, config: config(), steps: 12 });
  const out = join(root, 'resumed');
  const controller = new AbortController();
  const first = trainSft({ ...base, out, train, test: testPairs, tokenizer, config: config(), steps: 12, checkpointEvery: 100, signal: controller.signal });
  // Abort after the model has taken a few steps.
  await abortAfterLoggedSteps(out, controller, 4);
  const part = await first;
  assert.ok(part.aborted);
  assert.ok(part.steps < 12, `stopped at ${part.steps}`);
  const loadable = await Model.load(join(out, 'checkpoint'), { trainingState: true });
  assert.is(loadable.step, part.steps);
  const done = await trainSft({ ...base, out, train, test: testPairs, tokenizer, config: config(), steps: 12 });
  assert.is(done.steps, 12);
  assertSameWeights(straight.model, done.model);
  assert.equal(await trainedSteps(out), Array.from({ length: 12 }, (_, i) => i + 1), 'each step logged once across the resume');
});

test('a diverging model stops with a clear message and saves nothing from the bad step', async () => {
  const init = join(root, 'overflow-init');
  await saveDivergingModel(config(), init);
  const out = join(root, 'overflow');
  const r = await trainSft({ ...base, out, train, test: testPairs, tokenizer, init, steps: 5 });
  assert.ok(r.stoppedOnNonFinite);
  assert.is(r.steps, 0);
  const log = await readFile(join(out, 'log.jsonl'), 'utf8');
  assert.match(log, /non_finite/);
  const files = await readdir(out);
  assert.not.ok(files.includes('checkpoint'), 'no checkpoint written from a non-finite step');
});

test('distillation toward a trained teacher lowers the reverse KL and logs it', async () => {
  const teacherRun = await trainSft({ ...base, out: join(root, 'teacher'), train, test: testPairs, tokenizer, config: { ...config(), n_embd: 48 }, steps: 30, optimizer: { lr: 1e-2 } });
  const out = join(root, 'distill');
  const r = await trainDistill({ ...base, out, train, test: testPairs, tokenizer, config: config(), teacher: teacherRun.model, steps: 30, optimizer: { lr: 1e-2 } });
  assert.is(r.steps, 30);
  const log = (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const kls = log.filter((l) => typeof l.reverse_kl === 'number').map((l) => l.reverse_kl);
  assert.is(kls.length, 30);
  const head = kls.slice(0, 3).reduce((a, b) => a + b) / 3, tail = kls.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(tail < head * 0.5, `reverse KL ${head} -> ${tail}`);
});

test.run();
