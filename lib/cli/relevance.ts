// `minielm relevance train|eval`: the learned relevance scorer (M1) on a judged relevance table, measured against
// BM25 used as a predictor on the same held-out pairs (Spearman with the human label, AUC of relevant vs not).
import { mkdir, readFile } from 'node:fs/promises';
import { resolveDir, writeFileAtomic } from '../util/atomic.ts';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MinielmError } from '../errors.ts';
import { LABEL_PRESETS, TABLE_PRESETS, loadRelevanceTable } from '../data/index.ts';
import { Bm25PairScorer } from '../rewards/bm25-pairs.ts';
import {
  LearnedRelevanceScorer,
  RELEVANCE_TRAIN_DEFAULTS,
  splitByQuery,
  trainRelevanceScorer,
  type LabelledPair,
} from '../rewards/learned.ts';
import { rocAuc, spearman } from '../rewards/spearman.ts';
import { normalizeQuery } from '../rewards/relevance.ts';
import { native } from '../native.ts';

const SHARED_DATA = new URL('../../../shared/data/', import.meta.url).pathname;
const D = RELEVANCE_TRAIN_DEFAULTS;

export const help = `Usage:
  minielm relevance train --data homedepot|<csv> --out DIR [--init DIR] [options]
  minielm relevance eval  --model DIR --data homedepot|crowdflower|<csv> [options]
  minielm relevance held-out --data homedepot|<csv> --out DIR [--split-seed N]

train: splits the judged pairs by query (seeded; train / dev / test), trains a
small GPT-2 with a scalar head on the train side (gains as soft BCE targets),
keeps the checkpoint with the best dev Spearman, then boosted trees over
lexical match features of the pairs (coverage of the query by the title,
exact and fuzzy, BM25, numbers, order), blended with the network on dev;
writes it to DIR, then evaluates it and BM25 on the test side. From scratch (a tokenizer trained on
the train side) or, with --init, on top of a pretrained causal-LM trunk.
eval: scores judged pairs with a trained scorer and with BM25 (k1 1.2, b 0.75,
idf over every title of the file) and prints Spearman and AUC of both.
held-out: writes DIR/test.jsonl (every dev and test query of the split, as
{"query": q, "rewrite": q}) and an empty DIR/train.jsonl, so that
"minielm train pretrain --pairs DIR" leaves the queries M1 is chosen and
measured on out of the trunk's pretraining text.

Data:
  --data NAME|FILE     homedepot or crowdflower (../shared/data/<name>/train.csv),
                       or a CSV/JSONL file
  --preset NAME        column and label map for a FILE (homedepot | crowdflower;
                       default homedepot)
  --split-seed N       query split seed (default 1); eval reuses the model's
  --dev F --test F     query fractions of the dev and test sides (0.1 each)
  --exclude FILE       train only: leave these queries out of all three sides
                       (JSONL with a "query" field, or one query a line; e.g.
                       "minielm eval held-out" of a rewriter's evaluation, so
                       the scorer can guide that evaluation without having read
                       its labels); they are listed in relevance.json
  --pairs SIDE         eval only: test (default for the training file) or all
                       (default for another file)
  --relevant R         raw label at or above which a pair counts as relevant
                       for the AUC (Home Depot 2.33, CrowdFlower 3)
  --report FILE        JSON report (train: DIR/report.json; eval: printed only
                       unless given)

Model and training (train):
  --init DIR           start from a causal-LM checkpoint folder (a "minielm
                       train pretrain" run's best/, a Hugging Face GPT-2 folder
                       with its tokenizer): its tokenizer and trunk are used,
                       the score head is new (small random); the model's sizes
                       come from DIR (--vocab-size, --layers, --heads, --width
                       are then refused), --ctx may not exceed its n_ctx
  --vocab-size N  (${D.vocabSize})   --ctx N (${D.nCtx})   --max-query-tokens N (${D.maxQueryTokens})
  --layers N (${D.nLayer})   --heads N (${D.nHead})   --width N (${D.nEmbd})
  --epochs N (${D.epochs})   --batch N (${D.batchSize})   --lr X (${D.lr})   --warmup N (${D.warmupSteps})
  --weight-decay X (${D.weightDecay})   --seed N (${D.seed})   --eval-every N (${D.evalEvery})
  --pretrain-epochs N (${D.pretrainEpochs})   next-token language modelling on the training
                       sequences before the score head is trained
  --negatives X (${D.negativesPerPair})   sampled negatives per judged pair: the batch's query with
                       another query's judged title, target 0
  --negative-weight X (${D.negativeWeight})   their loss weight
  --keep-case          feed texts in their own case (default: lower-cased, which
                       suits a tokenizer trained on lower-cased text; a trunk
                       pretrained on title-case titles splits lower-cased ones
                       into more, rarer tokens)
  --no-lexical         the network alone: no boosted-tree stage over lexical
                       match features after it (the default trains one on the
                       training pairs and blends it with the network on dev)
  --max-minutes X      stop training after X minutes and keep the best so far
  --threads N          native threads (default: all cores)

Progress lines go to stderr: step | loss | lr | tok/s, and dev Spearman / AUC.`;

