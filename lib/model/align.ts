// Alignment training steps on the native engine: token-level distillation from a teacher (the paper's
// reverse KL, eq. 1, or forward KL / JSD) and DPO on (prompt, chosen, rejected) triples (eq. 2 when no
// reference is given). Every input is checked here before it crosses into C++; each call is one optimizer
// step of the student / policy and runs off the main thread.
import { describeValue, invalidArgument } from '../errors.ts';
import { native, type NativeBatch, type NativeDpoStats, type NativeModel } from '../native.ts';
import { Model, validateOptimizer, withNativeHandle, type Batch, type OptimizerOptions, type StepResult } from './model.ts';

export type DistillLoss = 'reverse_kl' | 'forward_kl' | 'jsd';

export interface DistillOptions {
  /** Divergence between the tempered softmaxes: KL(p_S‖p_T) (default), KL(p_T‖p_S) or JSD(beta). */
  loss?: DistillLoss;
  /**
   * JSD only, in [0, 1]: m = beta p_T + (1 − beta) p_S, JSD = beta KL(p_T‖m) + (1 − beta) KL(p_S‖m).
   * beta = 0 means forward KL and beta = 1 reverse KL (the limits of JSD / beta and JSD / (1 − beta)). Default 0.5.
   */
  beta?: number;
  /** Softmax temperature of both models, > 0 (default 1). The loss is not rescaled by temperature². */
  temperature?: number;
  /** alpha in [0, 1]: loss = (1 − alpha) divergence + alpha cross-entropy on batch.targets (default 0). */
  ceWeight?: number;
}

export interface DistillStepResult extends StepResult {
  /** Weighted mean divergence over the masked-in tokens (the chosen loss; reverse KL by default). */
  kl: number;
  /** Weighted mean cross-entropy against the targets, when ceWeight > 0. */
  ce?: number;
}

export type DpoLossType = 'sigmoid' | 'ipo' | 'hinge';

/** Reference log-probabilities computed beforehand (e.g. with preferenceLogProbs on a frozen model). */
export interface ReferenceLogProbs {
  chosen: ArrayLike<number>;
  rejected: ArrayLike<number>;
}

export interface DpoOptions {
  /** Inverse temperature of the implicit reward, > 0 (TRL's default 0.1). */
  beta?: number;
  lossType?: DpoLossType;
  /** Sigmoid loss only: probability that a label is flipped, in [0, 0.5) (default 0). */
  labelSmoothing?: number;
  /**
   * A frozen reference Model (forward only, never updated), precomputed reference log-probs, or absent for
   * the reference-free loss of the paper's equation 2 (reference terms = 0).
   */
  reference?: Model | ReferenceLogProbs;
}

export interface PreferencePair {
  prompt: ArrayLike<number>;
  chosen: ArrayLike<number>;
  rejected: ArrayLike<number>;
}

/** Metrics under TRL's names (means over the pairs), plus the optimizer's. */
export interface DpoStepResult {
  loss: number;
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/margins': number;
  'rewards/accuracies': number;
  'logps/chosen': number;
  'logps/rejected': number;
  gradNorm: number;
  lr: number;
  /** Response tokens in the step (chosen and rejected). */
  tokens: number;
  step: number;
}

// Two-model jobs take the models' queues in one global order, so two jobs on the same pair of models in
// opposite roles cannot each hold one queue while waiting for the other.
const order = new WeakMap<Model, number>();
let nextOrder = 0;
function rank(m: Model): number {
  let r = order.get(m);
  if (r === undefined) {
    r = nextOrder++;
    order.set(m, r);
  }
  return r;
}

function withTwo<R>(a: Model, b: Model, job: (ha: NativeModel, hb: NativeModel) => Promise<R>): Promise<R> {
  if (rank(a) < rank(b)) return withNativeHandle(a, (ha) => withNativeHandle(b, (hb) => job(ha, hb)));
  return withNativeHandle(b, (hb) => withNativeHandle(a, (ha) => job(ha, hb)));
}

