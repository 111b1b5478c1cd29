// Catalog pretraining: no pretrained weights can be downloaded here, so before any rewriting a model
// first learns the catalog's language as a causal LM (next-token cross-entropy on every token) over the
// product text and the training-split queries. Documents are packed back to back, each followed by the
// tokenizer's <eos>, into fixed-length rows, so no position is padding; attention runs across document
// boundaries inside a row (as in GPT-2's own pretraining), and the <eos> tells the model where one ends.
// A slice of whole documents is held out for the eval loss. The loop (checkpoints, exact resume, best/,
// Ctrl-C, NaN/Inf) is the one SFT uses; `trainSft({ init: <out>/best })` continues from the result.
import { createRng, shuffleInPlace } from '../data/random.ts';
import { decodeEntities, normaliseSpaces } from '../data/noise.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { EncodedExample } from './batches.ts';
import { trainLoop, type TrainRunOptions, type TrainRunResult } from './loop.ts';
import { invalidArgument } from '../errors.ts';

export interface PretrainOptions extends Omit<TrainRunOptions, 'stepFn'> {
  /** Documents: product texts and training-split queries (see pretrainTexts). */
  texts: readonly string[];
  /** Tokens per training row (default and maximum: the model's n_ctx). */
  seqLen?: number;
  /** Share of documents held out for the eval loss (default 0.05)... */
  evalFraction?: number;
  /** ...but at most this many rows of held-out text (default 256), so an evaluation stays a few seconds. */
  maxEvalRows?: number;
}

export interface PretrainResult extends TrainRunResult {
  documents: number;
  trainTokens: number;
  evalTokens: number;
}

export interface PackedCorpus {
  train: EncodedExample[];
  test: EncodedExample[];
  documents: number;
  trainTokens: number;
  evalTokens: number;
}

/** A product as pretraining reads it (lib/data Product has these fields). */
export interface ProductText {
  title: string;
  brand?: string;
  bullets?: string;
  description?: string;
}

const normaliseQuery = (q: string): string => normaliseSpaces(q).toLowerCase();

/**
 * The pretraining documents: each product's title (with its brand in front when the title lacks it),
 * bullets and description as separate documents, and the queries, minus `heldOutQueries` (the test
 * split's, compared case- and whitespace-insensitively, so no evaluated query is seen in pretraining).
 * HTML entities are decoded; duplicates are dropped. Order is kept (pretraining shuffles with its seed).
 */
export function pretrainTexts(o: { products: Iterable<ProductText>; queries: Iterable<string>; heldOutQueries?: Iterable<string> }): string[] {
  const held = new Set([...(o.heldOutQueries ?? [])].map(normaliseQuery));
  const out = new Set<string>();
  const add = (text: string | undefined): void => {
    const t = text === undefined ? '' : normaliseSpaces(decodeEntities(text));
    if (t) out.add(t);
  };
  for (const p of o.products) {
    const brand = p.brand?.trim();
    add(brand && !p.title.toLowerCase().includes(brand.toLowerCase()) ? `${brand} ${p.title}` : p.title);
    add(p.bullets);
    add(p.description);
  }
  for (const q of o.queries) if (!held.has(normaliseQuery(q))) add(q);
  return [...out];
}

/** Rows of `seqLen + 1` tokens cut from one stream; consecutive rows share one token, so every token is a target once. */
function rows(stream: readonly number[], seqLen: number, ones: number[]): EncodedExample[] {
  const out: EncodedExample[] = [];
  for (let start = 0; start + seqLen + 1 <= stream.length; start += seqLen) out.push({ ids: stream.slice(start, start + seqLen + 1), lossMask: ones });
  return out;
}

/**
 * Tokenises and packs `texts`: a seeded shuffle of the distinct documents, the first ones (up to
 * `evalFraction` of them and `maxEvalRows` rows) held out, each side concatenated as
 * `<eos> doc <eos> doc <eos> ...` and cut into rows. A tail shorter than one row is dropped.
 */
