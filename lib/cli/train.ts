// `minielm train pretrain|sft|distill|online`: the training stages of MiniELM from the command line.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Model, PRESETS, resolveDevice, type Device, type ModelConfig, type OptimizerOptions } from '../model/model.ts';
import { Tokenizer, trainTokenizer } from '../tokenizer/index.ts';
import { trainSft, type RewritePair, type SftResult } from '../train/sft.ts';
import { trainDistill } from '../train/distill.ts';
import { trainPretrain, pretrainTexts } from '../train/pretrain.ts';
import { interruptOnSignals } from '../train/run-state.ts';
import { DEFAULT_DENOISE_RATIO, denoisingCount, denoisingPairs, mixPairs } from '../data/noise.ts';
import { generateSyntheticCatalog, SYNTHETIC_NOTICE } from '../data/synthetic.ts';
import { loadRelevanceTable, TABLE_PRESETS } from '../data/table.ts';
import { LABEL_PRESETS } from '../data/labels.ts';
import { buildQ2Q } from '../data/q2q.ts';
import type { Judgement, Product } from '../data/types.ts';
import { HOMEDEPOT_TRAIN_CSV } from '../retrieval/homedepot.ts';
import { MinielmError, invalidArgument } from '../errors.ts';
import { native } from '../native.ts';
import { resolveDir } from '../util/atomic.ts';

const model = `  --out DIR           run folder: checkpoint/ (latest, resumable), best/ (lowest eval loss), log.jsonl
  --tokenizer DIR     tokenizer folder (tokenizer.json); default: the one in --init, else train one on the training text
  --vocab N           vocabulary of the trained tokenizer (default 8192)
  --preset NAME       student | teacher | tiny (default student); vocab_size follows the tokenizer
  --n-layer N  --n-head N  --n-embd N  --n-ctx N   override the preset's sizes
  --init DIR          start from a checkpoint folder instead (a pretrain run's best/, a Hugging Face gpt2 folder)
  --steps N           optimizer steps (default 2000)        --batch N        examples per step (default 32)
  --lr X              peak learning rate (default 1e-3)     --warmup N       warm-up steps (default 100)
  --weight-decay X    AdamW weight decay (default 0.1)      --eval-every N   eval + best checkpoint (default 100)
  --seed N            (default 1)                           --threads N      native threads (default all cores)
  --device D          cpu (default) or cuda / cuda:N (pretrain, sft and distill; a CUDA build: npm run build:cmake)
Re-running the same command resumes from <out>/checkpoint exactly; Ctrl-C saves and exits.`;

