// The rewriter a Node service embeds: load a trained folder once, then rewrite queries concurrently.
// Concurrent calls with the same decoding options are micro-batched into one native decode (the decoder
// runs prompts of different lengths, and seeded samples, exactly as it would alone, so batching changes
// speed, never results); a bounded queue refuses instead of growing; an LRU cache answers repeats.
import { MinielmError, invalidArgument } from '../errors.ts';
import { native } from '../native.ts';
import { Model, resolveDevice, type Device } from '../model/model.ts';
import { generate, MAX_BEAMS, type GenerateOptions, type Generation, type WordConstraint } from '../model/generate.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { promptIds, rewriteText } from '../rewrite/format.ts';
import { catalogWordConstraint, catalogWords, DEFAULT_HYGIENE, type RewriteHygiene } from '../rewrite/hygiene.ts';
import type { Retriever } from '../retrieval/types.ts';
import { LruCache } from './lru.ts';
import { Bandit, type ArmPosterior, type BanditOptions } from './bandit.ts';
import { DEFAULT_FRESH_CANDIDATES, DEFAULT_FRESH_WEIGHT, DEFAULT_RELEVANCE_CANDIDATES, DEFAULT_RELEVANCE_RANK_WEIGHT, selectByScorer, selectFresh } from '../rewrite/select.ts';
import type { RelevanceScorer } from '../rewards/relevance.ts';
import { DEFAULT_FEEDBACK_CANDIDATES, DEFAULT_FEEDBACK_DEPTH, DEFAULT_FEEDBACK_WEIGHT, FeedbackExpander } from '../rewrite/feedback.ts';
import { resolveDir } from '../util/atomic.ts';

export interface RewriterOptions {
  /**
   * Weights the decoder reads: 'fp32'; 'bf16' (half the bytes per step; on CPUs with Intel AMX the matrix
   * products run on AMX tiles, about twice as fast, results move slightly); 'auto' (default): 'bf16' where
   * native.decodeBf16Isa() is 'amx', else 'fp32' (without AMX bf16 is slower). On Home Depot the bf16 rewrites
   * scored the same dev judged recall and probe passes as fp32. settings.weights says which was chosen.
   */
  weights?: 'fp32' | 'bf16' | 'auto';
  /** Where the model decodes: 'cpu' (default) or a CUDA GPU ('cuda', 'cuda:N'; bf16 on the device). Rewriter.load only. */
  device?: Device;
  /** Native threads. Process-wide: the engine has one thread pool. Default: left as it is (all cores). */
  threads?: number;
  /** Sequences (requests x n) one native decode may hold; a request larger than this runs alone. Default 256. */
  maxBatch?: number;
  /** How long the first waiting request holds the decoder back for others to join, in ms. Default 2. */
  maxWaitMs?: number;
  /** Cached rewrite lists (entries; 0 = no cache). Default 4096. */
  cacheSize?: number;
  /** Requests that may wait for the decoder; more are refused with MINIELM_OVERLOADED. Default 1024. */
  queueLimit?: number;
  /** Decoding hygiene: fields override DEFAULT_HYGIENE; false turns it off. Default DEFAULT_HYGIENE. */
  hygiene?: Partial<RewriteHygiene> | false;
  /** Texts (product titles, logged queries) whose words are the only words a rewrite may use (a rewrite cut off
   * by maxNewTokens loses a trailing partial word). Default: any word. */
  words?: Iterable<string>;
  /** Tokens per rewrite at most. Default 16. */
  maxNewTokens?: number;
  /** The bandit expand({ select: 'bandit' }) and feedback() use: a Bandit (the caller's), or options for one the
   * rewriter opens (with stateFile: loaded from it when it exists, saved there after every feedback). */
  bandit?: Bandit | BanditOptions;
}

export interface RewriteOptions {
  /** Rewrites asked for; fewer come back when some decode to the same text or to the query. Default 10. */
  n?: number;
  /** 'beam' (default): the n best beams; 'sample': n seeded samples. */
  strategy?: 'beam' | 'sample';
  /** Sampling only: softmax temperature (> 0). Default 1. */
  temperature?: number;
  /** Sampling only: nucleus mass in (0, 1]. Default 1. */
  topP?: number;
  /** Sampling only: the same seed gives the same samples, whatever else is batched with them. Default 1. */
  seed?: number;
  /** Drops the request while it waits for the decoder; rejects with MINIELM_ABORTED. */
  signal?: AbortSignal;
  /** Keep a rewrite equal to the query (compared trimmed and lower-cased). Default false. */
  includeQuery?: boolean;
}

export interface Rewrite {
  /** Whitespace-trimmed and collapsed, as the model spelled it. */
  text: string;
  /** Sum of the token log-probabilities under the model (the end-of-sequence token included); 0 for a
   * feedback rewrite, which no model scored. */
  logprob: number;
  /** 'feedback' for a pseudo-relevance-feedback rewrite of expand({ source }); absent for the model's. */
  source?: 'feedback';
}

