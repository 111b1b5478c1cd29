// Train / dev / test. The Q2Q builder (lib/data/q2q.ts) makes train and test; every choice the pipeline
// makes (checkpoints, reward weights, thresholds) needs a third side, so the Q2Q test side is split once
// more, deterministically, into dev (tune here) and test (read once, at the end). q2q.ts is untouched:
// the split is a function of the test pairs alone, so runs built before it keep their numbers.
//
// A query's side is a seeded hash of a normalised key (normaliseQuery: the key q2q.ts groups spellings by):
// dev when hash / 2^32 < fraction; every pair whose *query* is q goes to q's side. With by = 'component'
// (the default) the key of every query is the smallest key of its group of connected test queries, so a
// whole group lands on one side. That matters: paired queries share at least k relevant products, so with
// by = 'query' a dev query's references and judged products are largely its test partner's (on Home Depot,
// 610 of the 1,234 test pairs would cross sides), and choices tuned on dev would be tuned on test. 'query'
// remains for callers who want exactly per-query halves; crossSideRewrites counts the crossing pairs.
import { hashString } from '../data/random.ts';
import { buildQ2Q } from '../data/q2q.ts';
import { loadRelevanceTable, TABLE_PRESETS } from '../data/table.ts';
import { LABEL_PRESETS, type LabelMap } from '../data/labels.ts';
import type { LoadReport, Product } from '../data/types.ts';
import { invalidArgument } from '../errors.ts';
import { DEFAULT_MIN_GAIN, judgedLabels, normaliseQuery, relevantProducts, type JudgedLabels } from './judged.ts';

/** Any rewrite pair (Q2QPair, the trainers' RewritePair). */
export interface PairLike {
  query: string;
  rewrite: string;
}

export type DevSplitBy = 'query' | 'component';

export interface DevSplitOptions {
  /** Share of test-side queries that go to dev. Default 0.5. */
  fraction?: number;
  seed?: number;
  by?: DevSplitBy;
}

export interface DevSplit<P extends PairLike = PairLike> {
  dev: P[];
  test: P[];
  /** Distinct queries of each side, first spelling, in pair order. */
  devQueries: string[];
  testQueries: string[];
  fraction: number;
  seed: number;
  by: DevSplitBy;
  /** Pairs whose rewrite is a query on the other side (always 0 with by = 'component', the default). */
  crossSideRewrites: number;
}

// Kept apart from q2q.ts's own salt (0x5bd1e995): when q2q split its giant group by query hash, reusing that
// hash would send every test query of the group to the same half.
const DEV_SALT = 0x2545f491;

function checkOptions(o: DevSplitOptions): { fraction: number; seed: number; by: DevSplitBy } {
  const fraction = o.fraction ?? 0.5;
  const seed = o.seed ?? 0;
  const by = o.by ?? 'component';
  if (!(fraction > 0 && fraction < 1)) throw invalidArgument(`splitDev option fraction must be in (0, 1) (the share of queries for dev), got ${String(o.fraction)}`);
  if (!(Number.isSafeInteger(seed) && seed >= 0)) throw invalidArgument(`splitDev option seed must be a non-negative integer, got ${String(o.seed)}`);
  if (by !== 'query' && by !== 'component') throw invalidArgument(`splitDev option by must be 'query' or 'component', got ${String(o.by)}`);
  return { fraction, seed, by };
}

/** The side of one query (or group key) under `options`: the hash of its normalised text. */
export function devSide(query: string, options: DevSplitOptions = {}): 'dev' | 'test' {
  const { fraction, seed } = checkOptions(options);
  return hashString(normaliseQuery(query), (seed ^ DEV_SALT) >>> 0) / 4294967296 < fraction ? 'dev' : 'test';
}

