// The learned relevance scorer: rank statistics against hand-computed values (ties included), the BM25 pair
// baseline against the formula and the retriever, the query split, and a tiny scorer trained on synthetic pairs
// that must rank held-out queries' exact matches well above chance and survive save/load unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from './helpers/rejects.ts';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { averageRanks, pearson, rocAuc, spearman } from '../lib/rewards/spearman.ts';
import { Bm25PairScorer } from '../lib/rewards/bm25-pairs.ts';
import { LearnedRelevanceScorer, encodeRelevanceInput, normalizeRelevanceText, scoreModelFromTrunk, splitByQuery, trainRelevanceScorer, type LabelledPair } from '../lib/rewards/learned.ts';
import { Model } from '../lib/model/model.ts';
import { Bm25Retriever } from '../lib/retrieval/bm25.ts';
import { generateSyntheticCatalog } from '../lib/data/synthetic.ts';
import { Tokenizer, trainTokenizer } from '../lib/tokenizer/index.ts';

const close = (a: number, b: number, tol = 1e-9): boolean => Math.abs(a - b) <= tol;

test('averageRanks gives tied values the mean of their ranks', () => {
  assert.equal(Array.from(averageRanks([10, 20, 20, 30])), [1, 2.5, 2.5, 4]);
  assert.equal(Array.from(averageRanks([3, 1, 3, 3, 2])), [4, 1, 4, 4, 2]);
  assert.throws(() => averageRanks([1, Number.NaN]), /NaN/);
});

test('spearman matches hand-computed values, with and without ties', () => {
  assert.ok(close(spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]), 1));
  assert.ok(close(spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]), -1));
  // y ranks [1, 2, 3.5, 5, 3.5]; sxy = 8, sxx = 10, syy = 9.5 -> 8 / sqrt(95)
  assert.ok(close(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / Math.sqrt(95)));
  // Monotone transforms do not change it, a non-monotone one does.
  const x = [0.3, 2, -1, 7, 4, 4];
  const y = [1, 3, 0, 2, 2, 5];
  assert.ok(close(spearman(x, y), spearman(x.map((v) => Math.exp(v)), y)));
  assert.not.ok(close(spearman(x, y), spearman(x.map((v) => v * v), y)));
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])), 'a constant side has no rank correlation');
  assert.throws(() => spearman([1, 2], [1]), /equal lengths/);
  assert.ok(close(pearson([1, 2, 3], [2, 4, 7]), 0.9933992677987828, 1e-12));
});

test('rocAuc counts ties as one half', () => {
  assert.ok(close(rocAuc([0.1, 0.4, 0.35, 0.8], [false, false, true, true]), 0.75));
  // positives {0.5, 0.9} vs negatives {0.5, 0.2}: 0.5 + 1 + 1 + 1 over 4 pairs
  assert.ok(close(rocAuc([0.5, 0.5, 0.2, 0.9], [true, false, false, true]), 0.875));
  assert.ok(close(rocAuc([1, 1, 1, 1], [true, false, true, false]), 0.5), 'all tied is chance');
  assert.ok(close(rocAuc([3, 2, 1], [false, true, true]), 0), 'perfectly inverted');
  assert.ok(Number.isNaN(rocAuc([1, 2], [true, true])), 'one class only');
});

test('BM25 pair scores follow the formula and agree with the retriever', async () => {
  const titles = ['red shoe', 'blue shoe', 'red hat'];
  const bm25 = new Bm25PairScorer(titles);
  // N = 3, avglen = 2; "red" and "shoe" each in 2 titles: idf = ln(1 + 1.5 / 2.5); a length-2 title has norm k1,
  // so each matching term adds idf * 2.2 / 2.2.
  const idf = Math.log(1.6);
  assert.ok(close(bm25.score('red shoe', 'red shoe'), 2 * idf, 1e-12));
  assert.ok(close(bm25.score('red shoe', 'red hat'), idf, 1e-12));
  assert.is(bm25.score('green', 'red hat'), 0);
  // "hat" is in one title: idf = ln(1 + 2.5 / 1.5).
  assert.ok(close(bm25.score('RED hats', 'red hat'), idf + Math.log(1 + 2.5 / 1.5), 1e-12), 'same analyzer: lower-casing and plural stemming');

  const catalog = [...generateSyntheticCatalog({ seed: 5, products: 200, queries: 20 }).products.values()];
  const retriever = new Bm25Retriever();
  await retriever.index(catalog);
  const pairs = new Bm25PairScorer(catalog.map((p) => p.title));
  const titleOf = new Map(catalog.map((p) => [p.id, p.title]));
  for (const query of ['red cotton bath towel', 'vintage lamp', 'large steel']) {
    const hits = retriever.searchOne(query, 5);
    assert.ok(hits.length > 0);
    for (const h of hits) assert.ok(close(pairs.score(query, titleOf.get(h.id) as string), h.score, 1e-9), `${query} / ${h.id}`);
  }
});