export interface ExpandOptions extends Omit<RewriteOptions, 'includeQuery'> {
  /** Products retrieved per text (the query and each rewrite). Default 10. */
  k?: number;
  /** 'rrf' (default): reciprocal rank fusion; 'interleave': round robin, the query's list first. */
  merge?: 'rrf' | 'interleave';
  /** Merged products returned at most. Default: all. */
  limit?: number;
  /** Which rewrites go to the engine: 'all' (default), 'top' (the `send` best-ranked), 'bandit' (`send` chosen by
   * Thompson sampling on click feedback; needs the rewriter's bandit option) or 'fresh' (the `send` that bring the
   * most products the query's own top k and the rewrites chosen before lack, lib/rewrite/select.ts; with 'fresh',
   * n defaults to 30 candidates) or 'relevance' (the `send` whose new results `relevance.scorer` rates most
   * relevant to the query, lib/rewrite/select.ts selectRelevant; n defaults to 60 candidates). */
  select?: 'all' | 'top' | 'bandit' | 'fresh' | 'relevance';
  /** Rewrites sent to the engine with select 'top', 'bandit' (default 3), 'fresh' or 'relevance' (default 10). */
  send?: number;
  /**
   * select 'relevance': a relevance scorer (e.g. LearnedRelevanceScorer.load(dir)), the title of a result id, and
   * the weight of the candidates' rank against predicted relevance (default 0.1, chosen on Home Depot's dev split).
   */
  relevance?: { scorer: RelevanceScorer; titleOf: (id: string) => string | undefined; rankWeight?: number };
  /** select 'fresh': weight of the share of new results against the candidates' rank. Default 2 (4 with
   * source 'feedback', as chosen on the dev split). */
  freshWeight?: number;
  /** Where the candidate rewrites come from: 'model' (default), 'feedback' (pseudo-relevance feedback, the query
   * plus one word its own top results share: lib/rewrite/feedback.ts; needs `feedback`) or 'both' (the model's,
   * then the feedback ones). On Home Depot's test split 'feedback' with select 'fresh' (50 candidates, weight 4)
   * reached judged recall 0.59 against 0.39 for the model's (docs/results/homedepot-v6-feedback.md). */
  source?: 'model' | 'feedback' | 'both';
  /** The catalog's word statistics for source 'feedback' / 'both': new FeedbackExpander(products). */
  feedback?: FeedbackExpander;
  /** Feedback candidates (default: n, or 50 with select 'fresh') and the query results that vote (default 20). */
  feedbackCount?: number;
  feedbackDepth?: number;
}

/** One impression's outcome for a rewrite expand({ select: 'bandit' }) sent: clicked = a product it brought was clicked. */
export interface RewriteFeedback {
  query: string;
  /** The rewrite's text, as in expansion.rewrites. */
  rewrite: string;
  clicked: boolean;
}

/** How expand() chose the rewrites it sent (absent for select 'all'). */
export interface RewriteSelection {
  strategy: 'top' | 'bandit' | 'fresh' | 'relevance';
  /** Every rewrite decoded, best first; expansion.rewrites are the ones sent, in this order. */
  candidates: Rewrite[];
  /** 'bandit': the Thompson draw of each candidate. */
  samples?: number[];
}

/** A list that retrieved a product: the query's own, or a rewrite's. */
export interface ProductSource {
  text: string;
  /** True for the query itself. */
  query: boolean;
  /** 1-based rank of the product in that text's results. */
  rank: number;
}

export interface ExpandedProduct {
  id: string;
  /** Reciprocal rank fusion score, sum over the lists of 1 / (60 + rank) (for either merge). */
  score: number;
  /** Every list that retrieved it, the query's first: which rewrite (or the query) brought it. */
  from: ProductSource[];
}

export interface Expansion {
  query: string;
  /** The rewrites whose lists were retrieved (with select 'top' / 'bandit': the ones sent). */
  rewrites: Rewrite[];
  products: ExpandedProduct[];
  selection?: RewriteSelection;
}

export interface RewriterStats {
  /** Queries asked for (cache hits included). */
  requests: number;
  cacheHits: number;
  cacheMisses: number;
  cacheEntries: number;
  /** Requests waiting for the decoder now. */
  queued: number;
  /** Sequences in the native decode now. */
  running: number;
  /** Native decodes run, and the requests and sequences they held. */
  batches: number;
  batchedRequests: number;
  batchedSequences: number;
  /** Requests refused because the queue was full. */
  overloaded: number;
  /** Requests dropped by their AbortSignal. */
  aborted: number;
}

/** What one native decode held and how long it took. */
export interface BatchInfo {
  requests: number;
  sequences: number;
  ms: number;
}

/** The option values a Rewriter runs with (defaults filled in). */
export interface RewriterSettings {
  weights: 'fp32' | 'bf16';
  maxBatch: number;
  maxWaitMs: number;
  cacheSize: number;
  queueLimit: number;
  hygiene: RewriteHygiene | null;
  maxNewTokens: number;
  wordConstraint: boolean;
}

/** The decoding a request asks for; requests with the same key share a native decode. */
interface Decoding {
  strategy: 'beam' | 'sample';
  n: number;
  temperature: number;
  topP: number;
  seed: number;
  key: string;
}

interface Job {
  prompt: number[];
  decoding: Decoding;
  enqueuedAt: number;
  settled: boolean;
  batch: RunningBatch | null;
  resolve(generations: Generation[]): void;
  reject(err: unknown): void;
  detach(): void;
}

interface RunningBatch {
  jobs: Job[];
  sequences: number;
  controller: AbortController;
}

const LOAD_OPTIONS = ['weights', 'device', 'threads', 'maxBatch', 'maxWaitMs', 'cacheSize', 'queueLimit', 'hygiene', 'words', 'maxNewTokens', 'bandit'];
const REWRITE_OPTIONS = ['n', 'strategy', 'temperature', 'topP', 'seed', 'signal', 'includeQuery'];
const EXPAND_OPTIONS = ['n', 'strategy', 'temperature', 'topP', 'seed', 'signal', 'k', 'merge', 'limit', 'select', 'send', 'freshWeight', 'source', 'feedback', 'feedbackCount', 'feedbackDepth', 'relevance'];
const FEEDBACK_KEYS = ['query', 'rewrite', 'clicked'];
const HYGIENE_KEYS = ['noRepeatNgramSize', 'repetitionPenalty', 'minNewTokens'] as const;
const SAMPLING_ONLY = ['temperature', 'topP', 'seed'] as const;
/** Reciprocal rank fusion's constant (Cormack et al. 2009): damps the weight of the very first ranks. */
const RRF_K = 60;
/** Products one text may retrieve in expand(). */
const MAX_K = 1000;