export function packTexts(tokenizer: Pick<Tokenizer, 'encode' | 'eosId'>, texts: readonly string[], seqLen: number, o: { seed: number; evalFraction?: number; maxEvalRows?: number }): PackedCorpus {
  if (!Number.isInteger(seqLen) || seqLen < 2) throw invalidArgument(`seqLen must be an integer >= 2, got ${seqLen}`);
  const evalFraction = o.evalFraction ?? 0.05;
  const maxEvalRows = o.maxEvalRows ?? 256;
  if (!(evalFraction > 0 && evalFraction < 1)) throw invalidArgument(`evalFraction must be in (0, 1), got ${o.evalFraction}`);
  if (!Number.isInteger(maxEvalRows) || maxEvalRows < 1) throw invalidArgument(`maxEvalRows must be a positive integer, got ${o.maxEvalRows}`);
  const docs = shuffleInPlace(createRng(o.seed ^ 0x9e3779b9), [...new Set(texts.map(normaliseSpaces).filter((t) => t.length > 0))]);
  if (docs.length < 2) throw invalidArgument(`pretraining needs at least 2 distinct non-empty texts (one is held out for the eval loss), got ${docs.length}`);
  const ones = new Array<number>(seqLen + 1).fill(1);
  const maxEvalDocs = Math.max(1, Math.floor(docs.length * evalFraction));
  const evalStream: number[] = [tokenizer.eosId];
  let d = 0;
  // Whole documents go to the held-out side until either limit is reached (+1: rows overlap by a token).
  while (d < maxEvalDocs && evalStream.length < maxEvalRows * seqLen + 1) evalStream.push(...tokenizer.encode(docs[d++]), tokenizer.eosId);
  const trainStream: number[] = [tokenizer.eosId];
  for (; d < docs.length; d++) {
    for (const id of tokenizer.encode(docs[d])) trainStream.push(id);
    trainStream.push(tokenizer.eosId);
  }
  const test = rows(evalStream, seqLen, ones).slice(0, maxEvalRows);
  if (test.length === 0) throw invalidArgument(`the held-out ${maxEvalDocs} document(s) have ${evalStream.length} tokens, less than one row of ${seqLen + 1}; raise evalFraction or lower seqLen`);
  const train = rows(trainStream, seqLen, ones);
  return { train, test, documents: docs.length, trainTokens: train.length * seqLen, evalTokens: test.length * seqLen };
}

export async function trainPretrain(o: PretrainOptions): Promise<PretrainResult> {
  let packed: PackedCorpus | undefined;
  const r = await trainLoop({
    ...o,
    label: o.label ?? 'pretrain',
    data: (model) => {
      const seqLen = o.seqLen ?? model.config.n_ctx;
      if (!Number.isInteger(seqLen) || seqLen < 2 || seqLen > model.config.n_ctx)
        throw invalidArgument(`seqLen must be an integer in [2, n_ctx = ${model.config.n_ctx}], got ${o.seqLen}`);
      packed = packTexts(o.tokenizer, o.texts, seqLen, { seed: o.seed, evalFraction: o.evalFraction, maxEvalRows: o.maxEvalRows });
      if (packed.train.length < o.batchSize)
        throw invalidArgument(`the texts make only ${packed.train.length} training rows of ${seqLen} tokens; need at least one batch of ${o.batchSize} (add text or lower batchSize)`);
      return {
        train: packed.train,
        test: packed.test,
        info: { documents: packed.documents, seq_len: seqLen, train_rows: packed.train.length, train_tokens: packed.trainTokens, eval_tokens: packed.evalTokens },
        resumeKey: { seqLen, trainTokens: packed.trainTokens },
      };
    },
  });
  return { ...r, documents: packed?.documents ?? 0, trainTokens: packed?.trainTokens ?? 0, evalTokens: packed?.evalTokens ?? 0 };
}
