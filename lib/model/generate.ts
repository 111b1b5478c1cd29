// Batched generation with a KV cache: greedy, sampling (temperature / top-k / top-p, seeded) and beam
// search (n-best, length penalty, EOS). Inputs are checked here and name the prompt or option at fault;
// the work runs in C++ off the main thread and never overlaps another job on the same model.
import { MinielmError, describeValue, fromNative, invalidArgument } from '../errors.ts';
import { native, type NativeGenerateOptions, type NativeWordConstraint } from '../native.ts';
import { Model, cancelNativeJob, withNativeHandle } from './model.ts';

export type DecodingStrategy = 'greedy' | 'sample' | 'beam';

export interface GenerateOptions {
  /** Default: 'beam' when numBeams > 1, 'sample' when a sampling option is set, else 'greedy'. */
  strategy?: DecodingStrategy;
  /** New tokens per sequence at most (prompt length + maxNewTokens must fit in n_ctx). */
  maxNewTokens: number;
  /** Ends a sequence (included in its tokens); omit for none. */
  eosTokenId?: number;
  /** Sampling: softmax temperature (> 0). Default 1. */
  temperature?: number;
  /** Sampling: keep the k most likely tokens (0 = off). Applied after the temperature. */
  topK?: number;
  /** Sampling: keep the smallest set of most likely tokens holding this much mass, in (0, 1]. */
  topP?: number;
  /** Sampling: same seed, same samples, whatever the thread count or the batch around a prompt. */
  seed?: number;
  /** Beam search width. */
  numBeams?: number;
  /** Sequences per prompt: samples, or the best hypotheses of beam search (<= numBeams). Default 1. */
  numReturnSequences?: number;
  /** Beam score = logprob / length^lengthPenalty, length counting the new tokens (EOS included). Default 1. */
  lengthPenalty?: number;
  /** Per-token log-probabilities in each Generation. */
  tokenLogprobs?: boolean;
  /** Raw logits of every step, [tokens.length * vocab] (greedy and sampling only). */
  logits?: boolean;
  /**
   * 'bf16': run the matrices from a bf16 copy of the weights made for this call (fp32 arithmetic, half the
   * weight bytes per step; logits move by ~1e-2, so results are close to, not identical to, 'fp32').
   */
  weights?: 'fp32' | 'bf16';
  /** Stops the decode between two steps; the call rejects with MINIELM_ABORTED. */
  signal?: AbortSignal;
  // Rewrite hygiene (off by default here; lib/rewrite turns it on for rewriting). Each looks at the new
  // tokens only, never the prompt, so a rewrite may repeat the query's words. Sampling draws from and beam
  // search ranks by the processed distribution; logprob and tokenLogprobs stay the raw model's.
  /** Ban a token that would complete an n-gram already among the new tokens (0 = off). */
  noRepeatNgramSize?: number;
  /** CTRL penalty on tokens already generated: logit / p when positive, logit * p otherwise (1 = off). */
  repetitionPenalty?: number;
  /** The EOS token is masked until this many tokens have been generated (0 = off). */
  minNewTokens?: number;
  /** Every generated word must be a word of this list (see createWordConstraint). */
  wordConstraint?: WordConstraint;
}

/**
 * A word list compiled against a tokenizer's tokens: with it, decoding can only spell words of the list
 * (partial words included: a token that starts a word no listed word starts is masked).
 */
export class WordConstraint {
  readonly #native: NativeWordConstraint;
  private constructor(n: NativeWordConstraint) {
    this.#native = n;
  }

