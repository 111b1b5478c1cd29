// The typed, Promise-based face of the native GPT-2 engine: create / load / save, forward, training steps.
// Inputs are validated here, before they cross into C++; native calls on one model are queued so callers
// never see MINIELM_BUSY; an AbortSignal stops a multi-step job between steps.
import { mkdir, readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { MinielmError, describeValue, invalidArgument } from '../errors.ts';
import { native, type CudaInfo, type NativeBatch, type NativeModel, type NativeOptim } from '../native.ts';
import { decodeTensor, readFileRange, readSafetensorsHeader, safetensorsHeader, writeFileAtomic, type TensorEntry } from './safetensors.ts';
import { writeFileAtomicWith } from '../util/atomic.ts';
import { replaceDir, resolveDir } from '../util/atomic.ts';

export interface ModelConfig {
  vocab_size: number;
  n_ctx: number;
  n_layer: number;
  n_head: number;
  n_embd: number;
  /** A scalar head on the last real token ("score.weight" [1, n_embd]), as GPT2ForSequenceClassification. */
  score_head?: boolean;
}

/** Presets used by the bench and the trainers (sizes from the issues; vocabularies from the tokenizer). */
export const PRESETS: Record<'student' | 'teacher', ModelConfig> = {
  student: { vocab_size: 8192, n_ctx: 64, n_layer: 4, n_head: 4, n_embd: 256 },
  teacher: { vocab_size: 8192, n_ctx: 64, n_layer: 8, n_head: 8, n_embd: 512 },
};

export interface Batch {
  /** Token ids, row-major [batch, seq]. */
  tokens: Int32Array | number[];
  batch: number;
  seq: number;
  /** Next-token targets [batch, seq]; required for losses and training. */
  targets?: Int32Array | number[];
  /** Per-token loss weight (0 = ignored, e.g. the query part of "query <sep> rewrite"). */
  lossMask?: Float32Array | number[];
  /** 1 = real token, 0 = padding. */
  attentionMask?: Uint8Array | number[];
}

export interface OptimizerOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  gradClip?: number;
  warmupSteps?: number;
  totalSteps?: number;
  minLrRatio?: number;
  schedule?: 'cosine' | 'linear' | 'constant';
}

export interface StepResult {
  loss: number;
  gradNorm: number;
  lr: number;
  /** Tokens that counted in the loss (sum of the loss mask). */
  tokens: number;
  /** Optimizer steps taken so far. */
  step: number;
}

export interface ForwardResult {
  /** Weighted mean cross-entropy (when targets were given). */
  loss?: number;
  lossSum?: number;
  tokens?: number;
  /** Per-position cross-entropy [batch * seq] (0 where the loss mask is 0). */
  losses?: Float32Array;
  /** [batch, seq, vocab] when asked for. */
  logits?: Float32Array;
}

export interface TrainOptions {
  signal?: AbortSignal;
  onStep?: (result: StepResult, index: number) => void;
}

const CONFIG_KEYS = ['vocab_size', 'n_ctx', 'n_layer', 'n_head', 'n_embd'] as const;

/**
 * The parameter tensors a config implies, in the engine's order and HF GPT-2 names (Conv1D weights
 * [in, out]). Computed without allocating, so a checkpoint's shapes are compared before any memory is
 * reserved for it.
 */
export function expectedTensors(c: ModelConfig): { name: string; shape: number[] }[] {
  const C = c.n_embd;
  const out: { name: string; shape: number[] }[] = [
    { name: 'wte.weight', shape: [c.vocab_size, C] },
    { name: 'wpe.weight', shape: [c.n_ctx, C] },
  ];
  for (let l = 0; l < c.n_layer; l++) {
    const p = `h.${l}.`;
    out.push(
      { name: `${p}ln_1.weight`, shape: [C] },
      { name: `${p}ln_1.bias`, shape: [C] },
      { name: `${p}attn.c_attn.weight`, shape: [C, 3 * C] },
      { name: `${p}attn.c_attn.bias`, shape: [3 * C] },
      { name: `${p}attn.c_proj.weight`, shape: [C, C] },
      { name: `${p}attn.c_proj.bias`, shape: [C] },
      { name: `${p}ln_2.weight`, shape: [C] },
      { name: `${p}ln_2.bias`, shape: [C] },
      { name: `${p}mlp.c_fc.weight`, shape: [C, 4 * C] },
      { name: `${p}mlp.c_fc.bias`, shape: [4 * C] },
      { name: `${p}mlp.c_proj.weight`, shape: [4 * C, C] },
      { name: `${p}mlp.c_proj.bias`, shape: [C] },
    );
  }
  out.push({ name: 'ln_f.weight', shape: [C] }, { name: 'ln_f.bias', shape: [C] });
  if (c.score_head) out.push({ name: 'score.weight', shape: [1, C] });
  return out;
}

