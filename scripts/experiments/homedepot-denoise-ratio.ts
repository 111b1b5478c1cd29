// Dev-split experiment behind the pipeline's denoising ratio: SFT students from the Home Depot run's pretrained
// student at several ratios, scored on the dev split only (ROUGE-L and judged recall@10 with 10 rewrites).
// Usage: node --import tsx scripts/experiments/homedepot-denoise-ratio.ts 0.5,0.75,0.9 (after `minielm run`).
import { join } from 'node:path';
import { Tokenizer } from '../../lib/tokenizer/index.ts';
import { evaluateOffline, evaluateCopyQuery } from '../../lib/eval/offline.ts';
import { loadEvaluationTable } from '../../lib/eval/splits.ts';
import { catalogWordConstraint, hygieneOptions, DEFAULT_HYGIENE } from '../../lib/rewrite/hygiene.ts';
import { denoisingPairs, mixPairs } from '../../lib/data/noise.ts';
import { trainSft } from '../../lib/train/sft.ts';
import { Model } from '../../lib/model/model.ts';
import { existsSync } from 'node:fs';
import { judgedRecall } from '../../lib/eval/judged.ts';
import { judgedQueriesBySide } from '../../lib/eval/splits.ts';
import { modelRewriter } from '../../lib/eval/rewriters.ts';
import { Bm25Retriever } from '../../lib/retrieval/index.ts';
const table = await loadEvaluationTable({ path: join('..', 'shared', 'data', 'homedepot', 'train.csv'), seed: 1, k: 2 });
const dev = table.split.dev as never as { query: string; rewrite: string }[];
const train = table.train as never as { query: string; rewrite: string }[];
const tok = await Tokenizer.load('runs/homedepot/tokenizer');
const titles = table.products.map((p) => p.title);
const c = await catalogWordConstraint(tok, [...titles, ...train.map((p) => p.query)]);
const decoding = hygieneOptions(DEFAULT_HYGIENE, c);
const retriever = new Bm25Retriever();
await retriever.index(table.products);
const devJudged = judgedQueriesBySide(table.judged, table.split).dev.slice(0, 300);
const jr = async (m: Model) => (await judgedRecall(devJudged, modelRewriter(m, tok, { n: 10, decoding }), retriever, table.judged, { n: 10, k: 10 }));
const queries = [...new Set(train.map((p) => p.query))];
for (const ratio of (process.argv[2] ?? '0.5,0.75').split(',').map(Number)) {
  const denoise = denoisingPairs({ queries, titles, count: Math.round((train.length * ratio) / (1 - ratio)), seed: 1 });
  const mixed = mixPairs(train, denoise, ratio, 1);
  const out = `runs/exp-denoise-${ratio}`;
  if (!existsSync(join(out, 'best', 'config.json'))) await trainSft({ out, train: mixed, test: dev, tokenizer: tok, init: 'runs/homedepot/pretrain-student/best', steps: 600, batchSize: 32, optimizer: { lr: 3e-3, warmupSteps: 30, weightDecay: 0.1 }, evalEvery: 100, seed: 1, progress: false });
  const model = await Model.load(join(out, 'best'));
  const m = await evaluateOffline(model, tok, dev, { maxQueries: 300, decoding });
  const j = await jr(model);
  console.log(`student r${ratio}`, 'rougeL', m.rougeL.toFixed(2), 'len', m.meanLength.toFixed(2), 'judged', j.recall.toFixed(4), 'alone', j.queryAlone.toFixed(4), m.examples.slice(0, 5).map((e) => `${e.query} -> ${e.rewrite}`).join(' | '));
}
