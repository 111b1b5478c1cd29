// Experiment (docs/evaluation.md, Table 2's copy-the-query row): how far spelling correction alone takes copying the
// query on ROUGE-L, on the first 300 dev queries of the Q2Q test side. A word rare in the catalog's titles and the
// training queries becomes its most frequent neighbour within edit distance 1 (2 from 7 letters).
// Usage: node --import tsx scripts/experiments/rouge-spelling.ts
import { loadEvaluationTable } from '../../lib/eval/splits.ts';
import { rougeL, bestOver, normaliseTokens } from '../../lib/eval/text-metrics.ts';
import { editDistance } from '../../lib/rewards/rules.ts';
const t = await loadEvaluationTable({ path: '/work/shared/data/homedepot/train.csv', seed: 1, k: 2 });
const freq = new Map<string, number>();
for (const p of t.products) for (const w of normaliseTokens(p.title)) freq.set(w, (freq.get(w) ?? 0) + 1);
for (const p of t.train) for (const w of normaliseTokens(p.query)) freq.set(w, (freq.get(w) ?? 0) + 5);
const words = [...freq.keys()];
const correct = (w: string): string => {
  if ((freq.get(w) ?? 0) >= 3 || w.length < 4 || /\d/.test(w)) return w;
  let best = w, bf = freq.get(w) ?? 0, bd = 9;
  for (const c of words) { if (Math.abs(c.length - w.length) > 2) continue; const d = editDistance(w, c, 2); if (d <= (w.length >= 7 ? 2 : 1) && (d < bd || (d === bd && freq.get(c)! > bf))) { best = c; bd = d; bf = freq.get(c)!; } }
  return best;
};
const refs = new Map<string, string[]>();
for (const p of t.split.dev) { const r = refs.get(p.query) ?? []; r.push(p.rewrite); refs.set(p.query, r); }
let copy = 0, corr = 0, n = 0, changed = 0;
const ex: string[] = [];
for (const [q, rs] of [...refs].slice(0, 300)) {
  const c = normaliseTokens(q).map(correct).join(' ');
  if (c !== normaliseTokens(q).join(' ')) { changed++; if (ex.length < 12) ex.push(`${q} -> ${c} | ${rs.slice(0, 3).join(' ; ')}`); }
  copy += bestOver(rougeL, q, rs); corr += bestOver(rougeL, c, rs); n++;
}
console.log({ n, copy: (100 * copy / n).toFixed(2), corrected: (100 * corr / n).toFixed(2), changed });
console.log(ex.join('\n'));