  /**
   * tokenBytes[t]: the bytes token t stands for (special tokens: anything); special: ids of special tokens
   * (never generated under the constraint, except the end-of-sequence token after a whole word).
   */
  static async create(tokenBytes: readonly Uint8Array[], special: Iterable<number>, words: Iterable<string>): Promise<WordConstraint> {
    if (!Array.isArray(tokenBytes) || tokenBytes.length === 0) throw invalidArgument('createWordConstraint needs the byte string of every token');
    if (!isIterable(special)) throw invalidArgument(`special must be an iterable of token ids (e.g. an array), got ${describeValue(special)}`);
    if (!isIterable(words) || typeof words === 'string') throw invalidArgument(`words must be an iterable of strings (e.g. an array), got ${describeValue(words)}`);
    const tokens = packBytes(tokenBytes);
    const flags = new Uint8Array(tokenBytes.length);
    for (const id of special) {
      if (!isInt(id) || id < 0 || id >= tokenBytes.length) throw invalidArgument(`special token id ${describeValue(id)} is outside [0, ${tokenBytes.length})`);
      flags[id] = 1;
    }
    const enc = new TextEncoder();
    const list: Uint8Array[] = [];
    for (const w of words) {
      if (typeof w !== 'string') throw invalidArgument(`words must be strings, got ${describeValue(w)}`);
      if (/\s/.test(w)) throw invalidArgument(`the word ${describeValue(w)} contains whitespace: pass single words`);
      if (w.length) list.push(enc.encode(w));
    }
    if (list.length === 0) throw invalidArgument('createWordConstraint needs at least one word');
    const wordsPacked = packBytes(list);
    return new WordConstraint(await native.createWordConstraint(tokens.bytes, tokens.offsets, flags, wordsPacked.bytes, wordsPacked.offsets));
  }

  get vocabSize(): number {
    return this.#native.vocabSize();
  }
  /** Distinct words in the list. */
  get words(): number {
    return this.#native.numWords();
  }
  /** The decoding state after `token` from `state` (0 = between words), or -1 when it leaves the list. */
  step(state: number, token: number): number {
    try {
      return this.#native.step(state, token);
    } catch (err) {
      throw fromNative(err);
    }
  }
  /** The tokens allowed from `state`, and whether the text may end there. */
  allowed(state: number): { tokens: number[]; canEnd: boolean } {
    try {
      const a = this.#native.allowed(state);
      return { tokens: Array.from(a.tokens), canEnd: a.canEnd };
    } catch (err) {
      throw fromNative(err);
    }
  }
  /** @internal */
  get handle(): NativeWordConstraint {
    return this.#native;
  }
}

