// Graded ranking metrics.

/**
 * NDCG@k with linear gains: DCG = sum_i gain(rank i) / log2(i + 1). `gains` maps a product id to its gain; ids
 * missing from it count as 0. The ideal ranking sorts all of `gains`. Returns NaN when no gain is positive
 * (the query cannot be scored) so callers can skip it explicitly.
 */
export function ndcgAt(ranked: readonly string[], gains: ReadonlyMap<string, number>, k: number): number {
  let dcg = 0;
  for (let i = 0; i < Math.min(k, ranked.length); i++) dcg += (gains.get(ranked[i]) ?? 0) / Math.log2(i + 2);
  const ideal = [...gains.values()].filter((g) => g > 0).sort((a, b) => b - a);
  let idcg = 0;
  for (let i = 0; i < Math.min(k, ideal.length); i++) idcg += ideal[i] / Math.log2(i + 2);
  return idcg > 0 ? dcg / idcg : NaN;
}

/** Home Depot relevance (mean of raters, 1..3) -> gain in [0, 1]: (relevance - 1) / 2. */
export function homeDepotGain(relevance: number): number {
  return Math.min(1, Math.max(0, (relevance - 1) / 2));
}