/** Splits the Q2Q test side into dev and test halves. Deterministic: same pairs, options, same split. */
export function splitDev<P extends PairLike>(testPairs: readonly P[], options: DevSplitOptions = {}): DevSplit<P> {
  const o = checkOptions(options);
  // Group key: the query itself, or (by component) the smallest key of its connected group of test queries.
  const groupKey = new Map<string, string>();
  if (o.by === 'component') {
    const parent = new Map<string, string>();
    const find = (x: string): string => {
      let r = x;
      while (parent.get(r) !== r) r = parent.get(r) as string;
      parent.set(x, r);
      return r;
    };
    for (const p of testPairs) {
      for (const q of [p.query, p.rewrite]) {
        const key = normaliseQuery(q);
        if (!parent.has(key)) parent.set(key, key);
      }
      const a = find(normaliseQuery(p.query)), b = find(normaliseQuery(p.rewrite));
      // The smaller key becomes the root, so a group's key is its smallest member.
      if (a < b) parent.set(b, a);
      else if (b < a) parent.set(a, b);
    }
    for (const key of parent.keys()) groupKey.set(key, find(key));
  }
  const sideCache = new Map<string, 'dev' | 'test'>();
  const side = (q: string): 'dev' | 'test' => {
    const own = normaliseQuery(q);
    const key = groupKey.get(own) ?? own;
    let s = sideCache.get(key);
    if (!s) sideCache.set(key, (s = devSide(key, o)));
    return s;
  };
  const dev: P[] = [], test: P[] = [];
  const devQueries = new Map<string, string>(), testQueries = new Map<string, string>();
  let cross = 0;
  for (const p of testPairs) {
    const s = side(p.query);
    (s === 'dev' ? dev : test).push(p);
    const names = s === 'dev' ? devQueries : testQueries;
    const key = normaliseQuery(p.query);
    if (!names.has(key)) names.set(key, p.query);
    if (side(p.rewrite) !== s) cross++;
  }
  return { dev, test, devQueries: [...devQueries.values()], testQueries: [...testQueries.values()], fraction: o.fraction, seed: o.seed, by: o.by, crossSideRewrites: cross };
}

export interface JudgedSidesOptions {
  minGain?: number;
  /**
   * Also evaluate judged queries that are in no Q2Q pair at all (neither side: the model never saw them),
   * each assigned to dev or test by the same hash. `queries` are the table's query texts, `train` the Q2Q
   * train pairs. Without it, only Q2Q test-side queries count.
   */
  unseen?: { queries: Iterable<string>; train: readonly PairLike[] };
}

/** The queries of each side that have at least one judged-relevant product (gain >= minGain). */
export function judgedQueriesBySide(judged: JudgedLabels, split: DevSplit, options: JudgedSidesOptions = {}): { dev: string[]; test: string[] } {
  const minGain = options.minGain ?? DEFAULT_MIN_GAIN;
  const has = (q: string): boolean => relevantProducts(judged, q, minGain).size > 0;
  const dev = split.devQueries.filter(has);
  const test = split.testQueries.filter(has);
  if (options.unseen) {
    const paired = new Set<string>();
    for (const pairs of [options.unseen.train, split.dev, split.test]) for (const p of pairs) {
      paired.add(normaliseQuery(p.query));
      paired.add(normaliseQuery(p.rewrite));
    }
    const done = new Set<string>();
    for (const q of options.unseen.queries) {
      const key = normaliseQuery(q);
      if (!key || paired.has(key) || done.has(key)) continue;
      done.add(key);
      if (!has(q)) continue;
      (devSide(key, split) === 'dev' ? dev : test).push(q.trim().replace(/\s+/g, ' '));
    }
  }
  return { dev, test };
}

export interface EvaluationTable {
  source: string;
  /** The whole catalog: every product of the table (what the engine must index). */
  products: Product[];
  labels: LabelMap;
  judged: Map<string, Map<string, number>>;
  /** Distinct judged query texts, first spelling, in file order. */
  queries: string[];
  train: PairLike[];
  /** The Q2Q test side before the dev split. */
  test: PairLike[];
  split: DevSplit;
  report: LoadReport;
}

/**
 * A relevance table with the same Q2Q pairs as the pipeline's tableWorld (lib/pipeline.ts: buildQ2Q with
 * { k, seed } on all judgements), the dev split of their test side, and the human labels.
 */
export async function loadEvaluationTable(options: { path: string; preset?: string; seed?: number; k?: number; dev?: DevSplitOptions }): Promise<EvaluationTable> {
  const presetName = options.preset ?? 'homedepot';
  const table = TABLE_PRESETS[presetName];
  const labels = LABEL_PRESETS[presetName];
  if (!table || !labels) throw invalidArgument(`unknown table preset "${presetName}" (known: ${Object.keys(TABLE_PRESETS).join(', ')})`);
  const seed = options.seed ?? 1;
  const data = await loadRelevanceTable({ path: options.path, columns: table.columns, labels, encoding: table.encoding });
  const q2q = await buildQ2Q(data.judgements, { k: options.k ?? 2, seed });
  const queries = new Map<string, string>();
  for (const j of data.judgements) {
    const key = normaliseQuery(j.query);
    if (!queries.has(key)) queries.set(key, j.query.trim().replace(/\s+/g, ' '));
  }
  return {
    source: options.path,
    products: [...data.products.values()],
    labels,
    judged: judgedLabels(data.judgements),
    queries: [...queries.values()],
    train: q2q.train,
    test: q2q.test,
    split: splitDev(q2q.test, { seed, ...options.dev }),
    report: data.report,
  };
}
