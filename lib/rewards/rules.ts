// Rule-aware dense rewards (TaoSR-AGRL, ../shared/papers/002_*): instead of one opaque number, a rewrite's
// reward is a weighted mean of named checks, each in [0, 1], so a policy learns which rule it broke and a log
// shows which rule moved. The checks for query rewriting:
//   productTerm  the query's product term, or its catalog spelling, survives in the rewrite. The product
//                term of a short English product query is its last word ("cordless drill" -> drill); when
//                the catalog does not know that word ("gas mowe"), its catalog spellings within edit
//                distance 2 ("mower", "mowers") count instead. Plurals are folded (minimal stemming).
//   noRepeat     no word appears twice (1 - repeated / words)
//   length       the word count lies in [minWords, maxWords], decaying linearly outside
//   knownWords   the share of the rewrite's words the catalog or the query log knows
//   relevance, diversity, engagement   the environment's M1 relevance, diversity against the query's own
//                results, and the simulated user's engagement (click, add-to-cart and purchase rates mixed
//                with lib/rewards/metrics.ts's default weights)
// The combined reward is sum_k w_k r_k / sum_k w_k; weights come from a config (RuleWeights), a weight of 0
// drops a check. `rulesPassed` counts the hard rules (productTerm, noRepeat, length, knownWords) a rewrite
// meets, which adaptive guided replay uses to find groups where every sample failed.
import { analyze, minimalStem } from '../retrieval/analyzer.ts';
import { invalidArgument } from '../errors.ts';
import { DEFAULT_REWARD_WEIGHTS, type RewardComponents } from './metrics.ts';

export const RULE_NAMES = ['productTerm', 'noRepeat', 'length', 'knownWords', 'relevance', 'diversity', 'engagement'] as const;
export type RuleName = (typeof RULE_NAMES)[number];
export type RuleWeights = Record<RuleName, number>;
/** The hard rules: checks on the text alone. */
export const HARD_RULES: readonly RuleName[] = ['productTerm', 'noRepeat', 'length', 'knownWords'];

/** Relevance dominates as in the combined reward; the text rules together weigh as much as relevance. */
export const DEFAULT_RULE_WEIGHTS: Readonly<RuleWeights> = Object.freeze({
  productTerm: 0.4,
  noRepeat: 0.2,
  length: 0.2,
  knownWords: 0.2,
  relevance: 1.0,
  diversity: 0.5,
  engagement: 0.5,
});

export interface RuleOptions {
  /** Words the catalog and the query log use (lower-case; catalogWords in lib/rewrite/hygiene.ts builds it). */
  vocabulary: ReadonlySet<string>;
  minWords?: number;
  maxWords?: number;
  weights?: Partial<RuleWeights>;
}

export interface RuleScores {
  scores: Record<RuleName, number>;
  reward: number;
  /** Hard rules met (of HARD_RULES.length). */
  rulesPassed: number;
}

/** Levenshtein distance, stopping early once it exceeds `limit`. */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      best = Math.min(best, v);
    }
    if (best > limit) return limit + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The rule checker for one catalog: caches the spelling candidates of unknown product terms.
 */
export class RuleRewards {
  readonly weights: RuleWeights;
  readonly minWords: number;
  readonly maxWords: number;
  readonly #vocabulary: ReadonlySet<string>;
  readonly #byLength = new Map<number, string[]>();
  readonly #spellings = new Map<string, Set<string>>();

  constructor(options: RuleOptions) {
    if (!(options.vocabulary instanceof Set) || options.vocabulary.size === 0) throw invalidArgument('rule rewards need the catalog vocabulary (a non-empty Set of words)');
    this.#vocabulary = options.vocabulary;
    this.minWords = options.minWords ?? 2;
    this.maxWords = options.maxWords ?? 8;
    if (!Number.isInteger(this.minWords) || !Number.isInteger(this.maxWords) || this.minWords < 1 || this.maxWords < this.minWords)
      throw invalidArgument(`rule rewards need integer word bounds 1 <= minWords <= maxWords, got ${this.minWords}..${this.maxWords}`);
    const w = { ...DEFAULT_RULE_WEIGHTS, ...options.weights };
    for (const [k, v] of Object.entries(w)) {
      if (!(RULE_NAMES as readonly string[]).includes(k)) throw invalidArgument(`unknown rule "${k}": use one of ${RULE_NAMES.join(', ')}`);
      if (!(Number.isFinite(v) && v >= 0)) throw invalidArgument(`rule weight "${k}" must be a finite number >= 0, got ${v}`);
    }
    if (RULE_NAMES.every((k) => w[k] === 0)) throw invalidArgument('rule weights are all 0; give at least one check a positive weight');
    this.weights = w;
    for (const word of this.#vocabulary) {
      const key = word.toLowerCase();
      if (key !== word) continue;
      let list = this.#byLength.get(key.length);
      if (!list) this.#byLength.set(key.length, (list = []));
      list.push(key);
    }
  }

  #known(word: string): boolean {
    return this.#vocabulary.has(word) || this.#vocabulary.has(minimalStem(word));
  }

  /** The stems that count as the query's product term (the last word, or its catalog spellings). */
  productTerms(query: string): Set<string> {
    const words = analyze(query);
    const last = words[words.length - 1];
    if (!last) return new Set();
    const cached = this.#spellings.get(last);
    if (cached) return cached;
    const out = new Set([minimalStem(last)]);
    if (!this.#known(last) && last.length >= 3) {
      const limit = last.length >= 5 ? 2 : 1;
      for (let len = last.length - limit; len <= last.length + limit; len++)
        for (const w of this.#byLength.get(len) ?? []) if (editDistance(last, w, limit) <= limit) out.add(minimalStem(w));
    }
    if (this.#spellings.size > 100_000) this.#spellings.clear();
    this.#spellings.set(last, out);
    return out;
  }

  /** Scores one rewrite of `query` given its environment components. */
  score(query: string, rewrite: string, components: RewardComponents): RuleScores {
    const words = analyze(rewrite);
    const stems = words.map(minimalStem);
    const terms = this.productTerms(query);
    const distinct = new Set(stems).size;
    const n = words.length;
    const lengthScore = n === 0 ? 0 : n < this.minWords ? n / this.minWords : n > this.maxWords ? Math.max(0, 1 - (n - this.maxWords) / this.maxWords) : 1;
    const e = DEFAULT_REWARD_WEIGHTS;
    const engagement = (e.click * components.click + e.addToCart * components.addToCart + e.purchase * components.purchase) / (e.click + e.addToCart + e.purchase);
    const scores: Record<RuleName, number> = {
      productTerm: terms.size > 0 && stems.some((s) => terms.has(s)) ? 1 : 0,
      noRepeat: n === 0 ? 0 : distinct / n,
      length: lengthScore,
      knownWords: n === 0 ? 0 : words.filter((w) => this.#known(w)).length / n,
      relevance: components.relevance,
      diversity: components.diversity,
      engagement,
    };
    let num = 0, den = 0;
    for (const k of RULE_NAMES) {
      num += this.weights[k] * scores[k];
      den += this.weights[k];
    }
    const rulesPassed = HARD_RULES.filter((k) => scores[k] === 1).length;
    return { scores, reward: num / den, rulesPassed };
  }
}