test('splitByQuery keeps every query on one side and is stable', () => {
  const pairs = Array.from({ length: 3000 }, (_, i) => ({ query: `query ${i % 600}`, title: `t${i}`, gain: 0 }));
  const a = splitByQuery(pairs, { seed: 7 });
  const side = new Map<string, string>();
  for (const [name, list] of Object.entries(a)) {
    for (const p of list as typeof pairs) {
      assert.ok(side.get(p.query) === undefined || side.get(p.query) === name, `${p.query} on two sides`);
      side.set(p.query, name);
    }
  }
  assert.is(a.train.length + a.dev.length + a.test.length, 3000);
  assert.ok(a.test.length > 150 && a.test.length < 500, `test side ${a.test.length} of 3000 for 10 %`);
  assert.equal(splitByQuery(pairs, { seed: 7 }).test, a.test);
  assert.not.equal(splitByQuery(pairs, { seed: 8 }).test, a.test);
  // "Query  1" and "query 1" are one query.
  const b = splitByQuery([{ query: 'Query  1', title: 'x', gain: 0 }, ...pairs], { seed: 7 });
  const sideOf1 = a.train.some((p) => p.query === 'query 1') ? 'train' : a.dev.some((p) => p.query === 'query 1') ? 'dev' : 'test';
  assert.ok(b[sideOf1 as 'train'].some((p) => p.query === 'Query  1'));
});

test('encodeRelevanceInput is query <sep> title <eos>, truncated to n_ctx', async () => {
  const tok = await trainTokenizer(['red shoes', 'blue running shoes for men'], { vocabSize: 300 });
  const ids = encodeRelevanceInput(tok, 'red shoes', 'blue running shoes for men', { nCtx: 64, maxQueryTokens: 8 });
  const q = tok.encode(' red shoes');
  assert.equal(ids.slice(0, q.length), q);
  // Case and leading-space variants of a word become the same tokens, in the query and in the title.
  assert.is(normalizeRelevanceText('  Red\tShoes '), ' red shoes');
  assert.equal(encodeRelevanceInput(tok, 'Red Shoes', 'BLUE', { nCtx: 64, maxQueryTokens: 8 }), encodeRelevanceInput(tok, 'red shoes', ' blue', { nCtx: 64, maxQueryTokens: 8 }));
  assert.is(ids[q.length], tok.sepId);
  assert.is(ids[ids.length - 1], tok.eosId);
  const short = encodeRelevanceInput(tok, 'red shoes red shoes red shoes', 'blue running shoes for men '.repeat(5), { nCtx: 12, maxQueryTokens: 4 });
  assert.is(short.length, 12);
  assert.is(short[4], tok.sepId, 'the query is cut to maxQueryTokens');
  assert.is(short[11], tok.eosId, 'the end token survives truncation');
});

