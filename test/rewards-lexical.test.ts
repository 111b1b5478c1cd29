// M1's lexical stage: the boosted trees (splits, missing values, interactions, seeding, bad input), the lexical
// match features on real-looking Home Depot queries (typos, merged words, numbers), and a scorer trained with the
// stage: gains are the blend, they survive save / load, a pair's gain does not depend on its batch, and the
// catalog statistics can be swapped for the catalog being scored.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from './helpers/rejects.ts';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isGbdtModel, predictGbdt, trainGbdt } from '../lib/rewards/gbdt.ts';
import { LEXICAL_FEATURES, LexicalFeatures } from '../lib/rewards/lexical-features.ts';
import { Bm25PairScorer } from '../lib/rewards/bm25-pairs.ts';
import { LearnedRelevanceScorer, fitLexicalStage, splitByQuery, trainRelevanceScorer, type LabelledPair } from '../lib/rewards/learned.ts';
import { Model } from '../lib/model/model.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { spearman } from '../lib/rewards/spearman.ts';
import { createRng } from '../lib/data/random.ts';
import { generateSyntheticCatalog } from '../lib/data/synthetic.ts';

function table(n: number, seed: number, y: (x: number[]) => number): { rows: Float64Array; targets: number[] } {
  const rng = createRng(seed);
  const rows = new Float64Array(n * 3);
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = [rng(), rng(), rng()];
    rows.set(x, i * 3);
    targets.push(y(x));
  }
  return { rows, targets };
}

test('trees fit a step in one feature and ignore the noise features', async () => {
  const { rows, targets } = table(2000, 1, (x) => (x[1] > 0.6 ? 1 : 0));
  const model = await trainGbdt(rows, targets, ['a', 'b', 'c'], { rounds: 60, depth: 2, learningRate: 0.3, minLeaf: 10 });
  assert.is(model.trees[0].feature[0], 1, 'the first split is on the informative feature');
  assert.ok(Math.abs(model.trees[0].threshold[0] - 0.6) < 0.03, `threshold ${model.trees[0].threshold[0]} near 0.6`);
  const probe = new Float64Array([0.5, 0.2, 0.5, 0.5, 0.9, 0.5]);
  const [low, high] = predictGbdt(model, probe);
  assert.ok(low < 0.05 && high > 0.95, `predictions ${low} and ${high}`);
});

test('trees learn an interaction that one split cannot, and depth 1 cannot', async () => {
  const xor = (x: number[]): number => ((x[0] > 0.5) !== (x[2] > 0.5) ? 1 : 0);
  const { rows, targets } = table(3000, 2, xor);
  const held = table(1000, 3, xor);
  const mse = (m: Awaited<ReturnType<typeof trainGbdt>>): number => {
    const p = predictGbdt(m, held.rows);
    return p.reduce((s, v, i) => s + (v - held.targets[i]) ** 2, 0) / p.length;
  };
  const deep = await trainGbdt(rows, targets, ['a', 'b', 'c'], { rounds: 80, depth: 2, learningRate: 0.3, minLeaf: 10 });
  const stump = await trainGbdt(rows, targets, ['a', 'b', 'c'], { rounds: 80, depth: 1, learningRate: 0.3, minLeaf: 10 });
  assert.ok(mse(deep) < 0.02, `depth 2 held-out MSE ${mse(deep)}`);
  assert.ok(mse(stump) > 0.2, `depth 1 held-out MSE ${mse(stump)} (a sum of stumps cannot express XOR)`);
});

test('missing values (NaN) go right in training and prediction alike; seeds make fits repeatable', async () => {
  // y is 1 exactly where the feature is missing; NaN must be separable from every finite value.
  const n = 600;
  const rows = new Float64Array(n);
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    const missing = i % 3 === 0;
    rows[i] = missing ? Number.NaN : i / n;
    targets.push(missing ? 1 : 0);
  }
  const model = await trainGbdt(rows, targets, ['x'], { rounds: 40, depth: 1, learningRate: 0.5, minLeaf: 5 });
  const [finiteBig, nan] = predictGbdt(model, new Float64Array([10, Number.NaN]));
  assert.ok(nan > 0.9 && finiteBig < 0.1, `NaN -> ${nan}, 10 -> ${finiteBig}`);
  const again = await trainGbdt(rows, targets, ['x'], { rounds: 40, depth: 1, learningRate: 0.5, minLeaf: 5 });
  assert.equal(again, model);
  assert.equal(JSON.parse(JSON.stringify(model)), model, 'a model is plain JSON');
});