// Set in Model's static block: the package's own modules reach a model's native handle through these,
// the public class does not expose it.
let exclusiveImpl: <R>(model: Model, job: (handle: NativeModel) => Promise<R> | R) => Promise<R>;
let cancelImpl: (model: Model) => void;

/**
 * @internal For the engine's own modules (decoding, alignment kernels): runs `job` with the native handle
 * once every earlier call on this model has finished, so jobs never overlap. Not exported from the
 * package root.
 */
export function withNativeHandle<R>(model: Model, job: (handle: NativeModel) => Promise<R> | R): Promise<R> {
  return exclusiveImpl(model, job);
}

const DTYPE_CODE: Record<TensorEntry['dtype'], number> = { F32: 0, F16: 1, BF16: 2, F64: 3 };

/**
 * Reads, converts and copies tensors of a safetensors file into the engine, in a worker (pread straight into
 * the model: no file-sized buffer on the JavaScript side); the first tensor holding NaN / Inf, or null.
 */
function copyIn(h: NativeModel, kind: 'param' | 'm' | 'v', tensors: [string, TensorEntry][], file: string): Promise<string | null> {
  return native.readTensorsFromFile(h, file, tensors.map(() => kind), tensors.map(([name]) => name), Float64Array.from(tensors, ([, t]) => t.begin), Uint8Array.from(tensors, ([, t]) => DTYPE_CODE[t.dtype]));
}

/** Writes the engine's tensors as a float32 safetensors file, atomically; the engine writes the data itself, in a worker. */
async function copyOut(h: NativeModel, file: string, tensors: { kind: 'param' | 'm' | 'v'; name: string; shape: number[] }[], metadata: Record<string, string>): Promise<void> {
  const names = tensors.map((t) => (t.kind === 'param' ? t.name : `${t.kind}.${t.name}`));
  const { header } = safetensorsHeader(tensors.map((t, i) => ({ name: names[i]!, shape: t.shape })), metadata);
  await writeFileAtomicWith(file, (tmp) => native.writeTensorsToFile(h, tmp, header, tensors.map((t) => t.kind), tensors.map((t) => t.name)));
}

/** Whether two tensors of one file hold the same values (bytes compared when the dtypes agree). */
async function sameValues(file: string, a: TensorEntry, b: TensorEntry): Promise<boolean> {
  if (a.count !== b.count) return false;
  const [x, y] = await Promise.all([readFileRange(file, a.begin, a.end), readFileRange(file, b.begin, b.end)]);
  if (a.dtype === b.dtype) return x.equals(y);
  const fx = parseOne(x, { ...a, begin: 0, end: x.length }), fy = parseOne(y, { ...b, begin: 0, end: y.length });
  return fx.every((v, i) => v === fy[i]);
}

function parseOne(buffer: Buffer, t: TensorEntry): Float32Array {
  return decodeTensor(buffer.subarray(t.begin, t.end), t.dtype, t.count);
}

/** @internal Asks the model's running native job (if any) to stop at its next step boundary. */
export function cancelNativeJob(model: Model): void {
  cancelImpl(model);
}

const CONFIG_MAX: Record<(typeof CONFIG_KEYS)[number], number> = { vocab_size: 1 << 22, n_ctx: 1 << 16, n_layer: 256, n_head: 1024, n_embd: 1 << 16 };

/** The CUDA backend of the loaded addon: built with it or not, the devices it sees, why none. */
export function cudaInfo(): CudaInfo {
  return native.cudaInfo();
}

