// Experiment (docs/results/homedepot-v7/README.md), dev split only: the student's words as query expansions. Each
// candidate is the query plus one word that the student's 60 beams hold and the query lacks (in the order the beams
// first use them), and relevance selection (lib/rewrite/select.ts) sends 10. Compared with the student's beams
// under the same selection and with feedback words (the query plus a word of its own top results).
// Usage: node --import tsx scripts/experiments/student-expansion.ts [MODEL_DIR (default runs/homedepot-v6/online/best)]
import { loadEvaluationTable, judgedQueriesBySide } from '../../lib/eval/splits.ts';
import { judgedRecall, DEFAULT_MIN_GAIN } from '../../lib/eval/judged.ts';
import { feedbackRewriter, modelRewriter, relevanceRewriter, type RewritesFor } from '../../lib/eval/rewriters.ts';
import { normaliseTokens } from '../../lib/eval/text-metrics.ts';
import { FeedbackExpander } from '../../lib/rewrite/feedback.ts';
import { Bm25Retriever } from '../../lib/retrieval/index.ts';
import { LearnedRelevanceScorer } from '../../lib/rewards/learned.ts';
import { Model } from '../../lib/model/model.ts';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { catalogWordConstraint, hygieneOptions, DEFAULT_HYGIENE } from '../../lib/rewrite/hygiene.ts';

const t = await loadEvaluationTable({ path: new URL('../../../shared/data/homedepot/train.csv', import.meta.url).pathname, seed: 1, k: 2 });
const queries = judgedQueriesBySide(t.judged, t.split, { minGain: DEFAULT_MIN_GAIN }).dev;
const bm25 = new Bm25Retriever();
await bm25.index(t.products);
const scorer = await LearnedRelevanceScorer.load('runs/m1-lex-x', { catalogTitles: t.products.map((p) => p.title) });
if (scorer.unexcluded(queries).length) throw new Error('runs/m1-lex-x trained on dev queries: train it with --exclude');
const titles = new Map(t.products.map((p) => [p.id, p.title]));
const dir = process.argv[2] ?? 'runs/homedepot-v6/online/best';
const model = await Model.load(dir);
const tok = await Tokenizer.load(dir);
const decoding = hygieneOptions(DEFAULT_HYGIENE, await catalogWordConstraint(tok, [...t.products.map((p) => p.title), ...t.train.map((p) => p.query)]));
const beams = (n: number): RewritesFor => modelRewriter(model, tok, { n, strategy: 'beam', seed: 1, decoding });
/** The query + one new word of the beams, each word once, in the order the beams first use it. */
const expansions = (from: RewritesFor, max: number): RewritesFor => async (qs) => {
  const lists = await from(qs);
  return qs.map((q, i) => {
    const own = new Set(normaliseTokens(q));
    const words: string[] = [];
    for (const r of lists[i]) for (const w of normaliseTokens(r)) if (!own.has(w) && !words.includes(w)) words.push(w);
    return words.slice(0, max).map((w) => `${q} ${w}`);
  });
};
const rel = (c: RewritesFor) => relevanceRewriter(c, bm25, scorer, (id) => titles.get(id), { n: 10, k: 10, rankWeight: 0.1 });
const rows: [string, RewritesFor][] = [
  ['student beams 60, relevance', rel(beams(60))],
  ['query + student word (60 beams, 50 words), relevance', rel(expansions(beams(60), 50))],
  ['query + student word, top 10 in beam order', async (qs) => (await expansions(beams(60), 10)(qs))],
  ['feedback 50, relevance', rel(feedbackRewriter(new FeedbackExpander(t.products), bm25, 50))],
];
for (const [name, r] of rows) {
  const res = await judgedRecall(queries, r, bm25, t.judged, { n: 10, k: 10 });
  console.log(`${name}: ${res.recall.toFixed(4)} (${(res.ratio ?? 0).toFixed(3)}x; same depth ${res.queryAloneSameDepth.toFixed(4)})`);
}
await scorer.dispose();
