// Supervised fine-tuning on query-to-query pairs ("query <sep> rewrite <eos>", loss on the rewrite only):
// the first stage of MiniELM for both teacher and student. Deterministic data order (a function of the
// step), evaluation on the test split every N steps with the best checkpoint kept, exact resume,
// Ctrl-C saves and exits, NaN/Inf stops without saving.
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Model, type ModelConfig, type OptimizerOptions, type Batch, type StepResult } from '../model/model.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { encodePairs, makeBatch, epochBatches, type EncodedExample } from './batches.ts';
import { JsonlLog, saveCheckpoint, loadTrainerState, exists, isNonFinite } from './run-state.ts';
import { Progress } from './progress.ts';
import { invalidArgument } from '../errors.ts';

export interface RewritePair {
  query: string;
  rewrite: string;
}

export interface SftOptions {
  /** Run folder: checkpoint/, best/, log.jsonl. */
  out: string;
  train: readonly RewritePair[];
  test: readonly RewritePair[];
  tokenizer: Tokenizer;
  /** Architecture; vocab_size must equal the tokenizer's. Ignored when `init` is given. */
  config?: ModelConfig;
  /** Start from this checkpoint folder instead of a fresh initialisation (e.g. a user's GPT-2). */
  init?: string;
  steps: number;
  batchSize: number;
  optimizer: OptimizerOptions;
  evalEvery: number;
  /** Checkpoint every N steps (and at the end, and on interruption). Default: evalEvery. */
  checkpointEvery?: number;
  seed: number;
  signal?: AbortSignal;
  /** Progress output; default stderr. Set to false for silence. */
  progress?: boolean;
  label?: string;
  /**
   * The optimizer step on one batch (default: cross-entropy on the rewrite tokens). The distillation
   * trainer passes a reverse-KL step here; extra numbers it returns are logged.
   */
  stepFn?: (model: Model, batch: Batch, optimizer: OptimizerOptions) => Promise<StepResult & Record<string, unknown>>;
}

export interface SftResult {
  steps: number;
  aborted: boolean;
  stoppedOnNonFinite: boolean;
  bestEvalLoss: number;
  lastEvalLoss: number;
  model: Model;
  droppedPairs: number;
}

export async function evalLoss(model: Model, examples: readonly EncodedExample[], padId: number, batchSize = 64): Promise<number> {
  let sum = 0;
  let tokens = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const r = await model.forward(makeBatch(examples.slice(i, i + batchSize), padId));
    sum += r.lossSum ?? 0;
    tokens += r.tokens ?? 0;
  }
  return tokens > 0 ? sum / tokens : NaN;
}

