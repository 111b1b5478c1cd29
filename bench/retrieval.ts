// Embedded BM25 on the Home Depot catalog (54,667 titles): index build time, top-50 search queries/s at batch 1
// and batch 64 on one core, and NDCG@10 against the judgements. Without the data, the synthetic catalog at the
// same size stands in (retrieval.bm25.real_data = 0) and no NDCG is reported.
import type { BenchContext } from './run.ts';
import { Bm25Retriever, homeDepotAvailable, homeDepotGain, ndcgAt, readHomeDepot, HOMEDEPOT_TRAIN_CSV, type Product } from '../lib/retrieval/index.ts';

export const prefixes = ['retrieval.'];

const K = 50;

interface Workload {
  products: Product[];
  queries: string[];
  gains?: Map<string, number>[];
  real: boolean;
}

async function workload(ctx: BenchContext): Promise<Workload> {
  if (homeDepotAvailable()) {
    const hd = await readHomeDepot();
    ctx.note(`Home Depot: ${hd.products.length} products, ${hd.queries.length} queries (${HOMEDEPOT_TRAIN_CSV})`);
    return {
      products: hd.products,
      queries: hd.queries.map((q) => q.query),
      gains: hd.queries.map((q) => new Map([...q.judgements].map(([id, rel]) => [id, homeDepotGain(rel)]))),
      real: true,
    };
  }
  ctx.note(`${HOMEDEPOT_TRAIN_CSV} is absent: using the SYNTHETIC catalog at the same size (no NDCG)`);
  const { generateSyntheticCatalog } = await import('../lib/data/synthetic.ts');
  const catalog = generateSyntheticCatalog({ products: 54_667, queries: 11_795 });
  return { products: [...catalog.products.values()], queries: catalog.queries.map((q) => q.text), real: false };
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const w = await workload(ctx);
  const figures: Record<string, number> = { 'retrieval.bm25.real_data': w.real ? 1 : 0 };

  // Index build: best of 3 (the first run also pays for JIT warm-up).
  let bm25 = new Bm25Retriever();
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const r = new Bm25Retriever();
    const t = performance.now();
    await r.index(w.products);
    best = Math.min(best, performance.now() - t);
    bm25 = r;
  }
  figures['retrieval.bm25.index_s'] = best / 1000;
  ctx.note(`index: ${w.products.length} products, ${bm25.vocabularySize} terms, ${(best / 1000).toFixed(3)} s (best of 3)`);

  // Warm up the search path once, then time every query at batch 1 and in batches of 64.
  await bm25.search(w.queries.slice(0, 500), K);
  let t = performance.now();
  for (const q of w.queries) await bm25.search([q], K);
  const batch1 = w.queries.length / ((performance.now() - t) / 1000);
  t = performance.now();
  let results: string[][] = [];
  for (let i = 0; i < w.queries.length; i += 64) results = results.concat(await bm25.search(w.queries.slice(i, i + 64), K));
  const batch64 = w.queries.length / ((performance.now() - t) / 1000);
  figures['retrieval.bm25.batch1.qps'] = batch1;
  figures['retrieval.bm25.batch64.qps'] = batch64;
  ctx.note(`search top-${K}: ${batch1.toFixed(0)} queries/s at batch 1, ${batch64.toFixed(0)} at batch 64 (${w.queries.length} queries, one core)`);

  if (w.gains) {
    let sum = 0;
    let n = 0;
    for (const [i, gains] of w.gains.entries()) {
      const v = ndcgAt(results[i], gains, 10);
      if (Number.isNaN(v)) continue;
      sum += v;
      n++;
    }
    figures['retrieval.bm25.ndcg10'] = sum / n;
    ctx.note(`NDCG@10 over the full catalog, gain (relevance - 1) / 2, unjudged = 0: ${(sum / n).toFixed(4)} (${n} queries)`);
  }
  return figures;
}
