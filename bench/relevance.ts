// Learned relevance scorer throughput, with the default scorer config of `minielm relevance train`
// (2 layers, width 128, 4 heads, n_ctx 48, vocabulary 4,096). Weights are freshly initialised: the cost of a
// forward pass does not depend on their values.
//   relevance.learned.pairs_per_s        scoreBatch end to end on pairs it has not seen (tokenizing included)
//   relevance.learned.model_pairs_per_s  pre-tokenized pairs through the native engine only
//   relevance.lexical.pairs_per_s        the lexical stage alone (18 match features + 300 depth-4 trees), unseen pairs
//   relevance.learned_lexical.pairs_per_s  scoreBatch of the default scorer, network + lexical stage, unseen pairs
import type { BenchContext } from './run.ts';
import { Model } from '../lib/model/model.ts';
import { trainTokenizer } from '../lib/tokenizer/index.ts';
import { generateSyntheticCatalog } from '../lib/data/synthetic.ts';
import { LearnedRelevanceScorer, RELEVANCE_TRAIN_DEFAULTS as D, fitLexicalStage, normalizeRelevanceText, splitByQuery, type LabelledPair } from '../lib/rewards/learned.ts';
import type { RelevancePair } from '../lib/rewards/relevance.ts';

export const prefixes = ['relevance.'];

async function setup(): Promise<{ scorer: LearnedRelevanceScorer; pairs: RelevancePair[]; judged: LabelledPair[]; titles: string[] }> {
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
  const judged = catalog.judgements.map((j) => ({ query: j.query, title: catalog.products.get(j.productId)!.title, gain: j.gain }));
  return { scorer, pairs, judged, titles: products.map((p) => p.title) };
}

/** Pairs per second of `score` over 1,024-pair batches of pairs it has not seen, for about 3 s. */
async function rate(pairs: readonly RelevancePair[], from: number, score: (batch: RelevancePair[]) => Promise<unknown>): Promise<number> {
  const batch = 1024;
  let done = 0;
  let k = from;
  const start = performance.now();
  while (performance.now() - start < 3000 && k + batch <= pairs.length) {
    await score(pairs.slice(k, k + batch));
    k += batch;
    done += batch;
  }
  return (done / (performance.now() - start)) * 1000;
}

export async function run(ctx: BenchContext): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (!['relevance.learned.', 'relevance.lexical.', 'relevance.learned_lexical.'].some((n) => ctx.wants(n))) return out;
  const { scorer, pairs, judged, titles } = await setup();
  await scorer.scoreBatch(pairs.slice(0, 256)); // warm-up (JIT, native buffers)

  // End to end on unseen pairs: each batch is new to the scorer's encoding cache.
  const endToEnd = await rate(pairs, 256, (b) => scorer.scoreBatch(b));
  out['relevance.learned.pairs_per_s'] = endToEnd;

  const seqs = pairs.slice(0, 8192).map((p) => scorer.encode(p.query, p.product.title));
  const meanLen = seqs.reduce((s, x) => s + x.length, 0) / seqs.length;
  const batch = 1024;
  let done = 0;
  let k = 0;
  const start = performance.now();
  while (performance.now() - start < 3000) {
    if (k + batch > seqs.length) k = 0;
    await scorer.scoreEncoded(seqs.slice(k, k + batch));
    k += batch;
    done += batch;
  }
  const modelOnly = (done / (performance.now() - start)) * 1000;
  out['relevance.learned.model_pairs_per_s'] = modelOnly;
  ctx.note(`learned scorer ${D.nLayer}L/${D.nEmbd}, n_ctx ${D.nCtx}, ${meanLen.toFixed(1)} tokens per pair: ${endToEnd.toFixed(0)} pairs/s end to end, ${modelOnly.toFixed(0)} pairs/s native only`);

  // The lexical stage, fitted on the synthetic judgements (its cost does not depend on what the trees learned, only
  // on their number and depth, which are the defaults).
  const sides = splitByQuery(judged, { seed: 1, dev: 0.2, test: 0 });
  const fit = await fitLexicalStage(scorer, sides.train, sides.dev, { catalogTitles: titles });
  const stage = scorer.lexical!;
  await stage.treeScores(pairs.slice(0, 256).map((p) => ({ query: p.query, title: p.product.title })));
  const lexical = await rate(pairs, 0, (b) => stage.treeScores(b.map((p) => ({ query: p.query, title: p.product.title }))));
  out['relevance.lexical.pairs_per_s'] = lexical;
  // Fresh pairs for the whole scorer: the network's encoding cache has seen the first part of the list.
  const shifted = pairs.map((p, i) => ({ query: p.query, product: pairs[(i * 37 + 3) % pairs.length].product }));
  const whole = await rate(shifted, 0, (b) => scorer.scoreBatch(b));
  out['relevance.learned_lexical.pairs_per_s'] = whole;
  ctx.note(`lexical stage (${fit.trees} trees, fitted in ${fit.seconds.toFixed(1)} s): ${lexical.toFixed(0)} pairs/s alone, ${whole.toFixed(0)} pairs/s with the network`);
  await scorer.dispose();
  return out;
}
