// Experiment (docs/results/homedepot-v7/README.md), dev split only: relevance selection (lib/rewrite/select.ts) over
// feedback words alone, over a student's 60 beams plus 50 feedback words, and fresh selection over the feedback words.
// Needs a scorer trained with --exclude of "minielm eval held-out" in runs/m1-lex-x.
// Usage: node --import tsx scripts/experiments/hybrid-relevance.ts [MODEL_DIR (default runs/homedepot-v6/distilled/best)]
import { loadEvaluationTable, judgedQueriesBySide } from '../../lib/eval/splits.ts';
import { judgedRecall, DEFAULT_MIN_GAIN } from '../../lib/eval/judged.ts';
import { feedbackRewriter, modelRewriter, relevanceRewriter, freshRewriter, type RewritesFor } from '../../lib/eval/rewriters.ts';
import { FeedbackExpander } from '../../lib/rewrite/feedback.ts';
import { Bm25Retriever } from '../../lib/retrieval/index.ts';
import { LearnedRelevanceScorer } from '../../lib/rewards/learned.ts';
import { Model } from '../../lib/model/model.ts';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { catalogWordConstraint, hygieneOptions, DEFAULT_HYGIENE } from '../../lib/rewrite/hygiene.ts';
const t = await loadEvaluationTable({ path: '/work/shared/data/homedepot/train.csv', seed: 1, k: 2 });
const queries = judgedQueriesBySide(t.judged, t.split, { minGain: DEFAULT_MIN_GAIN }).dev;
const bm25 = new Bm25Retriever(); await bm25.index(t.products);
const scorer = await LearnedRelevanceScorer.load('runs/m1-lex-x', { catalogTitles: t.products.map((p) => p.title) });
if (scorer.unexcluded(queries).length) throw new Error('scorer saw dev queries');
const titles = new Map(t.products.map((p) => [p.id, p.title]));
const fb = new FeedbackExpander(t.products);
const dir = process.argv[2] ?? 'runs/homedepot-v6/distilled/best';
const model = await Model.load(dir); const tok = await Tokenizer.load(dir);
const decoding = hygieneOptions(DEFAULT_HYGIENE, await catalogWordConstraint(tok, [...t.products.map((p) => p.title), ...t.train.map((p) => p.query)]));
const student = (n: number): RewritesFor => modelRewriter(model, tok, { n, strategy: 'beam', seed: 1, decoding });
const feed = (n: number): RewritesFor => feedbackRewriter(fb, bm25, n);
const both = (a: RewritesFor, b: RewritesFor): RewritesFor => async (qs) => { const [x, y] = await Promise.all([a(qs), b(qs)]); return x.map((l, i) => [...l, ...y[i]]); };
const rel = (c: RewritesFor, w = 0.1) => relevanceRewriter(c, bm25, scorer, (id) => titles.get(id), { n: 10, k: 10, rankWeight: w });
const rows: [string, RewritesFor][] = [
  ['feedback 50, relevance', rel(feed(50))],
  ['student 60 + feedback 50, relevance', rel(both(student(60), feed(50)), 0)],
  ['feedback 50, fresh w4', freshRewriter(feed(50), bm25, { n: 10, k: 10, weight: 4 })],
];
for (const [name, r] of rows) {
  const res = await judgedRecall(queries, r, bm25, t.judged, { n: 10, k: 10 });
  console.log(name, res.recall.toFixed(4), (res.ratio ?? 0).toFixed(3));
}
