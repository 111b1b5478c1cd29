// Q2Q builder: the query–product bipartite graph of relevant judgements; queries that share at least k
// relevant products become candidate rewrites of each other (both directions, weighted by the shared
// count), an optional equivalence filter checks them, and a split keeps every query on one side.
import { mkdir } from 'node:fs/promises';
import { writeFileAtomic } from '../util/atomic.ts';
import { join } from 'node:path';
import { MinielmError } from '../errors.ts';
import { hashString } from './random.ts';
import type { EsciLabel, Judgement, Q2QPair } from './types.ts';

/** An undirected candidate: two queries and the relevant products they share. */
export interface CandidatePair {
  a: string;
  b: string;
  shared: number;
}

/**
 * Decides which candidate pairs are true equivalents (the paper uses an LLM judge). Called with
 * batches of at most `batchSize` pairs; resolves to one boolean per pair, in order.
 */
export interface EquivalenceFilter {
  readonly name: string;
  readonly batchSize?: number;
  accept(pairs: readonly CandidatePair[]): Promise<boolean[]>;
}

/** The default: keeps every candidate. */
export const keepAllFilter: EquivalenceFilter = {
  name: 'none',
  batchSize: 1024,
  accept: async (pairs) => pairs.map(() => true),
};

export interface Q2QOptions {
  /** Minimum number of shared relevant products. Default 2. */
  k?: number;
  /** Labels that make a judgement relevant. Default ['E', 'S']. Ignored when minGain is set. */
  labels?: EsciLabel[];
  /** Relevant when gain >= minGain (instead of by label). */
  minGain?: number;
  /** Use only judgements of this official split (e.g. 'train' for ESCI, as the paper does). */
  officialSplit?: string;
  /**
   * Hub cap: a product relevant to more queries than this contributes pairs only among a fixed
   * (seeded hash order) sample of this many of them, so one product costs at most cap²/2 pair counts.
   * Default 64.
   */
  maxQueriesPerProduct?: number;
  /** At most this many rewrites per query (strongest shared count first). Default 20. */
  maxRewritesPerQuery?: number;
  /** Fraction of pairs meant for test. Default 0.2. */
  testFraction?: number;
  seed?: number;
  /**
   * 'component' (default): whole connected groups of queries go to one side (seeded order) until the
   * test side holds ~testFraction of the pairs, so no pair is lost; when one giant group makes that
   * unreachable, that group alone is split by query hash and its crossing pairs are dropped (counted).
   * 'query-hash': each query goes to test with probability testFraction (seeded hash); pairs that
   * cross are dropped (counted), so the test share of pairs is about testFraction².
   */
  splitBy?: 'component' | 'query-hash';
  filter?: EquivalenceFilter;
  /** Examples kept in the stats. Default 10. */
  examples?: number;
  onProgress?: (message: string) => void;
}

export interface Q2QStats {
  k: number;
  relevance: string;
  officialSplit: string | null;
  judgementsUsed: number;
  relevantEdges: number;
  queries: number;
  products: number;
  queriesWithRelevant: number;
  productsWithRelevant: number;
  hubProducts: number;
  maxQueriesPerProduct: number;
  candidatePairs: number;
  pairsAfterCap: number;
  filter: string;
  pairsAfterFilter: number;
  splitBy: 'component' | 'query-hash';
  /** True when the largest query group had to be split by query hash (component mode). */
  giantGroupSplit: boolean;
  crossSplitPairsDropped: number;
  train: { queries: number; pairs: number };
  test: { queries: number; pairs: number };
  queriesInBothSplits: number;
  components: { count: number; largest: number };
  /** Histograms; keys are bucket labels ("1", "2", "3-4", "5-8", …). */
  rewritesPerQuery: Record<string, number>;
  queriesPerProduct: Record<string, number>;
  sharedCount: Record<string, number>;
  examples: Q2QPair[];
}

export interface Q2QResult {
  train: Q2QPair[];
  test: Q2QPair[];
  stats: Q2QStats;
}

function normaliseQuery(q: string): string {
  return q.trim().replace(/\s+/g, ' ').toLowerCase();
}

function bucket(n: number): string {
  if (n <= 2) return String(n);
  let lo = 3;
  let hi = 4;
  while (n > hi) {
    lo = hi + 1;
    hi *= 2;
  }
  return `${lo}-${hi}`;
}

