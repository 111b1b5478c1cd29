// Greedy rewrites of queries scored in the reward environment: the online metrics of the paper's Table 3,
// shared by the online trainer (periodic evaluation), `minielm eval online` and the pipeline report.
import type { Model } from '../model/model.ts';
import { generate, type GenerateOptions } from '../model/generate.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { RewardComponents } from '../rewards/metrics.ts';
import { scoreRewrites, type RewardEnvironment } from './environment.ts';
import { promptIds, rewriteText } from './format.ts';

export interface PolicyEvaluation extends RewardComponents {
  reward: number;
  queries: number;
  /** Greedy rewrites of the first evaluated queries, for inspection. */
  examples: { query: string; rewrite: string; reward: number }[];
}

/** Greedy-rewrites `queries` and averages their rewards (the online metrics of the paper's Table 3). */
export async function evaluatePolicy(policy: Model, tokenizer: Tokenizer, env: RewardEnvironment, queries: readonly string[], maxNewTokens = 16, salt = 0, decoding: Partial<GenerateOptions> = {}): Promise<PolicyEvaluation> {
  const sum: PolicyEvaluation = { reward: 0, relevance: 0, diversity: 0, click: 0, addToCart: 0, purchase: 0, queries: queries.length, examples: [] };
  if (queries.length === 0) return sum;
  const maxPrompt = policy.config.n_ctx - maxNewTokens;
  for (let i = 0; i < queries.length; i += 64) {
    const chunk = queries.slice(i, i + 64);
    const gens = await generate(policy, chunk.map((q) => promptIds(tokenizer, q, maxPrompt)), { ...decoding, strategy: 'greedy', maxNewTokens, eosTokenId: tokenizer.eosId });
    const rewrites = gens.map((g) => [rewriteText(tokenizer, g[0].tokens)]);
    const scored = await scoreRewrites(env, chunk, rewrites, salt);
    scored.forEach((row, j) => {
      const s = row[0];
      sum.reward += s.reward;
      for (const k of ['relevance', 'diversity', 'click', 'addToCart', 'purchase'] as const) sum[k] += s.components[k];
      if (sum.examples.length < 8) sum.examples.push({ query: chunk[j], rewrite: s.rewrite, reward: s.reward });
    });
  }
  for (const k of ['reward', 'relevance', 'diversity', 'click', 'addToCart', 'purchase'] as const) sum[k] /= queries.length;
  return sum;
}
