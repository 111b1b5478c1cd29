// BM25 baseline on the Home Depot judgements (../shared/data/homedepot/train.csv). Gain = (relevance - 1) / 2.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bm25Retriever, homeDepotAvailable, homeDepotGain, ndcgAt, readHomeDepot, HOMEDEPOT_TRAIN_CSV } from '../lib/retrieval/index.ts';

if (!homeDepotAvailable()) {
  console.warn(`\n!!! SKIPPED retrieval-homedepot: ${HOMEDEPOT_TRAIN_CSV} is absent; no Home Depot NDCG measured. !!!\n`);
  test.skip('BM25 NDCG@10 on Home Depot (data absent)', () => {});
} else {
  test('BM25 NDCG@10 on Home Depot: full catalog and judged products only', async () => {
    const hd = await readHomeDepot();
    assert.is(hd.products.length, 54667);
    assert.is(hd.queries.length, 11795);
    assert.is(hd.queries.reduce((n, q) => n + q.judgements.size, 0), 74067, 'every row one judgement: no pair repeats');
    const ratings = new Set(['1', '1.25', '1.33', '1.5', '1.67', '1.75', '2', '2.25', '2.33', '2.5', '2.67', '2.75', '3'].map(Number));
    for (const q of hd.queries) for (const r of q.judgements.values()) assert.ok(ratings.has(r), `"${q.query}": rating ${r} is not one of the file's 13 values`);
    const bm25 = new Bm25Retriever();
    await bm25.index(hd.products);
    const queries = hd.queries.map((q) => q.query);
    const top = await bm25.search(queries, 10);
    let full = 0;
    let judged = 0;
    let shuffled = 0;
    let scored = 0;
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const [i, q] of hd.queries.entries()) {
      const gains = new Map([...q.judgements].map(([id, rel]) => [id, homeDepotGain(rel)]));
      const all = ndcgAt(top[i], gains, 10);
      if (Number.isNaN(all)) continue; // every judged product rated 1 (irrelevant): no ideal ranking
      assert.ok(top[i].length <= 10);
      scored++;
      full += all;
      const ids = [...gains.keys()];
      const scores = bm25.scoreProducts(q.query, ids);
      const ranked = ids.map((id, j) => ({ id, s: scores[j], j })).sort((a, b) => b.s - a.s || a.j - b.j).map((x) => x.id);
      judged += ndcgAt(ranked, gains, 10);
      // Random order of the same judged products: what the re-ranking figure must beat.
      const perm = [...ids];
      for (let j = perm.length - 1; j > 0; j--) {
        const r = Math.floor(rand() * (j + 1));
        [perm[j], perm[r]] = [perm[r], perm[j]];
      }
      shuffled += ndcgAt(perm, gains, 10);
    }
    full /= scored;
    judged /= scored;
    shuffled /= scored;
    console.log(`Home Depot BM25 (k1 1.2, b 0.75, title, minimal stemming) over ${scored} queries with a relevant judgement:`);
    console.log(`  NDCG@10 full catalog (unjudged = gain 0): ${full.toFixed(4)}`);
    console.log(`  NDCG@10 re-ranking the judged products:   ${judged.toFixed(4)} (random order: ${shuffled.toFixed(4)})`);
    assert.ok(judged > shuffled + 0.005, `BM25 re-ranking (${judged}) must beat random order (${shuffled})`);
    assert.ok(full > 0.3, `full-catalog NDCG@10 ${full} is implausibly low`);
  });
}

test.run();
