// Turns "query <sep> rewrite <eos>" pairs into fixed-shape training batches for the engine: inputs are
// the sequence without its last token, targets the sequence shifted by one, and the loss mask keeps only
// the rewrite and its end-of-sequence (the model learns to rewrite, not to predict queries).
import type { Batch } from '../model/model.ts';
import { invalidArgument } from '../errors.ts';

export interface EncodedExample {
  ids: number[];
  lossMask: number[];
}

export interface PairEncoder {
  encodePair(query: string, rewrite: string): EncodedExample;
  readonly padId: number;
}

/** Encodes pairs, dropping (and counting) those longer than `maxLen` tokens. */
export function encodePairs(tokenizer: PairEncoder, pairs: readonly { query: string; rewrite: string }[], maxLen: number): { examples: EncodedExample[]; dropped: number } {
  const examples: EncodedExample[] = [];
  let dropped = 0;
  for (const p of pairs) {
    const e = tokenizer.encodePair(p.query, p.rewrite);
    if (e.ids.length > maxLen) dropped++;
    else examples.push(e);
  }
  return { examples, dropped };
}

/**
 * Packs examples into one right-padded batch of shape [examples.length, seq], where seq is the longest
 * example minus one (or `fixedSeq`). Padding positions get loss weight 0 and attention mask 0.
 */
export function makeBatch(examples: readonly EncodedExample[], padId: number, fixedSeq?: number): Batch {
  if (examples.length === 0) throw invalidArgument('makeBatch needs at least one example');
  const longest = Math.max(...examples.map((e) => e.ids.length)) - 1;
  const seq = fixedSeq ?? longest;
  if (seq < longest) throw invalidArgument(`an example needs ${longest + 1} tokens but the batch holds ${seq + 1}`);
  const B = examples.length;
  const tokens = new Int32Array(B * seq).fill(padId);
  const targets = new Int32Array(B * seq).fill(padId);
  const lossMask = new Float32Array(B * seq);
  const attentionMask = new Uint8Array(B * seq);
  examples.forEach((e, b) => {
    const n = e.ids.length - 1;
    for (let t = 0; t < n; t++) {
      tokens[b * seq + t] = e.ids[t];
      targets[b * seq + t] = e.ids[t + 1];
      lossMask[b * seq + t] = e.lossMask[t + 1];
      attentionMask[b * seq + t] = 1;
    }
  });
  return { batch: B, seq, tokens, targets, lossMask, attentionMask };
}

/** xorshift32 from a 32-bit state (0 is replaced by 1): a tiny stream whose whole state is the seed, so the
 * trainers can recompute any step's data from (seed, step) alone. Returns integers in [0, 2^32). */
export function xorshift32(seed: number): () => number {
  let s = (seed >>> 0) || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Deterministic shuffled mini-batches for one epoch (a seeded Fisher-Yates over indices). */
export function epochBatches(count: number, batchSize: number, seed: number): number[][] {
  const idx = Array.from({ length: count }, (_, i) => i);
  const next = xorshift32(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor((next() / 2 ** 32) * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  const out: number[][] = [];
  for (let i = 0; i + batchSize <= count; i += batchSize) out.push(idx.slice(i, i + batchSize));
  return out;
}
