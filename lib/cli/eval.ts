// `minielm eval offline|online|coverage|judged|probes`: the paper's evaluations on trained models, outside the
// pipeline, and the two that need no model in the metric (judged recall on human labels, the probe table).
import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../util/atomic.ts';
import { Model } from '../model/model.ts';
import { Tokenizer } from '../tokenizer/index.ts';
import { evaluateCopyQuery, evaluateOffline } from '../eval/offline.ts';
import { DEFAULT_MIN_GAIN, HOMEDEPOT_RELEVANT_RATING, gainThreshold, judgedRecall } from '../eval/judged.ts';
import { evaluateProbes, HOMEDEPOT_PROBES } from '../eval/probes.ts';
import { copyQuery, dropOneWord, feedbackRewriter, freshRewriter, modelRewriter, relevanceRewriter, type RewritesFor } from '../eval/rewriters.ts';
import { FeedbackExpander } from '../rewrite/feedback.ts';
import { DEFAULT_FRESH_CANDIDATES, DEFAULT_FRESH_WEIGHT, DEFAULT_RELEVANCE_CANDIDATES, DEFAULT_RELEVANCE_RANK_WEIGHT } from '../rewrite/select.ts';
import { LearnedRelevanceScorer } from '../rewards/learned.ts';
import { normalizeQuery } from '../rewards/relevance.ts';
import { judgedQueriesBySide, loadEvaluationTable } from '../eval/splits.ts';
import { coverageAtN } from '../eval/coverage.ts';
import { evaluatePolicy } from '../rewrite/evaluate.ts';
import { syntheticWorld, tableWorld, PIPELINE_PRESETS, type PipelineWorld } from '../pipeline.ts';
import { Bm25Retriever } from '../retrieval/index.ts';
import { EmbeddedJudge, generateProfiles } from '../users/index.ts';
import type { RewardEnvironment } from '../rewrite/environment.ts';
import { invalidArgument } from '../errors.ts';
import { LABEL_PRESETS } from '../data/labels.ts';
import { readPairs } from './train.ts';
import { catalogWordConstraint, hygieneOptions, DEFAULT_HYGIENE } from '../rewrite/hygiene.ts';
import type { GenerateOptions } from '../model/generate.ts';

const SHARED = resolve(fileURLToPath(new URL('../../../shared/data/', import.meta.url)));

export const help = `Usage: minielm eval <offline|online|coverage|judged|probes> --model DIR[,DIR...] [options]
       minielm eval held-out --out FILE [--data homedepot|FILE] [--seed N] [--shared N]

  offline    ExactMatch, ROUGE-L, cross-entropy and mean length on a Q2Q test split (Table 2)
  online     combined reward, relevance, diversity, click / add-to-cart / purchase rates of greedy
             rewrites of test queries, under BM25 + M1 + the embedded simulated users (Table 3)
  coverage   distinct relevant products per query reached by the query and its n rewrites (Table 4)
  judged     judged recall@k: the share of each query's human-judged relevant products that the top k
             of the query and of its n rewrites reach, against the query alone (human labels only)
  probes     pass@1 / pass@n on the probe table (misspelled, abbreviated, vague queries with the words a
             good rewrite must hold)
  held-out   writes FILE (JSONL {"query": q}): every query of the Q2Q test side, dev and test halves, queries
             and references, for "minielm relevance train --exclude FILE", so a scorer that guides
             --select relevance has read none of the labels judged recall is measured with

Each model folder needs config.json, model.safetensors and tokenizer.json (trainer checkpoints have them).
--model copy (offline, judged, probes) is the baseline without a model: the rewrite is the query itself,
so judged recall "with rewrites" equals the query alone. --model drop-word (judged, probes) is a rule
baseline: the query with one word left out, once per word. --model feedback (judged, probes) is pseudo-relevance
feedback, the retrieval-side baseline: the query plus one word its own top 20 results share and the catalog
rarely has, a word per rewrite (lib/rewrite/feedback.ts; with --select fresh, the dev split chose
--candidates 50 --fresh-weight 4).

Options:
  --model DIR[,DIR]     one or more model folders, or copy, drop-word, feedback
  --pairs DIR           offline: folder with test.jsonl
  --data NAME|FILE      online/coverage: synthetic (default) | homedepot | a CSV file (Home Depot columns)
                        judged: homedepot (default) | a CSV file in Home Depot columns
  --relevance-model DIR M1 for unjudged pairs of a table (default: lexical-overlap proxy)
  --seed N              the synthetic catalog / split seed the model was trained with (default 1); judged:
                        the Q2Q split seed, also the seed of the dev/test hash
  --queries N           test queries evaluated (default 300; judged: all of the split)
  --n N                 coverage, judged, probes: rewrites per query (default 10)
  --strategy S          coverage, judged, probes: beam (default) | sample
  --split S             judged: dev (default) | test — halves of the Q2Q test side (docs/evaluation.md);
                        tune on dev, read test once
  --pool P              judged: q2q (default: Q2Q test-side queries) | unseen (also the judged queries in
                        no Q2Q pair, split by the same hash)
  --threshold R         judged: relevant when the judged rating >= R (default ${HOMEDEPOT_RELEVANT_RATING} on Home Depot's 1..3)
  --k N                 judged: results per query and per rewrite (default 10)
  --shared N            judged: minimum shared relevant products of a Q2Q pair, as in "minielm run --k"
                        (default 2); it must match the run the model came from
  --decoding D          judged, probes: catalog (default: what the pipeline uses — rewrite hygiene and only
                        words of the catalog's titles and training queries) | hygiene (no word list) | raw
  --select S            judged: top (default: the n best rewrites) | fresh (decode --candidates rewrites and send
                        the n that bring the most results the query's own top k lacks; lib/rewrite/select.ts)
                        | relevance (decode --candidates rewrites and send the n whose new results the
                        --relevance-model scorer rates most relevant to the query; the scorer must have been
                        trained with --exclude of "eval held-out", which is checked)
  --candidates N        judged, --select fresh|relevance: rewrites decoded per query (default ${DEFAULT_FRESH_CANDIDATES}, relevance ${DEFAULT_RELEVANCE_CANDIDATES})
  --fresh-weight W      judged, --select fresh: weight of new results against the model's rank (default ${DEFAULT_FRESH_WEIGHT})
  --rank-weight W       judged, --select relevance: weight of the model's rank against the predicted relevance
                        of new results (default ${DEFAULT_RELEVANCE_RANK_WEIGHT})
  --weights W           judged, probes: fp32 (default) | bf16 (what "minielm serve --weights bf16" decodes with:
                        bf16 weights, on AMX tiles with bf16 activations where the CPU has them)
  --out FILE            also write the results as JSON`;