function checkNumber(name: string, v: unknown, ok: (x: number) => boolean, range: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw invalidArgument(`${name} must be a finite number ${range}, got ${describeValue(v)}`);
}

function checkModel(name: string, m: unknown): asserts m is Model {
  if (!(m instanceof Model))
    throw invalidArgument(`${name} must be a Model (Model.create or Model.load), got ${describeValue(m)}`);
}

/**
 * One distillation step: the teacher's forward pass (no gradients), the student's forward pass, the fused
 * divergence whose gradient overwrites the student's logits, the student's backward pass and AdamW.
 * batch.lossMask selects the tokens that count (e.g. only the rewrite); targets are needed when ceWeight > 0.
 */
export async function distillStep(student: Model, teacher: Model, batch: Batch, options: DistillOptions, optimizer: OptimizerOptions): Promise<DistillStepResult> {
  checkModel('student', student);
  checkModel('teacher', teacher);
  if (student === teacher) throw invalidArgument('student and teacher must be different models');
  if (student.config.vocab_size !== teacher.config.vocab_size)
    throw invalidArgument(`teacher vocab_size ${teacher.config.vocab_size} differs from student vocab_size ${student.config.vocab_size}: distillation needs both models on the same tokenizer`);
  const o = options ?? {};
  const loss = o.loss ?? 'reverse_kl';
  if (!['reverse_kl', 'forward_kl', 'jsd'].includes(loss)) throw invalidArgument(`options.loss must be 'reverse_kl', 'forward_kl' or 'jsd', got ${describeValue(loss)}`);
  const beta = o.beta ?? 0.5;
  checkNumber('options.beta', beta, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  const temperature = o.temperature ?? 1;
  checkNumber('options.temperature', temperature, (x) => x > 0, '> 0');
  const ceWeight = o.ceWeight ?? 0;
  checkNumber('options.ceWeight', ceWeight, (x) => x >= 0 && x <= 1, 'in [0, 1]');
  const nb = student.toNativeBatch(batch, ceWeight > 0);
  teacher.toNativeBatch(batch, false); // the teacher's context must hold the sequence too
  if (nb.lossMask && !nb.lossMask.some((w) => w > 0)) throw invalidArgument('batch.lossMask selects no token: nothing to distil');
  const opt = validateOptimizer(optimizer);
  return withTwo(student, teacher, (hs, ht) => native.distillStep(hs, ht, nb, { loss, beta, temperature, ceWeight }, opt));
}

function tokenIds(name: string, a: ArrayLike<number> | undefined, vocab: number, minLength: number, maxLength: number, limit: string): number[] {
  if (!a || typeof a !== 'object' || typeof a.length !== 'number') throw invalidArgument(`${name} must be an array of token ids, got ${describeValue(a)}`);
  if (!Number.isSafeInteger(a.length) || a.length < 0) throw invalidArgument(`${name} has length ${describeValue(a.length)}: pass an array of token ids`);
  if (a.length < minLength) throw invalidArgument(`${name} is empty: it needs at least ${minLength} token${minLength > 1 ? 's' : ''}`);
  // Checked before copying: an array-like claiming billions of entries must not be walked.
  if (a.length > maxLength) throw invalidArgument(`${name} has ${a.length} tokens, more than ${limit} = ${maxLength}; truncate it`);
  const out = Array.from(a);
  out.forEach((t, i) => {
    if (!Number.isInteger(t) || t < 0 || t >= vocab) throw invalidArgument(`${name}[${i}] = ${describeValue(t)} is not a token id in [0, ${vocab})`);
  });
  return out;
}

/**
 * The 2B sequences of a DPO step: rows [0, B) prompt+chosen, rows [B, 2B) prompt+rejected, right-padded
 * (causal attention never looks right, so padding cannot change real positions), with a loss mask of 1 on
 * the positions that predict a response token.
 */
export function buildPreferenceBatch(pairs: PreferencePair[], model: Model): Batch {
  if (!Array.isArray(pairs) || pairs.length === 0) throw invalidArgument('pairs must be a non-empty array of {prompt, chosen, rejected}');
  const { vocab_size: V, n_ctx } = model.config;
  const seqs: { ids: number[]; promptLength: number }[] = [];
  const rejected: { ids: number[]; promptLength: number }[] = [];
  pairs.forEach((p, i) => {
    if (!p || typeof p !== 'object') throw invalidArgument(`pairs[${i}] must be an object {prompt, chosen, rejected}`);
    // prompt + response (at least one token) must fit in n_ctx + 1 tokens.
    const prompt = tokenIds(`pairs[${i}].prompt`, p.prompt, V, 1, n_ctx, 'n_ctx');
    for (const [key, list] of [['chosen', seqs], ['rejected', rejected]] as const) {
      const response = tokenIds(`pairs[${i}].${key}`, p[key], V, 1, n_ctx, 'n_ctx');
      const ids = [...prompt, ...response];
      // The last token is only predicted, never fed, so n_ctx + 1 tokens fit.
      if (ids.length - 1 > n_ctx)
        throw invalidArgument(`pairs[${i}]: prompt + ${key} has ${ids.length} tokens, more than n_ctx + 1 = ${n_ctx + 1}; truncate the prompt or the response`);
      list.push({ ids, promptLength: prompt.length });
    }
  });
  return responseBatch([...seqs, ...rejected]);
}

/** Rows of prompt + response, right-padded to one length, the loss mask on the response tokens. */
function responseBatch(all: { ids: number[]; promptLength: number }[]): Batch {
  // A loop, not Math.max(...lengths): spreading a long list of rows overflows the call stack.
  const T = all.reduce((m, s) => Math.max(m, s.ids.length), 0) - 1;
  const n = all.length * T;
  const tokens = new Int32Array(n), targets = new Int32Array(n), lossMask = new Float32Array(n), attentionMask = new Uint8Array(n);
  all.forEach((s, row) => {
    for (let t = 0; t + 1 < s.ids.length; t++) {
      const k = row * T + t;
      tokens[k] = s.ids[t];
      targets[k] = s.ids[t + 1];
      attentionMask[k] = 1;
      lossMask[k] = t + 1 >= s.promptLength ? 1 : 0;
    }
  });
  return { batch: all.length, seq: T, tokens, targets, lossMask, attentionMask };
}

function isModel(x: unknown): x is Model {
  return x instanceof Model;
}

/**
 * One DPO step on a batch of preference pairs: the reference's forward pass (when a reference model is
 * given), the policy's forward pass over the 2B sequences, summed response log-probs, the loss, its
 * gradient written over the policy's logits, backward and AdamW.
 */
export async function dpoStep(policy: Model, pairs: PreferencePair[], options: DpoOptions, optimizer: OptimizerOptions): Promise<DpoStepResult> {
  checkModel('policy', policy);
  const o = options ?? {};
  const beta = o.beta ?? 0.1;
  checkNumber('options.beta', beta, (x) => x > 0, '> 0');
  const lossType = o.lossType ?? 'sigmoid';
  if (!['sigmoid', 'ipo', 'hinge'].includes(lossType)) throw invalidArgument(`options.lossType must be 'sigmoid', 'ipo' or 'hinge', got ${describeValue(lossType)}`);
  const labelSmoothing = o.labelSmoothing ?? 0;
  checkNumber('options.labelSmoothing', labelSmoothing, (x) => x >= 0 && x < 0.5, 'in [0, 0.5)');
  if (labelSmoothing > 0 && lossType !== 'sigmoid') throw invalidArgument(`options.labelSmoothing applies to the sigmoid loss only, not ${lossType}`);
  const batch = buildPreferenceBatch(pairs, policy);
  const nb = policy.toNativeBatch(batch, true);
  const opt = validateOptimizer(optimizer);
  const settings = { beta, lossType, labelSmoothing };
  const ref = o.reference;
  let result: NativeDpoStats;
  if (ref === undefined || ref === null) {
    result = await withNativeHandle(policy, (h) => native.dpoStep(h, null, nb, null, settings, opt));
  } else if (isModel(ref)) {
    if (ref === policy) throw invalidArgument('options.reference must be a different model from the policy (a frozen copy)');
    if (ref.config.vocab_size !== policy.config.vocab_size)
      throw invalidArgument(`options.reference vocab_size ${ref.config.vocab_size} differs from the policy's ${policy.config.vocab_size}`);
    ref.toNativeBatch(batch, true);
    result = await withTwo(policy, ref, (hp, hr) => native.dpoStep(hp, hr, nb, null, settings, opt));
  } else {
    const B = pairs.length;
    const values = new Float64Array(2 * B);
    for (const [key, offset] of [['chosen', 0], ['rejected', B]] as const) {
      const a = (ref as ReferenceLogProbs)[key];
      if (!a || typeof a !== 'object' || a.length !== B) throw invalidArgument(`options.reference.${key} must hold one log-prob per pair (${B})`);
      for (let i = 0; i < B; i++) {
        if (typeof a[i] !== 'number' || !Number.isFinite(a[i])) throw invalidArgument(`options.reference.${key}[${i}] must be a finite number, got ${describeValue(a[i])}`);
        values[offset + i] = a[i];
      }
    }
    result = await withNativeHandle(policy, (h) => native.dpoStep(h, null, nb, values, settings, opt));
  }
  return { ...result };
}

/**
 * Summed log-probabilities of the masked tokens of each sequence: masks[i][j] weighs token j of
 * sequences[i] (predicted from the tokens before it), so masks[i][0] must be 0. For reward / KL logging.
 */
export async function sequenceLogProbs(model: Model, sequences: ArrayLike<number>[], masks: ArrayLike<number>[]): Promise<Float64Array> {
  checkModel('model', model);
  if (!Array.isArray(sequences) || sequences.length === 0) throw invalidArgument('sequences must be a non-empty array of token id arrays');
  if (!Array.isArray(masks) || masks.length !== sequences.length) throw invalidArgument(`masks must be an array with one mask per sequence (${sequences.length})`);
  const { vocab_size: V, n_ctx } = model.config;
  const seqs = sequences.map((s, i) => tokenIds(`sequences[${i}]`, s, V, 2, n_ctx + 1, 'n_ctx + 1'));
  const T = seqs.reduce((m, s) => Math.max(m, s.length), 0) - 1;
  const n = seqs.length * T;
  const tokens = new Int32Array(n), targets = new Int32Array(n), lossMask = new Float32Array(n), attentionMask = new Uint8Array(n);
  seqs.forEach((s, row) => {
    const m = masks[row];
    if (!m || typeof m !== 'object' || m.length !== s.length) throw invalidArgument(`masks[${row}] must have one weight per token of sequences[${row}] (${s.length})`);
    if (m[0] !== 0) throw invalidArgument(`masks[${row}][0] must be 0: the first token has no prediction`);
    for (let t = 0; t + 1 < s.length; t++) {
      const w = m[t + 1];
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw invalidArgument(`masks[${row}][${t + 1}] must be a finite weight >= 0, got ${describeValue(w)}`);
      const k = row * T + t;
      tokens[k] = s[t];
      targets[k] = s[t + 1];
      attentionMask[k] = 1;
      lossMask[k] = w;
    }
  });
  const nb: NativeBatch = model.toNativeBatch({ batch: seqs.length, seq: T, tokens, targets, lossMask, attentionMask }, true);
  return withNativeHandle(model, (h) => native.sequenceLogProbs(h, nb));
}

/** Summed response log-probs of each pair under `model` (e.g. a frozen reference, computed once). */
export async function preferenceLogProbs(model: Model, pairs: PreferencePair[]): Promise<{ chosen: Float64Array; rejected: Float64Array }> {
  checkModel('model', model);
  const nb = model.toNativeBatch(buildPreferenceBatch(pairs, model), true);
  const all = await withNativeHandle(model, (h) => native.sequenceLogProbs(h, nb));
  return { chosen: all.slice(0, pairs.length), rejected: all.slice(pairs.length) };
}

// ---- GRPO ----

export type GrpoLossType = 'grpo' | 'bnpo' | 'dr_grpo';

/** The G sampled completions of one prompt and their rewards (the group whose rewards are normalised). */
export interface GrpoGroup {
  prompt: ArrayLike<number>;
  completions: ArrayLike<number>[];
  rewards: ArrayLike<number>;
}

export interface GrpoOptions {
  /** Lower clip bound: the ratio is clipped at 1 - epsilonLow (TRL's epsilon, default 0.2). */
  epsilonLow?: number;
  /** Upper clip bound: 1 + epsilonHigh (default = epsilonLow; DAPO uses 0.28). */
  epsilonHigh?: number;
  /** KL coefficient of the k3 estimator to the reference (default 0, TRL's default: no reference needed). */
  beta?: number;
  /** Loss aggregation (TRL's loss_type): per-sequence means (grpo, default), token mean (bnpo), or a constant normaliser (dr_grpo). */
  lossType?: GrpoLossType;
  /** Advantage scaling: by the group's reward std (default), the batch's, or none (Dr. GRPO). */
  scaleRewards?: 'group' | 'batch' | 'none';
  /** dr_grpo's normaliser (default: the batch's sequence length). */
  maxCompletionLength?: number;
  /** A frozen reference model, or per-token reference log-probs laid out as grpoTokenLogProbs returns them. */
  reference?: Model | Float64Array;
  /**
   * The per-token log-probs the completions were sampled with (grpoTokenLogProbs of the policy before the
   * first update); absent on the first of mu updates, when they equal the current ones (ratio 1).
   */
  oldLogps?: Float64Array;
}

/** TRL's GRPO log names (means over the batch), plus the optimizer's. */
export interface GrpoStepResult {
  loss: number;
  reward: number;
  reward_std: number;
  kl: number;
  'clip_ratio/low_mean': number;
  'clip_ratio/high_mean': number;
  'clip_ratio/region_mean': number;
  'completions/mean_length': number;
  frac_reward_zero_std: number;
  gradNorm: number;
  lr: number;
  tokens: number;
  step: number;
}

/**
 * The batch of a list of groups: one row per completion (prompt + completion, the G rows of a group
 * consecutive), the loss mask on the completion tokens, and the rewards in row order.
 */
export function buildGrpoBatch(groups: readonly GrpoGroup[], model: Model): { batch: Batch; rewards: Float64Array; group: number } {
  if (!Array.isArray(groups) || groups.length === 0) throw invalidArgument('groups must be a non-empty array of {prompt, completions, rewards}');
  const { vocab_size: V, n_ctx } = model.config;
  const G = groups[0]?.completions?.length ?? 0;
  if (!Number.isInteger(G) || G < 2) throw invalidArgument(`each group needs at least 2 completions, got ${describeValue(groups[0]?.completions)}`);
  const rows: { ids: number[]; promptLength: number }[] = [];
  const rewards: number[] = [];
  groups.forEach((g, i) => {
    if (!g || typeof g !== 'object') throw invalidArgument(`groups[${i}] must be an object {prompt, completions, rewards}`);
    if (!Array.isArray(g.completions) || g.completions.length !== G) throw invalidArgument(`groups[${i}] has ${describeValue(g.completions?.length)} completions; every group needs the same number (${G})`);
    if (!g.rewards || typeof g.rewards !== 'object' || g.rewards.length !== G) throw invalidArgument(`groups[${i}].rewards must hold one reward per completion (${G})`);
    const prompt = tokenIds(`groups[${i}].prompt`, g.prompt, V, 1, n_ctx, 'n_ctx');
    g.completions.forEach((c: ArrayLike<number>, j: number) => {
      const ids = [...prompt, ...tokenIds(`groups[${i}].completions[${j}]`, c, V, 1, n_ctx, 'n_ctx')];
      if (ids.length - 1 > n_ctx) throw invalidArgument(`groups[${i}].completions[${j}]: prompt + completion has ${ids.length} tokens, more than n_ctx + 1 = ${n_ctx + 1}`);
      const r = g.rewards[j];
      if (typeof r !== 'number' || !Number.isFinite(r)) throw invalidArgument(`groups[${i}].rewards[${j}] must be a finite number, got ${describeValue(r)}`);
      rows.push({ ids, promptLength: prompt.length });
      rewards.push(r);
    });
  });
  return { batch: responseBatch(rows), rewards: Float64Array.from(rewards), group: G };
}

/** Per-token log-probs of the completion tokens of `groups` under `model` (0 on prompt and padding), in batch layout. */
export async function grpoTokenLogProbs(model: Model, groups: readonly GrpoGroup[]): Promise<Float64Array> {
  checkModel('model', model);
  const { batch } = buildGrpoBatch(groups, model);
  const nb = model.toNativeBatch(batch, true);
  return withNativeHandle(model, (h) => native.tokenLogProbs(h, nb));
}

/**
 * One GRPO update of `policy` on groups of sampled completions (group-normalised advantages, clipped
 * ratio with separate low / high bounds, optional k3 KL to a reference); runs off the main thread.
 */
export async function grpoStep(policy: Model, groups: readonly GrpoGroup[], options: GrpoOptions, optimizer: OptimizerOptions): Promise<GrpoStepResult> {
  checkModel('policy', policy);
  const o = options ?? {};
  const epsilonLow = o.epsilonLow ?? 0.2;
  checkNumber('options.epsilonLow', epsilonLow, (x) => x >= 0 && x < 1, 'in [0, 1)');
  const epsilonHigh = o.epsilonHigh ?? epsilonLow;
  checkNumber('options.epsilonHigh', epsilonHigh, (x) => x >= 0 && x <= 1000, 'in [0, 1000]');
  const beta = o.beta ?? 0;
  checkNumber('options.beta', beta, (x) => x >= 0, '>= 0');
  const lossType = o.lossType ?? 'grpo';
  if (!['grpo', 'bnpo', 'dr_grpo'].includes(lossType)) throw invalidArgument(`options.lossType must be 'grpo', 'bnpo' or 'dr_grpo', got ${describeValue(lossType)}`);
  const scaleRewards = o.scaleRewards ?? 'group';
  if (!['group', 'batch', 'none'].includes(scaleRewards)) throw invalidArgument(`options.scaleRewards must be 'group', 'batch' or 'none', got ${describeValue(scaleRewards)}`);
  const maxCompletionLength = o.maxCompletionLength ?? 0;
  checkNumber('options.maxCompletionLength', maxCompletionLength, (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  const { batch, rewards, group } = buildGrpoBatch(groups, policy);
  const rows = batch.batch * batch.seq;
  for (const [name, a] of [['options.oldLogps', o.oldLogps], ['options.reference', o.reference instanceof Float64Array ? o.reference : undefined]] as const) {
    if (a !== undefined && (!(a instanceof Float64Array) || a.length !== rows)) throw invalidArgument(`${name} must be a Float64Array of ${rows} per-token log-probs (grpoTokenLogProbs of these groups)`);
  }
  if (beta > 0 && o.reference === undefined) throw invalidArgument('options.beta > 0 needs options.reference (a frozen model or its per-token log-probs)');
  const nb = policy.toNativeBatch(batch, true);
  const opt = validateOptimizer(optimizer);
  const settings = { group, epsilonLow, epsilonHigh, beta, lossType, scaleRewards, maxCompletionLength };
  const old = o.oldLogps ?? null;
  const ref = o.reference;
  if (isModel(ref)) {
    if (ref === policy) throw invalidArgument('options.reference must be a different model from the policy (a frozen copy)');
    if (ref.config.vocab_size !== policy.config.vocab_size) throw invalidArgument(`options.reference vocab_size ${ref.config.vocab_size} differs from the policy's ${policy.config.vocab_size}`);
    ref.toNativeBatch(batch, true);
    return { ...(await withTwo(policy, ref, (hp, hr) => native.grpoStep(hp, hr, nb, rewards, old, null, settings, opt))) };
  }
  return { ...(await withNativeHandle(policy, (h) => native.grpoStep(h, null, nb, rewards, old, ref ?? null, settings, opt))) };
}