export const help = `Usage: minielm train <pretrain|sft|distill|online> [options]

  pretrain  causal-LM pretraining on the catalog's text and the training queries (no pretrained weights here)
  sft       supervised fine-tuning on query-to-query pairs (teacher or student), plus denoising pairs
  distill   distil a trained teacher into a student with token-level reverse KL
  online    online DPO: sample two rewrites per query, retrieve, reward, prefer, update (the paper's loop);
            or GRPO (--algo grpo): G samples per query, group-normalised advantages, clipped ratio

Options of pretrain, sft and distill:
${model}
Pretraining only (then: minielm train sft --init <out>/best ...):
  --data NAME|FILE    homedepot (${HOMEDEPOT_TRAIN_CSV}) | synthetic | a CSV/JSONL relevance table;
                      product titles (brand, bullets, description where present) and the judged queries
  --table-preset NAME column/label preset of a table file (default homedepot)
  --pairs DIR         the Q2Q folder SFT will use: queries of its test.jsonl are left out; without it the
                      split "minielm data q2q" makes by default is recomputed (--k, --split-seed)
  --k N               (default 2)          --split-seed N   (default 0)
  --seq-len N         tokens per packed row (default: the model's n_ctx)
SFT and distillation:
  --pairs DIR         folder with train.jsonl and test.jsonl ({"query","rewrite"} per line; "minielm data q2q" writes it)
SFT only:
  --denoise-ratio R   share of self-supervised denoising pairs (noisy query -> clean query) in the training
                      set, in [0, 1) (default ${DEFAULT_DENOISE_RATIO}; 0 turns them off)
  --catalog NAME|FILE also noise 2-5 word title phrases of this catalog (homedepot | synthetic | a table);
                      default: only the training pairs' queries are noised
Distillation only:
  --teacher DIR       the trained teacher (e.g. runs/teacher/best)
  --loss NAME         reverse_kl (default) | forward_kl | jsd
  --beta X            JSD mixture weight (default 0.5)
  --temperature X     softmax temperature (default 1)
  --ce-weight X       mix in cross-entropy on the ground truth, in [0, 1] (default 0)
Online only (--pairs, --tokenizer, --preset are not used; the tokenizer comes from --init):
  --init DIR          the policy to start from (the distilled student, e.g. runs/distilled/best)
  --reference DIR     frozen reference model (default: --init); "none" for the reference-free loss
  --data NAME|FILE    world of queries, catalog and M1: synthetic (default) | homedepot | a CSV file
  --relevance-model DIR  M1 for unjudged pairs of a table (default: lexical-overlap proxy)
  --iterations N      (default 1000)     --queries-per-iteration N (default 16)   --eval-every N (default 50)
  --algo dpo|grpo     the update: DPO on the better of two samples (default) or GRPO on G samples per query
  --beta X            DPO beta (default 0.1)   --loss-type sigmoid|ipo|hinge (default sigmoid)
  --group G           GRPO samples per query (default 8)   --mu N  GRPO updates per batch of samples (default 1)
  --epsilon-low X     GRPO lower clip (default 0.2)   --epsilon-high X  upper clip (default = --epsilon-low)
  --grpo-beta X       GRPO k3 KL coefficient (default 0.04 with a reference, 0 with --reference none)
  --grpo-loss-type T  grpo (default) | bnpo | dr_grpo
  --dense-rewards     GRPO: rule-aware dense rewards (product term kept, no repeats, length, known words,
                      M1 relevance, diversity, engagement), each logged as rewards/<name>
  --guided-replay     GRPO: groups whose samples all fail get a training reference rewrite (<= 25 % of a batch)
  --lr X              (default 1e-4 here)  --temperature X sampling temperature (default 1)`;

const TINY: ModelConfig = { vocab_size: 0, n_ctx: 48, n_layer: 2, n_head: 4, n_embd: 128 };

// Flags every offline stage reads: the model, its tokenizer and the optimizer.
const MODEL_FLAGS = {
  out: { type: 'string' }, tokenizer: { type: 'string' }, vocab: { type: 'string', default: '8192' }, preset: { type: 'string', default: 'student' },
  'n-layer': { type: 'string' }, 'n-head': { type: 'string' }, 'n-embd': { type: 'string' }, 'n-ctx': { type: 'string' }, init: { type: 'string' },
  steps: { type: 'string', default: '2000' }, batch: { type: 'string', default: '32' }, lr: { type: 'string', default: '1e-3' },
  warmup: { type: 'string', default: '100' }, 'weight-decay': { type: 'string', default: '0.1' }, 'eval-every': { type: 'string', default: '100' },
  seed: { type: 'string', default: '1' }, threads: { type: 'string' }, device: { type: 'string', default: 'cpu' },
} as const;

type Values = Record<string, string | boolean | undefined>;

