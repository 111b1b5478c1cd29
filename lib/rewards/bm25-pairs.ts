// BM25 as a relevance *predictor* for given (query, product) pairs, the baseline the learned scorer must beat.
// Bm25Retriever answers top-k searches and does not expose the score of an arbitrary pair, so this computes the
// same formula (Lucene idf, k1 = 1.2, b = 0.75, the retriever's analyzer and minimal stemming, title field only)
// with document frequencies and the average length taken over a whole catalog of titles — the scores of the
// retriever for any pair it returns are identical (see docs/retrieval.md).
import { analyze, type StemMode } from '../retrieval/analyzer.ts';
import { invalidArgument } from '../errors.ts';

export interface Bm25PairOptions {
  k1?: number;
  b?: number;
  stem?: StemMode;
}

/** A catalog's term statistics as plain data (saved with a model that scores against that catalog). */
export interface Bm25Stats {
  docCount: number;
  avgLength: number;
  /** [term, documents containing it], terms as the analyzer (with the scorer's stemming) gives them. */
  docFreq: [string, number][];
}

function isStats(x: unknown): x is Bm25Stats {
  const s = x as Bm25Stats;
  return !!s && typeof s === 'object' && typeof s.docCount === 'number' && typeof s.avgLength === 'number' && Array.isArray(s.docFreq);
}

// Not a RelevanceScorer on purpose: BM25 scores are unbounded, not gains in [0, 1].
export class Bm25PairScorer {
  readonly k1: number;
  readonly b: number;
  readonly stem: StemMode;
  readonly docCount: number;
  readonly avgLength: number;
  private readonly docFreq = new Map<string, number>();

  /**
   * `catalog`: every title of the collection (each product once), from which idf and avglen are counted, or the
   * statistics a previous scorer's stats() gave.
   */
  constructor(catalog: Iterable<string> | Bm25Stats, options: Bm25PairOptions = {}) {
    this.k1 = options.k1 ?? 1.2;
    this.b = options.b ?? 0.75;
    this.stem = options.stem ?? 'minimal';
    if (!(this.k1 > 0)) throw invalidArgument(`BM25 k1 must be positive, got ${options.k1}.`);
    if (!(this.b >= 0 && this.b <= 1)) throw invalidArgument(`BM25 b must be in [0, 1], got ${options.b}.`);
    if (isStats(catalog)) {
      if (!(catalog.docCount > 0 && catalog.avgLength > 0)) throw invalidArgument(`BM25 statistics need docCount and avgLength > 0, got ${catalog.docCount} and ${catalog.avgLength}.`);
      for (const [term, n] of catalog.docFreq) this.docFreq.set(term, n);
      this.docCount = catalog.docCount;
      this.avgLength = catalog.avgLength;
      return;
    }
    const catalogTitles = catalog;
    let docs = 0;
    let totalLength = 0;
    for (const title of catalogTitles) {
      const terms = analyze(title, { stem: this.stem });
      // Lucene's per-field docCount skips documents whose field is empty.
      if (terms.length === 0) continue;
      docs++;
      totalLength += terms.length;
      for (const t of new Set(terms)) this.docFreq.set(t, (this.docFreq.get(t) ?? 0) + 1);
    }
    if (docs === 0) throw invalidArgument('BM25 pair scorer needs a catalog with at least one non-empty title.');
    this.docCount = docs;
    this.avgLength = totalLength / docs;
  }

  /** The term statistics, to save and give back to the constructor. */
  stats(): Bm25Stats {
    return { docCount: this.docCount, avgLength: this.avgLength, docFreq: [...this.docFreq] };
  }

  /** Whether the catalog has `term` (analyzed and stemmed as this scorer does) in no title. */
  unknown(term: string): boolean {
    return !this.docFreq.has(term);
  }

  idf(term: string): number {
    const n = this.docFreq.get(term) ?? 0;
    return Math.log(1 + (this.docCount - n + 0.5) / (n + 0.5));
  }

  /** BM25 of `title` for `query`; a query term repeated counts once per occurrence, as the retriever does. */
  score(query: string, title: string): number {
    return this.scoreTerms(analyze(query, { stem: this.stem }), analyze(title, { stem: this.stem }));
  }

  /** The same from terms already analysed with this scorer's stemming. */
  scoreTerms(queryTerms: readonly string[], doc: readonly string[]): number {
    if (doc.length === 0) return 0;
    const tf = new Map<string, number>();
    for (const t of doc) tf.set(t, (tf.get(t) ?? 0) + 1);
    const norm = this.k1 * (1 - this.b + (this.b * doc.length) / this.avgLength);
    let s = 0;
    for (const t of queryTerms) {
      const f = tf.get(t);
      if (f === undefined) continue;
      s += (this.idf(t) * f * (this.k1 + 1)) / (f + norm);
    }
    return s;
  }

  /** Raw BM25 scores of many pairs (for rank statistics, not a reward). */
  scorePairs(pairs: readonly { query: string; title: string }[]): Float64Array {
    const out = new Float64Array(pairs.length);
    for (let i = 0; i < pairs.length; i++) out[i] = this.score(pairs[i].query, pairs[i].title);
    return out;
  }
}
