// Experiment (docs/relevance.md, the lexical stage): the spread of M1's lexical stage over tree seeds. The network of
// a trained scorer is kept; for each seed the trees are refitted on its training pairs and the blend on its dev pairs,
// then dev and test Spearman are measured (a spread, not a choice: nothing is selected by these numbers).
// Usage: node --import tsx scripts/experiments/m1-seeds.ts [SCORER_DIR (default runs/m1-lex)] [SEEDS (default 1,2,3)]
import { TABLE_PRESETS, LABEL_PRESETS, loadRelevanceTable } from '../../lib/data/index.ts';
import { LearnedRelevanceScorer, fitLexicalStage, splitByQuery, type LabelledPair } from '../../lib/rewards/learned.ts';
import { spearman } from '../../lib/rewards/spearman.ts';

const dir = process.argv[2] ?? 'runs/m1-lex';
const seeds = (process.argv[3] ?? '1,2,3').split(',').map(Number);
const file = new URL('../../../shared/data/homedepot/train.csv', import.meta.url).pathname;
const ds = await loadRelevanceTable({ path: file, columns: TABLE_PRESETS.homedepot.columns, labels: LABEL_PRESETS.homedepot, encoding: TABLE_PRESETS.homedepot.encoding });
const pairs: LabelledPair[] = [];
for (const j of ds.judgements) {
  const p = ds.products.get(j.productId);
  if (p) pairs.push({ query: j.query, title: p.title, gain: j.gain });
}
const sides = splitByQuery(pairs, { seed: 1, dev: 0.1, test: 0.1 });
const titles = [...ds.products.values()].map((p) => p.title);
const scorer = await LearnedRelevanceScorer.load(dir, { catalogTitles: titles });
const rows: number[][] = [];
for (const seed of seeds) {
  const fit = await fitLexicalStage(scorer, sides.train, sides.dev, { catalogTitles: titles, trees: { seed } });
  const test = spearman(await scorer.scoreGains(sides.test), sides.test.map((p) => p.gain));
  rows.push([fit.dev.blended.spearman, test]);
  console.log(`seed ${seed}: dev ${fit.dev.blended.spearman.toFixed(4)} (trees ${fit.dev.trees.spearman.toFixed(4)}), test ${test.toFixed(4)}`);
}
const mean = (k: number): number => rows.reduce((s, r) => s + r[k], 0) / rows.length;
const sd = (k: number): number => Math.sqrt(rows.reduce((s, r) => s + (r[k] - mean(k)) ** 2, 0) / Math.max(1, rows.length - 1));
console.log(`dev ${mean(0).toFixed(4)} ± ${sd(0).toFixed(4)}, test ${mean(1).toFixed(4)} ± ${sd(1).toFixed(4)} over ${rows.length} seeds`);
await scorer.dispose();