function histogram(values: Iterable<number>): Record<string, number> {
  const counts = new Map<string, { min: number; n: number }>();
  for (const v of values) {
    const key = bucket(v);
    const c = counts.get(key);
    if (c) c.n++;
    else counts.set(key, { min: v, n: 1 });
  }
  const out: Record<string, number> = {};
  for (const [key, { n }] of [...counts].sort((x, y) => Number(x[0].split('-')[0]) - Number(y[0].split('-')[0]))) out[key] = n;
  return out;
}

function positiveInt(name: string, v: number, min = 1): void {
  if (!(Number.isInteger(v) && v >= min)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `q2q option ${name} must be an integer >= ${min} (got ${v}).`);
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = new Int32Array(n);
    for (let i = 0; i < n; i++) this.parent[i] = i;
  }
  find(x: number): number {
    let r = x;
    while (this.parent[r] !== r) r = this.parent[r] as number;
    while (this.parent[x] !== r) {
      const next = this.parent[x] as number;
      this.parent[x] = r;
      x = next;
    }
    return r;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}

/** Builds Q2Q pairs from judgements. Deterministic for a given input order, options and seed. */
export async function buildQ2Q(judgements: readonly Judgement[], options: Q2QOptions = {}): Promise<Q2QResult> {
  const k = options.k ?? 2;
  const cap = options.maxQueriesPerProduct ?? 64;
  const maxRewrites = options.maxRewritesPerQuery ?? 20;
  const testFraction = options.testFraction ?? 0.2;
  const seed = options.seed ?? 0;
  const filter = options.filter ?? keepAllFilter;
  const labels = new Set(options.labels ?? ['E', 'S']);
  positiveInt('k', k);
  positiveInt('maxQueriesPerProduct', cap, 2);
  positiveInt('maxRewritesPerQuery', maxRewrites);
  positiveInt('seed', seed, 0);
  if (!(testFraction >= 0 && testFraction < 1)) throw new MinielmError('MINIELM_INVALID_ARGUMENT', `q2q option testFraction must be in [0, 1) (got ${testFraction}).`);
  if (options.minGain !== undefined && !(options.minGain >= 0 && options.minGain <= 1)) {
    throw new MinielmError('MINIELM_INVALID_ARGUMENT', `q2q option minGain must be in [0, 1] (got ${options.minGain}).`);
  }
  const relevant = (j: Judgement) => (options.minGain !== undefined ? j.gain >= options.minGain : labels.has(j.label));
  const progress = options.onProgress ?? (() => {});

  // 1. Bipartite graph: query index <-> product index, relevant edges only (duplicates collapse).
  const queryIndex = new Map<string, number>();
  const queryText: string[] = [];
  const productIndex = new Map<string, number>();
  const productQueries: number[][] = [];
  const judgedProducts = new Set<string>();
  const edgeSeen = new Set<string>();
  let used = 0;
  let edges = 0;
  for (const j of judgements) {
    if (options.officialSplit !== undefined && j.split !== options.officialSplit) continue;
    used++;
    const key = normaliseQuery(j.query);
    if (!key) continue;
    let qi = queryIndex.get(key);
    if (qi === undefined) {
      qi = queryText.length;
      queryIndex.set(key, qi);
      queryText.push(j.query.trim().replace(/\s+/g, ' '));
    }
    judgedProducts.add(j.productId);
    if (!relevant(j)) continue;
    let pi = productIndex.get(j.productId);
    if (pi === undefined) {
      pi = productQueries.length;
      productIndex.set(j.productId, pi);
      productQueries.push([]);
    }
    const edge = `${qi}\u0000${pi}`;
    if (edgeSeen.has(edge)) continue;
    edgeSeen.add(edge);
    (productQueries[pi] as number[]).push(qi);
    edges++;
  }
  edgeSeen.clear();
  const nQ = queryText.length;
  const queriesWithRelevant = new Set(productQueries.flat()).size;
  progress(`graph: ${nQ} queries, ${productQueries.length} products with a relevant query, ${edges} relevant edges`);

  // 2. Count shared products per query pair, hub products capped.
  const shared = new Map<number, number>();
  let hubs = 0;
  for (let pi = 0; pi < productQueries.length; pi++) {
    let qs = productQueries[pi] as number[];
    if (qs.length < 2) continue;
    if (qs.length > cap) {
      hubs++;
      qs = qs
        .map((q) => [hashString(queryText[q] as string, seed), q] as const)
        .sort((x, y) => x[0] - y[0] || x[1] - y[1])
        .slice(0, cap)
        .map(([, q]) => q);
    }
    qs = [...qs].sort((x, y) => x - y);
    for (let x = 0; x < qs.length; x++) {
      for (let y = x + 1; y < qs.length; y++) {
        const key = (qs[x] as number) * nQ + (qs[y] as number);
        shared.set(key, (shared.get(key) ?? 0) + 1);
      }
    }
    if (pi % 50_000 === 0 && pi > 0) {
      progress(`pairs: ${pi}/${productQueries.length} products, ${shared.size} query pairs so far`);
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  // 3. Candidates with >= k shared; per-query cap, strongest first (ties by seeded hash, then index).
  const candidates: Array<{ a: number; b: number; shared: number; h: number }> = [];
  for (const [key, n] of shared) {
    if (n < k) continue;
    const a = Math.floor(key / nQ);
    const b = key - a * nQ;
    candidates.push({ a, b, shared: n, h: hashString(`${queryText[a]}\u0000${queryText[b]}`, seed) });
  }
  shared.clear();
  const candidateCount = candidates.length;
  candidates.sort((x, y) => y.shared - x.shared || x.h - y.h || x.a - y.a || x.b - y.b);
  const degree = new Int32Array(nQ);
  const capped: typeof candidates = [];
  for (const c of candidates) {
    // Both directions are always emitted, so a pair is kept only while both ends have room.
    if ((degree[c.a] as number) >= maxRewrites || (degree[c.b] as number) >= maxRewrites) continue;
    degree[c.a]++;
    degree[c.b]++;
    capped.push(c);
  }
  progress(`candidates: ${candidateCount} pairs sharing >= ${k} products, ${capped.length} after the per-query cap of ${maxRewrites}`);

  // 4. Equivalence filter, in batches.
  const batchSize = Math.max(1, filter.batchSize ?? 1024);
  const accepted: typeof candidates = [];
  for (let s = 0; s < capped.length; s += batchSize) {
    const slice = capped.slice(s, s + batchSize);
    const verdicts = await filter.accept(slice.map((c) => ({ a: queryText[c.a] as string, b: queryText[c.b] as string, shared: c.shared })));
    if (!Array.isArray(verdicts) || verdicts.length !== slice.length) {
      throw new MinielmError('MINIELM_INVALID_ARGUMENT', `equivalence filter "${filter.name}" returned ${Array.isArray(verdicts) ? verdicts.length : typeof verdicts} verdicts for ${slice.length} pairs; it must return one boolean per pair.`);
    }
    slice.forEach((c, i) => {
      if (verdicts[i] === true) accepted.push(c);
    });
    if (filter !== keepAllFilter) progress(`filter ${filter.name}: ${Math.min(s + batchSize, capped.length)}/${capped.length} pairs judged, ${accepted.length} kept`);
  }

  // 5. Split so that no query is on both sides.
  const uf = new UnionFind(nQ);
  for (const c of accepted) uf.union(c.a, c.b);
  const compPairs = new Map<number, number>();
  const compSize = new Map<number, number>();
  const inPairs = new Set<number>();
  for (const c of accepted) {
    const r = uf.find(c.a);
    compPairs.set(r, (compPairs.get(r) ?? 0) + 1);
    inPairs.add(c.a);
    inPairs.add(c.b);
  }
  for (const q of inPairs) {
    const r = uf.find(q);
    compSize.set(r, (compSize.get(r) ?? 0) + 1);
  }
  const largest = Math.max(0, ...compSize.values());
  const splitBy = options.splitBy ?? 'component';
  const sideOf = new Uint8Array(nQ); // 0 train, 1 test
  const target = testFraction * accepted.length;
  let giantSplit = false;
  if (splitBy === 'component') {
    // Components in seeded hash order fill the test side up to the target; those that would overshoot stay in train.
    const order = [...compPairs.keys()]
      .map((r) => [hashString(queryText[r] as string, seed), r] as const)
      .sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let testPairs = 0;
    const testRoots = new Set<number>();
    for (const [, r] of order) {
      const n = compPairs.get(r) as number;
      if (testPairs + n <= target) {
        testRoots.add(r);
        testPairs += n;
      }
    }
    for (const q of inPairs) if (testRoots.has(uf.find(q))) sideOf[q] = 1;
    const deficit = target - testPairs;
    if (deficit > 0.1 * target) {
      // One giant group holds most pairs (typical for k = 1): split its queries by hash at a rate p
      // (about p² of its pairs land in test); its crossing pairs are dropped and counted.
      let giant = -1;
      for (const [r, n] of compPairs) if (!testRoots.has(r) && (giant < 0 || n > (compPairs.get(giant) as number))) giant = r;
      // Solve for p so that test / (test + train) = testFraction after the crossing pairs are gone.
      const g = compPairs.get(giant) as number;
      const rest = accepted.length - testPairs - g;
      const share = (x: number) => (testPairs + x * x * g) / (testPairs + rest + (x * x + (1 - x) * (1 - x)) * g);
      let lo = 0;
      let hi = 1;
      for (let it = 0; it < 40; it++) {
        const mid = (lo + hi) / 2;
        if (share(mid) < testFraction) lo = mid;
        else hi = mid;
      }
      const p = (lo + hi) / 2;
      for (const q of inPairs) {
        if (uf.find(q) !== giant) continue;
        sideOf[q] = hashString(normaliseQuery(queryText[q] as string), seed ^ 0x5bd1e995) / 4294967296 < p ? 1 : 0;
      }
      giantSplit = true;
      progress(`split: the largest query group (${largest} queries) is split by query hash; pairs crossing sides are dropped`);
    }
  } else {
    for (const q of inPairs) sideOf[q] = hashString(normaliseQuery(queryText[q] as string), seed ^ 0x5bd1e995) / 4294967296 < testFraction ? 1 : 0;
  }
  const train: Q2QPair[] = [];
  const test: Q2QPair[] = [];
  let crossDropped = 0;
  const trainQueries = new Set<number>();
  const testQueries = new Set<number>();
  for (const c of accepted) {
    const sa = sideOf[c.a];
    if (sa !== sideOf[c.b]) {
      crossDropped++;
      continue;
    }
    const out = sa === 1 ? test : train;
    const seen = sa === 1 ? testQueries : trainQueries;
    seen.add(c.a);
    seen.add(c.b);
    const a = queryText[c.a] as string;
    const b = queryText[c.b] as string;
    out.push({ query: a, rewrite: b, shared: c.shared }, { query: b, rewrite: a, shared: c.shared });
  }
  let both = 0;
  for (const q of trainQueries) if (testQueries.has(q)) both++;

  // 6. Stats.
  const rewriteCount = new Map<number, number>();
  for (const c of accepted) {
    if (sideOf[c.a] !== sideOf[c.b]) continue;
    rewriteCount.set(c.a, (rewriteCount.get(c.a) ?? 0) + 1);
    rewriteCount.set(c.b, (rewriteCount.get(c.b) ?? 0) + 1);
  }
  const nExamples = options.examples ?? 10;
  const strongest = accepted.slice(0, Math.ceil(nExamples / 2));
  const sampled = [...accepted].sort((x, y) => x.h - y.h).slice(0, nExamples - strongest.length);
  const stats: Q2QStats = {
    k,
    relevance: options.minGain !== undefined ? `gain >= ${options.minGain}` : `label in {${[...labels].join(', ')}}`,
    officialSplit: options.officialSplit ?? null,
    judgementsUsed: used,
    relevantEdges: edges,
    queries: nQ,
    products: judgedProducts.size,
    queriesWithRelevant,
    productsWithRelevant: productQueries.length,
    hubProducts: hubs,
    maxQueriesPerProduct: cap,
    candidatePairs: candidateCount,
    pairsAfterCap: capped.length,
    filter: filter.name,
    pairsAfterFilter: accepted.length,
    splitBy,
    giantGroupSplit: giantSplit,
    crossSplitPairsDropped: crossDropped,
    train: { queries: trainQueries.size, pairs: train.length },
    test: { queries: testQueries.size, pairs: test.length },
    queriesInBothSplits: both,
    components: { count: compPairs.size, largest },
    rewritesPerQuery: histogram(rewriteCount.values()),
    queriesPerProduct: histogram(productQueries.map((q) => q.length)),
    sharedCount: histogram(accepted.map((c) => c.shared)),
    examples: [...strongest, ...sampled].map((c) => ({ query: queryText[c.a] as string, rewrite: queryText[c.b] as string, shared: c.shared })),
  };
  return { train, test, stats };
}

/** Writes train.jsonl, test.jsonl ({"query", "rewrite", "shared"} per line) and stats.json into `dir`. */
export async function writeQ2Q(result: Q2QResult, dir: string, extra: Record<string, unknown> = {}): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const lines = (pairs: Q2QPair[]) => (pairs.length ? `${pairs.map((p) => JSON.stringify({ query: p.query, rewrite: p.rewrite, shared: p.shared, ...extra })).join('\n')}\n` : '');
  const files = [join(dir, 'train.jsonl'), join(dir, 'test.jsonl'), join(dir, 'stats.json')];
  await writeFileAtomic(files[0] as string, lines(result.train));
  await writeFileAtomic(files[1] as string, lines(result.test));
  await writeFileAtomic(files[2] as string, `${JSON.stringify({ ...extra, ...result.stats }, null, 2)}\n`);
  return files;
}
