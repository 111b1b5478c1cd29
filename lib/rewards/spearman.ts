// Rank statistics for judging a relevance scorer against human labels. Human relevance is coarse (Home Depot
// has 13 distinct values, CrowdFlower 4), so ties are the norm: both statistics use mid-ranks, which makes
// Spearman the Pearson correlation of the mid-ranks and AUC the Mann–Whitney U with ties counted as 1/2.
import { invalidArgument } from '../errors.ts';

/** 1-based ranks of `values` in ascending order; tied values share the mean of the ranks they span. */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(values[i])) throw invalidArgument(`rank statistics: value ${i} is NaN; score every pair before ranking.`);
  }
  order.sort((a, b) => values[a] - values[b]);
  const ranks = new Float64Array(n);
  let start = 0;
  while (start < n) {
    let end = start + 1;
    while (end < n && values[order[end]] === values[order[start]]) end++;
    // ranks start+1 .. end share their mean
    const mid = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]] = mid;
    start = end;
  }
  return ranks;
}

/** Pearson correlation; NaN when either side is constant (no ordering to correlate with). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw invalidArgument(`correlation needs equal lengths, got ${x.length} and ${y.length}.`);
  const n = x.length;
  if (n < 2) return Number.NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx;
    const dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  return sxy / Math.sqrt(sxx * syy);
}

/** Spearman's rho with tie-averaged ranks (the Pearson correlation of the mid-ranks, as scipy.stats.spearmanr). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw invalidArgument(`spearman needs equal lengths, got ${x.length} and ${y.length}.`);
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * Area under the ROC curve of `scores` for the binary `positive` labels: the probability that a random positive
 * outscores a random negative, ties counting 1/2. NaN when one class is empty.
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  if (scores.length !== positive.length) throw invalidArgument(`rocAuc needs one label per score, got ${scores.length} scores and ${positive.length} labels.`);
  const ranks = averageRanks(scores);
  let nPos = 0;
  let rankSum = 0;
  for (let i = 0; i < ranks.length; i++) {
    if (positive[i]) {
      nPos++;
      rankSum += ranks[i];
    }
  }
  const nNeg = ranks.length - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
