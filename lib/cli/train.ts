// `minielm train sft|distill`: the offline stages of MiniELM from the command line.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Model, PRESETS, type ModelConfig } from '../model/model.ts';
import { Tokenizer, trainTokenizer } from '../tokenizer/index.ts';
import { trainSft, type RewritePair, type SftResult } from '../train/sft.ts';
import { trainDistill } from '../train/distill.ts';
import { interruptOnSignals } from '../train/run-state.ts';
import { MinielmError, invalidArgument } from '../errors.ts';
import { native } from '../native.ts';

const common = `  --pairs DIR         folder with train.jsonl and test.jsonl ({"query","rewrite"} per line; "minielm data q2q" writes it)
  --out DIR           run folder: checkpoint/ (latest, resumable), best/ (lowest eval loss), log.jsonl
  --tokenizer DIR     tokenizer folder (tokenizer.json); default: train one on the training pairs
  --vocab N           vocabulary of the trained tokenizer (default 8192)
  --preset NAME       student | teacher | tiny (default student); vocab_size follows the tokenizer
  --init DIR          start from a checkpoint folder instead (e.g. a Hugging Face gpt2 folder)
  --steps N           optimizer steps (default 2000)        --batch N        pairs per step (default 32)
  --lr X              peak learning rate (default 1e-3)     --warmup N       warm-up steps (default 100)
  --weight-decay X    AdamW weight decay (default 0.1)      --eval-every N   eval + best checkpoint (default 100)
  --seed N            (default 1)                           --threads N      native threads (default all cores)
Re-running the same command resumes from <out>/checkpoint exactly; Ctrl-C saves and exits.`;

export const help = `Usage: minielm train <sft|distill|online> [options]

  sft       supervised fine-tuning on query-to-query pairs (teacher or student)
  distill   distil a trained teacher into a student with token-level reverse KL
  online    online DPO: sample two rewrites per query, retrieve, reward, prefer, update (the paper's loop)

Options:
${common}
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
  --beta X            DPO beta (default 0.1)   --loss-type sigmoid|ipo|hinge (default sigmoid)
  --lr X              (default 1e-4 here)  --temperature X sampling temperature (default 1)`;

const TINY: ModelConfig = { vocab_size: 0, n_ctx: 48, n_layer: 2, n_head: 4, n_embd: 128 };

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