test('trainGbdt and predictGbdt refuse malformed input with the reason', async () => {
  await rejects(() => trainGbdt(new Float64Array([0, Infinity]), [0, 1], ['x']), /row 1 feature x is Infinity/);
  // No row reaches some nodes under heavy subsampling; with lambda 0 they are 0, never 0 / 0.
  const sparse = await trainGbdt(new Float64Array([0, 1, 2]), [0, 1, 1], ['x'], { lambda: 0, subsample: 0.01, minLeaf: 1, rounds: 5 });
  assert.ok(Array.from(predictGbdt(sparse, new Float64Array([0, 1, 2]))).every(Number.isFinite));
  assert.not.ok(isGbdtModel({ ...sparse, trees: [{ feature: [0, -1, -1], threshold: [0.5, 0, 0], left: [0, 2, 0], right: [2, 0, 0], value: [0, 0, 0] }] }), 'a child pointing back at its parent would loop');
  assert.not.ok(isGbdtModel({ ...sparse, trees: [{ feature: [3], threshold: [0], left: [1], right: [2], value: [0] }] }));
  assert.ok(isGbdtModel(JSON.parse(JSON.stringify(sparse))));
  const rows = new Float64Array(6);
  await rejects(() => trainGbdt(rows, [0, 1], ['a', 'b', 'c', 'd']), /6 values for 2 rows of 4 features/);
  await rejects(() => trainGbdt(rows, [0, Number.NaN, 1], ['a', 'b']), /target 1 is NaN/);
  await rejects(() => trainGbdt(rows, [0, 1, 1], ['a', 'b'], { bins: 1000 }), /bins must be in/);
  const model = await trainGbdt(rows, [0, 1, 1], ['a', 'b'], { rounds: 2, minLeaf: 1 });
  assert.throws(() => predictGbdt(model, new Float64Array(5)), /not rows of 2 features/);
});

const TITLES = [
  'Hunter Ceiling Fan with Light Kit in Brushed Nickel',
  'GRK Fasteners #10 x 3 in. Deck Screws (100-Pack)',
  'Simpson Strong-Tie 2 in. x 4 in. Joist Hanger',
  'Husqvarna 21 in. Gas Walk Behind Push Lawn Mower',
  'Glacier Bay Single-Handle Kitchen Faucet in Chrome',
  'Everbilt 1/2 in. Galvanized Steel Pipe Nipple',
];

function features(lf: LexicalFeatures, query: string, title: string): Record<string, number> {
  const out = new Float64Array(LEXICAL_FEATURES.length);
  lf.compute(query, title, out);
  return Object.fromEntries(LEXICAL_FEATURES.map((n, i) => [n, out[i]]));
}

test('lexical features see typos, merged words and numbers that BM25 misses', () => {
  const lf = new LexicalFeatures(TITLES);
  const typo = features(lf, 'ceiling fan with ligt', TITLES[0]);
  assert.is(typo.exact_cover, 3 / 4);
  assert.ok(typo.fuzzy_cover > typo.exact_cover, 'ligt ~ light counts as a fuzzy match');
  assert.is(typo.last_exact, 0);
  assert.is(typo.last_fuzzy, 0.7);
  const merged = features(lf, 'deckscrews', TITLES[1]);
  assert.is(merged.bm25, 0, 'BM25 sees no shared term');
  assert.is(merged.last_fuzzy, 0.9, 'deck + screws joined');
  const sizes = features(lf, '2x4 joist hanger', TITLES[2]);
  assert.is(sizes.number_cover, 1, '2 and 4 are both in the title');
  const prefix = features(lf, 'galv pipe nipple', TITLES[5]);
  assert.is(prefix.first_fuzzy, 0.8);
  const wrong = features(lf, 'kitchen faucet', TITLES[3]);
  assert.is(wrong.bm25, 0);
  assert.is(wrong.exact_cover, 0);
  assert.ok(wrong.max_missing_idf > 0);
  assert.ok(Number.isNaN(wrong.number_cover), 'no number in the query: missing, not 0');
  const right = features(lf, 'kitchen faucet', TITLES[4]);
  assert.is(right.exact_cover, 1);
  assert.is(right.ordered_cover, 1);
  assert.is(right.bigram_cover, 1);
  assert.ok(right.bm25 > 0 && right.bm25_norm > 0);
  // Saved statistics give the same features as the titles they were counted from.
  const fromStats = new LexicalFeatures(new Bm25PairScorer(TITLES).stats());
  assert.equal(features(fromStats, 'ceiling fan with ligt', TITLES[0]), typo);
});

