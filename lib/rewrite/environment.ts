// The reward environment of MiniELM's online stage: a rewrite is judged by what it retrieves. For an
// original query Q and a rewrite Q~, both are sent to the search engine; the rewrite's results are scored
// for relevance to Q (M1), for diversity against Q's own results, and by a simulated user (M2) who typed Q
// and sees Q~'s results. The combined reward ranks the two sampled rewrites of a query.
import type { Retriever } from '../retrieval/types.ts';
import type { RelevanceScorer } from '../rewards/relevance.ts';
import type { ProductLike } from '../rewards/types.ts';
import type { Judge } from '../users/judge.ts';
import type { UserProfile } from '../users/profiles.ts';
import { combinedReward, rewardComponents, type RewardComponents, type RewardWeights } from '../rewards/metrics.ts';
import { invalidArgument } from '../errors.ts';

export interface RewardEnvironment {
  retriever: Retriever;
  products: ReadonlyMap<string, ProductLike>;
  relevance: RelevanceScorer;
  judge: Judge;
  profiles: readonly UserProfile[];
  /** Results per query (default 10, as the paper). */
  k?: number;
  weights?: Partial<RewardWeights>;
}

export interface ScoredRewrite {
  rewrite: string;
  reward: number;
  components: RewardComponents;
  productIds: string[];
  /** M1 relevance of each retrieved product to the original query. */
  relevance: number[];
}

function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Scores rewrites[i][j] of queries[i]. The simulated user for a query is chosen from the profile pool by a
 * hash of (query, salt): both rewrites of a query meet the same user, so the comparison is fair.
 */
export async function scoreRewrites(env: RewardEnvironment, queries: readonly string[], rewrites: readonly (readonly string[])[], salt = 0): Promise<ScoredRewrite[][]> {
  if (queries.length !== rewrites.length) throw invalidArgument(`scoreRewrites: ${queries.length} queries but ${rewrites.length} rewrite lists`);
  if (env.profiles.length === 0) throw invalidArgument('the reward environment needs at least one user profile');
  const k = env.k ?? 10;
  const flat = rewrites.flatMap((list) => [...list]);
  const results = await env.retriever.search([...queries, ...flat], k);
  const original = results.slice(0, queries.length);
  const perRewrite = results.slice(queries.length);
  const lookup = (id: string): ProductLike => {
    const p = env.products.get(id);
    if (!p) throw invalidArgument(`the retriever returned product "${id}", which is not in the environment's catalog`);
    return p;
  };
  // One batched M1 call for every (original query, retrieved product) pair.
  const owners: number[] = [];
  const pairs: { query: string; product: ProductLike }[] = [];
  let r = 0;
  rewrites.forEach((list, qi) => {
    for (let j = 0; j < list.length; j++, r++) for (const id of perRewrite[r]) {
      owners.push(r);
      pairs.push({ query: queries[qi], product: lookup(id) });
    }
  });
  const rel = pairs.length ? await env.relevance.scoreBatch(pairs) : [];
  const relevanceOf: number[][] = perRewrite.map(() => []);
  owners.forEach((o, i) => relevanceOf[o].push(rel[i]));
  const requests = [];
  r = 0;
  for (let qi = 0; qi < queries.length; qi++) {
    const profile = env.profiles[hash32(`${queries[qi]}\u0000${salt}`) % env.profiles.length];
    for (let j = 0; j < rewrites[qi].length; j++, r++)
      requests.push({ profile, query: queries[qi], products: perRewrite[r].map(lookup), relevance: relevanceOf[r] });
  }
  const engagement = await env.judge.judgeBatch(requests);
  const out: ScoredRewrite[][] = [];
  r = 0;
  for (let qi = 0; qi < queries.length; qi++) {
    const row: ScoredRewrite[] = [];
    for (let j = 0; j < rewrites[qi].length; j++, r++) {
      const components = rewardComponents({ relevanceScores: relevanceOf[r], originalIds: original[qi], rewriteIds: perRewrite[r], engagement: engagement[r] });
      row.push({ rewrite: rewrites[qi][j], reward: combinedReward(components, env.weights), components, productIds: perRewrite[r], relevance: relevanceOf[r] });
    }
    out.push(row);
  }
  return out;
}