interface LoadedPairs {
  source: string;
  pairs: LabelledPair[];
  catalogTitles: string[];
  /** Raw label scale, to turn gains back into the source's numbers. */
  min: number;
  max: number;
  defaultRelevant: number;
}

async function loadPairs(data: string, preset: string | undefined): Promise<LoadedPairs> {
  let file = data;
  let name = preset ?? 'homedepot';
  if (data === 'homedepot' || data === 'crowdflower') {
    file = join(SHARED_DATA, data, 'train.csv');
    name = data;
  }
  if (!existsSync(file)) throw new MinielmError('MINIELM_NOT_FOUND', `--data ${data}: ${file} does not exist.`);
  const table = TABLE_PRESETS[name];
  const labels = LABEL_PRESETS[name];
  if (!table || !labels || labels.kind !== 'graded') throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--preset ${name}: use homedepot or crowdflower (graded labels).`);
  const ds = await loadRelevanceTable({ path: file, columns: table.columns, labels, encoding: table.encoding });
  const pairs: LabelledPair[] = [];
  for (const j of ds.judgements) {
    const product = ds.products.get(j.productId);
    if (!product) continue;
    pairs.push({ query: j.query, title: product.title, gain: j.gain });
  }
  const catalogTitles = [...ds.products.values()].map((p) => p.title);
  return { source: file, pairs, catalogTitles, min: labels.min, max: labels.max, defaultRelevant: name === 'crowdflower' ? 3 : 2.33 };
}

export interface PredictorMetrics {
  spearman: number;
  auc: number;
}

export interface RelevanceEvaluation {
  pairs: number;
  queries: number;
  relevantAt: number;
  positives: number;
  /** The scorer's gains: the blend when it has a lexical stage, else the network's. */
  learned: PredictorMetrics;
  /** With a lexical stage: the network alone and the trees alone, on the same pairs. */
  network?: PredictorMetrics;
  trees?: PredictorMetrics;
  bm25: PredictorMetrics;
  scoreSeconds: number;
  pairsPerSec: number;
}

/** Spearman against the gains (a monotone map of the raw label) and AUC at `relevantAt` on the raw scale. */
export async function evaluatePairs(scorer: LearnedRelevanceScorer, bm25: Bm25PairScorer, pairs: readonly LabelledPair[], scale: { min: number; max: number }, relevantAt: number): Promise<RelevanceEvaluation> {
  const gains = pairs.map((p) => p.gain);
  // Gains are rounded label fractions (2.33 -> 0.665); compare with a little slack so 2.33 counts at 2.33.
  const relevant = pairs.map((p) => scale.min + p.gain * (scale.max - scale.min) >= relevantAt - 1e-6);
  const t0 = performance.now();
  const learned = await scorer.scoreGains(pairs);
  const scoreSeconds = (performance.now() - t0) / 1000;
  const lexical = bm25.scorePairs(pairs);
  const measure = (x: ArrayLike<number>): PredictorMetrics => ({ spearman: spearman(x, gains), auc: rocAuc(x, relevant) });
  const parts = scorer.lexical ? { network: measure(await scorer.scoreLogits(pairs)), trees: measure(await scorer.lexical.treeScores(pairs)) } : {};
  return {
    pairs: pairs.length,
    queries: new Set(pairs.map((p) => p.query)).size,
    relevantAt,
    positives: relevant.filter(Boolean).length,
    learned: measure(learned),
    ...parts,
    bm25: measure(lexical),
    scoreSeconds,
    pairsPerSec: pairs.length / scoreSeconds,
  };
}

function printEvaluation(label: string, e: RelevanceEvaluation): void {
  const f = (x: number): string => x.toFixed(4);
  console.log(`${label}: ${e.pairs} pairs, ${e.queries} queries, ${e.positives} relevant (label >= ${e.relevantAt})`);
  console.log(`  learned  Spearman ${f(e.learned.spearman)}  AUC ${f(e.learned.auc)}${e.network ? '  (network + lexical trees)' : ''}`);
  if (e.network) console.log(`    network alone  Spearman ${f(e.network.spearman)}  AUC ${f(e.network.auc)}`);
  if (e.trees) console.log(`    trees alone    Spearman ${f(e.trees.spearman)}  AUC ${f(e.trees.auc)}`);
  console.log(`  BM25     Spearman ${f(e.bm25.spearman)}  AUC ${f(e.bm25.auc)}`);
  console.log(`  scoring: ${e.pairsPerSec.toFixed(0)} pairs/s`);
}

function int(values: Record<string, unknown>, key: string, fallback: number): number {
  const v = values[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--${key} must be a positive integer, got "${String(v)}".`);
  return n;
}