function numberFlag(values: Values, flag: string, min: number, integer = false): number {
  const v = Number(values[flag]);
  if (values[flag] === undefined || !Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw invalidArgument(`--${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${String(values[flag])}"`);
  return v;
}

/** The flags every offline stage shares, checked before any data is loaded or a tokenizer trained, so a typo fails at once. */
function startRun(values: Values): { out: string; seed: number; steps: number; batchSize: number; evalEvery: number; optimizer: OptimizerOptions; device: Device } {
  if (!values.out) throw invalidArgument('--out DIR is required');
  const device = (values.device ?? 'cpu') as Device;
  resolveDevice(device, '--device');
  if (!['student', 'teacher', 'tiny'].includes(values.preset as string)) throw invalidArgument(`--preset must be student, teacher or tiny, got "${String(values.preset)}"`);
  if (values.threads) native.setNumThreads(numberFlag(values, 'threads', 1, true));
  return {
    out: values.out as string, seed: numberFlag(values, 'seed', 0, true), steps: numberFlag(values, 'steps', 1, true), batchSize: numberFlag(values, 'batch', 1, true),
    evalEvery: numberFlag(values, 'eval-every', 1, true), device,
    optimizer: { lr: numberFlag(values, 'lr', 0), warmupSteps: numberFlag(values, 'warmup', 0, true), weightDecay: numberFlag(values, 'weight-decay', 0), gradClip: 1 },
  };
}

/** --tokenizer, else the tokenizer saved in --init (its ids are the model's), else one trained on `texts()`. */
async function loadOrTrainTokenizer(values: Values, texts: () => Iterable<string>): Promise<Tokenizer> {
  if (values.tokenizer) return Tokenizer.load(values.tokenizer as string);
  if (values.init && existsSync(join(await resolveDir(values.init as string), 'tokenizer.json'))) return Tokenizer.load(values.init as string);
  return trainTokenizer(texts(), { vocabSize: numberFlag(values, 'vocab', 260, true), onProgress: (m) => console.error(m) });
}

function modelConfig(values: Values, tokenizer: Tokenizer): ModelConfig {
  const name = values.preset as 'student' | 'teacher' | 'tiny';
  const preset = name === 'tiny' ? TINY : PRESETS[name];
  const config: ModelConfig = { ...preset, vocab_size: tokenizer.vocabSize };
  for (const key of ['n_layer', 'n_head', 'n_embd', 'n_ctx'] as const) {
    const flag = key.replace('_', '-');
    if (values[flag] !== undefined) config[key] = numberFlag(values, flag, 1, true);
  }
  if (config.n_embd % config.n_head !== 0) throw invalidArgument(`--n-embd (${config.n_embd}) must be a multiple of --n-head (${config.n_head})`);
  return config;
}

/** Runs `job` with Ctrl-C turned into an abort of its signal (the trainers save and exit on it). */
async function interruptible<T>(job: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const release = interruptOnSignals(controller);
  try {
    return await job(controller.signal);
  } finally {
    release();
  }
}

export async function readPairs(file: string): Promise<RewritePair[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new MinielmError('MINIELM_NOT_FOUND', `${file} not found: --pairs must be a folder with train.jsonl and test.jsonl (see "minielm data q2q --help")`);
  }
  const pairs: RewritePair[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: { query?: unknown; rewrite?: unknown };
    try {
      rec = JSON.parse(line) as { query?: unknown; rewrite?: unknown };
    } catch {
      throw new MinielmError('MINIELM_BAD_FILE', `${file}:${i + 1}: not valid JSON`);
    }
    if (typeof rec.query !== 'string' || typeof rec.rewrite !== 'string') throw new MinielmError('MINIELM_BAD_FILE', `${file}:${i + 1}: needs string fields "query" and "rewrite"`);
    pairs.push({ query: rec.query, rewrite: rec.rewrite });
  });
  return pairs;
}

/** A catalog and its judgements by name: homedepot, synthetic (seeded, as "minielm data synthetic"), or a table file. */
export async function loadCatalog(name: string, o: { tablePreset?: string; seed: number }): Promise<{ products: Product[]; judgements: Judgement[] }> {
  if (name === 'synthetic') {
    console.error(SYNTHETIC_NOTICE);
    const catalog = generateSyntheticCatalog({ seed: o.seed });
    return { products: [...catalog.products.values()], judgements: catalog.judgements };
  }
  const presetName = name === 'homedepot' ? 'homedepot' : (o.tablePreset ?? 'homedepot');
  const table = TABLE_PRESETS[presetName];
  const labels = LABEL_PRESETS[presetName];
  if (!table || !labels) throw invalidArgument(`--table-preset must be one of ${Object.keys(TABLE_PRESETS).join(', ')}, got "${presetName}"`);
  const path = name === 'homedepot' ? HOMEDEPOT_TRAIN_CSV : name;
  const data = await loadRelevanceTable({ path, columns: table.columns, labels, encoding: table.encoding });
  if (data.report.malformed > 0) console.error(`${path}: ${data.report.malformed} malformed rows skipped`);
  return { products: [...data.products.values()], judgements: data.judgements };
}

