// Text -> terms for the embedded BM25. Close to Elasticsearch's `standard` analyzer on product text:
//  1. Unicode NFKC, then lowercase (locale-independent `toLowerCase`).
//  2. Terms are maximal runs of letters, marks and digits (\p{L}\p{M}\p{N}); a single `.`, `'` or `’` between
//     two such runs stays inside the term ("1.9", "u.s", "don't"), as UAX#29 word boundaries do; every other
//     character separates terms ("3/4" -> "3", "4"; "12-gauge" -> "12", "gauge").
//  3. Optional `minimal` stemming: the English plural S-stemmer (Harman 1991, Lucene's EnglishMinimalStemmer):
//     "-ies" -> "-y" (not after e/a), "-es" -> "-e" (not after i/a/e/o), "-s" -> "" (not after u/s); words
//     shorter than three characters are left alone.
// Differences from `standard`: no CJK per-ideograph split and no 255-character token cap.

export type StemMode = 'none' | 'minimal';

export interface AnalyzerOptions {
  stem?: StemMode;
}

const TERM = /[\p{L}\p{M}\p{N}]+(?:['’.][\p{L}\p{M}\p{N}]+)*/gu;

export function minimalStem(term: string): string {
  const n = term.length;
  if (n < 3 || term.charCodeAt(n - 1) !== 0x73 /* s */) return term;
  const prev = term[n - 2];
  if (prev === 'u' || prev === 's') return term;
  if (prev === 'e') {
    if (n > 3 && term[n - 3] === 'i' && term[n - 4] !== 'e' && term[n - 4] !== 'a') return `${term.slice(0, n - 3)}y`;
    const before = term[n - 3];
    if (before === 'i' || before === 'a' || before === 'e' || before === 'o') return term;
  }
  return term.slice(0, n - 1);
}

export function analyze(text: string, options: AnalyzerOptions = {}): string[] {
  const terms = text.normalize('NFKC').toLowerCase().match(TERM);
  if (!terms) return [];
  if (options.stem === 'minimal') for (let i = 0; i < terms.length; i++) terms[i] = minimalStem(terms[i]);
  return terms;
}
