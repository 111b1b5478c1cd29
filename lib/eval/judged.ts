// Judged recall@k: the evaluation a rewriter cannot game. For each evaluated query with at least one
// human-judged relevant product, the share of those products that the engine's top k reaches for the
// query together with its n rewrites (the union of n + 1 result lists), against the query's own top k.
// Only human labels count: no model (M1, a judge, the policy) takes part, so a policy trained against a
// learned reward cannot raise this number by exploiting that reward.
//
//   relevant(q)   = { p judged for q : gain(q, p) >= minGain }
//   union(q)      = topK(q) ∪ topK(r_1) ∪ … ∪ topK(r_n)           (distinct rewrites, q itself excluded)
//   recall(q)     = |relevant(q) ∩ union(q)| / |relevant(q)|
//   alone(q)      = |relevant(q) ∩ topK(q)|  / |relevant(q)|
//   sameDepth(q)  = |relevant(q) ∩ top_{|union(q)|}(q)| / |relevant(q)|   (the query alone, as many results)
// averaged over queries with relevant(q) non-empty; ratio = mean recall / mean alone.
//
// Gains are the loaded table's (lib/data/labels.ts): a graded label r on [min, max] has gain
// (r - min) / (max - min); Home Depot's mean rating on 1..3 gives gain (r - 1) / 2, so the default
// threshold "rating >= 2.33" is gain >= 0.665. Unjudged products retrieved count neither way: recall is
// over the judged-relevant products only, which is why the engine must index the whole catalog — an index
// of the judged products alone would turn every query into a re-ranking of its own labels.
import type { Model } from '../model/model.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { Retriever } from '../retrieval/types.ts';
import type { LabelMap } from '../data/labels.ts';
import { invalidArgument } from '../errors.ts';
import { normaliseTokens } from './text-metrics.ts';
import { checkRewrites, modelRewriter, type ModelRewriterOptions, type RewritesFor } from './rewriters.ts';

/** Human labels: normalised query (see normaliseQuery) -> product id -> gain in [0, 1]. */
export type JudgedLabels = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** Home Depot's "relevant" rating (mean of 3 raters, 1..3), the threshold of docs/relevance.md. */
export const HOMEDEPOT_RELEVANT_RATING = 2.33;
/** The same threshold as a gain: (2.33 - 1) / 2. */
export const DEFAULT_MIN_GAIN = (HOMEDEPOT_RELEVANT_RATING - 1) / 2;

// Ratings written with two decimals (2.33 for 7/3) must land on the intended side of a threshold.
const EPS = 1e-9;

/**
 * The key a query is judged under: trimmed, whitespace collapsed, lower case — the same key the Q2Q builder
 * (lib/data/q2q.ts) groups query variants by, so a Q2Q query finds the labels of all its spellings.
 */
export function normaliseQuery(query: string): string {
  return query.trim().replace(/\s+/g, ' ').toLowerCase();
}

/** Groups judgements by normalised query; a (query, product) judged more than once keeps the mean gain. */
export function judgedLabels(judgements: Iterable<{ query: string; productId: string; gain: number }>): Map<string, Map<string, number>> {
  const sums = new Map<string, Map<string, { sum: number; n: number }>>();
  for (const j of judgements) {
    const key = normaliseQuery(j.query);
    if (!key) continue;
    let products = sums.get(key);
    if (!products) sums.set(key, (products = new Map()));
    const s = products.get(j.productId);
    if (s) {
      s.sum += j.gain;
      s.n++;
    } else products.set(j.productId, { sum: j.gain, n: 1 });
  }
  const out = new Map<string, Map<string, number>>();
  for (const [q, products] of sums) out.set(q, new Map([...products].map(([id, s]) => [id, s.sum / s.n])));
  return out;
}

/**
 * A threshold on a table's own label scale as a gain. Graded maps: (threshold - min) / (max - min), the
 * threshold within [min, max]; ESCI and categorical maps have no numeric scale, so the threshold is taken
 * as a gain in [0, 1]. `flag` names the input in the error.
 */