async function world(data: string, seed: number, relevanceModel?: string): Promise<PipelineWorld> {
  if (data === 'synthetic') return syntheticWorld(PIPELINE_PRESETS.demo, seed);
  return tableWorld({ path: data === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : data, seed, relevanceModel });
}

type Loaded = { name: string; rewriter: (n: number, strategy: 'beam' | 'sample', seed: number) => RewritesFor };

/** How a model's rewrites are decoded: the pipeline's default (catalog), hygiene without the word list, or raw. */
type DecodingMode = 'catalog' | 'hygiene' | 'raw';

/**
 * `copy`, `drop-word` or a model folder, as a rewriter factory (a model is loaded once, whatever n).
 */
interface LoadOptions {
  /** The texts whose words the catalog constraint allows (titles and training queries). */
  words?: () => Promise<string[]>;
  weights?: 'fp32' | 'bf16';
  /** --model feedback: the feedback rewriter of the catalog, n rewrites per query. */
  feedback?: (n: number) => RewritesFor;
}

async function loadRewriter(dir: string, mode: DecodingMode = 'raw', o: LoadOptions = {}): Promise<Loaded> {
  const { words, weights = 'fp32', feedback } = o;
  if (dir === 'copy') return { name: 'copy', rewriter: () => copyQuery };
  if (dir === 'drop-word') return { name: 'drop-word', rewriter: () => dropOneWord };
  if (dir === 'feedback') {
    if (!feedback) throw invalidArgument('--model feedback works with judged and probes: it needs the catalog and its search engine');
    return { name: 'feedback', rewriter: (n) => feedback(n) };
  }
  const model = await Model.load(dir);
  const tokenizer = await Tokenizer.load(dir);
  let decoding: Partial<GenerateOptions> = {};
  if (mode === 'hygiene') decoding = hygieneOptions(DEFAULT_HYGIENE);
  if (mode === 'catalog') {
    if (!words) throw invalidArgument('--decoding catalog needs a catalog: pass --data homedepot or a table file');
    decoding = hygieneOptions(DEFAULT_HYGIENE, await catalogWordConstraint(tokenizer, await words()));
  }
  if (weights === 'bf16') decoding = { ...decoding, weights };
  const name = `${dir}${mode === 'raw' ? '' : ` (${mode})`}${weights === 'bf16' ? ' [bf16]' : ''}`;
  return { name, rewriter: (n, strategy, seed) => modelRewriter(model, tokenizer, { n, strategy, seed, decoding }) };
}

