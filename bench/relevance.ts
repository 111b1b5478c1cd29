// Learned relevance scorer throughput, with the default scorer config of `minielm relevance train`
// (2 layers, width 128, 4 heads, n_ctx 48, vocabulary 4,096). Weights are freshly initialised: the cost of a
// forward pass does not depend on their values.
//   relevance.learned.pairs_per_s        scoreBatch end to end on pairs it has not seen (tokenizing included)
//   relevance.learned.model_pairs_per_s  pre-tokenized pairs through the native engine only
import type { BenchContext } from './run.ts';
import { Model } from '../lib/model/model.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { generateSyntheticCatalog } from '../lib/data/synthetic.ts';
import { LearnedRelevanceScorer, RELEVANCE_TRAIN_DEFAULTS as D, normalizeRelevanceText } from '../lib/rewards/learned.ts';
import type { RelevancePair } from '../lib/rewards/relevance.ts';

export const prefixes = ['relevance.'];

async function setup(): Promise<{ scorer: LearnedRelevanceScorer; pairs: RelevancePair[] }> {
  const catalog = generateSyntheticCatalog({ seed: 11, products: 4000, queries: 3000 });
  const products = [...catalog.products.values()].map((p) => ({ id: p.id, title: p.title }));
  const texts = [...catalog.queries.map((q) => q.text), ...products.map((p) => p.title)].map((t) => normalizeRelevanceText(t));
  const tokenizer = await trainTokenizer(texts, { vocabSize: D.vocabSize });
  const model = await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: D.nCtx, n_layer: D.nLayer, n_head: D.nHead, n_embd: D.nEmbd, score_head: true }, { seed: 1 });
  const scorer = new LearnedRelevanceScorer(model, tokenizer, { nCtx: D.nCtx, maxQueryTokens: D.maxQueryTokens }, { batchSize: 256 });
  // Every query against 10 products: a trainer's reward call looks like this (one query, its retrieved list).
  const pairs: RelevancePair[] = [];
  catalog.queries.forEach((q, i) => {
    for (let k = 0; k < 10; k++) pairs.push({ query: q.text, product: products[(i * 7 + k * 131) % products.length] });
  });
  return { scorer, pairs };
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (!ctx.wants('relevance.learned.')) return out;
  const { scorer, pairs } = await setup();
  const batch = 1024;
  await scorer.scoreBatch(pairs.slice(0, 256)); // warm-up (JIT, native buffers)

  // End to end on unseen pairs: each batch is new to the scorer's encoding cache.
  let done = 0;
  let k = 256;
  let start = performance.now();
  while (performance.now() - start < 3000 && k + batch <= pairs.length) {
    await scorer.scoreBatch(pairs.slice(k, k + batch));
    k += batch;
    done += batch;
  }
  const endToEnd = (done / (performance.now() - start)) * 1000;
  out['relevance.learned.pairs_per_s'] = endToEnd;

  const seqs = pairs.slice(0, 8192).map((p) => scorer.encode(p.query, p.product.title));
  const meanLen = seqs.reduce((s, x) => s + x.length, 0) / seqs.length;
  done = 0;
  k = 0;
  start = performance.now();
  while (performance.now() - start < 3000) {
    if (k + batch > seqs.length) k = 0;
    await scorer.scoreEncoded(seqs.slice(k, k + batch));
    k += batch;
    done += batch;
  }
  const modelOnly = (done / (performance.now() - start)) * 1000;
  out['relevance.learned.model_pairs_per_s'] = modelOnly;
  ctx.note(`learned scorer ${D.nLayer}L/${D.nEmbd}, n_ctx ${D.nCtx}, ${meanLen.toFixed(1)} tokens per pair: ${endToEnd.toFixed(0)} pairs/s end to end, ${modelOnly.toFixed(0)} pairs/s native only`);
  await scorer.dispose();
  return out;
}