export function gainThreshold(labels: LabelMap, threshold: number, flag = 'threshold'): number {
  if (labels.kind === 'graded') {
    if (!(Number.isFinite(threshold) && threshold >= labels.min && threshold <= labels.max)) {
      throw invalidArgument(`${flag} must be a rating in [${labels.min}, ${labels.max}] on the table's label scale (e.g. 2.33 for Home Depot), got ${String(threshold)}`);
    }
    return (threshold - labels.min) / (labels.max - labels.min);
  }
  if (!(Number.isFinite(threshold) && threshold >= 0 && threshold <= 1)) throw invalidArgument(`${flag} must be a gain in [0, 1] for ${labels.kind} labels, got ${String(threshold)}`);
  return threshold;
}

/** The judged-relevant product ids of a query (empty when it has no labels or none reaches minGain). */
export function relevantProducts(judged: JudgedLabels, query: string, minGain = DEFAULT_MIN_GAIN): Set<string> {
  const out = new Set<string>();
  for (const [id, gain] of judged.get(normaliseQuery(query)) ?? []) if (gain + EPS >= minGain) out.add(id);
  return out;
}

export interface JudgedRecallOptions {
  /** Relevant when gain >= minGain. Default DEFAULT_MIN_GAIN (Home Depot rating 2.33). */
  minGain?: number;
  /** Rewrites per query taken from the provider (its first n). Default 10; 0 = the query alone. */
  n?: number;
  /** Results per retrieved text. Default 10. */
  k?: number;
  /** Evaluate at most this many eligible queries (in input order). Default all. */
  maxQueries?: number;
  /** Queries per rewriter call and per retriever call. Default 64. */
  batch?: number;
  /** Per-query rows kept in the result. Default 10. */
  examples?: number;
}

export interface JudgedQueryResult {
  query: string;
  relevant: number;
  alone: number;
  withRewrites: number;
  rewrites: string[];
}

export interface JudgedRecallResult {
  /** Mean recall of the union of the query's and its rewrites' top k, in [0, 1]. */
  recall: number;
  /** Mean recall of the query's own top k. */
  queryAlone: number;
  /** recall / queryAlone; null when queryAlone is 0. */
  ratio: number | null;
  /** Mean recall of the query alone at the depth of its union (same number of products shown). */
  queryAloneSameDepth: number;
  /** Evaluated queries (at least one judged-relevant product). */
  queries: number;
  /** Input queries left out: without labels, with no product at minGain, or repeating a query. */
  skipped: { unjudged: number; noRelevant: number; duplicate: number };
  /** Mean distinct rewrites per query (normalised text, empty and the query itself left out). */
  distinctRewrites: number;
  /** Mean judged-relevant products per query. */
  meanRelevant: number;
  /** Mean distinct products in the union. */
  meanRetrieved: number;
  /** Queries whose recall the rewrites raised. */
  queriesImproved: number;
  minGain: number;
  k: number;
  n: number;
  examples: JudgedQueryResult[];
}

function nonNegativeInt(name: string, v: number, min = 0): void {
  if (!(Number.isInteger(v) && v >= min)) throw invalidArgument(`judged recall option ${name} must be an integer >= ${min}, got ${String(v)}`);
}

/**
 * Judged recall of any rewriter: `rewritesFor` gives ranked rewrites per query, `retriever` must index the
 * whole catalog, `judged` holds the human labels.
 */
