// Rewriters as plain functions from queries to ranked rewrites, so that judged recall and the probe table
// can score any rewriter the same way: a trained model, copying the query, a rule list, a remote service.
import type { Model } from '../model/model.ts';
import { generate, type GenerateOptions } from '../model/generate.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { promptIds, rewriteText } from '../rewrite/format.ts';
import { invalidArgument } from '../errors.ts';
import { selectByScorer, selectFresh } from '../rewrite/select.ts';
import type { RelevanceScorer } from '../rewards/relevance.ts';
import type { FeedbackExpander, FeedbackOptions } from '../rewrite/feedback.ts';
import { normaliseTokens } from './text-metrics.ts';
import type { Retriever } from '../retrieval/types.ts';

/**
 * Ranked rewrites (best first) of each query, one list per query in input order. A list may be empty
 * (no rewrite); callers take the first n they need.
 */
export type RewritesFor = (queries: readonly string[]) => Promise<string[][]>;

/** The baseline rewriter: the rewrite is the query itself, so nothing new is retrieved or learned. */
export const copyQuery: RewritesFor = async (queries) => queries.map((q) => [q]);

/**
 * A rule baseline with no model: the query with one word left out, once per word (left to right). More
 * result lists alone raise recall of the union; a learned rewriter has to beat this, not just the query.
 */
export const dropOneWord: RewritesFor = async (queries) => queries.map((q) => {
  const words = q.trim().split(/\s+/).filter(Boolean);
  return words.length < 2 ? [] : words.map((_, i) => words.filter((__, j) => j !== i).join(' '));
});

/**
 * Pseudo-relevance feedback (lib/rewrite/feedback.ts): the query plus one word its own top results share,
 * n rewrites for n words. The retrieval-side baseline a learned rewriter has to beat on judged recall.
 */
export function feedbackRewriter(expander: FeedbackExpander, retriever: Retriever, n: number, options: FeedbackOptions = {}): RewritesFor {
  if (!Number.isInteger(n) || n < 1) throw invalidArgument(`feedbackRewriter n must be an integer >= 1, got ${n}`);
  return (queries) => expander.rewrites(queries, retriever, n, options);
}

export interface ModelRewriterOptions {
  /** Rewrites per query. Default 10. */
  n?: number;
  /** 'beam' (default): the n best beams; 'sample': n samples at temperature 1 (seeded). */
  strategy?: 'beam' | 'sample';
  maxNewTokens?: number;
  /** Sampling seed. Default 1. */
  seed?: number;
  /** Prompts per native decode. Default 16. */
  batch?: number;
  /** Decoding hygiene and vocabulary constraint (lib/rewrite/hygiene.ts). Default: none. */
  decoding?: Partial<GenerateOptions>;
}

/**
 * The rewrites of a trained model under the shared prompt format, empty texts dropped and duplicates
 * collapsed (first, i.e. best, kept): a beam list often holds the same words twice after detokenising.
 */
