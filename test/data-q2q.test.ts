// Q2Q builder: pairs from shared relevant products, both directions, caps, filter, leak-free split.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HOMEDEPOT_LABELS, TABLE_PRESETS, buildQ2Q, generateSyntheticCatalog, loadRelevanceTable, writeQ2Q } from '../lib/data/index.ts';
import type { CandidatePair, EquivalenceFilter, EsciLabel, Judgement } from '../lib/data/index.ts';
import { MinielmError } from '../lib/errors.ts';
import { testIf } from './helpers/skip.ts';

const j = (query: string, productId: string, label: EsciLabel = 'E', gain = 1): Judgement => ({ query, productId, label, gain });

// a and b share P1, P2 (E) ; a and c share P1 only ; d shares P3 with a but as a Complement ; e shares P2 with b at gain 0.3
const tiny: Judgement[] = [
  j('a', 'P1'), j('a', 'P2'), j('a', 'P3'),
  j('b', 'P1'), j('b', 'P2', 'S', 0.5),
  j('c', 'P1'),
  j('d', 'P3', 'C', 0.01),
  j('e', 'P2', 'S', 0.3),
  j('A ', 'P1'), // same query as "a" after normalisation: no self pair
];

const set = (pairs: Array<{ query: string; rewrite: string; shared: number }>) => pairs.map((p) => `${p.query}>${p.rewrite}:${p.shared}`).sort();

test('k controls which pairs appear; both directions; shared count as weight', async () => {
  const k2 = await buildQ2Q(tiny, { k: 2, testFraction: 0 });
  assert.equal(set(k2.train), ['a>b:2', 'b>a:2']);
  const k1 = await buildQ2Q(tiny, { k: 1, testFraction: 0 });
  assert.equal(set(k1.train), ['a>b:2', 'a>c:1', 'a>e:1', 'b>a:2', 'b>c:1', 'b>e:1', 'c>a:1', 'c>b:1', 'e>a:1', 'e>b:1']);
  const eOnly = await buildQ2Q(tiny, { k: 1, labels: ['E'], testFraction: 0 });
  assert.equal(set(eOnly.train), ['a>b:1', 'a>c:1', 'b>a:1', 'b>c:1', 'c>a:1', 'c>b:1']); // b-P2 is S: only P1 counts
  const gain = await buildQ2Q(tiny, { k: 1, minGain: 0.5, testFraction: 0 });
  assert.equal(set(gain.train), ['a>b:2', 'a>c:1', 'b>a:2', 'b>c:1', 'c>a:1', 'c>b:1']);
  assert.equal(k1.stats.queries, 5);
});

test('hub products are capped and pair generation stays bounded', async () => {
  const hub: Judgement[] = [];
  for (let q = 0; q < 1000; q++) hub.push(j(`q${q}`, 'HUB'), j(`q${q}`, `own${q % 500}`));
  const r = await buildQ2Q(hub, { k: 1, maxQueriesPerProduct: 10, maxRewritesPerQuery: 1000, testFraction: 0 });
  assert.equal(r.stats.hubProducts, 1); // HUB (1000 queries) is capped; ownN have 2 queries each: not hubs
  // HUB alone would give 1000*999/2 pairs; capped it gives at most 10*9/2, plus the 500 own-product pairs
  assert.ok(r.stats.candidatePairs <= 45 + 500, `candidates ${r.stats.candidatePairs}`);
  const perQuery = await buildQ2Q(hub, { k: 1, maxQueriesPerProduct: 1000, maxRewritesPerQuery: 3, testFraction: 0 });
  const degree = new Map<string, number>();
  for (const p of perQuery.train) degree.set(p.query, (degree.get(p.query) ?? 0) + 1);
  assert.ok(Math.max(...degree.values()) <= 3);
});

test('pluggable equivalence filter: batched, async, decides which pairs stay', async () => {
  const batches: number[] = [];
  const filter: EquivalenceFilter = {
    name: 'no-c',
    batchSize: 2,
    accept: async (pairs: readonly CandidatePair[]) => {
      batches.push(pairs.length);
      await new Promise((r) => setTimeout(r, 1));
      return pairs.map((p) => p.a !== 'c' && p.b !== 'c');
    },
  };
  const r = await buildQ2Q(tiny, { k: 1, testFraction: 0, filter });
  assert.equal(set(r.train), ['a>b:2', 'a>e:1', 'b>a:2', 'b>e:1', 'e>a:1', 'e>b:1']);
  assert.ok(batches.every((n) => n <= 2));
  assert.equal(batches.reduce((a, b) => a + b, 0), 5);
  assert.equal(r.stats.filter, 'no-c');
  const broken: EquivalenceFilter = { name: 'broken', accept: async () => [true] };
  try {
    await buildQ2Q(tiny, { k: 1, filter: broken });
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.equal((err as MinielmError).code, 'MINIELM_INVALID_ARGUMENT');
    assert.match((err as Error).message, 'broken');
  }
});

