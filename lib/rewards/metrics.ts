// Reward metrics of the MiniELM online phase (paper §2, §3.2; coverage from RLQR, §4.2.2).
// Pure functions over ids and numbers: the caller retrieves, scores and judges; nothing here does I/O.
import { invalidArgument } from '../errors.ts';
import type { Engagement } from './types.ts';

function requireFinite(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidArgument(`${what} must be a finite number, got ${String(value)}; check the scorer or judge that produced it.`);
  }
  return value;
}

function requireIds(ids: readonly string[], what: string): readonly string[] {
  if (!Array.isArray(ids)) throw invalidArgument(`${what} must be an array of product ids, got ${typeof ids}.`);
  for (let i = 0; i < ids.length; i++) {
    if (typeof ids[i] !== 'string') throw invalidArgument(`${what}[${i}] must be a product id string, got ${typeof ids[i]}.`);
  }
  return ids;
}

/**
 * Relevance r(Q, P~) = mean of M1(Q, P_i) over the rewrite's results. An empty result list earns 0:
 * a rewrite that retrieves nothing must never look as good as one that retrieves relevant products.
 */
export function relevanceScore(scores: readonly number[]): number {
  if (!Array.isArray(scores)) throw invalidArgument('relevance scores must be an array of numbers.');
  if (scores.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += requireFinite(scores[i], `relevance score [${i}]`);
  return sum / scores.length;
}

/**
 * Diversity d(P, P~) = (|P~| - |P ∩ P~|) / |P~|, 0 when P~ is empty.
 * Both lists are read as sets of ids: a product repeated in P~ counts once, so duplicates cannot inflate d.
 */
export function diversityScore(originalIds: readonly string[], rewriteIds: readonly string[]): number {
  requireIds(originalIds, 'original result ids');
  requireIds(rewriteIds, 'rewrite result ids');
  const rewrite = new Set(rewriteIds);
  if (rewrite.size === 0) return 0;
  const original = new Set(originalIds);
  let shared = 0;
  for (const id of rewrite) if (original.has(id)) shared++;
  return (rewrite.size - shared) / rewrite.size;
}

export interface CoverageOptions {
  /** A product counts as relevant when its gain is >= threshold (gains in [0, 1]). Default 0.5. */
  threshold?: number;
}

/**
 * Product coverage (RLQR, paper Table 4): distinct relevant products retrieved by all rewrites of one query.
 * `relevanceOf` gives the gain of a product for the ORIGINAL query (a Map or a function); ids it does not
 * know are an error rather than a silent "irrelevant", so a missing label shows up instead of shrinking coverage.
 */
export function productCoverage(
  resultLists: readonly (readonly string[])[],
  relevanceOf: ReadonlyMap<string, number> | ((productId: string) => number),
  options: CoverageOptions = {},
): number {
  const threshold = requireFinite(options.threshold ?? 0.5, 'coverage threshold');
  if (!Array.isArray(resultLists)) throw invalidArgument('coverage needs an array of result-id lists, one per rewrite.');
  const gain =
    typeof relevanceOf === 'function'
      ? relevanceOf
      : (id: string): number => {
          const g = relevanceOf.get(id);
          if (g === undefined) throw invalidArgument(`coverage: no relevance for product "${id}"; score every retrieved product first.`);
          return g;
        };
  const counted = new Set<string>();
  let relevant = 0;
  resultLists.forEach((ids, k) => {
    requireIds(ids, `rewrite ${k} result ids`);
    for (const id of ids) {
      if (counted.has(id)) continue;
      counted.add(id);
      if (requireFinite(gain(id), `relevance of product "${id}"`) >= threshold) relevant++;
    }
  });
  return relevant;
}

export interface EngagementRates {
  click: number;
  addToCart: number;
  purchase: number;
}

/** c, a2c, p = counts / |P~| (paper §3.2); all 0 for an empty list. */
export function engagementRates(engagement: Engagement): EngagementRates {
  const n = requireFinite(engagement.listLength, 'engagement.listLength');
  const clicks = requireFinite(engagement.clicks, 'engagement.clicks');
  const carts = requireFinite(engagement.addToCart, 'engagement.addToCart');
  const purchases = requireFinite(engagement.purchases, 'engagement.purchases');
  if (n < 0) throw invalidArgument(`engagement.listLength must be >= 0, got ${n}.`);
  if (n === 0) return { click: 0, addToCart: 0, purchase: 0 };
  return { click: clicks / n, addToCart: carts / n, purchase: purchases / n };
}

/** Everything the combined reward reads, each in [0, 1]. */
export interface RewardComponents {
  relevance: number;
  diversity: number;
  click: number;
  addToCart: number;
  purchase: number;
}

export type RewardWeights = RewardComponents;

/**
 * Default weights (docs/rewards.md explains them): relevance dominates so that off-topic results cannot buy
 * diversity; diversity at half of it rewards reaching new products; engagement rates, which are small numbers
 * in practice, add a user-side signal that weighs purchases most.
 */
export const DEFAULT_REWARD_WEIGHTS: Readonly<RewardWeights> = Object.freeze({
  relevance: 1.0,
  diversity: 0.5,
  click: 0.25,
  addToCart: 0.25,
  purchase: 0.5,
});

const COMPONENT_NAMES = ['relevance', 'diversity', 'click', 'addToCart', 'purchase'] as const;

/**
 * Combined reward = Σ w_k x_k / Σ w_k, so it stays in [0, 1] whatever the weights. Partial weights override
 * the defaults; a weight of 0 removes a component.
 */
export function combinedReward(components: RewardComponents, weights: Partial<RewardWeights> = {}): number {
  const w = { ...DEFAULT_REWARD_WEIGHTS, ...weights };
  let num = 0;
  let den = 0;
  for (const k of COMPONENT_NAMES) {
    const wk = requireFinite(w[k], `reward weight "${k}"`);
    if (wk < 0) throw invalidArgument(`reward weight "${k}" must be >= 0, got ${wk}.`);
    num += wk * requireFinite(components[k], `reward component "${k}"`);
    den += wk;
  }
  if (den === 0) throw invalidArgument('reward weights are all 0; give at least one component a positive weight.');
  return num / den;
}

/** Builds the components of one rewrite from its M1 scores, the two result lists and the judge's counts. */
export function rewardComponents(input: {
  relevanceScores: readonly number[];
  originalIds: readonly string[];
  rewriteIds: readonly string[];
  engagement: Engagement;
}): RewardComponents {
  const rates = engagementRates(input.engagement);
  return {
    relevance: relevanceScore(input.relevanceScores),
    diversity: diversityScore(input.originalIds, input.rewriteIds),
    click: rates.click,
    addToCart: rates.addToCart,
    purchase: rates.purchase,
  };
}

export type PairPreference =
  | { tie: false; chosen: 0 | 1; rejected: 0 | 1; margin: number }
  | { tie: true; margin: number };

/**
 * The rewrite with the higher combined reward is chosen (paper §3.2). Rewards within `tolerance` are a tie:
 * the caller skips the pair and counts it (DPO learns nothing from a coin flip).
 */
export function preferPair(rewardA: number, rewardB: number, tolerance = 1e-6): PairPreference {
  requireFinite(rewardA, 'reward of rewrite A');
  requireFinite(rewardB, 'reward of rewrite B');
  requireFinite(tolerance, 'tie tolerance');
  const margin = Math.abs(rewardA - rewardB);
  if (margin <= tolerance) return { tie: true, margin };
  return rewardA > rewardB ? { tie: false, chosen: 0, rejected: 1, margin } : { tie: false, chosen: 1, rejected: 0, margin };
}
