// The training loop every language-model stage shares (catalog pretraining, SFT, distillation): each
// stage only decides what its examples are and, optionally, what one optimizer step does. The loop owns
// the rest, so the stages cannot drift apart: deterministic data order (a function of seed and step),
// evaluation every N steps with the best checkpoint kept, exact resume from <out>/checkpoint, Ctrl-C
// (the signal) saves and exits, NaN/Inf stops without saving, a JSONL log and a progress line.
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Model, type Device, type ModelConfig, type OptimizerOptions, type Batch, type StepResult } from '../model/model.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { makeBatch, epochBatches, type EncodedExample } from './batches.ts';
import { JsonlLog, saveCheckpoint, loadTrainerState, hasCheckpoint, isNonFinite } from './run-state.ts';
import { Progress } from './progress.ts';
import { MinielmError, invalidArgument } from '../errors.ts';

export type StepFn = (model: Model, batch: Batch, optimizer: OptimizerOptions) => Promise<StepResult & Record<string, unknown>>;

/** What a run of any stage is given. */
export interface TrainRunOptions {
  /** Run folder: checkpoint/, best/, log.jsonl. */
  out: string;
  tokenizer: Tokenizer;
  /** Architecture; vocab_size must equal the tokenizer's. Ignored when `init` is given. */
  config?: ModelConfig;
  /** Start from this checkpoint folder instead of a fresh initialisation (a pretrained run's best/, a user's GPT-2). */
  init?: string;
  /** Where the model trains: 'cpu' (default) or 'cuda' / 'cuda:N'. Checkpoints are the same files either way. */
  device?: Device;
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
   * The optimizer step on one batch (default: cross-entropy where the loss mask is 1). The distillation
   * trainer passes a reverse-KL step here; extra numbers it returns are logged.
   */
  stepFn?: StepFn;
}

/** A stage's examples, built once the model (and so its context length) is known. */
export interface TrainingData {
  train: EncodedExample[];
  test: EncodedExample[];
  /** Extra fields of the log's "start" record (pair or token counts). */
  info: Record<string, unknown>;
  /**
   * Values that decide the data beyond seed and batch size (sequence length, corpus size). They are
   * saved with the checkpoint, and a resume with different ones is refused: it would replay other data.
   */
  resumeKey?: Record<string, number | string>;
}

export interface TrainLoopOptions extends TrainRunOptions {
  label: string;
  data: (model: Model) => TrainingData;
}

export interface TrainRunResult {
  steps: number;
  aborted: boolean;
  stoppedOnNonFinite: boolean;
  bestEvalLoss: number;
  lastEvalLoss: number;
  model: Model;
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

export async function trainLoop(o: TrainLoopOptions): Promise<TrainRunResult> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw invalidArgument(`steps must be a positive integer, got ${o.steps}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw invalidArgument(`batchSize must be a positive integer, got ${o.batchSize}`);
  if (!Number.isInteger(o.evalEvery) || o.evalEvery < 1) throw invalidArgument(`evalEvery must be a positive integer, got ${o.evalEvery}`);
  await mkdir(o.out, { recursive: true });
  const ckptDir = join(o.out, 'checkpoint');
  const bestDir = join(o.out, 'best');
  const log = new JsonlLog(join(o.out, 'log.jsonl'));

  let model: Model;
  let bestEvalLoss = Infinity;
  let resumedState: Record<string, unknown> | null = null;
  if (await hasCheckpoint(ckptDir)) {
    const state = await loadTrainerState(ckptDir);
    model = await Model.load(ckptDir, { trainingState: true, device: o.device });
    bestEvalLoss = typeof state.bestEvalLoss === 'number' ? state.bestEvalLoss : Infinity;
    resumedState = state;
  } else if (o.init) {
    model = await Model.load(o.init, { device: o.device });
  } else {
    if (!o.config) throw invalidArgument(`${o.label}: needs a model config or an init checkpoint`);
    model = await Model.create(o.config, { seed: o.seed, device: o.device });
  }
  if (model.config.vocab_size !== o.tokenizer.vocabSize)
    throw invalidArgument(`the model's vocab_size (${model.config.vocab_size}) differs from the tokenizer's (${o.tokenizer.vocabSize}); train the model with this tokenizer`);
  const data = o.data(model);
  for (const [key, value] of Object.entries(data.resumeKey ?? {})) {
    if (resumedState && resumedState[key] !== undefined && resumedState[key] !== value)
      throw new MinielmError('MINIELM_CHECKPOINT', `${ckptDir} was trained with ${key} = ${String(resumedState[key])}, this run has ${value}: resuming would replay different data. Use the same inputs, or a new --out folder`);
  }
  // Resuming drops records logged after the checkpoint; a fresh start drops what an attempt killed before
  // its first checkpoint had logged.
  await log.truncateAfter(resumedState ? model.step : -1);
  const train = data.train;
  if (train.length < o.batchSize) throw invalidArgument(`${o.label}: only ${train.length} training examples; need at least one batch of ${o.batchSize}`);
  const perEpoch = Math.floor(train.length / o.batchSize);
  const optimizer: OptimizerOptions = { totalSteps: o.steps, ...o.optimizer };
  const progress = o.progress === false ? null : new Progress({ total: o.steps, label: o.label }, model.step);
  if (!resumedState) {
    await log.write({ event: 'start', step: 0, config: model.config, parameters: model.parameterCount(), init: o.init ?? null, ...data.info });
    await log.write({ step: 0, eval_loss: await evalLoss(model, data.test, o.tokenizer.padId) });
  } else await log.write({ event: 'resume', step: model.step });

  const checkpointEvery = o.checkpointEvery ?? o.evalEvery;
  let lastEvalLoss = NaN;
  let aborted = false;
  let stoppedOnNonFinite = false;
  const save = async (): Promise<void> => {
    await saveCheckpoint(ckptDir, model, { step: model.step, bestEvalLoss, seed: o.seed, batchSize: o.batchSize, ...data.resumeKey }, (dir) => o.tokenizer.save(dir));
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
      order = epochBatches(train.length, o.batchSize, o.seed * 1000003 + epoch);
      orderEpoch = epoch;
    }
    const batch = makeBatch(order[step % perEpoch].map((i) => train[i]), o.tokenizer.padId);
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
      lastEvalLoss = await evalLoss(model, data.test, o.tokenizer.padId);
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
  return { steps: model.step, aborted, stoppedOnNonFinite, bestEvalLoss, lastEvalLoss, model };
}
