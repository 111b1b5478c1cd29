// The learned relevance scorer (M1): a small GPT-2 with a scalar head, trained by the native engine on judged
// (query, product title) pairs with the gains as soft BCE targets, and served behind RelevanceScorer.
// Input text: query tokens, <sep>, title tokens, <eos>; the head reads the last real token, which under the causal
// mask is the only position that has seen both sides. A folder holds the model (config.json, model.safetensors),
// its tokenizer (tokenizer.json, ...) and relevance.json (how inputs were built), so scoring matches training.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MinielmError, invalidArgument } from '../errors.ts';
import { resolveDir } from '../util/atomic.ts';
import { Model, type ModelConfig } from '../model/model.ts';
import { Tokenizer, trainTokenizer } from '../tokenizer/index.ts';
import { createRng, hashString, shuffleInPlace } from '../data/random.ts';
import { normalizeQuery, type RelevancePair, type RelevanceScorer } from './relevance.ts';
import { rocAuc, spearman } from './spearman.ts';
import { LexicalFeatures } from './lexical-features.ts';
import { isGbdtModel, predictGbdt, trainGbdt, type GbdtModel, type GbdtOptions } from './gbdt.ts';
import type { Bm25Stats } from './bm25-pairs.ts';

/** One judged pair for training or evaluation; `gain` in [0, 1] (Home Depot: (r - 1) / 2). */
export interface LabelledPair {
  query: string;
  title: string;
  gain: number;
}

/** How a (query, title) pair becomes tokens; stored in relevance.json next to the model. */
export interface RelevanceInputFormat {
  /** Sequence length cap (the model's n_ctx). */
  nCtx: number;
  /** Query tokens kept at most, so a long query cannot crowd the title out. */
  maxQueryTokens: number;
  /** Lower-case both texts before tokenizing (default true; see normalizeRelevanceText). */
  lowercase?: boolean;
}

export interface LearnedScorerOptions {
  /** Pairs per native score call. Default 256. */
  batchSize?: number;
  /**
   * Titles of the catalog being scored (each product once): the lexical stage's term statistics then come from
   * them instead of the training catalog's saved ones (as BM25 counts idf over the collection it searches).
   */
  catalogTitles?: Iterable<string>;
}

const META_FILE = 'relevance.json';
const META_FORMAT = 'minielm-relevance-v1';
const LEXICAL_FILE = 'lexical.json';
const LEXICAL_FORMAT = 'minielm-relevance-lexical-v1';

/** The lexical stage as saved in lexical.json. */
export interface LexicalStageData {
  format: typeof LEXICAL_FORMAT;
  trees: GbdtModel;
  /** gain = intercept + trees * (tree prediction) + model * sigmoid(network logit), clamped to [0, 1]. */
  blend: { intercept: number; trees: number; model: number };
  catalog: Bm25Stats;
}

/**
 * The second stage of M1: boosted trees over lexical match features of the pair (lib/rewards/lexical-features.ts),
 * trained on the training pairs' gains, blended with the network's probability by least squares on the dev
 * pairs. The network reads the text and knows products and phrasing; the trees know how much of the query the
 * title covers, exactly or through a typo, which is what the human labels mostly follow.
 */
export class LexicalStage {
  constructor(
    readonly trees: GbdtModel,
    readonly blend: LexicalStageData['blend'],
    readonly features: LexicalFeatures,
  ) {
    if (trees.features.length !== features.names.length || trees.features.some((n, i) => n !== features.names[i])) {
      throw new MinielmError('MINIELM_BAD_FILE', `lexical stage: the trees use features [${trees.features.join(', ')}], this version computes [${features.names.join(', ')}]; retrain the scorer.`);
    }
  }

  static fromJSON(data: unknown, catalogTitles?: Iterable<string>): LexicalStage {
    const d = data as LexicalStageData;
    const b = d?.blend;
    if (!d || d.format !== LEXICAL_FORMAT || !isGbdtModel(d.trees) || !b || ![b.intercept, b.trees, b.model].every(Number.isFinite) || !d.catalog) {
      throw new MinielmError('MINIELM_BAD_FILE', `not a minielm lexical relevance stage (expected format "${LEXICAL_FORMAT}" with trees, blend and catalog).`);
    }
    return new LexicalStage(d.trees, b, new LexicalFeatures(catalogTitles ?? d.catalog));
  }

  toJSON(): LexicalStageData {
    return { format: LEXICAL_FORMAT, trees: this.trees, blend: this.blend, catalog: this.features.bm25.stats() };
  }

