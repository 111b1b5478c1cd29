// Embedded BM25 retriever: an in-memory inverted index in typed arrays, scored exactly as Lucene/Elasticsearch
// BM25 (k1 = 1.2, b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5))), one index per field, field scores summed
// with their weights (Elasticsearch `multi_match` of type `most_fields` with per-field boosts).
// Per field f, for a query term t and document d:
//   score_f(t, d) = idf_f(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len_f(d) / avglen_f))
// where N is the number of documents whose field f is non-empty and n those of them containing t (Lucene's
// per-field docCount). A term repeated in the query counts once per occurrence (as repeated SHOULD clauses do).
// Lucene >= 8 drops the constant (k1 + 1) factor and stores lengths in a lossy byte; we keep exact lengths and
// the classic factor, so scores are Elasticsearch's times 2.2 (same ranking up to length-quantisation ties).
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { MinielmError } from '../errors.ts';
import { analyze, type StemMode } from './analyzer.ts';
import type { Product } from '../data/types.ts';
import type { ProductField, Retriever } from './types.ts';

export interface Bm25Options {
  /** Term-frequency saturation. Default 1.2 (Elasticsearch). */
  k1?: number;
  /** Length normalisation. Default 0.75 (Elasticsearch). */
  b?: number;
  /** Fields to index and their weights. Default { title: 1 }. */
  fields?: Partial<Record<ProductField, number>>;
  /** Stemming in the analyzer (see analyzer.ts). Default 'minimal'. */
  stem?: StemMode;
  /** Longest stretch of synchronous work in index()/search() before yielding to the event loop. Default 10 ms. */
  sliceMs?: number;
}

export interface ScoredHit {
  id: string;
  score: number;
}

interface FieldIndex {
  name: ProductField;
  weight: number;
  /** Documents whose field is non-empty (Lucene's docCount for the field). */
  docCount: number;
  avgLength: number;
  /** Postings of term t are [offsets[t], offsets[t + 1]). */
  offsets: Uint32Array;
  docs: Uint32Array;
  /** tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen)), precomputed per posting. */
  impacts: Float64Array;
  /** idf per term, 0 where the term never occurs in this field. */
  idf: Float64Array;
}

const FIELD_NAMES: readonly ProductField[] = ['title', 'brand', 'color', 'bullets', 'description'];

export class Bm25Retriever implements Retriever {
  readonly k1: number;
  readonly b: number;
  readonly stem: StemMode;
  readonly fieldWeights: ReadonlyArray<[ProductField, number]>;
  private readonly sliceMs: number;
  private ids: string[] = [];
  private ordinalOf = new Map<string, number>();
  private termIds = new Map<string, number>();
  private fields: FieldIndex[] = [];
  private scores = new Float64Array(0);
  private touched = new Uint32Array(0);

  constructor(options: Bm25Options = {}) {
    this.k1 = options.k1 ?? 1.2;
    this.b = options.b ?? 0.75;
    this.stem = options.stem ?? 'minimal';
    this.sliceMs = options.sliceMs ?? 10;
    if (!(this.k1 > 0) || !Number.isFinite(this.k1)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `BM25 k1 must be a positive number, got ${options.k1}.`);
    if (!(this.b >= 0 && this.b <= 1)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `BM25 b must be in [0, 1], got ${options.b}.`);
    const weights = Object.entries(options.fields ?? { title: 1 }) as [ProductField, number][];
    for (const [name, w] of weights) {
      if (!FIELD_NAMES.includes(name)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `unknown BM25 field "${name}": use one of ${FIELD_NAMES.join(', ')}.`);
      if (!(w > 0) || !Number.isFinite(w)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `BM25 field weight for "${name}" must be a positive number, got ${w}.`);
    }
    if (weights.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', 'BM25 needs at least one field to index (fields: { title: 1 }).');
    this.fieldWeights = weights;
  }

  get size(): number {
    return this.ids.length;
  }

  get vocabularySize(): number {
    return this.termIds.size;
  }

  async index(products: readonly Product[]): Promise<void> {
    const ids: string[] = new Array(products.length);
    const ordinalOf = new Map<string, number>();
    let sliceStart = performance.now();
    for (let d = 0; d < products.length; d++) {
      if ((d & 1023) === 0 && performance.now() - sliceStart > this.sliceMs) {
        await yieldToEventLoop();
        sliceStart = performance.now();
      }
      const id = products[d]?.id;
      if (typeof id !== 'string' || id.length === 0) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `product #${d} has no string id.`);
      if (ordinalOf.has(id)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `product id "${id}" appears twice (#${ordinalOf.get(id)} and #${d}); ids must be unique.`);
      ordinalOf.set(id, d);
      ids[d] = id;
    }
    const termIds = new Map<string, number>();
    const fields: FieldIndex[] = [];
    for (const [name, weight] of this.fieldWeights) {
      fields.push(await this.buildField(products, name, weight, termIds));
    }
    // idf arrays were sized while the vocabulary was still growing; pad them to the final size.
    for (const f of fields) {
      if (f.idf.length < termIds.size) {
        const idf = new Float64Array(termIds.size);
        idf.set(f.idf);
        f.idf = idf;
        const offsets = new Uint32Array(termIds.size + 1).fill(f.offsets[f.offsets.length - 1]);
        offsets.set(f.offsets);
        f.offsets = offsets;
      }
    }
    this.ids = ids;
    this.ordinalOf = ordinalOf;
    this.termIds = termIds;
    this.fields = fields;
    this.scores = new Float64Array(products.length);
    this.touched = new Uint32Array(products.length);
  }