export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (mode === 'online') return runOnline(rest);
  if (mode === 'pretrain') return runPretrain(rest);
  if (mode !== 'sft' && mode !== 'distill') {
    console.error(`minielm train: expected "pretrain", "sft", "distill" or "online", got ${mode === undefined ? 'nothing' : `"${mode}"`}\n\n${help}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      ...MODEL_FLAGS, pairs: { type: 'string' }, 'denoise-ratio': { type: 'string', default: String(DEFAULT_DENOISE_RATIO) }, catalog: { type: 'string' },
      'table-preset': { type: 'string' }, teacher: { type: 'string' }, loss: { type: 'string', default: 'reverse_kl' }, beta: { type: 'string', default: '0.5' },
      temperature: { type: 'string', default: '1' }, 'ce-weight': { type: 'string', default: '0' },
    },
  });
  if (!values.pairs) throw invalidArgument('--pairs DIR is required (a folder with train.jsonl and test.jsonl)');
  const run = startRun(values);
  const { out, seed } = run;
  const real = await readPairs(join(values.pairs, 'train.jsonl'));
  const test = await readPairs(join(values.pairs, 'test.jsonl'));
  let train = real;
  if (mode === 'sft') {
    const ratio = numberFlag(values, 'denoise-ratio', 0);
    if (ratio >= 1) throw invalidArgument(`--denoise-ratio is the share of denoising pairs in the training set and must be below 1, got ${ratio}`);
    if (ratio > 0) {
      const titles = values.catalog ? (await loadCatalog(values.catalog, { tablePreset: values['table-preset'], seed })).products.map((p) => p.title) : [];
      // Only the training side is noised: test queries stay unseen.
      const queries = real.flatMap((p) => [p.query, p.rewrite]);
      const denoising = denoisingPairs({ queries, titles, count: denoisingCount(real.length, ratio), seed });
      train = mixPairs(real, denoising, ratio, seed);
      console.error(`sft: ${real.length} Q2Q pairs + ${denoising.length} denoising pairs (${((100 * denoising.length) / train.length).toFixed(1)}% of the training set, from queries${titles.length ? ` and ${titles.length} titles` : ''})`);
    }
  }
  const tokenizer = await loadOrTrainTokenizer(values, () => train.flatMap((p) => [p.query, p.rewrite]));
  const shared = { ...run, train, test, tokenizer, init: values.init, config: modelConfig(values, tokenizer) };
  const result: SftResult = await interruptible(async (signal) => {
    if (mode === 'sft') return trainSft({ ...shared, signal });
    if (!values.teacher) throw invalidArgument('--teacher DIR is required for distillation');
    const teacher = await Model.load(values.teacher, { device: run.device });
    const loss = values.loss as 'reverse_kl' | 'forward_kl' | 'jsd';
    if (!['reverse_kl', 'forward_kl', 'jsd'].includes(loss)) throw invalidArgument(`--loss must be reverse_kl, forward_kl or jsd, got "${loss}"`);
    return trainDistill({ ...shared, signal, teacher, distill: { loss, beta: numberFlag(values, 'beta', 0), temperature: numberFlag(values, 'temperature', 0), ceWeight: numberFlag(values, 'ce-weight', 0) } });
  });
  console.log(`${mode}: ${result.steps} steps, best eval loss ${result.bestEvalLoss.toFixed(4)}, last ${result.lastEvalLoss.toFixed(4)}${result.aborted ? ' (interrupted: run again to resume)' : ''}; best model in ${join(out, 'best')}`);
  return result.stoppedOnNonFinite ? 1 : result.aborted ? 130 : 0;
}

async function runPretrain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...MODEL_FLAGS, data: { type: 'string' }, 'table-preset': { type: 'string' }, pairs: { type: 'string' }, k: { type: 'string', default: '2' },
      'split-seed': { type: 'string', default: '0' }, 'seq-len': { type: 'string' },
    },
  });
  if (!values.data) throw invalidArgument('--data is required: homedepot, synthetic, or the path of a CSV/JSONL relevance table');
  const run = startRun(values);
  const { out, seed } = run;
  const seqLen = values['seq-len'] === undefined ? undefined : numberFlag(values, 'seq-len', 2, true);
  const catalog = await loadCatalog(values.data, { tablePreset: values['table-preset'], seed });
  // The queries SFT evaluates on must not be pretrained on: leave out the test side of the Q2Q split.
  let heldOut: string[];
  let trainPairs: RewritePair[] = [];
  if (values.pairs) {
    heldOut = (await readPairs(join(values.pairs, 'test.jsonl'))).flatMap((p) => [p.query, p.rewrite]);
    trainPairs = await readPairs(join(values.pairs, 'train.jsonl'));
  } else {
    const q2q = await buildQ2Q(catalog.judgements, { k: numberFlag(values, 'k', 1, true), seed: numberFlag(values, 'split-seed', 0, true) });
    heldOut = q2q.test.flatMap((p) => [p.query, p.rewrite]);
    console.error(`pretrain: no --pairs; left out the ${new Set(heldOut).size} test queries of the default Q2Q split (k ${values.k}, split seed ${values['split-seed']})`);
  }
  const queries = [...catalog.judgements.map((j) => j.query), ...trainPairs.flatMap((p) => [p.query, p.rewrite])];
  const texts = pretrainTexts({ products: catalog.products, queries, heldOutQueries: heldOut });
  console.error(`pretrain: ${texts.length} distinct texts from ${catalog.products.length} products and ${new Set(queries).size} queries`);
  const tokenizer = await loadOrTrainTokenizer(values, () => texts);
  const result = await interruptible((signal) => trainPretrain({ ...run, tokenizer, texts, init: values.init, config: modelConfig(values, tokenizer), seqLen, signal }));
  console.log(`pretrain: ${result.steps} steps over ${result.trainTokens} training tokens (${result.documents} documents), best eval loss ${result.bestEvalLoss.toFixed(4)}, last ${result.lastEvalLoss.toFixed(4)}${result.aborted ? ' (interrupted: run again to resume)' : ''}; best model in ${join(out, 'best')} (continue with: minielm train sft --init ${join(out, 'best')} --pairs DIR)`);
  return result.stoppedOnNonFinite ? 1 : result.aborted ? 130 : 0;
}

async function runOnline(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    init: { type: 'string' }, reference: { type: 'string' }, data: { type: 'string', default: 'synthetic' }, 'relevance-model': { type: 'string' },
    out: { type: 'string' }, iterations: { type: 'string', default: '1000' }, 'queries-per-iteration': { type: 'string', default: '16' },
    'eval-every': { type: 'string', default: '50' }, beta: { type: 'string', default: '0.1' }, 'loss-type': { type: 'string', default: 'sigmoid' },
    lr: { type: 'string', default: '1e-4' }, temperature: { type: 'string', default: '1' }, seed: { type: 'string', default: '1' }, threads: { type: 'string' },
    algo: { type: 'string', default: 'dpo' }, group: { type: 'string', default: '8' }, mu: { type: 'string', default: '1' },
    'epsilon-low': { type: 'string', default: '0.2' }, 'epsilon-high': { type: 'string' }, 'grpo-beta': { type: 'string' }, 'grpo-loss-type': { type: 'string', default: 'grpo' },
    'dense-rewards': { type: 'boolean' }, 'guided-replay': { type: 'boolean' },
  } });
  if ((values['dense-rewards'] || values['guided-replay']) && values.algo !== 'grpo') throw invalidArgument('--dense-rewards and --guided-replay apply to --algo grpo');
  if (!values.init) throw invalidArgument('--init DIR (the policy to start from) is required');
  if (values.algo !== 'dpo' && values.algo !== 'grpo') throw invalidArgument(`--algo must be dpo or grpo, got "${values.algo}"`);
  const grpoLossType = values['grpo-loss-type'] as 'grpo' | 'bnpo' | 'dr_grpo';
  if (!['grpo', 'bnpo', 'dr_grpo'].includes(grpoLossType)) throw invalidArgument(`--grpo-loss-type must be grpo, bnpo or dr_grpo, got "${grpoLossType}"`);
  if (!values.out) throw invalidArgument('--out DIR is required');
  const int = (flag: keyof typeof values, min: number): number => {
    const v = Number(values[flag]);
    if (!Number.isInteger(v) || v < min) throw invalidArgument(`--${flag} must be an integer >= ${min}, got "${String(values[flag])}"`);
    return v;
  };
  const real = (flag: keyof typeof values): number => {
    const v = Number(values[flag]);
    if (!Number.isFinite(v) || v <= 0) throw invalidArgument(`--${flag} must be a positive number, got "${String(values[flag])}"`);
    return v;
  };
  const lossType = values['loss-type'] as 'sigmoid' | 'ipo' | 'hinge';
  if (!['sigmoid', 'ipo', 'hinge'].includes(lossType)) throw invalidArgument(`--loss-type must be sigmoid, ipo or hinge, got "${lossType}"`);
  if (values.threads) native.setNumThreads(int('threads', 1));
  const seed = int('seed', 0);
  const { syntheticWorld, tableWorld, PIPELINE_PRESETS } = await import('../pipeline.ts');
  const { Bm25Retriever } = await import('../retrieval/index.ts');
  const { EmbeddedJudge, generateProfiles } = await import('../users/index.ts');
  const { trainOnline } = await import('../train/online.ts');
  const world = values.data === 'synthetic'
    ? await syntheticWorld(PIPELINE_PRESETS.demo, seed)
    : await tableWorld({ path: values.data === 'homedepot' ? join(new URL('../../../shared/data/homedepot/', import.meta.url).pathname, 'train.csv') : values.data!, seed, relevanceModel: values['relevance-model'] });
  const retriever = new Bm25Retriever();
  await retriever.index([...world.products.values()]);
  const tokenizer = await Tokenizer.load(values.init);
  const { RuleRewards } = await import('../rewards/rules.ts');
  const { catalogWords } = await import('../rewrite/hygiene.ts');
  const rules = values['dense-rewards'] ? new RuleRewards({ vocabulary: catalogWords([...world.train.map((p) => p.query), ...[...world.products.values()].map((p) => p.title)]) }) : undefined;
  const references = new Map<string, string[]>();
  for (const p of world.train) references.set(p.query, [...(references.get(p.query) ?? []), p.rewrite]);
  const controller = new AbortController();
  const release = interruptOnSignals(controller);
  try {
    const r = await trainOnline({
      out: values.out, init: values.init, reference: values.reference === 'none' ? null : (values.reference ?? values.init), tokenizer,
      env: { retriever, products: world.products, relevance: world.relevance, judge: new EmbeddedJudge({ seed }), profiles: generateProfiles(200, seed) },
      trainQueries: [...new Set(world.train.map((p) => p.query))], testQueries: [...new Set(world.test.map((p) => p.query))].slice(0, 300),
      iterations: int('iterations', 1), queriesPerIteration: int('queries-per-iteration', 1), evalEvery: int('eval-every', 1),
      beta: real('beta'), lossType, optimizer: { lr: real('lr') }, temperature: real('temperature'), seed, signal: controller.signal,
      algo: values.algo as 'dpo' | 'grpo', group: int('group', 2), mu: int('mu', 1),
      ...(rules ? { rules } : {}), ...(values['guided-replay'] ? { guidance: { references } } : {}),
      grpo: {
        epsilonLow: Number(values['epsilon-low']), lossType: grpoLossType,
        ...(values['epsilon-high'] !== undefined ? { epsilonHigh: Number(values['epsilon-high']) } : {}),
        ...(values['grpo-beta'] !== undefined ? { beta: Number(values['grpo-beta']) } : {}),
      },
    });
    console.log(`online: ${r.iterations} iterations, ${r.updates} ${values.algo === 'grpo' ? 'GRPO' : 'DPO'} updates${r.lastEval ? `, eval reward ${r.lastEval.reward.toFixed(4)} (relevance ${r.lastEval.relevance.toFixed(4)})` : ''}${r.aborted ? ' (interrupted: run again to resume)' : ''}`);
    return r.stoppedOnNonFinite ? 1 : r.aborted ? 130 : 0;
  } finally {
    release();
  }
}
