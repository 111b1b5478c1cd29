// Offline rewrite metrics of the paper's Table 2: ExactMatch and ROUGE-L between a generated rewrite and
// the reference rewrite(s). Text is normalised the same way on both sides (lower case, Unicode letters and
// digits as tokens) so punctuation and spacing do not count as errors.

export function normaliseTokens(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** 1 when the normalised token sequences are identical, else 0. */
export function exactMatch(prediction: string, reference: string): number {
  const a = normaliseTokens(prediction), b = normaliseTokens(reference);
  return a.length === b.length && a.every((t, i) => t === b[i]) ? 1 : 0;
}

/** Length of the longest common subsequence of two token lists (O(n·m) time, O(min) memory). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length < b.length) [a, b] = [b, a];
  let prev = new Array<number>(b.length + 1).fill(0);
  let cur = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/**
 * ROUGE-L F-measure (Lin, 2004) with beta = 1: LCS-based precision and recall, combined by their harmonic
 * mean. 0 when either side is empty (two empty strings score 1: they are identical).
 */
export function rougeL(prediction: string, reference: string): number {
  const p = normaliseTokens(prediction), r = normaliseTokens(reference);
  if (p.length === 0 && r.length === 0) return 1;
  if (p.length === 0 || r.length === 0) return 0;
  const lcs = lcsLength(p, r);
  if (lcs === 0) return 0;
  const precision = lcs / p.length, recall = lcs / r.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Best score over several acceptable references (a query usually has more than one gold rewrite). */
export function bestOver(metric: (p: string, r: string) => number, prediction: string, references: readonly string[]): number {
  let best = 0;
  for (const r of references) best = Math.max(best, metric(prediction, r));
  return best;
}