/** Trimmed, whitespace collapsed: the form a query is decoded and cached under. */
function collapse(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/** The form two texts are compared in (dedupe, leaving the query out). */
function sameText(text: string): string {
  return collapse(text).toLowerCase();
}

/** An invalid option: a MinielmError (MINIELM_INVALID_ARGUMENT) that also names the option, e.g. for an HTTP 400's field. */
export class InvalidOptionError extends MinielmError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('MINIELM_INVALID_ARGUMENT', message);
    this.option = option;
  }
}

function optionError(option: string, message: string): InvalidOptionError {
  return new InvalidOptionError(option, message);
}

function checkKeys(where: string, options: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw invalidArgument(`${where} options must be an object, got ${options === null ? 'null' : typeof options}`);
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw optionError(key, `${where}: unknown option "${key}"; the options are ${allowed.join(', ')}`);
  }
  return options as Record<string, unknown>;
}

function intOption(name: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw optionError(name, `${name} must be an integer in [${min}, ${max}], got ${describe(value)}`);
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function validateLoadOptions(options: RewriterOptions | undefined): { settings: RewriterSettings; threads?: number; words?: string[]; bandit?: Bandit | BanditOptions; device?: Device } {
  const o = checkKeys('Rewriter.load', options, LOAD_OPTIONS) as RewriterOptions;
  if (o.device !== undefined && (typeof o.device !== 'string' || !/^(cpu|cuda(:\d{1,4})?)$/.test(o.device)))
    throw optionError('device', `device must be 'cpu', 'cuda' or 'cuda:N', got ${describe(o.device)}`);
  if (o.device !== undefined) resolveDevice(o.device, 'Rewriter.load options.device');
  if (o.weights !== undefined && o.weights !== 'fp32' && o.weights !== 'bf16' && o.weights !== 'auto')
    throw optionError('weights', `weights must be 'fp32', 'bf16' or 'auto', got ${describe(o.weights)}`);
  const threads = o.threads === undefined ? undefined : intOption('threads', o.threads, 1, 1024, 1);
  if (o.maxWaitMs !== undefined && (typeof o.maxWaitMs !== 'number' || !Number.isFinite(o.maxWaitMs) || o.maxWaitMs < 0 || o.maxWaitMs > 10_000))
    throw optionError('maxWaitMs', `maxWaitMs must be a number of milliseconds in [0, 10000], got ${describe(o.maxWaitMs)}`);
  let hygiene: RewriteHygiene | null = DEFAULT_HYGIENE;
  if (o.hygiene === false) hygiene = null;
  else if (o.hygiene !== undefined) {
    const h = checkKeys('hygiene', o.hygiene, HYGIENE_KEYS) as Partial<RewriteHygiene>;
    hygiene = { ...DEFAULT_HYGIENE, ...h };
    if (!Number.isInteger(hygiene.noRepeatNgramSize) || hygiene.noRepeatNgramSize < 0)
      throw optionError('hygiene.noRepeatNgramSize', `hygiene.noRepeatNgramSize must be an integer >= 0 (0 = off), got ${describe(h.noRepeatNgramSize)}`);
    if (typeof hygiene.repetitionPenalty !== 'number' || !Number.isFinite(hygiene.repetitionPenalty) || !(hygiene.repetitionPenalty > 0))
      throw optionError('hygiene.repetitionPenalty', `hygiene.repetitionPenalty must be a finite number > 0 (1 = off), got ${describe(h.repetitionPenalty)}`);
    if (!Number.isInteger(hygiene.minNewTokens) || hygiene.minNewTokens < 0)
      throw optionError('hygiene.minNewTokens', `hygiene.minNewTokens must be an integer >= 0 (0 = off), got ${describe(h.minNewTokens)}`);
  }
  let words: string[] | undefined;
  if (o.words !== undefined) {
    if (o.words === null || typeof o.words === 'string' || typeof (o.words as Iterable<string>)[Symbol.iterator] !== 'function')
      throw optionError('words', 'words must be an iterable of texts (product titles, queries) whose words rewrites may use, e.g. an array of strings');
    words = [...o.words];
    words.forEach((w, i) => {
      if (typeof w !== 'string') throw optionError(`words[${i}]`, `words[${i}] must be a string, got ${describe(w)}`);
    });
    if (!words.some((w) => w.trim().length > 0)) throw optionError('words', 'words holds no word: pass the catalog titles or queries, or leave words out');
  }
  const settings: RewriterSettings = {
    weights: o.weights === 'fp32' || o.weights === 'bf16' ? o.weights : native.decodeBf16Isa() === 'amx' ? 'bf16' : 'fp32',
    maxBatch: intOption('maxBatch', o.maxBatch, 1, 65536, 256),
    maxWaitMs: o.maxWaitMs ?? 2,
    cacheSize: intOption('cacheSize', o.cacheSize, 0, 10_000_000, 4096),
    queueLimit: intOption('queueLimit', o.queueLimit, 1, 10_000_000, 1024),
    hygiene,
    maxNewTokens: intOption('maxNewTokens', o.maxNewTokens, 1, 4096, 16),
    wordConstraint: words !== undefined,
  };
  if (o.bandit !== undefined && !(o.bandit instanceof Bandit) && (o.bandit === null || typeof o.bandit !== 'object' || Array.isArray(o.bandit)))
    throw optionError('bandit', `bandit must be a Bandit or its options ({ stateFile, seed, maxArms, priorWeight, basePrior }), got ${describe(o.bandit)}`);
  return { settings, threads, words, bandit: o.bandit, device: o.device };
}

function validateDecoding(o: RewriteOptions | ExpandOptions): Decoding {
  const strategy = o.strategy ?? 'beam';
  if (strategy !== 'beam' && strategy !== 'sample') throw optionError('strategy', `strategy must be 'beam' or 'sample', got ${describe(strategy)}`);
  const n = intOption('n', o.n, 1, MAX_BEAMS, 10);
  if (strategy === 'beam') {
    for (const name of SAMPLING_ONLY) if (o[name] !== undefined) throw optionError(name, `${name} applies to strategy 'sample' only; leave it out for 'beam' or set strategy: 'sample'`);
  }
  if (o.temperature !== undefined && (typeof o.temperature !== 'number' || !Number.isFinite(o.temperature) || !(o.temperature > 0) || o.temperature > 100))
    throw optionError('temperature', `temperature must be a number in (0, 100], got ${describe(o.temperature)}`);
  if (o.topP !== undefined && (typeof o.topP !== 'number' || !(o.topP > 0 && o.topP <= 1))) throw optionError('topP', `topP must be a number in (0, 1], got ${describe(o.topP)}`);
  if (o.seed !== undefined && (typeof o.seed !== 'number' || !Number.isSafeInteger(o.seed) || o.seed < 0)) throw optionError('seed', `seed must be a non-negative integer, got ${describe(o.seed)}`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw optionError('signal', 'signal must be an AbortSignal');
  const temperature = o.temperature ?? 1, topP = o.topP ?? 1, seed = o.seed ?? 1;
  const key = strategy === 'beam' ? `beam:${n}` : `sample:${n}:${temperature}:${topP}:${seed}`;
  return { strategy, n, temperature, topP, seed, key };
}

function abortError(signal: AbortSignal | undefined): MinielmError {
  return new MinielmError('MINIELM_ABORTED', 'the rewrite was aborted by its AbortSignal', { cause: signal?.reason });
}

function closedError(): MinielmError {
  return new MinielmError('MINIELM_ABORTED', 'the rewriter was closed: load a new one (Rewriter.load) to rewrite again');
}

/** A retriever's answer checked: one id list per text, else an error naming what came back. */
function checkLists(lists: unknown, count: number): string[][] {
  if (!Array.isArray(lists) || lists.length !== count || lists.some((l) => !Array.isArray(l)))
    throw invalidArgument(`the retriever returned ${Array.isArray(lists) ? `${lists.length} lists` : describe(lists)} for ${count} texts; search must return one id list per text`);
  return lists as string[][];
}

export class Rewriter {
  readonly settings: Readonly<RewriterSettings>;
  readonly #model: Model;
  readonly #tokenizer: Tokenizer;
  readonly #ownsModel: boolean;
  readonly #constraint: WordConstraint | undefined;
  readonly #words: ReadonlySet<string> | undefined;
  readonly #cache: LruCache<string, readonly Rewrite[]>;
  readonly #listeners = new Set<(info: BatchInfo) => void>();
  #bandit: Bandit | undefined;
  #queue: Job[] = [];
  #running: RunningBatch | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closing: Promise<void> | null = null;
  #stats = { requests: 0, cacheHits: 0, cacheMisses: 0, batches: 0, batchedRequests: 0, batchedSequences: 0, overloaded: 0, aborted: 0 };

  private constructor(model: Model, tokenizer: Tokenizer, settings: RewriterSettings, words: ReadonlySet<string> | undefined, constraint: WordConstraint | undefined, ownsModel: boolean) {
    this.#model = model;
    this.#tokenizer = tokenizer;
    this.settings = Object.freeze({ ...settings });
    this.#words = words;
    this.#constraint = constraint;
    this.#ownsModel = ownsModel;
    this.#cache = new LruCache(settings.cacheSize);
  }

  /** Loads a trained folder (config.json, model.safetensors, tokenizer.json). close() frees its model. */
  static async load(dir: string, options?: RewriterOptions): Promise<Rewriter> {
    if (typeof dir !== 'string' || dir.length === 0) throw invalidArgument('Rewriter.load needs the path of a model folder holding config.json, model.safetensors and tokenizer.json');
    const checked = validateLoadOptions(options);
    // Resolved once, so the model and the tokenizer come from the same save even mid-swap.
    const from = await resolveDir(dir);
    const [loaded, tokenizerLoaded] = await Promise.allSettled([Model.load(from, { device: checked.device }), Tokenizer.load(from)]);
    if (tokenizerLoaded.status === 'rejected') {
      if (loaded.status === 'fulfilled') await loaded.value.dispose();
      throw tokenizerLoaded.reason;
    }
    if (loaded.status === 'rejected') throw loaded.reason;
    const model = loaded.value, tokenizer = tokenizerLoaded.value;
    try {
      return await Rewriter.#create(model, tokenizer, checked, true);
    } catch (err) {
      await model.dispose();
      throw err;
    }
  }

  /** A rewriter over a model and tokenizer the caller already holds; close() leaves the model to its owner. */
  static async fromModel(model: Model, tokenizer: Tokenizer, options?: RewriterOptions): Promise<Rewriter> {
    if (!(model instanceof Model)) throw invalidArgument('Rewriter.fromModel needs a Model (Model.load or Model.create)');
    if (!(tokenizer instanceof Tokenizer)) throw invalidArgument('Rewriter.fromModel needs a Tokenizer (Tokenizer.load)');
    const checked = validateLoadOptions(options);
    if (checked.device !== undefined)
      throw optionError('device', `Rewriter.fromModel decodes on the model's own device (${model.device}); create or load the model with { device } instead`);
    return Rewriter.#create(model, tokenizer, checked, false);
  }

  static async #create(model: Model, tokenizer: Tokenizer, checked: ReturnType<typeof validateLoadOptions>, ownsModel: boolean): Promise<Rewriter> {
    const { settings, threads, words, bandit: banditOption } = checked;
    const c = model.config;
    if (tokenizer.vocabSize > c.vocab_size)
      throw new MinielmError('MINIELM_CHECKPOINT', `the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary has ${c.vocab_size}: load the tokenizer the model was trained with`);
    if (c.n_ctx - settings.maxNewTokens < 2)
      throw optionError('maxNewTokens', `maxNewTokens (${settings.maxNewTokens}) leaves no room for a prompt in the model's context of ${c.n_ctx} tokens: lower it`);
    if (settings.hygiene && settings.hygiene.noRepeatNgramSize > c.n_ctx) throw optionError('hygiene.noRepeatNgramSize', `hygiene.noRepeatNgramSize must be <= the model's n_ctx (${c.n_ctx})`);
    if (settings.hygiene && settings.hygiene.minNewTokens > settings.maxNewTokens)
      throw optionError('hygiene.minNewTokens', `hygiene.minNewTokens (${settings.hygiene.minNewTokens}) must be <= maxNewTokens (${settings.maxNewTokens})`);
    if (threads !== undefined) native.setNumThreads(threads);
    let bandit: Bandit | undefined;
    if (banditOption instanceof Bandit) bandit = banditOption;
    else if (banditOption) {
      const { stateFile, ...banditSettings } = banditOption;
      bandit = stateFile !== undefined ? await Bandit.open(stateFile, banditSettings) : new Bandit(banditSettings);
    }
    const constraint = words ? await catalogWordConstraint(tokenizer, words) : undefined;
    const rewriter = new Rewriter(model, tokenizer, settings, words ? catalogWords(words) : undefined, constraint, ownsModel);
    rewriter.#bandit = bandit;
    return rewriter;
  }

  /** Up to n rewrites of `query`, best first: normalised, deduplicated, the query itself left out unless asked. */
  async rewrite(query: string, options?: RewriteOptions): Promise<Rewrite[]> {
    const o = checkKeys('rewrite', options, REWRITE_OPTIONS) as RewriteOptions;
    const [list] = await this.#rewriteMany([query], o, () => 'query');
    return list;
  }

  /** rewrite() of each query, one list per query in order; the queries are decoded together. */
  async rewriteBatch(queries: readonly string[], options?: RewriteOptions): Promise<Rewrite[][]> {
    const o = checkKeys('rewriteBatch', options, REWRITE_OPTIONS) as RewriteOptions;
    if (!Array.isArray(queries)) throw optionError('queries', `rewriteBatch needs an array of query strings, got ${describe(queries)}`);
    if (queries.length === 0) return [];
    return this.#rewriteMany(queries, o, (i) => `queries[${i}]`);
  }

  /**
   * Retrieves the top k of the query and of each of its rewrites, and merges the lists (reciprocal rank
   * fusion by default), saying for each product which lists brought it.
   */
  async expand(query: string, retriever: Retriever, options?: ExpandOptions): Promise<Expansion> {
    const o = checkKeys('expand', options, EXPAND_OPTIONS) as ExpandOptions;
    // An object: a string passes a bare search check (String.prototype.search) and would turn the texts into a RegExp.
    if (!retriever || typeof retriever !== 'object' || typeof retriever.search !== 'function')
      throw invalidArgument(`expand needs a retriever with search(queries, k) (Bm25Retriever, MeilisearchRetriever), got ${describe(retriever)}`);
    const k = intOption('k', o.k, 1, MAX_K, 10);
    const merge = o.merge ?? 'rrf';
    if (merge !== 'rrf' && merge !== 'interleave') throw optionError('merge', `merge must be 'rrf' or 'interleave', got ${describe(merge)}`);
    const limit = intOption('limit', o.limit, 1, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    const select = o.select ?? 'all';
    if (select !== 'all' && select !== 'top' && select !== 'bandit' && select !== 'fresh' && select !== 'relevance')
      throw optionError('select', `select must be 'all', 'top', 'bandit', 'fresh' or 'relevance', got ${describe(select)}`);
    if (select === 'all' && o.send !== undefined) throw optionError('send', "send applies to select 'top', 'bandit', 'fresh' or 'relevance'; leave it out for 'all'");
    const send = intOption('send', o.send, 1, MAX_BEAMS, select === 'fresh' || select === 'relevance' ? 10 : 3);
    const rel = o.relevance;
    if (select === 'relevance' && (!rel || typeof rel !== 'object' || typeof rel.scorer?.scoreBatch !== 'function' || typeof rel.titleOf !== 'function'))
      throw optionError('relevance', `select 'relevance' needs relevance: { scorer, titleOf }, a RelevanceScorer (LearnedRelevanceScorer.load(dir)) and the title of a result id; got ${describe(rel)}`);
    if (rel !== undefined && select !== 'relevance') throw optionError('relevance', "relevance applies to select 'relevance'");
    const rankWeight = rel?.rankWeight ?? DEFAULT_RELEVANCE_RANK_WEIGHT;
    if (typeof rankWeight !== 'number' || !Number.isFinite(rankWeight) || rankWeight < 0)
      throw optionError('relevance', `relevance.rankWeight must be a finite number >= 0, got ${describe(rel?.rankWeight)}`);
    if (select === 'bandit' && !this.#bandit) throw optionError('select', "select 'bandit' needs a bandit: Rewriter.load(dir, { bandit: { stateFile: 'bandit.json' } })");
    if (o.freshWeight !== undefined && select !== 'fresh') throw optionError('freshWeight', "freshWeight applies to select 'fresh'");
    const source = o.source ?? 'model';
    if (source !== 'model' && source !== 'feedback' && source !== 'both') throw optionError('source', `source must be 'model', 'feedback' or 'both', got ${describe(source)}`);
    const freshWeight = o.freshWeight ?? (source === 'feedback' ? DEFAULT_FEEDBACK_WEIGHT : DEFAULT_FRESH_WEIGHT);
    if (typeof freshWeight !== 'number' || !Number.isFinite(freshWeight) || freshWeight < 0)
      throw optionError('freshWeight', `freshWeight must be a finite number >= 0, got ${describe(o.freshWeight)}`);
    if (source !== 'model' && !(o.feedback instanceof FeedbackExpander))
      throw optionError('feedback', `source '${source}' needs feedback: new FeedbackExpander(products), the catalog the retriever searches; got ${describe(o.feedback)}`);
    for (const name of ['feedback', 'feedbackCount', 'feedbackDepth'] as const)
      if (o[name] !== undefined && source === 'model') throw optionError(name, `${name} applies to source 'feedback' or 'both'`);
    const { k: _k, merge: _m, limit: _l, select: _s, send: _n, freshWeight: _w, source: _src, feedback: _f, feedbackCount: _fc, feedbackDepth: _fd, relevance: _r, ...rewriteOptions } = o;
    if (select === 'fresh' && rewriteOptions.n === undefined) rewriteOptions.n = DEFAULT_FRESH_CANDIDATES;
    if (select === 'relevance' && rewriteOptions.n === undefined) rewriteOptions.n = DEFAULT_RELEVANCE_CANDIDATES;
    // As many feedback candidates as model ones unless told (50 for 'fresh', as chosen on dev).
    const feedbackCount = intOption('feedbackCount', o.feedbackCount, 1, MAX_BEAMS,
      select === 'fresh' ? DEFAULT_FEEDBACK_CANDIDATES : intOption('n', rewriteOptions.n, 1, MAX_BEAMS, 10));
    const feedbackDepth = intOption('feedbackDepth', o.feedbackDepth, 1, MAX_K, DEFAULT_FEEDBACK_DEPTH);
    let candidates: Rewrite[] = [];
    if (source !== 'feedback') [candidates] = await this.#rewriteMany([query], { ...rewriteOptions, includeQuery: false }, () => 'query');
    if (source !== 'model') {
      const [words] = await o.feedback!.rewrites([collapse(query)], retriever, feedbackCount, { depth: feedbackDepth });
      if (o.signal?.aborted) throw abortError(o.signal);
      const have = new Set(candidates.map((r) => r.text.toLowerCase()));
      for (const text of words) if (!have.has(text.toLowerCase())) candidates.push({ text, logprob: 0, source: 'feedback' });
    }
    let rewrites = candidates, selection: RewriteSelection | undefined;
    let texts: string[], lists: string[][];
    if (select === 'fresh' || select === 'relevance') {
      // Every candidate is searched once; the chosen ones' lists are reused for the merge.
      const all = [collapse(query), ...candidates.map((r) => r.text)];
      const found = checkLists(await retriever.search(all, k), all.length);
      if (o.signal?.aborted) throw abortError(o.signal);
      let chosen: number[];
      if (select === 'fresh') chosen = selectFresh(found[0], found.slice(1), send, { weight: freshWeight, k });
      else {
        // The new results' relevance to the query (not to the rewrite that found them), one scorer call.
        chosen = await selectByScorer(all[0], found[0], found.slice(1), send, rel!.scorer, rel!.titleOf, { rankWeight, k });
        if (o.signal?.aborted) throw abortError(o.signal);
      }
      rewrites = chosen.map((i) => candidates[i]);
      texts = [all[0], ...rewrites.map((r) => r.text)];
      lists = [found[0], ...chosen.map((i) => found[i + 1])];
      selection = { strategy: select, candidates };
    } else {
      if (select !== 'all') {
        // Chosen synchronously after the decode, so the same seed and call order give the same choices.
        const drawn = select === 'bandit' && candidates.length > 0 ? this.#bandit!.select(collapse(query), candidates.map((r) => r.text), send) : undefined;
        const chosen = new Set(drawn ? drawn.chosen : candidates.map((_, i) => i).slice(0, send));
        rewrites = candidates.filter((_, i) => chosen.has(i));
        selection = { strategy: select, candidates, ...(select === 'bandit' ? { samples: drawn?.samples ?? [] } : {}) };
      }
      texts = [collapse(query), ...rewrites.map((r) => r.text)];
      lists = checkLists(await retriever.search(texts, k), texts.length);
      if (o.signal?.aborted) throw abortError(o.signal);
    }
    return { query: texts[0], rewrites, products: mergeLists(texts, lists, merge).slice(0, limit), ...(selection ? { selection } : {}) };
  }

  /** The bandit of expand({ select: 'bandit' }), when the rewriter has one. */
  get bandit(): Bandit | undefined {
    return this.#bandit;
  }

  /**
   * Tells the bandit whether a rewrite expand({ select: 'bandit' }) sent brought a clicked product (success) or
   * was shown without a click (failure); once per impression and rewrite. With a stateFile the promise resolves
   * when the state is on disk (concurrent calls share one atomic write). Resolves to the arm's new posterior.
   */
  async feedback(event: RewriteFeedback): Promise<ArmPosterior> {
    const e = checkKeys('feedback', event, FEEDBACK_KEYS) as Partial<RewriteFeedback>;
    if (!this.#bandit) throw invalidArgument("feedback needs a bandit: load the rewriter with { bandit: { stateFile: 'bandit.json' } } and expand with select: 'bandit'");
    if (this.#closing) throw closedError();
    for (const key of ['query', 'rewrite'] as const) {
      if (typeof e[key] !== 'string' || collapse(e[key]).length === 0) throw optionError(key, `feedback: ${key} must be a non-empty string, got ${describe(e[key])}; send { query, rewrite, clicked }`);
    }
    if (typeof e.clicked !== 'boolean') throw optionError('clicked', `feedback: clicked must be true or false, got ${describe(e.clicked)}`);
    let posterior: ArmPosterior;
    try {
      posterior = this.#bandit.update(e.query!, e.rewrite!, e.clicked);
    } catch (err) {
      // The one input error left: an arm the bandit does not hold.
      throw err instanceof MinielmError && err.code === 'MINIELM_INVALID_ARGUMENT' ? optionError('rewrite', err.message) : err;
    }
    if (this.#bandit.stateFile) await this.#bandit.save();
    return posterior;
  }

  /** Counters since load, and the queue as it is now. */
  stats(): RewriterStats {
    return {
      ...this.#stats,
      cacheEntries: this.#cache.size,
      queued: this.#queue.length,
      running: this.#running?.sequences ?? 0,
    };
  }

  /** Calls `listener` after every native decode; returns a function that stops it. */
  onBatch(listener: (info: BatchInfo) => void): () => void {
    if (typeof listener !== 'function') throw invalidArgument('onBatch needs a function');
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Rejects every pending call with MINIELM_ABORTED, stops the running decode and frees the model. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const queued = this.#queue;
    this.#queue = [];
    for (const job of queued) this.#settle(job, () => job.reject(closedError()));
    const running = this.#running;
    if (running) {
      for (const job of running.jobs) this.#settle(job, () => job.reject(closedError()));
      running.controller.abort();
    }
    this.#cache.clear();
    // The model's own queue runs dispose after the cancelled decode has returned.
    const disposed = this.#ownsModel ? this.#model.dispose() : Promise.resolve();
    // A bandit write in flight finishes before close resolves.
    this.#closing = this.#bandit ? Promise.all([disposed, this.#bandit.flush()]).then(() => undefined) : disposed;
    return this.#closing;
  }

  async #rewriteMany(queries: readonly string[], o: RewriteOptions, name: (i: number) => string): Promise<Rewrite[][]> {
    const decoding = validateDecoding(o);
    if (o.includeQuery !== undefined && typeof o.includeQuery !== 'boolean') throw optionError('includeQuery', `includeQuery must be true or false, got ${describe(o.includeQuery)}`);
    const texts = queries.map((q, i) => {
      if (typeof q !== 'string') throw optionError(name(i), `${name(i)} must be a string, got ${describe(q)}`);
      const text = collapse(q);
      if (text.length === 0) throw optionError(name(i), `${name(i)} is empty: pass the search query to rewrite`);
      return text;
    });
    if (this.#closing) throw closedError();
    const signal = o.signal;
    if (signal?.aborted) throw abortError(signal);
    this.#stats.requests += texts.length;
    const found = new Map<string, readonly Rewrite[]>();
    const missing = new Set<string>();
    for (const text of texts) {
      if (found.has(text) || missing.has(text)) continue;
      const hit = this.settings.cacheSize > 0 ? this.#cache.get(`${decoding.key}\n${text}`) : undefined;
      if (hit) found.set(text, hit);
      else missing.add(text);
    }
    if (this.settings.cacheSize > 0) {
      // A query repeated within one call is decoded once; its repeats count as hits.
      this.#stats.cacheMisses += missing.size;
      this.#stats.cacheHits += texts.length - missing.size;
    }
    if (missing.size > 0) {
      const maxPrompt = this.#model.config.n_ctx - this.settings.maxNewTokens;
      const decode = [...missing];
      const generations = await Promise.all(this.#enqueue(decode.map((t) => promptIds(this.#tokenizer, t, maxPrompt)), decoding, signal));
      decode.forEach((text, i) => {
        const list = Object.freeze(this.#toRewrites(generations[i], decoding.strategy));
        found.set(text, list);
        this.#cache.set(`${decoding.key}\n${text}`, list);
      });
    }
    return texts.map((text) => {
      const query = sameText(text);
      return found.get(text)!.filter((r) => o.includeQuery === true || sameText(r.text) !== query).map((r) => ({ ...r }));
    });
  }

  #toRewrites(generations: readonly Generation[], strategy: Decoding['strategy']): Rewrite[] {
    const vocab = this.#tokenizer.vocabSize;
    const decoded = generations.map((g) => {
      // A model whose vocabulary is padded past the tokenizer's may emit an id no text stands for.
      let text = rewriteText(this.#tokenizer, g.tokens.filter((t) => t < vocab));
      // The constraint allows the start of a word; a decode cut off by maxNewTokens may end inside one.
      if (this.#words && g.finishReason === 'length') {
        const words = text.split(/\s+/);
        while (words.length > 0 && !this.#words.has(words[words.length - 1])) words.pop();
        text = words.join(' ');
      }
      return { text, logprob: g.logprob };
    });
    return distinctRewrites(decoded, strategy === 'sample');
  }

  #enqueue(prompts: number[][], decoding: Decoding, signal: AbortSignal | undefined): Promise<Generation[]>[] {
    if (this.#queue.length + prompts.length > this.settings.queueLimit) {
      this.#stats.overloaded += prompts.length;
      throw new MinielmError('MINIELM_OVERLOADED', `the rewriter is overloaded: ${this.#queue.length} requests wait for the decoder and queueLimit is ${this.settings.queueLimit}; retry later, send fewer queries at once or raise queueLimit`);
    }
    const now = performance.now();
    const promises = prompts.map((prompt) => new Promise<Generation[]>((resolve, reject) => {
      const job: Job = { prompt, decoding, enqueuedAt: now, settled: false, batch: null, resolve, reject, detach: () => undefined };
      if (signal) {
        const onAbort = (): void => this.#abort(job, signal);
        signal.addEventListener('abort', onAbort, { once: true });
        job.detach = () => signal.removeEventListener('abort', onAbort);
      }
      this.#queue.push(job);
    }));
    this.#schedule();
    return promises;
  }

  #abort(job: Job, signal: AbortSignal): void {
    if (job.settled) return;
    this.#stats.aborted += 1;
    const batch = job.batch;
    if (!batch) this.#queue = this.#queue.filter((j) => j !== job);
    this.#settle(job, () => job.reject(abortError(signal)));
    // A started decode serves the whole batch; stop it only once nobody waits for it.
    if (batch && batch.jobs.every((j) => j.settled)) batch.controller.abort();
  }

  #settle(job: Job, done: () => void): void {
    if (job.settled) return;
    job.settled = true;
    job.detach();
    done();
  }

  /** Starts a decode when the oldest request's group is full or has waited maxWaitMs; else waits for that. */
  #schedule(): void {
    if (this.#running || this.#closing || this.#queue.length === 0) return;
    const first = this.#queue[0];
    let sequences = 0;
    for (const job of this.#queue) {
      if (job.decoding.key === first.decoding.key) sequences += job.decoding.n;
      if (sequences >= this.settings.maxBatch) break;
    }
    const wait = first.enqueuedAt + this.settings.maxWaitMs - performance.now();
    if (sequences >= this.settings.maxBatch || wait <= 0) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
      void this.#run();
    } else if (!this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#schedule();
      }, wait);
    }
  }

  async #run(): Promise<void> {
    const first = this.#queue[0];
    const jobs: Job[] = [];
    const rest: Job[] = [];
    let sequences = 0;
    for (const job of this.#queue) {
      // The oldest request always goes, even when its n alone exceeds maxBatch.
      if (job.decoding.key === first.decoding.key && (jobs.length === 0 || sequences + job.decoding.n <= this.settings.maxBatch)) {
        jobs.push(job);
        sequences += job.decoding.n;
      } else rest.push(job);
    }
    this.#queue = rest;
    const batch: RunningBatch = { jobs, sequences, controller: new AbortController() };
    for (const job of jobs) job.batch = batch;
    this.#running = batch;
    const started = performance.now();
    try {
      const out = await generate(this.#model, jobs.map((j) => j.prompt), { ...this.#generateOptions(first.decoding), signal: batch.controller.signal });
      jobs.forEach((job, i) => this.#settle(job, () => job.resolve(out[i])));
    } catch (err) {
      for (const job of jobs) this.#settle(job, () => job.reject(err));
    } finally {
      this.#running = null;
      this.#stats.batches += 1;
      this.#stats.batchedRequests += jobs.length;
      this.#stats.batchedSequences += sequences;
      const info: BatchInfo = { requests: jobs.length, sequences, ms: performance.now() - started };
      for (const listener of this.#listeners) {
        try {
          listener(info);
        } catch {
          // A metrics hook that throws must not stall the queue behind it.
        }
      }
      this.#schedule();
    }
  }

  #generateOptions(d: Decoding): GenerateOptions {
    const common: GenerateOptions = {
      maxNewTokens: this.settings.maxNewTokens,
      eosTokenId: this.#tokenizer.eosId,
      weights: this.settings.weights,
      ...(this.settings.hygiene ?? {}),
      ...(this.#constraint ? { wordConstraint: this.#constraint } : {}),
    };
    return d.strategy === 'beam'
      ? { ...common, strategy: 'beam', numBeams: d.n, numReturnSequences: d.n }
      : { ...common, strategy: 'sample', numReturnSequences: d.n, temperature: d.temperature, topP: d.topP, seed: d.seed };
  }
}

/**
 * Decoded rewrites as the Rewriter returns them: whitespace trimmed and collapsed, empty ones dropped, one
 * per text compared lower-cased (the first, i.e. best, kept). Samples come in draw order, so with
 * `byLogprob` they are ranked by probability first; beams are already best first.
 */
export function distinctRewrites(candidates: readonly Rewrite[], byLogprob = false): Rewrite[] {
  const all = candidates.map((r) => ({ text: collapse(r.text), logprob: r.logprob }));
  if (byLogprob) all.sort((a, b) => b.logprob - a.logprob);
  const seen = new Set<string>();
  const out: Rewrite[] = [];
  for (const r of all) {
    const key = r.text.toLowerCase();
    if (key.length === 0 || seen.has(key)) continue;
    seen.add(key);
    out.push(r);
  }
  return out;
}

/** Merges the id lists of texts[0] (the query) and its rewrites into one ranked list with provenance. */
function mergeLists(texts: readonly string[], lists: readonly string[][], merge: 'rrf' | 'interleave'): ExpandedProduct[] {
  const byId = new Map<string, ExpandedProduct>();
  const firstSeen: ExpandedProduct[] = [];
  lists.forEach((list, li) => {
    const inList = new Set<string>();
    list.forEach((id, r) => {
      // A retriever that repeats an id in one list counts it once, at its best rank.
      if (inList.has(id)) return;
      inList.add(id);
      let p = byId.get(id);
      if (!p) {
        p = { id, score: 0, from: [] };
        byId.set(id, p);
        firstSeen.push(p);
      }
      p.score += 1 / (RRF_K + r + 1);
      p.from.push({ text: texts[li], query: li === 0, rank: r + 1 });
    });
  });
  if (merge === 'rrf') {
    const order = new Map(firstSeen.map((p, i) => [p, i]));
    return [...firstSeen].sort((a, b) => b.score - a.score || order.get(a)! - order.get(b)!);
  }
  const out: ExpandedProduct[] = [];
  const taken = new Set<string>();
  const depth = Math.max(0, ...lists.map((l) => l.length));
  for (let r = 0; r < depth; r++) {
    for (const list of lists) {
      const id = list[r];
      if (id === undefined || taken.has(id)) continue;
      taken.add(id);
      out.push(byId.get(id)!);
    }
  }
  return out;
}
