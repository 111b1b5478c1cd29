// Relevance M1: one batched interface, several backends. Scores are gains in [0, 1].
//  - JudgedLabelsScorer: a lookup of labelled (query, product) pairs with an explicit fallback for the rest;
//  - LexicalOverlapScorer: a cheap token-overlap proxy (no training, no model) for demos and as a fallback;
//  - CrossEncoderScorer: a user-supplied ONNX cross-encoder folder through @huggingface/transformers, offline.
// The learned scorer trained by the native engine plugs in behind the same interface (lib/model).
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { MinielmError, invalidArgument, missingOptionalDependency } from '../errors.ts';
import type { Product } from '../data/types.ts';

export interface RelevancePair {
  query: string;
  product: Product;
}

export interface RelevanceScorer {
  /** One gain in [0, 1] per pair, in order. */
  scoreBatch(pairs: RelevancePair[]): Promise<number[]>;
}

/** Queries are compared after trimming, lower-casing and collapsing whitespace, so "Red  Shoes " finds "red shoes". */
export function normalizeQuery(query: string): string {
  return query.trim().toLowerCase().replace(/\s+/g, ' ');
}

/** ESCI labels as gains, the values the ESCI paper uses for nDCG (Exact 1, Substitute 0.1, Complement 0.01, Irrelevant 0). */
export const ESCI_GAINS: Readonly<Record<'E' | 'S' | 'C' | 'I', number>> = Object.freeze({ E: 1, S: 0.1, C: 0.01, I: 0 });

export function esciGain(label: string): number {
  const key = label.trim().toUpperCase().charAt(0) as keyof typeof ESCI_GAINS;
  const g = ESCI_GAINS[key];
  if (g === undefined) throw invalidArgument(`ESCI label "${label}" is not one of E, S, C, I (or Exact, Substitute, Complement, Irrelevant).`);
  return g;
}

/** Home Depot relevance (1 = irrelevant … 3 = highly relevant) mapped linearly onto [0, 1]. */
export function homeDepotGain(relevance: number): number {
  if (!Number.isFinite(relevance) || relevance < 1 || relevance > 3) {
    throw invalidArgument(`Home Depot relevance must be a number in [1, 3], got ${String(relevance)}.`);
  }
  return (relevance - 1) / 2;
}

export interface JudgedLabel {
  query: string;
  productId: string;
  /** Gain in [0, 1]; use esciGain / homeDepotGain to convert raw labels. */
  gain: number;
}

export interface JudgedLabelsOptions {
  /**
   * What an unlabelled pair gets. A number is a fixed gain (e.g. 0 if "unjudged = irrelevant" suits your data);
   * a RelevanceScorer scores the unjudged pairs in one batch; 'error' (the default) throws and names the pair,
   * so an incomplete label set is noticed rather than silently read as irrelevant.
   */
  fallback?: number | RelevanceScorer | 'error';
}

/** M1 from human labels; counts how many pairs were judged and how many went to the fallback. */
export class JudgedLabelsScorer implements RelevanceScorer {
  private readonly gains = new Map<string, number>();
  private readonly counts = new Map<string, number>();
  private readonly fallback: number | RelevanceScorer | 'error';
  judged = 0;
  unjudged = 0;

  constructor(labels: Iterable<JudgedLabel>, options: JudgedLabelsOptions = {}) {
    const fb = options.fallback ?? 'error';
    if (typeof fb === 'number' && !(Number.isFinite(fb) && fb >= 0 && fb <= 1)) {
      throw invalidArgument(`judged-labels fallback gain must be in [0, 1], got ${fb}.`);
    }
    this.fallback = fb;
    let i = 0;
    for (const label of labels) {
      if (typeof label.query !== 'string' || typeof label.productId !== 'string') {
        throw invalidArgument(`judged label ${i} needs string "query" and "productId".`);
      }
      if (!(Number.isFinite(label.gain) && label.gain >= 0 && label.gain <= 1)) {
        throw invalidArgument(`judged label ${i} (${label.query} / ${label.productId}) has gain ${String(label.gain)}; gains must be in [0, 1].`);
      }
      // Duplicated pairs (several annotators) are averaged incrementally.
      const key = labelKey(label.query, label.productId);
      const count = this.counts.get(key) ?? 0;
      const prev = this.gains.get(key) ?? 0;
      this.gains.set(key, (prev * count + label.gain) / (count + 1));
      this.counts.set(key, count + 1);
      i++;
    }
  }

