// Offline evaluation of a rewriter on the Q2Q test split (the paper's Table 2): ExactMatch and ROUGE-L of
// its greedy rewrite against the query's reference rewrites (best over references), cross-entropy of the
// references under the model (rewrite tokens only), and mean rewrite length in words. The copy-the-query
// row scores the query itself as its rewrite: a model that does not beat it has learned nothing useful.
import { Model } from '../model/model.ts';
import { generate, type GenerateOptions } from '../model/generate.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { encodePairs } from '../train/batches.ts';
import { evalLoss, type RewritePair } from '../train/sft.ts';
import { rewriteText } from '../rewrite/format.ts';
import { bestOver, exactMatch, normaliseTokens, rougeL } from './text-metrics.ts';

export interface OfflineMetrics {
  exactMatch: number;
  rougeL: number;
  crossEntropy: number;
  meanLength: number;
  queries: number;
  examples: { query: string; rewrite: string }[];
}

/** The copy-the-query row: no model, so no cross-entropy (null; the report prints "—"). */
export interface CopyQueryMetrics extends Omit<OfflineMetrics, 'crossEntropy'> {
  crossEntropy: null;
}

export function referencesByQuery(pairs: readonly RewritePair[]): Map<string, string[]> {
  const refs = new Map<string, string[]>();
  for (const p of pairs) {
    const list = refs.get(p.query) ?? [];
    list.push(p.rewrite);
    refs.set(p.query, list);
  }
  return refs;
}

export async function evaluateOffline(model: Model, tokenizer: Tokenizer, test: readonly RewritePair[], options: { maxNewTokens?: number; maxQueries?: number; decoding?: Partial<GenerateOptions> } = {}): Promise<OfflineMetrics> {
  const maxNewTokens = options.maxNewTokens ?? 16;
  const refs = referencesByQuery(test);
  const queries = [...refs.keys()].slice(0, options.maxQueries ?? Infinity);
  let em = 0, rl = 0, len = 0;
  const examples: { query: string; rewrite: string }[] = [];
  const maxPrompt = model.config.n_ctx - maxNewTokens;
  for (let i = 0; i < queries.length; i += 64) {
    const chunk = queries.slice(i, i + 64);
    const prompts = chunk.map((q) => [...tokenizer.encode(q).slice(0, maxPrompt - 1), tokenizer.sepId]);
    const gens = await generate(model, prompts, { ...options.decoding, strategy: 'greedy', maxNewTokens, eosTokenId: tokenizer.eosId });
    gens.forEach((g, j) => {
      const text = rewriteText(tokenizer, g[0].tokens);
      const references = refs.get(chunk[j])!;
      em += bestOver(exactMatch, text, references);
      rl += bestOver(rougeL, text, references);
      len += normaliseTokens(text).length;
      if (examples.length < 10) examples.push({ query: chunk[j], rewrite: text });
    });
  }
  const { examples: encoded } = encodePairs(tokenizer, test, model.config.n_ctx + 1);
  const n = Math.max(1, queries.length);
  return { exactMatch: (100 * em) / n, rougeL: (100 * rl) / n, crossEntropy: await evalLoss(model, encoded, tokenizer.padId), meanLength: len / n, queries: queries.length, examples };
}

/**
 * Table 2's baseline: each test query's rewrite is the query itself, scored like evaluateOffline (same
 * queries in the same order, ExactMatch and ROUGE-L best over the query's references, mean length).
 */
export function evaluateCopyQuery(test: readonly RewritePair[], options: { maxQueries?: number } = {}): CopyQueryMetrics {
  const refs = referencesByQuery(test);
  const queries = [...refs.keys()].slice(0, options.maxQueries ?? Infinity);
  let em = 0, rl = 0, len = 0;
  for (const q of queries) {
    const references = refs.get(q)!;
    em += bestOver(exactMatch, q, references);
    rl += bestOver(rougeL, q, references);
    len += normaliseTokens(q).length;
  }
  const n = Math.max(1, queries.length);
  return { exactMatch: (100 * em) / n, rougeL: (100 * rl) / n, crossEntropy: null, meanLength: len / n, queries: queries.length, examples: queries.slice(0, 10).map((q) => ({ query: q, rewrite: q })) };
}
