// Result-aware selection of rewrites (lib/rewrite/select.ts) and its evaluation wrapper (freshRewriter).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selectFresh, selectRelevant } from '../lib/rewrite/select.ts';
import { freshRewriter, relevanceRewriter } from '../lib/eval/rewriters.ts';
import type { RelevanceScorer } from '../lib/rewards/relevance.ts';
import type { Retriever } from '../lib/retrieval/index.ts';

test('selectFresh prefers candidates whose results are new, in the model order among equals', () => {
  const query = ['a', 'b', 'c'];
  const cands = [
    ['a', 'b', 'c'], // a copy of the query's results: nothing new
    ['a', 'x', 'y'], // two new
    ['a', 'b', 'z'], // one new
    ['p', 'q', 'r'], // three new
  ];
  assert.equal(selectFresh(query, cands, 2, { weight: 2, k: 3 }), [3, 1]);
  // Once x and y are shown, a candidate repeating them brings nothing.
  assert.equal(selectFresh(query, [['x', 'y', 'a'], ['x', 'y', 'b'], ['m', 'a', 'b']], 3, { weight: 2, k: 3 }), [0, 2, 1]);
  // Weight 0: the model's order.
  assert.equal(selectFresh(query, cands, 4, { weight: 0 }), [0, 1, 2, 3]);
  // Never more than asked or than there are, never one twice; an empty pool gives nothing.
  assert.equal(selectFresh(query, cands, 10, { weight: 2 }).sort(), [0, 1, 2, 3]);
  assert.equal(selectFresh(query, [], 3), []);
  // An id a list repeats counts once.
  assert.equal(selectFresh([], [['a', 'a', 'a'], ['b', 'c', 'd']], 1, { weight: 2, k: 3 }), [1]);
});

test('freshRewriter drops the query and repeated candidates, then selects n', async () => {
  const lists: Record<string, string[]> = { 'gas mower': ['m1', 'm2'], 'gas  Mower': ['m1', 'm2'], 'lawn mower': ['m1', 'l1'], 'gas lawn mower': ['l1', 'l2'], 'mower gas': ['m2', 'm1'] };
  const retriever: Retriever = { index: async () => undefined, search: async (texts) => texts.map((t) => lists[t] ?? []) };
  const searched: string[][] = [];
  const spy: Retriever = { index: async () => undefined, search: async (texts, k) => (searched.push([...texts]), retriever.search(texts, k)) };
  const pick = freshRewriter(async (qs) => qs.map(() => ['gas  Mower', 'mower gas', 'lawn mower', 'lawn mower', 'gas lawn mower']), spy, { n: 2, k: 2, weight: 2 });
  const [out] = await pick(['gas mower']);
  // 'gas lawn mower' brings two new products; after it nothing is new, so the model's order decides.
  assert.equal(out, ['gas lawn mower', 'mower gas']);
  assert.equal(searched[0], ['gas mower', 'mower gas', 'lawn mower', 'gas lawn mower'], 'the query and repeats are dropped before searching');
  await pick(['gas mower']).then(() => undefined);
  assert.throws(() => freshRewriter(async () => [], retriever, { n: 0 }), /n must be an integer >= 1/);
  let failed = false;
  await freshRewriter(async () => [], retriever)(['q']).catch((e: Error) => (failed = /one list of rewrite strings per query/.test(e.message)));
  assert.ok(failed, 'a candidate rewriter answering the wrong shape is named');
});