  /** The trees' predictions, 1,000 pairs at a time with a turn of the event loop between (~10 ms each). */
  async treeScores(pairs: readonly { query: string; title: string }[]): Promise<Float64Array> {
    const rows = await this.features.computeAll(pairs);
    const f = this.features.names.length;
    const out = new Float64Array(pairs.length);
    for (let start = 0; start < pairs.length; start += 1000) {
      if (start > 0) await new Promise((r) => setImmediate(r));
      const end = Math.min(pairs.length, start + 1000);
      out.set(predictGbdt(this.trees, rows.subarray(start * f, end * f)), start);
    }
    return out;
  }

  combine(tree: number, probability: number): number {
    const g = this.blend.intercept + this.blend.trees * tree + this.blend.model * probability;
    return g < 0 ? 0 : g > 1 ? 1 : g;
  }
}

/**
 * Text as the scorer's tokenizer sees it: collapsed whitespace, one leading space, lower-cased by default.
 * Byte-level BPE gives "Drill", "drill" and " drill" three unrelated ids; queries are typed lower-case and
 * titles in title case, so without this the model would have to learn that they are the same word before it
 * could learn that matching words mean relevance. It changes the spelling only, no features are added.
 */
export function normalizeRelevanceText(text: string, lowercase = true): string {
  const t = ` ${text.replace(/\s+/g, ' ').trim()}`;
  return lowercase ? t.toLowerCase() : t;
}

/** `query <sep> title <eos>`, truncated: the query to maxQueryTokens, then the title to what is left of n_ctx. */
export function encodeRelevanceInput(tokenizer: Tokenizer, query: string, title: string, format: RelevanceInputFormat): number[] {
  const lower = format.lowercase ?? true;
  const q = tokenizer.encode(normalizeRelevanceText(query, lower)).slice(0, format.maxQueryTokens);
  const room = Math.max(0, format.nCtx - q.length - 2);
  const t = tokenizer.encode(normalizeRelevanceText(title, lower)).slice(0, room);
  return [...q, tokenizer.sepId, ...t, tokenizer.eosId];
}