function num(values: Record<string, unknown>, key: string, fallback: number): number {
  const v = values[key];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--${key} must be a non-negative number, got "${String(v)}".`);
  return n;
}

const OPTIONS = {
  data: { type: 'string' },
  preset: { type: 'string' },
  out: { type: 'string' },
  model: { type: 'string' },
  report: { type: 'string' },
  pairs: { type: 'string' },
  relevant: { type: 'string' },
  'split-seed': { type: 'string' },
  dev: { type: 'string' },
  test: { type: 'string' },
  'vocab-size': { type: 'string' },
  ctx: { type: 'string' },
  'max-query-tokens': { type: 'string' },
  layers: { type: 'string' },
  heads: { type: 'string' },
  width: { type: 'string' },
  epochs: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  warmup: { type: 'string' },
  'weight-decay': { type: 'string' },
  seed: { type: 'string' },
  'eval-every': { type: 'string' },
  'max-minutes': { type: 'string' },
  negatives: { type: 'string' },
  'pretrain-epochs': { type: 'string' },
  'negative-weight': { type: 'string' },
  init: { type: 'string' },
  threads: { type: 'string' },
  'keep-case': { type: 'boolean' },
  'no-lexical': { type: 'boolean' },
  exclude: { type: 'string' },
} as const;

/** Queries of an exclusion file, normalised: JSONL objects with "query", or plain lines. */
export async function readQueryList(file: string): Promise<Set<string>> {
  if (!existsSync(file)) throw new MinielmError('MINIELM_NOT_FOUND', `--exclude ${file} does not exist.`);
  const out = new Set<string>();
  const lines = (await readFile(file, 'utf8')).split('\n');
  lines.forEach((line, i) => {
    const t = line.trim();
    if (!t) return;
    let q: unknown = t;
    if (t.startsWith('{')) {
      try {
        q = (JSON.parse(t) as { query?: unknown }).query;
      } catch {
        throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--exclude ${file}: line ${i + 1} starts with "{" but is not JSON.`);
      }
    }
    if (typeof q !== 'string') throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--exclude ${file}: line ${i + 1} has no string "query".`);
    out.add(normalizeQuery(q));
  });
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'train' && sub !== 'eval' && sub !== 'held-out') {
    console.error(sub ? `minielm relevance: unknown subcommand "${sub}".\n\n${help}` : help);
    return 2;
  }
  let values: Record<string, string | undefined>;
  let keepCase = false;
  let noLexical = false;
  try {
    const parsed = parseArgs({ args: rest, options: OPTIONS }).values;
    keepCase = parsed['keep-case'] === true;
    noLexical = parsed['no-lexical'] === true;
    values = parsed as Record<string, string | undefined>;
  } catch (err) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `${(err as Error).message}. Run "minielm relevance --help".`);
  }
  if (!values.data) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--data is required: homedepot, crowdflower or a CSV/JSONL file.');
  // Flag errors first: loading a relevance table takes seconds.
  if (sub === 'train' && !values.out) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--out DIR is required: the folder that will receive the trained scorer.');
  if (sub === 'eval' && !values.model) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--model DIR is required: a folder written by "minielm relevance train".');
  if (sub === 'held-out' && !values.out) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--out DIR is required: the folder that will receive test.jsonl and train.jsonl for "minielm train pretrain --pairs DIR".');
  if (sub === 'train' && values.init !== undefined) {
    if (!existsSync(join(await resolveDir(values.init), 'config.json'))) throw new MinielmError('MINIELM_NOT_FOUND', `--init ${values.init}: no config.json there. Pass a causal-LM checkpoint folder, e.g. a "minielm train pretrain" run's best/.`);
    const fixed = ['vocab-size', 'layers', 'heads', 'width'].filter((k) => values[k] !== undefined);
    if (fixed.length) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--init ${values.init} brings its tokenizer and sizes: drop ${fixed.map((k) => `--${k}`).join(', ')}.`);
  }
  if (values.threads !== undefined) native.setNumThreads(int(values, 'threads', 1));
  const command = `minielm relevance ${argv.join(' ')}`;
  const started = Date.now();
  if (values.exclude !== undefined && sub !== 'train') throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--exclude is a train option.');
  const excluded = values.exclude !== undefined ? await readQueryList(values.exclude) : undefined;
  const loaded = await loadPairs(values.data, values.preset);
  if (excluded) {
    const before = loaded.pairs.length;
    loaded.pairs = loaded.pairs.filter((p) => !excluded.has(normalizeQuery(p.query)));
    console.error(`--exclude ${values.exclude}: ${excluded.size} queries, ${before - loaded.pairs.length} of ${before} pairs left out`);
  }
  if (sub === 'held-out') {
    const out = resolve(values.out ?? '');
    const split = { seed: int(values, 'split-seed', 1), dev: num(values, 'dev', 0.1), test: num(values, 'test', 0.1) };
    const sides = splitByQuery(loaded.pairs, split);
    const queries = [...new Set([...sides.dev, ...sides.test].map((p) => p.query))];
    await mkdir(out, { recursive: true });
    await writeFileAtomic(join(out, 'test.jsonl'), queries.map((q) => `${JSON.stringify({ query: q, rewrite: q })}\n`).join(''));
    await writeFileAtomic(join(out, 'train.jsonl'), '');
    await writeReport(join(out, 'split.json'), { command, data: loaded.source, split, queries: queries.length, note: 'dev and test queries of the M1 split, for "minielm train pretrain --pairs DIR"' });
    console.error(`wrote ${queries.length} dev and test queries (split seed ${split.seed}) to ${join(out, 'test.jsonl')}`);
    return 0;
  }

  const relevantAt = values.relevant !== undefined ? num(values, 'relevant', 0) : loaded.defaultRelevant;
  const bm25 = new Bm25PairScorer(loaded.catalogTitles);
  if (sub === 'train') {
    if (!values.out) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--out DIR is required: the folder that will receive the trained scorer.');
    const out = resolve(values.out);
    const split = { seed: int(values, 'split-seed', 1), dev: num(values, 'dev', 0.1), test: num(values, 'test', 0.1) };
    const sides = splitByQuery(loaded.pairs, split);
    console.error(`data: ${loaded.source}: ${loaded.pairs.length} pairs -> train ${sides.train.length}, dev ${sides.dev.length}, test ${sides.test.length} (by query, seed ${split.seed})`);
    const maxMinutes = values['max-minutes'] !== undefined ? num(values, 'max-minutes', 0) : undefined;
    const signal = maxMinutes !== undefined ? AbortSignal.timeout(Math.max(1, maxMinutes * 60_000)) : undefined;
    // With --init the sizes are the checkpoint's and the input length defaults to what it allows.
    const scratch = values.init === undefined;
    const options = {
      init: values.init,
      vocabSize: scratch ? int(values, 'vocab-size', D.vocabSize) : undefined,
      nCtx: scratch || values.ctx !== undefined ? int(values, 'ctx', D.nCtx) : undefined,
      maxQueryTokens: int(values, 'max-query-tokens', D.maxQueryTokens),
      nLayer: scratch ? int(values, 'layers', D.nLayer) : undefined,
      nHead: scratch ? int(values, 'heads', D.nHead) : undefined,
      nEmbd: scratch ? int(values, 'width', D.nEmbd) : undefined,
      epochs: int(values, 'epochs', D.epochs),
      batchSize: int(values, 'batch', D.batchSize),
      lr: num(values, 'lr', D.lr),
      warmupSteps: int(values, 'warmup', D.warmupSteps),
      weightDecay: num(values, 'weight-decay', D.weightDecay),
      seed: int(values, 'seed', D.seed),
      evalEvery: int(values, 'eval-every', D.evalEvery),
      negativesPerPair: num(values, 'negatives', D.negativesPerPair),
      pretrainEpochs: values['pretrain-epochs'] === '0' ? 0 : int(values, 'pretrain-epochs', D.pretrainEpochs),
      negativeWeight: num(values, 'negative-weight', D.negativeWeight),
      lowercase: !keepCase,
      relevantGain: (relevantAt - loaded.min) / (loaded.max - loaded.min) - 1e-6,
      outDir: out,
      lexical: !noLexical,
      catalogTitles: loaded.catalogTitles,
    };
    const result = await trainRelevanceScorer(sides.train, sides.dev, options, {
      signal,
      onProgress: (p) => {
        if (p.phase === 'pretrain') {
          console.error(`pretrain ${String(p.step).padStart(5)}/${p.totalSteps} | epoch ${p.epoch} | LM loss ${p.loss.toFixed(4)} | lr ${p.lr.toExponential(2)} | ${p.tokensPerSec.toFixed(0)} tok/s | ${p.elapsedSec.toFixed(0)} s`);
          return;
        }
        const head = `step ${String(p.step).padStart(5)}/${p.totalSteps} | epoch ${p.epoch} | loss ${p.loss.toFixed(4)}`;
        if (p.dev) console.error(`${head} | dev Spearman ${p.dev.spearman.toFixed(4)} AUC ${p.dev.auc.toFixed(4)}${p.dev.best ? ' (best)' : ''} | ${p.elapsedSec.toFixed(0)} s`);
        else console.error(`${head} | lr ${p.lr.toExponential(2)} | ${p.tokensPerSec.toFixed(0)} tok/s | ${p.elapsedSec.toFixed(0)} s`);
      },
    });
    if (result.lexical) {
      const d = result.lexical.dev;
      console.error(`lexical stage: ${result.lexical.trees} trees in ${result.lexical.seconds.toFixed(1)} s; dev Spearman network ${d.network.spearman.toFixed(4)}, trees ${d.trees.spearman.toFixed(4)}, blend ${d.blended.spearman.toFixed(4)} (gain = ${result.lexical.blend.intercept.toFixed(3)} + ${result.lexical.blend.trees.toFixed(3)} trees + ${result.lexical.blend.model.toFixed(3)} network)`);
    }
    const trainInfo = {
      config: result.config,
      options: { ...options, outDir: undefined, catalogTitles: undefined },
      lexical: result.lexical,
      split,
      trainPairs: sides.train.length,
      devPairs: sides.dev.length,
      steps: result.steps,
      bestStep: result.bestStep,
      dev: result.best,
      trainSeconds: result.trainSeconds,
      tokens: result.tokens,
      tokensPerSec: result.tokens / result.trainSeconds,
      aborted: result.aborted,
      history: result.history,
    };
    if (excluded) result.scorer.excludedQueries = excluded;
    await result.scorer.save(out, { split, data: values.data, training: { ...trainInfo, history: undefined } });
    const test = await evaluatePairs(result.scorer, bm25, sides.test, loaded, relevantAt);
    printEvaluation(`test (held-out queries)`, test);
    const reportFile = resolve(values.report ?? join(out, 'report.json'));
    await writeReport(reportFile, { command, data: loaded.source, model: out, training: trainInfo, test, wallSeconds: (Date.now() - started) / 1000 });
    console.error(`wrote ${out} and ${reportFile}`);
    await result.scorer.dispose();
    return 0;
  }

  if (!values.model) throw new MinielmError('MINIELM_INVALID_ARGUMENT', '--model DIR is required: a folder written by "minielm relevance train".');
  // Resolved once, so relevance.json comes from the same save as the scorer (lib/util/atomic.ts).
  const modelDir = await resolveDir(values.model);
  // The lexical stage counts term statistics over the file's titles, as the BM25 baseline does.
  const scorer = await LearnedRelevanceScorer.load(modelDir, { catalogTitles: loaded.catalogTitles });
  const meta = JSON.parse(await readFile(join(modelDir, 'relevance.json'), 'utf8')) as { split?: { seed: number; dev: number; test: number }; data?: string };
  // The training file defaults to its held-out test side; any other file is wholly unseen.
  const sameData = meta.data !== undefined && meta.data === values.data;
  const side = values.pairs ?? (sameData ? 'test' : 'all');
  if (side !== 'test' && side !== 'all') throw new MinielmError('MINIELM_INVALID_ARGUMENT', `--pairs must be test or all, got "${side}".`);
  let pairs = loaded.pairs;
  if (side === 'test') {
    const split = meta.split ?? { seed: int(values, 'split-seed', 1), dev: num(values, 'dev', 0.1), test: num(values, 'test', 0.1) };
    pairs = splitByQuery(pairs, split).test;
  }
  const result = await evaluatePairs(scorer, bm25, pairs, loaded, relevantAt);
  printEvaluation(`${values.data} (${side} pairs)`, result);
  if (values.report) await writeReport(resolve(values.report), { command, data: loaded.source, model: resolve(values.model), pairs: side, evaluation: result, wallSeconds: (Date.now() - started) / 1000 });
  await scorer.dispose();
  return 0;
}

async function writeReport(file: string, report: Record<string, unknown>): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(report, null, 2)}\n`);
}