test('a scorer trained with the lexical stage blends it, keeps it across save / load, and scores pairs independently', async () => {
  const catalog = generateSyntheticCatalog({ seed: 5, products: 300, queries: 900 });
  const pairs: LabelledPair[] = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)?.title as string, gain: j.gain }));
  const sides = splitByQuery(pairs, { seed: 1, dev: 0.2, test: 0.2 });
  const titles = [...catalog.products.values()].map((p) => p.title);
  const result = await trainRelevanceScorer(sides.train, sides.dev, {
    vocabSize: 400, nCtx: 32, maxQueryTokens: 12, nLayer: 1, nHead: 2, nEmbd: 32, pretrainEpochs: 0, epochs: 1,
    batchSize: 32, lr: 3e-3, warmupSteps: 10, evalEvery: 1000, seed: 2, catalogTitles: titles, trees: { rounds: 60, minLeaf: 10 },
  });
  const scorer = result.scorer;
  assert.ok(result.lexical && scorer.lexical, 'the lexical stage is trained by default');
  assert.is(result.lexical.trees, 60);
  const d = result.lexical.dev;
  // Least squares on dev: the blend is at least as good a fit as the trees alone, which Spearman mostly follows.
  assert.ok(d.blended.spearman > d.network.spearman, `blend ${d.blended.spearman} vs network ${d.network.spearman}`);
  const test = sides.test;
  const gains = await scorer.scoreGains(test);
  const logits = await scorer.scoreLogits(test);
  const trees = await scorer.lexical.treeScores(test);
  gains.forEach((g, i) => assert.ok(Math.abs(g - scorer.lexical!.combine(trees[i], 1 / (1 + Math.exp(-logits[i])))) < 1e-12));
  assert.ok(gains.every((g) => g >= 0 && g <= 1));
  assert.ok(spearman(gains, test.map((p) => p.gain)) > 0.3, 'held-out synthetic pairs are ranked far above chance');
  const alone = await scorer.scoreGains([test[7]]);
  assert.is(alone[0], gains[7], 'a pair scores the same alone as in a batch');
  const viaBatch = await scorer.scoreBatch(test.slice(0, 5).map((p) => ({ query: p.query, product: { id: 'x', title: p.title } })));
  assert.equal(viaBatch, Array.from(gains.slice(0, 5)));

  const dir = await mkdtemp(join(tmpdir(), 'minielm-lexical-'));
  try {
    await scorer.save(dir);
    assert.is(JSON.parse(await readFile(join(dir, 'relevance.json'), 'utf8')).lexical, true);
    const loaded = await LearnedRelevanceScorer.load(dir, { batchSize: 5 });
    const again = await loaded.scoreGains(test);
    again.forEach((g, i) => assert.ok(Math.abs(g - gains[i]) < 1e-6, `pair ${i}: ${g} vs ${gains[i]}`));
    await loaded.dispose();
    // Another catalog's statistics change the BM25 features, so some gains move.
    const other = await LearnedRelevanceScorer.load(dir, { catalogTitles: titles.slice(0, 50) });
    const moved = await other.scoreGains(test);
    assert.ok(moved.some((g, i) => Math.abs(g - gains[i]) > 1e-6));
    await other.dispose();
    await writeFile(join(dir, 'lexical.json'), '{"format":"minielm-relevance-lexical-v1","trees":{}}');
    await rejects(() => LearnedRelevanceScorer.load(dir), /lexical\.json: not a minielm lexical relevance stage.*delete the file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await scorer.dispose();
});

test('on a table too small for the trees to split, the blend keeps the network instead of a constant', async () => {
  const catalog = generateSyntheticCatalog({ seed: 6, products: 40, queries: 30 });
  const pairs: LabelledPair[] = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)?.title as string, gain: j.gain }));
  const train = pairs.slice(0, 60);
  const dev = pairs.slice(60, 90);
  const tokenizer = await trainTokenizer(pairs.map((p) => ` ${p.title.toLowerCase()}`), { vocabSize: 300 });
  const model = await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: 32, n_layer: 1, n_head: 2, n_embd: 16, score_head: true }, { seed: 3 });
  const scorer = new LearnedRelevanceScorer(model, tokenizer, { nCtx: 32, maxQueryTokens: 12 });
  // minLeaf 40 on 60 rows: no split anywhere, every tree is one leaf.
  const fit = await fitLexicalStage(scorer, train, dev, { trees: { rounds: 5 } });
  assert.equal(fit.blend, { intercept: 0, trees: 0, model: 1 });
  const gains = await scorer.scoreGains(dev);
  const logits = await scorer.scoreLogits(dev);
  gains.forEach((g, i) => assert.ok(Math.abs(g - 1 / (1 + Math.exp(-logits[i]))) < 1e-9, 'the network\'s probability'));
  await scorer.dispose();
});

test.run();