  get size(): number {
    return this.gains.size;
  }

  /** The label of one pair, or undefined when it was never judged. */
  lookup(query: string, productId: string): number | undefined {
    return this.gains.get(labelKey(query, productId));
  }

  async scoreBatch(pairs: RelevancePair[]): Promise<number[]> {
    const out = new Array<number>(pairs.length);
    const missing: number[] = [];
    for (let i = 0; i < pairs.length; i++) {
      const g = this.gains.get(labelKey(pairs[i].query, pairs[i].product.id));
      if (g === undefined) missing.push(i);
      else out[i] = g;
    }
    this.judged += pairs.length - missing.length;
    this.unjudged += missing.length;
    if (missing.length === 0) return out;
    const fb = this.fallback;
    if (fb === 'error') {
      const p = pairs[missing[0]];
      throw new MinielmError(
        'MINIELM_NOT_FOUND',
        `no relevance label for query "${p.query}" and product "${p.product.id}" (${missing.length} unjudged pair(s) in this batch); ` +
          'pass a fallback (a gain, or another scorer) to JudgedLabelsScorer, or label these pairs.',
      );
    }
    if (typeof fb === 'number') {
      for (const i of missing) out[i] = fb;
      return out;
    }
    const scored = await fb.scoreBatch(missing.map((i) => pairs[i]));
    missing.forEach((i, k) => (out[i] = scored[k]));
    return out;
  }
}

function labelKey(query: string, productId: string): string {
  return `${normalizeQuery(query)}\u0000${productId}`;
}

/** Lower-cased alphanumeric tokens with a crude plural strip ("shoes" -> "shoe"), for overlap scoring. */
export function lexicalTokens(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().split(/[^a-z0-9]+/)) {
    if (raw.length === 0) continue;
    out.push(raw.length > 3 && raw.endsWith('s') && !raw.endsWith('ss') ? raw.slice(0, -1) : raw);
  }
  return out;
}

/** The text a scorer reads for a product: title, then brand and colour, then free text. */
export function productText(product: Product): string {
  const parts = [product.title];
  if (product.brand) parts.push(product.brand);
  if (product.color) parts.push(product.color);
  if (product.text) parts.push(product.text);
  return parts.join(' ');
}

/**
 * Fraction of the query's distinct tokens found in the product's title/brand/colour (text excluded: long
 * descriptions match almost anything). A proxy for M1 when no labels or model exist — not a learned score.
 */
export function lexicalOverlap(query: string, product: Product): number {
  const q = new Set(lexicalTokens(query));
  if (q.size === 0) return 0;
  const p = new Set(lexicalTokens(`${product.title} ${product.brand ?? ''} ${product.color ?? ''}`));
  let hit = 0;
  for (const t of q) if (p.has(t)) hit++;
  return hit / q.size;
}

/** lexicalOverlap in batches, remembering each product's token set (catalog objects recur across batches). */
export class LexicalOverlapScorer implements RelevanceScorer {
  private readonly productTokens = new WeakMap<Product, Set<string>>();

  async scoreBatch(pairs: RelevancePair[]): Promise<number[]> {
    const queries = new Map<string, string[]>();
    return pairs.map(({ query, product }) => {
      let q = queries.get(query);
      if (!q) queries.set(query, (q = [...new Set(lexicalTokens(query))]));
      if (q.length === 0) return 0;
      let p = this.productTokens.get(product);
      if (!p) this.productTokens.set(product, (p = new Set(lexicalTokens(`${product.title} ${product.brand ?? ''} ${product.color ?? ''}`))));
      let hit = 0;
      for (const t of q) if (p.has(t)) hit++;
      return hit / q.length;
    });
  }
}

export interface CrossEncoderOptions {
  /** Pairs per forward pass. Default 32. */
  batchSize?: number;
  /** Tokens per (query, product) pair; longer inputs are truncated. Default 256. */
  maxLength?: number;
  /**
   * How logits become a gain: 'sigmoid' of a single logit (MS MARCO style), 'softmax' taking the LAST class
   * (binary or graded classifiers whose last class is "relevant"), or 'auto' (sigmoid for 1 logit, softmax otherwise).
   */
  activation?: 'auto' | 'sigmoid' | 'softmax';
  /** ONNX variant: 'fp32' (default, onnx/model.onnx), 'q8' (onnx/model_quantized.onnx), … as transformers.js names them. */
  dtype?: string;
}