function decodingMode(raw: unknown): DecodingMode {
  if (raw !== 'catalog' && raw !== 'hygiene' && raw !== 'raw') throw invalidArgument(`--decoding must be catalog, hygiene or raw, got "${String(raw)}"`);
  return raw;
}

function intFlag(flag: string, raw: string, min: number): number {
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw invalidArgument(`--${flag} must be an integer >= ${min}, got "${raw}"`);
  return v;
}

export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (!['offline', 'online', 'coverage', 'judged', 'probes', 'held-out'].includes(mode ?? '')) {
    console.error(`minielm eval: expected offline, online, coverage, judged, probes or held-out\n\n${help}`);
    return 2;
  }
  const { values } = parseArgs({ args: rest, options: {
    model: { type: 'string' }, pairs: { type: 'string' }, data: { type: 'string' }, 'relevance-model': { type: 'string' },
    seed: { type: 'string', default: '1' }, queries: { type: 'string' }, n: { type: 'string', default: '10' },
    strategy: { type: 'string', default: 'beam' }, out: { type: 'string' },
    split: { type: 'string', default: 'dev' }, pool: { type: 'string', default: 'q2q' }, threshold: { type: 'string' }, k: { type: 'string', default: '10' }, shared: { type: 'string', default: '2' },
    decoding: { type: 'string', default: 'catalog' }, select: { type: 'string', default: 'top' }, candidates: { type: 'string' },
    'fresh-weight': { type: 'string', default: String(DEFAULT_FRESH_WEIGHT) }, weights: { type: 'string', default: 'fp32' },
    'rank-weight': { type: 'string', default: String(DEFAULT_RELEVANCE_RANK_WEIGHT) },
  } });
  if (mode === 'held-out') return runHeldOut(values);
  const decoding = decodingMode(values.decoding);
  if (values.weights !== 'fp32' && values.weights !== 'bf16') throw invalidArgument(`--weights must be fp32 or bf16, got "${values.weights}"`);
  const weights = values.weights;
  if (!values.model) throw invalidArgument('--model DIR is required (or --model copy for the copy-the-query baseline)');
  const seed = Number(values.seed), n = Number(values.n);
  const maxQueries = values.queries === undefined ? (mode === 'judged' ? Infinity : 300) : Number(values.queries);
  for (const [flag, v] of [['seed', seed], ['queries', maxQueries], ['n', n]] as const)
    if (v !== Infinity && (!Number.isInteger(v) || v < 0)) throw invalidArgument(`--${flag} must be a non-negative integer`);
  if (values.strategy !== 'beam' && values.strategy !== 'sample') throw invalidArgument(`--strategy must be beam or sample, got "${values.strategy}"`);
  const strategy = values.strategy;
  const dirs = values.model.split(',');
  if (dirs.includes('copy') && (mode === 'online' || mode === 'coverage')) throw invalidArgument(`--model copy works with offline, judged and probes, not ${mode}: pass a model folder`);
  if (dirs.includes('drop-word') && mode !== 'judged' && mode !== 'probes') throw invalidArgument(`--model drop-word works with judged and probes, not ${mode}: pass a model folder`);
  if (dirs.includes('feedback') && mode !== 'judged' && mode !== 'probes') throw invalidArgument(`--model feedback works with judged and probes (it needs the catalog's search engine), not ${mode}`);
  if (mode === 'judged') return runJudged(values, dirs, { seed, n, maxQueries, strategy, decoding, weights });
  if (mode === 'probes') {
    if (n < 1) throw invalidArgument('--n must be >= 1 for probes (pass@n needs at least one rewrite)');
    const results: Record<string, unknown>[] = [];
    const probeData = values.data ?? 'homedepot';
    const words = async (): Promise<string[]> => {
      const t = await loadEvaluationTable({ path: probeData === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : probeData, seed });
      return [...t.products.map((p) => p.title), ...t.train.map((p) => p.query)];
    };
    for (const dir of dirs) {
      let feedback: ((count: number) => RewritesFor) | undefined;
      if (dir === 'feedback') {
        const t = await loadEvaluationTable({ path: probeData === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : probeData, seed });
        const bm25 = new Bm25Retriever();
        await bm25.index(t.products);
        const expander = new FeedbackExpander(t.products);
        feedback = (count) => feedbackRewriter(expander, bm25, count);
      }
      const r = await loadRewriter(dir, decoding, { words, weights, feedback });
      const summary = await evaluateProbes(r.rewriter(n, strategy, seed), HOMEDEPOT_PROBES, { n });
      results.push({ model: r.name, ...summary });
      console.log(JSON.stringify({ model: r.name, probes: summary.probes, passAt1: summary.passAt1, passAtN: summary.passAtN, n, byKind: summary.byKind }));
    }
    if (values.out) await writeFileAtomic(values.out, `${JSON.stringify({ mode, results }, null, 2)}\n`);
    return 0;
  }
  const data = values.data ?? 'synthetic';
  const results: Record<string, unknown>[] = [];
  let env: RewardEnvironment | undefined;
  let testQueries: string[] = [];
  if (mode !== 'offline') {
    const w = await world(data, seed, values['relevance-model']);
    const retriever = new Bm25Retriever();
    await retriever.index([...w.products.values()]);
    env = { retriever, products: w.products, relevance: w.relevance, judge: new EmbeddedJudge({ seed }), profiles: generateProfiles(200, seed) };
    testQueries = [...new Set(w.test.map((p) => p.query))].slice(0, maxQueries);
  }
  for (const dir of dirs) {
    let metrics: unknown;
    if (mode === 'offline') {
      if (!values.pairs) throw invalidArgument('--pairs DIR (with test.jsonl) is required for offline evaluation');
      const pairs = await readPairs(join(values.pairs, 'test.jsonl'));
      metrics = dir === 'copy' ? evaluateCopyQuery(pairs, { maxQueries }) : await evaluateOffline(await Model.load(dir), await Tokenizer.load(dir), pairs, { maxQueries });
    } else {
      const model = await Model.load(dir);
      const tokenizer = await Tokenizer.load(dir);
      if (mode === 'online') metrics = await evaluatePolicy(model, tokenizer, env!, testQueries);
      else metrics = await coverageAtN(model, tokenizer, env!, testQueries, { n, strategy, seed });
    }
    results.push({ model: dir, ...(metrics as Record<string, unknown>) });
    console.log(JSON.stringify({ model: dir, ...(metrics as Record<string, unknown>), examples: undefined }));
  }
  if (values.out) await writeFileAtomic(values.out, `${JSON.stringify({ mode, data, results }, null, 2)}\n`);
  return 0;
}

