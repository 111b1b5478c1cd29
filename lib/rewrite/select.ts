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

export const DEFAULT_FRESH_WEIGHT = 2;
export const DEFAULT_FRESH_CANDIDATES = 30;

/**
 * Indices of the `send` candidates chosen, in the order chosen. `queryIds`: the query's own top k;
 * `candidateIds[i]`: candidate i's top k (candidates in the model's rank order, best first).
 */
export function selectFresh(queryIds: readonly string[], candidateIds: readonly (readonly string[])[], send: number, options: { weight?: number; k?: number } = {}): number[] {
  const weight = options.weight ?? DEFAULT_FRESH_WEIGHT;
  const k = Math.max(1, options.k ?? Math.max(queryIds.length, ...candidateIds.map((l) => l.length), 1));
  const shown = new Set(queryIds);
  const left = candidateIds.map((_, i) => i);
  const chosen: number[] = [];
  const n = Math.max(1, candidateIds.length);
  while (chosen.length < send && left.length > 0) {
    let best = 0;
    let bestScore = -Infinity;
    for (let a = 0; a < left.length; a++) {
      const i = left[a];
      let fresh = 0;
      for (const id of new Set(candidateIds[i])) if (!shown.has(id)) fresh++;
      const score = -i / n + (weight * fresh) / k;
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
