// Experiment (docs/results/homedepot-v6-feedback.md): writes a pairs folder holding the pipeline's Q2Q train pairs plus
// feedback pairs (each training query -> the query and one of its N best feedback words) and the Q2Q test pairs,
// for `minielm train sft --pairs DIR`. Usage: node --import tsx scripts/experiments/feedback-pairs.ts OUT [N]
import { mkdirSync, writeFileSync } from 'node:fs';
import { tableWorld } from '../../lib/pipeline.ts';
import { Bm25Retriever } from '../../lib/retrieval/index.ts';
import { HOMEDEPOT_TRAIN_CSV } from '../../lib/retrieval/homedepot.ts';
import { FeedbackExpander } from '../../lib/rewrite/feedback.ts';
const out = process.argv[2] ?? 'runs/fb-pairs';
const perQuery = Number(process.argv[3] ?? 1);
const world = await tableWorld({ path: HOMEDEPOT_TRAIN_CSV, seed: 1 });
const products = [...world.products.values()];
const bm25 = new Bm25Retriever(); await bm25.index(products);
const fx = new FeedbackExpander(products);
const trainQueries = [...new Set(world.train.map((p) => p.query))];
const fb = await fx.rewrites(trainQueries, bm25, perQuery);
const extra = trainQueries.flatMap((q, i) => fb[i].map((rewrite) => ({ query: q, rewrite })));
mkdirSync(out, { recursive: true });
const lines = (ps: { query: string; rewrite: string }[]) => ps.map((p) => JSON.stringify({ query: p.query, rewrite: p.rewrite })).join('\n') + '\n';
writeFileSync(`${out}/train.jsonl`, lines([...world.train, ...extra]));
writeFileSync(`${out}/test.jsonl`, lines(world.test));
console.log(`${world.train.length} Q2Q train pairs + ${extra.length} feedback pairs; ${world.test.length} test pairs -> ${out}`);
