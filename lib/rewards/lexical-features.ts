// Lexical match features of a (query, product title) pair, for the learned relevance model's boosted-tree stage
// (lib/rewards/learned.ts). Everything is computed from the two texts and the catalog's term statistics: no
// label, no query-level or product-level prior, so the features of a pair never depend on which other pairs
// are scored beside it. Fuzzy matches are what BM25 misses on real queries: typos ("ligt" / "light"), prefixes
// ("galv" / "galvanized"), merged or split words ("deckscrews" / "deck screws") and numbers written apart.
import { analyze, minimalStem } from '../retrieval/analyzer.ts';
import { Bm25PairScorer, type Bm25Stats } from './bm25-pairs.ts';
import { editDistance } from './rules.ts';

export const LEXICAL_FEATURES = [
  'bm25',
  'bm25_norm',
  'exact_cover',
  'idf_cover',
  'fuzzy_cover',
  'idf_fuzzy_cover',
  'last_exact',
  'last_fuzzy',
  'first_fuzzy',
  'query_terms',
  'title_terms',
  'unknown_share',
  'trigram_cover',
  'number_cover',
  'ordered_cover',
  'max_missing_idf',
  'last_position',
  'bigram_cover',
] as const;

export type LexicalFeatureName = (typeof LEXICAL_FEATURES)[number];

/**
 * How close a query term comes to a title term: 1 exact, 0.9 stem / merge, 0.8 prefix, 0.7 edit, 0 none.
 * `titleStems[k]` is minimalStem(titleTerms[k]), computed once per title by the caller.
 */
function termMatch(q: string, titleTerms: readonly string[], titleStems: readonly string[], titleJoined: ReadonlySet<string>): { score: number; at: number } {
  let best = 0;
  let at = -1;
  const qStem = minimalStem(q);
  const limit = q.length >= 8 ? 2 : 1;
  const editable = q.length >= 4 && !/\d/.test(q);
  for (let k = 0; k < titleTerms.length; k++) {
    const t = titleTerms[k];
    let s = 0;
    if (t === q) s = 1;
    else if (titleStems[k] === qStem) s = 0.9;
    else if (q.length >= 3 && t.length >= 3 && (t.startsWith(q) || q.startsWith(t))) s = 0.8;
    else if (editable && t.length >= 4 && editDistance(q, t, limit) <= limit) s = 0.7;
    if (s > best) {
      best = s;
      at = k;
      if (s === 1) break;
    }
  }
  if (best < 0.9 && titleJoined.has(q)) return { score: 0.9, at: at < 0 ? 0 : at };
  return { score: best, at };
}

function trigrams(text: string): Set<string> {
  const s = ` ${text.replace(/[^\p{L}\p{N}]+/gu, ' ').trim()} `;
  const out = new Set<string>();
  for (let i = 0; i + 3 <= s.length; i++) out.add(s.slice(i, i + 3));
  return out;
}

const NUMBER = /\d+(?:[./]\d+)?/g;

export class LexicalFeatures {
  readonly names: readonly string[] = LEXICAL_FEATURES;
  readonly bm25: Bm25PairScorer;

  /** `catalog`: every title of the collection once, or saved statistics (term statistics, as for BM25). */
  constructor(catalog: Iterable<string> | Bm25Stats) {
    this.bm25 = new Bm25PairScorer(catalog);
  }

  /** Features of one pair, in LEXICAL_FEATURES order, written into `out` at `offset`. */
  compute(query: string, title: string, out: Float64Array, offset = 0): void {
    const q = analyze(query);
    const tRaw = analyze(title);
    const tStem = tRaw.map(minimalStem);
    const joined = new Set<string>();
    for (let k = 0; k + 1 < tRaw.length; k++) joined.add(tRaw[k] + tRaw[k + 1]);
    const tSet = new Set(tStem);
    // BM25 from the terms already analysed: analyze(text, { stem: 'minimal' }) is analyze(text) stemmed.
    const bm25 = this.bm25.scoreTerms(q.map(minimalStem), tStem);
    let idfSum = 0;
    let idfExact = 0;
    let idfFuzzy = 0;
    let exact = 0;
    let fuzzy = 0;
    let unknown = 0;
    let maxMissing = 0;
    const matches: { score: number; at: number }[] = [];
    for (const term of q) {
      const stem = minimalStem(term);
      const idf = this.bm25.idf(stem);
      idfSum += idf;
      if (this.bm25.unknown(stem)) unknown++;
      const m = termMatch(term, tRaw, tStem, joined);
      matches.push(m);
      if (tSet.has(stem)) {
        exact++;
        idfExact += idf;
      } else if (idf > maxMissing && m.score < 0.7) maxMissing = idf;
      fuzzy += m.score;
      idfFuzzy += idf * m.score;
    }
    const nq = Math.max(1, q.length);
    // Ordered cover: the longest run of query terms matched at increasing title positions, over the query length.
    let ordered = 0;
    {
      const lis: number[] = [];
      for (const m of matches) {
        if (m.score < 0.7) continue;
        let lo = 0;
        let hi = lis.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (lis[mid] < m.at) lo = mid + 1;
          else hi = mid;
        }
        lis[lo] = m.at;
      }
      ordered = lis.length / nq;
    }
    const qGrams = trigrams(query.toLowerCase());
    const tGrams = trigrams(title.toLowerCase());
    let gramHits = 0;
    for (const g of qGrams) if (tGrams.has(g)) gramHits++;
    const qNums = query.match(NUMBER) ?? [];
    const tNums = new Set(title.match(NUMBER) ?? []);
    const numberCover = qNums.length ? qNums.filter((x) => tNums.has(x)).length / qNums.length : Number.NaN;
    const last = matches[matches.length - 1];
    let bigrams = 0;
    let bigramHits = 0;
    const tBigrams = new Set<string>();
    for (let k = 0; k + 1 < tStem.length; k++) tBigrams.add(`${tStem[k]} ${tStem[k + 1]}`);
    for (let k = 0; k + 1 < q.length; k++) {
      bigrams++;
      if (tBigrams.has(`${minimalStem(q[k])} ${minimalStem(q[k + 1])}`)) bigramHits++;
    }
    const v: number[] = [
      bm25,
      idfSum > 0 ? bm25 / idfSum : 0,
      exact / nq,
      idfSum > 0 ? idfExact / idfSum : 0,
      fuzzy / nq,
      idfSum > 0 ? idfFuzzy / idfSum : 0,
      last && tSet.has(minimalStem(q[q.length - 1])) ? 1 : 0,
      last ? last.score : 0,
      matches.length ? matches[0].score : 0,
      q.length,
      tRaw.length,
      unknown / nq,
      qGrams.size ? gramHits / qGrams.size : 0,
      numberCover,
      ordered,
      maxMissing,
      last && last.at >= 0 && tRaw.length > 1 ? last.at / (tRaw.length - 1) : Number.NaN,
      bigrams ? bigramHits / bigrams : Number.NaN,
    ];
    for (let j = 0; j < v.length; j++) out[offset + j] = v[j];
  }

  /** Row-major features of many pairs, yielding to the event loop every 2,000 pairs (~60 ms). */
  async computeAll(pairs: readonly { query: string; title: string }[]): Promise<Float64Array> {
    const f = this.names.length;
    const out = new Float64Array(pairs.length * f);
    for (let i = 0; i < pairs.length; i++) {
      if (i > 0 && i % 2000 === 0) await new Promise((r) => setImmediate(r));
      this.compute(pairs[i].query, pairs[i].title, out, i * f);
    }
    return out;
  }
}