interface LoadedCrossEncoder {
  tokenizer: (q: string[], opts: Record<string, unknown>) => Record<string, unknown>;
  model: (inputs: Record<string, unknown>) => Promise<{ logits: { dims: number[]; data: ArrayLike<number> } }>;
}

/**
 * A sequence-classification cross-encoder exported to ONNX in a local folder (config.json, tokenizer files,
 * onnx/model.onnx). Loads strictly offline: remote models are disabled and local_files_only is set, so a missing
 * file fails instead of reaching the network.
 */
export class CrossEncoderScorer implements RelevanceScorer {
  private constructor(
    private readonly loaded: LoadedCrossEncoder,
    private readonly options: Required<CrossEncoderOptions>,
    readonly folder: string,
  ) {}

  static async load(folder: string, options: CrossEncoderOptions = {}): Promise<CrossEncoderScorer> {
    const dir = resolve(folder);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new MinielmError('MINIELM_NOT_FOUND', `cross-encoder folder "${dir}" does not exist; point it at an exported ONNX model folder.`);
    }
    if (!existsSync(resolve(dir, 'config.json'))) {
      throw new MinielmError('MINIELM_BAD_FILE', `cross-encoder folder "${dir}" has no config.json; export the model with optimum (task text-classification).`);
    }
    const tf = await import('@huggingface/transformers').catch((err: unknown) => Promise.reject(missingOptionalDependency(err, '@huggingface/transformers', 'The ONNX cross-encoder (CrossEncoderScorer, M1)')));
    tf.env.allowRemoteModels = false;
    tf.env.allowLocalModels = true;
    const opts: Required<CrossEncoderOptions> = {
      batchSize: options.batchSize ?? 32,
      maxLength: options.maxLength ?? 256,
      activation: options.activation ?? 'auto',
      dtype: options.dtype ?? 'fp32',
    };
    try {
      const tokenizer = await tf.AutoTokenizer.from_pretrained(dir, { local_files_only: true });
      const model = await tf.AutoModelForSequenceClassification.from_pretrained(dir, {
        local_files_only: true,
        dtype: opts.dtype as 'fp32',
      });
      return new CrossEncoderScorer(
        { tokenizer: tokenizer as unknown as LoadedCrossEncoder['tokenizer'], model: model as unknown as LoadedCrossEncoder['model'] },
        opts,
        dir,
      );
    } catch (err) {
      throw new MinielmError(
        'MINIELM_BAD_FILE',
        `could not load the cross-encoder in "${dir}" offline: ${(err as Error).message}. ` +
          'It needs config.json, tokenizer.json and onnx/model.onnx (or the file matching --dtype).',
        { cause: err },
      );
    }
  }

  async scoreBatch(pairs: RelevancePair[]): Promise<number[]> {
    const out: number[] = [];
    const { batchSize, maxLength, activation } = this.options;
    for (let start = 0; start < pairs.length; start += batchSize) {
      const chunk = pairs.slice(start, start + batchSize);
      const inputs = this.loaded.tokenizer(
        chunk.map((p) => p.query),
        { text_pair: chunk.map((p) => productText(p.product)), padding: true, truncation: true, max_length: maxLength },
      );
      const { logits } = await this.loaded.model(inputs);
      const [rows, cols] = logits.dims;
      const data = logits.data;
      for (let r = 0; r < rows; r++) {
        const row = Array.from({ length: cols }, (_, c) => Number(data[r * cols + c]));
        out.push(logitsToGain(row, activation));
      }
    }
    return out;
  }
}

function logitsToGain(row: number[], activation: 'auto' | 'sigmoid' | 'softmax'): number {
  const mode = activation === 'auto' ? (row.length === 1 ? 'sigmoid' : 'softmax') : activation;
  if (mode === 'sigmoid') return 1 / (1 + Math.exp(-row[0]));
  const max = Math.max(...row);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return Math.exp(row[row.length - 1] - max) / sum;
}
