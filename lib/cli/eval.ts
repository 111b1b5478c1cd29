// `minielm eval offline|online|coverage`: the paper's evaluations on trained models, outside the pipeline.
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFile } from 'node:fs/promises';
import { Model } from '../model/model.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { evaluateOffline } from '../eval/offline.ts';
import { coverageAtN } from '../eval/coverage.ts';
import { evaluatePolicy } from '../rewrite/evaluate.ts';
import { syntheticWorld, tableWorld, PIPELINE_PRESETS, type PipelineWorld } from '../pipeline.ts';
import { Bm25Retriever } from '../retrieval/index.ts';
import { EmbeddedJudge, generateProfiles } from '../users/index.ts';
import type { RewardEnvironment } from '../rewrite/environment.ts';
import { invalidArgument } from '../errors.ts';
import { readPairs } from './train.ts';

const SHARED = resolve(fileURLToPath(new URL('../../../shared/data/', import.meta.url)));

export const help = `Usage: minielm eval <offline|online|coverage> --model DIR[,DIR...] [options]

  offline    ExactMatch, ROUGE-L, cross-entropy and mean length on a Q2Q test split (Table 2)
  online     combined reward, relevance, diversity, click / add-to-cart / purchase rates of greedy
             rewrites of test queries, under BM25 + M1 + the embedded simulated users (Table 3)
  coverage   distinct relevant products per query reached by the query and its n rewrites (Table 4)

Each model folder needs config.json, model.safetensors and tokenizer.json (trainer checkpoints have them).

Options:
  --model DIR[,DIR]     one or more model folders
  --pairs DIR           offline: folder with test.jsonl
  --data NAME|FILE      online/coverage: synthetic (default) | homedepot | a CSV file (Home Depot columns)
  --relevance-model DIR M1 for unjudged pairs of a table (default: lexical-overlap proxy)
  --seed N              the synthetic catalog / split seed the model was trained with (default 1)
  --queries N           test queries evaluated (default 300)
  --n N                 coverage: rewrites per query (default 10)
  --strategy S          coverage: beam (default) | sample
  --out FILE            also write the results as JSON`;

async function world(data: string, seed: number, relevanceModel?: string): Promise<PipelineWorld> {
  if (data === 'synthetic') return syntheticWorld(PIPELINE_PRESETS.demo, seed);
  return tableWorld({ path: data === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : data, seed, relevanceModel });
}

export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (!['offline', 'online', 'coverage'].includes(mode ?? '')) {
    console.error(`minielm eval: expected offline, online or coverage\n\n${help}`);
    return 2;
  }
  const { values } = parseArgs({ args: rest, options: {
    model: { type: 'string' }, pairs: { type: 'string' }, data: { type: 'string', default: 'synthetic' }, 'relevance-model': { type: 'string' },
    seed: { type: 'string', default: '1' }, queries: { type: 'string', default: '300' }, n: { type: 'string', default: '10' },
    strategy: { type: 'string', default: 'beam' }, out: { type: 'string' },
  } });
  if (!values.model) throw invalidArgument('--model DIR is required');
  const seed = Number(values.seed), maxQueries = Number(values.queries), n = Number(values.n);
  for (const [flag, v] of [['seed', seed], ['queries', maxQueries], ['n', n]] as const)
    if (!Number.isInteger(v) || v < 0) throw invalidArgument(`--${flag} must be a non-negative integer`);
  const dirs = values.model.split(',');
  const results: Record<string, unknown>[] = [];
  let env: RewardEnvironment | undefined;
  let testQueries: string[] = [];
  if (mode !== 'offline') {
    const w = await world(values.data!, seed, values['relevance-model']);
    const retriever = new Bm25Retriever();
    await retriever.index([...w.products.values()]);
    env = { retriever, products: w.products, relevance: w.relevance, judge: new EmbeddedJudge({ seed }), profiles: generateProfiles(200, seed) };
    testQueries = [...new Set(w.test.map((p) => p.query))].slice(0, maxQueries);
  }
  for (const dir of dirs) {
    const model = await Model.load(dir);
    const tokenizer = await Tokenizer.load(dir);
    let metrics: unknown;
    if (mode === 'offline') {
      if (!values.pairs) throw invalidArgument('--pairs DIR (with test.jsonl) is required for offline evaluation');
      metrics = await evaluateOffline(model, tokenizer, await readPairs(join(values.pairs, 'test.jsonl')), { maxQueries });
    } else if (mode === 'online') metrics = await evaluatePolicy(model, tokenizer, env!, testQueries);
    else {
      if (values.strategy !== 'beam' && values.strategy !== 'sample') throw invalidArgument('--strategy must be beam or sample');
      metrics = await coverageAtN(model, tokenizer, env!, testQueries, { n, strategy: values.strategy, seed });
    }
    results.push({ model: dir, ...(metrics as Record<string, unknown>) });
    console.log(JSON.stringify({ model: dir, ...(metrics as Record<string, unknown>), examples: undefined }));
  }
  if (values.out) await writeFile(values.out, `${JSON.stringify({ mode, data: values.data, results }, null, 2)}\n`);
  return 0;
}