/** Where a model runs: the CPU engine, or a CUDA GPU ('cuda' is 'cuda:0'). */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/**
 * The CUDA device index `device` names, or -1 for the CPU. Throws MINIELM_INVALID_ARGUMENT for a malformed
 * name and MINIELM_NO_DEVICE (with the reason) when CUDA is asked for and this build or machine has none.
 */
export function resolveDevice(device: unknown, where = 'device'): number {
  if (device === undefined || device === 'cpu') return -1;
  const m = typeof device === 'string' ? /^cuda(?::(\d{1,4}))?$/.exec(device) : null;
  if (!m) throw invalidArgument(`${where} must be 'cpu', 'cuda' or 'cuda:N', got ${describeValue(device)}`);
  const index = m[1] === undefined ? 0 : Number(m[1]);
  const info = native.cudaInfo();
  if (info.devices === 0) throw new MinielmError('MINIELM_NO_DEVICE', `${where} '${device}' asked for, but ${info.reason}`);
  if (index >= info.devices)
    throw new MinielmError('MINIELM_NO_DEVICE', `${where} '${device}' does not exist: ${info.devices} CUDA device(s) found (${info.names.join(', ')})`);
  return index;
}

export function validateConfig(config: unknown, where = 'config'): ModelConfig {
  if (config === null || typeof config !== 'object') throw invalidArgument(`${where} must be an object with ${CONFIG_KEYS.join(', ')}`);
  const c = config as Record<string, unknown>;
  for (const k of CONFIG_KEYS) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      throw invalidArgument(`${where}.${k} must be a positive integer, got ${describeValue(v)}`);
    // The engine's own bounds (native/model/gpt2.cc validate_config), checked here too so that nothing
    // sized by the config (e.g. the tensor list Model.load compares against) is built for an absurd one.
    if (v > CONFIG_MAX[k]) throw invalidArgument(`${where}.${k} must be an integer in [1, ${CONFIG_MAX[k]}], got ${v}`);
  }
  const out = Object.fromEntries(CONFIG_KEYS.map((k) => [k, c[k] as number])) as unknown as ModelConfig;
  if (c.score_head !== undefined && typeof c.score_head !== 'boolean') throw invalidArgument(`${where}.score_head must be a boolean`);
  if (c.score_head) out.score_head = true;
  if (out.n_embd % out.n_head !== 0) throw invalidArgument(`${where}.n_embd (${out.n_embd}) must be divisible by ${where}.n_head (${out.n_head})`);
  return out;
}

function finite(name: string, v: number | undefined, min = -Infinity, max = Infinity): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw invalidArgument(`${name} must be a finite number in [${min}, ${max}], got ${describeValue(v)}`);
}

export function validateOptimizer(o: OptimizerOptions): NativeOptim {
  if (!o || typeof o !== 'object') throw invalidArgument('optimizer options must be an object with at least lr');
  finite('lr', o.lr, 0, 10);
  if (o.lr === undefined) throw invalidArgument('lr is required');
  finite('beta1', o.beta1, 0, 0.999999);
  finite('beta2', o.beta2, 0, 0.999999);
  finite('eps', o.eps, 0, 1);
  finite('weightDecay', o.weightDecay, 0, 10);
  finite('gradClip', o.gradClip, 0);
  finite('warmupSteps', o.warmupSteps, 0);
  finite('totalSteps', o.totalSteps, 0);
  finite('minLrRatio', o.minLrRatio, 0, 1);
  if (o.schedule !== undefined && !['cosine', 'linear', 'constant'].includes(o.schedule))
    throw invalidArgument(`schedule must be cosine, linear or constant, got ${describeValue(o.schedule)}`);
  return { ...o };
}

