// Product coverage with n rewrites (RLQR's metric, the paper's Table 4): for each test query, the distinct
// products that the original query and its n rewrites retrieve (top k each) and that are relevant to the
// original query under M1 (gain >= threshold). More coverage = more of the catalog's right products reached.
import { Model } from '../model/model.ts';
import { generate, type GenerateOptions } from '../model/generate.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { rewriteText } from '../rewrite/format.ts';
import type { RewardEnvironment } from '../rewrite/environment.ts';

export interface CoverageResult {
  /** Mean distinct relevant products per query. */
  coverage: number;
  /** Mean distinct relevant products of the original query alone. */
  originalOnly: number;
  /** Mean number of distinct rewrites per query (duplicates collapse). */
  distinctRewrites: number;
  queries: number;
}

export async function coverageAtN(model: Model, tokenizer: Tokenizer, env: RewardEnvironment, queries: readonly string[], options: { n?: number; strategy?: 'beam' | 'sample'; threshold?: number; seed?: number; maxNewTokens?: number; decoding?: Partial<GenerateOptions> } = {}): Promise<CoverageResult> {
  const n = options.n ?? 10;
  const k = env.k ?? 10;
  const threshold = options.threshold ?? 0.5;
  const maxNewTokens = options.maxNewTokens ?? 16;
  const gen: GenerateOptions = options.strategy === 'sample'
    ? { ...options.decoding, strategy: 'sample', numReturnSequences: n, temperature: 1, maxNewTokens, eosTokenId: tokenizer.eosId, seed: options.seed ?? 1 }
    : { ...options.decoding, strategy: 'beam', numBeams: n, numReturnSequences: n, maxNewTokens, eosTokenId: tokenizer.eosId };
  let total = 0, original = 0, distinct = 0;
  const maxPrompt = model.config.n_ctx - maxNewTokens;
  for (const q of queries) {
    const [outs] = await generate(model, [[...tokenizer.encode(q).slice(0, maxPrompt - 1), tokenizer.sepId]], gen);
    const rewrites = [...new Set(outs.map((g) => rewriteText(tokenizer, g.tokens)).filter((t) => t.length > 0))];
    distinct += rewrites.length;
    const lists = await env.retriever.search([q, ...rewrites], k);
    const ids = [...new Set(lists.flat())];
    const products = ids.map((id) => env.products.get(id)!).filter(Boolean);
    const gains = products.length ? await env.relevance.scoreBatch(products.map((product) => ({ query: q, product }))) : [];
    const relevant = new Set(products.filter((_, i) => gains[i] >= threshold).map((p) => p.id));
    total += relevant.size;
    original += lists[0].filter((id) => relevant.has(id)).length;
  }
  const m = Math.max(1, queries.length);
  return { coverage: total / m, originalOnly: original / m, distinctRewrites: distinct / m, queries: queries.length };
}
