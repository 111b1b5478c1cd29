// Catalog pretraining on a tiny preset: packing wastes no position and keeps held-out documents out of
// training; the held-out loss goes down; stop + resume equals an uninterrupted run bit for bit; a resume
// with other data is refused; SFT started from the pretrained folder starts from its weights; the CLI runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, readFile, readdir, writeFile, mkdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tokenizer } from '../lib/tokenizer/index.ts';
import { trainPretrain, pretrainTexts, packTexts } from '../lib/train/pretrain.ts';
import { trainSft, evalLoss, type RewritePair } from '../lib/train/sft.ts';
import { encodePairs } from '../lib/train/batches.ts';
import { Model, type ModelConfig } from '../lib/model/model.ts';
import { abortAfterLoggedSteps, assertSameWeights, saveDivergingModel, trainedSteps, trainerFixture } from './helpers/train-runs.ts';

const repo = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
let root = '';
let tokenizer: Tokenizer;
let texts: string[] = [];
let train: RewritePair[] = [];
let testPairs: RewritePair[] = [];
let tiny: ModelConfig;
const config = (): ModelConfig => ({ ...tiny });
const base = { batchSize: 16, optimizer: { lr: 1e-2, warmupSteps: 2 }, evalEvery: 5, seed: 3, progress: false };

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'minielm-pretrain-'));
  const f = await trainerFixture();
  ({ train, test: testPairs, tokenizer, config: tiny } = f);
  texts = pretrainTexts({ products: f.catalog.products.values(), queries: f.catalog.queries.map((q) => q.text), heldOutQueries: f.allTest.flatMap((p) => [p.query, p.rewrite]) });
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** "CODE: message" of the error `p` rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  assert.unreachable('expected a rejection');
  return '';
}