export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (mode === 'online') return runOnline(rest);
  if (mode !== 'sft' && mode !== 'distill') {
    console.error(`minielm train: expected "sft", "distill" or "online", got ${mode === undefined ? 'nothing' : `"${mode}"`}\n\n${help}`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      pairs: { type: 'string' }, out: { type: 'string' }, tokenizer: { type: 'string' }, vocab: { type: 'string', default: '8192' },
      preset: { type: 'string', default: 'student' }, init: { type: 'string' }, steps: { type: 'string', default: '2000' },
      batch: { type: 'string', default: '32' }, lr: { type: 'string', default: '1e-3' }, warmup: { type: 'string', default: '100' },
      'weight-decay': { type: 'string', default: '0.1' }, 'eval-every': { type: 'string', default: '100' }, seed: { type: 'string', default: '1' },
      threads: { type: 'string' }, teacher: { type: 'string' }, loss: { type: 'string', default: 'reverse_kl' }, beta: { type: 'string', default: '0.5' },
      temperature: { type: 'string', default: '1' }, 'ce-weight': { type: 'string', default: '0' },
    },
  });
  const num = (flag: string, min: number, integer = false): number => {
    const v = Number(values[flag as keyof typeof values]);
    if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) throw invalidArgument(`--${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got "${String(values[flag as keyof typeof values])}"`);
    return v;
  };
  if (!values.pairs) throw invalidArgument('--pairs DIR is required (a folder with train.jsonl and test.jsonl)');
  if (!values.out) throw invalidArgument('--out DIR is required');
  if (values.threads) native.setNumThreads(num('threads', 1, true));
  const train = await readPairs(join(values.pairs, 'train.jsonl'));
  const test = await readPairs(join(values.pairs, 'test.jsonl'));
  const tokenizer = values.tokenizer
    ? await Tokenizer.load(values.tokenizer)
    : await trainTokenizer(train.flatMap((p) => [p.query, p.rewrite]), { vocabSize: num('vocab', 260, true), onProgress: (m) => console.error(m) });
  const presetName = values.preset as string;
  const preset = presetName === 'tiny' ? TINY : PRESETS[presetName as 'student' | 'teacher'];
  if (!preset) throw invalidArgument(`--preset must be student, teacher or tiny, got "${presetName}"`);
  const controller = new AbortController();
  const release = interruptOnSignals(controller);
  const shared = {
    out: values.out, train, test, tokenizer, init: values.init, config: { ...preset, vocab_size: tokenizer.vocabSize },
    steps: num('steps', 1, true), batchSize: num('batch', 1, true), evalEvery: num('eval-every', 1, true), seed: num('seed', 0, true),
    optimizer: { lr: num('lr', 0), warmupSteps: num('warmup', 0, true), weightDecay: num('weight-decay', 0), gradClip: 1 },
    signal: controller.signal,
  };
  let result: SftResult;
  try {
    if (mode === 'sft') result = await trainSft(shared);
    else {
      if (!values.teacher) throw invalidArgument('--teacher DIR is required for distillation');
      const teacher = await Model.load(values.teacher);
      const loss = values.loss as 'reverse_kl' | 'forward_kl' | 'jsd';
      if (!['reverse_kl', 'forward_kl', 'jsd'].includes(loss)) throw invalidArgument(`--loss must be reverse_kl, forward_kl or jsd, got "${loss}"`);
      result = await trainDistill({ ...shared, teacher, distill: { loss, beta: num('beta', 0), temperature: num('temperature', 0), ceWeight: num('ce-weight', 0) } });
    }
  } finally {
    release();
  }
  console.log(`${mode}: ${result.steps} steps, best eval loss ${result.bestEvalLoss.toFixed(4)}, last ${result.lastEvalLoss.toFixed(4)}${result.aborted ? ' (interrupted: run again to resume)' : ''}; best model in ${join(values.out, 'best')}`);
  return result.stoppedOnNonFinite ? 1 : result.aborted ? 130 : 0;
}

async function runOnline(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: {
    init: { type: 'string' }, reference: { type: 'string' }, data: { type: 'string', default: 'synthetic' }, 'relevance-model': { type: 'string' },
    out: { type: 'string' }, iterations: { type: 'string', default: '1000' }, 'queries-per-iteration': { type: 'string', default: '16' },
    'eval-every': { type: 'string', default: '50' }, beta: { type: 'string', default: '0.1' }, 'loss-type': { type: 'string', default: 'sigmoid' },
    lr: { type: 'string', default: '1e-4' }, temperature: { type: 'string', default: '1' }, seed: { type: 'string', default: '1' }, threads: { type: 'string' },
  } });
  if (!values.init) throw invalidArgument('--init DIR (the policy to start from) is required');
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
  const controller = new AbortController();
  const release = interruptOnSignals(controller);
  try {
    const r = await trainOnline({
      out: values.out, init: values.init, reference: values.reference === 'none' ? null : (values.reference ?? values.init), tokenizer,
      env: { retriever, products: world.products, relevance: world.relevance, judge: new EmbeddedJudge({ seed }), profiles: generateProfiles(200, seed) },
      trainQueries: [...new Set(world.train.map((p) => p.query))], testQueries: [...new Set(world.test.map((p) => p.query))].slice(0, 300),
      iterations: int('iterations', 1), queriesPerIteration: int('queries-per-iteration', 1), evalEvery: int('eval-every', 1),
      beta: real('beta'), lossType, optimizer: { lr: real('lr') }, temperature: real('temperature'), seed, signal: controller.signal,
    });
    console.log(`online: ${r.iterations} iterations, ${r.updates} DPO updates${r.lastEval ? `, eval reward ${r.lastEval.reward.toFixed(4)} (relevance ${r.lastEval.relevance.toFixed(4)})` : ''}${r.aborted ? ' (interrupted: run again to resume)' : ''}`);
    return r.stoppedOnNonFinite ? 1 : r.aborted ? 130 : 0;
  } finally {
    release();
  }
}