/** Right-padded batch with an attention mask; padding positions never reach the head. */
function padBatch(seqs: readonly number[][], padId: number): { tokens: Int32Array; attentionMask: Uint8Array; batch: number; seq: number } {
  let seq = 1;
  for (const s of seqs) if (s.length > seq) seq = s.length;
  const tokens = new Int32Array(seqs.length * seq).fill(padId);
  const attentionMask = new Uint8Array(seqs.length * seq);
  seqs.forEach((s, b) => {
    tokens.set(s, b * seq);
    attentionMask.fill(1, b * seq, b * seq + s.length);
  });
  return { tokens, attentionMask, batch: seqs.length, seq };
}

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export class LearnedRelevanceScorer implements RelevanceScorer {
  readonly batchSize: number;
  // Queries and titles recur across a trainer's batches (one query, many products): encode each once.
  private readonly cache = new Map<string, number[]>();

  /** The boosted-tree stage, when the scorer was trained with one (the default); else scores are the network's. */
  lexical: LexicalStage | undefined;
  /**
   * Queries (normalizeQuery) whose pairs were left out of training (`relevance train --exclude`): a rewriter
   * evaluated on them may be guided by this scorer without its labels leaking in. Saved in relevance.json.
   */
  excludedQueries: ReadonlySet<string> = new Set();

  constructor(
    readonly model: Model,
    readonly tokenizer: Tokenizer,
    readonly format: RelevanceInputFormat,
    options: LearnedScorerOptions & { lexical?: LexicalStage } = {},
  ) {
    this.lexical = options.lexical;
    if (!model.config.score_head) throw invalidArgument('LearnedRelevanceScorer needs a model with a score head ({ score_head: true }).');
    if (tokenizer.vocabSize > model.config.vocab_size) {
      throw invalidArgument(`tokenizer has ${tokenizer.vocabSize} tokens but the model only ${model.config.vocab_size}; they do not belong together.`);
    }
    if (format.nCtx > model.config.n_ctx) throw invalidArgument(`input length ${format.nCtx} exceeds the model's n_ctx ${model.config.n_ctx}.`);
    this.batchSize = options.batchSize ?? 256;
    if (!(Number.isInteger(this.batchSize) && this.batchSize > 0)) throw invalidArgument(`batchSize must be a positive integer, got ${options.batchSize}.`);
  }

  /** Loads a folder written by save() or `minielm relevance train`. */
  static async load(dir: string, options: LearnedScorerOptions = {}): Promise<LearnedRelevanceScorer> {
    // One resolution for all three parts, so they come from the same save.
    dir = await resolveDir(dir);
    const metaFile = join(dir, META_FILE);
    if (!existsSync(metaFile)) {
      throw new MinielmError('MINIELM_NOT_FOUND', `${metaFile} does not exist: pass a folder written by "minielm relevance train" (model, tokenizer and ${META_FILE}).`);
    }
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as { format?: string; input?: RelevanceInputFormat; excludedQueries?: unknown };
    if (meta.format !== META_FORMAT || !meta.input || !(meta.input.nCtx > 0) || !(meta.input.maxQueryTokens > 0)) {
      throw new MinielmError('MINIELM_BAD_FILE', `${metaFile}: not a minielm relevance scorer description (expected format "${META_FORMAT}" with input.nCtx and input.maxQueryTokens).`);
    }
    let lexical: LexicalStage | undefined;
    const lexicalFile = join(dir, LEXICAL_FILE);
    if (existsSync(lexicalFile)) {
      let data: unknown;
      try {
        data = JSON.parse(await readFile(lexicalFile, 'utf8'));
        lexical = LexicalStage.fromJSON(data);
      } catch (err) {
        throw new MinielmError('MINIELM_BAD_FILE', `${lexicalFile}: ${(err as Error).message.replace(/\.?$/, '.')} Retrain the scorer or delete the file to score with the network alone.`);
      }
      // Another catalog's statistics: a bad catalog is the caller's input, not a damaged file.
      if (options.catalogTitles !== undefined) lexical = new LexicalStage(lexical.trees, lexical.blend, new LexicalFeatures(options.catalogTitles));
    }
    const [model, tokenizer] = await Promise.all([Model.load(dir), Tokenizer.load(dir)]);
    if (!model.config.score_head) throw new MinielmError('MINIELM_CHECKPOINT', `${dir}: the model has no score head (score.weight); it is a language model, not a relevance scorer.`);
    const scorer = new LearnedRelevanceScorer(model, tokenizer, meta.input, { ...options, lexical });
    if (Array.isArray(meta.excludedQueries)) scorer.excludedQueries = new Set(meta.excludedQueries.filter((q): q is string => typeof q === 'string'));
    return scorer;
  }

  /** The given queries whose labels this scorer may have trained on (not in excludedQueries). */
  unexcluded(queries: readonly string[]): string[] {
    return queries.filter((q) => !this.excludedQueries.has(normalizeQuery(q)));
  }

  /** Model, tokenizer and relevance.json as one set: a kill during a save leaves the previous scorer whole. */
  async save(dir: string, extra: Record<string, unknown> = {}): Promise<void> {
    await this.model.save(dir, {
      metadata: { minielm_task: 'relevance' },
      extraFiles: async (stage) => {
        await this.tokenizer.save(stage);
        const excluded = this.excludedQueries.size ? { excludedQueries: [...this.excludedQueries] } : {};
        await writeFile(join(stage, META_FILE), `${JSON.stringify({ format: META_FORMAT, input: this.format, lexical: this.lexical !== undefined, ...excluded, ...extra }, null, 2)}\n`);
        if (this.lexical) await writeFile(join(stage, LEXICAL_FILE), JSON.stringify(this.lexical.toJSON()));
      },
    });
  }

  encode(query: string, title: string): number[] {
    // The cache key separates the two texts with a character neither contains in practice (a NUL).
    const key = `${query}\u0000${title}`;
    let ids = this.cache.get(key);
    if (!ids) {
      if (this.cache.size >= 200_000) this.cache.clear();
      ids = encodeRelevanceInput(this.tokenizer, query, title, this.format);
      this.cache.set(key, ids);
    }
    return ids;
  }

  /** Raw head outputs (logits), in input order. Pairs are grouped by length so each native call pads little. */
  async scoreLogits(pairs: readonly { query: string; title: string }[]): Promise<Float32Array> {
    const seqs = pairs.map((p) => this.encode(p.query, p.title));
    return this.scoreEncoded(seqs);
  }

  async scoreEncoded(seqs: readonly number[][]): Promise<Float32Array> {
    const out = new Float32Array(seqs.length);
    const order = Array.from({ length: seqs.length }, (_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length);
    for (let start = 0; start < order.length; start += this.batchSize) {
      const idx = order.slice(start, start + this.batchSize);
      const scores = await this.model.score(padBatch(idx.map((i) => seqs[i]), this.tokenizer.padId));
      idx.forEach((i, k) => (out[i] = scores[k]));
    }
    return out;
  }

  /**
   * Gains in [0, 1]. With a lexical stage: its blend of the trees' prediction and the network's probability;
   * without: the sigmoid of the head, the probability the BCE objective trained it to give. A pair's gain
   * depends on that pair alone, not on the others scored with it.
   */
  async scoreGains(pairs: readonly { query: string; title: string }[]): Promise<Float64Array> {
    const logits = await this.scoreLogits(pairs);
    const out = Float64Array.from(logits, sigmoid);
    if (this.lexical) {
      const trees = await this.lexical.treeScores(pairs);
      for (let i = 0; i < out.length; i++) out[i] = this.lexical.combine(trees[i], out[i]);
    }
    return out;
  }

  async scoreBatch(pairs: RelevancePair[]): Promise<number[]> {
    return Array.from(await this.scoreGains(pairs.map((p) => ({ query: p.query, title: p.product.title }))));
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
  }
}

/**
 * A score-head model on top of a pretrained causal-LM trunk: the folder's tokenizer, its config with
 * `score_head: true`, every trunk tensor copied over, and `score.weight` as the engine initialises a new head
 * (small random, from `seed`). Model.load alone would give no head: the folder has no score.weight.
 */
export async function scoreModelFromTrunk(dir: string, options: { seed?: number } = {}): Promise<{ model: Model; tokenizer: Tokenizer }> {
  dir = await resolveDir(dir);
  if (!existsSync(join(dir, 'config.json')) || !existsSync(join(dir, 'model.safetensors'))) {
    throw new MinielmError('MINIELM_NOT_FOUND', `init ${dir}: no config.json and model.safetensors there. Pass a causal-LM checkpoint folder, e.g. a "minielm train pretrain" run's best/.`);
  }
  const [trunk, tokenizer] = await Promise.all([Model.load(dir), Tokenizer.load(dir)]);
  try {
    if (trunk.config.score_head) {
      throw invalidArgument(`init ${dir} already has a score head (it is a relevance scorer); pass the causal-LM checkpoint it would start from instead.`);
    }
    if (tokenizer.vocabSize > trunk.config.vocab_size) {
      throw new MinielmError('MINIELM_CHECKPOINT', `init ${dir}: its tokenizer has ${tokenizer.vocabSize} tokens but the model only ${trunk.config.vocab_size}; put the tokenizer the model was trained with in the folder.`);
    }
    const model = await Model.create({ ...trunk.config, score_head: true }, { seed: options.seed ?? 0 });
    const heads = new Set(model.tensors().map((t) => t.name));
    for (const t of trunk.tensors()) {
      model.writeTensor(t.name, trunk.readTensor(t.name));
      heads.delete(t.name);
    }
    if (heads.size !== 1 || !heads.has('score.weight')) {
      await model.dispose();
      throw new MinielmError('MINIELM_CHECKPOINT', `init ${dir}: the score model differs from the trunk in ${[...heads].join(', ') || 'nothing'}; expected only score.weight to be new.`);
    }
    return { model, tokenizer };
  } finally {
    await trunk.dispose();
  }
}

export interface RelevanceTrainOptions {
  /** A tokenizer to reuse; otherwise one is trained on the training queries and titles. Not with `init`. */
  tokenizer?: Tokenizer;
  /**
   * A causal-LM checkpoint folder to start from (a pretrain run's best/): its tokenizer and trunk are used and a
   * new score head is put on top (scoreModelFromTrunk). The model's sizes then come from the folder; `vocabSize`,
   * `nLayer`, `nHead` and `nEmbd` must not be given, and `nCtx` defaults to min(48, its n_ctx).
   */
  init?: string;
  vocabSize?: number;
  nCtx?: number;
  maxQueryTokens?: number;
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  gradClip?: number;
  seed?: number;
  /** Evaluate on the dev pairs every this many steps (and after the last). Default 500. */
  evalEvery?: number;
  /** Dev pairs with gain >= this are "relevant" for the dev AUC. Default 0.665 (Home Depot r >= 2.33). */
  relevantGain?: number;
  /** Lower-case texts before tokenizing (default true). */
  lowercase?: boolean;
  /**
   * Sampled negatives per judged pair (default 0, off): a batch's query paired with the title of a product judged
   * for some other query, target 0. Judged pairs alone are mostly relevant (Home Depot's mean is 2.38 of 3) and
   * let a small model get far by memorising products; mismatched titles make it learn whether the title fits
   * the query at all. Plain text in, label out: no features are computed for the model.
   */
  negativesPerPair?: number;
  /** Loss weight of a sampled negative relative to a judged pair (default 0.5). */
  negativeWeight?: number;
  /**
   * Epochs of next-token language modelling on the training sequences (`query <sep> title <eos>`) before the
   * score head is trained (default 1). Predicting title tokens after the query teaches attention heads to look
   * up query tokens in the title, the mechanism relevance needs and that the relevance labels alone teach
   * slowly. Same text, same model, no extra data.
   */
  pretrainEpochs?: number;
  /** Where to write the best checkpoint as it improves (optional; the best is kept in memory either way). */
  outDir?: string;
  /**
   * Train the lexical stage after the network (default true): boosted trees on the training pairs' lexical
   * features, blended with the network on dev (LexicalStage). The network's best checkpoint is chosen first.
   */
  lexical?: boolean;
  /** The catalog's titles, each product once, for the lexical features' term statistics (default: the pairs' titles). */
  catalogTitles?: Iterable<string>;
  /** Boosted-tree settings of the lexical stage (lib/rewards/gbdt.ts defaults). */
  trees?: GbdtOptions;
}

export const RELEVANCE_TRAIN_DEFAULTS = {
  vocabSize: 4096,
  nCtx: 48,
  maxQueryTokens: 16,
  nLayer: 2,
  nHead: 4,
  nEmbd: 128,
  // The configuration measured on Home Depot (docs/relevance.md), chosen on its dev split.
  epochs: 2,
  batchSize: 64,
  lr: 2e-3,
  warmupSteps: 200,
  weightDecay: 0.1,
  gradClip: 1,
  seed: 1,
  evalEvery: 300,
  relevantGain: 0.665,
  lowercase: true,
  negativesPerPair: 0,
  negativeWeight: 0.5,
  pretrainEpochs: 2,
  lexical: true,
} as const;

export interface RelevanceTrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  /** Mean BCE over the steps since the last report. */
  loss: number;
  lr: number;
  /** Real (unpadded) tokens per second since training started. */
  tokensPerSec: number;
  elapsedSec: number;
  /** 'pretrain' while language modelling (loss is then next-token cross-entropy), else absent. */
  phase?: 'pretrain';
  dev?: { spearman: number; auc: number; best: boolean };
}

