// Judged recall@k against numbers worked out by hand: a lookup-table engine (exact control over each top
// k), then the real BM25 over a tiny catalog, then a tiny model through the beam-search rewriter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_MIN_GAIN, gainThreshold, judgedLabels, judgedRecall, judgedRecallOfModel, normaliseQuery, relevantProducts } from '../lib/eval/judged.ts';
import { copyQuery, dropOneWord, modelRewriter, type RewritesFor } from '../lib/eval/rewriters.ts';
import { HOMEDEPOT_LABELS } from '../lib/data/labels.ts';
import { Bm25Retriever } from '../lib/retrieval/bm25.ts';
import type { Retriever } from '../lib/retrieval/types.ts';
import { MinielmError } from '../lib/errors.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { Model } from '../lib/model/model.ts';

const close = (a: number, b: number, msg?: string): void => assert.ok(Math.abs(a - b) < 1e-12, `${msg ?? ''} expected ${b}, got ${a}`);
const gain = (rating: number): number => (rating - 1) / 2;
/** Resolves when `fn` rejects with a coded invalid-argument error whose message matches `pattern`. */
async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof MinielmError && e.code === 'MINIELM_INVALID_ARGUMENT', `expected an invalid-argument MinielmError, got ${String(e)}`);
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected a rejection matching ${pattern}`);
}

// Human labels (Home Depot ratings 1..3).
const judgements = [
  { query: 'cordles drill', productId: 'd1', gain: gain(3) },
  { query: 'cordles drill', productId: 'd2', gain: gain(2.67) },
  { query: 'cordles drill', productId: 'd3', gain: gain(2.33) },
  { query: 'cordles drill', productId: 'd9', gain: gain(1.67) },
  { query: 'hose', productId: 'h1', gain: gain(3) },
  { query: 'hose', productId: 'x2', gain: gain(1) },
  { query: 'hamer', productId: 'm1', gain: gain(2) },
  { query: 'hamer', productId: 'm2', gain: gain(1) },
];
const judged = judgedLabels(judgements);

// What the engine returns, best first (it is cut at k by the metric's request).
const engine: Record<string, string[]> = {
  'cordles drill': ['x1', 'd1', 'd3', 'x4'],
  'cordless drill': ['d2', 'd9', 'd3'],
  hose: ['h1', 'x2', 'x5', 'x6'],
  'garden hose': ['h2', 'x3'],
  hamer: ['m1'],
  'claw hammer': ['m2', 'm1'],
};
const lookup: Retriever & { size: number } = {
  size: 20,
  async index() {},
  async search(queries, k) {
    return queries.map((q) => (engine[normaliseQuery(q)] ?? []).slice(0, k));
  },
};
const rewrites: Record<string, string[]> = {
  // One new rewrite; the rest repeat it (after normalisation), repeat the query, or are empty.
  'cordles drill': ['cordless drill', 'Cordless  drill!', 'cordless drill', 'cordles drill', ''],
  hose: ['garden hose'],
  hamer: ['claw hammer'],
};
const fixed: RewritesFor = async (qs) => qs.map((q) => rewrites[normaliseQuery(q)] ?? ['x']);
const queries = ['cordles drill', 'hose', 'hamer', 'unjudged thing', 'Hose '];

test('the Home Depot threshold 2.33 is gain 0.665 and a 2.33 rating counts as relevant', () => {
  close(gainThreshold(HOMEDEPOT_LABELS, 2.33), 0.665);
  close(DEFAULT_MIN_GAIN, 0.665);
  assert.equal([...relevantProducts(judged, 'Cordles  Drill')].sort(), ['d1', 'd2', 'd3']);
  assert.throws(() => gainThreshold(HOMEDEPOT_LABELS, 3.5, '--threshold'), (e: unknown) => e instanceof MinielmError && /--threshold/.test(e.message) && /\[1, 3\]/.test(e.message));
  assert.is(gainThreshold({ kind: 'esci' }, 0.5), 0.5);
});

test('repeated judgements of a pair keep the mean gain; spellings of a query share one key', () => {
  const j = judgedLabels([{ query: 'Gas Mower', productId: 'a', gain: 1 }, { query: ' gas  mower', productId: 'a', gain: 0.5 }, { query: 'gas mower', productId: 'a', gain: 0 }]);
  assert.equal([...j.keys()], ['gas mower']);
  close(j.get('gas mower')!.get('a')!, 0.5);
});

test('judged recall by hand: a rewrite that adds a relevant product, duplicates, excluded queries', async () => {
  const r = await judgedRecall(queries, fixed, lookup, judged, { k: 2, n: 10 });
  // "cordles drill": relevant {d1, d2, d3}; alone top 2 {x1, d1} -> 1/3; one distinct rewrite, top 2 {d2, d9}
  // -> union {x1, d1, d2, d9} -> 2/3; query alone at depth 4 {x1, d1, d3, x4} -> 2/3.
  // "hose": relevant {h1}; alone 1, with rewrites 1 (h2 is unjudged: it counts neither way), depth 4 -> 1.
  // "hamer" has no product rated >= 2.33, "unjudged thing" no labels, "Hose " repeats "hose": all left out.
  assert.is(r.queries, 2);
  assert.equal(r.skipped, { unjudged: 1, noRelevant: 1, duplicate: 1 });
  close(r.recall, (2 / 3 + 1) / 2, 'recall');
  close(r.queryAlone, (1 / 3 + 1) / 2, 'alone');
  close(r.ratio!, 1.25, 'ratio');
  close(r.queryAloneSameDepth, (2 / 3 + 1) / 2, 'same depth');
  close(r.distinctRewrites, 1, 'distinct');
  close(r.meanRelevant, 2, 'relevant');
  close(r.meanRetrieved, 4, 'retrieved');
  assert.is(r.queriesImproved, 1);
  assert.equal(r.examples[0].rewrites, ['cordless drill']);
});

test('a lower threshold brings a query in; n = 0 and copying are the query alone; n cuts the list', async () => {
  const low = await judgedRecall(queries, fixed, lookup, judged, { k: 2, minGain: gainThreshold(HOMEDEPOT_LABELS, 2) });
  assert.is(low.queries, 3);
  close(low.recall, (2 / 3 + 1 + 1) / 3);
  const none = await judgedRecall(queries, fixed, lookup, judged, { k: 2, n: 0 });
  close(none.recall, none.queryAlone);
  assert.is(none.distinctRewrites, 0);
  const copy = await judgedRecall(queries, copyQuery, lookup, judged, { k: 2 });
  close(copy.recall, (1 / 3 + 1) / 2);
  assert.is(copy.ratio, 1);
  assert.is(copy.distinctRewrites, 0);
  // With n = 1 the first rewrite only: for "cordles drill" that is "cordless drill" again, so nothing changes.
  const one = await judgedRecall(queries, fixed, lookup, judged, { k: 2, n: 1 });
  close(one.recall, (2 / 3 + 1) / 2);
  // The rule baseline: "cordles drill" -> "drill", "cordles" (unknown to the engine): nothing gained.
  const drop = await judgedRecall(queries, dropOneWord, lookup, judged, { k: 2 });
  close(drop.recall, drop.queryAlone);
  close(drop.distinctRewrites, 1);
});

test('bad options and a wrong-shaped rewriter name the input', async () => {
  await rejects(() => judgedRecall(queries, fixed, lookup, judged, { k: 0 }), /option k/);
  await rejects(() => judgedRecall(queries, fixed, lookup, judged, { minGain: 2 }), /minGain/);
  await rejects(() => judgedRecall(queries, async () => [['a']], lookup, judged), /one list of rewrite strings per query/);
});

test('the real BM25 over a tiny catalog, and the guard against indexing only judged products', async () => {
  const catalog = [
    { id: 'p1', title: 'Cordless Drill Kit' },
    { id: 'p2', title: 'Cordless Drill Battery' },
    { id: 'p3', title: 'Garden Hose 50 ft' },
    { id: 'p4', title: 'Hose Reel Cart' },
    { id: 'p5', title: 'Claw Hammer' },
    { id: 'p6', title: 'Drill Bit Set' },
  ];
  const labels = judgedLabels([
    { query: 'cordles drll', productId: 'p1', gain: gain(3) },
    { query: 'cordles drll', productId: 'p2', gain: gain(2.67) },
    { query: 'cordles drll', productId: 'p6', gain: gain(1) },
  ]);
  const bm25 = new Bm25Retriever();
  await bm25.index(catalog);
  // The query matches no title word; its rewrite matches p1 and p2 on both words, p6 on one.
  const r = await judgedRecall(['cordles drll'], async () => [['cordless drill']], bm25, labels, { k: 2 });
  assert.is(r.queries, 1);
  assert.is(r.queryAlone, 0);
  assert.is(r.recall, 1);
  assert.is(r.ratio, null);
  const partial = new Bm25Retriever();
  await partial.index(catalog.slice(0, 2));
  await rejects(() => judgedRecall(['cordles drll'], copyQuery, partial, labels), /index the whole catalog/);
});

test('a model through the beam rewriter: n distinct non-empty rewrites per query, finite recall', async () => {
  const texts = ['cordless drill', 'garden hose', 'claw hammer', 'cordless drill battery', 'hose reel'];
  const tokenizer = await trainTokenizer(texts, { vocabSize: 300 });
  const model = await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: 24, n_layer: 1, n_head: 2, n_embd: 16 }, { seed: 1 });
  const lists = await modelRewriter(model, tokenizer, { n: 3, maxNewTokens: 4 })(['hose', 'drill']);
  assert.is(lists.length, 2);
  for (const l of lists) {
    assert.ok(l.length <= 3);
    assert.is(new Set(l).size, l.length);
    assert.ok(l.every((t) => typeof t === 'string' && t.length > 0));
  }
  const r = await judgedRecallOfModel(model, tokenizer, queries, lookup, judged, { k: 2, n: 3, maxNewTokens: 4 });
  assert.is(r.queries, 2);
  assert.ok(r.recall >= r.queryAlone && r.recall <= 1);
  await model.dispose();
});

test.run();