export function modelRewriter(model: Model, tokenizer: Tokenizer, options: ModelRewriterOptions = {}): RewritesFor {
  const n = options.n ?? 10;
  const maxNewTokens = options.maxNewTokens ?? 16;
  const batch = options.batch ?? 16;
  if (!Number.isInteger(n) || n < 1) throw invalidArgument(`modelRewriter option n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(batch) || batch < 1) throw invalidArgument(`modelRewriter option batch must be an integer >= 1, got ${batch}`);
  const strategy = options.strategy ?? 'beam';
  if (strategy !== 'beam' && strategy !== 'sample') throw invalidArgument(`modelRewriter option strategy must be 'beam' or 'sample', got ${String(strategy)}`);
  const gen: GenerateOptions = strategy === 'sample'
    ? { ...options.decoding, strategy: 'sample', numReturnSequences: n, temperature: 1, maxNewTokens, eosTokenId: tokenizer.eosId, seed: options.seed ?? 1 }
    : { ...options.decoding, strategy: 'beam', numBeams: n, numReturnSequences: n, maxNewTokens, eosTokenId: tokenizer.eosId };
  const maxPrompt = model.config.n_ctx - maxNewTokens;
  if (maxPrompt < 2) throw invalidArgument(`modelRewriter option maxNewTokens (${maxNewTokens}) leaves no room for a prompt in n_ctx ${model.config.n_ctx}: lower it`);
  return async (queries) => {
    const out: string[][] = [];
    for (let i = 0; i < queries.length; i += batch) {
      const chunk = queries.slice(i, i + batch);
      const gens = await generate(model, chunk.map((q) => promptIds(tokenizer, q, maxPrompt)), gen);
      for (const list of gens) out.push([...new Set(list.map((g) => rewriteText(tokenizer, g.tokens)).filter((t) => t.length > 0))]);
    }
    return out;
  };
}

/** Checks a provider's answer so a wrong shape fails with the rewriter named instead of a wrong number. */
export function checkRewrites(rewrites: unknown, queries: readonly string[], who = 'the rewriter'): string[][] {
  if (!Array.isArray(rewrites) || rewrites.length !== queries.length) {
    throw invalidArgument(`${who} returned ${Array.isArray(rewrites) ? `${rewrites.length} lists` : typeof rewrites} for ${queries.length} queries; it must return one list of rewrite strings per query, in order`);
  }
  rewrites.forEach((list, i) => {
    if (!Array.isArray(list) || list.some((r) => typeof r !== 'string')) throw invalidArgument(`${who} returned a non-list-of-strings for query ${i} ("${queries[i]}"); each entry must be a string[]`);
  });
  return rewrites as string[][];
}

export interface FreshRewriterOptions {
  /** Rewrites sent per query. Default 10. */
  n?: number;
  /** Results per text the selection looks at (the engine's top k). Default 10. */
  k?: number;
  /** Weight of the share of new results against the model's rank (lib/rewrite/select.ts). Default 2. */
  weight?: number;
}

/** The candidates without the query itself, empty texts and repeats (compared as normalised tokens). */
function distinctCandidates(query: string, candidates: readonly string[]): string[] {
  const seen = new Set([normaliseTokens(query).join(' ')]);
  return candidates.filter((t) => {
    const key = normaliseTokens(t).join(' ');
    if (key.length === 0 || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * The frame both selecting rewriters share: the candidates of each query without the query and repeats, one
 * search for the query and all candidates, then `choose` picks indices into the candidates from the lists.
 */
function selectingRewriter(
  who: string,
  candidates: RewritesFor,
  retriever: Retriever,
  options: { n?: number; k?: number },
  choose: (query: string, own: string[], lists: string[][], n: number, k: number) => Promise<number[]> | number[],
): RewritesFor {
  const n = options.n ?? 10;
  const k = options.k ?? 10;
  if (!Number.isInteger(n) || n < 1) throw invalidArgument(`${who} option n must be an integer >= 1, got ${n}`);
  if (!Number.isInteger(k) || k < 1) throw invalidArgument(`${who} option k must be an integer >= 1, got ${k}`);
  return async (queries) => {
    const pools = checkRewrites(await candidates(queries), queries, 'the candidate rewriter');
    const out: string[][] = [];
    for (let i = 0; i < queries.length; i++) {
      const pool = distinctCandidates(queries[i], pools[i]);
      const [own, ...lists] = await retriever.search([queries[i], ...pool], k);
      out.push((await choose(queries[i], own, lists, n, k)).map((j) => pool[j]));
    }
    return out;
  };
}

/**
 * Result-aware selection over another rewriter's candidates (e.g. a model's 30 best beams): the n that bring
 * the most products the query's own top k (and the rewrites chosen before) do not (lib/rewrite/select.ts).
 * The query itself and repeated texts among the candidates are dropped first.
 */
export function freshRewriter(candidates: RewritesFor, retriever: Retriever, options: FreshRewriterOptions = {}): RewritesFor {
  return selectingRewriter('freshRewriter', candidates, retriever, options, (_q, own, lists, n, k) => selectFresh(own, lists, n, { weight: options.weight, k }));
}

export interface RelevanceRewriterOptions {
  /** Rewrites sent per query. Default 10. */
  n?: number;
  /** Results per text the selection looks at. Default 10. */
  k?: number;
  /** Weight of the model's rank against the new results' predicted relevance (lib/rewrite/select.ts). */
  rankWeight?: number;
}

/**
 * Relevance-aware selection over another rewriter's candidates: the n whose new results (not in the query's
 * own top k, nor brought by a rewrite chosen before) a relevance scorer rates most relevant *to the query*.
 * `titleOf` gives a result id's product title. The scorer must not have been trained on these queries' labels
 * (the CLI checks the scorer's excluded queries).
 */
export function relevanceRewriter(candidates: RewritesFor, retriever: Retriever, scorer: RelevanceScorer, titleOf: (id: string) => string | undefined, options: RelevanceRewriterOptions = {}): RewritesFor {
  return selectingRewriter('relevanceRewriter', candidates, retriever, options, (query, own, lists, n, k) =>
    selectByScorer(query, own, lists, n, scorer, titleOf, { rankWeight: options.rankWeight, k }),
  );
}