export interface RelevanceTrainResult {
  scorer: LearnedRelevanceScorer;
  config: ModelConfig;
  steps: number;
  bestStep: number;
  best: { spearman: number; auc: number };
  history: { step: number; spearman: number; auc: number; loss: number }[];
  trainSeconds: number;
  tokens: number;
  aborted: boolean;
  /** The lexical stage's dev measures (network alone, trees alone, the blend) and fitting time, when trained. */
  lexical?: LexicalFitReport;
}

export interface LexicalFitReport {
  dev: { network: { spearman: number; auc: number }; trees: { spearman: number; auc: number }; blended: { spearman: number; auc: number } };
  blend: LexicalStageData['blend'];
  trees: number;
  seconds: number;
}

/** Least squares y ~ c0 + c1 x1 + c2 x2 (normal equations; a near-singular system falls back to fewer terms). */
function fitBlend(x1: ArrayLike<number>, x2: ArrayLike<number>, y: ArrayLike<number>): LexicalStageData['blend'] {
  const n = y.length;
  const cols = [(i: number) => 1, (i: number) => x1[i], (i: number) => x2[i]];
  const a = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  const b = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < 3; r++) {
      b[r] += cols[r](i) * y[i];
      for (let c = 0; c < 3; c++) a[r * 3 + c] += cols[r](i) * cols[c](i);
    }
  }
  const det = (m: number[]): number => m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
  const variance = (x: ArrayLike<number>): number => {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[i];
    m /= Math.max(1, n);
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[i] - m) ** 2;
    return v / Math.max(1, n);
  };
  // A constant column (trees that found no split on a small table, a network that learned nothing) cannot be
  // weighed: the other one alone. Both constant: the trees' constant, the mean gain of the training pairs.
  const treesVary = variance(x1) > 1e-12;
  const networkVaries = variance(x2) > 1e-12;
  if (!treesVary) return networkVaries ? { intercept: 0, trees: 0, model: 1 } : { intercept: 0, trees: 1, model: 0 };
  if (!networkVaries) return { intercept: 0, trees: 1, model: 0 };
  const d = det(a);
  if (Math.abs(d) < 1e-12 * Math.max(1, n) ** 3) return { intercept: 0, trees: 1, model: 0 };
  const solve = (k: number): number => {
    const m = [...a];
    for (let r = 0; r < 3; r++) m[r * 3 + k] = b[r];
    return det(m) / d;
  };
  return { intercept: solve(0), trees: solve(1), model: solve(2) };
}