const readLog = async (out: string): Promise<Record<string, number>[]> =>
  (await readFile(join(out, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

test('pretrainTexts: titles, brands, queries; test queries left out; entities decoded; no duplicates', () => {
  const t = pretrainTexts({
    products: [{ title: 'Briggs &amp; Stratton Mower', brand: 'Toro' }, { title: 'Toro Blower', brand: 'Toro', description: 'Moves  leaves.' }, { title: 'Toro Blower' }],
    queries: ['gas mower', 'Leaf  Blower', 'gas mower', 'drill'],
    heldOutQueries: ['leaf blower'],
  });
  assert.equal(t, ['Toro Briggs & Stratton Mower', 'Toro Blower', 'Moves leaves.', 'gas mower', 'drill']);
});

test('packing: full rows, <eos> between documents, held-out documents never in training', () => {
  const seqLen = 16;
  const p = packTexts(tokenizer, texts, seqLen, { seed: 1, evalFraction: 0.1 });
  for (const e of [...p.train, ...p.test]) {
    assert.is(e.ids.length, seqLen + 1);
    assert.ok(e.lossMask.length === seqLen + 1 && e.lossMask.every((m) => m === 1), 'every token is a target: no padding');
  }
  // Rows overlap by one token: row k ends where row k + 1 starts, so the stream is recovered exactly.
  for (let k = 0; k + 1 < p.train.length; k++) assert.is(p.train[k].ids[seqLen], p.train[k + 1].ids[0]);
  const docsOf = (rows: typeof p.train): string[] => {
    const stream = [...rows[0].ids, ...rows.slice(1).flatMap((r) => r.ids.slice(1))];
    // The first and last pieces may be cut by the row boundaries; the ones in between are whole documents.
    return tokenizer.decode(stream).split('<|endoftext|>').slice(1, -1);
  };
  const trainDocs = docsOf(p.train);
  const evalDocs = docsOf(p.test);
  assert.ok(trainDocs.length > 100 && evalDocs.length > 5, `${trainDocs.length} train / ${evalDocs.length} held-out documents`);
  const known = new Set(texts);
  assert.ok(trainDocs.every((d) => known.has(d)) && evalDocs.every((d) => known.has(d)), 'documents decode back to the texts');
  const trainSet = new Set(trainDocs);
  assert.ok(evalDocs.every((d) => !trainSet.has(d)), 'no held-out document is trained on');
  assert.is(p.trainTokens, p.train.length * seqLen);
  assert.equal(packTexts(tokenizer, texts, seqLen, { seed: 1, evalFraction: 0.1 }).train.slice(0, 5), p.train.slice(0, 5), 'seeded');
  assert.is(packTexts(tokenizer, texts, seqLen, { seed: 1, maxEvalRows: 3 }).test.length, 3, 'maxEvalRows caps the held-out rows');
  assert.throws(() => packTexts(tokenizer, ['one'], seqLen, { seed: 1 }), /at least 2 distinct/);
});

test('pretraining lowers the held-out loss and keeps the best checkpoint with its tokenizer', async () => {
  const out = join(root, 'basic');
  const r = await trainPretrain({ ...base, out, tokenizer, texts, config: config(), steps: 40 });
  assert.is(r.steps, 40);
  assert.ok(!r.aborted && !r.stoppedOnNonFinite);
  const log = await readLog(out);
  const start = log.find((l) => (l as { event?: unknown }).event === 'start')!;
  assert.is(start.seq_len, 32, 'rows default to n_ctx tokens');
  assert.is(start.train_tokens, r.trainTokens);
  const evals = log.filter((l) => typeof l.eval_loss === 'number').map((l) => l.eval_loss);
  assert.is(evals.length, 9, 'step 0 and every 5 steps');
  assert.ok(evals.at(-1)! < evals[0] * 0.75, `held-out loss ${evals[0]} -> ${evals.at(-1)}`);
  assert.is(r.bestEvalLoss, Math.min(...evals.slice(1)));
  assert.ok((await readdir(join(out, 'best'))).includes('tokenizer.json'));
  assert.ok((await readdir(join(out, 'checkpoint'))).includes('tokenizer.json'));
  const state = JSON.parse(await readFile(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')) as { step: number; seqLen: number; trainTokens: number };
  assert.equal([state.step, state.seqLen, state.trainTokens], [40, 32, r.trainTokens]);
  // The kept weights reproduce the recorded best loss on the same held-out rows.
  const kept = await Model.load(join(out, 'best'));
  assert.is(await evalLoss(kept, packTexts(tokenizer, texts, 32, { seed: base.seed }).test, tokenizer.padId), r.bestEvalLoss);
});

test('interrupt (AbortSignal) -> checkpoint -> resume equals an uninterrupted run, bit for bit', async () => {
  const straight = await trainPretrain({ ...base, out: join(root, 'straight'), tokenizer, texts, config: config(), steps: 12 });
  const out = join(root, 'resumed');
  const controller = new AbortController();
  const first = trainPretrain({ ...base, out, tokenizer, texts, config: config(), steps: 12, checkpointEvery: 100, signal: controller.signal });
  await abortAfterLoggedSteps(out, controller, 4);
  const part = await first;
  assert.ok(part.aborted);
  assert.ok(part.steps < 12, `stopped at ${part.steps}`);
  assert.is((await Model.load(join(out, 'checkpoint'), { trainingState: true })).step, part.steps);
  const done = await trainPretrain({ ...base, out, tokenizer, texts, config: config(), steps: 12 });
  assert.is(done.steps, 12);
  assertSameWeights(straight.model, done.model);
  assert.equal(await trainedSteps(out), Array.from({ length: 12 }, (_, i) => i + 1), 'each step logged once across the resume');
  // Other data would not be a resume: the checkpoint remembers the row length and the corpus size.
  assert.match(await failure(trainPretrain({ ...base, out, tokenizer, texts, config: config(), steps: 20, seqLen: 16 })), /MINIELM_CHECKPOINT: .*seqLen = 32, this run has 16/);
  assert.match(await failure(trainPretrain({ ...base, out, tokenizer, texts: texts.slice(0, -50), config: config(), steps: 20 })), /MINIELM_CHECKPOINT: .*trainTokens = \d+, this run has/);
});

test('a diverging model stops with a clear message and saves nothing from the bad step', async () => {
  const init = join(root, 'overflow-init');
  await saveDivergingModel(config(), init);
  const out = join(root, 'overflow');
  const r = await trainPretrain({ ...base, out, tokenizer, texts, init, steps: 5 });
  assert.ok(r.stoppedOnNonFinite);
  assert.is(r.steps, 0);
  assert.match(await readFile(join(out, 'log.jsonl'), 'utf8'), /non_finite/);
  assert.not.ok((await readdir(out)).includes('checkpoint'));
});

test('SFT with init = the pretrained best/ starts from those weights', async () => {
  const pre = join(root, 'basic', 'best');
  const pretrained = await Model.load(pre);
  const examples = encodePairs(tokenizer, testPairs, pretrained.config.n_ctx + 1).examples;
  const fromPretrained = await evalLoss(pretrained, examples, tokenizer.padId);
  const fresh = await evalLoss(await Model.create(config(), { seed: base.seed }), examples, tokenizer.padId);
  const out = join(root, 'sft-init');
  // config is ignored when init is given: a wrong one must not matter.
  const r = await trainSft({ ...base, out, train, test: testPairs, tokenizer, init: pre, config: { ...config(), n_embd: 64 }, steps: 5 });
  assert.is(r.model.config.n_embd, 32);
  const step0 = (await readLog(out)).find((l) => l.step === 0 && typeof l.eval_loss === 'number')!.eval_loss;
  assert.is(step0, fromPretrained, 'the first evaluation is the pretrained model\'s');
  assert.ok(fromPretrained < fresh, `pretraining already helps on rewrites (${fresh} -> ${fromPretrained})`);
});

test('CLI: minielm train pretrain on the synthetic catalog, then train sft --init with denoising pairs', async () => {
  const out = join(root, 'cli');
  const cli = (...args: string[]): { status: number | null; out: string } => {
    const r = spawnSync(process.execPath, [join(repo, 'bin', 'minielm.js'), ...args], { cwd: repo, encoding: 'utf8' });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const help = cli('train', '--help');
  assert.match(help.out, /train pretrain|pretrain  causal-LM/);
  assert.match(help.out, /--denoise-ratio R/);
  assert.match(cli('train', 'pretrain', '--out', out).out, /MINIELM_INVALID_ARGUMENT.*--data/);
  const r = cli('train', 'pretrain', '--data', 'synthetic', '--out', join(out, 'pre'), '--preset', 'tiny', '--n-layer', '1', '--n-embd', '32', '--n-head', '2', '--n-ctx', '32',
    '--vocab', '300', '--steps', '4', '--batch', '8', '--eval-every', '2', '--threads', '1');
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /SYNTHETIC/);
  assert.match(r.out, /left out the \d+ test queries/);
  assert.match(r.out, /pretrain: 4 steps over \d+ training tokens/);
  // SFT from it: the tokenizer comes from --init, and a quarter of the pairs are denoising pairs.
  const pairs = join(out, 'pairs');
  await mkdir(pairs, { recursive: true });
  const lines = (p: RewritePair[]): string => p.map((x) => JSON.stringify(x)).join('\n');
  await writeFile(join(pairs, 'train.jsonl'), lines(train.slice(0, 60)));
  await writeFile(join(pairs, 'test.jsonl'), lines(testPairs.slice(0, 8)));
  const s = cli('train', 'sft', '--pairs', pairs, '--init', join(out, 'pre', 'best'), '--out', join(out, 'sft'), '--steps', '2', '--batch', '8', '--eval-every', '2', '--threads', '1');
  assert.is(s.status, 0, s.out);
  assert.match(s.out, /60 Q2Q pairs \+ 20 denoising pairs \(25\.0% of the training set/);
  assert.match(s.out, /sft: 2 steps/);
});

test.run();