  private async buildField(products: readonly Product[], name: ProductField, weight: number, termIds: Map<string, number>): Promise<FieldIndex> {
    const n = products.length;
    const lengths = new Uint32Array(n);
    // (term, doc, tf) triples in document order, grown as needed.
    let cap = 1 << 16;
    let pTerm = new Uint32Array(cap);
    let pDoc = new Uint32Array(cap);
    let pTf = new Uint32Array(cap);
    let count = 0;
    let docCount = 0;
    let totalLength = 0;
    const tf = new Map<number, number>();
    let sliceStart = performance.now();
    for (let d = 0; d < n; d++) {
      const text = products[d][name];
      if (typeof text !== 'string' || text.length === 0) continue;
      const terms = analyze(text, { stem: this.stem });
      if (terms.length === 0) continue;
      docCount++;
      lengths[d] = terms.length;
      totalLength += terms.length;
      tf.clear();
      for (const term of terms) {
        let t = termIds.get(term);
        if (t === undefined) termIds.set(term, (t = termIds.size));
        tf.set(t, (tf.get(t) ?? 0) + 1);
      }
      if (count + tf.size > cap) {
        cap = Math.max(cap * 2, count + tf.size);
        pTerm = grow(pTerm, cap);
        pDoc = grow(pDoc, cap);
        pTf = grow(pTf, cap);
      }
      for (const [t, f] of tf) {
        pTerm[count] = t;
        pDoc[count] = d;
        pTf[count] = f;
        count++;
      }
      if ((d & 63) === 0 && performance.now() - sliceStart > this.sliceMs) {
        await yieldToEventLoop();
        sliceStart = performance.now();
      }
    }
    await yieldToEventLoop();
    // Counting sort by term keeps each postings list in document order.
    const vocab = termIds.size;
    const offsets = new Uint32Array(vocab + 1);
    for (let i = 0; i < count; i++) offsets[pTerm[i] + 1]++;
    for (let t = 0; t < vocab; t++) offsets[t + 1] += offsets[t];
    const cursor = offsets.slice(0, vocab);
    const docs = new Uint32Array(count);
    const impacts = new Float64Array(count);
    const avgLength = docCount > 0 ? totalLength / docCount : 0;
    const { k1, b } = this;
    for (let i = 0; i < count; i++) {
      const at = cursor[pTerm[i]]++;
      const d = pDoc[i];
      const f = pTf[i];
      docs[at] = d;
      impacts[at] = (f * (k1 + 1)) / (f + k1 * (1 - b + (b * lengths[d]) / avgLength));
    }
    const idf = new Float64Array(vocab);
    for (let t = 0; t < vocab; t++) {
      const df = offsets[t + 1] - offsets[t];
      if (df > 0) idf[t] = Math.log(1 + (docCount - df + 0.5) / (df + 0.5));
    }
    return { name, weight, docCount, avgLength, offsets, docs, impacts, idf };
  }