/** `minielm eval judged`: judged recall@k on the dev or test half of a table's Q2Q test side. */
async function runJudged(values: Record<string, string | boolean | undefined>, dirs: string[], o: { seed: number; n: number; maxQueries: number; strategy: 'beam' | 'sample'; decoding: DecodingMode; weights: 'fp32' | 'bf16' }): Promise<number> {
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const split = str('split')!, pool = str('pool')!;
  if (split !== 'dev' && split !== 'test') throw invalidArgument(`--split must be dev or test, got "${split}"`);
  if (pool !== 'q2q' && pool !== 'unseen') throw invalidArgument(`--pool must be q2q or unseen, got "${pool}"`);
  const k = intFlag('k', str('k')!, 1);
  const shared = intFlag('shared', str('shared')!, 1);
  const thresholdText = str('threshold');
  const threshold = thresholdText === undefined ? HOMEDEPOT_RELEVANT_RATING : thresholdText.trim() === '' ? NaN : Number(thresholdText);
  if (!Number.isFinite(threshold)) throw invalidArgument(`--threshold must be a number, a rating on Home Depot's 1..3 scale (default ${HOMEDEPOT_RELEVANT_RATING}), got "${thresholdText}"`);
  const data = str('data') ?? 'homedepot';
  if (data === 'synthetic') throw invalidArgument('--data synthetic has no human labels: judged recall needs homedepot or a CSV file in Home Depot columns');
  const path = data === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : data;
  // Checked before the table is read: the threshold is on the preset's rating scale, known up front.
  const minGain = thresholdText === undefined ? DEFAULT_MIN_GAIN : gainThreshold(LABEL_PRESETS.homedepot, threshold, '--threshold');
  const table = await loadEvaluationTable({ path, seed: o.seed, k: shared });
  const sides = judgedQueriesBySide(table.judged, table.split, { minGain, unseen: pool === 'unseen' ? { queries: table.queries, train: table.train } : undefined });
  const queries = sides[split];
  if (queries.length === 0) console.error(`minielm eval judged: no ${split} query of ${path} has a judged product rated >= ${threshold}; the numbers below are over 0 queries`);
  const retriever = new Bm25Retriever();
  await retriever.index(table.products);
  const select = str('select')!;
  if (select !== 'top' && select !== 'fresh' && select !== 'relevance') throw invalidArgument(`--select must be top, fresh or relevance, got "${select}"`);
  const candidates = intFlag('candidates', str('candidates') ?? String(select === 'relevance' ? DEFAULT_RELEVANCE_CANDIDATES : DEFAULT_FRESH_CANDIDATES), 1);
  const weight = Number(str('fresh-weight'));
  if (!Number.isFinite(weight) || weight < 0) throw invalidArgument(`--fresh-weight must be a number >= 0, got "${str('fresh-weight')}"`);
  const rankWeight = Number(str('rank-weight'));
  if (!Number.isFinite(rankWeight) || rankWeight < 0) throw invalidArgument(`--rank-weight must be a number >= 0, got "${str('rank-weight')}"`);
  let scorer: LearnedRelevanceScorer | undefined;
  if (select === 'relevance') {
    const dir = str('relevance-model');
    if (!dir) throw invalidArgument('--select relevance needs --relevance-model DIR: a scorer from "minielm relevance train --exclude FILE" with FILE from "minielm eval held-out"');
    if (pool !== 'q2q') throw invalidArgument('--select relevance works with --pool q2q only: the queries of the unseen pool are in the relevance scorer\'s training data');
    scorer = await LearnedRelevanceScorer.load(dir, { catalogTitles: table.products.map((p) => p.title) });
    const seen = scorer.unexcluded(queries);
    if (seen.length) {
      await scorer.dispose();
      throw invalidArgument(`--relevance-model ${dir} was trained on the labels of ${seen.length} of the ${queries.length} ${split} queries (e.g. "${seen[0]}"): retrain it with --exclude FILE, FILE from "minielm eval held-out --seed ${o.seed} --shared ${shared} --out FILE"`);
    }
  }
  const titles = new Map(table.products.map((p) => [p.id, p.title]));
  const results: Record<string, unknown>[] = [];
  for (const dir of dirs) {
    const expander = dir === 'feedback' ? new FeedbackExpander(table.products) : undefined;
    const r = await loadRewriter(dir, o.decoding, {
      words: async () => [...table.products.map((p) => p.title), ...table.train.map((p) => p.query)],
      weights: o.weights,
      feedback: expander && ((count) => feedbackRewriter(expander, retriever, count)),
    });
    const candidatePool = (): RewritesFor => r.rewriter(Math.max(candidates, o.n, 1), o.strategy, o.seed);
    const rewriter = select === 'fresh'
      ? freshRewriter(candidatePool(), retriever, { n: Math.max(1, o.n), k, weight })
      : select === 'relevance'
        ? relevanceRewriter(candidatePool(), retriever, scorer!, (id) => titles.get(id), { n: Math.max(1, o.n), k, rankWeight })
        : r.rewriter(Math.max(1, o.n), o.strategy, o.seed);
    const result = await judgedRecall(queries, rewriter, retriever, table.judged, { minGain, n: o.n, k, maxQueries: o.maxQueries });
    const choice = select === 'fresh' ? { candidates, weight } : select === 'relevance' ? { candidates, rankWeight, relevanceModel: str('relevance-model') } : {};
    const row = { model: r.name, select, ...choice, data, split, pool, threshold, ...result };
    results.push(row);
    console.log(JSON.stringify({ ...row, examples: undefined }));
  }
  if (values.out) await writeFileAtomic(values.out as string, `${JSON.stringify({ mode: 'judged', data, split, pool, threshold, k, n: o.n, seed: o.seed, shared, select, products: table.products.length, results }, null, 2)}\n`);
  await scorer?.dispose();
  return 0;
}

/** `minielm eval held-out`: every query of the Q2Q test side (both halves, queries and references) as JSONL. */
async function runHeldOut(values: Record<string, string | boolean | undefined>): Promise<number> {
  const out = typeof values.out === 'string' ? values.out : undefined;
  if (!out) throw invalidArgument('--out FILE is required: the JSONL file that will list the held-out queries');
  const data = typeof values.data === 'string' ? values.data : 'homedepot';
  const path = data === 'homedepot' ? join(SHARED, 'homedepot', 'train.csv') : data;
  const seed = intFlag('seed', String(values.seed ?? '1'), 0);
  const shared = intFlag('shared', String(values.shared ?? '2'), 1);
  const table = await loadEvaluationTable({ path, seed, k: shared });
  const queries = new Map<string, string>();
  for (const p of table.test) for (const q of [p.query, p.rewrite]) if (!queries.has(normalizeQuery(q))) queries.set(normalizeQuery(q), q.trim().replace(/\s+/g, ' '));
  await writeFileAtomic(out, [...queries.values()].map((q) => `${JSON.stringify({ query: q })}\n`).join(''));
  console.error(`wrote ${queries.size} queries of the Q2Q test side (seed ${seed}, shared ${shared}) to ${out}`);
  return 0;
}
