// Result-aware selection of rewrites (lib/rewrite/select.ts) and its evaluation wrapper (freshRewriter).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { selectFresh } from '../lib/rewrite/select.ts';
import { freshRewriter } from '../lib/eval/rewriters.ts';
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

test.run();