  /** Accumulates scores of `query` into this.scores; returns how many documents it touched (listed in this.touched). */
  private accumulate(query: string): number {
    const terms = analyze(query, { stem: this.stem });
    const { scores, touched } = this;
    let nTouched = 0;
    for (const term of terms) {
      const t = this.termIds.get(term);
      if (t === undefined) continue;
      for (const f of this.fields) {
        const idf = f.idf[t];
        if (idf === 0) continue;
        const w = f.weight * idf;
        const { docs, impacts } = f;
        for (let p = f.offsets[t], end = f.offsets[t + 1]; p < end; p++) {
          const d = docs[p];
          // Every contribution is > 0 (idf > 0, impact > 0), so a zero score means "not touched yet".
          if (scores[d] === 0) touched[nTouched++] = d;
          scores[d] += w * impacts[p];
        }
      }
    }
    return nTouched;
  }

  private reset(nTouched: number): void {
    for (let i = 0; i < nTouched; i++) this.scores[this.touched[i]] = 0;
  }

  /** Top `k` products for one query with their scores: best first; equal scores in index order. */
  searchOne(query: string, k: number): ScoredHit[] {
    checkK(k);
    const nTouched = this.accumulate(query);
    const { scores, touched } = this;
    // Min-heap of the best k so far; the root is the worst kept (lowest score, then latest in index order).
    const size = Math.min(k, nTouched);
    const heap = new Uint32Array(size);
    let filled = 0;
    const worse = (a: number, b: number): boolean => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
    for (let i = 0; i < nTouched; i++) {
      const d = touched[i];
      if (filled < size) {
        let j = filled++;
        heap[j] = d;
        while (j > 0) {
          const parent = (j - 1) >> 1;
          if (!worse(heap[j], heap[parent])) break;
          [heap[j], heap[parent]] = [heap[parent], heap[j]];
          j = parent;
        }
      } else if (size > 0 && worse(heap[0], d)) {
        heap[0] = d;
        let j = 0;
        for (;;) {
          const l = 2 * j + 1;
          const r = l + 1;
          let m = j;
          if (l < size && worse(heap[l], heap[m])) m = l;
          if (r < size && worse(heap[r], heap[m])) m = r;
          if (m === j) break;
          [heap[j], heap[m]] = [heap[m], heap[j]];
          j = m;
        }
      }
    }
    const best = Array.from(heap.subarray(0, filled)).sort((a, b) => scores[b] - scores[a] || a - b);
    const hits = best.map((d) => ({ id: this.ids[d], score: scores[d] }));
    this.reset(nTouched);
    return hits;
  }

  /** BM25 score of `query` for each of `productIds` (0 when nothing matches; throws on an id not indexed). */
  scoreProducts(query: string, productIds: readonly string[]): number[] {
    const ordinals = productIds.map((id) => {
      const d = this.ordinalOf.get(id);
      if (d === undefined) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `product id "${id}" is not in the BM25 index.`);
      return d;
    });
    const nTouched = this.accumulate(query);
    const out = ordinals.map((d) => this.scores[d]);
    this.reset(nTouched);
    return out;
  }

  async search(queries: readonly string[], k: number): Promise<string[][]> {
    checkK(k);
    const out: string[][] = new Array(queries.length);
    let sliceStart = performance.now();
    for (let i = 0; i < queries.length; i++) {
      out[i] = this.searchOne(queries[i], k).map((h) => h.id);
      if ((i & 15) === 15 && performance.now() - sliceStart > this.sliceMs) {
        await yieldToEventLoop();
        sliceStart = performance.now();
      }
    }
    return out;
  }

  /** Index statistics of one field (for tests and reports). */
  fieldStats(name: ProductField): { docCount: number; avgLength: number; weight: number } | undefined {
    const f = this.fields.find((x) => x.name === name);
    return f && { docCount: f.docCount, avgLength: f.avgLength, weight: f.weight };
  }
}

function grow(a: Uint32Array<ArrayBuffer>, cap: number): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(cap);
  b.set(a);
  return b;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `k (results per query) must be a positive integer, got ${k}.`);
}