export async function trainSft(o: SftOptions): Promise<SftResult> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw invalidArgument(`steps must be a positive integer, got ${o.steps}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw invalidArgument(`batchSize must be a positive integer, got ${o.batchSize}`);
  if (!Number.isInteger(o.evalEvery) || o.evalEvery < 1) throw invalidArgument(`evalEvery must be a positive integer, got ${o.evalEvery}`);
  await mkdir(o.out, { recursive: true });
  const ckptDir = join(o.out, 'checkpoint');
  const bestDir = join(o.out, 'best');
  const log = new JsonlLog(join(o.out, 'log.jsonl'));

  let model: Model;
  let bestEvalLoss = Infinity;
  let resumed = false;
  if (await exists(join(ckptDir, 'trainer_state.json'))) {
    const state = await loadTrainerState(ckptDir);
    model = await Model.load(ckptDir, { trainingState: true });
    bestEvalLoss = typeof state.bestEvalLoss === 'number' ? state.bestEvalLoss : Infinity;
    await log.truncateAfter(state.step);
    resumed = true;
  } else if (o.init) {
    model = await Model.load(o.init);
  } else {
    if (!o.config) throw invalidArgument('trainSft needs a model config or an init checkpoint');
    model = await Model.create(o.config, { seed: o.seed });
  }
  if (model.config.vocab_size !== o.tokenizer.vocabSize)
    throw invalidArgument(`the model's vocab_size (${model.config.vocab_size}) differs from the tokenizer's (${o.tokenizer.vocabSize}); train the model with this tokenizer`);
  const maxLen = model.config.n_ctx + 1;
  const train = encodePairs(o.tokenizer, o.train, maxLen);
  const test = encodePairs(o.tokenizer, o.test, maxLen);
  if (train.examples.length < o.batchSize)
    throw invalidArgument(`only ${train.examples.length} training pairs fit in ${maxLen} tokens; need at least one batch of ${o.batchSize}`);
  const perEpoch = Math.floor(train.examples.length / o.batchSize);
  const optimizer: OptimizerOptions = { totalSteps: o.steps, ...o.optimizer };
  const progress = o.progress === false ? null : new Progress({ total: o.steps, label: o.label ?? 'sft' }, model.step);
  if (!resumed) {
    await log.write({ event: 'start', step: 0, config: model.config, parameters: model.parameterCount(), train_pairs: train.examples.length, test_pairs: test.examples.length, dropped_pairs: train.dropped + test.dropped });
    await log.write({ step: 0, eval_loss: await evalLoss(model, test.examples, o.tokenizer.padId) });
  } else await log.write({ event: 'resume', step: model.step });

  const checkpointEvery = o.checkpointEvery ?? o.evalEvery;
  let lastEvalLoss = NaN;
  let aborted = false;
  let stoppedOnNonFinite = false;
  const save = async (): Promise<void> => {
    await saveCheckpoint(ckptDir, model, { step: model.step, bestEvalLoss, seed: o.seed, batchSize: o.batchSize }, (dir) => o.tokenizer.save(dir));
  };
  let order: number[][] = [];
  let orderEpoch = -1;
  while (model.step < o.steps) {
    if (o.signal?.aborted) {
      aborted = true;
      break;
    }
    const step = model.step;
    const epoch = Math.floor(step / perEpoch);
    // The batch is a pure function of (seed, step): resuming at step s replays exactly what would have come.
    if (epoch !== orderEpoch) {
      order = epochBatches(train.examples.length, o.batchSize, o.seed * 1000003 + epoch);
      orderEpoch = epoch;
    }
    const batch = makeBatch(order[step % perEpoch].map((i) => train.examples[i]), o.tokenizer.padId);
    let r: StepResult & Record<string, unknown>;
    try {
      r = o.stepFn ? await o.stepFn(model, batch, optimizer) : ((await model.trainStep(batch, optimizer)) as StepResult & Record<string, unknown>);
    } catch (err) {
      if (!isNonFinite(err)) throw err;
      stoppedOnNonFinite = true;
      await log.write({ event: 'non_finite', step, message: (err as Error).message });
      progress?.finish(`stopped: ${(err as Error).message}. The last good checkpoint is in ${ckptDir}; nothing was saved from this step.`);
      break;
    }
    const { step: _s, loss: _l, gradNorm: _g, lr: _r, tokens: _t, ...extra } = r;
    const rec: Record<string, unknown> = { step: r.step, epoch: r.step / perEpoch, loss: r.loss, grad_norm: r.gradNorm, learning_rate: r.lr, tokens: r.tokens, ...extra };
    if (r.step % o.evalEvery === 0 || r.step === o.steps) {
      lastEvalLoss = await evalLoss(model, test.examples, o.tokenizer.padId);
      rec.eval_loss = lastEvalLoss;
      if (lastEvalLoss < bestEvalLoss) {
        bestEvalLoss = lastEvalLoss;
        await saveCheckpoint(bestDir, model, { step: r.step, eval_loss: lastEvalLoss }, (dir) => o.tokenizer.save(dir));
      }
    }
    await log.write(rec);
    progress?.update(r.step, batch.batch * batch.seq, `loss ${r.loss.toFixed(4)}${rec.eval_loss !== undefined ? ` | eval ${lastEvalLoss.toFixed(4)}` : ''}`);
    if (r.step % checkpointEvery === 0 || r.step === o.steps) await save();
  }
  if (aborted) {
    await save();
    await log.write({ event: 'interrupted', step: model.step });
    progress?.finish(`interrupted at step ${model.step}; checkpoint saved to ${ckptDir} (run the same command to resume)`);
  }
  return { steps: model.step, aborted, stoppedOnNonFinite, bestEvalLoss, lastEvalLoss, model, droppedPairs: train.dropped + test.dropped };
}