function isIterable(x: unknown): x is Iterable<unknown> {
  return x !== null && x !== undefined && typeof (x as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

function packBytes(list: readonly Uint8Array[]): { bytes: Uint8Array; offsets: Int32Array } {
  let total = 0;
  for (const b of list) {
    if (!(b instanceof Uint8Array)) throw invalidArgument('token and word byte strings must be Uint8Arrays');
    total += b.length;
  }
  const bytes = new Uint8Array(total);
  const offsets = new Int32Array(list.length + 1);
  let at = 0;
  list.forEach((b, i) => {
    bytes.set(b, at);
    at += b.length;
    offsets[i + 1] = at;
  });
  return { bytes, offsets };
}

/** Bounds shared with the native layer (native/decode/decoder.h). */
export const MAX_BEAMS = 1024;
export const MAX_RETURN_SEQUENCES = 65536;

export interface Generation {
  /** New token ids (the EOS token included when it ended the sequence). */
  tokens: number[];
  /** Sum of log p(token) under the model (log-softmax of the raw logits, no temperature or truncation). */
  logprob: number;
  /** Beam search: logprob / length^lengthPenalty; otherwise equal to logprob. */
  score: number;
  finishReason: 'eos' | 'length';
  tokenLogprobs?: number[];
  logits?: Float32Array;
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** Checks prompts and options against the model config; returns the native options. */
export function validateGenerate(config: Model['config'], prompts: number[][], options: GenerateOptions): NativeGenerateOptions {
  if (!Array.isArray(prompts) || prompts.length === 0) throw invalidArgument('generate needs a non-empty array of prompts (arrays of token ids)');
  if (!options || typeof options !== 'object') throw invalidArgument('generate needs options with at least maxNewTokens');
  const o = options;
  if (!isInt(o.maxNewTokens) || o.maxNewTokens < 1) throw invalidArgument(`maxNewTokens must be an integer >= 1, got ${describeValue(o.maxNewTokens)}`);
  const V = config.vocab_size;
  prompts.forEach((p, i) => {
    if (!Array.isArray(p)) throw invalidArgument(`prompt ${i} must be an array of token ids`);
    if (p.length === 0) throw invalidArgument(`prompt ${i} is empty: every prompt needs at least one token (e.g. a BOS or separator id)`);
    if (p.length + o.maxNewTokens > config.n_ctx)
      throw invalidArgument(`prompt ${i} has ${p.length} tokens; with maxNewTokens = ${o.maxNewTokens} it needs ${p.length + o.maxNewTokens} positions but the model context n_ctx is ${config.n_ctx}: shorten the prompt or lower maxNewTokens`);
    for (let k = 0; k < p.length; k++)
      if (!isInt(p[k]) || p[k] < 0 || p[k] >= V) throw invalidArgument(`prompt ${i} token ${k} = ${describeValue(p[k])} is not a token id in [0, ${V})`);
  });
  if (o.eosTokenId !== undefined && (!isInt(o.eosTokenId) || o.eosTokenId < 0 || o.eosTokenId >= V))
    throw invalidArgument(`eosTokenId must be a token id in [0, ${V}), got ${describeValue(o.eosTokenId)}`);
  if (o.temperature !== undefined && (typeof o.temperature !== 'number' || !Number.isFinite(o.temperature) || !(o.temperature > 0)))
    throw invalidArgument(`temperature must be a finite number > 0, got ${describeValue(o.temperature)}`);
  if (o.topK !== undefined && (!isInt(o.topK) || o.topK < 0)) throw invalidArgument(`topK must be an integer >= 0, got ${describeValue(o.topK)}`);
  if (o.topP !== undefined && (typeof o.topP !== 'number' || !(o.topP > 0 && o.topP <= 1)))
    throw invalidArgument(`topP must be in (0, 1], got ${describeValue(o.topP)}`);
  if (o.seed !== undefined && (!Number.isSafeInteger(o.seed) || o.seed < 0)) throw invalidArgument(`seed must be a non-negative integer, got ${describeValue(o.seed)}`);
  if (o.numBeams !== undefined && (!isInt(o.numBeams) || o.numBeams < 1 || o.numBeams > MAX_BEAMS))
    throw invalidArgument(`numBeams must be an integer in [1, ${MAX_BEAMS}], got ${describeValue(o.numBeams)}`);
  const n = o.numReturnSequences ?? 1;
  if (!isInt(n) || n < 1 || n > MAX_RETURN_SEQUENCES) throw invalidArgument(`numReturnSequences must be an integer in [1, ${MAX_RETURN_SEQUENCES}], got ${describeValue(n)}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw invalidArgument('signal must be an AbortSignal');
  if (o.lengthPenalty !== undefined && (typeof o.lengthPenalty !== 'number' || !Number.isFinite(o.lengthPenalty)))
    throw invalidArgument(`lengthPenalty must be a finite number, got ${describeValue(o.lengthPenalty)}`);
  const sampling = o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined || o.seed !== undefined;
  const strategy: DecodingStrategy = o.strategy ?? ((o.numBeams ?? 1) > 1 ? 'beam' : sampling || n > 1 ? 'sample' : 'greedy');
  if (!['greedy', 'sample', 'beam'].includes(strategy)) throw invalidArgument(`strategy must be 'greedy', 'sample' or 'beam', got ${describeValue(strategy)}`);
  const numBeams = o.numBeams ?? 1;
  if (strategy === 'beam' && n > numBeams) throw invalidArgument(`numReturnSequences (${n}) must be <= numBeams (${numBeams})`);
  if (strategy === 'greedy' && n !== 1) throw invalidArgument(`greedy decoding returns one sequence per prompt; use strategy 'sample' or 'beam' for numReturnSequences = ${n}`);
  if (strategy === 'beam' && o.logits) throw invalidArgument('logits: true is available for greedy decoding and sampling only');
  if (strategy !== 'beam' && numBeams > 1) throw invalidArgument(`numBeams = ${numBeams} needs strategy 'beam'`);
  if (o.weights !== undefined && o.weights !== 'fp32' && o.weights !== 'bf16') throw invalidArgument(`weights must be 'fp32' or 'bf16', got ${describeValue(o.weights)}`);
  if (o.noRepeatNgramSize !== undefined && (!isInt(o.noRepeatNgramSize) || o.noRepeatNgramSize < 0 || o.noRepeatNgramSize > config.n_ctx))
    throw invalidArgument(`noRepeatNgramSize must be an integer in [0, n_ctx = ${config.n_ctx}], got ${describeValue(o.noRepeatNgramSize)}`);
  if (o.repetitionPenalty !== undefined && (typeof o.repetitionPenalty !== 'number' || !Number.isFinite(o.repetitionPenalty) || !(o.repetitionPenalty > 0)))
    throw invalidArgument(`repetitionPenalty must be a finite number > 0 (1 = off), got ${describeValue(o.repetitionPenalty)}`);
  if (o.minNewTokens !== undefined && (!isInt(o.minNewTokens) || o.minNewTokens < 0 || o.minNewTokens > o.maxNewTokens))
    throw invalidArgument(`minNewTokens must be an integer in [0, maxNewTokens = ${o.maxNewTokens}], got ${describeValue(o.minNewTokens)}`);
  if (o.wordConstraint !== undefined && !(o.wordConstraint instanceof WordConstraint)) throw invalidArgument('wordConstraint must be made by WordConstraint.create');
  if (o.wordConstraint && o.wordConstraint.vocabSize !== V)
    throw invalidArgument(`the word constraint was built for ${o.wordConstraint.vocabSize} tokens but the model's vocabulary has ${V}: build it from this model's tokenizer`);
  return {
    strategy,
    maxNewTokens: o.maxNewTokens,
    eosTokenId: o.eosTokenId ?? -1,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? 0,
    numBeams,
    numReturnSequences: n,
    lengthPenalty: o.lengthPenalty ?? 1,
    tokenLogprobs: o.tokenLogprobs === true,
    logits: o.logits === true,
    weights: o.weights ?? 'fp32',
    noRepeatNgramSize: o.noRepeatNgramSize ?? 0,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    minNewTokens: o.minNewTokens ?? 0,
    ...(o.wordConstraint ? { wordConstraint: o.wordConstraint.handle } : {}),
  };
}

/**
 * Continues each prompt: one list per prompt of numReturnSequences generations (beam search: the best
 * hypotheses, best first). Prompts may have different lengths; each is decoded exactly as if alone.
 */
export async function generate(model: Model, prompts: number[][], options: GenerateOptions): Promise<Generation[][]> {
  if (!(model instanceof Model)) throw invalidArgument(`generate needs a Model (Model.create or Model.load) as its first argument, got ${describeValue(model)}`);
  const opts = validateGenerate(model.config, prompts, options);
  const native32 = prompts.map((p) => Int32Array.from(p));
  const signal = options.signal;
  const aborted = (): MinielmError => new MinielmError('MINIELM_ABORTED', 'generate was aborted by its AbortSignal', { cause: signal?.reason });
  if (signal?.aborted) throw aborted();
  const raw = await withNativeHandle(model, async (handle) => {
    // Queued behind other jobs on this model: the signal may have fired while waiting.
    if (signal?.aborted) throw aborted();
    const onAbort = (): void => cancelNativeJob(model);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await native.generate(handle, native32, opts);
    } catch (err) {
      if (signal?.aborted && err instanceof MinielmError && err.code === 'MINIELM_ABORTED') throw aborted();
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  });
  return raw.map((list) =>
    list.map((g) => {
      const out: Generation = {
        tokens: Array.from(g.tokens),
        logprob: g.logprob,
        score: g.score,
        finishReason: g.eos ? 'eos' : 'length',
      };
      if (g.tokenLogprobs) out.tokenLogprobs = Array.from(g.tokenLogprobs);
      if (g.logits) out.logits = g.logits;
      return out;
    }),
  );
}