export class Model {
  readonly config: ModelConfig;
  #native: NativeModel | null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(config: ModelConfig, handle: NativeModel) {
    this.config = config;
    this.#native = handle;
  }

  /**
   * A freshly initialised model (GPT-2 initialisation from `seed`, the same on every device). With
   * `device: 'cuda'` it trains, evaluates and decodes on the GPU (bf16 compute, fp32 master weights);
   * checkpoints are the same files either way.
   */
  static async create(config: ModelConfig, options: { seed?: number; device?: Device } = {}): Promise<Model> {
    const c = validateConfig(config);
    options = optionsObject(options, 'Model.create options');
    const seed = options.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw invalidArgument(`seed must be a non-negative integer, got ${describeValue(seed)}`);
    const device = resolveDevice(options.device, 'Model.create options.device');
    const model = new Model(c, await native.createModel(c, seed));
    if (device >= 0) await model.#toDevice(device);
    return model;
  }

  /** 'cpu' or 'cuda:N'. */
  get device(): string {
    return this.#native ? this.#native.device() : 'cpu';
  }

  async #toDevice(index: number): Promise<void> {
    try {
      await this.#enqueue(() => this.#handle().toDevice(index));
    } catch (err) {
      await this.dispose();
      throw err;
    }
  }

  static {
    exclusiveImpl = (model, job) => model.#enqueue(async () => job(model.#handle()));
    cancelImpl = (model) => model.#native?.cancel();
  }

  /**
   * Loads a checkpoint folder: config.json + model.safetensors in Hugging Face GPT-2 layout (a user's
   * gpt2 / distilgpt2 folder works), plus training_state.safetensors when present and asked for.
   */
  static async load(dir: string, options: { trainingState?: boolean; device?: Device } = {}): Promise<Model> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument(`Model.load needs a folder path (a non-empty string), got ${describeValue(dir)}`);
    options = optionsObject(options, 'Model.load options');
    const device = resolveDevice(options.device, 'Model.load options.device');
    // The last complete set, also when a save into `dir` was killed half-way through its folder swap.
    dir = await resolveDir(dir);
    const config = await readHfConfig(join(dir, 'config.json'));
    const weightsFile = join(dir, 'model.safetensors');
    // The file is read off the event loop and only its header is parsed here; the values are converted,
    // checked for NaN / Inf and copied into the engine in a worker (native/napi/io.cc).
    const file = await readSafetensorsHeader(weightsFile);
    if (file.tensors.has('score.weight')) config.score_head = true;
    // Every check comes before the engine allocates anything: a config.json that does not describe these
    // weights (or asks for an absurd model) is refused by comparing against the shapes it implies.
    const wanted = new Map(expectedTensors(config).map((t) => [t.name, t.shape]));
    const weights: [string, TensorEntry][] = [];
    for (const [rawName, t] of file.tensors) {
      const name = rawName.startsWith('transformer.') ? rawName.slice('transformer.'.length) : rawName;
      // Causal-mask buffers some exports include; the engine builds its own mask.
      if (/\.attn\.(masked_)?bias$/.test(name) && t.shape.length === 4) continue;
      if (name === 'lm_head.weight') {
        const wte = file.tensors.get('wte.weight') ?? file.tensors.get('transformer.wte.weight');
        if (wte && (await sameValues(weightsFile, wte, t))) continue;
        throw new MinielmError('MINIELM_CHECKPOINT', `${weightsFile}: lm_head.weight differs from wte.weight; minielm models tie the LM head to the token embedding`);
      }
      const shape = wanted.get(name);
      if (!shape) throw new MinielmError('MINIELM_CHECKPOINT', `${weightsFile}: unexpected tensor "${rawName}" for a GPT-2 with config ${JSON.stringify(config)}`);
      if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))
        throw new MinielmError('MINIELM_CHECKPOINT', `${weightsFile}: tensor "${rawName}" has shape [${t.shape.join(', ')}] but config.json implies [${shape.join(', ')}]; the config does not match the weights`);
      weights.push([name, t]);
    }
    const present = new Set(weights.map(([name]) => name));
    const absent = [...wanted.keys()].filter((name) => !present.has(name));
    if (absent.length)
      throw new MinielmError('MINIELM_CHECKPOINT', `${weightsFile}: missing tensors ${absent.slice(0, 5).join(', ')}${absent.length > 5 ? ` and ${absent.length - 5} more` : ''} that config.json ${JSON.stringify(config)} implies`);
    const model = await Model.create(config, { seed: 0 });
    try {
      const nonFinite = await copyIn(model.#handle(), 'param', weights, weightsFile);
      if (nonFinite !== null) {
        const raw = [...file.tensors.keys()].find((k) => k === nonFinite || k === `transformer.${nonFinite}`) ?? nonFinite;
        throw new MinielmError('MINIELM_CHECKPOINT', `${weightsFile}: tensor "${raw}" contains NaN or Inf`);
      }
      if (options.trainingState) await model.#loadTrainingState(join(dir, 'training_state.safetensors'));
    } catch (err) {
      await model.dispose();
      throw err;
    }
    if (device >= 0) await model.#toDevice(device);
    return model;
  }

  /**
   * Writes config.json and model.safetensors (HF GPT-2 names, Conv1D weights [in, out]); with
   * `trainingState`, also the AdamW moments, step and RNG state for an exact resume; with `extraFiles`,
   * whatever it writes into the folder it is given (e.g. `(d) => tokenizer.save(d)`; it must not wait on
   * this model). The folder is replaced as one set (lib/util/atomic.ts replaceDir): a kill at any point
   * leaves the previous set or the new one. Other files already in `dir` are kept, except a stale
   * training_state.safetensors / trainer_state.json, which would not match the new weights.
   */
  async save(dir: string, options: { trainingState?: boolean; metadata?: Record<string, string>; extraFiles?: (dir: string) => Promise<void> } = {}): Promise<void> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument(`model.save needs a folder path (a non-empty string), got ${describeValue(dir)}`);
    options = optionsObject(options, 'model.save options');
    if (options.metadata !== undefined) {
      if (options.metadata === null || typeof options.metadata !== 'object') throw invalidArgument(`model.save metadata must be an object of strings, got ${describeValue(options.metadata)}`);
      for (const [k, v] of Object.entries(options.metadata)) if (typeof v !== 'string') throw invalidArgument(`model.save metadata "${k}" must be a string, got ${describeValue(v)}`);
    }
    if (options.extraFiles !== undefined && typeof options.extraFiles !== 'function') throw invalidArgument('model.save extraFiles must be a function (dir) => Promise<void>');
    await this.#enqueue(() => replaceDir(dir, async (dir) => {
      const h = this.#handle();
      await mkdir(dir, { recursive: true });
      // The engine copies its tensors into the file buffer in a worker; fs.promises writes it.
      const infos = h.tensors();
      const params = infos.map((t) => ({ kind: 'param' as const, name: t.name, shape: t.shape }));
      await copyOut(h, join(dir, 'model.safetensors'), params, { format: 'pt', producer: 'minielm', ...(options.metadata ?? {}) });
      if (options.trainingState) {
        const state = infos.flatMap((t) => (['m', 'v'] as const).map((kind) => ({ kind, name: t.name, shape: t.shape })));
        const meta = { format: 'minielm-training-state-v1', step: String(h.getStep()), rng: h.getRngState().map(String).join(',') };
        await copyOut(h, join(dir, 'training_state.safetensors'), state, meta);
      }
      await writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(hfConfig(this.config), null, 2)}\n`);
      if (options.extraFiles) await options.extraFiles(dir);
    }, { drop: ['training_state.safetensors', 'trainer_state.json'] }));
  }

  async #loadTrainingState(file: string): Promise<void> {
    const { tensors, metadata } = await readSafetensorsHeader(file);
    if (metadata.format !== 'minielm-training-state-v1') throw new MinielmError('MINIELM_CHECKPOINT', `${file}: not a minielm training state (format ${metadata.format ?? 'missing'})`);
    const step = Number(metadata.step);
    const rng = (metadata.rng ?? '').split(',');
    if (!Number.isSafeInteger(step) || step < 0 || rng.length !== 4 || !rng.every((r) => /^\d+$/.test(r))) throw new MinielmError('MINIELM_CHECKPOINT', `${file}: step or RNG state is missing or malformed`);
    const h = this.#handle();
    const parts: Record<'m' | 'v', [string, TensorEntry][]> = { m: [], v: [] };
    for (const t of h.tensors()) {
      for (const kind of ['m', 'v'] as const) {
        const s = tensors.get(`${kind}.${t.name}`);
        if (!s || s.count !== t.size) throw new MinielmError('MINIELM_CHECKPOINT', `${file}: optimizer state for "${t.name}" is missing or has the wrong size`);
        parts[kind].push([t.name, s]);
      }
    }
    for (const kind of ['m', 'v'] as const) {
      const nonFinite = await copyIn(h, kind, parts[kind], file);
      if (nonFinite !== null) throw new MinielmError('MINIELM_CHECKPOINT', `${file}: optimizer state "${kind}.${nonFinite}" contains NaN or Inf`);
    }
    h.setStep(step);
    h.setRngState(rng.map((s) => BigInt(s)));
  }

  /** Relevance-style scores: one scalar per sequence, read at its last real token (needs score_head). */
  async score(batch: Batch): Promise<Float32Array> {
    this.#requireScoreHead();
    const b = this.#toNative(batch, false);
    return this.#enqueue(() => this.#handle().score(b));
  }

  /**
   * One score-head training step: binary cross-entropy with soft labels in [0, 1] (e.g. relevance gains),
   * optional per-sequence weights. Returns loss, gradient norm and learning rate like trainStep.
   */
  async trainScoreStep(batch: Batch, labels: Float32Array | number[], optimizer: OptimizerOptions, weights?: Float32Array | number[]): Promise<StepResult> {
    this.#requireScoreHead();
    const b = this.#toNative(batch, false);
    const y = floatArray('labels', labels, b.batch, 'one per sequence');
    if (y.length !== b.batch) throw invalidArgument(`labels has ${y.length} entries, expected one per sequence (${b.batch})`);
    y.forEach((v, i) => {
      if (!(v >= 0 && v <= 1)) throw invalidArgument(`labels[${i}] = ${v} must lie in [0, 1]`);
    });
    let w: Float32Array | undefined;
    if (weights !== undefined) {
      w = floatArray('weights', weights, b.batch, 'one per sequence');
      if (w.length !== b.batch) throw invalidArgument(`weights has ${w.length} entries, expected ${b.batch}`);
      w.forEach((v, i) => {
        if (!(Number.isFinite(v) && v >= 0)) throw invalidArgument(`weights[${i}] = ${v} must be finite and >= 0`);
      });
    }
    const opt = validateOptimizer(optimizer);
    const out = await this.#enqueue(() => this.#handle().trainScore([{ ...b, labels: y, weights: w }], opt));
    return out.steps[0] as StepResult;
  }

  #requireScoreHead(): void {
    if (!this.config.score_head) throw invalidArgument('this model has no score head: create it with { score_head: true } in its config');
  }

  /** Number of trainable parameters (the LM head is tied to wte and counted once). */
  parameterCount(): number {
    return this.#handle().numParams();
  }

  /** Parameter tensors in checkpoint order with their shapes. */
  tensors(): { name: string; shape: number[] }[] {
    return this.#handle().tensors().map((t) => ({ name: t.name, shape: t.shape }));
  }

  readTensor(name: string): Float32Array {
    return this.#handle().readTensor('param', name);
  }

  writeTensor(name: string, data: Float32Array): void {
    this.#handle().writeTensor('param', name, data);
  }

  get step(): number {
    return this.#handle().getStep();
  }

  /** Forward pass; the loss when targets are given; logits [batch, seq, vocab] when `logits: true`. */
  async forward(batch: Batch, options: { logits?: boolean } = {}): Promise<ForwardResult> {
    const logits = optionsObject(options, 'forward options').logits === true;
    const b = this.#toNative(batch, false);
    return this.#enqueue(() => this.#handle().forward(b, logits));
  }

  /**
   * One optimizer step. Pass several batches to accumulate gradients over them (the loss is normalised
   * by their total loss-mask weight, so it equals one step on their concatenation).
   */
  async trainStep(batches: Batch | Batch[], optimizer: OptimizerOptions): Promise<StepResult> {
    const micro = (Array.isArray(batches) ? batches : [batches]).map((b) => this.#toNative(b, true));
    if (micro.length === 0) throw invalidArgument('trainStep needs at least one batch');
    const opt = validateOptimizer(optimizer);
    const out = await this.#enqueue(() => this.#handle().train([micro], opt));
    return out.steps[0] as StepResult;
  }

  /**
   * Several optimizer steps, each one native job, so the event loop runs between them and an aborted
   * signal stops the run at a step boundary (the model stays consistent and can be saved).
   */
  async train(steps: (Batch | Batch[])[], optimizer: OptimizerOptions, options: TrainOptions = {}): Promise<{ steps: StepResult[]; aborted: boolean }> {
    if (!Array.isArray(steps)) throw invalidArgument(`train needs an array of steps (each a batch or an array of batches), got ${describeValue(steps)}`);
    options = optionsObject(options, 'train options');
    if (options.onStep !== undefined && typeof options.onStep !== 'function') throw invalidArgument(`train options.onStep must be a function, got ${describeValue(options.onStep)}`);
    const results: StepResult[] = [];
    for (let i = 0; i < steps.length; i++) {
      if (options.signal?.aborted) return { steps: results, aborted: true };
      const r = await this.trainStep(steps[i], optimizer);
      results.push(r);
      options.onStep?.(r, i);
    }
    return { steps: results, aborted: false };
  }

  /** Frees the native memory; the model cannot be used afterwards. */
  async dispose(): Promise<void> {
    await this.#enqueue(async () => {
      this.#native?.dispose();
      this.#native = null;
    });
  }

  /** @internal Validates a batch and converts it to the native form. */
  toNativeBatch(batch: Batch, needTargets: boolean): NativeBatch {
    return this.#toNative(batch, needTargets);
  }

  #handle(): NativeModel {
    if (!this.#native) throw new MinielmError('MINIELM_INVALID_ARGUMENT', 'this model was disposed');
    return this.#native;
  }

  #enqueue<R>(job: () => Promise<R>): Promise<R> {
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #toNative(b: Batch, needTargets: boolean): NativeBatch {
    if (!b || typeof b !== 'object') throw invalidArgument('batch must be an object {tokens, batch, seq, ...}');
    const { batch, seq } = b;
    if (!Number.isInteger(batch) || batch <= 0) throw invalidArgument(`batch.batch must be a positive integer, got ${describeValue(batch)}`);
    if (!Number.isInteger(seq) || seq <= 0) throw invalidArgument(`batch.seq must be a positive integer, got ${describeValue(seq)}`);
    if (seq > this.config.n_ctx) throw invalidArgument(`batch.seq = ${seq} exceeds the model context n_ctx = ${this.config.n_ctx}; truncate the sequences`);
    const n = batch * seq;
    const V = this.config.vocab_size;
    const ids = (name: string, a: Int32Array | number[] | undefined, required: boolean): Int32Array | undefined => {
      if (a === undefined) {
        if (required) throw invalidArgument(`batch.${name} is required`);
        return undefined;
      }
      checkArrayLike(`batch.${name}`, a, n);
      const arr = a instanceof Int32Array ? a : new Int32Array(n);
      if (arr !== a) for (let i = 0; i < n; i++) arr[i] = numberAt(`batch.${name}`, a, i);
      return arr;
    };
    const tokens = ids('tokens', b.tokens, true) as Int32Array;
    for (let i = 0; i < n; i++) {
      const t = tokens[i];
      if (t < 0 || t >= V || (b.tokens as ArrayLike<number>)[i] !== t)
        throw invalidArgument(`batch.tokens[${i}] = ${(b.tokens as ArrayLike<number>)[i]} is not a token id in [0, ${V})`);
    }
    const targets = ids('targets', b.targets, needTargets);
    let lossMask: Float32Array | undefined;
    if (b.lossMask !== undefined) {
      lossMask = floatArray('batch.lossMask', b.lossMask, n);
      for (let i = 0; i < n; i++)
        if (!Number.isFinite(lossMask[i]) || lossMask[i] < 0) throw invalidArgument(`batch.lossMask[${i}] must be finite and >= 0, got ${lossMask[i]}`);
    }
    if (targets) {
      for (let i = 0; i < n; i++) {
        if (lossMask && lossMask[i] === 0) continue;
        const t = targets[i];
        if (t < 0 || t >= V || (b.targets as ArrayLike<number>)[i] !== t)
          throw invalidArgument(`batch.targets[${i}] = ${(b.targets as ArrayLike<number>)[i]} is not a token id in [0, ${V}) (mask it out with lossMask = 0)`);
      }
    }
    let attentionMask: Uint8Array | undefined;
    if (b.attentionMask !== undefined) {
      checkArrayLike('batch.attentionMask', b.attentionMask, n);
      if (b.attentionMask instanceof Uint8Array) attentionMask = b.attentionMask;
      else {
        const src = b.attentionMask;
        attentionMask = new Uint8Array(n);
        for (let i = 0; i < n; i++) {
          const v = numberAt('batch.attentionMask', src, i);
          if (v !== 0 && v !== 1) throw invalidArgument(`batch.attentionMask[${i}] must be 0 or 1, got ${describeValue(v)}`);
          attentionMask[i] = v;
        }
      }
    }
    return { tokens, batch, seq, targets, lossMask, attentionMask };
  }
}

/** Reads a Hugging Face GPT-2 config.json (n_positions or n_ctx for the context). */
export async function readHfConfig(file: string): Promise<ModelConfig> {
  let text: string;
  try {
    await access(file);
    text = await readFile(file, 'utf8');
  } catch {
    throw new MinielmError('MINIELM_NOT_FOUND', `${file} not found: a checkpoint folder needs config.json and model.safetensors`);
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new MinielmError('MINIELM_BAD_FILE', `${file}: not valid JSON (${(err as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new MinielmError('MINIELM_CHECKPOINT', `${file}: a config.json must hold a JSON object, got ${describeValue(raw)}`);
  if (raw.model_type !== undefined && raw.model_type !== 'gpt2')
    throw new MinielmError('MINIELM_CHECKPOINT', `${file}: model_type ${describeValue(raw.model_type)} is not supported (only gpt2)`);
  const act = raw.activation_function;
  if (act !== undefined && act !== 'gelu_new' && act !== 'gelu_pytorch_tanh')
    throw new MinielmError('MINIELM_CHECKPOINT', `${file}: activation_function ${describeValue(act)} is not supported (the engine implements tanh GELU, "gelu_new")`);
  const eps = raw.layer_norm_epsilon;
  if (eps !== undefined && eps !== 1e-5) throw new MinielmError('MINIELM_CHECKPOINT', `${file}: layer_norm_epsilon ${describeValue(eps)} is not supported (1e-5 only)`);
  const config = { vocab_size: raw.vocab_size, n_ctx: raw.n_positions ?? raw.n_ctx, n_layer: raw.n_layer, n_head: raw.n_head, n_embd: raw.n_embd };
  try {
    return validateConfig(config, file);
  } catch (err) {
    throw new MinielmError('MINIELM_CHECKPOINT', (err as Error).message);
  }
}

export function hfConfig(c: ModelConfig): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: [c.score_head ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel'],
    ...(c.score_head ? { num_labels: 1, problem_type: 'single_label_classification' } : {}),
    vocab_size: c.vocab_size,
    n_positions: c.n_ctx,
    n_ctx: c.n_ctx,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    tie_word_embeddings: true,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
  };
}


/** `options` as an object: undefined means {}, anything else that is not an object is refused. */
function optionsObject<T extends object>(options: T | undefined | null, what: string): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object') throw invalidArgument(`${what} must be an object, got ${describeValue(options)}`);
  return options;
}

/** An array or typed array of exactly `n` entries (checked before anything is copied, whatever length it claims). */
function checkArrayLike(name: string, a: unknown, n: number, expected = 'batch * seq'): asserts a is ArrayLike<unknown> {
  if (a === null || typeof a !== 'object' || typeof (a as { length?: unknown }).length !== 'number')
    throw invalidArgument(`${name} must be an array or a typed array, got ${describeValue(a)}`);
  const len = (a as { length: number }).length;
  if (len !== n) throw invalidArgument(`${name} has ${describeValue(len)} entries, expected ${expected} = ${n}`);
}

function numberAt(name: string, a: ArrayLike<unknown>, i: number): number {
  const v = a[i];
  if (typeof v !== 'number') throw invalidArgument(`${name}[${i}] must be a number, got ${describeValue(v)}`);
  return v;
}

/** A Float32Array copy (or the array itself) of `n` numbers. */
function floatArray(name: string, a: unknown, n: number, expected = 'batch * seq'): Float32Array {
  checkArrayLike(name, a, n, expected);
  if (a instanceof Float32Array) return a;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = numberAt(name, a, i);
  return out;
}