export async function judgedRecall(queries: readonly string[], rewritesFor: RewritesFor, retriever: Retriever, judged: JudgedLabels, options: JudgedRecallOptions = {}): Promise<JudgedRecallResult> {
  const minGain = options.minGain ?? DEFAULT_MIN_GAIN;
  const n = options.n ?? 10;
  const k = options.k ?? 10;
  const batch = options.batch ?? 64;
  const maxQueries = options.maxQueries ?? Infinity;
  const keep = options.examples ?? 10;
  if (!(Number.isFinite(minGain) && minGain >= 0 && minGain <= 1)) throw invalidArgument(`judged recall option minGain must be a gain in [0, 1], got ${String(minGain)}`);
  nonNegativeInt('n', n);
  nonNegativeInt('k', k, 1);
  nonNegativeInt('batch', batch, 1);
  if (maxQueries !== Infinity) nonNegativeInt('maxQueries', maxQueries);
  // A cheap guard for the mistake that silently inflates the metric: indexing only judged products.
  const size = (retriever as { size?: unknown }).size;
  if (typeof size === 'number') {
    const judgedIds = new Set<string>();
    for (const products of judged.values()) for (const id of products.keys()) judgedIds.add(id);
    if (size < judgedIds.size) throw invalidArgument(`the retriever indexes ${size} products but ${judgedIds.size} products are judged: index the whole catalog (every product of the table), not a subset`);
  }

  const skipped = { unjudged: 0, noRelevant: 0, duplicate: 0 };
  const seen = new Set<string>();
  const eligible: { query: string; relevant: Set<string> }[] = [];
  for (const q of queries) {
    const key = normaliseQuery(q);
    if (seen.has(key)) {
      skipped.duplicate++;
      continue;
    }
    seen.add(key);
    if (!judged.has(key)) {
      skipped.unjudged++;
      continue;
    }
    const relevant = relevantProducts(judged, q, minGain);
    if (relevant.size === 0) skipped.noRelevant++;
    else if (eligible.length < maxQueries) eligible.push({ query: q, relevant });
  }

  let recall = 0, alone = 0, sameDepth = 0, distinct = 0, relevantSum = 0, retrieved = 0, improved = 0;
  const examples: JudgedQueryResult[] = [];
  const hits = (ids: Iterable<string>, relevant: Set<string>): number => {
    let h = 0;
    for (const id of ids) if (relevant.has(id)) h++;
    return h;
  };
  for (let i = 0; i < eligible.length; i += batch) {
    const chunk = eligible.slice(i, i + batch);
    const texts = chunk.map((e) => e.query);
    const provided = n > 0 ? checkRewrites(await rewritesFor(texts), texts) : texts.map(() => []);
    const rewrites = chunk.map((e, j) => {
      const seenText = new Set([normaliseTokens(e.query).join(' ')]);
      const out: string[] = [];
      for (const r of provided[j].slice(0, n)) {
        const key = normaliseTokens(r).join(' ');
        if (!key || seenText.has(key)) continue;
        seenText.add(key);
        out.push(r.trim());
      }
      return out;
    });
    const flat = rewrites.flat();
    const rewriteLists = flat.length ? await retriever.search(flat, k) : [];
    let at = 0;
    const unions = chunk.map((e, j) => {
      const u = new Set<string>();
      for (let r = 0; r < rewrites[j].length; r++) for (const id of rewriteLists[at++]) u.add(id);
      return u;
    });
    // One deeper search of the queries serves both the top k and the same-depth baseline.
    const depth = Math.max(k, ...chunk.map((_, j) => unions[j].size + k));
    const queryLists = await retriever.search(texts, depth);
    chunk.forEach((e, j) => {
      const own = queryLists[j].slice(0, k);
      const u = unions[j];
      for (const id of own) u.add(id);
      const a = hits(own, e.relevant) / e.relevant.size;
      const w = hits(u, e.relevant) / e.relevant.size;
      recall += w;
      alone += a;
      sameDepth += hits(queryLists[j].slice(0, u.size), e.relevant) / e.relevant.size;
      distinct += rewrites[j].length;
      relevantSum += e.relevant.size;
      retrieved += u.size;
      if (w > a) improved++;
      if (examples.length < keep) examples.push({ query: e.query, relevant: e.relevant.size, alone: a, withRewrites: w, rewrites: rewrites[j] });
    });
  }
  const m = eligible.length;
  const d = Math.max(1, m);
  return {
    recall: recall / d,
    queryAlone: alone / d,
    ratio: alone > 0 ? recall / alone : null,
    queryAloneSameDepth: sameDepth / d,
    queries: m,
    skipped,
    distinctRewrites: distinct / d,
    meanRelevant: relevantSum / d,
    meanRetrieved: retrieved / d,
    queriesImproved: improved,
    minGain,
    k,
    n,
    examples,
  };
}

/** Judged recall of a trained model's rewrites (beam search by default, see modelRewriter). */
export async function judgedRecallOfModel(model: Model, tokenizer: Tokenizer, queries: readonly string[], retriever: Retriever, judged: JudgedLabels, options: JudgedRecallOptions & Omit<ModelRewriterOptions, 'n' | 'batch'> = {}): Promise<JudgedRecallResult> {
  const n = options.n ?? 10;
  // n = 0 asks for the query alone; no model call is needed.
  const rewritesFor: RewritesFor = n > 0 ? modelRewriter(model, tokenizer, { n, strategy: options.strategy, maxNewTokens: options.maxNewTokens, seed: options.seed, decoding: options.decoding }) : async (qs) => qs.map(() => []);
  return judgedRecall(queries, rewritesFor, retriever, judged, options);
}