test('a tiny scorer trained on synthetic pairs ranks held-out queries well above chance; save/load keeps scores', async () => {
  const catalog = generateSyntheticCatalog({ seed: 3, products: 400, queries: 1200 });
  const pairs: LabelledPair[] = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)?.title as string, gain: j.gain }));
  const sides = splitByQuery(pairs, { seed: 1, dev: 0.15, test: 0.15 });
  let reports = 0;
  const result = await trainRelevanceScorer(
    sides.train,
    sides.dev,
    { vocabSize: 400, nCtx: 32, maxQueryTokens: 12, nLayer: 1, nHead: 2, nEmbd: 32, pretrainEpochs: 0, weightDecay: 0.01, epochs: 3, batchSize: 32, lr: 3e-3, warmupSteps: 20, evalEvery: 100, seed: 2, relevantGain: 1, lexical: false },
    { onProgress: () => reports++ },
  );
  assert.ok(reports > 0);
  assert.ok(result.history.length >= 2);
  assert.is(result.lexical, undefined, 'lexical: false trains the network alone');
  assert.is(result.best.spearman, Math.max(...result.history.map((h) => h.spearman)), 'the kept checkpoint is the best dev Spearman');
  const scorer = result.scorer;
  const testLogits = await scorer.scoreLogits(sides.test);
  const exact = sides.test.map((p) => p.gain === 1);
  const auc = rocAuc(testLogits, exact);
  const rho = spearman(testLogits, sides.test.map((p) => p.gain));
  // ~1,100 held-out pairs: chance gives AUC 0.5 ± 0.02 and Spearman 0 ± 0.03, so these bounds are many
  // standard errors above chance (a few hundred steps of a 1-layer width-32 model measured 0.68 and 0.28).
  assert.ok(auc > 0.6, `held-out AUC (exact vs rest) ${auc.toFixed(3)} should clearly beat 0.5`);
  assert.ok(rho > 0.15, `held-out Spearman ${rho.toFixed(3)} should clearly beat 0`);

  const gains = await scorer.scoreBatch(sides.test.slice(0, 40).map((p) => ({ query: p.query, product: { id: 'x', title: p.title } })));
  assert.ok(gains.every((g) => g > 0 && g < 1));
  gains.forEach((g, i) => assert.ok(close(g, 1 / (1 + Math.exp(-testLogits[i])), 1e-6), 'scoreBatch is the sigmoid of the head, in input order'));

  const dir = await mkdtemp(join(tmpdir(), 'minielm-relevance-'));
  try {
    await scorer.save(dir);
    const meta = JSON.parse(await readFile(join(dir, 'relevance.json'), 'utf8')) as { input: { nCtx: number } };
    assert.is(meta.input.nCtx, 32);
    const loaded = await LearnedRelevanceScorer.load(dir, { batchSize: 7 });
    const again = await loaded.scoreLogits(sides.test);
    again.forEach((v, i) => assert.ok(close(v, testLogits[i], 1e-5), `pair ${i}: ${v} vs ${testLogits[i]} (other batch size, same scores)`));
    await loaded.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await scorer.dispose();
});

test('the language-model warm-up runs first and lowers its next-token loss', async () => {
  const catalog = generateSyntheticCatalog({ seed: 4, products: 200, queries: 300 });
  const pairs: LabelledPair[] = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)?.title as string, gain: j.gain }));
  const sides = splitByQuery(pairs, { seed: 1, dev: 0.2, test: 0 });
  const phases: { phase?: string; loss: number }[] = [];
  const result = await trainRelevanceScorer(
    sides.train,
    sides.dev,
    { vocabSize: 400, nCtx: 32, nLayer: 1, nHead: 2, nEmbd: 32, pretrainEpochs: 3, epochs: 1, batchSize: 32, lr: 3e-3, warmupSteps: 5, evalEvery: 1000, seed: 3 },
    { onProgress: (p) => phases.push({ phase: p.phase, loss: p.loss }), progressEvery: 5 },
  );
  const pre = phases.filter((p) => p.phase === 'pretrain');
  assert.ok(pre.length >= 4, `${pre.length} pretraining reports`);
  const firstScore = phases.findIndex((p) => p.phase !== 'pretrain');
  assert.ok(firstScore > 0 && phases.slice(firstScore).every((p) => p.phase !== 'pretrain'), 'pretraining comes before the score head');
  assert.ok(pre[pre.length - 1].loss < pre[0].loss - 1, `LM loss ${pre[0].loss.toFixed(2)} -> ${pre[pre.length - 1].loss.toFixed(2)}`);
  assert.ok(Number.isFinite(result.best.spearman));
  await result.scorer.dispose();
});

/** A causal-LM checkpoint folder as "minielm train pretrain" writes one: config, weights (no score.weight), tokenizer. */
async function writeTrunk(dir: string, texts: string[], config: { n_ctx: number; n_layer: number; n_head: number; n_embd: number }): Promise<Model> {
  const tokenizer = await trainTokenizer(texts, { vocabSize: 400 });
  const trunk = await Model.create({ vocab_size: tokenizer.vocabSize, ...config }, { seed: 11 });
  await trunk.save(dir);
  await tokenizer.save(dir);
  return trunk;
}

