// Result-aware selection of rewrites: decode a larger n-best, then send the engine the rewrites that bring
// products the query (and the rewrites already chosen) do not. A rewrite that only re-finds the query's own
// results costs a search and adds nothing; near-copies ("garden hose attatchmens" for "garden hose
// attachments") are exactly those. No labels are involved: only the engine's own result lists.
//
// Greedy, in rank order of the candidates: each round picks the candidate maximising
//   -rank / candidates + weight * (its top-k ids not shown yet) / k
// (the first term keeps the model's order among equally fresh candidates and prefers likely rewrites; the
// second is the share of new results). Measured on Home Depot's dev split with the distilled student
// (docs/results/homedepot-v4-select.md): judged recall@10 with 10 rewrites 0.384 for the top 10 of 30 beams,
// 0.399 / 0.401 / 0.402 with weight 1 / 2 / 4 (0.309 for the query alone); weight 2 is the default.

import type { RelevanceScorer } from '../rewards/relevance.ts';

export const DEFAULT_FRESH_WEIGHT = 2;
export const DEFAULT_FRESH_CANDIDATES = 30;

/**
 * The greedy loop both selections share: each round takes the candidate maximising
 *   -rankWeight * rank / candidates + scale * (sum of valueOf(id) over its ids not shown yet) / k,
 * then marks its ids shown. An id a list repeats counts once; a value that is not a finite number counts 0.
 */
function selectGreedy(queryIds: readonly string[], candidateIds: readonly (readonly string[])[], send: number, rankWeight: number, valueOf: (id: string) => number, kOption?: number, scale = 1): number[] {
  const k = Math.max(1, kOption ?? Math.max(queryIds.length, ...candidateIds.map((l) => l.length), 1));
  const shown = new Set(queryIds);
  const left = candidateIds.map((_, i) => i);
  const chosen: number[] = [];
  const n = Math.max(1, candidateIds.length);
  while (chosen.length < send && left.length > 0) {
    let best = 0;
    let bestScore = -Infinity;
    for (let a = 0; a < left.length; a++) {
      const i = left[a];
      let value = 0;
      for (const id of new Set(candidateIds[i])) {
        if (shown.has(id)) continue;
        const v = valueOf(id);
        if (Number.isFinite(v)) value += v;
      }
      const score = (-rankWeight * i) / n + (scale * value) / k;
      if (score > bestScore) {
        bestScore = score;
        best = a;
      }
    }
    const [i] = left.splice(best, 1);
    chosen.push(i);
    for (const id of candidateIds[i]) shown.add(id);
  }
  return chosen;
}

/**
 * Indices of the `send` candidates chosen, in the order chosen. `queryIds`: the query's own top k;
 * `candidateIds[i]`: candidate i's top k (candidates in the model's rank order, best first).
 */
export function selectFresh(queryIds: readonly string[], candidateIds: readonly (readonly string[])[], send: number, options: { weight?: number; k?: number } = {}): number[] {
  const weight = options.weight ?? DEFAULT_FRESH_WEIGHT;
  // Counted, then scaled once: the same arithmetic as before the loop was shared, so ties break the same way.
  return selectGreedy(queryIds, candidateIds, send, 1, () => 1, options.k, weight);
}

// Chosen on Home Depot's dev split with the distilled student (docs/evaluation.md, relevance selection): judged
// recall@10 0.402 at 30 candidates and rank weight 0.1 (0.400 at 0.5), 0.414 at 60 (0.409 at weight 0), 0.418 at 120.
export const DEFAULT_RELEVANCE_RANK_WEIGHT = 0.1;
export const DEFAULT_RELEVANCE_CANDIDATES = 60;

/**
 * Relevance-aware selection: like selectFresh, but a new result counts by its predicted relevance to the *query*
 * (a learned scorer's gain in [0, 1], `gainOf(id)`), so a rewrite that brings ten unrelated products scores
 * nothing. Each round picks the candidate maximising
 *   -rankWeight * rank / candidates + (sum of gains of its top-k ids not shown yet) / k.
 * Still no labels: the gains are a model's, computed for (query, product title) at serving time.
 */
export function selectRelevant(
  queryIds: readonly string[],
  candidateIds: readonly (readonly string[])[],
  send: number,
  gainOf: (id: string) => number,
  options: { rankWeight?: number; k?: number } = {},
): number[] {
  return selectGreedy(queryIds, candidateIds, send, options.rankWeight ?? DEFAULT_RELEVANCE_RANK_WEIGHT, gainOf, options.k);
}

/**
 * selectRelevant with the gains asked from `scorer`, in one call, for (query, title) of each result that the
 * query's own list lacks; a result `titleOf` does not know, or a gain that is not a number, counts 0.
 */
export async function selectByScorer(
  query: string,
  queryIds: readonly string[],
  candidateIds: readonly (readonly string[])[],
  send: number,
  scorer: RelevanceScorer,
  titleOf: (id: string) => string | undefined,
  options: { rankWeight?: number; k?: number } = {},
): Promise<number[]> {
  const own = new Set(queryIds);
  const known: { id: string; title: string }[] = [];
  for (const id of new Set(candidateIds.flat())) {
    const title = own.has(id) ? undefined : titleOf(id);
    if (typeof title === 'string') known.push({ id, title });
  }
  const gains = known.length ? await scorer.scoreBatch(known.map((product) => ({ query, product }))) : [];
  const gain = new Map(known.map((x, i) => [x.id, Number(gains[i]) || 0]));
  return selectRelevant(queryIds, candidateIds, send, (id) => gain.get(id) ?? 0, options);
}