function assertNoLeak(train: Array<{ query: string; rewrite: string }>, test: Array<{ query: string; rewrite: string }>): void {
  const trainQ = new Set(train.flatMap((p) => [p.query, p.rewrite]));
  for (const p of test) {
    assert.not.ok(trainQ.has(p.query), `query "${p.query}" is on both sides`);
    assert.not.ok(trainQ.has(p.rewrite), `query "${p.rewrite}" is on both sides`);
  }
}

test('split: deterministic, about 80/20, no query on both sides (both strategies)', async () => {
  const { judgements } = generateSyntheticCatalog({ seed: 2, products: 800, queries: 700 });
  for (const splitBy of ['component', 'query-hash'] as const) {
    const r1 = await buildQ2Q(judgements, { k: 2, seed: 3, splitBy });
    const r2 = await buildQ2Q(judgements, { k: 2, seed: 3, splitBy });
    assert.equal(r1.train, r2.train);
    assert.equal(r1.test, r2.test);
    assert.ok(r1.test.length > 0 && r1.train.length > 0);
    assertNoLeak(r1.train, r1.test);
    assert.is(r1.stats.queriesInBothSplits, 0);
    const other = await buildQ2Q(judgements, { k: 2, seed: 4, splitBy });
    assert.is.not(JSON.stringify(other.test), JSON.stringify(r1.test), 'the seed changes the split');
  }
  const r = await buildQ2Q(judgements, { k: 2 });
  const share = r.test.length / (r.test.length + r.train.length);
  assert.ok(share > 0.1 && share < 0.3, `test share ${share}`);
});

test('split with one giant group (k = 1 style) still leaks nothing', async () => {
  // a chain q0-q1-q2-... is one connected group holding every pair
  const chain: Judgement[] = [];
  for (let q = 0; q < 400; q++) chain.push(j(`q${q}`, `p${q}`), j(`q${q}`, `p${q + 1}`));
  const r = await buildQ2Q(chain, { k: 1 });
  assert.ok(r.stats.giantGroupSplit);
  assert.ok(r.test.length > 0);
  assertNoLeak(r.train, r.test);
  assert.ok(r.stats.crossSplitPairsDropped > 0);
  const share = r.test.length / (r.test.length + r.train.length);
  assert.ok(share > 0.1 && share < 0.3, `test share ${share}`);
});

test('writes train/test JSONL and stats JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'minielm-q2q-'));
  try {
    const r = await buildQ2Q(tiny, { k: 1, testFraction: 0 });
    const [train, testFile, stats] = await writeQ2Q(r, dir);
    const lines = readFileSync(train as string, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, r.train.length);
    assert.equal(Object.keys(lines[0]).sort(), ['query', 'rewrite', 'shared']);
    assert.equal(readFileSync(testFile as string, 'utf8'), '');
    assert.equal(JSON.parse(readFileSync(stats as string, 'utf8')).k, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const HOMEDEPOT = join(process.cwd(), '..', 'shared', 'data', 'homedepot', 'train.csv');
testIf(test, existsSync(HOMEDEPOT), 'Home Depot: q2q for k = 1, 2, 3 (real data)', `${HOMEDEPOT} is absent; Q2Q is NOT checked on real data`, async () => {
  const path = HOMEDEPOT;
  const d = await loadRelevanceTable({ path, ...TABLE_PRESETS.homedepot!, labels: HOMEDEPOT_LABELS });
  let previous = Infinity;
  for (const k of [1, 2, 3]) {
    const r = await buildQ2Q(d.judgements, { k });
    assert.ok(r.stats.candidatePairs < previous, 'fewer candidates as k grows');
    previous = r.stats.candidatePairs;
    assert.ok(r.train.length > 0 && r.test.length > 0);
    assertNoLeak(r.train, r.test);
    for (const p of r.train) assert.ok(p.shared >= k);
  }
});

test.run();