test('--init: the score model carries every trunk tensor unchanged plus a new small score head', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'minielm-trunk-'));
  try {
    const trunk = await writeTrunk(dir, ['red shoes', 'blue running shoes for men', 'steel hammer'], { n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 32 });
    const { model, tokenizer } = await scoreModelFromTrunk(dir, { seed: 5 });
    assert.equal(model.config, { ...trunk.config, score_head: true });
    assert.is(tokenizer.vocabSize, trunk.config.vocab_size);
    const names = model.tensors().map((t) => t.name);
    assert.equal(names.filter((n) => n !== 'score.weight').sort(), trunk.tensors().map((t) => t.name).sort());
    for (const t of trunk.tensors()) assert.equal(Array.from(model.readTensor(t.name)), Array.from(trunk.readTensor(t.name)), t.name);
    const head = model.readTensor('score.weight');
    assert.is(head.length, 32);
    assert.ok(head.some((v) => v !== 0) && head.every((v) => Math.abs(v) < 0.2), 'score.weight is small and random');
    // A scorer folder (it has score.weight) is not a trunk.
    const scorerDir = join(dir, 'scorer');
    await new LearnedRelevanceScorer(model, tokenizer, { nCtx: 24, maxQueryTokens: 8 }).save(scorerDir);
    await rejects(() => scoreModelFromTrunk(scorerDir), /already has a score head/);
    await rejects(() => scoreModelFromTrunk(join(dir, 'absent')), /no config\.json and model\.safetensors/);
    await model.dispose();
    await trunk.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('trainRelevanceScorer with init trains on the trunk: its tokenizer and sizes, nCtx capped by its n_ctx', async () => {
  const catalog = generateSyntheticCatalog({ seed: 6, products: 150, queries: 200 });
  const pairs: LabelledPair[] = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)?.title as string, gain: j.gain }));
  const sides = splitByQuery(pairs, { seed: 1, dev: 0.2, test: 0 });
  const dir = await mkdtemp(join(tmpdir(), 'minielm-trunk-'));
  try {
    const texts = [...catalog.products.values()].map((p) => normalizeRelevanceText(p.title)).concat(catalog.queries.map((q) => normalizeRelevanceText(q.text)));
    const trunk = await writeTrunk(dir, texts, { n_ctx: 40, n_layer: 1, n_head: 2, n_embd: 32 });
    const trunkTokenizer = await Tokenizer.load(dir);
    const result = await trainRelevanceScorer(sides.train, sides.dev, { init: dir, maxQueryTokens: 12, pretrainEpochs: 1, epochs: 1, batchSize: 32, lr: 3e-3, warmupSteps: 5, evalEvery: 1000, seed: 3 });
    assert.equal(result.config, { ...trunk.config, score_head: true });
    assert.is(result.scorer.format.nCtx, 40, 'nCtx defaults to min(48, the trunk n_ctx)');
    for (const text of [' red lamp', ' blue steel hammer']) assert.equal(result.scorer.tokenizer.encode(text), trunkTokenizer.encode(text), 'the trunk tokenizer is used, none is trained');
    assert.is(result.scorer.tokenizer.vocabSize, trunkTokenizer.vocabSize);
    assert.ok(result.steps > 0 && Number.isFinite(result.best.spearman));
    await result.scorer.dispose();
    await rejects(() => trainRelevanceScorer(sides.train, sides.dev, { init: dir, vocabSize: 500, nEmbd: 64 }), /brings its own tokenizer and sizes; drop vocabSize, nEmbd/);
    await rejects(() => trainRelevanceScorer(sides.train, sides.dev, { init: dir, nCtx: 64 }), /nCtx 64 exceeds the n_ctx 40/);
    await trunk.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad inputs fail with clear errors', async () => {
  await rejects(() => trainRelevanceScorer([], [{ query: 'a', title: 'b', gain: 1 }]), /at least one training pair/);
  await rejects(() => trainRelevanceScorer([{ query: 'a', title: 'b', gain: 2 }], [{ query: 'a', title: 'b', gain: 1 }]), /gain 2/);
  await rejects(() => LearnedRelevanceScorer.load(join(tmpdir(), 'no-such-minielm-scorer')), /relevance train/);
});

test.run();