/**
 * Fits the lexical stage of `scorer` and sets it: trees on `train`'s features and gains, then the blend with the
 * network's probability by least squares on `dev` (the split that also picked the network's checkpoint).
 */
export async function fitLexicalStage(
  scorer: LearnedRelevanceScorer,
  train: readonly LabelledPair[],
  dev: readonly LabelledPair[],
  options: { catalogTitles?: Iterable<string>; trees?: GbdtOptions; relevantGain?: number } = {},
): Promise<LexicalFitReport> {
  const started = performance.now();
  const features = new LexicalFeatures(options.catalogTitles ?? new Set([...train, ...dev].map((p) => p.title)));
  const treeModel = await trainGbdt(await features.computeAll(train), train.map((p) => p.gain), features.names, options.trees);
  const trees = predictGbdt(treeModel, await features.computeAll(dev));
  const network = Float64Array.from(await scorer.scoreLogits(dev), sigmoid);
  const gains = dev.map((p) => p.gain);
  const relevant = dev.map((p) => p.gain >= (options.relevantGain ?? RELEVANCE_TRAIN_DEFAULTS.relevantGain));
  const blend = fitBlend(trees, network, gains);
  const stage = new LexicalStage(treeModel, blend, features);
  const blended = trees.map((t, i) => stage.combine(t, network[i]));
  scorer.lexical = stage;
  const measure = (x: ArrayLike<number>) => ({ spearman: spearman(x, gains), auc: rocAuc(x, relevant) });
  return { dev: { network: measure(network), trees: measure(trees), blended: measure(blended) }, blend, trees: treeModel.trees.length, seconds: (performance.now() - started) / 1000 };
}