test('selectRelevant counts new results by their predicted relevance, not their number', () => {
  const gain: Record<string, number> = { x: 0.9, y: 0.8, p: 0.05, q: 0.05, r: 0.05, z: 0.5 };
  const g = (id: string): number => gain[id] ?? 0;
  const query = ['a', 'b', 'c'];
  const cands = [
    ['p', 'q', 'r'], // three new, all unrelated: 0.15
    ['a', 'x', 'y'], // two new and relevant: 1.7
    ['a', 'b', 'z'], // one new: 0.5
  ];
  // selectFresh would take the three unrelated ones first.
  assert.equal(selectFresh(query, cands, 1, { weight: 2, k: 3 }), [0]);
  assert.equal(selectRelevant(query, cands, 3, g, { rankWeight: 0.1, k: 3 }), [1, 2, 0]);
  // Products already shown (by the query or an earlier choice) add nothing.
  assert.equal(selectRelevant(query, [['x', 'y', 'a'], ['x', 'y', 'b'], ['z', 'a', 'b']], 2, g, { rankWeight: 0.1, k: 3 }), [0, 2]);
  // A large rank weight gives the model's order back; ids repeated in a list count once.
  assert.equal(selectRelevant(query, cands, 3, g, { rankWeight: 100 }), [0, 1, 2]);
  assert.equal(selectRelevant([], [['z', 'z', 'z'], ['x']], 1, g, { rankWeight: 0, k: 3 }), [1]);
  assert.equal(selectRelevant(query, [], 2, g), []);
  // A gain that is not a number counts as nothing.
  assert.equal(selectRelevant([], [['n1'], ['x']], 1, (id) => (id === 'x' ? 0.5 : Number.NaN), { rankWeight: 0.1 }), [1]);
});

test('selectFresh breaks exact ties as it always did, for weights that are not powers of two', () => {
  // Candidate 0 brings nothing new, candidate 1 six new ids; with weight 0.1 and k 6, -0/10 + 0 vs -1/10 + 0.1 tie
  // in exact arithmetic, and the model's order (candidate 0) must not win by a rounding error in the sum.
  const lists = [['q1'], ['a', 'b', 'c', 'd', 'e', 'f'], ...Array.from({ length: 8 }, () => ['q1'])];
  const oldScore = (i: number, fresh: number): number => -i / 10 + (0.1 * fresh) / 6;
  const expected = oldScore(1, 6) > oldScore(0, 0) ? [1] : [0];
  assert.equal(selectFresh(['q1'], lists, 1, { weight: 0.1, k: 6 }), expected);
});

test('relevanceRewriter scores new results against the query itself and sends the n best', async () => {
  const lists: Record<string, string[]> = { 'gas mowe': ['g1', 'g2'], 'gas can': ['g1', 'c1'], 'lawn mower': ['m1', 'm2'], 'gas mower': ['m1', 'g2'] };
  const titles: Record<string, string> = { g1: 'Gas Grill', g2: 'Gas Line', c1: 'Gas Can 5 gal', m1: 'Gas Lawn Mower', m2: 'Electric Lawn Mower' };
  const retriever: Retriever = { index: async () => undefined, search: async (texts) => texts.map((t) => lists[t] ?? []) };
  const asked: { query: string; title: string }[] = [];
  const scorer: RelevanceScorer = {
    async scoreBatch(pairs) {
      for (const p of pairs) asked.push({ query: p.query, title: p.product.title });
      return pairs.map((p) => (/mower/i.test(p.product.title) ? 0.9 : 0.1));
    },
  };
  const pick = relevanceRewriter(async (qs) => qs.map(() => ['gas can', 'gas mowe', 'lawn mower', 'gas mower']), retriever, scorer, (id) => titles[id], { n: 2, k: 2, rankWeight: 0.1 });
  const [out] = await pick(['gas mowe']);
  assert.equal(out, ['lawn mower', 'gas can'], 'two mowers beat a can; then the can is the only new result left');
  assert.ok(asked.every((a) => a.query === 'gas mowe'), 'relevance is judged against the query, not the rewrite');
  assert.equal(new Set(asked.map((a) => a.title)), new Set(['Gas Can 5 gal', 'Gas Lawn Mower', 'Electric Lawn Mower']), 'only results the query lacks are scored');
  assert.throws(() => relevanceRewriter(async () => [], retriever, scorer, () => undefined, { k: 0 }), /k must be an integer >= 1/);
});

test.run();