function checkPairs(pairs: readonly LabelledPair[], what: string): void {
  pairs.forEach((p, i) => {
    if (typeof p.query !== 'string' || typeof p.title !== 'string') throw invalidArgument(`${what} pair ${i} needs string query and title.`);
    if (!(p.gain >= 0 && p.gain <= 1)) throw invalidArgument(`${what} pair ${i} ("${p.query}") has gain ${p.gain}; gains must be in [0, 1].`);
  });
}

/**
 * Trains a scorer from scratch: seeded shuffled epochs with length bucketing (batches of similar lengths, in
 * random order, so little compute goes to padding), AdamW with warmup and cosine decay, dev Spearman every
 * `evalEvery` steps, and the parameters of the best dev Spearman restored at the end.
 */
export async function trainRelevanceScorer(
  train: readonly LabelledPair[],
  dev: readonly LabelledPair[],
  options: RelevanceTrainOptions = {},
  hooks: { signal?: AbortSignal; onProgress?: (p: RelevanceTrainProgress) => void; progressEvery?: number } = {},
): Promise<RelevanceTrainResult> {
  const o = { ...RELEVANCE_TRAIN_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof RELEVANCE_TRAIN_DEFAULTS & RelevanceTrainOptions;
  if (train.length === 0) throw invalidArgument('trainRelevanceScorer needs at least one training pair.');
  if (dev.length === 0) throw invalidArgument('trainRelevanceScorer needs dev pairs to choose the best checkpoint.');
  checkPairs(train, 'training');
  checkPairs(dev, 'dev');
  for (const k of ['epochs', 'batchSize', 'evalEvery', 'nCtx', 'maxQueryTokens', 'nLayer', 'nHead', 'nEmbd'] as const) {
    if (!(Number.isInteger(o[k]) && o[k] > 0)) throw invalidArgument(`${k} must be a positive integer, got ${o[k]}.`);
  }
  if (o.init !== undefined) {
    const given = (['tokenizer', 'vocabSize', 'nLayer', 'nHead', 'nEmbd'] as const).filter((k) => options[k] !== undefined);
    if (given.length) throw invalidArgument(`init ${o.init} brings its own tokenizer and sizes; drop ${given.join(', ')} (or drop init to train from scratch).`);
  }
  const trunk = o.init !== undefined ? await scoreModelFromTrunk(o.init, { seed: o.seed }) : undefined;
  const nCtx = trunk && options.nCtx === undefined ? Math.min(o.nCtx, trunk.model.config.n_ctx) : o.nCtx;
  if (trunk && nCtx > trunk.model.config.n_ctx) {
    await trunk.model.dispose();
    throw invalidArgument(`nCtx ${nCtx} exceeds the n_ctx ${trunk.model.config.n_ctx} of init ${o.init}; pass nCtx <= ${trunk.model.config.n_ctx}.`);
  }
  if (o.maxQueryTokens > nCtx - 3) {
    await trunk?.model.dispose();
    throw invalidArgument(`maxQueryTokens (${o.maxQueryTokens}) must leave room for the title in nCtx (${nCtx}).`);
  }

  const tokenizer =
    trunk?.tokenizer ??
    o.tokenizer ??
    (await trainTokenizer(
      (function* () {
        // Each distinct text once, so frequent queries do not dominate the merges.
        const seen = new Set<string>();
        for (const p of train) {
          for (const t of [normalizeRelevanceText(p.query, o.lowercase), normalizeRelevanceText(p.title, o.lowercase)]) {
            if (!seen.has(t)) {
              seen.add(t);
              yield t;
            }
          }
        }
      })(),
      { vocabSize: o.vocabSize },
    ));
  const model = trunk?.model ?? (await Model.create({ vocab_size: tokenizer.vocabSize, n_ctx: nCtx, n_layer: o.nLayer, n_head: o.nHead, n_embd: o.nEmbd, score_head: true }, { seed: o.seed }));
  const config: ModelConfig = model.config;
  const format: RelevanceInputFormat = { nCtx, maxQueryTokens: o.maxQueryTokens, lowercase: o.lowercase };
  const scorer = new LearnedRelevanceScorer(model, tokenizer, format);

  const trainSeqs = train.map((p) => encodeRelevanceInput(tokenizer, p.query, p.title, format));
  const devSeqs = dev.map((p) => encodeRelevanceInput(tokenizer, p.query, p.title, format));
  const devGains = dev.map((p) => p.gain);
  const devRelevant = dev.map((p) => p.gain >= o.relevantGain);
  if (!(Number.isInteger(o.pretrainEpochs) && o.pretrainEpochs >= 0)) throw invalidArgument(`pretrainEpochs must be an integer >= 0, got ${o.pretrainEpochs}.`);
  if (!(o.negativesPerPair >= 0 && o.negativeWeight >= 0)) throw invalidArgument(`negativesPerPair and negativeWeight must be >= 0, got ${o.negativesPerPair} and ${o.negativeWeight}.`);
  // Judged (query, title) pairs, so a sampled negative is never a pair the data judged.
  const judged = new Set(train.map((p) => `${normalizeQuery(p.query)}\u0000${p.title}`));
  const negativesPerBatch = Math.round(o.batchSize * o.negativesPerPair);
  const stepsPerEpoch = Math.ceil(train.length / o.batchSize);
  const pretrainSteps = stepsPerEpoch * o.pretrainEpochs;
  const totalSteps = stepsPerEpoch * o.epochs;
  // One warmup + cosine schedule over both phases: the engine's schedule follows its global step counter.
  const optimizer = { lr: o.lr, warmupSteps: Math.min(o.warmupSteps, pretrainSteps + totalSteps), totalSteps: pretrainSteps + totalSteps, weightDecay: o.weightDecay, gradClip: o.gradClip, schedule: 'cosine' as const };
  const rng = createRng(o.seed);
  const bucketedBatches = (): number[][] => {
    const order = shuffleInPlace(rng, Array.from({ length: train.length }, (_, i) => i));
    // Length bucketing: sort windows of 32 batches by length, cut them into batches, shuffle the batches.
    const window = o.batchSize * 32;
    const batches: number[][] = [];
    for (let w = 0; w < order.length; w += window) {
      const chunk = order.slice(w, w + window).sort((a, b) => trainSeqs[a].length - trainSeqs[b].length);
      for (let b = 0; b < chunk.length; b += o.batchSize) batches.push(chunk.slice(b, b + o.batchSize));
    }
    return shuffleInPlace(rng, batches);
  };

  const history: RelevanceTrainResult['history'] = [];
  let best = { spearman: -Infinity, auc: Number.NaN };
  let bestStep = 0;
  let bestParams: Map<string, Float32Array> | null = null;
  let step = 0;
  let tokens = 0;
  let lossSum = 0;
  let lossCount = 0;
  let aborted = false;
  const started = performance.now();
  const progressEvery = hooks.progressEvery ?? 50;

  const evaluate = async (epoch: number): Promise<void> => {
    const logits = await scorer.scoreEncoded(devSeqs);
    const rho = spearman(logits, devGains);
    const auc = rocAuc(logits, devRelevant);
    const loss = lossCount ? lossSum / lossCount : Number.NaN;
    history.push({ step, spearman: rho, auc, loss });
    const improved = rho > best.spearman;
    if (improved) {
      best = { spearman: rho, auc };
      bestStep = step;
      bestParams = new Map(model.tensors().map((t) => [t.name, model.readTensor(t.name)]));
      if (o.outDir) await scorer.save(o.outDir, { bestStep: step, dev: best });
    }
    hooks.onProgress?.({ step, totalSteps, epoch, loss, lr: Number.NaN, tokensPerSec: tokens / ((performance.now() - started) / 1000), elapsedSec: (performance.now() - started) / 1000, dev: { spearman: rho, auc, best: improved } });
  };

  let pretrainStep = 0;
  pretrain: for (let epoch = 1; epoch <= o.pretrainEpochs; epoch++) {
    for (const idx of bucketedBatches()) {
      if (hooks.signal?.aborted) {
        aborted = true;
        break pretrain;
      }
      const seqs = idx.map((i) => trainSeqs[i]);
      const seq = Math.max(...seqs.map((x) => x.length)) - 1;
      const inputs = new Int32Array(seqs.length * seq).fill(tokenizer.padId);
      const targets = new Int32Array(seqs.length * seq).fill(tokenizer.padId);
      const lossMask = new Float32Array(seqs.length * seq);
      const attentionMask = new Uint8Array(seqs.length * seq);
      seqs.forEach((x, b) => {
        inputs.set(x.slice(0, -1), b * seq);
        targets.set(x.slice(1), b * seq);
        lossMask.fill(1, b * seq, b * seq + x.length - 1);
        attentionMask.fill(1, b * seq, b * seq + x.length - 1);
      });
      const result = await model.trainStep({ tokens: inputs, targets, lossMask, attentionMask, batch: seqs.length, seq }, optimizer);
      pretrainStep++;
      for (const x of seqs) tokens += x.length - 1;
      if (pretrainStep % progressEvery === 0) {
        const elapsedSec = (performance.now() - started) / 1000;
        hooks.onProgress?.({ step: pretrainStep, totalSteps: pretrainSteps, epoch, loss: result.loss, lr: result.lr, tokensPerSec: tokens / elapsedSec, elapsedSec, phase: 'pretrain' });
      }
    }
  }

  outer: for (let epoch = 1; epoch <= o.epochs && !aborted; epoch++) {
    for (const idx of bucketedBatches()) {
      if (hooks.signal?.aborted) {
        aborted = true;
        break outer;
      }
      const seqs = idx.map((i) => trainSeqs[i]);
      const labels = idx.map((i) => train[i].gain);
      const weights = idx.map(() => 1);
      for (let n = 0, tries = 0; n < negativesPerBatch && tries < 4 * negativesPerBatch; tries++) {
        const q = train[idx[Math.floor(rng() * idx.length)]];
        const other = train[Math.floor(rng() * train.length)];
        if (judged.has(`${normalizeQuery(q.query)}\u0000${other.title}`)) continue;
        seqs.push(encodeRelevanceInput(tokenizer, q.query, other.title, format));
        labels.push(0);
        weights.push(o.negativeWeight);
        n++;
      }
      const result = await model.trainScoreStep(padBatch(seqs, tokenizer.padId), Float32Array.from(labels), optimizer, Float32Array.from(weights));
      step++;
      for (const s of seqs) tokens += s.length;
      lossSum += result.loss;
      lossCount++;
      if (step % progressEvery === 0 && step % o.evalEvery !== 0) {
        const elapsedSec = (performance.now() - started) / 1000;
        hooks.onProgress?.({ step, totalSteps, epoch, loss: lossSum / lossCount, lr: result.lr, tokensPerSec: tokens / elapsedSec, elapsedSec });
      }
      if (step % o.evalEvery === 0 || step === totalSteps) {
        await evaluate(epoch);
        lossSum = 0;
        lossCount = 0;
      }
    }
  }
  if (aborted || history.length === 0 || history[history.length - 1].step !== step) await evaluate(o.epochs);
  const finalParams = bestParams as Map<string, Float32Array> | null;
  if (finalParams) for (const [name, data] of finalParams) model.writeTensor(name, data);
  const lexical = o.lexical ? await fitLexicalStage(scorer, train, dev, { catalogTitles: o.catalogTitles, trees: o.trees, relevantGain: o.relevantGain }) : undefined;
  return {
    lexical,
    scorer,
    config,
    steps: step,
    bestStep,
    best,
    history,
    trainSeconds: (performance.now() - started) / 1000,
    tokens,
    aborted,
  };
}

export interface QuerySplit<T> {
  train: T[];
  dev: T[];
  test: T[];
}

/**
 * Splits pairs by QUERY (normalised text), so no query is on two sides: a hash of the query with the seed picks
 * its side. Stable: a query's side depends only on its text, the seed and the fractions, not on the other rows.
 */
export function splitByQuery<T extends { query: string }>(pairs: readonly T[], options: { seed?: number; dev?: number; test?: number } = {}): QuerySplit<T> {
  const seed = options.seed ?? 1;
  const devFrac = options.dev ?? 0.1;
  const testFrac = options.test ?? 0.1;
  if (!(devFrac >= 0 && testFrac >= 0 && devFrac + testFrac < 1)) throw invalidArgument(`split fractions dev=${devFrac}, test=${testFrac} must be >= 0 and sum below 1.`);
  const out: QuerySplit<T> = { train: [], dev: [], test: [] };
  for (const p of pairs) {
    const u = hashString(normalizeQuery(p.query), seed) / 4294967296;
    if (u < testFrac) out.test.push(p);
    else if (u < testFrac + devFrac) out.dev.push(p);
    else out.train.push(p);
  }
  return out;
}
